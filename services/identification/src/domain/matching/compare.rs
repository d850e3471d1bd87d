//! Comparison of two match records, field by field, into similarity levels: the
//! comparison vector the Fellegi–Sunter model weighs. Level 0 of every field is
//! "missing" (one side has no value), which the model treats as neutral.

use super::record::{Address, Birth, Email, MatchRecord, Name};
use super::text::jaro_winkler;

/// The compared fields, in comparison-vector order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// Given name.
    GivenName = 0,
    /// Family name.
    FamilyName = 1,
    /// Birth date.
    BirthDate = 2,
    /// Email addresses.
    Email = 3,
    /// Phone numbers.
    Phone = 4,
    /// Postal address: house, street, postcode, city together (they move together).
    Location = 5,
    /// National identity numbers.
    NationalId = 6,
}

/// Number of compared fields.
pub const FIELD_COUNT: usize = 7;
/// Most levels a field has (including "missing").
pub const MAX_LEVELS: usize = 7;

impl Field {
    /// Every field, in vector order.
    pub const ALL: [Field; FIELD_COUNT] = [
        Field::GivenName,
        Field::FamilyName,
        Field::BirthDate,
        Field::Email,
        Field::Phone,
        Field::Location,
        Field::NationalId,
    ];

    /// The field's name in the API's evidence.
    pub fn name(self) -> &'static str {
        match self {
            Field::GivenName => "given_name",
            Field::FamilyName => "family_name",
            Field::BirthDate => "birth_date",
            Field::Email => "email",
            Field::Phone => "phone",
            Field::Location => "postal_address",
            Field::NationalId => "national_id",
        }
    }

    /// The names of the field's levels, index = level ("missing" first, most similar next).
    pub fn levels(self) -> &'static [&'static str] {
        match self {
            Field::GivenName => &[
                "missing",
                "exact",
                "nickname",
                "jaro_winkler_0.92",
                "phonetic_or_jaro_winkler_0.80",
                "initial",
                "different",
            ],
            Field::FamilyName => {
                &["missing", "exact", "jaro_winkler_0.92", "phonetic_or_jaro_winkler_0.80", "different"]
            }
            Field::BirthDate => &["missing", "exact", "transposed_day_month", "one_part_differs", "different"],
            Field::Email => &["missing", "exact", "same_local_part_or_typo", "different"],
            Field::Phone => &["missing", "exact", "one_digit_differs", "different"],
            Field::Location => {
                &["missing", "same_address", "same_address_fuzzy", "same_postcode", "same_area_or_city", "different"]
            }
            Field::NationalId => &["missing", "exact", "conflict"],
        }
    }

    /// Number of levels of the field.
    pub fn level_count(self) -> usize {
        self.levels().len()
    }
}

/// The outcome of comparing two records: a level per field, the hashes of names
/// that agreed exactly (for frequency adjustment), and whether names were swapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Comparison {
    /// Level per field, in [`Field::ALL`] order.
    pub levels: [u8; FIELD_COUNT],
    /// Hash of the given name both records share exactly.
    pub given_value: Option<u64>,
    /// Hash of the family name both records share exactly.
    pub family_value: Option<u64>,
    /// The names agree best with given and family swapped on one side.
    pub swapped_names: bool,
}

impl Comparison {
    /// The level of `field`.
    pub fn level(&self, field: Field) -> u8 {
        self.levels[field as usize]
    }
}

/// Compares `a` with `b`. Names are compared both ways round (given/family swapped
/// on one side); `prefer_swapped` decides which orientation counts, given both.
pub fn compare(
    a: &MatchRecord,
    b: &MatchRecord,
    prefer_swapped: impl Fn(&Comparison, &Comparison) -> bool,
) -> Comparison {
    let mut levels = [0u8; FIELD_COUNT];
    levels[Field::BirthDate as usize] = birth_level(a.birth, b.birth);
    levels[Field::Email as usize] = email_level(&a.emails, &b.emails);
    levels[Field::Phone as usize] = phone_level(&a.phones, &b.phones);
    levels[Field::Location as usize] = location_level(&a.addresses, &b.addresses);
    levels[Field::NationalId as usize] = national_id_level(&a.national_ids, &b.national_ids);
    let mut straight = Comparison { levels, ..Comparison::default() };
    set_names(&mut straight, a.given.as_ref(), a.family.as_ref(), b.given.as_ref(), b.family.as_ref());
    let straight_exact = straight.level(Field::GivenName) == 1 && straight.level(Field::FamilyName) == 1;
    // Swapping can only help when a name of one side sounds like the other field's.
    let swappable = match (&a.given, &a.family, &b.given, &b.family) {
        (Some(ag), Some(af), Some(bg), Some(bf)) => ag.soundex == bf.soundex || af.soundex == bg.soundex,
        _ => false,
    };
    if straight_exact || !swappable {
        return straight;
    }
    let mut swapped = Comparison { levels, swapped_names: true, ..Comparison::default() };
    set_names(&mut swapped, a.given.as_ref(), a.family.as_ref(), b.family.as_ref(), b.given.as_ref());
    if prefer_swapped(&straight, &swapped) { swapped } else { straight }
}

fn set_names(
    out: &mut Comparison,
    given_a: Option<&Name>,
    family_a: Option<&Name>,
    given_b: Option<&Name>,
    family_b: Option<&Name>,
) {
    let (given, given_value) = given_level(given_a, given_b);
    let (family, family_value) = family_level(family_a, family_b);
    out.levels[Field::GivenName as usize] = given;
    out.levels[Field::FamilyName as usize] = family;
    out.given_value = given_value;
    out.family_value = family_value;
}

fn given_level(a: Option<&Name>, b: Option<&Name>) -> (u8, Option<u64>) {
    let (Some(a), Some(b)) = (a, b) else { return (0, None) };
    // 64-bit hashes of equal length names: equal hashes mean equal names.
    if a.hash == b.hash {
        return (1, Some(a.hash));
    }
    if a.nicknames & b.nicknames != 0 {
        return (2, None);
    }
    let (x, y) = (a.text.as_bytes(), b.text.as_bytes());
    if x.len() == 1 || y.len() == 1 {
        return (if x[0] == y[0] { 5 } else { 6 }, None);
    }
    let jw = jaro_winkler(x, y);
    if jw >= 0.92 {
        (3, None)
    } else if jw >= 0.80 || a.soundex == b.soundex {
        (4, None)
    } else {
        (6, None)
    }
}

fn family_level(a: Option<&Name>, b: Option<&Name>) -> (u8, Option<u64>) {
    let (Some(a), Some(b)) = (a, b) else { return (0, None) };
    // 64-bit hashes of equal length names: equal hashes mean equal names.
    if a.hash == b.hash {
        return (1, Some(a.hash));
    }
    let jw = jaro_winkler(a.text.as_bytes(), b.text.as_bytes());
    if jw >= 0.92 {
        (2, None)
    } else if jw >= 0.80 || a.soundex == b.soundex {
        (3, None)
    } else {
        (4, None)
    }
}

fn birth_level(a: Option<Birth>, b: Option<Birth>) -> u8 {
    let (Some(a), Some(b)) = (a, b) else { return 0 };
    let year_same = a.year == b.year || a.year == 0 || b.year == 0;
    if year_same && a.month == b.month && a.day == b.day {
        return 1;
    }
    if year_same && a.month == b.day && a.day == b.month {
        return 2;
    }
    let agreeing =
        usize::from(a.year == b.year && a.year != 0) + usize::from(a.month == b.month) + usize::from(a.day == b.day);
    if agreeing == 2 { 3 } else { 4 }
}

fn email_level(a: &[Email], b: &[Email]) -> u8 {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    let mut best = 3;
    for x in a {
        for y in b {
            if x.hash == y.hash {
                return 1;
            }
            // The same local part elsewhere, or a one-character typo at the same provider.
            if best > 2
                && (x.local_hash == y.local_hash
                    || (x.domain_hash == y.domain_hash
                        && x.len.abs_diff(y.len) <= 1
                        && (x.letters ^ y.letters).count_ones() <= 2
                        && within_one_edit(x.text.as_bytes(), y.text.as_bytes())))
            {
                best = 2;
            }
        }
    }
    best
}

/// Whether `a` becomes `b` by at most one insertion, deletion, substitution or swap of
/// two adjacent characters.
fn within_one_edit(a: &[u8], b: &[u8]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let prefix = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    if prefix == short.len() {
        return true;
    }
    if short.len() == long.len() {
        let (x, y) = (&short[prefix + 1..], &long[prefix + 1..]);
        // A substitution, or two adjacent characters swapped.
        x == y
            || (prefix + 1 < short.len()
                && short[prefix] == long[prefix + 1]
                && short[prefix + 1] == long[prefix]
                && short[prefix + 2..] == long[prefix + 2..])
    } else {
        // An insertion into the shorter one.
        short[prefix..] == long[prefix + 1..]
    }
}

fn phone_level(a: &[u64], b: &[u64]) -> u8 {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    let mut best = 3;
    for &x in a {
        for &y in b {
            if x == y {
                return 1;
            }
            if one_digit_apart(x, y) {
                best = 2;
            }
        }
    }
    best
}

/// Same number of digits with one digit different, or two adjacent digits swapped.
fn one_digit_apart(mut x: u64, mut y: u64) -> bool {
    let mut diffs = [0u8; 3];
    let mut count = 0usize;
    let mut position = 0u8;
    while x > 0 && y > 0 {
        if x % 10 != y % 10 {
            if count == 3 {
                return false;
            }
            diffs[count] = position;
            count += 1;
        }
        x /= 10;
        y /= 10;
        position += 1;
    }
    if x != y {
        return false; // different lengths
    }
    count == 1 || (count == 2 && diffs[1] == diffs[0] + 1)
}

fn location_level(a: &[Address], b: &[Address]) -> u8 {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    let mut best = 5;
    for x in a {
        for y in b {
            best = best.min(address_level(x, y));
            if best == 1 {
                return 1;
            }
        }
    }
    best
}

fn address_level(x: &Address, y: &Address) -> u8 {
    let postcode_agrees = x.postcode == y.postcode || x.postcode == 0 || y.postcode == 0;
    let both_postcodes = x.postcode != 0 && y.postcode != 0;
    let line_known = x.line_hash != 0 && y.line_hash != 0;
    if line_known && x.line_hash == y.line_hash && postcode_agrees {
        return 1;
    }
    let nearby = postcode_agrees || x.area == y.area || (x.city != 0 && x.city == y.city);
    // Jaro–Winkler only where it can decide (most pairs differ in the house number).
    let similar_street = || {
        !x.street.is_empty() && !y.street.is_empty() && jaro_winkler(x.street.as_bytes(), y.street.as_bytes()) >= 0.88
    };
    let same_house = !x.house.is_empty() && x.house == y.house;
    if same_house && similar_street() {
        return if nearby { 2 } else { 3 };
    }
    if both_postcodes && x.postcode == y.postcode {
        return 3;
    }
    // The same street where one side lacks the house number.
    if (x.house.is_empty() || y.house.is_empty()) && nearby && similar_street() {
        return 3;
    }
    if (both_postcodes && x.area == y.area) || (x.city != 0 && x.city == y.city) {
        return 4;
    }
    5
}

fn national_id_level(a: &[u64], b: &[u64]) -> u8 {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    if a.iter().any(|x| b.contains(x)) { 1 } else { 2 }
}

#[cfg(test)]
mod tests {
    use super::super::record::Subject;
    use super::*;

    fn record(given: &str, family: &str, birth: Option<(u16, u8, u8)>) -> MatchRecord {
        MatchRecord::new(&Subject {
            given_name: given.into(),
            family_name: family.into(),
            birth_date: birth.map(|(y, m, d)| (Some(y), m, d)),
            ..Subject::default()
        })
    }

    fn never_swap(_: &Comparison, _: &Comparison) -> bool {
        false
    }

    #[test]
    fn name_levels() {
        let a = record("William", "Smith", None);
        let level = |b: &MatchRecord| {
            let c = compare(&a, b, never_swap);
            (c.level(Field::GivenName), c.level(Field::FamilyName))
        };
        assert_eq!(level(&record("william", "SMITH", None)), (1, 1));
        assert_eq!(level(&record("Bill", "Smiht", None)), (2, 2));
        assert_eq!(level(&record("Willaim", "Smyth", None)), (3, 3));
        assert_eq!(level(&record("W", "Jones", None)), (5, 4));
        assert_eq!(level(&record("Robert", "", None)), (6, 0));
    }

    #[test]
    fn swapped_names_are_recognised_when_preferred() {
        let a = record("Smith", "William", None);
        let b = record("William", "Smith", None);
        let c = compare(&a, &b, |_, _| true);
        assert!(c.swapped_names);
        assert_eq!((c.level(Field::GivenName), c.level(Field::FamilyName)), (1, 1));
    }

    #[test]
    fn birth_date_levels() {
        let a = record("", "", Some((1984, 3, 7)));
        let level = |b| compare(&a, &record("", "", b), never_swap).level(Field::BirthDate);
        assert_eq!(level(Some((1984, 3, 7))), 1);
        assert_eq!(level(Some((1984, 7, 3))), 2);
        assert_eq!(level(Some((1985, 3, 7))), 3);
        assert_eq!(level(Some((1990, 1, 1))), 4);
        assert_eq!(level(None), 0);
    }

    #[test]
    fn one_edit_apart() {
        assert!(within_one_edit(b"ada@x.org", b"ada@x.org"));
        assert!(within_one_edit(b"ada@x.org", b"adda@x.org"));
        assert!(within_one_edit(b"ada@x.org", b"ad@x.org"));
        assert!(within_one_edit(b"ada@x.org", b"aba@x.org"));
        assert!(within_one_edit(b"ada@x.org", b"daa@x.org"));
        assert!(!within_one_edit(b"ada@x.org", b"dab@x.org"));
        assert!(!within_one_edit(b"ada@x.org", b"adaaa@x.org"));
    }

    #[test]
    fn phone_digit_distance() {
        assert!(one_digit_apart(1_447_700_900_123, 1_447_700_900_124));
        assert!(one_digit_apart(1_447_700_900_123, 1_447_700_900_213));
        assert!(!one_digit_apart(1_447_700_900_123, 1_447_700_900_321));
        assert!(!one_digit_apart(1_447_700_900_123, 144_770_090_012));
    }

    #[test]
    fn location_levels() {
        let with_address =
            |addr: &str| MatchRecord::new(&Subject { addresses: vec![addr.into()], ..Subject::default() });
        let a = with_address("12 acacia avenue, sw1a 1aa, london");
        let level = |addr: &str| compare(&a, &with_address(addr), never_swap).level(Field::Location);
        assert_eq!(level("12 Acacia Ave, SW1A 1AA, London"), 1);
        assert_eq!(level("12 Acasia Avenue, SW1A 1AA, London"), 2);
        assert_eq!(level("14 Acacia Avenue, SW1A 1AA, London"), 3);
        assert_eq!(level("3 Other Road, SW1A 2BB, London"), 4);
        assert_eq!(level("3 Other Road, M1 1AE, Manchester"), 5);
    }
}
