//! Proto ⇄ domain for interactions: every check of a recorded interaction, each refusal
//! naming the exact field path (`interaction.items[2].quantity`), and the answers back,
//! masked for callers without `pii.read`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use idic_platform::{
    ApiError, ApiResult,
    jobs::timestamp,
    validate::{self, Violations},
};
use idic_proto::{common::v1 as common, interaction::v1 as pb};
use uuid::Uuid;

use crate::domain::{
    Direction, Interaction, ItemLine, Kind,
    interaction::{self, MAX_QUANTITY},
    masking::mask_text,
};
use idic_platform::customers::Reference;

/// Most product lines of one interaction.
const MAX_ITEMS: usize = 1000;
/// Most attributes of one interaction.
const MAX_ATTRIBUTES: usize = 50;
/// How far in the future an occurrence time may be (clock skew).
const MAX_FUTURE: Duration = Duration::minutes(5);
/// Longest duration of a contact.
const MAX_DURATION: Duration = Duration::hours(24);

/// A validated row of RecordInteraction or IngestInteractions, before its customer is
/// resolved: `interaction.id`, customer ids and `recorded_at` are set when stored.
#[derive(Debug, Clone)]
pub struct NewRow {
    /// The idempotency key.
    pub request_id: String,
    /// Who the interaction is with.
    pub reference: Reference,
    /// Create the customer when the identifiers match nobody.
    pub create_missing_customer: bool,
    /// Check the contact policy first (outbound contacts only).
    pub enforce_contact_policy: bool,
    /// The interaction.
    pub interaction: Interaction,
}

/// A point in time from the wire.
pub fn time_from_proto(t: &prost_types::Timestamp, field: &str) -> ApiResult<DateTime<Utc>> {
    u32::try_from(t.nanos)
        .ok()
        .and_then(|nanos| DateTime::<Utc>::from_timestamp(t.seconds, nanos))
        .ok_or_else(|| ApiError::invalid(field, "is not a valid timestamp"))
}

/// A duration in milliseconds, as the wire's Duration.
pub fn duration_to_proto(ms: i64) -> prost_types::Duration {
    prost_types::Duration { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// A channel code: known and specified.
pub fn channel_from_proto(value: i32, field: &str) -> ApiResult<i16> {
    match common::Channel::try_from(value) {
        Ok(common::Channel::Unspecified) => Err(ApiError::invalid(field, "is required")),
        Ok(channel) => Ok(channel as i16),
        Err(_) => Err(ApiError::invalid(field, format!("{value} is not a known channel"))),
    }
}

/// A kind: known and specified.
pub fn kind_from_proto(value: i32, field: &str) -> ApiResult<Kind> {
    match Kind::from_code(value) {
        Some(kind) => Ok(kind),
        None if value == 0 => Err(ApiError::invalid(field, "is required")),
        None => Err(ApiError::invalid(field, format!("{value} is not a known interaction kind"))),
    }
}

/// A direction; `None` when unspecified.
pub fn direction_from_proto(value: i32, field: &str) -> ApiResult<Option<Direction>> {
    match value {
        0 => Ok(None),
        v => Direction::from_code(v)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(field, format!("{v} is not a known direction"))),
    }
}

/// A customer reference (violations named relative to the reference).
pub fn reference_from_proto(reference: Option<common::CustomerRef>) -> ApiResult<Reference> {
    Reference::from_proto(reference)
}

/// Checks an optional `{collection}/{id}` reference to another resource (not looked up).
fn resource_ref(value: &str, collection: &str, field: &str) -> ApiResult<()> {
    if value.is_empty() {
        return Ok(());
    }
    match value.strip_prefix(collection).and_then(|rest| rest.strip_prefix('/')) {
        Some(id) if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic() && b != b'/') => {
            Ok(())
        }
        _ => Err(ApiError::invalid(field, format!("must be {collection}/{{id}}"))),
    }
}

fn attribute_key_ok(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
}

fn currency_ok(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Checks a RecordInteractionRequest (one row of an ingest) completely, answering every
/// violation at once.
pub fn row_from_proto(request: pb::RecordInteractionRequest, now: DateTime<Utc>) -> ApiResult<NewRow> {
    let pb::RecordInteractionRequest {
        request_id,
        customer,
        interaction,
        create_missing_customer,
        enforce_contact_policy,
    } = request;
    let mut v = Violations::new();
    match validate::request_id(&request_id, "request_id") {
        Ok(Some(_)) => {}
        Ok(None) => v.add("request_id", "is required"),
        Err(ApiError::InvalidArgument(violations)) => {
            for violation in violations {
                v.add(violation.field, violation.description);
            }
        }
        Err(other) => v.add("request_id", other.to_string()),
    }
    let reference = v.check("customer", reference_from_proto(customer));
    let interaction = match interaction {
        Some(interaction) => v.check("interaction", interaction_from_proto(interaction, now)),
        None => {
            v.add("interaction", "is required");
            None
        }
    };
    v.finish()?;
    let (Some(reference), Some(mut interaction)) = (reference, interaction) else {
        return Err(ApiError::invalid("", "is invalid"));
    };
    interaction.request_id.clone_from(&request_id);
    Ok(NewRow { request_id, reference, create_missing_customer, enforce_contact_policy, interaction })
}

/// Checks an Interaction of a request (output-only fields ignored).
fn interaction_from_proto(interaction: pb::Interaction, now: DateTime<Utc>) -> ApiResult<Interaction> {
    let pb::Interaction {
        name: _,
        customer_id: _,
        recorded_customer_id: _,
        channel,
        kind,
        direction,
        purpose,
        occur_time,
        record_time: _,
        items,
        total_amount,
        campaign,
        offer,
        offer_response,
        complaint,
        feedback: _,
        related_interaction,
        duration,
        handled_by,
        source,
        source_reference,
        note,
        attributes,
        request_id: _,
    } = interaction;
    let mut v = Violations::new();
    let channel = v.check("", channel_from_proto(channel, "channel"));
    let kind = v.check("", kind_from_proto(kind, "kind"));
    let given_direction = v.check("", direction_from_proto(direction, "direction"));
    let direction = match (kind, given_direction) {
        (Some(kind), Some(given)) => match Direction::resolve(kind, given) {
            Ok(d) => Some(d),
            Err(why) => {
                v.add("direction", why);
                // Checked on with the kind's own direction, to report every violation.
                kind.fixed_direction()
            }
        },
        _ => None,
    };
    let purpose = match common::ConsentPurpose::try_from(purpose) {
        Ok(p) => p as i16,
        Err(_) => {
            v.add("purpose", format!("{purpose} is not a known purpose"));
            0
        }
    };
    if let (Some(kind), Some(direction)) = (kind, direction)
        && interaction::is_outbound_contact(kind, direction)
        && purpose == 0
    {
        v.add("purpose", "is required for an outbound contact (outbound call, message sent, visit)");
    }
    // Postgres keeps microseconds: answers and stored rows must agree.
    let now = now.trunc_subsecs(6);
    let occurred_at = match occur_time {
        None => Some(now),
        Some(t) => match time_from_proto(&t, "occur_time") {
            Ok(t) if t > now + MAX_FUTURE => {
                v.add("occur_time", "must not be more than 5 minutes in the future");
                None
            }
            Ok(t) if t.timestamp() < 0 => {
                v.add("occur_time", "must be after 1970-01-01");
                None
            }
            Ok(t) => Some(t.trunc_subsecs(6)),
            Err(e) => {
                v.check("", Err::<(), _>(e));
                None
            }
        },
    };
    // Product lines: one currency for all, priced lines for purchases and returns.
    if items.len() > MAX_ITEMS {
        v.add("items", format!("must hold at most {MAX_ITEMS} lines"));
    }
    if kind.is_some_and(Kind::is_monetary) && items.is_empty() {
        v.add("items", "must hold at least one line for a PURCHASE or RETURN");
    }
    let mut currency: Option<String> = None;
    let mut lines = Vec::with_capacity(items.len().min(MAX_ITEMS));
    for (i, item) in items.into_iter().take(MAX_ITEMS).enumerate() {
        let path = format!("items[{i}]");
        let pb::ItemLine { product_id, configuration, category, quantity, unit_price, line_amount: _ } = item;
        v.check(&path, validate::required(&product_id, 128, "product_id"));
        v.check(&path, resource_ref(&configuration, "configurations", "configuration"));
        v.check(&path, validate::max_chars(&category, 128, "category"));
        let quantity = if !quantity.is_finite() || quantity < 0.0 {
            v.add(format!("{path}.quantity"), "must be a finite number, not negative");
            1.0
        } else if quantity > MAX_QUANTITY {
            v.add(format!("{path}.quantity"), "must be at most 1,000,000");
            1.0
        } else if quantity == 0.0 {
            if kind.is_some_and(Kind::needs_quantity) {
                v.add(format!("{path}.quantity"), "must be greater than 0 for this kind");
            }
            1.0
        } else {
            quantity
        };
        let mut unit_minor = None;
        match unit_price {
            None if kind.is_some_and(Kind::is_monetary) => {
                v.add(format!("{path}.unit_price"), "is required for a PURCHASE or RETURN line")
            }
            None => {}
            Some(common::Money { currency_code, amount_minor }) => {
                if !currency_ok(&currency_code) {
                    v.add(format!("{path}.unit_price.currency_code"), "must be an ISO 4217 code such as EUR");
                } else if currency.as_ref().is_some_and(|c| *c != currency_code) {
                    v.add(format!("{path}.unit_price.currency_code"), "must be the currency of every other line");
                } else {
                    currency = Some(currency_code);
                }
                if amount_minor < 0 {
                    v.add(format!("{path}.unit_price.amount_minor"), "must not be negative");
                } else {
                    unit_minor = Some(amount_minor);
                }
            }
        }
        let line_minor = match unit_minor.map(|u| interaction::line_amount(quantity, u)) {
            Some(None) => {
                v.add(format!("{path}.unit_price.amount_minor"), "quantity × unit price is too large");
                None
            }
            Some(amount) => amount,
            None => None,
        };
        lines.push(ItemLine { product_id, configuration, category, quantity, unit_minor, line_minor });
    }
    let total_minor = match (kind, total_amount) {
        (Some(kind), Some(common::Money { currency_code, amount_minor })) => {
            if !kind.is_monetary() {
                v.add("total_amount", "is only for a PURCHASE or RETURN");
            } else if !currency_ok(&currency_code) {
                v.add("total_amount.currency_code", "must be an ISO 4217 code such as EUR");
            } else if currency.as_ref().is_some_and(|c| *c != currency_code) {
                v.add("total_amount.currency_code", "must be the currency of the lines");
            } else if let Err(why) = interaction::check_total_sign(kind, amount_minor) {
                v.add("total_amount.amount_minor", why);
            } else {
                currency = Some(currency_code);
            }
            Some(amount_minor)
        }
        (Some(kind), None) if kind.is_monetary() => interaction::default_total(kind, &lines),
        _ => None,
    };
    v.check("", resource_ref(&campaign, "campaigns", "campaign"));
    v.check("", resource_ref(&offer, "offers", "offer"));
    let offer_response = match pb::OfferResponse::try_from(offer_response) {
        Ok(pb::OfferResponse::Unspecified) => 0,
        Ok(response) if offer.is_empty() => {
            v.add("offer_response", "requires an offer");
            response as i16
        }
        Ok(response) => response as i16,
        Err(_) => {
            v.add("offer_response", format!("{offer_response} is not a known offer response"));
            0
        }
    };
    if !complaint.is_empty() {
        v.check("", validate::resource_id(&complaint, "complaints", "complaint"));
    }
    if !related_interaction.is_empty() {
        v.check("", validate::resource_id(&related_interaction, "interactions", "related_interaction"));
    }
    let duration_ms = match duration {
        None => None,
        Some(prost_types::Duration { seconds, nanos }) => {
            let d = Duration::try_seconds(seconds).map(|d| d + Duration::nanoseconds(nanos.into()));
            match d {
                Some(d) if d >= Duration::zero() && d <= MAX_DURATION => Some(d.num_milliseconds()),
                _ => {
                    v.add("duration", "must be between 0 and 24 hours");
                    None
                }
            }
        }
    };
    if handled_by.starts_with("accountManagers/") {
        v.check("", validate::resource_id(&handled_by, "accountManagers", "handled_by"));
    } else {
        v.check("", validate::max_chars(&handled_by, 128, "handled_by"));
    }
    v.check("", validate::max_chars(&source, 64, "source"));
    v.check("", validate::max_chars(&source_reference, 128, "source_reference"));
    v.check("", validate::text(&note, 4000, "note"));
    if attributes.len() > MAX_ATTRIBUTES {
        v.add("attributes", format!("must hold at most {MAX_ATTRIBUTES} entries"));
    }
    for (key, value) in &attributes {
        if !attribute_key_ok(key) {
            v.add(format!("attributes[{key:?}]"), "keys are 1–64 characters of [a-z0-9_.-]");
        }
        v.check("", validate::text(value, 1024, &format!("attributes[{key:?}]")));
    }
    v.finish()?;
    let (Some(channel), Some(kind), Some(direction), Some(occurred_at)) = (channel, kind, direction, occurred_at)
    else {
        return Err(ApiError::invalid("", "is invalid"));
    };
    Ok(Interaction {
        id: Uuid::nil(),
        customer_id: None,
        recorded_customer_id: None,
        channel,
        kind,
        direction,
        purpose,
        occurred_at,
        recorded_at: now,
        items: lines,
        currency,
        total_minor,
        campaign,
        offer,
        offer_response,
        complaint,
        feedback: String::new(),
        related_interaction,
        duration_ms,
        handled_by,
        source,
        source_reference,
        note,
        attributes: attributes.into_iter().collect::<BTreeMap<_, _>>(),
        request_id: String::new(),
    })
}

/// Resource name of an interaction.
pub fn interaction_name(id: Uuid) -> String {
    format!("interactions/{id}")
}

/// A product line on the wire; amounts in `currency`.
pub fn item_to_proto(item: &ItemLine, currency: &str) -> pb::ItemLine {
    let money = |amount_minor| common::Money { currency_code: currency.to_owned(), amount_minor };
    pb::ItemLine {
        product_id: item.product_id.clone(),
        configuration: item.configuration.clone(),
        category: item.category.clone(),
        quantity: item.quantity,
        unit_price: item.unit_minor.map(money),
        line_amount: item.line_minor.map(money),
    }
}

/// An interaction on the wire; its note masked unless `pii` (the caller holds `pii.read`).
pub fn interaction_to_proto(i: &Interaction, pii: bool) -> pb::Interaction {
    let currency = i.currency.as_deref().unwrap_or_default();
    let id_string = |id: Option<Uuid>| id.map(|c| c.to_string()).unwrap_or_default();
    pb::Interaction {
        name: interaction_name(i.id),
        customer_id: id_string(i.customer_id),
        recorded_customer_id: id_string(i.recorded_customer_id),
        channel: i.channel.into(),
        kind: i.kind.code().into(),
        direction: i.direction as i32,
        purpose: i.purpose.into(),
        occur_time: Some(timestamp(i.occurred_at)),
        record_time: Some(timestamp(i.recorded_at)),
        items: i.items.iter().map(|item| item_to_proto(item, currency)).collect(),
        total_amount: i
            .total_minor
            .map(|amount_minor| common::Money { currency_code: currency.to_owned(), amount_minor }),
        campaign: i.campaign.clone(),
        offer: i.offer.clone(),
        offer_response: i.offer_response.into(),
        complaint: i.complaint.clone(),
        feedback: i.feedback.clone(),
        related_interaction: i.related_interaction.clone(),
        duration: i.duration_ms.map(duration_to_proto),
        handled_by: i.handled_by.clone(),
        source: i.source.clone(),
        source_reference: i.source_reference.clone(),
        note: if pii { i.note.clone() } else { mask_text(&i.note) },
        attributes: i.attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        request_id: i.request_id.clone(),
    }
}
