//! `idic bench interaction`: creates bench customers (idempotently), then measures
//! `RecordInteraction` latency and throughput at several concurrencies and
//! `IngestInteractions` rows/s over concurrent streams, beside a raw `COPY` of the same
//! rows into the same table in the same run (rolled back, so it leaves nothing behind).

use std::{
    fmt::Write as _,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use idic_platform::jobs::timestamp;
use idic_proto::{
    common::v1::{Channel, CustomerRef, Identifier, IdentifierKind, Money, customer_ref},
    identification::v1::{self as ident, CreateCustomerRequest},
    interaction::v1::{
        Interaction, InteractionKind, ItemLine, RecordInteractionRequest,
        interaction_service_client::InteractionServiceClient,
    },
};
use rand::{RngExt as _, SeedableRng as _, rngs::Xoshiro256PlusPlus};
use sqlx::Connection as _;
use uuid::Uuid;

use super::{Concurrencies, INGEST_BATCH as BATCH, Run, connect, ingest, split};
use crate::client::{self, ServerArgs};

/// Customers created at once while seeding.
const SEED_CONCURRENCY: usize = 16;

type Client = client::Interaction;

/// Arguments of `idic bench interaction`.
#[derive(Debug, clap::Args)]
pub struct BenchInteractionArgs {
    /// Customers the interactions are spread over, created in identification with fixed
    /// request ids (a re-run creates none again).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    customers: u64,
    /// Rows sent through IngestInteractions (and copied raw), in messages of 1000.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1000..=100_000_000))]
    rows: u64,
    /// Concurrent IngestInteractions streams (and COPY connections).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    streams: u16,
    /// Seconds RecordInteraction runs at each concurrency.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Concurrent RecordInteraction callers, as a comma-separated list of counts.
    #[arg(long, value_name = "LIST", default_value = "1,4,16,64")]
    concurrency: Concurrencies,
    /// HTTP/2 connections the callers share, round-robin.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    connections: u16,
    /// The server's Postgres (the database holding schema `interaction`), for the raw COPY
    /// baseline; without it the baseline is skipped.
    #[arg(long, env = "IDIC_BENCH_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Seeds, warms, measures and prints.
pub async fn run(args: BenchInteractionArgs) -> anyhow::Result<()> {
    let BenchInteractionArgs { customers, rows, streams, duration, concurrency, connections, database_url, server } =
        args;
    let bearer = server.bearer()?;
    let channels = connect(&server, connections).await?;
    let client = |n: usize| {
        InteractionServiceClient::with_interceptor(channels[n % channels.len()].clone(), bearer.clone())
            .max_decoding_message_size(64 << 20)
    };

    let started = Instant::now();
    let customers = Arc::new(seed(&mut server.identification().await?, customers).await?);
    println!("{} bench customers ready in {:.1} s", customers.len(), started.elapsed().as_secs_f64());

    // Every customer once, unmeasured: fills the server's resolution cache.
    let run_id = Uuid::new_v4().simple().to_string();
    let warm: Vec<RecordInteractionRequest> =
        customers.iter().enumerate().map(|(i, c)| row(&format!("{run_id}:warm"), i, c, Utc::now())).collect();
    ingest(vec![client(0)], split(warm, 1)).await.context("warming up")?;

    println!("\nRecordInteraction, {} s per run, {} connection(s)", duration, channels.len());
    println!(
        "{:<14} {:>11} {:>11} {:>9} {:>9} {:>9} {:>8}",
        "scenario", "concurrency", "requests/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"
    );
    for &callers in &concurrency.0 {
        let clients = (0..callers).map(client).collect();
        let run = record(clients, customers.clone(), &run_id, Duration::from_secs(duration)).await;
        let millis = |q: f64| run.latencies.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{:<14} {:>11} {:>11.1} {:>9.3} {:>9.3} {:>9.3} {:>8}",
            "record",
            callers,
            run.rate(),
            millis(0.5),
            millis(0.99),
            millis(0.999),
            run.errors
        );
        if let Some(error) = &run.first_error {
            println!("note: record x{callers}: first error {error}");
        }
    }

    let now = Utc::now();
    let rows: Vec<RecordInteractionRequest> =
        (0..rows as usize).map(|i| row(&format!("{run_id}:ingest"), i, &customers[i % customers.len()], now)).collect();
    let streams = usize::from(streams);
    let copy_data = database_url.as_ref().map(|_| copy_rows(&rows, &customers, now, streams));
    println!("\nIngestInteractions vs COPY, {} rows in messages of {BATCH}, {streams} stream(s)", rows.len());
    let clients = (0..streams).map(client).collect();
    let started = Instant::now();
    let summary = ingest(clients, split(rows, streams)).await?;
    let ingest_elapsed = started.elapsed();
    let ingest_rate = summary.created as f64 / ingest_elapsed.as_secs_f64();
    println!(
        "ingest  {:>10} rows created in {:>7.2} s  {:>9.0} rows/s  (duplicates {}, rejected {})",
        summary.created,
        ingest_elapsed.as_secs_f64(),
        ingest_rate,
        summary.duplicates,
        summary.rejected
    );
    if let Some(error) = summary.errors.first() {
        println!("note: first rejected row {} {}: {}", error.row_id, error.field, error.description);
    }
    if let (Some(url), Some(data)) = (database_url, copy_data) {
        let (copied, elapsed) = copy(&url, data).await?;
        let copy_rate = copied as f64 / elapsed.as_secs_f64();
        println!(
            "copy    {copied:>10} rows copied  in {:>7.2} s  {copy_rate:>9.0} rows/s  (rolled back)",
            elapsed.as_secs_f64()
        );
        println!("ingest / copy: {:.1}%", 100.0 * ingest_rate / copy_rate);
    }
    Ok(())
}

/// Creates the bench customers (each with a fixed request id, so a re-run answers the
/// same customers) and answers their ids.
async fn seed(identification: &mut client::Identification, count: u64) -> anyhow::Result<Vec<String>> {
    let calls = (0..count).map(|i| {
        let mut identification = identification.clone();
        async move {
            let customer = ident::Customer {
                kind: ident::CustomerKind::Person as i32,
                given_name: format!("Bench{i}"),
                identifiers: vec![Identifier {
                    kind: IdentifierKind::Email as i32,
                    value: format!("loadrun.{i}@idic-bench.co.uk"),
                    namespace: String::new(),
                }],
                ..Default::default()
            };
            let request = CreateCustomerRequest {
                customer: Some(customer),
                provenance: None,
                request_id: format!("bench-interaction-customer-{i}"),
            };
            let created = identification.create_customer(request).await.map_err(|s| client::explain(&s))?;
            Ok::<_, anyhow::Error>(created.into_inner().name.trim_start_matches("customers/").to_owned())
        }
    });
    futures::stream::iter(calls).buffered(SEED_CONCURRENCY).collect::<Vec<_>>().await.into_iter().collect()
}

fn eur(amount_minor: i64) -> Option<Money> {
    Some(Money { currency_code: "EUR".into(), amount_minor })
}

/// The `i`th bench row: a web purchase of two lines by `customer`, within the last 30 days.
fn row(prefix: &str, i: usize, customer: &str, now: DateTime<Utc>) -> RecordInteractionRequest {
    let at = now - chrono::Duration::seconds((i as i64 * 7919) % (30 * 86_400));
    let line = |product: String, quantity: f64, unit: i64| ItemLine {
        product_id: product,
        category: "jeans".into(),
        quantity,
        unit_price: eur(unit),
        ..Default::default()
    };
    RecordInteractionRequest {
        request_id: format!("{prefix}:{i}"),
        customer: Some(CustomerRef { r#ref: Some(customer_ref::Ref::CustomerId(customer.to_owned())) }),
        interaction: Some(Interaction {
            channel: Channel::Web as i32,
            kind: InteractionKind::Purchase as i32,
            occur_time: Some(timestamp(at)),
            items: vec![line(format!("sku-{}", i % 5000), 2.0, 4999), line(format!("sku-{}", i % 777), 1.0, 1999)],
            source: "bench".into(),
            source_reference: format!("order-{i}"),
            ..Default::default()
        }),
        create_missing_customer: false,
        enforce_contact_policy: false,
    }
}

/// Records purchases back to back from each caller for `duration`.
async fn record(clients: Vec<Client>, customers: Arc<Vec<String>>, run_id: &str, duration: Duration) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, mut client)| {
            let (customers, prefix) = (customers.clone(), format!("{run_id}:record:{n}"));
            tokio::spawn(async move {
                let mut run = Run::new();
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(n as u64);
                let mut i = 0;
                while Instant::now() < deadline {
                    let customer = &customers[rng.random_range(0..customers.len())];
                    let request = row(&prefix, i, customer, Utc::now());
                    i += 1;
                    let sent = Instant::now();
                    let answer = client.record_interaction(request).await;
                    run.record(sent, answer.map(|_| true));
                }
                run
            })
        })
        .collect();
    Run::gather(tasks, started).await
}

/// The columns the raw COPY fills, as the server's insert does.
const COPY: &str = "COPY interaction.interactions (id, occurred_at, customer_id, recorded_customer_id, channel, \
     kind, direction, purpose, recorded_at, request_id, currency, total_minor, items, campaign, offer, \
     offer_response, complaint, related_interaction, duration_ms, handled_by, source, source_reference, note, \
     attributes) FROM STDIN";

/// The same rows as COPY text, one chunk per stream.
fn copy_rows(
    rows: &[RecordInteractionRequest],
    customers: &[String],
    now: DateTime<Utc>,
    streams: usize,
) -> Vec<String> {
    let recorded = now.to_rfc3339();
    let mut chunks = vec![String::new(); streams];
    for (i, r) in rows.iter().enumerate() {
        let text = &mut chunks[(i / BATCH) % streams];
        let Some(interaction) = &r.interaction else { continue };
        let at = interaction
            .occur_time
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, t.nanos as u32))
            .unwrap_or(now);
        let customer = &customers[i % customers.len()];
        let items: Vec<String> = interaction
            .items
            .iter()
            .map(|l| {
                let unit = l.unit_price.as_ref().map_or(0, |m| m.amount_minor);
                let line = (l.quantity * unit as f64).round() as i64;
                format!(r#"{{"p":"{}","g":"{}","q":{:?},"u":{unit},"l":{line}}}"#, l.product_id, l.category, l.quantity)
            })
            .collect();
        let total = 2 * 4999 + 1999;
        let _ = writeln!(
            text,
            "{}\t{}\t{customer}\t{customer}\t{}\t{}\t1\t0\t{recorded}\t{}-copy\tEUR\t{total}\t[{}]\t\t\t0\t\t\t\\N\t\t{}\t{}\t\t\\N",
            Uuid::now_v7(),
            at.to_rfc3339(),
            interaction.channel,
            interaction.kind,
            r.request_id,
            items.join(","),
            interaction.source,
            interaction.source_reference,
        );
    }
    chunks
}

/// COPYs `chunks` (one connection each, concurrently) inside transactions that are rolled
/// back; answers the rows copied and the time the COPYs took.
async fn copy(url: &str, chunks: Vec<String>) -> anyhow::Result<(u64, Duration)> {
    let mut connections = Vec::new();
    for _ in &chunks {
        let mut conn = sqlx::PgConnection::connect(url).await.context("--database-url")?;
        sqlx::query("BEGIN").execute(&mut conn).await?;
        connections.push(conn);
    }
    let started = Instant::now();
    let copies = connections.iter_mut().zip(chunks).map(|(conn, data)| async move {
        let mut copy = conn.copy_in_raw(COPY).await?;
        copy.send(data.as_bytes()).await?;
        copy.finish().await
    });
    let copied: Vec<sqlx::Result<u64>> = futures::future::join_all(copies).await;
    let elapsed = started.elapsed();
    for mut conn in connections {
        sqlx::query("ROLLBACK").execute(&mut conn).await?;
    }
    let mut total = 0;
    for c in copied {
        total += c.context("COPY into interaction.interactions")?;
    }
    Ok((total, elapsed))
}
