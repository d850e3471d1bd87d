//! Per-kind identifier limits: how many identifiers of one kind a customer may hold at
//! once, and which held one is retired to make room for a new one. The limits
//! themselves are service configuration; this module only applies them.

use chrono::{DateTime, Utc};

use super::identifier::{Identifier, IdentifierKind};

/// Priority of an identifier added without one.
pub const DEFAULT_PRIORITY: i16 = 50;

/// An identifier a customer holds, as far as its limit is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Its id.
    pub id: i64,
    /// Preference among the customer's identifiers of its kind, 1–100, higher first.
    pub priority: i16,
    /// The last time a contact presented it.
    pub last_seen: DateTime<Utc>,
}

/// Why no room can be made for a new identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitRefusal {
    /// National ids are never replaced silently: one must be removed first.
    NationalId {
        /// The limit reached.
        limit: usize,
    },
    /// Every held identifier ranks above the new one, so it would be the one retired.
    NewRanksLowest {
        /// The limit reached.
        limit: usize,
    },
}

impl std::fmt::Display for LimitRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NationalId { limit } => write!(
                f,
                "the customer already holds {limit} national id(s), the limit; national ids are never replaced \
                 silently: remove one first"
            ),
            Self::NewRanksLowest { limit } => write!(
                f,
                "the customer already holds {limit} identifier(s) of this kind, the limit, all of higher priority \
                 than the new one; raise its priority or remove one first"
            ),
        }
    }
}

impl std::error::Error for LimitRefusal {}

/// The ids of the held identifiers of `kind` to retire so that a new one of
/// `new_priority` fits within `limit`: none while there is room; otherwise the lowest
/// priority first, ties broken by the least recently seen (then the oldest id). The new
/// identifier counts as the most recently seen, so it loses only to strictly higher
/// priorities. `held` are the customer's active identifiers of that kind, without the
/// new value. More than one is retired when the limit was lowered below what is held.
pub fn make_room(
    kind: IdentifierKind,
    limit: usize,
    held: &[Held],
    new_priority: i16,
) -> Result<Vec<i64>, LimitRefusal> {
    let excess = (held.len() + 1).saturating_sub(limit);
    if excess == 0 {
        return Ok(Vec::new());
    }
    if kind == IdentifierKind::NationalId {
        return Err(LimitRefusal::NationalId { limit });
    }
    // Held identifiers retired before the new one would be: lower priority, or equal
    // priority (the new one is the most recently seen).
    let below_new = held.iter().filter(|h| h.priority <= new_priority).count();
    if below_new < excess {
        return Err(LimitRefusal::NewRanksLowest { limit });
    }
    let mut order: Vec<&Held> = held.iter().collect();
    order.sort_by_key(|h| (h.priority, h.last_seen, h.id));
    Ok(order.into_iter().take(excess).map(|h| h.id).collect())
}

/// The position of the first identifier that takes its kind beyond `limit` (for a
/// request attaching several at once, which may not exceed the limits).
pub fn first_over_limit(identifiers: &[Identifier], limit: impl Fn(IdentifierKind) -> usize) -> Option<usize> {
    let mut counts: std::collections::HashMap<IdentifierKind, usize> = std::collections::HashMap::new();
    identifiers.iter().position(|i| {
        let count = counts.entry(i.kind).or_default();
        *count += 1;
        *count > limit(i.kind)
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn held(id: i64, priority: i16, day: u32) -> Held {
        let last_seen = Utc.with_ymd_and_hms(2026, 1, day, 12, 0, 0).single().unwrap_or_default();
        Held { id, priority, last_seen }
    }

    #[test]
    fn nothing_is_retired_below_the_limit() {
        let held = [held(1, 50, 1), held(2, 50, 2)];
        assert_eq!(make_room(IdentifierKind::Email, 3, &held, 50), Ok(vec![]));
        assert_eq!(make_room(IdentifierKind::NationalId, 1, &[], 50), Ok(vec![]));
    }

    #[test]
    fn the_lowest_priority_is_retired_at_the_limit() {
        let held = [held(1, 80, 1), held(2, 20, 9), held(3, 60, 2)];
        assert_eq!(make_room(IdentifierKind::Phone, 3, &held, 50), Ok(vec![2]));
    }

    #[test]
    fn ties_retire_the_least_recently_seen() {
        let held = [held(1, 50, 5), held(2, 50, 3), held(3, 50, 7)];
        assert_eq!(make_room(IdentifierKind::Email, 3, &held, 50), Ok(vec![2]));
    }

    #[test]
    fn a_new_identifier_ranking_lowest_is_refused() {
        let held = [held(1, 80, 1), held(2, 60, 2)];
        assert_eq!(make_room(IdentifierKind::Email, 2, &held, 10), Err(LimitRefusal::NewRanksLowest { limit: 2 }));
        // An equal priority wins over the held one: the new one is the most recently seen.
        assert_eq!(make_room(IdentifierKind::Email, 2, &held, 60), Ok(vec![2]));
    }

    #[test]
    fn national_ids_are_never_replaced() {
        let held = [held(1, 1, 1)];
        assert_eq!(make_room(IdentifierKind::NationalId, 1, &held, 100), Err(LimitRefusal::NationalId { limit: 1 }));
    }

    #[test]
    fn a_lowered_limit_retires_enough_to_fit() {
        let held = [held(1, 50, 1), held(2, 40, 1), held(3, 30, 1), held(4, 90, 1)];
        assert_eq!(make_room(IdentifierKind::DeviceId, 2, &held, 50), Ok(vec![3, 2, 1]));
    }

    #[test]
    fn a_zero_limit_refuses_the_kind() {
        assert_eq!(make_room(IdentifierKind::Email, 0, &[], 100), Err(LimitRefusal::NewRanksLowest { limit: 0 }));
    }

    #[test]
    fn the_first_identifier_over_its_kinds_limit_is_named() {
        let id = |kind, value: &str| Identifier { kind, namespace: String::new(), value: value.to_owned() };
        let ids = [
            id(IdentifierKind::Email, "a@example.org"),
            id(IdentifierKind::NationalId, "AB123"),
            id(IdentifierKind::Email, "b@example.org"),
            id(IdentifierKind::NationalId, "CD456"),
        ];
        let limit = |kind| if kind == IdentifierKind::NationalId { 1 } else { 5 };
        assert_eq!(first_over_limit(&ids, limit), Some(3));
        assert_eq!(first_over_limit(&ids[..3], limit), None);
    }
}
