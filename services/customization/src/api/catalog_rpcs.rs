//! Catalog RPCs: CreateProduct, GetProduct, UpdateProduct (field mask, etag; retiring is an
//! update of `lifecycle`), ListProducts and the UpsertProducts bulk stream, with the
//! proto ⇄ store conversions of a product.

use idic_platform::{ApiError, ApiResult, idempotency, jobs::timestamp, paging, validate};
use idic_proto::{common::v1 as common, customization::v1 as pb};
use std::collections::{HashMap, HashSet};

use prost::Message as _;
use tonic::{Request, Streaming};

use super::{CustomizationApi, shared::is_client_id};
use crate::{
    domain::catalog::{CategoryPath, CurrencyCode, Lifecycle, Sku},
    store::{self, ProductFilter, ProductRow},
};

/// Most categories per product.
const MAX_CATEGORIES: usize = 20;
/// Most attributes per product.
const MAX_ATTRIBUTES: usize = 50;

/// Parses `products/{product_id}` from `field`.
pub(super) fn product_id(name: &str, field: &str) -> ApiResult<String> {
    match name.strip_prefix("products/") {
        Some(id) if is_client_id(id) || uuid::Uuid::parse_str(id).is_ok() => Ok(id.to_owned()),
        _ => Err(ApiError::invalid(field, "must be products/{product_id}")),
    }
}

/// Checks a money value: a known currency code and a non-negative amount.
fn price(money: Option<&common::Money>, field: &str) -> ApiResult<(String, i64)> {
    let Some(common::Money { currency_code, amount_minor }) = money else {
        return Err(ApiError::invalid(field, "is required"));
    };
    let Some(code) = CurrencyCode::parse(currency_code) else {
        return Err(ApiError::invalid(format!("{field}.currency_code"), "must be an ISO 4217 code"));
    };
    if *amount_minor < 0 {
        return Err(ApiError::invalid(format!("{field}.amount_minor"), "must not be negative"));
    }
    Ok((code.as_str().to_owned(), *amount_minor))
}

/// Validates a new product and turns it into a row under `product_id`.
fn new_row(product_id: String, product: pb::Product) -> ApiResult<ProductRow> {
    let pb::Product {
        name: _,
        sku,
        title,
        description,
        kind,
        categories,
        attributes,
        price: money,
        availability,
        stock_quantity,
        lifecycle,
        consumable,
        bundle_components,
        configurable: _,
        product_cluster: _,
        create_time: _,
        update_time: _,
        etag: _,
    } = product;
    let mut v = validate::Violations::new();
    if Sku::parse(&sku).is_none() {
        v.add("product.sku", "must be 1–64 characters of letters, digits, `.`, `_`, `-`, `/`");
    }
    v.check("", validate::required(&title, 200, "product.title"));
    v.check("", validate::text(&description, 5000, "product.description"));
    let kind = match pb::ProductKind::try_from(kind) {
        Ok(pb::ProductKind::Unspecified) => pb::ProductKind::Good,
        Ok(k) => k,
        Err(_) => {
            v.add("product.kind", "unknown kind");
            pb::ProductKind::Good
        }
    };
    if kind != pb::ProductKind::Bundle && !bundle_components.is_empty() {
        v.add("product.bundle_components", "only a BUNDLE has components");
    }
    if categories.len() > MAX_CATEGORIES {
        v.add("product.categories", format!("at most {MAX_CATEGORIES} categories"));
    }
    for (i, c) in categories.iter().enumerate() {
        if CategoryPath::parse(c).is_none() {
            v.add(format!("product.categories[{i}]"), "must be a `/`-separated path of 1–200 characters");
        }
    }
    if attributes.len() > MAX_ATTRIBUTES {
        v.add("product.attributes", format!("at most {MAX_ATTRIBUTES} entries"));
    }
    for (key, value) in &attributes {
        let key_ok = (1..=64).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
        if !key_ok {
            v.add(format!("product.attributes[{key:?}]"), "keys are 1–64 characters of `[a-z0-9_.-]`");
        }
        v.check("", validate::text(value, 500, &format!("product.attributes[{key:?}]")));
    }
    let priced = v.check("", price(money.as_ref(), "product.price"));
    let availability = match pb::Availability::try_from(availability) {
        Ok(pb::Availability::Unspecified) => pb::Availability::Available,
        Ok(a) => a,
        Err(_) => {
            v.add("product.availability", "unknown availability");
            pb::Availability::Available
        }
    };
    if stock_quantity.is_some_and(|q| q < 0) {
        v.add("product.stock_quantity", "must not be negative");
    }
    let lifecycle = match pb::Lifecycle::try_from(lifecycle) {
        Ok(pb::Lifecycle::Unspecified) => pb::Lifecycle::New,
        Ok(l) => l,
        Err(_) => {
            v.add("product.lifecycle", "unknown lifecycle");
            pb::Lifecycle::New
        }
    };
    v.finish()?;
    if kind == pb::ProductKind::Bundle {
        return Err(ApiError::Unimplemented("bundles are not served yet".into()));
    }
    let (currency_code, price_minor) = priced.unwrap_or_default();
    let extra = pb::Product { attributes, ..Default::default() }.encode_to_vec();
    Ok(ProductRow {
        product_id,
        sku,
        title,
        description,
        kind: kind as i16,
        categories,
        currency_code,
        price_minor,
        availability: availability as i16,
        stock_quantity,
        lifecycle: lifecycle as i16,
        consumable,
        extra,
        revision: 1,
        create_time: chrono::Utc::now(),
        update_time: chrono::Utc::now(),
        configurable: false,
    })
}

/// The proto form of a stored product.
pub(super) fn to_proto(row: ProductRow) -> ApiResult<pb::Product> {
    let ProductRow {
        product_id,
        sku,
        title,
        description,
        kind,
        categories,
        currency_code,
        price_minor,
        availability,
        stock_quantity,
        lifecycle,
        consumable,
        extra,
        revision,
        create_time,
        update_time,
        configurable,
    } = row;
    let extra = pb::Product::decode(extra.as_slice()).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(pb::Product {
        name: format!("products/{product_id}"),
        sku,
        title,
        description,
        kind: i32::from(kind),
        categories,
        attributes: extra.attributes,
        price: Some(common::Money { currency_code, amount_minor: price_minor }),
        availability: i32::from(availability),
        stock_quantity,
        lifecycle: i32::from(lifecycle),
        consumable,
        bundle_components: extra.bundle_components,
        configurable,
        product_cluster: String::new(),
        create_time: Some(timestamp(create_time)),
        update_time: Some(timestamp(update_time)),
        etag: revision.to_string(),
    })
}

/// CreateProduct.
pub(super) async fn create_product(
    api: &CustomizationApi,
    request: pb::CreateProductRequest,
) -> ApiResult<pb::Product> {
    let hash = idempotency::request_hash(&request.encode_to_vec());
    let pb::CreateProductRequest { product_id, product, request_id } = request;
    let request_id = validate::request_id(&request_id, "request_id")?.map(str::to_owned);
    let mut v = validate::Violations::new();
    if !product_id.is_empty() && !is_client_id(&product_id) {
        v.add("product_id", "must match ^[a-z][a-z0-9-]{0,62}$");
    }
    let Some(product) = product else { return Err(ApiError::invalid("product", "is required")) };
    let id = if product_id.is_empty() { uuid::Uuid::now_v7().to_string() } else { product_id };
    let row = v.check("", new_row(id, product));
    v.finish()?;
    let Some(row) = row else { return Err(ApiError::invalid("product", "is invalid")) };
    const METHOD: &str = "CreateProduct";
    let mut tx = api.pool.begin().await?;
    if let Some(key) = &request_id
        && let idempotency::Claim::Replay(response) = idempotency::claim(&mut tx, METHOD, key, &hash).await?
    {
        return pb::Product::decode(response.as_slice()).map_err(|e| ApiError::Internal(e.into()));
    }
    if !store::insert_product(&mut tx, &row).await? {
        return Err(ApiError::AlreadyExists(format!("product {} or sku {} already exists", row.product_id, row.sku)));
    }
    let created = store::product_in(&mut tx, &row.product_id).await?;
    let created = to_proto(created.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("product vanished")))?)?;
    if let Some(key) = &request_id {
        idempotency::complete(&mut tx, METHOD, key, &created.encode_to_vec()).await?;
    }
    tx.commit().await?;
    Ok(created)
}

/// GetProduct.
pub(super) async fn get_product(api: &CustomizationApi, request: pb::GetProductRequest) -> ApiResult<pb::Product> {
    let pb::GetProductRequest { name } = request;
    let id = product_id(&name, "name")?;
    let row = store::product(&api.pool, &id).await?.ok_or_else(|| ApiError::NotFound(format!("{name} not found")))?;
    to_proto(row)
}

/// ListProducts.
pub(super) async fn list_products(
    api: &CustomizationApi,
    request: pb::ListProductsRequest,
) -> ApiResult<pb::ListProductsResponse> {
    let pb::ListProductsRequest { page_size, page_token, category, lifecycles, kind, configurable_only } = request;
    let mut v = validate::Violations::new();
    let size = v.check("", paging::page_size(page_size, "page_size"));
    if !category.is_empty() && CategoryPath::parse(&category).is_none() {
        v.add("category", "must be a `/`-separated path of 1–200 characters");
    }
    let mut stages = Vec::with_capacity(lifecycles.len());
    for (i, l) in lifecycles.iter().enumerate() {
        match pb::Lifecycle::try_from(*l) {
            Ok(pb::Lifecycle::Unspecified) | Err(_) => {
                v.add(format!("lifecycles[{i}]"), "must be NEW, ACTIVE or RETIRED")
            }
            Ok(l) => stages.push(l as i16),
        }
    }
    let kind = match pb::ProductKind::try_from(kind) {
        Ok(pb::ProductKind::Unspecified) => None,
        Ok(k) => Some(k as i16),
        Err(_) => {
            v.add("kind", "unknown kind");
            None
        }
    };
    v.finish()?;
    stages.sort_unstable();
    stages.dedup();
    let filter = ProductFilter {
        category: (!category.is_empty()).then_some(category),
        lifecycles: stages,
        kind,
        configurable_only,
    };
    let fingerprint = format!("{filter:?}");
    let after: Option<String> = paging::decode_page_token(&page_token, &fingerprint, "page_token")?;
    let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE);
    let mut rows = store::list_products(&api.pool, &filter, after.as_deref(), i64::from(size) + 1).await?;
    let next_page_token = if rows.len() > size as usize {
        rows.truncate(size as usize);
        rows.last().map(|r| paging::next_page_token(&r.sku, &fingerprint)).unwrap_or_default()
    } else {
        String::new()
    };
    let products = rows.into_iter().map(to_proto).collect::<ApiResult<Vec<_>>>()?;
    Ok(pb::ListProductsResponse { products, next_page_token })
}

/// The paths UpdateProduct may change.
const UPDATABLE: [&str; 10] = [
    "title",
    "description",
    "categories",
    "attributes",
    "price",
    "availability",
    "stock_quantity",
    "lifecycle",
    "consumable",
    "bundle_components",
];

fn lifecycle(number: i16) -> Option<Lifecycle> {
    match pb::Lifecycle::try_from(i32::from(number)) {
        Ok(pb::Lifecycle::New) => Some(Lifecycle::New),
        Ok(pb::Lifecycle::Active) => Some(Lifecycle::Active),
        Ok(pb::Lifecycle::Retired) => Some(Lifecycle::Retired),
        Ok(pb::Lifecycle::Unspecified) | Err(_) => None,
    }
}

/// UpdateProduct.
pub(super) async fn update_product(
    api: &CustomizationApi,
    request: pb::UpdateProductRequest,
) -> ApiResult<pb::Product> {
    let pb::UpdateProductRequest { product, update_mask } = request;
    let Some(new) = product else { return Err(ApiError::invalid("product", "is required")) };
    let id = product_id(&new.name, "product.name")?;
    let paths = update_mask.map(|m| m.paths).unwrap_or_default();
    let mut v = validate::Violations::new();
    if paths.is_empty() {
        v.add("update_mask", "is required");
    }
    for (i, path) in paths.iter().enumerate() {
        if !UPDATABLE.contains(&path.as_str()) {
            v.add(format!("update_mask.paths[{i}]"), format!("unknown or immutable path {path:?}"));
        }
    }
    v.finish()?;
    let mut tx = api.pool.begin().await?;
    let row = store::product_for_update(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{} not found", new.name)))?;
    if !new.etag.is_empty() && new.etag != row.revision.to_string() {
        return Err(ApiError::Aborted(format!("{} changed; read it again", new.name)));
    }
    let was = lifecycle(row.lifecycle);
    let (old_currency, configurable) = (row.currency_code.clone(), row.configurable);
    let mut merged = to_proto(row)?;
    for path in &paths {
        match path.as_str() {
            "title" => merged.title.clone_from(&new.title),
            "description" => merged.description.clone_from(&new.description),
            "categories" => merged.categories.clone_from(&new.categories),
            "attributes" => merged.attributes.clone_from(&new.attributes),
            "price" => merged.price.clone_from(&new.price),
            "availability" => merged.availability = new.availability,
            "stock_quantity" => merged.stock_quantity = new.stock_quantity,
            "lifecycle" => merged.lifecycle = new.lifecycle,
            "consumable" => merged.consumable = new.consumable,
            _ => merged.bundle_components.clone_from(&new.bundle_components),
        }
    }
    if paths.iter().any(|p| p == "lifecycle") && new.lifecycle == pb::Lifecycle::Unspecified as i32 {
        return Err(ApiError::invalid("product.lifecycle", "must be NEW, ACTIVE or RETIRED"));
    }
    let updated = new_row(id, merged)?;
    if configurable && updated.currency_code != old_currency {
        return Err(ApiError::invalid(
            "product.price.currency_code",
            "cannot change while the product has modules priced in its currency",
        ));
    }
    if let (Some(was), Some(next)) = (was, lifecycle(updated.lifecycle))
        && !was.can_become(next)
    {
        return Err(ApiError::FailedPrecondition(format!("{} is retired and cannot become NEW again", new.name)));
    }
    store::update_product(&mut tx, &updated).await?;
    let stored = store::product_in(&mut tx, &updated.product_id).await?;
    tx.commit().await?;
    to_proto(stored.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("product vanished")))?)
}

/// Most rows in one UpsertProducts stream.
const MAX_UPSERT_ROWS: i64 = 1_000_000;
/// Rows stored per statement.
const UPSERT_BATCH: usize = 1000;
/// Most row errors reported in a summary.
const MAX_ROW_ERRORS: usize = 1000;

/// A checked row of UpsertProducts waiting for its batch.
struct Pending {
    row_id: String,
    row: ProductRow,
    /// Whether the row named a kind (else it takes the stored one).
    kind_given: bool,
}

fn reject(summary: &mut common::BulkSummary, row_id: &str, field: &str, description: &str) {
    summary.rejected += 1;
    if summary.errors.len() < MAX_ROW_ERRORS {
        summary.errors.push(common::RowError {
            row_id: row_id.to_owned(),
            field: field.to_owned(),
            description: description.to_owned(),
        });
    }
}

/// Whether a row would leave a stored product as it is.
fn same_content(stored: &ProductRow, row: &ProductRow) -> bool {
    let attributes = |r: &ProductRow| pb::Product::decode(r.extra.as_slice()).map(|p| p.attributes).ok();
    stored.title == row.title
        && stored.description == row.description
        && stored.categories == row.categories
        && stored.currency_code == row.currency_code
        && stored.price_minor == row.price_minor
        && stored.availability == row.availability
        && stored.stock_quantity == row.stock_quantity
        && stored.lifecycle == row.lifecycle
        && stored.consumable == row.consumable
        && attributes(stored) == attributes(row)
}

/// Stores a batch of rows with distinct skus: new skus in one insert, changed products in one
/// update, in one transaction.
async fn store_batch(
    api: &CustomizationApi,
    batch: &mut Vec<Pending>,
    summary: &mut common::BulkSummary,
) -> ApiResult<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut tx = api.pool.begin().await?;
    let skus: Vec<String> = batch.iter().map(|p| p.row.sku.clone()).collect();
    let stored: HashMap<String, ProductRow> =
        store::products_by_sku_for_update(&mut tx, &skus).await?.into_iter().map(|r| (r.sku.clone(), r)).collect();
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    for Pending { row_id, mut row, kind_given } in batch.drain(..) {
        let Some(old) = stored.get(&row.sku) else {
            inserts.push((row_id, row));
            continue;
        };
        if !kind_given {
            row.kind = old.kind;
        }
        if old.kind != row.kind {
            reject(summary, &row_id, "product.kind", "must match the stored product's kind");
        } else if old.lifecycle == pb::Lifecycle::Retired as i16 && row.lifecycle == pb::Lifecycle::New as i16 {
            reject(summary, &row_id, "product.lifecycle", "a retired product cannot become NEW again");
        } else if old.configurable && old.currency_code != row.currency_code {
            reject(
                summary,
                &row_id,
                "product.price.currency_code",
                "cannot change while the product has modules priced in its currency",
            );
        } else if same_content(old, &row) {
            summary.duplicates += 1;
        } else {
            row.product_id.clone_from(&old.product_id);
            updates.push(row);
        }
    }
    let rows: Vec<ProductRow> = inserts.iter().map(|(_, r)| r.clone()).collect();
    let inserted: HashSet<String> = store::insert_products(&mut tx, &rows).await?.into_iter().collect();
    for (row_id, row) in &inserts {
        if inserted.contains(&row.sku) {
            summary.created += 1;
        } else {
            reject(summary, row_id, "product_id", "is already taken by another product");
        }
    }
    store::update_products(&mut tx, &updates).await?;
    summary.updated += updates.len() as i64;
    tx.commit().await?;
    Ok(())
}

/// UpsertProducts.
pub(super) async fn upsert_products(
    api: &CustomizationApi,
    request: Request<Streaming<pb::UpsertProductsRequest>>,
) -> ApiResult<common::BulkSummary> {
    let mut stream = request.into_inner();
    let mut summary = common::BulkSummary::default();
    let mut batch: Vec<Pending> = Vec::new();
    let mut skus_in_batch: HashSet<String> = HashSet::new();
    loop {
        let message = stream.message().await.map_err(|e| ApiError::invalid("", format!("stream: {}", e.message())))?;
        let Some(pb::UpsertProductsRequest { row_id, product, product_id }) = message else { break };
        let position = summary.received;
        summary.received += 1;
        if summary.received > MAX_UPSERT_ROWS {
            return Err(ApiError::invalid("", format!("more than {MAX_UPSERT_ROWS} rows")));
        }
        let row_id = if row_id.is_empty() { position.to_string() } else { row_id.chars().take(128).collect() };
        let Some(product) = product else {
            reject(&mut summary, &row_id, "product", "is required");
            continue;
        };
        if !product_id.is_empty() && !is_client_id(&product_id) {
            reject(&mut summary, &row_id, "product_id", "must match ^[a-z][a-z0-9-]{0,62}$");
            continue;
        }
        let kind_given = product.kind != pb::ProductKind::Unspecified as i32;
        let id = if product_id.is_empty() { uuid::Uuid::now_v7().to_string() } else { product_id };
        match new_row(id, product) {
            Ok(row) => {
                // Rows are applied in stream order: a sku seen again waits for the next batch.
                if skus_in_batch.contains(&row.sku) || batch.len() >= UPSERT_BATCH {
                    store_batch(api, &mut batch, &mut summary).await?;
                    skus_in_batch.clear();
                }
                skus_in_batch.insert(row.sku.clone());
                batch.push(Pending { row_id, row, kind_given });
            }
            Err(ApiError::InvalidArgument(violations)) => {
                let mut violations = violations.into_iter();
                if let Some(first) = violations.next() {
                    reject(&mut summary, &row_id, &first.field, &first.description);
                }
                for more in violations {
                    if summary.errors.len() < MAX_ROW_ERRORS {
                        summary.errors.push(common::RowError {
                            row_id: row_id.clone(),
                            field: more.field,
                            description: more.description,
                        });
                    }
                }
            }
            Err(ApiError::Unimplemented(reason)) => reject(&mut summary, &row_id, "product.kind", &reason),
            Err(other) => return Err(other),
        }
    }
    store_batch(api, &mut batch, &mut summary).await?;
    Ok(summary)
}
