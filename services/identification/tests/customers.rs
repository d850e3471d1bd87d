//! Customers through real gRPC, Postgres and Redis: create, read back, idempotent
//! retries, validation naming the field, unique identifiers, masking, and reads that
//! survive Redis being down.

mod common;

use common::{admin, assert_invalid, client, create, create_request, email, get, person, violated_fields};
use idic::Target;
use idic_proto::{
    common::v1::Identifier,
    identification::v1::{self as pb, CreateCustomerRequest, Customer, CustomerKind, Date, GetCustomerRequest},
};
use idic_testkit::{TestEnv, tokens};
use tonic::Code;

fn ada(identifiers: Vec<Identifier>) -> Customer {
    Customer { birth_date: Some(Date { year: 1990, month: 12, day: 10 }), identifiers, ..person("Ada", "Lovelace") }
}

#[tokio::test]
async fn created_customer_is_stored_and_read_back_through_the_cache() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;

    let created = create(&mut admin, ada(vec![email(" Ada@Analytical-Engine.CO.UK ")])).await;
    assert!(created.name.starts_with("customers/"));
    assert_eq!(created.display_name, "Ada Lovelace");
    assert_eq!(created.identifiers[0].value, "ada@analytical-engine.co.uk", "emails are normalised");
    assert_eq!(created.state, pb::CustomerState::Active as i32);

    let got = get(&mut admin, &created.name).await;
    assert_eq!(got, created);

    // Stored in Postgres (the schema of identification) ...
    let pool = env.pool("identification").await;
    let id = created.name.trim_start_matches("customers/");
    let stored: (String,) = sqlx::query_as("SELECT given_name FROM customers WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("row");
    assert_eq!(stored.0, "Ada");
    // ... and cached in Redis under the test's prefix.
    let mut redis = env.redis().connection();
    let key = env.redis().key(&format!("identification:customer:{id}"));
    let cached: Option<Vec<u8>> = redis::AsyncCommands::get(&mut redis, &key).await.expect("redis");
    assert!(cached.is_some(), "the profile is cached at {key}");
    pool.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_retried_create_with_the_same_request_id_creates_one_customer() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let request = create_request(ada(vec![email("ada.retry@analytical-engine.co.uk")]), "create-ada-1");
    let first = admin.create_customer(request.clone()).await.expect("first").into_inner();
    let second = admin.create_customer(request).await.expect("retry").into_inner();
    assert_eq!(first.name, second.name);

    let other = create_request(ada(vec![email("someone.else@analytical-engine.co.uk")]), "create-ada-1");
    let reused = admin.create_customer(other).await.expect_err("same key, other request");
    assert_eq!(reused.code(), Code::FailedPrecondition);

    let pool = env.pool("identification").await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM customers").fetch_one(&pool).await.expect("count");
    assert_eq!(count, 1);
    pool.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn invalid_input_is_refused_naming_each_field() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let cases: Vec<(Customer, Vec<&str>)> = vec![
        (ada(vec![email("bob@@example")]), vec!["customer.identifiers[0].value"]),
        (ada(vec![email("ok@analytical-engine.co.uk"), email("test@test.com")]), vec!["customer.identifiers[1].value"]),
        (Customer { kind: 0, ..ada(vec![]) }, vec!["customer.kind"]),
        (
            Customer { kind: CustomerKind::Organization as i32, birth_date: None, ..ada(vec![]) },
            vec!["customer.organization_name"],
        ),
        (
            Customer { birth_date: Some(Date { year: 1990, month: 2, day: 30 }), ..ada(vec![]) },
            vec!["customer.birth_date"],
        ),
        (Customer { parent_customer: "customers/nope".into(), ..ada(vec![]) }, vec!["customer.parent_customer"]),
        (Customer { given_name: "x".repeat(201), ..ada(vec![]) }, vec!["customer.given_name"]),
    ];
    for (customer, expected) in cases {
        let status = admin.create_customer(create_request(customer, "")).await.expect_err("must be refused");
        assert_invalid(&status, &expected);
    }
    let missing = admin.create_customer(CreateCustomerRequest::default()).await.expect_err("no customer");
    assert_invalid(&missing, &["customer"]);
    let bad_key = admin.create_customer(create_request(ada(vec![]), "has spaces")).await.expect_err("bad request id");
    assert_invalid(&bad_key, &["request_id"]);
    let bad_name = admin.get_customer(GetCustomerRequest { name: "people/1".into() }).await.expect_err("bad name");
    assert_invalid(&bad_name, &["name"]);
    let unknown = admin
        .get_customer(GetCustomerRequest { name: format!("customers/{}", uuid::Uuid::new_v4()) })
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    env.cleanup().await;
}

#[tokio::test]
async fn an_identifier_belongs_to_one_customer() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    create(&mut admin, ada(vec![email("shared@analytical-engine.co.uk")])).await;
    let status = admin
        .create_customer(create_request(
            ada(vec![email("other@analytical-engine.co.uk"), email("SHARED@analytical-engine.co.uk")]),
            "",
        ))
        .await
        .expect_err("second holder");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(violated_fields(&status), ["customer.identifiers[1]"]);
    env.cleanup().await;
}

#[tokio::test]
async fn personal_data_is_masked_without_pii_read() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let created = create(&mut admin, ada(vec![email("ada.masked@analytical-engine.co.uk")])).await;
    let name = GetCustomerRequest { name: created.name.clone() };

    let masked =
        client(&env, tokens::PROFILE_READER).await.get_customer(name.clone()).await.expect("reader").into_inner();
    assert!(masked.pii_masked);
    assert_eq!((masked.given_name.as_str(), masked.family_name.as_str()), ("A***", "L***"));
    assert_eq!(masked.identifiers[0].value, "a***@analytical-engine.co.uk");
    assert_eq!(masked.birth_date, Some(Date { year: 1990, month: 0, day: 0 }));

    let clear = client(&env, tokens::PII_READER).await.get_customer(name).await.expect("pii reader").into_inner();
    assert!(!clear.pii_masked);
    assert_eq!(clear.identifiers[0].value, "ada.masked@analytical-engine.co.uk");
    env.cleanup().await;
}

#[tokio::test]
async fn reads_and_writes_work_with_redis_down() {
    // Nothing listens on port 1: every Redis command fails fast.
    let env = TestEnv::start_with(&[Target::All], |c| c.redis.url = "redis://127.0.0.1:1".into()).await;
    let mut admin = admin(&env).await;
    let created = create(&mut admin, ada(vec![email("no.cache@analytical-engine.co.uk")])).await;
    let got = get(&mut admin, &created.name).await;
    assert_eq!(got.display_name, "Ada Lovelace");
    env.cleanup().await;
}
