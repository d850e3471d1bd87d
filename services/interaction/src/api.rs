//! The gRPC edge of interaction: validates requests, converts proto ⇄ domain, applies
//! masking and maps errors to `tonic::Status`. No SQL here. Each RPC's body lives in the
//! `api/<area>_rpcs.rs` module of its area; the trait impl below only delegates. RPCs not
//! listed answer UNIMPLEMENTED (the generated defaults) until their area lands.

mod complaint_rpcs;
mod context_rpcs;
pub mod convert;
mod feedback_rpcs;
mod interaction_rpcs;
mod manager_rpcs;
mod policy_rpcs;

use std::sync::Arc;

use idic_platform::{
    ApiError, ApiResult, context::Caller, jobs::Jobs, redis::Redis, runtime::Peers, shared_rpcs::PlatformTables,
};
use idic_proto::interaction::v1::{self as pb, interaction_service_server::InteractionService};
use sqlx::PgPool;
use tonic::{Request, Response, Status, Streaming};

use crate::{InteractionConfig, contact_checks::ContactChecker, store::Store};
use idic_platform::customers::Customers;

/// What the interaction API is built from.
#[derive(Debug, Clone)]
pub struct Parts {
    /// The service's jobs.
    pub jobs: Jobs,
    /// The pool of the service's schema.
    pub pool: PgPool,
    /// The service's SQL.
    pub store: Store,
    /// Customer references resolved through identification, cached.
    pub customers: Customers,
    /// The shared Redis handle (caches, counters).
    pub redis: Redis,
    /// Clients to the other services.
    pub peers: Peers,
    /// Contact-policy checks.
    pub checker: ContactChecker,
    /// The service's settings.
    pub config: InteractionConfig,
}

/// The interaction gRPC service.
#[derive(Debug, Clone)]
pub struct InteractionApi {
    parts: Arc<Parts>,
}

impl InteractionApi {
    /// The service over its parts.
    pub fn new(parts: Parts) -> Self {
        Self { parts: Arc::new(parts) }
    }

    /// The service's SQL.
    pub(crate) fn store(&self) -> &Store {
        &self.parts.store
    }

    /// Customer references resolved through identification.
    pub(crate) fn customers(&self) -> &Customers {
        &self.parts.customers
    }

    /// Contact-policy checks.
    pub(crate) fn checker(&self) -> &ContactChecker {
        &self.parts.checker
    }

    /// The service's settings.
    pub(crate) fn config(&self) -> &InteractionConfig {
        &self.parts.config
    }

    /// Clients to the other services.
    pub(crate) fn peers(&self) -> &Peers {
        &self.parts.peers
    }

    /// The shared Redis handle.
    #[allow(dead_code, reason = "used by the areas still landing")]
    pub(crate) fn redis(&self) -> &Redis {
        &self.parts.redis
    }
}

impl PlatformTables for InteractionApi {
    fn jobs(&self) -> &Jobs {
        &self.parts.jobs
    }
    fn pool(&self) -> &PgPool {
        &self.parts.pool
    }
}

/// The authenticated caller of `request` (set by the server's auth layer).
pub(crate) fn caller<T>(request: &Request<T>) -> ApiResult<Arc<Caller>> {
    request.extensions().get::<Arc<Caller>>().cloned().ok_or_else(|| ApiError::Unauthenticated("no caller".into()))
}

#[tonic::async_trait]
impl InteractionService for InteractionApi {
    idic_platform::shared_rpcs!();

    // ---- interactions (api/interaction_rpcs.rs)

    async fn record_interaction(
        &self,
        request: Request<pb::RecordInteractionRequest>,
    ) -> Result<Response<pb::Interaction>, Status> {
        Ok(Response::new(interaction_rpcs::record(self, request).await?))
    }

    async fn ingest_interactions(
        &self,
        request: Request<Streaming<pb::IngestInteractionsRequest>>,
    ) -> Result<Response<pb::IngestInteractionsResponse>, Status> {
        Ok(Response::new(interaction_rpcs::ingest(self, request).await?))
    }

    async fn get_interaction(
        &self,
        request: Request<pb::GetInteractionRequest>,
    ) -> Result<Response<pb::Interaction>, Status> {
        Ok(Response::new(interaction_rpcs::get(self, request).await?))
    }

    async fn get_timeline(
        &self,
        request: Request<pb::GetTimelineRequest>,
    ) -> Result<Response<pb::GetTimelineResponse>, Status> {
        Ok(Response::new(interaction_rpcs::timeline(self, request).await?))
    }

    async fn get_contact_context(
        &self,
        request: Request<pb::GetContactContextRequest>,
    ) -> Result<Response<pb::ContactContext>, Status> {
        Ok(Response::new(context_rpcs::get(self, request).await?))
    }

    // ---- complaints (api/complaint_rpcs.rs)

    async fn open_complaint(
        &self,
        request: Request<pb::OpenComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        Ok(Response::new(complaint_rpcs::open(self, request).await?))
    }

    async fn update_complaint(
        &self,
        request: Request<pb::UpdateComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        Ok(Response::new(complaint_rpcs::update(self, request).await?))
    }

    async fn resolve_complaint(
        &self,
        request: Request<pb::ResolveComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        Ok(Response::new(complaint_rpcs::resolve(self, request).await?))
    }

    async fn get_complaint(
        &self,
        request: Request<pb::GetComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        Ok(Response::new(complaint_rpcs::get(self, request).await?))
    }

    async fn list_complaints(
        &self,
        request: Request<pb::ListComplaintsRequest>,
    ) -> Result<Response<pb::ListComplaintsResponse>, Status> {
        Ok(Response::new(complaint_rpcs::list(self, request).await?))
    }

    async fn get_complaint_stats(
        &self,
        request: Request<pb::GetComplaintStatsRequest>,
    ) -> Result<Response<pb::ComplaintStats>, Status> {
        Ok(Response::new(complaint_rpcs::stats(self, request).await?))
    }

    // ---- contact policy (api/policy_rpcs.rs)

    async fn check_contact_policy(
        &self,
        request: Request<pb::CheckContactPolicyRequest>,
    ) -> Result<Response<pb::ContactPolicyDecision>, Status> {
        Ok(Response::new(policy_rpcs::check(self, request).await?))
    }

    async fn batch_check_contact_policy(
        &self,
        request: Request<pb::BatchCheckContactPolicyRequest>,
    ) -> Result<Response<pb::BatchCheckContactPolicyResponse>, Status> {
        Ok(Response::new(policy_rpcs::batch_check(self, request).await?))
    }

    async fn get_contact_policy(
        &self,
        request: Request<pb::GetContactPolicyRequest>,
    ) -> Result<Response<pb::ContactPolicy>, Status> {
        Ok(Response::new(policy_rpcs::get_policy(self, request).await?))
    }

    async fn update_contact_policy(
        &self,
        request: Request<pb::UpdateContactPolicyRequest>,
    ) -> Result<Response<pb::ContactPolicy>, Status> {
        Ok(Response::new(policy_rpcs::update_policy(self, request).await?))
    }

    async fn set_do_not_contact(
        &self,
        request: Request<pb::SetDoNotContactRequest>,
    ) -> Result<Response<pb::DoNotContactEntry>, Status> {
        Ok(Response::new(policy_rpcs::set_do_not_contact(self, request).await?))
    }

    async fn clear_do_not_contact(
        &self,
        request: Request<pb::ClearDoNotContactRequest>,
    ) -> Result<Response<pb::ClearDoNotContactResponse>, Status> {
        Ok(Response::new(policy_rpcs::clear_do_not_contact(self, request).await?))
    }

    async fn list_do_not_contact_entries(
        &self,
        request: Request<pb::ListDoNotContactEntriesRequest>,
    ) -> Result<Response<pb::ListDoNotContactEntriesResponse>, Status> {
        Ok(Response::new(policy_rpcs::list_do_not_contact(self, request).await?))
    }

    // ---- account managers (api/manager_rpcs.rs)

    async fn create_account_manager(
        &self,
        request: Request<pb::CreateAccountManagerRequest>,
    ) -> Result<Response<pb::AccountManager>, Status> {
        Ok(Response::new(manager_rpcs::create(self, request).await?))
    }

    async fn update_account_manager(
        &self,
        request: Request<pb::UpdateAccountManagerRequest>,
    ) -> Result<Response<pb::AccountManager>, Status> {
        Ok(Response::new(manager_rpcs::update(self, request).await?))
    }

    async fn get_account_manager(
        &self,
        request: Request<pb::GetAccountManagerRequest>,
    ) -> Result<Response<pb::AccountManager>, Status> {
        Ok(Response::new(manager_rpcs::get(self, request).await?))
    }

    async fn list_account_managers(
        &self,
        request: Request<pb::ListAccountManagersRequest>,
    ) -> Result<Response<pb::ListAccountManagersResponse>, Status> {
        Ok(Response::new(manager_rpcs::list(self, request).await?))
    }

    async fn delete_account_manager(
        &self,
        request: Request<pb::DeleteAccountManagerRequest>,
    ) -> Result<Response<pb::AccountManager>, Status> {
        Ok(Response::new(manager_rpcs::delete(self, request).await?))
    }

    async fn assign_customers(
        &self,
        request: Request<pb::AssignCustomersRequest>,
    ) -> Result<Response<pb::AssignCustomersResponse>, Status> {
        Ok(Response::new(manager_rpcs::assign(self, request).await?))
    }

    async fn unassign_customers(
        &self,
        request: Request<pb::UnassignCustomersRequest>,
    ) -> Result<Response<pb::UnassignCustomersResponse>, Status> {
        Ok(Response::new(manager_rpcs::unassign(self, request).await?))
    }

    async fn rebalance_books(
        &self,
        request: Request<pb::RebalanceBooksRequest>,
    ) -> Result<Response<idic_proto::common::v1::Job>, Status> {
        Ok(Response::new(manager_rpcs::rebalance(self, request).await?))
    }

    async fn hand_over_book(
        &self,
        request: Request<pb::HandOverBookRequest>,
    ) -> Result<Response<pb::HandOverBookResponse>, Status> {
        Ok(Response::new(manager_rpcs::hand_over(self, request).await?))
    }

    async fn get_book(&self, request: Request<pb::GetBookRequest>) -> Result<Response<pb::GetBookResponse>, Status> {
        Ok(Response::new(manager_rpcs::get_book(self, request).await?))
    }

    async fn list_neglected_customers(
        &self,
        request: Request<pb::ListNeglectedCustomersRequest>,
    ) -> Result<Response<pb::ListNeglectedCustomersResponse>, Status> {
        Ok(Response::new(manager_rpcs::neglected(self, request).await?))
    }

    // ---- feedback (api/feedback_rpcs.rs)

    async fn record_feedback(
        &self,
        request: Request<pb::RecordFeedbackRequest>,
    ) -> Result<Response<pb::Feedback>, Status> {
        Ok(Response::new(feedback_rpcs::record(self, request).await?))
    }

    async fn get_feedback(&self, request: Request<pb::GetFeedbackRequest>) -> Result<Response<pb::Feedback>, Status> {
        Ok(Response::new(feedback_rpcs::get(self, request).await?))
    }

    async fn list_feedback(
        &self,
        request: Request<pb::ListFeedbackRequest>,
    ) -> Result<Response<pb::ListFeedbackResponse>, Status> {
        Ok(Response::new(feedback_rpcs::list(self, request).await?))
    }

    async fn get_feedback_summary(
        &self,
        request: Request<pb::GetFeedbackSummaryRequest>,
    ) -> Result<Response<pb::FeedbackSummary>, Status> {
        Ok(Response::new(feedback_rpcs::summary(self, request).await?))
    }
}
