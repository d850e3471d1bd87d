//! Model and rescoring RPCs: GetModel, ListModels and StartRescoring (a job).

use chrono::{DateTime, Utc};
use idic_platform::{ApiError, ApiResult, audit, paging, validate};
use idic_proto::{common::v1 as common, segmentation::v1 as pb};
use tonic::Request;
use uuid::Uuid;

use super::{SegmentationApi, caller};
use crate::{
    rescoring::{KIND, Plan},
    settings,
    store::models,
};

/// GetModel.
pub(super) async fn get_model(api: &SegmentationApi, request: pb::GetModelRequest) -> ApiResult<pb::Model> {
    let pb::GetModelRequest { name } = request;
    let id = validate::resource_id(&name, "models", "name")?;
    models::get(&api.pool, id).await?.ok_or(ApiError::NotFound(name))
}

/// ListModels, newest first.
pub(super) async fn list_models(
    api: &SegmentationApi,
    request: pb::ListModelsRequest,
) -> ApiResult<pb::ListModelsResponse> {
    let pb::ListModelsRequest { page_size, page_token, kind, state } = request;
    let mut v = validate::Violations::new();
    let size = v.check("", paging::page_size(page_size, "page_size"));
    if pb::ModelKind::try_from(kind).is_err() {
        v.add("kind", "unknown model kind");
    }
    if pb::ModelState::try_from(state).is_err() {
        v.add("state", "unknown model state");
    }
    let filter = format!("{kind}|{state}");
    let cursor = v.check("", paging::decode_page_token::<(DateTime<Utc>, Uuid)>(&page_token, &filter, "page_token"));
    v.finish()?;
    let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE);
    let mut rows = models::list(&api.pool, kind, state, cursor.flatten(), i64::from(size) + 1).await?;
    let more = rows.len() > size as usize;
    rows.truncate(size as usize);
    let next_page_token = match (more, rows.last()) {
        (true, Some((_, time, id))) => paging::next_page_token(&(*time, *id), &filter),
        _ => String::new(),
    };
    Ok(pb::ListModelsResponse { models: rows.into_iter().map(|(m, _, _)| m).collect(), next_page_token })
}

/// StartRescoring: validates, refuses a second concurrent rescoring, records the job and
/// runs it in the background.
pub(super) async fn start_rescoring(
    api: &SegmentationApi,
    request: Request<pb::StartRescoringRequest>,
) -> ApiResult<common::Job> {
    let caller = caller(&request)?;
    let pb::StartRescoringRequest { request_id, mode, transaction_model, cluster_count, holdout, reason } =
        request.into_inner();
    let mut v = validate::Violations::new();
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten().map(str::to_owned);
    let refit = match pb::RescoringMode::try_from(mode) {
        Ok(pb::RescoringMode::Unspecified | pb::RescoringMode::Refit) => true,
        Ok(pb::RescoringMode::ReuseModels) => false,
        Err(_) => {
            v.add("mode", "unknown rescoring mode");
            true
        }
    };
    let model = match pb::ModelKind::try_from(transaction_model) {
        Ok(k @ (pb::ModelKind::Unspecified | pb::ModelKind::BgNbd | pb::ModelKind::ParetoNbd)) => k,
        _ => {
            v.add("transaction_model", "must be MODEL_KIND_BG_NBD or MODEL_KIND_PARETO_NBD");
            pb::ModelKind::Unspecified
        }
    };
    if cluster_count.is_some_and(|k| !(2..=50).contains(&k)) {
        v.add("cluster_count", "must be between 2 and 50");
    }
    let holdout_days = match &holdout {
        None => None,
        Some(d) if d.seconds < 0 || d.nanos < 0 => {
            v.add("holdout", "must not be negative");
            None
        }
        Some(d) if d.nanos != 0 || d.seconds % 86_400 != 0 || (d.seconds > 0 && d.seconds < 7 * 86_400) => {
            v.add("holdout", "must be 0 or whole days, at least 7");
            None
        }
        Some(d) => Some(d.seconds / 86_400),
    };
    v.check("", validate::text(&reason, 500, "reason"));
    v.finish()?;
    if let Some(key) = &request_id
        && let Some(id) = api.jobs.by_request_id(KIND, key).await?
    {
        return api.jobs.get(common::GetJobRequest { name: format!("jobs/{id}") }).await;
    }
    let running = api.jobs.active(KIND).await?;
    if let Some(id) = running {
        return Err(ApiError::FailedPrecondition(format!("rescoring jobs/{id} is already queued or running")));
    }
    let s = settings::load(&api.pool).await?;
    let transaction_model = if model == pb::ModelKind::Unspecified { s.transaction_model } else { model as i32 };
    if !refit {
        let kind = pb::ModelKind::try_from(transaction_model).unwrap_or(pb::ModelKind::BgNbd);
        for needed in [kind, pb::ModelKind::GammaGamma] {
            if models::active(&api.pool, needed).await?.is_none() {
                return Err(ApiError::FailedPrecondition(format!(
                    "REUSE_MODELS needs an active {} model; run a refit first",
                    needed.as_str_name()
                )));
            }
        }
    }
    let plan = Plan { refit, transaction_model, holdout_days, request_id, cluster_count };
    let params = serde_json::to_value(&plan).map_err(|e| ApiError::Internal(e.into()))?;
    let job = api.jobs.create(KIND, &caller.name, params).await?;
    let mut tx = api.pool.begin().await?;
    audit::record(
        &mut tx,
        audit::AuditRecord {
            caller: &caller.name,
            action: "StartRescoring",
            resource: &format!("jobs/{job}"),
            reason: &reason,
            detail: serde_json::json!({ "refit": refit, "transaction_model": transaction_model }),
        },
    )
    .await?;
    tx.commit().await?;
    tokio::spawn(api.rescorer.clone().run(job, plan));
    api.jobs.get(common::GetJobRequest { name: format!("jobs/{job}") }).await
}
