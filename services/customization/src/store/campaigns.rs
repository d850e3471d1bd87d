//! The SQL of campaigns: the campaigns, their members by arm with the outcome of each contact,
//! the purchases and returns their reports measure, and what merges and erasures do to them.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A campaign as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CampaignRow {
    /// Its id.
    pub campaign_id: String,
    /// `CampaignState` number.
    pub state: i16,
    /// The segment targeted, `segments/{id}`.
    pub segment: String,
    /// The encoded `Campaign`, output-only fields cleared.
    pub body: Vec<u8>,
    /// Seed of the arm assignment.
    pub assignment_seed: String,
    /// The launch job.
    pub launch_job: Option<Uuid>,
    /// When launched.
    pub launch_time: Option<DateTime<Utc>>,
    /// When the measurement window ends.
    pub measurement_end_time: Option<DateTime<Utc>>,
    /// Increases on every change; the etag.
    pub revision: i64,
    /// When created.
    pub create_time: DateTime<Utc>,
    /// When last changed.
    pub update_time: DateTime<Utc>,
}

macro_rules! campaign_columns {
    () => {
        "campaign_id, state, segment, body, assignment_seed, launch_job, launch_time, measurement_end_time, revision, \
         create_time, update_time"
    };
}

/// Inserts a campaign; false when the id is taken.
pub async fn insert(pool: &PgPool, c: &CampaignRow) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO campaigns (campaign_id, state, segment, body, assignment_seed) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&c.campaign_id)
    .bind(c.state)
    .bind(&c.segment)
    .bind(&c.body)
    .bind(&c.assignment_seed)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// One campaign.
pub async fn get(pool: &PgPool, id: &str) -> sqlx::Result<Option<CampaignRow>> {
    sqlx::query_as(concat!("SELECT ", campaign_columns!(), " FROM campaigns WHERE campaign_id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Campaigns newest first after `cursor`, in one of `states` (all when empty), of `segment`.
pub async fn list(
    pool: &PgPool,
    states: &[i16],
    segment: Option<&str>,
    cursor: Option<(DateTime<Utc>, String)>,
    limit: i64,
) -> sqlx::Result<Vec<CampaignRow>> {
    let (after_time, after_id) = cursor.unzip();
    sqlx::query_as(concat!(
        "SELECT ",
        campaign_columns!(),
        " FROM campaigns WHERE (cardinality($1::int2[]) = 0 OR state = ANY($1)) \
            AND ($2::text IS NULL OR segment = $2) \
            AND ($3::timestamptz IS NULL OR (create_time, campaign_id) < ($3, $4)) \
          ORDER BY create_time DESC, campaign_id DESC LIMIT $5"
    ))
    .bind(states)
    .bind(segment)
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Moves a campaign from `from` to `to` (with its launch job and times when given); false when
/// it was not in state `from`.
pub async fn transition(
    pool: &PgPool,
    id: &str,
    from: &[i16],
    to: i16,
    launch: Option<(Uuid, DateTime<Utc>, DateTime<Utc>)>,
) -> sqlx::Result<bool> {
    let (job, start, end) = match launch {
        Some((j, s, e)) => (Some(j), Some(s), Some(e)),
        None => (None, None, None),
    };
    let moved = sqlx::query(
        "UPDATE campaigns SET state = $3, launch_job = COALESCE($4, launch_job), \
                launch_time = COALESCE($5, launch_time), measurement_end_time = COALESCE($6, measurement_end_time), \
                revision = revision + 1, update_time = now() \
         WHERE campaign_id = $1 AND state = ANY($2)",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(job)
    .bind(start)
    .bind(end)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(moved == 1)
}

/// Snapshots members with their arms (1 treatment, 2 control); members already there keep
/// theirs (a relaunched job resumes).
pub async fn insert_members(pool: &PgPool, campaign: &str, members: &[(Uuid, i16)]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = members.iter().map(|m| m.0).collect();
    let arms: Vec<i16> = members.iter().map(|m| m.1).collect();
    sqlx::query(
        "INSERT INTO campaign_members (campaign_id, customer_id, arm) \
         SELECT $1, c, a FROM UNNEST($2::uuid[], $3::int2[]) AS t(c, a) ON CONFLICT DO NOTHING",
    )
    .bind(campaign)
    .bind(&ids)
    .bind(&arms)
    .execute(pool)
    .await?;
    Ok(())
}

/// Treatment members not handled yet, at most `limit`.
pub async fn pending(pool: &PgPool, campaign: &str, limit: i64) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT customer_id FROM campaign_members WHERE campaign_id = $1 AND arm = 1 AND outcome = 0 \
         ORDER BY customer_id LIMIT $2",
    )
    .bind(campaign)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Records what became of one member's contact: contacted, or not with `refusal` (a
/// `ContactRefusalReason`; 0 when beyond the campaign's budget).
pub async fn set_outcome(
    pool: &PgPool,
    campaign: &str,
    customer: Uuid,
    contacted: bool,
    refusal: i16,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE campaign_members SET outcome = CASE WHEN $3 THEN 1 ELSE 2 END, refusal = $4, contact_time = now() \
         WHERE campaign_id = $1 AND customer_id = $2",
    )
    .bind(campaign)
    .bind(customer)
    .bind(contacted)
    .bind(refusal)
    .execute(pool)
    .await?;
    Ok(())
}

/// Counts of a campaign's members: `(treatment, control, contacted, refused)`.
pub async fn counts(pool: &PgPool, campaign: &str) -> sqlx::Result<(i64, i64, i64, i64)> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE arm = 1), count(*) FILTER (WHERE arm = 2), \
                count(*) FILTER (WHERE outcome = 1), count(*) FILTER (WHERE outcome = 2) \
         FROM campaign_members WHERE campaign_id = $1",
    )
    .bind(campaign)
    .fetch_one(pool)
    .await
}

/// Refused treatment members by reason: `(reason, count)`.
pub async fn refusals(pool: &PgPool, campaign: &str) -> sqlx::Result<Vec<(i16, i64)>> {
    sqlx::query_as(
        "SELECT refusal, count(*) FROM campaign_members WHERE campaign_id = $1 AND outcome = 2 \
         GROUP BY refusal ORDER BY refusal",
    )
    .bind(campaign)
    .fetch_all(pool)
    .await
}

/// One member's behaviour in the measurement window, for the report.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberOutcome {
    /// 1 treatment, 2 control.
    pub arm: i16,
    /// 1 when contacted.
    pub outcome: i16,
    /// Net sales in the window in the report currency, minor units.
    pub sales: i64,
    /// Purchases in the window.
    pub purchases: i64,
    /// Whether they bought before launch.
    pub bought_before: bool,
    /// Distinct first category segments bought in the window.
    pub categories: i64,
    /// Whether they bought one of `products` in the window (or accepted the offer).
    pub responded: bool,
}

/// Every member's behaviour in [start, end): sales in `currency`, purchases, categories and
/// whether they bought one of `products` (any purchase when empty) or accepted `offer`.
pub async fn outcomes(
    pool: &PgPool,
    campaign: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    currency: &str,
    products: &[String],
    offer: Option<&str>,
) -> sqlx::Result<Vec<MemberOutcome>> {
    sqlx::query_as(
        "SELECT m.arm, m.outcome, \
                COALESCE((SELECT sum(p.amount_minor) FROM purchases p WHERE p.customer_id = m.customer_id \
                           AND p.occur_time >= $2 AND p.occur_time < $3 AND p.currency_code = $4), 0)::int8 AS sales, \
                (SELECT count(*) FROM purchases p WHERE p.customer_id = m.customer_id AND p.amount_minor > 0 \
                   AND p.occur_time >= $2 AND p.occur_time < $3) AS purchases, \
                EXISTS (SELECT 1 FROM purchases p WHERE p.customer_id = m.customer_id AND p.amount_minor > 0 \
                          AND p.occur_time < $2) AS bought_before, \
                (SELECT count(DISTINCT split_part(c, '/', 1)) FROM purchases p, unnest(p.categories) c \
                  WHERE p.customer_id = m.customer_id AND p.amount_minor > 0 \
                    AND p.occur_time >= $2 AND p.occur_time < $3) AS categories, \
                (EXISTS (SELECT 1 FROM purchases p WHERE p.customer_id = m.customer_id AND p.amount_minor > 0 \
                           AND p.occur_time >= $2 AND p.occur_time < $3 \
                           AND (cardinality($5::text[]) = 0 OR p.products && $5)) \
                 OR EXISTS (SELECT 1 FROM offer_responses r WHERE r.customer_id = m.customer_id AND r.kind = 1 \
                              AND r.offer_id = $6 AND r.response_time >= $2 AND r.response_time < $3)) AS responded \
         FROM campaign_members m WHERE m.campaign_id = $1",
    )
    .bind(campaign)
    .bind(start)
    .bind(end)
    .bind(currency)
    .bind(products)
    .bind(offer)
    .fetch_all(pool)
    .await
}

/// The most frequent currency of the members' purchases in [start, end), if any.
pub async fn main_currency(
    pool: &PgPool,
    campaign: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT p.currency_code FROM purchases p JOIN campaign_members m ON m.customer_id = p.customer_id \
         WHERE m.campaign_id = $1 AND p.occur_time >= $2 AND p.occur_time < $3 AND p.currency_code <> '' \
         GROUP BY p.currency_code ORDER BY count(*) DESC, p.currency_code LIMIT 1",
    )
    .bind(campaign)
    .bind(start)
    .bind(end)
    .fetch_optional(pool)
    .await
}

/// A purchase or return as the reports see it.
#[derive(Debug, Clone)]
pub struct Purchase {
    /// The interaction, the deduplication key.
    pub interaction_id: String,
    /// Who.
    pub customer_id: Uuid,
    /// When.
    pub occur_time: DateTime<Utc>,
    /// Net amount, minor units (negative for a return).
    pub amount_minor: i64,
    /// Its currency.
    pub currency_code: String,
    /// Categories of its lines.
    pub categories: Vec<String>,
    /// Products of its lines.
    pub products: Vec<String>,
}

/// Records a purchase or return once.
pub async fn insert_purchase(conn: &mut PgConnection, p: &Purchase) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO purchases (interaction_id, customer_id, occur_time, amount_minor, currency_code, categories, \
                                products) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(&p.interaction_id)
    .bind(p.customer_id)
    .bind(p.occur_time)
    .bind(p.amount_minor)
    .bind(&p.currency_code)
    .bind(&p.categories)
    .bind(&p.products)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives the absorbed customers' purchases and campaign memberships to the survivor (a
/// campaign both were in keeps the survivor's membership).
pub async fn merge(conn: &mut PgConnection, survivor: Uuid, absorbed: &[Uuid]) -> sqlx::Result<()> {
    for statement in [
        "UPDATE purchases SET customer_id = $1 WHERE customer_id = ANY($2)",
        "DELETE FROM campaign_members a USING campaign_members b \
         WHERE a.customer_id = ANY($2) AND a.campaign_id = b.campaign_id \
           AND (b.customer_id = $1 OR (b.customer_id = ANY($2) AND b.customer_id > a.customer_id))",
        "UPDATE campaign_members SET customer_id = $1 WHERE customer_id = ANY($2)",
    ] {
        sqlx::query(statement).bind(survivor).bind(absorbed).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deletes the purchases and campaign memberships of these customers.
pub async fn erase(conn: &mut PgConnection, customers: &[Uuid]) -> sqlx::Result<()> {
    for statement in [
        "DELETE FROM purchases WHERE customer_id = ANY($1)",
        "DELETE FROM campaign_members WHERE customer_id = ANY($1)",
    ] {
        sqlx::query(statement).bind(customers).execute(&mut *conn).await?;
    }
    Ok(())
}
