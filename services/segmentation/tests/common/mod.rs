//! What the segmentation tests share: a segmentation server with clients presenting a test
//! token, interaction and identification events published as their services publish them
//! (through an outbox relayed to Redis Streams), polling until an event has been applied,
//! and the field violations a refusal names.

#![allow(dead_code, reason = "each test file uses a part of these")]

use std::time::Duration;

use chrono::{DateTime, Utc};
use idic::Target;
use idic_platform::events::{Consumer, OutboxRelay, enqueue_many};
use idic_proto::{
    common::v1::{Channel, Job, JobState, Money},
    interaction::v1::{InteractionDirection, InteractionKind, InteractionRecorded, ItemLine},
    segmentation::v1::segmentation_service_client::SegmentationServiceClient,
};
use idic_testkit::{Bearer, TestEnv, tokens};
#[allow(unused_imports)] // Not every test file checks refusals.
pub use idic_testkit::{assert_invalid, eventually, violated_fields};
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Channel as GrpcChannel};
use uuid::Uuid;

/// A client of the segmentation service.
pub type Client = SegmentationServiceClient<InterceptedService<GrpcChannel, Bearer>>;

/// Segmentation alone, on its own port.
pub async fn segmentation() -> TestEnv {
    TestEnv::start(&[Target::Segmentation]).await
}

/// A client presenting the admin token.
pub async fn admin(env: &TestEnv) -> Client {
    SegmentationServiceClient::new(env.authorized(Target::Segmentation, tokens::ADMIN).await)
}

/// Publishes `events` on `stream` as the service owning `schema` does: written to its outbox
/// and relayed to Redis.
pub async fn publish(env: &TestEnv, schema: &str, stream: &str, payloads: &[Vec<u8>]) {
    let pool = env.pool(schema).await;
    let events: Vec<(&str, &[u8])> = payloads.iter().map(|p| (stream, p.as_slice())).collect();
    let mut tx = pool.begin().await.expect("begin");
    enqueue_many(&mut tx, &events).await.expect("enqueue");
    tx.commit().await.expect("commit");
    let relay = OutboxRelay::new(pool.clone(), env.redis(), schema);
    while relay.relay_batch(500).await.expect("relay") > 0 {}
    pool.close().await;
}

/// Publishes interactions on `interaction.recorded`.
pub async fn publish_interactions(env: &TestEnv, events: &[InteractionRecorded]) {
    let payloads: Vec<Vec<u8>> = events.iter().map(Message::encode_to_vec).collect();
    publish(env, "interaction", "interaction.recorded", &payloads).await;
}

/// A web purchase of `cents` US cents of one item of `category`.
pub fn purchase(customer: Uuid, at: DateTime<Utc>, cents: i64, category: &str) -> InteractionRecorded {
    let money = Money { currency_code: "USD".into(), amount_minor: cents };
    InteractionRecorded {
        interaction_id: Uuid::new_v4().to_string(),
        customer_id: customer.to_string(),
        channel: Channel::Web as i32,
        kind: InteractionKind::Purchase as i32,
        direction: InteractionDirection::Inbound as i32,
        occur_time: Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: 0 }),
        record_time: Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: 0 }),
        items: vec![ItemLine {
            product_id: format!("sku-{category}"),
            category: category.into(),
            quantity: 1.0,
            unit_price: Some(money.clone()),
            line_amount: Some(money.clone()),
            ..Default::default()
        }],
        total_amount: Some(money),
        ..Default::default()
    }
}

/// Waits for `job` to end and returns it; fails unless it succeeded.
pub async fn wait_succeeded(client: &mut Client, job: &Job) -> Job {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let now = client
            .get_job(idic_proto::common::v1::GetJobRequest { name: job.name.clone() })
            .await
            .expect("get job")
            .into_inner();
        match JobState::try_from(now.state) {
            Ok(JobState::Succeeded) => return now,
            Ok(JobState::Failed | JobState::Cancelled) => {
                panic!("{} ended {:?}: {}", now.name, now.state, now.error_message)
            }
            _ => {}
        }
        assert!(tokio::time::Instant::now() < deadline, "{} did not finish", job.name);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every event on `stream` so far (read by a fresh consumer group from the start), waiting
/// until at least `at_least` have arrived.
pub async fn events_on<T: Message + Default + 'static>(env: &TestEnv, stream: &str, at_least: usize) -> Vec<T> {
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let group = format!("test-{}", Uuid::new_v4().simple());
    let consumer = Consumer::new(env.redis(), stream, &group, "test");
    let task = tokio::spawn(consumer.run(
        move |delivery| {
            let sender = sender.clone();
            async move {
                sender.send(T::decode(delivery.payload.as_slice())?)?;
                Ok(())
            }
        },
        shutdown.clone(),
    ));
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.len() < at_least {
        match tokio::time::timeout_at(deadline, received.recv()).await {
            Ok(Some(e)) => events.push(e),
            _ => break,
        }
    }
    while let Ok(e) = received.try_recv() {
        events.push(e);
    }
    shutdown.cancel();
    task.await.expect("consumer stops");
    events
}
