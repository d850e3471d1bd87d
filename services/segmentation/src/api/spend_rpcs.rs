//! Category spend RPCs (share of wallet): RecordCategorySpend and ImportCategorySpend.

use chrono::{DateTime, Utc};
use idic_platform::{ApiError, ApiResult, validate::Violations};
use idic_proto::{common::v1 as common, segmentation::v1 as pb};
use tonic::{Request, Streaming};
use uuid::Uuid;

use super::{SegmentationApi, value_rpcs};
use crate::{
    events::live_from,
    settings,
    store::value::{self, NewSpend, SpendOutcome},
};

/// Most rows in one import.
const MAX_ROWS: i64 = 1_000_000;

fn time_of(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
}

/// Checks one fact against the settings in effect; violations are named under `category_spend.`.
fn check(fact: pb::CategorySpend, s: &pb::ValueSettings) -> ApiResult<NewSpend> {
    let pb::CategorySpend {
        name: _,
        customer,
        category,
        total_spend,
        period,
        source,
        source_detail,
        company_spend: _,
        share_of_wallet: _,
        record_time: _,
    } = fact;
    let mut v = Violations::new();
    let customer = v.check("", idic_platform::validate::resource_id(&customer, "customers", "category_spend.customer"));
    if category.trim().is_empty() || category.chars().count() > 200 {
        v.add("category_spend.category", "must be 1–200 characters");
    }
    let total = match total_spend {
        None => {
            v.add("category_spend.total_spend", "is required");
            None
        }
        Some(m) => {
            if m.amount_minor < 0 {
                v.add("category_spend.total_spend.amount_minor", "must be zero or more");
            }
            if m.currency_code != s.currency_code && !s.exchange_rates.contains_key(&m.currency_code) {
                v.add(
                    "category_spend.total_spend.currency_code",
                    format!("no exchange rate from {:?} to {}", m.currency_code, s.currency_code),
                );
            }
            Some(m)
        }
    };
    let (start, end) = match period {
        Some(common::Period { start_time, end_time }) => (time_of(start_time.as_ref()), time_of(end_time.as_ref())),
        None => (None, None),
    };
    match (start, end) {
        (Some(a), Some(b)) if a < b => {}
        (Some(_), Some(_)) => v.add("category_spend.period.end_time", "must be after period.start_time"),
        _ => v.add("category_spend.period", "needs both start_time and end_time"),
    }
    match pb::CategorySpendSource::try_from(source) {
        Ok(pb::CategorySpendSource::Unspecified) | Err(_) => v.add("category_spend.source", "must name the source"),
        Ok(_) => {}
    }
    if source_detail.chars().count() > 200 {
        v.add("category_spend.source_detail", "must be at most 200 characters");
    }
    v.finish()?;
    let (Some(customer), Some(total), Some(start), Some(end)) = (customer, total, start, end) else {
        return Err(ApiError::invalid("category_spend", "is incomplete"));
    };
    Ok(NewSpend {
        customer_id: customer,
        category,
        period_start: start,
        period_end: end,
        total_spend_minor: total.amount_minor,
        currency_code: total.currency_code,
        source: source as i16,
        source_detail,
    })
}

async fn to_survivors(api: &SegmentationApi, facts: &mut [NewSpend]) -> ApiResult<()> {
    let ids: Vec<Uuid> = facts.iter().map(|f| f.customer_id).collect();
    for (f, s) in facts.iter_mut().zip(value::survivors(&api.pool, &ids).await?) {
        f.customer_id = s;
    }
    Ok(())
}

/// RecordCategorySpend.
pub(super) async fn record_category_spend(
    api: &SegmentationApi,
    request: pb::RecordCategorySpendRequest,
) -> ApiResult<pb::CategorySpend> {
    let pb::RecordCategorySpendRequest { request_id, category_spend } = request;
    idic_platform::validate::request_id(&request_id, "request_id")?;
    let fact = category_spend.ok_or_else(|| ApiError::invalid("category_spend", "is required"))?;
    let s = settings::load(&api.pool).await?;
    let mut facts = vec![check(fact, &s)?];
    to_survivors(api, &mut facts).await?;
    value::record_spends(&api.pool, &facts, &s.currency_code).await?;
    let f = &facts[0];
    api.cache.invalidate(&[f.customer_id]).await;
    let stored = value::category_spends(&api.pool, f.customer_id, &live_from(&s).rates).await?;
    let row = stored
        .iter()
        .find(|r| r.category == f.category && r.period_start == f.period_start && r.period_end == f.period_end)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the stored category spend vanished")))?;
    Ok(value_rpcs::spend_to_proto(row))
}

/// ImportCategorySpend: stores the valid rows, reports the others.
pub(super) async fn import_category_spend(
    api: &SegmentationApi,
    request: Request<Streaming<pb::ImportCategorySpendRequest>>,
) -> ApiResult<common::BulkSummary> {
    let mut stream = request.into_inner();
    let s = settings::load(&api.pool).await?;
    let mut summary = common::BulkSummary::default();
    let mut batch: Vec<NewSpend> = Vec::new();
    loop {
        let row = stream.message().await.map_err(|e| ApiError::invalid("", format!("stream: {}", e.message())))?;
        let Some(pb::ImportCategorySpendRequest { row_id, category_spend }) = row else { break };
        let position = summary.received;
        summary.received += 1;
        if summary.received > MAX_ROWS {
            return Err(ApiError::invalid("", format!("more than {MAX_ROWS} rows")));
        }
        let row_id = if row_id.is_empty() { position.to_string() } else { row_id.chars().take(128).collect() };
        let checked = match category_spend {
            None => Err(ApiError::invalid("category_spend", "is required")),
            Some(fact) => check(fact, &s),
        };
        match checked {
            Ok(fact) => batch.push(fact),
            Err(ApiError::InvalidArgument(violations)) => {
                summary.rejected += 1;
                for violation in violations {
                    summary.errors.push(common::RowError {
                        row_id: row_id.clone(),
                        field: violation.field,
                        description: violation.description,
                    });
                }
            }
            Err(other) => return Err(other),
        }
        if batch.len() >= 1000 {
            store_batch(api, &mut batch, &s.currency_code, &mut summary).await?;
        }
    }
    store_batch(api, &mut batch, &s.currency_code, &mut summary).await?;
    Ok(summary)
}

async fn store_batch(
    api: &SegmentationApi,
    batch: &mut Vec<NewSpend>,
    currency: &str,
    summary: &mut common::BulkSummary,
) -> ApiResult<()> {
    if batch.is_empty() {
        return Ok(());
    }
    to_survivors(api, batch).await?;
    for outcome in value::record_spends(&api.pool, batch, currency).await? {
        match outcome {
            SpendOutcome::Created => summary.created += 1,
            SpendOutcome::Updated => summary.updated += 1,
            SpendOutcome::Duplicate => summary.duplicates += 1,
        }
    }
    let customers: Vec<Uuid> = batch.iter().map(|f| f.customer_id).collect();
    api.cache.invalidate(&customers).await;
    batch.clear();
    Ok(())
}
