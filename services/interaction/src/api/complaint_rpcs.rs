//! Complaint RPCs: opening (with its COMPLAINT interaction on the timeline), changing
//! through field masks, resolving, reading, listing, and the daily chart.

use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use idic_platform::{
    ApiError, ApiResult, idempotency, paging,
    shared_rpcs::PlatformTables as _,
    validate::{self, Violations},
};
use idic_proto::{common::v1 as common, interaction::v1 as pb};
use prost::Message as _;
use tonic::Request;
use uuid::Uuid;

use super::{InteractionApi, caller, convert};
use crate::{
    domain::{
        Direction, Interaction, Kind,
        complaints::{self, ChartRow, is_code, severity, state},
        interaction::new_id,
        masking::mask_text,
    },
    events,
    store::{
        complaints::{self as store, ComplaintFilter, ComplaintRow},
        interactions,
        partitions::month_of,
    },
};
use idic_platform::customers::{Lookup, Reference};

/// Paths UpdateComplaint may change.
const UPDATABLE: &[&str] = &["category", "severity", "owner", "product_id", "summary", "description"];
/// How far in the future a time may be (clock skew).
const MAX_FUTURE: Duration = Duration::minutes(5);
/// Longest chart period.
const MAX_CHART_DAYS: i64 = 366;

fn complaint_name(id: Uuid) -> String {
    format!("complaints/{id}")
}

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

fn complaint_id(name: &str, field: &str) -> ApiResult<Uuid> {
    validate::resource_id(name, "complaints", field)
}

/// The answer for a stored complaint; free texts masked without `pii.read`.
pub(super) fn complaint_to_proto(c: &ComplaintRow, pii: bool) -> pb::Complaint {
    let text = |t: &str| if pii { t.to_owned() } else { mask_text(t) };
    let resolution_duration = c.resolved_at.map(|r| convert::duration_to_proto((r - c.opened_at).num_milliseconds()));
    pb::Complaint {
        name: complaint_name(c.id),
        // The nil id marks a complaint whose customer was erased.
        customer_id: if c.customer_id.is_nil() { String::new() } else { c.customer_id.to_string() },
        category: c.category.clone(),
        channel: i32::from(c.channel),
        severity: i32::from(c.severity),
        owner: c.owner.clone(),
        product_id: c.product_id.clone(),
        summary: text(&c.summary),
        description: text(&c.description),
        state: i32::from(c.state),
        open_time: Some(idic_platform::jobs::timestamp(c.opened_at)),
        update_time: Some(idic_platform::jobs::timestamp(c.updated_at)),
        resolve_time: c.resolved_at.map(idic_platform::jobs::timestamp),
        resolution: i32::from(c.resolution),
        resolution_note: text(&c.resolution_note),
        contact_count: c.contact_count,
        first_contact_resolution: c.state == state::RESOLVED && c.contact_count == 1,
        resolution_duration,
        interaction: c.interaction.clone(),
        etag: etag(c.version),
    }
}

fn severity_from_proto(value: i32, field: &str) -> ApiResult<Option<i16>> {
    match pb::ComplaintSeverity::try_from(value) {
        Ok(pb::ComplaintSeverity::Unspecified) => Ok(None),
        Ok(s) => Ok(Some(s as i16)),
        Err(_) => Err(ApiError::invalid(field, format!("{value} is not a ComplaintSeverity"))),
    }
}

fn check_category(value: &str, field: &str) -> ApiResult<()> {
    if is_code(value) { Ok(()) } else { Err(ApiError::invalid(field, "must be 1–64 characters of [a-z0-9_.-]")) }
}

/// Checks the fields a caller may set, named under `complaint.`; `only` limits the
/// checks to masked paths (None: all, as on open).
fn check_fields(c: &pb::Complaint, only: Option<&[String]>, v: &mut Violations) -> Option<i16> {
    let wanted = |path: &str| only.is_none_or(|paths| paths.iter().any(|p| p == path));
    if wanted("category") {
        v.check("", check_category(&c.category, "complaint.category"));
    }
    let severity = if wanted("severity") {
        v.check("", severity_from_proto(c.severity, "complaint.severity")).flatten()
    } else {
        None
    };
    if wanted("owner") {
        v.check("", validate::text(&c.owner, 128, "complaint.owner"));
    }
    if wanted("product_id") {
        v.check("", validate::text(&c.product_id, 128, "complaint.product_id"));
    }
    if wanted("summary") {
        v.check(
            "",
            validate::required(&c.summary, 256, "complaint.summary")
                .and_then(|()| validate::text(&c.summary, 256, "complaint.summary")),
        );
    }
    if wanted("description") {
        v.check("", validate::text(&c.description, 8000, "complaint.description"));
    }
    severity
}

/// OpenComplaint.
pub(super) async fn open(api: &InteractionApi, request: Request<pb::OpenComplaintRequest>) -> ApiResult<pb::Complaint> {
    let caller = caller(&request)?;
    let pii = caller.has_scope("pii.read");
    let hash = idempotency::request_hash(&request.get_ref().encode_to_vec());
    let pb::OpenComplaintRequest { request_id, customer, complaint } = request.into_inner();
    // Postgres keeps microseconds: answers must not carry more than is stored.
    let now = Utc::now().trunc_subsecs(6);
    let mut v = Violations::new();
    let request_id = match v.check("", validate::request_id(&request_id, "request_id")).flatten() {
        Some(id) => Some(id.to_owned()),
        None => {
            if request_id.is_empty() {
                v.add("request_id", "is required");
            }
            None
        }
    };
    let reference = v.check("customer", convert::reference_from_proto(customer));
    let complaint = complaint.unwrap_or_default();
    let severity = check_fields(&complaint, None, &mut v).unwrap_or(severity::MEDIUM);
    let channel = v.check("", convert::channel_from_proto(complaint.channel, "complaint.channel"));
    let open_time = match &complaint.open_time {
        None => Some(now),
        Some(t) => {
            v.check("", convert::time_from_proto(t, "complaint.open_time")).map(|t| t.trunc_subsecs(6)).and_then(|t| {
                if t > now + MAX_FUTURE {
                    v.add("complaint.open_time", "must not be in the future");
                    None
                } else {
                    Some(t)
                }
            })
        }
    };
    let linked = if complaint.interaction.is_empty() {
        None
    } else {
        v.check("", validate::resource_id(&complaint.interaction, "interactions", "complaint.interaction"))
    };
    v.finish()?;
    let (Some(request_id), Some(reference), Some(channel), Some(open_time)) =
        (request_id, reference, channel, open_time)
    else {
        return Err(ApiError::invalid("", "invalid request"));
    };
    let customer = api.customers().resolve(Lookup { reference: &reference, create: false }).await?;
    if let Some(linked) = linked {
        let found = api.store().interaction(linked).await.map_err(ApiError::from)?;
        if found.is_none_or(|i| i.customer_id != Some(customer)) {
            return Err(ApiError::NotFound(format!("interactions/{linked}")));
        }
    }
    let id = Uuid::new_v4();
    let opening = match linked {
        Some(_) => None,
        None => {
            let interaction_id =
                new_id(open_time).ok_or_else(|| ApiError::invalid("complaint.open_time", "must be after 1970"))?;
            Some(Interaction {
                id: interaction_id,
                customer_id: Some(customer),
                recorded_customer_id: Some(customer),
                channel,
                kind: Kind::Complaint,
                direction: Direction::Inbound,
                purpose: 0,
                occurred_at: open_time,
                recorded_at: now,
                items: Vec::new(),
                currency: None,
                total_minor: None,
                campaign: String::new(),
                offer: String::new(),
                offer_response: 0,
                complaint: complaint_name(id),
                feedback: String::new(),
                related_interaction: String::new(),
                duration_ms: None,
                handled_by: String::new(),
                source: "complaints".to_owned(),
                source_reference: String::new(),
                note: String::new(),
                attributes: Default::default(),
                request_id: format!("complaints/{id}"),
            })
        }
    };
    if let Some(opening) = &opening {
        api.store().partitions.ensure([month_of(opening.occurred_at)]).await.map_err(ApiError::from)?;
    }
    let row = ComplaintRow {
        id,
        customer_id: customer,
        category: complaint.category.clone(),
        channel,
        severity,
        owner: complaint.owner.clone(),
        product_id: complaint.product_id.clone(),
        summary: complaint.summary.clone(),
        description: complaint.description.clone(),
        state: state::OPEN,
        opened_at: open_time,
        updated_at: now,
        resolved_at: None,
        resolution: 0,
        resolution_note: String::new(),
        contact_count: 1,
        interaction: match (&opening, linked) {
            (Some(o), _) => convert::interaction_name(o.id),
            (None, Some(l)) => convert::interaction_name(l),
            (None, None) => String::new(),
        },
        version: 1,
    };
    let mut tx = api.pool().begin().await?;
    match idempotency::claim(&mut tx, "OpenComplaint", &request_id, &hash).await? {
        idempotency::Claim::Replay(bytes) => {
            let first = pb::Complaint::decode(bytes.as_slice())
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored OpenComplaint answer: {e}")))?;
            return Ok(if pii { first } else { mask_complaint(first) });
        }
        idempotency::Claim::New => {}
    }
    store::insert(&mut tx, &row).await?;
    if let Some(opening) = &opening {
        interactions::insert(&mut tx, std::slice::from_ref(opening), now).await.map_err(ApiError::from)?;
        idic_platform::events::enqueue(&mut tx, events::INTERACTION_RECORDED, &events::interaction_recorded(opening))
            .await
            .map_err(ApiError::from)?;
    }
    let answer = complaint_to_proto(&row, true);
    idempotency::complete(&mut tx, "OpenComplaint", &request_id, &answer.encode_to_vec()).await?;
    tx.commit().await?;
    Ok(if pii { answer } else { mask_complaint(answer) })
}

fn mask_complaint(mut c: pb::Complaint) -> pb::Complaint {
    c.summary = mask_text(&c.summary);
    c.description = mask_text(&c.description);
    c.resolution_note = mask_text(&c.resolution_note);
    c
}

/// UpdateComplaint: the masked fields of an open complaint.
pub(super) async fn update(
    api: &InteractionApi,
    request: Request<pb::UpdateComplaintRequest>,
) -> ApiResult<pb::Complaint> {
    let caller = caller(&request)?;
    let pb::UpdateComplaintRequest { complaint, update_mask } = request.into_inner();
    let Some(new) = complaint else { return Err(ApiError::invalid("complaint", "is required")) };
    let paths = update_mask.map(|m| m.paths).unwrap_or_default();
    let mut v = Violations::new();
    let id = v.check("", complaint_id(&new.name, "complaint.name"));
    if paths.is_empty() {
        v.add("update_mask", "is required");
    }
    for path in &paths {
        if !UPDATABLE.contains(&path.as_str()) {
            v.add("update_mask", format!("{path:?} is not one of {}", UPDATABLE.join(", ")));
        }
    }
    let severity = check_fields(&new, Some(&paths), &mut v);
    v.finish()?;
    let Some(id) = id else { return Err(ApiError::invalid("complaint.name", "is required")) };
    let mut tx = api.pool().begin().await?;
    let mut row = store::get_for_update(&mut tx, id).await?.ok_or_else(|| ApiError::NotFound(complaint_name(id)))?;
    if !new.etag.is_empty() && new.etag != etag(row.version) {
        return Err(ApiError::Aborted("the complaint changed since it was read (stale etag)".into()));
    }
    if row.state != state::OPEN {
        return Err(ApiError::FailedPrecondition(format!("{} is resolved", complaint_name(id))));
    }
    for path in &paths {
        match path.as_str() {
            "category" => row.category.clone_from(&new.category),
            "severity" => row.severity = severity.unwrap_or(severity::MEDIUM),
            "owner" => row.owner.clone_from(&new.owner),
            "product_id" => row.product_id.clone_from(&new.product_id),
            "summary" => row.summary.clone_from(&new.summary),
            "description" => row.description.clone_from(&new.description),
            _ => {}
        }
    }
    let stored = store::save(&mut tx, &row).await?;
    tx.commit().await?;
    Ok(complaint_to_proto(&stored, caller.has_scope("pii.read")))
}

/// ResolveComplaint.
pub(super) async fn resolve(
    api: &InteractionApi,
    request: Request<pb::ResolveComplaintRequest>,
) -> ApiResult<pb::Complaint> {
    let caller = caller(&request)?;
    let pb::ResolveComplaintRequest { name, resolution, resolution_note, resolve_time, contact_count, etag: sent } =
        request.into_inner();
    let now = Utc::now();
    let mut v = Violations::new();
    let id = v.check("", complaint_id(&name, "name"));
    let resolution = match pb::ComplaintResolution::try_from(resolution) {
        Ok(pb::ComplaintResolution::Unspecified) => {
            v.add("resolution", "is required");
            None
        }
        Ok(r) => Some(r as i16),
        Err(_) => {
            v.add("resolution", format!("{resolution} is not a ComplaintResolution"));
            None
        }
    };
    v.check("", validate::text(&resolution_note, 8000, "resolution_note"));
    let resolve_time = match resolve_time {
        None => Some(now),
        Some(t) => v.check("", convert::time_from_proto(&t, "resolve_time")).and_then(|t| {
            if t > now + MAX_FUTURE {
                v.add("resolve_time", "must not be in the future");
                None
            } else {
                Some(t)
            }
        }),
    };
    if let Some(count) = contact_count
        && !(1..=1000).contains(&count)
    {
        v.add("contact_count", "must be from 1 to 1000");
    }
    v.finish()?;
    let (Some(id), Some(resolution), Some(resolve_time)) = (id, resolution, resolve_time) else {
        return Err(ApiError::invalid("name", "is required"));
    };
    let mut tx = api.pool().begin().await?;
    let mut row = store::get_for_update(&mut tx, id).await?.ok_or_else(|| ApiError::NotFound(complaint_name(id)))?;
    if !sent.is_empty() && sent != etag(row.version) {
        return Err(ApiError::Aborted("the complaint changed since it was read (stale etag)".into()));
    }
    if row.state != state::OPEN {
        return Err(ApiError::FailedPrecondition(format!("{} is already resolved", complaint_name(id))));
    }
    if resolve_time < row.opened_at {
        return Err(ApiError::invalid("resolve_time", "must not be before the complaint's open_time"));
    }
    row.state = state::RESOLVED;
    row.resolved_at = Some(resolve_time);
    row.resolution = resolution;
    row.resolution_note = resolution_note;
    if let Some(count) = contact_count {
        row.contact_count = count;
    }
    let stored = store::save(&mut tx, &row).await?;
    tx.commit().await?;
    Ok(complaint_to_proto(&stored, caller.has_scope("pii.read")))
}

/// GetComplaint.
pub(super) async fn get(api: &InteractionApi, request: Request<pb::GetComplaintRequest>) -> ApiResult<pb::Complaint> {
    let caller = caller(&request)?;
    let pb::GetComplaintRequest { name } = request.into_inner();
    let id = complaint_id(&name, "name")?;
    let mut conn = api.pool().acquire().await?;
    let row = store::get(&mut conn, id).await?.ok_or_else(|| ApiError::NotFound(complaint_name(id)))?;
    Ok(complaint_to_proto(&row, caller.has_scope("pii.read")))
}

/// The bounds of a period, each optional.
type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A period's bounds, each optional, named under `field`.
fn period_from_proto(period: Option<&common::Period>, field: &str) -> ApiResult<Bounds> {
    let Some(common::Period { start_time, end_time }) = period else { return Ok((None, None)) };
    let mut v = Violations::new();
    let start =
        start_time.as_ref().and_then(|t| v.check("", convert::time_from_proto(t, &format!("{field}.start_time"))));
    let end = end_time.as_ref().and_then(|t| v.check("", convert::time_from_proto(t, &format!("{field}.end_time"))));
    if let (Some(s), Some(e)) = (start, end)
        && e < s
    {
        v.add(format!("{field}.end_time"), "must not be before start_time");
    }
    v.finish()?;
    Ok((start, end))
}

/// ListComplaints: newest opened first, filtered, in keyset pages.
pub(super) async fn list(
    api: &InteractionApi,
    request: Request<pb::ListComplaintsRequest>,
) -> ApiResult<pb::ListComplaintsResponse> {
    let caller = caller(&request)?;
    let pb::ListComplaintsRequest {
        page_size,
        page_token,
        customer,
        state,
        category,
        severity,
        channel,
        owner,
        period,
    } = request.into_inner();
    let mut v = Violations::new();
    let size = v.check("", paging::page_size(page_size, "page_size")).unwrap_or(paging::DEFAULT_PAGE_SIZE);
    let reference: Option<Reference> =
        if customer.is_some() { v.check("customer", convert::reference_from_proto(customer)) } else { None };
    let state = match pb::ComplaintState::try_from(state) {
        Ok(pb::ComplaintState::Unspecified) => None,
        Ok(s) => Some(s as i16),
        Err(_) => {
            v.add("state", format!("{state} is not a ComplaintState"));
            None
        }
    };
    if !category.is_empty() {
        v.check("", check_category(&category, "category"));
    }
    let severity = v.check("", severity_from_proto(severity, "severity")).flatten();
    let channel = if channel == 0 { None } else { v.check("", convert::channel_from_proto(channel, "channel")) };
    v.check("", validate::text(&owner, 128, "owner"));
    let (opened_from, opened_to) = v.check("", period_from_proto(period.as_ref(), "period")).unwrap_or_default();
    v.finish()?;
    let customers = match &reference {
        Some(reference) => {
            let customer = api.customers().resolve(Lookup { reference, create: false }).await?;
            let mut all = api.store().merged_into(customer).await.map_err(ApiError::from)?;
            all.push(customer);
            Some(all)
        }
        None => None,
    };
    let filter = ComplaintFilter {
        customers,
        state,
        category: (!category.is_empty()).then_some(category),
        severity,
        channel,
        owner: (!owner.is_empty()).then_some(owner),
        opened_from,
        opened_to,
    };
    let fingerprint = format!("{filter:?}");
    let after: Option<(DateTime<Utc>, Uuid)> = paging::decode_page_token(&page_token, &fingerprint, "page_token")?;
    let rows = store::list(api.pool(), &filter, after, i64::from(size) + 1).await?;
    let has_more = rows.len() > size as usize;
    let rows: Vec<ComplaintRow> = rows.into_iter().take(size as usize).collect();
    let next_page_token = match (has_more, rows.last()) {
        (true, Some(last)) => paging::next_page_token(&(last.opened_at, last.id), &fingerprint),
        _ => String::new(),
    };
    let pii = caller.has_scope("pii.read");
    Ok(pb::ListComplaintsResponse {
        complaints: rows.iter().map(|r| complaint_to_proto(r, pii)).collect(),
        next_page_token,
    })
}

fn chart_row_to_proto(row: &ChartRow) -> pb::ComplaintStatsRow {
    let ChartRow {
        date,
        category,
        opened,
        resolved,
        first_contact_resolved,
        first_contact_resolution_rate,
        resolution_time,
        open_at_end,
    } = row;
    let time = |i: usize| resolution_time.map(|t| convert::duration_to_proto(t[i].num_milliseconds()));
    pb::ComplaintStatsRow {
        date: date.map(|d| d.to_string()).unwrap_or_default(),
        category: category.clone().unwrap_or_default(),
        opened: *opened,
        resolved: *resolved,
        first_contact_resolved: *first_contact_resolved,
        first_contact_resolution_rate: *first_contact_resolution_rate,
        resolution_time_p50: time(0),
        resolution_time_p90: time(1),
        resolution_time_p99: time(2),
        open_at_end: *open_at_end,
    }
}

/// GetComplaintStats: the daily chart of a period.
pub(super) async fn stats(
    api: &InteractionApi,
    request: Request<pb::GetComplaintStatsRequest>,
) -> ApiResult<pb::ComplaintStats> {
    let pb::GetComplaintStatsRequest { period, time_zone, categories, channel } = request.into_inner();
    let mut v = Violations::new();
    let bounds = v.check("", period_from_proto(period.as_ref(), "period"));
    let (start, end) = match bounds {
        Some((Some(start), Some(end))) => {
            if end - start > Duration::days(MAX_CHART_DAYS) {
                v.add("period", format!("must be at most {MAX_CHART_DAYS} days"));
            }
            (Some(start), Some(end))
        }
        Some((start, end)) => {
            if start.is_none() {
                v.add("period.start_time", "is required");
            }
            if end.is_none() {
                v.add("period.end_time", "is required");
            }
            (None, None)
        }
        None => (None, None),
    };
    let zone = v.check("", super::policy_rpcs::time_zone(&time_zone, "time_zone"));
    for (i, category) in categories.iter().enumerate() {
        v.check("", check_category(category, &format!("categories[{i}]")));
    }
    let channel = if channel == 0 { None } else { v.check("", convert::channel_from_proto(channel, "channel")) };
    v.finish()?;
    let (Some(start), Some(end), Some((_, tz))) = (start, end, zone) else {
        return Err(ApiError::invalid("period", "is required"));
    };
    let rows = store::chart_complaints(api.pool(), start, end, &categories, channel).await?;
    let chart = complaints::chart(&rows, start, end, tz);
    Ok(pb::ComplaintStats {
        rows: chart.rows.iter().map(chart_row_to_proto).collect(),
        daily_totals: chart.daily_totals.iter().map(chart_row_to_proto).collect(),
        category_totals: chart.category_totals.iter().map(chart_row_to_proto).collect(),
        total: Some(chart_row_to_proto(&chart.total)),
    })
}
