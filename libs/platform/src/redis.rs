//! The Redis connection every service shares: one auto-reconnecting multiplexed
//! connection, created lazily so a process starts (and serves from Postgres) while
//! Redis is down, with short timeouts so a dead Redis never stalls a request.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::RedisConfig;

/// A handle to Redis with the deployment's key prefix. Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    connection: ConnectionManager,
    client: redis::Client,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    /// Until when (ms since process start) callers skip Redis after a failure.
    skip_until_ms: Arc<AtomicU64>,
}

/// After a failed command, Redis is skipped this long: with Redis down, requests go
/// straight to Postgres instead of each waiting for a reconnect attempt.
const SKIP_AFTER_FAILURE: Duration = Duration::from_secs(2);

fn process_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Redis {
    /// A lazily connecting handle; fails only on an invalid URL.
    pub fn new(config: &RedisConfig) -> anyhow::Result<Self> {
        let client = redis::Client::open(config.url.as_str()).map_err(|e| anyhow::anyhow!("redis.url: {e}"))?;
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        let response_timeout = Duration::from_millis(config.response_timeout_ms);
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(Duration::from_millis(config.response_timeout_ms)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)?;
        Ok(Self {
            connection,
            client,
            prefix: config.key_prefix.clone(),
            connect_timeout,
            response_timeout,
            skip_until_ms: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The shared multiplexed connection (for short, non-blocking commands).
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// A dedicated connection for blocking commands (`XREADGROUP BLOCK`), whose
    /// response timeout exceeds the blocking time.
    pub fn dedicated(&self, response_timeout: Duration) -> anyhow::Result<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(response_timeout))
            .set_number_of_retries(1);
        Ok(ConnectionManager::new_lazy_with_config(self.client.clone(), config)?)
    }

    /// Whether Redis is worth asking now (no failure in the last two seconds).
    pub fn available(&self) -> bool {
        process_ms() >= self.skip_until_ms.load(Ordering::Relaxed)
    }

    /// Records a failed command: callers skip Redis for a short while.
    pub fn mark_failed(&self) {
        let until = process_ms() + SKIP_AFTER_FAILURE.as_millis() as u64;
        self.skip_until_ms.store(until, Ordering::Relaxed);
    }

    /// The longest a cache command may take, reconnection included.
    pub fn command_timeout(&self) -> Duration {
        self.response_timeout + self.connect_timeout
    }

    /// `key` with the deployment's prefix.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The deployment's key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Deletes every key under the prefix (tests clean up with this).
    pub async fn delete_prefix(&self) -> redis::RedisResult<u64> {
        let mut conn = self.connection();
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                deleted += redis::cmd("DEL").arg(&keys).query_async::<u64>(&mut conn).await?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

fn glob_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '*' | '?' | '[' | ']' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}
