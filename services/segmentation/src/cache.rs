//! The Redis keys segmentation owns: each customer's value (`segmentation:value:{id}`,
//! keyed by the id asked for, so a merged-away id is cached as its survivor's value).

use std::time::Duration;

use idic_platform::{cache::Cache, redis::Redis};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::value::{SpendRow, ValueRow};

/// Delay of the second invalidation, longer than a cache-miss load takes.
const SECOND_INVALIDATION: Duration = Duration::from_secs(1);

/// Everything GetCustomerValue answers from: the value row and the category spend facts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedValue {
    /// The survivor's value row.
    pub row: ValueRow,
    /// Its category spend facts.
    pub spends: Vec<SpendRow>,
}

/// Cache-aside over customer values.
#[derive(Debug, Clone)]
pub struct ValueCache {
    /// The namespace.
    pub values: Cache,
}

impl ValueCache {
    /// Values cached for `ttl`.
    pub fn new(redis: Redis, ttl: Duration) -> Self {
        Self { values: Cache::new(redis, "segmentation:value", ttl) }
    }

    /// Forgets the cached values of `customers` (after a commit that changed them), now and
    /// once more a moment later: a read that loaded the old row before the commit may put
    /// it back after the first invalidation, and must not keep it until the TTL ends.
    pub async fn invalidate(&self, customers: &[Uuid]) {
        let ids: Vec<String> = customers.iter().map(Uuid::to_string).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.values.invalidate(&refs).await;
        let values = self.values.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SECOND_INVALIDATION).await;
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            values.invalidate(&refs).await;
        });
    }
}
