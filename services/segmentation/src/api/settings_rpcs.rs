//! Value settings RPCs: GetValueSettings and UpdateValueSettings (field mask, etag, audit).

use idic_platform::{ApiError, ApiResult, audit, validate};
use idic_proto::segmentation::v1 as pb;
use tonic::Request;

use super::{SegmentationApi, caller};
use crate::settings;

/// GetValueSettings.
pub(super) async fn get_value_settings(
    api: &SegmentationApi,
    request: pb::GetValueSettingsRequest,
) -> ApiResult<pb::ValueSettings> {
    let pb::GetValueSettingsRequest { name } = request;
    if name != settings::NAME {
        return Err(ApiError::invalid("name", "must be valueSettings"));
    }
    settings::load(&api.pool).await
}

/// Copies the field at `path` from `from` into `to`; false for an unknown path.
fn apply(path: &str, to: &mut pb::ValueSettings, from: &pb::ValueSettings) -> bool {
    let tiers = |to: &mut pb::ValueSettings| to.tiers.get_or_insert_with(Default::default).clone();
    match path {
        "currency_code" => to.currency_code = from.currency_code.clone(),
        "exchange_rates" => to.exchange_rates = from.exchange_rates.clone(),
        "clv_horizon" => to.clv_horizon = from.clv_horizon,
        "annual_discount_rate" => to.annual_discount_rate = from.annual_discount_rate,
        "margin" => to.margin = from.margin,
        "category_margins" => to.category_margins = from.category_margins.clone(),
        "behaviour_window" => to.behaviour_window = from.behaviour_window,
        "model_time_unit" => to.model_time_unit = from.model_time_unit,
        "transaction_model" => to.transaction_model = from.transaction_model,
        "holdout" => to.holdout = from.holdout,
        "tiers" => to.tiers = from.tiers.clone(),
        "unit_costs" => to.unit_costs = from.unit_costs.clone(),
        "clustering" => to.clustering = from.clustering,
        _ => {
            if let Some(field) = path.strip_prefix("tiers.") {
                let f = from.tiers.clone().unwrap_or_default();
                let mut t = tiers(to);
                match field {
                    "mvc_value_share" => t.mvc_value_share = f.mvc_value_share,
                    "long_tail_value_share" => t.long_tail_value_share = f.long_tail_value_share,
                    "mgc_min_growth_ratio" => t.mgc_min_growth_ratio = f.mgc_min_growth_ratio,
                    "mgc_max_share_of_wallet" => t.mgc_max_share_of_wallet = f.mgc_max_share_of_wallet,
                    "bzc_max_profit" => t.bzc_max_profit = f.bzc_max_profit,
                    "at_risk_min_value_percentile" => t.at_risk_min_value_percentile = f.at_risk_min_value_percentile,
                    "at_risk_max_p_alive" => t.at_risk_max_p_alive = f.at_risk_max_p_alive,
                    "at_risk_min_p_alive_drop" => t.at_risk_min_p_alive_drop = f.at_risk_min_p_alive_drop,
                    _ => return false,
                }
                to.tiers = Some(t);
            } else if let Some(field) = path.strip_prefix("clustering.") {
                let f = from.clustering.unwrap_or_default();
                let mut c = to.clustering.unwrap_or_default();
                match field {
                    "cluster_count" => c.cluster_count = f.cluster_count,
                    "min_cluster_count" => c.min_cluster_count = f.min_cluster_count,
                    "max_cluster_count" => c.max_cluster_count = f.max_cluster_count,
                    "product_cluster_count" => c.product_cluster_count = f.product_cluster_count,
                    "category_feature_count" => c.category_feature_count = f.category_feature_count,
                    _ => return false,
                }
                to.clustering = Some(c);
            } else {
                return false;
            }
        }
    }
    true
}

/// Every writable top-level path ("*").
const ALL_PATHS: [&str; 13] = [
    "currency_code",
    "exchange_rates",
    "clv_horizon",
    "annual_discount_rate",
    "margin",
    "category_margins",
    "behaviour_window",
    "model_time_unit",
    "transaction_model",
    "holdout",
    "tiers",
    "unit_costs",
    "clustering",
];

/// UpdateValueSettings.
pub(super) async fn update_value_settings(
    api: &SegmentationApi,
    request: Request<pb::UpdateValueSettingsRequest>,
) -> ApiResult<pb::ValueSettings> {
    let caller = caller(&request)?;
    let pb::UpdateValueSettingsRequest { settings: new, update_mask, reason } = request.into_inner();
    let mut v = validate::Violations::new();
    v.check("", validate::text(&reason, 500, "reason"));
    let Some(new) = new else { return Err(ApiError::invalid("settings", "is required")) };
    if new.name != settings::NAME {
        v.add("settings.name", "must be valueSettings");
    }
    let paths = update_mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", "is required");
    }
    v.finish()?;
    let current = settings::load(&api.pool).await?;
    let expected = if new.etag.is_empty() { current.etag.clone() } else { new.etag.clone() };
    let mut updated = current.clone();
    let mut v = validate::Violations::new();
    for (i, path) in paths.iter().enumerate() {
        if path == "*" {
            for p in ALL_PATHS {
                apply(p, &mut updated, &new);
            }
        } else if !apply(path, &mut updated, &new) {
            v.add(format!("update_mask.paths[{i}]"), format!("unknown or read-only path {path:?}"));
        }
    }
    v.finish()?;
    settings::check(&updated)?;
    let mut tx = api.pool.begin().await?;
    let (etag, time) = settings::save(&mut tx, &updated, &expected).await?;
    audit::record(
        &mut tx,
        audit::AuditRecord {
            caller: &caller.name,
            action: "UpdateValueSettings",
            resource: settings::NAME,
            reason: &reason,
            detail: serde_json::json!({ "paths": paths }),
        },
    )
    .await?;
    tx.commit().await?;
    updated.etag = etag;
    updated.update_time = Some(idic_platform::jobs::timestamp(time));
    Ok(updated)
}
