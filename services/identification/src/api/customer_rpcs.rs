//! Customers: listing the file and updating a customer's fields through field masks.

use chrono::{DateTime, Utc};
use idic_platform::{
    ApiError, ApiResult, idempotency, paging,
    validate::{self, Violations},
};
use idic_proto::identification::v1 as pb;
use prost::Message as _;
use tonic::Request;
use uuid::Uuid;

use super::{
    CUSTOMER_TEXT_FIELDS, IdentificationApi, caller, check_customer_text, customer_kind_from_proto, customer_to_proto,
    date_from_proto, parent_from_proto, period_from_proto, preferred_channel_from_proto, provenance_from_proto,
    roles_from_proto,
};
use crate::{
    domain::{
        CustomerId, CustomerKind, CustomerRole, CustomerState,
        facts::{FactKey, FactValue},
    },
    store::customers::{CustomerFilter, CustomerUpdate},
};

/// The Customer fields UpdateCustomer may change besides its text fields
/// ([`CUSTOMER_TEXT_FIELDS`]).
const UPDATABLE: &[&str] = &["roles", "birth_date", "parent_customer", "preferred_channel"];

/// Customer fields that are output only or immutable.
const NOT_UPDATABLE: &[&str] = &[
    "name",
    "kind",
    "identifiers",
    "state",
    "merged_into",
    "erasure",
    "create_time",
    "update_time",
    "etag",
    "pii_masked",
];

/// ListCustomers: the file, oldest first, filtered, in keyset pages.
pub(super) async fn list(
    api: &IdentificationApi,
    request: Request<pb::ListCustomersRequest>,
) -> ApiResult<pb::ListCustomersResponse> {
    let caller = caller(&request)?;
    let pb::ListCustomersRequest { page_size, page_token, kind, role, state, parent_customer, update_period } =
        request.into_inner();
    let mut v = Violations::new();
    let size = v.check("", paging::page_size(page_size, "page_size"));
    let kind = v.check("", customer_kind_from_proto(kind)).flatten();
    let role = match pb::CustomerRole::try_from(role) {
        Ok(pb::CustomerRole::Unspecified) => None,
        Ok(pb::CustomerRole::Distributor) => Some(CustomerRole::Distributor),
        Ok(pb::CustomerRole::Partner) => Some(CustomerRole::Partner),
        Err(_) => {
            v.add("role", format!("{role} is not a CustomerRole"));
            None
        }
    };
    let state = match pb::CustomerState::try_from(state) {
        Ok(pb::CustomerState::Unspecified | pb::CustomerState::Active) => CustomerState::Active,
        Ok(pb::CustomerState::Merged) => CustomerState::Merged,
        Ok(pb::CustomerState::Erased) => CustomerState::Erased,
        Err(_) => {
            v.add("state", format!("{state} is not a CustomerState"));
            CustomerState::Active
        }
    };
    let parent = v.check("", parent_from_proto(&parent_customer)).flatten();
    let (updated_from, updated_before) = v.check("update_period", period_from_proto(update_period)).unwrap_or_default();
    if let (Some(from), Some(before)) = (updated_from, updated_before)
        && before <= from
    {
        v.add("update_period.end_time", "must be after start_time");
    }
    let filter = CustomerFilter { kind, role, state, parent, updated_from, updated_before };
    let bound_to = format!("{kind:?}|{role:?}|{state:?}|{parent:?}|{updated_from:?}|{updated_before:?}");
    let cursor: Option<(DateTime<Utc>, Uuid)> =
        v.check("", paging::decode_page_token(&page_token, &bound_to, "page_token")).flatten();
    v.finish()?;
    let size = size.ok_or_else(|| ApiError::invalid("page_size", "is invalid"))?;
    let mut customers = api.store.list_customers(&filter, cursor, i64::from(size) + 1).await?;
    let next_page_token = if customers.len() > size as usize {
        customers.truncate(size as usize);
        customers.last().map(|c| paging::next_page_token(&(c.create_time, c.id.0), &bound_to)).unwrap_or_default()
    } else {
        String::new()
    };
    let pii = caller.has_scope("pii.read");
    Ok(pb::ListCustomersResponse {
        customers: customers.iter().map(|c| customer_to_proto(c, pii)).collect(),
        next_page_token,
    })
}

/// UpdateCustomer: changes the fields named in the mask, each change recorded as a fact.
pub(super) async fn update(
    api: &IdentificationApi,
    request: Request<pb::UpdateCustomerRequest>,
) -> ApiResult<pb::Customer> {
    let caller = caller(&request)?;
    let encoded = request.get_ref().encode_to_vec();
    let pb::UpdateCustomerRequest { customer, update_mask, provenance, request_id } = request.into_inner();
    let mut v = Violations::new();
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten();
    let (source, channel, observe_time) =
        v.check("provenance", provenance_from_proto(provenance, &caller.name, Utc::now())).unwrap_or_default();
    let paths = update_paths(&mut v, update_mask);
    let Some(customer) = customer else {
        v.add("customer", "is required");
        return Err(v.finish().err().unwrap_or_else(|| ApiError::invalid("customer", "is required")));
    };
    let etag = customer.etag.clone();
    let name = customer.name.clone();
    let id = v.check("", validate::resource_id(&name, "customers", "customer.name")).map(CustomerId);
    let (update, new_birth_date, clears_organization_name) = masked_values(&mut v, customer, &paths);
    v.finish()?;
    let id = id.ok_or_else(|| ApiError::invalid("customer.name", "is invalid"))?;
    // Kind is immutable, so the cached record tells which values fit it.
    let current = api.load_customer(id).await?;
    if current.data.kind == CustomerKind::Organization {
        let mut v = Violations::new();
        if new_birth_date {
            v.add("customer.birth_date", "an organization has no birth date");
        }
        if clears_organization_name {
            v.add("customer.organization_name", "is required for an organization");
        }
        v.finish()?;
    }
    let provenance = api.fact_provenance(source, channel, observe_time);
    let hash = idempotency::request_hash(&encoded);
    let etag = (!etag.is_empty()).then_some(etag.as_str());
    api.store
        .update_customer(id, &update, etag, &provenance, &caller.name, request_id.map(|r| (r, hash.as_slice())))
        .await?;
    api.changed(&[id]).await;
    let customer = api.load_customer(id).await?;
    Ok(customer_to_proto(&customer, caller.has_scope("pii.read")))
}

/// The mask's paths, checked: required, "*" refused, only updatable fields; repeats
/// are ignored.
fn update_paths(v: &mut Violations, mask: Option<prost_types::FieldMask>) -> Vec<String> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", "is required: name the fields to change");
    }
    let mut accepted: Vec<String> = Vec::with_capacity(paths.len());
    for (i, path) in paths.into_iter().enumerate() {
        let field = format!("update_mask.paths[{i}]");
        if path == "*" {
            v.add(field, "\"*\" is not accepted: name each field to change");
        } else if NOT_UPDATABLE.contains(&path.as_str()) {
            v.add(field, format!("{path} is output only or immutable"));
        } else if !UPDATABLE.contains(&path.as_str()) && !CUSTOMER_TEXT_FIELDS.iter().any(|(name, _)| *name == path) {
            v.add(field, format!("{path:?} is not an updatable Customer field"));
        } else if !accepted.contains(&path) {
            accepted.push(path);
        }
    }
    accepted
}

/// The new values of the masked fields, checked (violations under `customer.`); also
/// whether a birth date is set and whether organization_name is cleared, which only
/// the customer's kind can tell are wrong.
fn masked_values(v: &mut Violations, customer: pb::Customer, paths: &[String]) -> (CustomerUpdate, bool, bool) {
    let pb::Customer {
        name: _,
        kind: _,
        roles,
        display_name,
        given_name,
        family_name,
        preferred_name,
        organization_name,
        birth_date,
        identifiers: _,
        parent_customer,
        job_title,
        preferred_language,
        time_zone,
        preferred_channel,
        state: _,
        merged_into: _,
        erasure: _,
        create_time: _,
        update_time: _,
        etag: _,
        pii_masked: _,
    } = customer;
    let mut update = CustomerUpdate::default();
    let (mut new_birth_date, mut clears_organization_name) = (false, false);
    for path in paths {
        let field = format!("customer.{path}");
        let text = match path.as_str() {
            "display_name" => &display_name,
            "given_name" => &given_name,
            "family_name" => &family_name,
            "preferred_name" => &preferred_name,
            "organization_name" => &organization_name,
            "job_title" => &job_title,
            "preferred_language" => &preferred_language,
            "time_zone" => &time_zone,
            "roles" => {
                // Unknown roles are violations, which refuse the whole update.
                update.roles = Some(v.check("customer", roles_from_proto(&roles)).unwrap_or_default());
                continue;
            }
            "parent_customer" => {
                update.parent = v.check("customer", parent_from_proto(&parent_customer));
                continue;
            }
            "birth_date" => {
                let value = match &birth_date {
                    None => Some(FactValue::Cleared),
                    Some(date) => {
                        date_from_proto(date, Utc::now()).map(FactValue::Date).map_err(|why| v.add(&field, why)).ok()
                    }
                };
                new_birth_date = matches!(value, Some(FactValue::Date(_)));
                push_fact(v, &mut update, path, &field, value);
                continue;
            }
            "preferred_channel" => {
                let value = v.check("customer", preferred_channel_from_proto(preferred_channel)).map(FactValue::text);
                push_fact(v, &mut update, path, &field, value);
                continue;
            }
            _ => continue,
        };
        let value = v.check("customer", check_customer_text(path, text)).map(|()| FactValue::text(text.trim()));
        clears_organization_name |= path == "organization_name" && value == Some(FactValue::Cleared);
        push_fact(v, &mut update, path, &field, value);
    }
    (update, new_birth_date, clears_organization_name)
}

fn push_fact(v: &mut Violations, update: &mut CustomerUpdate, path: &str, field: &str, value: Option<FactValue>) {
    let Some(value) = value else { return };
    match FactKey::parse(path) {
        Ok(key) => update.fields.push((key, value)),
        Err(why) => v.add(field, why),
    }
}
