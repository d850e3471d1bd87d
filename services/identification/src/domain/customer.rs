//! A customer record: a person or an organisation, with the fields a channel may know
//! and the checks a new record must pass.

use chrono::{DateTime, Datelike as _, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{identifier::Identifier, stored_names};

/// IDIC's id of a customer (a UUID; resource name `customers/{id}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CustomerId(pub Uuid);

impl CustomerId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// The resource name `customers/{id}`.
    pub fn resource_name(&self) -> String {
        format!("customers/{}", self.0)
    }
}

/// What a customer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CustomerKind {
    /// A natural person.
    Person,
    /// A business or other organisation.
    Organization,
}

stored_names!(CustomerKind { Person => "person", Organization => "organization" });

/// A relationship beyond buying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CustomerRole {
    /// Resells the company's products.
    Distributor,
    /// A business partner.
    Partner,
}

stored_names!(CustomerRole { Distributor => "distributor", Partner => "partner" });

/// Where a record is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CustomerState {
    /// In use.
    Active,
    /// Merged into another customer.
    Merged,
    /// Personal data erased.
    Erased,
}

impl CustomerState {
    /// Parses the stored form (unknown values read as active).
    pub fn parse(s: &str) -> Self {
        match s {
            "merged" => Self::Merged,
            "erased" => Self::Erased,
            _ => Self::Active,
        }
    }
}

/// A birth date, possibly without its year (a birthday given for greetings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BirthDate {
    /// The year, when known.
    pub year: Option<u16>,
    /// Month, 1–12.
    pub month: u8,
    /// Day, 1–31, valid for the month.
    pub day: u8,
}

impl BirthDate {
    /// A checked birth date: a real calendar day, not in the future, not before 1850.
    pub fn new(year: Option<u16>, month: u8, day: u8, today: DateTime<Utc>) -> Result<Self, &'static str> {
        // Year unknown: check against a leap year so 29 February is allowed.
        let check_year = year.map_or(2000, i32::from);
        if chrono::NaiveDate::from_ymd_opt(check_year, u32::from(month), u32::from(day)).is_none() {
            return Err("is not a valid calendar date");
        }
        if let Some(y) = year {
            if y < 1850 {
                return Err("year must be 1850 or later");
            }
            let date = chrono::NaiveDate::from_ymd_opt(i32::from(y), u32::from(month), u32::from(day));
            if date.is_some_and(|d| d > today.date_naive()) {
                return Err("is in the future");
            }
            if i32::from(y) > today.year() {
                return Err("is in the future");
            }
        }
        Ok(Self { year, month, day })
    }

    /// Parses a date as files write it: `1984-03-07`, `19840307`, `07/03/1984`,
    /// `7.3.1984`, `07-03-1984` (day first unless `order` says month first), or
    /// `1984/03/07`. Then checked as [`BirthDate::new`] does.
    pub fn parse_text(raw: &str, order: DateOrder, today: DateTime<Utc>) -> Result<Self, &'static str> {
        let raw = raw.trim();
        let number = |s: &str| s.parse::<u16>().map_err(|_| "is not a date (expected e.g. 1984-03-07)");
        let parts: Vec<&str> = raw.split(['-', '/', '.', ' ']).filter(|p| !p.is_empty()).collect();
        let (year, month, day) = match parts.as_slice() {
            [compact] if compact.len() == 8 && compact.bytes().all(|b| b.is_ascii_digit()) => {
                (number(&compact[..4])?, number(&compact[4..6])?, number(&compact[6..])?)
            }
            [y, m, d] if y.len() == 4 => (number(y)?, number(m)?, number(d)?),
            [a, b, y] if y.len() == 4 => match order {
                DateOrder::DayFirst => (number(y)?, number(b)?, number(a)?),
                DateOrder::MonthFirst => (number(y)?, number(a)?, number(b)?),
            },
            _ => return Err("is not a date (expected e.g. 1984-03-07)"),
        };
        let month = u8::try_from(month).map_err(|_| "is not a valid calendar date")?;
        let day = u8::try_from(day).map_err(|_| "is not a valid calendar date")?;
        Self::new(Some(year), month, day, today)
    }
}

/// How a numeric date with the year last is read: 07/03/1984 is 7 March (day first,
/// as in most of the world) or July 3 (month first, as in the United States).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DateOrder {
    /// dd/mm/yyyy.
    #[default]
    DayFirst,
    /// mm/dd/yyyy.
    MonthFirst,
}

/// What is needed to create a customer, already validated and normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCustomer {
    /// Person or organisation.
    pub kind: CustomerKind,
    /// Roles, sorted and unique.
    pub roles: Vec<CustomerRole>,
    /// Name to show; derived from the names when empty.
    pub display_name: String,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Name to be called by.
    pub preferred_name: String,
    /// Organisation name.
    pub organization_name: String,
    /// Birth date.
    pub birth_date: Option<BirthDate>,
    /// Normalised identifiers.
    pub identifiers: Vec<Identifier>,
    /// For a contact person: the organisation.
    pub parent: Option<CustomerId>,
    /// Role at the parent organisation.
    pub job_title: String,
    /// BCP 47 language tag.
    pub preferred_language: String,
    /// IANA time zone.
    pub time_zone: String,
    /// Preferred channel's name (as the API spells it), empty when unknown.
    pub preferred_channel: String,
}

/// Why a new customer is refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerError {
    /// The field, relative to the customer.
    pub field: &'static str,
    /// What is wrong.
    pub description: &'static str,
}

impl NewCustomer {
    /// Checks the rules that span fields, and fills the display name.
    pub fn finish(mut self) -> Result<Self, CustomerError> {
        match self.kind {
            CustomerKind::Person => {
                let has_name =
                    !(self.given_name.is_empty() && self.family_name.is_empty() && self.display_name.is_empty());
                if !has_name && self.identifiers.is_empty() {
                    return Err(CustomerError {
                        field: "given_name",
                        description: "a person needs a name or at least one identifier",
                    });
                }
                if self.display_name.is_empty() {
                    self.display_name = [self.given_name.as_str(), self.family_name.as_str()]
                        .iter()
                        .filter(|s| !s.is_empty())
                        .copied()
                        .collect::<Vec<_>>()
                        .join(" ");
                }
            }
            CustomerKind::Organization => {
                if self.organization_name.is_empty() {
                    return Err(CustomerError {
                        field: "organization_name",
                        description: "is required for an organization",
                    });
                }
                if self.birth_date.is_some() {
                    return Err(CustomerError {
                        field: "birth_date",
                        description: "an organization has no birth date",
                    });
                }
                if self.display_name.is_empty() {
                    self.display_name = self.organization_name.clone();
                }
            }
        }
        self.roles.sort();
        self.roles.dedup();
        Ok(self)
    }
}

/// A stored customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Its id.
    pub id: CustomerId,
    /// Where it is in its life.
    pub state: CustomerState,
    /// Its data.
    pub data: NewCustomer,
    /// For a merged customer, the survivor.
    pub merged_into: Option<CustomerId>,
    /// For an erased customer, the erasure that erased it (its receipt).
    #[serde(default)]
    pub erasure: Option<Uuid>,
    /// Incremented on every change (the etag).
    pub version: i64,
    /// Creation time.
    pub create_time: DateTime<Utc>,
    /// Last change.
    pub update_time: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> NewCustomer {
        NewCustomer {
            kind: CustomerKind::Person,
            roles: vec![],
            display_name: String::new(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            preferred_name: String::new(),
            organization_name: String::new(),
            birth_date: None,
            identifiers: vec![],
            parent: None,
            job_title: String::new(),
            preferred_language: String::new(),
            time_zone: String::new(),
            preferred_channel: String::new(),
        }
    }

    #[test]
    fn a_person_gets_a_display_name_from_their_names() {
        assert_eq!(person().finish().map(|c| c.display_name), Ok("Ada Lovelace".to_owned()));
    }

    #[test]
    fn a_person_needs_a_name_or_an_identifier() {
        let nameless = NewCustomer { given_name: String::new(), family_name: String::new(), ..person() };
        assert_eq!(nameless.finish().map_err(|e| e.field), Err("given_name"));
    }

    #[test]
    fn an_organization_needs_its_name() {
        let org = NewCustomer { kind: CustomerKind::Organization, ..person() };
        assert_eq!(org.finish().map_err(|e| e.field), Err("organization_name"));
    }

    #[test]
    fn birth_dates_must_be_real_past_days() {
        let today = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").map(|d| d.to_utc()).expect("date");
        assert!(BirthDate::new(Some(1990), 2, 29, today).is_err());
        assert!(BirthDate::new(None, 2, 29, today).is_ok());
        assert!(BirthDate::new(Some(2027), 1, 1, today).is_err());
        assert!(BirthDate::new(Some(1815), 12, 10, today).is_err());
        assert!(BirthDate::new(Some(1990), 13, 1, today).is_err());
    }
}

#[cfg(test)]
mod date_text_tests {
    use super::*;

    #[test]
    fn parses_the_usual_date_shapes() {
        let today = Utc::now();
        let parse = |raw, order| BirthDate::parse_text(raw, order, today).map(|d| (d.year, d.month, d.day));
        let expected = Ok((Some(1984), 3, 7));
        assert_eq!(parse("1984-03-07", DateOrder::DayFirst), expected);
        assert_eq!(parse("19840307", DateOrder::DayFirst), expected);
        assert_eq!(parse("07/03/1984", DateOrder::DayFirst), expected);
        assert_eq!(parse("7.3.1984", DateOrder::DayFirst), expected);
        assert_eq!(parse("03/07/1984", DateOrder::MonthFirst), expected);
        assert_eq!(parse("1984/3/7", DateOrder::MonthFirst), expected);
        assert!(parse("31/02/1984", DateOrder::DayFirst).is_err());
        assert!(parse("yesterday", DateOrder::DayFirst).is_err());
        assert!(parse("1984-03", DateOrder::DayFirst).is_err());
    }
}
