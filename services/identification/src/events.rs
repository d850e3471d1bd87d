//! The events identification publishes (through the outbox of its schema): their
//! stream names and payloads, encoded as the protobuf messages of `events.proto`.

use chrono::{DateTime, Utc};
use idic_platform::jobs::timestamp;
use idic_proto::identification::v1 as pb;
use prost::Message as _;

use crate::{api::convert, domain::CustomerId, domain::consent::Effective};

/// Stream of consent changes.
pub const CONSENT_CHANGED: &str = "consent.changed";

/// `ConsentChanged` for the effective consent of a pair after `record_name` was recorded.
pub fn consent_changed(
    customer: CustomerId,
    effective: &Effective<'_>,
    record_name: &str,
    observed: DateTime<Utc>,
) -> Vec<u8> {
    pb::ConsentChanged {
        event_id: uuid::Uuid::new_v4().to_string(),
        customer_id: customer.0.to_string(),
        purpose: convert::purpose_to_proto(effective.purpose) as i32,
        channel: convert::channel_to_proto(effective.channel) as i32,
        status: convert::status_to_proto(effective) as i32,
        allowed: effective.allowed,
        record: record_name.to_owned(),
        observe_time: Some(timestamp(observed)),
    }
    .encode_to_vec()
}

/// Stream of merges.
pub const CUSTOMER_MERGED: &str = "customer.merged";
/// Stream of unmerges.
pub const CUSTOMER_UNMERGED: &str = "customer.unmerged";
/// Stream of erasures.
pub const CUSTOMER_ERASED: &str = "customer.erased";
/// Stream on which the other services confirm erasures (consumed here).
pub use idic_platform::events::ERASURE_CONFIRMED;

/// `CustomerMerged` for merge `merge` of `parts` into `survivor`.
pub fn customer_merged(merge: uuid::Uuid, survivor: CustomerId, parts: &[CustomerId], time: DateTime<Utc>) -> Vec<u8> {
    pb::CustomerMerged {
        event_id: uuid::Uuid::new_v4().to_string(),
        merge: crate::store::merges::merge_name(merge),
        survivor_customer_id: survivor.0.to_string(),
        merged_customer_ids: parts.iter().map(|p| p.0.to_string()).collect(),
        time: Some(timestamp(time)),
    }
    .encode_to_vec()
}

/// `CustomerUnmerged` for `restored` split out of `survivor`, undoing (in part) `merge`.
pub fn customer_unmerged(
    merge: uuid::Uuid,
    restored: CustomerId,
    survivor: CustomerId,
    time: DateTime<Utc>,
) -> Vec<u8> {
    pb::CustomerUnmerged {
        event_id: uuid::Uuid::new_v4().to_string(),
        merge: crate::store::merges::merge_name(merge),
        restored_customer_id: restored.0.to_string(),
        survivor_customer_id: survivor.0.to_string(),
        time: Some(timestamp(time)),
    }
    .encode_to_vec()
}

/// `CustomerErased` for erasure `erasure` of `customer` and the customers merged into it.
pub fn customer_erased(
    erasure: uuid::Uuid,
    customer: CustomerId,
    merged: &[CustomerId],
    time: DateTime<Utc>,
) -> Vec<u8> {
    pb::CustomerErased {
        event_id: uuid::Uuid::new_v4().to_string(),
        erasure: crate::store::erasure::erasure_name(erasure),
        customer_id: customer.0.to_string(),
        merged_customer_ids: merged.iter().map(|m| m.0.to_string()).collect(),
        time: Some(timestamp(time)),
    }
    .encode_to_vec()
}

/// Applies one `ErasureConfirmed` from the `erasure.confirmed` stream to its receipt.
/// Applying it twice changes nothing (the first confirmation time stays), so
/// redeliveries need no bookkeeping. An event naming an unknown erasure or service is
/// logged and dropped: retrying it cannot succeed.
pub async fn apply_erasure_confirmed(store: &crate::store::Store, payload: &[u8]) -> anyhow::Result<()> {
    let event = idic_proto::common::v1::ErasureConfirmed::decode(payload)?;
    let id = event.erasure.strip_prefix("erasures/").and_then(|id| uuid::Uuid::parse_str(id).ok());
    let known = crate::store::erasure::ERASURE_SERVICES[1..].contains(&event.service.as_str());
    let (Some(id), true) = (id, known) else {
        tracing::warn!(erasure = %event.erasure, service = %event.service, "ignoring a malformed erasure confirmation");
        return Ok(());
    };
    let time = event
        .time
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .unwrap_or_else(Utc::now);
    if !store.confirm_erasure(id, &event.service, time).await.map_err(|e| anyhow::anyhow!("{e}"))? {
        tracing::warn!(erasure = %event.erasure, service = %event.service, "confirmation of an unknown erasure");
    }
    Ok(())
}
