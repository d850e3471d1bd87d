//! Keeps the contact policy's local copy of consent decisions current from
//! identification's `consent.changed` events, so that checks decide consent without a
//! remote call. Each event is applied once, in one transaction with its deduplication.

use chrono::{DateTime, Utc};
use idic_platform::events::{Delivery, first_delivery};
use idic_proto::identification::v1 as ident;
use prost::Message as _;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    domain::contact_policy::{Channel, Purpose},
    store::contact_policy::{self as store, ConsentFact},
};

/// The stream identification publishes consent changes on.
pub const CONSENT_CHANGED: &str = "consent.changed";
/// The consumer group reading it.
pub const CONSUMER_GROUP: &str = "interaction.contact_policy";

/// Applies one `consent.changed` event.
pub async fn apply(pool: &PgPool, delivery: &Delivery) -> anyhow::Result<()> {
    let event = ident::ConsentChanged::decode(delivery.payload.as_slice())?;
    let ident::ConsentChanged {
        event_id: _,
        customer_id,
        purpose,
        channel,
        status,
        allowed: _,
        record: _,
        observe_time,
    } = event;
    let customer = Uuid::parse_str(&customer_id)?;
    let granted = match ident::ConsentStatus::try_from(status) {
        Ok(ident::ConsentStatus::Granted) => true,
        Ok(ident::ConsentStatus::Withdrawn) => false,
        // A change always leaves a recorded decision; anything else is not ours to copy.
        _ => return Ok(()),
    };
    let observe_time = observe_time
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .ok_or_else(|| anyhow::anyhow!("consent.changed without observe_time"))?;
    let fact = ConsentFact {
        purpose: Purpose(i16::try_from(purpose)?),
        channel: (channel != 0).then(|| i16::try_from(channel).map(Channel)).transpose()?,
        granted,
        observe_time,
        expire_time: None,
    };
    let mut tx = pool.begin().await?;
    if first_delivery(&mut tx, CONSUMER_GROUP, &delivery.event_id).await? {
        store::apply_consent_change(&mut tx, customer, &fact).await?;
    }
    tx.commit().await?;
    Ok(())
}
