//! Cleansing of the whole customer file (a job) and its duplicate clusters: refit
//! the matcher to the file, score every candidate pair, cluster without chaining,
//! merge the clusters above the auto-merge threshold, file the review band, flag
//! stale addresses and phones, and keep the groups for listing and export.

use idic_platform::{ApiError, ApiResult, paging, validate};
use idic_proto::common::v1 as common;
use idic_proto::identification::v1 as pb;
use serde_json::json;
use tonic::Request;
use uuid::Uuid;

use super::{IdentificationApi, caller};
use crate::domain::CustomerId;
use crate::domain::matching::cluster::Link;
use crate::domain::matching::engine::DedupThresholds;
use crate::domain::matching::groups::{Disposition, DuplicateGroup, duplicate_groups};
use crate::domain::matching::model::{probability, weight_for_probability};
use crate::store::cleansing::{CLEANSE_JOB, StoredCluster};
use crate::store::merges::{
    CandidateOrigin, MergeOutcome, MergePlan, MergeRule, MergeTerms, NewMergeCandidate, merge_name,
};

/// Groups merged (and filed) per transaction.
const GROUPS_PER_BATCH: usize = 500;
/// Threads scoring pairs.
const SCORING_THREADS: usize = 2;

/// StartCleansing: queues the job and runs it in the background.
pub(super) async fn start(
    api: &IdentificationApi,
    request: Request<pb::StartCleansingRequest>,
) -> ApiResult<common::Job> {
    let caller = caller(&request)?;
    let pb::StartCleansingRequest { request_id, dry_run, auto_merge_threshold, review_threshold } =
        request.into_inner();
    let mut v = validate::Violations::new();
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten();
    let link = auto_merge_threshold.unwrap_or(api.config.auto_link_probability);
    let review = review_threshold.unwrap_or(api.config.review_probability);
    for (field, value) in [("auto_merge_threshold", link), ("review_threshold", review)] {
        if !(0.0..=1.0).contains(&value) {
            v.add(field, "must be a probability between 0 and 1");
        }
    }
    if review > link {
        v.add("review_threshold", "must not exceed the auto-merge threshold");
    }
    v.finish()?;
    let params = json!({ "request_id": request_id, "dry_run": dry_run, "auto_merge_threshold": link,
                         "review_threshold": review });
    let id = match request_id {
        Some(request_id) => match api.store.cleansing_job_for_request(request_id).await? {
            Some(id) => return api.jobs.get(common::GetJobRequest { name: format!("jobs/{id}") }).await,
            None => api.store.queue_cleansing(&api.jobs, &caller.name, params).await?,
        },
        None => api.store.queue_cleansing(&api.jobs, &caller.name, params).await?,
    };
    let worker = api.clone();
    let thresholds = DedupThresholds { link, review };
    tokio::spawn(async move {
        if let Err(error) = worker.run_cleansing(id, thresholds, dry_run).await {
            tracing::error!(job = %id, %error, "cleansing failed");
            if let Err(error) = worker.jobs.fail(id, "cleansing failed; see the service log").await {
                tracing::error!(job = %id, %error, "recording the failure failed");
            }
        }
    });
    api.jobs.get(common::GetJobRequest { name: format!("jobs/{id}") }).await
}

/// ListDuplicateClusters: a page of the groups a cleansing job found.
pub(super) async fn list_clusters(
    api: &IdentificationApi,
    request: Request<pb::ListDuplicateClustersRequest>,
) -> ApiResult<pb::ListDuplicateClustersResponse> {
    let pb::ListDuplicateClustersRequest { parent, page_size, page_token, disposition } = request.into_inner();
    let disposition = match pb::ClusterDisposition::try_from(disposition) {
        Ok(pb::ClusterDisposition::Unspecified) => None,
        Ok(pb::ClusterDisposition::AutoMerged) => Some("auto_merged"),
        Ok(pb::ClusterDisposition::Review) => Some("review"),
        Ok(pb::ClusterDisposition::PartiallyMerged) => Some("partially_merged"),
        Ok(pb::ClusterDisposition::Unresolved) => Some("unresolved"),
        Err(_) => return Err(ApiError::invalid("disposition", "is not a known disposition")),
    };
    let job = if parent.is_empty() {
        api.store
            .latest_succeeded_cleansing()
            .await?
            .ok_or_else(|| ApiError::NotFound("jobs/- (no cleansing job has succeeded yet)".into()))?
    } else {
        validate::resource_id(&parent, "jobs", "parent")?
    };
    let found = api.jobs.get(common::GetJobRequest { name: format!("jobs/{job}") }).await?;
    if found.kind != CLEANSE_JOB {
        return Err(ApiError::invalid("parent", "is not a cleansing job"));
    }
    if found.state != common::JobState::Succeeded as i32 {
        return Err(ApiError::FailedPrecondition(format!("jobs/{job} has not succeeded")));
    }
    let size = paging::page_size(page_size, "page_size")?;
    let filter = format!("{job}/{}", disposition.unwrap_or(""));
    let after: i64 = paging::decode_page_token(&page_token, &filter, "page_token")?.unwrap_or(-1);
    let (rows, total) = api.store.clusters(job, disposition, after, i64::from(size) + 1).await?;
    let more = rows.len() > size as usize;
    let rows = &rows[..rows.len().min(size as usize)];
    let next_page_token = match (more, rows.last()) {
        (true, Some(last)) => paging::next_page_token(&last.cluster_id, &filter),
        _ => String::new(),
    };
    Ok(pb::ListDuplicateClustersResponse {
        clusters: rows.iter().map(cluster_to_proto).collect(),
        next_page_token,
        total_size: total,
    })
}

fn cluster_to_proto(c: &StoredCluster) -> pb::DuplicateCluster {
    let customer = |v: &serde_json::Value, key: &str| {
        v.get(key).and_then(|s| s.as_str()).map(|s| format!("customers/{s}")).unwrap_or_default()
    };
    let score = |v: &serde_json::Value| v.get("score").and_then(serde_json::Value::as_f64).unwrap_or_default();
    let list = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
    pb::DuplicateCluster {
        name: format!("jobs/{}/duplicateClusters/{}", c.job_id, c.cluster_id),
        cluster_id: c.cluster_id.to_string(),
        members: list(&c.members)
            .iter()
            .map(|m| pb::ClusterMember { customer: customer(m, "customer"), score: score(m) })
            .collect(),
        links: list(&c.links)
            .iter()
            .map(|l| pb::ClusterLink {
                customer: customer(l, "customer"),
                other_customer: customer(l, "other_customer"),
                score: score(l),
            })
            .collect(),
        disposition: match c.disposition.as_str() {
            "auto_merged" => pb::ClusterDisposition::AutoMerged,
            "review" => pb::ClusterDisposition::Review,
            "partially_merged" => pb::ClusterDisposition::PartiallyMerged,
            _ => pb::ClusterDisposition::Unresolved,
        } as i32,
        survivor: c.survivor.map(|s| CustomerId(s).resource_name()).unwrap_or_default(),
        merge: c.merge_id.map(merge_name).unwrap_or_default(),
        merge_candidates: c.candidates.iter().map(|id| crate::store::merges::candidate_name(*id)).collect(),
    }
}

/// A group with its members as customer ids.
struct Found {
    group: DuplicateGroup,
    customers: Vec<Uuid>,
}

impl IdentificationApi {
    async fn run_cleansing(&self, job: Uuid, thresholds: DedupThresholds, dry_run: bool) -> ApiResult<()> {
        let scanned = self.index.len() as i64;
        // Progress counts duplicate groups handled, known once the file is scored.
        self.jobs.start(job, 0).await?;
        let cannot = self.store.all_cannot_links().await?;
        let fit = self.index.refit().await?;
        let index = self.index.clone();
        let (pairs_scored, found) = tokio::task::spawn_blocking(move || {
            index.with_matcher(|matcher, customer_of| {
                let id = |slot: u32| customer_of.get(slot as usize).copied().unwrap_or_default();
                let dedup = matcher.deduplicate(thresholds, SCORING_THREADS, |a, b| {
                    let (x, y) = (id(a), id(b));
                    cannot.contains(&(x.min(y), x.max(y)))
                });
                let link_weight = weight_for_probability(thresholds.link) as f32;
                let groups = duplicate_groups(&dedup.clusters, &dedup.links, link_weight);
                let found: Vec<Found> = groups
                    .into_iter()
                    .map(|group| {
                        let customers = group.members.iter().map(|(slot, _)| id(*slot)).collect();
                        Found { group, customers }
                    })
                    .collect();
                (dedup.pairs_scored, found)
            })
        })
        .await
        .map_err(|e| anyhow::anyhow!("scoring the file: {e}"))?;

        let mut counts = Counts::default();
        let mut stored = Vec::with_capacity(found.len());
        for (batch_number, batch) in found.chunks(GROUPS_PER_BATCH).enumerate() {
            let first_id = (batch_number * GROUPS_PER_BATCH) as i64;
            let applied = if dry_run {
                batch.iter().map(|_| Applied::default()).collect()
            } else {
                self.apply(job, batch, first_id, &mut counts).await?
            };
            for (offset, (found, applied)) in batch.iter().zip(applied).enumerate() {
                stored.push(stored_cluster(job, first_id + offset as i64, found, applied, dry_run));
            }
            let done = ((batch_number + 1) * GROUPS_PER_BATCH).min(found.len()) as i64;
            if !self.jobs.progress(job, done, found.len() as i64).await? {
                // Cancelled: merges already made stay (each is audited).
                return Ok(());
            }
        }
        self.store.store_clusters(&stored).await?;
        let stale_flagged = if dry_run { 0 } else { self.store.flag_stale_identifiers().await? };
        let result = json!({
            "customers_scanned": scanned,
            "pairs_scored": pairs_scored,
            "clusters": found.len(),
            "auto_merged": counts.merged,
            "review_candidates": counts.candidates,
            "stale_flagged": stale_flagged,
            "dry_run": dry_run,
            "model": fit.map(|f| json!({
                "em_iterations": f.iterations, "converged": f.converged, "log_likelihood": f.log_likelihood,
                "candidate_pairs": f.candidate_pairs, "random_pairs": f.random_pairs, "prior": f.parameters.prior,
            })),
        });
        self.jobs.succeed(job, result).await
    }

    /// Merges and files one batch of groups; answers what was done per group.
    async fn apply(&self, job: Uuid, batch: &[Found], first_id: i64, counts: &mut Counts) -> ApiResult<Vec<Applied>> {
        let mut plans = Vec::new();
        let mut plan_of = Vec::new();
        for (g, found) in batch.iter().enumerate() {
            for merge in &found.group.merges {
                let mut ids: Vec<Uuid> = merge.iter().map(|slot| slot_customer(found, *slot)).collect();
                // The oldest record survives (ids are time-ordered).
                ids.sort_unstable();
                let weakest = found
                    .group
                    .links
                    .iter()
                    .filter(|l| merge.contains(&l.a) && merge.contains(&l.b))
                    .map(|l| probability(f64::from(l.weight)))
                    .fold(1.0, f64::min);
                plans.push(MergePlan {
                    survivor: CustomerId(ids[0]),
                    parts: ids[1..].iter().copied().map(CustomerId).collect(),
                    score: Some(weakest),
                });
                plan_of.push(g);
            }
        }
        let merged_by = format!("jobs/{job}");
        let limits = |kind| self.config.identifier_limits.of(kind);
        let terms = MergeTerms {
            rule: MergeRule::AutoCleansing,
            merged_by: &merged_by,
            reason: "cleansing: duplicates above the auto-merge threshold",
            override_cannot_link: false,
            limits: &limits,
        };
        let batch_result = self.store.merge_many(&plans, &terms).await?;
        let mut applied: Vec<Applied> = batch.iter().map(|_| Applied::default()).collect();
        for ((plan, outcome), &g) in plans.iter().zip(&batch_result.outcomes).zip(&plan_of) {
            match outcome {
                MergeOutcome::Merged(id) => {
                    counts.merged += 1;
                    applied[g].survivor.get_or_insert(plan.survivor.0);
                    applied[g].merge.get_or_insert(*id);
                }
                MergeOutcome::Held(_) => applied[g].held = true,
            }
        }
        super::merge_rpcs::forget(self, &batch_result.touched).await;
        for (g, found) in batch.iter().enumerate() {
            let cluster = (first_id + g as i64).to_string();
            for review in &found.group.reviews {
                let (a, b) = (slot_customer(found, review.a), slot_customer(found, review.b));
                let evidence = json!([]);
                let filed = self
                    .store
                    .file_merge_candidate(&NewMergeCandidate {
                        customer: CustomerId(a.min(b)),
                        duplicate: CustomerId(a.max(b)),
                        score: probability(f64::from(review.weight)),
                        match_weight: f64::from(review.weight),
                        evidence: &evidence,
                        origin: CandidateOrigin::Cleansing,
                        cleansing: Some((job, &cluster)),
                    })
                    .await?;
                if let Some(id) = filed {
                    counts.candidates += 1;
                    applied[g].candidates.push(id);
                }
            }
        }
        Ok(applied)
    }
}

/// The customer of a member slot of a group.
fn slot_customer(found: &Found, slot: u32) -> Uuid {
    found.group.members.iter().position(|(s, _)| *s == slot).map(|i| found.customers[i]).unwrap_or_default()
}

#[derive(Debug, Default)]
struct Counts {
    merged: u64,
    candidates: u64,
}

/// What was done with one group.
#[derive(Debug, Default)]
struct Applied {
    survivor: Option<Uuid>,
    merge: Option<Uuid>,
    candidates: Vec<Uuid>,
    held: bool,
}

fn stored_cluster(job: Uuid, cluster_id: i64, found: &Found, applied: Applied, dry_run: bool) -> StoredCluster {
    let members: Vec<serde_json::Value> = found
        .group
        .members
        .iter()
        .zip(&found.customers)
        .map(|((_, score), customer)| json!({ "customer": customer, "score": score }))
        .collect();
    let link = |l: &Link| {
        json!({ "customer": slot_customer(found, l.a), "other_customer": slot_customer(found, l.b),
                "score": probability(f64::from(l.weight)) })
    };
    // A dry run decides nothing: its groups stay unresolved.
    let disposition = match (applied.held || dry_run, found.group.disposition) {
        (true, _) => "unresolved",
        (false, Disposition::AutoMerged) => "auto_merged",
        (false, Disposition::PartiallyMerged) => "partially_merged",
        (false, Disposition::Review) => "review",
    };
    StoredCluster {
        job_id: job,
        cluster_id,
        members: serde_json::Value::Array(members),
        links: serde_json::Value::Array(found.group.links.iter().map(link).collect()),
        disposition: disposition.to_owned(),
        survivor: applied.survivor,
        merge_id: applied.merge,
        candidates: applied.candidates,
    }
}
