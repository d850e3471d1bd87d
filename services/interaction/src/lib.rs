//! Interaction service: step 3 of one-to-one marketing. Records every contact so that the
//! next continues the last: timelines, complaints, account managers, contact policy, feedback.
//!
//! Layers: [`api`] (gRPC edge), [`domain`] (pure rules), [`store`] (its SQL, schema
//! `interaction`), [`events`] (what it publishes and consumes).
//! Customer references are resolved through identification by the platform's
//! [`idic_platform::customers`].

pub mod api;
pub mod config;
pub mod consent_copy;
pub mod contact_checks;
pub mod contact_counters;
pub mod domain;
pub mod events;
pub mod store;

pub use config::InteractionConfig;

use idic_platform::{
    customers::{Customers, ResolutionCache},
    db,
    events::{Consumer, Delivery, OutboxRelay},
    jobs::Jobs,
    runtime::ServiceContext,
};
use idic_proto::interaction::v1::interaction_service_server::InteractionServiceServer;

/// The Postgres schema this service owns.
pub const SCHEMA: &str = "interaction";

/// The service's migrations (versions 2000–2099 interactions, 2100–2199 complaints,
/// managers, contact policy and feedback; the platform's come first).
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The running service: its gRPC server, ready to be added to a process.
pub struct Interaction {
    /// The tonic service to serve.
    pub server: InteractionServiceServer<api::InteractionApi>,
}

impl Interaction {
    /// Connects to the service's schema, starts its workers (outbox relay, consumers of
    /// identification's events, partition upkeep) and builds the gRPC service.
    /// Migrations are not run here: see [`migrate`].
    pub async fn start(ctx: &ServiceContext, config: &InteractionConfig) -> anyhow::Result<Self> {
        let pool = db::connect(&ctx.database, SCHEMA).await?;
        let store = store::Store::new(pool.clone());
        store.partitions.ensure_ahead().await?;
        tokio::spawn(store.partitions.clone().keep_ahead(ctx.shutdown.clone()));
        // Events written to the outbox reach their Redis streams through this relay.
        tokio::spawn(OutboxRelay::new(pool.clone(), ctx.redis.clone(), "interaction").run(ctx.shutdown.clone()));
        tokio::spawn(idic_platform::idempotency::prune_periodically(pool.clone(), ctx.shutdown.clone()));
        tokio::spawn(idic_platform::db::keep_statistics(pool.clone(), ctx.shutdown.clone()));
        let customers = Customers::new(ctx.peers.clone(), ResolutionCache::new(ctx.redis.clone(), SCHEMA));
        for stream in [events::CUSTOMER_MERGED, events::CUSTOMER_UNMERGED, events::CUSTOMER_ERASED] {
            let consumer = Consumer::new(ctx.redis.clone(), stream, "interaction", &ctx.instance);
            let (store, customers) = (store.clone(), customers.clone());
            let apply = move |delivery: Delivery| {
                let (store, customers) = (store.clone(), customers.clone());
                async move { events::apply(&store, &customers, stream, &delivery).await }
            };
            tokio::spawn(consumer.run(apply, ctx.shutdown.clone()));
        }
        // The contact policy's consent copy follows identification's consent changes.
        let consents = Consumer::new(ctx.redis.clone(), consent_copy::CONSENT_CHANGED, "interaction", &ctx.instance);
        let consent_pool = pool.clone();
        let apply_consent = move |delivery: Delivery| {
            let pool = consent_pool.clone();
            async move { consent_copy::apply(&pool, &delivery).await }
        };
        tokio::spawn(consents.run(apply_consent, ctx.shutdown.clone()));
        let checker = contact_checks::ContactChecker::new(
            pool.clone(),
            contact_counters::ContactCounters::new(ctx.redis.clone()),
            ctx.peers.clone(),
        );
        let api = api::InteractionApi::new(api::Parts {
            jobs: Jobs::new(pool.clone()),
            pool,
            store,
            customers,
            redis: ctx.redis.clone(),
            peers: ctx.peers.clone(),
            checker,
            config: config.clone(),
        });
        Ok(Self { server: InteractionServiceServer::new(api) })
    }
}

/// Applies the platform's and this service's migrations to its schema.
pub async fn migrate(database: &idic_platform::config::DatabaseConfig) -> anyhow::Result<()> {
    let pool = db::connect(database, SCHEMA).await?;
    db::migrate(&pool, &MIGRATIONS).await?;
    pool.close().await;
    Ok(())
}
