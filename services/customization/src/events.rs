//! The events customization consumes: `interaction.recorded` (what customers viewed, put in
//! a basket, bought and returned, appended to the feedback log the recommender learns from),
//! `customer.merged` (their feedback and saved configurations re-keyed to the survivor),
//! `customer.erased` (deleted, then confirmed on `erasure.confirmed`) and `consent.changed`
//! (profiling consent). Every handler is idempotent: redeliveries change nothing.

use chrono::{DateTime, Utc};
use idic_platform::events;
use idic_proto::{
    common::v1::ConsentPurpose,
    identification::v1::{ConsentChanged, ConsentStatus, CustomerErased, CustomerMerged},
    interaction::v1::{InteractionKind, InteractionRecorded},
};
use prost::Message as _;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    domain::recommend::FeedbackKind,
    recommendations::kind_code,
    store::{
        campaigns, configurations,
        feedback::{self as store, NewFeedback},
        offers,
    },
};

/// Stream of recorded interactions (consumed).
pub const INTERACTION_RECORDED: &str = "interaction.recorded";
/// Stream of merges (consumed).
pub const CUSTOMER_MERGED: &str = "customer.merged";
/// Stream of erasures (consumed).
pub const CUSTOMER_ERASED: &str = "customer.erased";
/// Stream of consent changes (consumed).
pub const CONSENT_CHANGED: &str = "consent.changed";
/// Stream of erasure confirmations (published).
pub use idic_platform::events::ERASURE_CONFIRMED;
/// This service's name in confirmations and its consumer group.
pub const SERVICE: &str = "customization";

/// What the recommender learns from an interaction kind; `None` for kinds it ignores.
pub fn feedback_of(kind: InteractionKind) -> Option<FeedbackKind> {
    match kind {
        InteractionKind::View => Some(FeedbackKind::View),
        InteractionKind::BasketAdd => Some(FeedbackKind::Basket),
        InteractionKind::Purchase => Some(FeedbackKind::Purchase),
        InteractionKind::Return => Some(FeedbackKind::Negative),
        _ => None,
    }
}

fn time(t: Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
}

/// Applies one `InteractionRecorded`: each product line becomes a feedback row. A malformed
/// event is logged and dropped (retrying cannot fix it).
pub async fn interaction_recorded(pool: &PgPool, payload: &[u8]) -> anyhow::Result<()> {
    let event = InteractionRecorded::decode(payload)?;
    let InteractionRecorded { interaction_id, customer_id, kind, occur_time, items, total_amount, .. } = event;
    let kind = InteractionKind::try_from(kind).unwrap_or(InteractionKind::Unspecified);
    let Some(feedback) = feedback_of(kind) else {
        return Ok(());
    };
    let (Ok(customer), Some(occur_time), false) =
        (Uuid::parse_str(&customer_id), time(occur_time), interaction_id.is_empty())
    else {
        tracing::warn!(%interaction_id, %customer_id, "ignoring a malformed interaction.recorded event");
        return Ok(());
    };
    let mut tx = pool.begin().await?;
    let survivor: Option<Uuid> = sqlx::query_scalar("SELECT survivor_id FROM merged_customers WHERE customer_id = $1")
        .bind(customer)
        .fetch_optional(&mut *tx)
        .await?;
    let rows: Vec<NewFeedback> = items
        .iter()
        .enumerate()
        .filter(|(_, line)| !line.product_id.is_empty())
        .map(|(i, line)| NewFeedback {
            source_id: format!("{interaction_id}:{i}"),
            customer_id: survivor.unwrap_or(customer),
            product_id: line.product_id.clone(),
            kind: kind_code(feedback),
            occur_time,
        })
        .collect();
    store::insert_feedback(&mut tx, &rows).await?;
    if matches!(kind, InteractionKind::Purchase | InteractionKind::Return) {
        // What campaign reports measure: net sales and the categories bought.
        let sign = if kind == InteractionKind::Return { -1 } else { 1 };
        let (amount, currency) = match &total_amount {
            Some(m) => (m.amount_minor.abs() * sign, m.currency_code.clone()),
            None => (
                items.iter().filter_map(|l| l.line_amount.as_ref()).map(|m| m.amount_minor.abs()).sum::<i64>() * sign,
                items.iter().find_map(|l| l.line_amount.as_ref().map(|m| m.currency_code.clone())).unwrap_or_default(),
            ),
        };
        let purchase = campaigns::Purchase {
            interaction_id: interaction_id.clone(),
            customer_id: survivor.unwrap_or(customer),
            occur_time,
            amount_minor: amount,
            currency_code: currency,
            categories: items.iter().map(|l| l.category.clone()).filter(|c| !c.is_empty()).collect(),
            products: items.iter().map(|l| l.product_id.clone()).filter(|p| !p.is_empty()).collect(),
        };
        campaigns::insert_purchase(&mut tx, &purchase).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Applies one `CustomerMerged`: the absorbed customers' feedback becomes the survivor's.
pub async fn customer_merged(pool: &PgPool, event_id: &str, payload: &[u8]) -> anyhow::Result<()> {
    let event = CustomerMerged::decode(payload)?;
    let survivor = Uuid::parse_str(&event.survivor_customer_id);
    let absorbed: Result<Vec<Uuid>, _> = event.merged_customer_ids.iter().map(|id| Uuid::parse_str(id)).collect();
    let (Ok(survivor), Ok(absorbed)) = (survivor, absorbed) else {
        tracing::warn!(merge = %event.merge, "ignoring a malformed customer.merged event");
        return Ok(());
    };
    let mut tx = pool.begin().await?;
    let key = if event.event_id.is_empty() { event_id.to_owned() } else { event.event_id.clone() };
    if !events::first_delivery(&mut tx, SERVICE, &format!("merged:{key}")).await? {
        return Ok(());
    }
    // Customers merged into an absorbed one earlier now lead to the new survivor too.
    sqlx::query("UPDATE merged_customers SET survivor_id = $1 WHERE survivor_id = ANY($2)")
        .bind(survivor)
        .bind(&absorbed)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO merged_customers (customer_id, survivor_id) SELECT c, $1 FROM UNNEST($2::uuid[]) AS c \
         ON CONFLICT (customer_id) DO UPDATE SET survivor_id = EXCLUDED.survivor_id",
    )
    .bind(survivor)
    .bind(&absorbed)
    .execute(&mut *tx)
    .await?;
    store::merge_customers(&mut tx, survivor, &absorbed).await?;
    configurations::merge(&mut tx, survivor, &absorbed).await?;
    offers::merge(&mut tx, survivor, &absorbed).await?;
    campaigns::merge(&mut tx, survivor, &absorbed).await?;
    events::audit_applied_merge(&mut tx, &survivor.to_string(), &event.merge, &event.merged_customer_ids).await?;
    tx.commit().await?;
    Ok(())
}

/// Applies one `CustomerErased`: deletes everything kept about the customer (and those merged
/// into them), then confirms on `erasure.confirmed` in the same transaction.
pub async fn customer_erased(pool: &PgPool, event_id: &str, payload: &[u8]) -> anyhow::Result<()> {
    let event = CustomerErased::decode(payload)?;
    let ids: Result<Vec<Uuid>, _> =
        std::iter::once(&event.customer_id).chain(&event.merged_customer_ids).map(|id| Uuid::parse_str(id)).collect();
    let Ok(ids) = ids else {
        tracing::warn!(erasure = %event.erasure, "ignoring a malformed customer.erased event");
        return Ok(());
    };
    let mut tx = pool.begin().await?;
    let key = if event.event_id.is_empty() { event_id.to_owned() } else { event.event_id.clone() };
    if !events::first_delivery(&mut tx, SERVICE, &format!("erased:{key}")).await? {
        return Ok(());
    }
    store::erase_customers(&mut tx, &ids).await?;
    configurations::erase(&mut tx, &ids).await?;
    offers::erase(&mut tx, &ids).await?;
    campaigns::erase(&mut tx, &ids).await?;
    sqlx::query("DELETE FROM merged_customers WHERE customer_id = ANY($1) OR survivor_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    events::confirm_erasure(&mut tx, SERVICE, &event.erasure, &event.customer_id).await?;
    tx.commit().await?;
    Ok(())
}

/// Applies one `ConsentChanged` about profiling: a customer who withdrew it is served like a
/// guest. Other purposes are not this service's to copy (contact policy lives in interaction).
pub async fn consent_changed(pool: &PgPool, payload: &[u8]) -> anyhow::Result<()> {
    let ConsentChanged { customer_id, purpose, status, observe_time, .. } = ConsentChanged::decode(payload)?;
    if purpose != ConsentPurpose::Profiling as i32 {
        return Ok(());
    }
    let withdrawn = match ConsentStatus::try_from(status) {
        Ok(ConsentStatus::Withdrawn) => true,
        Ok(ConsentStatus::Granted) => false,
        _ => return Ok(()),
    };
    let (Ok(customer), Some(observed)) = (Uuid::parse_str(&customer_id), time(observe_time)) else {
        tracing::warn!(%customer_id, "ignoring a malformed consent.changed event");
        return Ok(());
    };
    let mut conn = pool.acquire().await?;
    store::set_profiling_consent(&mut conn, customer, withdrawn, observed).await?;
    Ok(())
}
