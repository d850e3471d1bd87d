//! Offers and next best offer through the real servers against real Postgres and Redis:
//! offers checked by segmentation's rule language when saved; the best eligible offer for a
//! customer chosen by their metrics (a purchase recorded in interaction makes a loyalty offer
//! eligible); marketing by email withheld without consent and offered once it is granted; a
//! refusal keeping the offer away for its cool-down; unknown identifiers answered, not refused.

use idic::Target;
use idic_platform::jobs::timestamp;
use idic_proto::{
    common::v1::{
        Channel, ConsentPurpose, CustomerRef, Identifier, IdentifierKind, IdentifierSet, Money, customer_ref,
    },
    customization::v1::{
        self as pb, CreateOfferRequest, GetOfferRequest, ListOffersRequest, NextBestOfferRequest, NoOfferReason,
        OfferResponseKind, RecordOfferResponseRequest, UpdateOfferRequest,
        customization_service_client::CustomizationServiceClient,
    },
    identification::v1::{
        ConsentStatus, CreateCustomerRequest, Customer, CustomerKind, RecordConsentRequest,
        identification_service_client::IdentificationServiceClient,
    },
    interaction::v1::{
        Interaction, InteractionKind, ItemLine, RecordInteractionRequest,
        interaction_service_client::InteractionServiceClient,
    },
};
use idic_testkit::{Bearer, TestEnv, assert_invalid, eventually, tokens};
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel as GrpcChannel};
use uuid::Uuid;

type Client = CustomizationServiceClient<InterceptedService<GrpcChannel, Bearer>>;

fn eur(amount_minor: i64) -> Option<Money> {
    Some(Money { currency_code: "EUR".into(), amount_minor })
}

fn by_id(id: &str) -> Option<CustomerRef> {
    Some(CustomerRef { r#ref: Some(customer_ref::Ref::CustomerId(id.to_owned())) })
}

fn offer(title: &str, rule: &str, value_cents: i64, channels: &[Channel]) -> pb::Offer {
    pb::Offer {
        display_name: title.into(),
        description: format!("{title}, for you"),
        eligibility_rule: rule.into(),
        value: Some(pb::OfferValue { benefit: Some(pb::offer_value::Benefit::DiscountBasisPoints(1500)) }),
        business_value: eur(value_cents),
        channels: channels.iter().map(|c| *c as i32).collect(),
        state: pb::OfferState::Active as i32,
        ..Default::default()
    }
}

async fn create(client: &mut Client, id: &str, o: pb::Offer) -> pb::Offer {
    client
        .create_offer(CreateOfferRequest { offer_id: id.into(), offer: Some(o), request_id: String::new() })
        .await
        .expect("create offer")
        .into_inner()
}

async fn customer(env: &TestEnv, name: &str) -> String {
    let mut identification =
        IdentificationServiceClient::new(env.authorized(Target::Identification, tokens::ADMIN).await);
    let email = format!("{name}.{}@analytical-engine.co.uk", Uuid::new_v4().simple());
    let customer = Customer {
        kind: CustomerKind::Person as i32,
        given_name: name.to_owned(),
        identifiers: vec![Identifier { kind: IdentifierKind::Email as i32, value: email, namespace: String::new() }],
        ..Default::default()
    };
    let request = CreateCustomerRequest { customer: Some(customer), request_id: String::new(), provenance: None };
    identification.create_customer(request).await.expect("create customer").into_inner().name.replace("customers/", "")
}

fn ask(customer: &str, channel: Channel) -> NextBestOfferRequest {
    NextBestOfferRequest { customer: by_id(customer), channel: channel as i32, ..Default::default() }
}

async fn best(client: &mut Client, request: NextBestOfferRequest) -> pb::NextBestOfferResponse {
    client.next_best_offer(request).await.expect("next best offer").into_inner()
}

async fn best_until(
    client: &Client,
    what: &str,
    request: NextBestOfferRequest,
    check: impl Fn(&pb::NextBestOfferResponse) -> bool,
) -> pb::NextBestOfferResponse {
    eventually(what, || {
        let (mut client, request, check) = (client.clone(), request.clone(), &check);
        async move {
            let a = best(&mut client, request).await;
            check(&a).then_some(a)
        }
    })
    .await
}

fn chosen(a: &pb::NextBestOfferResponse) -> &str {
    a.decision.as_ref().map_or("", |d| d.offer.as_str())
}

#[tokio::test]
async fn offers_are_checked_when_saved_and_updated_by_mask() {
    let env = TestEnv::monolith().await;
    let mut client = CustomizationServiceClient::new(env.authorized(Target::Customization, tokens::ADMIN).await);
    let created = create(&mut client, "loyal", offer("Loyalty", "purchase_count >= 1", 2000, &[Channel::Web])).await;
    assert_eq!(created.name, "offers/loyal");
    assert_eq!(created.stats.as_ref().map(|s| s.presented), Some(0));

    let bad_rule = CreateOfferRequest {
        offer_id: "broken".into(),
        offer: Some(offer("Broken", "purchase_count >=", 100, &[Channel::Web])),
        request_id: String::new(),
    };
    let refused = client.create_offer(bad_rule).await.expect_err("rule does not parse");
    assert_invalid(&refused, &["offer.eligibility_rule"]);
    assert!(refused.message().contains("1:"), "the position is given: {}", refused.message());
    let empty = CreateOfferRequest {
        offer_id: "Not An Id".into(),
        offer: Some(pb::Offer { channels: vec![Channel::Web as i32, Channel::Web as i32], ..Default::default() }),
        request_id: String::new(),
    };
    let refused = client.create_offer(empty).await.expect_err("malformed");
    assert_invalid(
        &refused,
        &[
            "offer_id",
            "offer.display_name",
            "offer.description",
            "offer.value",
            "offer.business_value",
            "offer.channels[1]",
        ],
    );
    let taken = client
        .create_offer(CreateOfferRequest {
            offer_id: "loyal".into(),
            offer: Some(offer("Again", "", 1, &[Channel::Web])),
            request_id: String::new(),
        })
        .await;
    assert_eq!(taken.expect_err("taken").code(), Code::AlreadyExists);

    let mut change = created.clone();
    change.priority = 7;
    change.display_name = "not in the mask".into();
    let mask = |paths: &[&str]| Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() });
    let updated = client
        .update_offer(UpdateOfferRequest { offer: Some(change.clone()), update_mask: mask(&["priority"]) })
        .await
        .expect("update")
        .into_inner();
    assert_eq!((updated.priority, updated.display_name.as_str()), (7, "Loyalty"));
    let stale = client.update_offer(UpdateOfferRequest { offer: Some(change), update_mask: mask(&["priority"]) }).await;
    assert_eq!(stale.expect_err("stale etag").code(), Code::Aborted);
    let mut archive = updated.clone();
    archive.state = pb::OfferState::Archived as i32;
    client
        .update_offer(UpdateOfferRequest { offer: Some(archive.clone()), update_mask: mask(&["state"]) })
        .await
        .expect("archive");
    archive.etag.clear();
    let again =
        client.update_offer(UpdateOfferRequest { offer: Some(archive), update_mask: mask(&["priority"]) }).await;
    assert_eq!(again.expect_err("archived").code(), Code::FailedPrecondition);
    let listed = client.list_offers(ListOffersRequest::default()).await.expect("list").into_inner();
    assert!(listed.offers.is_empty(), "archived offers are left out by default");
    let got = client.get_offer(GetOfferRequest { name: "offers/loyal".into() }).await.expect("get").into_inner();
    assert_eq!(got.state, pb::OfferState::Archived as i32);
    env.cleanup().await;
}

#[tokio::test]
async fn the_best_offer_follows_the_customers_metrics_consent_and_refusals() {
    let env = TestEnv::monolith().await;
    let mut client = CustomizationServiceClient::new(env.authorized(Target::Customization, tokens::ADMIN).await);
    create(&mut client, "loyal", offer("Loyalty", "purchase_count >= 1", 5000, &[Channel::Web, Channel::Email])).await;
    create(&mut client, "welcome", offer("Welcome", "purchase_count = 0", 1000, &[Channel::Web, Channel::Email])).await;
    let (ada, bob) = (customer(&env, "ada").await, customer(&env, "bob").await);

    // Nobody has bought yet: the welcome offer, for both.
    let first =
        best_until(&client, "a welcome for Bob", ask(&bob, Channel::Web), |a| chosen(a) == "offers/welcome").await;
    assert_eq!(first.customer_id, bob);
    let decision = first.decision.expect("decision");
    assert!(decision.exploration || decision.propensity > 0.0);
    assert!((decision.propensity - 0.1).abs() < 1e-9, "a new offer starts at the prior");

    // Ada buys: within seconds the loyalty offer is hers.
    let mut interaction = InteractionServiceClient::new(env.authorized(Target::Interaction, tokens::ADMIN).await);
    interaction
        .record_interaction(RecordInteractionRequest {
            request_id: Uuid::new_v4().to_string(),
            customer: by_id(&ada),
            interaction: Some(Interaction {
                kind: InteractionKind::Purchase as i32,
                channel: Channel::Web as i32,
                occur_time: Some(timestamp(chrono::Utc::now() - chrono::Duration::days(2))),
                items: vec![ItemLine {
                    product_id: "jeans".into(),
                    quantity: 1.0,
                    unit_price: eur(4999),
                    ..Default::default()
                }],
                total_amount: eur(4999),
                ..Default::default()
            }),
            create_missing_customer: false,
            enforce_contact_policy: false,
        })
        .await
        .expect("purchase");
    let mut explained = ask(&ada, Channel::Web);
    explained.explain = true;
    explained.max_alternatives = 1;
    // Each rule is evaluated on its own: wait until both saw the purchase.
    let welcome_out = |a: &pb::NextBestOfferResponse| {
        a.considered
            .iter()
            .any(|c| c.offer == "offers/welcome" && c.ineligibility == pb::IneligibilityReason::RuleNotMet as i32)
    };
    let loyal =
        best_until(&client, "the loyalty offer for Ada", explained, |a| chosen(a) == "offers/loyal" && welcome_out(a))
            .await;
    assert!(loyal.alternatives.is_empty(), "the welcome offer no longer fits her: {loyal:?}");

    // By email, marketing needs her permission first.
    let by_email = best(&mut client, ask(&ada, Channel::Email)).await;
    assert_eq!(by_email.no_offer_reason, NoOfferReason::NoConsent as i32);
    assert_eq!(by_email.refusal_reason, pb::ContactRefusalReason::NoConsent as i32);
    let mut identification =
        IdentificationServiceClient::new(env.authorized(Target::Identification, tokens::ADMIN).await);
    identification
        .record_consent(RecordConsentRequest {
            parent: format!("customers/{ada}"),
            purpose: ConsentPurpose::Marketing as i32,
            channel: Channel::Email as i32,
            status: ConsentStatus::Granted as i32,
            purpose_statement: "Offers by email".into(),
            request_id: Uuid::new_v4().to_string(),
            ..Default::default()
        })
        .await
        .expect("grant");
    best_until(&client, "the email offer once consented", ask(&ada, Channel::Email), |a| chosen(a) == "offers/loyal")
        .await;

    // Shown and refused: not shown again during the cool-down.
    let mut shown = ask(&ada, Channel::Web);
    shown.record_presentation = true;
    shown.request_id = "screen-1".into();
    let presented = best(&mut client, shown.clone()).await.decision.expect("decision");
    assert!(presented.presentation.starts_with("offers/loyal/presentations/"));
    let retried = best(&mut client, shown).await.decision.expect("decision");
    assert_eq!(retried.presentation, presented.presentation, "a retry counts once");
    let answer = RecordOfferResponseRequest {
        customer: by_id(&ada),
        offer: "offers/loyal".into(),
        response: OfferResponseKind::Refused as i32,
        channel: Channel::Web as i32,
        presentation: presented.presentation.clone(),
        request_id: "answer-1".into(),
        ..Default::default()
    };
    let recorded = client.record_offer_response(answer.clone()).await.expect("response").into_inner();
    assert!(!recorded.duplicate);
    assert!(client.record_offer_response(answer).await.expect("retry").into_inner().duplicate);
    let after = best(&mut client, ask(&ada, Channel::Web)).await;
    assert_eq!(after.no_offer_reason, NoOfferReason::Capped as i32, "{after:?}");
    let stats =
        client.get_offer(GetOfferRequest { name: "offers/loyal".into() }).await.expect("get").into_inner().stats;
    assert_eq!(stats.map(|s| (s.presented, s.refused)), Some((1, 1)));

    let wrong = RecordOfferResponseRequest {
        customer: by_id(&bob),
        offer: "offers/loyal".into(),
        response: OfferResponseKind::Accepted as i32,
        channel: Channel::Web as i32,
        presentation: presented.presentation,
        ..Default::default()
    };
    let refused = client.record_offer_response(wrong).await.expect_err("someone else's presentation");
    assert_eq!(refused.code(), Code::FailedPrecondition);

    let stranger = NextBestOfferRequest {
        customer: Some(CustomerRef {
            r#ref: Some(customer_ref::Ref::Identifiers(IdentifierSet {
                identifiers: vec![Identifier {
                    kind: IdentifierKind::Email as i32,
                    value: "nobody.known@analytical-engine.co.uk".into(),
                    namespace: String::new(),
                }],
            })),
        }),
        channel: Channel::CallCentre as i32,
        ..Default::default()
    };
    let unknown = best(&mut client, stranger).await;
    assert_eq!(unknown.no_offer_reason, NoOfferReason::CustomerUnknown as i32);
    let refused =
        client.next_best_offer(NextBestOfferRequest { max_alternatives: 6, ..ask(&ada, Channel::Unspecified) }).await;
    assert_invalid(&refused.expect_err("malformed"), &["channel", "max_alternatives"]);
    env.cleanup().await;
}

#[tokio::test]
async fn an_inbound_call_is_a_sales_opportunity_shown_in_the_contact_context() {
    let env = TestEnv::monolith().await;
    let mut client = CustomizationServiceClient::new(env.authorized(Target::Customization, tokens::ADMIN).await);
    create(&mut client, "upgrade", offer("Card upgrade", "", 3000, &[Channel::CallCentre])).await;
    let ada = customer(&env, "ada").await;
    let mut interaction = InteractionServiceClient::new(env.authorized(Target::Interaction, tokens::ADMIN).await);
    let request = idic_proto::interaction::v1::GetContactContextRequest { customer: by_id(&ada), ..Default::default() };
    let context = interaction.get_contact_context(request).await.expect("context").into_inner();
    let shown = context.next_best_offer.expect("the agent sees an offer");
    assert_eq!(shown.offer, "offers/upgrade");
    let nbo = idic_proto::interaction::v1::ContactContextPart::NextBestOffer as i32;
    assert!(context.unavailable_parts.iter().all(|p| p.part != nbo), "{:?}", context.unavailable_parts);
    env.cleanup().await;
}
