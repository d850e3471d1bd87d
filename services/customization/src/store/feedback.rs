//! The SQL of what the recommender learns from: the feedback log (`item_feedback`), the
//! customers whose rows a merge or an erasure changed, profiling consent, reactions to
//! recommendations, the answers given, and the retrainings that succeeded.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// One row of the feedback log.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FeedbackRow {
    /// Append order, for tailing.
    pub seq: i64,
    /// Who.
    pub customer_id: Uuid,
    /// Which product.
    pub product_id: String,
    /// 1 view, 2 basket, 3 purchase, 4 negative.
    pub kind: i16,
    /// When it happened.
    pub occur_time: DateTime<Utc>,
}

/// A new feedback row.
#[derive(Debug, Clone)]
pub struct NewFeedback {
    /// Deduplication key (`{interaction id}:{line}` or the feedback's own key).
    pub source_id: String,
    /// Who.
    pub customer_id: Uuid,
    /// Which product.
    pub product_id: String,
    /// 1 view, 2 basket, 3 purchase, 4 negative.
    pub kind: i16,
    /// When it happened.
    pub occur_time: DateTime<Utc>,
}

/// Appends feedback rows in one statement; redelivered ones (same `source_id`) are skipped.
pub async fn insert_feedback(conn: &mut PgConnection, rows: &[NewFeedback]) -> sqlx::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let source: Vec<&str> = rows.iter().map(|r| r.source_id.as_str()).collect();
    let customer: Vec<Uuid> = rows.iter().map(|r| r.customer_id).collect();
    let product: Vec<&str> = rows.iter().map(|r| r.product_id.as_str()).collect();
    let kind: Vec<i16> = rows.iter().map(|r| r.kind).collect();
    let time: Vec<DateTime<Utc>> = rows.iter().map(|r| r.occur_time).collect();
    let inserted = sqlx::query(
        "INSERT INTO item_feedback (source_id, customer_id, product_id, kind, occur_time) \
         SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::int2[], $5::timestamptz[]) \
         ON CONFLICT (source_id) DO NOTHING",
    )
    .bind(&source)
    .bind(&customer)
    .bind(&product)
    .bind(&kind)
    .bind(&time)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted)
}

/// Feedback rows after `after` (in `seq` order), at most `limit`.
pub async fn feedback_after(pool: &PgPool, after: i64, limit: i64) -> sqlx::Result<Vec<FeedbackRow>> {
    sqlx::query_as(
        "SELECT seq, customer_id, product_id, kind, occur_time FROM item_feedback \
         WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Feedback rows with these sequence numbers (the gaps a tail is waiting for).
pub async fn feedback_at(pool: &PgPool, seqs: &[i64]) -> sqlx::Result<Vec<FeedbackRow>> {
    sqlx::query_as(
        "SELECT seq, customer_id, product_id, kind, occur_time FROM item_feedback WHERE seq = ANY($1) ORDER BY seq",
    )
    .bind(seqs)
    .fetch_all(pool)
    .await
}

/// Every feedback row of these customers, in time order.
pub async fn feedback_of(pool: &PgPool, customers: &[Uuid]) -> sqlx::Result<Vec<FeedbackRow>> {
    sqlx::query_as(
        "SELECT seq, customer_id, product_id, kind, occur_time FROM item_feedback \
         WHERE customer_id = ANY($1) ORDER BY occur_time, seq",
    )
    .bind(customers)
    .fetch_all(pool)
    .await
}

/// The highest feedback sequence number so far (0 when none).
pub async fn last_feedback_seq(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(max(seq), 0) FROM item_feedback").fetch_one(pool).await
}

/// Feedback since `since` with `seq` up to `until`, streamed in `seq` order to `f` in
/// batches (a retraining reads millions of rows).
pub async fn scan_feedback(
    pool: &PgPool,
    since: DateTime<Utc>,
    until: i64,
    mut f: impl FnMut(&[FeedbackRow]),
) -> sqlx::Result<u64> {
    const BATCH: i64 = 100_000;
    let (mut after, mut total) = (0i64, 0u64);
    loop {
        let rows: Vec<FeedbackRow> = sqlx::query_as(
            "SELECT seq, customer_id, product_id, kind, occur_time FROM item_feedback \
             WHERE seq > $1 AND seq <= $2 AND occur_time >= $3 ORDER BY seq LIMIT $4",
        )
        .bind(after)
        .bind(until)
        .bind(since)
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else { return Ok(total) };
        after = last.seq;
        total += rows.len() as u64;
        f(&rows);
        if (rows.len() as i64) < BATCH {
            return Ok(total);
        }
    }
}

/// Moves the feedback of `absorbed` customers to `survivor` and announces all of them as
/// changed, inside the caller's transaction.
pub async fn merge_customers(conn: &mut PgConnection, survivor: Uuid, absorbed: &[Uuid]) -> sqlx::Result<()> {
    for statement in [
        "UPDATE item_feedback SET customer_id = $1 WHERE customer_id = ANY($2)",
        "UPDATE recommendation_feedback SET customer_id = $1 WHERE customer_id = ANY($2)",
    ] {
        sqlx::query(statement).bind(survivor).bind(absorbed).execute(&mut *conn).await?;
    }
    let mut changed = absorbed.to_vec();
    changed.push(survivor);
    announce_changed(conn, &changed).await
}

/// Deletes everything kept about these customers and announces them as changed, inside the
/// caller's transaction.
pub async fn erase_customers(conn: &mut PgConnection, customers: &[Uuid]) -> sqlx::Result<()> {
    for statement in [
        "DELETE FROM item_feedback WHERE customer_id = ANY($1)",
        "DELETE FROM recommendation_feedback WHERE customer_id = ANY($1)",
        "DELETE FROM profiling_consent WHERE customer_id = ANY($1)",
        "DELETE FROM recommendations WHERE customer_id = ANY($1)",
    ] {
        sqlx::query(statement).bind(customers).execute(&mut *conn).await?;
    }
    announce_changed(conn, customers).await
}

async fn announce_changed(conn: &mut PgConnection, customers: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO customer_changes (customer_id) SELECT * FROM UNNEST($1::uuid[])")
        .bind(customers)
        .execute(conn)
        .await?;
    Ok(())
}

/// Customers changed after `after`: `(seq, customer)`, in `seq` order.
pub async fn changes_after(pool: &PgPool, after: i64) -> sqlx::Result<Vec<(i64, Uuid)>> {
    sqlx::query_as("SELECT seq, customer_id FROM customer_changes WHERE seq > $1 ORDER BY seq LIMIT 10000")
        .bind(after)
        .fetch_all(pool)
        .await
}

/// The highest change sequence number so far.
pub async fn last_change_seq(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(max(seq), 0) FROM customer_changes").fetch_one(pool).await
}

/// Records a profiling consent decision unless a newer one is known.
pub async fn set_profiling_consent(
    conn: &mut PgConnection,
    customer: Uuid,
    withdrawn: bool,
    observed: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO profiling_consent (customer_id, withdrawn, observe_time, seq) \
         VALUES ($1, $2, $3, nextval('profiling_consent_seq')) \
         ON CONFLICT (customer_id) DO UPDATE SET withdrawn = EXCLUDED.withdrawn, \
                observe_time = EXCLUDED.observe_time, seq = EXCLUDED.seq \
         WHERE profiling_consent.observe_time <= EXCLUDED.observe_time",
    )
    .bind(customer)
    .bind(withdrawn)
    .bind(observed)
    .execute(conn)
    .await?;
    Ok(())
}

/// Profiling consent decisions changed after `after`: `(seq, customer, withdrawn)`.
pub async fn consent_after(pool: &PgPool, after: i64) -> sqlx::Result<Vec<(i64, Uuid, bool)>> {
    sqlx::query_as("SELECT seq, customer_id, withdrawn FROM profiling_consent WHERE seq > $1 ORDER BY seq LIMIT 10000")
        .bind(after)
        .fetch_all(pool)
        .await
}

/// A stored reaction to a recommended item.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReactionRow {
    /// Who.
    pub customer_id: Uuid,
    /// Which product.
    pub product_id: String,
    /// The API's FeedbackKind number.
    pub kind: i16,
    /// The answer it came from.
    pub recommendation_id: Option<Uuid>,
    /// When the suppression ends, for negative kinds.
    pub suppressed_until: Option<DateTime<Utc>>,
    /// The category suppressed, for NOT_THIS_CATEGORY.
    pub category: String,
    /// When recorded.
    pub record_time: DateTime<Utc>,
}

/// Stores a reaction; false when `request_id` was recorded already (the first one is then
/// returned by [`reaction_by_request`]).
pub async fn insert_reaction(conn: &mut PgConnection, r: &ReactionRow, request_id: Option<&str>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO recommendation_feedback (customer_id, product_id, kind, recommendation_id, suppressed_until, \
                                              category, record_time, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(r.customer_id)
    .bind(&r.product_id)
    .bind(r.kind)
    .bind(r.recommendation_id)
    .bind(r.suppressed_until)
    .bind(&r.category)
    .bind(r.record_time)
    .bind(request_id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// The reaction first recorded under `request_id`.
pub async fn reaction_by_request(pool: &PgPool, request_id: &str) -> sqlx::Result<Option<ReactionRow>> {
    sqlx::query_as(
        "SELECT customer_id, product_id, kind, recommendation_id, suppressed_until, category, record_time \
         FROM recommendation_feedback WHERE request_id = $1",
    )
    .bind(request_id)
    .fetch_optional(pool)
    .await
}

/// A customer's suppressions still in force: `(product, category)`, one of them empty.
pub async fn suppressions(pool: &PgPool, customer: Uuid, now: DateTime<Utc>) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT CASE WHEN category = '' THEN product_id ELSE '' END, category FROM recommendation_feedback \
         WHERE customer_id = $1 AND suppressed_until > $2",
    )
    .bind(customer)
    .bind(now)
    .fetch_all(pool)
    .await
}

/// Whether a recommendation answer exists (and was given to this customer, when known).
pub async fn recommendation_exists(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Option<Uuid>>> {
    sqlx::query_scalar("SELECT customer_id FROM recommendations WHERE recommendation_id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Stores answers of Recommend in one statement.
pub async fn insert_recommendations(pool: &PgPool, rows: &[(Uuid, Option<Uuid>, Vec<String>)]) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let customers: Vec<Option<Uuid>> = rows.iter().map(|r| r.1).collect();
    // Postgres has no arrays of arrays of different lengths: the products travel joined.
    let products: Vec<String> = rows.iter().map(|r| r.2.join("\u{1f}")).collect();
    sqlx::query(
        "INSERT INTO recommendations (recommendation_id, customer_id, products) \
         SELECT id, customer, CASE WHEN products = '' THEN '{}'::text[] ELSE string_to_array(products, E'\\x1f') END \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS t(id, customer, products) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&ids)
    .bind(&customers)
    .bind(&products)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes answers of Recommend older than `before`.
pub async fn prune_recommendations(pool: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM recommendations WHERE create_time < $1")
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected())
}

/// A retraining that succeeded.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ModelVersion {
    /// Increases with every retraining.
    pub version: i64,
    /// Feedback since this time was learned from.
    pub window_start: DateTime<Utc>,
    /// Recency half-life.
    pub half_life_days: f64,
    /// Neighbours kept per item.
    pub neighbours_per_item: i32,
    /// When it was trained.
    pub train_time: DateTime<Utc>,
}

/// The newest retraining, if any.
pub async fn latest_model(pool: &PgPool) -> sqlx::Result<Option<ModelVersion>> {
    sqlx::query_as(
        "SELECT version, window_start, half_life_days, neighbours_per_item, train_time FROM model_versions \
         ORDER BY version DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
}

/// Records a retraining that succeeded.
#[allow(clippy::too_many_arguments, reason = "one argument per column")]
pub async fn insert_model(
    pool: &PgPool,
    job: Uuid,
    window_start: DateTime<Utc>,
    half_life_days: f64,
    neighbours_per_item: i32,
    interactions: i64,
    items: i32,
    train_time: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO model_versions (job_id, window_start, half_life_days, neighbours_per_item, interactions, items, \
                                     train_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING version",
    )
    .bind(job)
    .bind(window_start)
    .bind(half_life_days)
    .bind(neighbours_per_item)
    .bind(interactions)
    .bind(items)
    .bind(train_time)
    .fetch_one(pool)
    .await
}

/// What the recommender needs of each product changed since `since`.
pub async fn item_facts_since(pool: &PgPool, since: DateTime<Utc>) -> sqlx::Result<Vec<ItemFactsRow>> {
    sqlx::query_as(
        "SELECT product_id, sku, title, lifecycle, availability, consumable, \
                categories, update_time \
         FROM products WHERE update_time >= $1",
    )
    .bind(since)
    .fetch_all(pool)
    .await
}

/// A product as the recommender sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemFactsRow {
    /// Its id.
    pub product_id: String,
    /// Its sku.
    pub sku: String,
    /// Its title.
    pub title: String,
    /// `Lifecycle` number.
    pub lifecycle: i16,
    /// `Availability` number.
    pub availability: i16,
    /// Bought again and again.
    pub consumable: bool,
    /// Its category paths.
    pub categories: Vec<String>,
    /// When it last changed.
    pub update_time: DateTime<Utc>,
}
