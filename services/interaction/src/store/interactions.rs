//! Interactions: the bulk insert (UNNEST arrays, idempotency keys claimed by a unique
//! constraint in the same statement, events enqueued in the same transaction), reads by
//! id and by request id, and a customer's timeline, newest first.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row as _, Transaction, postgres::PgRow};
use uuid::Uuid;

use super::{Store, partitions::month_of};
use crate::domain::{Direction, Interaction, ItemLine, Kind, interaction::id_time};

/// Columns read back, in [`from_row`]'s order.
const COLUMNS: &str = "id, occurred_at, customer_id, recorded_customer_id, channel, kind, direction, purpose, \
     recorded_at, request_id, currency, total_minor, items::text AS items, campaign, offer, offer_response, \
     complaint, feedback, related_interaction, duration_ms, handled_by, source, source_reference, note, \
     attributes::text AS attributes";

/// Inserts the rows whose request id is new and answers their ids; rows whose request
/// id is already stored are skipped (the unique key of `interaction_keys`; a concurrent
/// insert of the same key waits for the first to commit). Request ids must be distinct
/// within `rows`. All rows share `recorded_at`.
const INSERT: &str = "\
WITH r AS (
  SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::uuid[], $4::int2[], $5::int2[], $6::int2[], $7::int2[],
                       $8::text[], $9::text[], $10::int8[], $11::text[], $12::text[], $13::text[], $14::int2[],
                       $15::text[], $16::text[], $17::int8[], $18::text[], $19::text[], $20::text[], $21::text[],
                       $22::text[])
    AS t(id, occurred_at, customer_id, channel, kind, direction, purpose, request_id, currency, total_minor, items,
         campaign, offer, offer_response, complaint, related_interaction, duration_ms, handled_by, source,
         source_reference, note, attributes)
),
claimed AS (
  INSERT INTO interaction_keys (request_id, interaction_id, occurred_at)
  SELECT request_id, id, occurred_at FROM r
  ON CONFLICT DO NOTHING
  RETURNING request_id
)
INSERT INTO interactions (id, occurred_at, customer_id, recorded_customer_id, channel, kind, direction, purpose,
                          recorded_at, request_id, currency, total_minor, items, campaign, offer, offer_response,
                          complaint, related_interaction, duration_ms, handled_by, source, source_reference, note,
                          attributes)
SELECT r.id, r.occurred_at, r.customer_id, r.customer_id, r.channel, r.kind, r.direction, r.purpose, $23,
       r.request_id, r.currency, r.total_minor, r.items::jsonb, r.campaign, r.offer, r.offer_response, r.complaint,
       r.related_interaction, r.duration_ms, r.handled_by, r.source, r.source_reference, r.note, r.attributes::jsonb
FROM r JOIN claimed USING (request_id)
RETURNING id";

/// A product line as stored in the `items` JSON array.
#[derive(Serialize, Deserialize)]
struct ItemRow {
    p: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    c: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    g: String,
    q: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    l: Option<i64>,
}

fn items_json(items: &[ItemLine]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let rows: Vec<ItemRow> = items
        .iter()
        .map(|i| ItemRow {
            p: i.product_id.clone(),
            c: i.configuration.clone(),
            g: i.category.clone(),
            q: i.quantity,
            u: i.unit_minor,
            l: i.line_minor,
        })
        .collect();
    serde_json::to_string(&rows).ok()
}

fn items_from_json(json: Option<String>) -> Vec<ItemLine> {
    let rows: Vec<ItemRow> = json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default();
    rows.into_iter()
        .map(|r| ItemLine {
            product_id: r.p,
            configuration: r.c,
            category: r.g,
            quantity: r.q,
            unit_minor: r.u,
            line_minor: r.l,
        })
        .collect()
}

/// Reads an interaction from a row selected with [`COLUMNS`].
fn from_row(row: &PgRow) -> sqlx::Result<Interaction> {
    let kind: i16 = row.try_get("kind")?;
    let direction: i16 = row.try_get("direction")?;
    let attributes: Option<String> = row.try_get("attributes")?;
    Ok(Interaction {
        id: row.try_get("id")?,
        customer_id: row.try_get("customer_id")?,
        recorded_customer_id: row.try_get("recorded_customer_id")?,
        channel: row.try_get("channel")?,
        kind: Kind::from_code(kind.into())
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown interaction kind {kind}").into()))?,
        direction: Direction::from_code(direction.into())
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown direction {direction}").into()))?,
        purpose: row.try_get("purpose")?,
        occurred_at: row.try_get("occurred_at")?,
        recorded_at: row.try_get("recorded_at")?,
        items: items_from_json(row.try_get("items")?),
        currency: row.try_get("currency")?,
        total_minor: row.try_get("total_minor")?,
        campaign: row.try_get("campaign")?,
        offer: row.try_get("offer")?,
        offer_response: row.try_get("offer_response")?,
        complaint: row.try_get("complaint")?,
        feedback: row.try_get("feedback")?,
        related_interaction: row.try_get("related_interaction")?,
        duration_ms: row.try_get("duration_ms")?,
        handled_by: row.try_get("handled_by")?,
        source: row.try_get("source")?,
        source_reference: row.try_get("source_reference")?,
        note: row.try_get("note")?,
        attributes: attributes
            .and_then(|a| serde_json::from_str::<BTreeMap<String, String>>(&a).ok())
            .unwrap_or_default(),
        request_id: row.try_get("request_id")?,
    })
}

/// Filters of a timeline.
#[derive(Debug, Clone, Default)]
pub struct TimelineFilter {
    /// Only these channel codes (empty: all).
    pub channels: Vec<i16>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<Kind>,
    /// Only this direction.
    pub direction: Option<Direction>,
    /// Only at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only before this time.
    pub to: Option<DateTime<Utc>>,
    /// Only this campaign (`campaigns/{id}`).
    pub campaign: Option<String>,
}

impl Store {
    /// Creates the partitions the months of interactions `occurred` need, then opens the
    /// transaction that records them with [`insert`] (and whatever the recording checks
    /// or counts with them: the contact policy, complaints, the events announcing them).
    pub async fn begin_recording(&self, occurred: &[DateTime<Utc>]) -> sqlx::Result<Transaction<'static, Postgres>> {
        self.partitions.ensure(occurred.iter().copied().map(month_of)).await?;
        self.pool.begin().await
    }

    /// Of `request_ids`, those already stored.
    pub async fn stored_request_ids(&self, request_ids: &[&str]) -> sqlx::Result<HashSet<String>> {
        let found: Vec<String> =
            sqlx::query_scalar("SELECT request_id FROM interaction_keys WHERE request_id = ANY($1)")
                .bind(request_ids)
                .fetch_all(&self.pool)
                .await?;
        Ok(found.into_iter().collect())
    }

    /// The interaction stored with `request_id`.
    pub async fn interaction_by_request_id(&self, request_id: &str) -> sqlx::Result<Option<Interaction>> {
        let key: Option<(Uuid, DateTime<Utc>)> =
            sqlx::query_as("SELECT interaction_id, occurred_at FROM interaction_keys WHERE request_id = $1")
                .bind(request_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some((id, occurred_at)) = key else { return Ok(None) };
        let sql = format!("SELECT {COLUMNS} FROM interactions WHERE id = $1 AND occurred_at = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(occurred_at).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The interaction `id`; only its time partition is read (the id carries the time).
    pub async fn interaction(&self, id: Uuid) -> sqlx::Result<Option<Interaction>> {
        let Some(at) = id_time(id) else { return Ok(None) };
        let sql =
            format!("SELECT {COLUMNS} FROM interactions WHERE id = $1 AND occurred_at >= $2 AND occurred_at < $3");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(at)
            .bind(at + Duration::milliseconds(1))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Of `ids`, those of stored interactions, in one statement: each id is probed in
    /// the partition of the time it carries.
    pub async fn existing_interactions(&self, ids: &[Uuid]) -> sqlx::Result<HashSet<Uuid>> {
        let (ids, times): (Vec<Uuid>, Vec<DateTime<Utc>>) =
            ids.iter().filter_map(|id| id_time(*id).map(|at| (*id, at))).unzip();
        let found: Vec<Uuid> = sqlx::query_scalar(
            "SELECT i.id FROM UNNEST($1::uuid[], $2::timestamptz[]) AS k(id, at) \
             JOIN interactions i ON i.id = k.id AND i.occurred_at >= k.at \
                                AND i.occurred_at < k.at + interval '1 millisecond'",
        )
        .bind(&ids)
        .bind(&times)
        .fetch_all(&self.pool)
        .await?;
        Ok(found.into_iter().collect())
    }

    /// Up to `limit` interactions of `customers` matching `filter`, newest first (by
    /// occurred_at, then id), after `after` (the last one of the previous page).
    pub async fn timeline(
        &self,
        customers: &[Uuid],
        filter: &TimelineFilter,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> sqlx::Result<Vec<Interaction>> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!("SELECT {COLUMNS} FROM interactions WHERE "));
        // One customer (the usual case) reads each partition's index in order and stops
        // at the page's end; several (after a merge not yet re-keyed) are merged by sort.
        if let [one] = customers {
            q.push("customer_id = ").push_bind(*one);
        } else {
            q.push("customer_id = ANY(").push_bind(customers.to_vec()).push(")");
        }
        if !filter.channels.is_empty() {
            q.push(" AND channel = ANY(").push_bind(filter.channels.clone()).push(")");
        }
        if !filter.kinds.is_empty() {
            let kinds: Vec<i16> = filter.kinds.iter().map(|k| k.code()).collect();
            q.push(" AND kind = ANY(").push_bind(kinds).push(")");
        }
        if let Some(direction) = filter.direction {
            q.push(" AND direction = ").push_bind(direction as i16);
        }
        if let Some(from) = filter.from {
            q.push(" AND occurred_at >= ").push_bind(from);
        }
        if let Some(to) = filter.to {
            q.push(" AND occurred_at < ").push_bind(to);
        }
        if let Some(campaign) = &filter.campaign {
            q.push(" AND campaign = ").push_bind(campaign.clone());
        }
        if let Some((at, id)) = after {
            q.push(" AND (occurred_at, id) < (").push_bind(at).push(", ").push_bind(id).push(")");
        }
        q.push(" ORDER BY occurred_at DESC, id DESC LIMIT ").push_bind(limit);
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// The last interaction on each channel of `customers`, most recent channel first.
    pub async fn last_per_channel(&self, customers: &[Uuid]) -> sqlx::Result<Vec<Interaction>> {
        let sql = format!(
            "SELECT * FROM (SELECT DISTINCT ON (channel) {COLUMNS} FROM interactions \
             WHERE customer_id = ANY($1) ORDER BY channel, occurred_at DESC, id DESC) last \
             ORDER BY occurred_at DESC, id DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(customers).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }
}

/// Inserts `rows` (distinct request ids) in the caller's transaction and answers the ids
/// of those inserted; rows whose request id is already stored are skipped.
pub async fn insert(
    tx: &mut PgConnection,
    rows: &[Interaction],
    recorded_at: DateTime<Utc>,
) -> sqlx::Result<HashSet<Uuid>> {
    let n = rows.len();
    let mut ids = Vec::with_capacity(n);
    let mut occurred = Vec::with_capacity(n);
    let mut customers = Vec::with_capacity(n);
    let mut channels = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut directions = Vec::with_capacity(n);
    let mut purposes = Vec::with_capacity(n);
    let mut request_ids = Vec::with_capacity(n);
    let mut currencies = Vec::with_capacity(n);
    let mut totals = Vec::with_capacity(n);
    let mut items = Vec::with_capacity(n);
    let mut campaigns = Vec::with_capacity(n);
    let mut offers = Vec::with_capacity(n);
    let mut offer_responses = Vec::with_capacity(n);
    let mut complaints = Vec::with_capacity(n);
    let mut related = Vec::with_capacity(n);
    let mut durations = Vec::with_capacity(n);
    let mut handled_by = Vec::with_capacity(n);
    let mut sources = Vec::with_capacity(n);
    let mut source_references = Vec::with_capacity(n);
    let mut notes = Vec::with_capacity(n);
    let mut attributes = Vec::with_capacity(n);
    for r in rows {
        ids.push(r.id);
        occurred.push(r.occurred_at);
        customers.push(r.customer_id);
        channels.push(r.channel);
        kinds.push(r.kind.code());
        directions.push(r.direction as i16);
        purposes.push(r.purpose);
        request_ids.push(r.request_id.as_str());
        currencies.push(r.currency.as_deref());
        totals.push(r.total_minor);
        items.push(items_json(&r.items));
        campaigns.push(r.campaign.as_str());
        offers.push(r.offer.as_str());
        offer_responses.push(r.offer_response);
        complaints.push(r.complaint.as_str());
        related.push(r.related_interaction.as_str());
        durations.push(r.duration_ms);
        handled_by.push(r.handled_by.as_str());
        sources.push(r.source.as_str());
        source_references.push(r.source_reference.as_str());
        notes.push(r.note.as_str());
        attributes.push((!r.attributes.is_empty()).then(|| serde_json::to_string(&r.attributes).unwrap_or_default()));
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(INSERT)
        .bind(&ids)
        .bind(&occurred)
        .bind(&customers)
        .bind(&channels)
        .bind(&kinds)
        .bind(&directions)
        .bind(&purposes)
        .bind(&request_ids)
        .bind(&currencies)
        .bind(&totals)
        .bind(&items)
        .bind(&campaigns)
        .bind(&offers)
        .bind(&offer_responses)
        .bind(&complaints)
        .bind(&related)
        .bind(&durations)
        .bind(&handled_by)
        .bind(&sources)
        .bind(&source_references)
        .bind(&notes)
        .bind(&attributes)
        .bind(recorded_at)
        .fetch_all(&mut *tx)
        .await?;
    Ok(inserted.into_iter().collect())
}
