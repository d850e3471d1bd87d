//! Segmentation service: differentiates customers by value (RFM, CLV, tiers) and by needs (clusters, segments).
//!
//! Layers: [`api`] (gRPC edge), [`domain`] (pure models), [`store`] (its SQL, schema
//! `segmentation`), [`cache`] (its Redis keys), [`events`] (what it consumes and publishes),
//! [`rescoring`] (the rescoring job), [`settings`] (the value settings singleton).

pub mod api;
pub mod cache;
pub mod clustering;
pub mod domain;
pub mod events;
pub mod membership;
pub mod rescoring;
pub mod settings;
pub mod store;

use std::time::Duration;

use idic_platform::{
    db,
    events::{Consumer, Delivery, OutboxRelay},
    jobs::Jobs,
    runtime::ServiceContext,
};
use idic_proto::segmentation::v1::segmentation_service_server::SegmentationServiceServer;

/// The Postgres schema this service owns.
pub const SCHEMA: &str = "segmentation";

/// The service's migrations (3000–3099 value, 3100–3199 segments; the platform's come first).
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a customer's value stays cached; events and rescorings invalidate it sooner.
const VALUE_CACHE_TTL: Duration = Duration::from_secs(600);

/// How often segments whose rules depend on the date are re-evaluated.
const TIME_RULE_SWEEP: Duration = Duration::from_secs(3600);

/// The running service: its gRPC server, ready to be added to a process.
pub struct Segmentation {
    /// The tonic service to serve.
    pub server: SegmentationServiceServer<api::SegmentationApi>,
}

impl Segmentation {
    /// Connects to the service's schema and builds the gRPC service.
    /// Migrations are applied first (idempotent), so a new schema is usable at once.
    pub async fn start(ctx: &ServiceContext) -> anyhow::Result<Self> {
        let pool = db::connect(&ctx.database, SCHEMA).await?;
        db::migrate(&pool, &MIGRATIONS).await?;
        let cache = cache::ValueCache::new(ctx.redis.clone(), VALUE_CACHE_TTL);
        // Tier changes and erasure confirmations reach their streams through this relay.
        let relay = OutboxRelay::new(pool.clone(), ctx.redis.clone(), events::SERVICE);
        tokio::spawn(relay.run(ctx.shutdown.clone()));
        tokio::spawn(db::keep_statistics(pool.clone(), ctx.shutdown.clone()));
        let segments = membership::Memberships::new(pool.clone(), Jobs::new(pool.clone()), ctx.redis.clone());
        tokio::spawn(segments.clone().sweep_periodically(TIME_RULE_SWEEP, ctx.shutdown.clone()));
        let handlers = events::Handlers { pool: pool.clone(), cache: cache.clone(), segments: segments.clone() };
        let consume = |stream: &str| Consumer::new(ctx.redis.clone(), stream, events::SERVICE, &ctx.instance);
        let h = handlers.clone();
        let recorded = move |d: Delivery| {
            let h = h.clone();
            async move { h.interaction_recorded(&d.payload).await }
        };
        tokio::spawn(consume(events::INTERACTION_RECORDED).run(recorded, ctx.shutdown.clone()));
        let h = handlers.clone();
        let merged = move |d: Delivery| {
            let h = h.clone();
            async move { h.customer_merged(&d.event_id, &d.payload).await }
        };
        tokio::spawn(consume(events::CUSTOMER_MERGED).run(merged, ctx.shutdown.clone()));
        let h = handlers;
        let erased = move |d: Delivery| {
            let h = h.clone();
            async move { h.customer_erased(&d.event_id, &d.payload).await }
        };
        tokio::spawn(consume(events::CUSTOMER_ERASED).run(erased, ctx.shutdown.clone()));
        let api = api::SegmentationApi::new(Jobs::new(pool.clone()), pool, cache, segments);
        Ok(Self { server: SegmentationServiceServer::new(api) })
    }
}

/// Applies the platform's and this service's migrations to its schema.
pub async fn migrate(database: &idic_platform::config::DatabaseConfig) -> anyhow::Result<()> {
    let pool = db::connect(database, SCHEMA).await?;
    db::migrate(&pool, &MIGRATIONS).await?;
    pool.close().await;
    Ok(())
}
