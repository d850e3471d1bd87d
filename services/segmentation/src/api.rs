//! The gRPC edge of segmentation. Only the shared job and audit RPCs are served so far; the
//! generated defaults answer UNIMPLEMENTED for the rest.

use idic_platform::{jobs::Jobs, shared_rpcs::PlatformTables};
use idic_proto::segmentation::v1::segmentation_service_server::SegmentationService;
use sqlx::PgPool;

/// The segmentation gRPC service.
#[derive(Debug, Clone)]
pub struct SegmentationApi {
    jobs: Jobs,
    pool: PgPool,
}

impl SegmentationApi {
    /// The service over its jobs and schema.
    pub fn new(jobs: Jobs, pool: PgPool) -> Self {
        Self { jobs, pool }
    }
}

impl PlatformTables for SegmentationApi {
    fn jobs(&self) -> &Jobs {
        &self.jobs
    }
    fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[tonic::async_trait]
impl SegmentationService for SegmentationApi {
    idic_platform::shared_rpcs!();
}
