//! SQL of complaints: opening, changing and resolving them, listing them newest first,
//! the rows the daily chart is computed from, and counting the contacts about one.

use chrono::{DateTime, Utc};
use idic_platform::{ApiError, ApiResult};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::complaints::{ChartComplaint, state};

const COLUMNS: &str = "id, customer_id, category, channel, severity, owner, product_id, summary, description, state, \
     opened_at, updated_at, resolved_at, resolution, resolution_note, contact_count, interaction, version";

/// One complaint as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ComplaintRow {
    /// Its id.
    pub id: Uuid,
    /// The complaining customer.
    pub customer_id: Uuid,
    /// Its category code.
    pub category: String,
    /// Where it came in (Channel number).
    pub channel: i16,
    /// Severity number.
    pub severity: i16,
    /// Who works on it.
    pub owner: String,
    /// The product concerned.
    pub product_id: String,
    /// One-line summary.
    pub summary: String,
    /// Full description.
    pub description: String,
    /// State number.
    pub state: i16,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Resolution number (0 while open).
    pub resolution: i16,
    /// What was done.
    pub resolution_note: String,
    /// Contacts it took.
    pub contact_count: i32,
    /// The opening interaction's name, or empty.
    pub interaction: String,
    /// Bumped by every change.
    pub version: i64,
}

/// Inserts a new complaint in `tx`.
pub async fn insert(tx: &mut PgConnection, c: &ComplaintRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO complaints (id, customer_id, category, channel, severity, owner, product_id, summary, \
           description, state, opened_at, updated_at, resolved_at, resolution, resolution_note, contact_count, \
           interaction, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(c.id)
    .bind(c.customer_id)
    .bind(&c.category)
    .bind(c.channel)
    .bind(c.severity)
    .bind(&c.owner)
    .bind(&c.product_id)
    .bind(&c.summary)
    .bind(&c.description)
    .bind(c.state)
    .bind(c.opened_at)
    .bind(c.updated_at)
    .bind(c.resolved_at)
    .bind(c.resolution)
    .bind(&c.resolution_note)
    .bind(c.contact_count)
    .bind(&c.interaction)
    .bind(c.version)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One complaint.
pub async fn get(conn: &mut PgConnection, id: Uuid) -> ApiResult<Option<ComplaintRow>> {
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM complaints WHERE id = $1")))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row)
}

/// One complaint, locked until `tx` ends.
pub async fn get_for_update(tx: &mut PgConnection, id: Uuid) -> ApiResult<Option<ComplaintRow>> {
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM complaints WHERE id = $1 FOR UPDATE")))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(row)
}

/// Writes every changeable field of `c` back, bumping its version; answers the stored row.
pub async fn save(tx: &mut PgConnection, c: &ComplaintRow) -> ApiResult<ComplaintRow> {
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE complaints SET category = $2, severity = $3, owner = $4, product_id = $5, summary = $6, \
           description = $7, state = $8, updated_at = now(), resolved_at = $9, resolution = $10, \
           resolution_note = $11, contact_count = $12, version = version + 1 \
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(c.id)
    .bind(&c.category)
    .bind(c.severity)
    .bind(&c.owner)
    .bind(&c.product_id)
    .bind(&c.summary)
    .bind(&c.description)
    .bind(c.state)
    .bind(c.resolved_at)
    .bind(c.resolution)
    .bind(&c.resolution_note)
    .bind(c.contact_count)
    .fetch_one(&mut *tx)
    .await?;
    Ok(row)
}

/// Filters of ListComplaints (None: any).
#[derive(Debug, Clone, Default)]
pub struct ComplaintFilter {
    /// These customers (a customer and those merged into it).
    pub customers: Option<Vec<Uuid>>,
    /// State number.
    pub state: Option<i16>,
    /// Category.
    pub category: Option<String>,
    /// Severity number.
    pub severity: Option<i16>,
    /// Channel number.
    pub channel: Option<i16>,
    /// Owner.
    pub owner: Option<String>,
    /// Opened at or after.
    pub opened_from: Option<DateTime<Utc>>,
    /// Opened before.
    pub opened_to: Option<DateTime<Utc>>,
}

/// Complaints matching `filter`, most recently opened first, after the
/// `(opened_at, id)` cursor.
pub async fn list(
    pool: &PgPool,
    filter: &ComplaintFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> ApiResult<Vec<ComplaintRow>> {
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM complaints \
         WHERE ($1::uuid[] IS NULL OR customer_id = ANY($1)) AND ($2::smallint IS NULL OR state = $2) \
           AND ($3::text IS NULL OR category = $3) AND ($4::smallint IS NULL OR severity = $4) \
           AND ($5::smallint IS NULL OR channel = $5) AND ($6::text IS NULL OR owner = $6) \
           AND ($7::timestamptz IS NULL OR opened_at >= $7) AND ($8::timestamptz IS NULL OR opened_at < $8) \
           AND ($9::timestamptz IS NULL OR (opened_at, id) < ($9, $10)) \
         ORDER BY opened_at DESC, id DESC LIMIT $11"
    )))
    .bind(filter.customers.as_deref())
    .bind(filter.state)
    .bind(filter.category.as_deref())
    .bind(filter.severity)
    .bind(filter.channel)
    .bind(filter.owner.as_deref())
    .bind(filter.opened_from)
    .bind(filter.opened_to)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The complaints the chart of `[start, end)` needs: those opened before its end and not
/// resolved before its start, optionally of some categories and one channel.
pub async fn chart_complaints(
    pool: &PgPool,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    categories: &[String],
    channel: Option<i16>,
) -> ApiResult<Vec<ChartComplaint>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        category: String,
        opened_at: DateTime<Utc>,
        resolved_at: Option<DateTime<Utc>>,
        contact_count: i32,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT category, opened_at, resolved_at, contact_count FROM complaints \
         WHERE opened_at < $2 AND (resolved_at IS NULL OR resolved_at >= $1) \
           AND (cardinality($3::text[]) = 0 OR category = ANY($3)) AND ($4::smallint IS NULL OR channel = $4)",
    )
    .bind(start)
    .bind(end)
    .bind(categories)
    .bind(channel)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ChartComplaint {
            first_contact: r.resolved_at.is_some() && r.contact_count == 1,
            category: r.category,
            opened_at: r.opened_at,
            resolved_at: r.resolved_at,
        })
        .collect())
}

/// Counts one more contact about complaint `id` of `customer`, in the transaction that
/// records the contact (RecordInteraction with `complaint` set). A resolved complaint
/// keeps its count. NOT_FOUND when the complaint does not exist; INVALID_ARGUMENT on
/// `field` when it belongs to another customer.
pub async fn count_contact(tx: &mut PgConnection, id: Uuid, customer: Uuid, field: &str) -> ApiResult<()> {
    let owner: Option<(Uuid, i16)> =
        sqlx::query_as("SELECT customer_id, state FROM complaints WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    match owner {
        None => Err(ApiError::NotFound(format!("complaints/{id}"))),
        Some((owner, _)) if owner != customer => {
            Err(ApiError::invalid(field, "the complaint belongs to another customer"))
        }
        Some((_, s)) if s != state::OPEN => Ok(()),
        Some(_) => {
            sqlx::query(
                "UPDATE complaints SET contact_count = contact_count + 1, updated_at = now(), version = version + 1 \
                 WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            Ok(())
        }
    }
}

/// Anonymises the complaints of erased `customers`: the link to the customer (the nil id
/// marks an erased one) and the free texts go; category, channel, severity and times stay
/// for the chart.
pub async fn erase(tx: &mut PgConnection, customers: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE complaints SET customer_id = '00000000-0000-0000-0000-000000000000', summary = '', \
           description = '', resolution_note = '', interaction = '', updated_at = now(), version = version + 1 \
         WHERE customer_id = ANY($1)",
    )
    .bind(customers)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Re-keys the complaints of `merged` customers to their `survivor`, so that the
/// survivor's open complaints hold their contacts back.
pub async fn merge(tx: &mut PgConnection, merged: &[Uuid], survivor: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE complaints SET customer_id = $2 WHERE customer_id = ANY($1)")
        .bind(merged)
        .bind(survivor)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
