//! Long-running jobs (imports, cleansing, rescoring, retraining, campaign launches):
//! their rows in the service's `jobs` table and the GetJob / ListJobs / CancelJob RPCs
//! every service answers with them. The work itself belongs to the service.

use chrono::{DateTime, Utc};
use idic_proto::common::v1 as pb;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    paging, validate,
};

/// States of a job as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Being worked on.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Stopped by an error.
    Failed,
    /// Cancelled by a caller.
    Cancelled,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => Self::Queued,
        }
    }

    fn to_proto(self) -> pb::JobState {
        match self {
            Self::Queued => pb::JobState::Queued,
            Self::Running => pb::JobState::Running,
            Self::Succeeded => pb::JobState::Succeeded,
            Self::Failed => pb::JobState::Failed,
            Self::Cancelled => pb::JobState::Cancelled,
        }
    }
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    kind: String,
    state: String,
    progress_done: i64,
    progress_total: i64,
    result: Option<serde_json::Value>,
    error_message: String,
    created_by: String,
    create_time: DateTime<Utc>,
    start_time: Option<DateTime<Utc>>,
    end_time: Option<DateTime<Utc>>,
}

impl JobRow {
    fn into_proto(self) -> pb::Job {
        pb::Job {
            name: format!("jobs/{}", self.id),
            kind: self.kind,
            state: JobState::parse(&self.state).to_proto() as i32,
            progress_done: self.progress_done,
            progress_total: self.progress_total,
            create_time: Some(timestamp(self.create_time)),
            start_time: self.start_time.map(timestamp),
            end_time: self.end_time.map(timestamp),
            error_message: self.error_message,
            result: self.result.as_ref().and_then(json_to_struct),
            created_by: self.created_by,
        }
    }
}

/// The jobs of one service (its schema's `jobs` table).
#[derive(Debug, Clone)]
pub struct Jobs {
    pool: PgPool,
}

impl Jobs {
    /// Jobs stored in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Records a new queued job and returns its id.
    pub async fn create(&self, kind: &str, created_by: &str, params: serde_json::Value) -> ApiResult<Uuid> {
        let id = Uuid::now_v7();
        sqlx::query("INSERT INTO jobs (id, kind, state, params, created_by) VALUES ($1, $2, 'queued', $3, $4)")
            .bind(id)
            .bind(kind)
            .bind(params)
            .bind(created_by)
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    /// The job of `kind` started with idempotency key `request_id` (its params' `request_id`).
    pub async fn by_request_id(&self, kind: &str, request_id: &str) -> ApiResult<Option<Uuid>> {
        Ok(sqlx::query_scalar("SELECT id FROM jobs WHERE kind = $1 AND params ->> 'request_id' = $2")
            .bind(kind)
            .bind(request_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// A job of `kind` still queued or running, if any (for kinds that run one at a time).
    pub async fn active(&self, kind: &str) -> ApiResult<Option<Uuid>> {
        Ok(sqlx::query_scalar("SELECT id FROM jobs WHERE kind = $1 AND state IN ('queued', 'running') LIMIT 1")
            .bind(kind)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Marks the job running.
    pub async fn start(&self, id: Uuid, total: i64) -> ApiResult<()> {
        sqlx::query(
            "UPDATE jobs SET state = 'running', start_time = now(), heartbeat_time = now(), progress_total = $2 \
             WHERE id = $1 AND state = 'queued'",
        )
        .bind(id)
        .bind(total)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Reports progress; returns false when the job was cancelled (the worker should stop).
    pub async fn progress(&self, id: Uuid, done: i64, total: i64) -> ApiResult<bool> {
        let running = sqlx::query(
            "UPDATE jobs SET progress_done = $2, progress_total = $3, heartbeat_time = now() \
             WHERE id = $1 AND state = 'running'",
        )
        .bind(id)
        .bind(done)
        .bind(total)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(running == 1)
    }

    /// Ends the job with a result.
    pub async fn succeed(&self, id: Uuid, result: serde_json::Value) -> ApiResult<()> {
        self.finish(id, JobState::Succeeded, Some(result), "").await
    }

    /// Ends the job with an error message safe to show to the caller.
    pub async fn fail(&self, id: Uuid, message: &str) -> ApiResult<()> {
        self.finish(id, JobState::Failed, None, message).await
    }

    async fn finish(
        &self,
        id: Uuid,
        state: JobState,
        result: Option<serde_json::Value>,
        message: &str,
    ) -> ApiResult<()> {
        sqlx::query(
            "UPDATE jobs SET state = $2, result = $3, error_message = $4, end_time = now() \
             WHERE id = $1 AND state IN ('queued', 'running')",
        )
        .bind(id)
        .bind(state.as_str())
        .bind(result)
        .bind(message)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// GetJob.
    pub async fn get(&self, request: pb::GetJobRequest) -> ApiResult<pb::Job> {
        let pb::GetJobRequest { name } = request;
        let id = validate::resource_id(&name, "jobs", "name")?;
        let row: Option<JobRow> = sqlx::query_as(
            "SELECT id, kind, state, progress_done, progress_total, result, error_message, \
                    created_by, create_time, start_time, end_time \
             FROM jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(JobRow::into_proto).ok_or(ApiError::NotFound(name))
    }

    /// ListJobs, newest first.
    pub async fn list(&self, request: pb::ListJobsRequest) -> ApiResult<pb::ListJobsResponse> {
        let pb::ListJobsRequest { page_size, page_token, kind } = request;
        let size = paging::page_size(page_size, "page_size")?;
        validate::text(&kind, 128, "kind")?;
        let cursor: Option<(DateTime<Utc>, Uuid)> = paging::decode_page_token(&page_token, &kind, "page_token")?;
        let (after_time, after_id) = cursor.map_or((None, None), |(t, i)| (Some(t), Some(i)));
        let rows: Vec<JobRow> = sqlx::query_as(
            "SELECT id, kind, state, progress_done, progress_total, result, error_message, created_by, create_time, start_time, end_time FROM jobs \
             WHERE ($1 = '' OR kind = $1) AND ($2::timestamptz IS NULL OR (create_time, id) < ($2, $3)) \
             ORDER BY create_time DESC, id DESC LIMIT $4",
        )
        .bind(&kind)
        .bind(after_time)
        .bind(after_id)
        .bind(i64::from(size) + 1)
        .fetch_all(&self.pool)
        .await?;
        let has_more = rows.len() > size as usize;
        let rows: Vec<JobRow> = rows.into_iter().take(size as usize).collect();
        let next_page_token = match (has_more, rows.last()) {
            (true, Some(last)) => paging::next_page_token(&(last.create_time, last.id), &kind),
            _ => String::new(),
        };
        Ok(pb::ListJobsResponse { jobs: rows.into_iter().map(JobRow::into_proto).collect(), next_page_token })
    }

    /// CancelJob: a queued or running job becomes cancelled; a finished one is
    /// FAILED_PRECONDITION.
    pub async fn cancel(&self, request: pb::CancelJobRequest) -> ApiResult<pb::Job> {
        let pb::CancelJobRequest { name } = request;
        let id = validate::resource_id(&name, "jobs", "name")?;
        let cancelled = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', end_time = now() WHERE id = $1 AND state IN ('queued', 'running')",
        )
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let job = self.get(pb::GetJobRequest { name: name.clone() }).await?;
        if cancelled == 0 && job.state != pb::JobState::Cancelled as i32 {
            return Err(ApiError::FailedPrecondition(format!("{name} has already finished")));
        }
        Ok(job)
    }
}

/// A protobuf timestamp of `t`.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// A JSON object as a `google.protobuf.Struct` (None for non-objects).
pub fn json_to_struct(value: &serde_json::Value) -> Option<prost_types::Struct> {
    let serde_json::Value::Object(map) = value else { return None };
    Some(prost_types::Struct { fields: map.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect() })
}

fn json_to_value(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => {
            Kind::ListValue(prost_types::ListValue { values: a.iter().map(json_to_value).collect() })
        }
        serde_json::Value::Object(_) => Kind::StructValue(json_to_struct(value).unwrap_or_default()),
    };
    prost_types::Value { kind: Some(kind) }
}
