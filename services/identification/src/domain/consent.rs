//! Consent: the ledger's records and how the effective consent for a purpose and
//! channel follows from them. The newest observed decision that covers the pair wins
//! (its own channel's, or the purpose's all-channel one); on a tie, a withdrawal wins
//! over a grant, whichever of the two covers every channel; expired grants no longer
//! count; with nothing recorded the default policy decides: marketing by email or SMS
//! (or everywhere at once) needs permission first, other uses are allowed until the
//! customer objects. The same rule decides over the ledgers of merged customers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::stored_names;

/// What data or a contact is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Purpose {
    /// Marketing messages.
    Marketing,
    /// Profiling to tailor offers.
    Profiling,
    /// Sharing with partners.
    DataSharing,
    /// Service messages.
    Service,
    /// Surveys and feedback requests.
    Research,
}

/// A contact channel a decision covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Channel {
    /// Branch or store.
    Branch,
    /// Web site.
    Web,
    /// Mobile app.
    App,
    /// Call centre.
    CallCentre,
    /// Email.
    Email,
    /// SMS.
    Sms,
    /// Letter or postcard.
    Letter,
    /// Gift.
    Gift,
    /// Event or club.
    Event,
    /// Self-service device.
    SelfService,
    /// Account manager visit.
    AccountManager,
}

stored_names!(Purpose {
    Marketing => "marketing", Profiling => "profiling", DataSharing => "data_sharing",
    Service => "service", Research => "research",
});
stored_names!(Channel {
    Branch => "branch", Web => "web", App => "app", CallCentre => "call_centre", Email => "email",
    Sms => "sms", Letter => "letter", Gift => "gift", Event => "event", SelfService => "self_service",
    AccountManager => "account_manager",
});

/// A decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Permission given.
    Granted,
    /// Permission refused or withdrawn.
    Withdrawn,
}

/// One ledger record, as far as deciding consent needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The record's id.
    pub id: i64,
    /// Its purpose.
    pub purpose: Purpose,
    /// The channel it covers; `None` = every channel of the purpose.
    pub channel: Option<Channel>,
    /// The decision.
    pub decision: Decision,
    /// When the customer decided.
    pub observe_time: DateTime<Utc>,
    /// When a grant lapses.
    pub expire_time: Option<DateTime<Utc>>,
}

/// How an effective consent was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// A record for this very channel.
    Recorded,
    /// The purpose's all-channel record.
    AllChannels,
    /// Nothing (unexpired) recorded: the default policy.
    Default,
}

/// The effective consent for one purpose and channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective<'a> {
    /// The purpose.
    pub purpose: Purpose,
    /// The channel; `None` for the purpose's all-channel decision.
    pub channel: Option<Channel>,
    /// The deciding record, if any.
    pub record: Option<&'a Recorded>,
    /// Whether the purpose and channel may be used now.
    pub allowed: bool,
    /// How it was decided.
    pub basis: Basis,
}

/// Whether a purpose and channel may be used when the customer never said.
pub fn allowed_by_default(purpose: Purpose, channel: Option<Channel>) -> bool {
    !(purpose == Purpose::Marketing && matches!(channel, None | Some(Channel::Email | Channel::Sms)))
}

/// The effective consent for `purpose` on `channel` at `now`, from a customer's records
/// (with those of the customers merged into it): the newest observed unexpired record
/// covering the pair; of records observed at the same instant a withdrawal before a
/// grant, then the last recorded.
pub fn effective(
    records: &[Recorded],
    purpose: Purpose,
    channel: Option<Channel>,
    now: DateTime<Utc>,
) -> Effective<'_> {
    let deciding = records
        .iter()
        .filter(|r| r.purpose == purpose && (r.channel.is_none() || r.channel == channel))
        .filter(|r| !(r.decision == Decision::Granted && r.expire_time.is_some_and(|e| e <= now)))
        .max_by_key(|r| (r.observe_time, r.decision == Decision::Withdrawn, r.id));
    match deciding {
        Some(record) => Effective {
            purpose,
            channel,
            record: Some(record),
            allowed: record.decision == Decision::Granted,
            basis: if record.channel == channel { Basis::Recorded } else { Basis::AllChannels },
        },
        None => Effective {
            purpose,
            channel,
            record: None,
            allowed: allowed_by_default(purpose, channel),
            basis: Basis::Default,
        },
    }
}

/// Every purpose and channel pair with a record, ordered by purpose then channel
/// (all-channel first), narrowed to `purpose` and `channel` when given; a pair asked for
/// exactly is answered even with nothing recorded.
pub fn effective_all(
    records: &[Recorded],
    purpose: Option<Purpose>,
    channel: Option<Channel>,
    now: DateTime<Utc>,
) -> Vec<Effective<'_>> {
    let mut pairs: Vec<(Purpose, Option<Channel>)> = records
        .iter()
        .filter(|r| purpose.is_none_or(|p| p == r.purpose))
        .filter(|r| channel.is_none() || r.channel.is_none() || r.channel == channel)
        .map(|r| (r.purpose, r.channel.or(channel)))
        .collect();
    if let (Some(p), Some(c)) = (purpose, channel) {
        pairs.push((p, Some(c)));
    }
    pairs.sort();
    pairs.dedup();
    pairs.into_iter().map(|(p, c)| effective(records, p, c, now)).collect()
}

/// A full ledger record: the decision and what the customer was shown, where and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    /// The decision as consent logic needs it.
    pub recorded: Recorded,
    /// The purpose statement shown, verbatim.
    pub purpose_statement: String,
    /// Version of the statement or policy.
    pub statement_version: String,
    /// Source system of the decision.
    pub source: String,
    /// The channel the decision was captured through.
    pub captured_channel: Option<Channel>,
    /// Proof of the decision.
    pub evidence_reference: String,
    /// When the service stored it.
    pub record_time: DateTime<Utc>,
    /// The caller that recorded it.
    pub recorded_by: String,
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default() + Duration::hours(hours)
    }

    fn record(id: i64, channel: Option<Channel>, decision: Decision, observed: i64) -> Recorded {
        Recorded { id, purpose: Purpose::Marketing, channel, decision, observe_time: at(observed), expire_time: None }
    }

    #[test]
    fn marketing_email_and_sms_need_permission_first() {
        let none: Vec<Recorded> = vec![];
        for channel in [Some(Channel::Email), Some(Channel::Sms), None] {
            let e = effective(&none, Purpose::Marketing, channel, at(0));
            assert!(!e.allowed, "{channel:?}");
            assert_eq!(e.basis, Basis::Default);
        }
        assert!(effective(&none, Purpose::Marketing, Some(Channel::Letter), at(0)).allowed);
        assert!(effective(&none, Purpose::Service, Some(Channel::Email), at(0)).allowed);
    }

    #[test]
    fn the_newest_observed_decision_wins() {
        let records = vec![
            record(1, Some(Channel::Email), Decision::Granted, 1),
            record(2, Some(Channel::Email), Decision::Withdrawn, 2),
        ];
        let e = effective(&records, Purpose::Marketing, Some(Channel::Email), at(3));
        assert!(!e.allowed);
        assert_eq!(e.record.map(|r| r.id), Some(2));
        // Observation time, not arrival order, decides: a late-arriving older grant loses.
        let late = vec![
            record(2, Some(Channel::Email), Decision::Withdrawn, 2),
            record(3, Some(Channel::Email), Decision::Granted, 1),
        ];
        assert!(!effective(&late, Purpose::Marketing, Some(Channel::Email), at(3)).allowed);
    }

    #[test]
    fn an_all_channel_withdrawal_overrides_older_channel_grants() {
        let records =
            vec![record(1, Some(Channel::Sms), Decision::Granted, 1), record(2, None, Decision::Withdrawn, 2)];
        let e = effective(&records, Purpose::Marketing, Some(Channel::Sms), at(3));
        assert!(!e.allowed);
        assert_eq!(e.basis, Basis::AllChannels);
        // ... and a newer channel grant overrides the all-channel withdrawal for that channel only.
        let mut regranted = records.clone();
        regranted.push(record(3, Some(Channel::Sms), Decision::Granted, 4));
        assert!(effective(&regranted, Purpose::Marketing, Some(Channel::Sms), at(5)).allowed);
        assert!(!effective(&regranted, Purpose::Marketing, Some(Channel::Email), at(5)).allowed);
    }

    #[test]
    fn on_a_tie_a_withdrawal_wins_over_a_grant_whatever_the_record_order() {
        for (grant, withdrawal) in [(1, 2), (2, 1)] {
            let records = vec![
                record(grant, Some(Channel::Email), Decision::Granted, 4),
                record(withdrawal, Some(Channel::Email), Decision::Withdrawn, 4),
            ];
            let e = effective(&records, Purpose::Marketing, Some(Channel::Email), at(9));
            assert_eq!((e.allowed, e.record.map(|r| r.id)), (false, Some(withdrawal)), "grant {grant}");
        }
    }

    #[test]
    fn an_all_channel_withdrawal_wins_a_tie_with_a_channel_grant() {
        let records =
            vec![record(1, None, Decision::Withdrawn, 4), record(2, Some(Channel::Sms), Decision::Granted, 4)];
        let sms = effective(&records, Purpose::Marketing, Some(Channel::Sms), at(9));
        assert_eq!((sms.allowed, sms.basis, sms.record.map(|r| r.id)), (false, Basis::AllChannels, Some(1)));
        // A later channel grant still wins over the withdrawal.
        let mut later = records.clone();
        later.push(record(3, Some(Channel::Sms), Decision::Granted, 5));
        assert!(effective(&later, Purpose::Marketing, Some(Channel::Sms), at(9)).allowed);
    }

    #[test]
    fn a_channel_withdrawal_wins_a_tie_with_an_all_channel_grant_on_its_channel_only() {
        // The grant has the higher id, which alone would make it decide everywhere.
        let records =
            vec![record(1, Some(Channel::Sms), Decision::Withdrawn, 4), record(2, None, Decision::Granted, 4)];
        let sms = effective(&records, Purpose::Marketing, Some(Channel::Sms), at(9));
        assert_eq!((sms.allowed, sms.basis, sms.record.map(|r| r.id)), (false, Basis::Recorded, Some(1)));
        let email = effective(&records, Purpose::Marketing, Some(Channel::Email), at(9));
        assert_eq!((email.allowed, email.basis, email.record.map(|r| r.id)), (true, Basis::AllChannels, Some(2)));
        let everywhere = effective(&records, Purpose::Marketing, None, at(9));
        assert_eq!((everywhere.allowed, everywhere.record.map(|r| r.id)), (true, Some(2)));
        let listed: Vec<(Option<Channel>, bool)> =
            effective_all(&records, None, None, at(9)).iter().map(|e| (e.channel, e.allowed)).collect();
        assert_eq!(listed, [(None, true), (Some(Channel::Sms), false)]);
    }

    #[test]
    fn a_tie_of_the_same_decision_is_settled_by_record_order() {
        let records = vec![record(1, None, Decision::Granted, 4), record(2, Some(Channel::Sms), Decision::Granted, 4)];
        let sms = effective(&records, Purpose::Marketing, Some(Channel::Sms), at(9));
        assert_eq!((sms.allowed, sms.record.map(|r| r.id)), (true, Some(2)));
    }

    #[test]
    fn an_expired_grant_no_longer_counts() {
        let mut grant = record(1, Some(Channel::Email), Decision::Granted, 1);
        grant.expire_time = Some(at(10));
        let records = vec![grant];
        assert!(effective(&records, Purpose::Marketing, Some(Channel::Email), at(9)).allowed);
        let expired = effective(&records, Purpose::Marketing, Some(Channel::Email), at(10));
        assert!(!expired.allowed);
        assert_eq!(expired.basis, Basis::Default);
    }

    #[test]
    fn listing_answers_recorded_pairs_and_the_exact_pair_asked_for() {
        let records = vec![record(1, Some(Channel::Email), Decision::Granted, 1)];
        let all = effective_all(&records, None, None, at(2));
        assert_eq!(all.len(), 1);
        let asked = effective_all(&records, Some(Purpose::Profiling), Some(Channel::Web), at(2));
        assert_eq!(asked.len(), 1);
        assert_eq!((asked[0].purpose, asked[0].basis), (Purpose::Profiling, Basis::Default));
    }
}
