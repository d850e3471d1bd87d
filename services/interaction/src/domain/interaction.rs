//! One contact with a customer and its rules: which kinds have a fixed direction, what
//! counts as an outbound contact, how line amounts and totals are computed, and the
//! time-ordered ids that name an interaction's time partition.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone as _, Utc};
use uuid::Uuid;

/// What happened in an interaction (the numbers are the contract's and the stored codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum Kind {
    /// The customer bought something.
    Purchase = 1,
    /// The customer returned something.
    Return = 2,
    /// The customer looked at a product or page.
    View = 3,
    /// Products put in the basket.
    BasketAdd = 4,
    /// Products taken out of the basket.
    BasketRemove = 5,
    /// A visit (in either direction).
    Visit = 6,
    /// The customer called.
    InboundCall = 7,
    /// The company called.
    OutboundCall = 8,
    /// The company sent a message.
    MessageSent = 9,
    /// A message was delivered.
    MessageDelivered = 10,
    /// The customer opened a message.
    MessageOpened = 11,
    /// The customer clicked a link in a message.
    MessageClicked = 12,
    /// The customer replied to a message.
    MessageReplied = 13,
    /// The customer asked something.
    Inquiry = 14,
    /// The customer complained.
    Complaint = 15,
    /// The customer gave feedback.
    Feedback = 16,
    /// The customer answered a survey.
    SurveyAnswer = 17,
}

impl Kind {
    const ALL: [Kind; 17] = [
        Kind::Purchase,
        Kind::Return,
        Kind::View,
        Kind::BasketAdd,
        Kind::BasketRemove,
        Kind::Visit,
        Kind::InboundCall,
        Kind::OutboundCall,
        Kind::MessageSent,
        Kind::MessageDelivered,
        Kind::MessageOpened,
        Kind::MessageClicked,
        Kind::MessageReplied,
        Kind::Inquiry,
        Kind::Complaint,
        Kind::Feedback,
        Kind::SurveyAnswer,
    ];

    /// The kind of a stored code.
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|k| *k as i32 == code)
    }

    /// The stored code.
    pub fn code(self) -> i16 {
        self as i16
    }

    /// The direction this kind always has, if it has a fixed one.
    pub fn fixed_direction(self) -> Option<Direction> {
        match self {
            Kind::OutboundCall | Kind::MessageSent | Kind::MessageDelivered => Some(Direction::Outbound),
            Kind::MessageOpened | Kind::MessageClicked | Kind::MessageReplied => Some(Direction::Inbound),
            _ => None,
        }
    }

    /// Whether the kind moves money and so must list priced product lines.
    pub fn is_monetary(self) -> bool {
        matches!(self, Kind::Purchase | Kind::Return)
    }

    /// Whether its product lines must have a positive quantity.
    pub fn needs_quantity(self) -> bool {
        matches!(self, Kind::Purchase | Kind::Return | Kind::BasketAdd | Kind::BasketRemove)
    }
}

/// Who started an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum Direction {
    /// The customer.
    Inbound = 1,
    /// The company.
    Outbound = 2,
}

impl Direction {
    /// The direction of a stored code.
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            1 => Some(Self::Inbound),
            2 => Some(Self::Outbound),
            _ => None,
        }
    }

    /// The direction of `kind` when the caller gave `given` (`None`: not given): the
    /// kind's fixed one, else the given one, else inbound. Err when they disagree.
    pub fn resolve(kind: Kind, given: Option<Direction>) -> Result<Direction, String> {
        match (kind.fixed_direction(), given) {
            (Some(fixed), Some(given)) if fixed != given => {
                Err(format!("must be {fixed:?} (or unspecified) for this kind"))
            }
            (Some(fixed), _) => Ok(fixed),
            (None, Some(given)) => Ok(given),
            (None, None) => Ok(Direction::Inbound),
        }
    }
}

/// Whether an interaction is an outbound contact: counted against frequency caps,
/// and in need of a purpose.
pub fn is_outbound_contact(kind: Kind, direction: Direction) -> bool {
    direction == Direction::Outbound && matches!(kind, Kind::OutboundCall | Kind::MessageSent | Kind::Visit)
}

/// Largest quantity of one line.
pub const MAX_QUANTITY: f64 = 1_000_000.0;
/// Largest amount in minor units kept exact through a quantity product (2^53).
pub const MAX_EXACT_MINOR: f64 = 9_007_199_254_740_992.0;

/// One product line.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemLine {
    /// Catalog id of the product.
    pub product_id: String,
    /// `configurations/{id}` of a mass-customized product, or empty.
    pub configuration: String,
    /// The channel's category of the product, or empty.
    pub category: String,
    /// Units (may be fractional).
    pub quantity: f64,
    /// Price of one unit in minor units, when known.
    pub unit_minor: Option<i64>,
    /// `quantity × unit_minor`, rounded half away from zero, when the price is known.
    pub line_minor: Option<i64>,
}

/// `quantity × unit_minor` rounded half away from zero to the minor unit; `None` when it
/// is too large to be exact.
pub fn line_amount(quantity: f64, unit_minor: i64) -> Option<i64> {
    let amount = (quantity * unit_minor as f64).round();
    (amount.abs() <= MAX_EXACT_MINOR).then_some(amount as i64)
}

/// The total of a purchase (sum of its lines) or a return (the sum, negated), or `None`
/// when a line has no price or the sum overflows.
pub fn default_total(kind: Kind, lines: &[ItemLine]) -> Option<i64> {
    let mut sum: i64 = 0;
    for line in lines {
        sum = sum.checked_add(line.line_minor?)?;
    }
    Some(if kind == Kind::Return { -sum } else { sum })
}

/// Checks a given total's sign against its kind: a purchase's is not negative, a
/// return's not positive.
pub fn check_total_sign(kind: Kind, total_minor: i64) -> Result<(), &'static str> {
    match kind {
        Kind::Purchase if total_minor < 0 => Err("must not be negative for a PURCHASE"),
        Kind::Return if total_minor > 0 => Err("must not be positive for a RETURN (refunds are negative)"),
        _ => Ok(()),
    }
}

/// An interaction id for a contact at `occurred_at`: a UUIDv7 carrying that time to the
/// millisecond, so the id names the time partition. `None` before 1970.
pub fn new_id(occurred_at: DateTime<Utc>) -> Option<Uuid> {
    let millis = u64::try_from(occurred_at.timestamp_millis()).ok()?;
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, millis / 1000, ((millis % 1000) * 1_000_000) as u32);
    Some(Uuid::new_v7(ts))
}

/// The millisecond an interaction id carries (its `occurred_at`, truncated), or `None`
/// when the id is not one of ours.
pub fn id_time(id: Uuid) -> Option<DateTime<Utc>> {
    if id.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Utc.timestamp_opt(i64::try_from(secs).ok()?, nanos).single()
}

/// One contact with one customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    /// Time-ordered id ([`new_id`]).
    pub id: Uuid,
    /// The customer it belongs to now; `None` once anonymised.
    pub customer_id: Option<Uuid>,
    /// The customer it was recorded under; `None` once anonymised.
    pub recorded_customer_id: Option<Uuid>,
    /// Where (the contract's channel code).
    pub channel: i16,
    /// What.
    pub kind: Kind,
    /// Who started it.
    pub direction: Direction,
    /// Why the company made the contact (the contract's purpose code; 0 when none).
    pub purpose: i16,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// When it was stored.
    pub recorded_at: DateTime<Utc>,
    /// Product lines.
    pub items: Vec<ItemLine>,
    /// Currency of the lines and total, when any has an amount.
    pub currency: Option<String>,
    /// Total of a purchase or return, in minor units.
    pub total_minor: Option<i64>,
    /// `campaigns/{id}` or empty.
    pub campaign: String,
    /// `offers/{id}` or empty.
    pub offer: String,
    /// The contract's offer response code (0 when none).
    pub offer_response: i16,
    /// `complaints/{id}` or empty.
    pub complaint: String,
    /// `feedback/{id}` or empty.
    pub feedback: String,
    /// `interactions/{id}` followed up, or empty.
    pub related_interaction: String,
    /// How long it lasted, in milliseconds.
    pub duration_ms: Option<i64>,
    /// Staff id or `accountManagers/{id}`, or empty.
    pub handled_by: String,
    /// The reporting system, or empty.
    pub source: String,
    /// The reporting system's reference, or empty.
    pub source_reference: String,
    /// Free notes (may hold personal data).
    pub note: String,
    /// Free context attributes (no personal data).
    pub attributes: BTreeMap<String, String>,
    /// The idempotency key it was recorded with.
    pub request_id: String,
}

impl Interaction {
    /// Whether it counts against the contact policy's frequency caps.
    pub fn is_outbound_contact(&self) -> bool {
        is_outbound_contact(self.kind, self.direction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_directions_are_derived_and_enforced() {
        assert_eq!(Direction::resolve(Kind::MessageSent, None), Ok(Direction::Outbound));
        assert_eq!(Direction::resolve(Kind::MessageClicked, None), Ok(Direction::Inbound));
        assert!(Direction::resolve(Kind::OutboundCall, Some(Direction::Inbound)).is_err());
        assert_eq!(Direction::resolve(Kind::Visit, Some(Direction::Outbound)), Ok(Direction::Outbound));
        assert_eq!(Direction::resolve(Kind::Purchase, None), Ok(Direction::Inbound));
    }

    #[test]
    fn outbound_contacts_are_outbound_calls_messages_and_visits() {
        assert!(is_outbound_contact(Kind::Visit, Direction::Outbound));
        assert!(!is_outbound_contact(Kind::Visit, Direction::Inbound));
        assert!(is_outbound_contact(Kind::MessageSent, Direction::Outbound));
        assert!(!is_outbound_contact(Kind::MessageDelivered, Direction::Outbound));
    }

    #[test]
    fn line_amounts_round_half_away_from_zero() {
        assert_eq!(line_amount(0.75, 1999), Some(1499)); // 1499.25
        assert_eq!(line_amount(0.5, 3), Some(2)); // 1.5
        assert_eq!(line_amount(2.5, 1), Some(3)); // 2.5
        assert_eq!(line_amount(1_000_000.0, i64::MAX), None);
    }

    #[test]
    fn totals_sum_lines_and_returns_are_negative() {
        let line = |minor| ItemLine {
            product_id: "p".into(),
            configuration: String::new(),
            category: String::new(),
            quantity: 1.0,
            unit_minor: Some(minor),
            line_minor: Some(minor),
        };
        assert_eq!(default_total(Kind::Purchase, &[line(100), line(250)]), Some(350));
        assert_eq!(default_total(Kind::Return, &[line(100)]), Some(-100));
        assert!(check_total_sign(Kind::Return, 5).is_err());
        assert!(check_total_sign(Kind::Purchase, -5).is_err());
    }

    #[test]
    fn ids_carry_the_time_of_the_contact() {
        let at =
            Utc.with_ymd_and_hms(2025, 3, 14, 15, 9, 26).single().expect("valid") + chrono::Duration::milliseconds(535);
        let id = new_id(at).expect("after 1970");
        assert_eq!(id_time(id), Some(at));
        assert_eq!(id_time(Uuid::new_v4()), None);
        assert!(new_id(Utc.with_ymd_and_hms(1969, 12, 31, 0, 0, 0).single().expect("valid")).is_none());
    }
}
