//! Resolution of a contact to a customer: exact strong identifiers first, then the
//! probabilistic matcher; linking, creating, or creating and filing for review.
//! ResolveCustomer answers one contact; imports resolve every row the same way.

use std::collections::HashSet;

use chrono::Utc;
use futures::StreamExt as _;
use idic_platform::{
    ApiError, ApiResult, idempotency,
    validate::{self, Violations},
};
use idic_proto::identification::v1 as pb;
use prost::Message as _;
use tonic::Request;

use super::{
    IdentificationApi, caller, customer_to_proto, fact_inputs_from_proto, identifier_to_proto, new_customer_from_proto,
    provenance_from_proto,
};
use crate::domain::facts::{FactKey, FactValue};
use crate::domain::matching::record::Subject;
use crate::domain::{Customer, CustomerId, CustomerKind, CustomerState, IdentifierKind, NewCustomer};
use crate::store::FactProvenance;
use crate::store::merges::{CandidateOrigin, candidate_name};
use crate::store::resolution::{Applied, Decision, MatchKind, ResolutionRecord, ResolveWrite, Review, StoredEvidence};

/// Most rows in one import message.
const MAX_IMPORT_ROWS: usize = 1_000;
/// Rows of one message resolved at once.
const IMPORT_CONCURRENCY: usize = 8;
/// Most facts in one imported row.
const MAX_ROW_FACTS: usize = 100;
/// Most rejected rows reported with their reason.
const MAX_ROW_ERRORS: usize = 1_000;

/// Resolves one contact (ResolveCustomer).
pub(super) async fn resolve(
    api: &IdentificationApi,
    request: Request<pb::ResolveCustomerRequest>,
) -> ApiResult<pb::ResolveCustomerResponse> {
    let caller = caller(&request)?;
    let encoded = request.get_ref().encode_to_vec();
    let pb::ResolveCustomerRequest { customer, provenance, request_id } = request.into_inner();
    let mut v = Violations::new();
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten();
    let (source, channel, observe_time) =
        v.check("provenance", provenance_from_proto(provenance, &caller.name, Utc::now())).unwrap_or_default();
    let presented = match customer {
        Some(customer) => v.check("customer", presented_from_proto(customer)),
        None => {
            v.add("customer", "is required: what the channel knows about the customer");
            None
        }
    };
    v.finish()?;
    let presented = presented.ok_or_else(|| ApiError::invalid("customer", "is invalid"))?;
    let provenance = api.fact_provenance(source, channel, observe_time);
    let hash = idempotency::request_hash(&encoded);
    let key = request_id.map(|id| (id, hash.as_slice()));
    // A retried request answers as the first did; a repeated contact from the caches.
    let replayed = match key {
        Some(key) => api.store.replayed_resolution("ResolveCustomer", key).await?,
        None => None,
    };
    let answered = match replayed {
        Some(record) => Some((record.clone(), api.load_customer(CustomerId(record.customer)).await?)),
        None => api.repeated_contact(&presented, &provenance).await?,
    };
    let (record, customer) = match answered {
        Some(answered) => answered,
        None => {
            let record = api
                .resolve_contact(
                    &presented,
                    &[],
                    &provenance,
                    &caller.name,
                    key,
                    CandidateOrigin::Resolve,
                    "ResolveCustomer",
                )
                .await?
                .record;
            let customer = api.load_customer(CustomerId(record.customer)).await?;
            (record, customer)
        }
    };
    let pii = caller.has_scope("pii.read");
    Ok(pb::ResolveCustomerResponse {
        customer: Some(customer_to_proto(&customer, pii)),
        match_kind: match record.match_kind {
            MatchKind::Exact => pb::MatchKind::Exact,
            MatchKind::Probable => pb::MatchKind::Probable,
            MatchKind::New => pb::MatchKind::New,
        } as i32,
        score: record.score,
        match_weight: record.weight,
        evidence: record
            .evidence
            .iter()
            .map(|e| pb::FieldEvidence { field: e.field.clone(), level: e.level.clone(), weight: e.weight })
            .collect(),
        best_candidate: record.best_candidate.map(|id| CustomerId(id).resource_name()).unwrap_or_default(),
        matched_identifier: record.matched_identifier.as_ref().map(|i| identifier_to_proto(i, pii)),
        merge_candidate: record.merge_candidate.map(candidate_name).unwrap_or_default(),
    })
}

/// Imports a stream of rows (ImportCustomers): each resolved like a contact (rows that
/// could be one person in order, others side by side), committed one by one (durable
/// once its message is done), idempotent per (source, row id).
pub(super) async fn import(
    api: &IdentificationApi,
    request: Request<tonic::Streaming<pb::ImportCustomersRequest>>,
) -> ApiResult<pb::ImportCustomersResponse> {
    let caller = caller(&request)?;
    let mut stream = request.into_inner();
    let mut source: Option<String> = None;
    let mut answer = pb::ImportCustomersResponse {
        summary: Some(idic_proto::common::v1::BulkSummary::default()),
        ..Default::default()
    };
    // A broken or undecodable upload ends the import; the rows committed so far stay.
    while let Some(message) =
        stream.message().await.map_err(|status| ApiError::Aborted(format!("the upload broke: {}", status.message())))?
    {
        let pb::ImportCustomersRequest { source: message_source, rows } = message;
        match &source {
            None => {
                provenance_from_proto(
                    Some(pb::Provenance { source: message_source.clone(), ..Default::default() }),
                    "",
                    Utc::now(),
                )
                .map_err(|_| ApiError::invalid("source", "is required: 1–100 letters, digits and ._:/-"))?;
                if message_source.is_empty() {
                    return Err(ApiError::invalid("source", "is required: 1–100 letters, digits and ._:/-"));
                }
                source = Some(message_source);
            }
            Some(first) if *first != message_source => {
                return Err(ApiError::invalid("source", "must stay the same throughout the stream"));
            }
            Some(_) => {}
        }
        if rows.is_empty() || rows.len() > MAX_IMPORT_ROWS {
            return Err(ApiError::invalid("rows", format!("send 1 to {MAX_IMPORT_ROWS} rows per message")));
        }
        let source = source.as_deref().unwrap_or_default();
        // Rows that could be one person wait for each other (the contact locks); the
        // others resolve side by side.
        let outcomes: Vec<(String, ApiResult<Applied>)> = futures::stream::iter(rows)
            .map(|row| async {
                let row_id = row.row_id.clone();
                (row_id, import_row(api, source, row, &caller.name).await)
            })
            .buffered(IMPORT_CONCURRENCY)
            .collect()
            .await;
        for (row_id, outcome) in outcomes {
            let summary = answer.summary.get_or_insert_default();
            summary.received += 1;
            match outcome {
                Ok(applied) if !applied.changed => summary.duplicates += 1,
                Ok(applied) => {
                    match applied.record.match_kind {
                        MatchKind::Exact => answer.linked_exact += 1,
                        MatchKind::Probable => answer.linked_probable += 1,
                        MatchKind::New => {}
                    }
                    if applied.record.match_kind == MatchKind::New {
                        summary.created += 1;
                    } else {
                        summary.updated += 1;
                    }
                    if applied.record.merge_candidate.is_some() {
                        answer.review_candidates += 1;
                    }
                }
                Err(ApiError::InvalidArgument(violations)) => {
                    summary.rejected += 1;
                    if summary.errors.len() < MAX_ROW_ERRORS {
                        let first = violations.into_iter().next();
                        summary.errors.push(idic_proto::common::v1::RowError {
                            row_id,
                            field: first.as_ref().map(|v| v.field.clone()).unwrap_or_default(),
                            description: first.map(|v| v.description).unwrap_or_default(),
                        });
                    }
                }
                Err(ApiError::Conflict(violation)) => {
                    summary.rejected += 1;
                    if summary.errors.len() < MAX_ROW_ERRORS {
                        summary.errors.push(idic_proto::common::v1::RowError {
                            row_id,
                            field: violation.field,
                            description: violation.description,
                        });
                    }
                }
                // Anything else (the database gone, a deadline) ends the stream; the
                // rows committed so far stay, and a re-run resumes after them.
                Err(error) => return Err(error),
            }
        }
        // Rows were committed without waiting for the disk; one flush per message makes
        // them durable before the next is read (and before the answer).
        api.store.flush_commits().await?;
    }
    Ok(answer)
}

/// Resolves one imported row; a bad row is INVALID_ARGUMENT naming its field as a
/// path in ImportRow.
async fn import_row(api: &IdentificationApi, source: &str, row: pb::ImportRow, caller: &str) -> ApiResult<Applied> {
    let hash = idempotency::request_hash(&row.encode_to_vec());
    let pb::ImportRow { row_id, customer, facts, channel, observe_time } = row;
    let now = Utc::now();
    let mut v = Violations::new();
    if row_id.is_empty() || row_id.chars().count() > 128 || row_id.chars().any(char::is_control) {
        v.add("row_id", "is required: 1–128 characters, no control characters");
    }
    let presented = match customer {
        Some(customer) => v.check("customer", presented_from_proto(customer)),
        None => {
            v.add("customer", "is required");
            None
        }
    };
    if facts.len() > MAX_ROW_FACTS {
        v.add("facts", format!("give at most {MAX_ROW_FACTS} facts"));
    }
    let facts = fact_inputs_from_proto(facts, now, &mut v);
    let provenance = Some(pb::Provenance { source: source.to_owned(), channel, observe_time });
    let (source, channel, observe_time) =
        v.check("", provenance_from_proto(provenance, caller, now)).unwrap_or_default();
    v.finish()?;
    let presented = presented.ok_or_else(|| ApiError::invalid("customer", "is invalid"))?;
    let provenance = api.fact_provenance(source.clone(), channel, observe_time);
    let key = format!("{source}\n{row_id}");
    api.resolve_contact(
        &presented,
        &facts,
        &provenance,
        caller,
        Some((&key, &hash)),
        CandidateOrigin::Import,
        "ImportCustomers",
    )
    .await
}

/// What a contact says about the customer, validated as a new customer would be (so
/// it has a name or an identifier to match on): a person unless said otherwise.
pub(super) fn presented_from_proto(mut customer: pb::Customer) -> ApiResult<NewCustomer> {
    if customer.kind == pb::CustomerKind::Unspecified as i32 {
        customer.kind = pb::CustomerKind::Person as i32;
    }
    new_customer_from_proto(customer)
}

impl IdentificationApi {
    /// Resolves a contact and applies the outcome: links it to the customer an exact
    /// strong identifier or the matcher points to, or creates a customer (filing a
    /// review candidate in the review band). Idempotent under `key` (request id and
    /// request hash). The index and caches are brought up to date before answering.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn resolve_contact(
        &self,
        presented: &NewCustomer,
        facts: &[(FactKey, FactValue)],
        provenance: &FactProvenance,
        caller: &str,
        key: Option<(&str, &[u8])>,
        origin: CandidateOrigin,
        method: &str,
    ) -> ApiResult<Applied> {
        if let Some(key) = key
            && let Some(record) = self.store.replayed_resolution(method, key).await?
        {
            return Ok(Applied { record, changed: false });
        }
        let fingerprint = (origin == CandidateOrigin::Resolve && facts.is_empty())
            .then(|| contact_fingerprint(presented, provenance))
            .transpose()?;
        // One contact at a time per person in this process: the second of two
        // concurrent first contacts then finds the customer the first created.
        let _held = self.contact_locks.hold(presented).await;
        let limits = |kind: IdentifierKind| self.config.identifier_limits.of(kind);
        let mut attempt = 0;
        let applied = loop {
            attempt += 1;
            let Decided { decision, review, record, profile: _ } = self.decide(presented).await?;
            let write = ResolveWrite {
                presented,
                facts,
                provenance,
                caller,
                decision,
                review,
                origin,
                limits: &limits,
                method,
                key,
                record,
                // An import row is acknowledged with its message, flushed then.
                deferred_flush: origin == CandidateOrigin::Import,
            };
            match self.store.apply_resolution(&write).await {
                // Another replica created a customer with one of these identifiers
                // between deciding and writing: decide again, now finding it.
                Err(ApiError::AlreadyExists(_) | ApiError::Conflict(_)) if attempt == 1 => continue,
                result => break result?,
            }
        };
        if applied.changed {
            let customer = CustomerId(applied.record.customer);
            self.changed(&[customer]).await;
            self.cache.invalidate_holders(&presented.identifiers).await;
            if let Some(fingerprint) = &fingerprint {
                self.cache.mark_applied(fingerprint, customer, provenance.observe_time).await;
            }
        }
        Ok(applied)
    }

    /// The answer to a contact repeating one applied to the same customer less than a
    /// refresh period earlier (in observation time), with that customer's profile:
    /// it would write nothing new, so it is answered from the caches. `None` when the
    /// contact must be applied.
    async fn repeated_contact(
        &self,
        presented: &NewCustomer,
        provenance: &FactProvenance,
    ) -> ApiResult<Option<(ResolutionRecord, Customer)>> {
        let fingerprint = contact_fingerprint(presented, provenance)?;
        let (decided, applied) = tokio::join!(self.decide(presented), self.cache.applied_contact(&fingerprint));
        let Decided { decision, review, record, profile } = decided?;
        let (Decision::Link(customer), None, Some((applied_to, applied_at))) = (decision, review, applied) else {
            return Ok(None);
        };
        if applied_to != customer || !self.cache.within_refresh(applied_at, provenance.observe_time) {
            return Ok(None);
        }
        let profile = match profile {
            Some(profile) if profile.id == customer => profile,
            _ => self.load_customer(customer).await?,
        };
        Ok(Some((record, profile)))
    }

    /// Decides where a contact belongs, without writing anything.
    async fn decide(&self, presented: &NewCustomer) -> ApiResult<Decided> {
        // Exact: the first presented strong identifier an active customer holds.
        let mut holders: Vec<(CustomerId, usize)> = Vec::new();
        let mut first_profile = None;
        let mut seen = HashSet::new();
        for (position, identifier) in presented.identifiers.iter().enumerate() {
            if identifier.kind == IdentifierKind::PostalAddress {
                continue;
            }
            let store = self.store.clone();
            let holder = self.cache.holder(identifier, || async move { store.holder(identifier).await }).await?;
            let Some(holder) = holder else { continue };
            // An erased holder identifies nobody any more.
            let Some(active) = self.active_holder(holder).await? else { continue };
            if seen.insert(active.id) {
                holders.push((active.id, position));
                first_profile.get_or_insert(active);
            }
        }
        if let Some(&(customer, position)) = holders.first() {
            // Identifiers pointing at two customers suggest those two are one person.
            let review = holders.get(1).map(|&(other, other_position)| Review {
                survivor: customer,
                duplicate: Some(other),
                score: 1.0,
                weight: 0.0,
                evidence: vec![exact_evidence(presented, position), exact_evidence(presented, other_position)],
            });
            let record = ResolutionRecord::exact(customer, presented.identifiers[position].clone());
            return Ok(Decided { decision: Decision::Link(customer), review, record, profile: first_profile });
        }
        // Probable: the matcher's best candidate, people only.
        if presented.kind != CustomerKind::Person {
            return Ok(Decided::create(None, ResolutionRecord::new_without_candidate()));
        }
        let subject =
            Subject::of(&presented.given_name, &presented.family_name, presented.birth_date, &presented.identifiers);
        let Some(best) = self.index.best_match(&subject) else {
            return Ok(Decided::create(None, ResolutionRecord::new_without_candidate()));
        };
        let evidence: Vec<StoredEvidence> = best
            .evidence
            .iter()
            .map(|e| StoredEvidence { field: e.field.name().to_owned(), level: e.level.to_owned(), weight: e.weight })
            .collect();
        if best.probability >= self.config.auto_link_probability {
            let record = ResolutionRecord::scored(MatchKind::Probable, best.customer, &best, evidence);
            return Ok(Decided { decision: Decision::Link(best.customer), review: None, record, profile: None });
        }
        let review = (best.probability >= self.config.review_probability).then(|| Review {
            survivor: best.customer,
            duplicate: None,
            score: best.probability,
            weight: best.weight,
            evidence: evidence.clone(),
        });
        Ok(Decided::create(review, ResolutionRecord::scored(MatchKind::New, best.customer, &best, evidence)))
    }
}

impl IdentificationApi {
    /// The customer a holder of an identifier stands for now, with its profile: itself
    /// while active, its survivor once merged, nobody once erased. Read through the
    /// profile cache.
    async fn active_holder(&self, holder: CustomerId) -> ApiResult<Option<Customer>> {
        let mut current = holder;
        // Merge chains are short; the bound guards against a corrupted cycle.
        for _ in 0..32 {
            let store = self.store.clone();
            let (customer, _) =
                self.cache.customer(current, || async move { store.get_customer(current).await }).await?;
            let Some(customer) = customer else { return Ok(None) };
            match (customer.state, customer.merged_into) {
                (CustomerState::Active, _) => return Ok(Some(customer)),
                (CustomerState::Merged, Some(survivor)) => current = survivor,
                (CustomerState::Merged | CustomerState::Erased, _) => return Ok(None),
            }
        }
        Err(ApiError::Internal(anyhow::anyhow!("merge chain of {} too long", holder.resource_name())))
    }
}

/// Where a contact belongs, decided without writing.
struct Decided {
    decision: Decision,
    review: Option<Review>,
    record: ResolutionRecord,
    /// The profile of the customer linked to, when deciding read it.
    profile: Option<Customer>,
}

impl Decided {
    fn create(review: Option<Review>, record: ResolutionRecord) -> Self {
        Self { decision: Decision::Create, review, record, profile: None }
    }
}

/// What identifies a contact for the refresh period: what it presented, from which
/// source and channel (not when).
fn contact_fingerprint(presented: &NewCustomer, provenance: &FactProvenance) -> ApiResult<String> {
    let encoded = serde_json::to_vec(&(presented, &provenance.source, &provenance.channel))
        .map_err(|e| anyhow::anyhow!("contact fingerprint: {e}"))?;
    Ok(idempotency::request_hash(&encoded).iter().take(16).map(|b| format!("{b:02x}")).collect())
}

fn exact_evidence(presented: &NewCustomer, position: usize) -> StoredEvidence {
    StoredEvidence {
        field: presented.identifiers[position].kind.as_str().to_owned(),
        level: "exact".to_owned(),
        weight: 0.0,
    }
}
