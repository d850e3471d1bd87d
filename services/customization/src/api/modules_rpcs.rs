//! Mass-customization RPCs: Get/SetProductModules, ConfigureProduct and CountVariants, with the
//! proto → domain conversions of module groups, options and constraints.

use idic_platform::{
    ApiError, ApiResult,
    customers::{Lookup, Reference},
    jobs::timestamp,
    validate,
};
use idic_proto::{common::v1 as common, customization::v1 as pb};
use prost::Message as _;

use super::{CustomizationApi, catalog_rpcs};
use crate::{
    domain::{
        catalog::{CurrencyCode, Money},
        modules::{
            self, Configuration, ConstraintKind, CountError, CountRequest, GroupAccess, ModuleConstraint, ModuleGroup,
            ModuleId, ModuleOption, ModulesError, OptionRef, ProductModules, Violation, ViolationKind,
        },
    },
    store::{self, ProductRow},
};

/// Most selections in one ConfigureProduct or CountVariants request.
const MAX_SELECTIONS: usize = 1000;
/// Most attributes per option.
const MAX_OPTION_ATTRIBUTES: usize = 20;

/// Parses `products/{product_id}/modules` from `field`.
fn modules_product_id(name: &str, field: &str) -> ApiResult<String> {
    let product = name
        .strip_suffix("/modules")
        .ok_or_else(|| ApiError::invalid(field, "must be products/{product_id}/modules"))?;
    catalog_rpcs::product_id(product, field)
}

/// A module id from `field`.
fn module_id(id: &str, field: &str) -> ApiResult<ModuleId> {
    ModuleId::parse(id).ok_or_else(|| {
        ApiError::invalid(field, "must be 1–64 characters of `[a-z0-9_-]`, starting with a letter or digit")
    })
}

/// An option reference from `field`.
fn option_ref(r: &pb::OptionRef, field: &str, v: &mut validate::Violations) -> Option<OptionRef> {
    let pb::OptionRef { group_id, option_id } = r;
    let group = v.check("", module_id(group_id, &format!("{field}.group_id")));
    let option = v.check("", module_id(option_id, &format!("{field}.option_id")));
    Some(OptionRef { group: group?, option: option? })
}

/// Selections from `field` (at most [`MAX_SELECTIONS`]).
pub(super) fn selections(refs: &[pb::OptionRef], field: &str) -> ApiResult<Vec<OptionRef>> {
    if refs.len() > MAX_SELECTIONS {
        return Err(ApiError::invalid(field, format!("at most {MAX_SELECTIONS} selections")));
    }
    let mut v = validate::Violations::new();
    let out: Vec<Option<OptionRef>> =
        refs.iter().enumerate().map(|(i, r)| option_ref(r, &format!("{field}[{i}]"), &mut v)).collect();
    v.finish()?;
    Ok(out.into_iter().flatten().collect())
}

/// The product's base price as a domain amount.
fn base_price(product: &ProductRow) -> ApiResult<Money> {
    let currency = CurrencyCode::parse(&product.currency_code).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("stored currency {:?} is malformed", product.currency_code))
    })?;
    Ok(Money::new(currency, product.price_minor))
}

/// Converts one group at `groups[g]`, checking the proto-only rules (titles, currency,
/// attributes) the domain does not know about.
fn group(g: usize, group: &pb::ModuleGroup, currency: &str, v: &mut validate::Violations) -> Option<ModuleGroup> {
    let pb::ModuleGroup { id, title, options, optional, max_selections, extra } = group;
    let field = format!("modules.groups[{g}]");
    let id = v.check("", module_id(id, &format!("{field}.id")));
    v.check("", validate::required(title, 200, &format!("{field}.title")));
    let max_selections = match *max_selections {
        0 => Some(1),
        n => match u8::try_from(n) {
            Ok(n) if (1..=modules::MAX_SELECTIONS).contains(&n) => Some(n),
            _ => {
                v.add(format!("{field}.max_selections"), "must be 1–64 (0 means 1)");
                None
            }
        },
    };
    if options.is_empty() || options.len() > modules::MAX_OPTIONS {
        v.add(format!("{field}.options"), "needs 1 to 10,000 options");
    }
    let mut converted = Vec::with_capacity(options.len());
    for (o, option) in options.iter().enumerate() {
        let pb::ModuleOption { id, title, price_delta, is_default, discontinued, attributes } = option;
        let field = format!("{field}.options[{o}]");
        let id = v.check("", module_id(id, &format!("{field}.id")));
        v.check("", validate::required(title, 200, &format!("{field}.title")));
        let delta = match price_delta {
            None => Some(0),
            Some(common::Money { currency_code, amount_minor }) if currency_code == currency => Some(*amount_minor),
            Some(_) => {
                v.add(format!("{field}.price_delta"), format!("must be in the product's currency {currency}"));
                None
            }
        };
        if attributes.len() > MAX_OPTION_ATTRIBUTES {
            v.add(format!("{field}.attributes"), format!("at most {MAX_OPTION_ATTRIBUTES} entries"));
        }
        for (key, value) in attributes {
            let key_ok = (1..=64).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
            if !key_ok {
                v.add(format!("{field}.attributes[{key:?}]"), "keys are 1–64 characters of `[a-z0-9_.-]`");
            }
            v.check("", validate::text(value, 200, &format!("{field}.attributes[{key:?}]")));
        }
        if let (Some(id), Some(price_delta_minor)) = (id, delta) {
            converted.push(ModuleOption {
                id,
                title: title.clone(),
                price_delta_minor,
                is_default: *is_default,
                discontinued: *discontinued,
            });
        }
    }
    Some(ModuleGroup {
        id: id?,
        title: title.clone(),
        options: converted,
        optional: *optional,
        max_selections: max_selections?,
        extra: *extra,
    })
}

/// Converts one constraint at `constraints[c]`.
fn constraint(c: usize, constraint: &pb::ModuleConstraint, v: &mut validate::Violations) -> Option<ModuleConstraint> {
    let pb::ModuleConstraint { id, kind, subject, targets, description } = constraint;
    let field = format!("modules.constraints[{c}]");
    let id = v.check("", module_id(id, &format!("{field}.id")));
    let kind = match pb::ConstraintKind::try_from(*kind) {
        Ok(pb::ConstraintKind::Requires) => Some(ConstraintKind::Requires),
        Ok(pb::ConstraintKind::Excludes) => Some(ConstraintKind::Excludes),
        Ok(pb::ConstraintKind::OnlyWith) => Some(ConstraintKind::OnlyWith),
        Ok(pb::ConstraintKind::Unspecified) | Err(_) => {
            v.add(format!("{field}.kind"), "must be REQUIRES, EXCLUDES or ONLY_WITH");
            None
        }
    };
    let subject = match subject {
        Some(s) => option_ref(s, &format!("{field}.subject"), v),
        None => {
            v.add(format!("{field}.subject"), "is required");
            None
        }
    };
    if targets.is_empty() || targets.len() > modules::MAX_CONSTRAINTS {
        v.add(format!("{field}.targets"), "needs 1 to 10,000 targets");
    }
    let targets: Vec<Option<OptionRef>> =
        targets.iter().enumerate().map(|(t, r)| option_ref(r, &format!("{field}.targets[{t}]"), v)).collect();
    v.check("", validate::text(description, 500, &format!("{field}.description")));
    Some(ModuleConstraint {
        id: id?,
        kind: kind?,
        subject: subject?,
        targets: targets.into_iter().collect::<Option<Vec<_>>>()?,
        description: description.clone(),
    })
}

/// The field a domain refusal of a set of modules is about.
fn modules_violation(
    error: &ModulesError,
    groups: &[pb::ModuleGroup],
    constraints: &[pb::ModuleConstraint],
) -> ApiError {
    let group_at = |id: &ModuleId| groups.iter().rposition(|g| g.id == id.as_str());
    let constraint_at = |id: &ModuleId| constraints.iter().rposition(|c| c.id == id.as_str());
    let field = match error {
        ModulesError::TooMany if groups.len() > modules::MAX_GROUPS => "modules.groups".to_owned(),
        ModulesError::TooMany => "modules.constraints".to_owned(),
        ModulesError::DuplicateGroup(id) => {
            group_at(id).map_or("modules.groups".into(), |g| format!("modules.groups[{g}].id"))
        }
        ModulesError::OptionCount(id) => {
            group_at(id).map_or("modules.groups".into(), |g| format!("modules.groups[{g}].options"))
        }
        ModulesError::MaxSelections(id) | ModulesError::TooManyDefaults(id) => {
            group_at(id).map_or("modules.groups".into(), |g| format!("modules.groups[{g}].max_selections"))
        }
        ModulesError::DuplicateOption(r) => group_at(&r.group)
            .and_then(|g| {
                groups[g]
                    .options
                    .iter()
                    .rposition(|o| o.id == r.option.as_str())
                    .map(|o| format!("modules.groups[{g}].options[{o}].id"))
            })
            .unwrap_or_else(|| "modules.groups".into()),
        ModulesError::DuplicateConstraint(id) => {
            constraint_at(id).map_or("modules.constraints".into(), |c| format!("modules.constraints[{c}].id"))
        }
        ModulesError::UnknownOption(id, r) => constraint_at(id)
            .map(|c| {
                let named = |x: &pb::OptionRef| x.group_id == r.group.as_str() && x.option_id == r.option.as_str();
                if constraints[c].subject.as_ref().is_some_and(named) {
                    format!("modules.constraints[{c}].subject")
                } else {
                    constraints[c].targets.iter().position(named).map_or(format!("modules.constraints[{c}]"), |t| {
                        format!("modules.constraints[{c}].targets[{t}]")
                    })
                }
            })
            .unwrap_or_else(|| "modules.constraints".into()),
        ModulesError::BadTargets(id) => {
            constraint_at(id).map_or("modules.constraints".into(), |c| format!("modules.constraints[{c}].targets"))
        }
    };
    ApiError::invalid(field, error.to_string())
}

/// Validates proto modules against `product` into the domain form.
fn to_domain(
    product: &ProductRow,
    groups: &[pb::ModuleGroup],
    constraints: &[pb::ModuleConstraint],
) -> ApiResult<ProductModules> {
    let mut v = validate::Violations::new();
    if groups.len() > modules::MAX_GROUPS {
        v.add("modules.groups", format!("at most {} groups", modules::MAX_GROUPS));
    }
    if constraints.len() > modules::MAX_CONSTRAINTS {
        v.add("modules.constraints", format!("at most {} constraints", modules::MAX_CONSTRAINTS));
    }
    v.finish()?;
    let mut v = validate::Violations::new();
    let domain_groups: Vec<Option<ModuleGroup>> =
        groups.iter().enumerate().map(|(g, x)| group(g, x, &product.currency_code, &mut v)).collect();
    let domain_constraints: Vec<Option<ModuleConstraint>> =
        constraints.iter().enumerate().map(|(c, x)| constraint(c, x, &mut v)).collect();
    v.finish()?;
    let (Some(domain_groups), Some(domain_constraints)) = (
        domain_groups.into_iter().collect::<Option<Vec<_>>>(),
        domain_constraints.into_iter().collect::<Option<Vec<_>>>(),
    ) else {
        return Err(ApiError::invalid("modules", "is invalid"));
    };
    ProductModules::new(base_price(product)?, domain_groups, domain_constraints)
        .map_err(|e| modules_violation(&e, groups, constraints))
}

/// A product's stored modules: the proto as set, its domain form and its revision.
pub(super) struct Loaded {
    pub(super) product: ProductRow,
    pub(super) proto: pb::ProductModules,
    pub(super) domain: ProductModules,
}

/// Loads a product and its modules (empty, revision 0, when never set).
pub(super) async fn load(api: &CustomizationApi, product_id: &str, name: &str) -> ApiResult<Loaded> {
    let product =
        store::product(&api.pool, product_id).await?.ok_or_else(|| ApiError::NotFound(format!("{name} not found")))?;
    let stored = store::modules(&api.pool, product_id).await?;
    let mut proto = match &stored {
        Some(row) => pb::ProductModules::decode(row.body.as_slice()).map_err(|e| ApiError::Internal(e.into()))?,
        None => pb::ProductModules::default(),
    };
    proto.name = format!("products/{product_id}/modules");
    proto.revision = stored.as_ref().map_or(0, |r| r.revision);
    proto.update_time = stored.as_ref().map(|r| timestamp(r.update_time));
    proto.etag = proto.revision.to_string();
    let domain = to_domain(&product, &proto.groups, &proto.constraints)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored modules of {product_id} no longer validate: {e}")))?;
    Ok(Loaded { product, proto, domain })
}

/// GetProductModules.
pub(super) async fn get_product_modules(
    api: &CustomizationApi,
    request: pb::GetProductModulesRequest,
) -> ApiResult<pb::ProductModules> {
    let pb::GetProductModulesRequest { name } = request;
    let id = modules_product_id(&name, "name")?;
    Ok(load(api, &id, &format!("products/{id}")).await?.proto)
}

/// SetProductModules.
pub(super) async fn set_product_modules(
    api: &CustomizationApi,
    request: pb::SetProductModulesRequest,
) -> ApiResult<pb::ProductModules> {
    let pb::SetProductModulesRequest { modules, validate_only } = request;
    let Some(modules) = modules else { return Err(ApiError::invalid("modules", "is required")) };
    let pb::ProductModules { name, groups, constraints, revision: _, update_time: _, etag } = modules;
    let id = modules_product_id(&name, "modules.name")?;
    let product_name = format!("products/{id}");
    let product =
        store::product(&api.pool, &id).await?.ok_or_else(|| ApiError::NotFound(format!("{product_name} not found")))?;
    to_domain(&product, &groups, &constraints)?;
    if product.lifecycle == pb::Lifecycle::Retired as i16 {
        return Err(ApiError::FailedPrecondition(format!("{product_name} is retired")));
    }
    let body = pb::ProductModules { groups, constraints, ..Default::default() };
    let mut tx = api.pool.begin().await?;
    let current = store::lock_modules(&mut tx, &id).await?;
    if !etag.is_empty() && etag != current.to_string() {
        return Err(ApiError::Aborted(format!("the modules of {product_name} changed; read them again")));
    }
    let group_count = i32::try_from(body.groups.len()).unwrap_or(i32::MAX);
    let (revision, update_time) = if validate_only {
        (current, chrono::Utc::now())
    } else {
        let row = store::write_modules(&mut tx, &id, current + 1, group_count, &body.encode_to_vec()).await?;
        tx.commit().await?;
        (row.revision, row.update_time)
    };
    Ok(pb::ProductModules {
        name: format!("{product_name}/modules"),
        revision,
        update_time: Some(timestamp(update_time)),
        etag: revision.to_string(),
        ..body
    })
}

fn violation_kind(kind: ViolationKind) -> pb::ViolationKind {
    match kind {
        ViolationKind::UnknownGroup => pb::ViolationKind::UnknownGroup,
        ViolationKind::UnknownOption => pb::ViolationKind::UnknownOption,
        ViolationKind::MissingSelection => pb::ViolationKind::MissingSelection,
        ViolationKind::TooManySelections => pb::ViolationKind::TooManySelections,
        ViolationKind::OptionDiscontinued => pb::ViolationKind::OptionDiscontinued,
        ViolationKind::GroupNotOffered => pb::ViolationKind::GroupNotOffered,
        ViolationKind::ConstraintRequires => pb::ViolationKind::ConstraintRequires,
        ViolationKind::ConstraintExcludes => pb::ViolationKind::ConstraintExcludes,
        ViolationKind::ConstraintOnlyWith => pb::ViolationKind::ConstraintOnlyWith,
    }
}

/// ConfigureProduct. For a known customer a saved configuration of the same variant counts
/// as used (it moves to the front of their list).
pub(super) async fn configure_product(
    api: &CustomizationApi,
    request: pb::ConfigureProductRequest,
) -> ApiResult<pb::ConfigureProductResponse> {
    let pb::ConfigureProductRequest { product, selections: refs, customer } = request;
    let id = catalog_rpcs::product_id(&product, "product")?;
    let chosen = selections(&refs, "selections")?;
    let reference = match customer.filter(|c| c.r#ref.is_some()) {
        Some(c) => Some(Reference::from_proto(Some(c)).map_err(|e| e.within("customer"))?),
        None => None,
    };
    let loaded = load(api, &id, &product).await?;
    if loaded.product.lifecycle == pb::Lifecycle::Retired as i16 {
        return Err(ApiError::FailedPrecondition(format!("{product} is retired")));
    }
    let customer = match &reference {
        Some(reference) => Some(api.customers.resolve(Lookup { reference, create: false }).await?),
        None => None,
    };
    // Extra groups follow the customer's service level, which is not served yet: every
    // customer is configured with the standard groups.
    let answer = configuration_answer(&loaded, loaded.domain.configure(&chosen, &GroupAccess::Standard));
    if let Some(customer) = customer
        && answer.valid
    {
        store::configurations::touch(&api.pool, customer, &id, &answer.variant_key).await?;
    }
    Ok(answer)
}

/// The answer of ConfigureProduct for a product and the domain's verdict on a selection.
pub(super) fn configuration_answer(
    loaded: &Loaded,
    verdict: Result<Configuration, Vec<Violation>>,
) -> pb::ConfigureProductResponse {
    let currency = loaded.product.currency_code.clone();
    let money = |amount_minor| common::Money { currency_code: currency.clone(), amount_minor };
    let revision = loaded.proto.revision;
    match verdict {
        Ok(configuration) => {
            let title = |r: &OptionRef| {
                loaded
                    .domain
                    .groups()
                    .iter()
                    .find(|g| g.id == r.group)
                    .and_then(|g| g.options.iter().find(|o| o.id == r.option))
                    .map_or_else(|| r.option.to_string(), |o| o.title.clone())
            };
            let price_lines = configuration
                .lines
                .iter()
                .map(|line| pb::PriceLine {
                    option: line.option.as_ref().map(option_to_proto),
                    label: line.option.as_ref().map_or_else(|| "Base price".to_owned(), title),
                    amount: Some(money(line.amount_minor)),
                })
                .collect();
            pb::ConfigureProductResponse {
                valid: true,
                price: Some(money(configuration.price.minor)),
                price_lines,
                violations: Vec::new(),
                variant_key: configuration.variant_key,
                modules_revision: revision,
            }
        }
        Err(violations) => pb::ConfigureProductResponse {
            valid: false,
            price: None,
            price_lines: Vec::new(),
            violations: violations
                .into_iter()
                .map(|x| pb::ConfigurationViolation {
                    kind: violation_kind(x.kind) as i32,
                    group_id: x.group.unwrap_or_default(),
                    option_id: x.option.unwrap_or_default(),
                    constraint_id: x.constraint.map(|c| c.to_string()).unwrap_or_default(),
                    description: x.description,
                })
                .collect(),
            variant_key: String::new(),
            modules_revision: revision,
        },
    }
}

/// An option as the wire has it.
pub(super) fn option_to_proto(r: &OptionRef) -> pb::OptionRef {
    pb::OptionRef { group_id: r.group.to_string(), option_id: r.option.to_string() }
}

/// CountVariants.
pub(super) async fn count_variants(
    api: &CustomizationApi,
    request: pb::CountVariantsRequest,
) -> ApiResult<pb::CountVariantsResponse> {
    let pb::CountVariantsRequest { product, fixed_selections, include_extra_groups, include_discontinued } = request;
    let id = catalog_rpcs::product_id(&product, "product")?;
    let fixed = selections(&fixed_selections, "fixed_selections")?;
    let loaded = load(api, &id, &product).await?;
    let count = loaded
        .domain
        .count_variants(&CountRequest { fixed: fixed.clone(), include_extra_groups, include_discontinued })
        .map_err(|e| match e {
            CountError::UnknownFixed(r) => {
                let at = fixed.iter().position(|f| *f == r).unwrap_or_default();
                ApiError::invalid(format!("fixed_selections[{at}]"), format!("{}/{} does not exist", r.group, r.option))
            }
            CountError::TooComplex => ApiError::FailedPrecondition(e.to_string()),
        })?;
    Ok(pb::CountVariantsResponse {
        variants_before_constraints: count.before_constraints,
        variants_after_constraints: count.after_constraints,
        saturated: count.saturated,
        modules_revision: loaded.proto.revision,
    })
}
