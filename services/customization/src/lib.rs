//! Customization service: tailors products, recommendations, offers and messages to each customer, with campaigns measured against control groups.
//!
//! The gRPC contract is complete in `proto/idic/customization/v1`; RPCs answer UNIMPLEMENTED
//! until their feature lands, except the shared job and audit RPCs.

pub mod api;
pub mod domain;

use idic_platform::{db, jobs::Jobs, runtime::ServiceContext};
use idic_proto::customization::v1::customization_service_server::CustomizationServiceServer;

/// The Postgres schema this service owns.
pub const SCHEMA: &str = "customization";

/// The running service: its gRPC server, ready to be added to a process.
pub struct Customization {
    /// The tonic service to serve.
    pub server: CustomizationServiceServer<api::CustomizationApi>,
}

impl Customization {
    /// Connects to the service's schema and builds the gRPC service.
    pub async fn start(ctx: &ServiceContext) -> anyhow::Result<Self> {
        let pool = db::connect(&ctx.database, SCHEMA).await?;
        let api = api::CustomizationApi::new(Jobs::new(pool.clone()), pool);
        Ok(Self { server: CustomizationServiceServer::new(api) })
    }
}

/// Applies the platform's migrations (and, as they come, this service's) to its schema.
pub async fn migrate(database: &idic_platform::config::DatabaseConfig) -> anyhow::Result<()> {
    let pool = db::connect(database, SCHEMA).await?;
    db::migrate(&pool, &sqlx::migrate::Migrator::with_migrations(Vec::new())).await?;
    pool.close().await;
    Ok(())
}
