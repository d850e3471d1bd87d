//! The SQL of offers: the offers themselves (encoded body plus filter columns and response
//! counts), their presentations and responses, per-customer history for caps, and what merges
//! and erasures do to them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// An offer as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OfferRow {
    /// Its id.
    pub offer_id: String,
    /// `OfferState` number.
    pub state: i16,
    /// `Channel` numbers it may be presented on.
    pub channels: Vec<i16>,
    /// Product ids it is about.
    pub products: Vec<String>,
    /// Start of validity.
    pub valid_from: Option<DateTime<Utc>>,
    /// End of validity.
    pub valid_until: Option<DateTime<Utc>>,
    /// The encoded `Offer`, output-only fields cleared.
    pub body: Vec<u8>,
    /// Increases on every change; the etag.
    pub revision: i64,
    /// Presentations recorded.
    pub presented: i64,
    /// Acceptances recorded.
    pub accepted: i64,
    /// Refusals recorded.
    pub refused: i64,
    /// When created.
    pub create_time: DateTime<Utc>,
    /// When last changed.
    pub update_time: DateTime<Utc>,
}

macro_rules! offer_columns {
    () => {
        "offer_id, state, channels, products, valid_from, valid_until, body, revision, presented, accepted, refused, \
         create_time, update_time"
    };
}

/// Inserts a new offer; false when the id is taken.
pub async fn insert(pool: &PgPool, o: &OfferRow) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO offers (offer_id, state, channels, products, valid_from, valid_until, body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(&o.offer_id)
    .bind(o.state)
    .bind(&o.channels)
    .bind(&o.products)
    .bind(o.valid_from)
    .bind(o.valid_until)
    .bind(&o.body)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// One offer.
pub async fn get(conn: &mut PgConnection, offer_id: &str) -> sqlx::Result<Option<OfferRow>> {
    sqlx::query_as(concat!("SELECT ", offer_columns!(), " FROM offers WHERE offer_id = $1"))
        .bind(offer_id)
        .fetch_optional(conn)
        .await
}

/// One offer, locked for an update.
pub async fn get_for_update(conn: &mut PgConnection, offer_id: &str) -> sqlx::Result<Option<OfferRow>> {
    sqlx::query_as(concat!("SELECT ", offer_columns!(), " FROM offers WHERE offer_id = $1 FOR UPDATE"))
        .bind(offer_id)
        .fetch_optional(conn)
        .await
}

/// Writes an offer's changed fields and bumps its revision.
pub async fn update(conn: &mut PgConnection, o: &OfferRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE offers SET state = $2, channels = $3, products = $4, valid_from = $5, valid_until = $6, body = $7, \
                revision = revision + 1, update_time = now() WHERE offer_id = $1",
    )
    .bind(&o.offer_id)
    .bind(o.state)
    .bind(&o.channels)
    .bind(&o.products)
    .bind(o.valid_from)
    .bind(o.valid_until)
    .bind(&o.body)
    .execute(conn)
    .await?;
    Ok(())
}

/// What ListOffers filters by.
#[derive(Debug, Clone, Default)]
pub struct OfferFilter {
    /// `OfferState` numbers; empty means all but ARCHIVED.
    pub states: Vec<i16>,
    /// A channel the offer must allow.
    pub channel: Option<i16>,
    /// A product the offer must be about.
    pub product: Option<String>,
    /// An instant the offer must be valid at.
    pub valid_at: Option<DateTime<Utc>>,
}

/// Offers matching `filter`, newest first, after `cursor` (create time, id).
pub async fn list(
    pool: &PgPool,
    filter: &OfferFilter,
    cursor: Option<(DateTime<Utc>, String)>,
    limit: i64,
) -> sqlx::Result<Vec<OfferRow>> {
    let (after_time, after_id) = cursor.unzip();
    sqlx::query_as(concat!(
        "SELECT ",
        offer_columns!(),
        " FROM offers \
          WHERE (CASE WHEN cardinality($1::int2[]) = 0 THEN state <> 4 ELSE state = ANY($1) END) \
            AND ($2::int2 IS NULL OR $2 = ANY(channels)) \
            AND ($3::text IS NULL OR $3 = ANY(products)) \
            AND ($4::timestamptz IS NULL OR ((valid_from IS NULL OR valid_from <= $4) \
                                         AND (valid_until IS NULL OR valid_until > $4))) \
            AND ($5::timestamptz IS NULL OR (create_time, offer_id) < ($5, $6)) \
          ORDER BY create_time DESC, offer_id DESC LIMIT $7"
    ))
    .bind(&filter.states)
    .bind(filter.channel)
    .bind(filter.product.as_deref())
    .bind(filter.valid_at)
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The ACTIVE offers allowed on `channel` and valid at `at`.
pub async fn active_on(pool: &PgPool, channel: i16, at: DateTime<Utc>) -> sqlx::Result<Vec<OfferRow>> {
    sqlx::query_as(concat!(
        "SELECT ",
        offer_columns!(),
        " FROM offers WHERE state = 2 AND $1 = ANY(channels) \
            AND (valid_from IS NULL OR valid_from <= $2) AND (valid_until IS NULL OR valid_until > $2)"
    ))
    .bind(channel)
    .bind(at)
    .fetch_all(pool)
    .await
}

/// One customer's history with each of `offers` since `since` (presentations, acceptances)
/// and their latest refusal ever: `offer → (presentations, acceptances, last refusal)`.
pub async fn customer_history(
    pool: &PgPool,
    customer: Uuid,
    offers: &[String],
    since: &[DateTime<Utc>],
) -> sqlx::Result<HashMap<String, (i64, i64, Option<DateTime<Utc>>)>> {
    let rows: Vec<(String, i64, i64, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT o.id, \
                (SELECT count(*) FROM offer_presentations p \
                  WHERE p.customer_id = $1 AND p.offer_id = o.id AND p.present_time >= o.since), \
                (SELECT count(*) FROM offer_responses r \
                  WHERE r.customer_id = $1 AND r.offer_id = o.id AND r.kind = 1 AND r.response_time >= o.since), \
                (SELECT max(response_time) FROM offer_responses r \
                  WHERE r.customer_id = $1 AND r.offer_id = o.id AND r.kind = 2) \
         FROM UNNEST($2::text[], $3::timestamptz[]) AS o(id, since)",
    )
    .bind(customer)
    .bind(offers)
    .bind(since)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id, p, a, r)| (id, (p, a, r))).collect())
}

/// Records a presentation and counts it; false when `request_id` was recorded already.
pub async fn insert_presentation(
    conn: &mut PgConnection,
    id: Uuid,
    offer_id: &str,
    customer: Uuid,
    channel: i16,
    campaign: &str,
    request_id: Option<&str>,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO offer_presentations (presentation_id, offer_id, customer_id, channel, campaign_id, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(id)
    .bind(offer_id)
    .bind(customer)
    .bind(channel)
    .bind(campaign)
    .bind(request_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        sqlx::query("UPDATE offers SET presented = presented + 1 WHERE offer_id = $1")
            .bind(offer_id)
            .execute(conn)
            .await?;
    }
    Ok(inserted == 1)
}

/// The presentation recorded under `request_id`: `(presentation, offer)`.
pub async fn presentation_by_request(pool: &PgPool, request_id: &str) -> sqlx::Result<Option<(Uuid, String)>> {
    sqlx::query_as("SELECT presentation_id, offer_id FROM offer_presentations WHERE request_id = $1")
        .bind(request_id)
        .fetch_optional(pool)
        .await
}

/// A presentation's offer and customer.
pub async fn presentation(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<(String, Uuid)>> {
    sqlx::query_as("SELECT offer_id, customer_id FROM offer_presentations WHERE presentation_id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A recorded response.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ResponseRow {
    /// Its id.
    pub response_id: Uuid,
    /// The offer.
    pub offer_id: String,
    /// Who answered.
    pub customer_id: Uuid,
    /// 1 accepted, 2 refused.
    pub kind: i16,
    /// Through which channel.
    pub channel: i16,
    /// The presentation answered.
    pub presentation_id: Option<Uuid>,
    /// The campaign that carried the offer.
    pub campaign_id: String,
    /// When the customer answered.
    pub response_time: DateTime<Utc>,
}

/// Records a response and counts it; false when `request_id` was recorded already.
pub async fn insert_response(conn: &mut PgConnection, r: &ResponseRow, request_id: Option<&str>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO offer_responses (response_id, offer_id, customer_id, kind, channel, presentation_id, campaign_id, \
                                      response_time, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(r.response_id)
    .bind(&r.offer_id)
    .bind(r.customer_id)
    .bind(r.kind)
    .bind(r.channel)
    .bind(r.presentation_id)
    .bind(&r.campaign_id)
    .bind(r.response_time)
    .bind(request_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        sqlx::query(
            "UPDATE offers SET accepted = accepted + (CASE WHEN $2 = 1 THEN 1 ELSE 0 END), \
                               refused = refused + (CASE WHEN $2 = 2 THEN 1 ELSE 0 END) WHERE offer_id = $1",
        )
        .bind(&r.offer_id)
        .bind(r.kind)
        .execute(conn)
        .await?;
    }
    Ok(inserted == 1)
}

/// The response recorded under `request_id`.
pub async fn response_by_request(pool: &PgPool, request_id: &str) -> sqlx::Result<Option<ResponseRow>> {
    sqlx::query_as(
        "SELECT response_id, offer_id, customer_id, kind, channel, presentation_id, campaign_id, response_time \
         FROM offer_responses WHERE request_id = $1",
    )
    .bind(request_id)
    .fetch_optional(pool)
    .await
}

/// Gives the absorbed customers' presentations and responses to the survivor.
pub async fn merge(conn: &mut PgConnection, survivor: Uuid, absorbed: &[Uuid]) -> sqlx::Result<()> {
    for statement in [
        "UPDATE offer_presentations SET customer_id = $1 WHERE customer_id = ANY($2)",
        "UPDATE offer_responses SET customer_id = $1 WHERE customer_id = ANY($2)",
    ] {
        sqlx::query(statement).bind(survivor).bind(absorbed).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deletes the presentations and responses of these customers (the offers' counts stay: they
/// hold no identity).
pub async fn erase(conn: &mut PgConnection, customers: &[Uuid]) -> sqlx::Result<()> {
    for statement in [
        "DELETE FROM offer_presentations WHERE customer_id = ANY($1)",
        "DELETE FROM offer_responses WHERE customer_id = ANY($1)",
    ] {
        sqlx::query(statement).bind(customers).execute(&mut *conn).await?;
    }
    Ok(())
}
