//! Identification service: step 1 of one-to-one marketing. Keeps one clean, consented
//! record per customer across every channel: customers, normalised identifiers,
//! the consent ledger, and (as they land) profile facts, resolution, merges and erasure.
//!
//! Layers: [`api`] (gRPC edge), [`domain`] (pure rules), [`store`] (its SQL, schema
//! `identification`), [`cache`] (its Redis keys), [`events`] (what it publishes).

pub mod api;
pub mod cache;
pub mod domain;
pub mod events;
pub mod store;

use std::time::Duration;

use confique::Config;
use idic_platform::{db, events::OutboxRelay, jobs::Jobs, runtime::ServiceContext};
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
        let cache = cache::CustomerCache::new(ctx.redis.clone(), Duration::from_secs(config.cache_ttl_secs));
        // Events written to the outbox reach their Redis streams through this relay.
        let relay = OutboxRelay::new(pool.clone(), ctx.redis.clone(), "identification");
        tokio::spawn(relay.run(ctx.shutdown.clone()));
        let api = api::IdentificationApi::new(store, cache, Jobs::new(pool), config.clone());
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
