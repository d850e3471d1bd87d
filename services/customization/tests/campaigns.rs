//! Campaigns through the real servers against real Postgres and Redis: a segment of buyers
//! split into treatment and control by the campaign's seed, the treatment contacted by email
//! through interaction (a customer without email consent skipped with the reason), the control
//! group never contacted, and the report comparing the arms once treatment members respond.

use idic::Target;
use idic_platform::jobs::timestamp;
use idic_proto::{
    common::v1::{
        Channel, ConsentPurpose, CustomerRef, GetJobRequest, Identifier, IdentifierKind, JobState, Money, customer_ref,
    },
    customization::v1::{
        self as pb, CreateCampaignRequest, CreateOfferRequest, CreateProductRequest, CreateTemplateRequest,
        GetCampaignReportRequest, GetCampaignRequest, LaunchCampaignRequest,
        customization_service_client::CustomizationServiceClient,
    },
    identification::v1::{
        ConsentStatus, CreateCustomerRequest, Customer, CustomerKind, RecordConsentRequest,
        identification_service_client::IdentificationServiceClient,
    },
    interaction::v1::{
        GetTimelineRequest, Interaction, InteractionKind, ItemLine, RecordInteractionRequest,
        interaction_service_client::InteractionServiceClient,
    },
    segmentation::v1::{
        self as spb, CreateSegmentRequest, GetSegmentRequest, segmentation_service_client::SegmentationServiceClient,
    },
};
use idic_testkit::{TestEnv, assert_invalid, eventually, tokens};
use uuid::Uuid;

const CUSTOMERS: usize = 30;

fn eur(amount_minor: i64) -> Option<Money> {
    Some(Money { currency_code: "EUR".into(), amount_minor })
}

fn by_id(id: &str) -> Option<CustomerRef> {
    Some(CustomerRef { r#ref: Some(customer_ref::Ref::CustomerId(id.to_owned())) })
}

fn purchase(customer: &str, product: &str, days_ago: i64) -> RecordInteractionRequest {
    RecordInteractionRequest {
        request_id: Uuid::new_v4().to_string(),
        customer: by_id(customer),
        interaction: Some(Interaction {
            kind: InteractionKind::Purchase as i32,
            channel: Channel::Web as i32,
            occur_time: Some(timestamp(chrono::Utc::now() - chrono::Duration::days(days_ago))),
            items: vec![ItemLine {
                product_id: product.into(),
                category: "apparel/jeans".into(),
                quantity: 1.0,
                unit_price: eur(5000),
                line_amount: eur(5000),
                ..Default::default()
            }],
            total_amount: eur(5000),
            ..Default::default()
        }),
        create_missing_customer: false,
        enforce_contact_policy: false,
    }
}

#[tokio::test]
async fn a_campaign_contacts_its_treatment_group_only_and_reports_uplift_against_control() {
    let env = TestEnv::monolith().await;
    let mut customization = CustomizationServiceClient::new(env.authorized(Target::Customization, tokens::ADMIN).await);
    let mut identification =
        IdentificationServiceClient::new(env.authorized(Target::Identification, tokens::ADMIN).await);
    let mut interaction = InteractionServiceClient::new(env.authorized(Target::Interaction, tokens::ADMIN).await);
    let mut segmentation = SegmentationServiceClient::new(env.authorized(Target::Segmentation, tokens::ADMIN).await);

    // Thirty buyers; all but the first consent to marketing email.
    let mut customers = Vec::new();
    for i in 0..CUSTOMERS {
        let email = format!("buyer{i}.{}@analytical-engine.co.uk", Uuid::new_v4().simple());
        let customer = Customer {
            kind: CustomerKind::Person as i32,
            given_name: format!("Buyer{i}"),
            identifiers: vec![Identifier {
                kind: IdentifierKind::Email as i32,
                value: email,
                namespace: String::new(),
            }],
            ..Default::default()
        };
        let request = CreateCustomerRequest { customer: Some(customer), request_id: String::new(), provenance: None };
        let id = identification
            .create_customer(request)
            .await
            .expect("customer")
            .into_inner()
            .name
            .replace("customers/", "");
        interaction.record_interaction(purchase(&id, "jeans", 40)).await.expect("purchase");
        if i > 0 {
            identification
                .record_consent(RecordConsentRequest {
                    parent: format!("customers/{id}"),
                    purpose: ConsentPurpose::Marketing as i32,
                    channel: Channel::Email as i32,
                    status: ConsentStatus::Granted as i32,
                    purpose_statement: "News and offers by email".into(),
                    request_id: Uuid::new_v4().to_string(),
                    ..Default::default()
                })
                .await
                .expect("consent");
        }
        customers.push(id);
    }
    customization
        .create_product(CreateProductRequest {
            product_id: "belt".into(),
            product: Some(pb::Product {
                sku: "BELT".into(),
                title: "Leather belt".into(),
                categories: vec!["apparel/belts".into()],
                price: eur(2500),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("product");
    let template = pb::MessageTemplate {
        display_name: "Belt offer".into(),
        kind: pb::MessageKind::Offer as i32,
        channel: Channel::Email as i32,
        default_language: "en".into(),
        contents: vec![pb::LocalizedContent {
            language: "en".into(),
            subject: "{first_name|Hello}, a belt for your jeans".into(),
            body: "{offer_title}: {offer_value}.".into(),
        }],
        ..Default::default()
    };
    customization
        .create_template(CreateTemplateRequest {
            template_id: "belt-mail".into(),
            template: Some(template),
            request_id: String::new(),
        })
        .await
        .expect("template");
    let offer = pb::Offer {
        display_name: "Belt for jeans buyers".into(),
        description: "15% off a leather belt".into(),
        products: vec!["products/belt".into()],
        value: Some(pb::OfferValue { benefit: Some(pb::offer_value::Benefit::DiscountBasisPoints(1500)) }),
        business_value: eur(800),
        channels: vec![Channel::Email as i32],
        state: pb::OfferState::Active as i32,
        template: "templates/belt-mail".into(),
        ..Default::default()
    };
    customization
        .create_offer(CreateOfferRequest { offer_id: "belt-15".into(), offer: Some(offer), request_id: String::new() })
        .await
        .expect("offer");

    // The segment of buyers, once segmentation has seen every purchase.
    let segment = segmentation
        .create_segment(CreateSegmentRequest {
            request_id: String::new(),
            segment_id: "buyers".into(),
            segment: Some(spb::Segment {
                display_name: "Buyers".into(),
                rule: "purchase_count >= 1".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("segment")
        .into_inner();
    eventually("every buyer in the segment", || {
        let mut segmentation = segmentation.clone();
        let name = segment.name.clone();
        async move {
            let s = segmentation.get_segment(GetSegmentRequest { name }).await.ok()?.into_inner();
            (s.membership_state() == spb::MembershipState::Current && s.member_count == CUSTOMERS as i64).then_some(())
        }
    })
    .await;

    let refused = customization
        .create_campaign(CreateCampaignRequest {
            campaign_id: "bad".into(),
            campaign: Some(pb::Campaign {
                channel: Channel::Web as i32,
                holdout_share: Some(0.9),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("malformed");
    assert_invalid(
        &refused,
        &["campaign.display_name", "campaign.segment", "campaign", "campaign.channel", "campaign.holdout_share"],
    );
    let campaign = customization
        .create_campaign(CreateCampaignRequest {
            campaign_id: "belts".into(),
            campaign: Some(pb::Campaign {
                display_name: "Belts for jeans buyers".into(),
                segment: "segments/buyers".into(),
                offer: "offers/belt-15".into(),
                channel: Channel::Email as i32,
                holdout_share: Some(0.3),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("campaign")
        .into_inner();
    assert_eq!(campaign.state, pb::CampaignState::Draft as i32);
    let job = customization
        .launch_campaign(LaunchCampaignRequest {
            name: campaign.name.clone(),
            validate_only: false,
            request_id: String::new(),
        })
        .await
        .expect("launch")
        .into_inner();
    let done = eventually("the launch to end", || {
        let mut client = customization.clone();
        let name = job.name.clone();
        async move {
            let j = client.get_job(GetJobRequest { name }).await.ok()?.into_inner();
            assert_ne!(j.state, JobState::Failed as i32, "{}", j.error_message);
            (j.state == JobState::Succeeded as i32).then_some(j)
        }
    })
    .await;
    assert!(done.result.is_some());
    let launched =
        customization.get_campaign(GetCampaignRequest { name: campaign.name.clone() }).await.expect("get").into_inner();
    assert_eq!(launched.state, pb::CampaignState::Running as i32);
    let counts = launched.counts.expect("counts");
    assert_eq!(counts.targeted, CUSTOMERS as i64);
    assert!(counts.control > 0 && counts.treatment > 0, "{counts:?}");
    assert_eq!(counts.contacted + counts.refused, counts.treatment);

    // Who was contacted: a MESSAGE_SENT of the campaign in their timeline, never in control's.
    let pool = env.pool("customization").await;
    let arms: Vec<(Uuid, i16, i16, i16)> =
        sqlx::query_as("SELECT customer_id, arm, outcome, refusal FROM campaign_members WHERE campaign_id = 'belts'")
            .fetch_all(&pool)
            .await
            .expect("members");
    for (customer, arm, outcome, refusal) in &arms {
        let timeline = interaction
            .get_timeline(GetTimelineRequest {
                customer: by_id(&customer.to_string()),
                page_size: 100,
                ..Default::default()
            })
            .await
            .expect("timeline")
            .into_inner();
        let sent = timeline
            .interactions
            .iter()
            .any(|i| i.kind == InteractionKind::MessageSent as i32 && i.campaign == "campaigns/belts");
        if *arm == 2 {
            assert!(!sent, "control member {customer} was contacted");
            assert_eq!(*outcome, 0);
        } else {
            assert_eq!(sent, *outcome == 1, "treatment member {customer}: outcome {outcome}, sent {sent}");
        }
        if customer.to_string() == customers[0] && *arm == 1 {
            assert_eq!(*refusal, pb::ContactRefusalReason::NoConsent as i16, "no consent, no email");
        }
    }

    // Every contacted member buys the belt: the response rate is 1 against control's 0.
    for (customer, arm, outcome, _) in &arms {
        if *arm == 1 && *outcome == 1 {
            interaction.record_interaction(purchase(&customer.to_string(), "belt", 0)).await.expect("response");
        }
    }
    let contacted = counts.contacted;
    let report = eventually("the responses in the report", || {
        let mut client = customization.clone();
        async move {
            let r = client
                .get_campaign_report(GetCampaignReportRequest { name: "campaigns/belts".into() })
                .await
                .ok()?
                .into_inner();
            (r.treatment.as_ref()?.responders == contacted).then_some(r)
        }
    })
    .await;
    assert_eq!(report.control.as_ref().map(|c| c.responders), Some(0));
    assert_eq!(report.currency_code, "EUR");
    assert!(!report.is_final);
    let response = &report.metrics[0];
    assert_eq!(response.metric, pb::CampaignMetric::ResponseRate as i32);
    assert!((response.treatment_value - contacted as f64 / counts.treatment as f64).abs() < 1e-12);
    assert_eq!(response.control_value, 0.0);
    assert!(response.uplift_ci_low <= response.uplift && response.uplift <= response.uplift_ci_high);
    assert_eq!(report.metrics.len(), 4);
    let sales = report.treatment.as_ref().and_then(|t| t.sales.clone()).map(|m| m.amount_minor);
    assert_eq!(sales, Some(5000 * contacted), "net sales of the window only (the jeans were bought before)");
    env.cleanup().await;
}
