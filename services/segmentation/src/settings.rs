//! The value settings singleton: its initial values, the checks an update must pass, and
//! where it is kept (the `value_settings` row, holding the encoded proto).

use idic_platform::{ApiError, ApiResult, jobs::timestamp, validate::Violations};
use idic_proto::{common::v1::Money, segmentation::v1 as pb};
use prost::Message as _;
use sqlx::PgPool;

/// Resource name of the singleton.
pub const NAME: &str = "valueSettings";

/// Days in a second-based protobuf duration.
pub fn days(d: Option<&prost_types::Duration>) -> i64 {
    d.map_or(0, |d| d.seconds / 86_400)
}

/// A duration of whole days.
pub fn duration_days(days: i64) -> prost_types::Duration {
    prost_types::Duration { seconds: days * 86_400, nanos: 0 }
}

/// The settings a deployment starts with (the initial values the contract documents).
pub fn initial() -> pb::ValueSettings {
    pb::ValueSettings {
        name: NAME.to_owned(),
        currency_code: "USD".to_owned(),
        exchange_rates: Default::default(),
        clv_horizon: Some(duration_days(365)),
        annual_discount_rate: 0.10,
        margin: 0.30,
        category_margins: Default::default(),
        behaviour_window: Some(duration_days(365)),
        model_time_unit: Some(duration_days(7)),
        transaction_model: pb::ModelKind::BgNbd as i32,
        holdout: Some(duration_days(0)),
        tiers: Some(pb::TierThresholds {
            mvc_value_share: 0.80,
            long_tail_value_share: 0.05,
            mgc_min_growth_ratio: 2.0,
            mgc_max_share_of_wallet: 0.25,
            bzc_max_profit: Some(Money { currency_code: "USD".to_owned(), amount_minor: 0 }),
            at_risk_min_value_percentile: 80.0,
            at_risk_max_p_alive: 0.5,
            at_risk_min_p_alive_drop: 0.2,
        }),
        unit_costs: Vec::new(),
        clustering: Some(pb::ClusteringSettings {
            cluster_count: None,
            min_cluster_count: 2,
            max_cluster_count: 12,
            product_cluster_count: None,
            category_feature_count: 20,
        }),
        update_time: None,
        etag: String::new(),
    }
}

/// The settings in effect: the stored ones, or the initial ones before any update.
pub async fn load(pool: &PgPool) -> ApiResult<pb::ValueSettings> {
    let row: Option<(Vec<u8>, String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT body, etag, update_time FROM value_settings").fetch_optional(pool).await?;
    Ok(match row {
        Some((body, etag, time)) => {
            let mut settings = pb::ValueSettings::decode(body.as_slice())
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored value settings: {e}")))?;
            settings.etag = etag;
            settings.update_time = Some(timestamp(time));
            settings
        }
        None => {
            let mut settings = initial();
            settings.etag = "initial".to_owned();
            settings
        }
    })
}

/// Stores `settings` if the stored etag is still `expected_etag`; ABORTED otherwise.
pub async fn save(
    tx: &mut sqlx::PgConnection,
    settings: &pb::ValueSettings,
    expected_etag: &str,
) -> ApiResult<(String, chrono::DateTime<chrono::Utc>)> {
    let current: Option<String> =
        sqlx::query_scalar("SELECT etag FROM value_settings FOR UPDATE").fetch_optional(&mut *tx).await?;
    if current.as_deref().unwrap_or("initial") != expected_etag {
        return Err(ApiError::Aborted("valueSettings changed meanwhile; read them again".into()));
    }
    let mut body = settings.clone();
    body.etag.clear();
    body.update_time = None;
    let etag = uuid::Uuid::new_v4().simple().to_string();
    let time: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "INSERT INTO value_settings (singleton, body, etag, update_time) VALUES (true, $1, $2, now()) \
         ON CONFLICT (singleton) DO UPDATE SET body = $1, etag = $2, update_time = now() RETURNING update_time",
    )
    .bind(body.encode_to_vec())
    .bind(&etag)
    .fetch_one(&mut *tx)
    .await?;
    Ok((etag, time))
}

fn in_range(v: &mut Violations, field: &str, value: f64, low: f64, high: f64) {
    if !(value.is_finite() && (low..=high).contains(&value)) {
        v.add(field, format!("must be between {low} and {high}"));
    }
}

fn currency(v: &mut Violations, field: &str, code: &str) {
    if !(code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())) {
        v.add(field, "must be an ISO 4217 code of three capital letters");
    }
}

/// Checks every field of complete settings against its documented range, naming the field
/// under `settings.`.
pub fn check(s: &pb::ValueSettings) -> ApiResult<()> {
    let mut v = Violations::new();
    currency(&mut v, "settings.currency_code", &s.currency_code);
    for (code, rate) in &s.exchange_rates {
        currency(&mut v, &format!("settings.exchange_rates[{code}]"), code);
        if !(rate.is_finite() && *rate > 0.0) {
            v.add(format!("settings.exchange_rates[{code}]"), "must be greater than 0");
        }
    }
    let whole_days = |v: &mut Violations, field: &str, d: Option<&prost_types::Duration>, low: i64, high: i64| match d {
        Some(d) if d.nanos == 0 && d.seconds % 86_400 == 0 && (low..=high).contains(&(d.seconds / 86_400)) => {}
        _ => v.add(field, format!("must be whole days between {low} and {high}")),
    };
    whole_days(&mut v, "settings.clv_horizon", s.clv_horizon.as_ref(), 30, 3650);
    whole_days(&mut v, "settings.behaviour_window", s.behaviour_window.as_ref(), 7, 3650);
    whole_days(&mut v, "settings.model_time_unit", s.model_time_unit.as_ref(), 1, 31);
    let holdout = days(s.holdout.as_ref());
    if s.holdout.as_ref().is_some_and(|d| d.seconds < 0 || d.nanos != 0 || d.seconds % 86_400 != 0)
        || (holdout != 0 && holdout < 7)
    {
        v.add("settings.holdout", "must be 0 (half the data window) or whole days, at least 7");
    }
    in_range(&mut v, "settings.annual_discount_rate", s.annual_discount_rate, 0.0, 1.0);
    in_range(&mut v, "settings.margin", s.margin, 0.0, 1.0);
    for (category, margin) in &s.category_margins {
        in_range(&mut v, &format!("settings.category_margins[{category}]"), *margin, 0.0, 1.0);
    }
    if !matches!(pb::ModelKind::try_from(s.transaction_model), Ok(pb::ModelKind::BgNbd | pb::ModelKind::ParetoNbd)) {
        v.add("settings.transaction_model", "must be MODEL_KIND_BG_NBD or MODEL_KIND_PARETO_NBD");
    }
    match &s.tiers {
        None => v.add("settings.tiers", "is required"),
        Some(t) => {
            in_range(&mut v, "settings.tiers.mvc_value_share", t.mvc_value_share, 0.05, 0.99);
            in_range(&mut v, "settings.tiers.long_tail_value_share", t.long_tail_value_share, 0.0, 0.5);
            in_range(&mut v, "settings.tiers.mgc_min_growth_ratio", t.mgc_min_growth_ratio, 1.0, 1000.0);
            in_range(&mut v, "settings.tiers.mgc_max_share_of_wallet", t.mgc_max_share_of_wallet, 0.0, 1.0);
            in_range(&mut v, "settings.tiers.at_risk_min_value_percentile", t.at_risk_min_value_percentile, 0.0, 100.0);
            in_range(&mut v, "settings.tiers.at_risk_max_p_alive", t.at_risk_max_p_alive, 0.0, 1.0);
            in_range(&mut v, "settings.tiers.at_risk_min_p_alive_drop", t.at_risk_min_p_alive_drop, 0.0, 1.0);
            if t.bzc_max_profit.as_ref().is_some_and(|m| m.amount_minor > 0) {
                v.add("settings.tiers.bzc_max_profit", "must be zero or negative");
            }
        }
    }
    if s.unit_costs.len() > 200 {
        v.add("settings.unit_costs", "at most 200 entries");
    }
    let mut seen = std::collections::HashSet::new();
    for (i, cost) in s.unit_costs.iter().enumerate() {
        let kind = &cost.interaction_kind;
        if kind.is_empty()
            || kind.len() > 64
            || !kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            v.add(format!("settings.unit_costs[{i}].interaction_kind"), "must be 1–64 characters of [a-z0-9_]");
        }
        if idic_proto::common::v1::Channel::try_from(cost.channel).is_err() {
            v.add(format!("settings.unit_costs[{i}].channel"), "unknown channel");
        }
        if cost.cost.as_ref().is_none_or(|m| m.amount_minor < 0) {
            v.add(format!("settings.unit_costs[{i}].cost"), "is required, zero or more");
        }
        if !seen.insert((kind.clone(), cost.channel)) {
            v.add(format!("settings.unit_costs[{i}]"), "duplicates an earlier (kind, channel) entry");
        }
    }
    match &s.clustering {
        None => v.add("settings.clustering", "is required"),
        Some(c) => {
            if c.cluster_count.is_some_and(|k| !(2..=50).contains(&k)) {
                v.add("settings.clustering.cluster_count", "must be between 2 and 50");
            }
            if !(2..=50).contains(&c.min_cluster_count) {
                v.add("settings.clustering.min_cluster_count", "must be between 2 and 50");
            }
            if !(c.min_cluster_count..=50).contains(&c.max_cluster_count) {
                v.add("settings.clustering.max_cluster_count", "must be between min_cluster_count and 50");
            }
            if c.product_cluster_count.is_some_and(|k| !(2..=10_000).contains(&k)) {
                v.add("settings.clustering.product_cluster_count", "must be between 2 and 10000");
            }
            if !(1..=100).contains(&c.category_feature_count) {
                v.add("settings.clustering.category_feature_count", "must be between 1 and 100");
            }
        }
    }
    v.finish()
}
