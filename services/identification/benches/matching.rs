//! Speed of the matcher's hot paths on a generated customer file (140,000 records
//! with duplicates): scoring candidate pairs (comparison and weights) on one and on
//! two threads, and finding the best candidate for one contact in memory.
//!
//! `cargo bench -p idic-identification --bench matching`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use idic_identification::domain::matching::blocking::Population;
use idic_identification::domain::matching::engine::Matcher;
use idic_identification::domain::matching::record::{MatchRecord, Subject};
#[path = "../tests/support/generated.rs"]
mod generated;

use generated::subject;
use idic_synth::{Corruption, dedup_file, population};

fn matching(c: &mut Criterion) {
    let people = population(1, 100_000);
    let records = dedup_file(2, &people, 0.3, &Corruption::default());
    let subjects: Vec<Subject> = records.iter().map(subject).collect();
    let mut matcher = Matcher::new(Population::new());
    for s in &subjects {
        matcher.population.insert(MatchRecord::new(s));
    }
    matcher.fit(200);
    let pairs = matcher.population.candidate_pairs();
    eprintln!("{} records, {} candidate pairs", records.len(), pairs.len());

    let mut group = c.benchmark_group("score_pairs");
    group.throughput(Throughput::Elements(pairs.len() as u64));
    group.sample_size(10);
    for threads in [1, 2] {
        group.bench_function(format!("{threads}_threads"), |b| b.iter(|| matcher.score_pairs(&pairs, threads)));
    }
    group.finish();

    let queries: Vec<MatchRecord> = subjects.iter().step_by(97).take(1_000).map(MatchRecord::new).collect();
    let mut group = c.benchmark_group("best_match");
    group.throughput(Throughput::Elements(queries.len() as u64));
    group.bench_function("1000_contacts", |b| {
        b.iter(|| queries.iter().filter(|q| matcher.best_match(q, |_| false).is_some()).count())
    });
    group.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
