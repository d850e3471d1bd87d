//! The truth: real people, living alone or in households.

use rand::RngExt;

use crate::address::Address;
use crate::formats::{REFERENCE_DATE, civil_from_days, days_from_civil};
use crate::noise::fold_accents;
use crate::tables::TABLES;
use crate::{FastSet, SynthRng, Weighted, chance, fnv1a, mix, rng_for};

/// The truth about one real person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Identifies the person; every record captured from them carries it.
    pub entity_id: u64,
    /// Given (first) name, properly capitalised.
    pub given_name: String,
    /// Family name (surname), properly capitalised.
    pub family_name: String,
    /// Date of birth as (year, month, day); always a real date.
    pub birth_date: (i32, u32, u32),
    /// Email address, lower case; unique except for the few household members who share one.
    pub email: String,
    /// UK phone number in E.164 form ("+447700900123"): a mobile, or a shared household landline.
    pub phone: String,
    /// House number, sometimes with a letter ("12A").
    pub house_number: String,
    /// Street name ("Acacia Avenue").
    pub street: String,
    /// UK postcode ("LS6 2QT") that matches the town and street.
    pub postcode: String,
    /// Town or city.
    pub city: String,
    /// People sharing an address share it; no two households share an address.
    pub household_id: u64,
}

/// Everyone a generated customer file can be captured from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Population {
    /// The people, grouped by household.
    pub people: Vec<Person>,
}

/// `n` people, about 30% of them sharing a household (two to five people at one address, with
/// a family name, sometimes a landline and rarely an email in common; a few households hold
/// twins). Deterministic for a seed.
pub fn population(seed: u64, n: usize) -> Population {
    let mut generator = Generator::new(seed, n);
    while generator.people.len() < n {
        let remaining = n - generator.people.len();
        generator.household(remaining);
    }
    Population { people: generator.people }
}

/// One member of a household being planned.
struct Member {
    given: &'static str,
    family: &'static str,
    birth_day: i64,
}

/// Builds a population, keeping addresses, emails and phone numbers unique.
struct Generator {
    rng: SynthRng,
    people: Vec<Person>,
    addresses: FastSet<u64>,
    /// Hashes of the emails given out; a collision only makes an address get digits appended.
    emails: FastSet<u64>,
    /// Phone numbers given out so far: mobiles, London landlines, other landlines.
    phones_issued: [u64; 3],
    /// Key of the permutations that turn those counts into numbers.
    phone_key: u64,
    households: u64,
    /// Size of a multi-person household, 2..=5.
    sizes: Weighted,
    /// Age band of an adult living alone or as a couple.
    age_bands: Weighted,
}

/// First two digits of UK mobile numbers (07 followed by these; 070 and 076 are not mobiles).
pub(crate) const MOBILE_PREFIXES: &[u64] = &[71, 72, 73, 74, 75, 77, 78, 79];

/// Age bands (inclusive) and their relative share of adult customers.
const AGE_BANDS: [(u32, u32, f64); 8] = [
    (18, 24, 10.0),
    (25, 34, 17.0),
    (35, 44, 16.0),
    (45, 54, 17.0),
    (55, 64, 16.0),
    (65, 74, 13.0),
    (75, 84, 8.0),
    (85, 95, 3.0),
];

/// Share of households with more than one person. With the size distribution below (mean about
/// 2.8) this puts about 30% of people in shared households.
const SHARED_HOUSEHOLDS: f64 = 0.132;

impl Generator {
    fn new(seed: u64, n: usize) -> Self {
        Self {
            rng: rng_for(seed, 1),
            people: Vec::with_capacity(n),
            addresses: FastSet::with_capacity_and_hasher(n, Default::default()),
            emails: FastSet::with_capacity_and_hasher(n, Default::default()),
            phones_issued: [0; 3],
            phone_key: mix(seed ^ 0x0050_4F4E_4553),
            households: 0,
            sizes: Weighted::new([50.0, 25.0, 18.0, 7.0]),
            age_bands: Weighted::new(AGE_BANDS.iter().map(|b| b.2)),
        }
    }

    /// A birth date, as days since 1970, for someone aged `age` years on the reference date.
    fn born(&mut self, age: u32) -> i64 {
        let (y, m, d) = REFERENCE_DATE;
        // Someone aged `age` was born in the year up to that day `age` years ago.
        days_from_civil(y - age as i32, m, d) - self.rng.random_range(0..365)
    }

    fn adult_age(&mut self) -> u32 {
        let (lo, hi, _) = AGE_BANDS[self.age_bands.sample(&mut self.rng)];
        self.rng.random_range(lo..=hi)
    }

    /// A given name of the given sex that nobody in `others` already has.
    fn distinct_given(&mut self, female: bool, others: &[Member]) -> &'static str {
        let mut given = TABLES.given(female, &mut self.rng);
        for _ in 0..20 {
            if !others.iter().any(|m| m.given == given) {
                break;
            }
            given = TABLES.given(female, &mut self.rng);
        }
        given
    }

    fn unique_address(&mut self) -> Address {
        loop {
            let address = Address::random(&mut self.rng);
            if self.addresses.insert(address.key()) {
                return address;
            }
        }
    }

    /// A new phone number (national significant number): a mobile, or a landline in the town.
    /// Numbers are the issue count through a keyed permutation, so they look random and never repeat.
    fn unique_phone(&mut self, landline_in: Option<&str>) -> u64 {
        let (kind, prefixes, block): (usize, &[u64], u64) = match landline_in {
            None => (0, MOBILE_PREFIXES, 100_000_000),
            Some("London") => (1, &[203, 207, 208], 10_000_000),
            Some(_) => (2, &[12, 13, 14, 15, 16, 17, 18, 19], 100_000_000),
        };
        let count = prefixes.len() as u64 * block;
        let issued = self.phones_issued[kind];
        self.phones_issued[kind] += 1;
        let k = permute(issued % count, count, self.phone_key);
        prefixes[(k / block) as usize] * block + k % block
    }

    /// A unique email address for this person, in one of the usual shapes.
    fn unique_email(&mut self, given: &str, family: &str, birth_year: i32) -> String {
        let given = email_part(given);
        let family = email_part(family);
        let initial = given.chars().next().unwrap_or('x');
        let domain = TABLES.domain(&mut self.rng);
        let rng = &mut self.rng;
        let local = match rng.random_range(0..100u32) {
            0..30 => format!("{given}.{family}"),
            30..45 => format!("{given}{family}"),
            45..57 => format!("{initial}{family}"),
            57..67 => format!("{given}.{family}{}", rng.random_range(1..100u32)),
            67..75 => format!("{given}{family}{:02}", birth_year.rem_euclid(100)),
            75..83 => format!("{initial}.{family}"),
            83..88 => format!("{given}_{family}"),
            88..92 => format!("{family}.{given}"),
            92..96 => format!("{given}{}", rng.random_range(1..1000u32)),
            _ => format!("{family}{initial}"),
        };
        let mut email = format!("{local}@{domain}");
        while !self.emails.insert(fnv1a(0, email.as_bytes())) {
            let digits = self.rng.random_range(1..10_000u32);
            email = format!("{local}{digits}@{domain}");
        }
        email
    }

    /// Adds one household of up to `remaining` people.
    fn household(&mut self, remaining: usize) {
        let size = if chance(&mut self.rng, SHARED_HOUSEHOLDS) { self.sizes.sample(&mut self.rng) + 2 } else { 1 };
        let size = size.min(remaining);
        let mut members: Vec<Member> = Vec::with_capacity(size);

        let head_female = chance(&mut self.rng, 0.5);
        let head_family = TABLES.family(&mut self.rng);
        let head_age = if size >= 3 { self.rng.random_range(40..=72) } else { self.adult_age() };
        let head = Member {
            given: TABLES.given(head_female, &mut self.rng),
            family: head_family,
            birth_day: self.born(head_age),
        };
        members.push(head);

        let mut children = size.saturating_sub(1);
        let with_partner = (size == 2 && chance(&mut self.rng, 0.7)) || (size >= 3 && chance(&mut self.rng, 0.9));
        let flatmates = size == 2 && !with_partner && chance(&mut self.rng, 0.5);
        if with_partner {
            children -= 1;
            let female = if chance(&mut self.rng, 0.92) { !head_female } else { head_female };
            let family = if chance(&mut self.rng, 0.8) { head_family } else { TABLES.family(&mut self.rng) };
            let gap = self.rng.random_range(-6..=6i32);
            let age = (head_age as i32 + gap).clamp(18, 95) as u32;
            let given = self.distinct_given(female, &members);
            let birth_day = self.born(age);
            members.push(Member { given, family, birth_day });
        } else if flatmates {
            children = 0;
            let female = chance(&mut self.rng, 0.5);
            let family = TABLES.family(&mut self.rng);
            let age = (head_age as i32 + self.rng.random_range(-5..=5i32)).clamp(18, 95) as u32;
            let given = self.distinct_given(female, &members);
            let birth_day = self.born(age);
            members.push(Member { given, family, birth_day });
        }
        let first_child = members.len();
        for _ in 0..children {
            let female = chance(&mut self.rng, 0.5);
            let family = if chance(&mut self.rng, 0.9) { head_family } else { TABLES.family(&mut self.rng) };
            let gap = self.rng.random_range(20..=38u32);
            let age = if head_age >= gap + 16 { head_age - gap } else { self.rng.random_range(16..=19) };
            let given = self.distinct_given(female, &members);
            let birth_day = self.born(age);
            members.push(Member { given, family, birth_day });
        }
        // Twins: two children with the same birth date and family name, different given names.
        if members.len() - first_child >= 2 && chance(&mut self.rng, 0.08) {
            let last = members.len() - 1;
            members[last].birth_day = members[last - 1].birth_day;
            members[last].family = members[last - 1].family;
        }

        self.households += 1;
        let household_id = self.households;
        let address = self.unique_address();
        let (house_number, street, postcode, city) =
            (address.house_number(), address.street(), address.postcode(), address.city());
        let landline_share = if size == 1 { 0.08 } else { 0.35 };
        let landline = chance(&mut self.rng, landline_share).then(|| self.unique_phone(Some(city)));
        let mut head_email: Option<String> = None;
        for (i, member) in members.iter().enumerate() {
            let birth_date = civil_from_days(member.birth_day);
            let phone = match landline {
                Some(number) if size == 1 || chance(&mut self.rng, 0.65) => number,
                _ => self.unique_phone(None),
            };
            let email = match &head_email {
                Some(shared) if chance(&mut self.rng, 0.03) => shared.clone(),
                _ => self.unique_email(member.given, member.family, birth_date.0),
            };
            if i == 0 {
                head_email = Some(email.clone());
            }
            self.people.push(Person {
                entity_id: self.people.len() as u64 + 1,
                given_name: member.given.to_owned(),
                family_name: member.family.to_owned(),
                birth_date,
                email,
                phone: format!("+44{phone}"),
                house_number: house_number.clone(),
                street: street.clone(),
                postcode: postcode.clone(),
                city: city.to_owned(),
                household_id,
            });
        }
    }
}

/// A name as it appears in an email address: lower case ASCII letters only.
fn email_part(name: &str) -> String {
    if name.is_ascii() {
        return name.bytes().filter(u8::is_ascii_alphabetic).map(|b| char::from(b.to_ascii_lowercase())).collect();
    }
    fold_accents(name).chars().filter(char::is_ascii_alphabetic).map(|c| c.to_ascii_lowercase()).collect()
}

/// A keyed permutation of `0..n` (`n` up to 2^32): invertible multiply-xorshift rounds on the
/// smallest power of two above `n`, repeated until the value falls in range (cycle walking).
fn permute(index: u64, n: u64, key: u64) -> u64 {
    let bits = 64 - n.saturating_sub(1).leading_zeros().min(63);
    let mask = (1u64 << bits) - 1;
    let mut x = index & mask;
    loop {
        x = (x ^ key) & mask;
        x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15) & mask;
        x ^= x >> (bits / 2).max(1);
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9) & mask;
        x ^= x >> (bits / 2 + 1);
        if x < n {
            return x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_is_a_bijection() {
        for n in [1, 2, 10, 1_000, 4_096, 100_003] {
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let x = permute(i, n, 12_345);
                assert!(x < n);
                assert!(!seen[x as usize], "{x} twice for n = {n}");
                seen[x as usize] = true;
            }
        }
    }
}
