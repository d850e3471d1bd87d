//! The events interaction publishes (through the outbox of its schema) and those of
//! identification it applies: `interaction.recorded` out; `customer.merged`,
//! `customer.unmerged` and `customer.erased` in, confirmed on `erasure.confirmed`.

use chrono::{DateTime, Utc};
use idic_platform::{events::Delivery, jobs::timestamp};
use idic_proto::{common::v1 as common, identification::v1 as ident, interaction::v1 as pb};
use prost::Message as _;
use uuid::Uuid;

use crate::{api::convert, domain::Interaction, store::Store};
use idic_platform::customers::Customers;

/// Stream of stored interactions.
pub const INTERACTION_RECORDED: &str = "interaction.recorded";
/// Identification's stream of merges.
pub const CUSTOMER_MERGED: &str = "customer.merged";
/// Identification's stream of unmerges.
pub const CUSTOMER_UNMERGED: &str = "customer.unmerged";
/// Identification's stream of erasures.
pub const CUSTOMER_ERASED: &str = "customer.erased";
/// The stream on which services confirm erasures to identification.
pub use idic_platform::events::ERASURE_CONFIRMED;
/// This service's name in erasure confirmations.
pub const SERVICE: &str = "interaction";

/// `InteractionRecorded` for a stored interaction.
pub fn interaction_recorded(interaction: &Interaction) -> Vec<u8> {
    let currency = interaction.currency.as_deref().unwrap_or_default();
    pb::InteractionRecorded {
        interaction_id: interaction.id.to_string(),
        customer_id: interaction.customer_id.map(|c| c.to_string()).unwrap_or_default(),
        channel: interaction.channel.into(),
        kind: interaction.kind.code().into(),
        direction: interaction.direction as i32,
        purpose: interaction.purpose.into(),
        occur_time: Some(timestamp(interaction.occurred_at)),
        record_time: Some(timestamp(interaction.recorded_at)),
        items: interaction.items.iter().map(|i| convert::item_to_proto(i, currency)).collect(),
        total_amount: interaction
            .total_minor
            .map(|amount_minor| common::Money { currency_code: currency.to_owned(), amount_minor }),
        campaign: interaction.campaign.clone(),
        offer: interaction.offer.clone(),
        offer_response: interaction.offer_response.into(),
        related_interaction: interaction.related_interaction.clone(),
        complaint: interaction.complaint.clone(),
        duration: interaction.duration_ms.map(convert::duration_to_proto),
        outbound_contact: interaction.is_outbound_contact(),
    }
    .encode_to_vec()
}

fn time(t: Option<prost_types::Timestamp>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .unwrap_or_else(Utc::now)
}

fn customer_ids(ids: impl IntoIterator<Item = String>) -> Vec<Uuid> {
    ids.into_iter().filter_map(|id| Uuid::parse_str(&id).ok()).collect()
}

/// Applies one event of identification's `stream`. Applying an event twice changes
/// nothing (each apply records its event id in the same transaction). A malformed event
/// is logged and dropped: retrying it cannot succeed.
pub async fn apply(store: &Store, customers: &Customers, stream: &str, delivery: &Delivery) -> anyhow::Result<()> {
    let payload = delivery.payload.as_slice();
    match stream {
        CUSTOMER_MERGED => {
            let event = ident::CustomerMerged::decode(payload)?;
            let Ok(survivor) = Uuid::parse_str(&event.survivor_customer_id) else {
                tracing::warn!(event_id = %event.event_id, "ignoring a merge without a valid survivor");
                return Ok(());
            };
            let merged = customer_ids(event.merged_customer_ids);
            let key = dedup_key(&event.event_id, delivery);
            store.apply_merge(&key, &event.merge, survivor, &merged, time(event.time)).await?;
            customers.cache().forget_ids(&merged).await;
        }
        CUSTOMER_UNMERGED => {
            let event = ident::CustomerUnmerged::decode(payload)?;
            let (Ok(restored), Ok(survivor)) =
                (Uuid::parse_str(&event.restored_customer_id), Uuid::parse_str(&event.survivor_customer_id))
            else {
                tracing::warn!(event_id = %event.event_id, "ignoring an unmerge without valid customers");
                return Ok(());
            };
            store.apply_unmerge(&dedup_key(&event.event_id, delivery), restored, survivor).await?;
            customers.cache().forget_ids(&[restored]).await;
        }
        CUSTOMER_ERASED => {
            let event = ident::CustomerErased::decode(payload)?;
            let Ok(customer) = Uuid::parse_str(&event.customer_id) else {
                tracing::warn!(event_id = %event.event_id, "ignoring an erasure without a valid customer");
                return Ok(());
            };
            let mut erased = customer_ids(event.merged_customer_ids);
            erased.push(customer);
            let confirmation = common::ErasureConfirmed {
                erasure: event.erasure.clone(),
                customer_id: event.customer_id.clone(),
                service: SERVICE.to_owned(),
                time: Some(timestamp(Utc::now())),
            }
            .encode_to_vec();
            store.apply_erasure(&dedup_key(&event.event_id, delivery), &event.erasure, &erased, &confirmation).await?;
            customers.cache().forget_ids(&erased).await;
        }
        other => tracing::warn!(stream = other, "no handler for stream"),
    }
    Ok(())
}

/// The event's own id, or the bus's when it carries none.
fn dedup_key(event_id: &str, delivery: &Delivery) -> String {
    if event_id.is_empty() { delivery.event_id.clone() } else { event_id.to_owned() }
}
