//! SQL of the identification schema: customers, their identifiers, profile facts and
//! the consent ledger.

pub mod cleansing;
pub mod customers;
pub mod erasure;
pub mod identifiers;
pub mod merges;
pub mod resolution;
pub mod subjects;

use chrono::{DateTime, Utc};
use idic_platform::{
    ApiError, ApiResult, FieldViolation,
    audit::{self, AuditRecord},
    idempotency,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{
    BirthDate, Customer, CustomerId, CustomerKind, CustomerRole, CustomerState, Identifier, IdentifierKind,
    NewCustomer,
    consent::{self, Channel, ConsentRecord, Decision, Purpose, Recorded},
    facts::{self, Fact, FactKey, FactValue, ValueType},
};

/// Access to the identification schema.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

#[derive(sqlx::FromRow)]
struct CustomerRow {
    id: Uuid,
    kind: String,
    state: String,
    roles: Vec<String>,
    display_name: String,
    given_name: String,
    family_name: String,
    preferred_name: String,
    organization_name: String,
    birth_year: Option<i16>,
    birth_month: Option<i16>,
    birth_day: Option<i16>,
    parent_id: Option<Uuid>,
    job_title: String,
    preferred_language: String,
    time_zone: String,
    preferred_channel: String,
    merged_into: Option<Uuid>,
    erasure: Option<Uuid>,
    version: i64,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
}

/// The columns of a [`CustomerRow`], selected `FROM customers`: an erased customer's
/// erasure (itself erased, or merged into the erased one) comes with it.
const CUSTOMER_COLUMNS: &str = "id, kind, state, roles, display_name, given_name, family_name, preferred_name, \
     organization_name, birth_year, birth_month, birth_day, parent_id, job_title, preferred_language, time_zone, \
     preferred_channel, merged_into, version, create_time, update_time, \
     CASE WHEN state = 'erased' THEN (SELECT e.id FROM erasures e \
         WHERE e.customer_id = customers.id OR e.merged_customer_ids @> ARRAY[customers.id] LIMIT 1) END AS erasure";

/// Outcome of an idempotent create.
#[derive(Debug)]
pub enum Created {
    /// Stored now.
    New(CustomerId),
    /// A retry of an earlier request: the customer it created.
    Replayed(CustomerId),
}

impl Store {
    /// A store on `pool` (whose connections use the identification schema).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool, for platform tables (audit, jobs) in this schema.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Inserts a customer and its identifiers. A unique identifier already held by
    /// another customer is ALREADY_EXISTS naming `customer.identifiers[i]`.
    pub async fn create_customer(
        &self,
        customer: &NewCustomer,
        provenance: &FactProvenance,
        caller: &str,
        idempotency: Option<(&str, &[u8])>,
    ) -> ApiResult<Created> {
        let mut tx = self.pool.begin().await?;
        if let Some((request_id, hash)) = idempotency
            && let idempotency::Claim::Replay(bytes) =
                idempotency::claim(&mut tx, "CreateCustomer", request_id, hash).await?
        {
            let id = Uuid::from_slice(&bytes).map_err(|e| anyhow::anyhow!("stored response: {e}"))?;
            return Ok(Created::Replayed(CustomerId(id)));
        }
        let id = insert_customer(&mut tx, customer, provenance, caller).await?;
        if let Some((request_id, _)) = idempotency {
            idempotency::complete(&mut tx, "CreateCustomer", request_id, id.0.as_bytes()).await?;
        }
        tx.commit().await?;
        Ok(Created::New(id))
    }

    /// Checks a new customer's identifiers against identifier rules and current holders:
    /// a blocked value is INVALID_ARGUMENT and a unique value held by an active customer
    /// ALREADY_EXISTS, each naming `customer.identifiers[i]`. Answers, per identifier,
    /// whether it is shared (covered by a SHARED rule: held by many, never unique).
    async fn check_identifiers_free(conn: &mut sqlx::PgConnection, identifiers: &[Identifier]) -> ApiResult<Vec<bool>> {
        let rules = identifiers::rule_actions(&mut *conn, identifiers).await?;
        if let Some(position) = rules.iter().position(|r| *r == Some(identifiers::RuleAction::Block)) {
            return Err(ApiError::invalid(
                format!("customer.identifiers[{position}].value"),
                "is blocked by an identifier rule",
            ));
        }
        let shared: Vec<bool> = rules.iter().map(|r| *r == Some(identifiers::RuleAction::Shared)).collect();
        let unique: Vec<(usize, &Identifier)> = identifiers
            .iter()
            .zip(&shared)
            .enumerate()
            .filter(|(_, (id, shared))| id.kind != IdentifierKind::PostalAddress && !**shared)
            .map(|(position, (id, _))| (position, id))
            .collect();
        if unique.is_empty() {
            return Ok(shared);
        }
        let kinds: Vec<&str> = unique.iter().map(|(_, i)| i.kind.as_str()).collect();
        let namespaces: Vec<&str> = unique.iter().map(|(_, i)| i.namespace.as_str()).collect();
        let values: Vec<&str> = unique.iter().map(|(_, i)| i.value.as_str()).collect();
        // Any active holder counts, shared ones too: customers still sharing a value whose
        // SHARED rule was deleted keep it, but a new holder needs it to itself.
        let taken: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT i.kind, i.namespace, i.value FROM identifiers i \
             JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS t(k, n, v) \
               ON i.kind = t.k AND i.namespace = t.n AND i.value = t.v \
             WHERE i.state = 'active'",
        )
        .bind(&kinds)
        .bind(&namespaces)
        .bind(&values)
        .fetch_all(&mut *conn)
        .await?;
        if let Some((position, _)) = unique
            .iter()
            .find(|(_, i)| taken.iter().any(|(k, n, v)| k == i.kind.as_str() && *n == i.namespace && *v == i.value))
        {
            return Err(ApiError::Conflict(FieldViolation::new(
                format!("customer.identifiers[{position}]"),
                "is already held by another customer",
            )));
        }
        Ok(shared)
    }

    /// The customer holding a unique identifier: postal addresses and shared values
    /// (SHARED rules) never identify anyone on their own.
    pub async fn holder(&self, identifier: &Identifier) -> ApiResult<Option<CustomerId>> {
        if identifier.kind == IdentifierKind::PostalAddress {
            return Ok(None);
        }
        let holder: Option<Uuid> = sqlx::query_scalar(
            "SELECT customer_id FROM identifiers WHERE kind = $1 AND namespace = $2 AND value = $3 \
             AND kind <> 'postal_address' AND state = 'active' AND NOT shared",
        )
        .bind(identifier.kind.as_str())
        .bind(&identifier.namespace)
        .bind(&identifier.value)
        .fetch_optional(&self.pool)
        .await?;
        Ok(holder.map(CustomerId))
    }

    /// The customer with `id`, with its identifiers (and its erasure, when erased).
    pub async fn get_customer(&self, id: CustomerId) -> ApiResult<Option<Customer>> {
        let row: Option<CustomerRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1")))
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let identifiers: Vec<(String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT kind, namespace, value FROM identifiers WHERE customer_id = $1 AND state = 'active' \
             ORDER BY {}",
            identifiers::HELD_ORDER
        )))
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(row.into_domain(identifiers)))
    }
}

impl CustomerRow {
    fn into_domain(self, identifiers: Vec<(String, String, String)>) -> Customer {
        let birth_date = match (self.birth_month, self.birth_day) {
            (Some(month), Some(day)) => {
                Some(BirthDate { year: self.birth_year.map(|y| y as u16), month: month as u8, day: day as u8 })
            }
            _ => None,
        };
        Customer {
            id: CustomerId(self.id),
            state: CustomerState::parse(&self.state),
            data: NewCustomer {
                kind: CustomerKind::parse(&self.kind).unwrap_or(CustomerKind::Person),
                roles: self.roles.iter().filter_map(|r| CustomerRole::parse(r)).collect(),
                display_name: self.display_name,
                given_name: self.given_name,
                family_name: self.family_name,
                preferred_name: self.preferred_name,
                organization_name: self.organization_name,
                birth_date,
                identifiers: identifiers
                    .into_iter()
                    .filter_map(|(kind, namespace, value)| {
                        IdentifierKind::parse(&kind).map(|kind| Identifier { kind, namespace, value })
                    })
                    .collect(),
                parent: self.parent_id.map(CustomerId),
                job_title: self.job_title,
                preferred_language: self.preferred_language,
                time_zone: self.time_zone,
                preferred_channel: self.preferred_channel,
            },
            merged_into: self.merged_into.map(CustomerId),
            erasure: self.erasure,
            version: self.version,
            create_time: self.create_time,
            update_time: self.update_time,
        }
    }
}

fn unique_violation_as_conflict(e: sqlx::Error, what: &str) -> ApiError {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => ApiError::AlreadyExists(what.to_owned()),
        _ => e.into(),
    }
}

/// A consent decision to append to the ledger, validated.
#[derive(Debug, Clone)]
pub struct NewConsent {
    /// Purpose.
    pub purpose: Purpose,
    /// Channel covered; `None` = every channel.
    pub channel: Option<Channel>,
    /// The decision.
    pub decision: Decision,
    /// Statement shown.
    pub purpose_statement: String,
    /// Statement version.
    pub statement_version: String,
    /// Source system.
    pub source: String,
    /// Channel the decision was captured through.
    pub captured_channel: Option<Channel>,
    /// Proof.
    pub evidence_reference: String,
    /// When the customer decided.
    pub observe_time: DateTime<Utc>,
    /// When a grant lapses.
    pub expire_time: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ConsentRow {
    id: i64,
    purpose: String,
    channel: String,
    status: String,
    purpose_statement: String,
    statement_version: String,
    source: String,
    captured_channel: String,
    evidence_reference: String,
    observe_time: DateTime<Utc>,
    expire_time: Option<DateTime<Utc>>,
    record_time: DateTime<Utc>,
    recorded_by: String,
}

impl ConsentRow {
    fn into_domain(self) -> Option<ConsentRecord> {
        Some(ConsentRecord {
            recorded: Recorded {
                id: self.id,
                purpose: Purpose::parse(&self.purpose)?,
                channel: Channel::parse(&self.channel),
                decision: if self.status == "granted" { Decision::Granted } else { Decision::Withdrawn },
                observe_time: self.observe_time,
                expire_time: self.expire_time,
            },
            purpose_statement: self.purpose_statement,
            statement_version: self.statement_version,
            source: self.source,
            captured_channel: Channel::parse(&self.captured_channel),
            evidence_reference: self.evidence_reference,
            record_time: self.record_time,
            recorded_by: self.recorded_by,
        })
    }
}

const CONSENT_COLUMNS: &str = "id, purpose, channel, status, purpose_statement, statement_version, source, \
     captured_channel, evidence_reference, observe_time, expire_time, record_time, recorded_by";

/// Resource name of a consent record.
pub fn consent_record_name(customer: CustomerId, id: i64) -> String {
    format!("{}/consentRecords/{id}", customer.resource_name())
}

impl Store {
    /// The active customer `id` designates: itself, or the survivor it was merged into.
    /// NOT_FOUND when unknown; FAILED_PRECONDITION when erased.
    pub async fn active_customer(&self, id: CustomerId) -> ApiResult<CustomerId> {
        let mut current = id;
        // Merge chains are short; the bound guards against a corrupted cycle.
        for _ in 0..32 {
            let row: Option<(String, Option<Uuid>)> =
                sqlx::query_as("SELECT state, merged_into FROM customers WHERE id = $1")
                    .bind(current.0)
                    .fetch_optional(&self.pool)
                    .await?;
            match row {
                None => return Err(ApiError::NotFound(current.resource_name())),
                Some((state, _)) if state == "erased" => {
                    return Err(ApiError::FailedPrecondition(format!("{} was erased", current.resource_name())));
                }
                Some((state, Some(survivor))) if state == "merged" => current = CustomerId(survivor),
                Some(_) => return Ok(current),
            }
        }
        Err(ApiError::Internal(anyhow::anyhow!("merge chain of {} too long", id.resource_name())))
    }

    /// Appends a consent record with its audit entry and `consent.changed` event, in one
    /// transaction. A retried request (same `request_id`) returns the first record.
    pub async fn record_consent(
        &self,
        customer: CustomerId,
        consent: &NewConsent,
        caller: &str,
        reason: &str,
        idempotency: Option<(&str, &[u8])>,
    ) -> ApiResult<ConsentRecord> {
        let mut tx = self.pool.begin().await?;
        if let Some((request_id, hash)) = idempotency
            && let idempotency::Claim::Replay(bytes) =
                idempotency::claim(&mut tx, "RecordConsent", request_id, hash).await?
        {
            let id = i64::from_be_bytes(bytes.try_into().map_err(|_| anyhow::anyhow!("stored response"))?);
            drop(tx);
            return self.consent_record(id).await;
        }
        lock_active(&mut tx, customer).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO consent_records (customer_id, purpose, channel, status, purpose_statement, statement_version, \
             source, captured_channel, evidence_reference, observe_time, expire_time, recorded_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        )
        .bind(customer.0)
        .bind(consent.purpose.as_str())
        .bind(consent.channel.map_or("", Channel::as_str))
        .bind(match consent.decision {
            Decision::Granted => "granted",
            Decision::Withdrawn => "withdrawn",
        })
        .bind(&consent.purpose_statement)
        .bind(&consent.statement_version)
        .bind(&consent.source)
        .bind(consent.captured_channel.map_or("", Channel::as_str))
        .bind(&consent.evidence_reference)
        .bind(consent.observe_time)
        .bind(consent.expire_time)
        .bind(caller)
        .fetch_one(&mut *tx)
        .await?;
        let records = consent_records_of(&mut tx, customer, Some(consent.purpose)).await?;
        let recorded: Vec<Recorded> = records.iter().map(|r| r.recorded.clone()).collect();
        let after = consent::effective(&recorded, consent.purpose, consent.channel, Utc::now());
        let name = consent_record_name(customer, id);
        let payload = crate::events::consent_changed(customer, &after, &name, consent.observe_time);
        idic_platform::events::enqueue(&mut tx, crate::events::CONSENT_CHANGED, &payload).await?;
        audit::record(
            &mut tx,
            AuditRecord {
                caller,
                action: "RecordConsent",
                resource: &customer.resource_name(),
                reason,
                detail: serde_json::json!({
                    "record": name,
                    "purpose": consent.purpose.as_str(),
                    "channel": consent.channel.map_or("all", Channel::as_str),
                    "status": if consent.decision == Decision::Granted { "granted" } else { "withdrawn" },
                    "allowed_after": after.allowed,
                }),
            },
        )
        .await?;
        if let Some((request_id, _)) = idempotency {
            idempotency::complete(&mut tx, "RecordConsent", request_id, &id.to_be_bytes()).await?;
        }
        tx.commit().await?;
        records
            .into_iter()
            .find(|r| r.recorded.id == id)
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("consent record {id} vanished")))
    }

    async fn consent_record(&self, id: i64) -> ApiResult<ConsentRecord> {
        let row: ConsentRow =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CONSENT_COLUMNS} FROM consent_records WHERE id = $1")))
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
        row.into_domain().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("unreadable consent record {id}")))
    }

    /// The consent records that decide a customer's consents: its own and those of the
    /// customers merged into it (a customer has few: one per decision).
    pub async fn consent_records(&self, customer: CustomerId) -> ApiResult<Vec<ConsentRecord>> {
        let mut conn = self.pool.acquire().await?;
        consent_records_of(&mut conn, customer, None).await
    }

    /// One page of a customer's ledger (with the ledgers of the customers merged into
    /// it), newest observed first, after `cursor`.
    pub async fn consent_history(
        &self,
        customer: CustomerId,
        purpose: Option<Purpose>,
        channel: Option<Channel>,
        period: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        cursor: Option<(DateTime<Utc>, i64)>,
        limit: i64,
    ) -> ApiResult<Vec<ConsentRecord>> {
        let (after_time, after_id) = cursor.map_or((None, None), |(t, i)| (Some(t), Some(i)));
        let rows: Vec<ConsentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CONSENT_COLUMNS} FROM consent_records \
             WHERE customer_id IN (SELECT merge_family($1)) AND ($2 = '' OR purpose = $2) AND ($3 = '' OR channel IN ($3, '')) \
               AND ($4::timestamptz IS NULL OR observe_time >= $4) AND ($5::timestamptz IS NULL OR observe_time < $5) \
               AND ($6::timestamptz IS NULL OR (observe_time, id) < ($6, $7)) \
             ORDER BY observe_time DESC, id DESC LIMIT $8"
        )))
        .bind(customer.0)
        .bind(purpose.map_or("", Purpose::as_str))
        .bind(channel.map_or("", Channel::as_str))
        .bind(period.0)
        .bind(period.1)
        .bind(after_time)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().filter_map(ConsentRow::into_domain).collect())
    }
}

/// The consent records of a customer and of the customers merged into it.
async fn consent_records_of(
    conn: &mut sqlx::PgConnection,
    customer: CustomerId,
    purpose: Option<Purpose>,
) -> ApiResult<Vec<ConsentRecord>> {
    let rows: Vec<ConsentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONSENT_COLUMNS} FROM consent_records \
         WHERE customer_id IN (SELECT merge_family($1)) AND ($2 = '' OR purpose = $2) \
         ORDER BY observe_time DESC, id DESC"
    )))
    .bind(customer.0)
    .bind(purpose.map_or("", Purpose::as_str))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().filter_map(ConsentRow::into_domain).collect())
}

/// Where and when facts were learnt, and whether that source is trusted.
#[derive(Debug, Clone)]
pub struct FactProvenance {
    /// Source system.
    pub source: String,
    /// Channel name as the API spells it, empty when none.
    pub channel: String,
    /// When observed.
    pub observe_time: DateTime<Utc>,
    /// Whether the source is trusted.
    pub trusted: bool,
}

#[derive(sqlx::FromRow)]
struct FactRow {
    id: i64,
    origin_customer_id: Uuid,
    key: String,
    value: serde_json::Value,
    source: String,
    channel: String,
    trusted: bool,
    observe_time: DateTime<Utc>,
    record_time: DateTime<Utc>,
    recorded_by: String,
}

impl FactRow {
    fn into_domain(self) -> Option<Fact> {
        Some(Fact {
            id: self.id,
            key: FactKey::parse(&self.key).ok()?,
            value: serde_json::from_value(self.value).ok()?,
            source: self.source,
            channel: self.channel,
            trusted: self.trusted,
            observe_time: self.observe_time,
            record_time: self.record_time,
            recorded_by: self.recorded_by,
            origin_customer: self.origin_customer_id,
        })
    }
}

const FACT_COLUMNS: &str = "id, origin_customer_id, key, value, source, channel, trusted, observe_time, record_time, \
     recorded_by";

/// Resource name of a profile fact.
pub fn fact_name(customer: CustomerId, id: i64) -> String {
    format!("{}/facts/{id}", customer.resource_name())
}

impl Store {
    /// Appends facts about `customer` in one transaction, updating the customer's field
    /// columns whose current value changed. A value whose type differs from the key's
    /// (fixed by its first value) is INVALID_ARGUMENT naming `facts[i].value`.
    /// Returns the stored facts in request order.
    pub async fn record_facts(
        &self,
        customer: CustomerId,
        facts: &[(FactKey, FactValue)],
        provenance: &FactProvenance,
        caller: &str,
        idempotency: Option<(&str, &[u8])>,
    ) -> ApiResult<Vec<Fact>> {
        let mut tx = self.pool.begin().await?;
        if let Some((request_id, hash)) = idempotency
            && let idempotency::Claim::Replay(bytes) =
                idempotency::claim(&mut tx, "RecordProfileFacts", request_id, hash).await?
        {
            let ids: Vec<i64> = serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("stored response: {e}"))?;
            drop(tx);
            return self.facts_by_id(&ids).await;
        }
        lock_active(&mut tx, customer).await?;
        let stored = append_facts(&mut tx, customer, facts, provenance, caller, |i, _, violations| {
            violations.into_iter().map(|v| v.under(&format!("facts[{i}]"))).collect()
        })
        .await?;
        if facts.iter().any(|(key, _)| key.field_type().is_some()) {
            touch_customer(&mut tx, customer).await?;
        }
        if let Some((request_id, _)) = idempotency {
            let ids: Vec<i64> = stored.iter().map(|f: &Fact| f.id).collect();
            let bytes = serde_json::to_vec(&ids).map_err(|e| anyhow::anyhow!("{e}"))?;
            idempotency::complete(&mut tx, "RecordProfileFacts", request_id, &bytes).await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn facts_by_id(&self, ids: &[i64]) -> ApiResult<Vec<Fact>> {
        let rows: Vec<FactRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {FACT_COLUMNS} FROM profile_facts WHERE id = ANY($1)")))
                .bind(ids)
                .fetch_all(&self.pool)
                .await?;
        let mut facts: Vec<Fact> = rows.into_iter().filter_map(FactRow::into_domain).collect();
        facts.sort_by_key(|f| ids.iter().position(|id| *id == f.id));
        Ok(facts)
    }

    /// One fact of a customer, with whether it is the key's current value.
    pub async fn fact(&self, customer: CustomerId, id: i64) -> ApiResult<Option<(Fact, bool)>> {
        let row: Option<FactRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {FACT_COLUMNS} FROM profile_facts WHERE id = $1 AND customer_id = $2"
        )))
        .bind(id)
        .bind(customer.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some(fact) = row.and_then(FactRow::into_domain) else { return Ok(None) };
        let mut conn = self.pool.acquire().await?;
        let history = facts_of_key(&mut conn, customer, &fact.key).await?;
        let is_current = facts::current(&history).is_some_and(|c| c.id == fact.id);
        Ok(Some((fact, is_current)))
    }

    /// Every fact of a customer whose key matches `key_filter` (exact, or a prefix when
    /// it ends with "."), newest observation first.
    pub async fn facts(&self, customer: CustomerId, key_filter: &str) -> ApiResult<Vec<Fact>> {
        let (exact, prefix) = match key_filter.strip_suffix('.') {
            Some(_) => ("", key_filter),
            None => (key_filter, ""),
        };
        let rows: Vec<FactRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {FACT_COLUMNS} FROM profile_facts WHERE customer_id = $1 \
             AND ($2 = '' OR key = $2) AND ($3 = '' OR starts_with(key, $3)) \
             ORDER BY observe_time DESC, id DESC"
        )))
        .bind(customer.0)
        .bind(exact)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().filter_map(FactRow::into_domain).collect())
    }
}

/// Inserts a customer with its identifiers and the facts it was created with. A
/// unique identifier held by another customer is ALREADY_EXISTS naming
/// `customer.identifiers[i]`; a blocked one INVALID_ARGUMENT.
async fn insert_customer(
    conn: &mut sqlx::PgConnection,
    customer: &NewCustomer,
    provenance: &FactProvenance,
    caller: &str,
) -> ApiResult<CustomerId> {
    let shared = Store::check_identifiers_free(&mut *conn, &customer.identifiers).await?;
    if let Some(parent) = customer.parent {
        check_active_organization(&mut *conn, parent).await?;
    }
    let id = CustomerId::generate();
    let birth = customer.birth_date;
    sqlx::query(
        "INSERT INTO customers (id, kind, roles, display_name, given_name, family_name, preferred_name, \
             organization_name, birth_year, birth_month, birth_day, parent_id, job_title, preferred_language, \
             time_zone, preferred_channel) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(id.0)
    .bind(customer.kind.as_str())
    .bind(customer.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>())
    .bind(&customer.display_name)
    .bind(&customer.given_name)
    .bind(&customer.family_name)
    .bind(&customer.preferred_name)
    .bind(&customer.organization_name)
    .bind(birth.and_then(|b| b.year).map(|y| y as i16))
    .bind(birth.map(|b| i16::from(b.month)))
    .bind(birth.map(|b| i16::from(b.day)))
    .bind(customer.parent.map(|p| p.0))
    .bind(&customer.job_title)
    .bind(&customer.preferred_language)
    .bind(&customer.time_zone)
    .bind(&customer.preferred_channel)
    .execute(&mut *conn)
    .await?;
    let kinds: Vec<&str> = customer.identifiers.iter().map(|i| i.kind.as_str()).collect();
    let namespaces: Vec<&str> = customer.identifiers.iter().map(|i| i.namespace.as_str()).collect();
    let values: Vec<&str> = customer.identifiers.iter().map(|i| i.value.as_str()).collect();
    sqlx::query(
        "INSERT INTO identifiers (customer_id, kind, namespace, value, shared, source, channel, observe_time, \
             last_seen_time) \
             SELECT $1, k, n, v, s, $6, $7, $8, $8 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bool[]) \
             AS t(k, n, v, s)",
    )
    .bind(id.0)
    .bind(&kinds)
    .bind(&namespaces)
    .bind(&values)
    .bind(&shared)
    .bind(&provenance.source)
    .bind(&provenance.channel)
    .bind(provenance.observe_time)
    .execute(&mut *conn)
    .await
    .map_err(|e| unique_violation_as_conflict(e, "an identifier is already held by another customer"))?;
    // What the customer was created with is recorded as facts, with its provenance.
    for (key, value) in field_facts(customer) {
        insert_fact(&mut *conn, id, &key, &value, provenance, caller).await?;
    }
    Ok(id)
}

/// Locks an active customer's row for the rest of the transaction, so that concurrent
/// writes about one customer (consent, facts) apply one after the other and each sees
/// the other's effect; a customer merged or erased meanwhile is refused.
async fn lock_active(tx: &mut sqlx::PgConnection, customer: CustomerId) -> ApiResult<()> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM customers WHERE id = $1 FOR UPDATE")
        .bind(customer.0)
        .fetch_optional(&mut *tx)
        .await?;
    match state.as_deref() {
        None => Err(ApiError::NotFound(customer.resource_name())),
        Some("active") => Ok(()),
        Some(state) => Err(ApiError::Aborted(format!("{} was {state} meanwhile; retry", customer.resource_name()))),
    }
}

/// A parent customer must be an active organisation: NOT_FOUND when unknown,
/// FAILED_PRECONDITION otherwise.
async fn check_active_organization(conn: &mut sqlx::PgConnection, parent: CustomerId) -> ApiResult<()> {
    let found: Option<(String, String)> = sqlx::query_as("SELECT kind, state FROM customers WHERE id = $1")
        .bind(parent.0)
        .fetch_optional(&mut *conn)
        .await?;
    match found {
        None => Err(ApiError::NotFound(parent.resource_name())),
        Some((kind, state)) if kind != "organization" || state != "active" => Err(ApiError::FailedPrecondition(
            format!("parent_customer {} is not an active organization", parent.resource_name()),
        )),
        Some(_) => Ok(()),
    }
}

/// Appends `facts` about `customer`, each checked against its key's type, then brings
/// the customer's field columns to the current values of the field keys among them: the
/// one path of recorded facts, whether sent as facts or as a customer update. A type
/// mismatch is INVALID_ARGUMENT with the violations `mismatch` makes of the checker's,
/// given the fact's position and key. Answers the stored facts in order.
async fn append_facts(
    tx: &mut sqlx::PgConnection,
    customer: CustomerId,
    facts: &[(FactKey, FactValue)],
    provenance: &FactProvenance,
    caller: &str,
    mismatch: impl Fn(usize, &FactKey, Vec<FieldViolation>) -> Vec<FieldViolation>,
) -> ApiResult<Vec<Fact>> {
    let mut stored = Vec::with_capacity(facts.len());
    for (i, (key, value)) in facts.iter().enumerate() {
        check_fact_type(tx, key, value).await.map_err(|e| match e {
            ApiError::InvalidArgument(violations) => ApiError::InvalidArgument(mismatch(i, key, violations)),
            e => e,
        })?;
        stored.push(insert_fact(tx, customer, key, value, provenance, caller).await?);
    }
    for key in facts.iter().map(|(key, _)| key).filter(|key| key.field_type().is_some()) {
        let history = facts_of_key(tx, customer, key).await?;
        let value = facts::current(&history).map(|f| f.value.clone()).unwrap_or(FactValue::Cleared);
        set_customer_field(tx, customer, key, &value).await?;
    }
    Ok(stored)
}

/// Marks a customer's record changed: a new version (its etag) and update time.
async fn touch_customer(tx: &mut sqlx::PgConnection, customer: CustomerId) -> ApiResult<()> {
    sqlx::query("UPDATE customers SET version = version + 1, update_time = now() WHERE id = $1")
        .bind(customer.0)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The customer fields of a new customer that hold a value, as facts.
fn field_facts(customer: &NewCustomer) -> Vec<(FactKey, FactValue)> {
    let texts = [
        ("given_name", &customer.given_name),
        ("family_name", &customer.family_name),
        ("display_name", &customer.display_name),
        ("preferred_name", &customer.preferred_name),
        ("organization_name", &customer.organization_name),
        ("job_title", &customer.job_title),
        ("preferred_language", &customer.preferred_language),
        ("time_zone", &customer.time_zone),
        ("preferred_channel", &customer.preferred_channel),
    ];
    let mut facts: Vec<(FactKey, FactValue)> = texts
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .filter_map(|(k, v)| Some((FactKey::parse(k).ok()?, FactValue::String(v.clone()))))
        .collect();
    if let (Some(date), Ok(key)) = (customer.birth_date, FactKey::parse("birth_date")) {
        facts.push((key, FactValue::Date(date)));
    }
    facts
}

/// The key's type is fixed by its first typed value (or by the customer field it names).
async fn check_fact_type(tx: &mut sqlx::PgConnection, key: &FactKey, value: &FactValue) -> ApiResult<()> {
    let Some(value_type) = value.value_type() else { return Ok(()) };
    let fixed = match key.field_type() {
        Some(t) => t,
        None => {
            let stored: String = sqlx::query_scalar(
                // DO UPDATE (a no-op write) returns the stored type even when a concurrent
                // request created the key first.
                "INSERT INTO fact_keys (key, value_type) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING value_type",
            )
            .bind(key.as_str())
            .bind(value_type.as_str())
            .fetch_one(&mut *tx)
            .await?;
            ValueType::parse(&stored).unwrap_or(value_type)
        }
    };
    if fixed != value_type {
        return Err(ApiError::invalid(
            "value",
            format!("{} holds {} values, not {}", key.as_str(), fixed.as_str(), value_type.as_str()),
        ));
    }
    Ok(())
}

async fn insert_fact(
    tx: &mut sqlx::PgConnection,
    customer: CustomerId,
    key: &FactKey,
    value: &FactValue,
    provenance: &FactProvenance,
    caller: &str,
) -> ApiResult<Fact> {
    let value_json = serde_json::to_value(value).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (id, record_time): (i64, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO profile_facts (customer_id, origin_customer_id, key, value, source, channel, trusted, \
         observe_time, recorded_by) VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8) RETURNING id, record_time",
    )
    .bind(customer.0)
    .bind(key.as_str())
    .bind(value_json)
    .bind(&provenance.source)
    .bind(&provenance.channel)
    .bind(provenance.trusted)
    .bind(provenance.observe_time)
    .bind(caller)
    .fetch_one(&mut *tx)
    .await?;
    Ok(Fact {
        id,
        key: key.clone(),
        value: value.clone(),
        source: provenance.source.clone(),
        channel: provenance.channel.clone(),
        trusted: provenance.trusted,
        observe_time: provenance.observe_time,
        record_time,
        recorded_by: caller.to_owned(),
        origin_customer: customer.0,
    })
}

async fn facts_of_key(conn: &mut sqlx::PgConnection, customer: CustomerId, key: &FactKey) -> ApiResult<Vec<Fact>> {
    let rows: Vec<FactRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {FACT_COLUMNS} FROM profile_facts WHERE customer_id = $1 AND key = $2"
    )))
    .bind(customer.0)
    .bind(key.as_str())
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().filter_map(FactRow::into_domain).collect())
}

/// Writes a field key's current value to its customers column.
async fn set_customer_field(
    tx: &mut sqlx::PgConnection,
    customer: CustomerId,
    key: &FactKey,
    value: &FactValue,
) -> ApiResult<()> {
    if key.as_str() == "birth_date" {
        let date = match value {
            FactValue::Date(d) => Some(*d),
            _ => None,
        };
        sqlx::query("UPDATE customers SET birth_year = $2, birth_month = $3, birth_day = $4 WHERE id = $1")
            .bind(customer.0)
            .bind(date.and_then(|d| d.year).map(|y| y as i16))
            .bind(date.map(|d| i16::from(d.month)))
            .bind(date.map(|d| i16::from(d.day)))
            .execute(&mut *tx)
            .await?;
        return Ok(());
    }
    let text = match value {
        FactValue::String(s) => s.as_str(),
        _ => "",
    };
    // The column is chosen from FIELD_KEYS only, never from caller input.
    let column = facts::FIELD_KEYS
        .iter()
        .map(|(k, _)| *k)
        .find(|k| *k == key.as_str())
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("{} is not a customer field", key.as_str())))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE customers SET {column} = $2 WHERE id = $1")))
        .bind(customer.0)
        .bind(text)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
