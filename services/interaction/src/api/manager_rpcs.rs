//! Account manager RPCs: managers and their capacity, customers assigned to and taken
//! out of books, hand-overs, the rebalancing job, a manager's book and the key customers
//! not contacted for a while.

use std::collections::{HashMap, HashSet};

use chrono::{Duration, Utc};
use idic_platform::{
    ApiError, ApiResult,
    audit::{self, AuditRecord},
    context::Caller,
    idempotency,
    jobs::timestamp,
    paging,
    shared_rpcs::PlatformTables as _,
    validate::{self, Violations},
};
use idic_proto::{common::v1 as common, interaction::v1 as pb};
use prost::Message as _;
use sqlx::PgConnection;
use tonic::Request;
use uuid::Uuid;

use super::{InteractionApi, caller, convert};
use crate::{
    domain::books::{self, Load},
    store::managers::{self as store, ACTIVE, BookEntry, EntryFilter, INACTIVE, ManagerRow},
};
use idic_platform::customers::{Lookup, Reference};

/// Paths UpdateAccountManager may change.
const UPDATABLE: &[&str] = &["display_name", "email", "employee_id", "team", "capacity"];
/// Most customers in one explicit list.
const MAX_CUSTOMERS: usize = 1000;
/// The job kind of RebalanceBooks.
const REBALANCE_JOB: &str = "interaction.rebalance_books";
/// Interaction kinds that count as contact unless the request names others: all but
/// VIEW, BASKET_ADD, BASKET_REMOVE, MESSAGE_DELIVERED, MESSAGE_OPENED, MESSAGE_CLICKED.
const CONTACT_KINDS: &[i16] = &[1, 2, 6, 7, 8, 9, 13, 14, 15, 16, 17];
/// Open complaints listed per book entry.
const MAX_LISTED_COMPLAINTS: usize = 10;

fn manager_name(id: &str) -> String {
    format!("accountManagers/{id}")
}

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

fn is_manager_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The id in `accountManagers/{id}`.
fn manager_id(name: &str, field: &str) -> ApiResult<String> {
    match name.strip_prefix("accountManagers/") {
        Some(id) if is_manager_id(id) || Uuid::parse_str(id).is_ok() => Ok(id.to_owned()),
        _ => Err(ApiError::invalid(field, "must be accountManagers/{id}")),
    }
}

pub(super) fn manager_to_proto(m: &ManagerRow) -> pb::AccountManager {
    let ManagerRow {
        id,
        display_name,
        email,
        employee_id,
        team,
        capacity,
        state,
        created_at,
        updated_at,
        deactivated_at,
        version,
        book_size,
    } = m;
    pb::AccountManager {
        name: manager_name(id),
        display_name: display_name.clone(),
        email: email.clone(),
        employee_id: employee_id.clone(),
        team: team.clone(),
        capacity: *capacity,
        book_size: *book_size,
        over_capacity: book_size > capacity,
        state: i32::from(*state),
        create_time: Some(timestamp(*created_at)),
        update_time: Some(timestamp(*updated_at)),
        deactivate_time: deactivated_at.map(timestamp),
        etag: etag(*version),
    }
}

/// Checks the fields a caller may set (only the masked ones when `only` is given).
fn check_fields(m: &pb::AccountManager, only: Option<&[String]>, v: &mut Violations) {
    let wanted = |path: &str| only.is_none_or(|paths| paths.iter().any(|p| p == path));
    if wanted("display_name") {
        v.check(
            "",
            validate::required(&m.display_name, 200, "account_manager.display_name")
                .and_then(|()| validate::text(&m.display_name, 200, "account_manager.display_name")),
        );
    }
    if wanted("email") && !m.email.is_empty() {
        let ok = m.email.len() <= 320 && m.email.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
        if !ok || m.email.chars().any(char::is_whitespace) {
            v.add("account_manager.email", "is not an email address");
        }
    }
    if wanted("employee_id") {
        v.check("", validate::text(&m.employee_id, 128, "account_manager.employee_id"));
    }
    if wanted("team") {
        v.check("", validate::text(&m.team, 128, "account_manager.team"));
    }
    if wanted("capacity") && !(0..=100_000).contains(&m.capacity) {
        v.add("account_manager.capacity", "must be from 1 to 100000 (0 on create: the configured default)");
    }
}

fn required_request_id(value: &str, v: &mut Violations) -> Option<String> {
    if value.is_empty() {
        v.add("request_id", "is required");
        return None;
    }
    v.check("", validate::request_id(value, "request_id")).flatten().map(str::to_owned)
}

/// Replays the stored answer of a request id, or claims it; None when new.
async fn claim<T: prost::Message + Default>(
    tx: &mut PgConnection,
    method: &str,
    request_id: &str,
    hash: &[u8],
) -> ApiResult<Option<T>> {
    match idempotency::claim(tx, method, request_id, hash).await? {
        idempotency::Claim::Replay(bytes) => T::decode(bytes.as_slice())
            .map(Some)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored {method} answer: {e}"))),
        idempotency::Claim::New => Ok(None),
    }
}

/// CreateAccountManager.
pub(super) async fn create(
    api: &InteractionApi,
    request: Request<pb::CreateAccountManagerRequest>,
) -> ApiResult<pb::AccountManager> {
    let hash = idempotency::request_hash(&request.get_ref().encode_to_vec());
    let pb::CreateAccountManagerRequest { request_id, account_manager_id, account_manager } = request.into_inner();
    let mut v = Violations::new();
    let request_id = required_request_id(&request_id, &mut v);
    if !account_manager_id.is_empty() && !is_manager_id(&account_manager_id) {
        v.add("account_manager_id", "must be 1–63 characters of [a-z0-9-], starting with a letter");
    }
    let m = account_manager.unwrap_or_default();
    check_fields(&m, None, &mut v);
    v.finish()?;
    let Some(request_id) = request_id else { return Err(ApiError::invalid("request_id", "is required")) };
    let id = if account_manager_id.is_empty() { Uuid::new_v4().to_string() } else { account_manager_id };
    let capacity = if m.capacity == 0 { api.config().manager_default_capacity as i32 } else { m.capacity };
    let now = Utc::now();
    let row = ManagerRow {
        id,
        display_name: m.display_name,
        email: m.email,
        employee_id: m.employee_id,
        team: m.team,
        capacity,
        state: ACTIVE,
        created_at: now,
        updated_at: now,
        deactivated_at: None,
        version: 1,
        book_size: 0,
    };
    let mut tx = api.pool().begin().await?;
    if let Some(first) = claim::<pb::AccountManager>(&mut tx, "CreateAccountManager", &request_id, &hash).await? {
        return Ok(first);
    }
    store::insert(&mut tx, &row).await?;
    let answer = manager_to_proto(&row);
    idempotency::complete(&mut tx, "CreateAccountManager", &request_id, &answer.encode_to_vec()).await?;
    tx.commit().await?;
    Ok(answer)
}

/// UpdateAccountManager.
pub(super) async fn update(
    api: &InteractionApi,
    request: Request<pb::UpdateAccountManagerRequest>,
) -> ApiResult<pb::AccountManager> {
    let pb::UpdateAccountManagerRequest { account_manager, update_mask } = request.into_inner();
    let Some(new) = account_manager else { return Err(ApiError::invalid("account_manager", "is required")) };
    let paths = update_mask.map(|m| m.paths).unwrap_or_default();
    let mut v = Violations::new();
    let id = v.check("", manager_id(&new.name, "account_manager.name"));
    if paths.is_empty() {
        v.add("update_mask", "is required");
    }
    for path in &paths {
        if !UPDATABLE.contains(&path.as_str()) {
            v.add("update_mask", format!("{path:?} is not one of {}", UPDATABLE.join(", ")));
        }
    }
    check_fields(&new, Some(&paths), &mut v);
    if paths.iter().any(|p| p == "capacity") && new.capacity == 0 {
        v.add("account_manager.capacity", "must be from 1 to 100000");
    }
    v.finish()?;
    let Some(id) = id else { return Err(ApiError::invalid("account_manager.name", "is required")) };
    let mut tx = api.pool().begin().await?;
    let mut row = store::lock(&mut tx, std::slice::from_ref(&id))
        .await?
        .pop()
        .ok_or_else(|| ApiError::NotFound(manager_name(&id)))?;
    if !new.etag.is_empty() && new.etag != etag(row.version) {
        return Err(ApiError::Aborted("the account manager changed since it was read (stale etag)".into()));
    }
    if row.state != ACTIVE {
        return Err(ApiError::FailedPrecondition(format!("{} is inactive", manager_name(&id))));
    }
    for path in &paths {
        match path.as_str() {
            "display_name" => row.display_name.clone_from(&new.display_name),
            "email" => row.email.clone_from(&new.email),
            "employee_id" => row.employee_id.clone_from(&new.employee_id),
            "team" => row.team.clone_from(&new.team),
            "capacity" => row.capacity = new.capacity,
            _ => {}
        }
    }
    let stored = store::save(&mut tx, &row).await?;
    tx.commit().await?;
    Ok(manager_to_proto(&stored))
}

/// GetAccountManager.
pub(super) async fn get(
    api: &InteractionApi,
    request: Request<pb::GetAccountManagerRequest>,
) -> ApiResult<pb::AccountManager> {
    let pb::GetAccountManagerRequest { name } = request.into_inner();
    let id = manager_id(&name, "name")?;
    let mut conn = api.pool().acquire().await?;
    let row = store::get(&mut conn, &id).await?.ok_or_else(|| ApiError::NotFound(manager_name(&id)))?;
    Ok(manager_to_proto(&row))
}

/// ListAccountManagers, by display name.
pub(super) async fn list(
    api: &InteractionApi,
    request: Request<pb::ListAccountManagersRequest>,
) -> ApiResult<pb::ListAccountManagersResponse> {
    let pb::ListAccountManagersRequest { page_size, page_token, team, show_inactive, only_over_capacity } =
        request.into_inner();
    let size = paging::page_size(page_size, "page_size")?;
    validate::text(&team, 128, "team")?;
    let filter = format!("{team}|{show_inactive}|{only_over_capacity}");
    let after: Option<(String, String)> = paging::decode_page_token(&page_token, &filter, "page_token")?;
    let team = (!team.is_empty()).then_some(team.as_str());
    let rows = store::list(api.pool(), team, show_inactive, only_over_capacity, after, i64::from(size) + 1).await?;
    let has_more = rows.len() > size as usize;
    let rows: Vec<ManagerRow> = rows.into_iter().take(size as usize).collect();
    let next_page_token = match (has_more, rows.last()) {
        (true, Some(last)) => paging::next_page_token(&(last.display_name.clone(), last.id.clone()), &filter),
        _ => String::new(),
    };
    Ok(pb::ListAccountManagersResponse {
        account_managers: rows.iter().map(manager_to_proto).collect(),
        next_page_token,
    })
}

/// Moves `customers` out of `from`'s book: to `to` when given, else spread over the
/// other active managers with spare capacity, least utilised first (those of
/// `prefer_team` first when it is set and they have room). Answers the receivers and
/// their counts. FAILED_PRECONDITION when capacity does not suffice and `allow_over`
/// is unset; nothing has moved then.
async fn hand_over_in_tx(
    tx: &mut PgConnection,
    from: &str,
    customers: &[Uuid],
    to: Option<&ManagerRow>,
    allow_over: bool,
    prefer_team: Option<&str>,
) -> ApiResult<Vec<(String, i64)>> {
    if customers.is_empty() {
        return Ok(Vec::new());
    }
    let n = customers.len() as u32;
    let plan: Vec<(String, u32)> = match to {
        Some(to) => {
            if !allow_over && (to.book_size + n as i32) > to.capacity {
                return Err(ApiError::FailedPrecondition(format!(
                    "{} has room for {} more customers, not {n}",
                    manager_name(&to.id),
                    (to.capacity - to.book_size).max(0)
                )));
            }
            vec![(to.id.clone(), n)]
        }
        None => {
            let receivers: Vec<ManagerRow> =
                store::lock_active(tx, None).await?.into_iter().filter(|m| m.id != from).collect();
            let plan_over = |candidates: &[&ManagerRow], allow: bool| {
                let loads: Vec<Load> = candidates
                    .iter()
                    .map(|m| Load { size: m.book_size.max(0) as u32, capacity: m.capacity.max(1) as u32 })
                    .collect();
                books::spread(n, &loads, allow)
                    .map(|given| candidates.iter().zip(given).map(|(m, g)| (m.id.clone(), g)).collect::<Vec<_>>())
            };
            let same_team: Vec<&ManagerRow> =
                receivers.iter().filter(|m| prefer_team.is_some_and(|t| !t.is_empty() && m.team == t)).collect();
            let everyone: Vec<&ManagerRow> = receivers.iter().collect();
            plan_over(&same_team, false)
                .or_else(|| plan_over(&everyone, false))
                .or_else(|| if allow_over { plan_over(&everyone, true) } else { None })
                .ok_or_else(|| {
                    ApiError::FailedPrecondition(format!(
                        "the other active managers have too little spare capacity for {n} customers"
                    ))
                })?
        }
    };
    let mut rest = customers;
    let mut receivers = Vec::new();
    for (manager, count) in plan.into_iter().filter(|(_, c)| *c > 0) {
        let (now, later) = rest.split_at(count as usize);
        store::put_in_book(tx, now, &manager).await?;
        receivers.push((manager, i64::from(count)));
        rest = later;
    }
    Ok(receivers)
}

fn audit_hand_over<'a>(
    caller: &'a Caller,
    action: &'a str,
    resource: &'a str,
    reason: &'a str,
    receivers: &[(String, i64)],
) -> AuditRecord<'a> {
    let detail: Vec<serde_json::Value> =
        receivers.iter().map(|(m, c)| serde_json::json!({ "account_manager": manager_name(m), "count": c })).collect();
    AuditRecord { caller: &caller.name, action, resource, reason, detail: serde_json::json!({ "receivers": detail }) }
}

fn receivers_to_proto(receivers: &[(String, i64)]) -> Vec<pb::ManagerMoveCount> {
    receivers.iter().map(|(m, c)| pb::ManagerMoveCount { account_manager: manager_name(m), count: *c }).collect()
}

/// DeleteAccountManager: hands the book over, then deactivates, in one transaction.
pub(super) async fn delete(
    api: &InteractionApi,
    request: Request<pb::DeleteAccountManagerRequest>,
) -> ApiResult<pb::AccountManager> {
    let caller = caller(&request)?;
    let pb::DeleteAccountManagerRequest { name, hand_over_to, allow_over_capacity, reason } = request.into_inner();
    let mut v = Violations::new();
    let id = v.check("", manager_id(&name, "name"));
    let to = if hand_over_to.is_empty() { None } else { v.check("", manager_id(&hand_over_to, "hand_over_to")) };
    if id.is_some() && id == to {
        v.add("hand_over_to", "must be another manager than the one leaving");
    }
    v.check("", validate::text(&reason, 1000, "reason"));
    v.finish()?;
    let Some(id) = id else { return Err(ApiError::invalid("name", "is required")) };
    let mut tx = api.pool().begin().await?;
    let mut ids = vec![id.clone()];
    ids.extend(to.clone());
    let locked = store::lock(&mut tx, &ids).await?;
    let mut row = locked.iter().find(|m| m.id == id).cloned().ok_or_else(|| ApiError::NotFound(manager_name(&id)))?;
    if row.state != ACTIVE {
        return Err(ApiError::FailedPrecondition(format!("{} is already inactive", manager_name(&id))));
    }
    let receiver = match &to {
        Some(to) => {
            let r = locked.iter().find(|m| m.id == *to).ok_or_else(|| ApiError::NotFound(manager_name(to)))?;
            if r.state != ACTIVE {
                return Err(ApiError::FailedPrecondition(format!("{} is inactive", manager_name(to))));
            }
            Some(r)
        }
        None => None,
    };
    let book = store::newest_in_book(&mut tx, &id, i64::MAX).await?;
    let receivers =
        hand_over_in_tx(&mut tx, &id, &book, receiver, allow_over_capacity, Some(row.team.as_str())).await?;
    row.state = INACTIVE;
    row.deactivated_at = Some(Utc::now());
    let stored = store::save(&mut tx, &row).await?;
    let resource = manager_name(&id);
    audit::record(&mut tx, audit_hand_over(&caller, "DeleteAccountManager", &resource, &reason, &receivers)).await?;
    tx.commit().await?;
    Ok(manager_to_proto(&stored))
}

fn customer_list(list: Option<&pb::CustomerIdList>, field: &str) -> ApiResult<Vec<Uuid>> {
    let Some(pb::CustomerIdList { customer_ids }) = list else { return Err(ApiError::invalid(field, "is required")) };
    if customer_ids.is_empty() || customer_ids.len() > MAX_CUSTOMERS {
        return Err(ApiError::invalid(
            format!("{field}.customer_ids"),
            format!("must hold 1 to {MAX_CUSTOMERS} customer ids"),
        ));
    }
    let mut v = Violations::new();
    let ids: Vec<Uuid> = customer_ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| v.check("", validate::uuid(id, &format!("{field}.customer_ids[{i}]"))))
        .collect();
    v.finish()?;
    Ok(ids)
}

/// AssignCustomers (explicit lists; a segment's members are not assigned yet).
pub(super) async fn assign(
    api: &InteractionApi,
    request: Request<pb::AssignCustomersRequest>,
) -> ApiResult<pb::AssignCustomersResponse> {
    let hash = idempotency::request_hash(&request.get_ref().encode_to_vec());
    let pb::AssignCustomersRequest { request_id, account_manager, selection, reassign, allow_over_capacity } =
        request.into_inner();
    let mut v = Violations::new();
    let request_id = required_request_id(&request_id, &mut v);
    let target =
        if account_manager.is_empty() { None } else { v.check("", manager_id(&account_manager, "account_manager")) };
    let customers = match &selection {
        Some(pb::assign_customers_request::Selection::Customers(list)) => {
            v.check("", customer_list(Some(list), "customers"))
        }
        Some(pb::assign_customers_request::Selection::Segment(_)) => {
            v.finish()?;
            return Err(ApiError::Unimplemented("assigning a segment's members is not available yet".into()));
        }
        None => {
            v.add("selection", "is required: customers or segment");
            None
        }
    };
    v.finish()?;
    let (Some(request_id), Some(customers)) = (request_id, customers) else {
        return Err(ApiError::invalid("request_id", "is required"));
    };
    // Merged ids count as their survivor; unknown ones are counted, not assigned.
    let requested = customers.len() as i64;
    let references: Vec<Reference> = customers.iter().map(|c| Reference::Id(*c)).collect();
    let lookups: Vec<Lookup<'_>> = references.iter().map(|r| Lookup { reference: r, create: false }).collect();
    let mut found = Vec::new();
    let mut not_found = 0;
    for answer in api.customers().resolve_many(&lookups).await {
        match answer {
            Ok(id) => found.push(id),
            Err(ApiError::NotFound(_)) => not_found += 1,
            Err(e) => return Err(e),
        }
    }
    let mut seen = HashSet::new();
    found.retain(|c| seen.insert(*c));

    let mut tx = api.pool().begin().await?;
    if let Some(first) = claim::<pb::AssignCustomersResponse>(&mut tx, "AssignCustomers", &request_id, &hash).await? {
        return Ok(first);
    }
    let mut summary = pb::AssignmentSummary { requested, not_found, ..Default::default() };
    let current = store::current_books(&mut tx, &found).await?;
    let receivers: Vec<ManagerRow> = match &target {
        Some(id) => {
            let m = store::lock(&mut tx, std::slice::from_ref(id))
                .await?
                .pop()
                .ok_or_else(|| ApiError::NotFound(manager_name(id)))?;
            if m.state != ACTIVE {
                return Err(ApiError::FailedPrecondition(format!("{} is inactive", manager_name(id))));
            }
            vec![m]
        }
        None => {
            let all = store::lock_active(&mut tx, None).await?;
            if all.is_empty() {
                return Err(ApiError::FailedPrecondition("there is no active account manager".into()));
            }
            all
        }
    };
    let mut candidates = Vec::new();
    let mut moving = HashSet::new();
    for customer in &found {
        match current.get(customer) {
            Some(m) if target.as_ref() == Some(m) => summary.already_assigned += 1,
            Some(_) if !reassign => summary.skipped_assigned_elsewhere += 1,
            Some(_) => {
                moving.insert(*customer);
                candidates.push(*customer);
            }
            None => candidates.push(*customer),
        }
    }
    let loads: Vec<Load> = receivers
        .iter()
        .map(|m| Load { size: m.book_size.max(0) as u32, capacity: m.capacity.max(1) as u32 })
        .collect();
    let placeable = if allow_over_capacity {
        candidates.len() as u32
    } else {
        (candidates.len() as u32).min(loads.iter().map(|l| l.spare()).sum())
    };
    let given = books::spread(placeable, &loads, allow_over_capacity).unwrap_or_else(|| vec![0; loads.len()]);
    let mut rest = &candidates[..placeable as usize];
    for (manager, count) in receivers.iter().zip(given) {
        let (now, later) = rest.split_at(count as usize);
        store::put_in_book(&mut tx, now, &manager.id).await?;
        rest = later;
    }
    let placed = &candidates[..placeable as usize];
    summary.moved = placed.iter().filter(|c| moving.contains(c)).count() as i64;
    summary.assigned = placed.len() as i64 - summary.moved;
    summary.refused_over_capacity = (candidates.len() - placed.len()) as i64;
    let answer =
        pb::AssignCustomersResponse { outcome: Some(pb::assign_customers_response::Outcome::Summary(summary)) };
    idempotency::complete(&mut tx, "AssignCustomers", &request_id, &answer.encode_to_vec()).await?;
    tx.commit().await?;
    Ok(answer)
}

/// UnassignCustomers.
pub(super) async fn unassign(
    api: &InteractionApi,
    request: Request<pb::UnassignCustomersRequest>,
) -> ApiResult<pb::UnassignCustomersResponse> {
    let pb::UnassignCustomersRequest { customers } = request.into_inner();
    let mut ids = customer_list(customers.as_ref(), "customers")?;
    ids.sort_unstable();
    ids.dedup();
    let mut tx = api.pool().begin().await?;
    let unassigned = store::take_out(&mut tx, &ids).await? as i64;
    tx.commit().await?;
    Ok(pb::UnassignCustomersResponse { unassigned, not_assigned: ids.len() as i64 - unassigned })
}

/// HandOverBook.
pub(super) async fn hand_over(
    api: &InteractionApi,
    request: Request<pb::HandOverBookRequest>,
) -> ApiResult<pb::HandOverBookResponse> {
    let caller = caller(&request)?;
    let hash = idempotency::request_hash(&request.get_ref().encode_to_vec());
    let pb::HandOverBookRequest {
        request_id,
        from_account_manager,
        to_account_manager,
        customers,
        allow_over_capacity,
        reason,
    } = request.into_inner();
    let mut v = Violations::new();
    let request_id = required_request_id(&request_id, &mut v);
    let from = v.check("", manager_id(&from_account_manager, "from_account_manager"));
    let to = if to_account_manager.is_empty() {
        None
    } else {
        v.check("", manager_id(&to_account_manager, "to_account_manager"))
    };
    if from.is_some() && from == to {
        v.add("to_account_manager", "must differ from from_account_manager");
    }
    let listed = if customers.is_some() { v.check("", customer_list(customers.as_ref(), "customers")) } else { None };
    v.check("", validate::text(&reason, 1000, "reason"));
    v.finish()?;
    let (Some(request_id), Some(from)) = (request_id, from) else {
        return Err(ApiError::invalid("from_account_manager", "is required"));
    };
    let mut tx = api.pool().begin().await?;
    if let Some(first) = claim::<pb::HandOverBookResponse>(&mut tx, "HandOverBook", &request_id, &hash).await? {
        return Ok(first);
    }
    let mut ids = vec![from.clone()];
    ids.extend(to.clone());
    let locked = store::lock(&mut tx, &ids).await?;
    if !locked.iter().any(|m| m.id == from) {
        return Err(ApiError::NotFound(manager_name(&from)));
    }
    let receiver = match &to {
        Some(to) => {
            let r = locked.iter().find(|m| m.id == *to).ok_or_else(|| ApiError::NotFound(manager_name(to)))?;
            if r.state != ACTIVE {
                return Err(ApiError::FailedPrecondition(format!("{} is inactive", manager_name(to))));
            }
            Some(r)
        }
        None => None,
    };
    let moving = match listed {
        Some(mut listed) => {
            listed.sort_unstable();
            listed.dedup();
            let held: HashSet<Uuid> = store::in_book(&mut tx, &from, &listed).await?.into_iter().collect();
            if let Some(missing) = listed.iter().find(|c| !held.contains(c)) {
                return Err(ApiError::NotFound(format!("customers/{missing} in {}", manager_name(&from))));
            }
            listed
        }
        None => store::newest_in_book(&mut tx, &from, i64::MAX).await?,
    };
    let receivers = hand_over_in_tx(&mut tx, &from, &moving, receiver, allow_over_capacity, None).await?;
    let resource = manager_name(&from);
    audit::record(&mut tx, audit_hand_over(&caller, "HandOverBook", &resource, &reason, &receivers)).await?;
    let answer = pb::HandOverBookResponse { moved: moving.len() as i64, receivers: receivers_to_proto(&receivers) };
    idempotency::complete(&mut tx, "HandOverBook", &request_id, &answer.encode_to_vec()).await?;
    tx.commit().await?;
    Ok(answer)
}

/// RebalanceBooks: starts the job and answers it; the job runs in this process.
pub(super) async fn rebalance(
    api: &InteractionApi,
    request: Request<pb::RebalanceBooksRequest>,
) -> ApiResult<common::Job> {
    let caller = caller(&request)?;
    let hash = idempotency::request_hash(&request.get_ref().encode_to_vec());
    let pb::RebalanceBooksRequest { request_id, account_managers, team, dry_run } = request.into_inner();
    let mut v = Violations::new();
    let request_id = required_request_id(&request_id, &mut v);
    let only: Vec<String> = account_managers
        .iter()
        .enumerate()
        .filter_map(|(i, name)| v.check("", manager_id(name, &format!("account_managers[{i}]"))))
        .collect();
    v.check("", validate::text(&team, 128, "team"));
    v.finish()?;
    let Some(request_id) = request_id else { return Err(ApiError::invalid("request_id", "is required")) };
    let mut tx = api.pool().begin().await?;
    if let Some(first) = claim::<common::Job>(&mut tx, "RebalanceBooks", &request_id, &hash).await? {
        return Ok(first);
    }
    if !only.is_empty() {
        let found = store::lock(&mut tx, &only).await?;
        if let Some(missing) = only.iter().find(|id| !found.iter().any(|m| m.id == **id)) {
            return Err(ApiError::NotFound(manager_name(missing)));
        }
    }
    let running: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM jobs WHERE kind = $1 AND state IN ('queued', 'running'))")
            .bind(REBALANCE_JOB)
            .fetch_one(&mut *tx)
            .await?;
    if running {
        return Err(ApiError::FailedPrecondition("another rebalancing job is running".into()));
    }
    let params = serde_json::json!({ "account_managers": only, "team": team, "dry_run": dry_run });
    let id = api.jobs().create(REBALANCE_JOB, &caller.name, params).await?;
    let job = api.jobs().get(common::GetJobRequest { name: format!("jobs/{id}") }).await?;
    idempotency::complete(&mut tx, "RebalanceBooks", &request_id, &job.encode_to_vec()).await?;
    tx.commit().await?;
    let (pool, jobs, caller_name) = (api.pool().clone(), api.jobs().clone(), caller.name.clone());
    tokio::spawn(async move {
        let team = (!team.is_empty()).then_some(team);
        let outcome = run_rebalance(&pool, &jobs, id, &only, team.as_deref(), dry_run, &caller_name).await;
        if let Err(error) = outcome {
            tracing::warn!(%error, job = %id, "rebalancing failed");
            let _ = jobs.fail(id, "rebalancing failed; see the service log").await;
        }
    });
    Ok(job)
}

async fn run_rebalance(
    pool: &sqlx::PgPool,
    jobs: &idic_platform::jobs::Jobs,
    job: Uuid,
    only: &[String],
    team: Option<&str>,
    dry_run: bool,
    caller: &str,
) -> ApiResult<()> {
    jobs.start(job, 0).await?;
    let mut tx = pool.begin().await?;
    let managers: Vec<ManagerRow> = store::lock_active(&mut tx, team)
        .await?
        .into_iter()
        .filter(|m| only.is_empty() || only.contains(&m.id))
        .collect();
    let loads: Vec<Load> =
        managers.iter().map(|m| Load { size: m.book_size.max(0) as u32, capacity: m.capacity.max(1) as u32 }).collect();
    let plan = books::rebalance(&loads);
    let moved: u32 = plan.moves.iter().map(|m| m.count).sum();
    if !dry_run {
        // Each giver's most recently assigned customers go, so long relationships stay.
        let mut taken: HashMap<usize, Vec<Uuid>> = HashMap::new();
        for m in &plan.moves {
            let from = &managers[m.from];
            let pool = match taken.get_mut(&m.from) {
                Some(p) => p,
                None => {
                    let surplus: u32 = plan.moves.iter().filter(|x| x.from == m.from).map(|x| x.count).sum();
                    let ids = store::newest_in_book(&mut tx, &from.id, i64::from(surplus)).await?;
                    taken.entry(m.from).or_insert(ids)
                }
            };
            let batch: Vec<Uuid> = pool.drain(..(m.count as usize).min(pool.len())).collect();
            store::put_in_book(&mut tx, &batch, &managers[m.to].id).await?;
        }
        audit::record(
            &mut tx,
            AuditRecord {
                caller,
                action: "RebalanceBooks",
                resource: &format!("jobs/{job}"),
                reason: "",
                detail: serde_json::json!({ "moved": moved, "remaining_over_capacity": plan.remaining_over_capacity }),
            },
        )
        .await?;
    }
    tx.commit().await?;
    let per_manager: Vec<serde_json::Value> = managers
        .iter()
        .zip(loads.iter().zip(&plan.after))
        .map(|(m, (before, after))| {
            serde_json::json!({ "account_manager": manager_name(&m.id), "before": before.size, "after": after })
        })
        .collect();
    jobs.succeed(
        job,
        serde_json::json!({
            "moved": moved,
            "remaining_over_capacity": plan.remaining_over_capacity,
            "dry_run": dry_run,
            "managers": per_manager,
        }),
    )
    .await
}

fn contact_summary(entry: &BookEntry) -> Option<pb::ContactSummary> {
    entry.last_contact.as_ref().map(|c| pb::ContactSummary {
        interaction: convert::interaction_name(c.id),
        occur_time: Some(timestamp(c.occurred_at)),
        channel: i32::from(c.channel),
        kind: i32::from(c.kind),
        direction: i32::from(c.direction),
    })
}

fn offset_token(token: &str, filter: &str) -> ApiResult<i64> {
    let offset: Option<i64> = paging::decode_page_token(token, filter, "page_token")?;
    Ok(offset.unwrap_or(0).max(0))
}

/// GetBook.
pub(super) async fn get_book(
    api: &InteractionApi,
    request: Request<pb::GetBookRequest>,
) -> ApiResult<pb::GetBookResponse> {
    let pb::GetBookRequest { account_manager, page_size, page_token, order_by, only_with_open_complaints } =
        request.into_inner();
    let mut v = Violations::new();
    let id = v.check("", manager_id(&account_manager, "account_manager"));
    let size = v.check("", paging::page_size(page_size, "page_size")).unwrap_or(paging::DEFAULT_PAGE_SIZE);
    let by_last_contact = match pb::BookOrder::try_from(order_by) {
        Ok(pb::BookOrder::LastContactAsc) => true,
        Ok(_) => false,
        Err(_) => {
            v.add("order_by", format!("{order_by} is not a BookOrder"));
            false
        }
    };
    v.finish()?;
    let Some(id) = id else { return Err(ApiError::invalid("account_manager", "is required")) };
    let mut conn = api.pool().acquire().await?;
    let manager = store::get(&mut conn, &id).await?.ok_or_else(|| ApiError::NotFound(manager_name(&id)))?;
    drop(conn);
    let fingerprint = format!("{id}|{by_last_contact}|{only_with_open_complaints}");
    let offset = offset_token(&page_token, &fingerprint)?;
    let filter = EntryFilter {
        manager: Some(id),
        kinds: CONTACT_KINDS.to_vec(),
        channels: Vec::new(),
        only_with_open_complaints,
        not_contacted_since: None,
        by_last_contact,
    };
    let (entries, total) = store::entries(api.pool(), &filter, offset, i64::from(size)).await?;
    let next = offset + entries.len() as i64;
    let next_page_token = if next < total { paging::next_page_token(&next, &fingerprint) } else { String::new() };
    Ok(pb::GetBookResponse {
        account_manager: Some(manager_to_proto(&manager)),
        entries: entries
            .iter()
            .map(|e| pb::BookEntry {
                customer_id: e.customer_id.to_string(),
                assign_time: Some(timestamp(e.assigned_at)),
                last_contact: contact_summary(e),
                open_complaint_count: e.open_complaints.len() as i32,
                open_complaints: e
                    .open_complaints
                    .iter()
                    .take(MAX_LISTED_COMPLAINTS)
                    .map(|c| format!("complaints/{c}"))
                    .collect(),
            })
            .collect(),
        next_page_token,
        total_size: total as i32,
    })
}

/// ListNeglectedCustomers: key customers whose last counted contact is older than the
/// period, never contacted first.
pub(super) async fn neglected(
    api: &InteractionApi,
    request: Request<pb::ListNeglectedCustomersRequest>,
) -> ApiResult<pb::ListNeglectedCustomersResponse> {
    let pb::ListNeglectedCustomersRequest {
        account_manager,
        not_contacted_within,
        channels,
        kinds,
        page_size,
        page_token,
    } = request.into_inner();
    let mut v = Violations::new();
    let manager =
        if account_manager.is_empty() { None } else { v.check("", manager_id(&account_manager, "account_manager")) };
    let within = match not_contacted_within {
        Some(d) if d.nanos == 0 && (86_400..=3650 * 86_400).contains(&d.seconds) => Some(d.seconds),
        Some(_) => {
            v.add("not_contacted_within", "must be whole seconds from 1 day to 3650 days");
            None
        }
        None => {
            v.add("not_contacted_within", "is required");
            None
        }
    };
    let channels: Vec<i16> = channels
        .iter()
        .enumerate()
        .filter_map(|(i, c)| v.check("", convert::channel_from_proto(*c, &format!("channels[{i}]"))))
        .collect();
    let kinds: Vec<i16> = kinds
        .iter()
        .enumerate()
        .filter_map(|(i, k)| v.check("", convert::kind_from_proto(*k, &format!("kinds[{i}]"))).map(|k| k.code()))
        .collect();
    let size = v.check("", paging::page_size(page_size, "page_size")).unwrap_or(paging::DEFAULT_PAGE_SIZE);
    v.finish()?;
    let Some(within) = within else { return Err(ApiError::invalid("not_contacted_within", "is required")) };
    if let Some(id) = &manager {
        let mut conn = api.pool().acquire().await?;
        store::get(&mut conn, id).await?.ok_or_else(|| ApiError::NotFound(manager_name(id)))?;
    }
    let fingerprint = format!("{manager:?}|{within}|{channels:?}|{kinds:?}");
    let offset = offset_token(&page_token, &fingerprint)?;
    let filter = EntryFilter {
        manager,
        kinds: if kinds.is_empty() { CONTACT_KINDS.to_vec() } else { kinds },
        channels,
        only_with_open_complaints: false,
        not_contacted_since: Some(Utc::now() - Duration::seconds(within)),
        by_last_contact: true,
    };
    let (entries, total) = store::entries(api.pool(), &filter, offset, i64::from(size)).await?;
    let next = offset + entries.len() as i64;
    let next_page_token = if next < total { paging::next_page_token(&next, &fingerprint) } else { String::new() };
    Ok(pb::ListNeglectedCustomersResponse {
        customers: entries
            .iter()
            .map(|e| pb::NeglectedCustomer {
                customer_id: e.customer_id.to_string(),
                account_manager: manager_name(&e.manager_id),
                assign_time: Some(timestamp(e.assigned_at)),
                last_contact: contact_summary(e),
                open_complaint_count: e.open_complaints.len() as i32,
            })
            .collect(),
        next_page_token,
        total_size: total as i32,
    })
}
