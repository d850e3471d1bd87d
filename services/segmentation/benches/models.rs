//! Benchmarks of the segmentation models at the scale of a whole customer base: BG/NBD,
//! Pareto/NBD and Gamma-Gamma fits on CDNOW and BG/NBD on a simulated 100,000-customer base,
//! lifetime value for that base, and k-means on 100,000 customers × 12 features (one k, and
//! k chosen by silhouette).
//!
//! `cargo bench -p idic-segmentation --bench models`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use idic_segmentation::domain::{
    bgnbd::BgNbd,
    clv::{ClvSettings, Margin, lifetime_value},
    gamma_gamma::{GammaGamma, SpendHistory},
    history::RepeatHistory,
    kmeans::{FeatureMatrix, KChoice, KMeansSettings, cluster, kmeans},
    pareto_nbd::ParetoNbd,
    rng::SplitMix64,
};

#[path = "../tests/reference/mod.rs"]
mod reference;

fn cdnow() -> (Vec<RepeatHistory>, Vec<SpendHistory>) {
    let mut histories = Vec::new();
    let mut spends = Vec::new();
    for line in reference::reference_file("cdnow_customers_summary_with_transactions.csv")
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
    {
        let f: Vec<f64> = line.split(',').map(|v| v.parse().unwrap_or(f64::NAN)).collect();
        let Ok(h) = RepeatHistory::new(f[1] as u32, f[2], f[3]) else { continue };
        histories.push(h);
        if let Ok(s) = SpendHistory::new(f[1] as u32, f[4]) {
            spends.push(s);
        }
    }
    (histories, spends)
}

fn simulated_base() -> Vec<RepeatHistory> {
    let truth = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
    truth.simulate(100_000, 13.0..=104.0, &mut SplitMix64::new(2005))
}

/// 100,000 customers × 12 features around 8 behaviour profiles.
fn behaviour_matrix() -> FeatureMatrix {
    let mut rng = SplitMix64::new(12);
    let centres: Vec<Vec<f64>> = (0..8).map(|_| (0..12).map(|_| rng.normal() * 3.0).collect()).collect();
    let rows: Vec<Vec<f64>> = (0..100_000).map(|i| centres[i % 8].iter().map(|c| c + rng.normal()).collect()).collect();
    let names = (0..12).map(|j| format!("feature_{j}")).collect();
    FeatureMatrix::new(names, &rows).unwrap_or_else(|e| panic!("{e}"))
}

fn fits(c: &mut Criterion) {
    let (histories, spends) = cdnow();
    let base = simulated_base();
    let mut group = c.benchmark_group("fit");
    group.sample_size(10);
    group.bench_function("bgnbd_cdnow_2357", |b| b.iter(|| BgNbd::fit(black_box(&histories))));
    group.bench_function("pareto_nbd_cdnow_2357", |b| b.iter(|| ParetoNbd::fit(black_box(&histories))));
    group.bench_function("gamma_gamma_cdnow_946", |b| b.iter(|| GammaGamma::fit(black_box(&spends))));
    group.bench_function("bgnbd_synthetic_100k", |b| b.iter(|| BgNbd::fit(black_box(&base))));
    group.finish();
}

fn scoring(c: &mut Criterion) {
    let base = simulated_base();
    let model = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
    let settings = ClvSettings::yearly_monthly(Margin::new(0.3).unwrap_or_else(|e| panic!("{e}")));
    let mut group = c.benchmark_group("score");
    group.sample_size(10);
    group.bench_function("clv_12_months_100k", |b| {
        b.iter(|| base.iter().map(|h| lifetime_value(&model, h, 35.0, &settings)).sum::<f64>())
    });
    group.finish();
}

fn clustering(c: &mut Criterion) {
    let m = behaviour_matrix();
    let settings = KMeansSettings { seed: 1, restarts: 1, ..KMeansSettings::default() };
    let mut group = c.benchmark_group("kmeans");
    group.sample_size(10);
    group.bench_function("100k_x_12_k8_one_seeding", |b| b.iter(|| kmeans(black_box(&m), 8, &settings)));
    group.bench_function("100k_x_12_choose_k_2_to_8_one_seeding_each", |b| {
        b.iter(|| cluster(black_box(&m), KChoice::BestSilhouette { min: 2, max: 8 }, &settings))
    });
    group.finish();
}

criterion_group!(benches, fits, scoring, clustering);
criterion_main!(benches);
