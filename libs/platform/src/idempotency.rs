//! Idempotent creates: a `request_id` chosen by the caller makes a retried request
//! answer the first one's response instead of acting twice (AIP-155). The key is
//! claimed inside the caller's transaction, so a concurrent duplicate waits for the
//! first to commit and then replays its answer. Keys are remembered for
//! [`RETENTION`], then pruned.

use std::time::Duration;

use sha2::{Digest as _, Sha256};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ApiResult};

/// What claiming a request id found.
#[derive(Debug)]
pub enum Claim {
    /// First time: do the work, then [`complete`] with the response.
    New,
    /// Seen before with the same request: answer this stored response.
    Replay(Vec<u8>),
}

/// Fingerprint of an encoded request, to tell a retry from a different request
/// that reuses the same id.
pub fn request_hash(encoded_request: &[u8]) -> Vec<u8> {
    Sha256::digest(encoded_request).to_vec()
}

/// Claims `request_id` for `method` inside `tx`.
pub async fn claim(tx: &mut PgConnection, method: &str, request_id: &str, request_hash: &[u8]) -> ApiResult<Claim> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (method, request_id, request_hash) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(method)
    .bind(request_id)
    .bind(request_hash)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::New);
    }
    let (stored_hash, response): (Vec<u8>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT request_hash, response FROM idempotency_keys WHERE method = $1 AND request_id = $2")
            .bind(method)
            .bind(request_id)
            .fetch_one(&mut *tx)
            .await?;
    if stored_hash != request_hash {
        return Err(ApiError::FailedPrecondition(
            "request_id was already used for a different request; choose a new request_id".into(),
        ));
    }
    response
        .map(Claim::Replay)
        .ok_or_else(|| ApiError::Aborted("the first request with this request_id is still running".into()))
}

/// The stored response of a finished earlier request with this id, without claiming
/// anything: lets a retry skip expensive work before the claim. A different request
/// under the same id is FAILED_PRECONDITION, as in [`claim`].
pub async fn peek(
    conn: &mut PgConnection,
    method: &str,
    request_id: &str,
    request_hash: &[u8],
) -> ApiResult<Option<Vec<u8>>> {
    let stored: Option<(Vec<u8>, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT request_hash, response FROM idempotency_keys WHERE method = $1 AND request_id = $2")
            .bind(method)
            .bind(request_id)
            .fetch_optional(&mut *conn)
            .await?;
    match stored {
        Some((hash, _)) if hash != request_hash => Err(ApiError::FailedPrecondition(
            "request_id was already used for a different request; choose a new request_id".into(),
        )),
        Some((_, response)) => Ok(response),
        None => Ok(None),
    }
}

/// Stores the response of a claimed request, in the same transaction as its effect.
pub async fn complete(tx: &mut PgConnection, method: &str, request_id: &str, response: &[u8]) -> ApiResult<()> {
    sqlx::query("UPDATE idempotency_keys SET response = $3 WHERE method = $1 AND request_id = $2")
        .bind(method)
        .bind(request_id)
        .bind(response)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// How long a request id is remembered: a retry later than this acts again.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Rows deleted per statement when pruning, so no prune holds locks for long.
const PRUNE_BATCH: i64 = 10_000;

/// Forgets the request ids claimed more than `older_than` ago; answers how many.
pub async fn prune(pool: &PgPool, older_than: Duration) -> ApiResult<u64> {
    let mut pruned = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM idempotency_keys WHERE ctid IN ( \
               SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1) LIMIT $2)",
        )
        .bind(older_than.as_secs_f64())
        .bind(PRUNE_BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        pruned += deleted;
        if deleted < PRUNE_BATCH as u64 {
            return Ok(pruned);
        }
    }
}

/// Prunes request ids older than [`RETENTION`] once an hour until `shutdown`.
pub async fn prune_periodically(pool: PgPool, shutdown: CancellationToken) {
    loop {
        match prune(&pool, RETENTION).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "idempotency keys past retention pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning idempotency keys failed; retrying in an hour"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}
