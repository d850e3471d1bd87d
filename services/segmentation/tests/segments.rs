//! Segments through the real gRPC server against real Postgres and Redis: rules refused with
//! their position and expectation, previews, materialised membership listed in pages and per
//! customer, rule evaluation, and the entry and exit events that follow a customer's purchases.

mod common;

use std::collections::HashSet;

use chrono::{Duration, Utc};
use common::*;
use idic_proto::segmentation::v1::{
    self as pb, CreateSegmentRequest, DeleteSegmentRequest, EvaluateRuleRequest, GetCustomerSegmentsRequest,
    GetSegmentRequest, ListSegmentMembersRequest, ListSegmentsRequest, MembershipChange, MembershipChangeReason,
    PreviewSegmentRequest, SegmentMembershipChanged, ValidateRuleRequest,
};
use idic_testkit::TestEnv;
use tonic::Code;
use tonic_types::StatusExt as _;
use uuid::Uuid;

/// Writes value rows as a rescoring leaves them: `(customer, tier number, p_alive, days since
/// the last purchase)`.
async fn seed_values(env: &TestEnv, rows: &[(Uuid, i16, f64, i64)]) {
    let pool = env.pool("segmentation").await;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let tiers: Vec<i16> = rows.iter().map(|r| r.1).collect();
    let p_alive: Vec<f64> = rows.iter().map(|r| r.2).collect();
    let days: Vec<i64> = rows.iter().map(|r| r.3).collect();
    sqlx::query(
        "INSERT INTO customer_values (customer_id, currency_code, last_purchase_time, purchase_count, tier, p_alive, \
                                      clv, score_time) \
         SELECT c, 'USD', now() - make_interval(days => d::int), 3, t, p, 100.0, now() \
         FROM UNNEST($1::uuid[], $2::int2[], $3::float8[], $4::int8[]) AS r(c, t, p, d)",
    )
    .bind(&ids)
    .bind(&tiers)
    .bind(&p_alive)
    .bind(&days)
    .execute(&pool)
    .await
    .expect("seed customer values");
    pool.close().await;
}

fn segment(id: &str, rule: &str) -> CreateSegmentRequest {
    CreateSegmentRequest {
        request_id: String::new(),
        segment_id: id.to_owned(),
        segment: Some(pb::Segment {
            display_name: format!("Segment {id}"),
            rule: rule.to_owned(),
            ..Default::default()
        }),
    }
}

/// Creates a segment and waits until its membership is CURRENT.
async fn create_current(client: &mut Client, id: &str, rule: &str) -> pb::Segment {
    let created = client.create_segment(segment(id, rule)).await.expect("create").into_inner();
    assert_eq!(created.membership_state(), pb::MembershipState::Pending);
    assert!(created.membership_job.starts_with("jobs/"), "{}", created.membership_job);
    eventually("the membership to be computed", || {
        let mut client = client.clone();
        let name = created.name.clone();
        async move {
            let s = client.get_segment(GetSegmentRequest { name }).await.expect("get").into_inner();
            (s.membership_state() == pb::MembershipState::Current).then_some(s)
        }
    })
    .await
}

async fn segments_of(client: &mut Client, customer: Uuid) -> Vec<String> {
    let answer = client
        .get_customer_segments(GetCustomerSegmentsRequest { customer: format!("customers/{customer}") })
        .await
        .expect("customer segments")
        .into_inner();
    answer.memberships.into_iter().map(|m| m.segment).collect()
}

#[tokio::test]
async fn a_rule_that_does_not_parse_is_refused_on_segment_rule_with_position_and_expectation() {
    let env = segmentation().await;
    let mut client = admin(&env).await;

    let refused = client
        .create_segment(segment("at-risk", r#"tier = "MVC" and p_alive p_alive"#))
        .await
        .expect_err("a rule missing its operator");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["segment.rule"]);
    let details = refused.get_error_details();
    let description = &details.bad_request().expect("bad request").field_violations[0].description;
    assert_eq!(description, r#"1:26: expected a comparison operator, "and", "or" or end of rule, found "p_alive""#);

    let validated = client
        .validate_rule(ValidateRuleRequest { rule: "p_alve < 0.5 and tier = \"MVC\"".into() })
        .await
        .expect("validate answers bad rules")
        .into_inner();
    assert!(!validated.valid);
    let d = &validated.diagnostics[0];
    assert_eq!((d.line, d.column, d.offset, d.length), (1, 1, 0, 6));
    assert_eq!(d.suggestion, "p_alive");
    assert_eq!(d.severity(), pb::RuleDiagnosticSeverity::Error);

    let good = client
        .validate_rule(ValidateRuleRequest { rule: r#"TIER = "mvc"  AND (p_alive < 0.5)"#.replace("TIER", "tier") })
        .await
        .expect("validate")
        .into_inner();
    assert!(good.valid, "{:?}", good.diagnostics);
    assert_eq!(good.normalized_rule, r#"tier = "mvc" and p_alive < 0.5"#);
    assert_eq!(good.referenced_fields, ["tier", "p_alive"]);

    let listed = client.list_segments(ListSegmentsRequest::default()).await.expect("list").into_inner();
    assert!(listed.segments.is_empty(), "nothing was created");
    env.cleanup().await;
}

#[tokio::test]
async fn preview_counts_matching_customers_and_samples_them_without_saving() {
    let env = segmentation().await;
    let mut client = admin(&env).await;
    let at_risk: Vec<Uuid> = (0..7).map(|_| Uuid::new_v4()).collect();
    let mut rows: Vec<(Uuid, i16, f64, i64)> = at_risk.iter().map(|c| (*c, 1, 0.3, 90)).collect();
    rows.extend((0..3).map(|_| (Uuid::new_v4(), 1, 0.3, 10))); // recent buyers
    rows.extend((0..2).map(|_| (Uuid::new_v4(), 4, 0.2, 200))); // not MVC
    seed_values(&env, &rows).await;

    let preview = client
        .preview_segment(PreviewSegmentRequest {
            rule: r#"tier = "MVC" and p_alive < 0.5 and days_since_purchase > 60"#.into(),
            sample_size: 3,
        })
        .await
        .expect("preview")
        .into_inner();
    assert_eq!((preview.matched_count, preview.evaluated_count), (7, 12));
    assert!((preview.matched_share - 7.0 / 12.0).abs() < 1e-9);
    assert_eq!(preview.sample.len(), 3);
    let sampled: HashSet<&str> = preview.sample.iter().map(|s| s.customer.as_str()).collect();
    assert_eq!(sampled.len(), 3, "a sample never repeats a customer");
    let expected: HashSet<String> = at_risk.iter().map(|c| format!("customers/{c}")).collect();
    assert!(sampled.iter().all(|s| expected.contains(*s)), "only matching customers are sampled");
    assert!(preview.sample.iter().all(|s| s.tier() == pb::Tier::Mvc && s.days_since_purchase == Some(90)));
    assert_eq!(preview.tier_counts.len(), 1);
    assert_eq!((preview.tier_counts[0].tier(), preview.tier_counts[0].customer_count), (pb::Tier::Mvc, 7));

    let refused = client
        .preview_segment(PreviewSegmentRequest { rule: "p_alive <".into(), sample_size: 0 })
        .await
        .expect_err("bad rule");
    assert_eq!((refused.code(), violated_fields(&refused)), (Code::InvalidArgument, vec!["rule".to_owned()]));
    let listed = client.list_segments(ListSegmentsRequest::default()).await.expect("list").into_inner();
    assert!(listed.segments.is_empty(), "a preview saves nothing");
    env.cleanup().await;
}

#[tokio::test]
async fn membership_is_materialised_listed_in_pages_and_per_customer() {
    let env = segmentation().await;
    let mut client = admin(&env).await;
    let members: Vec<Uuid> = (0..25).map(|_| Uuid::new_v4()).collect();
    let outsider = Uuid::new_v4();
    let mut rows: Vec<(Uuid, i16, f64, i64)> = members.iter().map(|c| (*c, 1, 0.4, 30)).collect();
    rows.push((outsider, 5, 0.9, 30));
    seed_values(&env, &rows).await;

    let created = create_current(&mut client, "mvc", r#"tier = "MVC""#).await;
    assert_eq!(created.member_count, 25);
    assert_eq!(created.rule_version, 1);
    assert!(created.membership_time.is_some());

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_segment_members(ListSegmentMembersRequest {
                segment: "segments/mvc".into(),
                page_size: 10,
                page_token: token.clone(),
            })
            .await
            .expect("members")
            .into_inner();
        assert_eq!(page.total_size, 25);
        assert!(page.members.len() <= 10);
        seen.extend(page.members.into_iter().map(|m| m.customer));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut expected: Vec<String> = members.iter().map(|c| format!("customers/{c}")).collect();
    expected.sort();
    assert_eq!(seen, expected, "every member once, in customer id order");

    assert_eq!(segments_of(&mut client, members[0]).await, ["segments/mvc"]);
    assert!(segments_of(&mut client, outsider).await.is_empty());
    assert!(segments_of(&mut client, Uuid::new_v4()).await.is_empty(), "unknown customers belong to nothing");

    let entered: Vec<SegmentMembershipChanged> = events_on(&env, "segment.membership_changed", 25).await;
    assert_eq!(entered.len(), 25);
    assert!(entered.iter().all(|e| e.segment == "segments/mvc"
        && e.change() == MembershipChange::Entered
        && e.reason() == MembershipChangeReason::SegmentCreated
        && e.rule_version == 1));

    let bad_page = client
        .list_segment_members(ListSegmentMembersRequest {
            segment: "segments/mvc".into(),
            page_size: 10_001,
            page_token: String::new(),
        })
        .await
        .expect_err("page too large");
    assert_eq!(violated_fields(&bad_page), ["page_size"]);

    client
        .delete_segment(DeleteSegmentRequest { name: "segments/mvc".into(), etag: String::new() })
        .await
        .expect("delete");
    assert!(segments_of(&mut client, members[0]).await.is_empty(), "deletion clears the customer's list");
    let all: Vec<SegmentMembershipChanged> = events_on(&env, "segment.membership_changed", 50).await;
    let exits = all.iter().filter(|e| e.reason() == MembershipChangeReason::SegmentDeleted).count();
    assert_eq!(exits, 25, "every member exits a deleted segment");
    env.cleanup().await;
}

#[tokio::test]
async fn a_purchase_moves_the_customer_between_segments_with_entry_and_exit_events() {
    let env = segmentation().await;
    let mut client = admin(&env).await;
    let customer = Uuid::new_v4();
    publish_interactions(&env, &[purchase(customer, Utc::now() - Duration::days(20), 1500, "jeans")]).await;
    eventually("the first purchase to be applied", || {
        let mut client = client.clone();
        async move {
            let r = client
                .evaluate_rule(EvaluateRuleRequest {
                    customer: format!("customers/{customer}"),
                    rule: "purchase_count = 1".into(),
                    explain: false,
                })
                .await
                .expect("evaluate")
                .into_inner();
            r.matched.then_some(())
        }
    })
    .await;
    create_current(&mut client, "one-time", "purchase_count = 1").await;
    create_current(&mut client, "repeat", r#"purchase_count >= 2 and bought_category("shirts")"#).await;
    assert_eq!(segments_of(&mut client, customer).await, ["segments/one-time"]);

    publish_interactions(&env, &[purchase(customer, Utc::now() - Duration::days(1), 900, "shirts")]).await;
    eventually("the customer to move to the repeat buyers", || {
        let mut client = client.clone();
        async move { (segments_of(&mut client, customer).await == ["segments/repeat"]).then_some(()) }
    })
    .await;

    let events: Vec<SegmentMembershipChanged> = events_on(&env, "segment.membership_changed", 3).await;
    let mine: Vec<(&str, MembershipChange, MembershipChangeReason)> = events
        .iter()
        .filter(|e| e.customer_id == customer.to_string())
        .map(|e| (e.segment.as_str(), e.change(), e.reason()))
        .collect();
    assert_eq!(
        mine,
        [
            ("segments/one-time", MembershipChange::Entered, MembershipChangeReason::SegmentCreated),
            ("segments/one-time", MembershipChange::Exited, MembershipChangeReason::CustomerUpdated),
            ("segments/repeat", MembershipChange::Entered, MembershipChangeReason::CustomerUpdated),
        ]
    );
    let sequences: Vec<i64> = events.iter().filter(|e| e.segment == "segments/one-time").map(|e| e.sequence).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "sequences order one membership's changes");

    let explained = client
        .evaluate_rule(EvaluateRuleRequest {
            customer: format!("customers/{customer}"),
            rule: "purchase_count >= 2 and days_since_purchase < 7".into(),
            explain: true,
        })
        .await
        .expect("evaluate")
        .into_inner();
    assert!(explained.matched && explained.customer_known);
    let terms: Vec<(&str, bool, &str)> =
        explained.explanation.iter().map(|t| (t.term.as_str(), t.result, t.observed.as_str())).collect();
    assert_eq!(terms, [("purchase_count >= 2", true, "2"), ("days_since_purchase < 7", true, "1")]);
    env.cleanup().await;
}

#[tokio::test]
async fn an_erased_customer_exits_every_segment_before_erasure_is_confirmed() {
    use idic_proto::{common::v1::ErasureConfirmed, identification::v1::CustomerErased};
    use prost::Message as _;

    let env = segmentation().await;
    let mut client = admin(&env).await;
    let (erased, kept) = (Uuid::new_v4(), Uuid::new_v4());
    seed_values(&env, &[(erased, 1, 0.4, 30), (kept, 1, 0.4, 30)]).await;
    let created = create_current(&mut client, "mvc", r#"tier = "MVC""#).await;
    assert_eq!(created.member_count, 2);

    let event = CustomerErased {
        event_id: Uuid::new_v4().to_string(),
        erasure: format!("erasures/{}", Uuid::new_v4()),
        customer_id: erased.to_string(),
        merged_customer_ids: vec![],
        time: None,
    };
    publish(&env, "identification", "customer.erased", &[event.encode_to_vec()]).await;
    let confirmations: Vec<ErasureConfirmed> = events_on(&env, "erasure.confirmed", 1).await;
    assert_eq!(confirmations.len(), 1);

    assert!(segments_of(&mut client, erased).await.is_empty());
    assert_eq!(segments_of(&mut client, kept).await, ["segments/mvc"]);
    let after = client.get_segment(GetSegmentRequest { name: "segments/mvc".into() }).await.expect("get").into_inner();
    assert_eq!(after.member_count, 1);
    let changes: Vec<SegmentMembershipChanged> = events_on(&env, "segment.membership_changed", 3).await;
    let exit = changes.iter().find(|e| e.change() == MembershipChange::Exited).expect("an exit");
    assert_eq!(
        (exit.customer_id.as_str(), exit.reason()),
        (erased.to_string().as_str(), MembershipChangeReason::CustomerErased)
    );
    env.cleanup().await;
}
