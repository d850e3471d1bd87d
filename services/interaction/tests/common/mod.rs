//! What the interaction tests share: clients presenting a test token, customers created
//! through identification, interactions built for each kind, events awaited on their
//! stream, and the field violations a refusal names.

#![allow(dead_code, reason = "each test file uses a part of these")]

use std::time::Duration;

use idic::Target;
use idic_platform::{events::Consumer, jobs::timestamp};
use idic_proto::{
    common::v1::{Channel, CustomerRef, Identifier, IdentifierKind, IdentifierSet, Money, customer_ref},
    identification::v1::{
        CreateCustomerRequest, Customer, CustomerKind, identification_service_client::IdentificationServiceClient,
    },
    interaction::v1::{
        GetTimelineRequest, GetTimelineResponse, Interaction, InteractionKind, ItemLine, RecordInteractionRequest,
        interaction_service_client::InteractionServiceClient,
    },
};
use idic_testkit::{Bearer, TestEnv, tokens};
#[allow(unused_imports)] // Not every test file checks refusals.
pub use idic_testkit::{assert_invalid, violated_fields};
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Channel as GrpcChannel};
use uuid::Uuid;

/// A client of the interaction service presenting the admin token.
pub type Client = InteractionServiceClient<InterceptedService<GrpcChannel, Bearer>>;
/// A client of the identification service presenting the admin token.
pub type Identification = IdentificationServiceClient<InterceptedService<GrpcChannel, Bearer>>;

/// An interaction client presenting the admin token (every scope).
pub async fn admin(env: &TestEnv) -> Client {
    InteractionServiceClient::new(env.authorized(Target::Interaction, tokens::ADMIN).await)
        .max_decoding_message_size(64 << 20)
}

/// An identification client presenting the admin token.
pub async fn identification(env: &TestEnv) -> Identification {
    IdentificationServiceClient::new(env.authorized(Target::Identification, tokens::ADMIN).await)
}

/// An email address unique to this run.
pub fn unique_email(local: &str) -> String {
    format!("{local}.{}@analytical-engine.co.uk", Uuid::new_v4().simple())
}

/// An email identifier.
pub fn email(value: &str) -> Identifier {
    Identifier { kind: IdentifierKind::Email as i32, value: value.to_owned(), namespace: String::new() }
}

/// Creates a person holding `email` in identification; answers her id.
pub async fn create_person(identification: &mut Identification, given_name: &str, address: &str) -> String {
    let customer = Customer {
        kind: CustomerKind::Person as i32,
        given_name: given_name.to_owned(),
        identifiers: vec![email(address)],
        ..Default::default()
    };
    let request = CreateCustomerRequest { customer: Some(customer), request_id: String::new(), provenance: None };
    let created = identification.create_customer(request).await.expect("create customer").into_inner();
    created.name.trim_start_matches("customers/").to_owned()
}

/// A reference by customer id.
pub fn by_id(id: &str) -> Option<CustomerRef> {
    Some(CustomerRef { r#ref: Some(customer_ref::Ref::CustomerId(id.to_owned())) })
}

/// A reference by email address.
pub fn by_email(address: &str) -> Option<CustomerRef> {
    Some(CustomerRef {
        r#ref: Some(customer_ref::Ref::Identifiers(IdentifierSet { identifiers: vec![email(address)] })),
    })
}

/// An amount in euros, in cents.
pub fn eur(cents: i64) -> Option<Money> {
    Some(Money { currency_code: "EUR".into(), amount_minor: cents })
}

/// A product line.
pub fn line(product_id: &str, quantity: f64, unit_cents: i64) -> ItemLine {
    ItemLine {
        product_id: product_id.to_owned(),
        category: "jeans".into(),
        quantity,
        unit_price: eur(unit_cents),
        ..Default::default()
    }
}

/// An interaction of `kind` on `channel`, `minutes_ago` minutes ago.
pub fn interaction(kind: InteractionKind, channel: Channel, minutes_ago: i64) -> Interaction {
    let at = chrono::Utc::now() - chrono::Duration::minutes(minutes_ago);
    Interaction { kind: kind as i32, channel: channel as i32, occur_time: Some(timestamp(at)), ..Default::default() }
}

/// A web purchase of two lines (2 × 49.99 and 0.75 × 19.99 → 14.99), `minutes_ago` ago.
pub fn purchase(minutes_ago: i64) -> Interaction {
    Interaction {
        items: vec![line("jeans-501", 2.0, 4999), line("cloth-by-metre", 0.75, 1999)],
        ..interaction(InteractionKind::Purchase, Channel::Web, minutes_ago)
    }
}

/// A RecordInteraction request for `customer` with a fresh request id.
pub fn record(customer: &str, interaction: Interaction) -> RecordInteractionRequest {
    RecordInteractionRequest {
        request_id: Uuid::new_v4().to_string(),
        customer: by_id(customer),
        interaction: Some(interaction),
        create_missing_customer: false,
        enforce_contact_policy: false,
    }
}

/// The whole timeline of `customer` (one page of up to 1000).
pub async fn timeline(client: &mut Client, customer: &str) -> GetTimelineResponse {
    let request = GetTimelineRequest { customer: by_id(customer), page_size: 1000, ..Default::default() };
    client.get_timeline(request).await.expect("timeline").into_inner()
}

/// Polls `check` every 50 ms until it answers true, for up to 10 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The events on `stream` until `count` arrived, decoded, read by a consumer group of the
/// test's own (which starts at the stream's beginning).
pub async fn events<T: Message + Default + 'static>(env: &TestEnv, stream: &str, count: usize) -> Vec<T> {
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let consumer = Consumer::new(env.redis(), stream, "test", "test");
    let task = tokio::spawn(consumer.run(
        move |delivery| {
            let sender = sender.clone();
            async move {
                sender.send(T::decode(delivery.payload.as_slice())?)?;
                Ok(())
            }
        },
        shutdown.clone(),
    ));
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let event =
            tokio::time::timeout(Duration::from_secs(10), received.recv()).await.expect("in time").expect("event");
        events.push(event);
    }
    shutdown.cancel();
    task.await.expect("consumer stops");
    events
}
