//! Benchmarks of the segment rule language at the scale of a whole customer base: parsing a
//! rule, and evaluating the issue's two example rules over 1,000,000 customer metric records
//! (what materialising one segment costs in CPU, the loading from Postgres aside).
//!
//! `cargo bench -p idic-segmentation --bench rules`

use std::hint::black_box;

use chrono::NaiveDate;
use criterion::{Criterion, criterion_group, criterion_main};
use idic_segmentation::domain::{
    rng::SplitMix64,
    rules::{CategoryFigures, CustomerMetrics, Rule, Subject},
    tiers::Tier,
};

const CUSTOMERS: usize = 1_000_000;
const VALUE_RULE: &str = r#"tier = "MVC" and p_alive < 0.5 and days_since_purchase > 60"#;
const NEEDS_RULE: &str = r#"cluster = "family-shopper" and channel_share("web") > 0.5"#;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 23).unwrap_or_default()
}

/// A base shaped like a real one: a fifth never purchased, tiers skewed to the long tail,
/// a few channels and categories per customer.
fn base(n: usize) -> Vec<CustomerMetrics> {
    let mut rng = SplitMix64::new(5);
    let tiers = [Tier::MostValuable, Tier::MostGrowable, Tier::Middle, Tier::LongTail, Tier::LongTail, Tier::BelowZero];
    let clusters = ["family-shopper", "bargain-hunter", "loyal-regular", "occasional"];
    let channels = ["web", "branch", "app", "call_centre"];
    (0..n)
        .map(|_| {
            let purchased = rng.uniform() > 0.2;
            let web = rng.uniform();
            CustomerMetrics {
                last_purchase: purchased.then(|| today() - chrono::Days::new(rng.below(720) as u64)),
                frequency: rng.below(20) as u32,
                monetary: rng.uniform() * 2000.0,
                purchase_count: rng.below(60) as u32,
                total_spend: rng.uniform() * 8000.0,
                p_alive: purchased.then(|| rng.uniform()),
                clv: purchased.then(|| rng.uniform() * 3000.0),
                tier: purchased.then(|| tiers[rng.below(tiers.len())]),
                cluster: purchased.then(|| clusters[rng.below(clusters.len())].to_owned()),
                channel_shares: vec![(channels[0].to_owned(), web), (channels[1 + rng.below(3)].to_owned(), 1.0 - web)],
                categories: vec![CategoryFigures { category: "shoes".to_owned(), spend: 100.0, share: 0.5 }],
                ..CustomerMetrics::default()
            }
        })
        .collect()
}

fn count_matches(rule: &Rule, base: &[CustomerMetrics], today: NaiveDate) -> usize {
    base.iter().filter(|m| rule.matches(&Subject { metrics: m, today })).count()
}

fn rules(c: &mut Criterion) {
    c.bench_function("parse and check the value rule", |b| b.iter(|| Rule::parse(black_box(VALUE_RULE))));

    let customers = base(CUSTOMERS);
    let today = today();
    let mut group = c.benchmark_group("evaluate over 1M customers");
    group.sample_size(10);
    for (name, text) in [("value rule", VALUE_RULE), ("needs rule", NEEDS_RULE)] {
        let rule = Rule::parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        group.bench_function(name, |b| b.iter(|| count_matches(&rule, black_box(&customers), today)));
    }
    group.finish();
}

criterion_group!(benches, rules);
criterion_main!(benches);
