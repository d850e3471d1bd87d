//! Saved configuration RPCs ("remember the specs"): SaveConfiguration, ListSavedConfigurations,
//! GetDefaultConfiguration and DeleteSavedConfiguration, each validated against the product's
//! current modules by the domain.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use idic_platform::{
    ApiError, ApiResult,
    customers::{Lookup, Reference},
    jobs::timestamp,
    paging,
    validate::{self, Violations},
};
use idic_proto::{common::v1 as common, customization::v1 as pb};
use uuid::Uuid;

use super::{
    CustomizationApi, catalog_rpcs,
    modules_rpcs::{Loaded, load, option_to_proto, selections},
};
use crate::{
    domain::modules::{DefaultSource, GroupAccess, ModuleId, OptionRef},
    store::configurations::{self as store, SavedRow},
};

/// Most configurations one customer may save.
const MAX_SAVED: i64 = 1000;

/// The selections as stored.
fn selections_json(chosen: &[OptionRef]) -> serde_json::Value {
    chosen.iter().map(|r| serde_json::json!({ "group": r.group.as_str(), "option": r.option.as_str() })).collect()
}

/// The selections of a stored row (entries that no longer parse are dropped).
fn selections_of(row: &SavedRow) -> Vec<OptionRef> {
    row.selections
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| {
                    let group = ModuleId::parse(e.get("group")?.as_str()?)?;
                    let option = ModuleId::parse(e.get("option")?.as_str()?)?;
                    Some(OptionRef { group, option })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a stored configuration still validates for its product as loaded.
fn still_valid(loaded: &Loaded, row: &SavedRow) -> bool {
    loaded.product.lifecycle != pb::Lifecycle::Retired as i16
        && loaded.domain.configure(&selections_of(row), &GroupAccess::Standard).is_ok()
}

fn to_proto(row: &SavedRow, valid: bool) -> pb::SavedConfiguration {
    pb::SavedConfiguration {
        name: format!("customers/{}/configurations/{}", row.customer_id, row.configuration_id),
        product: format!("products/{}", row.product_id),
        selections: selections_of(row).iter().map(option_to_proto).collect(),
        display_name: row.display_name.clone(),
        is_default: row.is_default,
        saved_price: Some(common::Money {
            currency_code: row.saved_currency.clone(),
            amount_minor: row.saved_price_minor,
        }),
        variant_key: row.variant_key.clone(),
        valid,
        modules_revision: row.modules_revision,
        create_time: Some(timestamp(row.create_time)),
        update_time: Some(timestamp(row.update_time)),
    }
}

/// SaveConfiguration.
pub(super) async fn save(
    api: &CustomizationApi,
    request: pb::SaveConfigurationRequest,
) -> ApiResult<pb::SavedConfiguration> {
    let pb::SaveConfigurationRequest { customer, configuration, request_id } = request;
    let mut v = Violations::new();
    let reference = v.check("customer", Reference::from_proto(customer));
    let Some(configuration) = configuration else {
        v.add("configuration", "is required");
        v.finish()?;
        return Err(ApiError::invalid("configuration", "is required"));
    };
    // Output-only fields are ignored, as the contract says.
    let pb::SavedConfiguration { product, selections: refs, display_name, is_default, .. } = configuration;
    let product_id = v.check("", catalog_rpcs::product_id(&product, "configuration.product"));
    let chosen = v.check("", selections(&refs, "configuration.selections"));
    if chosen.as_ref().is_some_and(Vec::is_empty) {
        v.add("configuration.selections", "is required");
    }
    v.check("", validate::text(&display_name, 100, "configuration.display_name"));
    v.check("", validate::request_id(&request_id, "request_id"));
    v.finish()?;
    let (Some(reference), Some(product_id), Some(chosen)) = (reference, product_id, chosen) else {
        return Err(ApiError::invalid("", "unreachable"));
    };
    let loaded = load(api, &product_id, &product).await?;
    if loaded.product.lifecycle == pb::Lifecycle::Retired as i16 {
        return Err(ApiError::FailedPrecondition(format!("{product} is retired")));
    }
    let customer = api.customers.resolve(Lookup { reference: &reference, create: false }).await?;
    let configured = loaded.domain.configure(&chosen, &GroupAccess::Standard).map_err(|violations| {
        ApiError::InvalidArgument(
            violations
                .into_iter()
                .map(|x| {
                    let at = chosen.iter().position(|c| {
                        Some(c.group.as_str()) == x.group.as_deref() && Some(c.option.as_str()) == x.option.as_deref()
                    });
                    let field = at.map_or_else(
                        || "configuration.selections".to_owned(),
                        |i| format!("configuration.selections[{i}]"),
                    );
                    idic_platform::FieldViolation::new(field, x.description)
                })
                .collect(),
        )
    })?;
    let mut tx = api.pool.begin().await?;
    let row = SavedRow {
        configuration_id: Uuid::now_v7(),
        customer_id: customer,
        product_id: product_id.clone(),
        selections: selections_json(&chosen),
        variant_key: configured.variant_key.clone(),
        display_name,
        is_default,
        saved_currency: loaded.product.currency_code.clone(),
        saved_price_minor: configured.price.minor,
        modules_revision: loaded.proto.revision,
        create_time: Utc::now(),
        update_time: Utc::now(),
    };
    let stored = store::upsert(&mut tx, &row).await?;
    // Checked after the upsert, under the customer's lock: saving an existing variant again is
    // always allowed.
    if stored.create_time == stored.update_time && store::count(&mut tx, customer).await? > MAX_SAVED {
        return Err(ApiError::FailedPrecondition(format!(
            "customers/{customer} already has {MAX_SAVED} saved configurations"
        )));
    }
    tx.commit().await?;
    Ok(to_proto(&stored, true))
}

/// ListSavedConfigurations, most recently used first.
pub(super) async fn list(
    api: &CustomizationApi,
    request: pb::ListSavedConfigurationsRequest,
) -> ApiResult<pb::ListSavedConfigurationsResponse> {
    let pb::ListSavedConfigurationsRequest { customer, product, page_size, page_token } = request;
    let mut v = Violations::new();
    let reference = v.check("customer", Reference::from_proto(customer.clone()));
    let product_id = if product.is_empty() { None } else { v.check("", catalog_rpcs::product_id(&product, "product")) };
    let size = v.check("", paging::page_size(page_size, "page_size"));
    let filter = format!("{customer:?}|{product}");
    let cursor = v.check("", paging::decode_page_token::<(DateTime<Utc>, Uuid)>(&page_token, &filter, "page_token"));
    v.finish()?;
    let Some(reference) = reference else { return Err(ApiError::invalid("customer", "is required")) };
    let customer = api.customers.resolve(Lookup { reference: &reference, create: false }).await?;
    let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE) as usize;
    let mut rows = store::list(&api.pool, customer, product_id.as_deref(), cursor.flatten(), size as i64 + 1).await?;
    let more = rows.len() > size;
    rows.truncate(size);
    let mut products: HashMap<String, Option<Loaded>> = HashMap::new();
    let mut configurations = Vec::with_capacity(rows.len());
    for row in &rows {
        if !products.contains_key(&row.product_id) {
            let name = format!("products/{}", row.product_id);
            let loaded = match load(api, &row.product_id, &name).await {
                Ok(l) => Some(l),
                Err(ApiError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            products.insert(row.product_id.clone(), loaded);
        }
        let valid = products[&row.product_id].as_ref().is_some_and(|l| still_valid(l, row));
        configurations.push(to_proto(row, valid));
    }
    let next_page_token = match (more, rows.last()) {
        (true, Some(last)) => paging::next_page_token(&(last.update_time, last.configuration_id), &filter),
        _ => String::new(),
    };
    Ok(pb::ListSavedConfigurationsResponse { configurations, next_page_token })
}

/// GetDefaultConfiguration: the customer's default (or most recent valid) saved configuration
/// of the product; else options carried over from their other products; else the product's.
pub(super) async fn default(
    api: &CustomizationApi,
    request: pb::GetDefaultConfigurationRequest,
) -> ApiResult<pb::DefaultConfiguration> {
    let pb::GetDefaultConfigurationRequest { customer, product } = request;
    let mut v = Violations::new();
    let reference = v.check("customer", Reference::from_proto(customer));
    let product_id = v.check("", catalog_rpcs::product_id(&product, "product"));
    v.finish()?;
    let (Some(reference), Some(product_id)) = (reference, product_id) else {
        return Err(ApiError::invalid("", "unreachable"));
    };
    let loaded = load(api, &product_id, &product).await?;
    let customer = api.customers.resolve(Lookup { reference: &reference, create: false }).await?;
    let rows = store::list(&api.pool, customer, None, None, MAX_SAVED).await?;
    let (mine, others): (Vec<&SavedRow>, Vec<&SavedRow>) = rows.iter().partition(|r| r.product_id == product_id);
    // The default first, then the most recent that still validates.
    let saved = mine
        .iter()
        .filter(|r| r.is_default)
        .chain(mine.iter().filter(|r| !r.is_default))
        .find(|r| still_valid(&loaded, r))
        .copied();
    let carried: Vec<OptionRef> = others.iter().flat_map(|r| selections_of(r)).collect();
    let saved_selections = saved.map(selections_of);
    let (chosen, source) =
        loaded.domain.propose_defaults(saved_selections.as_deref(), &carried, &GroupAccess::Standard);
    let carried_from: Vec<String> = if source == DefaultSource::CarriedOver {
        let mut from: Vec<String> = Vec::new();
        for r in &others {
            let gives = selections_of(r).iter().any(|o| chosen.contains(o));
            let name = format!("products/{}", r.product_id);
            if gives && !from.contains(&name) {
                from.push(name);
            }
        }
        from
    } else {
        Vec::new()
    };
    let verdict = loaded.domain.configure(&chosen, &GroupAccess::Standard);
    let price = verdict
        .as_ref()
        .ok()
        .map(|c| common::Money { currency_code: loaded.product.currency_code.clone(), amount_minor: c.price.minor });
    Ok(pb::DefaultConfiguration {
        product: format!("products/{product_id}"),
        selections: chosen.iter().map(option_to_proto).collect(),
        source: match source {
            DefaultSource::SavedForProduct => pb::DefaultSource::SavedForProduct,
            DefaultSource::CarriedOver => pb::DefaultSource::CarriedOver,
            DefaultSource::ProductDefaults => pb::DefaultSource::ProductDefaults,
        } as i32,
        saved_configuration: saved
            .filter(|_| source == DefaultSource::SavedForProduct)
            .map(|r| format!("customers/{}/configurations/{}", r.customer_id, r.configuration_id))
            .unwrap_or_default(),
        carried_from,
        valid: verdict.is_ok(),
        price,
    })
}

/// DeleteSavedConfiguration.
pub(super) async fn delete(api: &CustomizationApi, request: pb::DeleteSavedConfigurationRequest) -> ApiResult<()> {
    let pb::DeleteSavedConfigurationRequest { name } = request;
    let parsed = name
        .strip_prefix("customers/")
        .and_then(|rest| rest.split_once("/configurations/"))
        .and_then(|(customer, id)| Some((Uuid::parse_str(customer).ok()?, Uuid::parse_str(id).ok()?)));
    let Some((customer, id)) = parsed else {
        return Err(ApiError::invalid("name", "must be customers/{customer_id}/configurations/{configuration_id}"));
    };
    if store::delete(&api.pool, customer, id).await? { Ok(()) } else { Err(ApiError::NotFound(name)) }
}
