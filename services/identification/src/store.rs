//! SQL of the identification schema: customers and their identifiers.

use chrono::{DateTime, Utc};
use idic_platform::{ApiError, ApiResult, FieldViolation, idempotency};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::{
    BirthDate, Customer, CustomerId, CustomerKind, CustomerRole, CustomerState, Identifier, IdentifierKind, NewCustomer,
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
    version: i64,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
}

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
        source: &str,
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
        self.check_identifiers_free(&mut tx, &customer.identifiers).await?;
        if let Some(parent) = customer.parent {
            let kind: Option<(String, String)> = sqlx::query_as("SELECT kind, state FROM customers WHERE id = $1")
                .bind(parent.0)
                .fetch_optional(&mut *tx)
                .await?;
            match kind {
                None => return Err(ApiError::NotFound(parent.resource_name())),
                Some((kind, state)) if kind != "organization" || state != "active" => {
                    return Err(ApiError::FailedPrecondition(format!(
                        "parent_customer {} is not an active organization",
                        parent.resource_name()
                    )));
                }
                Some(_) => {}
            }
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
        .execute(&mut *tx)
        .await?;
        let kinds: Vec<&str> = customer.identifiers.iter().map(|i| i.kind.as_str()).collect();
        let namespaces: Vec<&str> = customer.identifiers.iter().map(|i| i.namespace.as_str()).collect();
        let values: Vec<&str> = customer.identifiers.iter().map(|i| i.value.as_str()).collect();
        sqlx::query(
            "INSERT INTO identifiers (customer_id, kind, namespace, value, source) \
             SELECT $1, k, n, v, $5 FROM UNNEST($2::text[], $3::text[], $4::text[]) AS t(k, n, v)",
        )
        .bind(id.0)
        .bind(&kinds)
        .bind(&namespaces)
        .bind(&values)
        .bind(source)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation_as_conflict(e, "an identifier is already held by another customer"))?;
        if let Some((request_id, _)) = idempotency {
            idempotency::complete(&mut tx, "CreateCustomer", request_id, id.0.as_bytes()).await?;
        }
        tx.commit().await?;
        Ok(Created::New(id))
    }

    async fn check_identifiers_free(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        identifiers: &[Identifier],
    ) -> ApiResult<()> {
        let unique: Vec<(usize, &Identifier)> =
            identifiers.iter().enumerate().filter(|(_, i)| i.kind != IdentifierKind::PostalAddress).collect();
        if unique.is_empty() {
            return Ok(());
        }
        let kinds: Vec<&str> = unique.iter().map(|(_, i)| i.kind.as_str()).collect();
        let namespaces: Vec<&str> = unique.iter().map(|(_, i)| i.namespace.as_str()).collect();
        let values: Vec<&str> = unique.iter().map(|(_, i)| i.value.as_str()).collect();
        let taken: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT i.kind, i.namespace, i.value FROM identifiers i \
             JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS t(k, n, v) \
               ON i.kind = t.k AND i.namespace = t.n AND i.value = t.v",
        )
        .bind(&kinds)
        .bind(&namespaces)
        .bind(&values)
        .fetch_all(&mut **tx)
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
        Ok(())
    }

    /// The customer with `id`, with its identifiers.
    pub async fn get_customer(&self, id: CustomerId) -> ApiResult<Option<Customer>> {
        let row: Option<CustomerRow> = sqlx::query_as(
            "SELECT id, kind, state, roles, display_name, given_name, family_name, preferred_name, \
             organization_name, birth_year, birth_month, birth_day, parent_id, job_title, preferred_language, \
             time_zone, preferred_channel, merged_into, version, create_time, update_time \
             FROM customers WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let identifiers: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT kind, namespace, value FROM identifiers WHERE customer_id = $1 \
             ORDER BY kind, priority DESC, add_time",
        )
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
