//! Message RPCs: CreateTemplate, GetTemplate, ListTemplates, UpdateTemplate (field mask, etag)
//! and RenderMessage, which fills personal fields from identification, tiers from segmentation
//! and offers from this service, never with a field the caller may not see.

use chrono::{Datelike as _, Utc};
use idic_platform::{
    ApiError, ApiResult, context,
    customers::{Lookup, Reference},
    jobs::timestamp,
    paging,
    runtime::PeerService,
    validate::{self, Violations},
};
use idic_proto::{
    common::v1 as common,
    customization::v1 as pb,
    identification::v1::{self as ipb, identification_service_client::IdentificationServiceClient},
    segmentation::v1::{self as spb, segmentation_service_client::SegmentationServiceClient},
};
use prost::Message as _;
use tonic::Code;
use uuid::Uuid;

use super::{CustomizationApi, shared};
use crate::{
    domain::messages::{self, FieldValue, Outcome, Template},
    store::{
        offers as ostore,
        templates::{self as store, TemplateRow},
    },
};

/// Paths UpdateTemplate may change.
const UPDATABLE: [&str; 6] = ["display_name", "kind", "default_language", "contents", "offer", "holiday"];
/// Channels a template can be written for.
const TEMPLATE_CHANNELS: [common::Channel; 6] = [
    common::Channel::Email,
    common::Channel::Sms,
    common::Channel::Letter,
    common::Channel::App,
    common::Channel::CallCentre,
    common::Channel::Branch,
];

fn template_id(name: &str, field: &str) -> ApiResult<String> {
    match name.strip_prefix("templates/") {
        Some(id) if shared::is_client_id(id) || Uuid::parse_str(id).is_ok() => Ok(id.to_owned()),
        _ => Err(ApiError::invalid(field, "must be templates/{template_id}")),
    }
}

/// A BCP 47 tag's shape: 2–8 letters, then hyphenated subtags of letters and digits.
fn language_ok(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary_ok =
        parts.next().is_some_and(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    primary_ok
        && tag.len() <= 35
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Checks a whole template (paths under `template.`); answers its sorted fields and languages.
fn check_template(t: &pb::MessageTemplate, v: &mut Violations) -> (Vec<String>, Vec<String>) {
    v.check("", validate::required(&t.display_name, 200, "template.display_name"));
    if matches!(pb::MessageKind::try_from(t.kind), Ok(pb::MessageKind::Unspecified) | Err(_)) {
        v.add("template.kind", "is required: a known message kind");
    }
    let channel = common::Channel::try_from(t.channel).ok().filter(|c| TEMPLATE_CHANNELS.contains(c));
    if channel.is_none() {
        v.add("template.channel", "must be EMAIL, SMS, LETTER, APP, CALL_CENTRE or BRANCH");
    }
    if !language_ok(&t.default_language) {
        v.add("template.default_language", "is required: a BCP 47 language tag");
    }
    if t.contents.is_empty() || t.contents.len() > 50 {
        v.add("template.contents", "must hold 1 to 50 contents");
    }
    let mut languages: Vec<String> = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    for (i, c) in t.contents.iter().enumerate() {
        let pb::LocalizedContent { language, subject, body } = c;
        let at = format!("template.contents[{i}]");
        if !language_ok(language) {
            v.add(format!("{at}.language"), "must be a BCP 47 language tag");
        } else if languages.contains(&language.to_ascii_lowercase()) {
            v.add(format!("{at}.language"), "has content already");
        } else {
            languages.push(language.to_ascii_lowercase());
        }
        let has_subjects = matches!(channel, Some(common::Channel::Email | common::Channel::Letter));
        if !subject.is_empty() && !has_subjects {
            v.add(format!("{at}.subject"), "only EMAIL and LETTER templates have subjects");
        }
        v.check("", validate::max_chars(subject, 500, &format!("{at}.subject")));
        let max_body = if channel == Some(common::Channel::Sms) { 1600 } else { 100_000 };
        v.check("", validate::required(body, max_body, &format!("{at}.body")));
        for (text, part) in [(subject, "subject"), (body, "body")] {
            match Template::parse(text) {
                Ok(parsed) => fields.extend(parsed.fields().into_iter().map(str::to_owned)),
                Err(e) => v.add(format!("{at}.{part}"), e.to_string()),
            }
        }
    }
    if language_ok(&t.default_language) && !languages.contains(&t.default_language.to_ascii_lowercase()) {
        v.add("template.default_language", "has no content");
    }
    if !t.offer.is_empty() && t.offer.strip_prefix("offers/").is_none_or(str::is_empty) {
        v.add("template.offer", "must be offers/{offer_id}");
    }
    v.check("", validate::text(&t.holiday, 100, "template.holiday"));
    fields.sort();
    fields.dedup();
    (fields, languages)
}

fn body_of(t: &pb::MessageTemplate) -> Vec<u8> {
    pb::MessageTemplate {
        name: String::new(),
        fields: Vec::new(),
        create_time: None,
        update_time: None,
        etag: String::new(),
        ..t.clone()
    }
    .encode_to_vec()
}

fn to_proto(row: &TemplateRow) -> ApiResult<pb::MessageTemplate> {
    let mut t = pb::MessageTemplate::decode(row.body.as_slice()).map_err(|e| ApiError::Internal(e.into()))?;
    let mut v = Violations::new();
    let (fields, _) = check_template(&t, &mut v);
    t.name = format!("templates/{}", row.template_id);
    t.fields = fields;
    t.create_time = Some(timestamp(row.create_time));
    t.update_time = Some(timestamp(row.update_time));
    t.etag = row.revision.to_string();
    Ok(t)
}

async fn offer_exists(api: &CustomizationApi, offer: &str) -> ApiResult<()> {
    if offer.is_empty() {
        return Ok(());
    }
    let id = offer.trim_start_matches("offers/");
    let mut conn = api.pool.acquire().await?;
    ostore::get(&mut conn, id).await?.map(|_| ()).ok_or_else(|| ApiError::NotFound(offer.to_owned()))
}

/// CreateTemplate.
pub(super) async fn create(
    api: &CustomizationApi,
    request: pb::CreateTemplateRequest,
) -> ApiResult<pb::MessageTemplate> {
    let pb::CreateTemplateRequest { template_id: wanted, template, request_id } = request;
    let mut v = Violations::new();
    if !wanted.is_empty() && !shared::is_client_id(&wanted) {
        v.add("template_id", "must match ^[a-z][a-z0-9-]{0,62}$");
    }
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten().map(str::to_owned);
    let template = template.unwrap_or_default();
    let (_, languages) = check_template(&template, &mut v);
    v.finish()?;
    offer_exists(api, &template.offer).await?;
    let id = shared::new_id("template", wanted, request_id.as_deref());
    let row = TemplateRow {
        template_id: id.clone(),
        channel: template.channel as i16,
        kind: template.kind as i16,
        languages,
        body: body_of(&template),
        revision: 1,
        create_time: Utc::now(),
        update_time: Utc::now(),
    };
    let inserted = store::insert(&api.pool, &row).await?;
    let mut conn = api.pool.acquire().await?;
    let stored = store::get(&mut conn, &id).await?.ok_or_else(|| ApiError::NotFound(format!("templates/{id}")))?;
    let replayed = request_id.is_some() && stored.body == row.body;
    if !inserted && !replayed {
        return Err(ApiError::AlreadyExists(format!("templates/{id}")));
    }
    to_proto(&stored)
}

/// GetTemplate.
pub(super) async fn get(api: &CustomizationApi, request: pb::GetTemplateRequest) -> ApiResult<pb::MessageTemplate> {
    let pb::GetTemplateRequest { name } = request;
    let id = template_id(&name, "name")?;
    let mut conn = api.pool.acquire().await?;
    to_proto(&store::get(&mut conn, &id).await?.ok_or(ApiError::NotFound(name))?)
}

/// ListTemplates, ordered by name.
pub(super) async fn list(
    api: &CustomizationApi,
    request: pb::ListTemplatesRequest,
) -> ApiResult<pb::ListTemplatesResponse> {
    let pb::ListTemplatesRequest { page_size, page_token, channel, kind, language } = request;
    let mut v = Violations::new();
    let size = v.check("", paging::page_size(page_size, "page_size"));
    if common::Channel::try_from(channel).is_err() {
        v.add("channel", "must be a known channel");
    }
    if pb::MessageKind::try_from(kind).is_err() {
        v.add("kind", "must be a known message kind");
    }
    if !language.is_empty() && !language_ok(&language) {
        v.add("language", "must be a BCP 47 language tag");
    }
    let filter = format!("{channel}|{kind}|{language}");
    let cursor = v.check("", paging::decode_page_token::<String>(&page_token, &filter, "page_token"));
    v.finish()?;
    let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE) as usize;
    let mut rows = store::list(
        &api.pool,
        (channel != 0).then_some(channel as i16),
        (kind != 0).then_some(kind as i16),
        (!language.is_empty()).then_some(language.as_str()),
        cursor.flatten().as_deref(),
        size as i64 + 1,
    )
    .await?;
    let more = rows.len() > size;
    rows.truncate(size);
    let next_page_token = match (more, rows.last()) {
        (true, Some(last)) => paging::next_page_token(&last.template_id, &filter),
        _ => String::new(),
    };
    Ok(pb::ListTemplatesResponse { templates: rows.iter().map(to_proto).collect::<ApiResult<_>>()?, next_page_token })
}

/// UpdateTemplate.
pub(super) async fn update(
    api: &CustomizationApi,
    request: pb::UpdateTemplateRequest,
) -> ApiResult<pb::MessageTemplate> {
    let pb::UpdateTemplateRequest { template, update_mask } = request;
    let new = template.unwrap_or_default();
    let mut v = Violations::new();
    let id = v.check("", template_id(&new.name, "template.name"));
    let paths = update_mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", "is required");
    }
    for (i, p) in paths.iter().enumerate() {
        if !UPDATABLE.contains(&p.as_str()) {
            v.add(format!("update_mask.paths[{i}]"), format!("unknown or immutable path {p:?}"));
        }
    }
    v.finish()?;
    let Some(id) = id else { return Err(ApiError::invalid("template.name", "is required")) };
    let mut tx = api.pool.begin().await?;
    let row = store::get_for_update(&mut tx, &id).await?.ok_or_else(|| ApiError::NotFound(new.name.clone()))?;
    if !new.etag.is_empty() && new.etag != row.revision.to_string() {
        return Err(ApiError::Aborted(format!("templates/{id} changed since etag {}", new.etag)));
    }
    let mut merged = to_proto(&row)?;
    for p in &paths {
        match p.as_str() {
            "display_name" => merged.display_name = new.display_name.clone(),
            "kind" => merged.kind = new.kind,
            "default_language" => merged.default_language = new.default_language.clone(),
            "contents" => merged.contents = new.contents.clone(),
            "offer" => merged.offer = new.offer.clone(),
            "holiday" => merged.holiday = new.holiday.clone(),
            _ => {}
        }
    }
    let mut v = Violations::new();
    let (_, languages) = check_template(&merged, &mut v);
    v.finish()?;
    offer_exists(api, &merged.offer).await?;
    let updated = TemplateRow { kind: merged.kind as i16, languages, body: body_of(&merged), ..row };
    store::update(&mut tx, &updated).await?;
    let stored = store::get(&mut tx, &id).await?.ok_or_else(|| ApiError::NotFound(new.name.clone()))?;
    tx.commit().await?;
    to_proto(&stored)
}

/// What is known of the customer, for filling fields.
struct Known {
    customer: ipb::Customer,
    tier: Option<String>,
    offer: Option<pb::Offer>,
    holiday: String,
}

impl Known {
    fn value(&self, name: &str) -> Option<String> {
        let c = &self.customer;
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let identifier = |kind: common::IdentifierKind| {
            c.identifiers.iter().find(|i| i.kind == kind as i32).map(|i| i.value.clone())
        };
        let offer_value = |o: &pb::Offer| match o.value.as_ref()?.benefit.as_ref()? {
            pb::offer_value::Benefit::DiscountBasisPoints(bp) => Some(format!("{}% off", f64::from(*bp) / 100.0)),
            pb::offer_value::Benefit::DiscountAmount(m) => {
                Some(format!("{} {:.2} off", m.currency_code, m.amount_minor as f64 / 100.0))
            }
            pb::offer_value::Benefit::FixedPrice(m) => {
                Some(format!("{} {:.2}", m.currency_code, m.amount_minor as f64 / 100.0))
            }
            pb::offer_value::Benefit::FreeProduct(_) => Some("a free gift".to_owned()),
            pb::offer_value::Benefit::NonMonetary(_) => None,
        };
        match name {
            "first_name" => nonempty(&c.preferred_name).or_else(|| nonempty(&c.given_name)),
            "last_name" => nonempty(&c.family_name),
            "full_name" => {
                let full = format!("{} {}", c.given_name, c.family_name).trim().to_owned();
                nonempty(&full).or_else(|| nonempty(&c.display_name))
            }
            "salutation" => nonempty(&c.family_name).map(|f| format!("Dear {} {f}", c.given_name).replace("  ", " ")),
            "email" => identifier(common::IdentifierKind::Email),
            "phone" => identifier(common::IdentifierKind::Phone),
            "loyalty_number" => identifier(common::IdentifierKind::LoyaltyCard),
            "company_name" => nonempty(&c.organization_name),
            "birth_date" => c
                .birth_date
                .as_ref()
                .filter(|d| d.year > 0)
                .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)),
            "age" => c.birth_date.as_ref().filter(|d| d.year > 0).map(|d| {
                let today = Utc::now().date_naive();
                let mut age = today.year() - d.year;
                if (today.month(), today.day()) < (d.month as u32, d.day as u32) {
                    age -= 1;
                }
                age.to_string()
            }),
            "tier_name" => self.tier.clone(),
            "offer_title" => self.offer.as_ref().and_then(|o| nonempty(&o.display_name)),
            "offer_description" => self.offer.as_ref().and_then(|o| nonempty(&o.description)),
            "offer_value" => self.offer.as_ref().and_then(offer_value),
            "offer_valid_until" => self
                .offer
                .as_ref()
                .and_then(|o| {
                    o.validity.as_ref()?.end_time.as_ref().and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                })
                .map(|t| t.format("%Y-%m-%d").to_string()),
            "holiday_name" => nonempty(&self.holiday),
            "today" => Some(Utc::now().format("%Y-%m-%d").to_string()),
            // City and postal code live in the address, which is an identifier kind of its own
            // in a canonical form not split here; the account manager needs a service level.
            _ => None,
        }
    }
}

/// RenderMessage, for the caller: personal data only with `pii.read`.
pub(super) async fn render(
    api: &CustomizationApi,
    request: pb::RenderMessageRequest,
) -> ApiResult<pb::RenderMessageResponse> {
    let pii = context::current_caller().is_some_and(|c| c.has_scope("pii.read"));
    render_as(api, request, pii).await
}

/// Renders a message, with personal data when `pii` (a campaign's sending, done by the service).
pub(super) async fn render_as(
    api: &CustomizationApi,
    request: pb::RenderMessageRequest,
    pii: bool,
) -> ApiResult<pb::RenderMessageResponse> {
    let pb::RenderMessageRequest { customer, template, language, offer } = request;
    let mut v = Violations::new();
    let reference = v.check("customer", Reference::from_proto(customer));
    let id = v.check("", template_id(&template, "template"));
    if !language.is_empty() && !language_ok(&language) {
        v.add("language", "must be a BCP 47 language tag");
    }
    if !offer.is_empty() && offer.strip_prefix("offers/").is_none_or(str::is_empty) {
        v.add("offer", "must be offers/{offer_id}");
    }
    v.finish()?;
    let (Some(reference), Some(id)) = (reference, id) else { return Err(ApiError::invalid("", "unreachable")) };
    let mut conn = api.pool.acquire().await?;
    let row = store::get(&mut conn, &id).await?.ok_or_else(|| ApiError::NotFound(template.clone()))?;
    let t = to_proto(&row)?;
    let offer_name = if offer.is_empty() { t.offer.clone() } else { offer };
    let offer = match offer_name.strip_prefix("offers/") {
        Some(oid) => Some(
            ostore::get(&mut conn, oid)
                .await?
                .ok_or_else(|| ApiError::NotFound(offer_name.clone()))
                .and_then(|r| pb::Offer::decode(r.body.as_slice()).map_err(|e| ApiError::Internal(e.into())))?,
        ),
        None => None,
    };
    drop(conn);
    let customer_id = api.customers.resolve(Lookup { reference: &reference, create: false }).await?;
    let channel = api.peers.channel(PeerService::Identification).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let mut identification = IdentificationServiceClient::new(channel);
    // Read with the service's identity; what the caller may see is decided below.
    let customer = context::as_service(
        identification.get_customer(ipb::GetCustomerRequest { name: format!("customers/{customer_id}") }),
    )
    .await
    .map_err(|s| match s.code() {
        Code::NotFound => ApiError::NotFound(format!("customers/{customer_id}")),
        _ => ApiError::Unavailable(format!("identification: {}", s.message())),
    })?
    .into_inner();
    let tier = match api.peers.channel(PeerService::Segmentation) {
        Ok(channel) => {
            let mut segmentation = SegmentationServiceClient::new(channel);
            let request = spb::GetCustomerValueRequest { name: format!("customers/{customer_id}/value") };
            match context::as_service(segmentation.get_customer_value(request)).await {
                Ok(v) => spb::Tier::try_from(v.into_inner().tier)
                    .ok()
                    .filter(|t| *t != spb::Tier::Unspecified)
                    .map(|t| t.as_str_name().trim_start_matches("TIER_").to_owned()),
                Err(_) => None,
            }
        }
        Err(_) => None,
    };
    let known = Known { customer, tier, offer, holiday: t.holiday.clone() };
    let available: Vec<String> = t.contents.iter().map(|c| c.language.clone()).collect();
    let chosen =
        messages::choose_language(&available, &language, &known.customer.preferred_language, &t.default_language)
            .to_owned();
    let content =
        t.contents.iter().find(|c| c.language.eq_ignore_ascii_case(&chosen)).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("template {id} has no content in its default language"))
        })?;
    let value = |name: &str| -> FieldValue {
        let spec = messages::field(name);
        if name.starts_with("account_manager") {
            return FieldValue::NotGranted;
        }
        if spec.is_some_and(|s| s.personal) && !pii {
            return FieldValue::Withheld;
        }
        known.value(name).map_or(FieldValue::Unknown, FieldValue::Known)
    };
    let parse = |text: &str| {
        Template::parse(text).map_err(|e| ApiError::Internal(anyhow::anyhow!("stored template {id}: {e}")))
    };
    let (subject, subject_fields) = parse(&content.subject)?.render(&value);
    let (body, body_fields) = parse(&content.body)?.render(&value);
    let mut fields: Vec<(String, Outcome)> = subject_fields;
    for (name, outcome) in body_fields {
        match fields.iter_mut().find(|(n, _)| *n == name) {
            Some((_, o)) if outcome == Outcome::Empty => *o = Outcome::Empty,
            Some(_) => {}
            None => fields.push((name, outcome)),
        }
    }
    let complete = fields.iter().all(|(_, o)| *o != Outcome::Empty);
    Ok(pb::RenderMessageResponse {
        customer_id: customer_id.to_string(),
        template: format!("templates/{id}"),
        language: chosen,
        channel: t.channel,
        subject,
        body,
        fields: fields
            .into_iter()
            .map(|(field, o)| pb::RenderedField {
                field,
                outcome: match o {
                    Outcome::Filled => pb::FieldOutcome::Filled,
                    Outcome::FallbackUnknown => pb::FieldOutcome::FallbackUnknown,
                    Outcome::FallbackWithheld => pb::FieldOutcome::FallbackWithheld,
                    Outcome::FallbackNotGranted => pb::FieldOutcome::FallbackNotGranted,
                    Outcome::Empty => pb::FieldOutcome::Empty,
                } as i32,
            })
            .collect(),
        complete,
    })
}
