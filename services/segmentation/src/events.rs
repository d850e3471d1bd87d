//! The events segmentation consumes (`interaction.recorded`, `customer.merged`,
//! `customer.erased`) and publishes (`customer.tier_changed`, `erasure.confirmed`), with
//! how each consumed event is applied. Every handler is idempotent: redeliveries change
//! nothing.

use chrono::{DateTime, Utc};
use idic_platform::{events, jobs::timestamp};
use idic_proto::{
    identification::v1::{CustomerErased, CustomerMerged},
    interaction::v1::{InteractionKind, InteractionRecorded},
    segmentation::v1 as pb,
};
use prost::Message as _;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    cache::ValueCache,
    settings,
    store::value::{self, LiveSettings, SeenInteraction},
};

/// Stream of recorded interactions (consumed).
pub const INTERACTION_RECORDED: &str = "interaction.recorded";
/// Stream of merges (consumed).
pub const CUSTOMER_MERGED: &str = "customer.merged";
/// Stream of erasures (consumed).
pub const CUSTOMER_ERASED: &str = "customer.erased";
/// Stream of erasure confirmations (published).
pub use idic_platform::events::ERASURE_CONFIRMED;
/// Stream of tier changes (published).
pub const CUSTOMER_TIER_CHANGED: &str = "customer.tier_changed";
/// This service's name in confirmations and its consumer group.
pub const SERVICE: &str = "segmentation";

/// Interaction kinds value ignores: browsing and message tracking, which neither earn
/// nor cost anything per event.
const IGNORED_KINDS: [InteractionKind; 6] = [
    InteractionKind::Unspecified,
    InteractionKind::View,
    InteractionKind::BasketAdd,
    InteractionKind::BasketRemove,
    InteractionKind::MessageDelivered,
    InteractionKind::MessageOpened,
];

/// The lowercase name of a kind without its prefix ("inbound_call").
pub fn kind_name(kind: InteractionKind) -> String {
    kind.as_str_name().trim_start_matches("INTERACTION_KIND_").to_ascii_lowercase()
}

/// What the handlers need.
#[derive(Debug, Clone)]
pub struct Handlers {
    /// The service's schema.
    pub pool: PgPool,
    /// The value cache, invalidated after each change.
    pub cache: ValueCache,
    /// Segment memberships, re-evaluated for a customer whose metrics changed.
    pub segments: crate::membership::Memberships,
}

fn time(t: Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
}

/// Live settings from the value settings in effect.
pub async fn live_settings(pool: &PgPool) -> anyhow::Result<LiveSettings> {
    let s = settings::load(pool).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(live_from(&s))
}

/// Live settings from `s`.
pub fn live_from(s: &pb::ValueSettings) -> LiveSettings {
    let mut rates: serde_json::Map<String, serde_json::Value> =
        s.exchange_rates.iter().map(|(c, r)| (c.clone(), serde_json::json!(r))).collect();
    rates.insert(s.currency_code.clone(), serde_json::json!(1.0));
    LiveSettings {
        currency_code: s.currency_code.clone(),
        rates: serde_json::Value::Object(rates),
        window_days: i32::try_from(settings::days(s.behaviour_window.as_ref())).unwrap_or(365),
    }
}

impl Handlers {
    /// Applies one `InteractionRecorded`: stores it and refreshes the customer's live RFM.
    /// A malformed event is logged and dropped (retrying cannot fix it).
    pub async fn interaction_recorded(&self, payload: &[u8]) -> anyhow::Result<()> {
        let event = InteractionRecorded::decode(payload)?;
        let InteractionRecorded { interaction_id, customer_id, channel, kind, occur_time, items, total_amount, .. } =
            event;
        let kind = InteractionKind::try_from(kind).unwrap_or(InteractionKind::Unspecified);
        let (Ok(customer), Some(occur_time), false) =
            (Uuid::parse_str(&customer_id), time(occur_time), interaction_id.is_empty())
        else {
            tracing::warn!(%interaction_id, %customer_id, "ignoring a malformed interaction.recorded event");
            return Ok(());
        };
        if IGNORED_KINDS.contains(&kind) {
            return Ok(());
        }
        let currency = total_amount
            .as_ref()
            .map(|m| m.currency_code.clone())
            .or_else(|| items.iter().find_map(|i| i.unit_price.as_ref().map(|m| m.currency_code.clone())))
            .unwrap_or_default();
        let amount = match kind {
            InteractionKind::Purchase => total_amount.as_ref().map_or(0, |m| m.amount_minor.abs()),
            InteractionKind::Return => -total_amount.as_ref().map_or(0, |m| m.amount_minor.abs()),
            _ => 0,
        };
        let live = live_settings(&self.pool).await?;
        let mut tx = self.pool.begin().await?;
        let customer = value::survivor(&mut tx, customer).await?;
        let seen = SeenInteraction {
            interaction_id,
            customer_id: customer,
            kind: kind_name(kind),
            channel,
            occur_time,
            amount_minor: amount,
            currency_code: currency,
            item_count: items.iter().map(|i| i.quantity.max(0.0)).sum(),
            categories: items.iter().map(|i| i.category.clone()).filter(|c| !c.is_empty()).collect(),
            products: items.iter().map(|i| i.product_id.clone()).filter(|p| !p.is_empty()).collect(),
        };
        let new = value::insert_interaction(&mut tx, &seen).await?;
        if new {
            value::refresh_summary(&mut tx, customer, &live).await?;
        }
        tx.commit().await?;
        if new && kind == InteractionKind::Purchase {
            self.refresh_prediction(customer, &live).await?;
        }
        self.cache.invalidate(&[customer]).await;
        // Also on a redelivery: a failed re-evaluation is retried with the event.
        self.segments.refresh_customers(&[customer], pb::MembershipChangeReason::CustomerUpdated).await?;
        Ok(())
    }

    /// Recomputes P(alive) and expected purchases of a scored customer with the active
    /// purchase model's parameters, so a purchase shows in them at once (CLV, tiers and
    /// quintiles wait for the next rescoring).
    async fn refresh_prediction(&self, customer: Uuid, live: &LiveSettings) -> anyhow::Result<()> {
        use crate::domain::{PurchaseModel as _, history};
        let horizon: Option<i32> = sqlx::query_scalar(
            "SELECT horizon_days FROM customer_values WHERE customer_id = $1 AND score_time IS NOT NULL",
        )
        .bind(customer)
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        let Some(horizon) = horizon else { return Ok(()) };
        let mut model = None;
        for kind in [pb::ModelKind::BgNbd, pb::ModelKind::ParetoNbd] {
            if let Some(m) = crate::store::models::active(&self.pool, kind).await? {
                model = Some(m);
                break;
            }
        }
        let Some((model, stored)) = model.and_then(|m| crate::rescoring::Purchases::from_model(&m).map(|p| (p, m)))
        else {
            return Ok(());
        };
        let rows: Vec<(DateTime<Utc>, Option<f64>)> = sqlx::query_as(
            "SELECT occur_time, amount_minor * (CASE WHEN currency_code = '' THEN 1 \
                    ELSE ($2::jsonb ->> currency_code)::float8 END) / 100.0 \
             FROM interactions WHERE customer_id = $1 AND kind = 'purchase'",
        )
        .bind(customer)
        .bind(&live.rates)
        .fetch_all(&self.pool)
        .await?;
        let purchases: Vec<history::Purchase> = rows
            .into_iter()
            .filter_map(|(t, a)| a.map(|amount| history::Purchase { on: t.date_naive(), amount }))
            .collect();
        let Some(h) = history::summarise(&purchases, Utc::now().date_naive()) else { return Ok(()) };
        let p_alive = model.probability_alive(&h.repeat);
        let expected = model.conditional_expected_purchases(&h.repeat, f64::from(horizon) / history::DAYS_PER_WEEK);
        let model_id = Uuid::parse_str(stored.name.trim_start_matches("models/")).ok();
        sqlx::query(
            "UPDATE customer_values SET p_alive = $2, expected_purchases = $3, purchase_model = $4, \
                    compute_time = now() WHERE customer_id = $1",
        )
        .bind(customer)
        .bind(p_alive)
        .bind(expected)
        .bind(model_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Applies one `CustomerMerged`: the absorbed customers' histories become the
    /// survivor's, whose live figures are recomputed.
    pub async fn customer_merged(&self, event_id: &str, payload: &[u8]) -> anyhow::Result<()> {
        let event = CustomerMerged::decode(payload)?;
        let survivor = Uuid::parse_str(&event.survivor_customer_id);
        let absorbed: Result<Vec<Uuid>, _> = event.merged_customer_ids.iter().map(|id| Uuid::parse_str(id)).collect();
        let (Ok(survivor), Ok(absorbed)) = (survivor, absorbed) else {
            tracing::warn!(merge = %event.merge, "ignoring a malformed customer.merged event");
            return Ok(());
        };
        let live = live_settings(&self.pool).await?;
        let mut tx = self.pool.begin().await?;
        let key = if event.event_id.is_empty() { event_id.to_owned() } else { event.event_id.clone() };
        if !events::first_delivery(&mut tx, SERVICE, &format!("merged:{key}")).await? {
            return Ok(());
        }
        value::merge(&mut tx, survivor, &absorbed, &live).await?;
        events::audit_applied_merge(&mut tx, &survivor.to_string(), &event.merge, &event.merged_customer_ids).await?;
        tx.commit().await?;
        let mut touched = absorbed;
        touched.push(survivor);
        self.cache.invalidate(&touched).await;
        self.segments.refresh_customers(&touched, pb::MembershipChangeReason::CustomerMerged).await?;
        Ok(())
    }

    /// Applies one `CustomerErased`: deletes the customer's rows (and those merged into
    /// them), then confirms on `erasure.confirmed` in the same transaction.
    pub async fn customer_erased(&self, event_id: &str, payload: &[u8]) -> anyhow::Result<()> {
        let event = CustomerErased::decode(payload)?;
        let ids: Result<Vec<Uuid>, _> = std::iter::once(&event.customer_id)
            .chain(&event.merged_customer_ids)
            .map(|id| Uuid::parse_str(id))
            .collect();
        let Ok(ids) = ids else {
            tracing::warn!(erasure = %event.erasure, "ignoring a malformed customer.erased event");
            return Ok(());
        };
        let mut tx = self.pool.begin().await?;
        let key = if event.event_id.is_empty() { event_id.to_owned() } else { event.event_id.clone() };
        if !events::first_delivery(&mut tx, SERVICE, &format!("erased:{key}")).await? {
            return Ok(());
        }
        let mut touched = value::erase(&mut tx, &ids).await?;
        self.segments.erase_in(&mut tx, &ids).await?;
        events::confirm_erasure(&mut tx, SERVICE, &event.erasure, &event.customer_id).await?;
        tx.commit().await?;
        touched.extend(ids);
        self.cache.invalidate(&touched).await;
        self.segments.invalidate(&touched).await;
        Ok(())
    }
}

/// `CustomerTierChanged` for one change.
#[allow(clippy::too_many_arguments, reason = "one argument per event field")]
pub fn tier_changed(
    customer: Uuid,
    tier: pb::Tier,
    previous: pb::Tier,
    at_risk: bool,
    previous_at_risk: bool,
    reason: pb::TierChangeReason,
    job: Option<Uuid>,
    time: DateTime<Utc>,
) -> Vec<u8> {
    pb::CustomerTierChanged {
        event_id: Uuid::new_v4().to_string(),
        customer_id: customer.to_string(),
        tier: tier as i32,
        previous_tier: previous as i32,
        at_risk,
        previous_at_risk,
        reason: reason as i32,
        job: job.map(|j| format!("jobs/{j}")).unwrap_or_default(),
        time: Some(timestamp(time)),
    }
    .encode_to_vec()
}
