//! The gRPC edge of interaction. Only the shared job and audit RPCs are served so far; the
//! generated defaults answer UNIMPLEMENTED for the rest.

use idic_platform::{jobs::Jobs, shared_rpcs::PlatformTables};
use idic_proto::interaction::v1::interaction_service_server::InteractionService;
use sqlx::PgPool;

/// The interaction gRPC service.
#[derive(Debug, Clone)]
pub struct InteractionApi {
    jobs: Jobs,
    pool: PgPool,
}

impl InteractionApi {
    /// The service over its jobs and schema.
    pub fn new(jobs: Jobs, pool: PgPool) -> Self {
        Self { jobs, pool }
    }
}

impl PlatformTables for InteractionApi {
    fn jobs(&self) -> &Jobs {
        &self.jobs
    }
    fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[tonic::async_trait]
impl InteractionService for InteractionApi {
    idic_platform::shared_rpcs!();
}
