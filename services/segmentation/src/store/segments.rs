//! Segments and their materialised membership (tables of migration 3100), and the reading
//! of each customer's rule-language record ([`CustomerMetrics`]) from the value side's
//! tables (`customer_values`, `interactions`) in pages of customers.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use idic_proto::common::v1::Channel;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{
    rules::{CategoryFigures, CustomerMetrics, KindActivity},
    tiers::Tier,
};

/// A segment as stored.
#[allow(missing_docs, reason = "one field per column of `segments`, described in the migration")]
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SegmentRow {
    pub segment_id: String,
    pub display_name: String,
    pub description: String,
    pub rule: String,
    pub rule_version: i64,
    /// idic.segmentation.v1.MembershipState number.
    pub membership_state: i16,
    pub membership_job: Option<Uuid>,
    pub member_count: i64,
    pub membership_time: Option<DateTime<Utc>>,
    pub creator: String,
    pub etag: String,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

const SEGMENT_COLUMNS: &str = "segment_id, display_name, description, rule, rule_version, membership_state, \
    membership_job, member_count, membership_time, creator, etag, create_time, update_time";

/// What CreateSegment stores.
#[derive(Debug, Clone)]
pub struct NewSegment<'a> {
    /// The segment's id.
    pub segment_id: &'a str,
    /// Its display name.
    pub display_name: &'a str,
    /// Its description.
    pub description: &'a str,
    /// Its rule, already validated.
    pub rule: &'a str,
    /// The caller creating it.
    pub creator: &'a str,
    /// The idempotency key, when given.
    pub request_id: Option<&'a str>,
    /// MembershipState number to start in.
    pub membership_state: i16,
}

/// Inserts a segment; `None` when its id is taken.
pub async fn insert_segment(conn: &mut PgConnection, new: &NewSegment<'_>) -> sqlx::Result<Option<SegmentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO segments (segment_id, display_name, description, rule, creator, request_id, membership_state, etag) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, gen_random_uuid()::text) \
         ON CONFLICT (segment_id) DO NOTHING RETURNING {SEGMENT_COLUMNS}"
    )))
    .bind(new.segment_id)
    .bind(new.display_name)
    .bind(new.description)
    .bind(new.rule)
    .bind(new.creator)
    .bind(new.request_id)
    .bind(new.membership_state)
    .fetch_optional(&mut *conn)
    .await
}

/// The segment created with `request_id`, if any.
pub async fn segment_by_request(conn: &mut PgConnection, request_id: &str) -> sqlx::Result<Option<SegmentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE request_id = $1")))
        .bind(request_id)
        .fetch_optional(&mut *conn)
        .await
}

/// One segment.
pub async fn segment(pool: &PgPool, segment_id: &str) -> sqlx::Result<Option<SegmentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE segment_id = $1")))
        .bind(segment_id)
        .fetch_optional(pool)
        .await
}

/// One segment, locked for update in the caller's transaction.
pub async fn segment_for_update(conn: &mut PgConnection, segment_id: &str) -> sqlx::Result<Option<SegmentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SEGMENT_COLUMNS} FROM segments WHERE segment_id = $1 FOR UPDATE"
    )))
    .bind(segment_id)
    .fetch_optional(&mut *conn)
    .await
}

/// Every segment (a deployment holds at most a thousand), by id.
pub async fn all_segments(pool: &PgPool) -> sqlx::Result<Vec<SegmentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {SEGMENT_COLUMNS} FROM segments ORDER BY segment_id")))
        .fetch_all(pool)
        .await
}

/// Number of segments.
pub async fn segment_count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM segments").fetch_one(&mut *conn).await
}

/// A page of segments by display name, after the cursor `(display_name, segment_id)`.
pub async fn list_segments(
    pool: &PgPool,
    after: Option<&(String, String)>,
    limit: i64,
) -> sqlx::Result<Vec<SegmentRow>> {
    let (name, id) = after.map_or((None, None), |(n, i)| (Some(n.as_str()), Some(i.as_str())));
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SEGMENT_COLUMNS} FROM segments \
         WHERE $1::text IS NULL OR (display_name, segment_id) > ($1, $2) \
         ORDER BY display_name, segment_id LIMIT $3"
    )))
    .bind(name)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// What UpdateSegment changes (fields not in the mask are `None`).
#[derive(Debug, Clone, Default)]
pub struct SegmentChange<'a> {
    /// A new display name.
    pub display_name: Option<&'a str>,
    /// A new description.
    pub description: Option<&'a str>,
    /// A new rule, with the membership state and job that come with it.
    pub rule: Option<(&'a str, i16, Option<Uuid>)>,
}

/// Applies `change` to a segment (locked by the caller); a rule change bumps its version.
pub async fn update_segment(
    conn: &mut PgConnection,
    segment_id: &str,
    change: &SegmentChange<'_>,
) -> sqlx::Result<SegmentRow> {
    let (rule, state, job) = change.rule.map_or((None, None, None), |(r, s, j)| (Some(r), Some(s), j));
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE segments SET display_name = coalesce($2, display_name), description = coalesce($3, description), \
                rule = coalesce($4, rule), \
                rule_version = rule_version + CASE WHEN $4::text IS NULL THEN 0 ELSE 1 END, \
                membership_state = coalesce($5, membership_state), \
                membership_job = CASE WHEN $4::text IS NULL THEN membership_job ELSE $6 END, \
                etag = gen_random_uuid()::text, update_time = now() \
         WHERE segment_id = $1 RETURNING {SEGMENT_COLUMNS}"
    )))
    .bind(segment_id)
    .bind(change.display_name)
    .bind(change.description)
    .bind(rule)
    .bind(state)
    .bind(job)
    .fetch_one(&mut *conn)
    .await
}

/// Deletes a segment with its membership; returns the members it had.
pub async fn delete_segment(conn: &mut PgConnection, segment_id: &str) -> sqlx::Result<Vec<Uuid>> {
    let members: Vec<Uuid> =
        sqlx::query_scalar("DELETE FROM segment_members WHERE segment_id = $1 RETURNING customer_id")
            .bind(segment_id)
            .fetch_all(&mut *conn)
            .await?;
    sqlx::query("DELETE FROM segments WHERE segment_id = $1").bind(segment_id).execute(&mut *conn).await?;
    Ok(members)
}

/// Segments whose rule names `segment_id` through `in_segment`, other than itself.
pub async fn segments_referencing(conn: &mut PgConnection, segment_id: &str) -> sqlx::Result<Vec<String>> {
    // A cheap textual prefilter; the caller confirms with the parsed rule.
    sqlx::query_scalar("SELECT segment_id FROM segments WHERE segment_id <> $1 AND strpos(rule, $1) > 0")
        .bind(segment_id)
        .fetch_all(&mut *conn)
        .await
}

/// Records the job materialising `rule_version` of a segment.
pub async fn set_membership_job(pool: &PgPool, segment_id: &str, rule_version: i64, job: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE segments SET membership_job = $3 WHERE segment_id = $1 AND rule_version = $2")
        .bind(segment_id)
        .bind(rule_version)
        .bind(job)
        .execute(pool)
        .await?;
    Ok(())
}

/// Marks the membership of `rule_version` computed (or failed); false when the rule changed
/// meanwhile (a newer materialisation owns the state).
pub async fn finish_membership(pool: &PgPool, segment_id: &str, rule_version: i64, state: i16) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE segments SET membership_state = $3, \
                membership_time = CASE WHEN $3 = 2 THEN now() ELSE membership_time END \
         WHERE segment_id = $1 AND rule_version = $2",
    )
    .bind(segment_id)
    .bind(rule_version)
    .bind(state)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Current rule version of a segment (`None` once deleted).
pub async fn rule_version(conn: &mut PgConnection, segment_id: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT rule_version FROM segments WHERE segment_id = $1 FOR SHARE")
        .bind(segment_id)
        .fetch_optional(&mut *conn)
        .await
}

/// Which of `customers` are members of the segment.
pub async fn members_among(pool: &PgPool, segment_id: &str, customers: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT customer_id FROM segment_members WHERE segment_id = $1 AND customer_id = ANY($2)")
        .bind(segment_id)
        .bind(customers)
        .fetch_all(pool)
        .await
}

/// The (customer, segment id) memberships of `customers`.
pub async fn segment_ids_of(pool: &PgPool, customers: &[Uuid]) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as("SELECT customer_id, segment_id FROM segment_members WHERE customer_id = ANY($1)")
        .bind(customers)
        .fetch_all(pool)
        .await
}

/// Deletes every membership of `customers` (an erasure), keeping the counts; returns
/// `(segment id, rule version, customer)` for each membership removed.
pub async fn erase_memberships(conn: &mut PgConnection, customers: &[Uuid]) -> sqlx::Result<Vec<(String, i64, Uuid)>> {
    sqlx::query_as(
        "WITH gone AS (DELETE FROM segment_members WHERE customer_id = ANY($1) RETURNING segment_id, customer_id), \
              counted AS (UPDATE segments s SET member_count = s.member_count - g.n \
                          FROM (SELECT segment_id, count(*) AS n FROM gone GROUP BY segment_id) g \
                          WHERE s.segment_id = g.segment_id RETURNING s.segment_id, s.rule_version) \
         SELECT gone.segment_id, counted.rule_version, gone.customer_id FROM gone JOIN counted USING (segment_id) \
         ORDER BY gone.segment_id, gone.customer_id",
    )
    .bind(customers)
    .fetch_all(&mut *conn)
    .await
}

/// Adds members in bulk (keeping the count); returns those who were not members yet.
pub async fn add_members(conn: &mut PgConnection, segment_id: &str, customers: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    if customers.is_empty() {
        return Ok(Vec::new());
    }
    let added: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO segment_members (segment_id, customer_id) SELECT $1, c FROM UNNEST($2::uuid[]) AS c \
         ON CONFLICT DO NOTHING RETURNING customer_id",
    )
    .bind(segment_id)
    .bind(customers)
    .fetch_all(&mut *conn)
    .await?;
    adjust_count(conn, segment_id, added.len() as i64).await?;
    Ok(added)
}

/// Removes members in bulk (keeping the count); returns those who were members.
pub async fn remove_members(conn: &mut PgConnection, segment_id: &str, customers: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    if customers.is_empty() {
        return Ok(Vec::new());
    }
    let removed: Vec<Uuid> = sqlx::query_scalar(
        "DELETE FROM segment_members WHERE segment_id = $1 AND customer_id = ANY($2) RETURNING customer_id",
    )
    .bind(segment_id)
    .bind(customers)
    .fetch_all(&mut *conn)
    .await?;
    adjust_count(conn, segment_id, -(removed.len() as i64)).await?;
    Ok(removed)
}

/// Removes members segmentation no longer knows (erased since): they have no metrics.
pub async fn remove_vanished_members(conn: &mut PgConnection, segment_id: &str) -> sqlx::Result<Vec<Uuid>> {
    let removed: Vec<Uuid> = sqlx::query_scalar(
        "DELETE FROM segment_members m WHERE m.segment_id = $1 \
         AND NOT EXISTS (SELECT 1 FROM customer_values v WHERE v.customer_id = m.customer_id) RETURNING customer_id",
    )
    .bind(segment_id)
    .fetch_all(&mut *conn)
    .await?;
    adjust_count(conn, segment_id, -(removed.len() as i64)).await?;
    Ok(removed)
}

async fn adjust_count(conn: &mut PgConnection, segment_id: &str, delta: i64) -> sqlx::Result<()> {
    if delta != 0 {
        sqlx::query("UPDATE segments SET member_count = member_count + $2 WHERE segment_id = $1")
            .bind(segment_id)
            .bind(delta)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// `n` increasing sequence numbers for membership events.
pub async fn next_sequences(conn: &mut PgConnection, n: usize) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar("SELECT nextval('segment_membership_sequence') FROM generate_series(1, $1)")
        .bind(n as i64)
        .fetch_all(&mut *conn)
        .await
}

/// A page of a segment's members in customer id order, after `after`.
pub async fn members_page(
    pool: &PgPool,
    segment_id: &str,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, DateTime<Utc>)>> {
    sqlx::query_as(
        "SELECT customer_id, enter_time FROM segment_members \
         WHERE segment_id = $1 AND ($2::uuid IS NULL OR customer_id > $2) ORDER BY customer_id LIMIT $3",
    )
    .bind(segment_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One membership of a customer, with the segment's display name.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct MembershipRow {
    /// The segment's id.
    pub segment_id: String,
    /// Its display name.
    pub display_name: String,
    /// When the customer entered it.
    pub enter_time: DateTime<Utc>,
}

/// A customer's memberships, by display name.
pub async fn memberships(pool: &PgPool, customer: Uuid) -> sqlx::Result<Vec<MembershipRow>> {
    sqlx::query_as(
        "SELECT m.segment_id, s.display_name, m.enter_time FROM segment_members m \
         JOIN segments s USING (segment_id) WHERE m.customer_id = $1 ORDER BY s.display_name, m.segment_id",
    )
    .bind(customer)
    .fetch_all(pool)
    .await
}

/// The survivor of a merged customer id (itself when never merged).
pub async fn survivor(pool: &PgPool, customer: Uuid) -> sqlx::Result<Uuid> {
    let s: Option<Uuid> = sqlx::query_scalar("SELECT survivor_id FROM merged_customers WHERE customer_id = $1")
        .bind(customer)
        .fetch_optional(pool)
        .await?;
    Ok(s.unwrap_or(customer))
}

// ------------------------------------------------------------------ customer metrics

#[derive(sqlx::FromRow)]
struct ValueColumns {
    customer_id: Uuid,
    last_purchase_time: Option<DateTime<Utc>>,
    purchase_count: i64,
    total_spend_minor: i64,
    window_frequency: i64,
    window_spend_minor: i64,
    window_days: i32,
    category_count: i32,
    update_time: DateTime<Utc>,
    recency_score: Option<i16>,
    frequency_score: Option<i16>,
    monetary_score: Option<i16>,
    expected_purchases: Option<f64>,
    p_alive: Option<f64>,
    p_alive_change: Option<f64>,
    expected_spend: Option<f64>,
    clv: Option<f64>,
    cost_to_serve: Option<f64>,
    profit: Option<f64>,
    growth_ratio: Option<f64>,
    tier: i16,
    previous_tier: i16,
    at_risk: bool,
    value_percentile: Option<f64>,
}

const METRIC_COLUMNS: &str = "customer_id, last_purchase_time, purchase_count, total_spend_minor, window_frequency, \
    window_spend_minor, window_days, category_count, update_time, recency_score, frequency_score, monetary_score, \
    expected_purchases, p_alive, p_alive_change, expected_spend, clv, cost_to_serve, profit, growth_ratio, tier, \
    previous_tier, at_risk, value_percentile";

#[derive(sqlx::FromRow)]
struct InteractionColumns {
    customer_id: Uuid,
    kind: String,
    channel: i32,
    occur_time: DateTime<Utc>,
    amount: f64,
    categories: Vec<String>,
    products: Vec<String>,
}

/// One customer's rule record and when its metrics last changed.
#[derive(Debug, Clone)]
pub struct MetricsRecord {
    /// The customer.
    pub customer_id: Uuid,
    /// What rules read about them.
    pub metrics: CustomerMetrics,
    /// When their metrics last changed.
    pub update_time: DateTime<Utc>,
}

/// The next page of customers' rule records in customer id order, after `after`.
/// `rates` converts interaction amounts to the reporting currency (as the value side does).
pub async fn metrics_page(
    pool: &PgPool,
    after: Option<Uuid>,
    limit: i64,
    rates: &serde_json::Value,
) -> sqlx::Result<Vec<MetricsRecord>> {
    let values: Vec<ValueColumns> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {METRIC_COLUMNS} FROM customer_values WHERE $1::uuid IS NULL OR customer_id > $1 \
         ORDER BY customer_id LIMIT $2"
    )))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    complete(pool, values, rates).await
}

/// The next page of customer ids segmentation knows, after `after`.
pub async fn customer_ids_page(pool: &PgPool, after: Option<Uuid>, limit: i64) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT customer_id FROM customer_values WHERE $1::uuid IS NULL OR customer_id > $1 \
         ORDER BY customer_id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The rule records of `customers` (those segmentation knows), in no particular order.
pub async fn metrics_of(
    pool: &PgPool,
    customers: &[Uuid],
    rates: &serde_json::Value,
) -> sqlx::Result<Vec<MetricsRecord>> {
    let values: Vec<ValueColumns> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {METRIC_COLUMNS} FROM customer_values WHERE customer_id = ANY($1)"
    )))
    .bind(customers)
    .fetch_all(pool)
    .await?;
    complete(pool, values, rates).await
}

/// Adds what the value rows do not hold (activity, channels, categories, products,
/// memberships) from the interactions and memberships of the same customers.
async fn complete(
    pool: &PgPool,
    values: Vec<ValueColumns>,
    rates: &serde_json::Value,
) -> sqlx::Result<Vec<MetricsRecord>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = values.iter().map(|v| v.customer_id).collect();
    let interactions: Vec<InteractionColumns> = sqlx::query_as(
        "SELECT customer_id, kind, channel, occur_time, \
                amount_minor * coalesce(($2::jsonb ->> currency_code)::float8, 1) AS amount, categories, products \
         FROM interactions WHERE customer_id = ANY($1) ORDER BY customer_id, occur_time DESC",
    )
    .bind(&ids)
    .bind(rates)
    .fetch_all(pool)
    .await?;
    let members: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT customer_id, segment_id FROM segment_members WHERE customer_id = ANY($1)")
            .bind(&ids)
            .fetch_all(pool)
            .await?;
    let mut by_customer: HashMap<Uuid, Vec<InteractionColumns>> = HashMap::new();
    for i in interactions {
        by_customer.entry(i.customer_id).or_default().push(i);
    }
    let mut segments: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (c, s) in members {
        segments.entry(c).or_default().push(s);
    }
    let now = Utc::now();
    Ok(values
        .into_iter()
        .map(|v| {
            let history = by_customer.remove(&v.customer_id).unwrap_or_default();
            let member_of = segments.remove(&v.customer_id).unwrap_or_default();
            let customer_id = v.customer_id;
            let update_time = v.update_time;
            MetricsRecord { customer_id, metrics: record(v, &history, member_of, now), update_time }
        })
        .collect())
}

/// Amounts are stored in minor units of the reporting currency; rules read major units.
const MINOR_PER_MAJOR: f64 = 100.0;

fn tier(n: i16) -> Option<Tier> {
    match n {
        1 => Some(Tier::MostValuable),
        2 => Some(Tier::MostGrowable),
        3 => Some(Tier::BelowZero),
        4 => Some(Tier::Middle),
        5 => Some(Tier::LongTail),
        _ => None,
    }
}

fn channel_name(n: i32) -> String {
    Channel::try_from(n)
        .map(|c| c.as_str_name().trim_start_matches("CHANNEL_").to_ascii_lowercase())
        .unwrap_or_else(|_| "unspecified".to_owned())
}

fn score(s: Option<i16>) -> Option<u8> {
    s.and_then(|s| u8::try_from(s).ok()).filter(|s| (1..=5).contains(s))
}

/// Builds one customer's rule record from their value row and their history (newest first).
/// Category spend splits each purchase or return evenly over its categories (lines' own
/// amounts are not kept).
fn record(
    v: ValueColumns,
    history: &[InteractionColumns],
    segments: Vec<String>,
    now: DateTime<Utc>,
) -> CustomerMetrics {
    let window_start = now - chrono::Duration::days(i64::from(v.window_days));
    let mut activity: Vec<KindActivity> = Vec::new();
    let mut channels: Vec<(String, f64)> = Vec::new();
    let mut categories: Vec<CategoryFigures> = Vec::new();
    let mut products = Vec::new();
    let mut bought_categories = Vec::new();
    let mut in_window = 0.0;
    for i in history {
        let day: NaiveDate = i.occur_time.date_naive();
        let recent = i.occur_time > window_start;
        match activity.iter_mut().find(|a| a.kind == i.kind) {
            Some(a) => {
                a.dates.push(day);
                a.window_count += u32::from(recent);
            }
            None => {
                activity.push(KindActivity { kind: i.kind.clone(), window_count: u32::from(recent), dates: vec![day] })
            }
        }
        let buying = i.kind == "purchase" || i.kind == "return";
        if i.kind == "purchase" {
            products.extend(i.products.iter().cloned());
            bought_categories.extend(i.categories.iter().cloned());
        }
        if !recent {
            continue;
        }
        in_window += 1.0;
        let channel = channel_name(i.channel);
        match channels.iter_mut().find(|(c, _)| *c == channel) {
            Some((_, n)) => *n += 1.0,
            None => channels.push((channel, 1.0)),
        }
        if buying && !i.categories.is_empty() {
            let mut distinct = i.categories.clone();
            distinct.sort();
            distinct.dedup();
            let part = i.amount / MINOR_PER_MAJOR / distinct.len() as f64;
            for c in distinct {
                match categories.iter_mut().find(|x| x.category == c) {
                    Some(x) => x.spend += part,
                    None => categories.push(CategoryFigures { category: c, spend: part, share: 0.0 }),
                }
            }
        }
    }
    for (_, n) in &mut channels {
        *n /= in_window;
    }
    let spent: f64 = categories.iter().map(|c| c.spend).sum();
    for c in &mut categories {
        c.share = if spent > 0.0 { c.spend / spent } else { 0.0 };
    }
    products.sort();
    products.dedup();
    bought_categories.sort();
    bought_categories.dedup();
    CustomerMetrics {
        last_purchase: v.last_purchase_time.map(|t| t.date_naive()),
        last_contact: history.first().map(|i| i.occur_time.date_naive()),
        frequency: u32::try_from(v.window_frequency).unwrap_or(0),
        monetary: v.window_spend_minor as f64 / MINOR_PER_MAJOR,
        purchase_count: u32::try_from(v.purchase_count).unwrap_or(0),
        total_spend: v.total_spend_minor as f64 / MINOR_PER_MAJOR,
        category_count: u32::try_from(v.category_count).unwrap_or(0),
        r_score: score(v.recency_score),
        f_score: score(v.frequency_score),
        m_score: score(v.monetary_score),
        expected_purchases: v.expected_purchases,
        p_alive: v.p_alive,
        p_alive_change: v.p_alive_change,
        expected_spend: v.expected_spend,
        clv: v.clv,
        cost_to_serve: v.cost_to_serve,
        profit: v.profit,
        share_of_wallet: None,
        growth_ratio: v.growth_ratio,
        value_percentile: v.value_percentile,
        tier: tier(v.tier),
        previous_tier: tier(v.previous_tier),
        at_risk: v.at_risk,
        cluster: None,
        channel_shares: channels,
        categories,
        category_wallet_shares: Vec::new(),
        activity,
        products_bought: products,
        categories_bought: bought_categories,
        facts: Vec::new(),
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_row() -> ValueColumns {
        ValueColumns {
            customer_id: Uuid::nil(),
            last_purchase_time: None,
            purchase_count: 2,
            total_spend_minor: 9000,
            window_frequency: 2,
            window_spend_minor: 9000,
            window_days: 365,
            category_count: 2,
            update_time: Utc::now(),
            recency_score: Some(4),
            frequency_score: Some(0),
            monetary_score: None,
            expected_purchases: None,
            p_alive: Some(0.5),
            p_alive_change: None,
            expected_spend: None,
            clv: None,
            cost_to_serve: None,
            profit: None,
            growth_ratio: None,
            tier: 1,
            previous_tier: 0,
            at_risk: false,
            value_percentile: None,
        }
    }

    fn seen(kind: &str, channel: Channel, days_ago: i64, amount: f64, categories: &[&str]) -> InteractionColumns {
        InteractionColumns {
            customer_id: Uuid::nil(),
            kind: kind.to_owned(),
            channel: channel as i32,
            occur_time: Utc::now() - chrono::Duration::days(days_ago),
            amount,
            categories: categories.iter().map(|c| (*c).to_owned()).collect(),
            products: categories.iter().map(|c| format!("sku-{c}")).collect(),
        }
    }

    #[test]
    fn record_derives_shares_activity_and_purchases_from_history() {
        // Newest first, as the query orders them; the last one is outside the window.
        let history = [
            seen("complaint", Channel::CallCentre, 1, 0.0, &[]),
            seen("purchase", Channel::Web, 3, 6000.0, &["shoes", "bags"]),
            seen("purchase", Channel::Web, 10, 3000.0, &["shoes"]),
            seen("purchase", Channel::Branch, 400, 1000.0, &["toys"]),
        ];
        let m = record(value_row(), &history, vec!["vip".to_owned()], Utc::now());
        assert_eq!((m.monetary, m.total_spend, m.purchase_count), (90.0, 90.0, 2));
        assert_eq!(m.tier, Some(Tier::MostValuable));
        assert_eq!(m.previous_tier, None);
        assert_eq!((m.r_score, m.f_score), (Some(4), None), "scores outside 1-5 are not scores");
        let web = m.channel_shares.iter().find(|(c, _)| c == "web").map(|(_, s)| *s);
        assert_eq!(web, Some(2.0 / 3.0));
        let shoes = m.categories.iter().find(|c| c.category == "shoes").expect("shoes");
        assert_eq!((shoes.spend, shoes.share), (60.0, 60.0 / 90.0));
        let purchases = m.activity.iter().find(|a| a.kind == "purchase").expect("purchases");
        assert_eq!((purchases.window_count, purchases.dates.len()), (2, 3));
        assert_eq!(m.products_bought, ["sku-bags", "sku-shoes", "sku-toys"]);
        assert_eq!(m.categories_bought, ["bags", "shoes", "toys"]);
        assert_eq!(m.last_contact, Some(history[0].occur_time.date_naive()));
        assert_eq!(m.segments, ["vip"]);
    }
}
