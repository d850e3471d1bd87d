//! GetContactContext: what the person about to talk to a customer needs, in one call.
//! This service's parts come from its own tables; consents (identification), value and
//! segments (segmentation) and the next best offer (customization) are asked for
//! concurrently with the caller's token, and a part whose service does not answer in
//! time, is down, or refuses the caller is listed as unavailable instead of failing the
//! call.

use std::{future::Future, time::Duration};

use idic_platform::{
    ApiError, ApiResult,
    jobs::timestamp,
    runtime::{PeerService, Peers},
    validate::Violations,
};
use idic_proto::{
    common::v1 as common,
    customization::v1::{self as custom, customization_service_client::CustomizationServiceClient},
    identification::v1::{self as ident, identification_service_client::IdentificationServiceClient},
    interaction::v1::{self as pb, ContactContextPart as Part, UnavailableReason},
    segmentation::v1::{self as seg, segmentation_service_client::SegmentationServiceClient},
};
use tonic::{Code, Request, Status};
use uuid::Uuid;

use super::{InteractionApi, caller, complaint_rpcs, convert, manager_rpcs, policy_rpcs};
use crate::{
    domain::complaints::state,
    store::{complaints, contact_policy, customers::Standing, interactions::TimelineFilter, managers},
};
use idic_platform::customers::Lookup;

/// Most recent interactions one context may hold.
const MAX_RECENT: i32 = 50;
/// Recent interactions when the request says 0.
const DEFAULT_RECENT: i32 = 10;
/// How long another service's part is waited for, at most (the caller's deadline may be
/// shorter).
const PART_DEADLINE: Duration = Duration::from_millis(800);
/// Open complaints listed, at most.
const MAX_OPEN_COMPLAINTS: i64 = 100;

/// Why a remote part is missing.
fn unavailable(status: &Status) -> UnavailableReason {
    match status.code() {
        Code::DeadlineExceeded | Code::Cancelled => UnavailableReason::Timeout,
        Code::PermissionDenied | Code::Unauthenticated => UnavailableReason::PermissionDenied,
        _ => UnavailableReason::ServiceUnavailable,
    }
}

/// Runs one remote call within [`PART_DEADLINE`].
async fn bounded<T>(call: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
    match tokio::time::timeout(PART_DEADLINE, call).await {
        Ok(answer) => answer,
        Err(_) => Err(Status::deadline_exceeded("the part's service did not answer in time")),
    }
}

/// Assembles the context (GetContactContext).
pub(super) async fn get(
    api: &InteractionApi,
    request: Request<pb::GetContactContextRequest>,
) -> ApiResult<pb::ContactContext> {
    let pii = caller(&request)?.has_scope("pii.read");
    let pb::GetContactContextRequest { customer, channel, parts, recent_limit } = request.into_inner();
    let mut v = Violations::new();
    let reference = v.check("customer", convert::reference_from_proto(customer));
    let channel = match channel {
        0 => 0,
        c => v.check("", convert::channel_from_proto(c, "channel")).map_or(0, i32::from),
    };
    let mut wanted = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        match Part::try_from(*part) {
            Ok(Part::Unspecified) | Err(_) => v.add(format!("parts[{i}]"), "must be a known part"),
            Ok(part) => wanted.push(part),
        }
    }
    if !(0..=MAX_RECENT).contains(&recent_limit) {
        v.add("recent_limit", format!("must be between 0 and {MAX_RECENT}"));
    }
    v.finish()?;
    let reference = reference.ok_or_else(|| ApiError::invalid("customer", "is invalid"))?;
    let wants = |part: Part| wanted.is_empty() || wanted.contains(&part);

    let customer = api.customers().resolve(Lookup { reference: &reference, create: false }).await?;
    let customer = match api.store().standings(&[customer]).await?.get(&customer) {
        Some(Standing::Erased) => return Err(ApiError::NotFound(format!("customers/{customer}"))),
        Some(Standing::Current(current)) => *current,
        None => customer,
    };
    let mut context = pb::ContactContext { customer_id: customer.to_string(), ..Default::default() };
    let peers = api.peers();
    let (consents, value, offer, local) = tokio::join!(
        async { if wants(Part::Consents) { Some(consents(peers, customer).await) } else { None } },
        async { if wants(Part::Value) { Some(value(peers, customer).await) } else { None } },
        async { if wants(Part::NextBestOffer) { Some(next_best_offer(peers, customer, channel).await) } else { None } },
        local_parts(api, customer, &wants, recent_limit, pii, &mut context),
    );
    local?;
    let mut missing = |part: Part, status: &Status| {
        context.unavailable_parts.push(pb::UnavailablePart { part: part as i32, reason: unavailable(status) as i32 });
    };
    match consents {
        Some(Ok(consents)) => context.consents = consents,
        Some(Err(status)) => missing(Part::Consents, &status),
        None => {}
    }
    match value {
        Some(Ok((value, segments))) => {
            context.value = value;
            context.segments = segments;
        }
        Some(Err(status)) => missing(Part::Value, &status),
        None => {}
    }
    match offer {
        Some(Ok((offer, reason))) => {
            context.next_best_offer = offer;
            context.no_offer_reason = reason;
        }
        Some(Err(status)) => missing(Part::NextBestOffer, &status),
        None => {}
    }
    Ok(context)
}

/// The parts this service holds: history, open complaints, do-not-contact, the account
/// manager.
async fn local_parts(
    api: &InteractionApi,
    customer: Uuid,
    wants: &impl Fn(Part) -> bool,
    recent_limit: i32,
    pii: bool,
    context: &mut pb::ContactContext,
) -> ApiResult<()> {
    let mut customers = vec![customer];
    customers.extend(api.store().merged_into(customer).await?);
    if wants(Part::History) {
        let limit = if recent_limit == 0 { DEFAULT_RECENT } else { recent_limit };
        let recent = api.store().timeline(&customers, &TimelineFilter::default(), None, limit.into()).await?;
        context.recent_interactions = recent.iter().map(|i| convert::interaction_to_proto(i, pii)).collect();
        let last = api.store().last_per_channel(&customers).await?;
        context.last_contacts = last
            .iter()
            .map(|i| pb::LastContact {
                channel: i.channel.into(),
                interaction: Some(convert::interaction_to_proto(i, pii)),
            })
            .collect();
    }
    if wants(Part::Complaints) {
        let filter = complaints::ComplaintFilter {
            customers: Some(customers.clone()),
            state: Some(state::OPEN),
            ..Default::default()
        };
        let mut open = complaints::list(&api.store().pool, &filter, None, MAX_OPEN_COMPLAINTS).await?;
        open.reverse(); // listed newest first; the context wants the oldest first
        context.open_complaints = open.iter().map(|c| complaint_rpcs::complaint_to_proto(c, pii)).collect();
    }
    if wants(Part::DoNotContact) {
        let entry = contact_policy::list_do_not_contact(&api.store().pool, Some(customer), None, None, 1).await?;
        context.do_not_contact = entry.first().map(policy_rpcs::entry_to_proto);
    }
    if wants(Part::AccountManager) {
        let mut conn = api.store().pool.acquire().await?;
        if let Some((id, assigned_at)) = managers::book_of(&mut conn, &customers).await? {
            let manager = managers::get(&mut conn, &id).await?;
            context.account_manager = manager.as_ref().map(manager_rpcs::manager_to_proto);
            context.account_manager_assign_time = manager.is_some().then(|| timestamp(assigned_at));
        }
    }
    Ok(())
}

/// The customer's consents, from identification.
async fn consents(peers: &Peers, customer: Uuid) -> Result<Vec<pb::ConsentStatus>, Status> {
    let channel = peers.channel(PeerService::Identification).map_err(|e| Status::unavailable(e.to_string()))?;
    let mut client = IdentificationServiceClient::new(channel);
    let request = ident::GetConsentsRequest { parent: format!("customers/{customer}"), purpose: 0, channel: 0 };
    let answer = bounded(client.get_consents(request)).await?.into_inner();
    Ok(answer
        .consents
        .into_iter()
        .map(|c| pb::ConsentStatus {
            purpose: c.purpose,
            channel: c.channel,
            granted: c.status == ident::ConsentStatus::Granted as i32,
            update_time: c.observe_time,
        })
        .collect())
}

/// The customer's value and segments, from segmentation. A customer segmentation has not
/// scored yet has no value (not an unavailable part).
async fn value(
    peers: &Peers,
    customer: Uuid,
) -> Result<(Option<pb::CustomerValue>, Vec<pb::SegmentMembership>), Status> {
    let channel = peers.channel(PeerService::Segmentation).map_err(|e| Status::unavailable(e.to_string()))?;
    let mut client = SegmentationServiceClient::new(channel);
    let mut other = client.clone();
    let (value, segments) = tokio::join!(
        bounded(
            client.get_customer_value(seg::GetCustomerValueRequest { name: format!("customers/{customer}/value") })
        ),
        bounded(
            other.get_customer_segments(seg::GetCustomerSegmentsRequest { customer: format!("customers/{customer}") })
        ),
    );
    let value = match value {
        Ok(v) => {
            let v = v.into_inner();
            let tier = seg::Tier::try_from(v.tier).map(|t| t.as_str_name().trim_start_matches("TIER_").to_owned());
            Some(pb::CustomerValue {
                tier: tier.ok().filter(|t| t != "UNSPECIFIED").unwrap_or_default(),
                lifetime_value: v.prediction.as_ref().and_then(|p| p.clv.clone()),
                p_alive: v.prediction.as_ref().map(|p| p.p_alive),
                score_time: v.score_time,
            })
        }
        Err(status) if status.code() == Code::NotFound => None,
        Err(status) => return Err(status),
    };
    let segments = match segments {
        Ok(s) => s
            .into_inner()
            .memberships
            .into_iter()
            .map(|m| pb::SegmentMembership { segment: m.segment, display_name: m.display_name })
            .collect(),
        Err(status) if status.code() == Code::NotFound => Vec::new(),
        Err(status) => return Err(status),
    };
    Ok((value, segments))
}

/// The next best offer for `channel`, from customization, or why there is none.
async fn next_best_offer(
    peers: &Peers,
    customer: Uuid,
    channel: i32,
) -> Result<(Option<pb::NextBestOffer>, String), Status> {
    let grpc = peers.channel(PeerService::Customization).map_err(|e| Status::unavailable(e.to_string()))?;
    let mut client = CustomizationServiceClient::new(grpc);
    // The person about to talk to the customer is an agent unless the caller says otherwise.
    let channel = if channel == 0 { common::Channel::CallCentre as i32 } else { channel };
    let request = custom::NextBestOfferRequest {
        customer: Some(common::CustomerRef {
            r#ref: Some(common::customer_ref::Ref::CustomerId(customer.to_string())),
        }),
        channel,
        ..Default::default()
    };
    let answer = match bounded(client.next_best_offer(request)).await {
        Ok(answer) => answer.into_inner(),
        Err(status) if status.code() == Code::NotFound => return Ok((None, "customer unknown".into())),
        Err(status) => return Err(status),
    };
    match answer.decision {
        Some(decision) => Ok((
            Some(pb::NextBestOffer {
                offer: decision.offer,
                title: decision.display_name,
                reason: decision.reasons.join("; "),
            }),
            String::new(),
        )),
        None => {
            let reason = custom::NoOfferReason::try_from(answer.no_offer_reason)
                .map(|r| r.as_str_name().trim_start_matches("NO_OFFER_REASON_").to_lowercase().replace('_', " "))
                .unwrap_or_default();
            Ok((None, reason))
        }
    }
}
