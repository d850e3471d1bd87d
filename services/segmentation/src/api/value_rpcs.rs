//! Customer value RPCs: GetCustomerValue (cache-aside), BatchGetCustomerValues,
//! GetTierHistory and GetValueDistribution.

use chrono::{DateTime, Utc};
use idic_platform::{ApiError, ApiResult, jobs::timestamp, paging, validate};
use idic_proto::{common::v1 as common, segmentation::v1 as pb};
use uuid::Uuid;

use super::SegmentationApi;
use crate::{
    cache::CachedValue,
    settings,
    store::value::{self, SpendRow, ValueRow},
};

/// Most names in one BatchGetCustomerValues.
const MAX_BATCH: usize = 1000;

/// Parses `customers/{id}/value` from `field`.
fn value_name(name: &str, field: &str) -> ApiResult<Uuid> {
    let Some(base) = name.strip_suffix("/value") else {
        return Err(ApiError::invalid(field, "must be customers/{customer_id}/value"));
    };
    validate::resource_id(base, "customers", field)
}

/// Money of `minor` units in `currency`.
pub(super) fn minor(currency: &str, amount_minor: i64) -> common::Money {
    common::Money { currency_code: currency.to_owned(), amount_minor }
}

/// Money of a major-unit amount in `currency` (two decimals).
pub(super) fn major(currency: &str, amount: f64) -> common::Money {
    minor(currency, if amount.is_finite() { (amount * 100.0).round() as i64 } else { 0 })
}

fn ts(t: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    t.map(timestamp)
}

/// Loads a customer's value (following merges), through the cache.
pub(super) async fn load(api: &SegmentationApi, customer: Uuid) -> ApiResult<Option<CachedValue>> {
    let (value, _) = api
        .cache
        .values
        .get_or_load(&customer.to_string(), || async {
            let survivor = value::survivors(&api.pool, &[customer]).await?[0];
            let Some(row) = value::values(&api.pool, &[survivor]).await?.pop() else { return Ok(None) };
            let s = settings::load(&api.pool).await?;
            let rates = crate::events::live_from(&s).rates;
            let spends = value::category_spends(&api.pool, survivor, &rates).await?;
            Ok::<_, ApiError>(Some(CachedValue { row, spends }))
        })
        .await?;
    Ok(value)
}

pub(super) fn spend_to_proto(s: &SpendRow) -> pb::CategorySpend {
    pb::CategorySpend {
        name: format!("customers/{}/categorySpends/{}", s.customer_id, s.category),
        customer: format!("customers/{}", s.customer_id),
        category: s.category.clone(),
        total_spend: Some(minor(&s.currency_code, s.total_spend_minor)),
        period: Some(common::Period {
            start_time: Some(timestamp(s.period_start)),
            end_time: Some(timestamp(s.period_end)),
        }),
        source: i32::from(s.source),
        source_detail: s.source_detail.clone(),
        company_spend: Some(minor(&s.currency_code, s.company_spend_minor)),
        share_of_wallet: (s.total_spend_minor > 0)
            .then(|| (s.company_spend_minor.max(0) as f64 / s.total_spend_minor as f64).min(1.0)),
        record_time: Some(timestamp(s.record_time)),
    }
}

/// The CustomerValue of a cached value, named as asked.
pub(super) fn value_to_proto(asked: Uuid, v: &CachedValue) -> pb::CustomerValue {
    let r: &ValueRow = &v.row;
    let c = r.currency_code.as_str();
    let window_start = r.update_time - chrono::Duration::days(i64::from(r.window_days));
    let window = common::Period { start_time: Some(timestamp(window_start)), end_time: Some(timestamp(r.update_time)) };
    let scores = [r.recency_score, r.frequency_score, r.monetary_score];
    let rfm = pb::Rfm {
        recency_days: r.last_purchase_time.map(|t| (Utc::now() - t).num_days().max(0) as i32),
        frequency: r.window_frequency,
        monetary: Some(minor(c, r.window_spend_minor)),
        recency_score: r.recency_score.map(i32::from),
        frequency_score: r.frequency_score.map(i32::from),
        monetary_score: r.monetary_score.map(i32::from),
        rfm_cell: if scores.iter().all(Option::is_some) {
            scores.iter().flatten().map(ToString::to_string).collect()
        } else {
            String::new()
        },
        window: Some(window),
        first_purchase_time: ts(r.first_purchase_time),
        last_purchase_time: ts(r.last_purchase_time),
        purchase_count: r.purchase_count,
        total_spend: Some(minor(c, r.total_spend_minor)),
        average_order_value: Some(minor(
            c,
            if r.purchase_count > 0 {
                (r.total_spend_minor as f64 / r.purchase_count as f64).round() as i64
            } else {
                0
            },
        )),
        category_count: r.category_count,
        update_time: Some(timestamp(r.update_time)),
    };
    let prediction = match (r.p_alive, r.purchase_model) {
        (Some(p_alive), Some(model)) => Some(pb::ValuePrediction {
            purchase_model: format!("models/{model}"),
            spend_model: r.spend_model.map(|m| format!("models/{m}")).unwrap_or_default(),
            expected_purchases: r.expected_purchases.unwrap_or(0.0),
            p_alive,
            p_alive_change: r.p_alive_change,
            expected_spend_per_purchase: Some(major(c, r.expected_spend.unwrap_or(0.0))),
            clv: Some(major(c, r.clv.unwrap_or(0.0))),
            assumptions: Some(pb::ClvAssumptions {
                horizon: r.horizon_days.map(|d| settings::duration_days(i64::from(d))),
                annual_discount_rate: r.discount_rate.unwrap_or(0.0),
                margin: r.margin.unwrap_or(0.0),
            }),
            compute_time: ts(r.compute_time),
        }),
        _ => None,
    };
    let lines: Vec<pb::CostLine> = r
        .cost_lines
        .as_ref()
        .and_then(|l| l.as_array())
        .map(|lines| {
            lines
                .iter()
                .map(|l| {
                    let count = l["count"].as_i64().unwrap_or(0);
                    let unit = l["unit"].as_f64().unwrap_or(0.0);
                    pb::CostLine {
                        interaction_kind: l["kind"].as_str().unwrap_or_default().to_owned(),
                        channel: l["channel"].as_i64().unwrap_or(0) as i32,
                        count,
                        unit_cost: Some(major(c, unit)),
                        total: Some(major(c, unit * count as f64)),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let graded = r.score_time.is_some();
    let known: Vec<&SpendRow> = v.spends.iter().filter(|s| s.total_spend_minor > 0).collect();
    let total_known: i64 = known.iter().map(|s| s.total_spend_minor).sum();
    let company: i64 = known.iter().map(|s| s.company_spend_minor.max(0)).sum();
    pb::CustomerValue {
        name: format!("customers/{asked}/value"),
        customer: format!("customers/{}", r.customer_id),
        rfm: Some(rfm),
        prediction,
        cost_to_serve: graded.then(|| pb::CostToServe {
            total: Some(major(c, r.cost_to_serve.unwrap_or(0.0))),
            window: Some(window),
            lines,
        }),
        profit: r.profit.map(|p| major(c, p)),
        share_of_wallet: (total_known > 0).then(|| (company as f64 / total_known as f64).min(1.0)),
        category_spends: v.spends.iter().map(spend_to_proto).collect(),
        tier: i32::from(r.tier),
        previous_tier: i32::from(r.previous_tier),
        tier_start_time: ts(r.tier_start_time),
        at_risk: r.at_risk,
        value_percentile: r.value_percentile,
        growth_ratio: r.growth_ratio,
        cluster: r.cluster_id.map(|c| format!("clusters/{c}")).unwrap_or_default(),
        cluster_label: r.cluster_label.clone().unwrap_or_default(),
        score_time: ts(r.score_time),
        update_time: Some(timestamp(r.update_time)),
    }
}

/// GetCustomerValue.
pub(super) async fn get_customer_value(
    api: &SegmentationApi,
    request: pb::GetCustomerValueRequest,
) -> ApiResult<pb::CustomerValue> {
    let pb::GetCustomerValueRequest { name } = request;
    let customer = value_name(&name, "name")?;
    let value = load(api, customer).await?.ok_or_else(|| ApiError::NotFound(name))?;
    Ok(value_to_proto(customer, &value))
}

/// BatchGetCustomerValues.
pub(super) async fn batch_get_customer_values(
    api: &SegmentationApi,
    request: pb::BatchGetCustomerValuesRequest,
) -> ApiResult<pb::BatchGetCustomerValuesResponse> {
    let pb::BatchGetCustomerValuesRequest { names, allow_missing } = request;
    if names.is_empty() || names.len() > MAX_BATCH {
        return Err(ApiError::invalid("names", format!("must hold 1 to {MAX_BATCH} names")));
    }
    let mut v = validate::Violations::new();
    let ids: Vec<Option<Uuid>> =
        names.iter().enumerate().map(|(i, n)| v.check("", value_name(n, &format!("names[{i}]")))).collect();
    v.finish()?;
    let ids: Vec<Uuid> = ids.into_iter().flatten().collect();
    let keys: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let cached: Vec<Option<CachedValue>> = api.cache.values.get_many(&key_refs).await;
    let mut response = pb::BatchGetCustomerValuesResponse::default();
    for ((id, name), hit) in ids.iter().zip(&names).zip(cached) {
        let found = match hit {
            Some(h) => Some(h),
            None => load(api, *id).await?,
        };
        match found {
            Some(value) => response.values.push(value_to_proto(*id, &value)),
            None if allow_missing => response.missing.push(name.clone()),
            None => return Err(ApiError::NotFound(name.clone())),
        }
    }
    Ok(response)
}

fn tier_change_to_proto(c: value::TierChangeRow, currency: &str) -> pb::TierChange {
    pb::TierChange {
        customer: format!("customers/{}", c.customer_id),
        tier: i32::from(c.tier),
        previous_tier: i32::from(c.previous_tier),
        at_risk: c.at_risk,
        previous_at_risk: c.previous_at_risk,
        change_time: Some(timestamp(c.change_time)),
        reason: i32::from(c.reason),
        job: c.job.map(|j| format!("jobs/{j}")).unwrap_or_default(),
        clv: Some(major(currency, c.clv)),
        p_alive: c.p_alive,
    }
}

fn time_of(t: &prost_types::Timestamp, field: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(u32::MAX))
        .ok_or_else(|| ApiError::invalid(field, "is not a valid timestamp"))
}

/// GetTierHistory.
pub(super) async fn get_tier_history(
    api: &SegmentationApi,
    request: pb::GetTierHistoryRequest,
) -> ApiResult<pb::GetTierHistoryResponse> {
    let pb::GetTierHistoryRequest { customer, page_size, page_token, period } = request;
    let mut v = validate::Violations::new();
    let id = v.check("", validate::resource_id(&customer, "customers", "customer"));
    let size = v.check("", paging::page_size(page_size, "page_size"));
    let (mut from, mut to) = (None, None);
    if let Some(common::Period { start_time, end_time }) = &period {
        from = start_time.as_ref().and_then(|t| v.check("", time_of(t, "period.start_time")));
        to = end_time.as_ref().and_then(|t| v.check("", time_of(t, "period.end_time")));
        if let (Some(f), Some(t)) = (from, to)
            && t < f
        {
            v.add("period.end_time", "must not be before period.start_time");
        }
    }
    let filter = format!("{customer}|{from:?}|{to:?}");
    let cursor = v.check("", paging::decode_page_token::<(DateTime<Utc>, Uuid)>(&page_token, &filter, "page_token"));
    v.finish()?;
    let (Some(id), Some(size)) = (id, size) else { return Err(ApiError::invalid("customer", "is required")) };
    let survivor = value::survivors(&api.pool, &[id]).await?[0];
    if value::values(&api.pool, &[survivor]).await?.is_empty() {
        return Err(ApiError::NotFound(customer));
    }
    let currency = settings::load(&api.pool).await?.currency_code;
    let mut rows = value::tier_changes(&api.pool, survivor, cursor.flatten(), from, to, i64::from(size) + 1).await?;
    let more = rows.len() > size as usize;
    rows.truncate(size as usize);
    let next_page_token = match (more, rows.last()) {
        (true, Some(last)) => paging::next_page_token(&(last.change_time, last.id), &filter),
        _ => String::new(),
    };
    Ok(pb::GetTierHistoryResponse {
        changes: rows.into_iter().map(|r| tier_change_to_proto(r, &currency)).collect(),
        next_page_token,
    })
}

/// GetValueDistribution: the Pareto view as of the last rescoring.
pub(super) async fn get_value_distribution(
    api: &SegmentationApi,
    request: pb::GetValueDistributionRequest,
) -> ApiResult<pb::ValueDistribution> {
    let pb::GetValueDistributionRequest { measure, point_count, bucket_count, segment } = request;
    let mut v = validate::Violations::new();
    let measure = match pb::ValueMeasure::try_from(measure) {
        Ok(pb::ValueMeasure::Unspecified) => pb::ValueMeasure::Clv,
        Ok(m) => m,
        Err(_) => {
            v.add("measure", "unknown value measure");
            pb::ValueMeasure::Clv
        }
    };
    let points = if point_count == 0 { 100 } else { point_count };
    if !(10..=1000).contains(&points) {
        v.add("point_count", "must be 0 or between 10 and 1000");
    }
    let buckets = if bucket_count == 0 { 20 } else { bucket_count };
    if !(5..=200).contains(&buckets) {
        v.add("bucket_count", "must be 0 or between 5 and 200");
    }
    if !segment.is_empty() {
        v.check("", validate::resource_id(&segment, "segments", "segment"));
    }
    v.finish()?;
    if !segment.is_empty() {
        return Err(ApiError::Unimplemented("restricting a value distribution to a segment".into()));
    }
    let s = settings::load(&api.pool).await?;
    let currency = s.currency_code.as_str();
    let (rows, score_time) = value::graded(&api.pool).await?;
    let Some(score_time) = score_time.filter(|_| !rows.is_empty()) else {
        return Err(ApiError::FailedPrecondition("no rescoring has completed yet".into()));
    };
    let measure_of = |r: &value::GradedRow| match measure {
        pb::ValueMeasure::Revenue => r.window_revenue,
        pb::ValueMeasure::Profit => r.profit,
        _ => r.clv,
    };
    let mut values: Vec<f64> = rows.iter().map(measure_of).collect();
    values.sort_by(|a, b| b.total_cmp(a));
    let n = values.len();
    let total: f64 = values.iter().sum();
    let share = |held: f64| if total == 0.0 { 0.0 } else { held / total };
    let mut cumulative = Vec::with_capacity(n + 1);
    cumulative.push(0.0);
    for x in &values {
        cumulative.push(cumulative.last().copied().unwrap_or(0.0) + x);
    }
    let top = |fraction: f64| cumulative[((fraction * n as f64).ceil() as usize).min(n)];
    let curve = (1..=points)
        .map(|i| {
            let pct = 100.0 * f64::from(i) / f64::from(points);
            pb::ParetoPoint { customer_percentile: pct, cumulative_value_share: share(top(pct / 100.0)) }
        })
        .collect();
    let customers_for_80 =
        cumulative.iter().position(|c| total > 0.0 && *c >= 0.8 * total).unwrap_or(n) as f64 / n as f64;
    let tiers = [pb::Tier::Mvc, pb::Tier::Mgc, pb::Tier::Bzc, pb::Tier::Middle, pb::Tier::LongTail]
        .into_iter()
        .map(|tier| {
            let members: Vec<&value::GradedRow> = rows.iter().filter(|r| r.tier == tier as i16).collect();
            let value: f64 = members.iter().map(|r| measure_of(r)).sum();
            let count = members.len();
            pb::TierSummary {
                tier: tier as i32,
                customer_count: count as i64,
                customer_share: count as f64 / n as f64,
                total_value: Some(major(currency, value)),
                value_share: share(value),
                average_value: Some(major(currency, if count == 0 { 0.0 } else { value / count as f64 })),
                at_risk_count: members.iter().filter(|r| r.at_risk).count() as i64,
                total_cost_to_serve: Some(major(currency, members.iter().map(|r| r.cost_to_serve).sum())),
                total_profit: Some(major(currency, members.iter().map(|r| r.profit).sum())),
            }
        })
        .collect();
    let tail: Vec<f64> = rows.iter().filter(|r| r.tier == pb::Tier::LongTail as i16).map(measure_of).collect();
    let tail_total: f64 = tail.iter().sum();
    let long_tail = pb::LongTailSummary {
        customer_count: tail.len() as i64,
        customer_share: tail.len() as f64 / n as f64,
        total_value: Some(major(currency, tail_total)),
        value_share: share(tail_total),
        max_value: Some(major(currency, tail.iter().copied().fold(0.0, f64::max))),
    };
    Ok(pb::ValueDistribution {
        measure: measure as i32,
        segment,
        customer_count: n as i64,
        total_value: Some(major(currency, total)),
        curve,
        customer_share_for_80_percent: customers_for_80,
        value_share_of_top_20_percent: share(top(0.2)),
        tiers,
        long_tail: Some(long_tail),
        histogram: histogram(&values, buckets as usize, currency),
        score_time: Some(timestamp(score_time)),
    })
}

/// One bucket for values ≤ 0, the rest logarithmically spaced up to the maximum.
fn histogram(values: &[f64], buckets: usize, currency: &str) -> Vec<pb::ValueBucket> {
    let max = values.iter().copied().fold(0.0, f64::max);
    let positive: Vec<f64> = values.iter().copied().filter(|v| *v > 0.0).collect();
    let min = positive.iter().copied().fold(f64::INFINITY, f64::min);
    let mut out = vec![pb::ValueBucket {
        lower_bound: None,
        upper_bound: Some(major(currency, 0.0)),
        customer_count: values.iter().filter(|v| **v <= 0.0).count() as i64,
        total_value: Some(major(currency, values.iter().filter(|v| **v <= 0.0).sum())),
    }];
    if positive.is_empty() {
        return out;
    }
    let k = buckets.saturating_sub(1).max(1);
    let (lo, hi) = (min.ln(), max.ln().max(min.ln() + 1e-9));
    let edge = |i: usize| if i == 0 { 0.0 } else { (lo + (hi - lo) * i as f64 / k as f64).exp() };
    for i in 0..k {
        let (low, high) = (edge(i), edge(i + 1));
        let last = i + 1 == k;
        let inside: Vec<f64> =
            positive.iter().copied().filter(|v| *v > 0.0 && *v >= low && (last || *v < high)).collect();
        out.push(pb::ValueBucket {
            lower_bound: Some(major(currency, low)),
            upper_bound: (!last).then(|| major(currency, high)),
            customer_count: inside.len() as i64,
            total_value: Some(major(currency, inside.iter().sum())),
        });
    }
    out
}
