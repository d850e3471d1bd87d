//! Benchmarks of the recommender at the scale of a whole shop: retraining the neighbour lists on
//! 1,000,000 interactions of 100,000 customers × 10,000 items (a seeded synthetic log with
//! co-purchase structure), and recommendations per second for one customer with a viewed item
//! and a basket.
//!
//! `cargo bench -p idic-customization --bench recommend`

use std::collections::{HashMap, HashSet};
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use idic_customization::domain::evaluation::synthetic_log;
use idic_customization::domain::recommend::{
    CustomerKey, CustomerView, History, ItemFacts, ItemId, NeighbourIndex, PopularityKey, PopularityTable, Recommender,
    Request, SourceWeights, TrainSettings,
};

const NOW: i64 = 1_800_000_000;
const CUSTOMERS: u32 = 100_000;
const ITEMS: u32 = 10_000;
const PER_CUSTOMER: u32 = 10;

fn bench(c: &mut Criterion) {
    let log = synthetic_log(2026, CUSTOMERS, ITEMS, PER_CUSTOMER, NOW);
    let settings = TrainSettings::default();

    let mut group = c.benchmark_group("retrain");
    group.sample_size(10);
    group.throughput(Throughput::Elements(log.len() as u64));
    group.bench_function("neighbours_1m_interactions_100k_customers_10k_items", |b| {
        b.iter(|| NeighbourIndex::train(black_box(&log), ITEMS as usize, NOW, &settings))
    });
    group.finish();

    let index = NeighbourIndex::train(&log, ITEMS as usize, NOW, &settings);
    let cluster = PopularityKey::ClusterTier { cluster: "needs-3".into(), tier: "MIDDLE".into() };
    let popularity = PopularityTable::train(
        &log,
        NOW,
        &settings.weights,
        |c| if c.0 % 10 == 3 { vec![cluster.clone()] } else { Vec::new() },
        500,
    );
    let catalog: Vec<ItemFacts> = (0..ITEMS)
        .map(|i| ItemFacts { sellable: i % 50 != 0, consumable: i % 7 == 0, cluster: Some(i / 200) })
        .collect();
    let recommender =
        Recommender { index: &index, popularity: &popularity, catalog: &catalog, sources: SourceWeights::default() };
    let mut by_customer: HashMap<CustomerKey, Vec<_>> = HashMap::new();
    for x in log.iter().filter(|x| x.customer.0 == 3) {
        by_customer.entry(x.customer).or_default().push(x);
    }
    let history =
        History::from_interactions(by_customer.remove(&CustomerKey(3)).unwrap_or_default(), NOW, &settings.weights);
    let none = HashSet::new();
    let basket = [ItemId(41), ItemId(42)];
    let customer = CustomerView { history: &history, suppressed: &none, cluster_tier: Some(&cluster), segment: None };
    let request = Request {
        customer: Some(customer),
        viewed: Some(ItemId(40)),
        basket: &basket,
        exclusions: &none,
        only: None,
        n: 10,
        max_per_cluster: 4,
    };

    let mut group = c.benchmark_group("recommend");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_customer_history_viewed_item_basket", |b| {
        b.iter(|| recommender.recommend(black_box(&request)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
