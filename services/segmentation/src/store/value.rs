//! Customer value rows: the interactions learned from events, the live RFM summary they
//! update, the scores a rescoring writes in bulk, tier history, merges and erasures.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// One interaction as segmentation keeps it.
#[derive(Debug, Clone)]
pub struct SeenInteraction {
    /// Interaction id (the event's deduplication key).
    pub interaction_id: String,
    /// The customer.
    pub customer_id: Uuid,
    /// Kind, lowercase without prefix ("purchase", "return", "inbound_call", ...).
    pub kind: String,
    /// Channel (proto enum number).
    pub channel: i32,
    /// When it happened.
    pub occur_time: DateTime<Utc>,
    /// Signed amount in minor units (purchases positive, returns negative).
    pub amount_minor: i64,
    /// Currency of the amount ("" when none).
    pub currency_code: String,
    /// Units bought.
    pub item_count: f64,
    /// Categories of the lines.
    pub categories: Vec<String>,
    /// Products of the lines.
    pub products: Vec<String>,
}

/// How live figures are computed: the reporting currency, rates to it and the window.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// Reporting currency.
    pub currency_code: String,
    /// Rates to the reporting currency, the reporting currency itself included at 1.
    pub rates: serde_json::Value,
    /// Behaviour window in days.
    pub window_days: i32,
}

/// Follows merges: the survivor `customer` answers for (itself when never merged).
pub async fn survivor(conn: &mut PgConnection, customer: Uuid) -> sqlx::Result<Uuid> {
    let s: Option<Uuid> = sqlx::query_scalar("SELECT survivor_id FROM merged_customers WHERE customer_id = $1")
        .bind(customer)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(s.unwrap_or(customer))
}

/// Stores `seen` unless it was stored before; true when it is new.
pub async fn insert_interaction(conn: &mut PgConnection, seen: &SeenInteraction) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO interactions (interaction_id, customer_id, kind, channel, occur_time, amount_minor, \
                                   currency_code, item_count, categories, products) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (interaction_id) DO NOTHING",
    )
    .bind(&seen.interaction_id)
    .bind(seen.customer_id)
    .bind(&seen.kind)
    .bind(seen.channel)
    .bind(seen.occur_time)
    .bind(seen.amount_minor)
    .bind(&seen.currency_code)
    .bind(seen.item_count)
    .bind(&seen.categories)
    .bind(&seen.products)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Recomputes a customer's live RFM figures from their stored history (creating their row):
/// a redelivered or late event leaves the same result, whatever the order.
pub async fn refresh_summary(conn: &mut PgConnection, customer: Uuid, live: &LiveSettings) -> sqlx::Result<()> {
    sqlx::query(
        "WITH h AS ( \
             SELECT kind, occur_time, categories, \
                    amount_minor * (CASE WHEN currency_code = '' THEN 1 \
                                    ELSE ($3::jsonb ->> currency_code)::float8 END) AS amount \
             FROM interactions WHERE customer_id = $1), \
         w AS (SELECT * FROM h WHERE occur_time > now() - make_interval(days => $4)) \
         INSERT INTO customer_values (customer_id, currency_code, first_purchase_time, last_purchase_time, \
                purchase_count, total_spend_minor, window_frequency, window_spend_minor, window_days, \
                category_count, update_time) \
         SELECT $1, $2, \
                (SELECT min(occur_time) FROM h WHERE kind = 'purchase'), \
                (SELECT max(occur_time) FROM h WHERE kind = 'purchase'), \
                (SELECT count(*) FROM h WHERE kind = 'purchase'), \
                (SELECT coalesce(round(sum(amount)), 0)::bigint FROM h WHERE kind IN ('purchase', 'return')), \
                (SELECT count(*) FROM w WHERE kind = 'purchase'), \
                (SELECT coalesce(round(sum(amount)), 0)::bigint FROM w WHERE kind IN ('purchase', 'return')), \
                $4, \
                (SELECT count(DISTINCT c) FROM w, unnest(w.categories) c WHERE w.kind = 'purchase' AND c <> ''), \
                now() \
         ON CONFLICT (customer_id) DO UPDATE SET currency_code = EXCLUDED.currency_code, \
                first_purchase_time = EXCLUDED.first_purchase_time, last_purchase_time = EXCLUDED.last_purchase_time, \
                purchase_count = EXCLUDED.purchase_count, total_spend_minor = EXCLUDED.total_spend_minor, \
                window_frequency = EXCLUDED.window_frequency, window_spend_minor = EXCLUDED.window_spend_minor, \
                window_days = EXCLUDED.window_days, category_count = EXCLUDED.category_count, update_time = now()",
    )
    .bind(customer)
    .bind(&live.currency_code)
    .bind(&live.rates)
    .bind(live.window_days)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A customer's value row as stored (and cached).
#[allow(missing_docs, reason = "one field per column of `customer_values`, described in the migration")]
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct ValueRow {
    pub customer_id: Uuid,
    pub currency_code: String,
    pub first_purchase_time: Option<DateTime<Utc>>,
    pub last_purchase_time: Option<DateTime<Utc>>,
    pub purchase_count: i64,
    pub total_spend_minor: i64,
    pub window_frequency: i64,
    pub window_spend_minor: i64,
    pub window_days: i32,
    pub category_count: i32,
    pub update_time: DateTime<Utc>,
    pub recency_score: Option<i16>,
    pub frequency_score: Option<i16>,
    pub monetary_score: Option<i16>,
    pub purchase_model: Option<Uuid>,
    pub spend_model: Option<Uuid>,
    pub expected_purchases: Option<f64>,
    pub p_alive: Option<f64>,
    pub p_alive_change: Option<f64>,
    pub expected_spend: Option<f64>,
    pub clv: Option<f64>,
    pub horizon_days: Option<i32>,
    pub discount_rate: Option<f64>,
    pub margin: Option<f64>,
    pub cost_to_serve: Option<f64>,
    pub cost_lines: Option<serde_json::Value>,
    pub profit: Option<f64>,
    pub window_revenue: Option<f64>,
    pub growth_ratio: Option<f64>,
    pub tier: i16,
    pub previous_tier: i16,
    pub tier_start_time: Option<DateTime<Utc>>,
    pub at_risk: bool,
    pub value_percentile: Option<f64>,
    pub score_time: Option<DateTime<Utc>>,
    pub compute_time: Option<DateTime<Utc>>,
    pub cluster_id: Option<Uuid>,
    pub cluster_label: Option<String>,
}

/// The value rows of `customers` (survivors), in no particular order.
pub async fn values(pool: &PgPool, customers: &[Uuid]) -> sqlx::Result<Vec<ValueRow>> {
    sqlx::query_as("SELECT * FROM customer_values WHERE customer_id = ANY($1)").bind(customers).fetch_all(pool).await
}

/// The survivors of `customers`, in order (each itself when never merged).
pub async fn survivors(pool: &PgPool, customers: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    let rows: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT customer_id, survivor_id FROM merged_customers WHERE customer_id = ANY($1)")
            .bind(customers)
            .fetch_all(pool)
            .await?;
    let map: std::collections::HashMap<Uuid, Uuid> = rows.into_iter().collect();
    Ok(customers.iter().map(|c| map.get(c).copied().unwrap_or(*c)).collect())
}

/// A category spend fact with the company's spend over its period.
#[allow(missing_docs, reason = "one field per column of `category_spends`, described in the migration")]
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct SpendRow {
    pub customer_id: Uuid,
    pub category: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub total_spend_minor: i64,
    pub currency_code: String,
    pub source: i16,
    pub source_detail: String,
    pub record_time: DateTime<Utc>,
    /// Net spend with the company in the category over the period (minor units of
    /// `currency_code`, converted when rates allow).
    pub company_spend_minor: i64,
}

/// The category spend facts of `customer` with the company's spend in each, by category.
pub async fn category_spends(pool: &PgPool, customer: Uuid, rates: &serde_json::Value) -> sqlx::Result<Vec<SpendRow>> {
    sqlx::query_as(
        "SELECT s.customer_id, s.category, s.period_start, s.period_end, s.total_spend_minor, s.currency_code, \
                s.source, s.source_detail, s.record_time, \
                coalesce((SELECT round(sum(i.amount_minor * (($2::jsonb ->> i.currency_code)::float8 \
                                                             / ($2::jsonb ->> s.currency_code)::float8))) \
                          FROM interactions i \
                          WHERE i.customer_id = s.customer_id AND i.kind IN ('purchase', 'return') \
                            AND s.category = ANY(i.categories) \
                            AND i.occur_time >= s.period_start AND i.occur_time < s.period_end), 0)::bigint \
                    AS company_spend_minor \
         FROM category_spends s WHERE s.customer_id = $1 ORDER BY s.category, s.period_start",
    )
    .bind(customer)
    .bind(rates)
    .fetch_all(pool)
    .await
}

/// Re-keys the history of `absorbed` to `survivor`, recomputes the survivor's live figures
/// and forgets the absorbed rows.
pub async fn merge(
    conn: &mut PgConnection,
    survivor: Uuid,
    absorbed: &[Uuid],
    live: &LiveSettings,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE interactions SET customer_id = $1 WHERE customer_id = ANY($2)")
        .bind(survivor)
        .bind(absorbed)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE tier_changes SET customer_id = $1 WHERE customer_id = ANY($2)")
        .bind(survivor)
        .bind(absorbed)
        .execute(&mut *conn)
        .await?;
    // The survivor's own fact wins where both stated one for the same category and period.
    sqlx::query(
        "INSERT INTO category_spends (customer_id, category, period_start, period_end, total_spend_minor, \
                                      currency_code, source, source_detail, record_time) \
         SELECT $1, category, period_start, period_end, total_spend_minor, currency_code, source, source_detail, \
                record_time FROM category_spends WHERE customer_id = ANY($2) ON CONFLICT DO NOTHING",
    )
    .bind(survivor)
    .bind(absorbed)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM category_spends WHERE customer_id = ANY($1)").bind(absorbed).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM customer_values WHERE customer_id = ANY($1)").bind(absorbed).execute(&mut *conn).await?;
    sqlx::query("UPDATE merged_customers SET survivor_id = $1 WHERE survivor_id = ANY($2)")
        .bind(survivor)
        .bind(absorbed)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO merged_customers (customer_id, survivor_id) SELECT a, $1 FROM unnest($2::uuid[]) a \
         ON CONFLICT (customer_id) DO UPDATE SET survivor_id = $1",
    )
    .bind(survivor)
    .bind(absorbed)
    .execute(&mut *conn)
    .await?;
    refresh_summary(conn, survivor, live).await
}

/// Deletes everything segmentation holds about `customers`; returns the ids merged into
/// them (whose cache entries go too).
pub async fn erase(conn: &mut PgConnection, customers: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    let aliases: Vec<Uuid> = sqlx::query_scalar(
        "DELETE FROM merged_customers WHERE survivor_id = ANY($1) OR customer_id = ANY($1) RETURNING customer_id",
    )
    .bind(customers)
    .fetch_all(&mut *conn)
    .await?;
    for statement in [
        "DELETE FROM interactions WHERE customer_id = ANY($1)",
        "DELETE FROM customer_values WHERE customer_id = ANY($1)",
        "DELETE FROM tier_changes WHERE customer_id = ANY($1)",
        "DELETE FROM category_spends WHERE customer_id = ANY($1)",
    ] {
        sqlx::query(statement).bind(customers).execute(&mut *conn).await?;
    }
    Ok(aliases)
}

/// One tier change as stored.
#[allow(missing_docs, reason = "one field per column of `tier_changes`, described in the migration")]
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TierChangeRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub tier: i16,
    pub previous_tier: i16,
    pub at_risk: bool,
    pub previous_at_risk: bool,
    pub change_time: DateTime<Utc>,
    pub reason: i16,
    pub job: Option<Uuid>,
    pub clv: f64,
    pub p_alive: f64,
}

/// A page of a customer's tier changes, newest first, after `cursor`, within `[from, to)`.
pub async fn tier_changes(
    pool: &PgPool,
    customer: Uuid,
    cursor: Option<(DateTime<Utc>, Uuid)>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: i64,
) -> sqlx::Result<Vec<TierChangeRow>> {
    let (after_time, after_id) = cursor.map_or((None, None), |(t, i)| (Some(t), Some(i)));
    sqlx::query_as(
        "SELECT id, customer_id, tier, previous_tier, at_risk, previous_at_risk, change_time, reason, job, clv, p_alive \
         FROM tier_changes WHERE customer_id = $1 \
           AND ($2::timestamptz IS NULL OR (change_time, id) < ($2, $3)) \
           AND ($4::timestamptz IS NULL OR change_time >= $4) AND ($5::timestamptz IS NULL OR change_time < $5) \
         ORDER BY change_time DESC, id DESC LIMIT $6",
    )
    .bind(customer)
    .bind(after_time)
    .bind(after_id)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Every graded customer's figures for a value distribution.
#[allow(missing_docs, reason = "one field per column of `customer_values`, described in the migration")]
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GradedRow {
    pub customer_id: Uuid,
    pub clv: f64,
    pub window_revenue: f64,
    pub profit: f64,
    pub cost_to_serve: f64,
    pub tier: i16,
    pub at_risk: bool,
}

/// The graded customers (optionally only `members`), and the last score time.
pub async fn graded(pool: &PgPool) -> sqlx::Result<(Vec<GradedRow>, Option<DateTime<Utc>>)> {
    let rows = sqlx::query_as(
        "SELECT customer_id, coalesce(clv, 0) AS clv, coalesce(window_revenue, 0) AS window_revenue, \
                coalesce(profit, 0) AS profit, coalesce(cost_to_serve, 0) AS cost_to_serve, tier, at_risk \
         FROM customer_values WHERE score_time IS NOT NULL AND tier <> 0",
    )
    .fetch_all(pool)
    .await?;
    let time: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT max(score_time) FROM customer_values").fetch_one(pool).await?;
    Ok((rows, time))
}

/// A category spend fact to store (customer already resolved to its survivor).
#[derive(Debug, Clone)]
pub struct NewSpend {
    /// The customer.
    pub customer_id: Uuid,
    /// The category.
    pub category: String,
    /// Start of the period.
    pub period_start: DateTime<Utc>,
    /// End of the period (exclusive).
    pub period_end: DateTime<Utc>,
    /// Total spend at every supplier, minor units.
    pub total_spend_minor: i64,
    /// Its currency.
    pub currency_code: String,
    /// Source (proto enum number).
    pub source: i16,
    /// Detail on the source.
    pub source_detail: String,
}

/// What storing a fact did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendOutcome {
    /// A new (customer, category, period).
    Created,
    /// An earlier fact for it was replaced.
    Updated,
    /// The same fact was stored already.
    Duplicate,
}

/// Stores `facts` (one per customer, category and period; a later one replaces an earlier
/// one), making their customers known to segmentation; one outcome per fact.
pub async fn record_spends(pool: &PgPool, facts: &[NewSpend], currency: &str) -> sqlx::Result<Vec<SpendOutcome>> {
    let mut tx = pool.begin().await?;
    let mut outcomes = Vec::with_capacity(facts.len());
    for f in facts {
        let previous: Option<(i64, String, i16, String)> = sqlx::query_as(
            "SELECT total_spend_minor, currency_code, source, source_detail FROM category_spends \
             WHERE customer_id = $1 AND category = $2 AND period_start = $3 AND period_end = $4 FOR UPDATE",
        )
        .bind(f.customer_id)
        .bind(&f.category)
        .bind(f.period_start)
        .bind(f.period_end)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match previous {
            None => SpendOutcome::Created,
            Some(p) if p == (f.total_spend_minor, f.currency_code.clone(), f.source, f.source_detail.clone()) => {
                SpendOutcome::Duplicate
            }
            Some(_) => SpendOutcome::Updated,
        };
        if outcome != SpendOutcome::Duplicate {
            sqlx::query(
                "INSERT INTO category_spends (customer_id, category, period_start, period_end, total_spend_minor, \
                                              currency_code, source, source_detail, record_time) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) \
                 ON CONFLICT (customer_id, category, period_start, period_end) DO UPDATE SET \
                    total_spend_minor = $5, currency_code = $6, source = $7, source_detail = $8, record_time = now()",
            )
            .bind(f.customer_id)
            .bind(&f.category)
            .bind(f.period_start)
            .bind(f.period_end)
            .bind(f.total_spend_minor)
            .bind(&f.currency_code)
            .bind(f.source)
            .bind(&f.source_detail)
            .execute(&mut *tx)
            .await?;
        }
        outcomes.push(outcome);
    }
    let customers: Vec<Uuid> = facts.iter().map(|f| f.customer_id).collect();
    sqlx::query(
        "INSERT INTO customer_values (customer_id, currency_code) SELECT DISTINCT c, $2 FROM unnest($1::uuid[]) c \
         ON CONFLICT (customer_id) DO NOTHING",
    )
    .bind(&customers)
    .bind(currency)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(outcomes)
}
