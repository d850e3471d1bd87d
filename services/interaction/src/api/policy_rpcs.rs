//! Contact policy RPCs: checks (one or a batch), the policy itself, and the
//! do-not-contact list.

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt as _;
use idic_platform::{
    ApiError, ApiResult,
    audit::{self, AuditRecord},
    jobs::timestamp,
    paging,
    shared_rpcs::PlatformTables as _,
    validate::{self, Violations},
};
use idic_proto::{common::v1 as common, interaction::v1 as pb};
use tonic::Request;
use uuid::Uuid;

use super::{InteractionApi, caller, convert, convert::time_from_proto};
use crate::{
    contact_checks::{Check, Checked},
    domain::contact_policy::{self as policy, Channel, Denial, FrequencyCap, Policy, Purpose, QuietHours},
    store::contact_policy::{self as store, DoNotContactRow, StoredPolicy},
};
use idic_platform::customers::{Lookup, Reference};

/// Most checks in one BatchCheckContactPolicy.
const MAX_BATCH: usize = 1000;
/// Checks of a batch decided at once.
const BATCH_CONCURRENCY: usize = 16;
/// Most frequency caps and quiet spans in a policy.
const MAX_CAPS: usize = 100;
const MAX_QUIET_HOURS: usize = 20;
/// The policy's resource name.
const POLICY_NAME: &str = "contactPolicy";
/// Paths UpdateContactPolicy may replace.
const POLICY_PATHS: &[&str] = &[
    "frequency_caps",
    "quiet_hours",
    "default_time_zone",
    "consent_exempt_purposes",
    "open_complaint_blocked_purposes",
];

// ---------------------------------------------------------------- conversions

/// A required channel.
pub(super) fn channel_from_proto(value: i32, field: &str) -> ApiResult<Channel> {
    convert::channel_from_proto(value, field).map(Channel)
}

/// An optional channel (UNSPECIFIED is None).
pub(super) fn optional_channel(value: i32, field: &str) -> ApiResult<Option<Channel>> {
    if value == 0 { Ok(None) } else { channel_from_proto(value, field).map(Some) }
}

/// A required purpose.
pub(super) fn purpose_from_proto(value: i32, field: &str) -> ApiResult<Purpose> {
    match common::ConsentPurpose::try_from(value) {
        Ok(common::ConsentPurpose::Unspecified) => Err(ApiError::invalid(field, "is required")),
        Ok(_) => Ok(Purpose(value as i16)),
        Err(_) => Err(ApiError::invalid(field, format!("{value} is not a ConsentPurpose"))),
    }
}

fn optional_purpose(value: i32, field: &str) -> ApiResult<Option<Purpose>> {
    if value == 0 { Ok(None) } else { purpose_from_proto(value, field).map(Some) }
}

/// A duration in whole seconds, within `[min, max]` seconds.
fn seconds_from_proto(d: Option<&prost_types::Duration>, min: i64, max: i64, field: &str) -> ApiResult<i64> {
    let Some(d) = d else { return Err(ApiError::invalid(field, "is required")) };
    if d.nanos != 0 || d.seconds < min || d.seconds > max {
        return Err(ApiError::invalid(field, format!("must be whole seconds from {min} to {max}")));
    }
    Ok(d.seconds)
}

/// An IANA zone name (empty means UTC).
pub(super) fn time_zone(name: &str, field: &str) -> ApiResult<(String, chrono_tz::Tz)> {
    let name = if name.is_empty() { "UTC" } else { name };
    policy::parse_time_zone(name)
        .map(|tz| (name.to_owned(), tz))
        .ok_or_else(|| ApiError::invalid(field, format!("{name:?} is not an IANA time zone")))
}

/// A CustomerRef as a reference to resolve, violations named under `field`.
pub(super) fn reference_from_proto(r: Option<&common::CustomerRef>, field: &str) -> ApiResult<Reference> {
    let mut v = Violations::new();
    let reference = v.check(field, convert::reference_from_proto(r.cloned()));
    v.finish()?;
    reference.ok_or_else(|| ApiError::invalid(field, "is required"))
}

fn duration(secs: i64) -> prost_types::Duration {
    prost_types::Duration { seconds: secs, nanos: 0 }
}

fn policy_to_proto(stored: &StoredPolicy) -> pb::ContactPolicy {
    let StoredPolicy { policy, updated_at, updated_by, version } = stored;
    pb::ContactPolicy {
        name: POLICY_NAME.to_owned(),
        frequency_caps: policy
            .frequency_caps
            .iter()
            .map(|c| pb::FrequencyCap {
                cap_id: c.cap_id.clone(),
                channel: c.channel.map_or(0, |c| i32::from(c.0)),
                purpose: c.purpose.map_or(0, |p| i32::from(p.0)),
                max_contacts: c.max_contacts as i32,
                window: Some(duration(c.window_secs)),
            })
            .collect(),
        quiet_hours: policy
            .quiet_hours
            .iter()
            .map(|q| pb::QuietHours {
                channels: q.channels.iter().map(|c| i32::from(c.0)).collect(),
                purposes: q.purposes.iter().map(|p| i32::from(p.0)).collect(),
                start: Some(pb::LocalTime {
                    hours: i32::from(q.start_minute / 60),
                    minutes: i32::from(q.start_minute % 60),
                }),
                end: Some(pb::LocalTime { hours: i32::from(q.end_minute / 60), minutes: i32::from(q.end_minute % 60) }),
            })
            .collect(),
        default_time_zone: policy.default_time_zone.clone(),
        consent_exempt_purposes: policy.consent_exempt_purposes.iter().map(|p| i32::from(p.0)).collect(),
        open_complaint_blocked_purposes: policy
            .open_complaint_blocked_purposes
            .iter()
            .map(|p| i32::from(p.0))
            .collect(),
        update_time: updated_at.map(timestamp),
        updated_by: updated_by.clone(),
        etag: etag(*version),
    }
}

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

fn purposes_from_proto(values: &[i32], field: &str, v: &mut Violations) -> Vec<Purpose> {
    let mut out: Vec<Purpose> = values
        .iter()
        .enumerate()
        .filter_map(|(i, p)| v.check("", purpose_from_proto(*p, &format!("{field}[{i}]"))))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn channels_from_proto(values: &[i32], field: &str, v: &mut Violations) -> Vec<Channel> {
    let mut out: Vec<Channel> = values
        .iter()
        .enumerate()
        .filter_map(|(i, c)| v.check("", channel_from_proto(*c, &format!("{field}[{i}]"))))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn local_minute(t: Option<&pb::LocalTime>, field: &str) -> ApiResult<u16> {
    let Some(pb::LocalTime { hours, minutes }) = t else { return Err(ApiError::invalid(field, "is required")) };
    if !(0..24).contains(hours) || !(0..60).contains(minutes) {
        return Err(ApiError::invalid(field, "must be a time of day (hours 0–23, minutes 0–59)"));
    }
    Ok((hours * 60 + minutes) as u16)
}

fn is_code(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
}

/// The policy's new values for the masked fields, validated against `current`.
fn apply_policy_update(current: &Policy, new: &pb::ContactPolicy, paths: &[String]) -> ApiResult<Policy> {
    let pb::ContactPolicy {
        name,
        frequency_caps,
        quiet_hours,
        default_time_zone,
        consent_exempt_purposes,
        open_complaint_blocked_purposes,
        update_time: _,
        updated_by: _,
        etag: _,
    } = new;
    let mut v = Violations::new();
    if !name.is_empty() && name != POLICY_NAME {
        v.add("contact_policy.name", format!("must be {POLICY_NAME:?} or empty"));
    }
    let mut policy = current.clone();
    for path in paths {
        match path.as_str() {
            "frequency_caps" => {
                if frequency_caps.len() > MAX_CAPS {
                    v.add("contact_policy.frequency_caps", format!("at most {MAX_CAPS} caps"));
                }
                let mut caps = Vec::new();
                for (i, cap) in frequency_caps.iter().enumerate() {
                    let field = format!("contact_policy.frequency_caps[{i}]");
                    let pb::FrequencyCap { cap_id, channel, purpose, max_contacts, window } = cap;
                    if !is_code(cap_id) {
                        v.add(format!("{field}.cap_id"), "must be 1–64 characters of [a-z0-9_.-]");
                    } else if caps.iter().any(|c: &FrequencyCap| c.cap_id == *cap_id) {
                        v.add(format!("{field}.cap_id"), format!("{cap_id:?} is used by another cap"));
                    }
                    let channel = v.check("", optional_channel(*channel, &format!("{field}.channel")));
                    let purpose = v.check("", optional_purpose(*purpose, &format!("{field}.purpose")));
                    if !(0..=1000).contains(max_contacts) {
                        v.add(format!("{field}.max_contacts"), "must be from 0 to 1000");
                    }
                    let window = v
                        .check("", seconds_from_proto(window.as_ref(), 3600, 366 * 86_400, &format!("{field}.window")));
                    if let (Some(channel), Some(purpose), Some(window_secs)) = (channel, purpose, window) {
                        caps.push(FrequencyCap {
                            cap_id: cap_id.clone(),
                            channel,
                            purpose,
                            max_contacts: (*max_contacts).clamp(0, 1000) as u32,
                            window_secs,
                        });
                    }
                }
                policy.frequency_caps = caps;
            }
            "quiet_hours" => {
                if quiet_hours.len() > MAX_QUIET_HOURS {
                    v.add("contact_policy.quiet_hours", format!("at most {MAX_QUIET_HOURS} spans"));
                }
                let mut spans = Vec::new();
                for (i, q) in quiet_hours.iter().enumerate() {
                    let field = format!("contact_policy.quiet_hours[{i}]");
                    let pb::QuietHours { channels, purposes, start, end } = q;
                    let channels = channels_from_proto(channels, &format!("{field}.channels"), &mut v);
                    let purposes = purposes_from_proto(purposes, &format!("{field}.purposes"), &mut v);
                    let start = v.check("", local_minute(start.as_ref(), &format!("{field}.start")));
                    let end = v.check("", local_minute(end.as_ref(), &format!("{field}.end")));
                    if let (Some(start_minute), Some(end_minute)) = (start, end) {
                        if start_minute == end_minute {
                            v.add(format!("{field}.end"), "must differ from start");
                        }
                        spans.push(QuietHours { channels, purposes, start_minute, end_minute });
                    }
                }
                policy.quiet_hours = spans;
            }
            "default_time_zone" => {
                if let Some((name, _)) = v.check("", time_zone(default_time_zone, "contact_policy.default_time_zone")) {
                    policy.default_time_zone = name;
                }
            }
            "consent_exempt_purposes" => {
                policy.consent_exempt_purposes =
                    purposes_from_proto(consent_exempt_purposes, "contact_policy.consent_exempt_purposes", &mut v);
            }
            "open_complaint_blocked_purposes" => {
                policy.open_complaint_blocked_purposes = purposes_from_proto(
                    open_complaint_blocked_purposes,
                    "contact_policy.open_complaint_blocked_purposes",
                    &mut v,
                );
            }
            other => v.add("update_mask", format!("{other:?} is not one of {}", POLICY_PATHS.join(", "))),
        }
    }
    v.finish()?;
    Ok(policy)
}

fn denial_to_proto(denial: &Denial, time_zone: &str) -> pb::ContactDenial {
    use pb::contact_denial::Detail;
    let (reason, message, detail) = match denial {
        Denial::DoNotContact { expire_time } => (
            pb::ContactDenialReason::DoNotContact,
            "the customer is on the do-not-contact list for this channel and purpose".to_owned(),
            // The entry's name is set by the caller, who knows the customer.
            Some(Detail::DoNotContact(pb::DoNotContactDenial {
                entry: String::new(),
                expire_time: expire_time.map(timestamp),
            })),
        ),
        Denial::NoConsent => (
            pb::ContactDenialReason::NoConsent,
            "the customer has not consented to this purpose on this channel".to_owned(),
            None,
        ),
        Denial::ConsentUnknown => (
            pb::ContactDenialReason::ConsentUnknown,
            "consent could not be verified (identification unreachable); retry later".to_owned(),
            None,
        ),
        Denial::OpenComplaint { complaint } => (
            pb::ContactDenialReason::OpenComplaint,
            "the customer has an open complaint".to_owned(),
            Some(Detail::OpenComplaint(pb::OpenComplaintDenial { complaint: format!("complaints/{complaint}") })),
        ),
        Denial::FrequencyCap { cap_id, max_contacts, contact_count, window_secs, free_time } => (
            pb::ContactDenialReason::FrequencyCap,
            format!("frequency cap {cap_id:?} reached: {contact_count} of {max_contacts} contacts in the window"),
            Some(Detail::FrequencyCap(pb::FrequencyCapDenial {
                cap_id: cap_id.clone(),
                max_contacts: *max_contacts as i32,
                contact_count: *contact_count as i32,
                window: Some(duration(*window_secs)),
                free_time: free_time.map(timestamp),
            })),
        ),
        Denial::QuietHours { until } => (
            pb::ContactDenialReason::QuietHours,
            format!("quiet hours in {time_zone}"),
            Some(Detail::QuietHours(pb::QuietHoursDenial {
                until_time: Some(timestamp(*until)),
                time_zone: time_zone.to_owned(),
            })),
        ),
    };
    pb::ContactDenial { reason: reason as i32, message, detail }
}

/// The proto answer of a check.
pub(crate) fn decision_to_proto(checked: &Checked) -> pb::ContactPolicyDecision {
    let Checked { customer, decision, time_zone } = checked;
    let denials = decision
        .denials
        .iter()
        .map(|d| {
            let mut denial = denial_to_proto(d, time_zone);
            if let Some(pb::contact_denial::Detail::DoNotContact(entry)) = &mut denial.detail {
                entry.entry = format!("doNotContactEntries/{customer}");
            }
            denial
        })
        .collect();
    pb::ContactPolicyDecision {
        customer_id: customer.to_string(),
        allowed: decision.allowed(),
        denials,
        earliest_allowed_time: decision.earliest_allowed_time.map(timestamp),
        time_zone: time_zone.clone(),
    }
}

// ---------------------------------------------------------------- checks

/// A validated check whose customer is still a reference.
struct CheckInput {
    reference: Reference,
    channel: Channel,
    purpose: Purpose,
    at: DateTime<Utc>,
    time_zone: Option<(String, chrono_tz::Tz)>,
}

fn check_from_proto(request: &pb::CheckContactPolicyRequest, now: DateTime<Utc>) -> ApiResult<CheckInput> {
    let pb::CheckContactPolicyRequest { customer, channel, purpose, at, time_zone: zone } = request;
    let mut v = Violations::new();
    let reference = v.check("", reference_from_proto(customer.as_ref(), "customer"));
    let channel = v.check("", channel_from_proto(*channel, "channel"));
    let purpose = v.check("", purpose_from_proto(*purpose, "purpose"));
    let at = match at {
        None => Some(now),
        Some(t) => v.check("", time_from_proto(t, "at")).and_then(|at| {
            if at < now - Duration::days(1) || at > now + Duration::days(366) {
                v.add("at", "must be from 1 day in the past to 366 days ahead");
                None
            } else {
                Some(at)
            }
        }),
    };
    let time_zone = if zone.is_empty() { Some(None) } else { v.check("", time_zone(zone, "time_zone")).map(Some) };
    v.finish()?;
    match (reference, channel, purpose, at, time_zone) {
        (Some(reference), Some(channel), Some(purpose), Some(at), Some(time_zone)) => {
            Ok(CheckInput { reference, channel, purpose, at, time_zone })
        }
        _ => Err(ApiError::invalid("", "invalid check")),
    }
}

/// CheckContactPolicy.
pub(super) async fn check(
    api: &InteractionApi,
    request: Request<pb::CheckContactPolicyRequest>,
) -> ApiResult<pb::ContactPolicyDecision> {
    let input = check_from_proto(request.get_ref(), Utc::now())?;
    let customer = api.customers().resolve(Lookup { reference: &input.reference, create: false }).await?;
    let checked = api
        .checker()
        .check(&Check {
            customer,
            channel: input.channel,
            purpose: input.purpose,
            at: input.at,
            time_zone: input.time_zone,
        })
        .await?;
    Ok(decision_to_proto(&checked))
}

/// BatchCheckContactPolicy: every check validated first, customers resolved together,
/// then each decided; an unknown customer is answered in its own entry.
pub(super) async fn batch_check(
    api: &InteractionApi,
    request: Request<pb::BatchCheckContactPolicyRequest>,
) -> ApiResult<pb::BatchCheckContactPolicyResponse> {
    let pb::BatchCheckContactPolicyRequest { checks } = request.into_inner();
    if checks.is_empty() || checks.len() > MAX_BATCH {
        return Err(ApiError::invalid("checks", format!("must hold 1 to {MAX_BATCH} checks")));
    }
    let now = Utc::now();
    let mut v = Violations::new();
    let inputs: Vec<Option<CheckInput>> =
        checks.iter().enumerate().map(|(i, c)| v.check(&format!("checks[{i}]"), check_from_proto(c, now))).collect();
    v.finish()?;
    let inputs: Vec<CheckInput> = inputs.into_iter().flatten().collect();
    let lookups: Vec<Lookup<'_>> = inputs.iter().map(|i| Lookup { reference: &i.reference, create: false }).collect();
    let customers = api.customers().resolve_many(&lookups).await;
    // Checks run a few at a time (each is a Postgres and a Redis round trip), in order.
    let outcomes: Vec<ApiResult<pb::contact_policy_check_result::Outcome>> =
        futures::stream::iter(inputs.into_iter().zip(customers))
            .map(|(input, customer)| async move {
                use pb::contact_policy_check_result::Outcome;
                let customer = match customer {
                    Ok(customer) => customer,
                    Err(ApiError::NotFound(_)) => return Ok(Outcome::Error("customer not found".into())),
                    Err(e) => return Err(e),
                };
                let check = Check {
                    customer,
                    channel: input.channel,
                    purpose: input.purpose,
                    at: input.at,
                    time_zone: input.time_zone,
                };
                match api.checker().check(&check).await {
                    Ok(checked) => Ok(Outcome::Decision(decision_to_proto(&checked))),
                    Err(ApiError::NotFound(_)) => Ok(Outcome::Error("customer not found".into())),
                    Err(e) => Err(e),
                }
            })
            .buffered(BATCH_CONCURRENCY)
            .collect()
            .await;
    let results = outcomes
        .into_iter()
        .map(|o| o.map(|outcome| pb::ContactPolicyCheckResult { outcome: Some(outcome) }))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(pb::BatchCheckContactPolicyResponse { results })
}

// ---------------------------------------------------------------- the policy

/// GetContactPolicy.
pub(super) async fn get_policy(
    api: &InteractionApi,
    request: Request<pb::GetContactPolicyRequest>,
) -> ApiResult<pb::ContactPolicy> {
    let pb::GetContactPolicyRequest { name } = request.into_inner();
    if !name.is_empty() && name != POLICY_NAME {
        return Err(ApiError::invalid("name", format!("must be {POLICY_NAME:?} or empty")));
    }
    let mut conn = api.pool().acquire().await?;
    Ok(policy_to_proto(&store::policy(&mut conn).await?))
}

/// UpdateContactPolicy: replaces the masked fields, audited.
pub(super) async fn update_policy(
    api: &InteractionApi,
    request: Request<pb::UpdateContactPolicyRequest>,
) -> ApiResult<pb::ContactPolicy> {
    let caller = caller(&request)?;
    let pb::UpdateContactPolicyRequest { contact_policy, update_mask } = request.into_inner();
    let Some(new) = contact_policy else { return Err(ApiError::invalid("contact_policy", "is required")) };
    let paths = update_mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return Err(ApiError::invalid("update_mask", "is required"));
    }
    let mut tx = api.pool().begin().await?;
    let current = store::policy_for_update(&mut tx).await?;
    if !new.etag.is_empty() && new.etag != etag(current.version) {
        return Err(ApiError::Aborted("the contact policy changed since it was read (stale etag)".into()));
    }
    let policy = apply_policy_update(&current.policy, &new, &paths)?;
    let stored = store::save_policy(&mut tx, &policy, &caller.name).await?;
    audit::record(
        &mut tx,
        AuditRecord {
            caller: &caller.name,
            action: "UpdateContactPolicy",
            resource: POLICY_NAME,
            reason: "",
            detail: serde_json::json!({ "update_mask": paths, "version": stored.version }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(policy_to_proto(&stored))
}

// ---------------------------------------------------------------- do-not-contact

pub(super) fn entry_to_proto(row: &DoNotContactRow) -> pb::DoNotContactEntry {
    let DoNotContactRow { customer_id, channels, purposes, reason, expire_time, created_at, created_by } = row;
    pb::DoNotContactEntry {
        name: format!("doNotContactEntries/{customer_id}"),
        customer_id: customer_id.to_string(),
        channels: channels.iter().map(|c| i32::from(*c)).collect(),
        purposes: purposes.iter().map(|p| i32::from(*p)).collect(),
        reason: reason.clone(),
        expire_time: expire_time.map(timestamp),
        create_time: Some(timestamp(*created_at)),
        created_by: created_by.clone(),
    }
}

/// SetDoNotContact: puts (or replaces) the customer's entry, audited.
pub(super) async fn set_do_not_contact(
    api: &InteractionApi,
    request: Request<pb::SetDoNotContactRequest>,
) -> ApiResult<pb::DoNotContactEntry> {
    let caller = caller(&request)?;
    let pb::SetDoNotContactRequest { customer, entry } = request.into_inner();
    let mut v = Violations::new();
    let reference = v.check("", reference_from_proto(customer.as_ref(), "customer"));
    let entry = entry.unwrap_or_default();
    let pb::DoNotContactEntry {
        name: _,
        customer_id: _,
        channels,
        purposes,
        reason,
        expire_time,
        create_time: _,
        created_by: _,
    } = entry;
    let channels = channels_from_proto(&channels, "entry.channels", &mut v);
    let purposes = purposes_from_proto(&purposes, "entry.purposes", &mut v);
    v.check(
        "",
        validate::required(&reason, 1000, "entry.reason").and_then(|()| validate::text(&reason, 1000, "entry.reason")),
    );
    let expire_time = match expire_time {
        None => None,
        Some(t) => v.check("", time_from_proto(&t, "entry.expire_time")).and_then(|t| {
            if t <= Utc::now() {
                v.add("entry.expire_time", "must be in the future");
                None
            } else {
                Some(t)
            }
        }),
    };
    v.finish()?;
    let Some(reference) = reference else { return Err(ApiError::invalid("customer", "is required")) };
    let customer = api.customers().resolve(Lookup { reference: &reference, create: false }).await?;
    let row = DoNotContactRow {
        customer_id: customer,
        channels: channels.iter().map(|c| c.0).collect(),
        purposes: purposes.iter().map(|p| p.0).collect(),
        reason,
        expire_time,
        created_at: Utc::now(),
        created_by: caller.name.clone(),
    };
    let mut tx = api.pool().begin().await?;
    let stored = store::set_do_not_contact(&mut tx, &row).await?;
    let resource = format!("doNotContactEntries/{customer}");
    audit::record(
        &mut tx,
        AuditRecord {
            caller: &caller.name,
            action: "SetDoNotContact",
            resource: &resource,
            reason: &stored.reason,
            detail: serde_json::json!({
                "channels": stored.channels,
                "purposes": stored.purposes,
                "expire_time": stored.expire_time,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(entry_to_proto(&stored))
}

/// ClearDoNotContact: removes the customer's entry (if any), audited.
pub(super) async fn clear_do_not_contact(
    api: &InteractionApi,
    request: Request<pb::ClearDoNotContactRequest>,
) -> ApiResult<pb::ClearDoNotContactResponse> {
    let caller = caller(&request)?;
    let pb::ClearDoNotContactRequest { customer, reason } = request.into_inner();
    let mut v = Violations::new();
    let reference = v.check("", reference_from_proto(customer.as_ref(), "customer"));
    v.check("", validate::required(&reason, 1000, "reason").and_then(|()| validate::text(&reason, 1000, "reason")));
    v.finish()?;
    let Some(reference) = reference else { return Err(ApiError::invalid("customer", "is required")) };
    let customer = api.customers().resolve(Lookup { reference: &reference, create: false }).await?;
    let mut tx = api.pool().begin().await?;
    let cleared = store::clear_do_not_contact(&mut tx, customer).await?;
    if cleared {
        let resource = format!("doNotContactEntries/{customer}");
        audit::record(
            &mut tx,
            AuditRecord {
                caller: &caller.name,
                action: "ClearDoNotContact",
                resource: &resource,
                reason: &reason,
                detail: serde_json::json!({}),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(pb::ClearDoNotContactResponse { cleared })
}

/// ListDoNotContactEntries: entries in force, newest first.
pub(super) async fn list_do_not_contact(
    api: &InteractionApi,
    request: Request<pb::ListDoNotContactEntriesRequest>,
) -> ApiResult<pb::ListDoNotContactEntriesResponse> {
    let pb::ListDoNotContactEntriesRequest { page_size, page_token, customer, channel } = request.into_inner();
    let mut v = Violations::new();
    let size = v.check("", paging::page_size(page_size, "page_size"));
    let reference =
        if customer.is_some() { v.check("", reference_from_proto(customer.as_ref(), "customer")) } else { None };
    let channel = v.check("", optional_channel(channel, "channel")).flatten();
    v.finish()?;
    let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE);
    let customer = match &reference {
        Some(reference) => Some(api.customers().resolve(Lookup { reference, create: false }).await?),
        None => None,
    };
    let filter = format!("{customer:?}|{channel:?}");
    let after: Option<(DateTime<Utc>, Uuid)> = paging::decode_page_token(&page_token, &filter, "page_token")?;
    let rows = store::list_do_not_contact(api.pool(), customer, channel, after, i64::from(size) + 1).await?;
    let has_more = rows.len() > size as usize;
    let rows: Vec<DoNotContactRow> = rows.into_iter().take(size as usize).collect();
    let next_page_token = match (has_more, rows.last()) {
        (true, Some(last)) => paging::next_page_token(&(last.created_at, last.customer_id), &filter),
        _ => String::new(),
    };
    Ok(pb::ListDoNotContactEntriesResponse { entries: rows.iter().map(entry_to_proto).collect(), next_page_token })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(id: &str, window: i64) -> pb::FrequencyCap {
        pb::FrequencyCap {
            cap_id: id.into(),
            channel: common::Channel::Sms as i32,
            purpose: common::ConsentPurpose::Marketing as i32,
            max_contacts: 2,
            window: Some(duration(window)),
        }
    }

    #[test]
    fn policy_updates_name_each_bad_field() {
        let new = pb::ContactPolicy {
            frequency_caps: vec![cap("weekly", 604_800), cap("weekly", 60)],
            quiet_hours: vec![pb::QuietHours {
                start: Some(pb::LocalTime { hours: 21, minutes: 0 }),
                end: Some(pb::LocalTime { hours: 21, minutes: 0 }),
                ..Default::default()
            }],
            default_time_zone: "Mars/Olympus".into(),
            ..Default::default()
        };
        let paths: Vec<String> =
            ["frequency_caps", "quiet_hours", "default_time_zone", "etag"].iter().map(|p| (*p).to_owned()).collect();
        let Err(ApiError::InvalidArgument(violations)) = apply_policy_update(&Policy::default(), &new, &paths) else {
            panic!("expected invalid");
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "contact_policy.frequency_caps[1].cap_id",
                "contact_policy.frequency_caps[1].window",
                "contact_policy.quiet_hours[0].end",
                "contact_policy.default_time_zone",
                "update_mask",
            ]
        );
    }

    #[test]
    fn unmasked_fields_keep_their_values() {
        let new = pb::ContactPolicy { frequency_caps: vec![cap("weekly", 604_800)], ..Default::default() };
        let updated =
            apply_policy_update(&Policy::default(), &new, &["frequency_caps".to_owned()]).expect("valid update");
        assert_eq!(updated.frequency_caps.len(), 1);
        assert_eq!(updated.consent_exempt_purposes, Policy::default().consent_exempt_purposes);
    }
}
