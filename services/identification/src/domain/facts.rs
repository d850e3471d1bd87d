//! Profile facts: what was learnt about a customer, each with its source and time.
//! Facts are appended, never overwritten; the current value of a key is the newest
//! observation from a trusted source (untrusted sources, such as bought lists, count
//! only while no trusted value exists). A declined answer never becomes current.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::customer::BirthDate;

/// Longest fact key.
pub const MAX_KEY_LEN: usize = 64;
/// Longest text value.
pub const MAX_TEXT_LEN: usize = 1000;

/// Keys that are customer fields, with the type their values must have.
pub const FIELD_KEYS: &[(&str, ValueType)] = &[
    ("given_name", ValueType::String),
    ("family_name", ValueType::String),
    ("display_name", ValueType::String),
    ("preferred_name", ValueType::String),
    ("organization_name", ValueType::String),
    ("birth_date", ValueType::Date),
    ("job_title", ValueType::String),
    ("preferred_language", ValueType::String),
    ("time_zone", ValueType::String),
    ("preferred_channel", ValueType::String),
];

/// A checked fact key: lowercase `[a-z][a-z0-9_]*` segments joined by dots.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FactKey(String);

impl FactKey {
    /// Checks the syntax.
    pub fn parse(key: &str) -> Result<Self, &'static str> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err("must be 1 to 64 characters");
        }
        let segment_ok = |s: &str| {
            let mut chars = s.chars();
            chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !key.split('.').all(segment_ok) {
            return Err("must be lowercase [a-z][a-z0-9_]* segments joined by dots");
        }
        Ok(Self(key.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The type a customer-field key requires, if it is one.
    pub fn field_type(&self) -> Option<ValueType> {
        FIELD_KEYS.iter().find(|(k, _)| *k == self.0).map(|(_, t)| *t)
    }
}

/// The type of a key's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueType {
    /// Text.
    String,
    /// Whole number.
    Int,
    /// Decimal number.
    Double,
    /// Yes/no.
    Bool,
    /// Calendar date.
    Date,
}

impl ValueType {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Int => "int",
            Self::Double => "double",
            Self::Bool => "bool",
            Self::Date => "date",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "int" => Self::Int,
            "double" => Self::Double,
            "bool" => Self::Bool,
            "date" => Self::Date,
            _ => return None,
        })
    }
}

/// A fact's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FactValue {
    /// Text.
    String(String),
    /// Whole number.
    Int(i64),
    /// Decimal number (finite).
    Double(f64),
    /// Yes/no.
    Bool(bool),
    /// Calendar date.
    Date(BirthDate),
    /// The customer declined to answer.
    Declined,
    /// The value was cleared.
    Cleared,
}

impl FactValue {
    /// A text value, or `Cleared` for an empty text (an empty field is an unknown one).
    pub fn text(text: impl Into<String>) -> Self {
        let text = text.into();
        if text.is_empty() { Self::Cleared } else { Self::String(text) }
    }

    /// The value's type; `None` for declined and cleared, which fit every key.
    pub fn value_type(&self) -> Option<ValueType> {
        Some(match self {
            Self::String(_) => ValueType::String,
            Self::Int(_) => ValueType::Int,
            Self::Double(_) => ValueType::Double,
            Self::Bool(_) => ValueType::Bool,
            Self::Date(_) => ValueType::Date,
            Self::Declined | Self::Cleared => return None,
        })
    }

    /// Checks what a value alone can be checked for.
    pub fn check(&self) -> Result<(), &'static str> {
        match self {
            Self::String(s) if s.chars().count() > MAX_TEXT_LEN => Err("text values are at most 1000 characters"),
            Self::String(s) if s.chars().any(char::is_control) => {
                Err("text values must not contain control characters")
            }
            Self::Double(d) if !d.is_finite() => Err("must be a finite number"),
            _ => Ok(()),
        }
    }
}

/// A stored fact.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// Its id.
    pub id: i64,
    /// Its key.
    pub key: FactKey,
    /// Its value.
    pub value: FactValue,
    /// Where it came from.
    pub source: String,
    /// Channel it was learnt through (the API's channel name), empty when none.
    pub channel: String,
    /// Whether its source is trusted.
    pub trusted: bool,
    /// When it was observed.
    pub observe_time: DateTime<Utc>,
    /// When it was stored.
    pub record_time: DateTime<Utc>,
    /// Who recorded it.
    pub recorded_by: String,
    /// The customer it was first recorded on (differs after a merge).
    pub origin_customer: uuid::Uuid,
}

/// Whether `source` is trusted, given the prefixes of untrusted sources.
pub fn is_trusted(source: &str, untrusted_prefixes: &[String]) -> bool {
    !untrusted_prefixes.iter().any(|p| !p.is_empty() && source.starts_with(p.as_str()))
}

/// The current fact among the facts of one key: the newest trusted observation, or the
/// newest untrusted one while no trusted fact exists. Declined answers never count; a
/// current `Cleared` fact means the key has no value.
pub fn current<'a>(facts: impl IntoIterator<Item = &'a Fact>) -> Option<&'a Fact> {
    facts.into_iter().filter(|f| f.value != FactValue::Declined).max_by_key(|f| (f.trusted, f.observe_time, f.id))
}

/// The current fact of every key among `facts`, ordered by key.
pub fn current_per_key(facts: &[Fact]) -> Vec<&Fact> {
    let mut by_key: std::collections::BTreeMap<&str, Vec<&Fact>> = std::collections::BTreeMap::new();
    for fact in facts {
        by_key.entry(fact.key.as_str()).or_default().push(fact);
    }
    by_key.values().filter_map(|same_key| current(same_key.iter().copied())).collect()
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn fact(id: i64, value: FactValue, trusted: bool, hours: i64) -> Fact {
        Fact {
            id,
            key: FactKey("habit.shopping_day".into()),
            value,
            source: String::new(),
            channel: String::new(),
            trusted,
            observe_time: DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default()
                + Duration::hours(hours),
            record_time: DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
            recorded_by: String::new(),
            origin_customer: uuid::Uuid::nil(),
        }
    }

    #[test]
    fn keys_are_dotted_lowercase_segments() {
        for ok in ["given_name", "preference.newsletter_topic", "household.children2"] {
            assert!(FactKey::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Given", "a..b", ".a", "a.", "1a", "a-b", &"a".repeat(65)] {
            assert!(FactKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_newest_trusted_value_wins_over_newer_untrusted_ones() {
        let facts = [
            fact(1, FactValue::String("saturday".into()), true, 1),
            fact(2, FactValue::String("monday".into()), false, 5),
            fact(3, FactValue::String("friday".into()), true, 3),
        ];
        assert_eq!(current(&facts).map(|f| f.id), Some(3));
        let only_untrusted = [fact(2, FactValue::String("monday".into()), false, 5)];
        assert_eq!(current(&only_untrusted).map(|f| f.id), Some(2));
    }

    #[test]
    fn declined_answers_never_become_current_but_clearing_does() {
        let facts = [fact(1, FactValue::Int(2), true, 1), fact(2, FactValue::Declined, true, 2)];
        assert_eq!(current(&facts).map(|f| f.id), Some(1));
        let cleared = [fact(1, FactValue::Int(2), true, 1), fact(2, FactValue::Cleared, true, 2)];
        assert_eq!(current(&cleared).map(|f| &f.value), Some(&FactValue::Cleared));
    }

    #[test]
    fn sources_are_untrusted_by_prefix() {
        let untrusted = vec!["list:".to_owned()];
        assert!(!is_trusted("list:acme-2024", &untrusted));
        assert!(is_trusted("crm", &untrusted));
    }
}
