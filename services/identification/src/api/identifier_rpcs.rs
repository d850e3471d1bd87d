//! Identifiers of a customer (add, remove, list, per-kind limits) and identifier rules.

use chrono::{DateTime, Utc};
use idic_platform::{
    ApiError, ApiResult, idempotency,
    jobs::timestamp,
    paging,
    validate::{self, Violations},
};
use idic_proto::common::v1 as common;
use idic_proto::identification::v1 as pb;
use prost::Message as _;
use tonic::Request;
use uuid::Uuid;

use super::{
    IdentificationApi, caller, identifier_from_proto, identifier_kind_from_proto, identifier_to_proto,
    provenance_from_proto,
};
use crate::{
    domain::{CustomerId, Identifier, IdentifierKind},
    store::identifiers::{
        CustomerIdentifier, IdentifierRule, ListPosition, NewIdentifier, RemovalReason, RuleAction, identifier_name,
        rule_name,
    },
};

/// Longest reason accepted for a removal or a rule.
const MAX_REASON_CHARS: usize = 500;

/// AddIdentifier: attaches a normalised identifier within its kind's limit.
pub(super) async fn add(
    api: &IdentificationApi,
    request: Request<pb::AddIdentifierRequest>,
) -> ApiResult<pb::CustomerIdentifier> {
    let caller = caller(&request)?;
    let encoded = request.get_ref().encode_to_vec();
    let pb::AddIdentifierRequest { parent, identifier, priority, verified, provenance, request_id } =
        request.into_inner();
    let mut v = Violations::new();
    let customer = v.check("", validate::resource_id(&parent, "customers", "parent")).map(CustomerId);
    let identifier = required_identifier(&mut v, identifier.as_ref(), "identifier");
    let priority = match priority {
        None => None,
        Some(p) => match i16::try_from(p) {
            Ok(p) if (1..=100).contains(&p) => Some(p),
            _ => {
                v.add("priority", "must be 1 to 100");
                None
            }
        },
    };
    let (source, channel, observe_time) =
        v.check("provenance", provenance_from_proto(provenance, &caller.name, Utc::now())).unwrap_or_default();
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten();
    v.finish()?;
    let (Some(customer), Some(identifier)) = (customer, identifier) else {
        return Err(ApiError::invalid("", "invalid request"));
    };
    let customer = api.store.active_customer(customer).await?;
    let new = NewIdentifier {
        identifier,
        priority,
        verified,
        provenance: api.fact_provenance(source, channel, observe_time),
    };
    let limit = api.config.identifier_limits.of(new.identifier.kind);
    let hash = idempotency::request_hash(&encoded);
    let added = api.store.add_identifier(customer, &new, limit, request_id.map(|id| (id, hash.as_slice()))).await?;
    api.changed(&[customer]).await;
    let mut moved = added.retired;
    moved.push(new.identifier);
    api.cache.invalidate_holders(&moved).await;
    Ok(customer_identifier_to_proto(&added.identifier, caller.has_scope("pii.read")))
}

/// RemoveIdentifier: moves a held identifier to history and releases its value.
pub(super) async fn remove(
    api: &IdentificationApi,
    request: Request<pb::RemoveIdentifierRequest>,
) -> ApiResult<pb::CustomerIdentifier> {
    let caller = caller(&request)?;
    let pb::RemoveIdentifierRequest { parent, identifier, reason } = request.into_inner();
    let mut v = Violations::new();
    let customer = v.check("", validate::resource_id(&parent, "customers", "parent")).map(CustomerId);
    let identifier = required_identifier(&mut v, identifier.as_ref(), "identifier");
    check_reason(&mut v, &reason, "reason");
    v.finish()?;
    let (Some(customer), Some(identifier)) = (customer, identifier) else {
        return Err(ApiError::invalid("", "invalid request"));
    };
    let customer = api.store.active_customer(customer).await?;
    let (removed, changed) = api.store.remove_identifier(customer, &identifier, reason.trim()).await?;
    if changed {
        api.changed(&[customer]).await;
        api.cache.invalidate_holders(&[identifier]).await;
    }
    Ok(customer_identifier_to_proto(&removed, caller.has_scope("pii.read")))
}

/// ListIdentifiers: a customer's identifiers (and history) in the documented order.
pub(super) async fn list(
    api: &IdentificationApi,
    request: Request<pb::ListIdentifiersRequest>,
) -> ApiResult<pb::ListIdentifiersResponse> {
    let caller = caller(&request)?;
    let pb::ListIdentifiersRequest { parent, page_size, page_token, kind, include_removed } = request.into_inner();
    let mut v = Violations::new();
    let customer = v.check("", validate::resource_id(&parent, "customers", "parent")).map(CustomerId);
    let size = v.check("", paging::page_size(page_size, "page_size"));
    let kind = v.check("", optional_kind(kind, "kind")).flatten();
    let filter = format!("{parent}|{kind:?}|{include_removed}");
    let after: Option<ListPosition> =
        v.check("", paging::decode_page_token(&page_token, &filter, "page_token")).flatten();
    v.finish()?;
    let (Some(customer), Some(size)) = (customer, size) else {
        return Err(ApiError::invalid("", "invalid request"));
    };
    let size = size as usize;
    let customer = api.store.active_customer(customer).await?;
    let mut listed = api.store.list_identifiers(customer, kind, include_removed, after, size + 1).await?;
    let next_page_token = if listed.len() > size {
        listed.truncate(size);
        listed.last().map(|i| paging::next_page_token(&i.position(), &filter)).unwrap_or_default()
    } else {
        String::new()
    };
    let pii = caller.has_scope("pii.read");
    Ok(pb::ListIdentifiersResponse {
        identifiers: listed.iter().map(|i| customer_identifier_to_proto(i, pii)).collect(),
        next_page_token,
    })
}

/// CreateIdentifierRule: blocks a value or declares it shared, audited.
pub(super) async fn create_rule(
    api: &IdentificationApi,
    request: Request<pb::CreateIdentifierRuleRequest>,
) -> ApiResult<pb::IdentifierRule> {
    let caller = caller(&request)?;
    let encoded = request.get_ref().encode_to_vec();
    let pb::CreateIdentifierRuleRequest { rule, request_id } = request.into_inner();
    let mut v = Violations::new();
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten();
    // A missing rule reports each of its required fields.
    let pb::IdentifierRule { name: _, identifier, action, reason, automatic: _, created_by: _, create_time: _ } =
        rule.unwrap_or_default();
    let identifier = required_identifier(&mut v, identifier.as_ref(), "rule.identifier");
    let action = match pb::IdentifierRuleAction::try_from(action) {
        Ok(pb::IdentifierRuleAction::Block) => Some(RuleAction::Block),
        Ok(pb::IdentifierRuleAction::Shared) => Some(RuleAction::Shared),
        _ => {
            v.add("rule.action", "is required: IDENTIFIER_RULE_ACTION_BLOCK or IDENTIFIER_RULE_ACTION_SHARED");
            None
        }
    };
    check_reason(&mut v, &reason, "rule.reason");
    v.finish()?;
    let (Some(identifier), Some(action)) = (identifier, action) else {
        return Err(ApiError::invalid("rule", "is invalid"));
    };
    let hash = idempotency::request_hash(&encoded);
    let (rule, affected) = api
        .store
        .create_identifier_rule(
            &identifier,
            action,
            reason.trim(),
            &caller.name,
            request_id.map(|id| (id, hash.as_slice())),
        )
        .await?;
    // Blocked holdings are gone and shared ones no longer identify anyone.
    api.changed(&affected).await;
    api.cache.invalidate_holders(&[identifier]).await;
    Ok(rule_to_proto(&rule, caller.has_scope("pii.read")))
}

/// ListIdentifierRules: newest first, by kind and action.
pub(super) async fn list_rules(
    api: &IdentificationApi,
    request: Request<pb::ListIdentifierRulesRequest>,
) -> ApiResult<pb::ListIdentifierRulesResponse> {
    let caller = caller(&request)?;
    let pb::ListIdentifierRulesRequest { page_size, page_token, kind, action } = request.into_inner();
    let mut v = Violations::new();
    let size = v.check("", paging::page_size(page_size, "page_size"));
    let kind = v.check("", optional_kind(kind, "kind")).flatten();
    let action = match pb::IdentifierRuleAction::try_from(action) {
        Ok(pb::IdentifierRuleAction::Unspecified) => None,
        Ok(pb::IdentifierRuleAction::Block) => Some(RuleAction::Block),
        Ok(pb::IdentifierRuleAction::Shared) => Some(RuleAction::Shared),
        Err(_) => {
            v.add("action", format!("{action} is not an IdentifierRuleAction"));
            None
        }
    };
    let filter = format!("{kind:?}|{action:?}");
    let cursor: Option<(DateTime<Utc>, Uuid)> =
        v.check("", paging::decode_page_token(&page_token, &filter, "page_token")).flatten();
    v.finish()?;
    let size = size.ok_or_else(|| ApiError::invalid("page_size", "is invalid"))?;
    let mut rules = api.store.list_identifier_rules(kind, action, cursor, i64::from(size) + 1).await?;
    let next_page_token = if rules.len() > size as usize {
        rules.truncate(size as usize);
        rules.last().map(|r| paging::next_page_token(&(r.create_time, r.id), &filter)).unwrap_or_default()
    } else {
        String::new()
    };
    let pii = caller.has_scope("pii.read");
    Ok(pb::ListIdentifierRulesResponse {
        rules: rules.iter().map(|r| rule_to_proto(r, pii)).collect(),
        next_page_token,
    })
}

/// DeleteIdentifierRule: the value becomes an ordinary identifier again, audited.
pub(super) async fn delete_rule(
    api: &IdentificationApi,
    request: Request<pb::DeleteIdentifierRuleRequest>,
) -> ApiResult<pb::DeleteIdentifierRuleResponse> {
    let caller = caller(&request)?;
    let pb::DeleteIdentifierRuleRequest { name, reason } = request.into_inner();
    let mut v = Violations::new();
    let id = v.check("", validate::resource_id(&name, "identifierRules", "name"));
    check_reason(&mut v, &reason, "reason");
    v.finish()?;
    let id = id.ok_or_else(|| ApiError::invalid("name", "is invalid"))?;
    let rule = api.store.delete_identifier_rule(id, &caller.name, reason.trim()).await?;
    api.cache.invalidate_holders(&[rule.identifier]).await;
    Ok(pb::DeleteIdentifierRuleResponse {})
}

/// A required identifier, normalised; violations are named under `field`.
fn required_identifier(v: &mut Violations, identifier: Option<&common::Identifier>, field: &str) -> Option<Identifier> {
    match identifier {
        Some(identifier) => v.check(field, identifier_from_proto(identifier)),
        None => {
            v.add(field, "is required");
            None
        }
    }
}

/// A required reason of 1 to 500 characters of text.
fn check_reason(v: &mut Violations, reason: &str, field: &str) {
    v.check("", validate::required(reason, MAX_REASON_CHARS, field));
    v.check("", validate::text(reason, MAX_REASON_CHARS, field));
}

/// An identifier kind filter: UNSPECIFIED means every kind.
fn optional_kind(kind: i32, field: &str) -> ApiResult<Option<IdentifierKind>> {
    match common::IdentifierKind::try_from(kind) {
        Ok(common::IdentifierKind::Unspecified) => Ok(None),
        Ok(_) => Ok(identifier_kind_from_proto(kind)),
        Err(_) => Err(ApiError::invalid(field, format!("{kind} is not an IdentifierKind"))),
    }
}

/// A customer's identifier as the API shows it; its value masked unless `pii`.
fn customer_identifier_to_proto(i: &CustomerIdentifier, pii: bool) -> pb::CustomerIdentifier {
    pb::CustomerIdentifier {
        name: identifier_name(i.customer, i.id),
        identifier: Some(identifier_to_proto(&i.identifier, pii)),
        priority: i32::from(i.priority),
        verified: i.verified,
        state: if i.active { pb::IdentifierState::Active } else { pb::IdentifierState::Removed } as i32,
        stale: i.stale,
        superseded_by: i.superseded_by.map(|s| identifier_name(i.customer, s)).unwrap_or_default(),
        shared: i.shared,
        provenance: Some(pb::Provenance {
            source: i.source.clone(),
            channel: common::Channel::from_str_name(&i.channel).unwrap_or(common::Channel::Unspecified) as i32,
            observe_time: Some(timestamp(i.observe_time)),
        }),
        create_time: Some(timestamp(i.create_time)),
        last_seen_time: Some(timestamp(i.last_seen_time)),
        remove_time: i.remove_time.map(timestamp),
        removal_reason: match i.removal_reason {
            None => pb::IdentifierRemovalReason::Unspecified,
            Some(RemovalReason::Requested) => pb::IdentifierRemovalReason::Requested,
            Some(RemovalReason::Limit) => pb::IdentifierRemovalReason::Limit,
            Some(RemovalReason::Blocked) => pb::IdentifierRemovalReason::Blocked,
            Some(RemovalReason::Unmerged) => pb::IdentifierRemovalReason::Unmerged,
        } as i32,
    }
}

/// A rule as the API shows it; its value masked unless `pii`.
fn rule_to_proto(rule: &IdentifierRule, pii: bool) -> pb::IdentifierRule {
    pb::IdentifierRule {
        name: rule_name(rule.id),
        identifier: Some(identifier_to_proto(&rule.identifier, pii)),
        action: match rule.action {
            RuleAction::Block => pb::IdentifierRuleAction::Block,
            RuleAction::Shared => pb::IdentifierRuleAction::Shared,
        } as i32,
        reason: rule.reason.clone(),
        automatic: rule.automatic,
        created_by: rule.created_by.clone(),
        create_time: Some(timestamp(rule.create_time)),
    }
}
