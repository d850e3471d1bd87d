//! Identifiers and their normalisation: the same email, phone or card number typed
//! differently by two channels must become the same value, and junk that would fuse
//! strangers (`test@test.com`, `0000`) is refused. Full phone and address parsing
//! (regions, house numbers) extends `normalize` per kind.

use serde::{Deserialize, Serialize};

/// The kinds of identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IdentifierKind {
    /// Email address.
    Email,
    /// Telephone number, E.164.
    Phone,
    /// Postal address.
    PostalAddress,
    /// Loyalty card number.
    LoyaltyCard,
    /// Bank or customer account number.
    AccountNumber,
    /// Device or cookie id.
    DeviceId,
    /// National identity number.
    NationalId,
    /// Id in an external system (namespace = the system).
    ExternalId,
}

impl IdentifierKind {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::PostalAddress => "postal_address",
            Self::LoyaltyCard => "loyalty_card",
            Self::AccountNumber => "account_number",
            Self::DeviceId => "device_id",
            Self::NationalId => "national_id",
            Self::ExternalId => "external_id",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "email" => Self::Email,
            "phone" => Self::Phone,
            "postal_address" => Self::PostalAddress,
            "loyalty_card" => Self::LoyaltyCard,
            "account_number" => Self::AccountNumber,
            "device_id" => Self::DeviceId,
            "national_id" => Self::NationalId,
            "external_id" => Self::ExternalId,
            _ => return None,
        })
    }
}

/// A normalised identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identifier {
    /// Its kind.
    pub kind: IdentifierKind,
    /// For external ids, the source system; empty otherwise.
    pub namespace: String,
    /// The normalised value.
    pub value: String,
}

/// Why a value is not an acceptable identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentifierError {
    /// Empty after trimming.
    Empty,
    /// Longer than the kind allows.
    TooLong(usize),
    /// Not a well-formed value of its kind.
    Malformed(&'static str),
    /// A placeholder or test value that would fuse unrelated customers.
    Junk,
    /// External ids need their source system.
    MissingNamespace,
}

impl std::fmt::Display for IdentifierError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => write!(f, "is empty"),
            Self::TooLong(max) => write!(f, "is longer than {max} characters"),
            Self::Malformed(why) => write!(f, "{why}"),
            Self::Junk => write!(f, "is a placeholder or test value, not a real identifier"),
            Self::MissingNamespace => write!(f, "an external id needs its namespace (the source system)"),
        }
    }
}

impl std::error::Error for IdentifierError {}

/// Normalises `raw` as an identifier of `kind`. `namespace` names the source system of
/// an external id; for a phone it may give a default country calling code.
pub fn normalize(kind: IdentifierKind, raw: &str, namespace: &str) -> Result<Identifier, IdentifierError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(IdentifierError::Empty);
    }
    if trimmed.chars().any(char::is_control) || namespace.chars().any(char::is_control) {
        return Err(IdentifierError::Malformed("contains control characters"));
    }
    if namespace.chars().count() > 100 {
        return Err(IdentifierError::Malformed("the namespace is longer than 100 characters"));
    }
    let (value, namespace) = match kind {
        IdentifierKind::Email => (normalize_email(trimmed)?, String::new()),
        IdentifierKind::Phone => (normalize_phone(trimmed, namespace.trim())?, String::new()),
        IdentifierKind::PostalAddress => (normalize_address(trimmed)?, String::new()),
        IdentifierKind::LoyaltyCard | IdentifierKind::AccountNumber | IdentifierKind::NationalId => {
            (normalize_code(trimmed)?, String::new())
        }
        IdentifierKind::DeviceId => (normalize_token(trimmed, 200)?, String::new()),
        IdentifierKind::ExternalId => {
            let ns = namespace.trim().to_lowercase();
            if ns.is_empty() {
                return Err(IdentifierError::MissingNamespace);
            }
            (normalize_token(trimmed, 200)?, ns)
        }
    };
    Ok(Identifier { kind, namespace, value })
}

/// Values people type when they do not want to give one.
const JUNK_WORDS: &[&str] = &[
    "null",
    "none",
    "nil",
    "n/a",
    "na",
    "unknown",
    "test",
    "testing",
    "xxx",
    "asdf",
    "noemail",
    "no email",
    "nomail",
    "none@none",
    "undefined",
    "-",
    "?",
];
const JUNK_EMAIL_LOCAL: &[&str] =
    &["test", "none", "noemail", "nomail", "no-reply", "noreply", "null", "xxx", "asdf", "a", "abc"];
const JUNK_EMAIL_DOMAINS: &[&str] =
    &["test.com", "test", "example.com", "example.org", "none.com", "nomail.com", "email.com", "xxx.com"];

fn is_junk_word(value: &str) -> bool {
    let lower = value.to_lowercase();
    JUNK_WORDS.contains(&lower.as_str())
}

/// All characters the same (`0000`, `1111111`), or a run like `123456789`.
fn is_junk_digits(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    if bytes.len() < 2 {
        return false;
    }
    let all_same = bytes.iter().all(|&b| b == bytes[0]);
    let ascending = bytes.windows(2).all(|w| w[1] == w[0] + 1);
    let descending = bytes.windows(2).all(|w| w[0] == w[1] + 1);
    all_same || ((ascending || descending) && bytes.len() >= 6)
}

fn normalize_email(value: &str) -> Result<String, IdentifierError> {
    if value.chars().count() > 254 {
        return Err(IdentifierError::TooLong(254));
    }
    if is_junk_word(value) {
        return Err(IdentifierError::Junk);
    }
    let lower = value.to_lowercase();
    let (local, domain) = lower.rsplit_once('@').ok_or(IdentifierError::Malformed("an email address needs an @"))?;
    if local.is_empty() || local.len() > 64 {
        return Err(IdentifierError::Malformed("the part before @ must be 1 to 64 characters"));
    }
    if local.contains('@') || lower.chars().any(char::is_whitespace) {
        return Err(IdentifierError::Malformed("an email address has one @ and no spaces"));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(IdentifierError::Malformed("dots cannot start, end or repeat in the part before @"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| tld.chars().count() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()));
    if !domain_ok {
        return Err(IdentifierError::Malformed("the domain after @ is not a valid domain name"));
    }
    if JUNK_EMAIL_DOMAINS.contains(&domain) || JUNK_EMAIL_LOCAL.contains(&local) && domain.starts_with("test") {
        return Err(IdentifierError::Junk);
    }
    if JUNK_EMAIL_LOCAL.contains(&local) && JUNK_EMAIL_DOMAINS.iter().any(|d| d.starts_with(local)) {
        return Err(IdentifierError::Junk);
    }
    Ok(lower)
}

/// A phone number to E.164. A national number (no `+` or `00`) needs the default
/// region as a country calling code in `region` ("44", "+33"); its trunk prefix 0 is
/// dropped ("07700 900123" with "44" → "+447700900123").
fn normalize_phone(value: &str, region: &str) -> Result<String, IdentifierError> {
    // "+44 (0)7700 900123": the bracketed trunk prefix is dialled only from inside the country.
    let value = &value.replace("(0)", "");
    let international = value.starts_with('+') || value.starts_with("00");
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    let allowed = value.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if !allowed {
        return Err(IdentifierError::Malformed("a phone number has only digits, spaces, + - ( ) ."));
    }
    let digits = if value.starts_with("00") {
        digits[2..].to_owned()
    } else if international {
        digits
    } else {
        let code = region.strip_prefix('+').unwrap_or(region);
        if code.is_empty() || code.len() > 3 || !code.bytes().all(|b| b.is_ascii_digit()) || code.starts_with('0') {
            return Err(IdentifierError::Malformed(
                "give the number with its country code (+33 ...), or the default region's code as namespace",
            ));
        }
        format!("{code}{}", digits.strip_prefix('0').unwrap_or(&digits))
    };
    if !(8..=15).contains(&digits.len()) {
        return Err(IdentifierError::Malformed("an international number has 8 to 15 digits"));
    }
    // The subscriber number follows a 1- to 3-digit country code; one digit repeated
    // throughout it is a placeholder.
    let repeated = |s: &str| s.len() > 1 && s.bytes().all(|b| Some(b) == s.bytes().next());
    if (1..=3).any(|cc| repeated(&digits[cc..])) {
        return Err(IdentifierError::Junk);
    }
    Ok(format!("+{digits}"))
}

fn normalize_address(value: &str) -> Result<String, IdentifierError> {
    if value.chars().count() > 500 {
        return Err(IdentifierError::TooLong(500));
    }
    if is_junk_word(value) {
        return Err(IdentifierError::Junk);
    }
    let canonical = value
        .split(',')
        .map(|part| part.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(canonical)
}

/// Card, account and national-id numbers: separators dropped, letters upper-cased.
fn normalize_code(value: &str) -> Result<String, IdentifierError> {
    let code: String =
        value.chars().filter(|c| !c.is_whitespace() && !"-./".contains(*c)).collect::<String>().to_uppercase();
    if code.chars().count() > 64 {
        return Err(IdentifierError::TooLong(64));
    }
    if !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(IdentifierError::Malformed("only letters, digits and separators are allowed"));
    }
    if code.len() < 4 {
        return Err(IdentifierError::Malformed("is shorter than 4 characters"));
    }
    if is_junk_word(&code) || is_junk_digits(&code) {
        return Err(IdentifierError::Junk);
    }
    Ok(code)
}

fn normalize_token(value: &str, max: usize) -> Result<String, IdentifierError> {
    if value.chars().count() > max {
        return Err(IdentifierError::TooLong(max));
    }
    if value.chars().any(char::is_control) {
        return Err(IdentifierError::Malformed("contains control characters"));
    }
    if is_junk_word(value) || is_junk_digits(value) {
        return Err(IdentifierError::Junk);
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(v: &str) -> Result<String, IdentifierError> {
        normalize(IdentifierKind::Email, v, "").map(|i| i.value)
    }

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(email("  Ada.Lovelace@Example.co.UK "), Ok("ada.lovelace@example.co.uk".to_owned()));
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada lovelace@example.com",
            "a..b@example.com",
            "ada@exa_mple.com",
            "ada@example.c",
        ] {
            assert!(matches!(email(bad), Err(IdentifierError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn junk_emails_are_refused() {
        for junk in ["test@test.com", "null", "noemail@example.com", "none@none.com", "test@test"] {
            assert!(email(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn phones_become_e164() {
        let phone = |v| normalize(IdentifierKind::Phone, v, "").map(|i| i.value);
        assert_eq!(phone("+33 6 12-34.56 78"), Ok("+33612345678".to_owned()));
        assert_eq!(phone("0033 (6) 12 34 56 78"), Ok("+33612345678".to_owned()));
        assert!(phone("06 12 34 56 78").is_err());
        let national = |v, region| normalize(IdentifierKind::Phone, v, region).map(|i| i.value);
        assert_eq!(national("07700 900123", "44"), Ok("+447700900123".to_owned()));
        assert_eq!(national("+44 (0)7700 900123", ""), Ok("+447700900123".to_owned()));
        assert_eq!(national("06 12 34 56 78", "+33"), Ok("+33612345678".to_owned()));
        assert_eq!(national("+1 415 555 0100", "44"), Ok("+14155550100".to_owned()));
        assert!(national("06 12 34 56 78", "FR").is_err());
        assert_eq!(phone("+33 0000 0000"), Err(IdentifierError::Junk));
    }

    #[test]
    fn codes_drop_separators_and_refuse_placeholders() {
        let card = |v| normalize(IdentifierKind::LoyaltyCard, v, "").map(|i| i.value);
        assert_eq!(card("ab-1234 5678"), Ok("AB12345678".to_owned()));
        assert_eq!(card("0000"), Err(IdentifierError::Junk));
        assert_eq!(card("123456789"), Err(IdentifierError::Junk));
    }

    #[test]
    fn control_characters_are_refused_in_every_kind() {
        assert!(email("ada\0@analytical-engine.co.uk").is_err());
        assert!(normalize(IdentifierKind::PostalAddress, "1 rue\u{0}, paris", "").is_err());
        assert!(normalize(IdentifierKind::ExternalId, "C-1", "crm\u{7}").is_err());
        assert!(normalize(IdentifierKind::ExternalId, "C-1", &"n".repeat(101)).is_err());
    }

    #[test]
    fn external_ids_need_a_namespace() {
        assert_eq!(normalize(IdentifierKind::ExternalId, "42", ""), Err(IdentifierError::MissingNamespace));
        let id = normalize(IdentifierKind::ExternalId, "C-42", " CRM ").expect("valid");
        assert_eq!((id.namespace.as_str(), id.value.as_str()), ("crm", "C-42"));
    }
}
