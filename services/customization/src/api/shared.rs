//! What several customization RPC modules share: client-chosen ids, ids derived from a
//! request id, clients of the peer services, and the mapping of interaction's contact-policy
//! denials to this service's refusal reasons.

use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use idic_platform::{ApiError, ApiResult, client::PeerChannel, runtime::PeerService, validate::Violations};
use idic_proto::{
    customization::v1 as pb,
    interaction::v1::{self as ipb, interaction_service_client::InteractionServiceClient},
    segmentation::v1::segmentation_service_client::SegmentationServiceClient,
};
use uuid::Uuid;

use super::CustomizationApi;

/// `^[a-z][a-z0-9-]{0,62}$`: the shape of a client-chosen id.
pub(super) fn is_client_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && id.len() <= 63
}

/// The id of a new resource of `collection`: the client's, else one derived from the request
/// id (so a retry finds the resource its first attempt created), else a fresh UUIDv7.
pub(super) fn new_id(collection: &str, wanted: String, request_id: Option<&str>) -> String {
    if !wanted.is_empty() {
        return wanted;
    }
    match request_id {
        Some(key) => {
            let digest = idic_platform::idempotency::request_hash(format!("{collection}:{key}").as_bytes());
            let bytes: [u8; 16] = digest.get(..16).and_then(|b| b.try_into().ok()).unwrap_or_default();
            uuid::Builder::from_custom_bytes(bytes).into_uuid().to_string()
        }
        None => Uuid::now_v7().to_string(),
    }
}

/// When a reaction happened: `time` when given (microseconds, as Postgres keeps them, so a
/// replay answers the same instant), else `now`; a time more than 5 minutes ahead is refused.
pub(super) fn reaction_time(
    time: Option<&prost_types::Timestamp>,
    now: DateTime<Utc>,
    v: &mut Violations,
) -> DateTime<Utc> {
    let Some(t) = time else { return now };
    match u32::try_from(t.nanos).ok().and_then(|n| DateTime::<Utc>::from_timestamp(t.seconds, n)) {
        Some(at) if at <= now + Duration::minutes(5) => at.trunc_subsecs(6),
        _ => {
            v.add("time", "must be a valid time at most 5 minutes in the future");
            now
        }
    }
}

/// A client of segmentation (rules, segments, values).
pub(super) fn segmentation(api: &CustomizationApi) -> ApiResult<SegmentationServiceClient<PeerChannel>> {
    let channel = api.peers.channel(PeerService::Segmentation).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(SegmentationServiceClient::new(channel))
}

/// A client of interaction (contact policy, recording contacts).
pub(super) fn interaction(api: &CustomizationApi) -> ApiResult<InteractionServiceClient<PeerChannel>> {
    let channel = api.peers.channel(PeerService::Interaction).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(InteractionServiceClient::new(channel))
}

/// This service's refusal reason for a contact-policy denial.
pub(super) fn refusal_of(reason: ipb::ContactDenialReason) -> pb::ContactRefusalReason {
    use ipb::ContactDenialReason as D;
    match reason {
        D::DoNotContact => pb::ContactRefusalReason::DoNotContact,
        D::NoConsent | D::ConsentUnknown => pb::ContactRefusalReason::NoConsent,
        D::OpenComplaint => pb::ContactRefusalReason::OpenComplaint,
        D::FrequencyCap => pb::ContactRefusalReason::FrequencyCap,
        D::QuietHours => pb::ContactRefusalReason::QuietHours,
        D::Unspecified => pb::ContactRefusalReason::Unspecified,
    }
}
