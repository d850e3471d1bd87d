//! Personal messages through the real servers against real Postgres and Redis: templates
//! checked when saved (unknown fields and unclosed braces named with their position), rendered
//! for a customer in the closest language with their name, their fallbacks when a value is
//! unknown, and never with personal data the caller may not see.

use idic::Target;
use idic_proto::{
    common::v1::{Channel, CustomerRef, Identifier, IdentifierKind, customer_ref},
    customization::v1::{
        self as pb, CreateTemplateRequest, FieldOutcome, GetTemplateRequest, RenderMessageRequest,
        UpdateTemplateRequest, customization_service_client::CustomizationServiceClient,
    },
    identification::v1::{
        CreateCustomerRequest, Customer, CustomerKind, identification_service_client::IdentificationServiceClient,
    },
};
use idic_testkit::{Bearer, TestEnv, assert_invalid, tokens};
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel as GrpcChannel};
use uuid::Uuid;

type Client = CustomizationServiceClient<InterceptedService<GrpcChannel, Bearer>>;

/// A caller that may render messages but not read personal data.
const RENDERER: &str = "test-renderer-token-000000000001";

fn greeting() -> pb::MessageTemplate {
    pb::MessageTemplate {
        display_name: "Welcome back".into(),
        kind: pb::MessageKind::Greeting as i32,
        channel: Channel::Email as i32,
        default_language: "en".into(),
        contents: vec![
            pb::LocalizedContent {
                language: "en".into(),
                subject: "Howdy {first_name|Pardner}".into(),
                body: "Dear {full_name|customer}, you are {tier_name|one of us}. {{no braces}} {last_name}".into(),
            },
            pb::LocalizedContent {
                language: "fr-FR".into(),
                subject: "Bonjour {first_name|l'ami}".into(),
                body: "Cher {full_name|client}.".into(),
            },
        ],
        ..Default::default()
    }
}

fn render(customer: &str, template: &str, language: &str) -> RenderMessageRequest {
    RenderMessageRequest {
        customer: Some(CustomerRef { r#ref: Some(customer_ref::Ref::CustomerId(customer.to_owned())) }),
        template: template.into(),
        language: language.into(),
        offer: String::new(),
    }
}

fn outcome(answer: &pb::RenderMessageResponse, field: &str) -> i32 {
    answer.fields.iter().find(|f| f.field == field).map_or(-1, |f| f.outcome)
}

#[tokio::test]
async fn a_greeting_uses_the_customers_name_in_their_language_and_withholds_it_from_others() {
    let env = TestEnv::start_with(&[Target::All], |c| {
        c.auth.api_keys.push(idic_platform::config::ApiKey {
            caller: "test-renderer".into(),
            token: RENDERER.into(),
            scopes: vec!["messages.render".into()],
        });
    })
    .await;
    let mut client: Client =
        CustomizationServiceClient::new(env.authorized(Target::Customization, tokens::ADMIN).await);
    let created = client
        .create_template(CreateTemplateRequest {
            template_id: "welcome".into(),
            template: Some(greeting()),
            request_id: String::new(),
        })
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.name, "templates/welcome");
    assert_eq!(created.fields, vec!["first_name", "full_name", "last_name", "tier_name"]);

    let mut identification =
        IdentificationServiceClient::new(env.authorized(Target::Identification, tokens::ADMIN).await);
    let email = format!("ada.{}@analytical-engine.co.uk", Uuid::new_v4().simple());
    let ada = identification
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                kind: CustomerKind::Person as i32,
                given_name: "Ada".into(),
                family_name: "Lovelace".into(),
                identifiers: vec![Identifier {
                    kind: IdentifierKind::Email as i32,
                    value: email,
                    namespace: String::new(),
                }],
                ..Default::default()
            }),
            request_id: String::new(),
            provenance: None,
        })
        .await
        .expect("customer")
        .into_inner()
        .name
        .replace("customers/", "");

    let answer = client.render_message(render(&ada, "templates/welcome", "")).await.expect("render").into_inner();
    assert_eq!(answer.subject, "Howdy Ada");
    assert_eq!(answer.body, "Dear Ada Lovelace, you are one of us. {no braces} Lovelace");
    assert_eq!(answer.language, "en");
    assert_eq!(outcome(&answer, "tier_name"), FieldOutcome::FallbackUnknown as i32, "not graded yet");
    assert_eq!(outcome(&answer, "first_name"), FieldOutcome::Filled as i32);
    assert!(answer.complete);

    let french = client.render_message(render(&ada, "templates/welcome", "fr-CA")).await.expect("render").into_inner();
    assert_eq!((french.language.as_str(), french.subject.as_str()), ("fr-FR", "Bonjour Ada"));

    let mut renderer: Client = CustomizationServiceClient::new(env.authorized(Target::Customization, RENDERER).await);
    let masked = renderer.render_message(render(&ada, "templates/welcome", "")).await.expect("render").into_inner();
    assert_eq!(masked.subject, "Howdy Pardner", "no personal data without pii.read");
    assert!(!masked.body.contains("Lovelace"), "{}", masked.body);
    assert_eq!(outcome(&masked, "first_name"), FieldOutcome::FallbackWithheld as i32);
    assert_eq!(outcome(&masked, "last_name"), FieldOutcome::Empty as i32);
    assert!(!masked.complete, "a field without value nor fallback leaves the message incomplete");

    let missing = client.render_message(render(&ada, "templates/nope", "")).await.expect_err("no template");
    assert_eq!(missing.code(), Code::NotFound);
    env.cleanup().await;
}

#[tokio::test]
async fn templates_that_do_not_parse_are_refused_with_the_position() {
    let env = TestEnv::monolith().await;
    let mut client: Client =
        CustomizationServiceClient::new(env.authorized(Target::Customization, tokens::ADMIN).await);
    let mut bad = greeting();
    bad.channel = Channel::Sms as i32;
    bad.contents[0].body = "Hi {nickname}".into();
    bad.contents[1].language = "EN".into();
    let refused = client
        .create_template(CreateTemplateRequest {
            template_id: String::new(),
            template: Some(bad),
            request_id: String::new(),
        })
        .await
        .expect_err("invalid");
    assert_invalid(
        &refused,
        &[
            "template.contents[0].subject",
            "template.contents[0].body",
            "template.contents[1].language",
            "template.contents[1].subject",
        ],
    );
    assert!(refused.message().contains("at character 4: unknown personal field `nickname`"), "{}", refused.message());

    let created = client
        .create_template(CreateTemplateRequest {
            template_id: "welcome".into(),
            template: Some(greeting()),
            request_id: String::new(),
        })
        .await
        .expect("create")
        .into_inner();
    let mut change = created.clone();
    change.display_name = "Hello again".into();
    change.channel = Channel::Sms as i32;
    let mask = |p: &str| Some(prost_types::FieldMask { paths: vec![p.to_owned()] });
    let refused = client
        .update_template(UpdateTemplateRequest { template: Some(change.clone()), update_mask: mask("channel") })
        .await
        .expect_err("immutable");
    assert_invalid(&refused, &["update_mask.paths[0]"]);
    let updated = client
        .update_template(UpdateTemplateRequest { template: Some(change.clone()), update_mask: mask("display_name") })
        .await
        .expect("update")
        .into_inner();
    assert_eq!((updated.display_name.as_str(), updated.channel), ("Hello again", Channel::Email as i32));
    let stale = client
        .update_template(UpdateTemplateRequest { template: Some(change), update_mask: mask("display_name") })
        .await;
    assert_eq!(stale.expect_err("stale").code(), Code::Aborted);
    let got =
        client.get_template(GetTemplateRequest { name: "templates/welcome".into() }).await.expect("get").into_inner();
    assert_eq!(got.etag, updated.etag);
    env.cleanup().await;
}
