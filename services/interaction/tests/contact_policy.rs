//! The contact policy through real gRPC, Postgres and Redis: frequency caps counted from
//! recorded contacts and enforced when they are recorded, consent followed from
//! identification's events, quiet hours in the customer's own time zone, the
//! do-not-contact list, and refusals naming their field.

mod common;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use common::{
    Client, Identification, admin, assert_invalid, by_id, create_person, eventually, identification, record, timeline,
    unique_email,
};
use idic_platform::jobs::timestamp;
use idic_proto::{
    common::v1::{Channel, ConsentPurpose, ListAuditEntriesRequest},
    identification::v1::{ConsentStatus, CreateCustomerRequest, Customer, CustomerKind, RecordConsentRequest},
    interaction::v1::{
        BatchCheckContactPolicyRequest, CheckContactPolicyRequest, ClearDoNotContactRequest, ContactDenialCount,
        ContactDenialReason, ContactPolicy, ContactPolicyDecision, DoNotContactEntry, FrequencyCap,
        IngestInteractionsRequest, Interaction, InteractionDirection, InteractionKind, ListDoNotContactEntriesRequest,
        LocalTime, QuietHours, RecordInteractionRequest, SetDoNotContactRequest, UpdateContactPolicyRequest,
        contact_denial::Detail, contact_policy_check_result::Outcome,
    },
};
use idic_testkit::TestEnv;
use prost::Message as _;
use prost_types::FieldMask;
use tonic_types::StatusExt as _;
use uuid::Uuid;

const WEEK: i64 = 7 * 86_400;

fn check(customer: &str, channel: Channel, purpose: ConsentPurpose) -> CheckContactPolicyRequest {
    CheckContactPolicyRequest {
        customer: by_id(customer),
        channel: channel as i32,
        purpose: purpose as i32,
        at: None,
        time_zone: String::new(),
    }
}

async fn decide(client: &mut Client, request: CheckContactPolicyRequest) -> ContactPolicyDecision {
    client.check_contact_policy(request).await.expect("check").into_inner()
}

fn reasons(decision: &ContactPolicyDecision) -> Vec<ContactDenialReason> {
    decision.denials.iter().map(|d| d.reason()).collect()
}

async fn update_policy(client: &mut Client, policy: ContactPolicy, paths: &[&str]) -> ContactPolicy {
    let request = UpdateContactPolicyRequest {
        contact_policy: Some(policy),
        update_mask: Some(FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() }),
    };
    client.update_contact_policy(request).await.expect("update policy").into_inner()
}

async fn consent(identification: &mut Identification, customer: &str, channel: Channel, status: ConsentStatus) {
    let request = RecordConsentRequest {
        parent: format!("customers/{customer}"),
        purpose: ConsentPurpose::Marketing as i32,
        channel: channel as i32,
        status: status as i32,
        purpose_statement: "We send you our offers, at most twice a week.".into(),
        ..Default::default()
    };
    identification.record_consent(request).await.expect("record consent");
}

fn marketing_sms(at: DateTime<Utc>) -> Interaction {
    Interaction {
        kind: InteractionKind::MessageSent as i32,
        direction: InteractionDirection::Outbound as i32,
        channel: Channel::Sms as i32,
        purpose: ConsentPurpose::Marketing as i32,
        occur_time: Some(timestamp(at)),
        ..Default::default()
    }
}

fn to_time(t: &prost_types::Timestamp) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(t.seconds, t.nanos as u32).expect("a valid time")
}

#[tokio::test]
async fn a_cap_blocks_the_third_marketing_sms_of_the_week() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let customer = create_person(&mut identification, "Ada", &unique_email("ada")).await;
    consent(&mut identification, &customer, Channel::Sms, ConsentStatus::Granted).await;
    let cap = FrequencyCap {
        cap_id: "sms-marketing-weekly".into(),
        channel: Channel::Sms as i32,
        purpose: ConsentPurpose::Marketing as i32,
        max_contacts: 2,
        window: Some(prost_types::Duration { seconds: WEEK, nanos: 0 }),
    };
    let policy = update_policy(
        &mut client,
        ContactPolicy { frequency_caps: vec![cap], ..Default::default() },
        &["frequency_caps"],
    )
    .await;
    assert_eq!(policy.frequency_caps.len(), 1);

    let sms = || check(&customer, Channel::Sms, ConsentPurpose::Marketing);
    assert!(decide(&mut client, sms()).await.allowed, "no SMS sent yet");
    let first = Utc::now() - Duration::days(3);
    client.record_interaction(record(&customer, marketing_sms(first))).await.expect("first SMS");
    assert!(decide(&mut client, sms()).await.allowed, "one SMS this week");
    client.record_interaction(record(&customer, marketing_sms(Utc::now() - Duration::days(1)))).await.expect("second");

    let third = decide(&mut client, sms()).await;
    assert!(!third.allowed);
    assert_eq!(reasons(&third), [ContactDenialReason::FrequencyCap]);
    let Some(Detail::FrequencyCap(denial)) = &third.denials[0].detail else { panic!("cap details: {third:?}") };
    assert_eq!((denial.cap_id.as_str(), denial.contact_count, denial.max_contacts), ("sms-marketing-weekly", 2, 2));
    // The third may go once the first leaves the rolling week.
    let frees = first + Duration::seconds(WEEK);
    let free_time = to_time(denial.free_time.as_ref().expect("free time"));
    assert!((free_time - frees).num_milliseconds().abs() <= 1, "{free_time} vs {frees}");
    assert_eq!(third.earliest_allowed_time, denial.free_time);
    let later = CheckContactPolicyRequest { at: Some(timestamp(frees + Duration::seconds(1))), ..sms() };
    assert!(decide(&mut client, later).await.allowed);

    // Service SMS are not counted by this cap.
    let service_sms = check(&customer, Channel::Sms, ConsentPurpose::Service);
    assert!(decide(&mut client, service_sms).await.allowed);

    // The Redis counter lost: rebuilt from Postgres, same answer.
    let deleted: i64 = redis::cmd("DEL")
        .arg(env.redis().key(&format!("interaction:contacts:{customer}")))
        .query_async(&mut env.redis().connection())
        .await
        .expect("redis del");
    assert_eq!(deleted, 1, "the check kept a counter in Redis");
    assert_eq!(reasons(&decide(&mut client, sms()).await), [ContactDenialReason::FrequencyCap]);
    env.cleanup().await;
}

/// The decision and the first denial's reason name carried by a FAILED_PRECONDITION
/// refusal of a contact.
fn denial_of(status: &tonic::Status) -> (ContactPolicyDecision, String) {
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let details = tonic_types::pb::Status::decode(status.details()).expect("google.rpc.Status details");
    let decision = details
        .details
        .iter()
        .find(|any| any.type_url == "type.googleapis.com/idic.interaction.v1.ContactPolicyDecision")
        .map(|any| ContactPolicyDecision::decode(any.value.as_slice()).expect("a decision"))
        .expect("the decision in the details");
    let info = status.get_error_details().error_info().cloned().expect("an ErrorInfo");
    assert_eq!((info.reason.as_str(), info.domain.as_str()), ("CONTACT_DENIED", "interaction.idic"));
    (decision, info.metadata.get("denial_reason").cloned().unwrap_or_default())
}

#[tokio::test]
async fn an_enforced_contact_over_the_cap_is_refused_and_not_stored() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let customer = create_person(&mut identification, "Ada", &unique_email("ada")).await;
    consent(&mut identification, &customer, Channel::Sms, ConsentStatus::Granted).await;
    let cap = FrequencyCap {
        cap_id: "sms-marketing-weekly".into(),
        channel: Channel::Sms as i32,
        purpose: ConsentPurpose::Marketing as i32,
        max_contacts: 2,
        window: Some(prost_types::Duration { seconds: WEEK, nanos: 0 }),
    };
    update_policy(&mut client, ContactPolicy { frequency_caps: vec![cap], ..Default::default() }, &["frequency_caps"])
        .await;
    let enforced = |at: DateTime<Utc>| RecordInteractionRequest {
        enforce_contact_policy: true,
        ..record(&customer, marketing_sms(at))
    };

    client.record_interaction(enforced(Utc::now() - Duration::days(2))).await.expect("first SMS allowed");
    client.record_interaction(enforced(Utc::now() - Duration::days(1))).await.expect("second SMS allowed");
    let third = enforced(Utc::now());
    let status = client.record_interaction(third.clone()).await.expect_err("third SMS over the cap");
    let (decision, reason) = denial_of(&status);
    assert!(!decision.allowed);
    assert_eq!(decision.customer_id, customer);
    assert_eq!(reasons(&decision), [ContactDenialReason::FrequencyCap]);
    assert_eq!(reason, "CONTACT_DENIAL_REASON_FREQUENCY_CAP");
    assert_eq!(timeline(&mut client, &customer).await.interactions.len(), 2, "the denied SMS is not stored");
    // Nothing was kept of it, not even its request id: a retry is checked again.
    let retried = client.record_interaction(third).await.expect_err("retry still over the cap");
    assert_eq!(denial_of(&retried).1, "CONTACT_DENIAL_REASON_FREQUENCY_CAP");

    // Unenforced, the same contact is recorded as a fact (and counts).
    client.record_interaction(record(&customer, marketing_sms(Utc::now()))).await.expect("recorded as a fact");
    assert_eq!(timeline(&mut client, &customer).await.interactions.len(), 3);

    // In a bulk ingest the denied row is rejected on its field; the others are stored.
    let denied = RecordInteractionRequest { request_id: "denied-sms".into(), ..enforced(Utc::now()) };
    let call = RecordInteractionRequest {
        interaction: Some(Interaction {
            kind: InteractionKind::InboundCall as i32,
            direction: InteractionDirection::Inbound as i32,
            channel: Channel::CallCentre as i32,
            occur_time: Some(timestamp(Utc::now())),
            ..Default::default()
        }),
        enforce_contact_policy: true,
        ..record(&customer, Interaction::default())
    };
    let batch = IngestInteractionsRequest { interactions: vec![denied, call] };
    let answer = client.ingest_interactions(tokio_stream::iter([batch])).await.expect("ingested").into_inner();
    let summary = answer.summary.expect("summary");
    assert_eq!((summary.created, summary.rejected), (1, 1));
    let errors: Vec<(&str, &str, &str)> =
        summary.errors.iter().map(|e| (e.row_id.as_str(), e.field.as_str(), e.description.as_str())).collect();
    assert_eq!(errors, [("denied-sms", "enforce_contact_policy", "CONTACT_DENIAL_REASON_FREQUENCY_CAP")]);
    assert_eq!(
        answer.contact_denials,
        [ContactDenialCount { reason: ContactDenialReason::FrequencyCap as i32, count: 1 }]
    );
    assert_eq!(timeline(&mut client, &customer).await.interactions.len(), 4);
    env.cleanup().await;
}

#[tokio::test]
async fn the_cap_is_counted_from_postgres_when_redis_is_down() {
    let env = TestEnv::start_with(&[idic::Target::All], |config| {
        config.redis.url = "redis://127.0.0.1:1".to_owned();
    })
    .await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let customer = create_person(&mut identification, "Ada", &unique_email("ada")).await;
    let cap = FrequencyCap {
        cap_id: "sms-service-daily".into(),
        channel: Channel::Sms as i32,
        purpose: ConsentPurpose::Service as i32,
        max_contacts: 1,
        window: Some(prost_types::Duration { seconds: 86_400, nanos: 0 }),
    };
    update_policy(&mut client, ContactPolicy { frequency_caps: vec![cap], ..Default::default() }, &["frequency_caps"])
        .await;
    let sms = || check(&customer, Channel::Sms, ConsentPurpose::Service);
    assert!(decide(&mut client, sms()).await.allowed);
    let service_sms = Interaction { purpose: ConsentPurpose::Service as i32, ..marketing_sms(Utc::now()) };
    client.record_interaction(record(&customer, service_sms)).await.expect("SMS recorded");
    assert_eq!(reasons(&decide(&mut client, sms()).await), [ContactDenialReason::FrequencyCap]);
    env.cleanup().await;
}

#[tokio::test]
async fn consent_withdrawal_blocks_a_marketing_email() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let customer = create_person(&mut identification, "Grace", &unique_email("grace")).await;
    let email = || check(&customer, Channel::Email, ConsentPurpose::Marketing);

    // Marketing email needs permission first.
    let before = decide(&mut client, email()).await;
    assert_eq!(reasons(&before), [ContactDenialReason::NoConsent]);
    assert_eq!(before.earliest_allowed_time, None);
    // A letter needs none.
    assert!(decide(&mut client, check(&customer, Channel::Letter, ConsentPurpose::Marketing)).await.allowed);

    consent(&mut identification, &customer, Channel::Email, ConsentStatus::Granted).await;
    eventually("the grant allows marketing email", || {
        let (mut client, request) = (client.clone(), email());
        async move { decide(&mut client, request).await.allowed }
    })
    .await;

    // Withdrawn everywhere: the local copy follows identification's event.
    consent(&mut identification, &customer, Channel::Unspecified, ConsentStatus::Withdrawn).await;
    eventually("the withdrawal blocks marketing email", || {
        let (mut client, request) = (client.clone(), email());
        async move { reasons(&decide(&mut client, request).await) == [ContactDenialReason::NoConsent] }
    })
    .await;
    // Service messages need no consent.
    assert!(decide(&mut client, check(&customer, Channel::Email, ConsentPurpose::Service)).await.allowed);
    env.cleanup().await;
}

/// Tomorrow at `hh:mm` UTC.
fn tomorrow_at(hours: u32, minutes: u32) -> DateTime<Utc> {
    let date = (Utc::now() + Duration::days(1)).date_naive();
    date.and_time(NaiveTime::from_hms_opt(hours, minutes, 0).expect("time")).and_utc()
}

#[tokio::test]
async fn quiet_hours_hold_contacts_until_the_customers_morning() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let tokyo = Customer {
        kind: CustomerKind::Person as i32,
        given_name: "Kenji".into(),
        time_zone: "Asia/Tokyo".into(),
        identifiers: vec![common::email(&unique_email("kenji"))],
        ..Default::default()
    };
    let created = identification
        .create_customer(CreateCustomerRequest { customer: Some(tokyo), request_id: String::new(), provenance: None })
        .await
        .expect("create")
        .into_inner();
    let customer = created.name.trim_start_matches("customers/").to_owned();
    let quiet = QuietHours {
        channels: vec![],
        purposes: vec![],
        start: Some(LocalTime { hours: 21, minutes: 0 }),
        end: Some(LocalTime { hours: 8, minutes: 0 }),
    };
    update_policy(&mut client, ContactPolicy { quiet_hours: vec![quiet], ..Default::default() }, &["quiet_hours"])
        .await;
    let at = |t: DateTime<Utc>| CheckContactPolicyRequest {
        at: Some(timestamp(t)),
        ..check(&customer, Channel::Sms, ConsentPurpose::Service)
    };

    // 14:00 UTC is 23:00 in Tokyo: quiet until 08:00 there, 23:00 UTC.
    let night = decide(&mut client, at(tomorrow_at(14, 0))).await;
    assert_eq!(reasons(&night), [ContactDenialReason::QuietHours]);
    assert_eq!(night.time_zone, "Asia/Tokyo");
    let Some(Detail::QuietHours(quiet)) = &night.denials[0].detail else { panic!("quiet details: {night:?}") };
    assert_eq!(quiet.until_time, Some(timestamp(tomorrow_at(23, 0))));
    assert_eq!(night.earliest_allowed_time, Some(timestamp(tomorrow_at(23, 0))));
    // 03:00 UTC is noon in Tokyo.
    assert!(decide(&mut client, at(tomorrow_at(3, 0))).await.allowed);
    // The caller's zone overrides the customer's: 15:00 in Paris is not quiet.
    let paris = CheckContactPolicyRequest { time_zone: "Europe/Paris".into(), ..at(tomorrow_at(14, 0)) };
    let decision = decide(&mut client, paris).await;
    assert!(decision.allowed);
    assert_eq!(decision.time_zone, "Europe/Paris");
    env.cleanup().await;
}

#[tokio::test]
async fn do_not_contact_blocks_its_channels_until_cleared() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let customer = create_person(&mut identification, "Alan", &unique_email("alan")).await;
    let entry = DoNotContactEntry {
        channels: vec![Channel::Email as i32],
        reason: "customer asked on the phone".into(),
        ..Default::default()
    };
    let set = client
        .set_do_not_contact(SetDoNotContactRequest { customer: by_id(&customer), entry: Some(entry) })
        .await
        .expect("set")
        .into_inner();
    assert_eq!(set.name, format!("doNotContactEntries/{customer}"));
    assert_eq!(set.created_by, "test-admin");

    let email = decide(&mut client, check(&customer, Channel::Email, ConsentPurpose::Service)).await;
    assert_eq!(reasons(&email), [ContactDenialReason::DoNotContact]);
    let Some(Detail::DoNotContact(denial)) = &email.denials[0].detail else { panic!("details: {email:?}") };
    assert_eq!(denial.entry, set.name);
    assert!(decide(&mut client, check(&customer, Channel::Sms, ConsentPurpose::Service)).await.allowed);

    let listed = client
        .list_do_not_contact_entries(ListDoNotContactEntriesRequest {
            channel: Channel::Email as i32,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.entries.iter().map(|e| e.customer_id.as_str()).collect::<Vec<_>>(), [customer.as_str()]);
    let by_sms = ListDoNotContactEntriesRequest { channel: Channel::Sms as i32, ..Default::default() };
    assert!(client.list_do_not_contact_entries(by_sms).await.expect("list").into_inner().entries.is_empty());

    let clear = || ClearDoNotContactRequest { customer: by_id(&customer), reason: "asked again".into() };
    assert!(client.clear_do_not_contact(clear()).await.expect("clear").into_inner().cleared);
    assert!(!client.clear_do_not_contact(clear()).await.expect("clear again").into_inner().cleared);
    assert!(decide(&mut client, check(&customer, Channel::Email, ConsentPurpose::Service)).await.allowed);

    let audit = client
        .list_audit_entries(ListAuditEntriesRequest { resource: set.name.clone(), ..Default::default() })
        .await
        .expect("audit")
        .into_inner();
    let actions: Vec<&str> = audit.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["ClearDoNotContact", "SetDoNotContact"]);
    env.cleanup().await;
}

#[tokio::test]
async fn bad_checks_name_their_field_and_batches_answer_unknown_customers_in_place() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let customer = create_person(&mut identification, "Ada", &unique_email("ada")).await;

    let bad = CheckContactPolicyRequest {
        time_zone: "Mars/Olympus".into(),
        ..check(&customer, Channel::Unspecified, ConsentPurpose::Unspecified)
    };
    let status = client.check_contact_policy(bad).await.expect_err("invalid");
    assert_invalid(&status, &["channel", "purpose", "time_zone"]);
    let far = CheckContactPolicyRequest {
        at: Some(timestamp(Utc::now() + Duration::days(400))),
        ..check(&customer, Channel::Sms, ConsentPurpose::Service)
    };
    assert_invalid(&client.check_contact_policy(far).await.expect_err("too far"), &["at"]);
    let unknown = check(&Uuid::new_v4().to_string(), Channel::Sms, ConsentPurpose::Service);
    assert_eq!(client.check_contact_policy(unknown.clone()).await.expect_err("unknown").code(), tonic::Code::NotFound);

    let batch = BatchCheckContactPolicyRequest {
        checks: vec![check(&customer, Channel::Sms, ConsentPurpose::Service), unknown.clone()],
    };
    let results = client.batch_check_contact_policy(batch).await.expect("batch").into_inner().results;
    assert!(matches!(&results[0].outcome, Some(Outcome::Decision(d)) if d.allowed && d.customer_id == customer));
    assert!(matches!(&results[1].outcome, Some(Outcome::Error(e)) if e.contains("not found")));
    let bad_batch = BatchCheckContactPolicyRequest {
        checks: vec![unknown, check(&customer, Channel::Sms, ConsentPurpose::Unspecified)],
    };
    let status = client.batch_check_contact_policy(bad_batch).await.expect_err("invalid batch");
    assert_invalid(&status, &["checks[1].purpose"]);

    let duplicate_caps = ContactPolicy {
        frequency_caps: vec![
            FrequencyCap {
                cap_id: "a".into(),
                max_contacts: 1,
                window: Some(prost_types::Duration { seconds: 3600, nanos: 0 }),
                ..Default::default()
            };
            2
        ],
        ..Default::default()
    };
    let request = UpdateContactPolicyRequest {
        contact_policy: Some(duplicate_caps),
        update_mask: Some(FieldMask { paths: vec!["frequency_caps".into()] }),
    };
    let status = client.update_contact_policy(request).await.expect_err("duplicate cap ids");
    assert_invalid(&status, &["contact_policy.frequency_caps[1].cap_id"]);
    env.cleanup().await;
}

/// Prints CheckContactPolicy latencies seen by a client over loopback (consent copy held,
/// a cap and quiet hours in force): a measurement, not a check.
#[tokio::test]
#[ignore = "a measurement: cargo test --release -p idic-interaction --test contact_policy -- --ignored --nocapture"]
async fn measure_check_latency() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let customer = create_person(&mut identification, "Ada", &unique_email("ada")).await;
    consent(&mut identification, &customer, Channel::Sms, ConsentStatus::Granted).await;
    let cap = FrequencyCap {
        cap_id: "sms-marketing-weekly".into(),
        channel: Channel::Sms as i32,
        purpose: ConsentPurpose::Marketing as i32,
        max_contacts: 2,
        window: Some(prost_types::Duration { seconds: WEEK, nanos: 0 }),
    };
    let quiet = QuietHours {
        channels: vec![],
        purposes: vec![],
        start: Some(LocalTime { hours: 21, minutes: 0 }),
        end: Some(LocalTime { hours: 8, minutes: 0 }),
    };
    let policy = ContactPolicy { frequency_caps: vec![cap], quiet_hours: vec![quiet], ..Default::default() };
    update_policy(&mut client, policy, &["frequency_caps", "quiet_hours"]).await;
    client.record_interaction(record(&customer, marketing_sms(Utc::now() - Duration::days(1)))).await.expect("SMS");
    let sms = || check(&customer, Channel::Sms, ConsentPurpose::Marketing);
    for _ in 0..200 {
        decide(&mut client, sms()).await;
    }
    let mut times = Vec::with_capacity(5000);
    for _ in 0..5000 {
        let started = std::time::Instant::now();
        decide(&mut client, sms()).await;
        times.push(started.elapsed());
    }
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "CheckContactPolicy over loopback, {} sequential calls: p50 {:?}, p90 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        times.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        times[times.len() - 1]
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_do_not_contact_entry_follows_its_customer_into_a_merge() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let survivor = create_person(&mut identification, "Ada", &unique_email("ada")).await;
    let merged = create_person(&mut identification, "Ada", &unique_email("ada.lovelace")).await;
    let entry = DoNotContactEntry { reason: "asked in the branch".into(), ..Default::default() };
    client
        .set_do_not_contact(SetDoNotContactRequest { customer: by_id(&merged), entry: Some(entry) })
        .await
        .expect("set");
    let letter = || check(&survivor, Channel::Letter, ConsentPurpose::Service);
    assert!(decide(&mut client, letter()).await.allowed);

    let merge = idic_proto::identification::v1::MergeCustomersRequest {
        survivor: format!("customers/{survivor}"),
        merged_customers: vec![format!("customers/{merged}")],
        reason: "same person".into(),
        override_cannot_link: false,
        request_id: Uuid::new_v4().to_string(),
    };
    identification.merge_customers(merge).await.expect("merge");
    eventually("the survivor inherits the do-not-contact entry", || {
        let (mut client, request) = (client.clone(), letter());
        async move { reasons(&decide(&mut client, request).await) == [ContactDenialReason::DoNotContact] }
    })
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_caller_allowed_only_to_read_interactions_gets_decisions_from_identification() {
    let env = TestEnv::monolith().await;
    let mut identification = identification(&env).await;
    let mut reader = idic_proto::interaction::v1::interaction_service_client::InteractionServiceClient::new(
        env.authorized(idic::Target::Interaction, idic_testkit::tokens::INTERACTION_READER).await,
    );
    let customer = create_person(&mut identification, "Ada", &unique_email("ada")).await;
    consent(&mut identification, &customer, Channel::Sms, ConsentStatus::Granted).await;
    // The local copies are empty: consent and time zone come from identification, asked
    // with the service's own identity (the caller may not read consents).
    let decision = decide(&mut reader, check(&customer, Channel::Sms, ConsentPurpose::Marketing)).await;
    assert!(decision.allowed, "{decision:?}");
    let email = decide(&mut reader, check(&customer, Channel::Email, ConsentPurpose::Marketing)).await;
    assert_eq!(reasons(&email), [ContactDenialReason::NoConsent]);
    env.cleanup().await;
}
