//! SQL of merging: the merge log, merges applied set-wise (a cleansing job applies
//! thousands in one transaction, in a fixed number of statements), unmerges,
//! cannot-links and the review queue of merge candidates.
//!
//! A merge moves the parts' identifiers and facts to the survivor, each keeping the
//! customer it came from, so that an unmerge gives back exactly what a part brought
//! (its merge family: itself and whatever had been merged into it). Consent records
//! never move, the ledger being append-only: consent reads cover the merge family.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use idic_platform::{
    ApiError, ApiResult,
    audit::{self, AuditRecord},
    events, idempotency,
};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{CONSENT_COLUMNS, ConsentRow, FACT_COLUMNS, FactRow, Store, consent_record_name};
use crate::domain::{
    CustomerId, Identifier, IdentifierKind,
    consent::Recorded,
    facts::{self, Fact},
    stored_names,
    survivorship::{self, HeldIdentifier, Retirement},
};

/// One merge to apply: `parts` into `survivor`.
#[derive(Debug, Clone, PartialEq)]
pub struct MergePlan {
    /// The customer that survives.
    pub survivor: CustomerId,
    /// The customers merged into it.
    pub parts: Vec<CustomerId>,
    /// The match probability (0–1) that supports it; `None` for a manual merge.
    pub score: Option<f64>,
}

/// The rule that decided a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeRule {
    /// MergeCustomers.
    Manual,
    /// AcceptMergeCandidate.
    Review,
    /// A cleansing job.
    AutoCleansing,
}

impl MergeRule {
    /// Stored (and API) form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Review => "review",
            Self::AutoCleansing => "auto_cleansing",
        }
    }

    /// The audited action of merges by this rule.
    fn action(self) -> &'static str {
        match self {
            Self::Manual => "MergeCustomers",
            Self::Review => "AcceptMergeCandidate",
            Self::AutoCleansing => "StartCleansing",
        }
    }
}

/// How a batch of merges is applied and recorded.
#[derive(Clone, Copy)]
pub struct MergeTerms<'a> {
    /// The rule that decided the merges.
    pub rule: MergeRule,
    /// The caller, or the job (`jobs/{id}`), merging.
    pub merged_by: &'a str,
    /// The reason, audited.
    pub reason: &'a str,
    /// Merge cannot-link pairs too, lifting their cannot-links.
    pub override_cannot_link: bool,
    /// Most identifiers of each kind a customer may hold.
    pub limits: &'a (dyn Fn(IdentifierKind) -> usize + Sync),
}

/// Why a planned merge was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// The plan merges nothing.
    NoParts,
    /// A customer does not exist.
    NotFound(CustomerId),
    /// A customer is merged or erased.
    NotActive(CustomerId, String),
    /// A part is not of the survivor's kind.
    KindsDiffer(CustomerId),
    /// Two of the customers are cannot-link (and the terms do not override it).
    CannotLink(CustomerId, CustomerId),
    /// A customer appears twice in the plan, or in an earlier plan of the batch.
    Repeated(CustomerId),
}

impl Held {
    /// The error answering a single merge held for this reason.
    pub fn into_error(self) -> ApiError {
        match self {
            Self::NoParts => ApiError::invalid("merged_customers", "give 1 to 50 customers"),
            Self::NotFound(c) => ApiError::NotFound(c.resource_name()),
            Self::NotActive(c, state) => {
                ApiError::FailedPrecondition(format!("{} is {state}: only active customers merge", c.resource_name()))
            }
            Self::KindsDiffer(c) => ApiError::FailedPrecondition(format!(
                "{} is not of the survivor's kind: a person and an organization do not merge",
                c.resource_name()
            )),
            Self::CannotLink(a, b) => ApiError::FailedPrecondition(format!(
                "{} and {} are cannot-link; set override_cannot_link to merge them anyway",
                a.resource_name(),
                b.resource_name()
            )),
            Self::Repeated(c) => ApiError::invalid("merged_customers", format!("{} appears twice", c.resource_name())),
        }
    }
}

/// What became of one planned merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Applied as this merge.
    Merged(Uuid),
    /// Not applied.
    Held(Held),
}

/// What a change touched, for the caches to forget once it is committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// Customers whose record changed.
    pub customers: Vec<CustomerId>,
    /// Identifiers whose holder changed or that were retired or restored.
    pub identifiers: Vec<Identifier>,
}

/// The outcome of a batch of merges.
#[derive(Debug, Clone, Default)]
pub struct MergeBatch {
    /// One per plan, in order.
    pub outcomes: Vec<MergeOutcome>,
    /// What the applied merges touched.
    pub touched: Touched,
}

/// A merge as recorded in the merge log.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeRecord {
    /// Its id.
    pub id: Uuid,
    /// The survivor.
    pub survivor: CustomerId,
    /// The customers merged into it (including any unmerged since).
    pub parts: Vec<CustomerId>,
    /// Stored rule name.
    pub rule: String,
    /// The supporting match probability.
    pub score: Option<f64>,
    /// The reason given.
    pub reason: String,
    /// The caller or job.
    pub merged_by: String,
    /// When.
    pub create_time: DateTime<Utc>,
}

/// Resource name of a merge.
pub fn merge_name(id: Uuid) -> String {
    format!("merges/{id}")
}

/// A part split back out of its survivor.
#[derive(Debug, Clone)]
pub struct Unmerged {
    /// The customer restored to active.
    pub restored: CustomerId,
    /// The survivor it was split from.
    pub survivor: CustomerId,
    /// The merge undone (in part).
    pub merge: Uuid,
    /// What the unmerge touched (empty for a replayed request).
    pub touched: Touched,
}

impl Store {
    /// Applies `plans` in one transaction: each plan whose customers all exist, are
    /// active, of one kind and (unless the terms override it) not cannot-link is merged;
    /// the others are held, and answered with why. A customer may appear in one plan of a
    /// batch only.
    pub async fn merge_many(&self, plans: &[MergePlan], terms: &MergeTerms<'_>) -> ApiResult<MergeBatch> {
        let mut tx = self.pool.begin().await?;
        let batch = merge_in(&mut tx, plans, terms).await?;
        tx.commit().await?;
        Ok(batch)
    }

    /// Applies one merge (MergeCustomers): a held merge is its error. A retried request
    /// (same `request_id`) answers the first merge's id and touches nothing.
    pub async fn merge(
        &self,
        plan: &MergePlan,
        terms: &MergeTerms<'_>,
        idempotency: Option<(&str, &[u8])>,
    ) -> ApiResult<(Uuid, Touched)> {
        let mut tx = self.pool.begin().await?;
        if let Some((request_id, hash)) = idempotency
            && let idempotency::Claim::Replay(bytes) =
                idempotency::claim(&mut tx, "MergeCustomers", request_id, hash).await?
        {
            return Ok((stored_uuid(&bytes)?, Touched::default()));
        }
        let batch = merge_in(&mut tx, std::slice::from_ref(plan), terms).await?;
        let id = match batch.outcomes.into_iter().next() {
            Some(MergeOutcome::Merged(id)) => id,
            Some(MergeOutcome::Held(held)) => return Err(held.into_error()),
            None => return Err(ApiError::Internal(anyhow::anyhow!("a merge without outcome"))),
        };
        if let Some((request_id, _)) = idempotency {
            idempotency::complete(&mut tx, "MergeCustomers", request_id, id.as_bytes()).await?;
        }
        tx.commit().await?;
        Ok((id, batch.touched))
    }

    /// A merge from the log.
    pub async fn get_merge(&self, id: Uuid) -> ApiResult<Option<MergeRecord>> {
        let row: Option<MergeRow> = sqlx::query_as(
            "SELECT m.id, m.survivor_id, m.rule, m.score, m.reason, m.merged_by, m.create_time, \
             ARRAY(SELECT p.customer_id FROM merge_parts p WHERE p.merge_id = m.id ORDER BY p.position) AS parts \
             FROM merges m WHERE m.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(MergeRow::into_domain))
    }

    /// Splits a MERGED customer back out of its survivor (UnmergeCustomer): it becomes
    /// active again with the identifiers, facts, contacts and consent view it brought
    /// (identifiers a merge retired are restored where their value is still free), the
    /// survivor keeps what was recorded on it since, the pair becomes cannot-link, and
    /// the unmerge is audited and published. A retried request answers the first.
    pub async fn unmerge(
        &self,
        part: CustomerId,
        caller: &str,
        reason: &str,
        limits: &(dyn Fn(IdentifierKind) -> usize + Sync),
        idempotency: Option<(&str, &[u8])>,
    ) -> ApiResult<Unmerged> {
        let mut tx = self.pool.begin().await?;
        if let Some((request_id, hash)) = idempotency
            && let idempotency::Claim::Replay(bytes) =
                idempotency::claim(&mut tx, "UnmergeCustomer", request_id, hash).await?
        {
            let (restored, rest) = bytes.split_at_checked(16).ok_or_else(|| stored("UnmergeCustomer"))?;
            let (survivor, merge) = rest.split_at_checked(16).ok_or_else(|| stored("UnmergeCustomer"))?;
            return Ok(Unmerged {
                restored: CustomerId(stored_uuid(restored)?),
                survivor: CustomerId(stored_uuid(survivor)?),
                merge: stored_uuid(merge)?,
                touched: Touched::default(),
            });
        }
        let unmerged = unmerge_in(&mut tx, part, caller, reason, limits).await?;
        if let Some((request_id, _)) = idempotency {
            let ids = [unmerged.restored.0, unmerged.survivor.0, unmerged.merge];
            let bytes: Vec<u8> = ids.iter().flat_map(|id| *id.as_bytes()).collect();
            idempotency::complete(&mut tx, "UnmergeCustomer", request_id, &bytes).await?;
        }
        tx.commit().await?;
        Ok(unmerged)
    }

    /// Whether `a` and `b` are cannot-link (never to be merged automatically).
    pub async fn cannot_link(&self, a: CustomerId, b: CustomerId) -> ApiResult<bool> {
        Ok(self.cannot_links(&[(a, b)]).await?.first().copied().unwrap_or(false))
    }

    /// For each pair, whether it is cannot-link (one query for the whole list).
    pub async fn cannot_links(&self, pairs: &[(CustomerId, CustomerId)]) -> ApiResult<Vec<bool>> {
        let (a, b): (Vec<Uuid>, Vec<Uuid>) = pairs.iter().map(|(a, b)| (a.0, b.0)).unzip();
        let linked: Vec<i64> = sqlx::query_scalar(
            "SELECT t.i FROM UNNEST($1::uuid[], $2::uuid[]) WITH ORDINALITY AS t(a, b, i) \
             JOIN cannot_links c ON c.low_id = LEAST(t.a, t.b) AND c.high_id = GREATEST(t.a, t.b)",
        )
        .bind(&a)
        .bind(&b)
        .fetch_all(&self.pool)
        .await?;
        let mut answer = vec![false; pairs.len()];
        for i in linked {
            if let Some(slot) = usize::try_from(i - 1).ok().and_then(|i| answer.get_mut(i)) {
                *slot = true;
            }
        }
        Ok(answer)
    }
}

/// Applies `plans` inside the caller's transaction (see [`Store::merge_many`]).
pub async fn merge_in(conn: &mut PgConnection, plans: &[MergePlan], terms: &MergeTerms<'_>) -> ApiResult<MergeBatch> {
    let mut held = hold_invalid(conn, plans).await?;
    let lifted = hold_cannot_links(conn, plans, &mut held, terms.override_cannot_link).await?;
    let ids: Vec<Option<Uuid>> = held.iter().map(|h| h.is_none().then(Uuid::now_v7)).collect();
    let applied: Vec<(&MergePlan, Uuid)> = plans.iter().zip(&ids).filter_map(|(p, id)| id.map(|id| (p, id))).collect();
    let mut batch = MergeBatch {
        outcomes: held
            .into_iter()
            .zip(&ids)
            .map(|(held, id)| match (held, id) {
                (Some(held), _) => MergeOutcome::Held(held),
                (None, id) => MergeOutcome::Merged(id.unwrap_or_default()),
            })
            .collect(),
        touched: Touched::default(),
    };
    if applied.is_empty() {
        return Ok(batch);
    }
    let merge_ids: Vec<Uuid> = applied.iter().map(|(_, id)| *id).collect();
    let survivors: Vec<Uuid> = applied.iter().map(|(p, _)| p.survivor.0).collect();
    let scores: Vec<Option<f64>> = applied.iter().map(|(p, _)| p.score).collect();
    // One row per part: (merge, part, survivor, position).
    let mut part_merges = Vec::new();
    let mut parts = Vec::new();
    let mut part_survivors = Vec::new();
    let mut positions: Vec<i16> = Vec::new();
    for (plan, id) in &applied {
        for (position, part) in plan.parts.iter().enumerate() {
            part_merges.push(*id);
            parts.push(part.0);
            part_survivors.push(plan.survivor.0);
            positions.push(i16::try_from(position).unwrap_or(i16::MAX));
        }
    }
    let consents_before = consent_views(conn, &survivors).await?;

    if !lifted.is_empty() {
        let (low, high): (Vec<Uuid>, Vec<Uuid>) = lifted.iter().copied().unzip();
        sqlx::query(
            "DELETE FROM cannot_links c USING UNNEST($1::uuid[], $2::uuid[]) AS t(low, high) \
             WHERE c.low_id = t.low AND c.high_id = t.high",
        )
        .bind(&low)
        .bind(&high)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "INSERT INTO merges (id, survivor_id, score, rule, reason, merged_by) \
         SELECT t.id, t.survivor, t.score, $4, $5, $6 FROM UNNEST($1::uuid[], $2::uuid[], $3::float8[]) \
         AS t(id, survivor, score)",
    )
    .bind(&merge_ids)
    .bind(&survivors)
    .bind(&scores)
    .bind(terms.rule.as_str())
    .bind(terms.reason)
    .bind(terms.merged_by)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO merge_parts (merge_id, customer_id, position) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int2[])",
    )
    .bind(&part_merges)
    .bind(&parts)
    .bind(&positions)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE customers c SET state = 'merged', merged_into = t.survivor, version = version + 1, \
         update_time = now() FROM UNNEST($1::uuid[], $2::uuid[]) AS t(part, survivor) WHERE c.id = t.part",
    )
    .bind(&parts)
    .bind(&part_survivors)
    .execute(&mut *conn)
    .await?;
    let moved: Vec<(String, String, String)> = sqlx::query_as(
        "UPDATE identifiers i SET origin_customer_id = COALESCE(i.origin_customer_id, i.customer_id), \
         customer_id = t.survivor FROM UNNEST($1::uuid[], $2::uuid[]) AS t(part, survivor) \
         WHERE i.customer_id = t.part RETURNING i.kind, i.namespace, i.value",
    )
    .bind(&parts)
    .bind(&part_survivors)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE profile_facts f SET customer_id = t.survivor FROM UNNEST($1::uuid[], $2::uuid[]) AS t(part, survivor) \
         WHERE f.customer_id = t.part",
    )
    .bind(&parts)
    .bind(&part_survivors)
    .execute(&mut *conn)
    .await?;
    // Contacts of a merged organisation now belong to the survivor; remembered for unmerge.
    let contacts: Vec<Uuid> = sqlx::query_scalar(
        "WITH moved AS ( \
             UPDATE customers c SET parent_id = t.survivor, version = version + 1, update_time = now() \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[]) AS t(part, survivor, merge_id) \
             WHERE c.parent_id = t.part RETURNING c.id, t.part, t.merge_id) \
         INSERT INTO merge_repointed_contacts (merge_id, contact_id, former_parent_id) \
         SELECT merge_id, id, part FROM moved RETURNING contact_id",
    )
    .bind(&parts)
    .bind(&part_survivors)
    .bind(&part_merges)
    .fetch_all(&mut *conn)
    .await?;
    let survivor_ids: Vec<CustomerId> = survivors.iter().copied().map(CustomerId).collect();
    set_fields_from_facts(conn, &survivor_ids).await?;
    let retire_for: Vec<(CustomerId, Option<Uuid>)> =
        applied.iter().map(|(plan, id)| (plan.survivor, Some(*id))).collect();
    let retired = enforce_limits(conn, &retire_for, terms.limits, "a merge").await?;
    sqlx::query(
        "UPDATE merge_candidates SET state = 'obsolete', resolve_time = now() \
         WHERE state = 'pending' AND (customer_id = ANY($1) OR duplicate_id = ANY($1))",
    )
    .bind(&parts)
    .execute(&mut *conn)
    .await?;

    let consents_after = consent_views(conn, &survivors).await?;
    let now = Utc::now();
    let mut published: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut audited: Vec<(String, serde_json::Value)> = Vec::new();
    for (plan, id) in &applied {
        published.push((
            crate::events::CUSTOMER_MERGED,
            crate::events::customer_merged(*id, plan.survivor, &plan.parts, now),
        ));
        let empty = Vec::new();
        let before = consents_before.get(&plan.survivor.0).unwrap_or(&empty);
        let after = consents_after.get(&plan.survivor.0).unwrap_or(&empty);
        published.extend(consent_changes(plan.survivor, before, after, now));
        let plan_lifted: Vec<String> = lifted
            .iter()
            .filter(|(low, high)| plan_has(plan, *low) && plan_has(plan, *high))
            .map(|(low, high)| format!("{} {}", CustomerId(*low).resource_name(), CustomerId(*high).resource_name()))
            .collect();
        let detail = serde_json::json!({
            "merge": merge_name(*id),
            "survivor": plan.survivor.resource_name(),
            "merged_customers": plan.parts.iter().map(CustomerId::resource_name).collect::<Vec<_>>(),
            "rule": terms.rule.as_str(),
            "score": plan.score,
            "cannot_links_lifted": plan_lifted,
        });
        for customer in std::iter::once(&plan.survivor).chain(&plan.parts) {
            audited.push((customer.resource_name(), detail.clone()));
        }
    }
    events::enqueue_many(conn, &published).await?;
    let audited: Vec<AuditRecord<'_>> = audited
        .iter()
        .map(|(resource, detail)| AuditRecord {
            caller: terms.merged_by,
            action: terms.rule.action(),
            resource,
            reason: terms.reason,
            detail: detail.clone(),
        })
        .collect();
    audit::record_many(conn, &audited).await?;

    batch.touched.customers = survivors.iter().chain(&parts).chain(&contacts).copied().map(CustomerId).collect();
    batch.touched.identifiers = to_identifiers(moved.into_iter().chain(retired));
    Ok(batch)
}

fn plan_has(plan: &MergePlan, id: Uuid) -> bool {
    plan.survivor.0 == id || plan.parts.iter().any(|p| p.0 == id)
}

/// Locks every customer the plans name (in id order, so concurrent merges queue rather
/// than deadlock) and holds the plans that cannot apply. One entry per plan.
async fn hold_invalid(conn: &mut PgConnection, plans: &[MergePlan]) -> ApiResult<Vec<Option<Held>>> {
    let mut all: Vec<Uuid> =
        plans.iter().flat_map(|p| std::iter::once(p.survivor).chain(p.parts.iter().copied())).map(|c| c.0).collect();
    all.sort_unstable();
    all.dedup();
    let rows: Vec<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, kind, state FROM customers WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(&all)
            .fetch_all(&mut *conn)
            .await?;
    let found: HashMap<Uuid, (String, String)> =
        rows.into_iter().map(|(id, kind, state)| (id, (kind, state))).collect();
    let mut seen = HashSet::new();
    Ok(plans
        .iter()
        .map(|plan| {
            let members: Vec<CustomerId> = std::iter::once(plan.survivor).chain(plan.parts.iter().copied()).collect();
            // Every member is claimed, even by a held plan: two plans naming one customer
            // are a mistake of the caller's, not a race to win.
            let mut repeated = None;
            for member in &members {
                if !seen.insert(member.0) && repeated.is_none() {
                    repeated = Some(*member);
                }
            }
            if plan.parts.is_empty() {
                return Some(Held::NoParts);
            }
            if let Some(member) = repeated {
                return Some(Held::Repeated(member));
            }
            let survivor_kind = found.get(&plan.survivor.0).map(|(kind, _)| kind.as_str());
            for member in &members {
                match found.get(&member.0) {
                    None => return Some(Held::NotFound(*member)),
                    Some((_, state)) if state != "active" => return Some(Held::NotActive(*member, state.clone())),
                    Some((kind, _)) if Some(kind.as_str()) != survivor_kind => return Some(Held::KindsDiffer(*member)),
                    Some(_) => {}
                }
            }
            None
        })
        .collect())
}

/// Holds the plans with a cannot-link between two of their customers, or, when
/// `override_links`, answers those links (low, high) to lift.
async fn hold_cannot_links(
    conn: &mut PgConnection,
    plans: &[MergePlan],
    held: &mut [Option<Held>],
    override_links: bool,
) -> ApiResult<Vec<(Uuid, Uuid)>> {
    let mut low = Vec::new();
    let mut high = Vec::new();
    let mut owner = Vec::new();
    for (i, plan) in plans.iter().enumerate().filter(|(i, _)| held[*i].is_none()) {
        let members: Vec<Uuid> =
            std::iter::once(plan.survivor).chain(plan.parts.iter().copied()).map(|c| c.0).collect();
        for (j, a) in members.iter().enumerate() {
            for b in &members[j + 1..] {
                low.push(*a.min(b));
                high.push(*a.max(b));
                owner.push(i);
            }
        }
    }
    if low.is_empty() {
        return Ok(Vec::new());
    }
    let linked: Vec<i64> = sqlx::query_scalar(
        "SELECT t.i FROM UNNEST($1::uuid[], $2::uuid[]) WITH ORDINALITY AS t(low, high, i) \
         JOIN cannot_links c ON c.low_id = t.low AND c.high_id = t.high",
    )
    .bind(&low)
    .bind(&high)
    .fetch_all(&mut *conn)
    .await?;
    let mut lifted = Vec::new();
    for i in linked.into_iter().filter_map(|i| usize::try_from(i - 1).ok()) {
        let (Some(&plan), Some(&a), Some(&b)) = (owner.get(i), low.get(i), high.get(i)) else { continue };
        if override_links {
            lifted.push((a, b));
        } else if held[plan].is_none() {
            held[plan] = Some(Held::CannotLink(CustomerId(a), CustomerId(b)));
        }
    }
    Ok(lifted)
}

async fn unmerge_in(
    conn: &mut PgConnection,
    part: CustomerId,
    caller: &str,
    reason: &str,
    limits: &(dyn Fn(IdentifierKind) -> usize + Sync),
) -> ApiResult<Unmerged> {
    let row: Option<(String, Option<Uuid>)> =
        sqlx::query_as("SELECT state, merged_into FROM customers WHERE id = $1 FOR UPDATE")
            .bind(part.0)
            .fetch_optional(&mut *conn)
            .await?;
    let survivor = match row {
        None => return Err(ApiError::NotFound(part.resource_name())),
        Some((state, Some(survivor))) if state == "merged" => CustomerId(survivor),
        Some((state, _)) => {
            return Err(ApiError::FailedPrecondition(format!(
                "{} is {state}, not merged: there is nothing to unmerge",
                part.resource_name()
            )));
        }
    };
    let survivor_state: String = sqlx::query_scalar("SELECT state FROM customers WHERE id = $1 FOR UPDATE")
        .bind(survivor.0)
        .fetch_one(&mut *conn)
        .await?;
    if survivor_state != "active" {
        return Err(ApiError::FailedPrecondition(format!(
            "its survivor {} is {survivor_state}: {}",
            survivor.resource_name(),
            if survivor_state == "erased" { "the data is gone" } else { "unmerge the survivor first" }
        )));
    }
    let merge: Uuid =
        sqlx::query_scalar("SELECT merge_id FROM merge_parts WHERE customer_id = $1 AND unmerge_time IS NULL")
            .bind(part.0)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("{} is merged without a merge", part.resource_name())))?;
    // What the part brought: its own data and that of the customers merged into it.
    let family: Vec<Uuid> = sqlx::query_scalar("SELECT merge_family($1)").bind(part.0).fetch_all(&mut *conn).await?;
    let consents_before = consent_views(conn, &[survivor.0]).await?;

    sqlx::query(
        "UPDATE customers SET state = 'active', merged_into = NULL, version = version + 1, update_time = now() \
         WHERE id = $1",
    )
    .bind(part.0)
    .execute(&mut *conn)
    .await?;
    // The survivor keeps a history record of each value it gives back.
    sqlx::query(
        "INSERT INTO identifiers (customer_id, origin_customer_id, kind, namespace, value, priority, source, \
         verified, channel, observe_time, last_seen_time, shared, state, remove_time, removal_reason, removal_note) \
         SELECT customer_id, COALESCE(origin_customer_id, customer_id), kind, namespace, value, priority, source, \
         verified, channel, observe_time, last_seen_time, shared, 'removed', now(), 'unmerged', $3 \
         FROM identifiers WHERE customer_id = $1 AND state = 'active' \
         AND COALESCE(origin_customer_id, customer_id) = ANY($2)",
    )
    .bind(survivor.0)
    .bind(&family)
    .bind(format!("given back to {} by an unmerge", part.resource_name()))
    .execute(&mut *conn)
    .await?;
    let mut changed: Vec<(String, String, String)> = sqlx::query_as(
        "UPDATE identifiers SET customer_id = $2, \
         origin_customer_id = NULLIF(COALESCE(origin_customer_id, customer_id), $2) \
         WHERE customer_id = $1 AND COALESCE(origin_customer_id, customer_id) = ANY($3) \
         AND removal_reason IS DISTINCT FROM 'unmerged' RETURNING kind, namespace, value",
    )
    .bind(survivor.0)
    .bind(part.0)
    .bind(&family)
    .fetch_all(&mut *conn)
    .await?;
    // Staleness is a relation within one customer's identifiers: none across the split.
    sqlx::query(
        "UPDATE identifiers i SET superseded_by = NULL, stale = false FROM identifiers s \
         WHERE i.superseded_by = s.id AND i.customer_id <> s.customer_id AND i.customer_id = ANY($1)",
    )
    .bind(&[part.0, survivor.0][..])
    .execute(&mut *conn)
    .await?;
    // What the merge's survivorship retired comes back, where its value is still free.
    let restored: Vec<(String, String, String)> = sqlx::query_as(
        "UPDATE identifiers i SET state = 'active', remove_time = NULL, removal_reason = NULL, removal_note = '', \
         retired_by_merge = NULL \
         WHERE i.customer_id = ANY($1) AND i.retired_by_merge = $2 AND NOT EXISTS ( \
             SELECT 1 FROM identifiers o WHERE o.kind = i.kind AND o.namespace = i.namespace AND o.value = i.value \
             AND o.state = 'active' AND NOT o.shared AND o.kind <> 'postal_address' AND o.id <> i.id) \
         RETURNING i.kind, i.namespace, i.value",
    )
    .bind(&[part.0, survivor.0][..])
    .bind(merge)
    .fetch_all(&mut *conn)
    .await?;
    changed.extend(restored);
    // The survivor may still hold other parts of the merge: what it cannot keep is
    // retired again on the merge's account.
    let retired = enforce_limits(conn, &[(part, None), (survivor, Some(merge))], limits, "an unmerge").await?;
    changed.extend(retired);
    sqlx::query("UPDATE profile_facts SET customer_id = $2 WHERE customer_id = $1 AND origin_customer_id = ANY($3)")
        .bind(survivor.0)
        .bind(part.0)
        .bind(&family)
        .execute(&mut *conn)
        .await?;
    let contacts: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE customers c SET parent_id = m.former_parent_id, version = version + 1, update_time = now() \
         FROM merge_repointed_contacts m WHERE m.merge_id = $1 AND m.former_parent_id = ANY($2) \
         AND c.id = m.contact_id AND c.parent_id = $3 RETURNING c.id",
    )
    .bind(merge)
    .bind(&family)
    .bind(survivor.0)
    .fetch_all(&mut *conn)
    .await?;
    set_fields_from_facts(conn, &[part, survivor]).await?;
    sqlx::query(
        "UPDATE merge_parts SET unmerge_time = now(), unmerged_by = $3, unmerge_reason = $4 \
         WHERE merge_id = $1 AND customer_id = $2",
    )
    .bind(merge)
    .bind(part.0)
    .bind(caller)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO cannot_links (low_id, high_id, reason, created_by) VALUES (LEAST($1::uuid, $2::uuid), \
         GREATEST($1::uuid, $2::uuid), $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(part.0)
    .bind(survivor.0)
    .bind(format!("unmerged: {reason}"))
    .bind(caller)
    .execute(&mut *conn)
    .await?;

    let consents_after = consent_views(conn, &[survivor.0, part.0]).await?;
    let now = Utc::now();
    let empty = Vec::new();
    let mut published =
        vec![(crate::events::CUSTOMER_UNMERGED, crate::events::customer_unmerged(merge, part, survivor, now))];
    published.extend(consent_changes(
        survivor,
        consents_before.get(&survivor.0).unwrap_or(&empty),
        consents_after.get(&survivor.0).unwrap_or(&empty),
        now,
    ));
    published.extend(consent_changes(part, &[], consents_after.get(&part.0).unwrap_or(&empty), now));
    events::enqueue_many(conn, &published).await?;
    let detail = serde_json::json!({
        "merge": merge_name(merge),
        "restored": part.resource_name(),
        "survivor": survivor.resource_name(),
    });
    let (part_name, survivor_name) = (part.resource_name(), survivor.resource_name());
    let audited =
        |resource| AuditRecord { caller, action: "UnmergeCustomer", resource, reason, detail: detail.clone() };
    audit::record_many(conn, &[audited(&part_name), audited(&survivor_name)]).await?;
    Ok(Unmerged {
        restored: part,
        survivor,
        merge,
        touched: Touched {
            customers: [part.0, survivor.0].into_iter().chain(contacts).map(CustomerId).collect(),
            identifiers: to_identifiers(changed),
        },
    })
}

/// Sets the customer fields of `customers` from their facts, as survivorship says.
pub(super) async fn set_fields_from_facts(conn: &mut PgConnection, customers: &[CustomerId]) -> ApiResult<()> {
    #[derive(sqlx::FromRow)]
    struct Owned {
        customer_id: Uuid,
        #[sqlx(flatten)]
        fact: FactRow,
    }
    let ids: Vec<Uuid> = customers.iter().map(|c| c.0).collect();
    let field_keys: Vec<&str> = facts::FIELD_KEYS.iter().map(|(k, _)| *k).collect();
    let rows: Vec<Owned> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT customer_id, {FACT_COLUMNS} FROM profile_facts WHERE customer_id = ANY($1) AND key = ANY($2)"
    )))
    .bind(&ids)
    .bind(&field_keys)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_customer: HashMap<Uuid, Vec<Fact>> = HashMap::new();
    for row in rows {
        if let Some(fact) = row.fact.into_domain() {
            by_customer.entry(row.customer_id).or_default().push(fact);
        }
    }
    let fields: Vec<survivorship::FieldValues> =
        ids.iter().map(|id| survivorship::field_values(by_customer.get(id).map_or(&[], Vec::as_slice))).collect();
    let births: Vec<_> = fields.iter().map(|f| f.birth_date).collect();
    sqlx::query(
        "UPDATE customers c SET given_name = t.given_name, family_name = t.family_name, \
         display_name = t.display_name, preferred_name = t.preferred_name, organization_name = t.organization_name, \
         job_title = t.job_title, preferred_language = t.preferred_language, time_zone = t.time_zone, \
         preferred_channel = t.preferred_channel, birth_year = t.birth_year, birth_month = t.birth_month, \
         birth_day = t.birth_day, version = version + 1, update_time = now() \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                     $9::text[], $10::text[], $11::int2[], $12::int2[], $13::int2[]) \
           AS t(id, given_name, family_name, display_name, preferred_name, organization_name, job_title, \
                preferred_language, time_zone, preferred_channel, birth_year, birth_month, birth_day) \
         WHERE c.id = t.id",
    )
    .bind(&ids)
    .bind(column(&fields, |f| &f.given_name))
    .bind(column(&fields, |f| &f.family_name))
    .bind(column(&fields, |f| &f.display_name))
    .bind(column(&fields, |f| &f.preferred_name))
    .bind(column(&fields, |f| &f.organization_name))
    .bind(column(&fields, |f| &f.job_title))
    .bind(column(&fields, |f| &f.preferred_language))
    .bind(column(&fields, |f| &f.time_zone))
    .bind(column(&fields, |f| &f.preferred_channel))
    .bind(births.iter().map(|b| b.and_then(|b| b.year).and_then(|y| i16::try_from(y).ok())).collect::<Vec<_>>())
    .bind(births.iter().map(|b| b.map(|b| i16::from(b.month))).collect::<Vec<_>>())
    .bind(births.iter().map(|b| b.map(|b| i16::from(b.day))).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn column<'a>(
    fields: &'a [survivorship::FieldValues],
    field: impl Fn(&'a survivorship::FieldValues) -> &'a String,
) -> Vec<&'a str> {
    fields.iter().map(|f| field(f).as_str()).collect()
}

/// Retires what each customer holds beyond its per-kind limits (and values it holds
/// twice), marking the retirement with the merge responsible, if any. Answers the
/// retired identifiers.
async fn enforce_limits(
    conn: &mut PgConnection,
    customers: &[(CustomerId, Option<Uuid>)],
    limits: &(dyn Fn(IdentifierKind) -> usize + Sync),
    after: &str,
) -> ApiResult<Vec<(String, String, String)>> {
    #[derive(sqlx::FromRow)]
    struct HeldRow {
        id: i64,
        customer_id: Uuid,
        kind: String,
        namespace: String,
        value: String,
        priority: i16,
        last_seen_time: DateTime<Utc>,
    }
    let ids: Vec<Uuid> = customers.iter().map(|(c, _)| c.0).collect();
    let rows: Vec<HeldRow> = sqlx::query_as(
        "SELECT id, customer_id, kind, namespace, value, priority, last_seen_time FROM identifiers \
         WHERE customer_id = ANY($1) AND state = 'active'",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut held: HashMap<Uuid, Vec<HeldIdentifier>> = HashMap::new();
    for row in rows {
        let Some(kind) = IdentifierKind::parse(&row.kind) else { continue };
        held.entry(row.customer_id).or_default().push(HeldIdentifier {
            id: row.id,
            identifier: Identifier { kind, namespace: row.namespace, value: row.value },
            priority: row.priority,
            last_seen: row.last_seen_time,
        });
    }
    let mut retire_ids = Vec::new();
    let mut notes = Vec::new();
    let mut markers = Vec::new();
    for (customer, merge) in customers {
        let Some(held) = held.get(&customer.0) else { continue };
        for (id, why) in survivorship::identifiers_to_retire(held, limits) {
            retire_ids.push(id);
            notes.push(match why {
                Retirement::Duplicate { kept } => format!("the same value as identifier {kept} after {after}"),
                Retirement::OverLimit { limit } => format!("over the limit of {limit} of its kind after {after}"),
            });
            markers.push(*merge);
        }
    }
    if retire_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(
        "UPDATE identifiers i SET state = 'removed', remove_time = now(), removal_reason = 'limit', \
         removal_note = t.note, retired_by_merge = t.merge_id \
         FROM UNNEST($1::int8[], $2::text[], $3::uuid[]) AS t(id, note, merge_id) WHERE i.id = t.id \
         RETURNING i.kind, i.namespace, i.value",
    )
    .bind(&retire_ids)
    .bind(&notes)
    .bind(&markers)
    .fetch_all(&mut *conn)
    .await?)
}

/// The consent records of each customer's merge family, by customer.
async fn consent_views(conn: &mut PgConnection, customers: &[Uuid]) -> ApiResult<HashMap<Uuid, Vec<Recorded>>> {
    #[derive(sqlx::FromRow)]
    struct Rooted {
        root: Uuid,
        #[sqlx(flatten)]
        record: ConsentRow,
    }
    let rows: Vec<Rooted> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT r.root, {CONSENT_COLUMNS} FROM UNNEST($1::uuid[]) AS r(root) \
         CROSS JOIN LATERAL merge_family(r.root) AS f(member) JOIN consent_records c ON c.customer_id = f.member"
    )))
    .bind(customers)
    .fetch_all(&mut *conn)
    .await?;
    let mut views: HashMap<Uuid, Vec<Recorded>> = HashMap::new();
    for row in rows {
        if let Some(record) = row.record.into_domain() {
            views.entry(row.root).or_default().push(record.recorded);
        }
    }
    Ok(views)
}

/// `consent.changed` events for the pairs of `customer` whose decision changed.
fn consent_changes(
    customer: CustomerId,
    before: &[Recorded],
    after: &[Recorded],
    now: DateTime<Utc>,
) -> Vec<(&'static str, Vec<u8>)> {
    survivorship::changed_consents(before, after, now)
        .iter()
        .map(|e| {
            let record = e.record.map(|r| consent_record_name(customer, r.id)).unwrap_or_default();
            let observed = e.record.map_or(now, |r| r.observe_time);
            (crate::events::CONSENT_CHANGED, crate::events::consent_changed(customer, e, &record, observed))
        })
        .collect()
}

pub(super) fn to_identifiers(rows: impl IntoIterator<Item = (String, String, String)>) -> Vec<Identifier> {
    let mut identifiers: Vec<Identifier> = rows
        .into_iter()
        .filter_map(|(kind, namespace, value)| {
            IdentifierKind::parse(&kind).map(|kind| Identifier { kind, namespace, value })
        })
        .collect();
    identifiers.sort_by(|a, b| (a.kind, &a.namespace, &a.value).cmp(&(b.kind, &b.namespace, &b.value)));
    identifiers.dedup();
    identifiers
}

fn stored(what: &str) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("unreadable stored {what} response"))
}

pub(super) fn stored_uuid(bytes: &[u8]) -> ApiResult<Uuid> {
    Uuid::from_slice(bytes).map_err(|e| ApiError::Internal(anyhow::anyhow!("stored response: {e}")))
}

#[derive(sqlx::FromRow)]
struct MergeRow {
    id: Uuid,
    survivor_id: Uuid,
    rule: String,
    score: Option<f64>,
    reason: String,
    merged_by: String,
    create_time: DateTime<Utc>,
    parts: Vec<Uuid>,
}

impl MergeRow {
    fn into_domain(self) -> MergeRecord {
        MergeRecord {
            id: self.id,
            survivor: CustomerId(self.survivor_id),
            parts: self.parts.into_iter().map(CustomerId).collect(),
            rule: self.rule,
            score: self.score,
            reason: self.reason,
            merged_by: self.merged_by,
            create_time: self.create_time,
        }
    }
}

/// What found a merge candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateOrigin {
    /// A real-time ResolveCustomer.
    Resolve,
    /// An ImportCustomers row.
    Import,
    /// A cleansing job.
    Cleansing,
}

/// Where a merge candidate's decision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateState {
    /// Waiting for a reviewer.
    Pending,
    /// Merged.
    Accepted,
    /// Cannot-link.
    Rejected,
    /// One of the pair was merged elsewhere or erased first.
    Obsolete,
}

stored_names!(CandidateOrigin { Resolve => "resolve", Import => "import", Cleansing => "cleansing" });
stored_names!(CandidateState {
    Pending => "pending", Accepted => "accepted", Rejected => "rejected", Obsolete => "obsolete",
});

/// A pair proposed for merging.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeCandidate {
    /// Its id.
    pub id: Uuid,
    /// The proposed survivor (the older record).
    pub customer: CustomerId,
    /// The proposed duplicate.
    pub duplicate: CustomerId,
    /// Match probability, 0–1.
    pub score: f64,
    /// Total match weight in bits.
    pub match_weight: f64,
    /// Per-field evidence: `[{"field": .., "level": .., "weight": ..}]`.
    pub evidence: serde_json::Value,
    /// What found it.
    pub origin: CandidateOrigin,
    /// Where the decision stands.
    pub state: CandidateState,
    /// When filed.
    pub create_time: DateTime<Utc>,
    /// When decided or made obsolete.
    pub resolve_time: Option<DateTime<Utc>>,
    /// The reviewer.
    pub resolved_by: String,
    /// The reviewer's reason.
    pub resolution_reason: String,
    /// For a cleansing finding: the job.
    pub cleansing_job: Option<Uuid>,
    /// For a cleansing finding: the cluster within the job.
    pub cluster_id: Option<String>,
    /// For an accepted candidate: the merge.
    pub merge: Option<Uuid>,
}

/// Resource name of a merge candidate.
pub fn candidate_name(id: Uuid) -> String {
    format!("mergeCandidates/{id}")
}

/// A finding to file for review.
#[derive(Debug, Clone)]
pub struct NewMergeCandidate<'a> {
    /// The proposed survivor (by convention the older record).
    pub customer: CustomerId,
    /// The proposed duplicate.
    pub duplicate: CustomerId,
    /// Match probability, 0–1.
    pub score: f64,
    /// Total match weight in bits.
    pub match_weight: f64,
    /// Per-field evidence: `[{"field": .., "level": .., "weight": ..}]`, never personal values.
    pub evidence: &'a serde_json::Value,
    /// What found it.
    pub origin: CandidateOrigin,
    /// For a cleansing finding: the job and the cluster within it.
    pub cleansing: Option<(Uuid, &'a str)>,
}

/// Which merge candidates to list (ListMergeCandidates); the filters combine with AND.
#[derive(Debug, Clone)]
pub struct CandidateFilter {
    /// Only this state.
    pub state: CandidateState,
    /// Only this origin.
    pub origin: Option<CandidateOrigin>,
    /// Only pairs involving this customer.
    pub customer: Option<CustomerId>,
    /// Only findings of this cleansing job.
    pub cleansing_job: Option<Uuid>,
    /// Only scores at least this.
    pub min_score: Option<f64>,
}

/// Files a merge candidate inside the caller's transaction. Answers the new
/// candidate's id, or `None` when none was filed: the pair is cannot-link, one of it is
/// no longer active, or a pending candidate for the pair exists (which is then updated
/// with this newer finding: at most one candidate per pair).
pub async fn file_merge_candidate(
    conn: &mut PgConnection,
    candidate: &NewMergeCandidate<'_>,
) -> ApiResult<Option<Uuid>> {
    let (job, cluster) = candidate.cleansing.map_or((None, None), |(job, cluster)| (Some(job), Some(cluster)));
    let filed: Option<(Uuid, bool)> = sqlx::query_as(
        "INSERT INTO merge_candidates (id, customer_id, duplicate_id, score, match_weight, evidence, origin, \
         cleansing_job, cluster_id) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
         WHERE NOT EXISTS (SELECT 1 FROM cannot_links \
                           WHERE low_id = LEAST($2::uuid, $3::uuid) AND high_id = GREATEST($2::uuid, $3::uuid)) \
           AND (SELECT count(*) FROM customers WHERE id IN ($2, $3) AND state = 'active') = 2 \
         ON CONFLICT (LEAST(customer_id, duplicate_id), GREATEST(customer_id, duplicate_id)) WHERE state = 'pending' \
         DO UPDATE SET score = EXCLUDED.score, match_weight = EXCLUDED.match_weight, evidence = EXCLUDED.evidence, \
                       origin = EXCLUDED.origin, cleansing_job = EXCLUDED.cleansing_job, \
                       cluster_id = EXCLUDED.cluster_id \
         RETURNING id, xmax = 0",
    )
    .bind(Uuid::now_v7())
    .bind(candidate.customer.0)
    .bind(candidate.duplicate.0)
    .bind(candidate.score)
    .bind(candidate.match_weight)
    .bind(candidate.evidence)
    .bind(candidate.origin.as_str())
    .bind(job)
    .bind(cluster)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(filed.and_then(|(id, inserted)| inserted.then_some(id)))
}

const CANDIDATE_COLUMNS: &str = "id, customer_id, duplicate_id, score, match_weight, evidence, origin, state, \
     create_time, resolve_time, resolved_by, resolution_reason, cleansing_job, cluster_id, merge_id";

#[derive(sqlx::FromRow)]
struct CandidateRow {
    id: Uuid,
    customer_id: Uuid,
    duplicate_id: Uuid,
    score: f64,
    match_weight: f64,
    evidence: serde_json::Value,
    origin: String,
    state: String,
    create_time: DateTime<Utc>,
    resolve_time: Option<DateTime<Utc>>,
    resolved_by: String,
    resolution_reason: String,
    cleansing_job: Option<Uuid>,
    cluster_id: Option<String>,
    merge_id: Option<Uuid>,
}

impl CandidateRow {
    fn into_domain(self) -> ApiResult<MergeCandidate> {
        let unreadable = || ApiError::Internal(anyhow::anyhow!("unreadable merge candidate {}", self.id));
        Ok(MergeCandidate {
            id: self.id,
            customer: CustomerId(self.customer_id),
            duplicate: CustomerId(self.duplicate_id),
            score: self.score,
            match_weight: self.match_weight,
            origin: CandidateOrigin::parse(&self.origin).ok_or_else(unreadable)?,
            state: CandidateState::parse(&self.state).ok_or_else(unreadable)?,
            evidence: self.evidence,
            create_time: self.create_time,
            resolve_time: self.resolve_time,
            resolved_by: self.resolved_by,
            resolution_reason: self.resolution_reason,
            cleansing_job: self.cleansing_job,
            cluster_id: self.cluster_id,
            merge: self.merge_id,
        })
    }
}

async fn candidate_for_update(conn: &mut PgConnection, id: Uuid) -> ApiResult<MergeCandidate> {
    let row: Option<CandidateRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CANDIDATE_COLUMNS} FROM merge_candidates WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or_else(|| ApiError::NotFound(candidate_name(id)))?.into_domain()
}

/// Records a reviewer's decision on a candidate and answers it as it now is.
async fn resolve_candidate(
    conn: &mut PgConnection,
    id: Uuid,
    state: CandidateState,
    caller: &str,
    reason: &str,
    merge: Option<Uuid>,
) -> ApiResult<MergeCandidate> {
    let row: CandidateRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE merge_candidates SET state = $2, resolve_time = now(), resolved_by = $3, resolution_reason = $4, \
         merge_id = $5 WHERE id = $1 RETURNING {CANDIDATE_COLUMNS}"
    )))
    .bind(id)
    .bind(state.as_str())
    .bind(caller)
    .bind(reason)
    .bind(merge)
    .fetch_one(&mut *conn)
    .await?;
    row.into_domain()
}

impl Store {
    /// Files a merge candidate (see [`file_merge_candidate`]) in a transaction of its own.
    pub async fn file_merge_candidate(&self, candidate: &NewMergeCandidate<'_>) -> ApiResult<Option<Uuid>> {
        let mut conn = self.pool.acquire().await?;
        file_merge_candidate(&mut conn, candidate).await
    }

    /// One merge candidate.
    pub async fn merge_candidate(&self, id: Uuid) -> ApiResult<Option<MergeCandidate>> {
        let row: Option<CandidateRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CANDIDATE_COLUMNS} FROM merge_candidates WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(CandidateRow::into_domain).transpose()
    }

    /// One page of merge candidates, highest score first (then by id), after `cursor`
    /// (the last score and id served).
    pub async fn merge_candidates(
        &self,
        filter: &CandidateFilter,
        cursor: Option<(f64, Uuid)>,
        limit: i64,
    ) -> ApiResult<Vec<MergeCandidate>> {
        let (after_score, after_id) = cursor.map_or((None, None), |(s, i)| (Some(s), Some(i)));
        let rows: Vec<CandidateRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CANDIDATE_COLUMNS} FROM merge_candidates \
             WHERE state = $1 AND ($2 = '' OR origin = $2) \
               AND ($3::uuid IS NULL OR customer_id = $3 OR duplicate_id = $3) \
               AND ($4::uuid IS NULL OR cleansing_job = $4) AND ($5::float8 IS NULL OR score >= $5) \
               AND ($6::float8 IS NULL OR score < $6 OR (score = $6 AND id > $7)) \
             ORDER BY score DESC, id LIMIT $8"
        )))
        .bind(filter.state.as_str())
        .bind(filter.origin.map_or("", CandidateOrigin::as_str))
        .bind(filter.customer.map(|c| c.0))
        .bind(filter.cleansing_job)
        .bind(filter.min_score)
        .bind(after_score)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(CandidateRow::into_domain).collect()
    }

    /// Accepts a candidate: merges the pair into `survivor` (the candidate's customer
    /// when `None`) with rule "review" and the candidate's score, in the transaction that
    /// marks it accepted. An accepted candidate is answered unchanged (touching nothing).
    pub async fn accept_merge_candidate(
        &self,
        id: Uuid,
        survivor: Option<CustomerId>,
        caller: &str,
        reason: &str,
        limits: &(dyn Fn(IdentifierKind) -> usize + Sync),
    ) -> ApiResult<(MergeCandidate, Touched)> {
        let mut tx = self.pool.begin().await?;
        let candidate = candidate_for_update(&mut tx, id).await?;
        match candidate.state {
            CandidateState::Accepted => return Ok((candidate, Touched::default())),
            CandidateState::Rejected | CandidateState::Obsolete => {
                return Err(ApiError::FailedPrecondition(format!(
                    "{} is {}: only a pending candidate can be accepted",
                    candidate_name(id),
                    candidate.state.as_str()
                )));
            }
            CandidateState::Pending => {}
        }
        let survivor = survivor.unwrap_or(candidate.customer);
        let part = match survivor {
            s if s == candidate.customer => candidate.duplicate,
            s if s == candidate.duplicate => candidate.customer,
            _ => return Err(ApiError::invalid("survivor", "must be one of the candidate's pair")),
        };
        // Accepted before merging, so the merge does not make it obsolete with the rest.
        resolve_candidate(&mut tx, id, CandidateState::Accepted, caller, reason, None).await?;
        let plan = MergePlan { survivor, parts: vec![part], score: Some(candidate.score) };
        let terms =
            MergeTerms { rule: MergeRule::Review, merged_by: caller, reason, override_cannot_link: false, limits };
        let batch = merge_in(&mut tx, std::slice::from_ref(&plan), &terms).await?;
        let merge = match batch.outcomes.into_iter().next() {
            Some(MergeOutcome::Merged(merge)) => merge,
            Some(MergeOutcome::Held(held)) => {
                return Err(match held {
                    Held::NotActive(c, state) => ApiError::FailedPrecondition(format!(
                        "{} is {state}: both customers of a candidate must still be active",
                        c.resource_name()
                    )),
                    held => held.into_error(),
                });
            }
            None => return Err(ApiError::Internal(anyhow::anyhow!("a merge without outcome"))),
        };
        let accepted = resolve_candidate(&mut tx, id, CandidateState::Accepted, caller, reason, Some(merge)).await?;
        let detail = serde_json::json!({
            "merge": merge_name(merge),
            "survivor": survivor.resource_name(),
            "merged_customers": [part.resource_name()],
            "rule": MergeRule::Review.as_str(),
            "score": candidate.score,
        });
        let resource = candidate_name(id);
        audit::record(
            &mut tx,
            AuditRecord { caller, action: "AcceptMergeCandidate", resource: &resource, reason, detail },
        )
        .await?;
        tx.commit().await?;
        Ok((accepted, batch.touched))
    }

    /// Rejects a candidate: the pair becomes cannot-link. A rejected candidate is
    /// answered unchanged.
    pub async fn reject_merge_candidate(&self, id: Uuid, caller: &str, reason: &str) -> ApiResult<MergeCandidate> {
        let mut tx = self.pool.begin().await?;
        let candidate = candidate_for_update(&mut tx, id).await?;
        match candidate.state {
            CandidateState::Rejected => return Ok(candidate),
            CandidateState::Accepted | CandidateState::Obsolete => {
                return Err(ApiError::FailedPrecondition(format!(
                    "{} is {}: only a pending candidate can be rejected",
                    candidate_name(id),
                    candidate.state.as_str()
                )));
            }
            CandidateState::Pending => {}
        }
        let rejected = resolve_candidate(&mut tx, id, CandidateState::Rejected, caller, reason, None).await?;
        sqlx::query(
            "INSERT INTO cannot_links (low_id, high_id, reason, created_by) VALUES (LEAST($1::uuid, $2::uuid), \
             GREATEST($1::uuid, $2::uuid), $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(candidate.customer.0)
        .bind(candidate.duplicate.0)
        .bind(format!("merge candidate rejected: {reason}"))
        .bind(caller)
        .execute(&mut *tx)
        .await?;
        let detail = serde_json::json!({
            "customer": candidate.customer.resource_name(),
            "duplicate_customer": candidate.duplicate.resource_name(),
            "score": candidate.score,
        });
        let resource = candidate_name(id);
        audit::record(
            &mut tx,
            AuditRecord { caller, action: "RejectMergeCandidate", resource: &resource, reason, detail },
        )
        .await?;
        tx.commit().await?;
        Ok(rejected)
    }
}
