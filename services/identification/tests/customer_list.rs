//! Listing and updating customers through real gRPC and Postgres: keyset pages that
//! visit every customer once, filters, masking, and field-mask updates that keep their
//! history as profile facts, guarded by etags.

mod common;

use common::{Client, admin, assert_invalid, client, create, fact_history, get, organization, person};
use idic_proto::{
    common::v1::{Channel, Period},
    identification::v1::{
        Customer, CustomerKind, CustomerRole, CustomerState, Date, ListCustomersRequest, Provenance,
        UpdateCustomerRequest,
    },
};
use idic_testkit::{TestEnv, tokens};
use prost_types::FieldMask;
use tonic::Code;

/// Every page of a listing; answers the names in the order served.
async fn list_all(client: &mut Client, request: ListCustomersRequest) -> Vec<String> {
    let mut names = Vec::new();
    let mut request = request;
    loop {
        let page = client.list_customers(request.clone()).await.expect("page").into_inner();
        let size = if request.page_size == 0 { 50 } else { request.page_size as usize };
        assert!(page.customers.len() <= size);
        names.extend(page.customers.into_iter().map(|c| c.name));
        if page.next_page_token.is_empty() {
            return names;
        }
        request.page_token = page.next_page_token;
    }
}

fn update(customer: Customer, paths: &[&str]) -> UpdateCustomerRequest {
    UpdateCustomerRequest {
        customer: Some(customer),
        update_mask: Some(FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() }),
        provenance: None,
        request_id: String::new(),
    }
}

#[tokio::test]
async fn paging_visits_every_customer_exactly_once_oldest_first() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let mut created = Vec::new();
    for n in 0..23 {
        created.push(create(&mut admin, person(&format!("Person{n}"), "Pager")).await.name);
    }

    let listed = list_all(&mut admin, ListCustomersRequest { page_size: 5, ..Default::default() }).await;
    assert_eq!(listed, created, "each once, in creation order");
    let one_page = list_all(&mut admin, ListCustomersRequest::default()).await;
    assert_eq!(one_page, created, "the default page size holds them all");

    let first = admin
        .list_customers(ListCustomersRequest { page_size: 5, ..Default::default() })
        .await
        .expect("first page")
        .into_inner();
    let foreign = admin
        .list_customers(ListCustomersRequest {
            page_size: 5,
            page_token: first.next_page_token,
            kind: CustomerKind::Organization as i32,
            ..Default::default()
        })
        .await
        .expect_err("a token of another filter");
    assert_invalid(&foreign, &["page_token"]);
    let too_big = admin
        .list_customers(ListCustomersRequest { page_size: 1001, ..Default::default() })
        .await
        .expect_err("page size");
    assert_invalid(&too_big, &["page_size"]);
    env.cleanup().await;
}

#[tokio::test]
async fn filters_combine_kind_role_state_parent_and_update_period() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let acme = create(&mut admin, organization("Acme Ltd")).await;
    let globex = create(
        &mut admin,
        Customer { roles: vec![CustomerRole::Distributor as i32], ..organization("Globex Distribution") },
    )
    .await;
    let wile = create(&mut admin, Customer { parent_customer: acme.name.clone(), ..person("Wile", "Coyote") }).await;
    let road = create(&mut admin, Customer { parent_customer: acme.name.clone(), ..person("Road", "Runner") }).await;
    let solo = create(&mut admin, person("Solo", "Buyer")).await;
    let erased = create(&mut admin, person("Gone", "Away")).await;
    let pool = env.pool("identification").await;
    sqlx::query("UPDATE customers SET state = 'erased' WHERE id = $1::uuid")
        .bind(erased.name.trim_start_matches("customers/"))
        .execute(&pool)
        .await
        .expect("erase in the database");

    let request = |f: fn(&mut ListCustomersRequest)| {
        let mut r = ListCustomersRequest { page_size: 2, ..Default::default() };
        f(&mut r);
        r
    };
    let orgs = list_all(&mut admin, request(|r| r.kind = CustomerKind::Organization as i32)).await;
    assert_eq!(orgs, [acme.name.clone(), globex.name.clone()]);
    let distributors = list_all(&mut admin, request(|r| r.role = CustomerRole::Distributor as i32)).await;
    assert_eq!(distributors, std::slice::from_ref(&globex.name));
    let everyone = list_all(&mut admin, request(|_| {})).await;
    assert_eq!(everyone.len(), 5, "UNSPECIFIED lists ACTIVE customers only");
    assert!(!everyone.contains(&erased.name));
    let gone = list_all(&mut admin, request(|r| r.state = CustomerState::Erased as i32)).await;
    assert_eq!(gone, std::slice::from_ref(&erased.name));

    let contacts = list_all(
        &mut admin,
        ListCustomersRequest { parent_customer: acme.name.clone(), page_size: 1, ..Default::default() },
    )
    .await;
    assert_eq!(contacts, [wile.name.clone(), road.name.clone()]);
    let people_of_acme = list_all(
        &mut admin,
        ListCustomersRequest {
            parent_customer: acme.name.clone(),
            kind: CustomerKind::Organization as i32,
            ..Default::default()
        },
    )
    .await;
    assert!(people_of_acme.is_empty(), "filters combine with AND");

    // Incremental synchronisation: only what changed since a point in time.
    let mut changed = solo.clone();
    changed.preferred_name = "Han".into();
    let changed = admin.update_customer(update(changed, &["preferred_name"])).await.expect("update").into_inner();
    let since = Period { start_time: changed.update_time, end_time: None };
    let recent =
        list_all(&mut admin, ListCustomersRequest { update_period: Some(since), page_size: 10, ..Default::default() })
            .await;
    assert_eq!(recent, std::slice::from_ref(&solo.name));
    let backwards = admin
        .list_customers(ListCustomersRequest {
            update_period: Some(Period { start_time: since.start_time, end_time: acme.create_time }),
            ..Default::default()
        })
        .await
        .expect_err("an empty period");
    assert_invalid(&backwards, &["update_period.end_time"]);
    let bad = admin
        .list_customers(ListCustomersRequest { kind: 9, parent_customer: "acme".into(), ..Default::default() })
        .await
        .expect_err("malformed filters");
    assert_invalid(&bad, &["kind", "parent_customer"]);
    env.cleanup().await;
}

#[tokio::test]
async fn listed_customers_are_masked_without_pii_read() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    create(&mut admin, person("Ada", "Lovelace")).await;
    let mut reader = client(&env, tokens::PROFILE_READER).await;
    let listed = reader.list_customers(ListCustomersRequest::default()).await.expect("list").into_inner();
    assert_eq!(listed.customers.len(), 1);
    let ada = &listed.customers[0];
    assert!(ada.pii_masked);
    assert_eq!((ada.given_name.as_str(), ada.family_name.as_str()), ("A***", "L***"));
    let denied = client(&env, tokens::NO_SCOPES)
        .await
        .list_customers(ListCustomersRequest::default())
        .await
        .expect_err("needs profiles.read");
    assert_eq!(denied.code(), Code::PermissionDenied);
    env.cleanup().await;
}

#[tokio::test]
async fn an_update_changes_only_masked_fields_and_keeps_their_history() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let ada = create(
        &mut admin,
        Customer {
            preferred_name: "Countess".into(),
            birth_date: Some(Date { year: 1990, month: 12, day: 10 }),
            ..person("Ada", "Lovelace")
        },
    )
    .await;

    let mut sent = ada.clone();
    sent.given_name = "Augusta".into();
    sent.family_name = "King".into();
    sent.preferred_name = String::new();
    sent.preferred_channel = Channel::Email as i32;
    let request = UpdateCustomerRequest {
        provenance: Some(Provenance { source: "crm".into(), channel: Channel::CallCentre as i32, observe_time: None }),
        ..update(sent, &["family_name", "preferred_name", "preferred_channel"])
    };
    let updated = admin.update_customer(request).await.expect("update").into_inner();
    assert_eq!(updated.given_name, "Ada", "not in the mask");
    assert_eq!(updated.family_name, "King");
    assert_eq!(updated.preferred_name, "", "in the mask and empty: cleared");
    assert_eq!(updated.preferred_channel, Channel::Email as i32);
    assert_eq!(updated.birth_date, ada.birth_date);
    assert_ne!(updated.etag, ada.etag);
    let got = get(&mut admin, &ada.name).await;
    assert_eq!(got, updated, "the cached profile was dropped");

    let history = fact_history(&mut admin, &ada.name, "family_name").await;
    let values: Vec<String> = history.iter().filter_map(|f| f.value.clone()?.kind).map(|k| format!("{k:?}")).collect();
    assert_eq!(values, ["StringValue(\"King\")", "StringValue(\"Lovelace\")"], "newest first");
    let provenance = history[0].provenance.clone().expect("provenance");
    assert_eq!((provenance.source.as_str(), provenance.channel), ("crm", Channel::CallCentre as i32));
    assert!(history[0].current);
    let given = fact_history(&mut admin, &ada.name, "given_name").await;
    assert_eq!(given.len(), 1, "an unmasked field records nothing");

    // Unchanged values record nothing and leave the etag alone.
    let same = admin.update_customer(update(got.clone(), &["family_name"])).await.expect("no-op").into_inner();
    assert_eq!(same.etag, got.etag);
    env.cleanup().await;
}

#[tokio::test]
async fn an_update_with_a_stale_etag_is_aborted() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let read = create(&mut admin, person("Tim", "Berners")).await;

    let mut first = read.clone();
    first.family_name = "Berners-Lee".into();
    let updated = admin.update_customer(update(first, &["family_name"])).await.expect("current etag").into_inner();
    let mut second = read.clone();
    second.job_title = "Director".into();
    let stale = admin.update_customer(update(second.clone(), &["job_title"])).await.expect_err("stale etag");
    assert_eq!(stale.code(), Code::Aborted);
    second.etag = String::new();
    let blind = admin.update_customer(update(second, &["job_title"])).await.expect("no etag, no check").into_inner();
    assert_eq!((blind.family_name.as_str(), blind.job_title.as_str()), ("Berners-Lee", "Director"));
    assert_ne!(blind.etag, updated.etag);
    env.cleanup().await;
}

#[tokio::test]
async fn an_update_is_idempotent_with_its_request_id() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let read = create(&mut admin, person("Mary", "Jackson")).await;
    let mut sent = read.clone();
    sent.job_title = "Engineer".into();
    let request = UpdateCustomerRequest { request_id: "update-mary-1".into(), ..update(sent, &["job_title"]) };
    let first = admin.update_customer(request.clone()).await.expect("first").into_inner();
    let retry = admin.update_customer(request.clone()).await.expect("a retry, despite its now stale etag").into_inner();
    assert_eq!(retry, first);
    let facts = fact_history(&mut admin, &read.name, "job_title").await;
    assert_eq!(facts.len(), 1, "recorded once");
    let mut other = request;
    other.update_mask = Some(FieldMask { paths: vec!["job_title".into(), "time_zone".into()] });
    let reused = admin.update_customer(other).await.expect_err("request_id reused");
    assert_eq!(reused.code(), Code::FailedPrecondition);
    env.cleanup().await;
}

#[tokio::test]
async fn roles_and_parent_are_updated_without_cycles() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let holding = create(&mut admin, organization("Holding SA")).await;
    let subsidiary = create(&mut admin, organization("Subsidiary SARL")).await;
    let contact = create(&mut admin, person("Paul", "Contact")).await;

    let mut sent = subsidiary.clone();
    sent.parent_customer = holding.name.clone();
    sent.roles = vec![CustomerRole::Partner as i32, CustomerRole::Distributor as i32, CustomerRole::Partner as i32];
    let updated =
        admin.update_customer(update(sent, &["parent_customer", "roles"])).await.expect("update").into_inner();
    assert_eq!(updated.parent_customer, holding.name);
    assert_eq!(updated.roles, [CustomerRole::Distributor as i32, CustomerRole::Partner as i32]);

    let mut cycle = holding.clone();
    cycle.parent_customer = subsidiary.name.clone();
    let status = admin.update_customer(update(cycle, &["parent_customer"])).await.expect_err("a cycle");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let mut under_person = holding.clone();
    under_person.parent_customer = contact.name.clone();
    let status = admin.update_customer(update(under_person, &["parent_customer"])).await.expect_err("a person");
    assert_eq!(status.code(), Code::FailedPrecondition);

    let mut detached = updated.clone();
    detached.parent_customer = String::new();
    let detached = admin.update_customer(update(detached, &["parent_customer"])).await.expect("cleared").into_inner();
    assert_eq!(detached.parent_customer, "");
    let facts = fact_history(&mut admin, &subsidiary.name, "parent_customer").await;
    assert_eq!(facts.len(), 2, "set, then cleared");
    env.cleanup().await;
}

#[tokio::test]
async fn an_update_is_validated_and_refused_for_erased_customers() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let org = create(&mut admin, organization("Initech")).await;

    let status = admin.update_customer(update(org.clone(), &[])).await.expect_err("empty mask");
    assert_invalid(&status, &["update_mask"]);
    let status = admin.update_customer(update(org.clone(), &["*", "kind", "shoe_size"])).await.expect_err("paths");
    assert_invalid(&status, &["update_mask.paths[0]", "update_mask.paths[1]", "update_mask.paths[2]"]);
    let mut long = org.clone();
    long.given_name = "x".repeat(201);
    long.preferred_channel = 99;
    let status =
        admin.update_customer(update(long, &["given_name", "preferred_channel"])).await.expect_err("bad values");
    assert_invalid(&status, &["customer.given_name", "customer.preferred_channel"]);
    let mut born = org.clone();
    born.birth_date = Some(Date { year: 1999, month: 2, day: 19 });
    born.organization_name = String::new();
    let status = admin
        .update_customer(update(born, &["birth_date", "organization_name"]))
        .await
        .expect_err("not for an organization");
    assert_invalid(&status, &["customer.birth_date", "customer.organization_name"]);
    let mut unknown = org.clone();
    unknown.name = "customers/0190aaaa-0000-7000-8000-000000000000".into();
    let status = admin.update_customer(update(unknown, &["time_zone"])).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);

    let mut reader = client(&env, tokens::PROFILE_READER).await;
    let denied = reader.update_customer(update(org.clone(), &["time_zone"])).await.expect_err("read only");
    assert_eq!(denied.code(), Code::PermissionDenied);

    let pool = env.pool("identification").await;
    sqlx::query("UPDATE customers SET state = 'erased' WHERE id = $1::uuid")
        .bind(org.name.trim_start_matches("customers/"))
        .execute(&pool)
        .await
        .expect("erase in the database");
    let mut sent = org;
    sent.time_zone = "Europe/Paris".into();
    sent.etag = String::new();
    let status = admin.update_customer(update(sent, &["time_zone"])).await.expect_err("erased");
    assert_eq!(status.code(), Code::FailedPrecondition);
    env.cleanup().await;
}
