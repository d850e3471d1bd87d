//! Needs clusters and customer assignments as stored by a rescoring (see `clustering`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// One stored cluster.
#[derive(Debug, Clone, sqlx::FromRow)]
#[allow(missing_docs, reason = "one field per column of `clusters`, described in the migration")]
pub struct ClusterRow {
    pub id: Uuid,
    pub model: Uuid,
    pub label: String,
    pub display_name: String,
    pub description: String,
    pub customer_count: i64,
    pub customer_share: f64,
    pub features: serde_json::Value,
    pub average_clv: f64,
    pub tier_counts: serde_json::Value,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

/// A page of a model's clusters, largest first, after `cursor` (count, id).
pub async fn list(
    pool: &PgPool,
    model: Uuid,
    cursor: Option<(i64, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<ClusterRow>> {
    let (after_count, after_id) = cursor.map_or((None, None), |(c, i)| (Some(c), Some(i)));
    sqlx::query_as(
        "SELECT * FROM clusters WHERE model = $1 \
           AND ($2::int8 IS NULL OR (customer_count < $2 OR (customer_count = $2 AND id > $3))) \
         ORDER BY customer_count DESC, id LIMIT $4",
    )
    .bind(model)
    .bind(after_count)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One cluster.
pub async fn get(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<ClusterRow>> {
    sqlx::query_as("SELECT * FROM clusters WHERE id = $1").bind(id).fetch_optional(pool).await
}

/// Sets the label, display name and description of a cluster (and the label copied onto
/// its customers' value rows); returns the customers whose cached values changed.
pub async fn update(pool: &PgPool, row: &ClusterRow) -> sqlx::Result<Vec<Uuid>> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE clusters SET label = $2, display_name = $3, description = $4, update_time = now() WHERE id = $1",
    )
    .bind(row.id)
    .bind(&row.label)
    .bind(&row.display_name)
    .bind(&row.description)
    .execute(&mut *tx)
    .await?;
    let customers: Vec<Uuid> =
        sqlx::query_scalar("UPDATE customer_values SET cluster_label = $2 WHERE cluster_id = $1 RETURNING customer_id")
            .bind(row.id)
            .bind(&row.label)
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(customers)
}

/// A customer's assignment: cluster, label, distance, features, time.
pub type Assignment = (Uuid, String, f64, serde_json::Value, DateTime<Utc>);

/// A customer's assignment.
pub async fn of_customer(pool: &PgPool, customer: Uuid) -> sqlx::Result<Option<Assignment>> {
    sqlx::query_as(
        "SELECT a.cluster_id, c.label, a.distance, a.features, a.assign_time \
         FROM customer_clusters a JOIN clusters c ON c.id = a.cluster_id WHERE a.customer_id = $1",
    )
    .bind(customer)
    .fetch_optional(pool)
    .await
}
