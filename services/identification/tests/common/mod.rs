//! What the identification tests share: clients presenting a test token, customers
//! built and created through gRPC, facts, consents and audit entries read back, events
//! awaited on their stream, and the field violations a refusal names.

#![allow(dead_code, reason = "each test file uses a part of these")]

use std::time::Duration;

use idic::Target;
use idic_platform::events::Consumer;
use idic_proto::{
    common::v1::{AuditEntry, Channel, ConsentPurpose, Identifier, IdentifierKind, ListAuditEntriesRequest},
    identification::v1::{
        ConsentStatus, CreateCustomerRequest, Customer, CustomerKind, FactValue, GetCustomerRequest,
        ListProfileFactsRequest, ProfileFact, ProfileFactInput, RecordConsentRequest, fact_value::Kind,
        identification_service_client::IdentificationServiceClient,
    },
};
use idic_testkit::{Bearer, TestEnv, tokens};
#[allow(unused_imports)] // Not every test file checks refusals.
pub use idic_testkit::{assert_invalid, violated_fields};
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Channel as GrpcChannel};
use uuid::Uuid;

/// A client of the identification service presenting a test token.
pub type Client = IdentificationServiceClient<InterceptedService<GrpcChannel, Bearer>>;

/// A client presenting `token` (one of [`tokens`]).
pub async fn client(env: &TestEnv, token: &str) -> Client {
    IdentificationServiceClient::new(env.authorized(Target::Identification, token).await)
}

/// A client presenting the admin token, which holds every scope.
pub async fn admin(env: &TestEnv) -> Client {
    client(env, tokens::ADMIN).await
}

/// An identifier without namespace.
pub fn identifier(kind: IdentifierKind, value: &str) -> Identifier {
    Identifier { kind: kind as i32, value: value.to_owned(), namespace: String::new() }
}

/// An email address identifier.
pub fn email(value: &str) -> Identifier {
    identifier(IdentifierKind::Email, value)
}

/// `address` made unique to this run (`ada@x.org` gives `ada.{random}@x.org`), so that no
/// other customer holds it.
pub fn unique_email(address: &str) -> String {
    let (local, domain) = address.split_once('@').unwrap_or((address, "analytical-engine.co.uk"));
    format!("{local}.{}@{domain}", Uuid::new_v4().simple())
}

/// A French mobile phone number identifier unique to this run.
pub fn unique_phone() -> Identifier {
    identifier(IdentifierKind::Phone, &format!("+3361{:07}", Uuid::new_v4().as_u128() % 10_000_000))
}

/// A person known by a given and a family name.
pub fn person(given_name: &str, family_name: &str) -> Customer {
    Customer {
        kind: CustomerKind::Person as i32,
        given_name: given_name.into(),
        family_name: family_name.into(),
        ..Default::default()
    }
}

/// An organisation known by its name.
pub fn organization(name: &str) -> Customer {
    Customer { kind: CustomerKind::Organization as i32, organization_name: name.into(), ..Default::default() }
}

/// A CreateCustomer request without provenance.
pub fn create_request(customer: Customer, request_id: &str) -> CreateCustomerRequest {
    CreateCustomerRequest { customer: Some(customer), request_id: request_id.to_owned(), provenance: None }
}

/// Creates `customer`; answers it as created.
pub async fn create(client: &mut Client, customer: Customer) -> Customer {
    client.create_customer(create_request(customer, "")).await.expect("create").into_inner()
}

/// Creates a person known by her given name and `identifiers`; answers her resource name.
pub async fn create_person(client: &mut Client, given_name: &str, identifiers: Vec<Identifier>) -> String {
    create(client, Customer { identifiers, ..person(given_name, "") }).await.name
}

/// The customer named `name`.
pub async fn get(client: &mut Client, name: &str) -> Customer {
    client.get_customer(GetCustomerRequest { name: name.to_owned() }).await.expect("get").into_inner()
}

/// A text fact.
pub fn text_fact(key: &str, value: &str) -> ProfileFactInput {
    ProfileFactInput { key: key.to_owned(), value: Some(FactValue { kind: Some(Kind::StringValue(value.to_owned())) }) }
}

/// Every fact of `parent` under `key` (every key when empty), history included, newest
/// observed first.
pub async fn fact_history(client: &mut Client, parent: &str, key: &str) -> Vec<ProfileFact> {
    let request = ListProfileFactsRequest {
        parent: parent.to_owned(),
        key: key.to_owned(),
        include_history: true,
        page_size: 1000,
        ..Default::default()
    };
    client.list_profile_facts(request).await.expect("facts").into_inner().facts
}

/// A marketing decision on `channel` (every channel when UNSPECIFIED), with the
/// statement shown and a form as evidence.
pub fn marketing_consent(parent: &str, channel: Channel, status: ConsentStatus) -> RecordConsentRequest {
    RecordConsentRequest {
        parent: parent.to_owned(),
        purpose: ConsentPurpose::Marketing as i32,
        channel: channel as i32,
        status: status as i32,
        purpose_statement: "We email you our offers, at most twice a month.".into(),
        evidence_reference: "form-8812".into(),
        ..Default::default()
    }
}

/// The audit entries about `resource`, newest first.
pub async fn audit_entries(client: &mut Client, resource: &str) -> Vec<AuditEntry> {
    let request = ListAuditEntriesRequest { resource: resource.to_owned(), ..Default::default() };
    client.list_audit_entries(request).await.expect("audit").into_inner().entries
}

/// The next event on `stream`, decoded, read by a consumer group of the test's own (which
/// starts at the stream's beginning).
pub async fn next_event<T: Message + Default + 'static>(env: &TestEnv, stream: &str) -> T {
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
    let event = tokio::time::timeout(Duration::from_secs(10), received.recv()).await.expect("in time").expect("event");
    shutdown.cancel();
    task.await.expect("consumer stops");
    event
}
