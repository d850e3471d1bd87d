//! Fitted models: stored whole (the encoded `Model`) with kind, state and fit time as
//! columns to filter on; at most one active model per kind.

use chrono::{DateTime, Utc};
use idic_proto::segmentation::v1 as pb;
use prost::Message as _;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Stores `model` (its `name` is `models/{id}`) as the active model of its kind, superseding
/// the previous one.
pub async fn activate(
    conn: &mut PgConnection,
    id: Uuid,
    model: &pb::Model,
    fit_time: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE models SET state = $2 WHERE kind = $1 AND state = $3")
        .bind(model.kind as i16)
        .bind(pb::ModelState::Superseded as i16)
        .bind(pb::ModelState::Active as i16)
        .execute(&mut *conn)
        .await?;
    let parameters: serde_json::Map<String, serde_json::Value> =
        model.parameters.iter().map(|p| (p.name.clone(), serde_json::json!(p.value))).collect();
    sqlx::query("INSERT INTO models (id, kind, state, fit_time, parameters, body) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(id)
        .bind(model.kind as i16)
        .bind(pb::ModelState::Active as i16)
        .bind(fit_time)
        .bind(serde_json::Value::Object(parameters))
        .bind(model.encode_to_vec())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ModelRow {
    id: Uuid,
    state: i16,
    fit_time: DateTime<Utc>,
    body: Vec<u8>,
}

impl ModelRow {
    fn into_proto(self) -> sqlx::Result<pb::Model> {
        let mut model = pb::Model::decode(self.body.as_slice()).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        model.name = format!("models/{}", self.id);
        model.state = i32::from(self.state);
        Ok(model)
    }
}

/// One model.
pub async fn get(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<pb::Model>> {
    let row: Option<ModelRow> = sqlx::query_as("SELECT id, state, fit_time, body FROM models WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.map(ModelRow::into_proto).transpose()
}

/// The active model of `kind`.
pub async fn active(pool: &PgPool, kind: pb::ModelKind) -> sqlx::Result<Option<pb::Model>> {
    let row: Option<ModelRow> =
        sqlx::query_as("SELECT id, state, fit_time, body FROM models WHERE kind = $1 AND state = $2")
            .bind(kind as i16)
            .bind(pb::ModelState::Active as i16)
            .fetch_optional(pool)
            .await?;
    row.map(ModelRow::into_proto).transpose()
}

/// A page of models, newest first, optionally of one kind (0 = any) and state (0 = any).
pub async fn list(
    pool: &PgPool,
    kind: i32,
    state: i32,
    cursor: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<(pb::Model, DateTime<Utc>, Uuid)>> {
    let (after_time, after_id) = cursor.map_or((None, None), |(t, i)| (Some(t), Some(i)));
    let rows: Vec<ModelRow> = sqlx::query_as(
        "SELECT id, state, fit_time, body FROM models \
         WHERE ($1 = 0 OR kind = $1) AND ($2 = 0 OR state = $2) \
           AND ($3::timestamptz IS NULL OR (fit_time, id) < ($3, $4)) \
         ORDER BY fit_time DESC, id DESC LIMIT $5",
    )
    .bind(kind as i16)
    .bind(state as i16)
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let (time, id) = (r.fit_time, r.id);
            r.into_proto().map(|m| (m, time, id))
        })
        .collect()
}
