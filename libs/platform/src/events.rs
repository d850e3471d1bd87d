//! The event bus: Redis Streams fed by a transactional outbox in Postgres.
//!
//! A service writes an event in the same transaction as the change it announces
//! ([`enqueue`]); the [`OutboxRelay`] moves committed events to their stream. Consumers
//! read with consumer groups ([`Consumer`]), ack after handling, reclaim messages left
//! pending by a dead consumer, and dead-letter a message after repeated failures.
//! Delivery is at least once; [`first_delivery`] lets a handler apply an event once.
//! Published events stay in the outbox for a retention window, so when Redis loses its
//! streams (a restart without persistence) the relay publishes them again.

use std::{collections::HashMap, future::Future, time::Duration};

use redis::{Value, aio::ConnectionManager};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::redis::Redis;

/// Field of a stream entry holding the encoded protobuf event.
const PAYLOAD_FIELD: &str = "payload";
/// Field holding the event's unique id (`{source}:{outbox id}`).
const EVENT_ID_FIELD: &str = "event_id";

/// Writes `payload` (an encoded protobuf event) for `stream` into the outbox, inside the
/// caller's transaction: the event is published if and only if the change commits.
pub async fn enqueue(tx: &mut PgConnection, stream: &str, payload: &[u8]) -> sqlx::Result<()> {
    enqueue_many(tx, &[(stream, payload)]).await
}

/// Writes `(stream, payload)` events into the outbox in one statement, inside the
/// caller's transaction, as [`enqueue`] does one: they are published, in this order, if
/// and only if the change commits. A batch (a cleansing job's thousands of merges) costs
/// two statements whatever its size; an empty one costs none.
pub async fn enqueue_many<S, P>(tx: &mut PgConnection, events: &[(S, P)]) -> sqlx::Result<()>
where
    S: AsRef<str>,
    P: AsRef<[u8]>,
{
    if events.is_empty() {
        return Ok(());
    }
    let streams: Vec<&str> = events.iter().map(|(s, _)| s.as_ref()).collect();
    let payloads: Vec<&[u8]> = events.iter().map(|(_, p)| p.as_ref()).collect();
    // WITH ORDINALITY keeps the ids (hence the publishing order) in the order given.
    sqlx::query(
        "INSERT INTO outbox (stream, payload) \
         SELECT stream, payload FROM UNNEST($1::text[], $2::bytea[]) WITH ORDINALITY AS t(stream, payload, n) \
         ORDER BY n",
    )
    .bind(&streams)
    .bind(&payloads)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify(current_schema() || '_outbox', '')").execute(&mut *tx).await?;
    Ok(())
}

/// Stream on which every service confirms the erasures it applied.
pub const ERASURE_CONFIRMED: &str = "erasure.confirmed";

/// Confirms that `service` applied the erasure `erasure` of `customer_id`: publishes
/// `erasure.confirmed` and writes the audit entry, inside the transaction that applied it.
pub async fn confirm_erasure(
    tx: &mut PgConnection,
    service: &str,
    erasure: &str,
    customer_id: &str,
) -> anyhow::Result<()> {
    let confirmation = idic_proto::common::v1::ErasureConfirmed {
        erasure: erasure.to_owned(),
        customer_id: customer_id.to_owned(),
        service: service.to_owned(),
        time: Some(crate::jobs::timestamp(chrono::Utc::now())),
    };
    enqueue(&mut *tx, ERASURE_CONFIRMED, &prost::Message::encode_to_vec(&confirmation)).await?;
    crate::audit::record(
        tx,
        crate::audit::AuditRecord {
            caller: "identification",
            action: "ApplyErasure",
            resource: &format!("customers/{customer_id}"),
            reason: "",
            detail: serde_json::json!({ "erasure": erasure }),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Audits a merge applied by a consumer (`ApplyMerge`), inside the transaction that applied it.
pub async fn audit_applied_merge(
    tx: &mut PgConnection,
    survivor: &str,
    merge: &str,
    merged: &[String],
) -> anyhow::Result<()> {
    crate::audit::record(
        tx,
        crate::audit::AuditRecord {
            caller: "identification",
            action: "ApplyMerge",
            resource: &format!("customers/{survivor}"),
            reason: "",
            detail: serde_json::json!({ "merge": merge, "merged": merged }),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Records that `group` has applied `event_id`, inside the transaction that applies it.
/// Returns false when it had been applied already (a redelivery): skip the effect then.
pub async fn first_delivery(tx: &mut PgConnection, group: &str, event_id: &str) -> sqlx::Result<bool> {
    let inserted =
        sqlx::query("INSERT INTO processed_events (consumer_group, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(group)
            .bind(event_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    Ok(inserted == 1)
}

/// Moves committed outbox rows of one service to their Redis streams.
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    redis: Redis,
    /// The publishing service, part of every event id.
    source: String,
    /// Approximate maximum length of each stream (`XADD MAXLEN ~`).
    pub stream_max_len: usize,
    /// How long published events stay in the outbox, to be republished if Redis loses them.
    pub retention: Duration,
    /// How often the outbox is polled when no notification arrives.
    pub poll_interval: Duration,
    /// A connection of its own, whose timeout suits a pipeline of hundreds of XADDs.
    publisher: Option<redis::aio::ConnectionManager>,
}

impl OutboxRelay {
    /// A relay for the outbox in `pool`'s schema.
    pub fn new(pool: PgPool, redis: Redis, source: &str) -> Self {
        Self {
            publisher: redis.dedicated(Duration::from_secs(5)).ok(),
            pool,
            redis,
            source: source.to_owned(),
            stream_max_len: 1_000_000,
            retention: Duration::from_secs(24 * 3600),
            poll_interval: Duration::from_millis(500),
        }
    }

    /// Relays until `shutdown` is cancelled. Errors (Redis or Postgres down) are logged
    /// and retried; nothing is lost, since rows leave the outbox only after publication.
    pub async fn run(self, shutdown: CancellationToken) {
        let channel =
            match sqlx::query_scalar::<_, String>("SELECT current_schema() || '_outbox'").fetch_one(&self.pool).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay: no notification channel; polling only");
                    None
                }
            };
        let mut listener = None;
        let mut epoch_seen = None;
        let mut last_prune = tokio::time::Instant::now();
        loop {
            if listener.is_none()
                && let Some(channel) = &channel
            {
                listener = connect_listener(&self.pool, channel).await;
            }
            match self.check_epoch(&mut epoch_seen).await {
                Ok(true) => {
                    tracing::warn!(source = %self.source, "redis lost its streams: republishing the outbox window");
                    if let Err(e) = self.requeue_retained().await {
                        tracing::warn!(error = %e, "outbox requeue failed");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "outbox relay: cannot check the redis epoch"),
            }
            let mut backlog = false;
            match self.relay_batch(500).await {
                Ok(n) => backlog = n == 500,
                Err(e) => tracing::warn!(source = %self.source, error = %e, "outbox relay failed; retrying"),
            }
            if last_prune.elapsed() > Duration::from_secs(60) {
                last_prune = tokio::time::Instant::now();
                let _ = sqlx::query("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)")
                    .bind(self.retention.as_secs_f64())
                    .execute(&self.pool)
                    .await;
            }
            if backlog {
                continue;
            }
            let wait = async {
                match listener.as_mut() {
                    Some(l) => {
                        if l.recv().await.is_err() {
                            listener = None;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = wait => {}
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    /// Publishes up to `limit` unpublished rows; returns how many.
    pub async fn relay_batch(&self, limit: i64) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, stream, payload FROM outbox WHERE published_at IS NULL \
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for (id, stream, payload) in &rows {
            pipe.cmd("XADD")
                .arg(self.redis.key(&format!("stream:{stream}")))
                .arg("MAXLEN")
                .arg("~")
                .arg(self.stream_max_len)
                .arg("*")
                .arg(EVENT_ID_FIELD)
                .arg(format!("{}:{id}", self.source))
                .arg(PAYLOAD_FIELD)
                .arg(payload.as_slice())
                .ignore();
        }
        let mut conn = self.publisher.clone().unwrap_or_else(|| self.redis.connection());
        pipe.query_async::<()>(&mut conn).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)").bind(&ids).execute(&mut *tx).await?;
        tx.commit().await?;
        metrics::counter!("idic_events_published_total", "source" => self.source.clone()).increment(rows.len() as u64);
        Ok(rows.len())
    }

    /// True when Redis lost its data since this service's relays last looked: the epoch
    /// marker (one per service) is missing or differs from the one recorded in Postgres.
    /// The first look on a new deployment records the marker without republishing.
    async fn check_epoch(&self, seen: &mut Option<String>) -> anyhow::Result<bool> {
        let key = self.redis.key(&format!("bus:epoch:{}", self.source));
        let mut conn = self.redis.connection();
        let _: () =
            redis::cmd("SET").arg(&key).arg(uuid::Uuid::new_v4().to_string()).arg("NX").query_async(&mut conn).await?;
        let current: String = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        if seen.as_deref() == Some(current.as_str()) {
            return Ok(false);
        }
        let recorded: Option<String> =
            sqlx::query_scalar("SELECT value FROM bus_state WHERE key = 'epoch'").fetch_optional(&self.pool).await?;
        let lost = recorded.as_ref().is_some_and(|r| *r != current);
        sqlx::query(
            "INSERT INTO bus_state (key, value) VALUES ('epoch', $1) ON CONFLICT (key) DO UPDATE SET value = $1",
        )
        .bind(&current)
        .execute(&self.pool)
        .await?;
        *seen = Some(current);
        Ok(lost)
    }

    async fn requeue_retained(&self) -> sqlx::Result<()> {
        sqlx::query("UPDATE outbox SET published_at = NULL WHERE published_at IS NOT NULL").execute(&self.pool).await?;
        Ok(())
    }
}

async fn connect_listener(pool: &PgPool, channel: &str) -> Option<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await.ok()?;
    listener.listen(channel).await.ok()?;
    Some(listener)
}

/// One event handed to a consumer's handler.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The stream entry id (Redis).
    pub entry_id: String,
    /// The event's unique id, stable across redeliveries and republication.
    pub event_id: String,
    /// The encoded protobuf event.
    pub payload: Vec<u8>,
}

/// How a consumer reads, retries and gives up.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Entries read per call.
    pub batch_size: usize,
    /// How long one read blocks waiting for new entries.
    pub block: Duration,
    /// A pending entry idle this long is presumed abandoned and reclaimed.
    pub reclaim_after: Duration,
    /// Deliveries after which an entry moves to the dead-letter stream `{stream}.dead`.
    pub max_deliveries: usize,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            batch_size: 256,
            block: Duration::from_secs(1),
            reclaim_after: Duration::from_secs(30),
            max_deliveries: 5,
        }
    }
}

/// A member of a consumer group on one stream.
#[derive(Debug, Clone)]
pub struct Consumer {
    redis: Redis,
    stream: String,
    group: String,
    name: String,
    /// Reading, retry and dead-letter settings.
    pub options: ConsumerOptions,
}

impl Consumer {
    /// Consumer `name` of `group` on `stream` (a logical stream name, e.g. `customer.merged`).
    pub fn new(redis: Redis, stream: &str, group: &str, name: &str) -> Self {
        Self {
            redis,
            stream: stream.to_owned(),
            group: group.to_owned(),
            name: name.to_owned(),
            options: ConsumerOptions::default(),
        }
    }

    fn key(&self) -> String {
        self.redis.key(&format!("stream:{}", self.stream))
    }

    /// Handles entries until `shutdown` is cancelled. An entry is acked when `handle`
    /// returns Ok; on Err it stays pending and is retried after `reclaim_after`.
    pub async fn run<H, Fut>(self, handle: H, shutdown: CancellationToken)
    where
        H: Fn(Delivery) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let mut conn = match self.redis.dedicated(self.options.block + Duration::from_secs(5)) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "consumer cannot create a redis connection");
                return;
            }
        };
        let mut group_ready = false;
        let mut last_reclaim = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            if !group_ready {
                match self.ensure_group(&mut conn).await {
                    Ok(()) => group_ready = true,
                    Err(e) => {
                        tracing::debug!(error = %e, stream = %self.stream, "consumer waiting for redis");
                        if sleep_or_shutdown(Duration::from_millis(500), &shutdown).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            if last_reclaim.elapsed() >= self.options.reclaim_after / 2 {
                last_reclaim = tokio::time::Instant::now();
                if let Err(e) = self.reclaim(&mut conn, &handle).await {
                    group_ready = !is_group_lost(&e);
                }
            }
            let read = tokio::select! {
                () = shutdown.cancelled() => return,
                r = self.read_new(&mut conn) => r,
            };
            match read {
                Ok(deliveries) => {
                    for delivery in deliveries {
                        self.process(&mut conn, &handle, delivery).await;
                    }
                }
                Err(e) => {
                    group_ready = !is_group_lost(&e);
                    tracing::debug!(error = %e, stream = %self.stream, "consumer read failed");
                    if sleep_or_shutdown(Duration::from_millis(200), &shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    async fn ensure_group(&self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.key())
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    async fn read_new(&self, conn: &mut ConnectionManager) -> redis::RedisResult<Vec<Delivery>> {
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.name)
            .arg("COUNT")
            .arg(self.options.batch_size)
            .arg("BLOCK")
            .arg(self.options.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(self.key())
            .arg(">")
            .query_async(conn)
            .await?;
        let reply: Option<redis::streams::StreamReadReply> = redis::from_redis_value(reply)?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|entry| to_delivery(entry.id, &entry.map))
            .collect())
    }

    /// Claims entries left pending too long; dead-letters those delivered too often.
    async fn reclaim<H, Fut>(&self, conn: &mut ConnectionManager, handle: &H) -> redis::RedisResult<()>
    where
        H: Fn(Delivery) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let min_idle = self.options.reclaim_after.as_millis() as u64;
        let pending: Value = redis::cmd("XPENDING")
            .arg(self.key())
            .arg(&self.group)
            .arg("IDLE")
            .arg(min_idle)
            .arg("-")
            .arg("+")
            .arg(self.options.batch_size)
            .query_async(conn)
            .await?;
        let pending: redis::streams::StreamPendingCountReply = redis::from_redis_value(pending)?;
        for entry in pending.ids {
            let claimed: Value = redis::cmd("XCLAIM")
                .arg(self.key())
                .arg(&self.group)
                .arg(&self.name)
                .arg(min_idle)
                .arg(&entry.id)
                .query_async(conn)
                .await?;
            let claimed: redis::streams::StreamClaimReply = redis::from_redis_value(claimed)?;
            for stream_id in claimed.ids {
                let delivery = to_delivery(stream_id.id, &stream_id.map);
                if entry.times_delivered >= self.options.max_deliveries {
                    self.dead_letter(conn, &delivery).await?;
                } else {
                    self.process(conn, handle, delivery).await;
                }
            }
        }
        Ok(())
    }

    async fn process<H, Fut>(&self, conn: &mut ConnectionManager, handle: &H, delivery: Delivery)
    where
        H: Fn(Delivery) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let entry_id = delivery.entry_id.clone();
        let event_id = delivery.event_id.clone();
        match handle(delivery).await {
            Ok(()) => {
                let acked: redis::RedisResult<()> =
                    redis::cmd("XACK").arg(self.key()).arg(&self.group).arg(&entry_id).query_async(conn).await;
                if let Err(e) = acked {
                    tracing::debug!(error = %e, "ack failed; the event will be redelivered");
                }
                metrics::counter!("idic_events_handled_total", "stream" => self.stream.clone(), "group" => self.group.clone())
                    .increment(1);
            }
            Err(e) => {
                metrics::counter!("idic_events_failed_total", "stream" => self.stream.clone(), "group" => self.group.clone())
                    .increment(1);
                tracing::warn!(stream = %self.stream, group = %self.group, %event_id, error = ?e, "event handler failed; will retry");
            }
        }
    }

    async fn dead_letter(&self, conn: &mut ConnectionManager, delivery: &Delivery) -> redis::RedisResult<()> {
        tracing::error!(stream = %self.stream, group = %self.group, event_id = %delivery.event_id, "event dead-lettered");
        metrics::counter!("idic_events_dead_lettered_total", "stream" => self.stream.clone()).increment(1);
        redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(self.redis.key(&format!("stream:{}.dead", self.stream)))
            .arg("*")
            .arg("group")
            .arg(&self.group)
            .arg(EVENT_ID_FIELD)
            .arg(&delivery.event_id)
            .arg(PAYLOAD_FIELD)
            .arg(delivery.payload.as_slice())
            .ignore()
            .cmd("XACK")
            .arg(self.key())
            .arg(&self.group)
            .arg(&delivery.entry_id)
            .ignore()
            .query_async(conn)
            .await
    }
}

fn to_delivery(entry_id: String, map: &HashMap<String, Value>) -> Delivery {
    let bytes = |field: &str| match map.get(field) {
        Some(Value::BulkString(b)) => b.clone(),
        _ => Vec::new(),
    };
    Delivery {
        event_id: String::from_utf8(bytes(EVENT_ID_FIELD)).unwrap_or_default(),
        payload: bytes(PAYLOAD_FIELD),
        entry_id,
    }
}

fn is_group_lost(e: &redis::RedisError) -> bool {
    e.code() == Some("NOGROUP")
}

/// Sleeps `d`; true if shutdown came first.
async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}
