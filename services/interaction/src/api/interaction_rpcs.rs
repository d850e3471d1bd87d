//! Recording and reading interactions: RecordInteraction, IngestInteractions (a batch per
//! stream message, one transaction each), GetInteraction and GetTimeline. Recording checks
//! enforced contacts against the contact policy and counts contacts about complaints in
//! the transaction that stores them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound as _, Utc};
use idic_platform::{
    ApiError, ApiResult, paging,
    validate::{self, Violations},
};
use idic_proto::{common::v1 as common, interaction::v1 as pb};
use prost::Message as _;
use sqlx::{Connection as _, PgConnection};
use tonic::{Request, Status, Streaming};
use uuid::Uuid;

use super::{InteractionApi, caller, convert, policy_rpcs};
use crate::{
    contact_checks::{Check, Checked},
    domain::{
        Interaction,
        contact_policy::{Channel, Purpose},
        interaction::new_id,
    },
    events,
    store::{self, customers::Standing, interactions::TimelineFilter},
};
use idic_platform::customers::Lookup;

/// Most rows in one IngestInteractions message.
const MAX_BATCH_ROWS: usize = 1000;
/// Most rejected rows listed in an ingest summary (all are counted).
const MAX_ROW_ERRORS: usize = 1000;

/// The field of a row that asks for the contact policy; a denied row is refused on it.
const ENFORCE_FIELD: &str = "enforce_contact_policy";
/// The field of a row naming the complaint it is about.
const COMPLAINT_FIELD: &str = "interaction.complaint";

/// Why a row cannot be stored, and which field of it is at fault.
#[derive(Debug)]
struct Refusal {
    field: String,
    error: ApiError,
    /// The contact policy's decision, when it denied the row.
    denied: Option<Box<Checked>>,
}

impl Refusal {
    fn new(field: &str, error: ApiError) -> Self {
        Self { field: field.to_owned(), error, denied: None }
    }

    fn denied(checked: Checked) -> Self {
        let reason = first_denial_reason(&checked);
        Self {
            field: ENFORCE_FIELD.to_owned(),
            error: ApiError::FailedPrecondition(format!("the contact policy denies this contact ({reason})")),
            denied: Some(Box::new(checked)),
        }
    }
}

/// The ContactDenialReason value name of the decision's first denial.
fn first_denial_reason(checked: &Checked) -> &'static str {
    let decision = policy_rpcs::decision_to_proto(checked);
    decision.denials.first().map_or(pb::ContactDenialReason::Unspecified, |d| d.reason()).as_str_name()
}

/// FAILED_PRECONDITION for a denied contact, its details carrying the decision and an
/// ErrorInfo naming the first denial reason (the contract of RecordInteraction).
fn denied_status(checked: &Checked) -> Status {
    let decision = policy_rpcs::decision_to_proto(checked);
    let reason = first_denial_reason(checked);
    let info = tonic_types::pb::ErrorInfo {
        reason: "CONTACT_DENIED".to_owned(),
        domain: "interaction.idic".to_owned(),
        metadata: [("denial_reason".to_owned(), reason.to_owned())].into_iter().collect(),
    };
    let message = format!("the contact policy denies this contact ({reason})");
    let details = tonic_types::pb::Status {
        code: tonic::Code::FailedPrecondition as i32,
        message: message.clone(),
        details: vec![
            prost_types::Any {
                type_url: "type.googleapis.com/idic.interaction.v1.ContactPolicyDecision".to_owned(),
                value: decision.encode_to_vec(),
            },
            prost_types::Any {
                type_url: "type.googleapis.com/google.rpc.ErrorInfo".to_owned(),
                value: info.encode_to_vec(),
            },
        ],
    };
    Status::with_details(tonic::Code::FailedPrecondition, message, details.encode_to_vec().into())
}

/// A row ready to store: its interaction (id and customer given), and whether its
/// contact is to be checked against the policy first.
struct Ready {
    interaction: Interaction,
    enforce: bool,
}

/// Resolves the customers of validated rows, checks what they refer to, and gives each
/// its id: the rows ready to store, or why not. Errors that are not the row's fault
/// (identification or the database unavailable) fail the whole call.
async fn prepare(api: &InteractionApi, rows: Vec<convert::NewRow>) -> ApiResult<Vec<Result<Ready, Refusal>>> {
    let lookups: Vec<Lookup<'_>> =
        rows.iter().map(|r| Lookup { reference: &r.reference, create: r.create_missing_customer }).collect();
    let resolved = api.customers().resolve_many(&lookups).await;
    let found: Vec<Uuid> = resolved.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    let standings = if found.is_empty() { HashMap::new() } else { api.store().standings(&found).await? };
    let related: Vec<Uuid> = rows
        .iter()
        .filter_map(|r| r.interaction.related_interaction.strip_prefix("interactions/"))
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect();
    let existing =
        if related.is_empty() { HashSet::new() } else { api.store().existing_interactions(&related).await? };
    let mut ready = Vec::with_capacity(rows.len());
    for (row, customer) in rows.into_iter().zip(resolved) {
        let customer = match customer {
            Ok(id) => match standings.get(&id) {
                Some(Standing::Current(current)) => *current,
                Some(Standing::Erased) => {
                    ready.push(Err(Refusal::new("customer", ApiError::NotFound(format!("customers/{id}")))));
                    continue;
                }
                None => id,
            },
            Err(e @ (ApiError::NotFound(_) | ApiError::InvalidArgument(_) | ApiError::PermissionDenied(_))) => {
                ready.push(Err(Refusal::new("customer", e)));
                continue;
            }
            Err(other) => return Err(other),
        };
        let mut interaction = row.interaction;
        if let Some(id) = interaction.related_interaction.strip_prefix("interactions/")
            && !Uuid::parse_str(id).is_ok_and(|id| existing.contains(&id))
        {
            let name = interaction.related_interaction.clone();
            ready.push(Err(Refusal::new("interaction.related_interaction", ApiError::NotFound(name))));
            continue;
        }
        let Some(id) = new_id(interaction.occurred_at) else {
            ready.push(Err(Refusal::new(
                "interaction.occur_time",
                ApiError::invalid("interaction.occur_time", "must be after 1970-01-01"),
            )));
            continue;
        };
        interaction.id = id;
        interaction.customer_id = Some(customer);
        interaction.recorded_customer_id = Some(customer);
        let enforce = row.enforce_contact_policy && interaction.is_outbound_contact();
        ready.push(Ok(Ready { interaction, enforce }));
    }
    Ok(ready)
}

/// What storing ready rows did.
struct Stored {
    /// The rows stored now or before (their ids are those of this call).
    kept: Vec<Interaction>,
    /// The ids of the rows stored now; the other kept rows were stored before.
    inserted: HashSet<Uuid>,
    /// The rows refused while storing (denied by the contact policy, or naming a
    /// complaint they may not), with their request ids.
    refused: Vec<(String, Refusal)>,
}

/// Stores ready rows (distinct request ids) with their `interaction.recorded` events in
/// one transaction. Rows to check against the contact policy, or about a complaint, are
/// stored one at a time after the others, each checked under its customer's contact
/// lock (so a contact counts the ones before it) and undone alone when refused.
async fn store_rows(api: &InteractionApi, rows: Vec<Ready>, now: DateTime<Utc>) -> ApiResult<Stored> {
    let mut stored = Stored { kept: Vec::with_capacity(rows.len()), inserted: HashSet::new(), refused: Vec::new() };
    if rows.is_empty() {
        return Ok(stored);
    }
    let occurred: Vec<DateTime<Utc>> = rows.iter().map(|r| r.interaction.occurred_at).collect();
    let mut tx = api.store().begin_recording(&occurred).await?;
    let (mut single, plain): (Vec<Ready>, Vec<Ready>) =
        rows.into_iter().partition(|r| r.enforce || !r.interaction.complaint.is_empty());
    stored.kept = plain.into_iter().map(|r| r.interaction).collect();
    for row in stored.kept.iter_mut().chain(single.iter_mut().map(|r| &mut r.interaction)) {
        row.recorded_at = now;
    }
    if !stored.kept.is_empty() {
        stored.inserted = store::interactions::insert(&mut tx, &stored.kept, now).await?;
    }
    // Contact locks are taken in customer order, so concurrent batches cannot deadlock;
    // the sort is stable, keeping each customer's rows in their order.
    single.sort_by_key(|r| r.interaction.customer_id);
    for row in single {
        let mut savepoint = tx.begin().await?;
        match store_one(api, &mut savepoint, &row, now).await? {
            Ok(inserted) => {
                savepoint.commit().await?;
                if inserted {
                    stored.inserted.insert(row.interaction.id);
                }
                stored.kept.push(row.interaction);
            }
            Err(refusal) => {
                savepoint.rollback().await?;
                stored.refused.push((row.interaction.request_id.clone(), refusal));
            }
        }
    }
    let recorded: Vec<(&str, Vec<u8>)> = stored
        .kept
        .iter()
        .filter(|r| stored.inserted.contains(&r.id))
        .map(|r| (events::INTERACTION_RECORDED, events::interaction_recorded(r)))
        .collect();
    idic_platform::events::enqueue_many(&mut tx, &recorded).await?;
    tx.commit().await?;
    api.checker().count_recorded(&stored.kept, &stored.inserted).await;
    Ok(stored)
}

/// Stores one row inside `tx`: checks its contact first when enforced, counts it on its
/// complaint when it names one. Answers whether it was inserted (false: its request id
/// was stored before), or why it is refused (then `tx` is to be rolled back).
async fn store_one(
    api: &InteractionApi,
    tx: &mut PgConnection,
    row: &Ready,
    now: DateTime<Utc>,
) -> ApiResult<Result<bool, Refusal>> {
    let interaction = &row.interaction;
    let Some(customer) = interaction.customer_id else {
        return Err(ApiError::Internal(anyhow::anyhow!("a prepared row has no customer")));
    };
    if row.enforce {
        let check = Check {
            customer,
            channel: Channel(interaction.channel),
            purpose: Purpose(interaction.purpose),
            at: interaction.occurred_at,
            time_zone: None,
        };
        match api.checker().check_locked(tx, &check).await {
            Ok(checked) if !checked.decision.allowed() => return Ok(Err(Refusal::denied(checked))),
            Ok(_) => {}
            Err(e @ ApiError::NotFound(_)) => return Ok(Err(Refusal::new("customer", e))),
            Err(e) => return Err(e),
        }
    }
    if !store::interactions::insert(tx, std::slice::from_ref(interaction), now).await?.contains(&interaction.id) {
        return Ok(Ok(false));
    }
    if let Some(id) = interaction.complaint.strip_prefix("complaints/") {
        let id = Uuid::parse_str(id).map_err(|_| ApiError::invalid(COMPLAINT_FIELD, "must be complaints/{id}"))?;
        match store::complaints::count_contact(tx, id, customer, COMPLAINT_FIELD).await {
            Ok(()) => {}
            Err(e @ (ApiError::NotFound(_) | ApiError::InvalidArgument(_))) => {
                return Ok(Err(Refusal::new(COMPLAINT_FIELD, e)));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(true))
}

/// Records one interaction (RecordInteraction).
pub(super) async fn record(
    api: &InteractionApi,
    request: Request<pb::RecordInteractionRequest>,
) -> Result<pb::Interaction, Status> {
    let pii = caller(&request)?.has_scope("pii.read");
    let now = Utc::now().trunc_subsecs(6);
    let row = convert::row_from_proto(request.into_inner(), now)?;
    // A retry answers the first call's interaction, whatever else it carries.
    if let Some(stored) = api.store().interaction_by_request_id(&row.request_id).await.map_err(ApiError::from)? {
        return Ok(convert::interaction_to_proto(&stored, pii));
    }
    let request_id = row.request_id.clone();
    let ready = match prepare(api, vec![row]).await?.pop() {
        Some(Ok(ready)) => ready,
        Some(Err(refusal)) => return Err(refusal.error.into()),
        None => return Err(ApiError::Internal(anyhow::anyhow!("a prepared row went missing")).into()),
    };
    let mut stored = store_rows(api, vec![ready], now).await?;
    if let Some((_, refusal)) = stored.refused.pop() {
        return Err(match refusal.denied {
            Some(checked) => denied_status(&checked),
            None => refusal.error.into(),
        });
    }
    if let Some(interaction) = stored.kept.first()
        && stored.inserted.contains(&interaction.id)
    {
        return Ok(convert::interaction_to_proto(interaction, pii));
    }
    // A concurrent call with the same request id won: answer its interaction.
    let stored = api
        .store()
        .interaction_by_request_id(&request_id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::Aborted("a concurrent request with this request_id was undone; retry".into()))?;
    Ok(convert::interaction_to_proto(&stored, pii))
}

/// The counts of an ingest so far.
#[derive(Default)]
struct Tally {
    summary: common::BulkSummary,
    /// Rows denied by the contact policy, by their first denial reason.
    denials: std::collections::BTreeMap<i32, i64>,
}

impl Tally {
    fn refuse(&mut self, row_id: &str, refusal: &Refusal) {
        match &refusal.denied {
            Some(checked) => {
                let decision = policy_rpcs::decision_to_proto(checked);
                let reason = decision.denials.first().map_or(0, |d| d.reason);
                *self.denials.entry(reason).or_default() += 1;
                self.summary.rejected += 1;
                self.list(row_id, &refusal.field, first_denial_reason(checked).to_owned());
            }
            None => self.reject(row_id, &refusal.error, &refusal.field),
        }
    }

    fn reject(&mut self, row_id: &str, error: &ApiError, field: &str) {
        self.summary.rejected += 1;
        match error {
            ApiError::InvalidArgument(violations) => {
                for v in violations {
                    self.list(row_id, &v.field, v.description.clone());
                }
            }
            ApiError::NotFound(what) => self.list(row_id, field, format!("{what} not found")),
            other => self.list(row_id, field, other.to_string()),
        }
    }

    /// Lists one error of a rejected row (the first MAX_ROW_ERRORS only).
    fn list(&mut self, row_id: &str, field: &str, description: String) {
        if self.summary.errors.len() < MAX_ROW_ERRORS {
            self.summary.errors.push(common::RowError {
                row_id: row_id.to_owned(),
                field: field.to_owned(),
                description,
            });
        }
    }
}

/// Bulk ingest (IngestInteractions): each stream message is validated, resolved and
/// stored in one transaction while the next message is being received.
pub(super) async fn ingest(
    api: &InteractionApi,
    request: Request<Streaming<pb::IngestInteractionsRequest>>,
) -> ApiResult<pb::IngestInteractionsResponse> {
    let mut stream = request.into_inner();
    let mut tally = Tally::default();
    let mut next = stream.message().await;
    let mut index = 0usize;
    loop {
        let message = match next {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(status) => return Err(stream_error(status)),
        };
        let pb::IngestInteractionsRequest { interactions } = message;
        if interactions.is_empty() || interactions.len() > MAX_BATCH_ROWS {
            return Err(ApiError::invalid(
                "interactions",
                format!(
                    "each message must hold 1 to {MAX_BATCH_ROWS} rows (message {index} holds {})",
                    interactions.len()
                ),
            ));
        }
        let (stored, received) = tokio::join!(ingest_batch(api, index, interactions, &mut tally), stream.message());
        stored?;
        next = received;
        index += 1;
    }
    let contact_denials =
        tally.denials.into_iter().map(|(reason, count)| pb::ContactDenialCount { reason, count }).collect();
    Ok(pb::IngestInteractionsResponse { summary: Some(tally.summary), contact_denials })
}

fn stream_error(status: tonic::Status) -> ApiError {
    match status.code() {
        tonic::Code::Cancelled => ApiError::Unavailable("the client cancelled the stream".into()),
        tonic::Code::DeadlineExceeded => ApiError::DeadlineExceeded(status.message().to_owned()),
        _ => ApiError::invalid("", format!("the request stream failed: {}", status.message())),
    }
}

async fn ingest_batch(
    api: &InteractionApi,
    index: usize,
    rows: Vec<pb::RecordInteractionRequest>,
    tally: &mut Tally,
) -> ApiResult<()> {
    let now = Utc::now().trunc_subsecs(6);
    tally.summary.received += rows.len() as i64;
    let mut valid = Vec::with_capacity(rows.len());
    let mut seen = HashSet::with_capacity(rows.len());
    for (position, row) in rows.into_iter().enumerate() {
        let row_id = if row.request_id.is_empty() { format!("{index}.{position}") } else { row.request_id.clone() };
        match convert::row_from_proto(row, now) {
            Ok(row) if !seen.insert(row.request_id.clone()) => tally.summary.duplicates += 1,
            Ok(row) => valid.push(row),
            Err(e) => tally.reject(&row_id, &e, ""),
        }
    }
    // Rows stored before (a resumed upload) skip resolution altogether.
    let keys: Vec<&str> = valid.iter().map(|r| r.request_id.as_str()).collect();
    let stored = if keys.is_empty() { HashSet::new() } else { api.store().stored_request_ids(&keys).await? };
    let before = valid.len();
    valid.retain(|r| !stored.contains(&r.request_id));
    tally.summary.duplicates += (before - valid.len()) as i64;
    let request_ids: Vec<String> = valid.iter().map(|r| r.request_id.clone()).collect();
    let mut ready = Vec::with_capacity(valid.len());
    for (request_id, prepared) in request_ids.iter().zip(prepare(api, valid).await?) {
        match prepared {
            Ok(row) => ready.push(row),
            Err(refusal) => tally.refuse(request_id, &refusal),
        }
    }
    let stored = store_rows(api, ready, now).await?;
    for (request_id, refusal) in &stored.refused {
        tally.refuse(request_id, refusal);
    }
    tally.summary.created += stored.inserted.len() as i64;
    tally.summary.duplicates += (stored.kept.len() - stored.inserted.len()) as i64;
    Ok(())
}

/// Returns one interaction (GetInteraction).
pub(super) async fn get(
    api: &InteractionApi,
    request: Request<pb::GetInteractionRequest>,
) -> ApiResult<pb::Interaction> {
    let pii = caller(&request)?.has_scope("pii.read");
    let pb::GetInteractionRequest { name } = request.into_inner();
    let id = validate::resource_id(&name, "interactions", "name")?;
    let interaction = api.store().interaction(id).await?.ok_or_else(|| ApiError::NotFound(name))?;
    Ok(convert::interaction_to_proto(&interaction, pii))
}

/// The cursor of a timeline page: the last interaction served (occurred_at in
/// microseconds, id).
type Cursor = (i64, Uuid);

/// A customer's history, newest first (GetTimeline).
pub(super) async fn timeline(
    api: &InteractionApi,
    request: Request<pb::GetTimelineRequest>,
) -> ApiResult<pb::GetTimelineResponse> {
    let pii = caller(&request)?.has_scope("pii.read");
    let pb::GetTimelineRequest { customer, channels, kinds, direction, period, campaign, page_size, page_token } =
        request.into_inner();
    let mut v = Violations::new();
    let reference = v.check("customer", convert::reference_from_proto(customer));
    let mut filter = TimelineFilter::default();
    for (i, channel) in channels.iter().enumerate() {
        if let Some(code) = v.check("", convert::channel_from_proto(*channel, &format!("channels[{i}]"))) {
            filter.channels.push(code);
        }
    }
    for (i, kind) in kinds.iter().enumerate() {
        if let Some(kind) = v.check("", convert::kind_from_proto(*kind, &format!("kinds[{i}]"))) {
            filter.kinds.push(kind);
        }
    }
    filter.channels.sort_unstable();
    filter.channels.dedup();
    filter.kinds.sort_unstable_by_key(|k| k.code());
    filter.kinds.dedup();
    filter.direction = v.check("", convert::direction_from_proto(direction, "direction")).flatten();
    if let Some(common::Period { start_time, end_time }) = period {
        filter.from = start_time.and_then(|t| v.check("", convert::time_from_proto(&t, "period.start_time")));
        filter.to = end_time.and_then(|t| v.check("", convert::time_from_proto(&t, "period.end_time")));
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            v.add("period.end_time", "must not be before period.start_time");
        }
    }
    if !campaign.is_empty() {
        if campaign.strip_prefix("campaigns/").is_none_or(str::is_empty) {
            v.add("campaign", "must be campaigns/{id}");
        }
        filter.campaign = Some(campaign);
    }
    let size = v.check("", paging::page_size(page_size, "page_size"));
    v.finish()?;
    let (Some(reference), Some(size)) = (reference, size) else {
        return Err(ApiError::invalid("", "is invalid"));
    };
    let customer = api.customers().resolve(Lookup { reference: &reference, create: false }).await?;
    let customer = match api.store().standings(&[customer]).await?.get(&customer) {
        Some(Standing::Erased) => return Err(ApiError::NotFound(format!("customers/{customer}"))),
        Some(Standing::Current(current)) => *current,
        None => customer,
    };
    let fingerprint = format!(
        "{customer}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        filter.channels,
        filter.kinds.iter().map(|k| k.code()).collect::<Vec<_>>(),
        filter.direction.map(|d| d as i16),
        filter.from.map(|t| t.timestamp_micros()),
        filter.to.map(|t| t.timestamp_micros()),
        filter.campaign,
    );
    let after = paging::decode_page_token::<Cursor>(&page_token, &fingerprint, "page_token")?
        .map(|(micros, id)| {
            DateTime::<Utc>::from_timestamp_micros(micros)
                .map(|at| (at, id))
                .ok_or_else(|| ApiError::invalid("page_token", "is not a page token returned by this listing"))
        })
        .transpose()?;
    let merged = api.store().merged_into(customer).await?;
    // Rows of merged customers are re-keyed to the survivor when the merge event is
    // applied; until then they are read under their old ids too.
    let mut customers = vec![customer];
    customers.extend(merged.iter().copied());
    let mut page = api.store().timeline(&customers, &filter, after, i64::from(size) + 1).await?;
    let next_page_token = if page.len() > size as usize {
        page.truncate(size as usize);
        page.last().map(|last| paging::next_page_token(&(last.occurred_at.timestamp_micros(), last.id), &fingerprint))
    } else {
        None
    };
    Ok(pb::GetTimelineResponse {
        customer_id: customer.to_string(),
        merged_customer_ids: merged.iter().map(Uuid::to_string).collect(),
        interactions: page.iter().map(|i| convert::interaction_to_proto(i, pii)).collect(),
        next_page_token: next_page_token.unwrap_or_default(),
    })
}
