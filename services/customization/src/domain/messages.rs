//! Personal messages as plain Rust: the template language (`{field}`, `{field|fallback}`,
//! `{{` and `}}` for literal braces), parsed once with the position of every error, the
//! personal fields it may use and which of them are personal data, the choice of a content's
//! language, and rendering from whatever values are known.

/// A personal field: its name and whether it is personal data (filled only for callers
/// allowed to read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The name used in braces.
    pub name: &'static str,
    /// Personal data: withheld from callers without `pii.read`.
    pub personal: bool,
}

/// Every field a template may use.
pub const FIELDS: [FieldSpec; 21] = [
    FieldSpec { name: "first_name", personal: true },
    FieldSpec { name: "last_name", personal: true },
    FieldSpec { name: "full_name", personal: true },
    FieldSpec { name: "salutation", personal: true },
    FieldSpec { name: "email", personal: true },
    FieldSpec { name: "phone", personal: true },
    FieldSpec { name: "city", personal: true },
    FieldSpec { name: "postal_code", personal: true },
    FieldSpec { name: "loyalty_number", personal: true },
    FieldSpec { name: "birth_date", personal: true },
    FieldSpec { name: "company_name", personal: true },
    FieldSpec { name: "age", personal: true },
    FieldSpec { name: "account_manager_name", personal: false },
    FieldSpec { name: "account_manager_phone", personal: false },
    FieldSpec { name: "tier_name", personal: false },
    FieldSpec { name: "offer_title", personal: false },
    FieldSpec { name: "offer_description", personal: false },
    FieldSpec { name: "offer_value", personal: false },
    FieldSpec { name: "offer_valid_until", personal: false },
    FieldSpec { name: "holiday_name", personal: false },
    FieldSpec { name: "today", personal: false },
];

/// The spec of a field name, when it is one.
pub fn field(name: &str) -> Option<FieldSpec> {
    FIELDS.iter().copied().find(|f| f.name == name)
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text as written (braces unescaped).
    Text(String),
    /// A personal field, with its fallback when given.
    Field {
        /// The field's name.
        name: String,
        /// Text used when the value is unknown or withheld.
        fallback: Option<String>,
    },
}

/// Why a template does not parse, at a character position (0-based, in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {position}: {message}")]
pub struct ParseError {
    /// Where, in characters from the start.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

/// A parsed template text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`, refusing unknown fields, empty or unclosed braces and lone `}`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let chars: Vec<char> = text.chars().collect();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '{' if chars.get(i + 1) == Some(&'{') => {
                    literal.push('{');
                    i += 2;
                }
                '}' if chars.get(i + 1) == Some(&'}') => {
                    literal.push('}');
                    i += 2;
                }
                '}' => return Err(ParseError { position: i, message: "a lone `}` (write `}}` for a brace)".into() }),
                '{' => {
                    let start = i;
                    let close = chars[i + 1..].iter().position(|&c| c == '}' || c == '{').map(|p| p + i + 1);
                    let Some(close) = close.filter(|&c| chars[c] == '}') else {
                        return Err(ParseError { position: start, message: "`{` is not closed by `}`".into() });
                    };
                    let inner: String = chars[start + 1..close].iter().collect();
                    let (name, fallback) = match inner.split_once('|') {
                        Some((n, f)) => (n.trim(), Some(f.to_owned())),
                        None => (inner.trim(), None),
                    };
                    if name.is_empty() {
                        return Err(ParseError {
                            position: start,
                            message: "a field name is expected after `{`".into(),
                        });
                    }
                    if field(name).is_none() {
                        return Err(ParseError {
                            position: start + 1,
                            message: format!("unknown personal field `{name}`"),
                        });
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Field { name: name.to_owned(), fallback });
                    i = close + 1;
                }
                c => {
                    literal.push(c);
                    i += 1;
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self { parts })
    }

    /// The fields used, in order of first use, each once.
    pub fn fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for p in &self.parts {
            if let Part::Field { name, .. } = p
                && !out.contains(&name.as_str())
            {
                out.push(name);
            }
        }
        out
    }

    /// Renders with `value` answering each field: `Filled(v)`, or why there is no value.
    /// Returns the text and how each field (in order of first use) was filled.
    pub fn render(&self, value: &dyn Fn(&str) -> FieldValue) -> (String, Vec<(String, Outcome)>) {
        let mut out = String::new();
        let mut outcomes: Vec<(String, Outcome)> = Vec::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field { name, fallback } => {
                    let outcome = match (value(name), fallback) {
                        (FieldValue::Known(v), _) => {
                            out.push_str(&v);
                            Outcome::Filled
                        }
                        (why, Some(f)) => {
                            out.push_str(f);
                            match why {
                                FieldValue::Withheld => Outcome::FallbackWithheld,
                                FieldValue::NotGranted => Outcome::FallbackNotGranted,
                                _ => Outcome::FallbackUnknown,
                            }
                        }
                        (_, None) => Outcome::Empty,
                    };
                    // The weakest outcome of a field used several times is reported.
                    match outcomes.iter_mut().find(|(n, _)| n == name) {
                        Some((_, o)) if outcome == Outcome::Empty => *o = Outcome::Empty,
                        Some(_) => {}
                        None => outcomes.push((name.clone(), outcome)),
                    }
                }
            }
        }
        (out, outcomes)
    }
}

/// A field's value for one customer, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// The value.
    Known(String),
    /// Not known.
    Unknown,
    /// Personal data the caller may not see.
    Withheld,
    /// Not granted by the customer's service level.
    NotGranted,
}

/// How a field was filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// With the value.
    Filled,
    /// With the fallback: unknown.
    FallbackUnknown,
    /// With the fallback: withheld from the caller.
    FallbackWithheld,
    /// With the fallback: not granted by the service level.
    FallbackNotGranted,
    /// Left empty.
    Empty,
}

/// The content language to use among `available`: the wanted tag, else one with the same
/// primary language, else the customer's preferred (same rules), else the default.
pub fn choose_language<'a>(available: &'a [String], wanted: &str, preferred: &str, default: &'a str) -> &'a str {
    let primary = |t: &str| t.split('-').next().unwrap_or_default().to_ascii_lowercase();
    for tag in [wanted, preferred] {
        if tag.is_empty() {
            continue;
        }
        if let Some(exact) = available.iter().find(|a| a.eq_ignore_ascii_case(tag)) {
            return exact;
        }
        if let Some(close) = available.iter().find(|a| primary(a) == primary(tag)) {
            return close;
        }
    }
    default
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> FieldValue {
        move |name| {
            pairs.iter().find(|(n, _)| *n == name).map_or(FieldValue::Unknown, |(_, v)| FieldValue::Known((*v).into()))
        }
    }

    #[test]
    fn fields_are_filled_or_fall_back() {
        let t = Template::parse("Howdy {first_name|Pardner}! {{{tier_name}}} {first_name|x}").expect("parse");
        assert_eq!(t.fields(), vec!["first_name", "tier_name"]);
        let (text, outcomes) = t.render(&known(&[("first_name", "Ada"), ("tier_name", "MVC")]));
        assert_eq!(text, "Howdy Ada! {MVC} Ada");
        assert!(outcomes.iter().all(|(_, o)| *o == Outcome::Filled));
        let (text, outcomes) = t.render(&known(&[]));
        assert_eq!(text, "Howdy Pardner! {} x");
        assert_eq!(
            outcomes,
            vec![("first_name".into(), Outcome::FallbackUnknown), ("tier_name".into(), Outcome::Empty)]
        );
        let withheld = |n: &str| if n == "first_name" { FieldValue::Withheld } else { FieldValue::Unknown };
        assert_eq!(t.render(&withheld).1[0].1, Outcome::FallbackWithheld);
    }

    #[test]
    fn errors_give_the_character_position() {
        let e = Template::parse("Héllo {nickname}").expect_err("unknown field");
        assert_eq!(e.position, 7);
        assert!(e.message.contains("nickname"));
        assert_eq!(Template::parse("Hi {first_name").expect_err("unclosed").position, 3);
        assert_eq!(Template::parse("Hi } there").expect_err("lone").position, 3);
        assert_eq!(Template::parse("Hi {|x}").expect_err("no name").position, 3);
        assert!(Template::parse("{{ literal }}").is_ok());
    }

    #[test]
    fn the_closest_language_is_chosen() {
        let available = vec!["en".to_owned(), "fr-FR".to_owned()];
        assert_eq!(choose_language(&available, "fr-CA", "", "en"), "fr-FR");
        assert_eq!(choose_language(&available, "", "FR", "en"), "fr-FR");
        assert_eq!(choose_language(&available, "de", "es", "en"), "en");
        assert_eq!(choose_language(&available, "EN", "fr", "en"), "en");
    }
}
