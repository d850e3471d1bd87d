//! Campaign RPCs: CreateCampaign, GetCampaign, ListCampaigns, LaunchCampaign (a job that
//! snapshots the segment, splits it into treatment and control, and contacts the treatment
//! group through interaction with contact policy and consent enforced) and GetCampaignReport
//! (treatment against control with uplifts and their confidence intervals).

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt as _;
use idic_platform::{
    ApiError, ApiResult, audit, context, events,
    jobs::timestamp,
    paging,
    validate::{self, Violations},
};
use idic_proto::{common::v1 as common, customization::v1 as pb, interaction::v1 as ipb, segmentation::v1 as spb};
use prost::Message as _;
use tonic::{Code, Request};
use uuid::Uuid;

use super::{
    CustomizationApi, caller, message_rpcs,
    shared::{self, interaction, refusal_of, segmentation},
};
use crate::{
    domain::campaigns as domain,
    store::{
        campaigns::{self as store, CampaignRow},
        offers as ostore, templates as tstore,
    },
};

/// The launch job's kind.
pub const LAUNCH_KIND: &str = "customization.campaign_launch";
/// Stream of campaign contacts (published).
pub const CAMPAIGN_CONTACTED: &str = "campaign.contacted";
/// Channels a campaign can contact on.
const CAMPAIGN_CHANNELS: [common::Channel; 5] = [
    common::Channel::Email,
    common::Channel::Sms,
    common::Channel::Letter,
    common::Channel::App,
    common::Channel::CallCentre,
];
/// Treatment members contacted at once.
const CONCURRENT_CONTACTS: usize = 8;
/// Rounds in a row in which no member could be handled (peers down) before the launch fails.
const MAX_STALLS: u32 = 10;

fn campaign_id(name: &str, field: &str) -> ApiResult<String> {
    match name.strip_prefix("campaigns/") {
        Some(id) if !id.is_empty() && id.len() <= 63 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
            Ok(id.to_owned())
        }
        _ => Err(ApiError::invalid(field, "must be campaigns/{campaign_id}")),
    }
}

fn holdout(c: &pb::Campaign) -> f64 {
    c.holdout_share.unwrap_or(0.1)
}

fn window(c: &pb::Campaign) -> Duration {
    c.measurement_window.as_ref().map_or(Duration::days(30), |d| Duration::seconds(d.seconds))
}

fn body_of(c: &pb::Campaign) -> Vec<u8> {
    pb::Campaign {
        name: String::new(),
        state: 0,
        assignment_seed: String::new(),
        launch_job: String::new(),
        launch_time: None,
        measurement_end_time: None,
        counts: None,
        create_time: None,
        update_time: None,
        etag: String::new(),
        ..c.clone()
    }
    .encode_to_vec()
}

async fn to_proto(api: &CustomizationApi, row: &CampaignRow) -> ApiResult<pb::Campaign> {
    let mut c = pb::Campaign::decode(row.body.as_slice()).map_err(|e| ApiError::Internal(e.into()))?;
    let (treatment, control, contacted, refused) = store::counts(&api.pool, &row.campaign_id).await?;
    c.name = format!("campaigns/{}", row.campaign_id);
    c.state = i32::from(row.state);
    c.assignment_seed = row.assignment_seed.clone();
    c.launch_job = row.launch_job.map(|j| format!("jobs/{j}")).unwrap_or_default();
    c.launch_time = row.launch_time.map(timestamp);
    c.measurement_end_time = row.measurement_end_time.map(timestamp);
    c.counts = Some(pb::CampaignCounts { targeted: treatment + control, treatment, control, contacted, refused });
    c.create_time = Some(timestamp(row.create_time));
    c.update_time = Some(timestamp(row.update_time));
    c.etag = row.revision.to_string();
    Ok(c)
}

/// CreateCampaign.
pub(super) async fn create(api: &CustomizationApi, request: pb::CreateCampaignRequest) -> ApiResult<pb::Campaign> {
    let pb::CreateCampaignRequest { campaign_id: wanted, campaign, request_id } = request;
    let mut v = Violations::new();
    if !wanted.is_empty() && campaign_id(&format!("campaigns/{wanted}"), "campaign_id").is_err() {
        v.add("campaign_id", "must be 1–63 letters, digits or hyphens");
    }
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten().map(str::to_owned);
    let mut c = campaign.unwrap_or_default();
    v.check("", validate::required(&c.display_name, 200, "campaign.display_name"));
    v.check("", validate::text(&c.description, 2000, "campaign.description"));
    let segment_ok = c.segment.strip_prefix("segments/").is_some_and(|s| !s.is_empty());
    if !segment_ok {
        v.add("campaign.segment", "is required: segments/{segment_id}");
    }
    if c.offer.is_empty() && c.template.is_empty() {
        v.add("campaign", "needs an offer, a template or both");
    }
    let channel = common::Channel::try_from(c.channel).ok().filter(|ch| CAMPAIGN_CHANNELS.contains(ch));
    if channel.is_none() {
        v.add("campaign.channel", "must be EMAIL, SMS, LETTER, APP or CALL_CENTRE");
    }
    match common::ConsentPurpose::try_from(c.purpose) {
        Ok(common::ConsentPurpose::Unspecified) => c.purpose = common::ConsentPurpose::Marketing as i32,
        Ok(_) => {}
        Err(_) => v.add("campaign.purpose", "must be a known consent purpose"),
    }
    if !(0.01..=0.5).contains(&holdout(&c)) {
        v.add("campaign.holdout_share", "must be between 0.01 and 0.5");
    }
    let days = window(&c).num_seconds() as f64 / 86_400.0;
    if !(1.0..=365.0).contains(&days) {
        v.add("campaign.measurement_window", "must be between 1 and 365 days");
    }
    if c.max_contacts.is_some_and(|m| m < 0) {
        v.add("campaign.max_contacts", "must not be negative");
    }
    v.finish()?;
    // References: the offer (allowing the channel), the template (for the channel), the segment.
    let mut conn = api.pool.acquire().await?;
    let mut template = c.template.clone();
    if !c.offer.is_empty() {
        let id = c.offer.trim_start_matches("offers/");
        let row = ostore::get(&mut conn, id).await?.ok_or_else(|| ApiError::NotFound(c.offer.clone()))?;
        if !row.channels.contains(&(c.channel as i16)) {
            return Err(ApiError::invalid("campaign.channel", "the offer is not allowed on this channel"));
        }
        let offer = pb::Offer::decode(row.body.as_slice()).map_err(|e| ApiError::Internal(e.into()))?;
        if template.is_empty() {
            template = offer.template;
        }
    }
    if template.is_empty() && channel != Some(common::Channel::CallCentre) {
        return Err(ApiError::invalid(
            "campaign.template",
            "a message channel needs a template (the campaign's or the offer's)",
        ));
    }
    if !template.is_empty() {
        let id = template.trim_start_matches("templates/");
        let row = tstore::get(&mut conn, id).await?.ok_or_else(|| ApiError::NotFound(template.clone()))?;
        if row.channel != c.channel as i16 {
            return Err(ApiError::invalid("campaign.template", "the template is for another channel"));
        }
    }
    drop(conn);
    let mut segmentation = segmentation(api)?;
    context::as_service(segmentation.get_segment(spb::GetSegmentRequest { name: c.segment.clone() })).await.map_err(
        |s| match s.code() {
            Code::NotFound => ApiError::NotFound(c.segment.clone()),
            _ => ApiError::Unavailable(format!("segmentation: {}", s.message())),
        },
    )?;
    let id = shared::new_id("campaign", wanted, request_id.as_deref());
    let row = CampaignRow {
        campaign_id: id.clone(),
        state: pb::CampaignState::Draft as i16,
        segment: c.segment.clone(),
        body: body_of(&c),
        assignment_seed: Uuid::new_v4().simple().to_string(),
        launch_job: None,
        launch_time: None,
        measurement_end_time: None,
        revision: 1,
        create_time: Utc::now(),
        update_time: Utc::now(),
    };
    let inserted = store::insert(&api.pool, &row).await?;
    let stored = store::get(&api.pool, &id).await?.ok_or_else(|| ApiError::NotFound(format!("campaigns/{id}")))?;
    let replayed = request_id.is_some() && stored.body == row.body;
    if !inserted && !replayed {
        return Err(ApiError::AlreadyExists(format!("campaigns/{id}")));
    }
    to_proto(api, &stored).await
}

/// GetCampaign.
pub(super) async fn get(api: &CustomizationApi, request: pb::GetCampaignRequest) -> ApiResult<pb::Campaign> {
    let pb::GetCampaignRequest { name } = request;
    let id = campaign_id(&name, "name")?;
    let row = store::get(&api.pool, &id).await?.ok_or(ApiError::NotFound(name))?;
    to_proto(api, &row).await
}

/// ListCampaigns, newest first.
pub(super) async fn list(
    api: &CustomizationApi,
    request: pb::ListCampaignsRequest,
) -> ApiResult<pb::ListCampaignsResponse> {
    let pb::ListCampaignsRequest { page_size, page_token, states, segment } = request;
    let mut v = Violations::new();
    let size = v.check("", paging::page_size(page_size, "page_size"));
    for (i, s) in states.iter().enumerate() {
        if matches!(pb::CampaignState::try_from(*s), Ok(pb::CampaignState::Unspecified) | Err(_)) {
            v.add(format!("states[{i}]"), "must be a known campaign state");
        }
    }
    if !segment.is_empty() && segment.strip_prefix("segments/").is_none_or(str::is_empty) {
        v.add("segment", "must be segments/{segment_id}");
    }
    let filter = format!("{states:?}|{segment}");
    let cursor = v.check("", paging::decode_page_token::<(DateTime<Utc>, String)>(&page_token, &filter, "page_token"));
    v.finish()?;
    let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE) as usize;
    let states: Vec<i16> = states.iter().map(|s| *s as i16).collect();
    let segment = (!segment.is_empty()).then_some(segment.as_str());
    let mut rows = store::list(&api.pool, &states, segment, cursor.flatten(), size as i64 + 1).await?;
    let more = rows.len() > size;
    rows.truncate(size);
    let next_page_token = match (more, rows.last()) {
        (true, Some(last)) => paging::next_page_token(&(last.create_time, last.campaign_id.clone()), &filter),
        _ => String::new(),
    };
    let mut campaigns = Vec::with_capacity(rows.len());
    for row in &rows {
        campaigns.push(to_proto(api, row).await?);
    }
    Ok(pb::ListCampaignsResponse { campaigns, next_page_token })
}

/// LaunchCampaign: checks, records the job and runs it in the background.
pub(super) async fn launch(
    api: &CustomizationApi,
    request: Request<pb::LaunchCampaignRequest>,
) -> ApiResult<common::Job> {
    let caller = caller(&request)?;
    let pb::LaunchCampaignRequest { name, validate_only, request_id } = request.into_inner();
    let mut v = Violations::new();
    let id = v.check("", campaign_id(&name, "name"));
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten().map(str::to_owned);
    v.finish()?;
    let Some(id) = id else { return Err(ApiError::invalid("name", "is required")) };
    if let Some(key) = &request_id
        && let Some(job) = api.jobs.by_request_id(LAUNCH_KIND, key).await?
    {
        return api.jobs.get(common::GetJobRequest { name: format!("jobs/{job}") }).await;
    }
    let row = store::get(&api.pool, &id).await?.ok_or_else(|| ApiError::NotFound(name.clone()))?;
    if row.state != pb::CampaignState::Draft as i16 {
        return Err(ApiError::FailedPrecondition(format!("{name} is not DRAFT")));
    }
    let campaign = pb::Campaign::decode(row.body.as_slice()).map_err(|e| ApiError::Internal(e.into()))?;
    let now = Utc::now();
    let end = now + window(&campaign);
    if !campaign.offer.is_empty() {
        let mut conn = api.pool.acquire().await?;
        let offer = ostore::get(&mut conn, campaign.offer.trim_start_matches("offers/"))
            .await?
            .ok_or_else(|| ApiError::FailedPrecondition(format!("{} no longer exists", campaign.offer)))?;
        let valid_now = offer.valid_from.is_none_or(|f| f <= now) && offer.valid_until.is_none_or(|u| u > now);
        if offer.state != pb::OfferState::Active as i16 || !valid_now {
            return Err(ApiError::FailedPrecondition(format!("{} is not ACTIVE and valid now", campaign.offer)));
        }
    }
    let params = serde_json::json!({ "request_id": request_id, "campaign": id, "validate_only": validate_only });
    let job = api.jobs.create(LAUNCH_KIND, &caller.name, params).await?;
    if !validate_only
        && !store::transition(
            &api.pool,
            &id,
            &[pb::CampaignState::Draft as i16],
            pb::CampaignState::Launching as i16,
            Some((job, now, end)),
        )
        .await?
    {
        api.jobs.fail(job, "the campaign was launched meanwhile").await?;
        return Err(ApiError::FailedPrecondition(format!("{name} is not DRAFT")));
    }
    let mut tx = api.pool.begin().await?;
    audit::record(
        &mut tx,
        audit::AuditRecord {
            caller: &caller.name,
            action: "LaunchCampaign",
            resource: &name,
            reason: "",
            detail: serde_json::json!({ "job": format!("jobs/{job}"), "validate_only": validate_only }),
        },
    )
    .await?;
    tx.commit().await?;
    let api_for_job = api.clone();
    tokio::spawn(async move {
        let result = run_launch(&api_for_job, job, &id, &row, &campaign, validate_only).await;
        let jobs = &api_for_job.jobs;
        match result {
            Ok(Some(summary)) => {
                if !validate_only {
                    let _ = store::transition(
                        &api_for_job.pool,
                        &id,
                        &[pb::CampaignState::Launching as i16],
                        pb::CampaignState::Running as i16,
                        None,
                    )
                    .await;
                }
                let _ = jobs.succeed(job, summary).await;
            }
            Ok(None) => {
                let _ = store::transition(
                    &api_for_job.pool,
                    &id,
                    &[pb::CampaignState::Launching as i16],
                    pb::CampaignState::Cancelled as i16,
                    None,
                )
                .await;
            }
            Err(e) => {
                tracing::warn!(error = %e, campaign = %id, "campaign launch failed");
                let _ = store::transition(
                    &api_for_job.pool,
                    &id,
                    &[pb::CampaignState::Launching as i16],
                    pb::CampaignState::Failed as i16,
                    None,
                )
                .await;
                let _ = jobs.fail(job, &format!("launch failed: {e}")).await;
            }
        }
    });
    api.jobs.get(common::GetJobRequest { name: format!("jobs/{job}") }).await
}

/// The launch: snapshot and split, then contact every pending treatment member. `None` when
/// the job was cancelled.
async fn run_launch(
    api: &CustomizationApi,
    job: Uuid,
    id: &str,
    row: &CampaignRow,
    campaign: &pb::Campaign,
    validate_only: bool,
) -> ApiResult<Option<serde_json::Value>> {
    api.jobs.start(job, 0).await?;
    // The segment's members, page by page, split by the campaign's seed.
    let mut segmentation = segmentation(api)?;
    let mut token = String::new();
    let mut members: Vec<(Uuid, i16)> = Vec::new();
    loop {
        let page = context::as_service(segmentation.list_segment_members(spb::ListSegmentMembersRequest {
            segment: row.segment.clone(),
            page_size: 1000,
            page_token: token.clone(),
        }))
        .await
        .map_err(|s| ApiError::Unavailable(format!("segmentation: {}", s.message())))?
        .into_inner();
        for m in &page.members {
            let Some(customer) = m.customer.strip_prefix("customers/").and_then(|c| Uuid::parse_str(c).ok()) else {
                continue;
            };
            let arm =
                if domain::in_control(&row.assignment_seed, &customer.to_string(), holdout(campaign)) { 2 } else { 1 };
            members.push((customer, arm));
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let treatment = members.iter().filter(|m| m.1 == 1).count();
    let control = members.len() - treatment;
    if validate_only {
        return Ok(Some(
            serde_json::json!({ "targeted": members.len(), "treatment": treatment, "control": control, "validate_only": true }),
        ));
    }
    store::insert_members(&api.pool, id, &members).await?;
    let total = treatment as i64;
    let budget = campaign.max_contacts.unwrap_or(i64::MAX);
    let mut done = 0i64;
    let mut contacted = store::counts(&api.pool, id).await?.2;
    let mut stalls = 0u32;
    loop {
        let batch = store::pending(&api.pool, id, 500).await?;
        if batch.is_empty() {
            break;
        }
        let contacts: Vec<_> = batch
            .iter()
            .map(|&customer| {
                let over_budget = contacted >= budget;
                async move {
                    // Beyond the budget a member is counted as not contacted, without a reason.
                    let refusal = if over_budget {
                        Ok(Some(pb::ContactRefusalReason::Unspecified))
                    } else {
                        contact(api, id, campaign, customer).await
                    };
                    (customer, refusal)
                }
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(contacts).buffer_unordered(CONCURRENT_CONTACTS).collect().await;
        let mut progressed = false;
        for (customer, result) in results {
            let (reached, refusal) = match result {
                Ok(None) => {
                    contacted += 1;
                    (true, 0)
                }
                Ok(Some(reason)) => (false, reason as i16),
                // A peer that did not answer in time: the member stays pending and is tried
                // again (the contact is idempotent, so one that did go through is not doubled).
                Err(ApiError::Unavailable(message) | ApiError::DeadlineExceeded(message)) => {
                    tracing::debug!(%customer, %message, "campaign contact deferred");
                    continue;
                }
                Err(e) => return Err(e),
            };
            store::set_outcome(&api.pool, id, customer, reached, refusal).await?;
            done += 1;
            progressed = true;
        }
        stalls = if progressed { 0 } else { stalls + 1 };
        if stalls >= MAX_STALLS {
            return Err(ApiError::Unavailable("peers did not answer; the launch can be retried".into()));
        }
        if !progressed {
            tokio::time::sleep(StdDuration::from_millis(500 * u64::from(stalls))).await;
        }
        if !api.jobs.progress(job, done, total).await? {
            return Ok(None);
        }
    }
    let (treatment, control, contacted, refused) = store::counts(&api.pool, id).await?;
    Ok(Some(serde_json::json!({
        "targeted": treatment + control, "treatment": treatment, "control": control,
        "contacted": contacted, "refused": refused,
    })))
}

/// Contacts one treatment member: offer eligibility and caps, the message rendered, then the
/// outbound contact recorded through interaction with contact policy and consent enforced.
/// Answers the refusal, if any.
async fn contact(
    api: &CustomizationApi,
    id: &str,
    campaign: &pb::Campaign,
    customer: Uuid,
) -> ApiResult<Option<pb::ContactRefusalReason>> {
    let channel = campaign.channel;
    let mut presentation_offer = None;
    if !campaign.offer.is_empty() {
        let offer_id = campaign.offer.trim_start_matches("offers/").to_owned();
        let mut conn = api.pool.acquire().await?;
        let row = ostore::get(&mut conn, &offer_id).await?.ok_or_else(|| ApiError::NotFound(campaign.offer.clone()))?;
        drop(conn);
        let offer = pb::Offer::decode(row.body.as_slice()).map_err(|e| ApiError::Internal(e.into()))?;
        if !offer.eligibility_rule.trim().is_empty() {
            let mut segmentation = segmentation(api)?;
            let answer = context::as_service(segmentation.evaluate_rule(spb::EvaluateRuleRequest {
                customer: format!("customers/{customer}"),
                rule: offer.eligibility_rule.clone(),
                explain: false,
            }))
            .await;
            match answer {
                Ok(a) if a.get_ref().matched => {}
                Ok(_) => return Ok(Some(pb::ContactRefusalReason::OfferIneligible)),
                Err(s) if s.code() == Code::NotFound => return Ok(Some(pb::ContactRefusalReason::CustomerGone)),
                Err(s) => return Err(ApiError::Unavailable(format!("segmentation: {}", s.message()))),
            }
        }
        let cap = offer.per_customer_cap.unwrap_or_default();
        let since = row.valid_from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let history = ostore::customer_history(&api.pool, customer, std::slice::from_ref(&offer_id), &[since]).await?;
        let (presented, accepted, refused_at) = history.get(&offer_id).copied().unwrap_or_default();
        let caps = crate::domain::offers::Caps {
            max_presentations: u32::try_from(cap.max_presentations).unwrap_or(0),
            max_acceptances: u32::try_from(cap.max_acceptances).unwrap_or(0).max(1),
            window_secs: None,
            cooldown_after_refusal_secs: cap.cooldown_after_refusal.map_or(30 * 86_400, |d| d.seconds),
        };
        let h = crate::domain::offers::CustomerHistory {
            presentations: u32::try_from(presented).unwrap_or(u32::MAX),
            acceptances: u32::try_from(accepted).unwrap_or(u32::MAX),
            last_refusal: refused_at.map(|t| t.timestamp()),
        };
        if caps.check(&h, Utc::now().timestamp()) != crate::domain::offers::CapOutcome::Open {
            return Ok(Some(pb::ContactRefusalReason::OfferCapped));
        }
        presentation_offer = Some(offer_id);
    }
    let mut template = campaign.template.clone();
    if template.is_empty()
        && let Some(offer_id) = &presentation_offer
    {
        let mut conn = api.pool.acquire().await?;
        if let Some(row) = ostore::get(&mut conn, offer_id).await? {
            template = pb::Offer::decode(row.body.as_slice()).map(|o| o.template).unwrap_or_default();
        }
    }
    if !template.is_empty() {
        let request = pb::RenderMessageRequest {
            customer: Some(common::CustomerRef {
                r#ref: Some(common::customer_ref::Ref::CustomerId(customer.to_string())),
            }),
            template: template.clone(),
            language: String::new(),
            offer: campaign.offer.clone(),
        };
        match message_rpcs::render_as(api, request, true).await {
            Ok(m) if m.complete => {}
            Ok(_) => return Ok(Some(pb::ContactRefusalReason::MessageIncomplete)),
            Err(ApiError::NotFound(_)) => return Ok(Some(pb::ContactRefusalReason::CustomerGone)),
            Err(e) => return Err(e),
        }
    }
    // Why a contact would be refused, then the contact itself with the policy enforced (the
    // record is what counts against caps, atomically).
    let reference =
        Some(common::CustomerRef { r#ref: Some(common::customer_ref::Ref::CustomerId(customer.to_string())) });
    let mut interaction = interaction(api)?;
    let check = ipb::CheckContactPolicyRequest {
        customer: reference.clone(),
        channel,
        purpose: campaign.purpose,
        at: None,
        time_zone: String::new(),
    };
    let decision = match context::as_service(interaction.check_contact_policy(check)).await {
        Ok(d) => d.into_inner(),
        Err(s) if s.code() == Code::NotFound => return Ok(Some(pb::ContactRefusalReason::CustomerGone)),
        Err(s) => return Err(ApiError::Unavailable(format!("interaction: {}", s.message()))),
    };
    if let Some(d) = decision.denials.first() {
        return Ok(Some(refusal_of(ipb::ContactDenialReason::try_from(d.reason).unwrap_or_default())));
    }
    let kind = if channel == common::Channel::CallCentre as i32 {
        ipb::InteractionKind::OutboundCall
    } else {
        ipb::InteractionKind::MessageSent
    };
    let record = ipb::RecordInteractionRequest {
        request_id: format!("campaign:{id}:{customer}"),
        customer: reference,
        interaction: Some(ipb::Interaction {
            channel,
            kind: kind as i32,
            direction: ipb::InteractionDirection::Outbound as i32,
            purpose: campaign.purpose,
            campaign: format!("campaigns/{id}"),
            offer: campaign.offer.clone(),
            ..Default::default()
        }),
        create_missing_customer: false,
        enforce_contact_policy: true,
    };
    let recorded = match context::as_service(interaction.record_interaction(record)).await {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == Code::FailedPrecondition => return Ok(Some(pb::ContactRefusalReason::FrequencyCap)),
        Err(s) if s.code() == Code::NotFound => return Ok(Some(pb::ContactRefusalReason::CustomerGone)),
        Err(s) => return Err(ApiError::Unavailable(format!("interaction: {}", s.message()))),
    };
    let interaction_name = recorded.name;
    let mut tx = api.pool.begin().await?;
    let mut presentation = String::new();
    if let Some(offer_id) = &presentation_offer {
        let pid = Uuid::now_v7();
        let key = format!("campaign:{id}:{customer}");
        if ostore::insert_presentation(&mut tx, pid, offer_id, customer, channel as i16, id, Some(&key)).await? {
            presentation = format!("offers/{offer_id}/presentations/{pid}");
        }
    }
    let event = pb::CampaignContacted {
        event_id: Uuid::new_v4().to_string(),
        campaign: format!("campaigns/{id}"),
        customer_id: customer.to_string(),
        channel,
        offer: campaign.offer.clone(),
        template,
        interaction: interaction_name,
        presentation,
        time: Some(timestamp(Utc::now())),
    };
    events::enqueue(&mut tx, CAMPAIGN_CONTACTED, &event.encode_to_vec()).await?;
    tx.commit().await?;
    Ok(None)
}

/// GetCampaignReport.
pub(super) async fn report(
    api: &CustomizationApi,
    request: pb::GetCampaignReportRequest,
) -> ApiResult<pb::CampaignReport> {
    let pb::GetCampaignReportRequest { name } = request;
    let id = campaign_id(&name, "name")?;
    let row = store::get(&api.pool, &id).await?.ok_or_else(|| ApiError::NotFound(name.clone()))?;
    let (Some(start), Some(end)) = (row.launch_time, row.measurement_end_time) else {
        return Err(ApiError::FailedPrecondition(format!("{name} has not been launched")));
    };
    let campaign = pb::Campaign::decode(row.body.as_slice()).map_err(|e| ApiError::Internal(e.into()))?;
    let now = Utc::now();
    let until = end.min(now);
    let currency = store::main_currency(&api.pool, &id, start, until).await?.unwrap_or_default();
    let (offer_id, products) = if campaign.offer.is_empty() {
        (None, Vec::new())
    } else {
        let offer_id = campaign.offer.trim_start_matches("offers/").to_owned();
        let mut conn = api.pool.acquire().await?;
        let products = ostore::get(&mut conn, &offer_id).await?.map(|o| o.products).unwrap_or_default();
        (Some(offer_id), products)
    };
    let outcomes = store::outcomes(&api.pool, &id, start, until, &currency, &products, offer_id.as_deref()).await?;
    let arm = |a: i16| outcomes.iter().filter(move |o| o.arm == a);
    let summary = |a: i16| pb::ArmSummary {
        customers: arm(a).count() as i64,
        contacted: arm(a).filter(|o| o.outcome == 1).count() as i64,
        responders: arm(a).filter(|o| o.responded).count() as i64,
        repeat_purchasers: arm(a).filter(|o| o.bought_before && o.purchases > 0).count() as i64,
        sales: Some(common::Money { currency_code: currency.clone(), amount_minor: arm(a).map(|o| o.sales).sum() }),
    };
    let (t, c) = (summary(1), summary(2));
    let (nt, nc) = (t.customers.max(0) as u64, c.customers.max(0) as u64);
    let repeat_base = |a: i16| arm(a).filter(|o| o.bought_before).count() as u64;
    let values = |a: i16, f: fn(&store::MemberOutcome) -> f64| arm(a).map(f).collect::<Vec<f64>>();
    let comparisons = [
        (pb::CampaignMetric::ResponseRate, domain::proportions(t.responders as u64, nt, c.responders as u64, nc)),
        (
            pb::CampaignMetric::RepeatPurchaseRate,
            domain::proportions(t.repeat_purchasers as u64, repeat_base(1), c.repeat_purchasers as u64, repeat_base(2)),
        ),
        (
            pb::CampaignMetric::AverageSalesPerCustomer,
            domain::means(&values(1, |o| o.sales as f64), &values(2, |o| o.sales as f64)),
        ),
        (
            pb::CampaignMetric::AverageCategoriesPerCustomer,
            domain::means(&values(1, |o| o.categories as f64), &values(2, |o| o.categories as f64)),
        ),
    ];
    let finite = |x: f64| if x.is_finite() { x } else { 0.0 };
    let metrics = comparisons
        .iter()
        .map(|(metric, m)| pb::MetricComparison {
            metric: *metric as i32,
            treatment_value: m.treatment,
            control_value: m.control,
            uplift: m.uplift,
            uplift_ci_low: if m.low.is_finite() { m.low } else { finite(m.uplift) },
            uplift_ci_high: if m.high.is_finite() { m.high } else { finite(m.uplift) },
            relative_uplift: (m.control != 0.0).then(|| m.uplift / m.control),
            p_value: m.p_value,
            significant: m.significant(),
        })
        .collect();
    let refusals = store::refusals(&api.pool, &id)
        .await?
        .into_iter()
        .map(|(reason, count)| pb::RefusalCount { reason: i32::from(reason), count })
        .collect();
    Ok(pb::CampaignReport {
        campaign: name,
        state: i32::from(row.state),
        window: Some(common::Period { start_time: Some(timestamp(start)), end_time: Some(timestamp(end)) }),
        is_final: now >= end + Duration::minutes(5),
        treatment: Some(t),
        control: Some(c),
        refusals,
        metrics,
        currency_code: currency,
        data_complete_through: Some(timestamp(now)),
        compute_time: Some(timestamp(now)),
    })
}
