//! Redis keys of the identification service (cache-aside, invalidated on change):
//! `identification:customer:{id}` holds a customer profile, and
//! `identification:identifier:{kind}:{namespace}:{value}` the id of the customer
//! holding a normalised identifier.

use std::time::Duration;

use idic_platform::{cache::Cache, cache::Source, redis::Redis};

use crate::domain::{Customer, CustomerId, Identifier};

/// The customer profile cache.
#[derive(Debug, Clone)]
pub struct CustomerCache {
    customers: Cache,
    holders: Cache,
}

impl CustomerCache {
    /// Profiles cached for `ttl`.
    pub fn new(redis: Redis, ttl: Duration) -> Self {
        Self {
            customers: Cache::new(redis.clone(), "identification:customer", ttl),
            holders: Cache::new(redis, "identification:identifier", ttl),
        }
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
