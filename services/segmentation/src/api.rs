//! The gRPC edge of segmentation: the tonic trait implementation, each RPC delegating to a
//! function in an `api/<area>_rpcs.rs` module that validates the request, calls the store
//! or the domain, and converts the answer. RPCs not yet built answer UNIMPLEMENTED (the
//! generated defaults).

mod cluster_rpcs;
mod model_rpcs;
mod segment_rpcs;
mod settings_rpcs;
mod spend_rpcs;
mod value_rpcs;

use std::sync::Arc;

use idic_platform::{ApiError, ApiResult, context::Caller, jobs::Jobs, shared_rpcs::PlatformTables};
use idic_proto::{
    common::v1 as common,
    segmentation::v1::{self as pb, segmentation_service_server::SegmentationService},
};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::{cache::ValueCache, membership::Memberships, rescoring::Rescorer};

/// The segmentation gRPC service.
#[derive(Debug, Clone)]
pub struct SegmentationApi {
    jobs: Jobs,
    pool: PgPool,
    cache: ValueCache,
    rescorer: Rescorer,
    segments: Memberships,
}

impl SegmentationApi {
    /// The service over its jobs, schema, cache and segment memberships.
    pub fn new(jobs: Jobs, pool: PgPool, cache: ValueCache, segments: Memberships) -> Self {
        let rescorer =
            Rescorer { pool: pool.clone(), jobs: jobs.clone(), cache: cache.clone(), segments: segments.clone() };
        Self { jobs, pool, cache, rescorer, segments }
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

/// The authenticated caller of a request.
fn caller<T>(request: &Request<T>) -> ApiResult<Arc<Caller>> {
    request.extensions().get::<Arc<Caller>>().cloned().ok_or_else(|| ApiError::Unauthenticated("no caller".into()))
}

/// Answers an RPC's result.
fn answer<T>(result: ApiResult<T>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl SegmentationService for SegmentationApi {
    idic_platform::shared_rpcs!();

    // ---- Customer value

    async fn get_customer_value(
        &self,
        request: Request<pb::GetCustomerValueRequest>,
    ) -> Result<Response<pb::CustomerValue>, Status> {
        answer(value_rpcs::get_customer_value(self, request.into_inner()).await)
    }

    async fn batch_get_customer_values(
        &self,
        request: Request<pb::BatchGetCustomerValuesRequest>,
    ) -> Result<Response<pb::BatchGetCustomerValuesResponse>, Status> {
        answer(value_rpcs::batch_get_customer_values(self, request.into_inner()).await)
    }

    async fn get_tier_history(
        &self,
        request: Request<pb::GetTierHistoryRequest>,
    ) -> Result<Response<pb::GetTierHistoryResponse>, Status> {
        answer(value_rpcs::get_tier_history(self, request.into_inner()).await)
    }

    async fn get_value_distribution(
        &self,
        request: Request<pb::GetValueDistributionRequest>,
    ) -> Result<Response<pb::ValueDistribution>, Status> {
        answer(value_rpcs::get_value_distribution(self, request.into_inner()).await)
    }

    async fn get_value_settings(
        &self,
        request: Request<pb::GetValueSettingsRequest>,
    ) -> Result<Response<pb::ValueSettings>, Status> {
        answer(settings_rpcs::get_value_settings(self, request.into_inner()).await)
    }

    async fn update_value_settings(
        &self,
        request: Request<pb::UpdateValueSettingsRequest>,
    ) -> Result<Response<pb::ValueSettings>, Status> {
        answer(settings_rpcs::update_value_settings(self, request).await)
    }

    async fn record_category_spend(
        &self,
        request: Request<pb::RecordCategorySpendRequest>,
    ) -> Result<Response<pb::CategorySpend>, Status> {
        answer(spend_rpcs::record_category_spend(self, request.into_inner()).await)
    }

    async fn import_category_spend(
        &self,
        request: Request<tonic::Streaming<pb::ImportCategorySpendRequest>>,
    ) -> Result<Response<common::BulkSummary>, Status> {
        answer(spend_rpcs::import_category_spend(self, request).await)
    }

    // ---- Models and rescoring

    async fn get_model(&self, request: Request<pb::GetModelRequest>) -> Result<Response<pb::Model>, Status> {
        answer(model_rpcs::get_model(self, request.into_inner()).await)
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        answer(model_rpcs::list_models(self, request.into_inner()).await)
    }

    async fn start_rescoring(
        &self,
        request: Request<pb::StartRescoringRequest>,
    ) -> Result<Response<common::Job>, Status> {
        answer(model_rpcs::start_rescoring(self, request).await)
    }

    // ---- Needs clusters

    async fn list_clusters(
        &self,
        request: Request<pb::ListClustersRequest>,
    ) -> Result<Response<pb::ListClustersResponse>, Status> {
        answer(cluster_rpcs::list_clusters(self, request.into_inner()).await)
    }

    async fn get_cluster(&self, request: Request<pb::GetClusterRequest>) -> Result<Response<pb::Cluster>, Status> {
        answer(cluster_rpcs::get_cluster(self, request.into_inner()).await)
    }

    async fn update_cluster(
        &self,
        request: Request<pb::UpdateClusterRequest>,
    ) -> Result<Response<pb::Cluster>, Status> {
        answer(cluster_rpcs::update_cluster(self, request).await)
    }

    async fn get_customer_cluster(
        &self,
        request: Request<pb::GetCustomerClusterRequest>,
    ) -> Result<Response<pb::CustomerCluster>, Status> {
        answer(cluster_rpcs::get_customer_cluster(self, request.into_inner()).await)
    }

    // ---- Segments and the rule language

    async fn create_segment(
        &self,
        request: Request<pb::CreateSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        answer(segment_rpcs::create_segment(self, request).await)
    }

    async fn get_segment(&self, request: Request<pb::GetSegmentRequest>) -> Result<Response<pb::Segment>, Status> {
        answer(segment_rpcs::get_segment(self, request.into_inner()).await)
    }

    async fn update_segment(
        &self,
        request: Request<pb::UpdateSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        answer(segment_rpcs::update_segment(self, request).await)
    }

    async fn delete_segment(&self, request: Request<pb::DeleteSegmentRequest>) -> Result<Response<()>, Status> {
        answer(segment_rpcs::delete_segment(self, request).await)
    }

    async fn list_segments(
        &self,
        request: Request<pb::ListSegmentsRequest>,
    ) -> Result<Response<pb::ListSegmentsResponse>, Status> {
        answer(segment_rpcs::list_segments(self, request.into_inner()).await)
    }

    async fn validate_rule(
        &self,
        request: Request<pb::ValidateRuleRequest>,
    ) -> Result<Response<pb::ValidateRuleResponse>, Status> {
        answer(segment_rpcs::validate_rule(request.into_inner()).await)
    }

    async fn preview_segment(
        &self,
        request: Request<pb::PreviewSegmentRequest>,
    ) -> Result<Response<pb::PreviewSegmentResponse>, Status> {
        answer(segment_rpcs::preview_segment(self, request).await)
    }

    async fn list_segment_members(
        &self,
        request: Request<pb::ListSegmentMembersRequest>,
    ) -> Result<Response<pb::ListSegmentMembersResponse>, Status> {
        answer(segment_rpcs::list_segment_members(self, request.into_inner()).await)
    }

    async fn get_customer_segments(
        &self,
        request: Request<pb::GetCustomerSegmentsRequest>,
    ) -> Result<Response<pb::CustomerSegments>, Status> {
        answer(segment_rpcs::get_customer_segments(self, request.into_inner()).await)
    }

    async fn evaluate_rule(
        &self,
        request: Request<pb::EvaluateRuleRequest>,
    ) -> Result<Response<pb::EvaluateRuleResponse>, Status> {
        answer(segment_rpcs::evaluate_rule(self, request).await)
    }

    async fn batch_evaluate_rules(
        &self,
        request: Request<pb::BatchEvaluateRulesRequest>,
    ) -> Result<Response<pb::BatchEvaluateRulesResponse>, Status> {
        answer(segment_rpcs::batch_evaluate_rules(self, request).await)
    }
}
