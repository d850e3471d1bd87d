//! NextQuestions through real gRPC: the most useful unknown facts, never a known one,
//! never a recently declined one, no profiling question after profiling is withdrawn.

mod common;

use common::{admin, create, person};
use idic_proto::{
    common::v1::{Channel, ConsentPurpose},
    identification::v1::{
        ConsentStatus, Customer, Date, FactValue, NextQuestionsRequest, ProfileFactInput, RecordConsentRequest,
        RecordProfileFactsRequest, fact_value::Kind,
    },
};
use idic_testkit::TestEnv;
use tonic::Code;

#[tokio::test]
async fn asks_only_for_what_is_unknown_and_welcome() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let customer = Customer { birth_date: Some(Date { year: 1990, month: 3, day: 8 }), ..person("Mary", "") };
    let name = create(&mut client, customer).await.name;
    let ask = |n| NextQuestionsRequest { customer: name.clone(), n, ..Default::default() };

    let first = client.next_questions(ask(0)).await.expect("questions").into_inner();
    let keys: Vec<&str> = first.questions.iter().map(|q| q.fact_key.as_str()).collect();
    assert_eq!(keys, ["preferred_channel", "household.children"], "two by default; the birth date is known");
    assert!(first.questions.iter().all(|q| !q.purpose_statement.is_empty()), "always say why");

    // She declines to say how many children she has, and withdraws profiling.
    let declined = ProfileFactInput {
        key: "household.children".into(),
        value: Some(FactValue { kind: Some(Kind::Declined(true)) }),
    };
    client
        .record_profile_facts(RecordProfileFactsRequest {
            parent: name.clone(),
            facts: vec![declined],
            ..Default::default()
        })
        .await
        .expect("declined");
    let after_decline = client.next_questions(ask(10)).await.expect("questions").into_inner();
    assert!(after_decline.questions.iter().all(|q| q.fact_key != "household.children"));
    assert!(after_decline.questions.iter().any(|q| q.purpose == ConsentPurpose::Profiling as i32));

    client
        .record_consent(RecordConsentRequest {
            parent: name.clone(),
            purpose: ConsentPurpose::Profiling as i32,
            status: ConsentStatus::Withdrawn as i32,
            ..Default::default()
        })
        .await
        .expect("withdraw profiling");
    let no_profiling = client.next_questions(ask(10)).await.expect("questions").into_inner();
    assert!(!no_profiling.questions.is_empty());
    assert!(no_profiling.questions.iter().all(|q| q.purpose != ConsentPurpose::Profiling as i32));

    let by_sms = client
        .next_questions(NextQuestionsRequest {
            customer: name.clone(),
            n: 10,
            channel: Channel::Sms as i32,
            exclude_keys: vec![],
        })
        .await
        .expect("sms")
        .into_inner();
    assert!(by_sms.questions.iter().all(|q| q.fact_key != "preference.newsletter_topic"), "no free text by SMS");

    let bad = client.next_questions(ask(11)).await.expect_err("n too large");
    assert_eq!(bad.code(), Code::InvalidArgument);
    env.cleanup().await;
}
