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
