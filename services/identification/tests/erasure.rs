//! Erasure through real gRPC, Postgres and Redis: personal data gone (identifiers kept
//! only as keyed hashes, facts deleted, consent records detached), customers merged into
//! the erased one erased too, a receipt completed by the other services' confirmations
//! on `erasure.confirmed`, an audit entry and a `customer.erased` event; the old
//! identifiers then start a fresh customer.

mod common;

use std::time::Duration;

use common::{
    Client, admin, assert_invalid, audit_entries, create, email, marketing_consent, next_event, person, text_fact,
    unique_email, unique_phone,
};
use idic_identification::{
    domain::{Identifier as DomainIdentifier, IdentifierKind as DomainKind},
    store::Store,
};
use idic_platform::jobs::timestamp;
use idic_proto::{
    common::v1::{Channel, ErasureConfirmed, Identifier},
    identification::v1::{
        self as pb, ConsentStatus, Customer, CustomerKind, CustomerState, Date, EraseCustomerRequest, ErasureState,
        GetConsentsRequest, GetCustomerRequest, GetErasureReceiptRequest, ListCustomersRequest,
        ListProfileFactsRequest, LookupCustomerRequest, MergeCustomersRequest, RecordProfileFactsRequest,
    },
};
use idic_testkit::TestEnv;
use prost::Message as _;
use tonic::Code;
use uuid::Uuid;

/// Creates a Lovelace known by `given`, her birth date and `identifiers`.
async fn create_lovelace(client: &mut Client, given: &str, identifiers: Vec<Identifier>) -> String {
    let birth_date = Some(Date { year: 1990, month: 12, day: 10 });
    create(client, Customer { birth_date, identifiers, ..person(given, "Lovelace") }).await.name
}

fn erase_request(name: &str, request_id: &str) -> EraseCustomerRequest {
    EraseCustomerRequest {
        name: name.to_owned(),
        reason: "data subject request 2026-117".into(),
        request_id: request_id.to_owned(),
    }
}

/// A customer with an email, a phone, a fact and a consent, and a second one merged
/// into it. Answers (survivor, merged part, survivor's email).
async fn customer_with_history(client: &mut Client) -> (String, String, String) {
    let address = unique_email("ada@analytical-engine.co.uk");
    let ada = create_lovelace(client, "Ada", vec![email(&address), unique_phone()]).await;
    let part_address = unique_email("augusta@analytical-engine.co.uk");
    let augusta = create_lovelace(client, "Augusta", vec![email(&part_address)]).await;
    let fact = text_fact("preference.topic", "mathematics");
    let facts = RecordProfileFactsRequest { parent: ada.clone(), facts: vec![fact], ..Default::default() };
    client.record_profile_facts(facts).await.expect("facts");
    let consent = marketing_consent(&ada, Channel::Email, ConsentStatus::Granted);
    client.record_consent(consent).await.expect("consent");
    let merge = MergeCustomersRequest {
        survivor: ada.clone(),
        merged_customers: vec![augusta.clone()],
        reason: "one person".into(),
        ..Default::default()
    };
    client.merge_customers(merge).await.expect("merge");
    (ada, augusta, address)
}

fn confirmation(receipt: &pb::ErasureReceipt, service: &str) -> bool {
    receipt.confirmations.iter().find(|c| c.service == service).is_some_and(|c| c.confirmed)
}

#[tokio::test]
async fn erasure_removes_personal_data_and_completes_with_every_confirmation() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let (ada, augusta, address) = customer_with_history(&mut client).await;

    let receipt = client.erase_customer(erase_request(&ada, "erase-117")).await.expect("erase").into_inner();
    assert!(receipt.name.starts_with("erasures/"));
    assert_eq!(
        (receipt.customer.as_str(), receipt.merged_customers.as_slice()),
        (ada.as_str(), &[augusta.clone()][..])
    );
    assert_eq!(receipt.state, ErasureState::InProgress as i32);
    assert_eq!(receipt.requested_by, "test-admin");
    let services: Vec<&str> = receipt.confirmations.iter().map(|c| c.service.as_str()).collect();
    assert_eq!(services, ["identification", "interaction", "segmentation", "customization"]);
    assert!(confirmation(&receipt, "identification"));
    assert!(!confirmation(&receipt, "interaction") && !confirmation(&receipt, "segmentation"));
    assert_eq!(receipt.identifiers_erased, 3, "two of Ada's, one of Augusta's");
    assert!(receipt.facts_erased >= 5, "names, birth dates and the topic of both");
    assert_eq!(receipt.consent_records_anonymised, 1);
    let retried = client.erase_customer(erase_request(&ada, "erase-117")).await.expect("retry").into_inner();
    assert_eq!(retried, receipt);
    let again = client.erase_customer(erase_request(&ada, "")).await.expect("erase an erased customer");
    assert_eq!(again.into_inner().name, receipt.name);

    // Only tombstones remain, also of the customer merged into it.
    for name in [&ada, &augusta] {
        let tombstone = client.get_customer(GetCustomerRequest { name: name.clone() }).await.expect("get");
        let tombstone = tombstone.into_inner();
        assert_eq!(tombstone.state, CustomerState::Erased as i32);
        assert_eq!((tombstone.given_name.as_str(), tombstone.display_name.as_str()), ("", ""));
        assert_eq!((tombstone.birth_date, tombstone.identifiers.len()), (None, 0));
        assert_eq!(tombstone.merged_into, "");
        assert_eq!(tombstone.erasure, receipt.name, "the tombstone leads to its receipt");
    }
    let listed = client
        .list_customers(ListCustomersRequest { state: CustomerState::Erased as i32, ..Default::default() })
        .await
        .expect("list erased")
        .into_inner();
    let erased: Vec<(&str, &str)> = listed.customers.iter().map(|c| (c.name.as_str(), c.erasure.as_str())).collect();
    assert_eq!(erased, [(ada.as_str(), receipt.name.as_str()), (augusta.as_str(), receipt.name.as_str())]);
    let facts = client
        .list_profile_facts(ListProfileFactsRequest { parent: ada.clone(), ..Default::default() })
        .await
        .expect_err("erased");
    assert_eq!(facts.code(), Code::FailedPrecondition);

    let pool = env.pool("identification").await;
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM identifiers").fetch_one(&pool).await.expect("count");
    let facts: i64 = sqlx::query_scalar("SELECT count(*) FROM profile_facts").fetch_one(&pool).await.expect("count");
    assert_eq!((held, facts), (0, 0));
    let evidence: Vec<String> =
        sqlx::query_scalar("SELECT evidence_reference FROM consent_records").fetch_all(&pool).await.expect("ledger");
    assert_eq!(evidence, [""], "the record stays as proof, detached from its evidence");
    let hashes: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT value_hash FROM erased_identifiers").fetch_all(&pool).await.expect("hashes");
    assert!(hashes.len() == 3 && hashes.iter().all(|h| h.len() == 32));
    let store = Store::new(pool.clone());
    let key = store.erasure_key(None).await.expect("key");
    let erased = DomainIdentifier { kind: DomainKind::Email, namespace: String::new(), value: address.clone() };
    assert!(store.was_erased(&key, &erased).await.expect("proof"), "the keyed hash proves the erasure");
    let other = DomainIdentifier { value: "someone.else@analytical-engine.co.uk".into(), ..erased };
    assert!(!store.was_erased(&key, &other).await.expect("proof"));

    // The other services confirm on their stream; the receipt completes with the last.
    let mut redis = env.redis().connection();
    let stream = env.redis().key("stream:erasure.confirmed");
    for service in ["interaction", "segmentation", "customization"] {
        let event = ErasureConfirmed {
            erasure: receipt.name.clone(),
            customer_id: ada.trim_start_matches("customers/").to_owned(),
            service: service.to_owned(),
            time: Some(timestamp(chrono::Utc::now())),
        };
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("event_id")
            .arg(format!("{service}:1"))
            .arg("payload")
            .arg(event.encode_to_vec())
            .query_async(&mut redis)
            .await
            .expect("xadd");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let completed = loop {
        let receipt = client
            .get_erasure_receipt(GetErasureReceiptRequest { name: receipt.name.clone() })
            .await
            .expect("receipt")
            .into_inner();
        if receipt.state == ErasureState::Completed as i32 {
            break receipt;
        }
        assert!(tokio::time::Instant::now() < deadline, "not completed: {receipt:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(completed.confirmations.iter().all(|c| c.confirmed && c.confirm_time.is_some()));
    assert!(completed.complete_time.is_some());
    pool.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn erasure_is_audited_and_published() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let (ada, augusta, _) = customer_with_history(&mut client).await;
    let receipt = client.erase_customer(erase_request(&ada, "")).await.expect("erase").into_inner();

    let audit = audit_entries(&mut client, &ada).await;
    let entry = audit.iter().find(|e| e.action == "EraseCustomer").expect("audited");
    assert_eq!((entry.caller.as_str(), entry.reason.as_str()), ("test-admin", "data subject request 2026-117"));

    let event: pb::CustomerErased = next_event(&env, "customer.erased").await;
    assert_eq!(event.erasure, receipt.name);
    assert_eq!(format!("customers/{}", event.customer_id), ada);
    assert_eq!(event.merged_customer_ids, [augusta.trim_start_matches("customers/")]);
    env.cleanup().await;
}

#[tokio::test]
async fn an_erased_identifier_starts_a_fresh_customer_without_the_erased_data() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let (ada, _, address) = customer_with_history(&mut client).await;
    client.erase_customer(erase_request(&ada, "")).await.expect("erase");

    let customer =
        Customer { kind: CustomerKind::Person as i32, identifiers: vec![email(&address)], ..Default::default() };
    let fresh = create(&mut client, customer).await;
    assert_ne!(fresh.name, ada);
    assert_eq!((fresh.given_name.as_str(), fresh.birth_date, fresh.erasure.as_str()), ("", None, ""));
    assert_eq!(fresh.identifiers.len(), 1);
    let found = client
        .lookup_customer(LookupCustomerRequest { identifiers: vec![email(&address)] })
        .await
        .expect("lookup")
        .into_inner();
    assert_eq!(found.customer.expect("customer").name, fresh.name);
    let facts = client
        .list_profile_facts(ListProfileFactsRequest { parent: fresh.name.clone(), ..Default::default() })
        .await
        .expect("facts")
        .into_inner();
    assert!(facts.facts.is_empty(), "{:?}", facts.facts);
    let consents = client
        .get_consents(GetConsentsRequest { parent: fresh.name.clone(), ..Default::default() })
        .await
        .expect("consents")
        .into_inner();
    assert!(consents.consents.is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn merged_customers_and_bad_requests_are_refused() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let (ada, augusta, _) = customer_with_history(&mut client).await;

    let merged = client.erase_customer(erase_request(&augusta, "")).await.expect_err("merged");
    assert_eq!(merged.code(), Code::FailedPrecondition);
    let mut no_reason = erase_request(&ada, "");
    no_reason.reason.clear();
    let status = client.erase_customer(no_reason).await.expect_err("no reason");
    assert_invalid(&status, &["reason"]);
    let unknown = client
        .get_erasure_receipt(GetErasureReceiptRequest { name: format!("erasures/{}", Uuid::now_v7()) })
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);

    // Outside an erasure the consent ledger stays append-only.
    let pool = env.pool("identification").await;
    let changed = sqlx::query("UPDATE consent_records SET evidence_reference = ''").execute(&pool).await;
    assert!(changed.is_err(), "the ledger refuses updates of active customers");
    pool.close().await;
    env.cleanup().await;
}
