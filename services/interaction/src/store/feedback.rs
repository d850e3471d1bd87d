//! SQL of feedback: recording it, reading and listing it newest first, and its
//! summaries grouped by any combination of topic, product, channel and day.

use chrono::{DateTime, Utc};
use idic_platform::ApiResult;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

const COLUMNS: &str = "id, customer_id, channel, feedback_type, topic, product_id, sentiment, rating, text, \
     created_at, interaction, campaign";

/// One piece of feedback as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedbackRow {
    /// Its id.
    pub id: Uuid,
    /// The customer; None when anonymous.
    pub customer_id: Option<Uuid>,
    /// Channel number.
    pub channel: i16,
    /// FeedbackType number (never 0).
    pub feedback_type: i16,
    /// Topic code.
    pub topic: String,
    /// Product concerned.
    pub product_id: String,
    /// Sentiment number (0 unknown).
    pub sentiment: i16,
    /// Rating 1–5.
    pub rating: Option<i16>,
    /// What the customer said.
    pub text: String,
    /// When it was given.
    pub created_at: DateTime<Utc>,
    /// The timeline interaction's name, or empty.
    pub interaction: String,
    /// The campaign that asked for it.
    pub campaign: String,
}

/// Inserts a piece of feedback in `tx`.
pub async fn insert(tx: &mut PgConnection, f: &FeedbackRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO feedback (id, customer_id, channel, feedback_type, topic, product_id, sentiment, rating, text, \
           created_at, interaction, campaign) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(f.id)
    .bind(f.customer_id)
    .bind(f.channel)
    .bind(f.feedback_type)
    .bind(&f.topic)
    .bind(&f.product_id)
    .bind(f.sentiment)
    .bind(f.rating)
    .bind(&f.text)
    .bind(f.created_at)
    .bind(&f.interaction)
    .bind(&f.campaign)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Links a timeline interaction to its feedback (the interaction insert leaves
/// `feedback` empty).
pub async fn link_interaction(
    tx: &mut PgConnection,
    interaction: Uuid,
    occurred_at: DateTime<Utc>,
    feedback: &str,
) -> ApiResult<()> {
    sqlx::query("UPDATE interactions SET feedback = $3 WHERE id = $1 AND occurred_at = $2")
        .bind(interaction)
        .bind(occurred_at)
        .bind(feedback)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// One piece of feedback.
pub async fn get(pool: &PgPool, id: Uuid) -> ApiResult<Option<FeedbackRow>> {
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM feedback WHERE id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row)
}

/// Filters of ListFeedback and GetFeedbackSummary (None: any).
#[derive(Debug, Clone, Default)]
pub struct FeedbackFilter {
    /// Given at or after.
    pub from: Option<DateTime<Utc>>,
    /// Given before.
    pub to: Option<DateTime<Utc>>,
    /// Topic.
    pub topic: Option<String>,
    /// Product.
    pub product_id: Option<String>,
    /// Channel number.
    pub channel: Option<i16>,
    /// FeedbackType number.
    pub feedback_type: Option<i16>,
    /// Sentiment number.
    pub sentiment: Option<i16>,
    /// These customers (a customer and those merged into it).
    pub customers: Option<Vec<Uuid>>,
}

/// The WHERE clause of a filter, over parameters `$1`–`$8`.
const FILTER: &str = "($1::timestamptz IS NULL OR created_at >= $1) AND ($2::timestamptz IS NULL OR created_at < $2) \
     AND ($3::text IS NULL OR topic = $3) AND ($4::text IS NULL OR product_id = $4) \
     AND ($5::smallint IS NULL OR channel = $5) AND ($6::smallint IS NULL OR feedback_type = $6) \
     AND ($7::smallint IS NULL OR sentiment = $7) AND ($8::uuid[] IS NULL OR customer_id = ANY($8))";

/// Feedback matching `filter`, newest first, after the `(created_at, id)` cursor.
pub async fn list(
    pool: &PgPool,
    filter: &FeedbackFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> ApiResult<Vec<FeedbackRow>> {
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM feedback WHERE {FILTER} \
           AND ($9::timestamptz IS NULL OR (created_at, id) < ($9, $10)) \
         ORDER BY created_at DESC, id DESC LIMIT $11"
    )))
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.topic.as_deref())
    .bind(filter.product_id.as_deref())
    .bind(filter.channel)
    .bind(filter.feedback_type)
    .bind(filter.sentiment)
    .bind(filter.customers.as_deref())
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The dimensions a summary groups by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grouping {
    /// By topic.
    pub topic: bool,
    /// By product.
    pub product: bool,
    /// By channel.
    pub channel: bool,
    /// By local day.
    pub day: bool,
}

/// One group's figures.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupRow {
    /// Topic, or empty.
    pub topic: String,
    /// Product, or empty.
    pub product_id: String,
    /// Channel number, or 0.
    pub channel: i16,
    /// Day "YYYY-MM-DD", or empty.
    pub date: String,
    /// Pieces of feedback.
    pub count: i64,
    /// Suggestions.
    pub suggestions: i64,
    /// Positive.
    pub positive: i64,
    /// Neutral.
    pub neutral: i64,
    /// Negative.
    pub negative: i64,
    /// Mixed.
    pub mixed: i64,
    /// Without sentiment.
    pub unknown_sentiment: i64,
    /// Mean rating of the rated.
    pub average_rating: Option<f64>,
    /// The three most recent ids.
    pub recent: Vec<Uuid>,
}

/// The groups of the feedback matching `filter`, by date (when grouped by day), then by
/// count, largest first; from `offset`, at most `limit`; and how many groups in all.
pub async fn summary(
    pool: &PgPool,
    filter: &FeedbackFilter,
    grouping: Grouping,
    time_zone: &str,
    offset: i64,
    limit: i64,
) -> ApiResult<(Vec<GroupRow>, i64)> {
    let rows: Vec<GroupRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT CASE WHEN $9 THEN topic ELSE '' END AS topic, \
                CASE WHEN $10 THEN product_id ELSE '' END AS product_id, \
                CASE WHEN $11 THEN channel ELSE 0::smallint END AS channel, \
                CASE WHEN $12 THEN to_char(created_at AT TIME ZONE $13, 'YYYY-MM-DD') ELSE '' END AS date, \
                count(*) AS count, \
                count(*) FILTER (WHERE feedback_type = 2) AS suggestions, \
                count(*) FILTER (WHERE sentiment = 3) AS positive, \
                count(*) FILTER (WHERE sentiment = 2) AS neutral, \
                count(*) FILTER (WHERE sentiment = 1) AS negative, \
                count(*) FILTER (WHERE sentiment = 4) AS mixed, \
                count(*) FILTER (WHERE sentiment = 0) AS unknown_sentiment, \
                avg(rating)::float8 AS average_rating, \
                (array_agg(id ORDER BY created_at DESC, id DESC))[1:3] AS recent \
         FROM feedback WHERE {FILTER} \
         GROUP BY 1, 2, 3, 4 \
         ORDER BY 4, count(*) DESC, 1, 2, 3"
    )))
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.topic.as_deref())
    .bind(filter.product_id.as_deref())
    .bind(filter.channel)
    .bind(filter.feedback_type)
    .bind(filter.sentiment)
    .bind(filter.customers.as_deref())
    .bind(grouping.topic)
    .bind(grouping.product)
    .bind(grouping.channel)
    .bind(grouping.day)
    .bind(time_zone)
    .fetch_all(pool)
    .await?;
    let total = rows.len() as i64;
    Ok((rows.into_iter().skip(offset.max(0) as usize).take(limit.max(0) as usize).collect(), total))
}

/// Anonymises the feedback of erased `customers`: it stays in the summaries as anonymous
/// feedback, without its text.
pub async fn erase(tx: &mut PgConnection, customers: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query("UPDATE feedback SET customer_id = NULL, text = '', interaction = '' WHERE customer_id = ANY($1)")
        .bind(customers)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Re-keys the feedback of `merged` customers to their `survivor`.
pub async fn merge(tx: &mut PgConnection, merged: &[Uuid], survivor: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE feedback SET customer_id = $2 WHERE customer_id = ANY($1)")
        .bind(merged)
        .bind(survivor)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
