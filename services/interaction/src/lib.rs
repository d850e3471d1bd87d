//! Interaction service: records every contact so the next continues the last: timelines, complaints, account managers, contact policy, feedback.
//!
//! The gRPC contract is complete in `proto/idic/interaction/v1`; RPCs answer UNIMPLEMENTED
//! until their feature lands, except the shared job and audit RPCs.

pub mod api;

use idic_platform::{db, jobs::Jobs, runtime::ServiceContext};
use idic_proto::interaction::v1::interaction_service_server::InteractionServiceServer;

/// The Postgres schema this service owns.
pub const SCHEMA: &str = "interaction";

/// The running service: its gRPC server, ready to be added to a process.
pub struct Interaction {
    /// The tonic service to serve.
    pub server: InteractionServiceServer<api::InteractionApi>,
}

impl Interaction {
    /// Connects to the service's schema and builds the gRPC service.
    pub async fn start(ctx: &ServiceContext) -> anyhow::Result<Self> {
        let pool = db::connect(&ctx.database, SCHEMA).await?;
        let api = api::InteractionApi::new(Jobs::new(pool.clone()), pool);
        Ok(Self { server: InteractionServiceServer::new(api) })
    }
}

/// Applies the platform's migrations (and, as they come, this service's) to its schema.
pub async fn migrate(database: &idic_platform::config::DatabaseConfig) -> anyhow::Result<()> {
    let pool = db::connect(database, SCHEMA).await?;
    db::migrate(&pool, &sqlx::migrate::Migrator::with_migrations(Vec::new())).await?;
    pool.close().await;
    Ok(())
}
