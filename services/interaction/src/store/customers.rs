//! What this service knows of customers from identification's events: merges (to re-key
//! history to the survivor and undo it) and erasures (to anonymise history and refuse
//! new contacts). Each apply runs in one transaction with the event's deduplication.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use idic_platform::events::{enqueue, first_delivery};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Store;

/// The consumer group this service reads identification's streams with.
pub const CONSUMER_GROUP: &str = "interaction";

/// Every customer merged, directly or through others, into one of `roots`.
const DESCENDANTS: &str = "\
WITH RECURSIVE d(id) AS (
  SELECT merged_customer_id FROM customer_merges WHERE survivor_customer_id = ANY($1)
  UNION
  SELECT m.merged_customer_id FROM customer_merges m JOIN d ON m.survivor_customer_id = d.id
)
SELECT id FROM d";

/// `$1` and every customer it was merged into since, nearest first.
const ANCESTORS: &str = "\
WITH RECURSIVE up(id, depth) AS (
  SELECT $1::uuid, 0
  UNION ALL
  SELECT m.survivor_customer_id, up.depth + 1 FROM up JOIN customer_merges m ON m.merged_customer_id = up.id
  WHERE up.depth < 32
)
SELECT id FROM up ORDER BY depth";

/// Where each of `ids` belongs now: the last survivor of its merges (itself when never
/// merged), with erased customers marked.
const STATUS: &str = "\
WITH RECURSIVE up(start, id, depth) AS (
  SELECT s, s, 0 FROM UNNEST($1::uuid[]) AS s
  UNION ALL
  SELECT up.start, m.survivor_customer_id, up.depth + 1
  FROM up JOIN customer_merges m ON m.merged_customer_id = up.id
  WHERE up.depth < 32
)
SELECT DISTINCT ON (start) start, id,
       EXISTS (SELECT 1 FROM erased_customers e WHERE e.customer_id = up.id OR e.customer_id = up.start) AS erased
FROM up ORDER BY start, depth DESC";

/// Where a customer id leads, as far as this service's events tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Active, or merged into this survivor.
    Current(Uuid),
    /// Erased.
    Erased,
}

impl Store {
    /// The standing of each of `ids` that was merged or erased (the others are current
    /// as they are). One index probe per id; chains of merges are followed only for the
    /// ids found merged.
    pub async fn standings(&self, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, Standing>> {
        let touched: Vec<(Uuid, bool)> = sqlx::query_as(
            "SELECT merged_customer_id, false FROM customer_merges WHERE merged_customer_id = ANY($1) \
             UNION ALL SELECT customer_id, true FROM erased_customers WHERE customer_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        if touched.is_empty() {
            return Ok(HashMap::new());
        }
        let touched: Vec<Uuid> = touched.into_iter().map(|(id, _)| id).collect();
        let rows: Vec<(Uuid, Uuid, bool)> = sqlx::query_as(STATUS).bind(&touched).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(start, root, erased)| (start, if erased { Standing::Erased } else { Standing::Current(root) }))
            .collect())
    }

    /// The customers merged (directly or not) into `customer`.
    pub async fn merged_into(&self, customer: Uuid) -> sqlx::Result<Vec<Uuid>> {
        let mut ids: Vec<Uuid> = sqlx::query_scalar(DESCENDANTS).bind([customer]).fetch_all(&self.pool).await?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// Applies `customer.merged`: records the merge and re-keys the merged customers'
    /// interactions to the survivor. False when the event had been applied already.
    pub async fn apply_merge(
        &self,
        event_id: &str,
        merge: &str,
        survivor: Uuid,
        merged: &[Uuid],
        time: DateTime<Utc>,
    ) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        if !first_delivery(&mut tx, CONSUMER_GROUP, event_id).await? {
            return Ok(false);
        }
        let merged: Vec<Uuid> = merged.iter().copied().filter(|m| *m != survivor).collect();
        sqlx::query(
            "INSERT INTO customer_merges (merged_customer_id, survivor_customer_id, merge, merged_at) \
             SELECT m, $2, $3, $4 FROM UNNEST($1::uuid[]) AS m \
             ON CONFLICT (merged_customer_id) DO UPDATE \
             SET survivor_customer_id = EXCLUDED.survivor_customer_id, merge = EXCLUDED.merge, \
                 merged_at = EXCLUDED.merged_at",
        )
        .bind(&merged)
        .bind(survivor)
        .bind(merge)
        .bind(time)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE interactions SET customer_id = $2 WHERE customer_id = ANY($1)")
            .bind(&merged)
            .bind(survivor)
            .execute(&mut *tx)
            .await?;
        // Complaints, feedback, books and the contact policy's entries follow the survivor.
        super::complaints::merge(&mut tx, &merged, survivor).await?;
        super::feedback::merge(&mut tx, &merged, survivor).await?;
        super::managers::merge(&mut tx, &merged, survivor).await?;
        super::contact_policy::merge(&mut tx, &merged, survivor).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Applies `customer.unmerged`: the interactions first recorded under `restored` (or
    /// under customers merged into it) go back to it; those recorded under the survivor
    /// stay. False when the event had been applied already.
    pub async fn apply_unmerge(&self, event_id: &str, restored: Uuid, survivor: Uuid) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        if !first_delivery(&mut tx, CONSUMER_GROUP, event_id).await? {
            return Ok(false);
        }
        sqlx::query("DELETE FROM customer_merges WHERE merged_customer_id = $1")
            .bind(restored)
            .execute(&mut *tx)
            .await?;
        let mut family: Vec<Uuid> = sqlx::query_scalar(DESCENDANTS).bind([restored]).fetch_all(&mut *tx).await?;
        family.push(restored);
        // The rows sit with the survivor, or with whoever the survivor was merged into since.
        let holders: Vec<Uuid> = sqlx::query_scalar(ANCESTORS).bind(survivor).fetch_all(&mut *tx).await?;
        sqlx::query(
            "UPDATE interactions SET customer_id = $1 WHERE customer_id = ANY($2) AND recorded_customer_id = ANY($3)",
        )
        .bind(restored)
        .bind(&holders)
        .bind(&family)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Applies `customer.erased`: anonymises the interactions of `customers` (the erased
    /// customer and those merged into it), remembers them as erased, and confirms the
    /// erasure on `erasure.confirmed` in the same transaction. False when the event had
    /// been applied already.
    pub async fn apply_erasure(
        &self,
        event_id: &str,
        erasure: &str,
        customers: &[Uuid],
        confirmation: &[u8],
    ) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        if !first_delivery(&mut tx, CONSUMER_GROUP, event_id).await? {
            return Ok(false);
        }
        let mut all: HashSet<Uuid> = customers.iter().copied().collect();
        let descendants: Vec<Uuid> = sqlx::query_scalar(DESCENDANTS).bind(customers).fetch_all(&mut *tx).await?;
        all.extend(descendants);
        let all: Vec<Uuid> = all.into_iter().collect();
        erase_interactions(&mut tx, &all).await?;
        // Complaints, feedback, books and the contact policy's copies of the customer.
        super::complaints::erase(&mut tx, &all).await?;
        super::feedback::erase(&mut tx, &all).await?;
        super::managers::erase(&mut tx, &all).await?;
        super::contact_policy::erase(&mut tx, &all).await?;
        sqlx::query(
            "INSERT INTO erased_customers (customer_id, erasure, erased_at) \
             SELECT c, $2, now() FROM UNNEST($1::uuid[]) AS c ON CONFLICT DO NOTHING",
        )
        .bind(&all)
        .bind(erasure)
        .execute(&mut *tx)
        .await?;
        enqueue(&mut tx, crate::events::ERASURE_CONFIRMED, confirmation).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Anonymises the interactions of `customers`: the link to the customer and every free
/// field that may identify them go; what was done, where and when stays (for aggregate
/// figures and campaign measurement).
async fn erase_interactions(tx: &mut PgConnection, customers: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE interactions SET customer_id = NULL, recorded_customer_id = NULL, note = '', handled_by = '', \
         source_reference = '', attributes = NULL WHERE customer_id = ANY($1)",
    )
    .bind(customers)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
