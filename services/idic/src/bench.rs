//! `idic bench identification`: seeds a running server with generated customers through
//! `ImportCustomers`, contacts some of them once, then measures health checks and
//! `ResolveCustomer` (repeat and first contacts) over gRPC at several concurrencies and
//! prints throughput and latency percentiles as a table.
//! `idic bench interaction` lives in [`interaction`], `idic bench customization` in
//! [`customization`].
//!
//! What the benches share lives here: their connections ([`connect`]), the `--concurrency`
//! list, the measurement of one scenario ([`Run`], [`measure`]), the table of every scenario
//! at every concurrency after `empty`, the health check that is their ceiling
//! ([`measure_table`]), seeding generated customers ([`seed`]) and streaming interactions
//! ([`ingest`]).

pub mod customization;
pub mod interaction;

use std::{
    fmt,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use idic_platform::client::Bearer;
use idic_proto::{
    common::v1::{BulkSummary, Identifier, IdentifierKind},
    identification::v1::{
        self as pb, ImportCustomersResponse, ImportRow, MatchKind, ResolveCustomerRequest,
        identification_service_client::IdentificationServiceClient,
    },
    interaction::v1::{IngestInteractionsRequest, RecordInteractionRequest},
};
use idic_synth::Person;
use indicatif::ProgressStyle;
use rand::{RngExt as _, SeedableRng as _, rngs::Xoshiro256PlusPlus};
use tokio::sync::mpsc;
use tonic::{Status, service::interceptor::InterceptedService, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{
    client::{self, Identification, ServerArgs},
    import::{self, Batch, MAX_BATCH},
};

/// Seeded rows come from this source; with the row ids (each person's position in the
/// generated population) it makes a re-run with the same `--customers` import nothing new.
const SOURCE: &str = "bench";
/// The population's seed: the same people on every run.
const POPULATION_SEED: u64 = 20_240_601;
/// Latencies above this (one minute, in microseconds) are recorded as this.
const MAX_LATENCY_MICROS: u64 = 60_000_000;
/// Rows per IngestInteractions message (the contract's maximum).
const INGEST_BATCH: usize = 1000;

/// Arguments of `idic bench identification`.
#[derive(Debug, clap::Args)]
pub struct BenchIdentificationArgs {
    /// Generated customers to seed through ImportCustomers (source "bench"); those seeded
    /// by an earlier run with the same number are not imported again.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    customers: u64,
    /// Seeded customers who contact once before the measurements (by email, then by name,
    /// birth date and address): `resolve_known` and `resolve_fuzzy` measure their repeat
    /// contacts; `resolve_first` measures first contacts of the others.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    hot: u64,
    /// Seconds each scenario runs at each concurrency.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Concurrent callers, as a comma-separated list of counts; each scenario runs once per
    /// count, each caller issuing requests back to back.
    #[arg(long, value_name = "LIST", default_value = "1,4,16,64")]
    concurrency: Concurrencies,
    /// HTTP/2 connections the callers share, round-robin. One connection caps the health
    /// check well below what the server answers on several, so the default is 4.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    connections: u16,
    #[command(flatten)]
    server: ServerArgs,
}

/// `--concurrency`: one or more positive counts.
#[derive(Debug, Clone)]
struct Concurrencies(Vec<usize>);

impl FromStr for Concurrencies {
    type Err = String;

    fn from_str(list: &str) -> Result<Self, String> {
        let counts = list
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| c.parse::<usize>().ok().filter(|n| (1..=10_000).contains(n)).ok_or(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|c| format!("{c:?} is not a count of callers from 1 to 10000"))?;
        if counts.is_empty() {
            return Err("give one or more counts of callers, such as 1,4,16,64".to_owned());
        }
        Ok(Self(counts))
    }
}

/// Opens `count` HTTP/2 connections to the server, for callers to share round-robin.
async fn connect(server: &ServerArgs, count: u16) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        channels.push(server.connect().await?);
    }
    Ok(channels)
}

/// A scenario of a bench, measured after `empty` at every concurrency by [`measure_table`].
trait Scenario: Copy {
    /// One concurrent caller of the scenario.
    type Caller: Call;

    /// Its name in the table.
    fn name(self) -> &'static str;

    /// What its answers should be, ending the note "N of M answers were not …" printed
    /// when some were not.
    fn expected(self) -> String;
}

/// One concurrent caller: issues the calls of its scenario one after the other.
trait Call: Send + 'static {
    /// Makes one call; `Ok(false)` when it was answered, but not as the scenario expects
    /// (counted apart, not as an error).
    fn call(&mut self) -> impl Future<Output = Result<bool, Status>> + Send;
}

/// The `empty` scenario's caller: the `grpc.health.v1` health check, the server stack
/// without any service work, the ceiling of every other scenario.
struct Health(HealthClient<InterceptedService<Channel, Bearer>>);

impl Call for Health {
    async fn call(&mut self) -> Result<bool, Status> {
        self.0.check(HealthCheckRequest { service: String::new() }).await?;
        Ok(true)
    }
}

/// Measures `empty` and then each of `scenarios`, each at every concurrency for `duration`
/// with callers made by `caller` (from the scenario, the connection it uses, round-robin
/// over `channels`, and its number, which seeds its randomness), and prints the table, each
/// row as its run ends, and then a note for each run that had errors or unexpected answers.
async fn measure_table<S: Scenario>(
    channels: &[Channel],
    bearer: &Bearer,
    scenarios: &[S],
    concurrency: &Concurrencies,
    duration: Duration,
    mut caller: impl FnMut(S, Channel, u64) -> S::Caller,
) {
    let channel = |n: usize| channels[n % channels.len()].clone();
    println!("{}", header());
    let mut notes = Vec::new();
    let mut empty_rates = Vec::with_capacity(concurrency.0.len());
    for &callers in &concurrency.0 {
        let health = (0..callers).map(|n| Health(HealthClient::with_interceptor(channel(n), bearer.clone()))).collect();
        let run = measure(health, duration).await;
        empty_rates.push(run.rate());
        println!("{}", Row { name: "empty", callers, run: &run, of_empty: None });
        notes.extend(run.notes("empty", callers, "answered"));
    }
    for &scenario in scenarios {
        for (&callers, &empty) in concurrency.0.iter().zip(&empty_rates) {
            let run = measure((0..callers).map(|n| caller(scenario, channel(n), n as u64)).collect(), duration).await;
            let of_empty = (empty > 0.0).then(|| run.rate() / empty);
            println!("{}", Row { name: scenario.name(), callers, run: &run, of_empty });
            notes.extend(run.notes(scenario.name(), callers, &scenario.expected()));
        }
    }
    for note in notes {
        println!("note: {note}");
    }
}

/// What `idic bench identification` measures after `empty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolve {
    /// ResolveCustomer with a seeded customer's exact email, repeating a contact made
    /// before the measurement: answered from the caches.
    Known,
    /// ResolveCustomer with names, birth date and postal address only (the matcher),
    /// repeating a contact made before the measurement.
    Fuzzy,
    /// ResolveCustomer with the email of a customer outside the warmed ones: a first
    /// contact, written.
    First,
}

impl Resolve {
    const ALL: [Self; 3] = [Self::Known, Self::Fuzzy, Self::First];

    /// The match a resolve of this scenario should answer with.
    fn expected_match(self) -> MatchKind {
        match self {
            Self::Known | Self::First => MatchKind::Exact,
            Self::Fuzzy => MatchKind::Probable,
        }
    }
}

impl Scenario for Resolve {
    type Caller = Caller;

    fn name(self) -> &'static str {
        match self {
            Self::Known => "resolve_known",
            Self::Fuzzy => "resolve_fuzzy",
            Self::First => "resolve_first",
        }
    }

    fn expected(self) -> String {
        format!("{} (a customer was created instead)", self.expected_match().as_str_name())
    }
}

/// Seeds, measures every scenario at every concurrency, and prints the table.
pub async fn identification(args: BenchIdentificationArgs) -> anyhow::Result<()> {
    let BenchIdentificationArgs { customers, hot, duration, concurrency, connections, server } = args;
    let count = usize::try_from(customers).context("--customers")?;
    let hot = usize::try_from(hot).context("--hot")?.min(count);
    let people = Arc::new(population(count).await?);

    let mut identification = server.identification().await?;
    seed(&mut identification, &people, SOURCE).await?;

    let bearer = server.bearer()?;
    let channels = connect(&server, connections).await?;
    warm(&channels, &bearer, &people, hot).await?;
    let duration = Duration::from_secs(duration);
    println!(
        "\n{} s per run, {} connection(s), {} seeded customers, {hot} of them contacted before",
        duration.as_secs(),
        channels.len(),
        people.len()
    );
    measure_table(&channels, &bearer, &Resolve::ALL, &concurrency, duration, |scenario, channel, n| {
        Caller::new(scenario, channel, bearer.clone(), people.clone(), hot, n)
    })
    .await;
    Ok(())
}

/// The first `count` people of the generated population (the same on every run).
async fn population(count: usize) -> anyhow::Result<Vec<Person>> {
    tokio::task::spawn_blocking(move || idic_synth::population(POPULATION_SEED, count).people)
        .await
        .context("generating the customers")
}

/// The first contacts of the `hot` first people, by email and then by name, birth date
/// and address, made by 16 callers, so that the measured resolves repeat them.
async fn warm(channels: &[Channel], bearer: &Bearer, people: &Arc<Vec<Person>>, hot: usize) -> anyhow::Result<()> {
    const CALLERS: usize = 16;
    let bar = client::progress_bar(
        hot as u64,
        ProgressStyle::with_template("first contacts {spinner} [{elapsed_precise}] {wide_bar} {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|n| {
            let channel = channels[n % channels.len()].clone();
            let mut caller = Caller::new(Resolve::Known, channel, bearer.clone(), people.clone(), hot, 0);
            let bar = bar.clone();
            tokio::spawn(async move {
                for index in (n..hot).step_by(CALLERS) {
                    caller.resolve(Resolve::Known, index).await?;
                    caller.resolve(Resolve::Fuzzy, index).await?;
                    bar.inc(1);
                }
                Ok::<_, Status>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.context("a warming caller failed")?.map_err(|status| client::explain(&status))?;
    }
    bar.finish_and_clear();
    println!("{hot} customers contacted by email and by name in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Imports the people not imported by an earlier run from `source` (each row's id its
/// position) and prints what became of them and how fast they went in.
async fn seed(
    identification: &mut Identification,
    people: &Arc<Vec<Person>>,
    source: &'static str,
) -> anyhow::Result<()> {
    let total = people.len() as u64;
    let bar = client::progress_bar(
        total,
        ProgressStyle::with_template("seeding {spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (tx, rx) = mpsc::channel::<Batch>(2);
    let producing = {
        let people = people.clone();
        tokio::task::spawn_blocking(move || {
            for (start, chunk) in people.chunks(usize::from(MAX_BATCH)).enumerate() {
                let first = start * usize::from(MAX_BATCH);
                let rows = chunk.iter().enumerate().map(|(i, person)| import_row(first + i, person)).collect();
                let done = (first + chunk.len()) as u64;
                if tx.blocking_send(Batch::new(source, rows, done, done)).is_err() {
                    return;
                }
            }
        })
    };
    let started = Instant::now();
    let ((answer, sent), produced) = tokio::join!(import::upload(identification, rx, &bar), producing);
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    produced.context("generating the rows")?;
    let answer = answer.map_err(|status| {
        client::explain(&status).context(format!(
            "seeding stopped after sending {} rows; the rows the server finished are kept: run again to resume",
            sent.rows
        ))
    })?;
    print!("{}", Seeded { answer, elapsed, source });
    Ok(())
}
/// The row of the `index`th person: names, birth date, email, mobile phone and address.
/// Household landlines are left out: a shared landline would link the household's
/// members into one customer.
fn import_row(index: usize, person: &Person) -> ImportRow {
    let mut customer = person_with(person, vec![identifier(IdentifierKind::Email, &person.email)]);
    if person.phone.starts_with("+447") {
        customer.identifiers.push(identifier(IdentifierKind::Phone, &person.phone));
    }
    customer.identifiers.push(identifier(IdentifierKind::PostalAddress, &address(person)));
    ImportRow { row_id: index.to_string(), customer: Some(customer), facts: Vec::new(), channel: 0, observe_time: None }
}

fn person_with(person: &Person, identifiers: Vec<Identifier>) -> pb::Customer {
    let (year, month, day) = person.birth_date;
    pb::Customer {
        kind: pb::CustomerKind::Person as i32,
        given_name: person.given_name.clone(),
        family_name: person.family_name.clone(),
        birth_date: Some(pb::Date { year, month: month as i32, day: day as i32 }),
        identifiers,
        ..Default::default()
    }
}

fn identifier(kind: IdentifierKind, value: &str) -> Identifier {
    Identifier { kind: kind as i32, value: value.to_owned(), namespace: String::new() }
}

fn address(person: &Person) -> String {
    format!("{} {}, {}, {}", person.house_number, person.street, person.postcode, person.city)
}

/// The seeding summary.
struct Seeded {
    answer: ImportCustomersResponse,
    elapsed: Duration,
    source: &'static str,
}

impl fmt::Display for Seeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ImportCustomersResponse { summary, linked_exact, linked_probable, review_candidates } = &self.answer;
        let BulkSummary { received, created, updated, duplicates, rejected, errors } =
            summary.clone().unwrap_or_default();
        let seconds = self.elapsed.as_secs_f64();
        let rate = received as f64 / seconds.max(0.001);
        writeln!(f, "seeded {received} customers as source {} in {seconds:.1} s ({rate:.0} rows/s)", self.source)?;
        writeln!(f, "  created            {created:>9}")?;
        writeln!(f, "  updated            {updated:>9}  (linked exact {linked_exact}, probable {linked_probable})")?;
        writeln!(f, "  duplicates         {duplicates:>9}  (seeded by an earlier run)")?;
        writeln!(f, "  rejected           {rejected:>9}")?;
        for error in errors.iter().take(5) {
            writeln!(f, "    row {:<8} {}  {}", error.row_id, error.field, error.description)?;
        }
        writeln!(f, "  review candidates  {review_candidates:>9}")
    }
}

/// One concurrent caller of `idic bench identification`: its scenario, its client, the
/// seeded people and its own random stream.
struct Caller {
    scenario: Resolve,
    identification: Identification,
    people: Arc<Vec<Person>>,
    hot: usize,
    rng: Xoshiro256PlusPlus,
}

impl Caller {
    fn new(
        scenario: Resolve,
        channel: Channel,
        bearer: Bearer,
        people: Arc<Vec<Person>>,
        hot: usize,
        stream: u64,
    ) -> Self {
        Self {
            scenario,
            identification: IdentificationServiceClient::with_interceptor(channel, bearer),
            people,
            hot,
            rng: Xoshiro256PlusPlus::seed_from_u64(stream),
        }
    }

    /// Resolves the `index`th person as `scenario` presents them.
    async fn resolve(&mut self, scenario: Resolve, index: usize) -> Result<MatchKind, Status> {
        let person = &self.people[index];
        let customer = match scenario {
            // Only the email: the exact path, not the matcher.
            Resolve::Known | Resolve::First => pb::Customer {
                kind: pb::CustomerKind::Person as i32,
                identifiers: vec![identifier(IdentifierKind::Email, &person.email)],
                ..Default::default()
            },
            // Postal addresses never decide exactly, so this goes to the matcher.
            Resolve::Fuzzy => person_with(person, vec![identifier(IdentifierKind::PostalAddress, &address(person))]),
        };
        let request = ResolveCustomerRequest { customer: Some(customer), provenance: None, request_id: String::new() };
        let answer = self.identification.resolve_customer(request).await?.into_inner();
        Ok(answer.match_kind())
    }
}

impl Call for Caller {
    /// Resolves a random seeded person: one of the warmed ones, or of the others for first
    /// contacts; the answer is expected when it matched as the scenario should.
    async fn call(&mut self) -> Result<bool, Status> {
        let index = match self.scenario {
            Resolve::First => {
                let cold =
                    if self.hot < self.people.len() { self.hot..self.people.len() } else { 0..self.people.len() };
                self.rng.random_range(cold)
            }
            Resolve::Known | Resolve::Fuzzy => self.rng.random_range(0..self.hot.max(1)),
        };
        let matched = self.resolve(self.scenario, index).await?;
        Ok(matched == self.scenario.expected_match())
    }
}

/// What one scenario at one concurrency did.
struct Run {
    latencies: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    /// Answers that were not what the scenario expects (not errors).
    unexpected: u64,
    elapsed: Duration,
}

impl Run {
    fn new() -> Self {
        Self { latencies: latency_histogram(), errors: 0, first_error: None, unexpected: 0, elapsed: Duration::ZERO }
    }

    /// Successful requests per second.
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(0.001)
    }

    /// The runs of the callers' `tasks` added together, timed from `started`.
    async fn gather(tasks: Vec<tokio::task::JoinHandle<Self>>, started: Instant) -> Self {
        let mut total = Self::new();
        for task in tasks {
            match task.await {
                Ok(run) => total.add(run),
                Err(e) => {
                    total.errors += 1;
                    total.first_error.get_or_insert_with(|| format!("a caller failed: {e}"));
                }
            }
        }
        total.elapsed = started.elapsed();
        total
    }

    fn add(&mut self, other: Self) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latencies.add(&other.latencies);
        self.errors += other.errors;
        self.unexpected += other.unexpected;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Records the outcome of one call sent at `sent`.
    fn record(&mut self, sent: Instant, answer: Result<bool, Status>) {
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        match answer {
            Ok(expected) => {
                self.latencies.saturating_record(micros.clamp(1, MAX_LATENCY_MICROS));
                self.unexpected += u64::from(!expected);
            }
            Err(status) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| client::explain(&status).to_string());
            }
        }
    }

    /// The notes on this run of `name` with `callers`: its first error, and how many
    /// answers were not `expected`.
    fn notes(&self, name: &str, callers: usize, expected: &str) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(error) = &self.first_error {
            notes.push(format!("{name} x{callers}: first error {error}"));
        }
        if self.unexpected > 0 {
            notes.push(format!(
                "{name} x{callers}: {} of {} answers were not {expected}",
                self.unexpected,
                self.latencies.len()
            ));
        }
        notes
    }
}

fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3).expect("1 µs to a minute at 3 significant digits is valid")
}

/// Runs each of `callers` in its own task for `duration`, issuing calls back to back, and
/// gathers their latencies.
async fn measure<C: Call>(callers: Vec<C>, duration: Duration) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = callers
        .into_iter()
        .map(|mut caller| {
            tokio::spawn(async move {
                let mut run = Run::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let answer = caller.call().await;
                    run.record(sent, answer);
                }
                run
            })
        })
        .collect();
    Run::gather(tasks, started).await
}

/// The table's header line; [`Row`] lines up under it.
fn header() -> String {
    format!(
        "{:<17} {:>11} {:>11} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "scenario", "concurrency", "requests/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "of empty"
    )
}

/// One line of the table.
struct Row<'a> {
    name: &'static str,
    callers: usize,
    run: &'a Run,
    of_empty: Option<f64>,
}

impl fmt::Display for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = |quantile: f64| self.run.latencies.value_at_quantile(quantile) as f64 / 1000.0;
        let of_empty = self.of_empty.map_or_else(|| "-".to_owned(), |share| format!("{:.1}%", share * 100.0));
        write!(
            f,
            "{:<17} {:>11} {:>11.1} {:>9.3} {:>9.3} {:>9.3} {:>8} {:>9}",
            self.name,
            self.callers,
            self.run.rate(),
            millis(0.5),
            millis(0.99),
            millis(0.999),
            self.run.errors,
            of_empty
        )
    }
}

/// `rows` in messages of [`INGEST_BATCH`], dealt round-robin over `streams` streams.
fn split(rows: Vec<RecordInteractionRequest>, streams: usize) -> Vec<Vec<IngestInteractionsRequest>> {
    let mut out: Vec<Vec<IngestInteractionsRequest>> = (0..streams).map(|_| Vec::new()).collect();
    let mut rows = rows.into_iter().peekable();
    let mut n = 0;
    while rows.peek().is_some() {
        let interactions: Vec<_> = rows.by_ref().take(INGEST_BATCH).collect();
        out[n % streams].push(IngestInteractionsRequest { interactions });
        n += 1;
    }
    out
}

/// Sends each stream's messages through IngestInteractions on its own client, concurrently;
/// answers the summed counts.
async fn ingest(
    clients: Vec<client::Interaction>,
    streams: Vec<Vec<IngestInteractionsRequest>>,
) -> anyhow::Result<BulkSummary> {
    let tasks: Vec<_> = clients
        .into_iter()
        .zip(streams)
        .map(|(mut client, messages)| {
            tokio::spawn(async move { client.ingest_interactions(tokio_stream::iter(messages)).await })
        })
        .collect();
    let mut total = BulkSummary::default();
    for task in tasks {
        let answer = task.await.context("an ingest stream")?.map_err(|s| client::explain(&s))?.into_inner();
        let summary = answer.summary.unwrap_or_default();
        total.received += summary.received;
        total.created += summary.created;
        total.duplicates += summary.duplicates;
        total.rejected += summary.rejected;
        total.errors.extend(summary.errors);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_lists_are_positive_counts_and_never_empty() {
        assert_eq!("1,4, 16,64".parse::<Concurrencies>().map(|c| c.0), Ok(vec![1, 4, 16, 64]));
        assert!("".parse::<Concurrencies>().is_err());
        assert!(",".parse::<Concurrencies>().is_err());
        assert!("1,0".parse::<Concurrencies>().expect_err("zero callers").contains("\"0\""));
        assert!("two".parse::<Concurrencies>().is_err());
    }

    #[test]
    fn a_row_shows_rate_percentiles_errors_and_the_share_of_empty() {
        let mut run = Run::new();
        for micros in [500, 1000, 1500, 2000] {
            run.latencies.record(micros).expect("in bounds");
        }
        run.elapsed = Duration::from_secs(2);
        let row = Row { name: "resolve_known", callers: 4, run: &run, of_empty: Some(0.25) }.to_string();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells, ["resolve_known", "4", "2.0", "1.000", "2.000", "2.000", "0", "25.0%"]);
    }

    #[test]
    fn notes_name_the_first_error_and_the_unexpected_answers() {
        let mut run = Run::new();
        let sent = Instant::now();
        run.record(sent, Ok(true));
        run.record(sent, Ok(false));
        run.record(sent, Err(Status::unavailable("down")));
        assert_eq!((run.latencies.len(), run.unexpected, run.errors), (2, 1, 1));
        let notes = run.notes("recommend_basket", 4, "from the basket");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("recommend_basket x4: first error Unavailable: down"), "{notes:?}");
        assert_eq!(notes[1], "recommend_basket x4: 1 of 2 answers were not from the basket");
        assert!(Run::new().notes("empty", 1, "answered").is_empty());
    }
}
