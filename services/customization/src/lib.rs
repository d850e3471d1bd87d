//! Customization service: tailors products, recommendations, offers and messages to each customer, with campaigns measured against control groups.
//!
//! Layers: [`api`] (gRPC edge), [`domain`] (pure catalog and configurator logic), [`store`] (its
//! SQL, schema `customization`). The contract is complete in `proto/idic/customization/v1`; RPCs
//! not yet built answer UNIMPLEMENTED.

pub mod api;
pub mod domain;
pub mod store;

use idic_platform::{db, jobs::Jobs, runtime::ServiceContext};
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
        let api = api::CustomizationApi::new(Jobs::new(pool.clone()), pool);
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
