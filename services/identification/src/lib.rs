//! Identification service: step 1 of one-to-one marketing. Keeps one clean, consented
//! record per customer across every channel: customers, normalised identifiers,
//! the consent ledger, and (as they land) profile facts, resolution, merges and erasure.
//!
//! Layers: [`api`] (gRPC edge), [`domain`] (pure rules), [`store`] (its SQL, schema
//! `identification`), [`cache`] (its Redis keys), [`events`] (what it publishes).

pub mod api;
pub mod cache;
pub mod contact_locks;
pub mod domain;
pub mod events;
pub mod match_index;
pub mod store;

use std::time::Duration;

use confique::Config;
use idic_platform::{
    db,
    events::{Consumer, Delivery, OutboxRelay},
    jobs::Jobs,
    runtime::ServiceContext,
};
use idic_proto::identification::v1::identification_service_server::IdentificationServiceServer;

/// The Postgres schema this service owns.
pub const SCHEMA: &str = "identification";

/// The service's migrations (versions from 1000; the platform's come first).
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Settings of the identification service (`[identification]` in the config file).
#[derive(Debug, Clone, Config)]
pub struct IdentificationConfig {
    /// How long a customer profile stays in the Redis cache, in seconds.
    #[config(env = "IDIC_IDENTIFICATION_CACHE_TTL_SECS", default = 300)]
    pub cache_ttl_secs: u64,
    /// Source prefixes whose facts are untrusted (bought or partner lists): their values
    /// become current only while no trusted value exists. Comma-separated in the env.
    #[config(
        env = "IDIC_IDENTIFICATION_UNTRUSTED_SOURCE_PREFIXES",
        parse_env = confique::env::parse::list_by_comma,
        default = ["list:"]
    )]
    pub untrusted_source_prefixes: Vec<String>,
    /// Days NextQuestions waits before asking again for a fact the customer declined.
    #[config(env = "IDIC_IDENTIFICATION_QUESTION_COOL_DOWN_DAYS", default = 90)]
    pub question_cool_down_days: u32,
    /// Most identifiers of each kind one customer may hold at once.
    #[config(nested)]
    pub identifier_limits: IdentifierLimits,
    /// The key of the keyed hashes (HMAC-SHA256) that erasure keeps of erased
    /// identifiers: 32 to 64 bytes, e.g. the 64 characters of `openssl rand -hex 32`. A
    /// secret (never logged): prefer `erasure_hash_key_file`. It must never change, since
    /// a hash made with another key proves nothing. With neither set, a key generated
    /// once in the database is used: stable, but kept beside the hashes it protects.
    #[config(env = "IDIC_IDENTIFICATION_ERASURE_HASH_KEY")]
    pub erasure_hash_key: Option<Secret>,
    /// A file holding the erasure hash key (e.g. a mounted Kubernetes Secret); trailing
    /// line breaks are ignored. Wins over `erasure_hash_key`.
    #[config(env = "IDIC_IDENTIFICATION_ERASURE_HASH_KEY_FILE")]
    pub erasure_hash_key_file: Option<std::path::PathBuf>,
    /// Match probability (0–1) at or above which ResolveCustomer and imports link a
    /// contact to an existing customer, and cleansing merges a pair.
    #[config(env = "IDIC_IDENTIFICATION_AUTO_LINK_PROBABILITY", default = 0.9)]
    pub auto_link_probability: f64,
    /// Match probability (0–1) at or above which (and below the auto-link threshold) a
    /// pair is filed for review.
    #[config(env = "IDIC_IDENTIFICATION_REVIEW_PROBABILITY", default = 0.5)]
    pub review_probability: f64,
    /// Seconds during which a contact repeating one already applied (same customer,
    /// same identifiers, names, source and channel) is answered without writing: its
    /// identifiers' last-seen times are refreshed at most once per this period.
    #[config(env = "IDIC_IDENTIFICATION_CONTACT_REFRESH_SECS", default = 3600)]
    pub contact_refresh_secs: u64,
}

impl IdentificationConfig {
    /// The configured erasure hash key (read from its file when one is set), or `None`
    /// when neither setting is.
    pub async fn erasure_hash_key(&self) -> anyhow::Result<Option<Vec<u8>>> {
        if let Some(path) = &self.erasure_hash_key_file {
            let mut key = tokio::fs::read(path)
                .await
                .map_err(|e| anyhow::anyhow!("identification.erasure_hash_key_file {}: {e}", path.display()))?;
            while key.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
                key.pop();
            }
            return Ok(Some(key));
        }
        Ok(self.erasure_hash_key.as_ref().map(|k| k.0.as_bytes().to_vec()))
    }
}

/// A secret setting: its value is never shown by `Debug` (logs, error reports).
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Most identifiers of each kind one customer holds (`[identification.identifier_limits]`).
/// Adding one beyond its kind's limit retires the held one of lowest priority (ties:
/// least recently seen) to history; national ids are never replaced (the add is refused).
/// 0 refuses the kind altogether.
#[derive(Debug, Clone, Config)]
pub struct IdentifierLimits {
    /// Email addresses.
    #[config(env = "IDIC_IDENTIFICATION_IDENTIFIER_LIMITS_EMAIL", default = 5)]
    pub email: u16,
    /// Telephone numbers.
    #[config(env = "IDIC_IDENTIFICATION_IDENTIFIER_LIMITS_PHONE", default = 5)]
    pub phone: u16,
    /// Postal addresses.
    #[config(env = "IDIC_IDENTIFICATION_IDENTIFIER_LIMITS_POSTAL_ADDRESS", default = 3)]
    pub postal_address: u16,
    /// Loyalty card numbers.
    #[config(env = "IDIC_IDENTIFICATION_IDENTIFIER_LIMITS_LOYALTY_CARD", default = 5)]
    pub loyalty_card: u16,
    /// Bank or customer account numbers.
    #[config(env = "IDIC_IDENTIFICATION_IDENTIFIER_LIMITS_ACCOUNT_NUMBER", default = 10)]
    pub account_number: u16,
    /// Device or cookie ids.
    #[config(env = "IDIC_IDENTIFICATION_IDENTIFIER_LIMITS_DEVICE_ID", default = 20)]
    pub device_id: u16,
    /// National identity numbers.
    #[config(env = "IDIC_IDENTIFICATION_IDENTIFIER_LIMITS_NATIONAL_ID", default = 1)]
    pub national_id: u16,
    /// Ids in external systems (all namespaces together).
    #[config(env = "IDIC_IDENTIFICATION_IDENTIFIER_LIMITS_EXTERNAL_ID", default = 20)]
    pub external_id: u16,
}

impl IdentifierLimits {
    /// The limit of `kind`.
    pub fn of(&self, kind: domain::IdentifierKind) -> usize {
        use domain::IdentifierKind as K;
        usize::from(match kind {
            K::Email => self.email,
            K::Phone => self.phone,
            K::PostalAddress => self.postal_address,
            K::LoyaltyCard => self.loyalty_card,
            K::AccountNumber => self.account_number,
            K::DeviceId => self.device_id,
            K::NationalId => self.national_id,
            K::ExternalId => self.external_id,
        })
    }
}

/// The running service: its gRPC server, ready to be added to a process.
pub struct Identification {
    /// The tonic service to serve.
    pub server: IdentificationServiceServer<api::IdentificationApi>,
}

impl Identification {
    /// Connects to the service's schema and builds the gRPC service. Migrations are
    /// not run here: see [`migrate`].
    pub async fn start(ctx: &ServiceContext, config: &IdentificationConfig) -> anyhow::Result<Self> {
        let pool = db::connect(&ctx.database, SCHEMA).await?;
        let store = store::Store::new(pool.clone());
        let cache = cache::CustomerCache::new(
            ctx.redis.clone(),
            Duration::from_secs(config.cache_ttl_secs),
            Duration::from_secs(config.contact_refresh_secs),
        );
        // Events written to the outbox reach their Redis streams through this relay.
        let relay = OutboxRelay::new(pool.clone(), ctx.redis.clone(), "identification");
        tokio::spawn(relay.run(ctx.shutdown.clone()));
        tokio::spawn(idic_platform::idempotency::prune_periodically(pool.clone(), ctx.shutdown.clone()));
        tokio::spawn(db::keep_statistics(pool.clone(), ctx.shutdown.clone()));
        // A configured erasure hash key must be usable: found out now, not at an erasure.
        if let Some(key) = config.erasure_hash_key().await? {
            store::erasure::ErasureKey::new(&key)
                .map_err(|why| anyhow::anyhow!("identification.erasure_hash_key {why}"))?;
        }
        // The other services confirm erasures on their stream; receipts complete from it.
        let confirmations =
            Consumer::new(ctx.redis.clone(), events::ERASURE_CONFIRMED, "identification", &ctx.instance);
        let confirming = store.clone();
        let apply = move |delivery: Delivery| {
            let store = confirming.clone();
            async move { events::apply_erasure_confirmed(&store, &delivery.payload).await }
        };
        tokio::spawn(confirmations.run(apply, ctx.shutdown.clone()));
        let (link, review) = (config.auto_link_probability, config.review_probability);
        if !(0.0..=1.0).contains(&link) || !(0.0..=link).contains(&review) {
            anyhow::bail!(
                "identification.auto_link_probability and review_probability must be probabilities, review ≤ auto-link"
            );
        }
        // The matcher holds every active person in memory: loaded and fitted before serving.
        let started = std::time::Instant::now();
        let (index, fit) = match_index::MatchIndex::load(store.clone()).await?;
        tracing::info!(
            customers = index.len(),
            fitted = fit.is_some(),
            seconds = started.elapsed().as_secs_f64(),
            "match index loaded"
        );
        tokio::spawn(index.clone().follow_changes(pool.clone(), ctx.shutdown.clone()));
        let api = api::IdentificationApi::new(store, cache, Jobs::new(pool), index, config.clone());
        Ok(Self { server: IdentificationServiceServer::new(api) })
    }
}

/// Applies the platform's and this service's migrations to its schema.
pub async fn migrate(database: &idic_platform::config::DatabaseConfig) -> anyhow::Result<()> {
    let pool = db::connect(database, SCHEMA).await?;
    db::migrate(&pool, &MIGRATIONS).await?;
    pool.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::matching::engine::DedupThresholds;

    /// The thresholds the service uses by default are the ones the accuracy was measured at.
    #[test]
    fn default_thresholds_are_the_matchers() {
        let config = IdentificationConfig::builder().load().expect("defaults load");
        let measured = DedupThresholds::default();
        assert_eq!(config.auto_link_probability, measured.link);
        assert_eq!(config.review_probability, measured.review);
    }
}
