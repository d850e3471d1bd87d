//! Complaints through real gRPC, Postgres and Redis: opened onto the customer's
//! timeline, changed through field masks, counted as contacts about them are recorded,
//! resolved and measured, listed with filters and pages, charted per day and category,
//! and blocking marketing while open.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{
    Client, admin, assert_invalid, by_id, create_person, identification, interaction, record, timeline, unique_email,
};
use idic::Target;
use idic_platform::jobs::timestamp;
use idic_proto::interaction::v1::interaction_service_client::InteractionServiceClient;
use idic_proto::{
    common::v1::{Channel, ConsentPurpose, Period},
    interaction::v1::{
        CheckContactPolicyRequest, Complaint, ComplaintResolution, ComplaintSeverity, ComplaintState,
        ComplaintStatsRow, ContactDenialReason, GetComplaintRequest, GetComplaintStatsRequest, Interaction,
        InteractionKind, ListComplaintsRequest, OpenComplaintRequest, ResolveComplaintRequest, UpdateComplaintRequest,
    },
};
use idic_testkit::{TestEnv, tokens};
use prost_types::FieldMask;
use tonic::Code;
use uuid::Uuid;

fn complaint(category: &str, opened: Option<DateTime<Utc>>) -> Complaint {
    Complaint {
        category: category.into(),
        channel: Channel::CallCentre as i32,
        summary: "Charged twice for March".into(),
        description: "The customer saw two debits of 49.99 on 3 March.".into(),
        open_time: opened.map(timestamp),
        ..Default::default()
    }
}

fn open_request(customer: &str, complaint: Complaint) -> OpenComplaintRequest {
    OpenComplaintRequest {
        request_id: Uuid::new_v4().to_string(),
        customer: by_id(customer),
        complaint: Some(complaint),
    }
}

async fn open(client: &mut Client, customer: &str, complaint: Complaint) -> Complaint {
    client.open_complaint(open_request(customer, complaint)).await.expect("open").into_inner()
}

fn resolve_request(name: &str, at: Option<DateTime<Utc>>, contacts: Option<i32>) -> ResolveComplaintRequest {
    ResolveComplaintRequest {
        name: name.to_owned(),
        resolution: ComplaintResolution::Upheld as i32,
        resolution_note: "Refunded the second debit.".into(),
        resolve_time: at.map(timestamp),
        contact_count: contacts,
        etag: String::new(),
    }
}

async fn resolve(client: &mut Client, name: &str, at: DateTime<Utc>, contacts: i32) -> Complaint {
    client.resolve_complaint(resolve_request(name, Some(at), Some(contacts))).await.expect("resolve").into_inner()
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() })
}

#[tokio::test]
async fn a_complaint_is_opened_on_the_timeline_changed_and_resolved_at_first_contact() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let customer = create_person(&mut identification, "Ada", &unique_email("ada")).await;

    let request = open_request(&customer, complaint("billing", None));
    let opened = client.open_complaint(request.clone()).await.expect("open").into_inner();
    assert!(opened.name.starts_with("complaints/"));
    assert_eq!(opened.customer_id, customer);
    assert_eq!(opened.state, ComplaintState::Open as i32);
    assert_eq!(opened.severity, ComplaintSeverity::Medium as i32, "MEDIUM when unspecified");
    assert_eq!(opened.contact_count, 1);
    assert!(opened.resolution_duration.is_none());
    // A retry answers the first complaint.
    let retried = client.open_complaint(request).await.expect("retry").into_inner();
    assert_eq!(retried.name, opened.name);

    // The opening contact is on the timeline, linked to the complaint.
    let history = timeline(&mut client, &customer).await.interactions;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].kind, InteractionKind::Complaint as i32);
    assert_eq!(history[0].complaint, opened.name);
    assert_eq!(history[0].name, opened.interaction);

    let change = Complaint {
        name: opened.name.clone(),
        severity: ComplaintSeverity::High as i32,
        owner: "team-billing".into(),
        etag: opened.etag.clone(),
        ..Default::default()
    };
    let update = UpdateComplaintRequest { complaint: Some(change.clone()), update_mask: mask(&["severity", "owner"]) };
    let updated = client.update_complaint(update.clone()).await.expect("update").into_inner();
    assert_eq!((updated.severity, updated.owner.as_str()), (ComplaintSeverity::High as i32, "team-billing"));
    assert_eq!(updated.summary, opened.summary, "fields outside the mask stay");
    assert_eq!(client.update_complaint(update).await.expect_err("stale etag").code(), Code::Aborted);
    let bad = UpdateComplaintRequest { complaint: Some(change), update_mask: mask(&["state"]) };
    assert_invalid(&client.update_complaint(bad).await.expect_err("read-only path"), &["update_mask"]);

    let opened_at = opened.open_time.as_ref().expect("open time");
    let early = DateTime::<Utc>::from_timestamp(opened_at.seconds - 60, 0).expect("time");
    let status = client.resolve_complaint(resolve_request(&opened.name, Some(early), None)).await.expect_err("early");
    assert_invalid(&status, &["resolve_time"]);
    let resolved =
        client.resolve_complaint(resolve_request(&opened.name, None, None)).await.expect("resolve").into_inner();
    assert_eq!(resolved.state, ComplaintState::Resolved as i32);
    assert_eq!(resolved.resolution, ComplaintResolution::Upheld as i32);
    assert!(resolved.first_contact_resolution);
    assert!(resolved.resolution_duration.is_some());
    let read = client.get_complaint(GetComplaintRequest { name: opened.name.clone() }).await.expect("get");
    assert_eq!(read.into_inner(), resolved);
    // Free texts are masked for callers without pii.read.
    let mut reader =
        InteractionServiceClient::new(env.authorized(Target::Interaction, tokens::INTERACTION_READER).await);
    let masked = reader.get_complaint(GetComplaintRequest { name: opened.name.clone() }).await.expect("get");
    let masked = masked.into_inner();
    assert_eq!(
        (masked.summary.as_str(), masked.description.as_str(), masked.resolution_note.as_str()),
        ("***", "***", "***")
    );
    assert_eq!(masked.category, "billing");
    let again = client.resolve_complaint(resolve_request(&opened.name, None, None)).await.expect_err("twice");
    assert_eq!(again.code(), Code::FailedPrecondition);
    let late_change = UpdateComplaintRequest {
        complaint: Some(Complaint { name: opened.name.clone(), owner: "x".into(), ..Default::default() }),
        update_mask: mask(&["owner"]),
    };
    assert_eq!(client.update_complaint(late_change).await.expect_err("resolved").code(), Code::FailedPrecondition);

    env.cleanup().await;
}

#[tokio::test]
async fn contacts_about_a_complaint_are_counted_and_spoil_first_contact_resolution() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let customer = create_person(&mut identification, "Ada", &unique_email("ada")).await;
    let opened = open(&mut client, &customer, complaint("billing", None)).await;
    assert_eq!(opened.contact_count, 1, "the opening contact");
    let about = |complaint: &str, customer: &str| {
        let call = Interaction {
            complaint: complaint.to_owned(),
            ..interaction(InteractionKind::InboundCall, Channel::CallCentre, 0)
        };
        record(customer, call)
    };

    let first = about(&opened.name, &customer);
    client.record_interaction(first.clone()).await.expect("first follow-up");
    client.record_interaction(first).await.expect("a retry is not counted again");
    client.record_interaction(about(&opened.name, &customer)).await.expect("second follow-up");
    let read = client.get_complaint(GetComplaintRequest { name: opened.name.clone() }).await.expect("get");
    assert_eq!(read.into_inner().contact_count, 3);

    // A complaint that does not exist, or is another customer's, is refused and nothing stored.
    let unknown = about(&format!("complaints/{}", Uuid::new_v4()), &customer);
    assert_eq!(client.record_interaction(unknown).await.expect_err("unknown complaint").code(), Code::NotFound);
    let grace = create_person(&mut identification, "Grace", &unique_email("grace")).await;
    let status = client.record_interaction(about(&opened.name, &grace)).await.expect_err("someone else's");
    assert_invalid(&status, &["interaction.complaint"]);
    assert!(timeline(&mut client, &grace).await.interactions.is_empty());
    assert_eq!(timeline(&mut client, &customer).await.interactions.len(), 3);

    let resolved =
        client.resolve_complaint(resolve_request(&opened.name, None, None)).await.expect("resolve").into_inner();
    assert_eq!(resolved.contact_count, 3);
    assert!(!resolved.first_contact_resolution, "three contacts were needed");
    env.cleanup().await;
}

#[tokio::test]
async fn opening_refuses_bad_fields_by_name() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let customer = create_person(&mut identification, "Ada", &unique_email("ada")).await;
    let bad = Complaint {
        category: "Billing Issues".into(),
        channel: 0,
        summary: String::new(),
        open_time: Some(timestamp(Utc::now() + Duration::days(1))),
        ..Default::default()
    };
    let status = client.open_complaint(open_request(&customer, bad)).await.expect_err("invalid");
    assert_invalid(&status, &["complaint.category", "complaint.summary", "complaint.channel", "complaint.open_time"]);
    let unknown = open_request(&Uuid::new_v4().to_string(), complaint("billing", None));
    assert_eq!(client.open_complaint(unknown).await.expect_err("unknown customer").code(), Code::NotFound);
    env.cleanup().await;
}

#[tokio::test]
async fn complaints_are_listed_newest_first_by_filter_and_page() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut identification, "Ada", &unique_email("ada")).await;
    let bob = create_person(&mut identification, "Bob", &unique_email("bob")).await;
    let now = Utc::now();
    let oldest = open(&mut client, &ada, complaint("billing", Some(now - Duration::hours(3)))).await;
    let middle = open(&mut client, &ada, complaint("delivery", Some(now - Duration::hours(2)))).await;
    let newest = open(&mut client, &bob, complaint("billing", Some(now - Duration::hours(1)))).await;
    resolve(&mut client, &middle.name, now, 2).await;

    let names = |complaints: &[Complaint]| complaints.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    let all = client.list_complaints(ListComplaintsRequest::default()).await.expect("list").into_inner();
    assert_eq!(names(&all.complaints), [newest.name.clone(), middle.name.clone(), oldest.name.clone()]);

    let adas = ListComplaintsRequest { customer: by_id(&ada), ..Default::default() };
    let adas = client.list_complaints(adas).await.expect("by customer").into_inner();
    assert_eq!(names(&adas.complaints), [middle.name.clone(), oldest.name.clone()]);
    let open_billing =
        ListComplaintsRequest { state: ComplaintState::Open as i32, category: "billing".into(), ..Default::default() };
    let open_billing = client.list_complaints(open_billing).await.expect("filtered").into_inner();
    assert_eq!(names(&open_billing.complaints), [newest.name.clone(), oldest.name.clone()]);

    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let request = ListComplaintsRequest { page_size: 2, page_token: token.clone(), ..Default::default() };
        let page = client.list_complaints(request).await.expect("page").into_inner();
        pages.extend(names(&page.complaints));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, names(&all.complaints));
    let mismatched = ListComplaintsRequest { page_size: 2, page_token: token.clone(), ..Default::default() };
    let first_page =
        client.list_complaints(ListComplaintsRequest { page_size: 2, ..Default::default() }).await.expect("page");
    let other_filter = ListComplaintsRequest {
        page_token: first_page.into_inner().next_page_token,
        category: "billing".into(),
        ..mismatched
    };
    assert_invalid(&client.list_complaints(other_filter).await.expect_err("token of another filter"), &["page_token"]);
    env.cleanup().await;
}

fn duration_hours(d: &Option<prost_types::Duration>) -> Option<i64> {
    d.as_ref().map(|d| d.seconds / 3600)
}

fn figures(row: &ComplaintStatsRow) -> (i64, i64, i64, Option<f64>, Option<i64>, Option<i64>, i64) {
    (
        row.opened,
        row.resolved,
        row.first_contact_resolved,
        row.first_contact_resolution_rate,
        duration_hours(&row.resolution_time_p50),
        duration_hours(&row.resolution_time_p90),
        row.open_at_end,
    )
}

#[tokio::test]
async fn the_daily_chart_matches_a_hand_computed_case() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let customer = create_person(&mut identification, "Ada", &unique_email("ada")).await;
    // Two whole UTC days ending at last midnight: D1 and D2.
    let d2 = Utc::now().date_naive().and_hms_opt(0, 0, 0).expect("midnight").and_utc() - Duration::days(1);
    let d1 = d2 - Duration::days(1);
    let h = |day: DateTime<Utc>, hours: i64| day + Duration::hours(hours);
    // A: billing, D1 09:00 → D1 11:00 (2 h), first contact.
    let a = open(&mut client, &customer, complaint("billing", Some(h(d1, 9)))).await;
    resolve(&mut client, &a.name, h(d1, 11), 1).await;
    // B: billing, D1 10:00 → D2 10:00 (24 h), three contacts.
    let b = open(&mut client, &customer, complaint("billing", Some(h(d1, 10)))).await;
    resolve(&mut client, &b.name, h(d2, 10), 3).await;
    // C: delivery, D2 08:00, still open.
    open(&mut client, &customer, complaint("delivery", Some(h(d2, 8)))).await;
    // D: billing, D2 12:00 → D2 18:00 (6 h), first contact.
    let d = open(&mut client, &customer, complaint("billing", Some(h(d2, 12)))).await;
    resolve(&mut client, &d.name, h(d2, 18), 1).await;

    let request = GetComplaintStatsRequest {
        period: Some(Period { start_time: Some(timestamp(d1)), end_time: Some(timestamp(d2 + Duration::days(1))) }),
        ..Default::default()
    };
    let stats = client.get_complaint_stats(request).await.expect("stats").into_inner();
    let (day1, day2) = (d1.date_naive().to_string(), d2.date_naive().to_string());
    let rows: Vec<(String, String)> = stats.rows.iter().map(|r| (r.date.clone(), r.category.clone())).collect();
    assert_eq!(
        rows,
        [(day1.clone(), "billing".into()), (day2.clone(), "billing".into()), (day2.clone(), "delivery".into())]
    );
    assert_eq!(figures(&stats.rows[0]), (2, 1, 1, Some(1.0), Some(2), Some(2), 1));
    // D2 billing resolved B (24 h) and D (6 h): nearest-rank p50 = 6 h, p90 = 24 h.
    assert_eq!(figures(&stats.rows[1]), (1, 2, 1, Some(0.5), Some(6), Some(24), 0));
    assert_eq!(figures(&stats.rows[2]), (1, 0, 0, None, None, None, 1));

    let daily: Vec<_> =
        stats.daily_totals.iter().map(|r| (r.date.clone(), r.opened, r.resolved, r.open_at_end)).collect();
    assert_eq!(daily, [(day1, 2, 1, 1), (day2, 2, 2, 1)]);
    let by_category: Vec<_> =
        stats.category_totals.iter().map(|r| (r.category.clone(), r.opened, r.resolved, r.open_at_end)).collect();
    assert_eq!(by_category, [("billing".to_owned(), 3, 3, 0), ("delivery".to_owned(), 1, 0, 1)]);
    let total = stats.total.expect("total");
    let (opened, resolved, fcr, rate, p50, p90, backlog) = figures(&total);
    assert_eq!((opened, resolved, fcr, p50, p90, backlog), (4, 3, 2, Some(6), Some(24), 1));
    assert!((rate.expect("rate") - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(duration_hours(&total.resolution_time_p99), Some(24));

    let unbounded = GetComplaintStatsRequest { period: Some(Period::default()), ..Default::default() };
    let status = client.get_complaint_stats(unbounded).await.expect_err("no bounds");
    assert_invalid(&status, &["period.start_time", "period.end_time"]);
    let zone = GetComplaintStatsRequest {
        period: Some(Period { start_time: Some(timestamp(d1)), end_time: Some(timestamp(d2)) }),
        time_zone: "Nowhere/Land".into(),
        ..Default::default()
    };
    assert_invalid(&client.get_complaint_stats(zone).await.expect_err("zone"), &["time_zone"]);
    env.cleanup().await;
}

#[tokio::test]
async fn an_open_complaint_holds_marketing_until_resolved() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let customer = create_person(&mut identification, "Ada", &unique_email("ada")).await;
    let letter = || CheckContactPolicyRequest {
        customer: by_id(&customer),
        channel: Channel::Letter as i32,
        purpose: ConsentPurpose::Marketing as i32,
        at: None,
        time_zone: String::new(),
    };
    assert!(client.check_contact_policy(letter()).await.expect("check").into_inner().allowed);
    let opened = open(&mut client, &customer, complaint("billing", None)).await;
    let held = client.check_contact_policy(letter()).await.expect("check").into_inner();
    assert_eq!(held.denials.iter().map(|d| d.reason()).collect::<Vec<_>>(), [ContactDenialReason::OpenComplaint]);
    resolve(&mut client, &opened.name, Utc::now(), 1).await;
    assert!(client.check_contact_policy(letter()).await.expect("check").into_inner().allowed);
    env.cleanup().await;
}

#[tokio::test]
async fn an_erasure_anonymises_complaints_and_keeps_them_in_the_chart() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let customer = create_person(&mut identification, "Ada", &unique_email("ada")).await;
    let opened = open(&mut client, &customer, complaint("billing", None)).await;
    let erase = idic_proto::identification::v1::EraseCustomerRequest {
        name: format!("customers/{customer}"),
        reason: "data subject request 2026-17".into(),
        request_id: Uuid::new_v4().to_string(),
    };
    identification.erase_customer(erase).await.expect("erasure");
    common::eventually("the complaint is anonymised", || {
        let (mut client, name) = (client.clone(), opened.name.clone());
        async move {
            let read = client.get_complaint(GetComplaintRequest { name }).await.expect("get").into_inner();
            read.customer_id.is_empty() && read.summary.is_empty() && read.description.is_empty()
        }
    })
    .await;
    let read = client.get_complaint(GetComplaintRequest { name: opened.name.clone() }).await.expect("get");
    assert_eq!(read.into_inner().category, "billing", "what is not personal stays");
    env.cleanup().await;
}
