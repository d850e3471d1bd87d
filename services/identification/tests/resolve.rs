//! ResolveCustomer through real gRPC: exact strong identifiers first, then the
//! probabilistic matcher; linking, creating, and filing review candidates; shared
//! values never fusing people; idempotent retries; bad input named.

mod common;

use common::{admin, assert_invalid, create, email, fact_history, get, identifier, person, unique_email, unique_phone};
use idic::Target;
use idic_identification::domain::matching::engine::DEFAULT_LINK_PROBABILITY;
use idic_proto::common::v1::{Identifier, IdentifierKind};
use idic_proto::identification::v1::{
    CreateIdentifierRuleRequest, Customer, CustomerIdentifier, Date, IdentifierRule, IdentifierRuleAction,
    ListIdentifiersRequest, ListMergeCandidatesRequest, MatchKind, ResolveCustomerRequest, ResolveCustomerResponse,
};
use idic_testkit::{TestEnv, tokens};
use tonic::Code;

fn born(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

fn contact(customer: Customer) -> ResolveCustomerRequest {
    ResolveCustomerRequest { customer: Some(customer), provenance: None, request_id: String::new() }
}

async fn resolve(client: &mut common::Client, customer: Customer) -> ResolveCustomerResponse {
    client.resolve_customer(contact(customer)).await.expect("resolve").into_inner()
}

fn address(line: &str) -> Identifier {
    identifier(IdentifierKind::PostalAddress, line)
}

#[tokio::test]
async fn a_known_identifier_links_exactly_and_attaches_what_is_new() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let mail = unique_email("grace@navy.mil");
    let grace = create(&mut client, Customer { identifiers: vec![email(&mail)], ..person("Grace", "Hopper") }).await;

    let phone = unique_phone();
    let answer = resolve(
        &mut client,
        Customer { identifiers: vec![email(&format!("  {}", mail.to_uppercase())), phone.clone()], ..person("", "") },
    )
    .await;
    assert_eq!(answer.match_kind, MatchKind::Exact as i32);
    assert_eq!(answer.customer.as_ref().map(|c| c.name.as_str()), Some(grace.name.as_str()));
    assert_eq!(answer.score, 1.0);
    assert_eq!(answer.matched_identifier.map(|i| i.value), Some(mail.clone()));
    // The phone the contact brought now belongs to Grace.
    let held = get(&mut client, &grace.name).await.identifiers;
    assert!(held.iter().any(|i| i.kind == IdentifierKind::Phone as i32 && i.value == phone.value), "{held:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn a_probable_match_links_with_evidence_and_a_stranger_is_created() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let william = create(
        &mut client,
        Customer {
            birth_date: born(1984, 3, 7),
            identifiers: vec![address("12 Acacia Avenue, SW1A 1AA, London")],
            ..person("William", "Smith")
        },
    )
    .await;

    // A nickname, the day and month swapped, the address abbreviated: still William.
    let answer = resolve(
        &mut client,
        Customer {
            birth_date: born(1984, 7, 3),
            identifiers: vec![address("12 acacia ave, sw1a 1aa, london")],
            ..person("Bill", "Smith")
        },
    )
    .await;
    assert_eq!(answer.match_kind, MatchKind::Probable as i32, "{answer:?}");
    assert_eq!(answer.customer.as_ref().map(|c| c.name.as_str()), Some(william.name.as_str()));
    assert_eq!(answer.best_candidate, william.name);
    assert!(answer.score >= DEFAULT_LINK_PROBABILITY && answer.match_weight > 0.0, "{answer:?}");
    let level = |field: &str| answer.evidence.iter().find(|e| e.field == field).map(|e| e.level.clone());
    assert_eq!(level("given_name").as_deref(), Some("nickname"));
    assert_eq!(level("birth_date").as_deref(), Some("transposed_day_month"));
    assert_eq!(level("postal_address").as_deref(), Some("same_address"));
    assert!(answer.merge_candidate.is_empty());

    // Someone else entirely.
    let stranger = resolve(&mut client, Customer { birth_date: born(1915, 12, 10), ..person("Ada", "Lovelace") }).await;
    assert_eq!(stranger.match_kind, MatchKind::New as i32);
    assert_ne!(stranger.customer.as_ref().map(|c| c.name.as_str()), Some(william.name.as_str()));
    assert!(stranger.merge_candidate.is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn the_review_band_creates_and_files_a_candidate() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let jonathan = create(&mut client, person("Jonathan", "Smith")).await;

    // Same given name, a family name that only sounds alike, nothing else: uncertain.
    let answer = resolve(&mut client, person("Jonathan", "Smyth")).await;
    assert_eq!(answer.match_kind, MatchKind::New as i32, "{answer:?}");
    assert_eq!(answer.best_candidate, jonathan.name);
    assert!(answer.score >= 0.5 && answer.score < DEFAULT_LINK_PROBABILITY, "{answer:?}");
    assert!(answer.merge_candidate.starts_with("mergeCandidates/"), "{answer:?}");
    let created = answer.customer.expect("customer").name;
    assert_ne!(created, jonathan.name);

    let pending = client
        .list_merge_candidates(ListMergeCandidatesRequest { customer: created.clone(), ..Default::default() })
        .await
        .expect("list")
        .into_inner()
        .candidates;
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].customer.as_str(), pending[0].duplicate_customer.as_str()),
        (jonathan.name.as_str(), created.as_str())
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_shared_phone_never_fuses_the_people_presenting_it() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let shop = identifier(IdentifierKind::Phone, "+33 1 40 20 50 50");
    client
        .create_identifier_rule(CreateIdentifierRuleRequest {
            rule: Some(IdentifierRule {
                identifier: Some(shop.clone()),
                action: IdentifierRuleAction::Shared as i32,
                reason: "the shop's own number, given by customers without a phone".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("rule");
    let mut customers = std::collections::HashSet::new();
    for (given, family) in [("Marie", "Curie"), ("Louis", "Pasteur"), ("Simone", "Veil"), ("Victor", "Hugo")] {
        let answer = resolve(&mut client, Customer { identifiers: vec![shop.clone()], ..person(given, family) }).await;
        assert_eq!(answer.match_kind, MatchKind::New as i32, "{given}: {answer:?}");
        customers.insert(answer.customer.expect("customer").name);
    }
    assert_eq!(customers.len(), 4);
    env.cleanup().await;
}

#[tokio::test]
async fn a_retried_resolution_answers_the_same_and_creates_once() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let request = ResolveCustomerRequest {
        customer: Some(Customer {
            identifiers: vec![email(&unique_email("emmy@goettingen.de"))],
            ..person("Emmy", "Noether")
        }),
        provenance: None,
        request_id: "contact-2024-0001".into(),
    };
    let first = client.resolve_customer(request.clone()).await.expect("first").into_inner();
    let again = client.resolve_customer(request.clone()).await.expect("retry").into_inner();
    assert_eq!(first.match_kind, MatchKind::New as i32);
    assert_eq!(again.match_kind, MatchKind::New as i32);
    assert_eq!(first.customer.map(|c| c.name), again.customer.map(|c| c.name));

    let mut other = request;
    other.customer = Some(person("Someone", "Else"));
    let reused = client.resolve_customer(other).await.expect_err("reused id");
    assert_eq!(reused.code(), Code::FailedPrecondition);
    env.cleanup().await;
}

#[tokio::test]
async fn bad_contacts_are_refused_naming_the_field() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let refused = client.resolve_customer(ResolveCustomerRequest::default()).await.expect_err("no customer");
    assert_invalid(&refused, &["customer"]);
    let refused = client.resolve_customer(contact(person("", ""))).await.expect_err("nothing to match on");
    assert_invalid(&refused, &["customer.given_name"]);
    let refused = client
        .resolve_customer(contact(Customer { identifiers: vec![email("test@test.com")], ..person("A", "B") }))
        .await
        .expect_err("junk");
    assert_invalid(&refused, &["customer.identifiers[0].value"]);

    let mut reader = common::client(&env, tokens::PROFILE_READER).await;
    let denied = reader.resolve_customer(contact(person("Ada", "Lovelace"))).await.expect_err("reader");
    assert_eq!(denied.code(), Code::PermissionDenied);
    env.cleanup().await;
}

#[tokio::test]
async fn a_call_is_ended_at_the_servers_deadline() {
    // A server deadline no resolution can meet: several Redis and Postgres round trips.
    let env = TestEnv::start_with(&[idic::Target::All], |config| config.server.request_timeout_ms = 1).await;
    let mut client = admin(&env).await;
    let identifiers =
        vec![email(&unique_email("katherine@nasa.gov")), unique_phone(), address("1 Langley Road, Hampton")];
    let ended = client
        .resolve_customer(contact(Customer { identifiers, ..person("Katherine", "Johnson") }))
        .await
        .expect_err("past the deadline");
    assert_eq!(ended.code(), Code::DeadlineExceeded, "{ended:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn concurrent_first_contacts_of_one_person_create_one_customer() {
    let env = TestEnv::monolith().await;
    let client = admin(&env).await;
    let mail = unique_email("ada@analytical.org");
    // The same new person arriving on eight channels at once: by email, and by name
    // and birth date alone.
    let by_email = Customer { identifiers: vec![email(&mail)], ..person("Ada", "Lovelace") };
    let by_name = Customer { birth_date: born(1985, 12, 10), ..person("Augusta", "Byron") };
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut client = client.clone();
        let customer = if i % 2 == 0 { by_email.clone() } else { by_name.clone() };
        tasks.push(tokio::spawn(async move { resolve(&mut client, customer).await }));
    }
    let mut customers = std::collections::HashMap::<bool, std::collections::HashSet<String>>::new();
    let mut created = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        let answer = task.await.expect("task");
        created += usize::from(answer.match_kind == MatchKind::New as i32);
        customers.entry(i % 2 == 0).or_default().insert(answer.customer.expect("customer").name);
    }
    assert_eq!(customers[&true].len(), 1, "one customer for the email: {customers:?}");
    assert_eq!(customers[&false].len(), 1, "one customer for the name and birth date: {customers:?}");
    assert_eq!(created, 2, "each person created once");
}

async fn held_email(client: &mut common::Client, parent: &str) -> CustomerIdentifier {
    let request =
        ListIdentifiersRequest { parent: parent.to_owned(), kind: IdentifierKind::Email as i32, ..Default::default() };
    let held = client.list_identifiers(request).await.expect("identifiers").into_inner().identifiers;
    held.into_iter().next().expect("an email")
}

#[tokio::test]
async fn a_repeated_contact_is_answered_without_writing_within_the_refresh_period() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let known =
        Customer { identifiers: vec![email(&unique_email("sofia@stockholm.se"))], ..person("Sofia", "Kovalevskaya") };
    let first = resolve(&mut client, known.clone()).await;
    assert_eq!(first.match_kind, MatchKind::New as i32);
    let sofia = first.customer.expect("customer").name;
    let seen = held_email(&mut client, &sofia).await.last_seen_time;

    for _ in 0..3 {
        let again = resolve(&mut client, known.clone()).await;
        assert_eq!(again.match_kind, MatchKind::Exact as i32);
        assert_eq!(again.customer.map(|c| c.name), Some(sofia.clone()));
    }
    // Nothing was written again: one given-name fact, the email's last sight unchanged.
    assert_eq!(fact_history(&mut client, &sofia, "given_name").await.len(), 1);
    assert_eq!(held_email(&mut client, &sofia).await.last_seen_time, seen);

    // A contact bringing something new is applied.
    let phone = unique_phone();
    let with_phone = Customer { identifiers: vec![known.identifiers[0].clone(), phone.clone()], ..known.clone() };
    assert_eq!(resolve(&mut client, with_phone).await.match_kind, MatchKind::Exact as i32);
    let held = get(&mut client, &sofia).await.identifiers;
    assert!(held.iter().any(|i| i.value == phone.value), "{held:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn a_repeated_contact_refreshes_last_seen_once_the_period_is_over() {
    let env = TestEnv::start_with(&[Target::All], |c| c.identification.contact_refresh_secs = 1).await;
    let mut client = admin(&env).await;
    let known =
        Customer { identifiers: vec![email(&unique_email("mary@bristol.ac.uk"))], ..person("Mary", "Cartwright") };
    let mary = resolve(&mut client, known.clone()).await.customer.expect("customer").name;
    let seen = held_email(&mut client, &mary).await.last_seen_time.expect("last seen");

    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert_eq!(resolve(&mut client, known.clone()).await.match_kind, MatchKind::Exact as i32);
    let refreshed = held_email(&mut client, &mary).await.last_seen_time.expect("last seen");
    assert!((refreshed.seconds, refreshed.nanos) > (seen.seconds, seen.nanos), "{seen:?} then {refreshed:?}");
    assert_eq!(fact_history(&mut client, &mary, "given_name").await.len(), 2);
    env.cleanup().await;
}

#[tokio::test]
async fn a_repeated_contact_is_applied_while_redis_is_down() {
    let env = TestEnv::start_with(&[Target::All], |c| c.redis.url = "redis://127.0.0.1:1".into()).await;
    let mut client = admin(&env).await;
    let known = Customer { identifiers: vec![email(&unique_email("ada@ealing.co.uk"))], ..person("Ada", "Lovelace") };
    let ada = resolve(&mut client, known.clone()).await.customer.expect("customer").name;
    let again = resolve(&mut client, known).await;
    assert_eq!(again.match_kind, MatchKind::Exact as i32);
    assert_eq!(again.customer.map(|c| c.name), Some(ada.clone()));
    // Without the cache to say it was applied, the repeat is written like any contact.
    assert_eq!(fact_history(&mut client, &ada, "given_name").await.len(), 2);
    env.cleanup().await;
}
