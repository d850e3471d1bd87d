//! The contact policy: may the company contact a customer on a channel for a purpose at
//! a time? Pure rules over facts gathered elsewhere (do-not-contact entry, consent,
//! open complaints, recent outbound contacts, the customer's time zone).

use chrono::{DateTime, Duration, NaiveTime, TimeZone as _, Timelike as _, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A channel a contact is made on (the proto's `Channel`, by its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Channel(pub i16);

/// Why a contact is made (the proto's `ConsentPurpose`, by its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Purpose(pub i16);

impl Channel {
    /// Email.
    pub const EMAIL: Self = Self(5);
    /// SMS.
    pub const SMS: Self = Self(6);
}

impl Purpose {
    /// Marketing messages.
    pub const MARKETING: Self = Self(1);
    /// Service messages of a contract.
    pub const SERVICE: Self = Self(4);
    /// Surveys and feedback requests.
    pub const RESEARCH: Self = Self(5);
}

/// At most `max_contacts` outbound contacts matching `channel` and `purpose` (None: any)
/// in any rolling `window_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrequencyCap {
    /// Identifies the cap in denials.
    pub cap_id: String,
    /// The channel counted; None counts every channel together.
    pub channel: Option<Channel>,
    /// The purpose counted; None counts every purpose together.
    pub purpose: Option<Purpose>,
    /// Most contacts allowed in the window (0 forbids the contact).
    pub max_contacts: u32,
    /// The rolling window, in seconds.
    pub window_secs: i64,
}

impl FrequencyCap {
    fn matches(&self, channel: Channel, purpose: Purpose) -> bool {
        self.channel.is_none_or(|c| c == channel) && self.purpose.is_none_or(|p| p == purpose)
    }
}

/// A daily quiet span, local to the customer: `start` inclusive to `end` exclusive, in
/// minutes after midnight; `end < start` crosses midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    /// Channels it applies to; empty means all.
    pub channels: Vec<Channel>,
    /// Purposes it applies to; empty means all.
    pub purposes: Vec<Purpose>,
    /// Start, minutes after local midnight.
    pub start_minute: u16,
    /// End, minutes after local midnight; differs from `start_minute`.
    pub end_minute: u16,
}

impl QuietHours {
    fn applies(&self, channel: Channel, purpose: Purpose) -> bool {
        (self.channels.is_empty() || self.channels.contains(&channel))
            && (self.purposes.is_empty() || self.purposes.contains(&purpose))
    }

    /// When the quiet span containing `at` (in `tz`) ends; None when `at` is not in it.
    pub fn until(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&tz);
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let (start, end) = (self.start_minute, self.end_minute);
        let end_day_offset = if start < end {
            if !(start..end).contains(&minute) {
                return None;
            }
            0
        } else if minute >= start {
            1
        } else if minute < end {
            0
        } else {
            return None;
        };
        let end_time = NaiveTime::from_hms_opt(u32::from(end / 60), u32::from(end % 60), 0)?;
        let end_local = (local.date_naive() + Duration::days(end_day_offset)).and_time(end_time);
        // A local time skipped by a DST change ends the span at the first instant after it.
        let mut candidate = end_local;
        for _ in 0..4 {
            if let Some(t) = tz.from_local_datetime(&candidate).earliest() {
                return Some(t.with_timezone(&Utc).max(at + Duration::seconds(1)));
            }
            candidate += Duration::minutes(30);
        }
        None
    }
}

/// The rules every outbound contact is checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Frequency caps, at most 100, unique ids.
    pub frequency_caps: Vec<FrequencyCap>,
    /// Quiet spans, at most 20.
    pub quiet_hours: Vec<QuietHours>,
    /// IANA zone for quiet hours when the customer's own is unknown.
    pub default_time_zone: String,
    /// Purposes that need no recorded consent.
    pub consent_exempt_purposes: Vec<Purpose>,
    /// Purposes blocked while the customer has an open complaint.
    pub open_complaint_blocked_purposes: Vec<Purpose>,
}

impl Default for Policy {
    /// The initial policy: no caps, no quiet hours, UTC, service messages need no
    /// consent, marketing and research wait for open complaints to be resolved.
    fn default() -> Self {
        Self {
            frequency_caps: Vec::new(),
            quiet_hours: Vec::new(),
            default_time_zone: "UTC".to_owned(),
            consent_exempt_purposes: vec![Purpose::SERVICE],
            open_complaint_blocked_purposes: vec![Purpose::MARKETING, Purpose::RESEARCH],
        }
    }
}

impl Policy {
    /// The longest cap window, in seconds: how far back contacts matter (0 without caps).
    pub fn longest_window_secs(&self) -> i64 {
        self.frequency_caps.iter().map(|c| c.window_secs).max().unwrap_or(0)
    }
}

/// A do-not-contact entry: channels and purposes blocked (empty: all), until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoNotContact {
    /// Channels blocked; empty means all.
    pub channels: Vec<Channel>,
    /// Purposes blocked; empty means all.
    pub purposes: Vec<Purpose>,
    /// When the entry stops applying; None means never.
    pub expire_time: Option<DateTime<Utc>>,
}

impl DoNotContact {
    /// Whether the entry blocks this contact at `at`.
    pub fn blocks(&self, channel: Channel, purpose: Purpose, at: DateTime<Utc>) -> bool {
        self.expire_time.is_none_or(|e| at < e)
            && (self.channels.is_empty() || self.channels.contains(&channel))
            && (self.purposes.is_empty() || self.purposes.contains(&purpose))
    }
}

/// One recorded consent decision held locally: for a channel, or (None) for every
/// channel of the purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentCopy {
    /// The channel; None for the purpose's all-channel decision.
    pub channel: Option<Channel>,
    /// Granted (true) or withdrawn (false).
    pub granted: bool,
    /// When the customer decided.
    pub observe_time: DateTime<Utc>,
    /// When a grant lapses.
    pub expire_time: Option<DateTime<Utc>>,
}

/// What consent says about a purpose and channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// The contact is consented (or needs no consent).
    Allowed,
    /// The customer has not consented.
    Denied,
    /// Consent could not be verified: the check fails closed.
    Unknown,
}

/// Whether nothing recorded allows the contact: identification's default policy, under
/// which marketing by email and SMS needs permission first.
pub fn allowed_by_default(purpose: Purpose, channel: Channel) -> bool {
    !(purpose == Purpose::MARKETING && matches!(channel, Channel::EMAIL | Channel::SMS))
}

/// Consent for `purpose` on `channel` from the local copy of the customer's decisions
/// for that purpose (the channel's own and the all-channel one): the most recently
/// observed wins, a withdrawal winning a tie. None when the deciding grant has expired
/// (the copy cannot tell what applies beneath it: ask identification).
pub fn consent_from_copy(
    copies: &[ConsentCopy],
    purpose: Purpose,
    channel: Channel,
    at: DateTime<Utc>,
) -> Option<bool> {
    let deciding =
        copies.iter().filter(|c| c.channel.is_none_or(|ch| ch == channel)).max_by_key(|c| (c.observe_time, !c.granted));
    match deciding {
        None => Some(allowed_by_default(purpose, channel)),
        Some(c) if c.granted && c.expire_time.is_some_and(|e| e <= at) => None,
        Some(c) => Some(c.granted),
    }
}

/// One outbound contact counted against the caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountedContact {
    /// Its channel.
    pub channel: Channel,
    /// Its purpose.
    pub purpose: Purpose,
    /// When it happened.
    pub time: DateTime<Utc>,
}

/// Everything a decision is made from.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The policy in force.
    pub policy: &'a Policy,
    /// The contact's channel.
    pub channel: Channel,
    /// The contact's purpose.
    pub purpose: Purpose,
    /// When the contact would happen.
    pub at: DateTime<Utc>,
    /// The customer's do-not-contact entry.
    pub do_not_contact: Option<&'a DoNotContact>,
    /// What consent says (ignored for exempt purposes).
    pub consent: Consent,
    /// The customer's oldest open complaint.
    pub open_complaint: Option<Uuid>,
    /// The customer's outbound contacts within the longest cap window (any order).
    pub contacts: &'a [CountedContact],
    /// The zone quiet hours are evaluated in.
    pub time_zone: Tz,
}

/// One reason a contact is denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// On the do-not-contact list.
    DoNotContact {
        /// When the entry expires.
        expire_time: Option<DateTime<Utc>>,
    },
    /// No consent for the purpose and channel.
    NoConsent,
    /// Consent could not be verified.
    ConsentUnknown,
    /// An open complaint blocks the purpose.
    OpenComplaint {
        /// The oldest open complaint.
        complaint: Uuid,
    },
    /// A frequency cap is reached.
    FrequencyCap {
        /// The cap's id.
        cap_id: String,
        /// Its limit.
        max_contacts: u32,
        /// Contacts counted in the window ending at the checked time.
        contact_count: u32,
        /// Its window, in seconds.
        window_secs: i64,
        /// When one more contact fits (None when the cap forbids every contact).
        free_time: Option<DateTime<Utc>>,
    },
    /// The time falls in quiet hours.
    QuietHours {
        /// When the quiet span ends.
        until: DateTime<Utc>,
    },
}

impl Denial {
    /// When the denial stops applying by itself; None for denials without a known end.
    fn end(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::FrequencyCap { free_time, .. } => *free_time,
            Self::QuietHours { until } => Some(*until),
            _ => None,
        }
    }
}

/// The answer of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Every reason that denies the contact, in the contract's order; empty when allowed.
    pub denials: Vec<Denial>,
    /// When every denial is temporary: the earliest time none applies.
    pub earliest_allowed_time: Option<DateTime<Utc>>,
}

impl Decision {
    /// Whether the contact may be made.
    pub fn allowed(&self) -> bool {
        self.denials.is_empty()
    }
}

/// Decides a contact: every denial that applies, in the order do-not-contact, consent,
/// open complaint, frequency caps (policy order), quiet hours.
pub fn decide(facts: &Facts<'_>) -> Decision {
    let denials = denials_at(facts, facts.at);
    let earliest_allowed_time = earliest_allowed(facts, &denials);
    Decision { denials, earliest_allowed_time }
}

fn denials_at(facts: &Facts<'_>, at: DateTime<Utc>) -> Vec<Denial> {
    let Facts { policy, channel, purpose, .. } = *facts;
    let mut denials = Vec::new();
    if let Some(entry) = facts.do_not_contact
        && entry.blocks(channel, purpose, at)
    {
        denials.push(Denial::DoNotContact { expire_time: entry.expire_time });
    }
    if !policy.consent_exempt_purposes.contains(&purpose) {
        match facts.consent {
            Consent::Allowed => {}
            Consent::Denied => denials.push(Denial::NoConsent),
            Consent::Unknown => denials.push(Denial::ConsentUnknown),
        }
    }
    if let Some(complaint) = facts.open_complaint
        && policy.open_complaint_blocked_purposes.contains(&purpose)
    {
        denials.push(Denial::OpenComplaint { complaint });
    }
    for cap in policy.frequency_caps.iter().filter(|c| c.matches(channel, purpose)) {
        if let Some(denial) = cap_denial(cap, facts.contacts, at) {
            denials.push(denial);
        }
    }
    let quiet_until = policy
        .quiet_hours
        .iter()
        .filter(|q| q.applies(channel, purpose))
        .filter_map(|q| q.until(at, facts.time_zone))
        .max();
    if let Some(until) = quiet_until {
        denials.push(Denial::QuietHours { until });
    }
    denials
}

/// The cap's denial at `at`, counting the matching contacts of the window before `at`
/// (and any recorded after it: contacts known now all count).
fn cap_denial(cap: &FrequencyCap, contacts: &[CountedContact], at: DateTime<Utc>) -> Option<Denial> {
    let window = Duration::seconds(cap.window_secs);
    let mut times: Vec<DateTime<Utc>> =
        contacts.iter().filter(|c| c.time > at - window && cap.matches(c.channel, c.purpose)).map(|c| c.time).collect();
    let count = times.len() as u32;
    if count < cap.max_contacts {
        return None;
    }
    times.sort_unstable();
    // One more fits once count - max + 1 contacts have left the window.
    let free_time = (cap.max_contacts > 0).then(|| times[(count - cap.max_contacts) as usize] + window);
    Some(Denial::FrequencyCap {
        cap_id: cap.cap_id.clone(),
        max_contacts: cap.max_contacts,
        contact_count: count,
        window_secs: cap.window_secs,
        free_time,
    })
}

/// When every denial is temporary: the first time none applies, found by moving to the
/// end of the latest denial until nothing denies (quiet hours may begin as a cap frees).
fn earliest_allowed(facts: &Facts<'_>, denials: &[Denial]) -> Option<DateTime<Utc>> {
    let mut current = denials.to_vec();
    let mut time = facts.at;
    for _ in 0..16 {
        if current.is_empty() {
            return (time > facts.at).then_some(time);
        }
        let ends: Option<Vec<DateTime<Utc>>> = current.iter().map(Denial::end).collect();
        time = ends?.into_iter().max()?;
        current = denials_at(facts, time);
    }
    None
}

/// Parses an IANA time zone name.
pub fn parse_time_zone(name: &str) -> Option<Tz> {
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("a valid RFC 3339 time")
    }

    fn sms_marketing_cap() -> FrequencyCap {
        FrequencyCap {
            cap_id: "sms-marketing-weekly".into(),
            channel: Some(Channel::SMS),
            purpose: Some(Purpose::MARKETING),
            max_contacts: 2,
            window_secs: 7 * 86_400,
        }
    }

    fn facts<'a>(policy: &'a Policy, contacts: &'a [CountedContact], at: DateTime<Utc>) -> Facts<'a> {
        Facts {
            policy,
            channel: Channel::SMS,
            purpose: Purpose::MARKETING,
            at,
            do_not_contact: None,
            consent: Consent::Allowed,
            open_complaint: None,
            contacts,
            time_zone: Tz::UTC,
        }
    }

    fn sms(time: &str) -> CountedContact {
        CountedContact { channel: Channel::SMS, purpose: Purpose::MARKETING, time: utc(time) }
    }

    #[test]
    fn a_cap_of_two_a_week_denies_the_third_and_frees_when_the_first_leaves_the_window() {
        let policy = Policy { frequency_caps: vec![sms_marketing_cap()], ..Policy::default() };
        let contacts = [sms("2026-03-02T10:00:00Z"), sms("2026-03-04T10:00:00Z")];
        let decision = decide(&facts(&policy, &contacts[..1], utc("2026-03-05T10:00:00Z")));
        assert!(decision.allowed());
        let decision = decide(&facts(&policy, &contacts, utc("2026-03-05T10:00:00Z")));
        let Some(Denial::FrequencyCap { contact_count, free_time, .. }) = decision.denials.first() else {
            panic!("expected a cap denial, got {decision:?}");
        };
        assert_eq!(*contact_count, 2);
        assert_eq!(*free_time, Some(utc("2026-03-09T10:00:00Z")));
        assert_eq!(decision.earliest_allowed_time, Some(utc("2026-03-09T10:00:00Z")));
        // Email marketing and SMS service messages are not counted by this cap.
        let mut other = facts(&policy, &contacts, utc("2026-03-05T10:00:00Z"));
        other.channel = Channel::EMAIL;
        assert!(decide(&other).allowed());
    }

    #[test]
    fn a_zero_cap_denies_with_no_end() {
        let cap = FrequencyCap { max_contacts: 0, ..sms_marketing_cap() };
        let policy = Policy { frequency_caps: vec![cap], ..Policy::default() };
        let decision = decide(&facts(&policy, &[], utc("2026-03-05T10:00:00Z")));
        assert!(matches!(decision.denials[..], [Denial::FrequencyCap { free_time: None, .. }]));
        assert_eq!(decision.earliest_allowed_time, None);
    }

    #[test]
    fn quiet_hours_across_midnight_end_at_the_next_local_morning() {
        let quiet = QuietHours { channels: vec![], purposes: vec![], start_minute: 21 * 60, end_minute: 8 * 60 };
        let paris: Tz = "Europe/Paris".parse().expect("zone");
        // 22:30 in Paris (UTC+1 in winter) is 21:30 UTC: quiet until 08:00 Paris, 07:00 UTC.
        assert_eq!(quiet.until(utc("2026-01-15T21:30:00Z"), paris), Some(utc("2026-01-16T07:00:00Z")));
        // 06:00 Paris: still quiet, until 08:00 the same day.
        assert_eq!(quiet.until(utc("2026-01-16T05:00:00Z"), paris), Some(utc("2026-01-16T07:00:00Z")));
        // 12:00 Paris: not quiet.
        assert_eq!(quiet.until(utc("2026-01-16T11:00:00Z"), paris), None);
        // Summer time: 08:00 Paris is 06:00 UTC.
        assert_eq!(quiet.until(utc("2026-07-15T21:00:00Z"), paris), Some(utc("2026-07-16T06:00:00Z")));
    }

    #[test]
    fn quiet_hours_within_a_day_and_limited_to_channels() {
        let quiet =
            QuietHours { channels: vec![Channel::SMS], purposes: vec![], start_minute: 12 * 60, end_minute: 14 * 60 };
        let policy = Policy { quiet_hours: vec![quiet], ..Policy::default() };
        let at = utc("2026-01-16T12:30:00Z");
        let decision = decide(&facts(&policy, &[], at));
        assert_eq!(decision.denials, vec![Denial::QuietHours { until: utc("2026-01-16T14:00:00Z") }]);
        assert_eq!(decision.earliest_allowed_time, Some(utc("2026-01-16T14:00:00Z")));
        let mut email = facts(&policy, &[], at);
        email.channel = Channel::EMAIL;
        assert!(decide(&email).allowed());
    }

    #[test]
    fn every_reason_is_listed_in_order_and_permanent_ones_leave_no_earliest_time() {
        let quiet = QuietHours { channels: vec![], purposes: vec![], start_minute: 0, end_minute: 23 * 60 };
        let policy = Policy {
            frequency_caps: vec![FrequencyCap { max_contacts: 0, ..sms_marketing_cap() }],
            quiet_hours: vec![quiet],
            ..Policy::default()
        };
        let dnc = DoNotContact { channels: vec![], purposes: vec![], expire_time: None };
        let complaint = Uuid::nil();
        let mut f = facts(&policy, &[], utc("2026-01-16T12:00:00Z"));
        f.do_not_contact = Some(&dnc);
        f.consent = Consent::Denied;
        f.open_complaint = Some(complaint);
        let decision = decide(&f);
        let kinds: Vec<&str> = decision
            .denials
            .iter()
            .map(|d| match d {
                Denial::DoNotContact { .. } => "dnc",
                Denial::NoConsent => "consent",
                Denial::ConsentUnknown => "unknown",
                Denial::OpenComplaint { .. } => "complaint",
                Denial::FrequencyCap { .. } => "cap",
                Denial::QuietHours { .. } => "quiet",
            })
            .collect();
        assert_eq!(kinds, ["dnc", "consent", "complaint", "cap", "quiet"]);
        assert_eq!(decision.earliest_allowed_time, None);
    }

    #[test]
    fn exempt_purposes_skip_consent_and_complaints_block_only_listed_purposes() {
        let policy = Policy::default();
        let mut f = facts(&policy, &[], utc("2026-01-16T12:00:00Z"));
        f.purpose = Purpose::SERVICE;
        f.consent = Consent::Denied;
        f.open_complaint = Some(Uuid::nil());
        assert!(decide(&f).allowed());
    }

    #[test]
    fn an_expired_do_not_contact_entry_no_longer_blocks() {
        let dnc = DoNotContact {
            channels: vec![Channel::SMS],
            purposes: vec![],
            expire_time: Some(utc("2026-01-10T00:00:00Z")),
        };
        assert!(dnc.blocks(Channel::SMS, Purpose::SERVICE, utc("2026-01-09T00:00:00Z")));
        assert!(!dnc.blocks(Channel::EMAIL, Purpose::SERVICE, utc("2026-01-09T00:00:00Z")));
        assert!(!dnc.blocks(Channel::SMS, Purpose::SERVICE, utc("2026-01-10T00:00:00Z")));
    }

    #[test]
    fn the_newest_consent_decision_wins_and_expired_grants_ask_again() {
        let at = utc("2026-01-16T12:00:00Z");
        let copy = |channel, granted, observed: &str, expire: Option<&str>| ConsentCopy {
            channel,
            granted,
            observe_time: utc(observed),
            expire_time: expire.map(utc),
        };
        // Nothing recorded: marketing email needs permission, marketing letters do not.
        assert_eq!(consent_from_copy(&[], Purpose::MARKETING, Channel::EMAIL, at), Some(false));
        assert_eq!(consent_from_copy(&[], Purpose::MARKETING, Channel(7), at), Some(true));
        let granted_then_withdrawn_everywhere = [
            copy(Some(Channel::EMAIL), true, "2026-01-01T00:00:00Z", None),
            copy(None, false, "2026-01-02T00:00:00Z", None),
        ];
        let consent = consent_from_copy(&granted_then_withdrawn_everywhere, Purpose::MARKETING, Channel::EMAIL, at);
        assert_eq!(consent, Some(false));
        let tie = [
            copy(Some(Channel::EMAIL), true, "2026-01-01T00:00:00Z", None),
            copy(None, false, "2026-01-01T00:00:00Z", None),
        ];
        assert_eq!(consent_from_copy(&tie, Purpose::MARKETING, Channel::EMAIL, at), Some(false));
        let expired = [copy(Some(Channel::EMAIL), true, "2026-01-01T00:00:00Z", Some("2026-01-10T00:00:00Z"))];
        assert_eq!(consent_from_copy(&expired, Purpose::MARKETING, Channel::EMAIL, at), None);
        // Another channel's decision says nothing about this one.
        let sms_only = [copy(Some(Channel::SMS), true, "2026-01-01T00:00:00Z", None)];
        assert_eq!(consent_from_copy(&sms_only, Purpose::MARKETING, Channel::EMAIL, at), Some(false));
    }
}
