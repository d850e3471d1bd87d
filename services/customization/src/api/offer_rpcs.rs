//! Offer RPCs: CreateOffer, GetOffer, UpdateOffer (field mask, etag), ListOffers,
//! NextBestOffer (eligibility by segmentation's rule language, caps, propensity, contact policy
//! and consent from interaction) and RecordOfferResponse (published on `offer.responded`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use futures::future::join_all;
use idic_platform::{
    ApiError, ApiResult, context,
    customers::{Lookup, Reference},
    events,
    jobs::timestamp,
    paging,
    validate::{self, Violations},
};
use idic_proto::{common::v1 as common, customization::v1 as pb, interaction::v1 as ipb, segmentation::v1 as spb};
use prost::Message as _;
use tonic::Code;
use uuid::Uuid;

use super::{
    CustomizationApi,
    catalog_rpcs::product_id,
    shared::{self, interaction, refusal_of, segmentation},
};
use crate::{
    domain::{
        catalog::CurrencyCode,
        offers::{self as domain, CapOutcome, Caps, CustomerHistory},
    },
    store::{
        self,
        offers::{self as ostore, OfferFilter, OfferRow},
    },
};

/// Stream of offer responses (published).
pub const OFFER_RESPONDED: &str = "offer.responded";
/// Paths UpdateOffer may change.
const UPDATABLE: [&str; 13] = [
    "display_name",
    "description",
    "eligibility_rule",
    "products",
    "value",
    "business_value",
    "channels",
    "validity",
    "per_customer_cap",
    "purpose",
    "template",
    "priority",
    "state",
];

fn time_of(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

fn seconds_of(d: &prost_types::Duration) -> Option<i64> {
    (d.seconds >= 0 && d.nanos >= 0).then_some(d.seconds)
}

fn offer_id(name: &str, field: &str) -> ApiResult<String> {
    match name.strip_prefix("offers/") {
        Some(id) if shared::is_client_id(id) || Uuid::parse_str(id).is_ok() => Ok(id.to_owned()),
        _ => Err(ApiError::invalid(field, "must be offers/{offer_id}")),
    }
}

fn money_ok(m: Option<&common::Money>, field: &str, v: &mut Violations) -> Option<common::Money> {
    let Some(m) = m else {
        v.add(field, "is required");
        return None;
    };
    if CurrencyCode::parse(&m.currency_code).is_none() {
        v.add(format!("{field}.currency_code"), "must be an ISO 4217 code");
    }
    if m.amount_minor < 0 {
        v.add(format!("{field}.amount_minor"), "must not be negative");
    }
    Some(m.clone())
}

/// The columns of a checked offer.
struct Checked {
    channels: Vec<i16>,
    products: Vec<String>,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
}

/// Checks every field of `o` (paths under `offer.`) into `v`, then, when all are well formed,
/// the rule with segmentation and the products in the catalog.
async fn check_offer(api: &CustomizationApi, o: &pb::Offer, mut v: Violations) -> ApiResult<Checked> {
    v.check("", validate::required(&o.display_name, 200, "offer.display_name"));
    v.check("", validate::required(&o.description, 2000, "offer.description"));
    v.check("", validate::text(&o.eligibility_rule, 4000, "offer.eligibility_rule"));
    if o.products.len() > 100 {
        v.add("offer.products", "at most 100");
    }
    let products: Vec<String> = o
        .products
        .iter()
        .enumerate()
        .filter_map(|(i, p)| v.check("", product_id(p, &format!("offer.products[{i}]"))))
        .collect();
    let mut free_product = None;
    match o.value.as_ref().and_then(|x| x.benefit.as_ref()) {
        None => v.add("offer.value", "is required: one benefit"),
        Some(pb::offer_value::Benefit::DiscountBasisPoints(bp)) if !(1..=10_000).contains(bp) => {
            v.add("offer.value.discount_basis_points", "must be between 1 and 10000")
        }
        Some(pb::offer_value::Benefit::DiscountAmount(m) | pb::offer_value::Benefit::FixedPrice(m)) => {
            let field = if matches!(
                o.value.as_ref().and_then(|x| x.benefit.as_ref()),
                Some(pb::offer_value::Benefit::DiscountAmount(_))
            ) {
                "offer.value.discount_amount"
            } else {
                "offer.value.fixed_price"
            };
            money_ok(Some(m), field, &mut v);
        }
        Some(pb::offer_value::Benefit::FreeProduct(p)) => {
            free_product = v.check("", product_id(p, "offer.value.free_product"));
        }
        Some(_) => {}
    }
    money_ok(o.business_value.as_ref(), "offer.business_value", &mut v);
    if o.channels.is_empty() || o.channels.len() > 11 {
        v.add("offer.channels", "must hold 1 to 11 channels");
    }
    let mut seen = HashSet::new();
    for (i, c) in o.channels.iter().enumerate() {
        match common::Channel::try_from(*c) {
            Ok(common::Channel::Unspecified) | Err(_) => {
                v.add(format!("offer.channels[{i}]"), "must be a known channel")
            }
            Ok(_) if !seen.insert(*c) => v.add(format!("offer.channels[{i}]"), "is a duplicate"),
            Ok(_) => {}
        }
    }
    let (mut valid_from, mut valid_until) = (None, None);
    if let Some(common::Period { start_time, end_time }) = &o.validity {
        valid_from = start_time.as_ref().and_then(|t| {
            v.check("", time_of(t).ok_or_else(|| ApiError::invalid("offer.validity.start_time", "is not a valid time")))
        });
        valid_until = end_time.as_ref().and_then(|t| {
            v.check("", time_of(t).ok_or_else(|| ApiError::invalid("offer.validity.end_time", "is not a valid time")))
        });
        if let (Some(a), Some(b)) = (valid_from, valid_until)
            && b <= a
        {
            v.add("offer.validity.end_time", "must be after start_time");
        }
    }
    if let Some(c) = &o.per_customer_cap {
        let pb::PerCustomerCap { max_presentations, max_acceptances, window, cooldown_after_refusal } = c;
        if !(0..=1000).contains(max_presentations) {
            v.add("offer.per_customer_cap.max_presentations", "must be between 0 and 1000");
        }
        if !(0..=1000).contains(max_acceptances) {
            v.add("offer.per_customer_cap.max_acceptances", "must be between 0 and 1000");
        }
        if window.as_ref().is_some_and(|w| seconds_of(w).is_none_or(|s| s < 1)) {
            v.add("offer.per_customer_cap.window", "must be positive");
        }
        if cooldown_after_refusal.as_ref().is_some_and(|w| seconds_of(w).is_none_or(|s| s > 366 * 86_400)) {
            v.add("offer.per_customer_cap.cooldown_after_refusal", "must be between 0 and 1 year");
        }
    }
    if common::ConsentPurpose::try_from(o.purpose).is_err() {
        v.add("offer.purpose", "must be a known consent purpose");
    }
    if !(0..=1000).contains(&o.priority) {
        v.add("offer.priority", "must be between 0 and 1000");
    }
    if pb::OfferState::try_from(o.state).is_err() {
        v.add("offer.state", "must be a known offer state");
    }
    if !o.template.is_empty() && o.template.strip_prefix("templates/").is_none_or(str::is_empty) {
        v.add("offer.template", "must be templates/{template_id}");
    }
    v.finish()?;
    if !o.eligibility_rule.trim().is_empty() {
        let mut segmentation = segmentation(api)?;
        let checked = context::as_service(
            segmentation.validate_rule(spb::ValidateRuleRequest { rule: o.eligibility_rule.clone() }),
        )
        .await
        .map_err(|s| peer_error("segmentation", &s))?
        .into_inner();
        if !checked.valid {
            let errors: Vec<String> = checked
                .diagnostics
                .iter()
                .filter(|d| d.severity == spb::RuleDiagnosticSeverity::Error as i32)
                .map(|d| d.message.clone())
                .collect();
            return Err(ApiError::invalid("offer.eligibility_rule", errors.join("; ")));
        }
    }
    for p in products.iter().chain(free_product.iter()) {
        if store::product(&api.pool, p).await?.is_none() {
            return Err(ApiError::NotFound(format!("products/{p}")));
        }
    }
    if let Some(template) = o.template.strip_prefix("templates/") {
        let mut conn = api.pool.acquire().await?;
        if store::templates::get(&mut conn, template).await?.is_none() {
            return Err(ApiError::NotFound(o.template.clone()));
        }
    }
    let channels = o.channels.iter().map(|c| *c as i16).collect();
    Ok(Checked { channels, products, valid_from, valid_until })
}

fn peer_error(peer: &str, s: &tonic::Status) -> ApiError {
    match s.code() {
        Code::InvalidArgument => ApiError::invalid("", format!("{peer}: {}", s.message())),
        _ => ApiError::Unavailable(format!("{peer}: {}", s.message())),
    }
}

/// The body stored: the offer without its name and output-only fields.
fn body_of(o: &pb::Offer) -> Vec<u8> {
    pb::Offer {
        name: String::new(),
        stats: None,
        create_time: None,
        update_time: None,
        etag: String::new(),
        ..o.clone()
    }
    .encode_to_vec()
}

fn to_proto(row: &OfferRow) -> ApiResult<pb::Offer> {
    let mut o = pb::Offer::decode(row.body.as_slice()).map_err(|e| ApiError::Internal(e.into()))?;
    o.name = format!("offers/{}", row.offer_id);
    o.state = i32::from(row.state);
    o.stats = Some(pb::OfferStats {
        presented: row.presented,
        accepted: row.accepted,
        refused: row.refused,
        acceptance_rate: if row.presented > 0 { row.accepted as f64 / row.presented as f64 } else { 0.0 },
    });
    o.create_time = Some(timestamp(row.create_time));
    o.update_time = Some(timestamp(row.update_time));
    o.etag = row.revision.to_string();
    Ok(o)
}

/// CreateOffer.
pub(super) async fn create(api: &CustomizationApi, request: pb::CreateOfferRequest) -> ApiResult<pb::Offer> {
    let pb::CreateOfferRequest { offer_id: wanted, offer, request_id } = request;
    let mut v = Violations::new();
    if !wanted.is_empty() && !shared::is_client_id(&wanted) {
        v.add("offer_id", "must match ^[a-z][a-z0-9-]{0,62}$");
    }
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten().map(str::to_owned);
    let Some(mut offer) = offer else {
        v.add("offer", "is required");
        v.finish()?;
        return Err(ApiError::invalid("offer", "is required"));
    };
    match pb::OfferState::try_from(offer.state) {
        Ok(pb::OfferState::Unspecified) => offer.state = pb::OfferState::Draft as i32,
        Ok(pb::OfferState::Draft | pb::OfferState::Active) => {}
        _ => v.add("offer.state", "must be DRAFT or ACTIVE on create"),
    }
    let checked = check_offer(api, &offer, v).await?;
    // A request id names the offer: a retry finds it, a second request with another id cannot.
    let id = shared::new_id("offer", wanted, request_id.as_deref());
    let row = OfferRow {
        offer_id: id.clone(),
        state: offer.state as i16,
        channels: checked.channels,
        products: checked.products,
        valid_from: checked.valid_from,
        valid_until: checked.valid_until,
        body: body_of(&offer),
        revision: 1,
        presented: 0,
        accepted: 0,
        refused: 0,
        create_time: Utc::now(),
        update_time: Utc::now(),
    };
    let mut conn = api.pool.acquire().await?;
    if !ostore::insert(&api.pool, &row).await? {
        let existing =
            ostore::get(&mut conn, &id).await?.ok_or_else(|| ApiError::AlreadyExists(format!("offers/{id}")))?;
        if request_id.is_some() && existing.body == row.body {
            return to_proto(&existing);
        }
        return Err(ApiError::AlreadyExists(format!("offers/{id}")));
    }
    to_proto(&ostore::get(&mut conn, &id).await?.ok_or_else(|| ApiError::NotFound(format!("offers/{id}")))?)
}

/// GetOffer.
pub(super) async fn get(api: &CustomizationApi, request: pb::GetOfferRequest) -> ApiResult<pb::Offer> {
    let pb::GetOfferRequest { name } = request;
    let id = offer_id(&name, "name")?;
    let mut conn = api.pool.acquire().await?;
    to_proto(&ostore::get(&mut conn, &id).await?.ok_or(ApiError::NotFound(name))?)
}

/// UpdateOffer.
pub(super) async fn update(api: &CustomizationApi, request: pb::UpdateOfferRequest) -> ApiResult<pb::Offer> {
    let pb::UpdateOfferRequest { offer, update_mask } = request;
    let mut v = Violations::new();
    let Some(new) = offer else {
        return Err(ApiError::invalid("offer", "is required"));
    };
    let id = v.check("", offer_id(&new.name, "offer.name"));
    let paths = update_mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", "is required");
    }
    for (i, p) in paths.iter().enumerate() {
        if !UPDATABLE.contains(&p.as_str()) {
            v.add(format!("update_mask.paths[{i}]"), format!("unknown or output-only path {p:?}"));
        }
    }
    if paths.iter().any(|p| p == "state") && new.state == pb::OfferState::Unspecified as i32 {
        v.add("offer.state", "must be set when in the mask");
    }
    v.finish()?;
    let Some(id) = id else { return Err(ApiError::invalid("offer.name", "is required")) };
    let mut tx = api.pool.begin().await?;
    let row = ostore::get_for_update(&mut tx, &id).await?.ok_or_else(|| ApiError::NotFound(new.name.clone()))?;
    if !new.etag.is_empty() && new.etag != row.revision.to_string() {
        return Err(ApiError::Aborted(format!("offers/{id} changed since etag {}", new.etag)));
    }
    if row.state == pb::OfferState::Archived as i16 {
        return Err(ApiError::FailedPrecondition(format!("offers/{id} is archived")));
    }
    let mut merged = to_proto(&row)?;
    for p in &paths {
        match p.as_str() {
            "display_name" => merged.display_name = new.display_name.clone(),
            "description" => merged.description = new.description.clone(),
            "eligibility_rule" => merged.eligibility_rule = new.eligibility_rule.clone(),
            "products" => merged.products = new.products.clone(),
            "value" => merged.value = new.value.clone(),
            "business_value" => merged.business_value = new.business_value.clone(),
            "channels" => merged.channels = new.channels.clone(),
            "validity" => merged.validity = new.validity,
            "per_customer_cap" => merged.per_customer_cap = new.per_customer_cap,
            "purpose" => merged.purpose = new.purpose,
            "template" => merged.template = new.template.clone(),
            "priority" => merged.priority = new.priority,
            "state" => merged.state = new.state,
            _ => {}
        }
    }
    let checked = check_offer(api, &merged, Violations::new()).await?;
    let updated = OfferRow {
        state: merged.state as i16,
        channels: checked.channels,
        products: checked.products,
        valid_from: checked.valid_from,
        valid_until: checked.valid_until,
        body: body_of(&merged),
        ..row
    };
    ostore::update(&mut tx, &updated).await?;
    let stored = ostore::get(&mut tx, &id).await?.ok_or_else(|| ApiError::NotFound(new.name.clone()))?;
    tx.commit().await?;
    to_proto(&stored)
}

/// ListOffers, newest first.
pub(super) async fn list(api: &CustomizationApi, request: pb::ListOffersRequest) -> ApiResult<pb::ListOffersResponse> {
    let pb::ListOffersRequest { page_size, page_token, states, channel, product, valid_at } = request;
    let mut v = Violations::new();
    let size = v.check("", paging::page_size(page_size, "page_size"));
    for (i, s) in states.iter().enumerate() {
        if matches!(pb::OfferState::try_from(*s), Ok(pb::OfferState::Unspecified) | Err(_)) {
            v.add(format!("states[{i}]"), "must be a known offer state");
        }
    }
    if common::Channel::try_from(channel).is_err() {
        v.add("channel", "must be a known channel");
    }
    let product = if product.is_empty() { None } else { v.check("", product_id(&product, "product")) };
    let valid_at = valid_at
        .as_ref()
        .and_then(|t| v.check("", time_of(t).ok_or_else(|| ApiError::invalid("valid_at", "is not a valid time"))));
    let filter_key = format!("{states:?}|{channel}|{product:?}|{valid_at:?}");
    let cursor =
        v.check("", paging::decode_page_token::<(DateTime<Utc>, String)>(&page_token, &filter_key, "page_token"));
    v.finish()?;
    let filter = OfferFilter {
        states: states.iter().map(|s| *s as i16).collect(),
        channel: (channel != 0).then_some(channel as i16),
        product,
        valid_at,
    };
    let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE) as usize;
    let mut rows = ostore::list(&api.pool, &filter, cursor.flatten(), size as i64 + 1).await?;
    let more = rows.len() > size;
    rows.truncate(size);
    let next_page_token = match (more, rows.last()) {
        (true, Some(last)) => paging::next_page_token(&(last.create_time, last.offer_id.clone()), &filter_key),
        _ => String::new(),
    };
    Ok(pb::ListOffersResponse { offers: rows.iter().map(to_proto).collect::<ApiResult<_>>()?, next_page_token })
}

/// The moment an offer is sought: given, or inferred from the channel.
fn moment_of(moment: pb::OfferMoment, channel: common::Channel) -> pb::OfferMoment {
    use common::Channel as C;
    match moment {
        pb::OfferMoment::Unspecified => match channel {
            C::Email | C::Sms | C::Letter | C::Gift => pb::OfferMoment::OutboundMessage,
            C::AccountManager => pb::OfferMoment::AccountManagerVisit,
            C::CallCentre => pb::OfferMoment::InboundCall,
            C::Web => pb::OfferMoment::WebVisit,
            C::App => pb::OfferMoment::AppVisit,
            C::Branch | C::Event => pb::OfferMoment::BranchVisit,
            C::SelfService => pb::OfferMoment::SelfService,
            C::Unspecified => pb::OfferMoment::WebVisit,
        },
        m => m,
    }
}

/// Whether the customer came to us: inbound moments are exempt from frequency caps and quiet
/// hours (never from consent and do-not-contact).
fn inbound(moment: pb::OfferMoment) -> bool {
    !matches!(
        moment,
        pb::OfferMoment::OutboundCall | pb::OfferMoment::AccountManagerVisit | pb::OfferMoment::OutboundMessage
    )
}

/// One offer considered by NextBestOffer.
struct Considered {
    row: OfferRow,
    offer: pb::Offer,
    ineligibility: pb::IneligibilityReason,
}

fn no_offer(customer: String, reason: pb::NoOfferReason, explanation: String) -> pb::NextBestOfferResponse {
    pb::NextBestOfferResponse {
        customer_id: customer,
        decision: None,
        no_offer_reason: reason as i32,
        refusal_reason: 0,
        explanation,
        alternatives: Vec::new(),
        considered: Vec::new(),
    }
}

/// NextBestOffer.
pub(super) async fn next_best_offer(
    api: &CustomizationApi,
    request: pb::NextBestOfferRequest,
) -> ApiResult<pb::NextBestOfferResponse> {
    let pb::NextBestOfferRequest {
        customer,
        channel,
        context: offer_context,
        max_alternatives,
        exclude_offers,
        record_presentation,
        explain,
        request_id,
    } = request;
    let mut v = Violations::new();
    let reference = v.check("customer", Reference::from_proto(customer));
    let channel = match common::Channel::try_from(channel) {
        Ok(common::Channel::Unspecified) | Err(_) => {
            v.add("channel", "is required: a known channel");
            common::Channel::Unspecified
        }
        Ok(c) => c,
    };
    if !(0..=5).contains(&max_alternatives) {
        v.add("max_alternatives", "must be between 0 and 5");
    }
    if exclude_offers.len() > 100 {
        v.add("exclude_offers", "at most 100");
    }
    let excluded: HashSet<String> = exclude_offers
        .iter()
        .enumerate()
        .filter_map(|(i, o)| v.check("", offer_id(o, &format!("exclude_offers[{i}]"))))
        .collect();
    let moment = match offer_context.as_ref().map(|c| pb::OfferMoment::try_from(c.moment)) {
        None => pb::OfferMoment::Unspecified,
        Some(Ok(m)) => m,
        Some(Err(_)) => {
            v.add("context.moment", "must be a known moment");
            pb::OfferMoment::Unspecified
        }
    };
    if let Some(c) = &offer_context {
        v.check("", validate::text(&c.topic, 200, "context.topic"));
        if c.basket.len() > 200 {
            v.add("context.basket", "at most 200 items");
        }
    }
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten().map(str::to_owned);
    v.finish()?;
    let Some(reference) = reference else { return Err(ApiError::invalid("customer", "is required")) };
    let moment = moment_of(moment, channel);
    let customer = match api.customers.resolve(Lookup { reference: &reference, create: false }).await {
        Ok(id) => id,
        Err(ApiError::NotFound(_)) => {
            return Ok(no_offer(String::new(), pb::NoOfferReason::CustomerUnknown, "the customer is not known".into()));
        }
        Err(e) => return Err(e),
    };
    let customer_id = customer.to_string();
    let now = Utc::now();
    let rows = ostore::active_on(&api.pool, channel as i16, now).await?;
    let mut considered: Vec<Considered> = Vec::with_capacity(rows.len());
    for row in rows {
        let offer = to_proto(&row)?;
        let ineligibility = if excluded.contains(&row.offer_id) {
            pb::IneligibilityReason::Excluded
        } else {
            pb::IneligibilityReason::Unspecified
        };
        considered.push(Considered { row, offer, ineligibility });
    }
    // Caps: the customer's own history with each offer.
    let caps_of = |o: &pb::Offer| -> Caps {
        let c = o.per_customer_cap.unwrap_or_default();
        Caps {
            max_presentations: u32::try_from(c.max_presentations).unwrap_or(0),
            max_acceptances: u32::try_from(c.max_acceptances).unwrap_or(0).max(1),
            window_secs: c.window.as_ref().and_then(seconds_of),
            cooldown_after_refusal_secs: c.cooldown_after_refusal.as_ref().and_then(seconds_of).unwrap_or(30 * 86_400),
        }
    };
    let ids: Vec<String> = considered.iter().map(|c| c.row.offer_id.clone()).collect();
    let since: Vec<DateTime<Utc>> = considered
        .iter()
        .map(|c| match caps_of(&c.offer).window_secs {
            Some(w) => now - Duration::seconds(w),
            None => c.row.valid_from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        })
        .collect();
    let history = ostore::customer_history(&api.pool, customer, &ids, &since).await?;
    {
        let model = api.recommendations.read();
        let owned = model.histories.get(&customer);
        for c in considered.iter_mut().filter(|c| c.ineligibility == pb::IneligibilityReason::Unspecified) {
            let (p, a, r) = history.get(&c.row.offer_id).copied().unwrap_or_default();
            let h = CustomerHistory {
                presentations: u32::try_from(p).unwrap_or(u32::MAX),
                acceptances: u32::try_from(a).unwrap_or(u32::MAX),
                last_refusal: r.map(|t| t.timestamp()),
            };
            c.ineligibility = match caps_of(&c.offer).check(&h, now.timestamp()) {
                CapOutcome::CapReached => pb::IneligibilityReason::CapReached,
                CapOutcome::RecentlyRefused => pb::IneligibilityReason::RecentlyRefused,
                CapOutcome::Open => pb::IneligibilityReason::Unspecified,
            };
            if c.ineligibility != pb::IneligibilityReason::Unspecified || c.row.products.is_empty() {
                continue;
            }
            let items: Vec<_> = c.row.products.iter().map(|p| model.items.get(p)).collect();
            let facts =
                |i: &Option<crate::domain::recommend::ItemId>| i.and_then(|i| model.items.facts.get(i.0 as usize));
            if items.iter().any(|i| facts(i).is_none_or(|f| !f.sellable)) {
                c.ineligibility = pb::IneligibilityReason::ProductUnavailable;
            } else if owned.is_some_and(|h| {
                items.iter().all(|i| {
                    i.is_some_and(|i| h.get(i).is_some_and(|e| e.purchased)) && facts(i).is_some_and(|f| !f.consumable)
                })
            }) {
                c.ineligibility = pb::IneligibilityReason::AlreadyOwned;
            }
        }
    }
    // Eligibility rules, evaluated by segmentation for this customer, all at once.
    let to_evaluate: Vec<usize> = considered
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.ineligibility == pb::IneligibilityReason::Unspecified && !c.offer.eligibility_rule.trim().is_empty()
        })
        .map(|(i, _)| i)
        .collect();
    if !to_evaluate.is_empty() {
        let client = segmentation(api)?;
        let calls = to_evaluate.iter().map(|&i| {
            let mut client = client.clone();
            let request = spb::EvaluateRuleRequest {
                customer: format!("customers/{customer}"),
                rule: considered[i].offer.eligibility_rule.clone(),
                explain: false,
            };
            async move { context::as_service(client.evaluate_rule(request)).await }
        });
        let answers = join_all(calls).await;
        for (&i, answer) in to_evaluate.iter().zip(answers) {
            match answer {
                Ok(a) if a.get_ref().matched => {}
                Ok(_) => considered[i].ineligibility = pb::IneligibilityReason::RuleNotMet,
                Err(s) if s.code() == Code::NotFound => {
                    return Ok(no_offer(
                        String::new(),
                        pb::NoOfferReason::CustomerUnknown,
                        "the customer was erased".into(),
                    ));
                }
                Err(s) if matches!(s.code(), Code::InvalidArgument | Code::FailedPrecondition) => {
                    // A rule that no longer type-checks (a segment deleted): the offer is out.
                    tracing::warn!(offer = %considered[i].row.offer_id, error = %s.message(), "offer rule failed");
                    considered[i].ineligibility = pb::IneligibilityReason::RuleNotMet;
                }
                Err(s) => {
                    tracing::warn!(error = %s.message(), "segmentation did not evaluate offer rules");
                    return Ok(no_offer(
                        customer_id,
                        pb::NoOfferReason::DependencyUnavailable,
                        "segmentation did not answer: no offer is safer than an unchecked one".into(),
                    ));
                }
            }
        }
    }
    let eligible: Vec<usize> = considered
        .iter()
        .enumerate()
        .filter(|(_, c)| c.ineligibility == pb::IneligibilityReason::Unspecified)
        .map(|(i, _)| i)
        .collect();
    let candidates: Vec<domain::Candidate> = eligible
        .iter()
        .map(|&i| {
            let r = &considered[i].row;
            domain::Candidate {
                index: i,
                propensity: domain::propensity(r.presented.max(0) as u64, r.accepted.max(0) as u64),
                business_value_minor: considered[i].offer.business_value.as_ref().map_or(0, |m| m.amount_minor),
                priority: considered[i].offer.priority,
            }
        })
        .collect();
    let ranked = domain::rank(&candidates);
    let explanation_list = |ranked: &[domain::Ranked]| -> Vec<pb::OfferConsideration> {
        if !explain {
            return Vec::new();
        }
        let value: HashMap<usize, f64> = ranked.iter().map(|r| (r.index, r.expected_value_minor)).collect();
        considered
            .iter()
            .enumerate()
            .take(100)
            .map(|(i, c)| pb::OfferConsideration {
                offer: format!("offers/{}", c.row.offer_id),
                eligible: c.ineligibility == pb::IneligibilityReason::Unspecified,
                ineligibility: c.ineligibility as i32,
                expected_value: value.get(&i).map(|v| common::Money {
                    currency_code: c.offer.business_value.as_ref().map(|m| m.currency_code.clone()).unwrap_or_default(),
                    amount_minor: v.round() as i64,
                }),
            })
            .collect()
    };
    if ranked.is_empty() {
        let capped = considered.iter().any(|c| {
            matches!(c.ineligibility, pb::IneligibilityReason::CapReached | pb::IneligibilityReason::RecentlyRefused)
        });
        let (reason, text) = if capped {
            (pb::NoOfferReason::Capped, "eligible offers were capped or refused recently")
        } else {
            (pb::NoOfferReason::NoEligibleOffer, "no active offer on this channel fits the customer")
        };
        let mut answer = no_offer(customer_id, reason, text.into());
        answer.considered = explanation_list(&ranked);
        return Ok(answer);
    }
    // Contact policy and consent, once per purpose the ranked offers need.
    let purpose_of = |i: usize| match common::ConsentPurpose::try_from(considered[i].offer.purpose) {
        Ok(common::ConsentPurpose::Unspecified) | Err(_) => common::ConsentPurpose::Marketing,
        Ok(p) => p,
    };
    let mut decisions: HashMap<i32, Result<(), (pb::ContactRefusalReason, String)>> = HashMap::new();
    let mut policy = interaction(api)?;
    for r in &ranked {
        let purpose = purpose_of(r.index) as i32;
        if decisions.contains_key(&purpose) {
            continue;
        }
        let check = ipb::CheckContactPolicyRequest {
            customer: Some(common::CustomerRef {
                r#ref: Some(common::customer_ref::Ref::CustomerId(customer_id.clone())),
            }),
            channel: channel as i32,
            purpose,
            at: None,
            time_zone: String::new(),
        };
        let answer = match context::as_service(policy.check_contact_policy(check)).await {
            Ok(a) => a.into_inner(),
            Err(s) => {
                tracing::warn!(error = %s.message(), "interaction did not check the contact policy");
                return Ok(no_offer(
                    customer_id,
                    pb::NoOfferReason::DependencyUnavailable,
                    "interaction did not answer: no offer is safer than an unchecked one".into(),
                ));
            }
        };
        let exempt = |d: &ipb::ContactDenial| {
            inbound(moment)
                && matches!(
                    ipb::ContactDenialReason::try_from(d.reason),
                    Ok(ipb::ContactDenialReason::FrequencyCap | ipb::ContactDenialReason::QuietHours)
                )
        };
        let denial = answer.denials.iter().find(|d| !exempt(d));
        decisions.insert(
            purpose,
            match denial {
                None => Ok(()),
                Some(d) => Err((
                    refusal_of(ipb::ContactDenialReason::try_from(d.reason).unwrap_or_default()),
                    d.message.chars().take(500).collect(),
                )),
            },
        );
    }
    let allowed: Vec<&domain::Ranked> =
        ranked.iter().filter(|r| decisions.get(&(purpose_of(r.index) as i32)).is_some_and(Result::is_ok)).collect();
    let Some(best) = allowed.first() else {
        let Some(Err((refusal, message))) = decisions.get(&(purpose_of(ranked[0].index) as i32)).cloned() else {
            return Err(ApiError::Internal(anyhow::anyhow!("contact policy decision missing")));
        };
        let reason = if refusal == pb::ContactRefusalReason::NoConsent {
            pb::NoOfferReason::NoConsent
        } else {
            pb::NoOfferReason::ContactPolicy
        };
        let mut answer = no_offer(customer_id, reason, message);
        answer.refusal_reason = refusal as i32;
        answer.considered = explanation_list(&ranked);
        return Ok(answer);
    };
    let decision_of = |r: &domain::Ranked| -> pb::OfferDecision {
        let c = &considered[r.index];
        let p = domain::propensity(c.row.presented.max(0) as u64, c.row.accepted.max(0) as u64);
        let mut reasons = vec![if c.offer.eligibility_rule.trim().is_empty() {
            "eligible: every customer".to_owned()
        } else {
            format!("eligible: {}", c.offer.eligibility_rule.chars().take(200).collect::<String>())
        }];
        if c.row.presented >= domain::EXPLORE_BELOW as i64 {
            reasons
                .push(format!("{:.0}% of customers accepted", 100.0 * c.row.accepted as f64 / c.row.presented as f64));
        } else {
            reasons.push("a new offer, being tried".to_owned());
        }
        if inbound(moment) {
            reasons.push("the customer came to us".to_owned());
        }
        pb::OfferDecision {
            offer: format!("offers/{}", c.row.offer_id),
            display_name: c.offer.display_name.clone(),
            description: c.offer.description.clone(),
            value: c.offer.value.clone(),
            propensity: p.mean,
            expected_value: Some(common::Money {
                currency_code: c.offer.business_value.as_ref().map(|m| m.currency_code.clone()).unwrap_or_default(),
                amount_minor: r.expected_value_minor.round() as i64,
            }),
            exploration: r.exploration,
            reasons,
            presentation: String::new(),
        }
    };
    let mut decision = decision_of(best);
    if record_presentation {
        let replay = match &request_id {
            Some(key) => ostore::presentation_by_request(&api.pool, key).await?,
            None => None,
        };
        let (presentation, offer) = match replay {
            Some(found) => found,
            None => {
                let id = Uuid::now_v7();
                let offer = considered[best.index].row.offer_id.clone();
                let mut tx = api.pool.begin().await?;
                let new = ostore::insert_presentation(
                    &mut tx,
                    id,
                    &offer,
                    customer,
                    channel as i16,
                    "",
                    request_id.as_deref(),
                )
                .await?;
                tx.commit().await?;
                if new {
                    (id, offer)
                } else {
                    ostore::presentation_by_request(&api.pool, request_id.as_deref().unwrap_or_default())
                        .await?
                        .ok_or_else(|| ApiError::Aborted("a concurrent retry; retry".into()))?
                }
            }
        };
        if let Some(r) = ranked.iter().find(|r| considered[r.index].row.offer_id == offer) {
            decision = decision_of(r);
        }
        decision.presentation = format!("offers/{offer}/presentations/{presentation}");
    }
    let alternatives = allowed.iter().skip(1).take(max_alternatives.max(0) as usize).map(|r| decision_of(r)).collect();
    let explanation = format!("{}: {}", decision.display_name, decision.reasons.join("; ")).chars().take(500).collect();
    Ok(pb::NextBestOfferResponse {
        customer_id,
        decision: Some(decision),
        no_offer_reason: 0,
        refusal_reason: 0,
        explanation,
        alternatives,
        considered: explanation_list(&ranked),
    })
}

/// RecordOfferResponse.
pub(super) async fn record_response(
    api: &CustomizationApi,
    request: pb::RecordOfferResponseRequest,
) -> ApiResult<pb::OfferResponse> {
    let pb::RecordOfferResponseRequest { customer, offer, response, channel, presentation, campaign, time, request_id } =
        request;
    let mut v = Violations::new();
    let reference = v.check("customer", Reference::from_proto(customer));
    let offer_id = v.check("", offer_id(&offer, "offer"));
    let kind = match pb::OfferResponseKind::try_from(response) {
        Ok(pb::OfferResponseKind::Unspecified) | Err(_) => {
            v.add("response", "must be ACCEPTED or REFUSED");
            pb::OfferResponseKind::Unspecified
        }
        Ok(k) => k,
    };
    if matches!(common::Channel::try_from(channel), Ok(common::Channel::Unspecified) | Err(_)) {
        v.add("channel", "is required: a known channel");
    }
    let presentation_id = if presentation.is_empty() {
        None
    } else {
        let parsed = presentation
            .split_once("/presentations/")
            .filter(|(o, _)| offer_id.as_ref().is_some_and(|id| *o == format!("offers/{id}")))
            .and_then(|(_, p)| Uuid::parse_str(p).ok());
        if parsed.is_none() {
            v.add("presentation", "must be offers/{offer_id}/presentations/{id} of this offer");
        }
        parsed
    };
    if !campaign.is_empty() && campaign.strip_prefix("campaigns/").is_none_or(str::is_empty) {
        v.add("campaign", "must be campaigns/{campaign_id}");
    }
    let now = Utc::now().trunc_subsecs(6);
    let at = shared::reaction_time(time.as_ref(), now, &mut v);
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten().map(str::to_owned);
    v.finish()?;
    let (Some(reference), Some(offer_id)) = (reference, offer_id) else {
        return Err(ApiError::invalid("", "unreachable"));
    };
    if let Some(key) = &request_id
        && let Some(first) = ostore::response_by_request(&api.pool, key).await?
    {
        return Ok(response_answer(&first, true));
    }
    let mut conn = api.pool.acquire().await?;
    ostore::get(&mut conn, &offer_id).await?.ok_or_else(|| ApiError::NotFound(offer.clone()))?;
    drop(conn);
    let customer = api.customers.resolve(Lookup { reference: &reference, create: false }).await?;
    if let Some(p) = presentation_id {
        match ostore::presentation(&api.pool, p).await? {
            None => return Err(ApiError::NotFound(presentation)),
            Some((o, c)) if o != offer_id || c != customer => {
                return Err(ApiError::FailedPrecondition(format!(
                    "{presentation} was made to another customer or for another offer"
                )));
            }
            Some(_) => {}
        }
    }
    if !campaign.is_empty() {
        // Campaigns are not served yet: none exists.
        return Err(ApiError::NotFound(campaign));
    }
    let row = ostore::ResponseRow {
        response_id: Uuid::now_v7(),
        offer_id: offer_id.clone(),
        customer_id: customer,
        kind: kind as i16,
        channel: channel as i16,
        presentation_id,
        campaign_id: String::new(),
        response_time: at,
    };
    let mut tx = api.pool.begin().await?;
    if !ostore::insert_response(&mut tx, &row, request_id.as_deref()).await? {
        drop(tx);
        let first = ostore::response_by_request(&api.pool, request_id.as_deref().unwrap_or_default())
            .await?
            .ok_or_else(|| ApiError::Aborted("a concurrent retry; retry".into()))?;
        return Ok(response_answer(&first, true));
    }
    let event = pb::OfferResponded {
        event_id: Uuid::new_v4().to_string(),
        response: format!("offers/{offer_id}/responses/{}", row.response_id),
        offer: format!("offers/{offer_id}"),
        customer_id: customer.to_string(),
        kind: kind as i32,
        channel,
        campaign: String::new(),
        time: Some(timestamp(at)),
    };
    events::enqueue(&mut tx, OFFER_RESPONDED, &event.encode_to_vec()).await?;
    tx.commit().await?;
    Ok(response_answer(&row, false))
}

fn response_answer(r: &ostore::ResponseRow, duplicate: bool) -> pb::OfferResponse {
    pb::OfferResponse {
        name: format!("offers/{}/responses/{}", r.offer_id, r.response_id),
        customer_id: r.customer_id.to_string(),
        response: i32::from(r.kind),
        channel: i32::from(r.channel),
        presentation: r.presentation_id.map(|p| format!("offers/{}/presentations/{p}", r.offer_id)).unwrap_or_default(),
        campaign: if r.campaign_id.is_empty() { String::new() } else { format!("campaigns/{}", r.campaign_id) },
        time: Some(timestamp(r.response_time)),
        duplicate,
    }
}
