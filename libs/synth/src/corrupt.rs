//! How a channel captures a person: the kinds of error real customer files contain, and how often.

use std::borrow::Cow;

use rand::RngExt;
use rand::seq::IndexedRandom;

use crate::address::Address;
use crate::files::Record;
use crate::formats::{Conventions, DateFormat, PhoneFormat, REFERENCE_DATE, is_valid_date};
use crate::noise::{case_whitespace, neighbour, phonetic, typo};
use crate::places::SUFFIXES;
use crate::population::MOBILE_PREFIXES;
use crate::tables::TABLES;
use crate::{Person, SynthRng, chance};

/// How often each kind of error appears in a captured record.
///
/// Every rate is the probability (0 to 1) that one captured record gets that error, drawn
/// independently. With the [`Default`] rates a duplicate differs from an exact capture in 1.6 of
/// its eight fields on average (none 20%, one 34%, two 25%, three 12%, more 9%), so most
/// duplicates still share several fields exactly, as in real customer files.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Corruption {
    /// A typing error in the given or family name (insertion, deletion, neighbouring-key or
    /// random substitution, adjacent transposition). Default 0.12.
    pub name_typo: f64,
    /// A name spelt by ear: ph/f, c/k, y/i/ie, doubled/single letters, son/sen, Mac/Mc, silent
    /// final e, dropped accents. Default 0.06.
    pub phonetic: f64,
    /// Given and family names swapped. Default 0.015.
    pub name_swap: f64,
    /// A nickname instead of the given name ("Bill" for "William"), when it has one. Default 0.10.
    pub nickname: f64,
    /// Birth day and month transposed, when the day is 12 or less and differs from the month.
    /// Default 0.03.
    pub birth_day_month_swap: f64,
    /// One wrong digit in the birth date (still a real date). Default 0.03.
    pub birth_date_digit: f64,
    /// The birth date written in another format than the file's usual one. Default 0.15.
    pub birth_date_format: f64,
    /// Captured at another address (moved house): new street, postcode and town. Default 0.08.
    pub moved: f64,
    /// Given a move, the share that also changed phone number. Default 0.4.
    pub moved_new_phone: f64,
    /// Each field left blank, independently (names, birth date, email, phone, address, postcode,
    /// town). Default 0.03.
    pub missing_field: f64,
    /// A different email: another provider, changed case, a typo, or none given. Default 0.10.
    pub email_variant: f64,
    /// The phone number typed in another format ("07700 900123", "+44 (0)7700 900123", ...).
    /// Default 0.30.
    pub phone_format: f64,
    /// One wrong digit in the phone number. Default 0.02.
    pub phone_digit: f64,
    /// One wrong character in the postcode. Default 0.02.
    pub postcode_error: f64,
    /// Case and whitespace noise in one text field ("SMITH", "smith", "  Smith "). Default 0.12.
    pub case_whitespace: f64,
    /// The address line written differently: abbreviated suffix ("Rd"), comma after the number,
    /// lower case. Default 0.20.
    pub address_style: f64,
    /// First captures (a person's only row in a file, or the original a duplicate copies; all of
    /// file A in [`link_files`](crate::link_files)) get errors at this fraction of the rates
    /// above, as real originals are not perfectly clean either. Default 0.25; 0 keeps them exact.
    pub first_capture_scale: f64,
}

impl Default for Corruption {
    fn default() -> Self {
        Self {
            name_typo: 0.12,
            phonetic: 0.06,
            name_swap: 0.015,
            nickname: 0.10,
            birth_day_month_swap: 0.03,
            birth_date_digit: 0.03,
            birth_date_format: 0.15,
            moved: 0.08,
            moved_new_phone: 0.4,
            missing_field: 0.03,
            email_variant: 0.10,
            phone_format: 0.30,
            phone_digit: 0.02,
            postcode_error: 0.02,
            case_whitespace: 0.12,
            address_style: 0.20,
            first_capture_scale: 0.25,
        }
    }
}

impl Corruption {
    /// No errors at all: every record is an exact capture in the file's own formats.
    pub fn none() -> Self {
        Self {
            name_typo: 0.0,
            phonetic: 0.0,
            name_swap: 0.0,
            nickname: 0.0,
            birth_day_month_swap: 0.0,
            birth_date_digit: 0.0,
            birth_date_format: 0.0,
            moved: 0.0,
            moved_new_phone: 0.0,
            missing_field: 0.0,
            email_variant: 0.0,
            phone_format: 0.0,
            phone_digit: 0.0,
            postcode_error: 0.0,
            case_whitespace: 0.0,
            address_style: 0.0,
            first_capture_scale: 0.0,
        }
    }

    /// Every error rate multiplied by `factor` (conditional shares and the first-capture scale
    /// are kept), clamped to 0..=1.
    pub fn scaled(&self, factor: f64) -> Self {
        let s = |rate: f64| (rate * factor).clamp(0.0, 1.0);
        Self {
            name_typo: s(self.name_typo),
            phonetic: s(self.phonetic),
            name_swap: s(self.name_swap),
            nickname: s(self.nickname),
            birth_day_month_swap: s(self.birth_day_month_swap),
            birth_date_digit: s(self.birth_date_digit),
            birth_date_format: s(self.birth_date_format),
            moved: s(self.moved),
            moved_new_phone: self.moved_new_phone,
            missing_field: s(self.missing_field),
            email_variant: s(self.email_variant),
            phone_format: s(self.phone_format),
            phone_digit: s(self.phone_digit),
            postcode_error: s(self.postcode_error),
            case_whitespace: s(self.case_whitespace),
            address_style: s(self.address_style),
            first_capture_scale: self.first_capture_scale,
        }
    }

    /// The rates applied to first captures.
    pub(crate) fn first_capture(&self) -> Self {
        self.scaled(self.first_capture_scale)
    }
}

/// A record of `person` as a channel with the given conventions captured it, with errors drawn
/// at the rates of `corruption`. The record id is left empty for the file to assign.
pub(crate) fn capture(person: &Person, conventions: Conventions, c: &Corruption, rng: &mut SynthRng) -> Record {
    // Fields stay borrowed from the truth unless an error changes them.
    let mut given = Cow::Borrowed(person.given_name.as_str());
    let mut family = Cow::Borrowed(person.family_name.as_str());
    let mut house_number = Cow::Borrowed(person.house_number.as_str());
    let mut street = Cow::Borrowed(person.street.as_str());
    let mut postcode = Cow::Borrowed(person.postcode.as_str());
    let mut city = Cow::Borrowed(person.city.as_str());
    let mut phone = Cow::Borrowed(person.phone.strip_prefix("+44").unwrap_or(&person.phone));

    if chance(rng, c.moved) {
        let address = Address::random(rng);
        house_number = Cow::Owned(address.house_number());
        street = Cow::Owned(address.street());
        postcode = Cow::Owned(address.postcode());
        city = Cow::Borrowed(address.city());
        if chance(rng, c.moved_new_phone) {
            let prefix = MOBILE_PREFIXES.choose(rng).copied().unwrap_or(77);
            phone = Cow::Owned(format!("{prefix}{:08}", rng.random_range(0..100_000_000u64)));
        }
    }

    // Names.
    if chance(rng, c.nickname)
        && let Some(short) = TABLES.nicknames.get(&*given).and_then(|n| n.choose(rng))
    {
        given = Cow::Borrowed(short);
    }
    if chance(rng, c.phonetic) {
        let name = if chance(rng, 0.5) { &mut given } else { &mut family };
        if let Some(spelt) = phonetic(name, rng) {
            *name = Cow::Owned(spelt);
        }
    }
    if chance(rng, c.name_typo) {
        let name = if chance(rng, 0.5) { &mut given } else { &mut family };
        *name = Cow::Owned(typo(name, rng));
    }
    if chance(rng, c.name_swap) {
        std::mem::swap(&mut given, &mut family);
    }

    // Birth date.
    let (year, mut month, mut day) = person.birth_date;
    if chance(rng, c.birth_day_month_swap) && day <= 12 && day != month {
        std::mem::swap(&mut month, &mut day);
    }
    let mut birth = (year, month, day);
    if chance(rng, c.birth_date_digit) {
        birth = wrong_date_digit(birth, rng);
    }
    let date_format = if chance(rng, c.birth_date_format) {
        other(&DateFormat::ALL, conventions.date, rng)
    } else {
        conventions.date
    };
    let birth_date = date_format.write(birth);

    // Email.
    let mut email = Some(Cow::Borrowed(person.email.as_str()));
    if chance(rng, c.email_variant) {
        email = email_variant(&person.email, rng).map(Cow::Owned);
    }

    // Phone.
    if chance(rng, c.phone_digit) {
        phone = Cow::Owned(wrong_digit(&phone, 1, rng));
    }
    let phone_format =
        if chance(rng, c.phone_format) { other(&PhoneFormat::ALL, conventions.phone, rng) } else { conventions.phone };
    let phone = phone_format.write(&phone);

    // Address.
    let mut address_line = if chance(rng, c.address_style) {
        address_style(&house_number, &street, rng)
    } else {
        format!("{house_number} {street}")
    };
    if chance(rng, c.postcode_error) {
        postcode = Cow::Owned(postcode_error(&postcode, rng));
    }

    if chance(rng, c.case_whitespace) {
        match rng.random_range(0..5u32) {
            0 => given = Cow::Owned(case_whitespace(&given, rng)),
            1 => family = Cow::Owned(case_whitespace(&family, rng)),
            2 => address_line = case_whitespace(&address_line, rng),
            3 => city = Cow::Owned(case_whitespace(&city, rng)),
            // Postcodes are mangled in their own ways: lower case, or the space dropped.
            _ => {
                postcode =
                    Cow::Owned(if chance(rng, 0.5) { postcode.to_lowercase() } else { postcode.replace(' ', "") })
            }
        }
    }

    let mut keep = |value: Cow<'_, str>| (!chance(rng, c.missing_field)).then(|| value.into_owned());
    Record {
        record_id: String::new(),
        entity_id: person.entity_id,
        given_name: keep(given),
        family_name: keep(family),
        birth_date: keep(Cow::Owned(birth_date)),
        email: email.and_then(&mut keep),
        phone: keep(Cow::Owned(phone)),
        address_line: keep(Cow::Owned(address_line)),
        postcode: keep(postcode),
        city: keep(city),
    }
}

/// An element of `all` other than `current`.
fn other<T: Copy + PartialEq>(all: &[T], current: T, rng: &mut SynthRng) -> T {
    let at = all.iter().position(|f| *f == current).unwrap_or(0);
    all[(at + rng.random_range(1..all.len())) % all.len()]
}

/// `digits` with one digit (at `from` or later) replaced by a different one.
fn wrong_digit(digits: &str, from: usize, rng: &mut SynthRng) -> String {
    let mut bytes = digits.as_bytes().to_vec();
    if bytes.len() <= from {
        return digits.to_owned();
    }
    let at = rng.random_range(from..bytes.len());
    if bytes[at].is_ascii_digit() {
        bytes[at] = b'0' + (bytes[at] - b'0' + rng.random_range(1..10u8)) % 10;
    }
    String::from_utf8(bytes).unwrap_or_else(|_| digits.to_owned())
}

/// The date with one mistyped digit (day, month or the last two of the year), still a real,
/// past date; unchanged if a few tries find none.
fn wrong_date_digit(date: (i32, u32, u32), rng: &mut SynthRng) -> (i32, u32, u32) {
    let (year, month, day) = date;
    let digits = format!("{year:04}{month:02}{day:02}");
    for _ in 0..8 {
        // Skip the century: "19" is rarely mistyped.
        let typed = wrong_digit(&digits, 2, rng);
        let parse = |range: std::ops::Range<usize>| typed[range].parse::<u32>().unwrap_or(0);
        let (y, m, d) = (parse(0..4) as i32, parse(4..6), parse(6..8));
        if is_valid_date(y, m, d) && y <= REFERENCE_DATE.0 {
            return (y, m, d);
        }
    }
    date
}

/// Another version of an email address: another provider, other case, a typo, or none.
fn email_variant(email: &str, rng: &mut SynthRng) -> Option<String> {
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    match rng.random_range(0..100u32) {
        0..35 => {
            let mut other = TABLES.domain(rng);
            for _ in 0..8 {
                if other != domain {
                    break;
                }
                other = TABLES.domain(rng);
            }
            Some(format!("{local}@{other}"))
        }
        35..60 => {
            if chance(rng, 0.3) {
                return Some(email.to_uppercase());
            }
            // Capitalised parts: "John.Smith@Gmail.com".
            let mut capitalised = String::with_capacity(email.len());
            let (mut start, mut in_domain) = (true, false);
            for c in email.chars() {
                capitalised.push(if start { c.to_ascii_uppercase() } else { c });
                start = c == '@' || (!in_domain && matches!(c, '.' | '_'));
                in_domain |= c == '@';
            }
            Some(capitalised)
        }
        60..85 => {
            if chance(rng, 0.65) || domain.is_empty() {
                Some(format!("{}@{domain}", typo(local, rng)))
            } else {
                let (name, tld) = domain.split_once('.').unwrap_or((domain, "com"));
                Some(format!("{local}@{}.{tld}", typo(name, rng)))
            }
        }
        _ => None,
    }
}

/// The address line in another style: "12 Acacia Ave", "12, Acacia Avenue", "12, acacia ave".
fn address_style(house_number: &str, street: &str, rng: &mut SynthRng) -> String {
    let abbreviated = street.rsplit_once(' ').and_then(|(head, last)| {
        let (_, short, _) = SUFFIXES.iter().find(|s| s.0 == last)?;
        short.map(|short| format!("{head} {short}"))
    });
    match (rng.random_range(0..100u32), abbreviated) {
        (0..50, Some(short)) => format!("{house_number} {short}"),
        (50..60, Some(short)) => format!("{house_number} {short}."),
        (60..80, Some(short)) => format!("{house_number}, {}", short.to_lowercase()),
        _ => format!("{house_number}, {street}"),
    }
}

/// The postcode with one character wrong: a digit mistyped or a letter replaced by a
/// neighbouring key.
fn postcode_error(postcode: &str, rng: &mut SynthRng) -> String {
    let positions: Vec<usize> =
        postcode.char_indices().filter(|(_, c)| c.is_ascii_alphanumeric()).map(|(i, _)| i).collect();
    let Some(&at) = positions.choose(rng) else { return postcode.to_owned() };
    let c = postcode.as_bytes()[at];
    let replacement = if c.is_ascii_digit() {
        char::from(b'0' + (c - b'0' + rng.random_range(1..10u8)) % 10)
    } else {
        neighbour(char::from(c), rng).to_ascii_uppercase()
    };
    let mut out = String::with_capacity(postcode.len());
    out.push_str(&postcode[..at]);
    out.push(replacement);
    out.push_str(&postcode[at + 1..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{population, rng_for};

    const CONVENTIONS: Conventions = Conventions { date: DateFormat::Iso, phone: PhoneFormat::NationalSpaced };

    /// How many of a record's eight captured fields differ from an exact capture.
    fn differing_fields(record: &Record, exact: &Record) -> usize {
        [
            (&record.given_name, &exact.given_name),
            (&record.family_name, &exact.family_name),
            (&record.birth_date, &exact.birth_date),
            (&record.email, &exact.email),
            (&record.phone, &exact.phone),
            (&record.address_line, &exact.address_line),
            (&record.postcode, &exact.postcode),
            (&record.city, &exact.city),
        ]
        .iter()
        .filter(|(a, b)| a != b)
        .count()
    }

    #[test]
    fn a_typical_duplicate_differs_in_one_to_three_fields() {
        let people = population(5, 20_000).people;
        let mut rng = rng_for(6, 0);
        let mut histogram = [0usize; 9];
        for person in &people {
            let exact = capture(person, CONVENTIONS, &Corruption::none(), &mut rng);
            let duplicate = capture(person, CONVENTIONS, &Corruption::default(), &mut rng);
            histogram[differing_fields(&duplicate, &exact)] += 1;
        }
        let n = people.len() as f64;
        let share = |range: std::ops::RangeInclusive<usize>| histogram[range].iter().sum::<usize>() as f64 / n;
        let mean = histogram.iter().enumerate().map(|(k, &c)| (k * c) as f64).sum::<f64>() / n;
        assert!((1.0..2.0).contains(&mean), "mean differing fields {mean}: {histogram:?}");
        assert!(share(1..=3) > 0.6, "{histogram:?}");
        assert!(share(0..=3) > 0.9, "most duplicates share five fields or more: {histogram:?}");
        assert!(share(0..=0) < 0.3, "{histogram:?}");
    }

    #[test]
    fn first_captures_are_nearly_clean() {
        let people = population(5, 5_000).people;
        let mut rng = rng_for(7, 0);
        let first = Corruption::default().first_capture();
        let clean = people
            .iter()
            .filter(|p| {
                let exact = capture(p, CONVENTIONS, &Corruption::none(), &mut rng);
                differing_fields(&capture(p, CONVENTIONS, &first, &mut rng), &exact) == 0
            })
            .count();
        assert!(clean as f64 / people.len() as f64 > 0.6, "{clean} clean first captures");
    }

    #[test]
    fn each_kind_of_error_shows_up() {
        let people = population(9, 2_000).people;
        let mut rng = rng_for(10, 0);
        // Nicknames replace given names that have one.
        let william = people.iter().find(|p| p.given_name == "William").expect("a William among 2,000 people");
        let nicknamed = capture(william, CONVENTIONS, &Corruption { nickname: 1.0, ..Corruption::none() }, &mut rng);
        assert!(["Bill", "Will", "Billy", "Liam"].contains(&nicknamed.given_name.as_deref().unwrap_or("")));
        // Swapped names.
        let p = &people[0];
        let swapped = capture(p, CONVENTIONS, &Corruption { name_swap: 1.0, ..Corruption::none() }, &mut rng);
        assert_eq!(swapped.given_name.as_deref(), Some(p.family_name.as_str()));
        // Day and month transposed when the day could be a month.
        let early = people.iter().find(|p| p.birth_date.2 <= 12 && p.birth_date.2 != p.birth_date.1);
        let early = early.expect("someone born on day 1 to 12");
        let transposed =
            capture(early, CONVENTIONS, &Corruption { birth_day_month_swap: 1.0, ..Corruption::none() }, &mut rng);
        let (y, m, d) = early.birth_date;
        assert_eq!(transposed.birth_date, Some(format!("{y:04}-{d:02}-{m:02}")));
        // Everything missing.
        let blank = capture(p, CONVENTIONS, &Corruption { missing_field: 1.0, ..Corruption::none() }, &mut rng);
        assert_eq!(blank.given_name.or(blank.email).or(blank.city), None);
        // Abbreviated or restyled address.
        let styled = capture(p, CONVENTIONS, &Corruption { address_style: 1.0, ..Corruption::none() }, &mut rng);
        assert_ne!(styled.address_line, Some(format!("{} {}", p.house_number, p.street)));
    }
}
