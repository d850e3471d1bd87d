//! SQL of the identifiers customers hold (add within per-kind limits, remove, list with
//! their history) and of identifier rules (values blocked as junk, or shared by many).

use std::cmp::{Ordering, Reverse};

use chrono::{DateTime, Utc};
use idic_platform::{
    ApiError, ApiResult, FieldViolation,
    audit::{self, AuditRecord},
    idempotency,
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{FactProvenance, Store, lock_active};
use crate::domain::{
    CustomerId, Identifier, IdentifierKind,
    identifier_limits::{self, DEFAULT_PRIORITY, Held},
};

/// Why an identifier is no longer held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// A caller removed it.
    Requested,
    /// Retired to keep within the per-kind limit.
    Limit,
    /// Its value was blocked by an identifier rule.
    Blocked,
    /// Given back to another customer by an unmerge.
    Unmerged,
}

impl RemovalReason {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Limit => "limit",
            Self::Blocked => "blocked",
            Self::Unmerged => "unmerged",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requested" => Self::Requested,
            "limit" => Self::Limit,
            "blocked" => Self::Blocked,
            "unmerged" => Self::Unmerged,
            _ => return None,
        })
    }
}

/// One identifier of a customer, held or history.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerIdentifier {
    /// Its id (`customers/{customer}/identifiers/{id}`).
    pub id: i64,
    /// The customer holding (or having held) it.
    pub customer: CustomerId,
    /// The normalised identifier.
    pub identifier: Identifier,
    /// Preference among the customer's identifiers of its kind, 1–100.
    pub priority: i16,
    /// Whether the channel verified the customer controls it.
    pub verified: bool,
    /// Held (true) or history.
    pub active: bool,
    /// Superseded by a newer identifier of the same kind.
    pub stale: bool,
    /// The identifier that superseded it.
    pub superseded_by: Option<i64>,
    /// Covered by a SHARED rule.
    pub shared: bool,
    /// Source it was first learnt from.
    pub source: String,
    /// Channel (the API's name) it was learnt through, empty when none.
    pub channel: String,
    /// When it was first observed.
    pub observe_time: DateTime<Utc>,
    /// When it was attached to the customer.
    pub create_time: DateTime<Utc>,
    /// The last time a contact presented it.
    pub last_seen_time: DateTime<Utc>,
    /// When it was removed.
    pub remove_time: Option<DateTime<Utc>>,
    /// Why it was removed.
    pub removal_reason: Option<RemovalReason>,
    /// The remover's words, or the rule that blocked it.
    pub removal_note: String,
}

impl CustomerIdentifier {
    /// Its place in ListIdentifiers' order.
    pub fn position(&self) -> ListPosition {
        ListPosition {
            kind: self.identifier.kind as u8,
            removed: !self.active,
            stale: self.stale,
            priority: self.priority,
            last_seen: self.last_seen_time,
            id: self.id,
        }
    }
}

/// A place in ListIdentifiers' order: by kind (in the API's enum order), held before
/// history, non-stale first, priority (highest first), most recently seen, then id.
/// Page tokens carry the position of the last identifier served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPosition {
    kind: u8,
    removed: bool,
    stale: bool,
    priority: i16,
    last_seen: DateTime<Utc>,
    id: i64,
}

impl ListPosition {
    fn key(&self) -> impl Ord {
        (self.kind, self.removed, self.stale, Reverse(self.priority), Reverse(self.last_seen), self.id)
    }
}

impl Ord for ListPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for ListPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// An identifier to attach, validated and normalised.
#[derive(Debug, Clone)]
pub struct NewIdentifier {
    /// The identifier.
    pub identifier: Identifier,
    /// Priority 1–100; `None` keeps a held one's and means 50 for a new one.
    pub priority: Option<i16>,
    /// Whether the channel verified it.
    pub verified: bool,
    /// Where and when it was learnt.
    pub provenance: FactProvenance,
}

/// What AddIdentifier did.
#[derive(Debug, Clone)]
pub struct Added {
    /// The identifier as now held.
    pub identifier: CustomerIdentifier,
    /// Identifiers retired to keep within the limit.
    pub retired: Vec<Identifier>,
}

/// What an identifier rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleAction {
    /// Junk: refused as an identifier and retired where held.
    Block,
    /// Merge protection: may be held by many, never links on its own.
    Shared,
}

impl RuleAction {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Shared => "shared",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "block" => Some(Self::Block),
            "shared" => Some(Self::Shared),
            _ => None,
        }
    }
}

/// A rule for one identifier value.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentifierRule {
    /// Its id (`identifierRules/{id}`).
    pub id: Uuid,
    /// The value it covers, normalised.
    pub identifier: Identifier,
    /// What it does.
    pub action: RuleAction,
    /// Why.
    pub reason: String,
    /// Created by the service itself.
    pub automatic: bool,
    /// The caller that created it.
    pub created_by: String,
    /// When.
    pub create_time: DateTime<Utc>,
}

/// SQL order of a customer's held identifiers: by kind in the API's enum order, then
/// non-stale first, priority (highest first) and most recently seen.
pub(super) const HELD_ORDER: &str = "array_position(ARRAY['email', 'phone', 'postal_address', 'loyalty_card', \
     'account_number', 'device_id', 'national_id', 'external_id'], kind), stale, priority DESC, last_seen_time DESC, id";

/// Resource name of an identifier rule.
pub fn rule_name(id: Uuid) -> String {
    format!("identifierRules/{id}")
}

/// Resource name of a customer's identifier.
pub fn identifier_name(customer: CustomerId, id: i64) -> String {
    format!("{}/identifiers/{id}", customer.resource_name())
}

#[derive(sqlx::FromRow)]
struct IdentifierRow {
    id: i64,
    customer_id: Uuid,
    kind: String,
    namespace: String,
    value: String,
    priority: i16,
    verified: bool,
    state: String,
    stale: bool,
    superseded_by: Option<i64>,
    shared: bool,
    source: String,
    channel: String,
    observe_time: DateTime<Utc>,
    add_time: DateTime<Utc>,
    last_seen_time: DateTime<Utc>,
    remove_time: Option<DateTime<Utc>>,
    removal_reason: Option<String>,
    removal_note: String,
}

const IDENTIFIER_COLUMNS: &str = "id, customer_id, kind, namespace, value, priority, verified, state, stale, \
     superseded_by, shared, source, channel, observe_time, add_time, last_seen_time, remove_time, removal_reason, \
     removal_note";

impl IdentifierRow {
    fn into_domain(self) -> Option<CustomerIdentifier> {
        Some(CustomerIdentifier {
            id: self.id,
            customer: CustomerId(self.customer_id),
            identifier: Identifier {
                kind: IdentifierKind::parse(&self.kind)?,
                namespace: self.namespace,
                value: self.value,
            },
            priority: self.priority,
            verified: self.verified,
            active: self.state == "active",
            stale: self.stale,
            superseded_by: self.superseded_by,
            shared: self.shared,
            source: self.source,
            channel: self.channel,
            observe_time: self.observe_time,
            create_time: self.add_time,
            last_seen_time: self.last_seen_time,
            remove_time: self.remove_time,
            removal_reason: self.removal_reason.as_deref().and_then(RemovalReason::parse),
            removal_note: self.removal_note,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: Uuid,
    kind: String,
    namespace: String,
    value: String,
    action: String,
    reason: String,
    automatic: bool,
    created_by: String,
    create_time: DateTime<Utc>,
}

const RULE_COLUMNS: &str = "id, kind, namespace, value, action, reason, automatic, created_by, create_time";

impl RuleRow {
    fn into_domain(self) -> Option<IdentifierRule> {
        Some(IdentifierRule {
            id: self.id,
            identifier: Identifier {
                kind: IdentifierKind::parse(&self.kind)?,
                namespace: self.namespace,
                value: self.value,
            },
            action: RuleAction::parse(&self.action)?,
            reason: self.reason,
            automatic: self.automatic,
            created_by: self.created_by,
            create_time: self.create_time,
        })
    }
}

fn unreadable(what: &str) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("unreadable stored {what}"))
}

impl Store {
    /// Attaches an identifier to an active customer, or refreshes it when already held
    /// (last seen, priority when given, verified). A blocked value is INVALID_ARGUMENT
    /// naming `identifier.value`; a unique value held by another active customer is
    /// ALREADY_EXISTS; at the kind's `limit` the lowest-priority held one is retired
    /// (reason limit), or FAILED_PRECONDITION when none may be (see
    /// [`identifier_limits::make_room`]).
    pub async fn add_identifier(
        &self,
        customer: CustomerId,
        new: &NewIdentifier,
        limit: usize,
        idempotency: Option<(&str, &[u8])>,
    ) -> ApiResult<Added> {
        let mut tx = self.pool.begin().await?;
        if let Some((request_id, hash)) = idempotency
            && let idempotency::Claim::Replay(bytes) =
                idempotency::claim(&mut tx, "AddIdentifier", request_id, hash).await?
        {
            let id = i64::from_be_bytes(bytes.try_into().map_err(|_| unreadable("AddIdentifier response"))?);
            let identifier = identifier_by_id(&mut tx, id).await?;
            return Ok(Added { identifier, retired: Vec::new() });
        }
        lock_active(&mut tx, customer).await?;
        let (id, retired) = attach_identifier(&mut tx, customer, new, limit).await?;
        touch_customers(&mut tx, &[customer]).await?;
        if let Some((request_id, _)) = idempotency {
            idempotency::complete(&mut tx, "AddIdentifier", request_id, &id.to_be_bytes()).await?;
        }
        let identifier = identifier_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(Added { identifier, retired })
    }

    /// Retires a held identifier (reason requested, with `note`), releasing its value.
    /// An identifier already removed is answered as it is; one the customer never held
    /// is NOT_FOUND. The flag tells whether anything changed.
    pub async fn remove_identifier(
        &self,
        customer: CustomerId,
        identifier: &Identifier,
        note: &str,
    ) -> ApiResult<(CustomerIdentifier, bool)> {
        let mut tx = self.pool.begin().await?;
        lock_active(&mut tx, customer).await?;
        // The held row if any, else the most recently removed one.
        let found: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, state FROM identifiers WHERE customer_id = $1 AND kind = $2 AND namespace = $3 AND value = $4 \
             ORDER BY state = 'active' DESC, remove_time DESC NULLS LAST, id DESC LIMIT 1",
        )
        .bind(customer.0)
        .bind(identifier.kind.as_str())
        .bind(&identifier.namespace)
        .bind(&identifier.value)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, state)) = found else {
            return Err(ApiError::NotFound(format!("{}/identifiers/-", customer.resource_name())));
        };
        let changed = state == "active";
        if changed {
            retire_identifiers(&mut tx, &[id], RemovalReason::Requested, note).await?;
            touch_customers(&mut tx, &[customer]).await?;
        }
        let removed = identifier_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok((removed, changed))
    }

    /// One page of a customer's identifiers in ListIdentifiers' order, after `after`.
    /// A customer holds tens of identifiers (bounded by the per-kind limits) and their
    /// history, so they are ordered here rather than by an index.
    pub async fn list_identifiers(
        &self,
        customer: CustomerId,
        kind: Option<IdentifierKind>,
        include_removed: bool,
        after: Option<ListPosition>,
        limit: usize,
    ) -> ApiResult<Vec<CustomerIdentifier>> {
        let rows: Vec<IdentifierRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {IDENTIFIER_COLUMNS} FROM identifiers \
             WHERE customer_id = $1 AND ($2 = '' OR kind = $2) AND ($3 OR state = 'active')"
        )))
        .bind(customer.0)
        .bind(kind.map_or("", IdentifierKind::as_str))
        .bind(include_removed)
        .fetch_all(&self.pool)
        .await?;
        let mut listed: Vec<CustomerIdentifier> = rows
            .into_iter()
            .filter_map(IdentifierRow::into_domain)
            .filter(|i| after.is_none_or(|after| i.position() > after))
            .collect();
        listed.sort_by_key(CustomerIdentifier::position);
        listed.truncate(limit);
        Ok(listed)
    }

    /// Creates a rule, with its audit entry, in one transaction: BLOCK retires the value
    /// from every customer holding it (reason blocked); SHARED marks their holdings
    /// shared. A rule for the same kind and value is ALREADY_EXISTS. Answers the rule and
    /// the customers whose identifiers changed.
    pub async fn create_identifier_rule(
        &self,
        identifier: &Identifier,
        action: RuleAction,
        reason: &str,
        caller: &str,
        idempotency: Option<(&str, &[u8])>,
    ) -> ApiResult<(IdentifierRule, Vec<CustomerId>)> {
        let mut tx = self.pool.begin().await?;
        if let Some((request_id, hash)) = idempotency
            && let idempotency::Claim::Replay(bytes) =
                idempotency::claim(&mut tx, "CreateIdentifierRule", request_id, hash).await?
        {
            let id = Uuid::from_slice(&bytes).map_err(|_| unreadable("CreateIdentifierRule response"))?;
            let rule = rule_by_id(&mut tx, id).await?.ok_or_else(|| ApiError::NotFound(rule_name(id)))?;
            return Ok((rule, Vec::new()));
        }
        let id = Uuid::now_v7();
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO identifier_rules (id, kind, namespace, value, action, reason, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind, namespace, value) DO NOTHING RETURNING id",
        )
        .bind(id)
        .bind(identifier.kind.as_str())
        .bind(&identifier.namespace)
        .bind(&identifier.value)
        .bind(action.as_str())
        .bind(reason)
        .bind(caller)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            let existing: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM identifier_rules WHERE kind = $1 AND namespace = $2 AND value = $3")
                    .bind(identifier.kind.as_str())
                    .bind(&identifier.namespace)
                    .bind(&identifier.value)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(ApiError::AlreadyExists(existing.map_or_else(|| "identifierRules/-".to_owned(), rule_name)));
        }
        // Customer rows first, in id order, as every other writer locks them first.
        let holders: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM customers WHERE id IN (SELECT customer_id FROM identifiers \
             WHERE kind = $1 AND namespace = $2 AND value = $3 AND state = 'active') ORDER BY id FOR UPDATE",
        )
        .bind(identifier.kind.as_str())
        .bind(&identifier.namespace)
        .bind(&identifier.value)
        .fetch_all(&mut *tx)
        .await?;
        let holders: Vec<CustomerId> = holders.into_iter().map(CustomerId).collect();
        let held: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM identifiers WHERE kind = $1 AND namespace = $2 AND value = $3 AND state = 'active'",
        )
        .bind(identifier.kind.as_str())
        .bind(&identifier.namespace)
        .bind(&identifier.value)
        .fetch_all(&mut *tx)
        .await?;
        match action {
            RuleAction::Block => {
                retire_identifiers(&mut tx, &held, RemovalReason::Blocked, &rule_name(id)).await?;
                touch_customers(&mut tx, &holders).await?;
            }
            RuleAction::Shared => {
                sqlx::query("UPDATE identifiers SET shared = true WHERE id = ANY($1)")
                    .bind(&held)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        audit::record(
            &mut tx,
            AuditRecord {
                caller,
                action: "CreateIdentifierRule",
                resource: &rule_name(id),
                reason,
                detail: serde_json::json!({
                    "kind": identifier.kind.as_str(),
                    "action": action.as_str(),
                    "customers_affected": holders.len(),
                }),
            },
        )
        .await?;
        if let Some((request_id, _)) = idempotency {
            idempotency::complete(&mut tx, "CreateIdentifierRule", request_id, id.as_bytes()).await?;
        }
        let rule = rule_by_id(&mut tx, id).await?.ok_or_else(|| unreadable("identifier rule"))?;
        tx.commit().await?;
        Ok((rule, holders))
    }

    /// One page of identifier rules, newest first, after `cursor`.
    pub async fn list_identifier_rules(
        &self,
        kind: Option<IdentifierKind>,
        action: Option<RuleAction>,
        cursor: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> ApiResult<Vec<IdentifierRule>> {
        let (before_time, before_id) = cursor.unzip();
        let rows: Vec<RuleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM identifier_rules \
             WHERE ($1 = '' OR kind = $1) AND ($2 = '' OR action = $2) \
               AND ($3::timestamptz IS NULL OR (create_time, id) < ($3, $4)) \
             ORDER BY create_time DESC, id DESC LIMIT $5"
        )))
        .bind(kind.map_or("", IdentifierKind::as_str))
        .bind(action.map_or("", RuleAction::as_str))
        .bind(before_time)
        .bind(before_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().filter_map(RuleRow::into_domain).collect())
    }

    /// Deletes a rule, with its audit entry: its value becomes an ordinary identifier
    /// again (customers sharing it keep it). NOT_FOUND when there is no such rule.
    pub async fn delete_identifier_rule(&self, id: Uuid, caller: &str, reason: &str) -> ApiResult<IdentifierRule> {
        let mut tx = self.pool.begin().await?;
        let row: Option<RuleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "DELETE FROM identifier_rules WHERE id = $1 RETURNING {RULE_COLUMNS}"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let rule =
            row.ok_or_else(|| ApiError::NotFound(rule_name(id)))?.into_domain().ok_or_else(|| unreadable("rule"))?;
        audit::record(
            &mut tx,
            AuditRecord {
                caller,
                action: "DeleteIdentifierRule",
                resource: &rule_name(id),
                reason,
                detail: serde_json::json!({
                    "kind": rule.identifier.kind.as_str(),
                    "action": rule.action.as_str(),
                }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(rule)
    }
}

fn held_elsewhere() -> ApiError {
    ApiError::Conflict(FieldViolation::new("identifier.value", "is already held by another customer"))
}

/// The rule action covering each identifier, in order (`None`: no rule).
pub(super) async fn rule_actions(
    conn: &mut PgConnection,
    identifiers: &[Identifier],
) -> ApiResult<Vec<Option<RuleAction>>> {
    if identifiers.is_empty() {
        return Ok(Vec::new());
    }
    let kinds: Vec<&str> = identifiers.iter().map(|i| i.kind.as_str()).collect();
    let namespaces: Vec<&str> = identifiers.iter().map(|i| i.namespace.as_str()).collect();
    let values: Vec<&str> = identifiers.iter().map(|i| i.value.as_str()).collect();
    let found: Vec<(i64, String)> = sqlx::query_as(
        "SELECT t.n, r.action FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(k, ns, v, n) \
         JOIN identifier_rules r ON r.kind = t.k AND r.namespace = t.ns AND r.value = t.v",
    )
    .bind(&kinds)
    .bind(&namespaces)
    .bind(&values)
    .fetch_all(&mut *conn)
    .await?;
    let mut actions = vec![None; identifiers.len()];
    for (position, action) in found {
        if let Some(slot) = usize::try_from(position - 1).ok().and_then(|p| actions.get_mut(p)) {
            *slot = RuleAction::parse(&action);
        }
    }
    Ok(actions)
}

/// Attaches `new` to `customer` (whose row the caller has locked) or refreshes it
/// when already held, within the kind's `limit` (retiring the lowest priority held
/// one when full). Answers the identifier's row id and what was retired. A blocked
/// value is INVALID_ARGUMENT naming `identifier.value`; a unique value held by another
/// active customer ALREADY_EXISTS; no room FAILED_PRECONDITION.
pub(super) async fn attach_identifier(
    conn: &mut PgConnection,
    customer: CustomerId,
    new: &NewIdentifier,
    limit: usize,
) -> ApiResult<(i64, Vec<Identifier>)> {
    let identifier = &new.identifier;
    let rule = rule_actions(&mut *conn, std::slice::from_ref(identifier)).await?.pop().flatten();
    if rule == Some(RuleAction::Block) {
        return Err(ApiError::invalid("identifier.value", "is blocked by an identifier rule"));
    }
    let shared = rule == Some(RuleAction::Shared);
    let held: Vec<IdentifierRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {IDENTIFIER_COLUMNS} FROM identifiers \
             WHERE customer_id = $1 AND kind = $2 AND state = 'active' ORDER BY id FOR UPDATE"
    )))
    .bind(customer.0)
    .bind(identifier.kind.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let observed = new.provenance.observe_time;
    let mut retired = Vec::new();
    let id = match held.iter().find(|r| r.namespace == identifier.namespace && r.value == identifier.value) {
        Some(same) => {
            sqlx::query(
                "UPDATE identifiers SET last_seen_time = GREATEST(last_seen_time, $2), \
                     priority = COALESCE($3, priority), verified = verified OR $4 WHERE id = $1",
            )
            .bind(same.id)
            .bind(observed)
            .bind(new.priority)
            .bind(new.verified)
            .execute(&mut *conn)
            .await?;
            same.id
        }
        None => {
            if !shared && identifier.kind != IdentifierKind::PostalAddress {
                // Customers already sharing a value whose SHARED rule was deleted keep it,
                // but a new holder needs the value to itself.
                let taken: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM identifiers WHERE kind = $1 AND namespace = $2 AND value = $3 \
                         AND state = 'active' AND customer_id <> $4)",
                )
                .bind(identifier.kind.as_str())
                .bind(&identifier.namespace)
                .bind(&identifier.value)
                .bind(customer.0)
                .fetch_one(&mut *conn)
                .await?;
                if taken {
                    return Err(held_elsewhere());
                }
            }
            let priority = new.priority.unwrap_or(DEFAULT_PRIORITY);
            let view: Vec<Held> =
                held.iter().map(|r| Held { id: r.id, priority: r.priority, last_seen: r.last_seen_time }).collect();
            let retire = identifier_limits::make_room(identifier.kind, limit, &view, priority)
                .map_err(|why| ApiError::FailedPrecondition(why.to_string()))?;
            if !retire.is_empty() {
                retire_identifiers(&mut *conn, &retire, RemovalReason::Limit, "").await?;
                retired = held
                    .iter()
                    .filter(|r| retire.contains(&r.id))
                    .filter_map(|r| IdentifierKind::parse(&r.kind).map(|kind| (kind, r)))
                    .map(|(kind, r)| Identifier { kind, namespace: r.namespace.clone(), value: r.value.clone() })
                    .collect();
            }
            sqlx::query_scalar(
                "INSERT INTO identifiers (customer_id, kind, namespace, value, priority, verified, source, \
                     channel, observe_time, last_seen_time, shared) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) RETURNING id",
            )
            .bind(customer.0)
            .bind(identifier.kind.as_str())
            .bind(&identifier.namespace)
            .bind(&identifier.value)
            .bind(priority)
            .bind(new.verified)
            .bind(&new.provenance.source)
            .bind(&new.provenance.channel)
            .bind(observed)
            .bind(shared)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| match &e {
                // A concurrent add of the same value won the unique index.
                sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => held_elsewhere(),
                _ => e.into(),
            })?
        }
    };
    Ok((id, retired))
}

/// Moves identifiers to history with `reason`, releasing their values.
async fn retire_identifiers(conn: &mut PgConnection, ids: &[i64], reason: RemovalReason, note: &str) -> ApiResult<()> {
    sqlx::query(
        "UPDATE identifiers SET state = 'removed', remove_time = now(), removal_reason = $2, removal_note = $3 \
         WHERE id = ANY($1) AND state = 'active'",
    )
    .bind(ids)
    .bind(reason.as_str())
    .bind(note)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records that the customers' records changed (their identifiers).
async fn touch_customers(conn: &mut PgConnection, customers: &[CustomerId]) -> ApiResult<()> {
    if customers.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = customers.iter().map(|c| c.0).collect();
    sqlx::query("UPDATE customers SET version = version + 1, update_time = now() WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn identifier_by_id(conn: &mut PgConnection, id: i64) -> ApiResult<CustomerIdentifier> {
    let row: IdentifierRow =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {IDENTIFIER_COLUMNS} FROM identifiers WHERE id = $1")))
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    row.into_domain().ok_or_else(|| unreadable("identifier"))
}

async fn rule_by_id(conn: &mut PgConnection, id: Uuid) -> ApiResult<Option<IdentifierRule>> {
    let row: Option<RuleRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {RULE_COLUMNS} FROM identifier_rules WHERE id = $1")))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    row.map(|r| r.into_domain().ok_or_else(|| unreadable("identifier rule"))).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(kind: u8, removed: bool, stale: bool, priority: i16, hour: i64, id: i64) -> ListPosition {
        let last_seen = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::hours(hour);
        ListPosition { kind, removed, stale, priority, last_seen, id }
    }

    #[test]
    fn listing_order_is_kind_held_fresh_priority_then_recency() {
        let mut listed = [
            position(1, false, false, 50, 1, 1),
            position(0, true, false, 90, 1, 2),
            position(0, false, true, 90, 1, 3),
            position(0, false, false, 10, 1, 4),
            position(0, false, false, 80, 1, 5),
            position(0, false, false, 80, 5, 6),
        ];
        listed.sort();
        let ids: Vec<i64> = listed.iter().map(|p| p.id).collect();
        assert_eq!(ids, [6, 5, 4, 3, 2, 1]);
    }
}
