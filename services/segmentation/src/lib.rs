//! Segmentation service: differentiates customers by value (RFM, CLV, tiers) and by needs (clusters, segments).
//!
//! The gRPC contract is complete in `proto/idic/segmentation/v1`; RPCs answer UNIMPLEMENTED
//! until their feature lands, except the shared job and audit RPCs.

pub mod api;

use idic_platform::{db, jobs::Jobs, runtime::ServiceContext};
use idic_proto::segmentation::v1::segmentation_service_server::SegmentationServiceServer;

/// The Postgres schema this service owns.
pub const SCHEMA: &str = "segmentation";

/// The running service: its gRPC server, ready to be added to a process.
pub struct Segmentation {
    /// The tonic service to serve.
    pub server: SegmentationServiceServer<api::SegmentationApi>,
}

impl Segmentation {
    /// Connects to the service's schema and builds the gRPC service.
    pub async fn start(ctx: &ServiceContext) -> anyhow::Result<Self> {
        let pool = db::connect(&ctx.database, SCHEMA).await?;
        let api = api::SegmentationApi::new(Jobs::new(pool.clone()), pool);
        Ok(Self { server: SegmentationServiceServer::new(api) })
    }
}

/// Applies the platform's migrations (and, as they come, this service's) to its schema.
pub async fn migrate(database: &idic_platform::config::DatabaseConfig) -> anyhow::Result<()> {
    let pool = db::connect(database, SCHEMA).await?;
    db::migrate(&pool, &sqlx::migrate::Migrator::with_migrations(Vec::new())).await?;
    pool.close().await;
    Ok(())
}
