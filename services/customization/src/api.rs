//! The gRPC edge of customization: the tonic trait implementation, each RPC delegating to a
//! function in an `api/<area>_rpcs.rs` module that validates the request, calls the store or
//! the domain, and converts the answer. RPCs not yet built answer UNIMPLEMENTED (the generated
//! defaults).

mod campaign_rpcs;
mod catalog_rpcs;
mod configuration_rpcs;
mod message_rpcs;
mod modules_rpcs;
mod offer_rpcs;
mod recommendation_rpcs;
mod shared;

use std::sync::Arc;

use idic_platform::{
    ApiError, ApiResult, context::Caller, customers::Customers, jobs::Jobs, runtime::Peers, shared_rpcs::PlatformTables,
};
use idic_proto::customization::v1::{self as pb, customization_service_server::CustomizationService};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::recommendations::{AnswerLog, Recommendations};

pub use recommendation_rpcs::RETRAIN_KIND;

/// The customization gRPC service.
#[derive(Debug, Clone)]
pub struct CustomizationApi {
    jobs: Jobs,
    pool: PgPool,
    customers: Customers,
    peers: Peers,
    recommendations: Recommendations,
    answers: AnswerLog,
}

/// What the service is built from.
#[derive(Debug)]
pub struct Parts {
    /// Its jobs.
    pub jobs: Jobs,
    /// Its schema.
    pub pool: PgPool,
    /// Customer references resolved through identification.
    pub customers: Customers,
    /// Clients of segmentation (offer rules) and interaction (contact policy).
    pub peers: Peers,
    /// The recommender model.
    pub recommendations: Recommendations,
    /// Stops the background writers.
    pub shutdown: CancellationToken,
}

impl CustomizationApi {
    /// The service over its parts.
    pub fn new(parts: Parts) -> Self {
        let Parts { jobs, pool, customers, peers, recommendations, shutdown } = parts;
        let answers = AnswerLog::start(pool.clone(), shutdown);
        Self { jobs, pool, customers, peers, recommendations, answers }
    }
}

/// The authenticated caller of a request.
pub(crate) fn caller<T>(request: &Request<T>) -> ApiResult<Arc<Caller>> {
    request.extensions().get::<Arc<Caller>>().cloned().ok_or_else(|| ApiError::Unauthenticated("no caller".into()))
}

impl PlatformTables for CustomizationApi {
    fn jobs(&self) -> &Jobs {
        &self.jobs
    }
    fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Answers an RPC's result.
fn answer<T>(result: ApiResult<T>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl CustomizationService for CustomizationApi {
    idic_platform::shared_rpcs!();

    // ---- Catalog

    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        answer(catalog_rpcs::create_product(self, request.into_inner()).await)
    }

    async fn get_product(&self, request: Request<pb::GetProductRequest>) -> Result<Response<pb::Product>, Status> {
        answer(catalog_rpcs::get_product(self, request.into_inner()).await)
    }

    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        answer(catalog_rpcs::update_product(self, request.into_inner()).await)
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        answer(catalog_rpcs::list_products(self, request.into_inner()).await)
    }

    async fn upsert_products(
        &self,
        request: Request<tonic::Streaming<pb::UpsertProductsRequest>>,
    ) -> Result<Response<idic_proto::common::v1::BulkSummary>, Status> {
        answer(catalog_rpcs::upsert_products(self, request).await)
    }

    // ---- Mass customization

    async fn get_product_modules(
        &self,
        request: Request<pb::GetProductModulesRequest>,
    ) -> Result<Response<pb::ProductModules>, Status> {
        answer(modules_rpcs::get_product_modules(self, request.into_inner()).await)
    }

    async fn set_product_modules(
        &self,
        request: Request<pb::SetProductModulesRequest>,
    ) -> Result<Response<pb::ProductModules>, Status> {
        answer(modules_rpcs::set_product_modules(self, request.into_inner()).await)
    }

    async fn configure_product(
        &self,
        request: Request<pb::ConfigureProductRequest>,
    ) -> Result<Response<pb::ConfigureProductResponse>, Status> {
        answer(modules_rpcs::configure_product(self, request.into_inner()).await)
    }

    async fn count_variants(
        &self,
        request: Request<pb::CountVariantsRequest>,
    ) -> Result<Response<pb::CountVariantsResponse>, Status> {
        answer(modules_rpcs::count_variants(self, request.into_inner()).await)
    }

    // ---- Recommendations

    async fn recommend(
        &self,
        request: Request<pb::RecommendRequest>,
    ) -> Result<Response<pb::RecommendResponse>, Status> {
        answer(recommendation_rpcs::recommend(self, request.into_inner()).await)
    }

    async fn record_recommendation_feedback(
        &self,
        request: Request<pb::RecordRecommendationFeedbackRequest>,
    ) -> Result<Response<pb::RecommendationFeedback>, Status> {
        answer(recommendation_rpcs::record_feedback(self, request.into_inner()).await)
    }

    async fn get_item_neighbours(
        &self,
        request: Request<pb::GetItemNeighboursRequest>,
    ) -> Result<Response<pb::GetItemNeighboursResponse>, Status> {
        answer(recommendation_rpcs::item_neighbours(self, request.into_inner()).await)
    }

    async fn start_retraining(
        &self,
        request: Request<pb::StartRetrainingRequest>,
    ) -> Result<Response<idic_proto::common::v1::Job>, Status> {
        answer(recommendation_rpcs::start_retraining(self, request).await)
    }

    // ---- Saved configurations

    async fn save_configuration(
        &self,
        request: Request<pb::SaveConfigurationRequest>,
    ) -> Result<Response<pb::SavedConfiguration>, Status> {
        answer(configuration_rpcs::save(self, request.into_inner()).await)
    }

    async fn list_saved_configurations(
        &self,
        request: Request<pb::ListSavedConfigurationsRequest>,
    ) -> Result<Response<pb::ListSavedConfigurationsResponse>, Status> {
        answer(configuration_rpcs::list(self, request.into_inner()).await)
    }

    async fn get_default_configuration(
        &self,
        request: Request<pb::GetDefaultConfigurationRequest>,
    ) -> Result<Response<pb::DefaultConfiguration>, Status> {
        answer(configuration_rpcs::default(self, request.into_inner()).await)
    }

    async fn delete_saved_configuration(
        &self,
        request: Request<pb::DeleteSavedConfigurationRequest>,
    ) -> Result<Response<()>, Status> {
        answer(configuration_rpcs::delete(self, request.into_inner()).await)
    }

    // ---- Offers

    async fn create_offer(&self, request: Request<pb::CreateOfferRequest>) -> Result<Response<pb::Offer>, Status> {
        answer(offer_rpcs::create(self, request.into_inner()).await)
    }

    async fn get_offer(&self, request: Request<pb::GetOfferRequest>) -> Result<Response<pb::Offer>, Status> {
        answer(offer_rpcs::get(self, request.into_inner()).await)
    }

    async fn update_offer(&self, request: Request<pb::UpdateOfferRequest>) -> Result<Response<pb::Offer>, Status> {
        answer(offer_rpcs::update(self, request.into_inner()).await)
    }

    async fn list_offers(
        &self,
        request: Request<pb::ListOffersRequest>,
    ) -> Result<Response<pb::ListOffersResponse>, Status> {
        answer(offer_rpcs::list(self, request.into_inner()).await)
    }

    async fn next_best_offer(
        &self,
        request: Request<pb::NextBestOfferRequest>,
    ) -> Result<Response<pb::NextBestOfferResponse>, Status> {
        answer(offer_rpcs::next_best_offer(self, request.into_inner()).await)
    }

    async fn record_offer_response(
        &self,
        request: Request<pb::RecordOfferResponseRequest>,
    ) -> Result<Response<pb::OfferResponse>, Status> {
        answer(offer_rpcs::record_response(self, request.into_inner()).await)
    }

    // ---- Messages

    async fn create_template(
        &self,
        request: Request<pb::CreateTemplateRequest>,
    ) -> Result<Response<pb::MessageTemplate>, Status> {
        answer(message_rpcs::create(self, request.into_inner()).await)
    }

    async fn get_template(
        &self,
        request: Request<pb::GetTemplateRequest>,
    ) -> Result<Response<pb::MessageTemplate>, Status> {
        answer(message_rpcs::get(self, request.into_inner()).await)
    }

    async fn list_templates(
        &self,
        request: Request<pb::ListTemplatesRequest>,
    ) -> Result<Response<pb::ListTemplatesResponse>, Status> {
        answer(message_rpcs::list(self, request.into_inner()).await)
    }

    async fn update_template(
        &self,
        request: Request<pb::UpdateTemplateRequest>,
    ) -> Result<Response<pb::MessageTemplate>, Status> {
        answer(message_rpcs::update(self, request.into_inner()).await)
    }

    async fn render_message(
        &self,
        request: Request<pb::RenderMessageRequest>,
    ) -> Result<Response<pb::RenderMessageResponse>, Status> {
        answer(message_rpcs::render(self, request.into_inner()).await)
    }

    // ---- Campaigns

    async fn create_campaign(
        &self,
        request: Request<pb::CreateCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        answer(campaign_rpcs::create(self, request.into_inner()).await)
    }

    async fn get_campaign(&self, request: Request<pb::GetCampaignRequest>) -> Result<Response<pb::Campaign>, Status> {
        answer(campaign_rpcs::get(self, request.into_inner()).await)
    }

    async fn list_campaigns(
        &self,
        request: Request<pb::ListCampaignsRequest>,
    ) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        answer(campaign_rpcs::list(self, request.into_inner()).await)
    }

    async fn launch_campaign(
        &self,
        request: Request<pb::LaunchCampaignRequest>,
    ) -> Result<Response<idic_proto::common::v1::Job>, Status> {
        answer(campaign_rpcs::launch(self, request).await)
    }

    async fn get_campaign_report(
        &self,
        request: Request<pb::GetCampaignReportRequest>,
    ) -> Result<Response<pb::CampaignReport>, Status> {
        answer(campaign_rpcs::report(self, request.into_inner()).await)
    }
}
