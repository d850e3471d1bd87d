//! SQL of the contact policy: the policy row, do-not-contact entries, the local copy of
//! consent decisions and customer time zones, and the outbound contacts the frequency
//! caps count.

use chrono::{DateTime, Utc};
use idic_platform::ApiResult;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::contact_policy::{Channel, ConsentCopy, CountedContact, DoNotContact, Policy, Purpose};

/// The policy in force with its bookkeeping.
#[derive(Debug, Clone)]
pub struct StoredPolicy {
    /// The rules.
    pub policy: Policy,
    /// When last changed (None: never, the initial policy).
    pub updated_at: Option<DateTime<Utc>>,
    /// Who last changed it.
    pub updated_by: String,
    /// Bumped by every change; the etag.
    pub version: i64,
}

/// The policy in force (the initial one when never changed).
pub async fn policy(conn: &mut PgConnection) -> ApiResult<StoredPolicy> {
    let row: Option<(sqlx::types::Json<Policy>, DateTime<Utc>, String, i64)> =
        sqlx::query_as("SELECT policy, updated_at, updated_by, version FROM contact_policy")
            .fetch_optional(&mut *conn)
            .await?;
    Ok(match row {
        Some((policy, updated_at, updated_by, version)) => {
            StoredPolicy { policy: policy.0, updated_at: Some(updated_at), updated_by, version }
        }
        None => StoredPolicy { policy: Policy::default(), updated_at: None, updated_by: String::new(), version: 0 },
    })
}

/// The policy, locked for a read-modify-write in `tx`.
pub async fn policy_for_update(tx: &mut PgConnection) -> ApiResult<StoredPolicy> {
    // The row may not exist yet: create it so that the lock has something to hold.
    sqlx::query(
        "INSERT INTO contact_policy (policy, updated_at, updated_by, version) VALUES ($1, now(), '', 0) \
         ON CONFLICT DO NOTHING",
    )
    .bind(sqlx::types::Json(Policy::default()))
    .execute(&mut *tx)
    .await?;
    let (policy, updated_at, updated_by, version): (sqlx::types::Json<Policy>, DateTime<Utc>, String, i64) =
        sqlx::query_as("SELECT policy, updated_at, updated_by, version FROM contact_policy FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    let updated_at = (version > 0).then_some(updated_at);
    Ok(StoredPolicy { policy: policy.0, updated_at, updated_by, version })
}

/// Replaces the policy; answers the stored one.
pub async fn save_policy(tx: &mut PgConnection, policy: &Policy, updated_by: &str) -> ApiResult<StoredPolicy> {
    let (updated_at, version): (DateTime<Utc>, i64) = sqlx::query_as(
        "UPDATE contact_policy SET policy = $1, updated_at = now(), updated_by = $2, version = version + 1 \
         RETURNING updated_at, version",
    )
    .bind(sqlx::types::Json(policy))
    .bind(updated_by)
    .fetch_one(&mut *tx)
    .await?;
    Ok(StoredPolicy {
        policy: policy.clone(),
        updated_at: Some(updated_at),
        updated_by: updated_by.to_owned(),
        version,
    })
}

/// What a check needs from Postgres about one customer, read in one round trip.
#[derive(Debug, Clone)]
pub struct CheckFacts {
    /// The policy in force.
    pub policy: Policy,
    /// The customer this one was merged into, when it was.
    pub merged_into: Option<Uuid>,
    /// Whether identification erased the customer.
    pub erased: bool,
    /// The customer's time zone as last fetched (None: never fetched), and when.
    pub profile: Option<(String, DateTime<Utc>)>,
    /// The do-not-contact entry.
    pub do_not_contact: Option<DoNotContact>,
    /// Whether the consent copy is complete for the customer.
    pub consent_snapshot: bool,
    /// The consent copies for the purpose (the channel's own and the all-channel one).
    pub consents: Vec<ConsentCopy>,
    /// The oldest open complaint.
    pub open_complaint: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct CheckRow {
    policy: Option<sqlx::types::Json<Policy>>,
    merged_into: Option<Uuid>,
    erased: bool,
    time_zone: Option<String>,
    profile_fetched_at: Option<DateTime<Utc>>,
    dnc_channels: Option<Vec<i16>>,
    dnc_purposes: Option<Vec<i16>>,
    dnc_expire_time: Option<DateTime<Utc>>,
    dnc_exists: bool,
    consent_snapshot: bool,
    consent_channels: Option<Vec<i16>>,
    consent_granted: Option<Vec<bool>>,
    consent_observed: Option<Vec<DateTime<Utc>>>,
    consent_expire: Option<Vec<Option<DateTime<Utc>>>>,
    open_complaint: Option<Uuid>,
}

/// Everything a check of `customer` for `purpose` on `channel` reads from Postgres.
pub async fn check_facts(pool: &PgPool, customer: Uuid, purpose: Purpose, channel: Channel) -> ApiResult<CheckFacts> {
    let row: CheckRow = sqlx::query_as(
        "SELECT (SELECT policy FROM contact_policy) AS policy, \
                m.survivor_customer_id AS merged_into, \
                EXISTS (SELECT 1 FROM erased_customers e WHERE e.customer_id = $1) AS erased, \
                p.time_zone, p.fetched_at AS profile_fetched_at, \
                d.channels AS dnc_channels, d.purposes AS dnc_purposes, d.expire_time AS dnc_expire_time, \
                d.customer_id IS NOT NULL AS dnc_exists, \
                EXISTS (SELECT 1 FROM consent_snapshots s WHERE s.customer_id = $1) AS consent_snapshot, \
                c.channels AS consent_channels, c.granted AS consent_granted, \
                c.observed AS consent_observed, c.expire AS consent_expire, \
                (SELECT o.id FROM complaints o WHERE o.customer_id = $1 AND o.state = 1 \
                 ORDER BY o.opened_at, o.id LIMIT 1) AS open_complaint \
         FROM (SELECT $1::uuid AS id) q \
         LEFT JOIN customer_merges m ON m.merged_customer_id = q.id \
         LEFT JOIN customer_profiles p ON p.customer_id = q.id \
         LEFT JOIN do_not_contact d ON d.customer_id = q.id \
         LEFT JOIN LATERAL ( \
           SELECT array_agg(channel ORDER BY channel) AS channels, array_agg(granted ORDER BY channel) AS granted, \
                  array_agg(observe_time ORDER BY channel) AS observed, \
                  array_agg(expire_time ORDER BY channel) AS expire \
           FROM consent_copy WHERE customer_id = $1 AND purpose = $2 AND channel IN (0, $3)) c ON true",
    )
    .bind(customer)
    .bind(purpose.0)
    .bind(channel.0)
    .fetch_one(pool)
    .await?;
    let consents = row
        .consent_channels
        .unwrap_or_default()
        .iter()
        .zip(&row.consent_granted.unwrap_or_default())
        .zip(&row.consent_observed.unwrap_or_default())
        .zip(&row.consent_expire.unwrap_or_default())
        .map(|(((&channel, &granted), &observe_time), &expire_time)| ConsentCopy {
            channel: (channel != 0).then_some(Channel(channel)),
            granted,
            observe_time,
            expire_time,
        })
        .collect();
    Ok(CheckFacts {
        policy: row.policy.map(|p| p.0).unwrap_or_default(),
        merged_into: row.merged_into,
        erased: row.erased,
        profile: row.time_zone.zip(row.profile_fetched_at),
        do_not_contact: row.dnc_exists.then(|| DoNotContact {
            channels: row.dnc_channels.unwrap_or_default().into_iter().map(Channel).collect(),
            purposes: row.dnc_purposes.unwrap_or_default().into_iter().map(Purpose).collect(),
            expire_time: row.dnc_expire_time,
        }),
        consent_snapshot: row.consent_snapshot,
        consents,
        open_complaint: row.open_complaint,
    })
}

/// Remembers a customer's time zone (empty when unknown) as fetched now.
pub async fn save_profile(pool: &PgPool, customer: Uuid, time_zone: &str) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO customer_profiles (customer_id, time_zone, fetched_at) VALUES ($1, $2, now()) \
         ON CONFLICT (customer_id) DO UPDATE SET time_zone = $2, fetched_at = now()",
    )
    .bind(customer)
    .bind(time_zone)
    .execute(pool)
    .await?;
    Ok(())
}

/// One consent decision as fetched from identification or announced by an event.
#[derive(Debug, Clone)]
pub struct ConsentFact {
    /// The purpose.
    pub purpose: Purpose,
    /// The channel; None for all channels.
    pub channel: Option<Channel>,
    /// The decision, with its times.
    pub granted: bool,
    /// When the customer decided.
    pub observe_time: DateTime<Utc>,
    /// When a grant lapses.
    pub expire_time: Option<DateTime<Utc>>,
}

/// Stores a customer's whole consent state as fetched from identification, marking the
/// copy complete. A decision already held that was observed later (an event that raced
/// the fetch) is kept.
pub async fn save_consent_snapshot(pool: &PgPool, customer: Uuid, facts: &[ConsentFact]) -> ApiResult<()> {
    let mut tx = pool.begin().await?;
    upsert_consents(&mut tx, customer, facts).await?;
    sqlx::query(
        "INSERT INTO consent_snapshots (customer_id, fetched_at) VALUES ($1, now()) \
         ON CONFLICT (customer_id) DO UPDATE SET fetched_at = now()",
    )
    .bind(customer)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn upsert_consents(tx: &mut PgConnection, customer: Uuid, facts: &[ConsentFact]) -> ApiResult<()> {
    if facts.is_empty() {
        return Ok(());
    }
    let purposes: Vec<i16> = facts.iter().map(|f| f.purpose.0).collect();
    let channels: Vec<i16> = facts.iter().map(|f| f.channel.map_or(0, |c| c.0)).collect();
    let granted: Vec<bool> = facts.iter().map(|f| f.granted).collect();
    let observed: Vec<DateTime<Utc>> = facts.iter().map(|f| f.observe_time).collect();
    let expire: Vec<Option<DateTime<Utc>>> = facts.iter().map(|f| f.expire_time).collect();
    sqlx::query(
        "INSERT INTO consent_copy (customer_id, purpose, channel, granted, observe_time, expire_time) \
         SELECT $1, * FROM UNNEST($2::smallint[], $3::smallint[], $4::boolean[], $5::timestamptz[], \
                                  $6::timestamptz[]) \
         ON CONFLICT (customer_id, purpose, channel) DO UPDATE \
           SET granted = EXCLUDED.granted, observe_time = EXCLUDED.observe_time, \
               expire_time = EXCLUDED.expire_time \
           WHERE consent_copy.observe_time <= EXCLUDED.observe_time",
    )
    .bind(customer)
    .bind(&purposes)
    .bind(&channels)
    .bind(&granted)
    .bind(&observed)
    .bind(&expire)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Applies one `consent.changed` decision to the copy, in `tx`. A grant also drops the
/// customer's snapshot mark: events do not carry a grant's expiry, so the next check
/// fetches the state again rather than trust a grant that may lapse.
pub async fn apply_consent_change(tx: &mut PgConnection, customer: Uuid, fact: &ConsentFact) -> ApiResult<()> {
    upsert_consents(tx, customer, std::slice::from_ref(fact)).await?;
    if fact.granted {
        sqlx::query("DELETE FROM consent_snapshots WHERE customer_id = $1").bind(customer).execute(&mut *tx).await?;
    }
    Ok(())
}

/// A do-not-contact entry as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DoNotContactRow {
    /// The customer.
    pub customer_id: Uuid,
    /// Channel numbers blocked; empty means all.
    pub channels: Vec<i16>,
    /// Purpose numbers blocked; empty means all.
    pub purposes: Vec<i16>,
    /// Why.
    pub reason: String,
    /// When it stops applying.
    pub expire_time: Option<DateTime<Utc>>,
    /// When it was set.
    pub created_at: DateTime<Utc>,
    /// Who set it.
    pub created_by: String,
}

/// Sets (or replaces) a customer's entry, in `tx`.
pub async fn set_do_not_contact(tx: &mut PgConnection, entry: &DoNotContactRow) -> ApiResult<DoNotContactRow> {
    let row = sqlx::query_as(
        "INSERT INTO do_not_contact (customer_id, channels, purposes, reason, expire_time, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, now(), $6) \
         ON CONFLICT (customer_id) DO UPDATE SET channels = $2, purposes = $3, reason = $4, expire_time = $5, \
           created_at = now(), created_by = $6 \
         RETURNING customer_id, channels, purposes, reason, expire_time, created_at, created_by",
    )
    .bind(entry.customer_id)
    .bind(&entry.channels)
    .bind(&entry.purposes)
    .bind(&entry.reason)
    .bind(entry.expire_time)
    .bind(&entry.created_by)
    .fetch_one(&mut *tx)
    .await?;
    Ok(row)
}

/// Removes a customer's entry, in `tx`; answers whether there was one.
pub async fn clear_do_not_contact(tx: &mut PgConnection, customer: Uuid) -> ApiResult<bool> {
    let deleted =
        sqlx::query("DELETE FROM do_not_contact WHERE customer_id = $1").bind(customer).execute(&mut *tx).await?;
    Ok(deleted.rows_affected() > 0)
}

/// Entries in force, newest first, after the `(created_at, customer_id)` cursor.
pub async fn list_do_not_contact(
    pool: &PgPool,
    customer: Option<Uuid>,
    channel: Option<Channel>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> ApiResult<Vec<DoNotContactRow>> {
    let rows = sqlx::query_as(
        "SELECT customer_id, channels, purposes, reason, expire_time, created_at, created_by FROM do_not_contact \
         WHERE (expire_time IS NULL OR expire_time > now()) \
           AND ($1::uuid IS NULL OR customer_id = $1) \
           AND ($2::smallint IS NULL OR channels = '{}' OR $2 = ANY(channels)) \
           AND ($3::timestamptz IS NULL OR (created_at, customer_id) < ($3, $4)) \
         ORDER BY created_at DESC, customer_id DESC LIMIT $5",
    )
    .bind(customer)
    .bind(channel.map(|c| c.0))
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Serialises the checks and counting of one customer's outbound contacts until `tx`
/// ends: of two concurrent contacts competing for the last slot under a cap, the
/// second waits for the first to commit and then counts it.
pub async fn lock_contacts(tx: &mut PgConnection, customer: Uuid) -> ApiResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('interaction.contacts:' || $1::text, 0))")
        .bind(customer)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The customer's outbound contacts that occurred after `since`, as the caps count them.
pub async fn outbound_contacts(
    conn: &mut PgConnection,
    customer: Uuid,
    since: DateTime<Utc>,
) -> ApiResult<Vec<(Uuid, CountedContact)>> {
    // Outbound contacts (see the proto's Interaction comment): direction OUTBOUND,
    // kind VISIT, OUTBOUND_CALL or MESSAGE_SENT; read through `interactions_outbound`.
    let rows: Vec<(Uuid, i16, i16, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, channel, purpose, occurred_at FROM interactions \
         WHERE customer_id = $1 AND occurred_at > $2 AND direction = 2 AND kind IN (6, 8, 9)",
    )
    .bind(customer)
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, channel, purpose, time)| {
            (id, CountedContact { channel: Channel(channel), purpose: Purpose(purpose), time })
        })
        .collect())
}

/// Forgets what the contact policy held of erased `customers`: their do-not-contact
/// entries and the local copies of their consents and time zones.
pub async fn erase(tx: &mut PgConnection, customers: &[Uuid]) -> sqlx::Result<()> {
    for table in ["do_not_contact", "consent_copy", "consent_snapshots", "customer_profiles"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE customer_id = ANY($1)")))
            .bind(customers)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Carries what the contact policy holds of `merged` customers to their `survivor`: a
/// do-not-contact entry moves to the survivor when it has none (the survivor's own
/// stands otherwise); the copies of consents and time zones are dropped, the survivor's
/// being identification's answer now.
pub async fn merge(tx: &mut PgConnection, merged: &[Uuid], survivor: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO do_not_contact (customer_id, channels, purposes, reason, expire_time, created_at, created_by) \
         SELECT $2, channels, purposes, reason, expire_time, created_at, created_by FROM do_not_contact \
         WHERE customer_id = ANY($1) ORDER BY created_at DESC LIMIT 1 \
         ON CONFLICT (customer_id) DO NOTHING",
    )
    .bind(merged)
    .bind(survivor)
    .execute(&mut *tx)
    .await?;
    for table in ["do_not_contact", "consent_copy", "consent_snapshots", "customer_profiles"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE customer_id = ANY($1)")))
            .bind(merged)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM consent_snapshots WHERE customer_id = $1").bind(survivor).execute(&mut *tx).await?;
    Ok(())
}
