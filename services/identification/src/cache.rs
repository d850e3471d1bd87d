//! Redis keys of the identification service (cache-aside, invalidated on change):
//! `identification:customer:{id}` holds a customer profile, and
//! `identification:identifier:{kind}:{namespace}:{value}` the id of the customer
//! holding a normalised identifier; `identification:applied:{contact}` the customer
//! a contact (by its fingerprint) was last applied to, and when, for the refresh period.

use std::time::Duration;

use chrono::{DateTime, Utc};

use idic_platform::{cache::Cache, cache::Source, redis::Redis};

use crate::domain::{Customer, CustomerId, Identifier};

/// The customer profile cache.
#[derive(Debug, Clone)]
pub struct CustomerCache {
    customers: Cache,
    holders: Cache,
    applied: Cache,
    contact_refresh: chrono::TimeDelta,
}

impl CustomerCache {
    /// Profiles cached for `ttl`; applied contacts remembered for `contact_refresh`.
    pub fn new(redis: Redis, ttl: Duration, contact_refresh: Duration) -> Self {
        Self {
            customers: Cache::new(redis.clone(), "identification:customer", ttl),
            holders: Cache::new(redis.clone(), "identification:identifier", ttl),
            applied: Cache::new(redis, "identification:applied", contact_refresh),
            contact_refresh: chrono::TimeDelta::from_std(contact_refresh).unwrap_or(chrono::TimeDelta::MAX),
        }
    }

    /// The customer the contact with `fingerprint` was last applied to and when it was
    /// observed, if within the refresh period's wall-clock life of the mark. `None`
    /// when Redis does not answer: the caller then writes.
    pub async fn applied_contact(&self, fingerprint: &str) -> Option<(CustomerId, DateTime<Utc>)> {
        self.applied.get::<(CustomerId, DateTime<Utc>)>(fingerprint).await
    }

    /// Whether a contact observed at `observed` comes less than a refresh period after
    /// one observed at `applied`.
    pub fn within_refresh(&self, applied: DateTime<Utc>, observed: DateTime<Utc>) -> bool {
        observed < applied + self.contact_refresh
    }

    /// Remembers that the contact with `fingerprint`, observed at `observed`, was
    /// applied to `customer`.
    pub async fn mark_applied(&self, fingerprint: &str, customer: CustomerId, observed: DateTime<Utc>) {
        self.applied.put(fingerprint, &(customer, observed)).await;
    }

    /// The cached customer, or the loader's (then cached).
    pub async fn customer<E, F, Fut>(&self, id: CustomerId, load: F) -> Result<(Option<Customer>, Source), E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Customer>, E>>,
    {
        self.customers.get_or_load(&id.0.to_string(), load).await
    }

    /// The id of the customer holding `identifier`, cached, or the loader's.
    pub async fn holder<E, F, Fut>(&self, identifier: &Identifier, load: F) -> Result<Option<CustomerId>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<CustomerId>, E>>,
    {
        Ok(self.holders.get_or_load(&holder_key(identifier), load).await?.0)
    }

    /// Drops identifier holders from the cache after identifiers moved or were removed.
    pub async fn invalidate_holders(&self, identifiers: &[Identifier]) {
        let keys: Vec<String> = identifiers.iter().map(holder_key).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.holders.invalidate(&keys).await;
    }

    /// Drops customers from the cache after their records changed.
    pub async fn invalidate(&self, ids: &[CustomerId]) {
        let keys: Vec<String> = ids.iter().map(|id| id.0.to_string()).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.customers.invalidate(&keys).await;
    }
}

fn holder_key(identifier: &Identifier) -> String {
    format!("{}:{}:{}", identifier.kind.as_str(), identifier.namespace, identifier.value)
}
