//! Profile facts through real gRPC and Postgres: facts are appended with provenance,
//! the newest trusted value becomes current (and updates the customer's field), history
//! is kept, types are fixed per key, and bad facts name their field.

mod common;

use common::{admin, create_person, get, text_fact as text};
use idic_proto::{
    common::v1::Channel,
    identification::v1::{
        FactValue, GetProfileFactRequest, ListProfileFactsRequest, ProfileFactInput, Provenance,
        RecordProfileFactsRequest, fact_value::Kind,
    },
};
use idic_testkit::{TestEnv, tokens};
use tonic::Code;

fn at(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn record(parent: &str, facts: Vec<ProfileFactInput>, source: &str, observed: i64) -> RecordProfileFactsRequest {
    RecordProfileFactsRequest {
        parent: parent.to_owned(),
        facts,
        provenance: Some(Provenance {
            source: source.into(),
            channel: Channel::Branch as i32,
            observe_time: at(observed),
        }),
        request_id: String::new(),
    }
}

#[tokio::test]
async fn the_newest_trusted_fact_becomes_current_and_history_is_kept() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let parent = create_person(&mut client, "Kathy", vec![]).await;

    let first = client
        .record_profile_facts(record(
            &parent,
            vec![text("family_name", "Johnson"), text("habit.shopping_day", "saturday")],
            "crm",
            1_700_000_000,
        ))
        .await
        .expect("record")
        .into_inner();
    assert!(first.facts.iter().all(|f| f.current && f.trusted));
    assert_eq!(first.customer.map(|c| c.family_name), Some("Johnson".to_owned()), "field keys update the customer");

    // A bought list says otherwise, later: untrusted, it does not win.
    let listed = client
        .record_profile_facts(record(&parent, vec![text("family_name", "Jonson")], "list:acme-2024", 1_760_000_000))
        .await
        .expect("list fact")
        .into_inner();
    assert!(!listed.facts[0].trusted && !listed.facts[0].current);
    // A trusted correction observed later wins.
    let corrected = client
        .record_profile_facts(record(&parent, vec![text("family_name", "Goble Johnson")], "branch-17", 1_750_000_000))
        .await
        .expect("correction")
        .into_inner();
    assert!(corrected.facts[0].current);
    let got = get(&mut client, &parent).await;
    assert_eq!(got.family_name, "Goble Johnson", "the cached profile was refreshed");

    let current = client
        .list_profile_facts(ListProfileFactsRequest { parent: parent.clone(), ..Default::default() })
        .await
        .expect("current")
        .into_inner();
    let keys: Vec<&str> = current.facts.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        ["display_name", "family_name", "given_name", "habit.shopping_day"],
        "one current value per key, by key; creation recorded the fields as facts"
    );

    let history = client
        .list_profile_facts(ListProfileFactsRequest {
            parent: parent.clone(),
            key: "family_name".into(),
            include_history: true,
            page_size: 2,
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(history.facts.len(), 2);
    assert_eq!(history.facts[0].provenance.as_ref().map(|p| p.source.as_str()), Some("list:acme-2024"), "newest first");
    let rest = client
        .list_profile_facts(ListProfileFactsRequest {
            parent: parent.clone(),
            key: "family_name".into(),
            include_history: true,
            page_size: 2,
            page_token: history.next_page_token,
        })
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(rest.facts.len(), 1);
    assert!(rest.next_page_token.is_empty());

    let one = client
        .get_profile_fact(GetProfileFactRequest { name: corrected.facts[0].name.clone() })
        .await
        .expect("get fact");
    assert_eq!(one.into_inner().key, "family_name");

    let mut reader = common::client(&env, tokens::PROFILE_READER).await;
    let masked = reader
        .list_profile_facts(ListProfileFactsRequest {
            parent: parent.clone(),
            key: "family_name".into(),
            ..Default::default()
        })
        .await
        .expect("reader")
        .into_inner();
    assert_eq!(masked.facts[0].value.as_ref().and_then(|v| v.kind.clone()), Some(Kind::StringValue("G***".into())));
    env.cleanup().await;
}

#[tokio::test]
async fn bad_facts_name_their_field() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let parent = create_person(&mut client, "Kathy", vec![]).await;
    let int = |key: &str, v: i64| ProfileFactInput {
        key: key.into(),
        value: Some(FactValue { kind: Some(Kind::IntValue(v)) }),
    };
    client
        .record_profile_facts(record(&parent, vec![int("household.children", 2)], "crm", 1_700_000_000))
        .await
        .expect("int");

    let cases = vec![
        (vec![text("Bad-Key", "x")], "facts[0].key"),
        (vec![int("given_name", 3)], "facts[0].value"),
        (vec![text("household.children", "two")], "facts[0].value"),
        (vec![text("preferred_channel", "pigeon")], "facts[0].value.string_value"),
        (vec![text("habit.a", "x"), text("habit.a", "y")], "facts[1].key"),
        (vec![], "facts"),
    ];
    for (facts, field) in cases {
        let status = client.record_profile_facts(record(&parent, facts, "crm", 1_700_000_000)).await.expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(status.message().contains(field), "{field}: {}", status.message());
    }
    let future = client
        .record_profile_facts(record(&parent, vec![text("habit.a", "x")], "crm", 4_000_000_000))
        .await
        .expect_err("future observation");
    assert!(future.message().contains("provenance.observe_time"), "{}", future.message());
    env.cleanup().await;
}
