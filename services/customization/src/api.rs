//! The gRPC edge of customization. Only the shared job and audit RPCs are served so far; the
//! generated defaults answer UNIMPLEMENTED for the rest.

use idic_platform::{jobs::Jobs, shared_rpcs::PlatformTables};
use idic_proto::customization::v1::customization_service_server::CustomizationService;
use sqlx::PgPool;

/// The customization gRPC service.
#[derive(Debug, Clone)]
pub struct CustomizationApi {
    jobs: Jobs,
    pool: PgPool,
}

impl CustomizationApi {
    /// The service over its jobs and schema.
    pub fn new(jobs: Jobs, pool: PgPool) -> Self {
        Self { jobs, pool }
    }
}

impl PlatformTables for CustomizationApi {
    fn jobs(&self) -> &Jobs {
        &self.jobs
    }
    fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[tonic::async_trait]
impl CustomizationService for CustomizationApi {
    idic_platform::shared_rpcs!();
}
