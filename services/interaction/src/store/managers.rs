//! SQL of account managers and their books: managers with their book sizes, customers
//! put in, moved between and taken out of books, a book's page with each customer's last
//! contact and open complaints, and the key customers not contacted for a while.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use idic_platform::{ApiError, ApiResult, FieldViolation};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

const COLUMNS: &str = "m.id, m.display_name, m.email, m.employee_id, m.team, m.capacity, m.state, m.created_at, \
     m.updated_at, m.deactivated_at, m.version, \
     (SELECT count(*) FROM books b WHERE b.manager_id = m.id)::int4 AS book_size";

/// Manager states (the proto's numbers).
pub const ACTIVE: i16 = 1;
/// Deactivated.
pub const INACTIVE: i16 = 2;

/// One manager as stored, with the size of their book.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ManagerRow {
    /// The id (last part of the name).
    pub id: String,
    /// Shown name.
    pub display_name: String,
    /// Work email.
    pub email: String,
    /// HR or CRM id; empty when unknown.
    pub employee_id: String,
    /// Team or region.
    pub team: String,
    /// Most customers the book may hold.
    pub capacity: i32,
    /// State number.
    pub state: i16,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
    /// When deactivated.
    pub deactivated_at: Option<DateTime<Utc>>,
    /// Bumped by every change; the etag.
    pub version: i64,
    /// Customers in the book (read only).
    pub book_size: i32,
}

fn unique_violation(e: sqlx::Error, id: &str) -> ApiError {
    if let sqlx::Error::Database(db) = &e
        && db.code().as_deref() == Some("23505")
    {
        return if db.constraint() == Some("account_managers_employee") {
            ApiError::Conflict(FieldViolation::new(
                "account_manager.employee_id",
                "is already used by another account manager",
            ))
        } else {
            ApiError::AlreadyExists(format!("accountManagers/{id}"))
        };
    }
    e.into()
}

/// Inserts a new manager.
pub async fn insert(tx: &mut PgConnection, m: &ManagerRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO account_managers (id, display_name, email, employee_id, team, capacity, state, created_at, \
           updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1)",
    )
    .bind(&m.id)
    .bind(&m.display_name)
    .bind(&m.email)
    .bind(&m.employee_id)
    .bind(&m.team)
    .bind(m.capacity)
    .bind(m.state)
    .bind(m.created_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| unique_violation(e, &m.id))?;
    Ok(())
}

/// One manager.
pub async fn get(conn: &mut PgConnection, id: &str) -> ApiResult<Option<ManagerRow>> {
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM account_managers m WHERE m.id = $1")))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row)
}

/// Managers, locked until `tx` ends (in id order, so concurrent moves do not deadlock).
pub async fn lock(tx: &mut PgConnection, ids: &[String]) -> ApiResult<Vec<ManagerRow>> {
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM account_managers m WHERE m.id = ANY($1) ORDER BY m.id FOR UPDATE"
    )))
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows)
}

/// Every active manager (of `team` when given), locked until `tx` ends, in id order.
pub async fn lock_active(tx: &mut PgConnection, team: Option<&str>) -> ApiResult<Vec<ManagerRow>> {
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM account_managers m WHERE m.state = 1 AND ($1::text IS NULL OR m.team = $1) \
         ORDER BY m.id FOR UPDATE"
    )))
    .bind(team)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows)
}

/// Writes a manager's changeable fields back, bumping its version.
pub async fn save(tx: &mut PgConnection, m: &ManagerRow) -> ApiResult<ManagerRow> {
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH u AS (UPDATE account_managers SET display_name = $2, email = $3, employee_id = $4, team = $5, \
           capacity = $6, state = $7, deactivated_at = $8, updated_at = now(), version = version + 1 \
         WHERE id = $1 RETURNING *) \
         SELECT {COLUMNS} FROM u m"
    )))
    .bind(&m.id)
    .bind(&m.display_name)
    .bind(&m.email)
    .bind(&m.employee_id)
    .bind(&m.team)
    .bind(m.capacity)
    .bind(m.state)
    .bind(m.deactivated_at)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| unique_violation(e, &m.id))?;
    Ok(row)
}

/// Managers by display name after the `(display_name, id)` cursor.
pub async fn list(
    pool: &PgPool,
    team: Option<&str>,
    show_inactive: bool,
    only_over_capacity: bool,
    after: Option<(String, String)>,
    limit: i64,
) -> ApiResult<Vec<ManagerRow>> {
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM (SELECT {COLUMNS} FROM account_managers m \
           WHERE ($1::text IS NULL OR m.team = $1) AND ($2 OR m.state = 1) \
             AND ($4::text IS NULL OR (m.display_name, m.id) > ($4, $5))) s \
         WHERE NOT $3 OR s.book_size > s.capacity \
         ORDER BY display_name, id LIMIT $6"
    )))
    .bind(team)
    .bind(show_inactive)
    .bind(only_over_capacity)
    .bind(after.as_ref().map(|a| a.0.as_str()))
    .bind(after.as_ref().map(|a| a.1.as_str()))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Which book each of `customers` is in now (locked until `tx` ends).
pub async fn current_books(tx: &mut PgConnection, customers: &[Uuid]) -> ApiResult<HashMap<Uuid, String>> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT customer_id, manager_id FROM books WHERE customer_id = ANY($1) FOR UPDATE")
            .bind(customers)
            .fetch_all(&mut *tx)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Puts `customers` in `manager`'s book (moving them from any other), assigned now.
pub async fn put_in_book(tx: &mut PgConnection, customers: &[Uuid], manager: &str) -> ApiResult<()> {
    if customers.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO books (customer_id, manager_id, assigned_at) SELECT c, $2, now() FROM UNNEST($1::uuid[]) AS c \
         ON CONFLICT (customer_id) DO UPDATE SET manager_id = EXCLUDED.manager_id, assigned_at = now()",
    )
    .bind(customers)
    .bind(manager)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Takes `customers` out of their books; answers how many were in one.
pub async fn take_out(tx: &mut PgConnection, customers: &[Uuid]) -> ApiResult<u64> {
    let deleted =
        sqlx::query("DELETE FROM books WHERE customer_id = ANY($1)").bind(customers).execute(&mut *tx).await?;
    Ok(deleted.rows_affected())
}

/// The `count` most recently assigned customers of `manager`'s book (those whose
/// relationship with the manager is shortest move first).
pub async fn newest_in_book(tx: &mut PgConnection, manager: &str, count: i64) -> ApiResult<Vec<Uuid>> {
    let ids = sqlx::query_scalar(
        "SELECT customer_id FROM books WHERE manager_id = $1 ORDER BY assigned_at DESC, customer_id DESC LIMIT $2",
    )
    .bind(manager)
    .bind(count)
    .fetch_all(&mut *tx)
    .await?;
    Ok(ids)
}

/// Of `customers`, those in `manager`'s book.
pub async fn in_book(tx: &mut PgConnection, manager: &str, customers: &[Uuid]) -> ApiResult<Vec<Uuid>> {
    let ids = sqlx::query_scalar("SELECT customer_id FROM books WHERE manager_id = $1 AND customer_id = ANY($2)")
        .bind(manager)
        .bind(customers)
        .fetch_all(&mut *tx)
        .await?;
    Ok(ids)
}

/// The book holding one of `customers` (a customer first, then those merged into it
/// and not yet moved to it): its manager's id and when the customer was put in it.
pub async fn book_of(conn: &mut PgConnection, customers: &[Uuid]) -> ApiResult<Option<(String, DateTime<Utc>)>> {
    let row = sqlx::query_as(
        "SELECT manager_id, assigned_at FROM books WHERE customer_id = ANY($1) \
         ORDER BY array_position($1, customer_id) LIMIT 1",
    )
    .bind(customers)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row)
}

/// A customer's last counted contact.
#[derive(Debug, Clone)]
pub struct LastContact {
    /// The interaction.
    pub id: Uuid,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// Channel number.
    pub channel: i16,
    /// Kind number.
    pub kind: i16,
    /// Direction number.
    pub direction: i16,
}

/// One entry of a book or of the neglected list.
#[derive(Debug, Clone)]
pub struct BookEntry {
    /// The customer.
    pub customer_id: Uuid,
    /// Their manager.
    pub manager_id: String,
    /// When put in the book.
    pub assigned_at: DateTime<Utc>,
    /// Their last counted contact.
    pub last_contact: Option<LastContact>,
    /// Their open complaints, oldest first (all of them; the edge shows at most 10).
    pub open_complaints: Vec<Uuid>,
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    customer_id: Uuid,
    manager_id: String,
    assigned_at: DateTime<Utc>,
    contact_id: Option<Uuid>,
    contact_at: Option<DateTime<Utc>>,
    contact_channel: Option<i16>,
    contact_kind: Option<i16>,
    contact_direction: Option<i16>,
    open_complaints: Vec<Uuid>,
}

impl From<EntryRow> for BookEntry {
    fn from(r: EntryRow) -> Self {
        let last_contact = match (r.contact_id, r.contact_at) {
            (Some(id), Some(occurred_at)) => Some(LastContact {
                id,
                occurred_at,
                channel: r.contact_channel.unwrap_or_default(),
                kind: r.contact_kind.unwrap_or_default(),
                direction: r.contact_direction.unwrap_or_default(),
            }),
            _ => None,
        };
        Self {
            customer_id: r.customer_id,
            manager_id: r.manager_id,
            assigned_at: r.assigned_at,
            last_contact,
            open_complaints: r.open_complaints,
        }
    }
}

/// Filters of a book page and of the neglected list.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    /// Only this manager's book (None: every book).
    pub manager: Option<String>,
    /// Kind numbers that count as contact.
    pub kinds: Vec<i16>,
    /// Channel numbers that count (empty: any).
    pub channels: Vec<i16>,
    /// Only customers with an open complaint.
    pub only_with_open_complaints: bool,
    /// Only customers whose last counted contact is before this (or who have none).
    pub not_contacted_since: Option<DateTime<Utc>>,
    /// Order: least recently contacted first (never contacted first, by assignment
    /// time) instead of most recently assigned first.
    pub by_last_contact: bool,
}

/// Entries matching `filter`, in its order, from `offset`; and how many match in all.
/// Offsets page these lists because their order (last contact) moves as contacts come.
pub async fn entries(pool: &PgPool, filter: &EntryFilter, offset: i64, limit: i64) -> ApiResult<(Vec<BookEntry>, i64)> {
    let order = if filter.by_last_contact {
        "contact_at ASC NULLS FIRST, assigned_at, customer_id"
    } else {
        "assigned_at DESC, customer_id DESC"
    };
    let query = format!(
        "WITH e AS ( \
           SELECT b.customer_id, b.manager_id, b.assigned_at, c.id AS contact_id, c.occurred_at AS contact_at, \
                  c.channel AS contact_channel, c.kind AS contact_kind, c.direction AS contact_direction, \
                  ARRAY(SELECT o.id FROM complaints o WHERE o.customer_id = b.customer_id AND o.state = 1 \
                        ORDER BY o.opened_at, o.id) AS open_complaints \
           FROM books b \
           LEFT JOIN LATERAL ( \
             SELECT i.id, i.occurred_at, i.channel, i.kind, i.direction FROM interactions i \
             WHERE i.customer_id = b.customer_id AND i.kind = ANY($2) \
               AND (cardinality($3::int2[]) = 0 OR i.channel = ANY($3)) \
             ORDER BY i.occurred_at DESC, i.id DESC LIMIT 1) c ON true \
           WHERE ($1::text IS NULL OR b.manager_id = $1)) \
         SELECT *, count(*) OVER () AS total FROM e \
         WHERE (NOT $4 OR cardinality(open_complaints) > 0) \
           AND ($5::timestamptz IS NULL OR contact_at IS NULL OR contact_at < $5) \
         ORDER BY {order} OFFSET $6 LIMIT $7"
    );
    let rows: Vec<(EntryRow, i64)> = sqlx::query(sqlx::AssertSqlSafe(query))
        .bind(filter.manager.as_deref())
        .bind(&filter.kinds)
        .bind(&filter.channels)
        .bind(filter.only_with_open_complaints)
        .bind(filter.not_contacted_since)
        .bind(offset)
        .bind(limit)
        .try_map(|row: sqlx::postgres::PgRow| {
            use sqlx::{FromRow as _, Row as _};
            Ok((EntryRow::from_row(&row)?, row.try_get::<i64, _>("total")?))
        })
        .fetch_all(pool)
        .await?;
    let total = rows.first().map_or(0, |(_, t)| *t);
    Ok((rows.into_iter().map(|(r, _)| r.into()).collect(), total))
}

/// Takes erased `customers` out of their books.
pub async fn erase(tx: &mut PgConnection, customers: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM books WHERE customer_id = ANY($1)").bind(customers).execute(&mut *tx).await?;
    Ok(())
}

/// Carries the book rows of `merged` customers to their `survivor`: into the book of the
/// most recently assigned of them when the survivor is in none; dropped otherwise (a
/// customer is in one book at most).
pub async fn merge(tx: &mut PgConnection, merged: &[Uuid], survivor: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO books (customer_id, manager_id, assigned_at) \
         SELECT $2, manager_id, assigned_at FROM books WHERE customer_id = ANY($1) \
         ORDER BY assigned_at DESC LIMIT 1 ON CONFLICT (customer_id) DO NOTHING",
    )
    .bind(merged)
    .bind(survivor)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM books WHERE customer_id = ANY($1)").bind(merged).execute(&mut *tx).await?;
    Ok(())
}
