//! Segment and rule RPCs: ValidateRule, PreviewSegment, Create/Get/Update/Delete/ListSegments,
//! ListSegmentMembers, GetCustomerSegments, EvaluateRule and BatchEvaluateRules. Requests are
//! validated here, rules parsed by `domain::rules`, membership kept by `membership`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use idic_platform::{
    ApiError, ApiResult,
    audit::{self, AuditRecord},
    context::Caller,
    jobs::timestamp,
    paging, validate,
};
use idic_proto::segmentation::v1::{self as pb, MembershipChangeReason};
use tonic::Request;
use uuid::Uuid;

use super::{SegmentationApi, caller, value_rpcs::major};
use crate::{
    domain::rules::{Diagnostic, MAX_RULE_CHARS, Rule, Severity, Subject, TermOutcome},
    membership::{self, state},
    settings,
    store::segments::{self as store, NewSegment, SegmentChange, SegmentRow},
};

/// Most segments a deployment holds.
const MAX_SEGMENTS: i64 = 1000;
/// Longest display name and description.
const MAX_DISPLAY_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2000;
/// Member page sizes: default and maximum.
const DEFAULT_MEMBER_PAGE: i64 = 1000;
const MAX_MEMBER_PAGE: i32 = 10_000;
/// Rules in one BatchEvaluateRules, and the longest key.
const MAX_BATCH_RULES: usize = 200;
const MAX_RULE_KEY: usize = 128;
/// Scope needed to read profile facts in rules.
const PROFILES_READ: &str = "profiles.read";

fn diagnostic_to_proto(d: &Diagnostic) -> pb::RuleDiagnostic {
    let severity = match d.severity {
        Severity::Error => pb::RuleDiagnosticSeverity::Error,
        Severity::Warning => pb::RuleDiagnosticSeverity::Warning,
    };
    let int = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    pb::RuleDiagnostic {
        severity: severity as i32,
        message: d.message.clone(),
        offset: int(d.offset),
        line: int(d.line),
        column: int(d.column),
        length: int(d.length),
        expected: d.expected.clone(),
        found: d.found.clone(),
        suggestion: d.suggestion.clone().unwrap_or_default(),
    }
}

fn term_to_proto(t: TermOutcome) -> pb::TermOutcome {
    let int = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    pb::TermOutcome {
        term: t.term,
        offset: int(t.offset),
        length: int(t.length),
        result: t.result,
        observed: t.observed,
    }
}

/// Checks a rule's length, then parses it; errors become a violation on `field` whose
/// description lists each error with its position and expectation.
fn parse_rule(text: &str, field: &str) -> ApiResult<Rule> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    validate::max_chars(text, MAX_RULE_CHARS, field)?;
    Rule::parse(text).map_err(|errors| {
        let description = errors.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("; ");
        ApiError::invalid(field, description)
    })
}

/// A rule reading profile facts needs `profiles.read` as well.
fn check_profile_scope(rule: &Rule, caller: &Caller) -> ApiResult<()> {
    if rule.reads_profile() && !caller.has_scope(PROFILES_READ) {
        return Err(ApiError::PermissionDenied(format!("rules reading profile facts need the {PROFILES_READ} scope")));
    }
    Ok(())
}

/// Checks a segment id: 1–63 characters [a-z0-9-], starting with a letter.
fn check_segment_id(id: &str, field: &str) -> ApiResult<()> {
    let valid = (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(field, "must be 1-63 characters [a-z0-9-] starting with a letter"))
    }
}

/// Parses `segments/{segment_id}` (an id chosen by a caller, or a generated UUID).
fn segment_name(name: &str, field: &str) -> ApiResult<String> {
    let Some(id) = name.strip_prefix("segments/") else {
        return Err(ApiError::invalid(field, "must be segments/{segment_id}"));
    };
    if Uuid::parse_str(id).is_err() {
        check_segment_id(id, field)?;
    }
    Ok(id.to_owned())
}

fn ts(t: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    t.map(timestamp)
}

fn segment_to_proto(api: &SegmentationApi, s: &SegmentRow) -> pb::Segment {
    let warnings =
        api.segments.rule(s).map(|r| r.warnings().iter().map(diagnostic_to_proto).collect()).unwrap_or_default();
    pb::Segment {
        name: format!("segments/{}", s.segment_id),
        display_name: s.display_name.clone(),
        description: s.description.clone(),
        rule: s.rule.clone(),
        rule_version: s.rule_version,
        membership_state: i32::from(s.membership_state),
        membership_job: s.membership_job.map(|j| format!("jobs/{j}")).unwrap_or_default(),
        member_count: s.member_count,
        membership_time: ts(s.membership_time),
        warnings,
        create_time: ts(Some(s.create_time)),
        update_time: ts(Some(s.update_time)),
        creator: s.creator.clone(),
        etag: s.etag.clone(),
    }
}

/// Checks the segments a rule reads through `in_segment`: each must exist, and none may
/// lead back to `own` (a cycle).
async fn check_references(api: &SegmentationApi, own: &str, rule: &Rule) -> ApiResult<()> {
    if rule.referenced_segments().is_empty() {
        return Ok(());
    }
    let all = store::all_segments(&api.pool).await?;
    let refs: HashMap<String, Vec<String>> = all
        .iter()
        .map(|s| {
            (s.segment_id.clone(), api.segments.rule(s).map(|r| r.referenced_segments().to_vec()).unwrap_or_default())
        })
        .collect();
    let mut stack: Vec<String> = Vec::new();
    for id in rule.referenced_segments() {
        if id != own && !refs.contains_key(id) {
            return Err(ApiError::FailedPrecondition(format!("the rule reads in_segment({id:?}), an unknown segment")));
        }
        stack.push(id.clone());
    }
    let mut seen = HashSet::new();
    while let Some(id) = stack.pop() {
        if id == own {
            return Err(ApiError::FailedPrecondition(format!(
                "the rule's in_segment references lead back to segments/{own} (a cycle)"
            )));
        }
        if seen.insert(id.clone()) {
            stack.extend(refs.get(&id).cloned().unwrap_or_default());
        }
    }
    Ok(())
}

/// ValidateRule: parses and type-checks; a bad rule is answered, not refused.
pub(super) async fn validate_rule(request: pb::ValidateRuleRequest) -> ApiResult<pb::ValidateRuleResponse> {
    let pb::ValidateRuleRequest { rule } = request;
    validate::max_chars(&rule, MAX_RULE_CHARS, "rule")?;
    Ok(match Rule::parse(&rule) {
        Ok(parsed) => pb::ValidateRuleResponse {
            valid: true,
            diagnostics: parsed.warnings().iter().map(diagnostic_to_proto).collect(),
            normalized_rule: parsed.normalized(),
            referenced_fields: parsed.referenced_fields().to_vec(),
            referenced_segments: parsed.referenced_segments().iter().map(|s| format!("segments/{s}")).collect(),
        },
        Err(errors) => pb::ValidateRuleResponse {
            valid: false,
            diagnostics: errors.iter().map(diagnostic_to_proto).collect(),
            normalized_rule: String::new(),
            referenced_fields: Vec::new(),
            referenced_segments: Vec::new(),
        },
    })
}

/// PreviewSegment: evaluates a rule over the base without saving.
pub(super) async fn preview_segment(
    api: &SegmentationApi,
    request: Request<pb::PreviewSegmentRequest>,
) -> ApiResult<pb::PreviewSegmentResponse> {
    let caller = caller(&request)?;
    let pb::PreviewSegmentRequest { rule, sample_size } = request.into_inner();
    let sample_size = match sample_size {
        0 => 10,
        1..=100 => sample_size as usize,
        _ => return Err(ApiError::invalid("sample_size", "must be between 0 and 100")),
    };
    let rule = parse_rule(&rule, "rule")?;
    check_profile_scope(&rule, &caller)?;
    check_references(api, "", &rule).await?;
    let currency = settings::load(&api.pool).await?.currency_code;
    let preview = api.segments.preview(&rule, sample_size, None).await?;
    let today = membership::today();
    let mut tier_counts: Vec<pb::TierCount> =
        preview.tiers.iter().map(|(tier, count)| pb::TierCount { tier: *tier, customer_count: *count }).collect();
    tier_counts.sort_by_key(|t| t.tier);
    let sample = preview
        .sample
        .iter()
        .map(|(id, m)| pb::MemberSummary {
            customer: format!("customers/{id}"),
            tier: membership::tier_number(m),
            clv: Some(major(&currency, m.clv.unwrap_or(0.0))),
            p_alive: m.p_alive.unwrap_or(0.0),
            days_since_purchase: m.last_purchase.map(|d| i32::try_from((today - d).num_days()).unwrap_or(i32::MAX)),
            cluster_label: m.cluster.clone().unwrap_or_default(),
        })
        .collect();
    Ok(pb::PreviewSegmentResponse {
        matched_count: preview.matched,
        evaluated_count: preview.evaluated,
        matched_share: if preview.evaluated > 0 { preview.matched as f64 / preview.evaluated as f64 } else { 0.0 },
        matched_clv: Some(major(&currency, preview.matched_clv)),
        tier_counts,
        sample,
        warnings: rule.warnings().iter().map(diagnostic_to_proto).collect(),
        evaluate_time: ts(preview.evaluate_time.or(Some(Utc::now()))),
    })
}

/// CreateSegment: stores the segment PENDING and starts its materialisation.
pub(super) async fn create_segment(
    api: &SegmentationApi,
    request: Request<pb::CreateSegmentRequest>,
) -> ApiResult<pb::Segment> {
    let caller = caller(&request)?;
    let pb::CreateSegmentRequest { request_id, segment_id, segment } = request.into_inner();
    let request_id = validate::request_id(&request_id, "request_id")?;
    let segment_id = if segment_id.is_empty() {
        Uuid::new_v4().to_string()
    } else {
        check_segment_id(&segment_id, "segment_id")?;
        segment_id
    };
    let Some(segment) = segment else { return Err(ApiError::invalid("segment", "is required")) };
    // `name` and the output-only fields are ignored, as the contract says.
    let pb::Segment {
        name: _,
        display_name,
        description,
        rule,
        rule_version: _,
        membership_state: _,
        membership_job: _,
        member_count: _,
        membership_time: _,
        warnings: _,
        create_time: _,
        update_time: _,
        creator: _,
        etag: _,
    } = segment;
    let mut violations = validate::Violations::new();
    violations.check("", validate::required(&display_name, MAX_DISPLAY_NAME, "segment.display_name"));
    violations.check("", validate::text(&description, MAX_DESCRIPTION, "segment.description"));
    let parsed = violations.check("", parse_rule(&rule, "segment.rule"));
    violations.finish()?;
    let Some(parsed) = parsed else { return Err(ApiError::invalid("segment.rule", "is invalid")) };
    check_profile_scope(&parsed, &caller)?;

    let mut tx = api.pool.begin().await?;
    if let Some(id) = request_id
        && let Some(existing) = store::segment_by_request(&mut tx, id).await?
    {
        return Ok(segment_to_proto(api, &existing));
    }
    check_references(api, &segment_id, &parsed).await?;
    if store::segment_count(&mut tx).await? >= MAX_SEGMENTS {
        return Err(ApiError::ResourceExhausted {
            message: format!("this deployment holds at most {MAX_SEGMENTS} segments"),
            retry_after: None,
        });
    }
    let new = NewSegment {
        segment_id: &segment_id,
        display_name: &display_name,
        description: &description,
        rule: &rule,
        creator: &caller.name,
        request_id,
        membership_state: state::PENDING,
    };
    let Some(row) = store::insert_segment(&mut tx, &new).await? else {
        return Err(ApiError::AlreadyExists(format!("segments/{segment_id}")));
    };
    let resource = format!("segments/{segment_id}");
    audit::record(
        &mut tx,
        AuditRecord {
            caller: &caller.name,
            action: "CreateSegment",
            resource: &resource,
            reason: "",
            detail: serde_json::json!({ "rule": rule, "rule_version": row.rule_version }),
        },
    )
    .await?;
    tx.commit().await?;
    let job = api.segments.start_materialization(&row, MembershipChangeReason::SegmentCreated, &caller.name).await?;
    let row = SegmentRow { membership_job: Some(job), ..row };
    Ok(segment_to_proto(api, &row))
}

/// GetSegment.
pub(super) async fn get_segment(api: &SegmentationApi, request: pb::GetSegmentRequest) -> ApiResult<pb::Segment> {
    let pb::GetSegmentRequest { name } = request;
    let id = segment_name(&name, "name")?;
    let row = store::segment(&api.pool, &id).await?.ok_or_else(|| ApiError::NotFound(format!("segments/{id}")))?;
    Ok(segment_to_proto(api, &row))
}

/// UpdateSegment: the masked fields; a rule change re-materialises membership.
pub(super) async fn update_segment(
    api: &SegmentationApi,
    request: Request<pb::UpdateSegmentRequest>,
) -> ApiResult<pb::Segment> {
    let caller = caller(&request)?;
    let pb::UpdateSegmentRequest { segment, update_mask } = request.into_inner();
    let Some(segment) = segment else { return Err(ApiError::invalid("segment", "is required")) };
    // Output-only fields are ignored.
    let pb::Segment {
        name,
        display_name,
        description,
        rule,
        rule_version: _,
        membership_state: _,
        membership_job: _,
        member_count: _,
        membership_time: _,
        warnings: _,
        create_time: _,
        update_time: _,
        creator: _,
        etag,
    } = segment;
    let id = segment_name(&name, "segment.name")?;
    let paths = update_mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return Err(ApiError::invalid("update_mask", "is required: any of display_name, description, rule"));
    }
    let mut change = SegmentChange::default();
    let mut parsed = None;
    for (i, path) in paths.iter().enumerate() {
        match path.as_str() {
            "display_name" => {
                validate::required(&display_name, MAX_DISPLAY_NAME, "segment.display_name")?;
                change.display_name = Some(&display_name);
            }
            "description" => {
                validate::text(&description, MAX_DESCRIPTION, "segment.description")?;
                change.description = Some(&description);
            }
            "rule" => {
                let r = parse_rule(&rule, "segment.rule")?;
                check_profile_scope(&r, &caller)?;
                check_references(api, &id, &r).await?;
                parsed = Some(r);
            }
            other => {
                return Err(ApiError::invalid(format!("update_mask.paths[{i}]"), format!("unknown path {other:?}")));
            }
        }
    }
    let mut tx = api.pool.begin().await?;
    let current =
        store::segment_for_update(&mut tx, &id).await?.ok_or_else(|| ApiError::NotFound(format!("segments/{id}")))?;
    if !etag.is_empty() && etag != current.etag {
        return Err(ApiError::Aborted(format!("segments/{id} changed since it was read; read it again")));
    }
    let rule_changed = parsed.is_some() && rule != current.rule;
    if rule_changed {
        change.rule = Some((&rule, state::PENDING, None));
    }
    let row = store::update_segment(&mut tx, &id, &change).await?;
    let resource = format!("segments/{id}");
    audit::record(
        &mut tx,
        AuditRecord {
            caller: &caller.name,
            action: "UpdateSegment",
            resource: &resource,
            reason: "",
            detail: serde_json::json!({ "paths": paths, "rule_version": row.rule_version }),
        },
    )
    .await?;
    tx.commit().await?;
    if rule_changed {
        let job =
            api.segments.start_materialization(&row, MembershipChangeReason::SegmentUpdated, &caller.name).await?;
        return Ok(segment_to_proto(api, &SegmentRow { membership_job: Some(job), ..row }));
    }
    Ok(segment_to_proto(api, &row))
}

/// DeleteSegment: every member exits.
pub(super) async fn delete_segment(api: &SegmentationApi, request: Request<pb::DeleteSegmentRequest>) -> ApiResult<()> {
    let caller = caller(&request)?;
    let pb::DeleteSegmentRequest { name, etag } = request.into_inner();
    let id = segment_name(&name, "name")?;
    let mut tx = api.pool.begin().await?;
    let current =
        store::segment_for_update(&mut tx, &id).await?.ok_or_else(|| ApiError::NotFound(format!("segments/{id}")))?;
    if !etag.is_empty() && etag != current.etag {
        return Err(ApiError::Aborted(format!("segments/{id} changed since it was read; read it again")));
    }
    let mut dependants = Vec::new();
    for other in store::segments_referencing(&mut tx, &id).await? {
        if let Some(o) = store::segment(&api.pool, &other).await?
            && api.segments.rule(&o).is_some_and(|r| r.referenced_segments().contains(&id))
        {
            dependants.push(format!("segments/{other}"));
        }
    }
    if !dependants.is_empty() {
        return Err(ApiError::FailedPrecondition(format!(
            "segments/{id} is read by in_segment in {}",
            dependants.join(", ")
        )));
    }
    let members = api.segments.delete_in(&mut tx, &current).await?;
    let resource = format!("segments/{id}");
    audit::record(
        &mut tx,
        AuditRecord {
            caller: &caller.name,
            action: "DeleteSegment",
            resource: &resource,
            reason: "",
            detail: serde_json::json!({ "members": members.len() }),
        },
    )
    .await?;
    tx.commit().await?;
    api.segments.invalidate(&members).await;
    Ok(())
}

/// ListSegments, by display name.
pub(super) async fn list_segments(
    api: &SegmentationApi,
    request: pb::ListSegmentsRequest,
) -> ApiResult<pb::ListSegmentsResponse> {
    let pb::ListSegmentsRequest { page_size, page_token } = request;
    let size = paging::page_size(page_size, "page_size")?;
    let after: Option<(String, String)> = paging::decode_page_token(&page_token, "segments", "page_token")?;
    let mut rows = store::list_segments(&api.pool, after.as_ref(), i64::from(size) + 1).await?;
    let more = rows.len() > size as usize;
    rows.truncate(size as usize);
    let next_page_token = match rows.last() {
        Some(last) if more => {
            paging::next_page_token(&(last.display_name.clone(), last.segment_id.clone()), "segments")
        }
        _ => String::new(),
    };
    Ok(pb::ListSegmentsResponse { segments: rows.iter().map(|r| segment_to_proto(api, r)).collect(), next_page_token })
}

/// ListSegmentMembers, in customer id order.
pub(super) async fn list_segment_members(
    api: &SegmentationApi,
    request: pb::ListSegmentMembersRequest,
) -> ApiResult<pb::ListSegmentMembersResponse> {
    let pb::ListSegmentMembersRequest { segment, page_size, page_token } = request;
    let id = segment_name(&segment, "segment")?;
    let size = match page_size {
        0 => DEFAULT_MEMBER_PAGE,
        1..=MAX_MEMBER_PAGE => i64::from(page_size),
        _ => return Err(ApiError::invalid("page_size", format!("must be between 0 and {MAX_MEMBER_PAGE}"))),
    };
    let filter = format!("members:{id}");
    let after: Option<Uuid> = paging::decode_page_token(&page_token, &filter, "page_token")?;
    let row = store::segment(&api.pool, &id).await?.ok_or_else(|| ApiError::NotFound(format!("segments/{id}")))?;
    if row.membership_state == state::PENDING && row.membership_time.is_none() {
        return Err(ApiError::FailedPrecondition(format!(
            "segments/{id} is still computing its first membership; retry when its membership_state is CURRENT"
        )));
    }
    let mut members = store::members_page(&api.pool, &id, after, size + 1).await?;
    let more = members.len() as i64 > size;
    members.truncate(size as usize);
    let next_page_token = match members.last() {
        Some((last, _)) if more => paging::next_page_token(last, &filter),
        _ => String::new(),
    };
    Ok(pb::ListSegmentMembersResponse {
        members: members
            .into_iter()
            .map(|(c, t)| pb::SegmentMember { customer: format!("customers/{c}"), enter_time: ts(Some(t)) })
            .collect(),
        next_page_token,
        total_size: row.member_count,
    })
}

/// GetCustomerSegments: empty for a customer segmentation does not know.
pub(super) async fn get_customer_segments(
    api: &SegmentationApi,
    request: pb::GetCustomerSegmentsRequest,
) -> ApiResult<pb::CustomerSegments> {
    let pb::GetCustomerSegmentsRequest { customer } = request;
    let id = validate::resource_id(&customer, "customers", "customer")?;
    let survivor = store::survivor(&api.pool, id).await?;
    let rows = api.segments.customer_segments(survivor).await?;
    Ok(pb::CustomerSegments {
        customer: format!("customers/{survivor}"),
        memberships: rows
            .into_iter()
            .map(|m| pb::CustomerMembership {
                segment: format!("segments/{}", m.segment_id),
                display_name: m.display_name,
                enter_time: ts(Some(m.enter_time)),
            })
            .collect(),
    })
}

/// One customer's record for rule evaluation (zero counts and nulls when unknown).
async fn subject_of(api: &SegmentationApi, customer: &str) -> ApiResult<(Uuid, Option<store::MetricsRecord>)> {
    let id = validate::resource_id(customer, "customers", "customer")?;
    let survivor = store::survivor(&api.pool, id).await?;
    let rates = crate::events::live_from(&settings::load(&api.pool).await?).rates;
    let record = store::metrics_of(&api.pool, &[survivor], &rates).await?.pop();
    Ok((survivor, record))
}

/// EvaluateRule: one rule for one customer now.
pub(super) async fn evaluate_rule(
    api: &SegmentationApi,
    request: Request<pb::EvaluateRuleRequest>,
) -> ApiResult<pb::EvaluateRuleResponse> {
    let caller = caller(&request)?;
    let pb::EvaluateRuleRequest { customer, rule, explain } = request.into_inner();
    let (survivor, record) = subject_of(api, &customer).await?;
    let rule = parse_rule(&rule, "rule")?;
    check_profile_scope(&rule, &caller)?;
    let metrics = record.as_ref().map(|r| r.metrics.clone()).unwrap_or_default();
    let subject = Subject { metrics: &metrics, today: membership::today() };
    let (matched, explanation) = if explain {
        let (m, terms) = rule.explain(&subject);
        (m, terms.into_iter().map(term_to_proto).collect())
    } else {
        (rule.matches(&subject), Vec::new())
    };
    Ok(pb::EvaluateRuleResponse {
        customer: format!("customers/{survivor}"),
        matched,
        customer_known: record.is_some(),
        explanation,
        data_time: ts(record.map(|r| r.update_time)),
    })
}

/// BatchEvaluateRules: many rules for one customer; a bad rule is answered in its result.
pub(super) async fn batch_evaluate_rules(
    api: &SegmentationApi,
    request: Request<pb::BatchEvaluateRulesRequest>,
) -> ApiResult<pb::BatchEvaluateRulesResponse> {
    let caller = caller(&request)?;
    let pb::BatchEvaluateRulesRequest { customer, rules, explain } = request.into_inner();
    if rules.is_empty() || rules.len() > MAX_BATCH_RULES {
        return Err(ApiError::invalid("rules", format!("must hold 1 to {MAX_BATCH_RULES} rules")));
    }
    let mut keys = HashSet::new();
    for (i, r) in rules.iter().enumerate() {
        validate::required(&r.key, MAX_RULE_KEY, &format!("rules[{i}].key"))?;
        validate::max_chars(&r.rule, MAX_RULE_CHARS, &format!("rules[{i}].rule"))?;
        if !keys.insert(r.key.as_str()) {
            return Err(ApiError::invalid(format!("rules[{i}].key"), "repeats an earlier key"));
        }
    }
    let (survivor, record) = subject_of(api, &customer).await?;
    let metrics = record.as_ref().map(|r| r.metrics.clone()).unwrap_or_default();
    let subject = Subject { metrics: &metrics, today: membership::today() };
    let mut results = Vec::with_capacity(rules.len());
    for pb::KeyedRule { key, rule } in rules {
        let parsed = match Rule::parse(&rule) {
            Ok(p) => p,
            Err(errors) => {
                let errors = errors.iter().map(diagnostic_to_proto).collect();
                results.push(pb::KeyedRuleResult { key, matched: false, errors, explanation: Vec::new() });
                continue;
            }
        };
        check_profile_scope(&parsed, &caller)?;
        let (matched, explanation) = if explain {
            let (m, terms) = parsed.explain(&subject);
            (m, terms.into_iter().map(term_to_proto).collect())
        } else {
            (parsed.matches(&subject), Vec::new())
        };
        results.push(pb::KeyedRuleResult { key, matched, errors: Vec::new(), explanation });
    }
    Ok(pb::BatchEvaluateRulesResponse {
        customer: format!("customers/{survivor}"),
        customer_known: record.is_some(),
        results,
        data_time: ts(record.map(|r| r.update_time)),
    })
}
