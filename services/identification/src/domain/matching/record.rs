//! What the matcher knows about one customer or contact: names, birth date and
//! identifiers, folded and hashed once so that comparing two records is cheap.

use std::hash::{BuildHasher as _, Hasher as _};

use smallvec::SmallVec;

use super::text::{self, AddressParts};
use crate::domain::{BirthDate, DateOrder, Identifier, IdentifierKind, identifier};

/// What is known about a person, as the service holds it (identifiers normalised).
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// Given name as written.
    pub given_name: String,
    /// Family name as written.
    pub family_name: String,
    /// Birth date: year (when known), month, day.
    pub birth_date: Option<(Option<u16>, u8, u8)>,
    /// Normalised email addresses.
    pub emails: Vec<String>,
    /// Normalised phone numbers (E.164).
    pub phones: Vec<String>,
    /// Postal addresses (canonical form).
    pub addresses: Vec<String>,
    /// National identity numbers.
    pub national_ids: Vec<String>,
}

impl Subject {
    /// What a customer record (names, birth date, normalised identifiers) tells the matcher.
    pub fn of(given_name: &str, family_name: &str, birth_date: Option<BirthDate>, identifiers: &[Identifier]) -> Self {
        let mut subject = Subject {
            given_name: given_name.to_owned(),
            family_name: family_name.to_owned(),
            birth_date: birth_date.map(|b| (b.year, b.month, b.day)),
            ..Subject::default()
        };
        for identifier in identifiers {
            let list = match identifier.kind {
                IdentifierKind::Email => &mut subject.emails,
                IdentifierKind::Phone => &mut subject.phones,
                IdentifierKind::PostalAddress => &mut subject.addresses,
                IdentifierKind::NationalId => &mut subject.national_ids,
                _ => continue,
            };
            list.push(identifier.value.clone());
        }
        subject
    }
}

/// One row of a customer file as text, before any checking.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawFields<'a> {
    /// Given name.
    pub given_name: &'a str,
    /// Family name.
    pub family_name: &'a str,
    /// Birth date in any of the shapes [`BirthDate::parse_text`] reads.
    pub birth_date: &'a str,
    /// Email address.
    pub email: &'a str,
    /// Phone number, national or international.
    pub phone: &'a str,
    /// Postal address in one line.
    pub address: &'a str,
    /// Country calling code for national phone numbers ("44").
    pub phone_region: &'a str,
    /// How to read numeric dates.
    pub date_order: DateOrder,
}

impl Subject {
    /// What a row of text tells the matcher, normalised the way the service
    /// normalises identifiers; values that do not parse are left out.
    pub fn from_raw(raw: &RawFields<'_>) -> Self {
        let birth = BirthDate::parse_text(raw.birth_date, raw.date_order, chrono::Utc::now()).ok();
        let identifiers: Vec<Identifier> = [
            (IdentifierKind::Email, raw.email, ""),
            (IdentifierKind::Phone, raw.phone, raw.phone_region),
            (IdentifierKind::PostalAddress, raw.address, ""),
        ]
        .into_iter()
        .filter_map(|(kind, value, namespace)| identifier::normalize(kind, value, namespace).ok())
        .collect();
        Self::of(raw.given_name, raw.family_name, birth, &identifiers)
    }
}

/// Letters of a folded name kept inline (no pointer to follow when comparing).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NameText {
    bytes: [u8; text::MAX_NAME_BYTES],
    len: u8,
}

impl NameText {
    fn new(folded: &str) -> Self {
        let mut bytes = [0u8; text::MAX_NAME_BYTES];
        let len = folded.len().min(text::MAX_NAME_BYTES);
        bytes[..len].copy_from_slice(&folded.as_bytes()[..len]);
        Self { bytes, len: len as u8 }
    }

    /// The letters.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The letters as text.
    pub fn as_str(&self) -> &str {
        // Folded names are ASCII letters only.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl std::fmt::Debug for NameText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A folded name with its hash (for equality and frequency) and Soundex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// Lower-case ASCII letters.
    pub text: NameText,
    /// Hash of `text`.
    pub hash: u64,
    /// Soundex of `text`.
    pub soundex: u32,
    /// The nickname groups it belongs to ([`text::nickname_groups`]).
    pub nicknames: u128,
}

impl Name {
    fn new(raw: &str) -> Option<Self> {
        let folded = text::fold_name(raw);
        if folded.is_empty() {
            return None;
        }
        Some(Self {
            hash: hash_str(&folded),
            soundex: text::soundex(folded.as_bytes()),
            nicknames: text::nickname_groups(&folded),
            text: NameText::new(&folded),
        })
    }
}

/// A birth date packed for comparison; year 0 means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Birth {
    /// Year, 0 when unknown.
    pub year: u16,
    /// Month 1–12.
    pub month: u8,
    /// Day 1–31.
    pub day: u8,
}

/// An email with hashes of the whole address and of its local part.
#[derive(Debug, Clone)]
pub struct Email {
    /// The normalised address.
    pub text: Box<str>,
    /// Hash of the address.
    pub hash: u64,
    /// Hash of the part before `@`.
    pub local_hash: u64,
    /// Hash of the part after `@`.
    pub domain_hash: u64,
    /// Length of the address in bytes.
    pub len: u16,
    /// The characters of the address as a bit set (a–z, 0–9 folded onto 32 bits): one
    /// typo changes at most two bits, so most pairs are told apart without reading text.
    pub letters: u32,
}

/// A postal address in comparable parts.
#[derive(Debug, Clone)]
pub struct Address {
    /// House number ("12b"), empty when none.
    pub house: Box<str>,
    /// Street words without the spaces between them (typists move them).
    pub street: Box<str>,
    /// Hash of house number and street.
    pub line_hash: u64,
    /// Hash of the postcode, 0 when none.
    pub postcode: u64,
    /// Hash of the postcode area, 0 when none.
    pub area: u64,
    /// Hash of the city, 0 when none.
    pub city: u64,
}

/// A subject prepared for matching.
#[derive(Debug, Clone, Default)]
pub struct MatchRecord {
    /// Given name, if known.
    pub given: Option<Name>,
    /// Family name, if known.
    pub family: Option<Name>,
    /// Birth date, if known.
    pub birth: Option<Birth>,
    /// Email addresses (the first kept inline: comparing records reads no other memory).
    pub emails: SmallVec<[Email; 1]>,
    /// Phone numbers as their last 15 digits.
    pub phones: SmallVec<[u64; 2]>,
    /// Postal addresses.
    pub addresses: SmallVec<[Address; 1]>,
    /// Hashes of national identity numbers.
    pub national_ids: SmallVec<[u64; 1]>,
}

impl MatchRecord {
    /// Prepares `subject` for matching.
    pub fn new(subject: &Subject) -> Self {
        Self {
            given: Name::new(&subject.given_name),
            family: Name::new(&subject.family_name),
            birth: subject.birth_date.map(|(year, month, day)| Birth { year: year.unwrap_or(0), month, day }),
            emails: subject
                .emails
                .iter()
                .map(|e| {
                    let (local, domain) = e.rsplit_once('@').unwrap_or((e, ""));
                    Email {
                        hash: hash_str(e),
                        local_hash: hash_str(local),
                        domain_hash: hash_str(domain),
                        len: u16::try_from(e.len()).unwrap_or(u16::MAX),
                        letters: e.bytes().fold(0u32, |bits, b| bits | 1 << (b % 32)),
                        text: e.as_str().into(),
                    }
                })
                .collect(),
            phones: subject.phones.iter().filter_map(|p| phone_digits(p)).collect(),
            addresses: subject.addresses.iter().map(|a| Address::new(&text::parse_address(a))).collect(),
            national_ids: subject.national_ids.iter().map(|n| hash_str(n)).collect(),
        }
    }

    /// Whether there is nothing to match on.
    pub fn is_empty(&self) -> bool {
        self.given.is_none()
            && self.family.is_none()
            && self.birth.is_none()
            && self.emails.is_empty()
            && self.phones.is_empty()
            && self.addresses.is_empty()
            && self.national_ids.is_empty()
    }
}

impl Address {
    fn new(parts: &AddressParts) -> Self {
        let street = parts.street.replace(' ', "");
        let line = format!("{} {street}", parts.house_number);
        let opt_hash = |s: &str| if s.is_empty() { 0 } else { hash_str(s) };
        Self {
            line_hash: opt_hash(line.trim()),
            postcode: opt_hash(&parts.postcode),
            area: opt_hash(parts.postcode_area()),
            city: opt_hash(&parts.city),
            house: parts.house_number.as_str().into(),
            street: street.into(),
        }
    }
}

/// The digits of a phone number (at most the last 15) as a number; `None` without any.
fn phone_digits(phone: &str) -> Option<u64> {
    let digits: Vec<u8> = phone.bytes().filter(u8::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    let tail = &digits[digits.len().saturating_sub(15)..];
    // A leading 1 marks the length, so "0123" and "123" stay different.
    Some(tail.iter().fold(1u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// 64-bit hash of a string, the same in every process of a build (never stored).
pub fn hash_str(s: &str) -> u64 {
    let mut hasher = STABLE.build_hasher();
    hasher.write(s.as_bytes());
    hasher.finish()
}

/// SipHash with fixed keys.
static STABLE: std::hash::BuildHasherDefault<std::hash::DefaultHasher> = std::hash::BuildHasherDefault::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepares_a_subject() {
        let record = MatchRecord::new(&Subject {
            given_name: "Zoë".into(),
            family_name: " O'Neil ".into(),
            birth_date: Some((Some(1984), 3, 7)),
            emails: vec!["zoe@example.net".into()],
            phones: vec!["+447700900123".into()],
            addresses: vec!["12 acacia ave, sw1a 1aa, london".into()],
            national_ids: vec![],
        });
        assert_eq!(record.given.as_ref().map(|n| n.text.as_str()), Some("zoe"));
        assert_eq!(record.family.as_ref().map(|n| n.text.as_str()), Some("oneil"));
        assert_eq!(record.birth, Some(Birth { year: 1984, month: 3, day: 7 }));
        assert_eq!(record.phones.as_slice(), [1_447_700_900_123]);
        assert_eq!(&*record.addresses[0].street, "acaciaavenue");
        assert!(!record.is_empty());
        assert!(MatchRecord::new(&Subject::default()).is_empty());
    }

    #[test]
    fn hashes_are_stable() {
        // A stored hash must mean the same thing after a restart or upgrade.
        assert_eq!(hash_str("smith"), hash_str("smith"));
        assert_ne!(hash_str("smith"), hash_str("smyth"));
    }
}
