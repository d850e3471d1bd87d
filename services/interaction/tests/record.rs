//! Recording one interaction through real gRPC, Postgres and Redis: every kind is stored
//! with its amounts, a retried request id answers the first interaction, customers given
//! by identifiers are resolved through identification (and cached), each stored
//! interaction is published, and bad requests name their field.

mod common;

use common::{
    admin, assert_invalid, by_email, create_person, eur, events, identification, interaction, line, purchase, record,
    timeline, unique_email,
};
use idic_platform::jobs::timestamp;
use idic_proto::{
    common::v1::{Channel, ConsentPurpose, Money},
    interaction::v1::{
        GetInteractionRequest, Interaction, InteractionDirection, InteractionKind, InteractionRecorded, ItemLine,
        OfferResponse, RecordInteractionRequest,
    },
};
use idic_testkit::TestEnv;
use tonic::Code;

#[tokio::test]
async fn purchase_is_stored_with_line_amounts_and_total() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut ident, "Ada", &unique_email("ada")).await;

    let stored = client.record_interaction(record(&ada, purchase(5))).await.expect("record").into_inner();

    assert_eq!(stored.customer_id, ada);
    assert_eq!(stored.recorded_customer_id, ada);
    assert_eq!(stored.direction, InteractionDirection::Inbound as i32, "derived from the kind");
    let amounts: Vec<i64> = stored.items.iter().map(|i| i.line_amount.as_ref().expect("priced").amount_minor).collect();
    assert_eq!(amounts, [9998, 1499], "0.75 × 19.99 = 14.9925 rounds to 14.99");
    assert_eq!(stored.total_amount, eur(9998 + 1499));
    let read = client.get_interaction(GetInteractionRequest { name: stored.name.clone() }).await.expect("get");
    assert_eq!(read.into_inner(), stored);
    env.cleanup().await;
}

#[tokio::test]
async fn every_kind_of_contact_is_recorded() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut ident, "Ada", &unique_email("ada")).await;
    let outbound =
        |kind| Interaction { purpose: ConsentPurpose::Marketing as i32, ..interaction(kind, Channel::Email, 1) };
    let refund = Interaction {
        items: vec![line("jeans-501", 1.0, 4999)],
        ..interaction(InteractionKind::Return, Channel::Branch, 2)
    };
    let kinds = [
        interaction(InteractionKind::View, Channel::Web, 30),
        interaction(InteractionKind::BasketAdd, Channel::App, 29),
        interaction(InteractionKind::BasketRemove, Channel::App, 28),
        interaction(InteractionKind::Visit, Channel::Branch, 27),
        interaction(InteractionKind::InboundCall, Channel::CallCentre, 26),
        Interaction {
            purpose: ConsentPurpose::Service as i32,
            ..interaction(InteractionKind::OutboundCall, Channel::CallCentre, 25)
        },
        outbound(InteractionKind::MessageSent),
        interaction(InteractionKind::MessageDelivered, Channel::Email, 1),
        interaction(InteractionKind::MessageOpened, Channel::Email, 1),
        Interaction {
            offer: "offers/spring".into(),
            offer_response: OfferResponse::Accepted as i32,
            campaign: "campaigns/spring".into(),
            ..interaction(InteractionKind::MessageClicked, Channel::Email, 1)
        },
        interaction(InteractionKind::MessageReplied, Channel::Sms, 1),
        interaction(InteractionKind::Inquiry, Channel::Web, 1),
        interaction(InteractionKind::Complaint, Channel::CallCentre, 1),
        interaction(InteractionKind::Feedback, Channel::Web, 1),
        interaction(InteractionKind::SurveyAnswer, Channel::Email, 1),
        refund,
    ];
    for kind in kinds.clone() {
        client.record_interaction(record(&ada, kind)).await.expect("recorded");
    }
    let history = timeline(&mut client, &ada).await;
    assert_eq!(history.interactions.len(), kinds.len());
    let refund = history.interactions.iter().find(|i| i.kind == InteractionKind::Return as i32).expect("return");
    assert_eq!(refund.total_amount, eur(-4999), "a return's total is the refund, negative");
    let sent = history.interactions.iter().find(|i| i.kind == InteractionKind::MessageSent as i32).expect("sent");
    assert_eq!(sent.direction, InteractionDirection::Outbound as i32);
    env.cleanup().await;
}

#[tokio::test]
async fn retry_with_the_same_request_id_answers_the_first_interaction() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut ident, "Ada", &unique_email("ada")).await;
    let first = record(&ada, purchase(5));
    let stored = client.record_interaction(first.clone()).await.expect("first").into_inner();

    let retry =
        RecordInteractionRequest { interaction: Some(interaction(InteractionKind::View, Channel::Web, 1)), ..first };
    let again = client.record_interaction(retry).await.expect("retry").into_inner();

    assert_eq!(again, stored, "the retry answers the first interaction, whatever it carries");
    assert_eq!(timeline(&mut client, &ada).await.interactions.len(), 1, "stored once");
    env.cleanup().await;
}

#[tokio::test]
async fn customers_given_by_identifiers_are_resolved_or_created_on_request() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let address = unique_email("ada");
    let ada = create_person(&mut ident, "Ada", &address).await;

    let by_address =
        RecordInteractionRequest { customer: by_email(&address.to_uppercase()), ..record(&ada, purchase(1)) };
    let stored = client.record_interaction(by_address).await.expect("resolved").into_inner();
    assert_eq!(stored.customer_id, ada);

    let stranger = unique_email("grace");
    let unknown = RecordInteractionRequest { customer: by_email(&stranger), ..record(&ada, purchase(1)) };
    let refused = client.record_interaction(unknown.clone()).await.expect_err("nobody holds it");
    assert_eq!(refused.code(), Code::NotFound);

    let create = RecordInteractionRequest { create_missing_customer: true, ..unknown };
    let created = client.record_interaction(create).await.expect("created").into_inner();
    assert!(!created.customer_id.is_empty() && created.customer_id != ada);
    env.cleanup().await;
}

#[tokio::test]
async fn resolutions_are_cached_in_redis() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let address = unique_email("ada");
    let ada = create_person(&mut ident, "Ada", &address).await;
    let by_address = RecordInteractionRequest { customer: by_email(&address), ..record(&ada, purchase(1)) };
    client.record_interaction(by_address).await.expect("resolved");

    let mut redis = env.redis().connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(env.redis().key("interaction:resolved:ids:*"))
        .query_async(&mut redis)
        .await
        .expect("keys");
    assert_eq!(keys.len(), 1, "one cached resolution");
    assert!(!keys[0].contains("ada"), "no personal data in keys");
    let cached: String = redis::cmd("GET").arg(&keys[0]).query_async(&mut redis).await.expect("get");
    assert!(cached.contains(&ada));
    env.cleanup().await;
}

#[tokio::test]
async fn unknown_or_erased_customers_are_not_found() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let refused =
        client.record_interaction(record(&uuid::Uuid::new_v4().to_string(), purchase(1))).await.expect_err("unknown");
    assert_eq!(refused.code(), Code::NotFound);
    env.cleanup().await;
}

#[tokio::test]
async fn stored_interactions_are_published_with_items_and_amounts() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut ident, "Ada", &unique_email("ada")).await;
    let request = record(&ada, purchase(3));
    let stored = client.record_interaction(request.clone()).await.expect("record").into_inner();
    client.record_interaction(request).await.expect("retry publishes nothing");
    let view = client.record_interaction(record(&ada, interaction(InteractionKind::View, Channel::Web, 1))).await;
    let view = view.expect("view").into_inner();

    let published: Vec<InteractionRecorded> = events(&env, "interaction.recorded", 2).await;

    let ids: Vec<String> = published.iter().map(|e| format!("interactions/{}", e.interaction_id)).collect();
    assert_eq!(ids, [stored.name.clone(), view.name], "one event per stored interaction, none for the retry");
    let purchase = &published[0];
    assert_eq!(purchase.customer_id, ada);
    assert_eq!(purchase.kind, InteractionKind::Purchase as i32);
    assert_eq!(purchase.direction, InteractionDirection::Inbound as i32);
    assert_eq!(purchase.items, stored.items);
    assert_eq!(purchase.total_amount, stored.total_amount);
    assert!(!purchase.outbound_contact);
    env.cleanup().await;
}

#[tokio::test]
async fn invalid_interactions_name_the_offending_field() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut ident, "Ada", &unique_email("ada")).await;
    let mut bad_lines = purchase(1);
    bad_lines.items.push(ItemLine {
        product_id: "x".into(),
        quantity: 0.0,
        unit_price: eur(100),
        ..Default::default()
    });
    bad_lines.items.push(ItemLine {
        product_id: "y".into(),
        quantity: 1.0,
        unit_price: Some(Money { currency_code: "USD".into(), amount_minor: 100 }),
        ..Default::default()
    });
    let cases: Vec<(Interaction, Vec<&str>)> = vec![
        (bad_lines, vec!["interaction.items[2].quantity", "interaction.items[3].unit_price.currency_code"]),
        (
            Interaction {
                direction: InteractionDirection::Inbound as i32,
                ..interaction(InteractionKind::MessageSent, Channel::Email, 1)
            },
            vec!["interaction.direction", "interaction.purpose"],
        ),
        (interaction(InteractionKind::OutboundCall, Channel::CallCentre, 1), vec!["interaction.purpose"]),
        (interaction(InteractionKind::Purchase, Channel::Web, 1), vec!["interaction.items"]),
        (Interaction { total_amount: eur(-5), ..purchase(1) }, vec!["interaction.total_amount.amount_minor"]),
        (
            Interaction { total_amount: eur(100), ..interaction(InteractionKind::View, Channel::Web, 1) },
            vec!["interaction.total_amount"],
        ),
        (
            Interaction { occur_time: Some(timestamp(chrono::Utc::now() + chrono::Duration::hours(1))), ..purchase(0) },
            vec!["interaction.occur_time"],
        ),
        (
            Interaction { offer_response: OfferResponse::Declined as i32, ..purchase(1) },
            vec!["interaction.offer_response"],
        ),
        (Interaction { channel: 0, kind: 0, ..Default::default() }, vec!["interaction.channel", "interaction.kind"]),
    ];
    for (bad, fields) in cases {
        let status = client.record_interaction(record(&ada, bad)).await.expect_err("invalid");
        assert_invalid(&status, &fields);
    }
    let no_key = RecordInteractionRequest { request_id: String::new(), ..record(&ada, purchase(1)) };
    assert_invalid(&client.record_interaction(no_key).await.expect_err("no key"), &["request_id"]);
    let no_customer = RecordInteractionRequest { customer: None, ..record(&ada, purchase(1)) };
    assert_invalid(&client.record_interaction(no_customer).await.expect_err("no customer"), &["customer"]);
    assert!(timeline(&mut client, &ada).await.interactions.is_empty(), "nothing stored");
    env.cleanup().await;
}

#[tokio::test]
async fn follow_ups_name_an_interaction_that_exists() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut ident, "Ada", &unique_email("ada")).await;
    let sent = Interaction {
        purpose: ConsentPurpose::Marketing as i32,
        campaign: "campaigns/spring".into(),
        ..interaction(InteractionKind::MessageSent, Channel::Email, 60)
    };
    let sent = client.record_interaction(record(&ada, sent)).await.expect("sent").into_inner();

    let opened = Interaction {
        related_interaction: sent.name.clone(),
        ..interaction(InteractionKind::MessageOpened, Channel::Email, 5)
    };
    let opened = client.record_interaction(record(&ada, opened)).await.expect("opened").into_inner();
    assert_eq!(opened.related_interaction, sent.name);

    let dangling = Interaction {
        related_interaction: format!("interactions/{}", uuid::Uuid::now_v7()),
        ..interaction(InteractionKind::MessageClicked, Channel::Email, 1)
    };
    let refused = client.record_interaction(record(&ada, dangling)).await.expect_err("no such interaction");
    assert_eq!(refused.code(), Code::NotFound);
    env.cleanup().await;
}
