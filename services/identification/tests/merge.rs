//! Merging through real gRPC, Postgres and Redis: the survivor answers the union of its
//! parts (identifiers, fact history, consents with survivorship), an unmerge restores
//! both customers exactly and makes the pair cannot-link, merge candidates are accepted
//! or rejected, everything is audited and published, and bad requests name their field.

mod common;

use chrono::{DateTime, Utc};
use common::{
    Client, admin, assert_invalid, audit_entries, create_request, fact_history, get, identifier, marketing_consent,
    next_event, person, text_fact, unique_email, unique_phone,
};
use idic_identification::{
    domain::{CustomerId, IdentifierKind as Kind},
    store::{
        Store,
        merges::{CandidateOrigin, Held, MergeOutcome, MergePlan, MergeRule, MergeTerms, NewMergeCandidate},
    },
};
use idic_platform::jobs::timestamp;
use idic_proto::{
    common::v1::{Channel, Identifier, IdentifierKind},
    identification::v1::{
        self as pb, ConsentStatus, CreateCustomerRequest, Customer, CustomerState, GetConsentsRequest,
        ListConsentHistoryRequest, LookupCustomerRequest, MergeCustomersRequest, Provenance, RecordConsentRequest,
        RecordProfileFactsRequest, UnmergeCustomerRequest,
    },
};
use idic_testkit::TestEnv;
use tonic::Code;
use uuid::Uuid;

fn days_ago(days: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(days)
}

fn provenance(observed: DateTime<Utc>) -> Option<Provenance> {
    Some(Provenance { source: "crm".into(), channel: 0, observe_time: Some(timestamp(observed)) })
}

/// Creates a Byron known by `given` and `identifiers`, observed at `observed`.
async fn create(client: &mut Client, given: &str, identifiers: Vec<Identifier>, observed: DateTime<Utc>) -> String {
    let customer = Customer { identifiers, ..person(given, "Byron") };
    let request = CreateCustomerRequest { provenance: provenance(observed), ..create_request(customer, "") };
    client.create_customer(request).await.expect("create").into_inner().name
}

async fn record_fact(client: &mut Client, parent: &str, key: &str, value: &str, observed: DateTime<Utc>) {
    let request = RecordProfileFactsRequest {
        parent: parent.to_owned(),
        facts: vec![text_fact(key, value)],
        provenance: provenance(observed),
        ..Default::default()
    };
    client.record_profile_facts(request).await.expect("facts");
}

async fn record_consent(client: &mut Client, parent: &str, channel: Channel, status: ConsentStatus, at: DateTime<Utc>) {
    let request = RecordConsentRequest {
        evidence_reference: format!("form-{}", Uuid::new_v4().simple()),
        provenance: provenance(at),
        ..marketing_consent(parent, channel, status)
    };
    client.record_consent(request).await.expect("consent");
}

fn merge_request(survivor: &str, merged: &[&str], request_id: &str) -> MergeCustomersRequest {
    MergeCustomersRequest {
        survivor: survivor.to_owned(),
        merged_customers: merged.iter().map(|m| (*m).to_owned()).collect(),
        reason: "the same person, confirmed by phone".into(),
        override_cannot_link: false,
        request_id: request_id.to_owned(),
    }
}

fn unmerge_request(name: &str) -> UnmergeCustomerRequest {
    UnmergeCustomerRequest { name: name.to_owned(), reason: "two people after all".into(), request_id: String::new() }
}

/// Everything a customer answers: its record (without what changes on every write),
/// fact history, effective consents and consent ledger.
#[derive(Debug, PartialEq)]
struct Snapshot {
    customer: Customer,
    facts: Vec<pb::ProfileFact>,
    consents: Vec<pb::Consent>,
    ledger: Vec<pb::ConsentRecord>,
}

async fn snapshot(client: &mut Client, name: &str) -> Snapshot {
    let mut customer = get(client, name).await;
    customer.update_time = None;
    customer.etag.clear();
    let facts = fact_history(client, name, "").await;
    let consents = client
        .get_consents(GetConsentsRequest { parent: name.to_owned(), ..Default::default() })
        .await
        .expect("consents")
        .into_inner()
        .consents;
    let ledger = client
        .list_consent_history(ListConsentHistoryRequest { parent: name.to_owned(), ..Default::default() })
        .await
        .expect("ledger")
        .into_inner()
        .records;
    Snapshot { customer, facts, consents, ledger }
}

fn consent_on(snapshot: &Snapshot, channel: Channel) -> &pb::Consent {
    snapshot.consents.iter().find(|c| c.channel == channel as i32).expect("consent of the channel")
}

/// Two customers: Ada (older) and Augusta, each with identifiers, a fact and consents.
/// Augusta's email withdrawal is recorded first (lower id) but observed at the same
/// instant as Ada's grant.
async fn two_customers(client: &mut Client) -> (String, String, String) {
    let ada = create(
        client,
        "Ada",
        vec![
            identifier(IdentifierKind::Email, &unique_email("ada@analytical-engine.co.uk")),
            identifier(IdentifierKind::LoyaltyCard, "LC-40718263"),
        ],
        days_ago(40),
    )
    .await;
    let augusta_email = unique_email("augusta@analytical-engine.co.uk");
    let augusta = create(
        client,
        "Augusta",
        vec![identifier(IdentifierKind::Email, &augusta_email), unique_phone()],
        days_ago(30),
    )
    .await;
    record_fact(client, &ada, "preference.topic", "mathematics", days_ago(20)).await;
    record_fact(client, &augusta, "preference.topic", "poetry", days_ago(10)).await;
    let tie = days_ago(5);
    record_consent(client, &augusta, Channel::Email, ConsentStatus::Withdrawn, tie).await;
    record_consent(client, &ada, Channel::Email, ConsentStatus::Granted, tie).await;
    record_consent(client, &augusta, Channel::Sms, ConsentStatus::Granted, days_ago(3)).await;
    (ada, augusta, augusta_email)
}

#[tokio::test]
async fn merge_gives_the_survivor_the_union_and_unmerge_restores_both_exactly() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let (ada, augusta, augusta_email) = two_customers(&mut client).await;
    let ada_before = snapshot(&mut client, &ada).await;
    let augusta_before = snapshot(&mut client, &augusta).await;

    let merged = client.merge_customers(merge_request(&ada, &[&augusta], "")).await.expect("merge").into_inner();
    let merge = merged.merge.expect("merge record");
    assert!(merge.name.starts_with("merges/"));
    assert_eq!((merge.rule.as_str(), merge.score, merge.merged_by.as_str()), ("manual", None, "test-admin"));
    assert_eq!(merge.merged_customers, std::slice::from_ref(&augusta));

    // The survivor holds the union of identifiers ...
    let survivor = snapshot(&mut client, &ada).await;
    assert_eq!(survivor.customer.identifiers.len(), 4);
    assert_eq!(merged.survivor.expect("survivor").identifiers.len(), 4);
    // ... every fact of both, the newest trusted one current whichever part it came from ...
    assert_eq!(survivor.facts.len(), ada_before.facts.len() + augusta_before.facts.len());
    let topic = survivor.facts.iter().find(|f| f.key == "preference.topic" && f.current).expect("current topic");
    assert_eq!(topic.value, Some(pb::FactValue { kind: Some(pb::fact_value::Kind::StringValue("poetry".into())) }));
    assert_eq!(topic.origin_customer, augusta);
    assert_eq!(survivor.customer.given_name, "Augusta", "Augusta's name was observed later");
    // ... and both ledgers: on the tie the withdrawal wins; the part's SMS grant counts.
    assert_eq!(survivor.ledger.len(), 3);
    assert_eq!(consent_on(&survivor, Channel::Email).status, ConsentStatus::Withdrawn as i32);
    assert!(!consent_on(&survivor, Channel::Email).allowed);
    assert!(consent_on(&survivor, Channel::Sms).allowed);

    // The part is MERGED and points at the survivor; its identifiers lead there.
    let part = get(&mut client, &augusta).await;
    assert_eq!((part.state, part.merged_into.as_str()), (CustomerState::Merged as i32, ada.as_str()));
    let found = client
        .lookup_customer(LookupCustomerRequest { identifiers: vec![identifier(IdentifierKind::Email, &augusta_email)] })
        .await
        .expect("lookup")
        .into_inner();
    assert_eq!(found.customer.expect("customer").name, ada);
    let followed = client
        .get_consents(GetConsentsRequest { parent: augusta.clone(), ..Default::default() })
        .await
        .expect("consents of the part")
        .into_inner();
    assert_eq!(followed.customer, ada, "reads of a merged customer answer the survivor");

    let unmerged = client.unmerge_customer(unmerge_request(&augusta)).await.expect("unmerge").into_inner();
    assert_eq!(unmerged.restored.expect("restored").state, CustomerState::Active as i32);
    assert_eq!(snapshot(&mut client, &ada).await, ada_before);
    assert_eq!(snapshot(&mut client, &augusta).await, augusta_before);
    let found = client
        .lookup_customer(LookupCustomerRequest { identifiers: vec![identifier(IdentifierKind::Email, &augusta_email)] })
        .await
        .expect("lookup")
        .into_inner();
    assert_eq!(found.customer.expect("customer").name, augusta, "the restored customer holds its email again");

    // The unmerge left a cannot-link: merging again needs an explicit override.
    let refused = client.merge_customers(merge_request(&ada, &[&augusta], "")).await.expect_err("cannot-link");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let mut overriding = merge_request(&ada, &[&augusta], "");
    overriding.override_cannot_link = true;
    client.merge_customers(overriding).await.expect("merge with override");
    let store = Store::new(env.pool("identification").await);
    let (a, b) = (customer_id(&ada), customer_id(&augusta));
    assert!(!store.cannot_link(a, b).await.expect("cannot-link"), "the override lifted it");
    env.cleanup().await;
}

fn customer_id(name: &str) -> CustomerId {
    CustomerId(Uuid::parse_str(name.trim_start_matches("customers/")).expect("customer id"))
}

#[tokio::test]
async fn merges_and_unmerges_are_audited_published_and_idempotent() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let (ada, augusta, _) = two_customers(&mut client).await;

    let first = client.merge_customers(merge_request(&ada, &[&augusta], "merge-42")).await.expect("merge");
    let again = client.merge_customers(merge_request(&ada, &[&augusta], "merge-42")).await.expect("retry");
    let merge = first.into_inner().merge.expect("merge");
    assert_eq!(again.into_inner().merge, Some(merge.clone()), "a retry answers the same merge");

    let event: pb::CustomerMerged = next_event(&env, "customer.merged").await;
    assert_eq!(event.merge, merge.name);
    assert_eq!(format!("customers/{}", event.survivor_customer_id), ada);
    assert_eq!(
        event.merged_customer_ids.iter().map(|id| format!("customers/{id}")).collect::<Vec<_>>(),
        std::slice::from_ref(&augusta)
    );

    client.unmerge_customer(unmerge_request(&augusta)).await.expect("unmerge");
    let event: pb::CustomerUnmerged = next_event(&env, "customer.unmerged").await;
    assert_eq!((event.merge.as_str(), event.survivor_customer_id.as_str()), (merge.name.as_str(), &ada[10..]));

    for (resource, actions) in
        [(&ada, ["UnmergeCustomer", "MergeCustomers"]), (&augusta, ["UnmergeCustomer", "MergeCustomers"])]
    {
        let audit = audit_entries(&mut client, resource).await;
        let found: Vec<&str> =
            audit.iter().filter(|e| e.action != "RecordConsent").map(|e| e.action.as_str()).collect();
        assert_eq!(found, actions, "{resource}");
        let merge_entry = audit.iter().find(|e| e.action == "MergeCustomers").expect("merge entry");
        assert_eq!(merge_entry.reason, "the same person, confirmed by phone");
        assert_eq!(merge_entry.caller, "test-admin");
        let detail = merge_entry.detail.as_ref().expect("detail");
        let rule = detail.fields.get("rule").and_then(|v| v.kind.clone());
        assert_eq!(rule, Some(prost_types::value::Kind::StringValue("manual".into())));
    }

    // Only merged customers unmerge; a merged customer does not merge again.
    let not_merged = client.unmerge_customer(unmerge_request(&ada)).await.expect_err("not merged");
    assert_eq!(not_merged.code(), Code::FailedPrecondition);
    let mut overriding = merge_request(&ada, &[&augusta], "");
    overriding.override_cannot_link = true;
    client.merge_customers(overriding).await.expect("merge");
    let merged_again = client.merge_customers(merge_request(&augusta, &[&ada], "")).await.expect_err("merged");
    assert_eq!(merged_again.code(), Code::FailedPrecondition);
    env.cleanup().await;
}

#[tokio::test]
async fn bad_merge_requests_name_the_field() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let (ada, augusta, _) = two_customers(&mut client).await;

    let mut no_reason = merge_request(&ada, &[&augusta], "");
    no_reason.reason = " ".into();
    let status = client.merge_customers(no_reason).await.expect_err("no reason");
    assert_invalid(&status, &["reason"]);

    let status = client.merge_customers(merge_request(&ada, &[&ada], "")).await.expect_err("itself");
    assert_invalid(&status, &["merged_customers[0]"]);

    let many: Vec<String> = (0..51).map(|_| format!("customers/{}", Uuid::now_v7())).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let status = client.merge_customers(merge_request(&ada, &many, "")).await.expect_err("too many");
    assert_invalid(&status, &["merged_customers"]);

    let status = client.merge_customers(merge_request("people/1", &[&augusta], "")).await.expect_err("malformed");
    assert_invalid(&status, &["survivor"]);

    let status = client.merge_customers(merge_request(&ada, &[], "")).await.expect_err("nothing to merge");
    assert_invalid(&status, &["merged_customers"]);

    let unknown = format!("customers/{}", Uuid::now_v7());
    let status = client.merge_customers(merge_request(&ada, &[&unknown], "")).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);

    let mut no_reason = unmerge_request(&augusta);
    no_reason.reason.clear();
    let status = client.unmerge_customer(no_reason).await.expect_err("no reason");
    assert_invalid(&status, &["reason"]);
    env.cleanup().await;
}

async fn file_candidate(store: &Store, customer: &str, duplicate: &str) -> Option<Uuid> {
    let evidence = serde_json::json!([{"field": "family_name", "level": "exact", "weight": 6.5}]);
    store
        .file_merge_candidate(&NewMergeCandidate {
            customer: customer_id(customer),
            duplicate: customer_id(duplicate),
            score: 0.87,
            match_weight: 9.25,
            evidence: &evidence,
            origin: CandidateOrigin::Resolve,
            cleansing: None,
        })
        .await
        .expect("file")
}

#[tokio::test]
async fn accepting_a_candidate_merges_the_pair_by_review() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let (ada, augusta, _) = two_customers(&mut client).await;
    let store = Store::new(env.pool("identification").await);
    let id = file_candidate(&store, &ada, &augusta).await.expect("filed");
    assert_eq!(file_candidate(&store, &augusta, &ada).await, None, "one pending candidate per pair");
    let name = format!("mergeCandidates/{id}");

    let listed = client
        .list_merge_candidates(pb::ListMergeCandidatesRequest { customer: augusta.clone(), ..Default::default() })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.candidates.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), [name.as_str()]);
    let candidate = &listed.candidates[0];
    assert_eq!(candidate.state, pb::MergeCandidateState::Pending as i32);
    assert_eq!(candidate.evidence[0].field, "family_name");

    let accept = pb::AcceptMergeCandidateRequest {
        name: name.clone(),
        reason: "same loyalty history".into(),
        survivor: String::new(),
    };
    let accepted = client.accept_merge_candidate(accept.clone()).await.expect("accept").into_inner();
    assert_eq!(accepted.state, pb::MergeCandidateState::Accepted as i32);
    assert_eq!(accepted.resolved_by, "test-admin");
    assert!(accepted.merge.starts_with("merges/"));
    assert_eq!(get(&mut client, &augusta).await.merged_into, ada);
    let again = client.accept_merge_candidate(accept).await.expect("accept again").into_inner();
    assert_eq!(again, accepted, "accepting again answers it unchanged");

    let audit = audit_entries(&mut client, &ada).await;
    let entry = audit.iter().find(|e| e.action == "AcceptMergeCandidate").expect("audited");
    let detail = entry.detail.as_ref().expect("detail");
    assert_eq!(
        detail.fields.get("rule").and_then(|v| v.kind.clone()),
        Some(prost_types::value::Kind::StringValue("review".into()))
    );
    assert_eq!(
        detail.fields.get("score").and_then(|v| v.kind.clone()),
        Some(prost_types::value::Kind::NumberValue(0.87))
    );

    let rejected = client
        .reject_merge_candidate(pb::RejectMergeCandidateRequest { name, reason: "changed my mind".into() })
        .await
        .expect_err("accepted already");
    assert_eq!(rejected.code(), Code::FailedPrecondition);
    env.cleanup().await;
}

#[tokio::test]
async fn rejecting_a_candidate_makes_the_pair_cannot_link() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let (ada, augusta, _) = two_customers(&mut client).await;
    let store = Store::new(env.pool("identification").await);
    let id = file_candidate(&store, &ada, &augusta).await.expect("filed");
    let name = format!("mergeCandidates/{id}");

    let status = client
        .reject_merge_candidate(pb::RejectMergeCandidateRequest { name: name.clone(), reason: String::new() })
        .await
        .expect_err("no reason");
    assert_invalid(&status, &["reason"]);
    let request = pb::RejectMergeCandidateRequest { name: name.clone(), reason: "twins".into() };
    let rejected = client.reject_merge_candidate(request.clone()).await.expect("reject").into_inner();
    assert_eq!(rejected.state, pb::MergeCandidateState::Rejected as i32);
    assert_eq!(client.reject_merge_candidate(request).await.expect("again").into_inner(), rejected);

    assert!(store.cannot_link(customer_id(&ada), customer_id(&augusta)).await.expect("cannot-link"));
    assert_eq!(file_candidate(&store, &ada, &augusta).await, None, "never proposed again");
    let refused = client.merge_customers(merge_request(&ada, &[&augusta], "")).await.expect_err("cannot-link");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let accept = pb::AcceptMergeCandidateRequest { name, reason: "after all".into(), survivor: String::new() };
    let refused = client.accept_merge_candidate(accept).await.expect_err("rejected");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    env.cleanup().await;
}

#[tokio::test]
async fn merge_many_applies_a_batch_and_keeps_identifier_limits() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let national_id = |n: u128| identifier(IdentifierKind::NationalId, &format!("NI{:09}", n % 1_000_000_000));
    let ada_id = national_id(Uuid::new_v4().as_u128());
    let ada = create(&mut client, "Ada", vec![ada_id.clone()], days_ago(40)).await;
    let augusta_id = national_id(Uuid::new_v4().as_u128());
    let augusta = create(&mut client, "Augusta", vec![augusta_id.clone()], days_ago(30)).await;
    let charles = create(&mut client, "Charles", vec![], days_ago(20)).await;
    let dorothy = create(&mut client, "Dorothy", vec![], days_ago(10)).await;
    let unknown = CustomerId(Uuid::now_v7());

    let pool = env.pool("identification").await;
    let store = Store::new(pool.clone());
    let limits = |kind: Kind| if kind == Kind::NationalId { 1 } else { 5 };
    let terms = MergeTerms {
        rule: MergeRule::AutoCleansing,
        merged_by: "jobs/0190a1b2-0000-7000-8000-000000000001",
        reason: "cleansing run",
        override_cannot_link: false,
        limits: &limits,
    };
    let plan = |survivor: &str, part: CustomerId| MergePlan {
        survivor: customer_id(survivor),
        parts: vec![part],
        score: Some(0.99),
    };
    let plans = [
        plan(&ada, customer_id(&augusta)),
        plan(&charles, customer_id(&dorothy)),
        plan(&dorothy, customer_id(&ada)),
        plan(&charles, unknown),
    ];
    let batch = store.merge_many(&plans, &terms).await.expect("batch");
    assert!(matches!(batch.outcomes[0], MergeOutcome::Merged(_)));
    assert!(matches!(batch.outcomes[1], MergeOutcome::Merged(_)));
    assert_eq!(batch.outcomes[2], MergeOutcome::Held(Held::Repeated(customer_id(&dorothy))));
    assert_eq!(batch.outcomes[3], MergeOutcome::Held(Held::Repeated(customer_id(&charles))));
    let states: Vec<(Uuid, String, Option<Uuid>)> =
        sqlx::query_as("SELECT id, state, merged_into FROM customers ORDER BY create_time")
            .fetch_all(&pool)
            .await
            .expect("states");
    let merged: Vec<(Uuid, Option<Uuid>)> =
        states.iter().filter(|(_, s, _)| s == "merged").map(|(id, _, into)| (*id, *into)).collect();
    assert_eq!(
        merged,
        [
            (customer_id(&augusta).0, Some(customer_id(&ada).0)),
            (customer_id(&dorothy).0, Some(customer_id(&charles).0))
        ]
    );

    // One national id fits: Augusta's, seen more recently, stays; Ada's own is retired.
    let held: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT value, state, removal_reason FROM identifiers WHERE customer_id = $1 AND kind = 'national_id' \
         AND removal_reason IS DISTINCT FROM 'unmerged' ORDER BY value",
    )
    .bind(customer_id(&ada).0)
    .fetch_all(&pool)
    .await
    .expect("identifiers");
    let mut expected = vec![
        (ada_id.value.clone(), "removed".to_owned(), Some("limit".to_owned())),
        (augusta_id.value.clone(), "active".to_owned(), None),
    ];
    expected.sort();
    assert_eq!(held, expected);
    let merge = match &batch.outcomes[0] {
        MergeOutcome::Merged(id) => store.get_merge(*id).await.expect("merge").expect("logged"),
        held => panic!("{held:?}"),
    };
    assert_eq!((merge.rule.as_str(), merge.score), ("auto_cleansing", Some(0.99)));

    // Undoing the merge gives each its national id back.
    client.unmerge_customer(unmerge_request(&augusta)).await.expect("unmerge");
    assert_eq!(get(&mut client, &ada).await.identifiers, [ada_id]);
    assert_eq!(get(&mut client, &augusta).await.identifiers, [augusta_id]);
    pool.close().await;
    env.cleanup().await;
}
