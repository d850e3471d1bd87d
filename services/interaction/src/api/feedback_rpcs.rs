//! Feedback RPCs: recording feedback (on the customer's timeline when one is given),
//! reading and listing it, and its summaries for product design and management.

use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use idic_platform::{
    ApiError, ApiResult, idempotency,
    jobs::timestamp,
    paging,
    shared_rpcs::PlatformTables as _,
    validate::{self, Violations},
};
use idic_proto::{common::v1 as common, interaction::v1 as pb};
use prost::Message as _;
use tonic::Request;
use uuid::Uuid;

use super::{InteractionApi, caller, convert};
use crate::{
    domain::{
        Direction, Interaction, Kind,
        complaints::is_code,
        feedback::{SentimentCounts, net_sentiment},
        interaction::new_id,
        masking::mask_text,
    },
    events,
    store::{
        feedback::{self as store, FeedbackFilter, FeedbackRow, GroupRow, Grouping},
        interactions,
        partitions::month_of,
    },
};
use idic_platform::customers::{Lookup, Reference};

/// How far in the future a time may be (clock skew).
const MAX_FUTURE: Duration = Duration::minutes(5);
/// Longest summarised period.
const MAX_SUMMARY_DAYS: i64 = 366;
/// FeedbackType numbers.
const COMMENT: i16 = 1;
const SURVEY_ANSWER: i16 = 3;

fn feedback_name(id: Uuid) -> String {
    format!("feedback/{id}")
}

fn feedback_to_proto(f: &FeedbackRow, pii: bool) -> pb::Feedback {
    let FeedbackRow {
        id,
        customer_id,
        channel,
        feedback_type,
        topic,
        product_id,
        sentiment,
        rating,
        text,
        created_at,
        interaction,
        campaign,
    } = f;
    pb::Feedback {
        name: feedback_name(*id),
        customer_id: customer_id.map(|c| c.to_string()).unwrap_or_default(),
        channel: i32::from(*channel),
        feedback_type: i32::from(*feedback_type),
        topic: topic.clone(),
        product_id: product_id.clone(),
        sentiment: i32::from(*sentiment),
        rating: rating.map(i32::from),
        text: if pii { text.clone() } else { mask_text(text) },
        create_time: Some(timestamp(*created_at)),
        interaction: interaction.clone(),
        campaign: campaign.clone(),
    }
}

fn type_from_proto(value: i32, field: &str) -> ApiResult<Option<i16>> {
    match pb::FeedbackType::try_from(value) {
        Ok(pb::FeedbackType::Unspecified) => Ok(None),
        Ok(t) => Ok(Some(t as i16)),
        Err(_) => Err(ApiError::invalid(field, format!("{value} is not a FeedbackType"))),
    }
}

fn sentiment_from_proto(value: i32, field: &str) -> ApiResult<Option<i16>> {
    match pb::Sentiment::try_from(value) {
        Ok(pb::Sentiment::Unspecified) => Ok(None),
        Ok(s) => Ok(Some(s as i16)),
        Err(_) => Err(ApiError::invalid(field, format!("{value} is not a Sentiment"))),
    }
}

fn check_topic(value: &str, field: &str) -> ApiResult<()> {
    if is_code(value) { Ok(()) } else { Err(ApiError::invalid(field, "must be 1–64 characters of [a-z0-9_.-]")) }
}

/// RecordFeedback.
pub(super) async fn record(
    api: &InteractionApi,
    request: Request<pb::RecordFeedbackRequest>,
) -> ApiResult<pb::Feedback> {
    let pii = caller(&request)?.has_scope("pii.read");
    let hash = idempotency::request_hash(&request.get_ref().encode_to_vec());
    let pb::RecordFeedbackRequest { request_id, customer, feedback } = request.into_inner();
    // Postgres keeps microseconds: answers must not carry more than is stored.
    let now = Utc::now().trunc_subsecs(6);
    let mut v = Violations::new();
    let request_id = if request_id.is_empty() {
        v.add("request_id", "is required");
        None
    } else {
        v.check("", validate::request_id(&request_id, "request_id")).flatten().map(str::to_owned)
    };
    let reference: Option<Reference> =
        if customer.is_some() { v.check("customer", convert::reference_from_proto(customer)) } else { None };
    let pb::Feedback {
        name: _,
        customer_id: _,
        channel,
        feedback_type,
        topic,
        product_id,
        sentiment,
        rating,
        text,
        create_time,
        interaction: _,
        campaign,
    } = feedback.unwrap_or_default();
    let channel = v.check("", convert::channel_from_proto(channel, "feedback.channel"));
    let feedback_type =
        v.check("", type_from_proto(feedback_type, "feedback.feedback_type")).flatten().unwrap_or(COMMENT);
    v.check("", check_topic(&topic, "feedback.topic"));
    v.check("", validate::text(&product_id, 128, "feedback.product_id"));
    let sentiment = v.check("", sentiment_from_proto(sentiment, "feedback.sentiment")).flatten().unwrap_or(0);
    if rating.is_some_and(|r| !(1..=5).contains(&r)) {
        v.add("feedback.rating", "must be from 1 to 5");
    }
    v.check("", validate::text(&text, 8000, "feedback.text"));
    let created_at = match create_time {
        None => Some(now),
        Some(t) => v
            .check("", convert::time_from_proto(&t, "feedback.create_time"))
            .map(|t| t.trunc_subsecs(6))
            .and_then(|t| {
                if t > now + MAX_FUTURE {
                    v.add("feedback.create_time", "must not be in the future");
                    None
                } else {
                    Some(t)
                }
            }),
    };
    let campaign_ok = campaign.is_empty()
        || campaign
            .strip_prefix("campaigns/")
            .is_some_and(|id| (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic() && b != b'/'));
    if !campaign_ok {
        v.add("feedback.campaign", "must be campaigns/{id}");
    }
    v.finish()?;
    let (Some(request_id), Some(channel), Some(created_at)) = (request_id, channel, created_at) else {
        return Err(ApiError::invalid("feedback", "is required"));
    };
    let customer = match &reference {
        Some(reference) => Some(api.customers().resolve(Lookup { reference, create: false }).await?),
        None => None,
    };
    let id = Uuid::new_v4();
    let timeline = match customer {
        None => None,
        Some(customer) => {
            let interaction_id =
                new_id(created_at).ok_or_else(|| ApiError::invalid("feedback.create_time", "must be after 1970"))?;
            Some(Interaction {
                id: interaction_id,
                customer_id: Some(customer),
                recorded_customer_id: Some(customer),
                channel,
                kind: if feedback_type == SURVEY_ANSWER { Kind::SurveyAnswer } else { Kind::Feedback },
                direction: Direction::Inbound,
                purpose: 0,
                occurred_at: created_at,
                recorded_at: now,
                items: Vec::new(),
                currency: None,
                total_minor: None,
                campaign: campaign.clone(),
                offer: String::new(),
                offer_response: 0,
                complaint: String::new(),
                feedback: feedback_name(id),
                related_interaction: String::new(),
                duration_ms: None,
                handled_by: String::new(),
                source: "feedback".to_owned(),
                source_reference: String::new(),
                note: String::new(),
                attributes: Default::default(),
                request_id: feedback_name(id),
            })
        }
    };
    if let Some(t) = &timeline {
        api.store().partitions.ensure([month_of(t.occurred_at)]).await.map_err(ApiError::from)?;
    }
    let row = FeedbackRow {
        id,
        customer_id: customer,
        channel,
        feedback_type,
        topic,
        product_id,
        sentiment,
        rating: rating.map(|r| r as i16),
        text,
        created_at,
        interaction: timeline.as_ref().map(|t| convert::interaction_name(t.id)).unwrap_or_default(),
        campaign,
    };
    let mut tx = api.pool().begin().await?;
    match idempotency::claim(&mut tx, "RecordFeedback", &request_id, &hash).await? {
        idempotency::Claim::Replay(bytes) => {
            let mut first = pb::Feedback::decode(bytes.as_slice())
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored RecordFeedback answer: {e}")))?;
            if !pii {
                first.text = mask_text(&first.text);
            }
            return Ok(first);
        }
        idempotency::Claim::New => {}
    }
    store::insert(&mut tx, &row).await?;
    if let Some(t) = &timeline {
        interactions::insert(&mut tx, std::slice::from_ref(t), now).await.map_err(ApiError::from)?;
        store::link_interaction(&mut tx, t.id, t.occurred_at, &t.feedback).await?;
        idic_platform::events::enqueue(&mut tx, events::INTERACTION_RECORDED, &events::interaction_recorded(t))
            .await
            .map_err(ApiError::from)?;
    }
    let answer = feedback_to_proto(&row, true);
    idempotency::complete(&mut tx, "RecordFeedback", &request_id, &answer.encode_to_vec()).await?;
    tx.commit().await?;
    Ok(feedback_to_proto(&row, pii))
}

/// GetFeedback.
pub(super) async fn get(api: &InteractionApi, request: Request<pb::GetFeedbackRequest>) -> ApiResult<pb::Feedback> {
    let pii = caller(&request)?.has_scope("pii.read");
    let pb::GetFeedbackRequest { name } = request.into_inner();
    let id = validate::resource_id(&name, "feedback", "name")?;
    let row = store::get(api.pool(), id).await?.ok_or_else(|| ApiError::NotFound(feedback_name(id)))?;
    Ok(feedback_to_proto(&row, pii))
}

fn period_bounds(
    period: Option<&common::Period>,
    v: &mut Violations,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let Some(common::Period { start_time, end_time }) = period else { return (None, None) };
    let start = start_time.as_ref().and_then(|t| v.check("", convert::time_from_proto(t, "period.start_time")));
    let end = end_time.as_ref().and_then(|t| v.check("", convert::time_from_proto(t, "period.end_time")));
    if let (Some(s), Some(e)) = (start, end)
        && e < s
    {
        v.add("period.end_time", "must not be before start_time");
    }
    (start, end)
}

/// The filters shared by ListFeedback and GetFeedbackSummary.
fn common_filter(
    topic: String,
    product_id: String,
    channel: i32,
    feedback_type: i32,
    v: &mut Violations,
) -> FeedbackFilter {
    if !topic.is_empty() {
        v.check("", check_topic(&topic, "topic"));
    }
    v.check("", validate::text(&product_id, 128, "product_id"));
    FeedbackFilter {
        topic: (!topic.is_empty()).then_some(topic),
        product_id: (!product_id.is_empty()).then_some(product_id),
        channel: if channel == 0 { None } else { v.check("", convert::channel_from_proto(channel, "channel")) },
        feedback_type: v.check("", type_from_proto(feedback_type, "feedback_type")).flatten(),
        ..FeedbackFilter::default()
    }
}

/// ListFeedback: newest first, filtered, in keyset pages.
pub(super) async fn list(
    api: &InteractionApi,
    request: Request<pb::ListFeedbackRequest>,
) -> ApiResult<pb::ListFeedbackResponse> {
    let pii = caller(&request)?.has_scope("pii.read");
    let pb::ListFeedbackRequest {
        page_size,
        page_token,
        period,
        topic,
        product_id,
        channel,
        feedback_type,
        sentiment,
        customer,
    } = request.into_inner();
    let mut v = Violations::new();
    let size = v.check("", paging::page_size(page_size, "page_size")).unwrap_or(paging::DEFAULT_PAGE_SIZE);
    let (from, to) = period_bounds(period.as_ref(), &mut v);
    let mut filter = common_filter(topic, product_id, channel, feedback_type, &mut v);
    filter.sentiment = v.check("", sentiment_from_proto(sentiment, "sentiment")).flatten();
    let reference: Option<Reference> =
        if customer.is_some() { v.check("customer", convert::reference_from_proto(customer)) } else { None };
    v.finish()?;
    (filter.from, filter.to) = (from, to);
    if let Some(reference) = &reference {
        let customer = api.customers().resolve(Lookup { reference, create: false }).await?;
        let mut all = api.store().merged_into(customer).await.map_err(ApiError::from)?;
        all.push(customer);
        filter.customers = Some(all);
    }
    let fingerprint = format!("{filter:?}");
    let after: Option<(DateTime<Utc>, Uuid)> = paging::decode_page_token(&page_token, &fingerprint, "page_token")?;
    let rows = store::list(api.pool(), &filter, after, i64::from(size) + 1).await?;
    let has_more = rows.len() > size as usize;
    let rows: Vec<FeedbackRow> = rows.into_iter().take(size as usize).collect();
    let next_page_token = match (has_more, rows.last()) {
        (true, Some(last)) => paging::next_page_token(&(last.created_at, last.id), &fingerprint),
        _ => String::new(),
    };
    Ok(pb::ListFeedbackResponse { feedback: rows.iter().map(|r| feedback_to_proto(r, pii)).collect(), next_page_token })
}

fn group_to_proto(g: &GroupRow) -> pb::FeedbackGroup {
    let GroupRow {
        topic,
        product_id,
        channel,
        date,
        count,
        suggestions,
        positive,
        neutral,
        negative,
        mixed,
        unknown_sentiment,
        average_rating,
        recent,
    } = g;
    pb::FeedbackGroup {
        topic: topic.clone(),
        product_id: product_id.clone(),
        channel: i32::from(*channel),
        date: date.clone(),
        count: *count,
        suggestions: *suggestions,
        positive: *positive,
        neutral: *neutral,
        negative: *negative,
        mixed: *mixed,
        unknown_sentiment: *unknown_sentiment,
        net_sentiment: net_sentiment(SentimentCounts {
            count: *count,
            positive: *positive,
            negative: *negative,
            unknown: *unknown_sentiment,
        }),
        average_rating: *average_rating,
        recent_feedback: recent.iter().map(|id| feedback_name(*id)).collect(),
    }
}

/// GetFeedbackSummary.
pub(super) async fn summary(
    api: &InteractionApi,
    request: Request<pb::GetFeedbackSummaryRequest>,
) -> ApiResult<pb::FeedbackSummary> {
    let pb::GetFeedbackSummaryRequest {
        period,
        group_by,
        time_zone,
        topic,
        product_id,
        channel,
        feedback_type,
        page_size,
        page_token,
    } = request.into_inner();
    let mut v = Violations::new();
    let (from, to) = period_bounds(period.as_ref(), &mut v);
    match (from, to) {
        (Some(s), Some(e)) if e - s > Duration::days(MAX_SUMMARY_DAYS) => {
            v.add("period", format!("must be at most {MAX_SUMMARY_DAYS} days"));
        }
        (Some(_), Some(_)) => {}
        _ => {
            if from.is_none() {
                v.add("period.start_time", "is required");
            }
            if to.is_none() {
                v.add("period.end_time", "is required");
            }
        }
    }
    let mut grouping = Grouping::default();
    if group_by.is_empty() || group_by.len() > 4 {
        v.add("group_by", "must list 1 to 4 dimensions");
    }
    for (i, g) in group_by.iter().enumerate() {
        let flag = match pb::FeedbackGroupBy::try_from(*g) {
            Ok(pb::FeedbackGroupBy::Topic) => &mut grouping.topic,
            Ok(pb::FeedbackGroupBy::Product) => &mut grouping.product,
            Ok(pb::FeedbackGroupBy::Channel) => &mut grouping.channel,
            Ok(pb::FeedbackGroupBy::Day) => &mut grouping.day,
            _ => {
                v.add(format!("group_by[{i}]"), "must be TOPIC, PRODUCT, CHANNEL or DAY");
                continue;
            }
        };
        if *flag {
            v.add(format!("group_by[{i}]"), "is listed twice");
        }
        *flag = true;
    }
    let zone = v.check("", super::policy_rpcs::time_zone(&time_zone, "time_zone"));
    let mut filter = common_filter(topic, product_id, channel, feedback_type, &mut v);
    let size = v.check("", paging::page_size(page_size, "page_size")).unwrap_or(paging::DEFAULT_PAGE_SIZE);
    v.finish()?;
    let Some((zone, _)) = zone else { return Err(ApiError::invalid("time_zone", "is not a time zone")) };
    (filter.from, filter.to) = (from, to);
    let fingerprint = format!("{filter:?}|{grouping:?}|{zone}");
    let offset: i64 = paging::decode_page_token(&page_token, &fingerprint, "page_token")?.unwrap_or(0);
    let (groups, total_groups) = store::summary(api.pool(), &filter, grouping, &zone, offset, i64::from(size)).await?;
    let (all, _) = store::summary(api.pool(), &filter, Grouping::default(), &zone, 0, 1).await?;
    let next = offset + groups.len() as i64;
    let next_page_token =
        if next < total_groups { paging::next_page_token(&next, &fingerprint) } else { String::new() };
    let total = all.first().map(group_to_proto).unwrap_or_default();
    Ok(pb::FeedbackSummary { groups: groups.iter().map(group_to_proto).collect(), next_page_token, total: Some(total) })
}
