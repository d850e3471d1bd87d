//! SQL of the customer file as a whole and of field updates: listing customers in
//! creation order with keyset pages (for files of millions), and UpdateCustomer, whose
//! changed fields go through the profile-fact path so that history is kept.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use idic_platform::{ApiError, ApiResult, FieldViolation, idempotency};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{
    CUSTOMER_COLUMNS, CustomerRow, FactProvenance, Store, append_facts, check_active_organization,
    identifiers::HELD_ORDER, touch_customer,
};
use crate::domain::{
    Customer, CustomerId, CustomerKind, CustomerRole, CustomerState, NewCustomer,
    facts::{FactKey, FactValue},
};

/// Filters of ListCustomers, combined with AND.
#[derive(Debug, Clone)]
pub struct CustomerFilter {
    /// Only this kind.
    pub kind: Option<CustomerKind>,
    /// Only customers holding this role.
    pub role: Option<CustomerRole>,
    /// Only customers in this state.
    pub state: CustomerState,
    /// Only the contacts of this organisation.
    pub parent: Option<CustomerId>,
    /// Only customers updated at or after this time.
    pub updated_from: Option<DateTime<Utc>>,
    /// Only customers updated before this time.
    pub updated_before: Option<DateTime<Utc>>,
}

/// A change to a customer's fields, validated; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct CustomerUpdate {
    /// New roles, sorted and unique.
    pub roles: Option<Vec<CustomerRole>>,
    /// New parent organisation (`Some(None)` clears it).
    pub parent: Option<Option<CustomerId>>,
    /// New values of the fields kept as profile facts (`Cleared` clears one).
    pub fields: Vec<(FactKey, FactValue)>,
}

impl Store {
    /// One page of customers matching `filter`, oldest first (create time, then id),
    /// after the `(create_time, id)` cursor, with their held identifiers. The SQL holds
    /// only the filters in use, so that each combination gets a plan using its index.
    pub async fn list_customers(
        &self,
        filter: &CustomerFilter,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> ApiResult<Vec<Customer>> {
        let mut query =
            QueryBuilder::<Postgres>::new(format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE state = "));
        query.push_bind(state_str(filter.state));
        if let Some(kind) = filter.kind {
            query.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(role) = filter.role {
            // `roles <> '{}'` lets the planner use the partial index customers_by_roles.
            query.push(" AND roles <> '{}' AND roles @> ARRAY[").push_bind(role.as_str()).push("]::text[]");
        }
        if let Some(parent) = filter.parent {
            query.push(" AND parent_id = ").push_bind(parent.0);
        }
        if let Some(from) = filter.updated_from {
            query.push(" AND update_time >= ").push_bind(from);
        }
        if let Some(before) = filter.updated_before {
            query.push(" AND update_time < ").push_bind(before);
        }
        if let Some((time, id)) = after {
            query.push(" AND (create_time, id) > (").push_bind(time).push(", ").push_bind(id).push(")");
        }
        query.push(" ORDER BY create_time, id LIMIT ").push_bind(limit);
        let rows: Vec<CustomerRow> = query.build_query_as().fetch_all(&self.pool).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let held: Vec<(Uuid, String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT customer_id, kind, namespace, value FROM identifiers \
             WHERE customer_id = ANY($1) AND state = 'active' ORDER BY customer_id, {HELD_ORDER}"
        )))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        let mut by_customer: HashMap<Uuid, Vec<(String, String, String)>> = HashMap::new();
        for (customer, kind, namespace, value) in held {
            by_customer.entry(customer).or_default().push((kind, namespace, value));
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let identifiers = by_customer.remove(&row.id).unwrap_or_default();
                row.into_domain(identifiers)
            })
            .collect())
    }

    /// Applies `update` to an active customer in one transaction. Each field whose value
    /// changes is recorded as a profile fact with `provenance` (roles and parent under the
    /// keys `roles` and `parent_customer`), and the fields kept as facts take their
    /// current fact's value, exactly as RecordProfileFacts does. `etag`, when given, must
    /// be the record's (ABORTED otherwise); a MERGED or ERASED customer, or a parent that
    /// is not an active organisation or would make a cycle, is FAILED_PRECONDITION.
    pub async fn update_customer(
        &self,
        id: CustomerId,
        update: &CustomerUpdate,
        etag: Option<&str>,
        provenance: &FactProvenance,
        caller: &str,
        idempotency: Option<(&str, &[u8])>,
    ) -> ApiResult<()> {
        let mut tx = self.pool.begin().await?;
        if let Some((request_id, hash)) = idempotency
            && let idempotency::Claim::Replay(_) =
                idempotency::claim(&mut tx, "UpdateCustomer", request_id, hash).await?
        {
            return Ok(());
        }
        let row: Option<CustomerRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1 FOR UPDATE"
        )))
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let current = row.ok_or_else(|| ApiError::NotFound(id.resource_name()))?.into_domain(Vec::new());
        match current.state {
            CustomerState::Active => {}
            CustomerState::Merged => {
                let survivor = current.merged_into.map(|m| m.resource_name()).unwrap_or_default();
                return Err(ApiError::FailedPrecondition(format!(
                    "{} was merged into {survivor}: update the survivor",
                    id.resource_name()
                )));
            }
            CustomerState::Erased => {
                return Err(ApiError::FailedPrecondition(format!("{} was erased", id.resource_name())));
            }
        }
        // The etag customer_to_proto answers.
        if let Some(etag) = etag
            && etag != format!("v{}", current.version)
        {
            return Err(ApiError::Aborted(format!(
                "etag {etag:?} is stale: {} changed since it was read; read it again",
                id.resource_name()
            )));
        }
        let data = &current.data;
        let mut changed: Vec<(FactKey, FactValue)> =
            update.fields.iter().filter(|(key, value)| field_value(data, key) != *value).cloned().collect();
        if let Some(roles) = &update.roles {
            let mut before = data.roles.clone();
            before.sort();
            before.dedup();
            if *roles != before {
                sqlx::query("UPDATE customers SET roles = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(roles.iter().map(|r| r.as_str()).collect::<Vec<_>>())
                    .execute(&mut *tx)
                    .await?;
                let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                changed.push((fact_key("roles")?, FactValue::text(names.join(","))));
            }
        }
        if let Some(parent) = update.parent
            && parent != data.parent
        {
            if let Some(parent) = parent {
                check_parent(&mut tx, id, parent).await?;
            }
            sqlx::query("UPDATE customers SET parent_id = $2 WHERE id = $1")
                .bind(id.0)
                .bind(parent.map(|p| p.0))
                .execute(&mut *tx)
                .await?;
            let name = parent.map(|p| p.resource_name()).unwrap_or_default();
            changed.push((fact_key("parent_customer")?, FactValue::text(name)));
        }
        if !changed.is_empty() {
            append_facts(&mut tx, id, &changed, provenance, caller, |_, key, _| {
                vec![FieldViolation::new(
                    format!("customer.{}", key.as_str()),
                    format!("the profile fact {} holds values of another type", key.as_str()),
                )]
            })
            .await?;
            touch_customer(&mut tx, id).await?;
        }
        if let Some((request_id, _)) = idempotency {
            idempotency::complete(&mut tx, "UpdateCustomer", request_id, id.0.as_bytes()).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn state_str(state: CustomerState) -> &'static str {
    match state {
        CustomerState::Active => "active",
        CustomerState::Merged => "merged",
        CustomerState::Erased => "erased",
    }
}

fn fact_key(key: &str) -> ApiResult<FactKey> {
    FactKey::parse(key).map_err(|why| ApiError::Internal(anyhow::anyhow!("fact key {key}: {why}")))
}

/// The value a customer's field holds, as a fact value (`Cleared` when empty).
fn field_value(data: &NewCustomer, key: &FactKey) -> FactValue {
    let text = match key.as_str() {
        "birth_date" => return data.birth_date.map_or(FactValue::Cleared, FactValue::Date),
        "given_name" => &data.given_name,
        "family_name" => &data.family_name,
        "display_name" => &data.display_name,
        "preferred_name" => &data.preferred_name,
        "organization_name" => &data.organization_name,
        "job_title" => &data.job_title,
        "preferred_language" => &data.preferred_language,
        "time_zone" => &data.time_zone,
        "preferred_channel" => &data.preferred_channel,
        _ => "",
    };
    FactValue::text(text)
}

/// A parent must be another active organisation that does not descend from `customer`.
async fn check_parent(conn: &mut PgConnection, customer: CustomerId, parent: CustomerId) -> ApiResult<()> {
    if parent == customer {
        return Err(ApiError::FailedPrecondition("a customer cannot be its own parent_customer".into()));
    }
    check_active_organization(conn, parent).await?;
    // Chains of subsidiaries are short; the depth bound guards against an existing cycle.
    let cycle: bool = sqlx::query_scalar(
        "WITH RECURSIVE up (id, depth) AS ( \
             SELECT parent_id, 1 FROM customers WHERE id = $1 \
             UNION ALL SELECT c.parent_id, up.depth + 1 FROM customers c JOIN up ON c.id = up.id WHERE up.depth < 64) \
         SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)",
    )
    .bind(parent.0)
    .bind(customer.0)
    .fetch_one(&mut *conn)
    .await?;
    if cycle {
        return Err(ApiError::FailedPrecondition(format!(
            "parent_customer {} is a descendant of {}: that would make a cycle",
            parent.resource_name(),
            customer.resource_name()
        )));
    }
    Ok(())
}
