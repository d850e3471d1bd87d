//! The event bus against real Postgres and Redis: events leave the outbox only when
//! their transaction commits, reach consumer groups, are applied once despite
//! redelivery, and are dead-lettered after repeated failures.

use std::time::Duration;

use idic_platform::events::{self, Consumer, OutboxRelay};
use idic_testkit::TestEnv;
use redis::AsyncCommands as _;
use tokio_util::sync::CancellationToken;

/// Writes one event to the outbox in a committed transaction.
async fn enqueue_committed(pool: &sqlx::PgPool, stream: &str, payload: &[u8]) {
    let mut tx = pool.begin().await.expect("tx");
    events::enqueue(&mut tx, stream, payload).await.expect("enqueue");
    tx.commit().await.expect("commit");
}

/// Runs `consumer` until `shutdown`, handing every delivery to the returned receiver.
fn forward_deliveries(
    consumer: Consumer,
    shutdown: &CancellationToken,
) -> (tokio::task::JoinHandle<()>, tokio::sync::mpsc::UnboundedReceiver<events::Delivery>) {
    let (sender, received) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(consumer.run(
        move |delivery| {
            let sender = sender.clone();
            async move {
                sender.send(delivery).map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(())
            }
        },
        shutdown.clone(),
    ));
    (task, received)
}

#[tokio::test]
async fn committed_events_reach_consumers_and_rolled_back_ones_do_not() {
    let env = TestEnv::start(&[]).await;
    let pool = env.pool("identification").await;
    let redis = env.redis();

    let mut tx = pool.begin().await.expect("tx");
    events::enqueue(&mut tx, "customer.merged", b"rolled back").await.expect("enqueue");
    tx.rollback().await.expect("rollback");
    enqueue_committed(&pool, "customer.merged", b"committed").await;

    let relay = OutboxRelay::new(pool.clone(), redis.clone(), "identification");
    assert_eq!(relay.relay_batch(100).await.expect("relay"), 1);
    assert_eq!(relay.relay_batch(100).await.expect("relay again"), 0, "published once");

    let shutdown = CancellationToken::new();
    let consumer = Consumer::new(redis.clone(), "customer.merged", "interaction", "test-1");
    let (task, mut received) = forward_deliveries(consumer, &shutdown);
    let delivery =
        tokio::time::timeout(Duration::from_secs(10), received.recv()).await.expect("in time").expect("delivery");
    assert_eq!(delivery.payload, b"committed");
    assert!(delivery.event_id.starts_with("identification:"), "{}", delivery.event_id);
    assert!(tokio::time::timeout(Duration::from_millis(500), received.recv()).await.is_err(), "nothing else");
    shutdown.cancel();
    task.await.expect("consumer stops");

    // Applying an event records it; a redelivery is recognised.
    let mut tx = pool.begin().await.expect("tx");
    assert!(events::first_delivery(&mut tx, "interaction", &delivery.event_id).await.expect("first"));
    assert!(!events::first_delivery(&mut tx, "interaction", &delivery.event_id).await.expect("again"));
    tx.commit().await.expect("commit");
    pool.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_batch_is_published_in_its_order_only_when_committed() {
    let env = TestEnv::start(&[]).await;
    let pool = env.pool("identification").await;
    let redis = env.redis();

    let mut tx = pool.begin().await.expect("tx");
    events::enqueue_many(&mut tx, &[("customer.merged", b"rolled back".as_slice())]).await.expect("enqueue");
    tx.rollback().await.expect("rollback");
    let batch: Vec<(&str, Vec<u8>)> = vec![
        ("customer.merged", b"merge 1".to_vec()),
        ("consent.changed", b"consent 1".to_vec()),
        ("customer.merged", b"merge 2".to_vec()),
    ];
    let mut tx = pool.begin().await.expect("tx");
    events::enqueue_many(&mut tx, &batch).await.expect("enqueue many");
    events::enqueue_many::<&str, &[u8]>(&mut tx, &[]).await.expect("an empty batch");
    tx.commit().await.expect("commit");

    let relay = OutboxRelay::new(pool.clone(), redis.clone(), "identification");
    assert_eq!(relay.relay_batch(100).await.expect("relay"), 3, "the committed batch only");
    let mut conn = redis.connection();
    let payloads = |entries: redis::streams::StreamRangeReply| -> Vec<Vec<u8>> {
        entries.ids.iter().map(|entry| entry.get::<Vec<u8>>("payload").expect("payload")).collect()
    };
    let merged: redis::streams::StreamRangeReply =
        conn.xrange_all(redis.key("stream:customer.merged")).await.expect("xrange");
    assert_eq!(payloads(merged), [b"merge 1".to_vec(), b"merge 2".to_vec()], "in the order given");
    let changed: redis::streams::StreamRangeReply =
        conn.xrange_all(redis.key("stream:consent.changed")).await.expect("xrange");
    assert_eq!(payloads(changed), [b"consent 1".to_vec()]);
    pool.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn an_event_that_keeps_failing_is_dead_lettered() {
    let env = TestEnv::start(&[]).await;
    let pool = env.pool("interaction").await;
    let redis = env.redis();
    enqueue_committed(&pool, "interaction.recorded", b"poison").await;
    OutboxRelay::new(pool.clone(), redis.clone(), "interaction").relay_batch(10).await.expect("relay");

    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let shutdown = CancellationToken::new();
    let mut consumer = Consumer::new(redis.clone(), "interaction.recorded", "segmentation", "test-1");
    consumer.options.reclaim_after = Duration::from_millis(200);
    consumer.options.block = Duration::from_millis(100);
    consumer.options.max_deliveries = 3;
    let counted = attempts.clone();
    let task = tokio::spawn(consumer.run(
        move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { anyhow::bail!("cannot handle this") }
        },
        shutdown.clone(),
    ));
    let dead_key = redis.key("stream:interaction.recorded.dead");
    let mut conn = redis.connection();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let dead: u64 = conn.xlen(&dead_key).await.expect("xlen");
        if dead == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not dead-lettered in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    task.await.expect("consumer stops");
    let tried = attempts.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=3).contains(&tried), "handled {tried} times before dead-lettering");
    pool.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn events_are_published_again_when_redis_loses_its_streams() {
    let env = TestEnv::start(&[]).await;
    let pool = env.pool("identification").await;
    let redis = env.redis();
    let shutdown = CancellationToken::new();
    let mut relay = OutboxRelay::new(pool.clone(), redis.clone(), "identification");
    relay.poll_interval = Duration::from_millis(100);
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));

    enqueue_committed(&pool, "customer.erased", b"erase c-1").await;

    let mut consumer = Consumer::new(redis.clone(), "customer.erased", "interaction", "test-1");
    consumer.options.block = Duration::from_millis(100);
    let (consumer_task, mut received) = forward_deliveries(consumer, &shutdown);
    let first = tokio::time::timeout(Duration::from_secs(10), received.recv()).await.expect("in time").expect("event");

    // Redis restarts empty: streams, groups and the epoch marker are gone.
    redis.delete_prefix().await.expect("flush");
    let again =
        tokio::time::timeout(Duration::from_secs(10), received.recv()).await.expect("republished").expect("event");
    assert_eq!(again.event_id, first.event_id, "the same event, recognisable by its id");
    assert_eq!(again.payload, b"erase c-1");

    shutdown.cancel();
    relay_task.await.expect("relay stops");
    consumer_task.await.expect("consumer stops");
    pool.close().await;
    env.cleanup().await;
}
