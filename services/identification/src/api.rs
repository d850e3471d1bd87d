//! The gRPC edge of identification: validates requests, converts proto ⇄ domain,
//! applies masking, and maps errors to `tonic::Status`. No SQL here.

mod cleansing_rpcs;
pub mod convert;
mod customer_rpcs;
mod erasure_rpcs;
mod identifier_rpcs;
mod merge_rpcs;
mod resolution_rpcs;

use std::sync::Arc;

use chrono::{Datelike as _, Utc};
use idic_platform::{
    ApiError, ApiResult, FieldViolation,
    context::Caller,
    idempotency,
    jobs::{Jobs, timestamp},
    paging,
    shared_rpcs::PlatformTables,
    validate::{self, Violations},
};
use idic_proto::common::v1 as common;
use idic_proto::identification::v1::{self as pb, identification_service_server::IdentificationService};
use prost::Message as _;
use tonic::{Request, Response, Status};

use crate::{
    IdentificationConfig,
    cache::CustomerCache,
    contact_locks::ContactLocks,
    domain::consent::{self, Channel, ConsentRecord, Decision},
    domain::{
        BirthDate, Customer, CustomerId, CustomerKind, CustomerRole, CustomerState, IdentifierKind, NewCustomer,
        identifier, identifier_limits, masking,
    },
    domain::{
        drip,
        facts::{self, Fact, FactKey, FactValue, ValueType},
    },
    match_index::MatchIndex,
    store::{Created, FactProvenance, NewConsent, Store, consent_record_name, erasure::erasure_name, fact_name},
};

/// Most identifiers one request may attach to a customer.
const MAX_IDENTIFIERS: usize = 50;
/// Most facts one request may record.
const MAX_FACTS: usize = 100;
/// Most identifiers one lookup may try.
const MAX_LOOKUP_IDENTIFIERS: usize = 20;

/// The identification gRPC service.
#[derive(Debug, Clone)]
pub struct IdentificationApi {
    store: Store,
    cache: CustomerCache,
    jobs: Jobs,
    index: MatchIndex,
    contact_locks: ContactLocks,
    config: Arc<IdentificationConfig>,
}

impl IdentificationApi {
    /// The service over its store, cache and jobs, with its settings.
    pub fn new(
        store: Store,
        cache: CustomerCache,
        jobs: Jobs,
        index: MatchIndex,
        config: IdentificationConfig,
    ) -> Self {
        Self { store, cache, jobs, index, contact_locks: ContactLocks::default(), config: Arc::new(config) }
    }

    /// Provenance of facts from `source`, trusted unless the source is configured untrusted.
    fn fact_provenance(
        &self,
        source: String,
        channel: Option<Channel>,
        observe_time: chrono::DateTime<Utc>,
    ) -> FactProvenance {
        FactProvenance {
            trusted: facts::is_trusted(&source, &self.config.untrusted_source_prefixes),
            source,
            channel: convert::channel_to_proto(channel).as_str_name().to_owned(),
            observe_time,
        }
    }

    /// After customers changed: their cached profiles are dropped and their match
    /// records reloaded (other replicas learn of it through the change feed).
    async fn changed(&self, ids: &[CustomerId]) {
        self.cache.invalidate(ids).await;
        if let Err(error) = self.index.refresh(ids).await {
            // The change feed brings the index up to date shortly.
            tracing::warn!(%error, "match index refresh failed");
        }
    }

    async fn load_customer(&self, id: CustomerId) -> ApiResult<Customer> {
        let store = self.store.clone();
        let (customer, _source) = self.cache.customer(id, || async move { store.get_customer(id).await }).await?;
        customer.ok_or_else(|| ApiError::NotFound(id.resource_name()))
    }
}

impl PlatformTables for IdentificationApi {
    fn jobs(&self) -> &Jobs {
        &self.jobs
    }
    fn pool(&self) -> &sqlx::PgPool {
        self.store.pool()
    }
}

/// The authenticated caller, put there by the server's auth layer. Its absence means the
/// service runs without that layer: nobody is trusted then.
fn caller<T>(request: &Request<T>) -> ApiResult<Arc<Caller>> {
    request.extensions().get::<Arc<Caller>>().cloned().ok_or_else(|| ApiError::Unauthenticated("no caller".into()))
}

#[tonic::async_trait]
impl IdentificationService for IdentificationApi {
    // ---- RPCs whose bodies live in their own modules

    async fn list_customers(
        &self,
        request: Request<pb::ListCustomersRequest>,
    ) -> Result<Response<pb::ListCustomersResponse>, Status> {
        Ok(Response::new(customer_rpcs::list(self, request).await?))
    }

    async fn update_customer(
        &self,
        request: Request<pb::UpdateCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        Ok(Response::new(customer_rpcs::update(self, request).await?))
    }

    async fn add_identifier(
        &self,
        request: Request<pb::AddIdentifierRequest>,
    ) -> Result<Response<pb::CustomerIdentifier>, Status> {
        Ok(Response::new(identifier_rpcs::add(self, request).await?))
    }

    async fn remove_identifier(
        &self,
        request: Request<pb::RemoveIdentifierRequest>,
    ) -> Result<Response<pb::CustomerIdentifier>, Status> {
        Ok(Response::new(identifier_rpcs::remove(self, request).await?))
    }

    async fn list_identifiers(
        &self,
        request: Request<pb::ListIdentifiersRequest>,
    ) -> Result<Response<pb::ListIdentifiersResponse>, Status> {
        Ok(Response::new(identifier_rpcs::list(self, request).await?))
    }

    async fn create_identifier_rule(
        &self,
        request: Request<pb::CreateIdentifierRuleRequest>,
    ) -> Result<Response<pb::IdentifierRule>, Status> {
        Ok(Response::new(identifier_rpcs::create_rule(self, request).await?))
    }

    async fn list_identifier_rules(
        &self,
        request: Request<pb::ListIdentifierRulesRequest>,
    ) -> Result<Response<pb::ListIdentifierRulesResponse>, Status> {
        Ok(Response::new(identifier_rpcs::list_rules(self, request).await?))
    }

    async fn delete_identifier_rule(
        &self,
        request: Request<pb::DeleteIdentifierRuleRequest>,
    ) -> Result<Response<pb::DeleteIdentifierRuleResponse>, Status> {
        Ok(Response::new(identifier_rpcs::delete_rule(self, request).await?))
    }

    async fn merge_customers(
        &self,
        request: Request<pb::MergeCustomersRequest>,
    ) -> Result<Response<pb::MergeCustomersResponse>, Status> {
        Ok(Response::new(merge_rpcs::merge(self, request).await?))
    }

    async fn unmerge_customer(
        &self,
        request: Request<pb::UnmergeCustomerRequest>,
    ) -> Result<Response<pb::UnmergeCustomerResponse>, Status> {
        Ok(Response::new(merge_rpcs::unmerge(self, request).await?))
    }

    async fn list_merge_candidates(
        &self,
        request: Request<pb::ListMergeCandidatesRequest>,
    ) -> Result<Response<pb::ListMergeCandidatesResponse>, Status> {
        Ok(Response::new(merge_rpcs::list_candidates(self, request).await?))
    }

    async fn get_merge_candidate(
        &self,
        request: Request<pb::GetMergeCandidateRequest>,
    ) -> Result<Response<pb::MergeCandidate>, Status> {
        Ok(Response::new(merge_rpcs::get_candidate(self, request).await?))
    }

    async fn accept_merge_candidate(
        &self,
        request: Request<pb::AcceptMergeCandidateRequest>,
    ) -> Result<Response<pb::MergeCandidate>, Status> {
        Ok(Response::new(merge_rpcs::accept_candidate(self, request).await?))
    }

    async fn reject_merge_candidate(
        &self,
        request: Request<pb::RejectMergeCandidateRequest>,
    ) -> Result<Response<pb::MergeCandidate>, Status> {
        Ok(Response::new(merge_rpcs::reject_candidate(self, request).await?))
    }

    async fn erase_customer(
        &self,
        request: Request<pb::EraseCustomerRequest>,
    ) -> Result<Response<pb::ErasureReceipt>, Status> {
        Ok(Response::new(erasure_rpcs::erase(self, request).await?))
    }

    async fn get_erasure_receipt(
        &self,
        request: Request<pb::GetErasureReceiptRequest>,
    ) -> Result<Response<pb::ErasureReceipt>, Status> {
        Ok(Response::new(erasure_rpcs::get_receipt(self, request).await?))
    }

    async fn resolve_customer(
        &self,
        request: Request<pb::ResolveCustomerRequest>,
    ) -> Result<Response<pb::ResolveCustomerResponse>, Status> {
        Ok(Response::new(resolution_rpcs::resolve(self, request).await?))
    }

    async fn start_cleansing(
        &self,
        request: Request<pb::StartCleansingRequest>,
    ) -> Result<Response<common::Job>, Status> {
        Ok(Response::new(cleansing_rpcs::start(self, request).await?))
    }

    async fn list_duplicate_clusters(
        &self,
        request: Request<pb::ListDuplicateClustersRequest>,
    ) -> Result<Response<pb::ListDuplicateClustersResponse>, Status> {
        Ok(Response::new(cleansing_rpcs::list_clusters(self, request).await?))
    }

    async fn import_customers(
        &self,
        request: Request<tonic::Streaming<pb::ImportCustomersRequest>>,
    ) -> Result<Response<pb::ImportCustomersResponse>, Status> {
        Ok(Response::new(resolution_rpcs::import(self, request).await?))
    }

    // ---- RPCs written here
    async fn create_customer(
        &self,
        request: Request<pb::CreateCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let caller = caller(&request)?;
        let encoded = request.get_ref().encode_to_vec();
        let pb::CreateCustomerRequest { customer, request_id, provenance } = request.into_inner();
        let mut violations = Violations::new();
        let request_id = violations.check("", validate::request_id(&request_id, "request_id")).flatten();
        let (source, channel, observe_time) = violations
            .check("provenance", provenance_from_proto(provenance, &caller.name, Utc::now()))
            .unwrap_or_default();
        let new_customer = match customer {
            Some(customer) => violations.check("customer", new_customer_from_proto(customer)),
            None => {
                violations.add("customer", "is required");
                None
            }
        };
        violations.finish()?;
        let new_customer = new_customer.ok_or_else(|| ApiError::invalid("customer", "is invalid"))?;
        let limit = |kind| self.config.identifier_limits.of(kind);
        if let Some(i) = identifier_limits::first_over_limit(&new_customer.identifiers, limit) {
            let kind = new_customer.identifiers[i].kind;
            return Err(ApiError::invalid(
                format!("customer.identifiers[{i}]"),
                format!("a customer holds at most {} {} identifier(s)", limit(kind), kind.as_str()),
            )
            .into());
        }
        let provenance = self.fact_provenance(source, channel, observe_time);
        let hash = idempotency::request_hash(&encoded);
        let created = self
            .store
            .create_customer(&new_customer, &provenance, &caller.name, request_id.map(|id| (id, hash.as_slice())))
            .await?;
        let id = match created {
            Created::New(id) => {
                self.changed(&[id]).await;
                id
            }
            Created::Replayed(id) => id,
        };
        let customer = self.load_customer(id).await?;
        Ok(Response::new(customer_to_proto(&customer, caller.has_scope("pii.read"))))
    }

    async fn get_customer(&self, request: Request<pb::GetCustomerRequest>) -> Result<Response<pb::Customer>, Status> {
        let caller = caller(&request)?;
        let pb::GetCustomerRequest { name } = request.into_inner();
        let id = CustomerId(validate::resource_id(&name, "customers", "name")?);
        let customer = self.load_customer(id).await?;
        Ok(Response::new(customer_to_proto(&customer, caller.has_scope("pii.read"))))
    }

    async fn lookup_customer(
        &self,
        request: Request<pb::LookupCustomerRequest>,
    ) -> Result<Response<pb::LookupCustomerResponse>, Status> {
        let caller = caller(&request)?;
        let pb::LookupCustomerRequest { identifiers } = request.into_inner();
        let mut v = Violations::new();
        if identifiers.is_empty() || identifiers.len() > MAX_LOOKUP_IDENTIFIERS {
            v.add("identifiers", format!("give 1 to {MAX_LOOKUP_IDENTIFIERS} identifiers"));
        }
        let mut normalized = Vec::with_capacity(identifiers.len());
        for (i, id) in identifiers.iter().enumerate() {
            if let Some(n) = v.check(&format!("identifiers[{i}]"), identifier_from_proto(id)) {
                normalized.push(n);
            }
        }
        v.finish()?;
        for identifier in &normalized {
            let store = self.store.clone();
            let holder = self.cache.holder(identifier, || async move { store.holder(identifier).await }).await?;
            let Some(holder) = holder else { continue };
            let active = match self.store.active_customer(holder).await {
                Ok(id) => id,
                // An erased holder no longer identifies anyone.
                Err(ApiError::FailedPrecondition(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let customer = self.load_customer(active).await?;
            let pii = caller.has_scope("pii.read");
            return Ok(Response::new(pb::LookupCustomerResponse {
                customer: Some(customer_to_proto(&customer, pii)),
                matched_identifier: Some(identifier_to_proto(identifier, pii)),
            }));
        }
        Err(ApiError::NotFound("customers/- (no active customer holds these identifiers)".into()).into())
    }

    async fn record_profile_facts(
        &self,
        request: Request<pb::RecordProfileFactsRequest>,
    ) -> Result<Response<pb::RecordProfileFactsResponse>, Status> {
        let caller = caller(&request)?;
        let encoded = request.get_ref().encode_to_vec();
        let pb::RecordProfileFactsRequest { parent, facts, provenance, request_id } = request.into_inner();
        let now = Utc::now();
        let mut v = Violations::new();
        let customer = v.check("", validate::resource_id(&parent, "customers", "parent")).map(CustomerId);
        if facts.is_empty() || facts.len() > MAX_FACTS {
            v.add("facts", format!("give 1 to {MAX_FACTS} facts"));
        }
        let inputs = fact_inputs_from_proto(facts, now, &mut v);
        let (source, channel, observe_time) =
            v.check("provenance", provenance_from_proto(provenance, &caller.name, now)).unwrap_or_default();
        let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten();
        v.finish()?;
        let customer =
            self.store.active_customer(customer.ok_or_else(|| ApiError::invalid("parent", "invalid"))?).await?;
        let provenance = self.fact_provenance(source, channel, observe_time);
        let hash = idempotency::request_hash(&encoded);
        let stored = self
            .store
            .record_facts(customer, &inputs, &provenance, &caller.name, request_id.map(|id| (id, hash.as_slice())))
            .await?;
        self.changed(&[customer]).await;
        let all = self.store.facts(customer, "").await?;
        let pii = caller.has_scope("pii.read");
        let facts = stored
            .iter()
            .map(|f| {
                let is_current = facts::current(all.iter().filter(|o| o.key == f.key)).is_some_and(|c| c.id == f.id);
                fact_to_proto(customer, f, is_current, pii)
            })
            .collect();
        let customer = self.load_customer(customer).await?;
        Ok(Response::new(pb::RecordProfileFactsResponse { facts, customer: Some(customer_to_proto(&customer, pii)) }))
    }

    async fn get_profile_fact(
        &self,
        request: Request<pb::GetProfileFactRequest>,
    ) -> Result<Response<pb::ProfileFact>, Status> {
        let caller = caller(&request)?;
        let pb::GetProfileFactRequest { name } = request.into_inner();
        let (customer, fact_id) = name
            .split_once("/facts/")
            .and_then(|(parent, id)| {
                let customer = validate::resource_id(parent, "customers", "name").ok()?;
                Some((CustomerId(customer), id.parse::<i64>().ok()?))
            })
            .ok_or_else(|| ApiError::invalid("name", "must be customers/{customer_id}/facts/{fact_id}"))?;
        let (fact, is_current) = self.store.fact(customer, fact_id).await?.ok_or(ApiError::NotFound(name))?;
        Ok(Response::new(fact_to_proto(customer, &fact, is_current, caller.has_scope("pii.read"))))
    }

    async fn list_profile_facts(
        &self,
        request: Request<pb::ListProfileFactsRequest>,
    ) -> Result<Response<pb::ListProfileFactsResponse>, Status> {
        let caller = caller(&request)?;
        let pb::ListProfileFactsRequest { parent, page_size, page_token, key, include_history } = request.into_inner();
        let mut v = Violations::new();
        let customer = v.check("", validate::resource_id(&parent, "customers", "parent")).map(CustomerId);
        let size = v.check("", paging::page_size(page_size, "page_size"));
        if !key.is_empty() && FactKey::parse(key.strip_suffix('.').unwrap_or(&key)).is_err() {
            v.add("key", "must be a fact key, or a key prefix ending with \".\"");
        }
        let filter = format!("{parent}|{key}|{include_history}");
        let offset: Option<usize> =
            v.check("", paging::decode_page_token(&page_token, &filter, "page_token")).flatten();
        v.finish()?;
        let (Some(customer), Some(size)) = (customer, size) else {
            return Err(ApiError::invalid("", "invalid request").into());
        };
        let customer = self.store.active_customer(customer).await?;
        let all = self.store.facts(customer, &key).await?;
        // A customer's facts are few (tens to hundreds): page over them in memory.
        let currents = facts::current_per_key(&all);
        let mut listed: Vec<(&Fact, bool)> = if include_history {
            all.iter().map(|f| (f, currents.iter().any(|c| c.id == f.id))).collect()
        } else {
            currents.into_iter().filter(|f| f.value != FactValue::Cleared).map(|f| (f, true)).collect()
        };
        let start = offset.unwrap_or(0).min(listed.len());
        let end = (start + size as usize).min(listed.len());
        let next_page_token = if end < listed.len() { paging::next_page_token(&end, &filter) } else { String::new() };
        let pii = caller.has_scope("pii.read");
        let page = listed.drain(start..end).map(|(f, cur)| fact_to_proto(customer, f, cur, pii)).collect();
        Ok(Response::new(pb::ListProfileFactsResponse { facts: page, next_page_token }))
    }

    async fn next_questions(
        &self,
        request: Request<pb::NextQuestionsRequest>,
    ) -> Result<Response<pb::NextQuestionsResponse>, Status> {
        let pb::NextQuestionsRequest { customer, n, channel, exclude_keys } = request.into_inner();
        let mut v = Violations::new();
        let id = v.check("", validate::resource_id(&customer, "customers", "customer")).map(CustomerId);
        if !(0..=10).contains(&n) {
            v.add("n", "must be 0 to 10 (0 means 2)");
        }
        let channel = v.check("", convert::channel_from_proto(channel, "channel")).flatten();
        if exclude_keys.len() > 100 {
            v.add("exclude_keys", "at most 100 keys");
        }
        for (i, key) in exclude_keys.iter().enumerate() {
            if let Err(why) = FactKey::parse(key) {
                v.add(format!("exclude_keys[{i}]"), why);
            }
        }
        v.finish()?;
        let id = self.store.active_customer(id.ok_or_else(|| ApiError::invalid("customer", "invalid"))?).await?;
        let customer = self.load_customer(id).await?;
        let all = self.store.facts(id, "").await?;
        let known_keys: Vec<String> = facts::current_per_key(&all)
            .into_iter()
            .filter(|c| c.value != FactValue::Cleared)
            .map(|c| c.key.as_str().to_owned())
            .collect();
        let declined: Vec<(String, chrono::DateTime<Utc>)> = all
            .iter()
            .filter(|f| f.value == FactValue::Declined)
            .map(|f| (f.key.as_str().to_owned(), f.observe_time))
            .collect();
        let consents = self.store.consent_records(id).await?;
        let recorded: Vec<_> = consents.iter().map(|r| r.recorded.clone()).collect();
        let now = Utc::now();
        let profiling_allowed = consent::effective(&recorded, consent::Purpose::Profiling, channel, now).allowed;
        let known =
            drip::Known { kind: customer.data.kind, known_keys: &known_keys, declined: &declined, profiling_allowed };
        let cool_down = chrono::Duration::days(i64::from(self.config.question_cool_down_days));
        let count = if n == 0 { 2 } else { n as usize };
        let questions = drip::next_questions(&known, channel, &exclude_keys, cool_down, now, count)
            .into_iter()
            .map(|q| pb::Question {
                fact_key: q.key.to_owned(),
                value_type: match q.value_type {
                    ValueType::String => pb::FactValueType::String,
                    ValueType::Int => pb::FactValueType::Int,
                    ValueType::Double => pb::FactValueType::Double,
                    ValueType::Bool => pb::FactValueType::Bool,
                    ValueType::Date => pb::FactValueType::Date,
                } as i32,
                prompt: q.prompt.to_owned(),
                purpose: convert::purpose_to_proto(q.purpose) as i32,
                purpose_statement: q.purpose_statement.to_owned(),
                usefulness: q.usefulness,
                reason: q.reason.to_owned(),
            })
            .collect();
        Ok(Response::new(pb::NextQuestionsResponse { customer: id.resource_name(), questions }))
    }

    async fn record_consent(
        &self,
        request: Request<pb::RecordConsentRequest>,
    ) -> Result<Response<pb::ConsentRecord>, Status> {
        let caller = caller(&request)?;
        let encoded = request.get_ref().encode_to_vec();
        let pb::RecordConsentRequest {
            parent,
            purpose,
            channel,
            status,
            purpose_statement,
            statement_version,
            provenance,
            evidence_reference,
            expire_time,
            request_id,
        } = request.into_inner();
        let now = Utc::now();
        let mut v = Violations::new();
        let customer = v.check("", validate::resource_id(&parent, "customers", "parent")).map(CustomerId);
        let purpose = convert::purpose_from_proto(purpose);
        if purpose.is_none() {
            v.add("purpose", "is required and must be a known ConsentPurpose");
        }
        let channel = v.check("", convert::channel_from_proto(channel, "channel")).flatten();
        let decision = match pb::ConsentStatus::try_from(status) {
            Ok(pb::ConsentStatus::Granted) => Some(Decision::Granted),
            Ok(pb::ConsentStatus::Withdrawn) => Some(Decision::Withdrawn),
            _ => {
                v.add("status", "is required: CONSENT_STATUS_GRANTED or CONSENT_STATUS_WITHDRAWN");
                None
            }
        };
        if decision == Some(Decision::Granted) && purpose_statement.trim().is_empty() {
            v.add("purpose_statement", "is required for a grant: the statement the customer was shown");
        }
        v.check("", validate::text(&purpose_statement, 2000, "purpose_statement"));
        v.check("", validate::text(&statement_version, 64, "statement_version"));
        v.check("", validate::text(&evidence_reference, 200, "evidence_reference"));
        let expire_time = expire_time.and_then(|t| {
            let t = from_timestamp(&t);
            if t.is_none_or(|t| t <= now) {
                v.add("expire_time", "must be a valid time in the future");
            }
            t
        });
        let (source, captured_channel, observe_time) =
            v.check("provenance", provenance_from_proto(provenance, &caller.name, now)).unwrap_or_default();
        let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten();
        v.finish()?;
        let (Some(customer), Some(purpose), Some(decision)) = (customer, purpose, decision) else {
            return Err(ApiError::invalid("", "invalid request").into());
        };
        let customer = self.store.active_customer(customer).await?;
        let consent = NewConsent {
            purpose,
            channel,
            decision,
            purpose_statement,
            statement_version,
            source,
            captured_channel,
            evidence_reference,
            observe_time,
            expire_time: if decision == Decision::Granted { expire_time } else { None },
        };
        let hash = idempotency::request_hash(&encoded);
        let record = self
            .store
            .record_consent(customer, &consent, &caller.name, "", request_id.map(|id| (id, hash.as_slice())))
            .await?;
        Ok(Response::new(consent_record_to_proto(customer, &record, caller.has_scope("pii.read"))))
    }

    async fn get_consents(
        &self,
        request: Request<pb::GetConsentsRequest>,
    ) -> Result<Response<pb::GetConsentsResponse>, Status> {
        let pb::GetConsentsRequest { parent, purpose, channel } = request.into_inner();
        let mut v = Violations::new();
        let customer = v.check("", validate::resource_id(&parent, "customers", "parent")).map(CustomerId);
        let purpose_filter = v.check("", convert::optional_purpose_from_proto(purpose, "purpose")).flatten();
        let channel = v.check("", convert::channel_from_proto(channel, "channel")).flatten();
        v.finish()?;
        let customer =
            self.store.active_customer(customer.ok_or_else(|| ApiError::invalid("parent", "invalid"))?).await?;
        let records = self.store.consent_records(customer).await?;
        let recorded: Vec<_> = records.iter().map(|r| r.recorded.clone()).collect();
        let consents = consent::effective_all(&recorded, purpose_filter, channel, Utc::now())
            .iter()
            .map(|e| pb::Consent {
                purpose: convert::purpose_to_proto(e.purpose) as i32,
                channel: convert::channel_to_proto(e.channel) as i32,
                status: convert::status_to_proto(e) as i32,
                allowed: e.allowed,
                basis: convert::basis_to_proto(e.basis) as i32,
                record: e.record.map(|r| consent_record_name(customer, r.id)).unwrap_or_default(),
                observe_time: e.record.map(|r| timestamp(r.observe_time)),
                expire_time: e.record.and_then(|r| r.expire_time).map(timestamp),
            })
            .collect();
        Ok(Response::new(pb::GetConsentsResponse { customer: customer.resource_name(), consents }))
    }

    async fn list_consent_history(
        &self,
        request: Request<pb::ListConsentHistoryRequest>,
    ) -> Result<Response<pb::ListConsentHistoryResponse>, Status> {
        let caller = caller(&request)?;
        let pb::ListConsentHistoryRequest { parent, page_size, page_token, purpose, channel, period } =
            request.into_inner();
        let mut v = Violations::new();
        let customer = v.check("", validate::resource_id(&parent, "customers", "parent")).map(CustomerId);
        let size = v.check("", paging::page_size(page_size, "page_size"));
        let purpose = v.check("", convert::optional_purpose_from_proto(purpose, "purpose")).flatten();
        let channel = v.check("", convert::channel_from_proto(channel, "channel")).flatten();
        let (start, end) = v.check("period", period_from_proto(period)).unwrap_or_default();
        let filter = format!("{parent}|{purpose:?}|{channel:?}|{start:?}|{end:?}");
        let cursor = v.check("", paging::decode_page_token(&page_token, &filter, "page_token")).flatten();
        v.finish()?;
        let (Some(customer), Some(size)) = (customer, size) else {
            return Err(ApiError::invalid("", "invalid request").into());
        };
        let customer = self.store.active_customer(customer).await?;
        let mut records =
            self.store.consent_history(customer, purpose, channel, (start, end), cursor, i64::from(size) + 1).await?;
        let next_page_token = if records.len() > size as usize {
            records.truncate(size as usize);
            records
                .last()
                .map(|r| paging::next_page_token(&(r.recorded.observe_time, r.recorded.id), &filter))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let pii = caller.has_scope("pii.read");
        Ok(Response::new(pb::ListConsentHistoryResponse {
            records: records.iter().map(|r| consent_record_to_proto(customer, r, pii)).collect(),
            next_page_token,
        }))
    }

    idic_platform::shared_rpcs!();
}

/// Source, capture channel and observation time from a provenance (defaults: the
/// caller's name, no channel, now). The observation may not lie in the future by more
/// than five minutes (clock skew) nor before 1900.
fn provenance_from_proto(
    provenance: Option<pb::Provenance>,
    caller: &str,
    now: chrono::DateTime<Utc>,
) -> ApiResult<(String, Option<Channel>, chrono::DateTime<Utc>)> {
    let Some(pb::Provenance { source, channel, observe_time }) = provenance else {
        return Ok((caller.to_owned(), None, now));
    };
    let mut v = Violations::new();
    let source = if source.is_empty() { caller.to_owned() } else { source };
    if source.chars().count() > 100 || !source.chars().all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c)) {
        v.add("source", "must be 1 to 100 letters, digits or ._:/-");
    }
    let channel = v.check("", convert::channel_from_proto(channel, "channel")).flatten();
    let observed = match observe_time {
        None => now,
        Some(t) => match from_timestamp(&t) {
            Some(t) if t <= now + chrono::Duration::minutes(5) && t.year() >= 1900 => t,
            _ => {
                v.add("observe_time", "must be a valid time after 1900 and not in the future");
                now
            }
        },
    };
    v.finish()?;
    Ok((source, channel, observed))
}

/// A proto fact value for `key`, checked; `None` (unset) clears the key.
/// Facts as sent (each key at most once), checked; violations name `facts[i]...`.
fn fact_inputs_from_proto(
    facts: Vec<pb::ProfileFactInput>,
    now: chrono::DateTime<Utc>,
    v: &mut Violations,
) -> Vec<(FactKey, FactValue)> {
    let mut inputs: Vec<(FactKey, FactValue)> = Vec::with_capacity(facts.len());
    for (i, fact) in facts.into_iter().enumerate() {
        let pb::ProfileFactInput { key, value } = fact;
        let key = match FactKey::parse(&key) {
            Ok(k) => k,
            Err(why) => {
                v.add(format!("facts[{i}].key"), why);
                continue;
            }
        };
        if inputs.iter().any(|(k, _)| *k == key) {
            v.add(format!("facts[{i}].key"), "a key may appear once per request");
            continue;
        }
        if let Some(value) = v.check(&format!("facts[{i}]"), fact_value_from_proto(&key, value, now)) {
            inputs.push((key, value));
        }
    }
    inputs
}

fn fact_value_from_proto(
    key: &FactKey,
    value: Option<pb::FactValue>,
    now: chrono::DateTime<Utc>,
) -> ApiResult<FactValue> {
    use pb::fact_value::Kind;
    let value = match value.and_then(|v| v.kind) {
        None => FactValue::Cleared,
        Some(Kind::StringValue(s)) => FactValue::String(s.trim().to_owned()),
        Some(Kind::IntValue(i)) => FactValue::Int(i),
        Some(Kind::DoubleValue(d)) => FactValue::Double(d),
        Some(Kind::BoolValue(b)) => FactValue::Bool(b),
        Some(Kind::DateValue(d)) => {
            FactValue::Date(date_from_proto(&d, now).map_err(|why| ApiError::invalid("value.date_value", why))?)
        }
        Some(Kind::Declined(_)) => FactValue::Declined,
    };
    value.check().map_err(|why| ApiError::invalid("value", why))?;
    if let (Some(required), Some(actual)) = (key.field_type(), value.value_type())
        && required != actual
    {
        return Err(ApiError::invalid("value", format!("{} holds {} values", key.as_str(), required.as_str())));
    }
    if key.as_str() == "preferred_channel"
        && let FactValue::String(name) = &value
        && common::Channel::from_str_name(name).is_none()
    {
        return Err(ApiError::invalid("value.string_value", "must be a Channel value name such as CHANNEL_EMAIL"));
    }
    Ok(value)
}

/// A fact as the API shows it; values of name and birth-date keys masked unless `pii`.
fn fact_to_proto(customer: CustomerId, fact: &Fact, current: bool, pii: bool) -> pb::ProfileFact {
    use pb::fact_value::Kind;
    const NAME_KEYS: &[&str] =
        &["given_name", "family_name", "display_name", "preferred_name", "organization_name", "job_title"];
    let key = fact.key.as_str();
    let kind = match &fact.value {
        FactValue::String(s) if !pii && NAME_KEYS.contains(&key) => Some(Kind::StringValue(masking::mask_name(s))),
        FactValue::String(s) => Some(Kind::StringValue(s.clone())),
        FactValue::Int(i) => Some(Kind::IntValue(*i)),
        FactValue::Double(d) => Some(Kind::DoubleValue(*d)),
        FactValue::Bool(b) => Some(Kind::BoolValue(*b)),
        FactValue::Date(d) => Some(Kind::DateValue(pb::Date {
            year: d.year.map_or(0, i32::from),
            month: if pii || key != "birth_date" { i32::from(d.month) } else { 0 },
            day: if pii || key != "birth_date" { i32::from(d.day) } else { 0 },
        })),
        FactValue::Declined => Some(Kind::Declined(true)),
        FactValue::Cleared => None,
    };
    pb::ProfileFact {
        name: fact_name(customer, fact.id),
        key: key.to_owned(),
        value: kind.map(|k| pb::FactValue { kind: Some(k) }),
        provenance: Some(pb::Provenance {
            source: fact.source.clone(),
            channel: common::Channel::from_str_name(&fact.channel).unwrap_or(common::Channel::Unspecified) as i32,
            observe_time: Some(timestamp(fact.observe_time)),
        }),
        record_time: Some(timestamp(fact.record_time)),
        recorded_by: fact.recorded_by.clone(),
        trusted: fact.trusted,
        current,
        origin_customer: if fact.origin_customer == customer.0 {
            String::new()
        } else {
            CustomerId(fact.origin_customer).resource_name()
        },
    }
}

fn from_timestamp(t: &prost_types::Timestamp) -> Option<chrono::DateTime<Utc>> {
    u32::try_from(t.nanos).ok().and_then(|nanos| chrono::DateTime::<Utc>::from_timestamp(t.seconds, nanos))
}

fn consent_record_to_proto(customer: CustomerId, record: &ConsentRecord, pii: bool) -> pb::ConsentRecord {
    let r = &record.recorded;
    pb::ConsentRecord {
        name: consent_record_name(customer, r.id),
        purpose: convert::purpose_to_proto(r.purpose) as i32,
        channel: convert::channel_to_proto(r.channel) as i32,
        status: convert::decision_to_proto(r.decision) as i32,
        purpose_statement: record.purpose_statement.clone(),
        statement_version: record.statement_version.clone(),
        provenance: Some(pb::Provenance {
            source: record.source.clone(),
            channel: convert::channel_to_proto(record.captured_channel) as i32,
            observe_time: Some(timestamp(r.observe_time)),
        }),
        evidence_reference: if pii || record.evidence_reference.is_empty() {
            record.evidence_reference.clone()
        } else {
            "***".to_owned()
        },
        expire_time: r.expire_time.map(timestamp),
        record_time: Some(timestamp(record.record_time)),
        recorded_by: record.recorded_by.clone(),
    }
}

/// A proto customer as a validated, normalised new customer. Output-only fields are
/// ignored; every violation names its field relative to the customer.
fn new_customer_from_proto(customer: pb::Customer) -> ApiResult<NewCustomer> {
    let pb::Customer {
        name: _,
        kind,
        roles,
        display_name,
        given_name,
        family_name,
        preferred_name,
        organization_name,
        birth_date,
        identifiers,
        parent_customer,
        job_title,
        preferred_language,
        time_zone,
        preferred_channel,
        state: _,
        merged_into: _,
        erasure: _,
        create_time: _,
        update_time: _,
        etag: _,
        pii_masked: _,
    } = customer;
    let mut v = Violations::new();
    let kind = v.check("", customer_kind_from_proto(kind)).and_then(|kind| {
        if kind.is_none() {
            v.add("kind", "is required: CUSTOMER_KIND_PERSON or CUSTOMER_KIND_ORGANIZATION");
        }
        kind
    });
    let domain_roles = v.check("", roles_from_proto(&roles)).unwrap_or_default();
    for (field, value) in [
        ("display_name", &display_name),
        ("given_name", &given_name),
        ("family_name", &family_name),
        ("preferred_name", &preferred_name),
        ("organization_name", &organization_name),
        ("job_title", &job_title),
        ("preferred_language", &preferred_language),
        ("time_zone", &time_zone),
    ] {
        v.check("", check_customer_text(field, value));
    }
    let birth_date =
        birth_date.and_then(|d| date_from_proto(&d, Utc::now()).map_err(|why| v.add("birth_date", why)).ok());
    if identifiers.len() > MAX_IDENTIFIERS {
        v.add("identifiers", format!("at most {MAX_IDENTIFIERS} identifiers"));
    }
    let mut normalized: Vec<identifier::Identifier> = Vec::with_capacity(identifiers.len());
    for (i, id) in identifiers.iter().enumerate() {
        if let Some(n) = v.check(&format!("identifiers[{i}]"), identifier_from_proto(id)) {
            // Positions must stay those of the request, so a repeat is refused, not dropped.
            if normalized.contains(&n) {
                v.add(format!("identifiers[{i}]"), "repeats an earlier identifier");
            } else {
                normalized.push(n);
            }
        }
    }
    let parent = v.check("", parent_from_proto(&parent_customer)).flatten();
    let preferred_channel = v.check("", preferred_channel_from_proto(preferred_channel)).unwrap_or_default();
    v.finish()?;
    let kind = kind.ok_or_else(|| ApiError::invalid("kind", "is required"))?;
    let new_customer = NewCustomer {
        kind,
        roles: domain_roles,
        display_name: display_name.trim().to_owned(),
        given_name: given_name.trim().to_owned(),
        family_name: family_name.trim().to_owned(),
        preferred_name: preferred_name.trim().to_owned(),
        organization_name: organization_name.trim().to_owned(),
        birth_date,
        identifiers: normalized,
        parent,
        job_title: job_title.trim().to_owned(),
        preferred_language: preferred_language.trim().to_owned(),
        time_zone: time_zone.trim().to_owned(),
        preferred_channel,
    };
    new_customer.finish().map_err(|e| ApiError::InvalidArgument(vec![FieldViolation::new(e.field, e.description)]))
}

/// The text fields of a Customer a caller writes, with their longest value in characters.
const CUSTOMER_TEXT_FIELDS: &[(&str, usize)] = &[
    ("display_name", 300),
    ("given_name", 200),
    ("family_name", 200),
    ("preferred_name", 200),
    ("organization_name", 300),
    ("job_title", 200),
    ("preferred_language", 35),
    ("time_zone", 64),
];

/// Checks the value of a Customer text field (one of [`CUSTOMER_TEXT_FIELDS`]): not too
/// long, no control characters.
fn check_customer_text(field: &str, value: &str) -> ApiResult<()> {
    let max = CUSTOMER_TEXT_FIELDS.iter().find(|(name, _)| *name == field).map_or(0, |(_, max)| *max);
    validate::max_chars(value, max, field)?;
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// A proto customer kind; `None` for UNSPECIFIED, INVALID_ARGUMENT on `kind` for an
/// unknown value.
fn customer_kind_from_proto(kind: i32) -> ApiResult<Option<CustomerKind>> {
    match pb::CustomerKind::try_from(kind) {
        Ok(pb::CustomerKind::Unspecified) => Ok(None),
        Ok(pb::CustomerKind::Person) => Ok(Some(CustomerKind::Person)),
        Ok(pb::CustomerKind::Organization) => Ok(Some(CustomerKind::Organization)),
        Err(_) => Err(ApiError::invalid("kind", format!("{kind} is not a CustomerKind"))),
    }
}

/// Proto roles, sorted and without repeats; each unknown or UNSPECIFIED one is a
/// violation of `roles[i]`.
fn roles_from_proto(roles: &[i32]) -> ApiResult<Vec<CustomerRole>> {
    let mut v = Violations::new();
    let mut checked = Vec::with_capacity(roles.len());
    for (i, role) in roles.iter().enumerate() {
        match pb::CustomerRole::try_from(*role) {
            Ok(pb::CustomerRole::Distributor) => checked.push(CustomerRole::Distributor),
            Ok(pb::CustomerRole::Partner) => checked.push(CustomerRole::Partner),
            _ => v.add(format!("roles[{i}]"), "must be DISTRIBUTOR or PARTNER"),
        }
    }
    v.finish()?;
    checked.sort();
    checked.dedup();
    Ok(checked)
}

/// A proto date as a real calendar day (year 0: unknown) not after `now`; the error
/// says what is wrong.
fn date_from_proto(date: &pb::Date, now: chrono::DateTime<Utc>) -> Result<BirthDate, String> {
    const INVALID: &str = "is not a valid date";
    let year = match date.year {
        0 => None,
        y => Some(u16::try_from(y).map_err(|_| INVALID)?),
    };
    let (Ok(month), Ok(day)) = (u8::try_from(date.month), u8::try_from(date.day)) else {
        return Err(INVALID.to_owned());
    };
    BirthDate::new(year, month, day, now).map_err(str::to_owned)
}

/// A parent customer's name; `None` when empty, INVALID_ARGUMENT on `parent_customer`
/// when malformed.
fn parent_from_proto(parent_customer: &str) -> ApiResult<Option<CustomerId>> {
    if parent_customer.is_empty() {
        return Ok(None);
    }
    validate::resource_id(parent_customer, "customers", "parent_customer").map(|id| Some(CustomerId(id)))
}

/// A preferred channel as a customer stores it (the proto name, empty for UNSPECIFIED);
/// INVALID_ARGUMENT on `preferred_channel` for an unknown value.
fn preferred_channel_from_proto(channel: i32) -> ApiResult<String> {
    match common::Channel::try_from(channel) {
        Ok(common::Channel::Unspecified) => Ok(String::new()),
        Ok(channel) => Ok(channel.as_str_name().to_owned()),
        Err(_) => Err(ApiError::invalid("preferred_channel", format!("{channel} is not a Channel"))),
    }
}

/// The bounds of a period: from its start (inclusive) to its end (exclusive), each optional.
type TimeBounds = (Option<chrono::DateTime<Utc>>, Option<chrono::DateTime<Utc>>);

/// The bounds of a proto period; INVALID_ARGUMENT on `start_time` or `end_time` for an
/// invalid time.
fn period_from_proto(period: Option<common::Period>) -> ApiResult<TimeBounds> {
    let Some(common::Period { start_time, end_time }) = period else { return Ok((None, None)) };
    let mut v = Violations::new();
    let mut bound = |t: Option<prost_types::Timestamp>, field: &str| {
        t.and_then(|t| {
            let parsed = from_timestamp(&t);
            if parsed.is_none() {
                v.add(field, "is not a valid time");
            }
            parsed
        })
    };
    let bounds = (bound(start_time, "start_time"), bound(end_time, "end_time"));
    v.finish()?;
    Ok(bounds)
}

/// A proto identifier, normalised; violations name `kind`, `namespace` or `value`.
fn identifier_from_proto(id: &common::Identifier) -> ApiResult<identifier::Identifier> {
    let Some(kind) = identifier_kind_from_proto(id.kind) else {
        return Err(ApiError::invalid("kind", "is required and must be a known IdentifierKind"));
    };
    identifier::normalize(kind, &id.value, &id.namespace).map_err(|e| match e {
        identifier::IdentifierError::MissingNamespace => ApiError::invalid("namespace", e.to_string()),
        e => ApiError::invalid("value", e.to_string()),
    })
}

/// A normalised identifier as the API shows it; masked unless `pii`.
fn identifier_to_proto(i: &identifier::Identifier, pii: bool) -> common::Identifier {
    common::Identifier {
        kind: identifier_kind_to_proto(i.kind) as i32,
        value: if pii { i.value.clone() } else { masking::mask_identifier(i.kind, &i.value) },
        namespace: i.namespace.clone(),
    }
}

fn identifier_kind_from_proto(kind: i32) -> Option<IdentifierKind> {
    Some(match common::IdentifierKind::try_from(kind).ok()? {
        common::IdentifierKind::Unspecified => return None,
        common::IdentifierKind::Email => IdentifierKind::Email,
        common::IdentifierKind::Phone => IdentifierKind::Phone,
        common::IdentifierKind::PostalAddress => IdentifierKind::PostalAddress,
        common::IdentifierKind::LoyaltyCard => IdentifierKind::LoyaltyCard,
        common::IdentifierKind::AccountNumber => IdentifierKind::AccountNumber,
        common::IdentifierKind::DeviceId => IdentifierKind::DeviceId,
        common::IdentifierKind::NationalId => IdentifierKind::NationalId,
        common::IdentifierKind::ExternalId => IdentifierKind::ExternalId,
    })
}

fn identifier_kind_to_proto(kind: IdentifierKind) -> common::IdentifierKind {
    match kind {
        IdentifierKind::Email => common::IdentifierKind::Email,
        IdentifierKind::Phone => common::IdentifierKind::Phone,
        IdentifierKind::PostalAddress => common::IdentifierKind::PostalAddress,
        IdentifierKind::LoyaltyCard => common::IdentifierKind::LoyaltyCard,
        IdentifierKind::AccountNumber => common::IdentifierKind::AccountNumber,
        IdentifierKind::DeviceId => common::IdentifierKind::DeviceId,
        IdentifierKind::NationalId => common::IdentifierKind::NationalId,
        IdentifierKind::ExternalId => common::IdentifierKind::ExternalId,
    }
}

/// A stored customer as the API shows it; personal values masked unless `pii`.
fn customer_to_proto(customer: &Customer, pii: bool) -> pb::Customer {
    let data = &customer.data;
    let is_person = data.kind == CustomerKind::Person;
    let name = |value: &str| if pii { value.to_owned() } else { masking::mask_name(value) };
    pb::Customer {
        name: customer.id.resource_name(),
        kind: match data.kind {
            CustomerKind::Person => pb::CustomerKind::Person,
            CustomerKind::Organization => pb::CustomerKind::Organization,
        } as i32,
        roles: data
            .roles
            .iter()
            .map(|r| match r {
                CustomerRole::Distributor => pb::CustomerRole::Distributor as i32,
                CustomerRole::Partner => pb::CustomerRole::Partner as i32,
            })
            .collect(),
        display_name: if is_person { name(&data.display_name) } else { data.display_name.clone() },
        given_name: name(&data.given_name),
        family_name: name(&data.family_name),
        preferred_name: name(&data.preferred_name),
        organization_name: if is_person { name(&data.organization_name) } else { data.organization_name.clone() },
        birth_date: data.birth_date.map(|b| pb::Date {
            year: b.year.map_or(0, i32::from),
            month: if pii { i32::from(b.month) } else { 0 },
            day: if pii { i32::from(b.day) } else { 0 },
        }),
        identifiers: data.identifiers.iter().map(|i| identifier_to_proto(i, pii)).collect(),
        parent_customer: data.parent.map(|p| p.resource_name()).unwrap_or_default(),
        job_title: name(&data.job_title),
        preferred_language: data.preferred_language.clone(),
        time_zone: data.time_zone.clone(),
        preferred_channel: common::Channel::from_str_name(&data.preferred_channel)
            .unwrap_or(common::Channel::Unspecified) as i32,
        state: match customer.state {
            CustomerState::Active => pb::CustomerState::Active,
            CustomerState::Merged => pb::CustomerState::Merged,
            CustomerState::Erased => pb::CustomerState::Erased,
        } as i32,
        merged_into: customer.merged_into.map(|m| m.resource_name()).unwrap_or_default(),
        erasure: customer.erasure.map(erasure_name).unwrap_or_default(),
        create_time: Some(timestamp(customer.create_time)),
        update_time: Some(timestamp(customer.update_time)),
        etag: format!("v{}", customer.version),
        pii_masked: !pii,
    }
}
