//! Identifiers and identifier rules through real gRPC, Postgres and Redis: adding within
//! per-kind limits, history with reasons, uniqueness and its release, shared values that
//! never link, blocked values, paging, idempotency and scopes.

mod common;

use common::{
    Client, admin, assert_invalid, audit_entries, client, create_person as create, create_request, email, get,
    identifier as id, person, violated_fields,
};
use idic::Target;
use idic_proto::{
    common::v1::{Channel, Identifier, IdentifierKind},
    identification::v1::{
        AddIdentifierRequest, CreateIdentifierRuleRequest, Customer, CustomerIdentifier, DeleteIdentifierRuleRequest,
        IdentifierRemovalReason, IdentifierRule, IdentifierRuleAction, IdentifierState, ListIdentifierRulesRequest,
        ListIdentifiersRequest, LookupCustomerRequest, Provenance, RemoveIdentifierRequest,
    },
};
use idic_testkit::{TestEnv, tokens};
use tonic::Code;

fn add(parent: &str, identifier: Identifier, priority: Option<i32>) -> AddIdentifierRequest {
    AddIdentifierRequest { parent: parent.to_owned(), identifier: Some(identifier), priority, ..Default::default() }
}

async fn list(client: &mut Client, parent: &str, include_removed: bool) -> Vec<CustomerIdentifier> {
    client
        .list_identifiers(ListIdentifiersRequest {
            parent: parent.to_owned(),
            include_removed,
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list identifiers")
        .into_inner()
        .identifiers
}

fn value(i: &CustomerIdentifier) -> &str {
    i.identifier.as_ref().map_or("", |i| i.value.as_str())
}

fn rule(identifier: Identifier, action: IdentifierRuleAction, reason: &str) -> CreateIdentifierRuleRequest {
    CreateIdentifierRuleRequest {
        rule: Some(IdentifierRule {
            identifier: Some(identifier),
            action: action as i32,
            reason: reason.to_owned(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

#[tokio::test]
async fn an_added_identifier_is_listed_with_its_priority_and_provenance() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let grace = create(&mut admin, "Grace", vec![id(IdentifierKind::Phone, "+1 202 555 0143")]).await;

    let added = admin
        .add_identifier(AddIdentifierRequest {
            verified: true,
            provenance: Some(Provenance {
                source: "web-signup".into(),
                channel: Channel::Web as i32,
                observe_time: None,
            }),
            ..add(&grace, email(" Grace@Navy.MIL "), Some(80))
        })
        .await
        .expect("add")
        .into_inner();
    assert!(added.name.starts_with(&format!("{grace}/identifiers/")), "{}", added.name);
    assert_eq!(value(&added), "grace@navy.mil", "normalised");
    assert_eq!((added.priority, added.verified, added.state), (80, true, IdentifierState::Active as i32));

    let listed = list(&mut admin, &grace, false).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], added, "emails come before phones");
    let provenance = listed[0].provenance.clone().expect("provenance");
    assert_eq!((provenance.source.as_str(), provenance.channel), ("web-signup", Channel::Web as i32));
    assert_eq!(listed[1].priority, 50, "the default priority");

    // The customer shows it at once (its cached profile was dropped).
    let customer = get(&mut admin, &grace).await;
    assert!(customer.identifiers.iter().any(|i| i.value == "grace@navy.mil"));

    // Adding it again refreshes it: same identifier, new priority, still verified.
    let again =
        admin.add_identifier(add(&grace, email("grace@navy.mil"), Some(90))).await.expect("re-add").into_inner();
    assert_eq!((again.name.as_str(), again.priority, again.verified), (added.name.as_str(), 90, true));
    assert_eq!(list(&mut admin, &grace, true).await.len(), 2, "no second row");
    env.cleanup().await;
}

#[tokio::test]
async fn reaching_the_limit_retires_the_lowest_priority_to_history() {
    let env = TestEnv::start_with(&[Target::All], |c| c.identification.identifier_limits.email = 3).await;
    let mut admin = admin(&env).await;
    let kim = create(&mut admin, "Kim", vec![]).await;
    for (value, priority) in [("kim@home.example", 60), ("kim@old-job.example", 20), ("kim@club.example", 70)] {
        admin.add_identifier(add(&kim, email(value), Some(priority))).await.expect("add within the limit");
    }

    admin.add_identifier(add(&kim, email("kim@new-job.example"), Some(40))).await.expect("add at the limit");
    let all = list(&mut admin, &kim, true).await;
    let held: Vec<&str> = all.iter().filter(|i| i.state == IdentifierState::Active as i32).map(value).collect();
    assert_eq!(held, ["kim@club.example", "kim@home.example", "kim@new-job.example"], "by priority");
    let retired = all.iter().find(|i| value(i) == "kim@old-job.example").expect("kept in history");
    assert_eq!(retired.state, IdentifierState::Removed as i32);
    assert_eq!(retired.removal_reason, IdentifierRemovalReason::Limit as i32);
    assert!(retired.remove_time.is_some());
    assert_eq!(all.last().map(value), Some("kim@old-job.example"), "history after held ones");

    // A new one that would rank below every held one is refused rather than retired at once.
    let lowest = admin.add_identifier(add(&kim, email("kim@spam.example"), Some(10))).await.expect_err("lowest");
    assert_eq!(lowest.code(), Code::FailedPrecondition, "{lowest:?}");

    // The retired value was released.
    let other = create(&mut admin, "Other", vec![]).await;
    admin.add_identifier(add(&other, email("kim@old-job.example"), None)).await.expect("released value");
    env.cleanup().await;
}

#[tokio::test]
async fn a_second_national_id_is_refused_not_replaced() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let lea = create(&mut admin, "Lea", vec![id(IdentifierKind::NationalId, "1 85 05 78 006 084")]).await;
    let second = admin
        .add_identifier(add(&lea, id(IdentifierKind::NationalId, "2 90 01 75 123 456"), Some(100)))
        .await
        .expect_err("national ids are never replaced silently");
    assert_eq!(second.code(), Code::FailedPrecondition);
    let held = list(&mut admin, &lea, true).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].state, IdentifierState::Active as i32);
    env.cleanup().await;
}

#[tokio::test]
async fn a_new_customer_may_not_bring_more_identifiers_of_a_kind_than_its_limit() {
    let env = TestEnv::start_with(&[Target::All], |c| c.identification.identifier_limits.email = 2).await;
    let mut admin = admin(&env).await;
    let national_ids = vec![
        email("nina@mail.example"),
        id(IdentifierKind::NationalId, "1 85 05 78 006 084"),
        id(IdentifierKind::NationalId, "2 90 01 75 123 456"),
    ];
    let emails = vec![
        email("nina@mail.example"),
        id(IdentifierKind::Phone, "+33 6 12 34 56 78"),
        email("nina@work.example"),
        email("nina@club.example"),
    ];
    for (identifiers, over) in [(national_ids, "customer.identifiers[2]"), (emails, "customer.identifiers[3]")] {
        let customer = Customer { identifiers, ..person("Nina", "") };
        let refused = admin.create_customer(create_request(customer, "")).await.expect_err("over the limit");
        assert_invalid(&refused, &[over]);
    }
    let at_the_limit = vec![email("nina@mail.example"), email("nina@work.example")];
    let nina = create(&mut admin, "Nina", at_the_limit).await;
    assert_eq!(list(&mut admin, &nina, false).await.len(), 2);
    env.cleanup().await;
}

#[tokio::test]
async fn a_value_held_by_another_customer_already_exists_except_addresses() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let address = id(IdentifierKind::PostalAddress, "12 Rue de Rivoli, 75004 Paris");
    let first = create(&mut admin, "Anne", vec![email("anne@mail.example"), address.clone()]).await;
    let second = create(&mut admin, "Bruno", vec![]).await;

    let taken = admin.add_identifier(add(&second, email("ANNE@mail.example"), None)).await.expect_err("taken");
    assert_eq!(taken.code(), Code::AlreadyExists);
    assert_eq!(violated_fields(&taken), ["identifier.value"]);
    admin.add_identifier(add(&second, address, None)).await.expect("a household shares its address");
    assert_eq!(list(&mut admin, &first, false).await.len(), 2, "the first holder keeps both");
    env.cleanup().await;
}

#[tokio::test]
async fn a_removed_identifier_stays_in_history_and_its_value_is_released() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let card = id(IdentifierKind::LoyaltyCard, "LC-7731-0042");
    let first = create(&mut admin, "Carl", vec![card.clone()]).await;
    let remove = |parent: &str, reason: &str| RemoveIdentifierRequest {
        parent: parent.to_owned(),
        identifier: Some(card.clone()),
        reason: reason.to_owned(),
    };

    let empty = admin.remove_identifier(remove(&first, " ")).await.expect_err("a reason is required");
    assert_invalid(&empty, &["reason"]);
    let removed = admin.remove_identifier(remove(&first, "card lost")).await.expect("remove").into_inner();
    assert_eq!(removed.state, IdentifierState::Removed as i32);
    assert_eq!(removed.removal_reason, IdentifierRemovalReason::Requested as i32);
    let again = admin.remove_identifier(remove(&first, "again")).await.expect("remove again").into_inner();
    assert_eq!(again, removed, "an already removed identifier is answered as it is");
    assert!(list(&mut admin, &first, false).await.is_empty());
    assert_eq!(list(&mut admin, &first, true).await, [removed]);

    let lookup = LookupCustomerRequest { identifiers: vec![card.clone()] };
    assert_eq!(admin.lookup_customer(lookup.clone()).await.expect_err("released").code(), Code::NotFound);
    let second = create(&mut admin, "Dora", vec![]).await;
    admin.add_identifier(add(&second, card.clone(), None)).await.expect("the value is free again");
    let found = admin.lookup_customer(lookup).await.expect("lookup").into_inner();
    assert_eq!(found.customer.map(|c| c.name), Some(second.clone()));

    let never = admin
        .remove_identifier(RemoveIdentifierRequest {
            parent: second,
            identifier: Some(email("never@mail.example")),
            reason: "cleanup".into(),
        })
        .await
        .expect_err("never held");
    assert_eq!(never.code(), Code::NotFound);
    env.cleanup().await;
}

#[tokio::test]
async fn a_shared_rule_lets_many_customers_hold_a_shop_phone_that_never_links() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let shop_phone = id(IdentifierKind::Phone, "+33 1 42 60 00 00");
    let lookup = LookupCustomerRequest { identifiers: vec![shop_phone.clone()] };
    // Held before the rule, it identified its holder (and the holder was cached).
    let first = create(&mut admin, "Shopper0", vec![shop_phone.clone()]).await;
    let found = admin.lookup_customer(lookup.clone()).await.expect("unique at first").into_inner();
    assert_eq!(found.customer.map(|c| c.name), Some(first.clone()));

    let created = admin
        .create_identifier_rule(rule(shop_phone.clone(), IdentifierRuleAction::Shared, "the shop's own number"))
        .await
        .expect("rule")
        .into_inner();
    assert!(created.name.starts_with("identifierRules/"));
    assert_eq!((created.created_by.as_str(), created.automatic), ("test-admin", false));
    let mut holders = vec![first];
    for n in 1..10 {
        holders.push(create(&mut admin, &format!("Shopper{n}"), vec![shop_phone.clone()]).await);
    }
    for n in 10..20 {
        let holder = create(&mut admin, &format!("Shopper{n}"), vec![]).await;
        let added = admin.add_identifier(add(&holder, shop_phone.clone(), None)).await.expect("add").into_inner();
        assert!(added.shared);
        holders.push(holder);
    }
    for holder in &holders {
        let held = list(&mut admin, holder, false).await;
        assert!(held.len() == 1 && held[0].shared, "{holder} holds it, shared");
    }
    let status = admin.lookup_customer(lookup.clone()).await.expect_err("a shared value never links");
    assert_eq!(status.code(), Code::NotFound);

    // Deleted, the rule leaves the sharers their value, but a new holder needs it alone.
    admin
        .delete_identifier_rule(DeleteIdentifierRuleRequest {
            name: created.name.clone(),
            reason: "shop closed".into(),
        })
        .await
        .expect("delete");
    let newcomer = create(&mut admin, "Newcomer", vec![]).await;
    let taken = admin.add_identifier(add(&newcomer, shop_phone.clone(), None)).await.expect_err("ordinary again");
    assert_eq!(taken.code(), Code::AlreadyExists);
    assert_eq!(list(&mut admin, &holders[19], false).await.len(), 1);
    let gone = admin
        .delete_identifier_rule(DeleteIdentifierRuleRequest { name: created.name.clone(), reason: "again".into() })
        .await
        .expect_err("deleted");
    assert_eq!(gone.code(), Code::NotFound);

    // Both changes are audited.
    let audit = audit_entries(&mut admin, &created.name).await;
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["DeleteIdentifierRule", "CreateIdentifierRule"]);
    env.cleanup().await;
}

#[tokio::test]
async fn a_block_rule_refuses_the_value_and_retires_it_where_held() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let junk = email("noreply@shop.example");
    let holder = create(&mut admin, "Holder", vec![junk.clone(), email("holder@mail.example")]).await;

    admin
        .create_identifier_rule(rule(junk.clone(), IdentifierRuleAction::Block, "the till's placeholder"))
        .await
        .expect("block");
    let history = list(&mut admin, &holder, true).await;
    let blocked = history.iter().find(|i| value(i) == "noreply@shop.example").expect("in history");
    assert_eq!(blocked.state, IdentifierState::Removed as i32);
    assert_eq!(blocked.removal_reason, IdentifierRemovalReason::Blocked as i32);
    let customer = get(&mut admin, &holder).await;
    assert_eq!(customer.identifiers.len(), 1, "no longer held");

    let added = admin.add_identifier(add(&holder, junk.clone(), None)).await.expect_err("blocked");
    assert_invalid(&added, &["identifier.value"]);
    let customer =
        Customer { identifiers: vec![email("newcomer@mail.example"), junk.clone()], ..person("Newcomer", "") };
    let created = admin.create_customer(create_request(customer, "")).await.expect_err("blocked on create too");
    assert_invalid(&created, &["customer.identifiers[1].value"]);

    let twice = admin
        .create_identifier_rule(rule(email("NoReply@shop.example"), IdentifierRuleAction::Shared, "again"))
        .await
        .expect_err("one rule per value");
    assert_eq!(twice.code(), Code::AlreadyExists);
    env.cleanup().await;
}

#[tokio::test]
async fn rules_are_listed_newest_first_and_filtered() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let values = ["+33 1 00 00 00 01", "+33 1 00 00 00 02", "+33 1 00 00 00 03"];
    for (n, phone) in values.iter().enumerate() {
        let action = if n == 1 { IdentifierRuleAction::Block } else { IdentifierRuleAction::Shared };
        admin.create_identifier_rule(rule(id(IdentifierKind::Phone, phone), action, "test")).await.expect("rule");
    }
    admin
        .create_identifier_rule(rule(email("front-desk@hotel.example"), IdentifierRuleAction::Shared, "test"))
        .await
        .expect("rule");

    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .list_identifier_rules(ListIdentifierRulesRequest {
                page_size: 1,
                page_token,
                kind: IdentifierKind::Phone as i32,
                action: IdentifierRuleAction::Shared as i32,
            })
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.rules.into_iter().map(|r| r.identifier.map(|i| i.value).unwrap_or_default()));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, ["+33100000003", "+33100000001"], "newest first, phones, shared only");

    let mut reader = client(&env, tokens::PROFILE_READER).await;
    let denied = reader.list_identifier_rules(ListIdentifierRulesRequest::default()).await.expect_err("merge scope");
    assert_eq!(denied.code(), Code::PermissionDenied);
    env.cleanup().await;
}

#[tokio::test]
async fn identifiers_page_in_order_with_tokens_bound_to_the_filter() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let eve = create(
        &mut admin,
        "Eve",
        vec![
            id(IdentifierKind::DeviceId, "device-0001-abcd"),
            email("eve@mail.example"),
            id(IdentifierKind::Phone, "+44 20 7946 0000"),
        ],
    )
    .await;
    admin.add_identifier(add(&eve, email("eve@work.example"), Some(90))).await.expect("add");

    let mut names = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .list_identifiers(ListIdentifiersRequest {
                parent: eve.clone(),
                page_size: 1,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        names.extend(page.identifiers.iter().map(|i| value(i).to_owned()));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
        let foreign = admin
            .list_identifiers(ListIdentifiersRequest {
                parent: eve.clone(),
                page_token: page_token.clone(),
                kind: IdentifierKind::Email as i32,
                ..Default::default()
            })
            .await
            .expect_err("another filter");
        assert_invalid(&foreign, &["page_token"]);
    }
    assert_eq!(names, ["eve@work.example", "eve@mail.example", "+442079460000", "device-0001-abcd"]);
    env.cleanup().await;
}

#[tokio::test]
async fn add_identifier_is_idempotent_and_validates_every_field() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let finn = create(&mut admin, "Finn", vec![]).await;
    let request =
        AddIdentifierRequest { request_id: "add-finn-1".into(), ..add(&finn, email("finn@mail.example"), None) };
    let first = admin.add_identifier(request.clone()).await.expect("first").into_inner();
    let retry = admin.add_identifier(request.clone()).await.expect("retry").into_inner();
    assert_eq!(first, retry);
    let reused = admin
        .add_identifier(AddIdentifierRequest { priority: Some(70), ..request })
        .await
        .expect_err("request_id reused for another request");
    assert_eq!(reused.code(), Code::FailedPrecondition);

    let bad = admin
        .add_identifier(AddIdentifierRequest {
            parent: "customers/nope".into(),
            identifier: Some(email("test@test.com")),
            priority: Some(101),
            ..Default::default()
        })
        .await
        .expect_err("invalid");
    assert_invalid(&bad, &["parent", "identifier.value", "priority"]);
    let missing = admin.add_identifier(add(&finn, email("x@mail.example"), Some(0))).await.expect_err("priority 0");
    assert_invalid(&missing, &["priority"]);
    let unknown = admin
        .add_identifier(add("customers/0190aaaa-0000-7000-8000-000000000000", email("u@mail.example"), None))
        .await
        .expect_err("unknown customer");
    assert_eq!(unknown.code(), Code::NotFound);
    env.cleanup().await;
}

#[tokio::test]
async fn readers_cannot_add_and_see_identifiers_masked() {
    let env = TestEnv::monolith().await;
    let mut admin = admin(&env).await;
    let gus = create(&mut admin, "Gus", vec![email("gus@mail.example")]).await;
    let mut reader = client(&env, tokens::PROFILE_READER).await;

    let denied = reader.add_identifier(add(&gus, email("gus2@mail.example"), None)).await.expect_err("read only");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = reader
        .create_identifier_rule(rule(email("gus@mail.example"), IdentifierRuleAction::Block, "no"))
        .await
        .expect_err("needs customers.merge");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let listed = list(&mut reader, &gus, false).await;
    assert_eq!(listed.iter().map(value).collect::<Vec<_>>(), ["g***@mail.example"]);
    env.cleanup().await;
}
