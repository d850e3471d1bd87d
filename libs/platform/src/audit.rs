//! The append-only audit log of a service (merges, unmerges, erasures, consent changes,
//! admin actions): written inside the transaction of the audited change, listed by the
//! ListAuditEntries RPC every service answers and by `idic audit`.

use chrono::{DateTime, Utc};
use idic_proto::common::v1 as pb;
use sqlx::{PgConnection, PgPool};

use crate::{
    error::ApiResult,
    jobs::{json_to_struct, timestamp},
    paging, validate,
};

/// One audited action, before it is written.
#[derive(Debug, Clone)]
pub struct AuditRecord<'a> {
    /// The authenticated caller.
    pub caller: &'a str,
    /// The RPC or command, e.g. `MergeCustomers`.
    pub action: &'a str,
    /// The resource acted upon, e.g. `customers/…`.
    pub resource: &'a str,
    /// The caller's reason.
    pub reason: &'a str,
    /// Action-specific detail; never personal data.
    pub detail: serde_json::Value,
}

/// Appends `record` inside `tx`, so the entry exists if and only if the change commits.
pub async fn record(tx: &mut PgConnection, record: AuditRecord<'_>) -> ApiResult<()> {
    record_many(tx, std::slice::from_ref(&record)).await
}

/// Appends `records` inside `tx` in one statement, in this order, as [`record`] does one
/// (a merge audits every customer it touches); nothing for none.
pub async fn record_many(tx: &mut PgConnection, records: &[AuditRecord<'_>]) -> ApiResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let callers: Vec<&str> = records.iter().map(|r| r.caller).collect();
    let actions: Vec<&str> = records.iter().map(|r| r.action).collect();
    let resources: Vec<&str> = records.iter().map(|r| r.resource).collect();
    let reasons: Vec<&str> = records.iter().map(|r| r.reason).collect();
    let details: Vec<&serde_json::Value> = records.iter().map(|r| &r.detail).collect();
    // WITH ORDINALITY keeps the ids (the log's order) in the order given.
    sqlx::query(
        "INSERT INTO audit_log (caller, action, resource, reason, detail) \
         SELECT caller, action, resource, reason, detail \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[]) \
              WITH ORDINALITY AS t(caller, action, resource, reason, detail, n) \
         ORDER BY n",
    )
    .bind(&callers)
    .bind(&actions)
    .bind(&resources)
    .bind(&reasons)
    .bind(&details)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    time: DateTime<Utc>,
    caller: String,
    action: String,
    resource: String,
    reason: String,
    detail: serde_json::Value,
}

/// ListAuditEntries, newest first.
pub async fn list(pool: &PgPool, request: pb::ListAuditEntriesRequest) -> ApiResult<pb::ListAuditEntriesResponse> {
    let pb::ListAuditEntriesRequest { page_size, page_token, resource, period } = request;
    let size = paging::page_size(page_size, "page_size")?;
    validate::text(&resource, 256, "resource")?;
    let (start, end) = period.map_or((None, None), |p| (p.start_time, p.end_time));
    let to_time = |t: Option<prost_types::Timestamp>, field: &str| -> ApiResult<Option<DateTime<Utc>>> {
        t.map(|t| {
            u32::try_from(t.nanos)
                .ok()
                .and_then(|nanos| DateTime::<Utc>::from_timestamp(t.seconds, nanos))
                .ok_or_else(|| crate::ApiError::invalid(format!("period.{field}"), "is not a valid time"))
        })
        .transpose()
    };
    let (start, end) = (to_time(start, "start_time")?, to_time(end, "end_time")?);
    let filter = format!("{resource}|{start:?}|{end:?}");
    let before: Option<i64> = paging::decode_page_token(&page_token, &filter, "page_token")?;
    let rows: Vec<AuditRow> = sqlx::query_as(
        "SELECT id, time, caller, action, resource, reason, detail FROM audit_log \
         WHERE ($1 = '' OR resource = $1) AND ($2::timestamptz IS NULL OR time >= $2) \
           AND ($3::timestamptz IS NULL OR time < $3) AND ($4::bigint IS NULL OR id < $4) \
         ORDER BY id DESC LIMIT $5",
    )
    .bind(&resource)
    .bind(start)
    .bind(end)
    .bind(before)
    .bind(i64::from(size) + 1)
    .fetch_all(pool)
    .await?;
    let has_more = rows.len() > size as usize;
    let rows: Vec<AuditRow> = rows.into_iter().take(size as usize).collect();
    let next_page_token = match (has_more, rows.last()) {
        (true, Some(last)) => paging::next_page_token(&last.id, &filter),
        _ => String::new(),
    };
    Ok(pb::ListAuditEntriesResponse {
        entries: rows
            .into_iter()
            .map(|r| pb::AuditEntry {
                name: format!("auditEntries/{}", r.id),
                time: Some(timestamp(r.time)),
                caller: r.caller,
                action: r.action,
                resource: r.resource,
                reason: r.reason,
                detail: json_to_struct(&r.detail),
            })
            .collect(),
        next_page_token,
    })
}
