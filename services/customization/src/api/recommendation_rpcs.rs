//! Recommendation RPCs: Recommend (served from the in-memory model), RecordRecommendationFeedback,
//! GetItemNeighbours and StartRetraining (a job), with their validation and conversions.

use std::collections::HashSet;

use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use idic_platform::{
    ApiError, ApiResult, audit,
    customers::{Lookup, Reference},
    jobs::timestamp,
    validate::{self, Violations},
};
use idic_proto::{common::v1 as common, customization::v1 as pb};
use tonic::Request;
use uuid::Uuid;

use super::{CustomizationApi, caller, catalog_rpcs::product_id, shared};
use crate::{
    domain::recommend::{
        self as rec, CustomerView, FeedbackKind, ItemId, Recommender, Relation, SourceWeights, Strategy,
    },
    recommendations::{BuildSettings, Model, kind_code},
    store::{self, feedback as fstore},
};

/// The retraining job's kind.
pub const RETRAIN_KIND: &str = "customization.retrain";
/// Most items asked for.
const MAX_N: i32 = 100;
/// Most basket lines.
const MAX_BASKET: usize = 200;
/// Most exclusions.
const MAX_EXCLUSIONS: usize = 1000;
/// Most category filters.
const MAX_CATEGORY_FILTERS: usize = 20;
/// Longest suppression.
const MAX_SUPPRESSION: Duration = Duration::days(3 * 365);
/// Default suppression.
const DEFAULT_SUPPRESSION: Duration = Duration::days(180);

/// A product reference as validated: its id, or its sku.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ProductKey {
    Id(String),
    Sku(String),
}

fn product_key(r: Option<&pb::ProductRef>, field: &str) -> ApiResult<ProductKey> {
    use pb::product_ref::Ref;
    match r.and_then(|r| r.r#ref.as_ref()) {
        None => Err(ApiError::invalid(field, "is required: product or sku")),
        Some(Ref::Product(name)) => product_id(name, &format!("{field}.product")).map(ProductKey::Id),
        Some(Ref::Sku(sku)) => {
            validate::required(sku, 64, &format!("{field}.sku"))?;
            Ok(ProductKey::Sku(sku.clone()))
        }
    }
}

/// The model's index of a product, if it knows it.
fn item_of(model: &Model, key: &ProductKey) -> Option<ItemId> {
    match key {
        ProductKey::Id(id) => model.items.get(id),
        ProductKey::Sku(sku) => model.items.by_sku(sku),
    }
}

/// The product id behind a reference, from the catalog (NOT_FOUND when none).
async fn product_exists(api: &CustomizationApi, key: &ProductKey) -> ApiResult<store::ProductRow> {
    let found = match key {
        ProductKey::Id(id) => store::product(&api.pool, id).await?,
        ProductKey::Sku(sku) => store::product_by_sku(&api.pool, sku).await?,
    };
    found.ok_or_else(|| {
        ApiError::NotFound(match key {
            ProductKey::Id(id) => format!("products/{id}"),
            ProductKey::Sku(sku) => format!("product with sku {sku}"),
        })
    })
}

/// Resolves an optional customer reference without creating anyone: `None` for a guest, an
/// unknown or erased customer.
async fn known_customer(api: &CustomizationApi, reference: Option<common::CustomerRef>) -> ApiResult<Option<Uuid>> {
    if reference.as_ref().is_none_or(|r| r.r#ref.is_none()) {
        return Ok(None);
    }
    let reference = Reference::from_proto(reference).map_err(|e| e.within("customer"))?;
    match api.customers.resolve(Lookup { reference: &reference, create: false }).await {
        Ok(id) => Ok(Some(id)),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Recommend.
pub(super) async fn recommend(
    api: &CustomizationApi,
    request: pb::RecommendRequest,
) -> ApiResult<pb::RecommendResponse> {
    let pb::RecommendRequest { customer, context, n, exclusions, categories, max_per_cluster, language } = request;
    let mut v = Violations::new();
    if !(0..=MAX_N).contains(&n) {
        v.add("n", format!("must be between 0 and {MAX_N}"));
    }
    if !(0..=100).contains(&max_per_cluster) {
        v.add("max_per_cluster", "must be between 0 and 100");
    }
    if exclusions.len() > MAX_EXCLUSIONS {
        v.add("exclusions", format!("at most {MAX_EXCLUSIONS}"));
    }
    let excluded: Vec<ProductKey> = exclusions
        .iter()
        .enumerate()
        .filter_map(|(i, r)| v.check("", product_key(Some(r), &format!("exclusions[{i}]"))))
        .collect();
    if categories.len() > MAX_CATEGORY_FILTERS {
        v.add("categories", format!("at most {MAX_CATEGORY_FILTERS}"));
    }
    for (i, c) in categories.iter().enumerate() {
        v.check("", validate::required(c, 200, &format!("categories[{i}]")));
    }
    v.check("", language_tag(&language, "language"));
    let pb::RecommendationContext { viewed_product, basket, channel, placement } = context.unwrap_or_default();
    let viewed = viewed_product.as_ref().and_then(|r| v.check("", product_key(Some(r), "context.viewed_product")));
    if basket.len() > MAX_BASKET {
        v.add("context.basket", format!("at most {MAX_BASKET} items"));
    }
    let basket_keys: Vec<ProductKey> = basket
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let pb::BasketItem { product, quantity } = line;
            if !(0..=10_000).contains(quantity) {
                v.add(format!("context.basket[{i}].quantity"), "must be between 0 and 10000");
            }
            v.check("", product_key(product.as_ref(), &format!("context.basket[{i}].product")))
        })
        .collect();
    if common::Channel::try_from(channel).is_err() {
        v.add("context.channel", "must be a known channel");
    }
    v.check("", validate::text(&placement, 64, "context.placement"));
    if let Some(Err(e)) =
        customer.as_ref().filter(|r| r.r#ref.is_some()).map(|r| Reference::from_proto(Some(r.clone())))
    {
        v.check::<()>("customer", Err(e));
    }
    v.finish()?;
    if let Some(key) = &viewed
        && item_of(&api.recommendations.read(), key).is_none()
    {
        // Not in the model yet (created a moment ago) or not at all.
        product_exists(api, key).await?;
    }
    let customer_id = known_customer(api, customer).await?;
    let now = Utc::now();
    let suppressions = match customer_id {
        Some(id) => fstore::suppressions(&api.pool, id, now).await?,
        None => Vec::new(),
    };
    let n = if n == 0 { 10 } else { n as usize };
    let max_per_cluster = if max_per_cluster == 0 { (n / 3).max(2) } else { max_per_cluster as usize };
    let recommendation_id = Uuid::now_v7();

    let response = {
        let model = api.recommendations.read();
        let viewed_item = viewed.as_ref().and_then(|k| item_of(&model, k));
        let basket_items: Vec<ItemId> = basket_keys.iter().filter_map(|k| item_of(&model, k)).collect();
        let excluded: HashSet<ItemId> = excluded.iter().filter_map(|k| item_of(&model, k)).collect();
        let only = (!categories.is_empty()).then(|| model.items.in_categories(&categories));
        let mut suppressed: HashSet<ItemId> = HashSet::new();
        for (product, category) in &suppressions {
            if category.is_empty() {
                suppressed.extend(model.items.get(product));
            } else {
                suppressed.extend(model.items.in_categories(std::slice::from_ref(category)));
            }
        }
        let empty = rec::History::default();
        let profiled = customer_id.filter(|c| !model.no_profiling.contains(c));
        let history = profiled.and_then(|c| model.histories.get(&c)).unwrap_or(&empty);
        let view = customer_id.map(|_| CustomerView {
            // Without profiling consent nothing learned from their history is used (they are
            // served like a guest); what they explicitly refused stays suppressed.
            history,
            suppressed: &suppressed,
            cluster_tier: None,
            segment: None,
        });
        let recommender = Recommender {
            index: &model.index,
            popularity: &model.popularity,
            catalog: &model.items.facts,
            sources: SourceWeights::default(),
        };
        let (items, personalized) = recommender.recommend(&rec::Request {
            customer: view,
            viewed: viewed_item,
            basket: &basket_items,
            exclusions: &excluded,
            only: only.as_ref(),
            n,
            max_per_cluster,
        });
        pb::RecommendResponse {
            recommendation: format!("recommendations/{recommendation_id}"),
            customer_id: customer_id.map(|c| c.to_string()).unwrap_or_default(),
            items: items.iter().map(|r| recommended_item(&model, r)).collect(),
            personalized: personalized && profiled.is_some(),
            model_time: model.model_time.map(timestamp),
        }
    };
    let products: Vec<String> =
        response.items.iter().map(|i| i.product.trim_start_matches("products/").to_owned()).collect();
    api.answers.remember(recommendation_id, customer_id, products);
    Ok(response)
}

/// A BCP 47 tag's shape: letters, digits and hyphens, at most 35 characters; empty is "en".
fn language_tag(tag: &str, field: &str) -> ApiResult<()> {
    if tag.len() <= 35 && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(())
    } else {
        Err(ApiError::invalid(field, "must be a BCP 47 language tag"))
    }
}

fn recommended_item(model: &Model, r: &rec::Recommendation) -> pb::RecommendedItem {
    let product = model.items.product(r.item);
    let title_of = |item: ItemId| model.items.product(item).map_or_else(String::new, |p| p.title.clone());
    let kind = match r.reason.kind {
        rec::ReasonKind::BoughtTogether => pb::ReasonKind::BoughtTogether,
        rec::ReasonKind::ViewedTogether => pb::ReasonKind::ViewedTogether,
        rec::ReasonKind::BecauseYouBought => pb::ReasonKind::BecauseYouBought,
        rec::ReasonKind::BecauseYouViewed => pb::ReasonKind::BecauseYouViewed,
        rec::ReasonKind::GoesWithBasket => pb::ReasonKind::GoesWithBasket,
        rec::ReasonKind::PopularWithSimilar => pb::ReasonKind::PopularWithSimilar,
        rec::ReasonKind::PopularInSegment => pb::ReasonKind::PopularInSegment,
        rec::ReasonKind::Popular => pb::ReasonKind::Popular,
    };
    let anchor = r.reason.anchors.first().map(|a| title_of(*a)).unwrap_or_default();
    let text = match r.reason.kind {
        rec::ReasonKind::BoughtTogether => format!("Customers who bought {anchor} also bought this"),
        rec::ReasonKind::ViewedTogether => format!("Customers who viewed {anchor} also viewed this"),
        rec::ReasonKind::BecauseYouBought => format!("Because you bought {anchor}"),
        rec::ReasonKind::BecauseYouViewed => format!("Because you viewed {anchor}"),
        rec::ReasonKind::GoesWithBasket => format!("Goes with {anchor} in your basket"),
        rec::ReasonKind::PopularWithSimilar => "Popular with customers like you".to_owned(),
        rec::ReasonKind::PopularInSegment => "Popular with customers like you".to_owned(),
        rec::ReasonKind::Popular => "Popular right now".to_owned(),
    };
    let strategy = match r.strategy {
        Strategy::ViewedItem => pb::RecommendationStrategy::ViewedItem,
        Strategy::Basket => pb::RecommendationStrategy::Basket,
        Strategy::History => pb::RecommendationStrategy::History,
        Strategy::ClusterPopularity => pb::RecommendationStrategy::ClusterPopularity,
        Strategy::SegmentPopularity => pb::RecommendationStrategy::SegmentPopularity,
        Strategy::GlobalPopularity => pb::RecommendationStrategy::GlobalPopularity,
    };
    let group = match &r.reason.group {
        Some(rec::PopularityKey::Segment(s)) => s.clone(),
        Some(rec::PopularityKey::ClusterTier { cluster, tier }) => format!("{cluster}/{tier}"),
        Some(rec::PopularityKey::Global) | None => String::new(),
    };
    pb::RecommendedItem {
        product: product.map(|p| format!("products/{}", p.product_id)).unwrap_or_default(),
        sku: product.map(|p| p.sku.clone()).unwrap_or_default(),
        title: product.map(|p| p.title.clone()).unwrap_or_default(),
        score: f64::from(r.score),
        strategy: strategy as i32,
        reason: Some(pb::RecommendationReason {
            kind: kind as i32,
            anchor_products: r
                .reason
                .anchors
                .iter()
                .filter_map(|a| model.items.product(*a))
                .map(|p| format!("products/{}", p.product_id))
                .collect(),
            group,
            text,
        }),
        product_cluster: cluster_label(model, r.item),
    }
}

fn cluster_label(model: &Model, item: ItemId) -> String {
    model
        .items
        .facts
        .get(item.0 as usize)
        .and_then(|f| f.cluster)
        .map(|c| format!("product-cluster-{c}"))
        .unwrap_or_default()
}

/// RecordRecommendationFeedback.
pub(super) async fn record_feedback(
    api: &CustomizationApi,
    request: pb::RecordRecommendationFeedbackRequest,
) -> ApiResult<pb::RecommendationFeedback> {
    let pb::RecordRecommendationFeedbackRequest {
        customer,
        product,
        kind,
        recommendation,
        suppress_for,
        time,
        request_id,
    } = request;
    let mut v = Violations::new();
    let reference = v.check("customer", Reference::from_proto(customer));
    let key = v.check("", product_key(product.as_ref(), "product"));
    let kind = match pb::FeedbackKind::try_from(kind) {
        Ok(pb::FeedbackKind::Unspecified) | Err(_) => {
            v.add("kind", "must be a known feedback kind");
            pb::FeedbackKind::Unspecified
        }
        Ok(k) => k,
    };
    let recommendation_id = if recommendation.is_empty() {
        None
    } else {
        v.check("", validate::resource_id(&recommendation, "recommendations", "recommendation"))
    };
    let suppress = match suppress_for {
        None => DEFAULT_SUPPRESSION,
        Some(d) => {
            let d = Duration::seconds(d.seconds) + Duration::nanoseconds(i64::from(d.nanos));
            if d < Duration::days(1) || d > MAX_SUPPRESSION {
                v.add("suppress_for", "must be between 1 day and 3 years");
            }
            d
        }
    };
    // Postgres keeps microseconds: the first answer and its replay must agree.
    let now = Utc::now().trunc_subsecs(6);
    let at = shared::reaction_time(time.as_ref(), now, &mut v);
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten().map(str::to_owned);
    v.finish()?;
    let (Some(reference), Some(key)) = (reference, key) else { return Err(ApiError::invalid("", "unreachable")) };
    if let Some(first) = match &request_id {
        Some(id) => fstore::reaction_by_request(&api.pool, id).await?,
        None => None,
    } {
        return Ok(reaction_answer(&first, true));
    }
    let product = product_exists(api, &key).await?;
    let customer = api.customers.resolve(Lookup { reference: &reference, create: false }).await?;
    if let Some(id) = recommendation_id
        && fstore::recommendation_exists(&api.pool, id).await?.is_none()
    {
        api.answers.flush().await;
        if fstore::recommendation_exists(&api.pool, id).await?.is_none() {
            return Err(ApiError::NotFound(recommendation));
        }
    }
    let negative = kind != pb::FeedbackKind::Clicked;
    let row = fstore::ReactionRow {
        customer_id: customer,
        product_id: product.product_id.clone(),
        kind: kind as i16,
        recommendation_id,
        suppressed_until: negative.then(|| at + suppress),
        category: if kind == pb::FeedbackKind::NotThisCategory {
            product.categories.first().cloned().unwrap_or_default()
        } else {
            String::new()
        },
        record_time: now,
    };
    let mut tx = api.pool.begin().await?;
    if !fstore::insert_reaction(&mut tx, &row, request_id.as_deref()).await? {
        // A concurrent retry won the key: answer its reaction.
        drop(tx);
        let first = fstore::reaction_by_request(&api.pool, request_id.as_deref().unwrap_or_default())
            .await?
            .ok_or_else(|| ApiError::Aborted("retry".into()))?;
        return Ok(reaction_answer(&first, true));
    }
    if kind == pb::FeedbackKind::AlreadyOwned {
        // Owned: the recommender leaves it out as it does a purchase (without counting it as
        // one in co-occurrence: it was bought elsewhere, at an unknown time).
        let source = format!("reaction:{}:{}:{}", customer, product.product_id, now.timestamp_micros());
        fstore::insert_feedback(
            &mut tx,
            &[fstore::NewFeedback {
                source_id: source,
                customer_id: customer,
                product_id: product.product_id.clone(),
                kind: kind_code(FeedbackKind::Negative),
                occur_time: at,
            }],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(reaction_answer(&row, false))
}

fn reaction_answer(r: &fstore::ReactionRow, duplicate: bool) -> pb::RecommendationFeedback {
    pb::RecommendationFeedback {
        customer_id: r.customer_id.to_string(),
        product: format!("products/{}", r.product_id),
        kind: i32::from(r.kind),
        suppressed_until: r.suppressed_until.map(timestamp),
        time: Some(timestamp(r.record_time)),
        duplicate,
    }
}

/// GetItemNeighbours.
pub(super) async fn item_neighbours(
    api: &CustomizationApi,
    request: pb::GetItemNeighboursRequest,
) -> ApiResult<pb::GetItemNeighboursResponse> {
    let pb::GetItemNeighboursRequest { product, relation, n, include_unavailable } = request;
    let mut v = Violations::new();
    let key = v.check("", product_key(product.as_ref(), "product"));
    let relation = match pb::NeighbourRelation::try_from(relation) {
        Ok(pb::NeighbourRelation::Unspecified) => pb::NeighbourRelation::Combined,
        Ok(r) => r,
        Err(_) => {
            v.add("relation", "must be a known relation");
            pb::NeighbourRelation::Combined
        }
    };
    if !(0..=200).contains(&n) {
        v.add("n", "must be between 0 and 200");
    }
    v.finish()?;
    let Some(key) = key else { return Err(ApiError::invalid("product", "is required")) };
    let row = product_exists(api, &key).await?;
    let n = if n == 0 { 20 } else { n as usize };
    let model = api.recommendations.read();
    let neighbours = match model.items.get(&row.product_id) {
        Some(item) => model
            .index
            .neighbours(item)
            .into_iter()
            .filter(|nb| match relation {
                pb::NeighbourRelation::BoughtTogether => nb.relation == Relation::BoughtTogether,
                pb::NeighbourRelation::ViewedTogether => nb.relation == Relation::ViewedTogether,
                _ => true,
            })
            .filter(|nb| include_unavailable || model.items.facts.get(nb.item.0 as usize).is_some_and(|f| f.sellable))
            .filter_map(|nb| {
                let p = model.items.product(nb.item)?;
                Some(pb::ItemNeighbour {
                    product: format!("products/{}", p.product_id),
                    sku: p.sku.clone(),
                    similarity: f64::from(nb.similarity),
                    support: i64::from(nb.support),
                    relation: match nb.relation {
                        Relation::BoughtTogether => pb::NeighbourRelation::BoughtTogether,
                        Relation::ViewedTogether => pb::NeighbourRelation::ViewedTogether,
                    } as i32,
                })
            })
            .take(n)
            .collect(),
        None => Vec::new(),
    };
    Ok(pb::GetItemNeighboursResponse {
        product: format!("products/{}", row.product_id),
        neighbours,
        model_time: model.model_time.map(timestamp),
        update_time: model.model_time.map(timestamp),
    })
}

/// StartRetraining: validates, refuses a second concurrent retraining, records the job and
/// runs it in the background.
pub(super) async fn start_retraining(
    api: &CustomizationApi,
    request: Request<pb::StartRetrainingRequest>,
) -> ApiResult<common::Job> {
    let caller = caller(&request)?;
    let pb::StartRetrainingRequest { window, recency_half_life, neighbours_per_item, request_id } =
        request.into_inner();
    let mut v = Violations::new();
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten().map(str::to_owned);
    let now = Utc::now();
    let mut settings = BuildSettings::default_at(now);
    if let Some(common::Period { start_time, end_time: _ }) = &window {
        match start_time
            .as_ref()
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        {
            Some(start) if start < now => settings.window_start = start,
            _ => v.add("window.start_time", "must be a valid time in the past"),
        }
    }
    if let Some(d) = &recency_half_life {
        let days = (d.seconds as f64 + f64::from(d.nanos) / 1e9) / 86_400.0;
        if (1.0..=5.0 * 365.0).contains(&days) {
            settings.train.weights.half_life_days = days;
        } else {
            v.add("recency_half_life", "must be between 1 day and 5 years");
        }
    }
    match neighbours_per_item {
        0 => {}
        k if (10..=1000).contains(&k) => settings.train.neighbours_per_item = k as usize,
        _ => v.add("neighbours_per_item", "must be 0 or between 10 and 1000"),
    }
    v.finish()?;
    if let Some(key) = &request_id
        && let Some(id) = api.jobs.by_request_id(RETRAIN_KIND, key).await?
    {
        return api.jobs.get(common::GetJobRequest { name: format!("jobs/{id}") }).await;
    }
    let running = api.jobs.active(RETRAIN_KIND).await?;
    if let Some(id) = running {
        return Err(ApiError::FailedPrecondition(format!("retraining jobs/{id} is already queued or running")));
    }
    let params = serde_json::json!({
        "request_id": request_id,
        "window_start": settings.window_start,
        "half_life_days": settings.train.weights.half_life_days,
        "neighbours_per_item": settings.train.neighbours_per_item,
    });
    let job = api.jobs.create(RETRAIN_KIND, &caller.name, params).await?;
    let mut tx = api.pool.begin().await?;
    audit::record(
        &mut tx,
        audit::AuditRecord {
            caller: &caller.name,
            action: "StartRetraining",
            resource: &format!("jobs/{job}"),
            reason: "",
            detail: serde_json::json!({ "neighbours_per_item": settings.train.neighbours_per_item }),
        },
    )
    .await?;
    tx.commit().await?;
    let (jobs, recommendations) = (api.jobs.clone(), api.recommendations.clone());
    tokio::spawn(async move {
        let run = async {
            jobs.start(job, 1).await?;
            let (version, summary) = recommendations.retrain(settings, job).await.map_err(ApiError::Internal)?;
            jobs.progress(job, 1, 1).await?;
            jobs.succeed(
                job,
                serde_json::json!({
                    "model_version": version,
                    "interactions": summary.interactions,
                    "items": summary.items,
                    "customers": summary.customers,
                }),
            )
            .await
        };
        if let Err(e) = run.await {
            tracing::warn!(error = %e, %job, "retraining failed");
            let _ = jobs.fail(job, "retraining failed; see the service log").await;
        }
    });
    api.jobs.get(common::GetJobRequest { name: format!("jobs/{job}") }).await
}
