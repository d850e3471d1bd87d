//! The Redis keys interaction owns: the answers of identification to "who is this
//! customer reference?" (an id to its current customer, a set of identifiers to the
//! customer holding them), so that high-volume ingest does not call identification per
//! row. Entries expire after a few minutes; merges and erasures also drop the entries of
//! the customer ids involved, and writes re-check merges and erasures in Postgres.

use std::time::Duration;

use idic_platform::{cache::Cache, redis::Redis};
use uuid::Uuid;

/// How long a resolution is cached.
pub const RESOLUTION_TTL: Duration = Duration::from_secs(300);

/// Resolved customer references, under `interaction:resolved:{reference key}`.
#[derive(Debug, Clone)]
pub struct ResolutionCache {
    cache: Cache,
}

impl ResolutionCache {
    /// The cache in `redis`.
    pub fn new(redis: Redis) -> Self {
        Self { cache: Cache::new(redis, "interaction:resolved", RESOLUTION_TTL) }
    }

    /// The cached customers of `keys`, in order.
    pub async fn get_many(&self, keys: &[&str]) -> Vec<Option<Uuid>> {
        self.cache.get_many(keys).await
    }

    /// Remembers that `key` designates `customer`.
    pub async fn put(&self, key: &str, customer: Uuid) {
        self.cache.put(key, &customer).await;
    }

    /// Forgets the resolutions of these customer ids (after a merge or an erasure).
    pub async fn forget_ids(&self, ids: &[Uuid]) {
        let keys: Vec<String> = ids.iter().map(|id| id_key(*id)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.cache.invalidate(&keys).await;
    }
}

/// The cache key of a reference by customer id.
pub fn id_key(id: Uuid) -> String {
    format!("id:{id}")
}
