//! Exact lookup by identifiers through real gRPC: normalised values match, the first
//! held identifier decides, addresses never match, and the holder is cached in Redis.

mod common;

use common::{admin, create_person, identifier as id};
use idic_proto::{common::v1::IdentifierKind, identification::v1::LookupCustomerRequest};
use idic_testkit::{TestEnv, tokens};
use tonic::Code;

#[tokio::test]
async fn the_first_held_identifier_finds_its_customer() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let identifiers = vec![
        id(IdentifierKind::Email, "alan@bletchley-park.org"),
        id(IdentifierKind::LoyaltyCard, "LC-2024-7731"),
        id(IdentifierKind::PostalAddress, "2 Wilmslow Road, Manchester, M14 5TQ"),
    ];
    let alan = create_person(&mut client, "Alan", identifiers).await;

    let lookup = |identifiers| LookupCustomerRequest { identifiers };
    let found = client
        .lookup_customer(lookup(vec![
            id(IdentifierKind::Email, "nobody@bletchley-park.org"),
            id(IdentifierKind::LoyaltyCard, "lc 2024 7731"),
        ]))
        .await
        .expect("found by card")
        .into_inner();
    assert_eq!(found.customer.map(|c| c.name), Some(alan.clone()));
    assert_eq!(found.matched_identifier.map(|i| i.value), Some("LC20247731".to_owned()));

    let by_email = client
        .lookup_customer(lookup(vec![id(IdentifierKind::Email, " ALAN@Bletchley-Park.org")]))
        .await
        .expect("found by email")
        .into_inner();
    assert_eq!(by_email.customer.map(|c| c.name), Some(alan.clone()));
    let key = env.redis().key("identification:identifier:email::alan@bletchley-park.org");
    let cached: Option<String> = redis::AsyncCommands::get(&mut env.redis().connection(), &key).await.expect("redis");
    assert!(cached.is_some_and(|c| c.contains(alan.trim_start_matches("customers/"))));

    let address = client
        .lookup_customer(lookup(vec![id(IdentifierKind::PostalAddress, "2 Wilmslow Road, Manchester, M14 5TQ")]))
        .await
        .expect_err("addresses are evidence, not keys");
    assert_eq!(address.code(), Code::NotFound);

    let mut reader = common::client(&env, tokens::PROFILE_READER).await;
    let masked = reader
        .lookup_customer(lookup(vec![id(IdentifierKind::Email, "alan@bletchley-park.org")]))
        .await
        .expect("reader")
        .into_inner();
    assert_eq!(masked.matched_identifier.map(|i| i.value), Some("a***@bletchley-park.org".to_owned()));
    env.cleanup().await;
}

#[tokio::test]
async fn lookups_are_bounded_and_validated() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let empty = client.lookup_customer(LookupCustomerRequest::default()).await.expect_err("empty");
    assert_eq!(empty.code(), Code::InvalidArgument);
    let many = vec![id(IdentifierKind::Email, "a@bletchley-park.org"); 21];
    assert_eq!(
        client.lookup_customer(LookupCustomerRequest { identifiers: many }).await.expect_err("too many").code(),
        Code::InvalidArgument
    );
    let malformed = client
        .lookup_customer(LookupCustomerRequest { identifiers: vec![id(IdentifierKind::Email, "no-at-sign")] })
        .await
        .expect_err("malformed");
    assert!(malformed.message().contains("identifiers[0].value"), "{}", malformed.message());
    env.cleanup().await;
}
