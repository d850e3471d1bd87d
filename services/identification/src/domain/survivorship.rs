//! Survivorship: what a customer keeps when others are merged into it (and what each
//! side keeps again after an unmerge).
//!
//! - Profile facts: every fact is kept; each customer field shows the key's current
//!   fact by the usual rule (newest trusted value), whichever part it came from.
//! - Identifiers: the union, within the per-kind limits; the lowest priority, then the
//!   least recently seen (then the oldest), is retired first. A value held twice (a
//!   shared household address) is kept once.
//! - Consents: the ledgers are read together, and per purpose × channel the rule of
//!   [`consent::effective`] decides (the most recently observed record; on a tie, a
//!   withdrawal over a grant), whichever ledger a record came from.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::{
    BirthDate,
    consent::{self, Channel, Effective, Purpose, Recorded},
    facts::{self, Fact, FactValue},
    identifier::{Identifier, IdentifierKind},
};

/// An identifier a customer holds, as survivorship ranks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldIdentifier {
    /// Its id.
    pub id: i64,
    /// The normalised value.
    pub identifier: Identifier,
    /// Preference among the customer's identifiers of its kind, higher first.
    pub priority: i16,
    /// The last time a contact presented it.
    pub last_seen: DateTime<Utc>,
}

impl HeldIdentifier {
    /// Retirement order: lowest priority first, then least recently seen, then oldest.
    fn rank(&self) -> (i16, DateTime<Utc>, i64) {
        (self.priority, self.last_seen, self.id)
    }
}

/// Why an identifier is retired by a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retirement {
    /// The customer holds the same value through another identifier, which it keeps.
    Duplicate {
        /// The identifier kept.
        kept: i64,
    },
    /// Its kind is over the limit.
    OverLimit {
        /// The kind's limit.
        limit: usize,
    },
}

/// The identifiers one customer must retire to hold `held` (its active identifiers after
/// a merge) within `limit` per kind: repeated values first (keeping the best-ranked
/// copy), then, per kind, the lowest-ranked beyond the limit. Ordered by id.
pub fn identifiers_to_retire(
    held: &[HeldIdentifier],
    limit: impl Fn(IdentifierKind) -> usize,
) -> Vec<(i64, Retirement)> {
    let mut retired = Vec::new();
    let mut by_value: HashMap<&Identifier, Vec<&HeldIdentifier>> = HashMap::new();
    for h in held {
        by_value.entry(&h.identifier).or_default().push(h);
    }
    let mut kept: Vec<&HeldIdentifier> = Vec::with_capacity(held.len());
    for copies in by_value.into_values() {
        let Some(best) = copies.iter().copied().max_by_key(|h| h.rank()) else { continue };
        kept.push(best);
        retired
            .extend(copies.iter().filter(|h| h.id != best.id).map(|h| (h.id, Retirement::Duplicate { kept: best.id })));
    }
    let mut by_kind: HashMap<IdentifierKind, Vec<&HeldIdentifier>> = HashMap::new();
    for h in kept {
        by_kind.entry(h.identifier.kind).or_default().push(h);
    }
    for (kind, mut same_kind) in by_kind {
        let limit = limit(kind);
        if same_kind.len() <= limit {
            continue;
        }
        same_kind.sort_by_key(|h| h.rank());
        let excess = same_kind.len() - limit;
        retired.extend(same_kind.into_iter().take(excess).map(|h| (h.id, Retirement::OverLimit { limit })));
    }
    retired.sort_by_key(|(id, _)| *id);
    retired
}

/// The effective consents, after a merge or an unmerge, of every purpose × channel pair
/// whose decision changed (its deciding record, or whether it is allowed), given the
/// records of the merge family before and after. Ordered by purpose then channel.
pub fn changed_consents<'a>(before: &[Recorded], after: &'a [Recorded], now: DateTime<Utc>) -> Vec<Effective<'a>> {
    let pairs: BTreeSet<(Purpose, Option<Channel>)> = consent::effective_all(before, None, None, now)
        .iter()
        .chain(consent::effective_all(after, None, None, now).iter())
        .map(|e| (e.purpose, e.channel))
        .collect();
    pairs
        .into_iter()
        .filter_map(|(purpose, channel)| {
            let was = consent::effective(before, purpose, channel, now);
            let is = consent::effective(after, purpose, channel, now);
            let changed = was.allowed != is.allowed || was.record.map(|r| r.id) != is.record.map(|r| r.id);
            changed.then_some(is)
        })
        .collect()
}

/// The customer fields as their current facts say (empty or unset where nothing is
/// known), to store on a customer after its facts changed hands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldValues {
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Name to show.
    pub display_name: String,
    /// Name to be called by.
    pub preferred_name: String,
    /// Organisation name.
    pub organization_name: String,
    /// Birth date.
    pub birth_date: Option<BirthDate>,
    /// Role at the parent organisation.
    pub job_title: String,
    /// BCP 47 language tag.
    pub preferred_language: String,
    /// IANA time zone.
    pub time_zone: String,
    /// Preferred channel's name.
    pub preferred_channel: String,
}

/// The customer fields from a customer's facts (of any keys; others are ignored).
pub fn field_values(all: &[Fact]) -> FieldValues {
    let mut fields = FieldValues::default();
    for fact in facts::current_per_key(all) {
        let text = match &fact.value {
            FactValue::String(s) => s.clone(),
            _ => String::new(),
        };
        match fact.key.as_str() {
            "given_name" => fields.given_name = text,
            "family_name" => fields.family_name = text,
            "display_name" => fields.display_name = text,
            "preferred_name" => fields.preferred_name = text,
            "organization_name" => fields.organization_name = text,
            "job_title" => fields.job_title = text,
            "preferred_language" => fields.preferred_language = text,
            "time_zone" => fields.time_zone = text,
            "preferred_channel" => fields.preferred_channel = text,
            "birth_date" => {
                fields.birth_date = match fact.value {
                    FactValue::Date(d) => Some(d),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone as _};
    use uuid::Uuid;

    use super::*;
    use crate::domain::{consent::Decision, facts::FactKey};

    fn at(hours: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().unwrap_or_default() + Duration::hours(hours)
    }

    fn holding(id: i64, kind: IdentifierKind, value: &str, priority: i16, seen: i64) -> HeldIdentifier {
        HeldIdentifier {
            id,
            identifier: Identifier { kind, namespace: String::new(), value: value.to_owned() },
            priority,
            last_seen: at(seen),
        }
    }

    fn limits(kind: IdentifierKind) -> usize {
        match kind {
            IdentifierKind::Email | IdentifierKind::Phone | IdentifierKind::LoyaltyCard => 5,
            IdentifierKind::PostalAddress => 3,
            IdentifierKind::AccountNumber => 10,
            IdentifierKind::DeviceId | IdentifierKind::ExternalId => 20,
            IdentifierKind::NationalId => 1,
        }
    }

    #[test]
    fn the_union_within_limits_retires_nothing() {
        let held = [
            holding(1, IdentifierKind::Email, "a@example.org", 50, 1),
            holding(2, IdentifierKind::Email, "b@example.org", 50, 2),
            holding(3, IdentifierKind::Phone, "+33612345678", 50, 3),
        ];
        assert_eq!(identifiers_to_retire(&held, limits), vec![]);
    }

    #[test]
    fn over_the_limit_the_lowest_priority_goes_first() {
        let held = [
            holding(1, IdentifierKind::PostalAddress, "1 rue a", 90, 1),
            holding(2, IdentifierKind::PostalAddress, "2 rue b", 10, 9),
            holding(3, IdentifierKind::PostalAddress, "3 rue c", 60, 2),
            holding(4, IdentifierKind::PostalAddress, "4 rue d", 40, 3),
        ];
        assert_eq!(identifiers_to_retire(&held, limits), vec![(2, Retirement::OverLimit { limit: 3 })]);
    }

    #[test]
    fn on_equal_priority_the_least_recently_seen_goes_first() {
        let held = [
            holding(7, IdentifierKind::NationalId, "1850312345678", 50, 5),
            holding(3, IdentifierKind::NationalId, "2870412345678", 50, 2),
        ];
        assert_eq!(identifiers_to_retire(&held, limits), vec![(3, Retirement::OverLimit { limit: 1 })]);
        // Seen at the same time too: the oldest goes.
        let tied = [
            holding(7, IdentifierKind::NationalId, "1850312345678", 50, 5),
            holding(3, IdentifierKind::NationalId, "2870412345678", 50, 5),
        ];
        assert_eq!(identifiers_to_retire(&tied, limits), vec![(3, Retirement::OverLimit { limit: 1 })]);
    }

    #[test]
    fn limits_are_a_parameter() {
        let held: Vec<HeldIdentifier> =
            (1..=4).map(|i| holding(i, IdentifierKind::Email, &format!("{i}@example.org"), 50, i)).collect();
        let retired = identifiers_to_retire(&held, |_| 2);
        assert_eq!(retired.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn a_value_held_twice_is_kept_once_and_does_not_count_twice() {
        let held = [
            holding(1, IdentifierKind::PostalAddress, "1 rue a", 50, 1),
            holding(2, IdentifierKind::PostalAddress, "2 rue b", 50, 2),
            holding(3, IdentifierKind::PostalAddress, "3 rue c", 50, 3),
            holding(4, IdentifierKind::PostalAddress, "1 rue a", 70, 0),
        ];
        assert_eq!(identifiers_to_retire(&held, limits), vec![(1, Retirement::Duplicate { kept: 4 })]);
    }

    fn record(id: i64, channel: Option<Channel>, decision: Decision, observed: i64) -> Recorded {
        Recorded { id, purpose: Purpose::Marketing, channel, decision, observe_time: at(observed), expire_time: None }
    }

    #[test]
    fn the_most_recently_observed_consent_wins_whichever_ledger_it_came_from() {
        let survivor = record(1, Some(Channel::Email), Decision::Granted, 5);
        let part = record(2, Some(Channel::Email), Decision::Withdrawn, 3);
        let union = [survivor, part];
        let e = consent::effective(&union, Purpose::Marketing, Some(Channel::Email), at(9));
        assert_eq!((e.allowed, e.record.map(|r| r.id)), (true, Some(1)));
        // On a tie the part's withdrawal wins, though recorded first (see consent::effective).
        let tied = [record(2, Some(Channel::Email), Decision::Withdrawn, 4), record(3, None, Decision::Granted, 4)];
        let e = consent::effective(&tied, Purpose::Marketing, Some(Channel::Email), at(9));
        assert_eq!((e.allowed, e.record.map(|r| r.id)), (false, Some(2)));
    }

    #[test]
    fn only_pairs_whose_decision_changed_are_reported() {
        let survivor = vec![
            record(1, Some(Channel::Email), Decision::Granted, 1),
            record(2, Some(Channel::Sms), Decision::Granted, 5),
        ];
        let mut union = survivor.clone();
        union.push(record(3, Some(Channel::Email), Decision::Withdrawn, 2));
        union.push(record(4, Some(Channel::Sms), Decision::Withdrawn, 1));
        let changed = changed_consents(&survivor, &union, at(9));
        assert_eq!(changed.len(), 1);
        assert_eq!((changed[0].channel, changed[0].allowed), (Some(Channel::Email), false));
        // A restored customer's own pairs are all new to it.
        let restored = vec![record(3, Some(Channel::Email), Decision::Withdrawn, 2)];
        assert_eq!(changed_consents(&[], &restored, at(9)).len(), 1);
    }

    fn fact(id: i64, key: &str, value: FactValue, trusted: bool, observed: i64) -> Fact {
        Fact {
            id,
            key: FactKey::parse(key).unwrap_or_else(|e| panic!("{key}: {e}")),
            value,
            source: "crm".into(),
            channel: String::new(),
            trusted,
            observe_time: at(observed),
            record_time: at(observed),
            recorded_by: "test".into(),
            origin_customer: Uuid::nil(),
        }
    }

    #[test]
    fn fields_show_the_newest_trusted_fact_of_either_part() {
        let birth = BirthDate { year: Some(1990), month: 12, day: 10 };
        let all = [
            fact(1, "given_name", FactValue::String("Ada".into()), true, 1),
            fact(2, "given_name", FactValue::String("Augusta".into()), true, 4),
            fact(3, "given_name", FactValue::String("Bought".into()), false, 9),
            fact(4, "birth_date", FactValue::Date(birth), true, 2),
            fact(5, "family_name", FactValue::String("King".into()), true, 1),
            fact(6, "family_name", FactValue::Cleared, true, 3),
            fact(7, "preference.topic", FactValue::String("maths".into()), true, 1),
        ];
        let fields = field_values(&all);
        assert_eq!(fields.given_name, "Augusta");
        assert_eq!(fields.family_name, "", "a cleared value leaves the field empty");
        assert_eq!(fields.birth_date, Some(birth));
        assert_eq!(fields.display_name, "", "nothing known");
    }
}
