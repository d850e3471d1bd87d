//! The matcher's part of cleansing at scale, timed phase by phase on one generated
//! file (default 1,000,000 records; `IDIC_BENCH_RECORDS` changes it): building the
//! in-memory index, fitting the model, enumerating and scoring every candidate pair
//! on two threads, clustering. Prints the timings, the index's resident memory and
//! the pairwise accuracy.
//! (The database part of a cleansing job, merging, is not included.)
//!
//! `cargo bench -p idic-identification --bench cleanse_scale`

#[path = "../tests/support/generated.rs"]
mod generated;
#[path = "../tests/support/report.rs"]
mod report;

use std::time::Instant;

use generated::subject;
use idic_identification::domain::matching::blocking::Population;
use idic_identification::domain::matching::engine::{DedupThresholds, Matcher};
use idic_identification::domain::matching::record::MatchRecord;
use idic_synth::{Corruption, dedup_file, eval, population};

fn main() {
    let records: usize = std::env::var("IDIC_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    // A duplicate rate of 0.3 adds about 0.38 rows per person.
    let people = population(7, (records as f64 / 1.38) as usize);
    let file = dedup_file(8, &people, 0.3, &Corruption::default());

    let resident_before = resident_mib();
    let started = Instant::now();
    let mut matcher = Matcher::new(Population::new());
    for row in &file {
        matcher.population.insert(MatchRecord::new(&subject(row)));
    }
    let indexed = started.elapsed();
    let index_mib = resident_mib() - resident_before;

    let fit_started = Instant::now();
    let fit = matcher.fit(200);
    let fitted = fit_started.elapsed();

    let dedup_started = Instant::now();
    let dedup = matcher.deduplicate(DedupThresholds::default(), 2, |_, _| false);
    let deduplicated = dedup_started.elapsed();

    let truth: Vec<u64> = file.iter().map(|r| r.entity_id).collect();
    let predicted = report::cluster_labels(&dedup.clusters, file.len());
    let scores = eval::pairwise_from_clusters(&truth, &predicted);
    println!("records                 {}", file.len());
    println!("index built             {:>8.2} s  ({index_mib:.0} MiB resident)", indexed.as_secs_f64());
    println!(
        "model fitted            {:>8.2} s  (EM converged: {})",
        fitted.as_secs_f64(),
        fit.as_ref().is_some_and(|f| f.converged)
    );
    println!(
        "pairs scored, clustered {:>8.2} s  ({} candidate pairs, {} clusters)",
        deduplicated.as_secs_f64(),
        dedup.pairs_scored,
        dedup.clusters.len()
    );
    println!("total                   {:>8.2} s", started.elapsed().as_secs_f64());
    println!("pairwise {}", report::scores_line(&scores));
}

/// This process's resident memory in MiB (Linux; 0 elsewhere).
fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}
