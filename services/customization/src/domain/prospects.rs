//! New-product targeting: which customers will want a product nobody has bought yet. A new
//! product has no neighbours of its own, so it borrows those of the catalog items it resembles
//! (shared category paths and attributes); customers are scored by how much of their history
//! falls among those items, and their needs cluster lends its members' interest to customers
//! with little history of their own.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::recommend::{CustomerKey, History, ItemId, NeighbourIndex};

/// What a product is, as far as resemblance goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductProfile {
    /// `/`-separated category paths, general to specific.
    pub categories: Vec<String>,
    /// Free attributes (brand, fabric, term ...).
    pub attributes: BTreeMap<String, String>,
}

impl ProductProfile {
    /// Every category path prefix ("apparel", "apparel/jeans") and every `key=value` attribute:
    /// sharing a general category counts, sharing a specific one counts more.
    fn features(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for path in &self.categories {
            let mut prefix = String::new();
            for part in path.split('/').filter(|p| !p.is_empty()) {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                out.insert(format!("c:{prefix}"));
            }
        }
        out.extend(self.attributes.iter().map(|(k, v)| format!("a:{k}={v}")));
        out
    }
}

/// Jaccard similarity of two products' features, in [0, 1].
pub fn resemblance(a: &ProductProfile, b: &ProductProfile) -> f64 {
    let (fa, fb) = (a.features(), b.features());
    let union = fa.union(&fb).count();
    if union == 0 { 0.0 } else { fa.intersection(&fb).count() as f64 / union as f64 }
}

/// One customer who may be a prospect.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The customer.
    pub customer: CustomerKey,
    /// Their history (recency-weighted).
    pub history: &'a History,
    /// Their needs cluster, as segmentation labels it.
    pub cluster: Option<&'a str>,
}

/// How prospects are scored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProspectSettings {
    /// Catalog items most resembling the new product used as its stand-ins.
    pub stand_ins: usize,
    /// What a stand-in's neighbour counts for, against the stand-in itself: second-hand
    /// evidence.
    pub neighbour_discount: f64,
    /// Share of the score from the customer's cluster rather than their own history.
    pub cluster_share: f64,
}

impl Default for ProspectSettings {
    fn default() -> Self {
        Self { stand_ins: 20, neighbour_discount: 0.5, cluster_share: 0.3 }
    }
}

/// A customer predicted to be interested.
#[derive(Debug, Clone, PartialEq)]
pub struct Prospect {
    /// The customer.
    pub customer: CustomerKey,
    /// Predicted interest in [0, 1], comparable within one answer.
    pub score: f64,
    /// Their items that drove the score, strongest first, at most 3.
    pub anchors: Vec<ItemId>,
}

/// How many prospects are wanted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wanted {
    /// At most this many, best first.
    pub n: usize,
    /// Only those scoring at least this.
    pub min_score: f64,
}

/// Scores `candidates` for a new product and returns the best of them, as `wanted`.
///
/// An item's affinity with the new product is its resemblance when it is a stand-in, plus the
/// discounted resemblance × similarity through each stand-in it neighbours. A customer's own
/// interest is 1 − exp(−Σ affinity × weight / strongest weight): saturating, so one broad history
/// does not swamp the scale, and their cluster's interest is its members' mean own interest.
/// `already_has` leaves out customers who own the product (the caller knows if it is
/// consumable).
pub fn find_prospects(
    product: &ProductProfile,
    catalog: &[(ItemId, ProductProfile)],
    index: &NeighbourIndex,
    candidates: &[Candidate<'_>],
    already_has: impl Fn(CustomerKey) -> bool,
    settings: &ProspectSettings,
    wanted: Wanted,
) -> Vec<Prospect> {
    let mut stand_ins: Vec<(ItemId, f64)> =
        catalog.iter().map(|(id, p)| (*id, resemblance(product, p))).filter(|(_, r)| *r > 0.0).collect();
    stand_ins.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    stand_ins.truncate(settings.stand_ins);
    let mut affinity: HashMap<ItemId, f64> = HashMap::new();
    for &(item, r) in &stand_ins {
        *affinity.entry(item).or_default() += r;
        for nb in index.neighbours(item) {
            *affinity.entry(nb.item).or_default() += settings.neighbour_discount * r * f64::from(nb.similarity);
        }
    }

    let own: Vec<(f64, Vec<ItemId>)> = candidates
        .iter()
        .map(|c| {
            let top = c.history.entries().iter().map(|e| e.weight).fold(0.0f32, f32::max);
            if top <= 0.0 {
                return (0.0, Vec::new());
            }
            let mut drivers: Vec<(ItemId, f64)> = c
                .history
                .entries()
                .iter()
                .filter_map(|e| affinity.get(&e.item).map(|a| (e.item, a * f64::from(e.weight / top))))
                .filter(|(_, s)| *s > 0.0)
                .collect();
            let total: f64 = drivers.iter().map(|d| d.1).sum();
            drivers.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            (1.0 - (-total).exp(), drivers.iter().take(3).map(|d| d.0).collect())
        })
        .collect();
    let mut clusters: HashMap<&str, (f64, usize)> = HashMap::new();
    for (c, (score, _)) in candidates.iter().zip(&own) {
        if let Some(label) = c.cluster {
            let e = clusters.entry(label).or_default();
            e.0 += score;
            e.1 += 1;
        }
    }
    let mut out: Vec<Prospect> = candidates
        .iter()
        .zip(own)
        .filter(|(c, _)| !already_has(c.customer))
        .map(|(c, (mine, anchors))| {
            let cluster = c.cluster.and_then(|l| clusters.get(l)).map_or(0.0, |(sum, count)| sum / *count as f64);
            let score = (1.0 - settings.cluster_share) * mine + settings.cluster_share * cluster;
            Prospect { customer: c.customer, score, anchors }
        })
        .filter(|p| p.score > 0.0 && p.score >= wanted.min_score)
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.customer.cmp(&b.customer)));
    out.truncate(wanted.n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::recommend::{FeedbackKind, FeedbackWeights, Interaction, TrainSettings};

    const NOW: i64 = 1_800_000_000;

    fn profile(categories: &[&str], attributes: &[(&str, &str)]) -> ProductProfile {
        ProductProfile {
            categories: categories.iter().map(|c| (*c).to_owned()).collect(),
            attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    fn ev(customer: u32, item: u32, kind: FeedbackKind) -> Interaction {
        Interaction { customer: CustomerKey(customer), item: ItemId(item), kind, at: NOW }
    }

    #[test]
    fn resemblance_counts_shared_category_prefixes_and_attributes() {
        let jeans = profile(&["apparel/jeans"], &[("fabric", "denim")]);
        let other_jeans = profile(&["apparel/jeans"], &[("fabric", "stretch")]);
        let shirt = profile(&["apparel/shirts"], &[]);
        let savings = profile(&["banking/savings"], &[]);
        // {c:apparel, c:apparel/jeans, a:fabric=denim} against {.., a:fabric=stretch}: 2 / 4.
        assert!((resemblance(&jeans, &other_jeans) - 0.5).abs() < 1e-12);
        // Only c:apparel is shared, out of 4 features.
        assert!((resemblance(&jeans, &shirt) - 0.25).abs() < 1e-12);
        assert_eq!(resemblance(&jeans, &savings), 0.0);
    }

    #[test]
    fn prospects_for_new_jeans_are_jeans_buyers_then_their_cluster() {
        use FeedbackKind::*;
        // Items: 0 slim jeans, 1 belt (bought with jeans, no shared category), 2 shirt, 3 savings.
        let catalog = vec![
            (ItemId(0), profile(&["apparel/jeans"], &[("fabric", "denim")])),
            (ItemId(1), profile(&["accessories/belts"], &[])),
            (ItemId(2), profile(&["apparel/shirts"], &[])),
            (ItemId(3), profile(&["banking/savings"], &[])),
        ];
        let log = [
            ev(0, 0, Purchase), // Ann: jeans
            ev(1, 1, Purchase), // Bob: a belt, bought by jeans buyers
            ev(2, 3, Purchase), // Cem: savings
            ev(4, 2, View),     // Eve: looked at a shirt
            ev(5, 0, Purchase), // Fay: jeans and a belt
            ev(5, 1, Purchase),
            ev(6, 0, Purchase), // Gus: already bought the new jeans elsewhere
        ];
        let w = FeedbackWeights::default();
        let index = NeighbourIndex::train(&log, 4, NOW, &TrainSettings::default());
        let histories: Vec<History> =
            (0..7).map(|c| History::from_interactions(log.iter().filter(|x| x.customer.0 == c), NOW, &w)).collect();
        // Dan (3) has no history but shares Ann's and Fay's cluster; Cem is a saver like Eve.
        let clusters = ["denim", "denim", "savers", "denim", "savers", "denim", "denim"];
        let candidates: Vec<Candidate<'_>> = (0..7)
            .map(|c| Candidate {
                customer: CustomerKey(c),
                history: &histories[c as usize],
                cluster: Some(clusters[c as usize]),
            })
            .collect();
        let new_jeans = profile(&["apparel/jeans"], &[("fabric", "stretch")]);
        let found = find_prospects(
            &new_jeans,
            &catalog,
            &index,
            &candidates,
            |c| c.0 == 6,
            &ProspectSettings::default(),
            Wanted { n: 10, min_score: 0.0 },
        );
        let order: Vec<u32> = found.iter().map(|p| p.customer.0).collect();
        let rank = |c: u32| order.iter().position(|&x| x == c);
        assert!(rank(6).is_none(), "owners are left out");
        assert!(found.iter().all(|p| p.score > 0.0 && p.score <= 1.0));
        // Jeans buyers first (Fay also has the belt that goes with jeans).
        assert_eq!(&order[..2], &[5, 0]);
        assert!(rank(1) < rank(3), "a belt buyer beats a newcomer: {order:?}");
        assert!(rank(3) < rank(2), "a jeans-cluster newcomer beats a saver: {order:?}");
        assert!(rank(4) < rank(2), "a shirt looker beats a saver: {order:?}");
        assert_eq!(found[0].anchors, vec![ItemId(0), ItemId(1)]);
        let strict = find_prospects(
            &new_jeans,
            &catalog,
            &index,
            &candidates,
            |_| false,
            &ProspectSettings::default(),
            Wanted { n: 2, min_score: 0.0 },
        );
        assert_eq!(strict.len(), 2);
    }
}
