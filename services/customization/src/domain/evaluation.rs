//! Offline evaluation of recommendations: a leave-last-out split of an interaction log, hit rate
//! and NDCG at k, the item-neighbour recommender against the popularity baseline it must beat,
//! and a seeded synthetic log with co-purchase structure for tests and benchmarks.

use std::collections::{HashMap, HashSet};

use super::recommend::{
    CustomerKey, CustomerView, FeedbackKind, History, Interaction, ItemFacts, ItemId, NeighbourIndex, PopularityTable,
    Recommender, Request, SourceWeights, TrainSettings,
};
use rand::{RngExt as _, SeedableRng as _, rngs::Xoshiro256PlusPlus};

/// One customer's held-out item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldOut {
    /// The customer.
    pub customer: CustomerKey,
    /// The item to find again.
    pub item: ItemId,
}

/// A log split into what the model learns from and what it must predict.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// Everything but the held-out items' interactions.
    pub train: Vec<Interaction>,
    /// One item per evaluated customer.
    pub held_out: Vec<HeldOut>,
}

/// Leave-last-out: for each customer with positive feedback on at least two distinct items, the
/// item of their chronologically last positive interaction (the later in the log on a tie) is
/// held out, and all of that customer's interactions with it are removed from training, so the
/// task is "predict the next item they discover" rather than "repeat their last item", which the
/// recommender's owned-item filter would make impossible. Other customers stay whole in training.
pub fn leave_last_out(log: &[Interaction]) -> Split {
    let mut last: HashMap<CustomerKey, (i64, usize)> = HashMap::new();
    let mut distinct: HashMap<CustomerKey, HashSet<ItemId>> = HashMap::new();
    for (pos, x) in log.iter().enumerate() {
        if x.kind == FeedbackKind::Negative {
            continue;
        }
        distinct.entry(x.customer).or_default().insert(x.item);
        let e = last.entry(x.customer).or_insert((x.at, pos));
        if (x.at, pos) >= *e {
            *e = (x.at, pos);
        }
    }
    let mut held: HashMap<CustomerKey, ItemId> = HashMap::new();
    for (customer, (_, pos)) in last {
        if distinct.get(&customer).is_some_and(|d| d.len() >= 2) {
            held.insert(customer, log[pos].item);
        }
    }
    let train = log.iter().filter(|x| held.get(&x.customer) != Some(&x.item)).copied().collect();
    let mut held_out: Vec<HeldOut> = held.into_iter().map(|(customer, item)| HeldOut { customer, item }).collect();
    held_out.sort_by_key(|h| h.customer);
    Split { train, held_out }
}

/// Hit rate and NDCG at k over a set of held-out items.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankingMetrics {
    /// Customers evaluated.
    pub cases: usize,
    /// Customers whose held-out item was in their top k.
    pub hits: usize,
    /// HR@k = hits / cases.
    pub hit_rate: f64,
    /// NDCG@k: the mean over cases of 1 / log2(rank + 1) when the item is at rank ≤ k (1-based),
    /// else 0. With a single relevant item the ideal DCG is 1, so this is the textbook NDCG.
    pub ndcg: f64,
}

/// The discounted gain of the one relevant item at 1-based `rank` within the cut-off `k`.
pub fn single_item_ndcg(rank: Option<usize>, k: usize) -> f64 {
    match rank {
        Some(r) if r >= 1 && r <= k => 1.0 / ((r + 1) as f64).log2(),
        _ => 0.0,
    }
}

/// HR@k and NDCG@k of ranked lists, each paired with its held-out item.
pub fn ranking_metrics<'a>(results: impl IntoIterator<Item = (&'a [ItemId], ItemId)>, k: usize) -> RankingMetrics {
    let (mut cases, mut hits, mut gain) = (0usize, 0usize, 0.0f64);
    for (ranked, target) in results {
        cases += 1;
        let rank = ranked.iter().take(k).position(|&i| i == target).map(|p| p + 1);
        hits += usize::from(rank.is_some());
        gain += single_item_ndcg(rank, k);
    }
    let denom = cases.max(1) as f64;
    RankingMetrics { cases, hits, hit_rate: hits as f64 / denom, ndcg: gain / denom }
}

/// The item-neighbour recommender against the popularity baseline on one split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Item neighbours from history (the recommender as served, without context).
    pub model: RankingMetrics,
    /// Overall popularity with the same filters (owned durables and negatives left out).
    pub popularity: RankingMetrics,
}

/// Splits `log` leave-last-out, trains on the rest, and ranks k items per held-out customer with
/// the recommender and with popularity alone. Every item counts as sellable and durable, so both
/// leave out what the customer already bought.
pub fn evaluate_against_popularity(log: &[Interaction], settings: &TrainSettings, k: usize) -> Comparison {
    let split = leave_last_out(log);
    let now = log.iter().map(|x| x.at).max().unwrap_or(0);
    let n_items = log.iter().map(|x| x.item.0 as usize + 1).max().unwrap_or(0);
    let index = NeighbourIndex::train(&split.train, n_items, now, settings);
    let popularity = PopularityTable::train(&split.train, now, &settings.weights, |_| Vec::new(), k + 1000);
    let empty_index = NeighbourIndex::default();
    let catalog = vec![ItemFacts { sellable: true, consumable: false, cluster: None }; n_items];
    let mut histories: HashMap<CustomerKey, Vec<&Interaction>> = HashMap::new();
    for x in &split.train {
        histories.entry(x.customer).or_default().push(x);
    }
    let model =
        Recommender { index: &index, popularity: &popularity, catalog: &catalog, sources: SourceWeights::default() };
    let baseline = Recommender { index: &empty_index, ..model };
    let none = HashSet::new();
    let mut model_lists = Vec::with_capacity(split.held_out.len());
    let mut baseline_lists = Vec::with_capacity(split.held_out.len());
    for h in &split.held_out {
        let events = histories.get(&h.customer).map_or(&[][..], Vec::as_slice);
        let history = History::from_interactions(events.iter().copied(), now, &settings.weights);
        let customer = CustomerView { history: &history, suppressed: &none, cluster_tier: None, segment: None };
        let req = Request {
            customer: Some(customer),
            viewed: None,
            basket: &[],
            exclusions: &none,
            only: None,
            n: k,
            max_per_cluster: k,
        };
        model_lists.push(model.recommend(&req).0.iter().map(|r| r.item).collect::<Vec<_>>());
        baseline_lists.push(baseline.recommend(&req).0.iter().map(|r| r.item).collect::<Vec<_>>());
    }
    let pairs = |lists: &'_ [Vec<ItemId>]| -> RankingMetrics {
        ranking_metrics(lists.iter().zip(&split.held_out).map(|(l, h)| (l.as_slice(), h.item)), k)
    };
    Comparison { model: pairs(&model_lists), popularity: pairs(&baseline_lists) }
}

/// A synthetic interaction log with co-purchase structure, fully determined by `seed`.
///
/// Items fall into themes of 20 (jeans with belts, coffee with filters ...) whose popularity
/// follows a power law; each customer has one favourite theme (and sometimes a second), draws
/// 85% of their `per_customer` interactions from it, the rest from anywhere, as 70% views, 20%
/// basket additions and 10% purchases, in time order over the year before `now`.
pub fn synthetic_log(seed: u64, customers: u32, items: u32, per_customer: u32, now: i64) -> Vec<Interaction> {
    const THEME: u32 = 20;
    let themes = items.div_ceil(THEME).max(1);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    // Cumulative power-law weights of themes, for popular and unpopular themes alike.
    let cumulative: Vec<f64> = (0..themes)
        .scan(0.0, |acc, t| {
            *acc += 1.0 / f64::from(t + 1).powf(0.8);
            Some(*acc)
        })
        .collect();
    let total = cumulative.last().copied().unwrap_or(1.0);
    let pick_theme = |rng: &mut Xoshiro256PlusPlus| -> u32 {
        let u = rng.random::<f64>() * total;
        cumulative.partition_point(|&c| c < u).min(cumulative.len() - 1) as u32
    };
    let mut log = Vec::with_capacity((customers * per_customer) as usize);
    for c in 0..customers {
        let first = pick_theme(&mut rng);
        let second = if rng.random_bool(0.3) { pick_theme(&mut rng) } else { first };
        let start = now - 365 * 86_400 + rng.random_range(0..180 * 86_400) as i64;
        for step in 0..per_customer {
            let item = if rng.random_bool(0.85) {
                let theme = if rng.random_bool(0.7) { first } else { second };
                // Within a theme, earlier items are more popular.
                let spread = rng.random_range(0..THEME as usize) + 1;
                let within = rng.random_range(0..spread) as u32;
                (theme * THEME + within).min(items - 1)
            } else {
                (pick_theme(&mut rng) * THEME + rng.random_range(0..THEME as usize) as u32).min(items - 1)
            };
            let kind = match rng.random::<f64>() {
                u if u < 0.7 => FeedbackKind::View,
                u if u < 0.9 => FeedbackKind::Basket,
                _ => FeedbackKind::Purchase,
            };
            let at = start + i64::from(step) * 86_400 * 7 + rng.random_range(0..86_400) as i64;
            log.push(Interaction { customer: CustomerKey(c), item: ItemId(item), kind, at: at.min(now) });
        }
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(customer: u32, item: u32, kind: FeedbackKind, at: i64) -> Interaction {
        Interaction { customer: CustomerKey(customer), item: ItemId(item), kind, at }
    }

    #[test]
    fn ndcg_of_one_held_out_item_is_one_over_log2_of_rank_plus_one() {
        // Four customers; held-out item at rank 1, rank 3, absent, and rank 11 (beyond k = 10).
        // HR@10 = 2 / 4 = 0.5. NDCG@10 = (1/log2(2) + 1/log2(4) + 0 + 0) / 4 = (1 + 0.5) / 4 = 0.375.
        let ids = |v: &[u32]| v.iter().map(|&i| ItemId(i)).collect::<Vec<_>>();
        let lists = [ids(&[7, 1, 2]), ids(&[1, 2, 7, 3]), ids(&[1, 2, 3]), ids(&[1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 7])];
        let m = ranking_metrics(lists.iter().map(|l| (l.as_slice(), ItemId(7))), 10);
        assert_eq!((m.cases, m.hits), (4, 2));
        assert!((m.hit_rate - 0.5).abs() < 1e-12);
        assert!((m.ndcg - 0.375).abs() < 1e-12);
        // Rank 2: 1/log2(3) = 0.6309297535714574.
        assert!((single_item_ndcg(Some(2), 10) - 0.630_929_753_571_457_4).abs() < 1e-12);
        assert_eq!(single_item_ndcg(Some(11), 10), 0.0);
    }

    #[test]
    fn leave_last_out_holds_out_each_customers_last_item_and_all_its_events() {
        use FeedbackKind::*;
        let log = [
            ev(0, 10, View, 1),
            ev(0, 11, Purchase, 2),
            ev(0, 10, View, 3),
            // Customer 1 only ever touched one item: nothing to predict from, kept whole.
            ev(1, 12, View, 1),
            ev(1, 12, Purchase, 2),
            // Customer 2: a tie in time goes to the later line; negatives never count as last.
            ev(2, 11, Purchase, 5),
            ev(2, 12, Purchase, 5),
            ev(2, 13, Negative, 9),
        ];
        let split = leave_last_out(&log);
        assert_eq!(
            split.held_out,
            vec![
                HeldOut { customer: CustomerKey(0), item: ItemId(10) },
                HeldOut { customer: CustomerKey(2), item: ItemId(12) }
            ]
        );
        assert_eq!(split.train, vec![log[1], log[3], log[4], log[5], log[7]]);
    }

    #[test]
    fn item_neighbours_beat_popularity_where_co_purchase_structure_exists() {
        let log = synthetic_log(42, 3_000, 400, 12, 1_800_000_000);
        let c = evaluate_against_popularity(&log, &TrainSettings::default(), 10);
        assert!(c.model.cases > 2_500);
        assert!(c.popularity.hit_rate > 0.0, "the baseline must be a real competitor");
        assert!(c.model.hit_rate > c.popularity.hit_rate + 0.1, "{c:?}");
        assert!(c.model.ndcg > c.popularity.ndcg + 0.05, "{c:?}");
    }

    #[test]
    fn synthetic_log_is_reproducible_from_its_seed() {
        let a = synthetic_log(1, 50, 100, 5, 1_800_000_000);
        assert_eq!(a, synthetic_log(1, 50, 100, 5, 1_800_000_000));
        assert_ne!(a, synthetic_log(2, 50, 100, 5, 1_800_000_000));
        assert_eq!(a.len(), 250);
        assert!(a.iter().all(|x| x.item.0 < 100));
    }
}
