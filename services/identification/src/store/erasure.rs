//! SQL of erasure: a customer's personal data removed or anonymised in this schema,
//! with a receipt that collects each service's confirmation.
//!
//! Names, birth date and other fields are blanked; facts are deleted; identifiers are
//! deleted and remembered only as keyed hashes (HMAC-SHA256, computed by Postgres from
//! the key's pads, so an operator holding the key can prove a value was erased while
//! nobody can read it back); consent records stay as proof but lose their evidence
//! reference, through the one exception the ledger's trigger allows (migration 1006).

use chrono::{DateTime, Utc};
use idic_platform::{
    ApiError, ApiResult,
    audit::{self, AuditRecord},
    events, idempotency,
};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    Store,
    merges::{Touched, stored_uuid, to_identifiers},
};
use crate::domain::{CustomerId, Identifier};

/// The services that confirm an erasure; identification confirms when it erases.
pub const ERASURE_SERVICES: [&str; 4] = ["identification", "interaction", "segmentation", "customization"];

/// Resource name of an erasure receipt.
pub fn erasure_name(id: Uuid) -> String {
    format!("erasures/{id}")
}

/// The key of the keyed hashes of erased identifiers, as HMAC's inner and outer pads.
/// Never shown by `Debug`.
#[derive(Clone)]
pub struct ErasureKey {
    inner_pad: Vec<u8>,
    outer_pad: Vec<u8>,
}

impl std::fmt::Debug for ErasureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErasureKey(<redacted>)")
    }
}

/// HMAC-SHA256's block size, and so the longest key used as it is.
const BLOCK: usize = 64;
/// The shortest key accepted: as long as the hash.
const MIN_KEY: usize = 32;

impl ErasureKey {
    /// A key of 32 to 64 bytes.
    pub fn new(key: &[u8]) -> Result<Self, String> {
        if !(MIN_KEY..=BLOCK).contains(&key.len()) {
            return Err(format!("must be {MIN_KEY} to {BLOCK} bytes long, not {}", key.len()));
        }
        let mut padded = key.to_vec();
        padded.resize(BLOCK, 0);
        Ok(Self {
            inner_pad: padded.iter().map(|b| b ^ 0x36).collect(),
            outer_pad: padded.iter().map(|b| b ^ 0x5c).collect(),
        })
    }
}

/// HMAC-SHA256 under the pads `$1` (inner) and `$2` (outer) of the UTF-8 text `message`.
fn hmac_sql(message: &str) -> String {
    format!("sha256($2::bytea || sha256($1::bytea || convert_to({message}, 'UTF8')))")
}

/// One service's confirmation of an erasure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// The service.
    pub service: String,
    /// When it confirmed; `None` while pending.
    pub confirm_time: Option<DateTime<Utc>>,
}

/// An erasure receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// Its id.
    pub id: Uuid,
    /// The erased customer.
    pub customer: CustomerId,
    /// Customers that had been merged into it, erased with it.
    pub merged_customers: Vec<CustomerId>,
    /// The reason given.
    pub reason: String,
    /// The caller.
    pub requested_by: String,
    /// When requested.
    pub request_time: DateTime<Utc>,
    /// When the last confirmation arrived.
    pub complete_time: Option<DateTime<Utc>>,
    /// One per service, in [`ERASURE_SERVICES`] order.
    pub confirmations: Vec<Confirmation>,
    /// Identifiers erased (kept as keyed hashes).
    pub identifiers_erased: i64,
    /// Facts erased.
    pub facts_erased: i64,
    /// Consent records detached from personal data.
    pub consent_records_anonymised: i64,
}

#[derive(sqlx::FromRow)]
struct ErasureRow {
    id: Uuid,
    customer_id: Uuid,
    merged_customer_ids: Vec<Uuid>,
    reason: String,
    requested_by: String,
    request_time: DateTime<Utc>,
    complete_time: Option<DateTime<Utc>>,
    identifiers_erased: i64,
    facts_erased: i64,
    consent_records_anonymised: i64,
}

impl Store {
    /// The erasure hash key: `configured` when given, otherwise the key the migrations
    /// generated in the database (stable, but stored beside the hashes).
    pub async fn erasure_key(&self, configured: Option<&[u8]>) -> ApiResult<ErasureKey> {
        let key = match configured {
            Some(key) => key.to_vec(),
            None => sqlx::query_scalar("SELECT key FROM erasure_hash_key").fetch_one(&self.pool).await?,
        };
        ErasureKey::new(&key).map_err(|why| ApiError::Internal(anyhow::anyhow!("erasure hash key {why}")))
    }

    /// Erases a customer and the customers merged into it (EraseCustomer), answering the
    /// receipt's id: identifiers hashed then deleted, facts deleted, fields blanked,
    /// consent records detached, pending merge candidates obsolete; audited and
    /// published as `customer.erased`; identification's confirmation recorded. An erased
    /// customer answers its receipt; a MERGED one is FAILED_PRECONDITION.
    pub async fn erase(
        &self,
        customer: CustomerId,
        key: &ErasureKey,
        caller: &str,
        reason: &str,
        idempotency: Option<(&str, &[u8])>,
    ) -> ApiResult<(Uuid, Touched)> {
        let mut tx = self.pool.begin().await?;
        if let Some((request_id, hash)) = idempotency
            && let idempotency::Claim::Replay(bytes) =
                idempotency::claim(&mut tx, "EraseCustomer", request_id, hash).await?
        {
            return Ok((stored_uuid(&bytes)?, Touched::default()));
        }
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM customers WHERE id = $1 FOR UPDATE")
            .bind(customer.0)
            .fetch_optional(&mut *tx)
            .await?;
        let erased = match state.as_deref() {
            None => return Err(ApiError::NotFound(customer.resource_name())),
            Some("merged") => {
                return Err(ApiError::FailedPrecondition(format!(
                    "{} is merged: erase its survivor, or unmerge it first",
                    customer.resource_name()
                )));
            }
            Some("erased") => {
                let id = erasure_of(&mut tx, customer)
                    .await?
                    .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("erased without a receipt")))?;
                (id, Touched::default())
            }
            Some(_) => erase_in(&mut tx, customer, key, caller, reason).await?,
        };
        if let Some((request_id, _)) = idempotency {
            idempotency::complete(&mut tx, "EraseCustomer", request_id, erased.0.as_bytes()).await?;
        }
        tx.commit().await?;
        Ok(erased)
    }

    /// An erasure receipt with its confirmations.
    pub async fn erasure(&self, id: Uuid) -> ApiResult<Option<Erasure>> {
        let row: Option<ErasureRow> = sqlx::query_as(
            "SELECT id, customer_id, merged_customer_ids, reason, requested_by, request_time, complete_time, \
             identifiers_erased, facts_erased, consent_records_anonymised FROM erasures WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let confirmed: Vec<(String, Option<DateTime<Utc>>)> =
            sqlx::query_as("SELECT service, confirm_time FROM erasure_confirmations WHERE erasure_id = $1")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        let confirmations = ERASURE_SERVICES
            .iter()
            .map(|service| Confirmation {
                service: (*service).to_owned(),
                confirm_time: confirmed.iter().find(|(s, _)| s == service).and_then(|(_, t)| *t),
            })
            .collect();
        Ok(Some(Erasure {
            id: row.id,
            customer: CustomerId(row.customer_id),
            merged_customers: row.merged_customer_ids.into_iter().map(CustomerId).collect(),
            reason: row.reason,
            requested_by: row.requested_by,
            request_time: row.request_time,
            complete_time: row.complete_time,
            confirmations,
            identifiers_erased: row.identifiers_erased,
            facts_erased: row.facts_erased,
            consent_records_anonymised: row.consent_records_anonymised,
        }))
    }

    /// Records `service`'s confirmation of erasure `id` at `time` and completes the
    /// receipt once every service confirmed. Idempotent: a repeated confirmation keeps
    /// the first time. False when no such erasure or service is known.
    pub async fn confirm_erasure(&self, id: Uuid, service: &str, time: DateTime<Utc>) -> ApiResult<bool> {
        let mut tx = self.pool.begin().await?;
        let marked = sqlx::query(
            "UPDATE erasure_confirmations SET confirm_time = COALESCE(confirm_time, $3) \
             WHERE erasure_id = $1 AND service = $2",
        )
        .bind(id)
        .bind(service)
        .bind(time)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if marked == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE erasures e SET complete_time = (SELECT max(confirm_time) FROM erasure_confirmations c \
                                                    WHERE c.erasure_id = e.id) \
             WHERE e.id = $1 AND e.complete_time IS NULL \
               AND NOT EXISTS (SELECT 1 FROM erasure_confirmations c WHERE c.erasure_id = e.id \
                               AND c.confirm_time IS NULL)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Whether `identifier` was erased (its keyed hash under `key` is remembered): the
    /// proof an operator can give without the value being kept.
    pub async fn was_erased(&self, key: &ErasureKey, identifier: &Identifier) -> ApiResult<bool> {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM erased_identifiers WHERE kind = $3 AND value_hash = {})",
            hmac_sql("$3 || chr(31) || $4 || chr(31) || $5")
        )))
        .bind(&key.inner_pad)
        .bind(&key.outer_pad)
        .bind(identifier.kind.as_str())
        .bind(&identifier.namespace)
        .bind(&identifier.value)
        .fetch_one(&self.pool)
        .await?)
    }
}

/// The erasure that erased `customer` (itself, or merged into the erased one), if any;
/// a customer read answers it as [`CUSTOMER_COLUMNS`](super::CUSTOMER_COLUMNS) does.
async fn erasure_of(conn: &mut PgConnection, customer: CustomerId) -> ApiResult<Option<Uuid>> {
    Ok(sqlx::query_scalar("SELECT id FROM erasures WHERE customer_id = $1 OR merged_customer_ids @> ARRAY[$1]")
        .bind(customer.0)
        .fetch_optional(&mut *conn)
        .await?)
}

async fn erase_in(
    conn: &mut PgConnection,
    customer: CustomerId,
    key: &ErasureKey,
    caller: &str,
    reason: &str,
) -> ApiResult<(Uuid, Touched)> {
    let family: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM customers WHERE id IN (SELECT merge_family($1)) ORDER BY id FOR UPDATE")
            .bind(customer.0)
            .fetch_all(&mut *conn)
            .await?;
    let merged: Vec<Uuid> = family.iter().copied().filter(|id| *id != customer.0).collect();
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO erasures (id, customer_id, merged_customer_ids, reason, requested_by) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(customer.0)
    .bind(&merged)
    .bind(reason)
    .bind(caller)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO erasure_confirmations (erasure_id, service, confirm_time) \
         SELECT $1, s, CASE WHEN s = 'identification' THEN now() END FROM UNNEST($2::text[]) AS s",
    )
    .bind(id)
    .bind(&ERASURE_SERVICES[..])
    .execute(&mut *conn)
    .await?;
    // Only a tombstone stays: the kind, state, times and erasure.
    sqlx::query(
        "UPDATE customers SET state = 'erased', roles = '{}', display_name = '', given_name = '', family_name = '', \
         preferred_name = '', organization_name = '', birth_year = NULL, birth_month = NULL, birth_day = NULL, \
         parent_id = NULL, job_title = '', preferred_language = '', time_zone = '', preferred_channel = '', \
         merged_into = NULL, version = version + 1, update_time = now() WHERE id = ANY($1)",
    )
    .bind(&family)
    .execute(&mut *conn)
    .await?;
    // The customers' identifiers, and the history records of them that an unmerge left
    // with a former survivor; nothing else may still point at them.
    sqlx::query(
        "UPDATE identifiers SET superseded_by = NULL, stale = false \
         WHERE superseded_by IN (SELECT id FROM identifiers \
                                 WHERE customer_id = ANY($1) OR origin_customer_id = ANY($1)) \
         AND NOT (customer_id = ANY($1) OR COALESCE(origin_customer_id, customer_id) = ANY($1))",
    )
    .bind(&family)
    .execute(&mut *conn)
    .await?;
    let gone: Vec<(String, String, String)> = sqlx::query_as(
        "DELETE FROM identifiers WHERE customer_id = ANY($1) OR origin_customer_id = ANY($1) \
         RETURNING kind, namespace, value",
    )
    .bind(&family)
    .fetch_all(&mut *conn)
    .await?;
    let identifiers = to_identifiers(gone);
    let kinds: Vec<&str> = identifiers.iter().map(|i| i.kind.as_str()).collect();
    let namespaces: Vec<&str> = identifiers.iter().map(|i| i.namespace.as_str()).collect();
    let values: Vec<&str> = identifiers.iter().map(|i| i.value.as_str()).collect();
    let identifiers_erased = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO erased_identifiers (erasure_id, kind, value_hash, key_id) \
         SELECT $3, t.kind, {}, left(encode({}, 'hex'), 16) \
         FROM UNNEST($4::text[], $5::text[], $6::text[]) AS t(kind, namespace, value)",
        hmac_sql("t.kind || chr(31) || t.namespace || chr(31) || t.value"),
        hmac_sql("'idic erasure key id'"),
    )))
    .bind(&key.inner_pad)
    .bind(&key.outer_pad)
    .bind(id)
    .bind(&kinds)
    .bind(&namespaces)
    .bind(&values)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let facts_erased =
        sqlx::query("DELETE FROM profile_facts WHERE customer_id = ANY($1) OR origin_customer_id = ANY($1)")
            .bind(&family)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    // The ledger's trigger lets this statement, and only it, clear evidence references.
    sqlx::query("SELECT set_config('identification.erasing', 'on', true)").execute(&mut *conn).await?;
    let consent_records_anonymised =
        sqlx::query("UPDATE consent_records SET evidence_reference = '' WHERE customer_id = ANY($1)")
            .bind(&family)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    sqlx::query("SELECT set_config('identification.erasing', 'off', true)").execute(&mut *conn).await?;
    sqlx::query(
        "UPDATE merge_candidates SET state = 'obsolete', resolve_time = now() \
         WHERE state = 'pending' AND (customer_id = ANY($1) OR duplicate_id = ANY($1))",
    )
    .bind(&family)
    .execute(&mut *conn)
    .await?;
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE erasures SET identifiers_erased = $2, facts_erased = $3, consent_records_anonymised = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(count(identifiers_erased))
    .bind(count(facts_erased))
    .bind(count(consent_records_anonymised))
    .execute(&mut *conn)
    .await?;
    let merged_ids: Vec<CustomerId> = merged.iter().copied().map(CustomerId).collect();
    let payload = crate::events::customer_erased(id, customer, &merged_ids, Utc::now());
    events::enqueue(conn, crate::events::CUSTOMER_ERASED, &payload).await?;
    audit::record(
        conn,
        AuditRecord {
            caller,
            action: "EraseCustomer",
            resource: &customer.resource_name(),
            reason,
            detail: serde_json::json!({
                "erasure": erasure_name(id),
                "merged_customers": merged_ids.iter().map(CustomerId::resource_name).collect::<Vec<_>>(),
                "identifiers_erased": identifiers_erased,
                "facts_erased": facts_erased,
                "consent_records_anonymised": consent_records_anonymised,
            }),
        },
    )
    .await?;
    Ok((id, Touched { customers: family.into_iter().map(CustomerId).collect(), identifiers }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_32_to_64_bytes() {
        assert!(ErasureKey::new(&[7; 31]).is_err());
        assert!(ErasureKey::new(&[7; 65]).is_err());
        let key = ErasureKey::new(&[7; 32]).expect("32 bytes");
        assert_eq!((key.inner_pad.len(), key.outer_pad.len()), (BLOCK, BLOCK));
        assert_eq!((key.inner_pad[0], key.inner_pad[40]), (7 ^ 0x36, 0x36), "zero-padded to the block");
        assert!(ErasureKey::new(&[7; 64]).is_ok());
    }

    #[test]
    fn keys_never_show() {
        let key = ErasureKey::new(b"0123456789abcdef0123456789abcdef").expect("key");
        assert_eq!(format!("{key:?}"), "ErasureKey(<redacted>)");
    }
}
