//! Customization service: tailors products, recommendations, offers and messages to each customer, with campaigns measured against control groups.
//!
//! Layers: [`api`] (gRPC edge), [`domain`] (pure catalog, configurator and recommender logic),
//! [`store`] (its SQL, schema `customization`), [`events`] (what it consumes and publishes),
//! [`recommendations`] (the recommender model each replica serves from). The contract is
//! complete in `proto/idic/customization/v1`; RPCs not yet built answer UNIMPLEMENTED.

pub mod api;
pub mod domain;
pub mod events;
pub mod recommendations;
pub mod store;

use idic_platform::{
    customers::{Customers, ResolutionCache},
    db,
    events::{Consumer, Delivery, OutboxRelay},
    jobs::Jobs,
    runtime::ServiceContext,
};
use idic_proto::customization::v1::customization_service_server::CustomizationServiceServer;

/// The Postgres schema this service owns.
pub const SCHEMA: &str = "customization";

/// The service's migrations (4000–4099; the platform's come first).
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The running service: its gRPC server, ready to be added to a process.
pub struct Customization {
    /// The tonic service to serve.
    pub server: CustomizationServiceServer<api::CustomizationApi>,
}

impl Customization {
    /// Connects to the service's schema and builds the gRPC service.
    /// Migrations are applied first (idempotent), so a new schema is usable at once.
    pub async fn start(ctx: &ServiceContext) -> anyhow::Result<Self> {
        let pool = db::connect(&ctx.database, SCHEMA).await?;
        db::migrate(&pool, &MIGRATIONS).await?;
        tokio::spawn(db::keep_statistics(pool.clone(), ctx.shutdown.clone()));
        tokio::spawn(idic_platform::idempotency::prune_periodically(pool.clone(), ctx.shutdown.clone()));
        // Erasure confirmations reach their stream through this relay.
        tokio::spawn(OutboxRelay::new(pool.clone(), ctx.redis.clone(), events::SERVICE).run(ctx.shutdown.clone()));
        let consume = |stream: &str| Consumer::new(ctx.redis.clone(), stream, events::SERVICE, &ctx.instance);
        let p = pool.clone();
        let recorded = move |d: Delivery| {
            let p = p.clone();
            async move { events::interaction_recorded(&p, &d.payload).await }
        };
        tokio::spawn(consume(events::INTERACTION_RECORDED).run(recorded, ctx.shutdown.clone()));
        let p = pool.clone();
        let merged = move |d: Delivery| {
            let p = p.clone();
            async move { events::customer_merged(&p, &d.event_id, &d.payload).await }
        };
        tokio::spawn(consume(events::CUSTOMER_MERGED).run(merged, ctx.shutdown.clone()));
        let p = pool.clone();
        let erased = move |d: Delivery| {
            let p = p.clone();
            async move { events::customer_erased(&p, &d.event_id, &d.payload).await }
        };
        tokio::spawn(consume(events::CUSTOMER_ERASED).run(erased, ctx.shutdown.clone()));
        let p = pool.clone();
        let consent = move |d: Delivery| {
            let p = p.clone();
            async move { events::consent_changed(&p, &d.payload).await }
        };
        tokio::spawn(consume(events::CONSENT_CHANGED).run(consent, ctx.shutdown.clone()));
        let recommendations = recommendations::Recommendations::start(pool.clone()).await?;
        tokio::spawn(recommendations.clone().follow(ctx.shutdown.clone()));
        let customers = Customers::new(ctx.peers.clone(), ResolutionCache::new(ctx.redis.clone(), SCHEMA));
        let api = api::CustomizationApi::new(api::Parts {
            jobs: Jobs::new(pool.clone()),
            pool,
            customers,
            peers: ctx.peers.clone(),
            recommendations,
            shutdown: ctx.shutdown.clone(),
        });
        Ok(Self { server: CustomizationServiceServer::new(api) })
    }
}

/// Applies the platform's and this service's migrations to its schema.
pub async fn migrate(database: &idic_platform::config::DatabaseConfig) -> anyhow::Result<()> {
    let pool = db::connect(database, SCHEMA).await?;
    db::migrate(&pool, &MIGRATIONS).await?;
    pool.close().await;
    Ok(())
}
