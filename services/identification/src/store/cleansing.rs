//! SQL of cleansing: the cannot-link pairs it must respect, the duplicate groups it
//! stores for listing, and the flagging of stale addresses and phones.

use std::collections::HashSet;

use idic_platform::ApiResult;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use idic_platform::{ApiError, jobs::Jobs};

use super::Store;

/// The job kind of a cleansing.
pub const CLEANSE_JOB: &str = "identification.cleanse";

/// A stored duplicate group.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct StoredCluster {
    /// The job that found it.
    pub job_id: Uuid,
    /// Its id within the job.
    pub cluster_id: i64,
    /// `[{"customer", "score"}]`.
    pub members: serde_json::Value,
    /// `[{"customer", "other_customer", "score"}]`.
    pub links: serde_json::Value,
    /// auto_merged, review, partially_merged or unresolved.
    pub disposition: String,
    /// The survivor of the merge made, if any.
    pub survivor: Option<Uuid>,
    /// The merge made, if any.
    pub merge_id: Option<Uuid>,
    /// Review candidates filed.
    pub candidates: Vec<Uuid>,
}

impl Store {
    /// The cleansing job started with `request_id`, if any.
    pub async fn cleansing_job_for_request(&self, request_id: &str) -> ApiResult<Option<Uuid>> {
        Ok(sqlx::query_scalar("SELECT id FROM jobs WHERE kind = $1 AND params->>'request_id' = $2")
            .bind(CLEANSE_JOB)
            .bind(request_id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Queues a cleansing job, unless one is queued or running (FAILED_PRECONDITION).
    /// An advisory lock makes the check and the insert one step across replicas.
    pub async fn queue_cleansing(&self, jobs: &Jobs, caller: &str, params: serde_json::Value) -> ApiResult<Uuid> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(CLEANSE_JOB).execute(&mut *tx).await?;
        let busy: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM jobs WHERE kind = $1 AND state IN ('queued', 'running') LIMIT 1")
                .bind(CLEANSE_JOB)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(busy) = busy {
            return Err(ApiError::FailedPrecondition(format!("jobs/{busy} is already cleansing the file")));
        }
        let id = jobs.create(CLEANSE_JOB, caller, params).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The most recent cleansing job that succeeded.
    pub async fn latest_succeeded_cleansing(&self) -> ApiResult<Option<Uuid>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs WHERE kind = $1 AND state = 'succeeded' ORDER BY create_time DESC, id DESC LIMIT 1",
        )
        .bind(CLEANSE_JOB)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Every cannot-link pair, as (low, high).
    pub async fn all_cannot_links(&self) -> ApiResult<HashSet<(Uuid, Uuid)>> {
        let pairs: Vec<(Uuid, Uuid)> =
            sqlx::query_as("SELECT low_id, high_id FROM cannot_links").fetch_all(self.pool()).await?;
        Ok(pairs.into_iter().collect())
    }

    /// Stores duplicate groups of a job.
    pub async fn store_clusters(&self, clusters: &[StoredCluster]) -> ApiResult<()> {
        if clusters.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&StoredCluster) -> serde_json::Value| clusters.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO duplicate_clusters (job_id, cluster_id, members, links, disposition, survivor, merge_id, \
             candidates) \
             SELECT j, c, m, l, d, s, g, ARRAY(SELECT jsonb_array_elements_text(r))::uuid[] \
             FROM UNNEST($1::uuid[], $2::bigint[], $3::jsonb[], $4::jsonb[], $5::text[], $6::uuid[], $7::uuid[], \
                         $8::jsonb[]) AS t(j, c, m, l, d, s, g, r)",
        )
        .bind(clusters.iter().map(|c| c.job_id).collect::<Vec<_>>())
        .bind(clusters.iter().map(|c| c.cluster_id).collect::<Vec<_>>())
        .bind(column(|c| c.members.clone()))
        .bind(column(|c| c.links.clone()))
        .bind(clusters.iter().map(|c| c.disposition.clone()).collect::<Vec<_>>())
        .bind(clusters.iter().map(|c| c.survivor).collect::<Vec<_>>())
        .bind(clusters.iter().map(|c| c.merge_id).collect::<Vec<_>>())
        .bind(column(|c| serde_json::json!(c.candidates)))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A page of a job's groups after `after` (cluster id), optionally of one
    /// disposition, with the number matching the filter.
    pub async fn clusters(
        &self,
        job: Uuid,
        disposition: Option<&str>,
        after: i64,
        limit: i64,
    ) -> ApiResult<(Vec<StoredCluster>, i64)> {
        let rows: Vec<StoredCluster> = sqlx::query_as(
            "SELECT job_id, cluster_id, members, links, disposition, survivor, merge_id, candidates \
             FROM duplicate_clusters WHERE job_id = $1 AND ($2::text IS NULL OR disposition = $2) AND cluster_id > $3 \
             ORDER BY cluster_id LIMIT $4",
        )
        .bind(job)
        .bind(disposition)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM duplicate_clusters WHERE job_id = $1 AND ($2::text IS NULL OR disposition = $2)",
        )
        .bind(job)
        .bind(disposition)
        .fetch_one(self.pool())
        .await?;
        Ok((rows, total))
    }

    /// Flags as stale every active address and phone of a customer that has not been
    /// seen since a newer one first appeared, pointing at the newest; one seen again
    /// since (both in use) is not, and loses the flag. Answers how many it newly flagged.
    pub async fn flag_stale_identifiers(&self) -> ApiResult<u64> {
        let stale: Vec<bool> = sqlx::query_scalar(
            "WITH newest AS ( \
               SELECT DISTINCT ON (customer_id, kind) id, customer_id, kind, observe_time FROM identifiers \
               WHERE state = 'active' AND kind IN ('postal_address', 'phone') \
               ORDER BY customer_id, kind, last_seen_time DESC, id DESC), \
             judged AS ( \
               SELECT i.id, CASE WHEN i.id <> n.id AND i.last_seen_time < n.observe_time THEN n.id END AS newer \
               FROM identifiers i JOIN newest n USING (customer_id, kind) WHERE i.state = 'active') \
             UPDATE identifiers i SET stale = j.newer IS NOT NULL, superseded_by = j.newer \
             FROM judged j WHERE i.id = j.id \
               AND (i.stale <> (j.newer IS NOT NULL) OR i.superseded_by IS DISTINCT FROM j.newer) \
             RETURNING i.stale",
        )
        .fetch_all(self.pool())
        .await?;
        let flagged = stale.iter().filter(|s| **s).count() as u64;
        Ok(flagged)
    }
}
