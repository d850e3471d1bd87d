//! Timelines through real gRPC, Postgres and Redis: newest first, filtered and paged;
//! interactions in their time partitions; a merge in identification moves the merged
//! customers' history to the survivor (and an unmerge gives it back); an erasure
//! anonymises the history, refuses new contacts and is confirmed to identification.

mod common;

use common::{
    admin, by_id, create_person, eventually, identification, interaction, purchase, record, timeline, unique_email,
};
use idic_platform::jobs::timestamp;
use idic_proto::{
    common::v1::{Channel, Period},
    identification::v1::{
        EraseCustomerRequest, ErasureState, GetErasureReceiptRequest, MergeCustomersRequest, UnmergeCustomerRequest,
    },
    interaction::v1::{GetInteractionRequest, GetTimelineRequest, InteractionKind},
};
use idic_testkit::TestEnv;
use tonic::Code;

#[tokio::test]
async fn timeline_is_newest_first_filtered_and_paged() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut ident, "Ada", &unique_email("ada")).await;
    for minutes_ago in [50, 10, 40, 20, 30] {
        client.record_interaction(record(&ada, purchase(minutes_ago))).await.expect("purchase");
        let call = interaction(InteractionKind::InboundCall, Channel::CallCentre, minutes_ago + 1);
        client.record_interaction(record(&ada, call)).await.expect("call");
    }

    let whole = timeline(&mut client, &ada).await;
    let times: Vec<i64> = whole.interactions.iter().map(|i| i.occur_time.expect("time").seconds).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    assert_eq!(whole.interactions.len(), 10);

    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let request = GetTimelineRequest {
            customer: by_id(&ada),
            channels: vec![Channel::Web as i32],
            page_size: 2,
            page_token: token.clone(),
            ..Default::default()
        };
        let page = client.get_timeline(request).await.expect("page").into_inner();
        pages.push(page.interactions.len());
        assert!(page.interactions.iter().all(|i| i.kind == InteractionKind::Purchase as i32));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, [2, 2, 1]);

    let since = chrono::Utc::now() - chrono::Duration::minutes(25);
    let recent = GetTimelineRequest {
        customer: by_id(&ada),
        kinds: vec![InteractionKind::InboundCall as i32],
        period: Some(Period { start_time: Some(timestamp(since)), end_time: None }),
        ..Default::default()
    };
    let recent = client.get_timeline(recent).await.expect("filtered").into_inner();
    assert_eq!(recent.interactions.len(), 2, "calls 11 and 21 minutes ago");

    let mismatched = GetTimelineRequest {
        customer: by_id(&ada),
        page_size: 2,
        page_token: token_of(&mut client, &ada).await,
        channels: vec![Channel::Sms as i32],
        ..Default::default()
    };
    let refused = client.get_timeline(mismatched).await.expect_err("token of another filter");
    assert_eq!(refused.code(), Code::InvalidArgument);
    env.cleanup().await;
}

async fn token_of(client: &mut common::Client, customer: &str) -> String {
    let request = GetTimelineRequest { customer: by_id(customer), page_size: 1, ..Default::default() };
    client.get_timeline(request).await.expect("page").into_inner().next_page_token
}

#[tokio::test]
async fn history_months_get_their_own_partitions() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut ident, "Ada", &unique_email("ada")).await;
    let long_ago = chrono::DateTime::parse_from_rfc3339("2019-03-10T12:00:00Z").expect("date").to_utc();
    let mut old = purchase(0);
    old.occur_time = Some(timestamp(long_ago));

    let stored = client.record_interaction(record(&ada, old)).await.expect("old purchase").into_inner();

    let pool = env.pool("interaction").await;
    let partition: Option<String> =
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM interactions WHERE request_id = $1")
            .bind(&stored.request_id)
            .fetch_optional(&pool)
            .await
            .expect("query");
    assert_eq!(partition.as_deref(), Some("interactions_p2019_03"));
    let read = client.get_interaction(GetInteractionRequest { name: stored.name.clone() }).await.expect("found");
    assert_eq!(read.into_inner().occur_time, stored.occur_time);
    let missing = format!("interactions/{}", uuid::Uuid::now_v7());
    let status = client.get_interaction(GetInteractionRequest { name: missing }).await.expect_err("none");
    assert_eq!(status.code(), Code::NotFound);
    pool.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn merge_moves_history_to_survivor_and_unmerge_gives_it_back() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut ident, "Ada", &unique_email("ada")).await;
    let augusta = create_person(&mut ident, "Augusta", &unique_email("augusta")).await;
    client.record_interaction(record(&ada, purchase(10))).await.expect("ada's");
    for minutes_ago in [5, 15] {
        client.record_interaction(record(&augusta, purchase(minutes_ago))).await.expect("augusta's");
    }

    let merge = MergeCustomersRequest {
        survivor: format!("customers/{ada}"),
        merged_customers: vec![format!("customers/{augusta}")],
        reason: "the same person".into(),
        override_cannot_link: false,
        request_id: String::new(),
    };
    ident.merge_customers(merge).await.expect("merged");

    let mut c = client.clone();
    eventually("augusta's history is ada's", || {
        let mut c = c.clone();
        let ada = ada.clone();
        async move { timeline(&mut c, &ada).await.merged_customer_ids.len() == 1 }
    })
    .await;
    let merged = timeline(&mut c, &ada).await;
    assert_eq!(merged.merged_customer_ids, std::slice::from_ref(&augusta));
    assert_eq!(merged.interactions.len(), 3);
    assert!(merged.interactions.iter().all(|i| i.customer_id == ada), "re-keyed to the survivor");
    let recorded: Vec<&str> = merged.interactions.iter().map(|i| i.recorded_customer_id.as_str()).collect();
    assert_eq!(recorded, [augusta.as_str(), ada.as_str(), augusta.as_str()], "newest first, origin kept");
    let by_old_id = timeline(&mut c, &augusta).await;
    assert_eq!(by_old_id.customer_id, ada, "a merged id resolves to its survivor");

    let unmerge = UnmergeCustomerRequest {
        name: format!("customers/{augusta}"),
        reason: "two people after all".into(),
        request_id: String::new(),
    };
    ident.unmerge_customer(unmerge).await.expect("unmerged");
    eventually("augusta's history is hers again", || {
        let mut c = c.clone();
        let augusta = augusta.clone();
        async move { timeline(&mut c, &augusta).await.interactions.len() == 2 }
    })
    .await;
    let ada_again = timeline(&mut client, &ada).await;
    assert!(ada_again.merged_customer_ids.is_empty());
    assert_eq!(ada_again.interactions.len(), 1);
    env.cleanup().await;
}

#[tokio::test]
async fn erasure_anonymises_history_and_is_confirmed() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut ident, "Ada", &unique_email("ada")).await;
    let mut noted = purchase(3);
    noted.note = "prefers the Baker Street branch".into();
    let stored = client.record_interaction(record(&ada, noted)).await.expect("stored").into_inner();

    let erase = EraseCustomerRequest {
        name: format!("customers/{ada}"),
        reason: "the customer asked".into(),
        request_id: String::new(),
    };
    let receipt = ident.erase_customer(erase).await.expect("erasure").into_inner();

    let mut i = ident.clone();
    let receipt_name = receipt.name.clone();
    eventually("interaction confirms the erasure", || {
        let (mut i, name) = (i.clone(), receipt_name.clone());
        async move {
            let receipt = i.get_erasure_receipt(GetErasureReceiptRequest { name }).await.expect("receipt").into_inner();
            receipt.confirmations.iter().any(|c| c.service == "interaction" && c.confirmed)
        }
    })
    .await;
    let receipt = i.get_erasure_receipt(GetErasureReceiptRequest { name: receipt.name }).await.expect("receipt");
    assert_ne!(receipt.into_inner().state, ErasureState::Unspecified as i32);
    let kept = client.get_interaction(GetInteractionRequest { name: stored.name }).await.expect("kept").into_inner();
    assert!(kept.customer_id.is_empty() && kept.recorded_customer_id.is_empty(), "no longer anyone's");
    assert!(kept.note.is_empty(), "free text erased");
    assert_eq!(kept.total_amount, stored.total_amount, "what happened stays, for the figures");
    let refused = client.record_interaction(record(&ada, purchase(1))).await.expect_err("erased");
    assert_eq!(refused.code(), Code::NotFound);
    env.cleanup().await;
}
