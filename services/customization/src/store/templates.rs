//! The SQL of message templates: encoded bodies with the columns listings filter by.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// A template as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateRow {
    /// Its id.
    pub template_id: String,
    /// `Channel` number.
    pub channel: i16,
    /// `MessageKind` number.
    pub kind: i16,
    /// The languages it has content in (lowercase tags).
    pub languages: Vec<String>,
    /// The encoded `MessageTemplate`, output-only fields cleared.
    pub body: Vec<u8>,
    /// Increases on every change; the etag.
    pub revision: i64,
    /// When created.
    pub create_time: DateTime<Utc>,
    /// When last changed.
    pub update_time: DateTime<Utc>,
}

macro_rules! template_columns {
    () => {
        "template_id, channel, kind, languages, body, revision, create_time, update_time"
    };
}

/// Inserts a template; false when the id is taken.
pub async fn insert(pool: &PgPool, t: &TemplateRow) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO message_templates (template_id, channel, kind, languages, body) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&t.template_id)
    .bind(t.channel)
    .bind(t.kind)
    .bind(&t.languages)
    .bind(&t.body)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// One template.
pub async fn get(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<TemplateRow>> {
    sqlx::query_as(concat!("SELECT ", template_columns!(), " FROM message_templates WHERE template_id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// One template, locked for an update.
pub async fn get_for_update(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<TemplateRow>> {
    sqlx::query_as(concat!("SELECT ", template_columns!(), " FROM message_templates WHERE template_id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Writes a template's new body and bumps its revision.
pub async fn update(conn: &mut PgConnection, t: &TemplateRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE message_templates SET kind = $2, languages = $3, body = $4, revision = revision + 1, \
                update_time = now() WHERE template_id = $1",
    )
    .bind(&t.template_id)
    .bind(t.kind)
    .bind(&t.languages)
    .bind(&t.body)
    .execute(conn)
    .await?;
    Ok(())
}

/// Templates ordered by id after `after`, filtered by channel, kind and language.
pub async fn list(
    pool: &PgPool,
    channel: Option<i16>,
    kind: Option<i16>,
    language: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<TemplateRow>> {
    sqlx::query_as(concat!(
        "SELECT ",
        template_columns!(),
        " FROM message_templates \
          WHERE ($1::int2 IS NULL OR channel = $1) AND ($2::int2 IS NULL OR kind = $2) \
            AND ($3::text IS NULL OR lower($3) = ANY(languages)) AND ($4::text IS NULL OR template_id > $4) \
          ORDER BY template_id LIMIT $5"
    ))
    .bind(channel)
    .bind(kind)
    .bind(language)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}
