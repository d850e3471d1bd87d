//! The SQL of saved configurations: a customer's remembered selections per product, upserted
//! by variant, listed most recently used first, re-keyed by merges and deleted by erasures.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A saved configuration as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SavedRow {
    /// Its id.
    pub configuration_id: Uuid,
    /// Whose.
    pub customer_id: Uuid,
    /// Of which product.
    pub product_id: String,
    /// `[{"group": .., "option": ..}]`.
    pub selections: serde_json::Value,
    /// The variant's canonical key.
    pub variant_key: String,
    /// The customer's label.
    pub display_name: String,
    /// The product's default for this customer.
    pub is_default: bool,
    /// Currency of the price when saved.
    pub saved_currency: String,
    /// Price when saved, minor units.
    pub saved_price_minor: i64,
    /// Modules revision saved against.
    pub modules_revision: i64,
    /// First saved.
    pub create_time: DateTime<Utc>,
    /// Last saved or used.
    pub update_time: DateTime<Utc>,
}

/// The columns of a [`SavedRow`].
macro_rules! columns {
    () => {
        "configuration_id, customer_id, product_id, selections, variant_key, display_name, is_default, \
         saved_currency, saved_price_minor, modules_revision, create_time, update_time"
    };
}

/// The number of configurations a customer has saved.
pub async fn count(conn: &mut PgConnection, customer: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM saved_configurations WHERE customer_id = $1")
        .bind(customer)
        .fetch_one(conn)
        .await
}

/// Saves `row`, or updates the customer's configuration of the same variant (label, default
/// flag, price and revision; its id and creation time stay). A default unsets the previous one.
/// Returns the stored row.
pub async fn upsert(conn: &mut PgConnection, row: &SavedRow) -> sqlx::Result<SavedRow> {
    // Serialises concurrent saves of one customer's configurations (default flag, limit).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 4003))")
        .bind(row.customer_id)
        .execute(&mut *conn)
        .await?;
    if row.is_default {
        sqlx::query(
            "UPDATE saved_configurations SET is_default = false \
             WHERE customer_id = $1 AND product_id = $2 AND is_default AND variant_key <> $3",
        )
        .bind(row.customer_id)
        .bind(&row.product_id)
        .bind(&row.variant_key)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query_as(concat!(
        "INSERT INTO saved_configurations (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), now()) \
         ON CONFLICT (customer_id, product_id, variant_key) DO UPDATE SET \
             display_name = CASE WHEN EXCLUDED.display_name = '' THEN saved_configurations.display_name \
                                 ELSE EXCLUDED.display_name END, \
             is_default = EXCLUDED.is_default OR saved_configurations.is_default, \
             saved_currency = EXCLUDED.saved_currency, saved_price_minor = EXCLUDED.saved_price_minor, \
             modules_revision = EXCLUDED.modules_revision, selections = EXCLUDED.selections, update_time = now() \
         RETURNING ",
        columns!()
    ))
    .bind(row.configuration_id)
    .bind(row.customer_id)
    .bind(&row.product_id)
    .bind(&row.selections)
    .bind(&row.variant_key)
    .bind(&row.display_name)
    .bind(row.is_default)
    .bind(&row.saved_currency)
    .bind(row.saved_price_minor)
    .bind(row.modules_revision)
    .fetch_one(conn)
    .await
}

/// A customer's configurations, most recently used first, after `cursor` (update time, id),
/// of one product when given.
pub async fn list(
    pool: &PgPool,
    customer: Uuid,
    product: Option<&str>,
    cursor: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<SavedRow>> {
    let (after_time, after_id) = cursor.unzip();
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM saved_configurations \
         WHERE customer_id = $1 AND ($2::text IS NULL OR product_id = $2) \
           AND ($3::timestamptz IS NULL OR (update_time, configuration_id) < ($3, $4)) \
         ORDER BY update_time DESC, configuration_id DESC LIMIT $5"
    ))
    .bind(customer)
    .bind(product)
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Marks the customer's configuration of this variant as used now, if they saved one.
pub async fn touch(pool: &PgPool, customer: Uuid, product: &str, variant_key: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE saved_configurations SET update_time = now() \
         WHERE customer_id = $1 AND product_id = $2 AND variant_key = $3",
    )
    .bind(customer)
    .bind(product)
    .bind(variant_key)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes one configuration; false when there was none.
pub async fn delete(pool: &PgPool, customer: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM saved_configurations WHERE customer_id = $1 AND configuration_id = $2")
        .bind(customer)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(deleted == 1)
}

/// Gives the absorbed customers' configurations to the survivor, inside the caller's
/// transaction. A variant both saved keeps the survivor's copy (or the most recent); the
/// survivor's defaults stay the defaults.
pub async fn merge(conn: &mut PgConnection, survivor: Uuid, absorbed: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM saved_configurations a USING saved_configurations b \
         WHERE a.customer_id = ANY($2) AND (b.customer_id = $1 OR b.customer_id = ANY($2)) \
           AND a.configuration_id <> b.configuration_id \
           AND a.product_id = b.product_id AND a.variant_key = b.variant_key \
           AND (b.customer_id = $1 OR (b.update_time, b.configuration_id) > (a.update_time, a.configuration_id))",
    )
    .bind(survivor)
    .bind(absorbed)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE saved_configurations SET customer_id = $1, is_default = false WHERE customer_id = ANY($2)")
        .bind(survivor)
        .bind(absorbed)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes the configurations of these customers, inside the caller's transaction.
pub async fn erase(conn: &mut PgConnection, customers: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM saved_configurations WHERE customer_id = ANY($1)").bind(customers).execute(conn).await?;
    Ok(())
}
