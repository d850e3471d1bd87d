//! GetContactContext through real gRPC, Postgres and Redis: the last contact per channel,
//! the recent history and the account manager from this service, the consents from
//! identification, and the parts of services that cannot answer listed as unavailable
//! while the call succeeds.

mod common;

use common::{admin, by_id, create_person, identification, interaction, purchase, record, unique_email};
use idic::Target;
use idic_proto::{
    common::v1::{Channel, ConsentPurpose},
    identification::v1::{ConsentStatus, RecordConsentRequest},
    interaction::v1::{
        AccountManager, AssignCustomersRequest, ContactContextPart, CreateAccountManagerRequest, CustomerIdList,
        GetContactContextRequest, InteractionKind, UnavailableReason, assign_customers_request,
    },
};
use idic_testkit::TestEnv;
use tonic::Code;
use uuid::Uuid;

#[tokio::test]
async fn context_holds_the_last_contact_per_channel_history_and_consents() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut ident, "Ada", &unique_email("ada")).await;
    let consent = RecordConsentRequest {
        parent: format!("customers/{ada}"),
        purpose: ConsentPurpose::Marketing as i32,
        channel: Channel::Email as i32,
        status: ConsentStatus::Granted as i32,
        purpose_statement: "We email you our offers, at most twice a month.".into(),
        evidence_reference: "form-8812".into(),
        ..Default::default()
    };
    ident.record_consent(consent).await.expect("consent");
    client.record_interaction(record(&ada, purchase(30))).await.expect("older web");
    let web = client.record_interaction(record(&ada, purchase(20))).await.expect("web").into_inner();
    let call = interaction(InteractionKind::InboundCall, Channel::CallCentre, 10);
    let call = client.record_interaction(record(&ada, call)).await.expect("call").into_inner();

    let request = GetContactContextRequest { customer: by_id(&ada), recent_limit: 2, ..Default::default() };
    let context = client.get_contact_context(request.clone()).await.expect("context").into_inner();
    assert!(context.account_manager.is_none() && context.account_manager_assign_time.is_none(), "no manager yet");
    let create = CreateAccountManagerRequest {
        request_id: Uuid::new_v4().to_string(),
        account_manager_id: "marie-curie".into(),
        account_manager: Some(AccountManager {
            display_name: "Marie Curie".into(),
            capacity: 10,
            ..Default::default()
        }),
    };
    let manager = client.create_account_manager(create).await.expect("create manager").into_inner();
    let assign = AssignCustomersRequest {
        request_id: Uuid::new_v4().to_string(),
        account_manager: manager.name.clone(),
        selection: Some(assign_customers_request::Selection::Customers(CustomerIdList {
            customer_ids: vec![ada.clone()],
        })),
        reassign: false,
        allow_over_capacity: false,
    };
    let before = chrono::Utc::now().timestamp();
    client.assign_customers(assign).await.expect("assign");
    let context = client.get_contact_context(request).await.expect("context").into_inner();

    assert_eq!(context.customer_id, ada);
    let last: Vec<(i32, String)> = context
        .last_contacts
        .iter()
        .map(|l| (l.channel, l.interaction.as_ref().expect("interaction").name.clone()))
        .collect();
    assert_eq!(last, [(Channel::CallCentre as i32, call.name.clone()), (Channel::Web as i32, web.name.clone())]);
    let recent: Vec<&str> = context.recent_interactions.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(recent, [call.name.as_str(), web.name.as_str()], "the two most recent, newest first");
    assert!(
        context
            .consents
            .iter()
            .any(|c| c.purpose == ConsentPurpose::Marketing as i32 && c.channel == Channel::Email as i32 && c.granted),
        "{:?}",
        context.consents
    );
    assert!(context.open_complaints.is_empty() && context.do_not_contact.is_none());
    let assigned = context.account_manager.expect("the account manager");
    assert_eq!((assigned.name.as_str(), assigned.display_name.as_str()), (manager.name.as_str(), "Marie Curie"));
    assert_eq!(assigned.book_size, 1);
    let assign_time = context.account_manager_assign_time.expect("when ada was put in the book");
    assert!((assign_time.seconds - before).abs() <= 5, "assigned just now: {assign_time:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn parts_of_services_that_do_not_answer_are_listed_unavailable() {
    // Interaction and identification only: segmentation and customization are unreachable.
    let env = TestEnv::start(&[Target::Interaction, Target::Identification]).await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut ident, "Ada", &unique_email("ada")).await;
    client.record_interaction(record(&ada, purchase(5))).await.expect("purchase");

    let request = GetContactContextRequest { customer: by_id(&ada), ..Default::default() };
    let context = client.get_contact_context(request).await.expect("the call still succeeds").into_inner();

    let missing: Vec<(i32, i32)> = context.unavailable_parts.iter().map(|p| (p.part, p.reason)).collect();
    let unavailable = UnavailableReason::ServiceUnavailable as i32;
    assert_eq!(
        missing,
        [(ContactContextPart::Value as i32, unavailable), (ContactContextPart::NextBestOffer as i32, unavailable)]
    );
    assert_eq!(context.recent_interactions.len(), 1, "this service's parts are filled");

    let only_history = GetContactContextRequest {
        customer: by_id(&ada),
        parts: vec![ContactContextPart::History as i32],
        ..Default::default()
    };
    let context = client.get_contact_context(only_history).await.expect("history only").into_inner();
    assert!(context.unavailable_parts.is_empty(), "parts not asked for are not fetched");
    assert!(context.consents.is_empty());

    let bad = GetContactContextRequest { customer: by_id(&ada), recent_limit: 51, ..Default::default() };
    assert_eq!(client.get_contact_context(bad).await.expect_err("limit").code(), Code::InvalidArgument);
    env.cleanup().await;
}
