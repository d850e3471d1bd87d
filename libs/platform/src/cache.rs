//! Cache-aside over Redis: read the cache, fall back to the loader (Postgres) on a miss
//! or when Redis is unreachable, fill the cache after a load, invalidate after writes.
//! Redis is never the only copy: every read works, slower, with Redis down.

use std::{future::Future, time::Duration};

use redis::AsyncCommands as _;
use serde::{Serialize, de::DeserializeOwned};

use crate::redis::Redis;

/// Where a cached read was answered from (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Found in Redis.
    Cache,
    /// Loaded from the store (a miss, or Redis unreachable).
    Store,
}

/// A cache namespace, e.g. `identification:customer`, with a TTL.
#[derive(Debug, Clone)]
pub struct Cache {
    redis: Redis,
    namespace: String,
    ttl: Duration,
}

impl Cache {
    /// A namespace of `redis` whose entries live `ttl`.
    pub fn new(redis: Redis, namespace: &str, ttl: Duration) -> Self {
        Self { redis, namespace: namespace.to_owned(), ttl }
    }

    fn key(&self, id: &str) -> String {
        self.redis.key(&format!("{}:{id}", self.namespace))
    }

    /// The cached value of `id`, or the loader's (cached for next time). `Ok(None)`
    /// when the loader finds nothing; absence is not cached.
    pub async fn get_or_load<T, E, F, Fut>(&self, id: &str, load: F) -> Result<(Option<T>, Source), E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        if let Some(value) = self.get(id).await {
            return Ok((Some(value), Source::Cache));
        }
        let loaded = load().await?;
        if let Some(value) = &loaded {
            self.put(id, value).await;
        }
        Ok((loaded, Source::Store))
    }

    /// Runs a Redis command unless Redis recently failed, bounded in time; a failure
    /// makes later calls skip Redis for a moment.
    async fn bounded<R>(&self, command: impl std::future::Future<Output = redis::RedisResult<R>>) -> Result<R, String> {
        if !self.redis.available() {
            return Err("skipped: redis failed recently".into());
        }
        let result = match tokio::time::timeout(self.redis.command_timeout(), command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        };
        if let Err(e) = &result {
            self.redis.mark_failed();
            note_unavailable(e);
        }
        result
    }

    /// The cached value of `id`, if Redis answers and holds a readable one.
    pub async fn get<T: DeserializeOwned>(&self, id: &str) -> Option<T> {
        let mut conn = self.redis.connection();
        match self.bounded(conn.get::<_, Option<Vec<u8>>>(self.key(id))).await {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(value) => Some(value),
                Err(e) => {
                    tracing::warn!(namespace = %self.namespace, error = %e, "unreadable cache entry; reloading");
                    None
                }
            },
            Ok(None) | Err(_) => None,
        }
    }

    /// The cached values of `ids`, in order, in one round trip: `None` for a miss, an
    /// unreadable entry, or every entry when Redis does not answer.
    pub async fn get_many<T: DeserializeOwned>(&self, ids: &[&str]) -> Vec<Option<T>> {
        if ids.is_empty() {
            return Vec::new();
        }
        let keys: Vec<String> = ids.iter().map(|id| self.key(id)).collect();
        let mut conn = self.redis.connection();
        let mut mget = redis::cmd("MGET");
        mget.arg(keys);
        match self.bounded(mget.query_async::<Vec<Option<Vec<u8>>>>(&mut conn)).await {
            Ok(values) if values.len() == ids.len() => {
                values.into_iter().map(|v| v.and_then(|bytes| serde_json::from_slice(&bytes).ok())).collect()
            }
            Ok(_) | Err(_) => ids.iter().map(|_| None).collect(),
        }
    }

    /// Stores `value` under `id` (best effort).
    pub async fn put<T: Serialize>(&self, id: &str, value: &T) {
        let Ok(bytes) = serde_json::to_vec(value) else { return };
        let mut conn = self.redis.connection();
        let _ = self.bounded(conn.set_ex::<_, _, ()>(self.key(id), bytes, self.ttl.as_secs().max(1))).await;
    }

    /// Removes `ids` from the cache. Call after the store's transaction committed.
    /// Failures are logged: the TTL bounds how long a missed invalidation can last.
    pub async fn invalidate(&self, ids: &[&str]) {
        if ids.is_empty() {
            return;
        }
        let keys: Vec<String> = ids.iter().map(|id| self.key(id)).collect();
        let mut conn = self.redis.connection();
        // Invalidation is attempted even right after a failure: a missed one serves stale
        // data until the TTL ends.
        let deleted = tokio::time::timeout(self.redis.command_timeout(), conn.del::<_, ()>(keys)).await;
        if !matches!(deleted, Ok(Ok(()))) {
            self.redis.mark_failed();
            tracing::warn!(namespace = %self.namespace, "cache invalidation failed; entries expire by TTL");
        }
    }
}

fn note_unavailable(e: &str) {
    metrics::counter!("idic_cache_errors_total").increment(1);
    tracing::debug!(error = %e, "redis unavailable; serving from the store");
}
