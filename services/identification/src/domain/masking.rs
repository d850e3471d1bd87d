//! How personal values are shown to callers without `pii.read`: same shape, values
//! masked, so a caller can tell a value exists without learning it.

use super::identifier::IdentifierKind;

/// A name: its first character then `***` (`J***`); empty stays empty.
pub fn mask_name(name: &str) -> String {
    match name.chars().next() {
        Some(first) => format!("{first}***"),
        None => String::new(),
    }
}

/// An identifier value, masked as its kind requires.
pub fn mask_identifier(kind: IdentifierKind, value: &str) -> String {
    match kind {
        IdentifierKind::Email => match value.split_once('@') {
            Some((local, domain)) => format!("{}@{domain}", mask_name(local)),
            None => "***".to_owned(),
        },
        IdentifierKind::Phone => {
            let digits: Vec<char> = value.chars().filter(char::is_ascii_digit).collect();
            let country: String = digits.iter().take(2).collect();
            let last: String = digits.iter().skip(digits.len().saturating_sub(2)).collect();
            format!("+{country}***{last}")
        }
        IdentifierKind::PostalAddress => {
            // Keep only a short last part (postcode or town) of an address in several parts.
            let parts: Vec<&str> = value.split(", ").collect();
            match parts.last() {
                Some(tail) if parts.len() >= 2 && tail.chars().count() <= 12 => format!("***, {tail}"),
                _ => "***".to_owned(),
            }
        }
        IdentifierKind::LoyaltyCard | IdentifierKind::AccountNumber | IdentifierKind::DeviceId => {
            let chars: Vec<char> = value.chars().collect();
            let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
            format!("***{tail}")
        }
        IdentifierKind::NationalId => "***".to_owned(),
        IdentifierKind::ExternalId => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_keep_only_what_the_policy_allows() {
        assert_eq!(mask_identifier(IdentifierKind::Email, "jane@example.com"), "j***@example.com");
        assert_eq!(mask_identifier(IdentifierKind::Phone, "+33612345678"), "+33***78");
        assert_eq!(mask_identifier(IdentifierKind::LoyaltyCard, "AB12345678"), "***5678");
        assert_eq!(mask_identifier(IdentifierKind::NationalId, "1850175123456"), "***");
        assert_eq!(mask_identifier(IdentifierKind::ExternalId, "C-42"), "C-42");
        assert_eq!(
            mask_identifier(IdentifierKind::PostalAddress, "2 wilmslow road, manchester, m14 5tq"),
            "***, m14 5tq"
        );
        assert_eq!(mask_identifier(IdentifierKind::PostalAddress, "2 wilmslow road manchester"), "***");
        assert_eq!(mask_name("Jane"), "J***");
        assert_eq!(mask_name(""), "");
    }
}
