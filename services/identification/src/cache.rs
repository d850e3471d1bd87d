//! Redis keys of the identification service: `identification:customer:{id}` holds a
//! customer profile (cache-aside, invalidated on change).

use std::time::Duration;

use idic_platform::{cache::Cache, cache::Source, redis::Redis};

use crate::domain::{Customer, CustomerId};

/// The customer profile cache.
#[derive(Debug, Clone)]
pub struct CustomerCache {
    customers: Cache,
}

impl CustomerCache {
    /// Profiles cached for `ttl`.
    pub fn new(redis: Redis, ttl: Duration) -> Self {
        Self { customers: Cache::new(redis, "identification:customer", ttl) }
    }

    /// The cached customer, or the loader's (then cached).
    pub async fn customer<E, F, Fut>(&self, id: CustomerId, load: F) -> Result<(Option<Customer>, Source), E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Customer>, E>>,
    {
        self.customers.get_or_load(&id.0.to_string(), load).await
    }

    /// Drops customers from the cache after their records changed.
    pub async fn invalidate(&self, ids: &[CustomerId]) {
        let keys: Vec<String> = ids.iter().map(|id| id.0.to_string()).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.customers.invalidate(&keys).await;
    }
}
