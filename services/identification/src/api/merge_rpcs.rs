//! Merging, unmerging and the review queue of merge candidates.

use idic_platform::{
    ApiError, ApiResult, idempotency,
    jobs::timestamp,
    paging,
    validate::{self, Violations},
};
use idic_proto::identification::v1 as pb;
use prost::Message as _;
use tonic::Request;
use uuid::Uuid;

use super::{IdentificationApi, caller, customer_to_proto};
use crate::{
    domain::{CustomerId, IdentifierKind},
    store::merges::{
        CandidateFilter, CandidateOrigin, CandidateState, MergeCandidate, MergePlan, MergeRecord, MergeRule,
        MergeTerms, Touched, candidate_name, merge_name,
    },
};

/// Most customers one MergeCustomers request merges into its survivor.
const MAX_MERGED: usize = 50;
/// Longest reason accepted.
const MAX_REASON_CHARS: usize = 500;

/// Checks a required, audited reason (1–500 characters of text).
pub(super) fn check_reason(v: &mut Violations, reason: &str) {
    if v.check("", validate::required(reason, MAX_REASON_CHARS, "reason")).is_some() {
        v.check("", validate::text(reason, MAX_REASON_CHARS, "reason"));
    }
}

/// Evicts from the caches what a committed change touched.
pub(super) async fn forget(api: &IdentificationApi, touched: &Touched) {
    api.changed(&touched.customers).await;
    api.cache.invalidate_holders(&touched.identifiers).await;
}

/// MergeCustomers: merges customers into a survivor (rule "manual").
pub(super) async fn merge(
    api: &IdentificationApi,
    request: Request<pb::MergeCustomersRequest>,
) -> ApiResult<pb::MergeCustomersResponse> {
    let caller = caller(&request)?;
    let encoded = request.get_ref().encode_to_vec();
    let pb::MergeCustomersRequest { survivor, merged_customers, reason, override_cannot_link, request_id } =
        request.into_inner();
    let mut v = Violations::new();
    let survivor = v.check("", validate::resource_id(&survivor, "customers", "survivor")).map(CustomerId);
    if merged_customers.is_empty() || merged_customers.len() > MAX_MERGED {
        v.add("merged_customers", format!("give 1 to {MAX_MERGED} customers"));
    }
    let mut parts: Vec<CustomerId> = Vec::with_capacity(merged_customers.len());
    for (i, name) in merged_customers.iter().enumerate() {
        let field = format!("merged_customers[{i}]");
        let Some(part) = v.check("", validate::resource_id(name, "customers", &field)).map(CustomerId) else {
            continue;
        };
        if Some(part) == survivor {
            v.add(field, "is the survivor: a customer is not merged into itself");
        } else if parts.contains(&part) {
            v.add(field, "repeats an earlier merged customer");
        } else {
            parts.push(part);
        }
    }
    check_reason(&mut v, &reason);
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten();
    v.finish()?;
    let survivor = survivor.ok_or_else(|| ApiError::invalid("survivor", "is required"))?;
    let limits = |kind: IdentifierKind| api.config.identifier_limits.of(kind);
    let terms = MergeTerms {
        rule: MergeRule::Manual,
        merged_by: &caller.name,
        reason: &reason,
        override_cannot_link,
        limits: &limits,
    };
    let plan = MergePlan { survivor, parts, score: None };
    let hash = idempotency::request_hash(&encoded);
    let (merge, touched) = api.store.merge(&plan, &terms, request_id.map(|id| (id, hash.as_slice()))).await?;
    forget(api, &touched).await;
    let record = api
        .store
        .get_merge(merge)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("{} vanished", merge_name(merge))))?;
    let survivor = api.load_customer(record.survivor).await?;
    Ok(pb::MergeCustomersResponse {
        survivor: Some(customer_to_proto(&survivor, caller.has_scope("pii.read"))),
        merge: Some(merge_to_proto(&record)),
    })
}

/// UnmergeCustomer: splits a merged customer back out of its survivor.
pub(super) async fn unmerge(
    api: &IdentificationApi,
    request: Request<pb::UnmergeCustomerRequest>,
) -> ApiResult<pb::UnmergeCustomerResponse> {
    let caller = caller(&request)?;
    let encoded = request.get_ref().encode_to_vec();
    let pb::UnmergeCustomerRequest { name, reason, request_id } = request.into_inner();
    let mut v = Violations::new();
    let part = v.check("", validate::resource_id(&name, "customers", "name")).map(CustomerId);
    check_reason(&mut v, &reason);
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten();
    v.finish()?;
    let part = part.ok_or_else(|| ApiError::invalid("name", "is required"))?;
    let limits = |kind: IdentifierKind| api.config.identifier_limits.of(kind);
    let hash = idempotency::request_hash(&encoded);
    let unmerged =
        api.store.unmerge(part, &caller.name, &reason, &limits, request_id.map(|id| (id, hash.as_slice()))).await?;
    forget(api, &unmerged.touched).await;
    let pii = caller.has_scope("pii.read");
    let restored = api.load_customer(unmerged.restored).await?;
    let survivor = api.load_customer(unmerged.survivor).await?;
    Ok(pb::UnmergeCustomerResponse {
        restored: Some(customer_to_proto(&restored, pii)),
        survivor: Some(customer_to_proto(&survivor, pii)),
    })
}

/// ListMergeCandidates: highest score first.
pub(super) async fn list_candidates(
    api: &IdentificationApi,
    request: Request<pb::ListMergeCandidatesRequest>,
) -> ApiResult<pb::ListMergeCandidatesResponse> {
    let pb::ListMergeCandidatesRequest { page_size, page_token, state, origin, customer, cleansing_job, min_score } =
        request.into_inner();
    let mut v = Violations::new();
    let size = v.check("", paging::page_size(page_size, "page_size"));
    let state = match pb::MergeCandidateState::try_from(state) {
        Ok(pb::MergeCandidateState::Unspecified | pb::MergeCandidateState::Pending) => CandidateState::Pending,
        Ok(pb::MergeCandidateState::Accepted) => CandidateState::Accepted,
        Ok(pb::MergeCandidateState::Rejected) => CandidateState::Rejected,
        Ok(pb::MergeCandidateState::Obsolete) => CandidateState::Obsolete,
        Err(_) => {
            v.add("state", format!("{state} is not a MergeCandidateState"));
            CandidateState::Pending
        }
    };
    let origin = match pb::MergeCandidateOrigin::try_from(origin) {
        Ok(pb::MergeCandidateOrigin::Unspecified) => None,
        Ok(pb::MergeCandidateOrigin::Resolve) => Some(CandidateOrigin::Resolve),
        Ok(pb::MergeCandidateOrigin::Import) => Some(CandidateOrigin::Import),
        Ok(pb::MergeCandidateOrigin::Cleansing) => Some(CandidateOrigin::Cleansing),
        Err(_) => {
            v.add("origin", format!("{origin} is not a MergeCandidateOrigin"));
            None
        }
    };
    let customer_id = match customer.as_str() {
        "" => None,
        name => v.check("", validate::resource_id(name, "customers", "customer")).map(CustomerId),
    };
    let job = match cleansing_job.as_str() {
        "" => None,
        name => v.check("", validate::resource_id(name, "jobs", "cleansing_job")),
    };
    if min_score.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
        v.add("min_score", "must be between 0 and 1");
    }
    let filter_key = format!("{state:?}|{origin:?}|{customer}|{cleansing_job}|{min_score:?}");
    let cursor: Option<(f64, Uuid)> =
        v.check("", paging::decode_page_token(&page_token, &filter_key, "page_token")).flatten();
    v.finish()?;
    let size = size.ok_or_else(|| ApiError::invalid("page_size", "is invalid"))? as usize;
    let filter = CandidateFilter { state, origin, customer: customer_id, cleansing_job: job, min_score };
    let mut candidates = api.store.merge_candidates(&filter, cursor, size as i64 + 1).await?;
    let next_page_token = if candidates.len() > size {
        candidates.truncate(size);
        candidates.last().map(|c| paging::next_page_token(&(c.score, c.id), &filter_key)).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(pb::ListMergeCandidatesResponse {
        candidates: candidates.iter().map(candidate_to_proto).collect(),
        next_page_token,
    })
}

/// GetMergeCandidate.
pub(super) async fn get_candidate(
    api: &IdentificationApi,
    request: Request<pb::GetMergeCandidateRequest>,
) -> ApiResult<pb::MergeCandidate> {
    let pb::GetMergeCandidateRequest { name } = request.into_inner();
    let id = validate::resource_id(&name, "mergeCandidates", "name")?;
    let candidate = api.store.merge_candidate(id).await?.ok_or(ApiError::NotFound(name))?;
    Ok(candidate_to_proto(&candidate))
}

/// AcceptMergeCandidate: merges the pair (rule "review", the candidate's score).
pub(super) async fn accept_candidate(
    api: &IdentificationApi,
    request: Request<pb::AcceptMergeCandidateRequest>,
) -> ApiResult<pb::MergeCandidate> {
    let caller = caller(&request)?;
    let pb::AcceptMergeCandidateRequest { name, reason, survivor } = request.into_inner();
    let mut v = Violations::new();
    let id = v.check("", validate::resource_id(&name, "mergeCandidates", "name"));
    check_reason(&mut v, &reason);
    let survivor = match survivor.as_str() {
        "" => None,
        survivor => v.check("", validate::resource_id(survivor, "customers", "survivor")).map(CustomerId),
    };
    v.finish()?;
    let id = id.ok_or_else(|| ApiError::invalid("name", "is required"))?;
    let limits = |kind: IdentifierKind| api.config.identifier_limits.of(kind);
    let (candidate, touched) = api.store.accept_merge_candidate(id, survivor, &caller.name, &reason, &limits).await?;
    forget(api, &touched).await;
    Ok(candidate_to_proto(&candidate))
}

/// RejectMergeCandidate: the pair becomes cannot-link.
pub(super) async fn reject_candidate(
    api: &IdentificationApi,
    request: Request<pb::RejectMergeCandidateRequest>,
) -> ApiResult<pb::MergeCandidate> {
    let caller = caller(&request)?;
    let pb::RejectMergeCandidateRequest { name, reason } = request.into_inner();
    let mut v = Violations::new();
    let id = v.check("", validate::resource_id(&name, "mergeCandidates", "name"));
    check_reason(&mut v, &reason);
    v.finish()?;
    let id = id.ok_or_else(|| ApiError::invalid("name", "is required"))?;
    let candidate = api.store.reject_merge_candidate(id, &caller.name, &reason).await?;
    Ok(candidate_to_proto(&candidate))
}

fn merge_to_proto(merge: &MergeRecord) -> pb::Merge {
    pb::Merge {
        name: merge_name(merge.id),
        survivor: merge.survivor.resource_name(),
        merged_customers: merge.parts.iter().map(CustomerId::resource_name).collect(),
        rule: merge.rule.clone(),
        score: merge.score,
        reason: merge.reason.clone(),
        merged_by: merge.merged_by.clone(),
        create_time: Some(timestamp(merge.create_time)),
    }
}

/// One field's evidence as stored with a candidate.
#[derive(serde::Deserialize)]
struct StoredEvidence {
    field: String,
    level: String,
    weight: f64,
}

fn candidate_to_proto(candidate: &MergeCandidate) -> pb::MergeCandidate {
    let evidence: Vec<StoredEvidence> = serde_json::from_value(candidate.evidence.clone()).unwrap_or_default();
    pb::MergeCandidate {
        name: candidate_name(candidate.id),
        customer: candidate.customer.resource_name(),
        duplicate_customer: candidate.duplicate.resource_name(),
        score: candidate.score,
        match_weight: candidate.match_weight,
        evidence: evidence
            .into_iter()
            .map(|e| pb::FieldEvidence { field: e.field, level: e.level, weight: e.weight })
            .collect(),
        origin: match candidate.origin {
            CandidateOrigin::Resolve => pb::MergeCandidateOrigin::Resolve,
            CandidateOrigin::Import => pb::MergeCandidateOrigin::Import,
            CandidateOrigin::Cleansing => pb::MergeCandidateOrigin::Cleansing,
        } as i32,
        state: match candidate.state {
            CandidateState::Pending => pb::MergeCandidateState::Pending,
            CandidateState::Accepted => pb::MergeCandidateState::Accepted,
            CandidateState::Rejected => pb::MergeCandidateState::Rejected,
            CandidateState::Obsolete => pb::MergeCandidateState::Obsolete,
        } as i32,
        create_time: Some(timestamp(candidate.create_time)),
        resolve_time: candidate.resolve_time.map(timestamp),
        resolved_by: candidate.resolved_by.clone(),
        resolution_reason: candidate.resolution_reason.clone(),
        cleansing_job: candidate.cleansing_job.map(|job| format!("jobs/{job}")).unwrap_or_default(),
        duplicate_cluster: match (candidate.cleansing_job, &candidate.cluster_id) {
            (Some(job), Some(cluster)) => format!("jobs/{job}/duplicateClusters/{cluster}"),
            _ => String::new(),
        },
        merge: candidate.merge.map(merge_name).unwrap_or_default(),
    }
}
