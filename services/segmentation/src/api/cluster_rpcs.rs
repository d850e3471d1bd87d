//! Needs cluster RPCs: ListClusters, GetCluster, UpdateCluster and GetCustomerCluster.

use idic_platform::{ApiError, ApiResult, audit, jobs::timestamp, paging, validate};
use idic_proto::segmentation::v1 as pb;
use tonic::Request;
use uuid::Uuid;

use super::{SegmentationApi, caller, value_rpcs::major};
use crate::{
    settings,
    store::{clusters, clusters::ClusterRow, models, value},
};

fn feature(f: &serde_json::Value) -> pb::ClusterFeature {
    let (cm, pm, z) = (
        f["cluster_mean"].as_f64().unwrap_or(0.0),
        f["population_mean"].as_f64().unwrap_or(0.0),
        f["z_score"].as_f64().unwrap_or(0.0),
    );
    let name = f["feature"].as_str().unwrap_or_default().to_owned();
    pb::ClusterFeature {
        summary: format!("{name} {cm:.2} vs {pm:.2} overall"),
        feature: name,
        cluster_mean: cm,
        population_mean: pm,
        z_score: z,
    }
}

fn cluster_to_proto(c: ClusterRow, currency: &str) -> pb::Cluster {
    let features: Vec<pb::ClusterFeature> =
        c.features.as_array().map(|a| a.iter().map(feature).collect()).unwrap_or_default();
    let mut distinguishing = features.clone();
    distinguishing.sort_by(|a, b| b.z_score.abs().total_cmp(&a.z_score.abs()));
    distinguishing.truncate(5);
    let mut tier_counts: Vec<pb::TierCount> = c
        .tier_counts
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(t, n)| pb::TierCount { tier: t.parse().unwrap_or(0), customer_count: n.as_i64().unwrap_or(0) })
                .collect()
        })
        .unwrap_or_default();
    tier_counts.sort_by_key(|t| t.tier);
    pb::Cluster {
        name: format!("clusters/{}", c.id),
        label: c.label,
        display_name: c.display_name,
        description: c.description,
        model: format!("models/{}", c.model),
        customer_count: c.customer_count,
        customer_share: c.customer_share,
        distinguishing_features: distinguishing,
        features,
        average_clv: Some(major(currency, c.average_clv)),
        tier_counts,
        create_time: Some(timestamp(c.create_time)),
        update_time: Some(timestamp(c.update_time)),
    }
}

/// ListClusters, largest first.
pub(super) async fn list_clusters(
    api: &SegmentationApi,
    request: pb::ListClustersRequest,
) -> ApiResult<pb::ListClustersResponse> {
    let pb::ListClustersRequest { page_size, page_token, model } = request;
    let mut v = validate::Violations::new();
    let size = v.check("", paging::page_size(page_size, "page_size"));
    let model_id = if model.is_empty() { None } else { v.check("", validate::resource_id(&model, "models", "model")) };
    let cursor = v.check("", paging::decode_page_token::<(i64, Uuid)>(&page_token, &model, "page_token"));
    v.finish()?;
    let model_id = match model_id {
        Some(id) => {
            let found = models::get(&api.pool, id).await?.filter(|m| m.kind == pb::ModelKind::Kmeans as i32);
            found.ok_or_else(|| ApiError::NotFound(model.clone()))?;
            id
        }
        None => {
            let active = models::active(&api.pool, pb::ModelKind::Kmeans)
                .await?
                .ok_or_else(|| ApiError::FailedPrecondition("no clustering model has been fitted yet".into()))?;
            validate::resource_id(&active.name, "models", "model")?
        }
    };
    let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE);
    let mut rows = clusters::list(&api.pool, model_id, cursor.flatten(), i64::from(size) + 1).await?;
    let more = rows.len() > size as usize;
    rows.truncate(size as usize);
    let next_page_token = match (more, rows.last()) {
        (true, Some(last)) => paging::next_page_token(&(last.customer_count, last.id), &model),
        _ => String::new(),
    };
    let currency = settings::load(&api.pool).await?.currency_code;
    Ok(pb::ListClustersResponse {
        clusters: rows.into_iter().map(|c| cluster_to_proto(c, &currency)).collect(),
        next_page_token,
    })
}

/// GetCluster.
pub(super) async fn get_cluster(api: &SegmentationApi, request: pb::GetClusterRequest) -> ApiResult<pb::Cluster> {
    let pb::GetClusterRequest { name } = request;
    let id = validate::resource_id(&name, "clusters", "name")?;
    let row = clusters::get(&api.pool, id).await?.ok_or(ApiError::NotFound(name))?;
    let currency = settings::load(&api.pool).await?.currency_code;
    Ok(cluster_to_proto(row, &currency))
}

fn is_slug(label: &str) -> bool {
    (1..=63).contains(&label.len()) && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// UpdateCluster: label, display name and description.
pub(super) async fn update_cluster(
    api: &SegmentationApi,
    request: Request<pb::UpdateClusterRequest>,
) -> ApiResult<pb::Cluster> {
    let caller = caller(&request)?;
    let pb::UpdateClusterRequest { cluster, update_mask } = request.into_inner();
    let Some(cluster) = cluster else { return Err(ApiError::invalid("cluster", "is required")) };
    let mut v = validate::Violations::new();
    let id = v.check("", validate::resource_id(&cluster.name, "clusters", "cluster.name"));
    let paths = update_mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", "is required");
    }
    for (i, path) in paths.iter().enumerate() {
        match path.as_str() {
            "label" if !is_slug(&cluster.label) => v.add("cluster.label", "must be 1–63 characters of [a-z0-9-]"),
            "display_name" => {
                v.check("", validate::text(&cluster.display_name, 200, "cluster.display_name"));
            }
            "description" => {
                v.check("", validate::text(&cluster.description, 2000, "cluster.description"));
            }
            "label" => {}
            _ => v.add(
                format!("update_mask.paths[{i}]"),
                format!("unknown path {path:?}: label, display_name or description"),
            ),
        }
    }
    v.finish()?;
    let id = id.ok_or_else(|| ApiError::invalid("cluster.name", "is required"))?;
    let mut row = clusters::get(&api.pool, id).await?.ok_or_else(|| ApiError::NotFound(cluster.name.clone()))?;
    let model = models::get(&api.pool, row.model).await?;
    if model.is_none_or(|m| m.state != pb::ModelState::Active as i32) {
        return Err(ApiError::FailedPrecondition(format!("{} belongs to a superseded model", cluster.name)));
    }
    for path in &paths {
        match path.as_str() {
            "label" => row.label = cluster.label.clone(),
            "display_name" => row.display_name = cluster.display_name.clone(),
            _ => row.description = cluster.description.clone(),
        }
    }
    let taken: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM clusters WHERE model = $1 AND label = $2 AND id <> $3")
            .bind(row.model)
            .bind(&row.label)
            .bind(row.id)
            .fetch_optional(&api.pool)
            .await?;
    if taken.is_some() {
        return Err(ApiError::Conflict(idic_platform::FieldViolation::new(
            "cluster.label",
            "another current cluster has this label",
        )));
    }
    let touched = clusters::update(&api.pool, &row).await?;
    let mut tx = api.pool.begin().await?;
    audit::record(
        &mut tx,
        audit::AuditRecord {
            caller: &caller.name,
            action: "UpdateCluster",
            resource: &cluster.name,
            reason: "",
            detail: serde_json::json!({ "paths": paths, "label": row.label }),
        },
    )
    .await?;
    tx.commit().await?;
    api.cache.invalidate(&touched).await;
    let row = clusters::get(&api.pool, id).await?.ok_or(ApiError::NotFound(cluster.name))?;
    let currency = settings::load(&api.pool).await?.currency_code;
    Ok(cluster_to_proto(row, &currency))
}

/// GetCustomerCluster.
pub(super) async fn get_customer_cluster(
    api: &SegmentationApi,
    request: pb::GetCustomerClusterRequest,
) -> ApiResult<pb::CustomerCluster> {
    let pb::GetCustomerClusterRequest { name } = request;
    let base = name
        .strip_suffix("/cluster")
        .ok_or_else(|| ApiError::invalid("name", "must be customers/{customer_id}/cluster"))?;
    let customer = validate::resource_id(base, "customers", "name")?;
    let survivor = value::survivors(&api.pool, &[customer]).await?[0];
    let (cluster, label, distance, features, time) =
        clusters::of_customer(&api.pool, survivor).await?.ok_or_else(|| ApiError::NotFound(name.clone()))?;
    Ok(pb::CustomerCluster {
        name,
        customer: format!("customers/{survivor}"),
        cluster: format!("clusters/{cluster}"),
        cluster_label: label,
        distance,
        features: features
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0))).collect())
            .unwrap_or_default(),
        assign_time: Some(timestamp(time)),
    })
}
