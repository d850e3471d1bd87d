//! Products clustered by co-purchase, for customization: how often two products share a
//! basket (cosine of their basket sets), what each is bought with, and groups of products
//! that go together, by average-linkage agglomeration.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Co-purchase counts over a set of baskets.
#[derive(Debug, Clone)]
pub struct CoPurchase<P> {
    products: Vec<P>,
    baskets_with: Vec<u32>,
    together: HashMap<(usize, usize), u32>,
}

/// A group of products that go together.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductCluster<P> {
    /// Its products, most bought first.
    pub products: Vec<P>,
    /// Mean similarity of the pairs inside the group (0 for a lone product).
    pub cohesion: f64,
}

impl<P: Ord + Clone> CoPurchase<P> {
    /// Counts products and pairs over the baskets; a product twice in a basket counts once.
    pub fn from_baskets(baskets: &[Vec<P>]) -> Self {
        let products: Vec<P> = baskets.iter().flatten().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let index: BTreeMap<&P, usize> = products.iter().enumerate().map(|(i, p)| (p, i)).collect();
        let mut baskets_with = vec![0u32; products.len()];
        let mut together = HashMap::new();
        for basket in baskets {
            let items: BTreeSet<usize> = basket.iter().filter_map(|p| index.get(p).copied()).collect();
            let items: Vec<usize> = items.into_iter().collect();
            for (k, &i) in items.iter().enumerate() {
                baskets_with[i] += 1;
                for &j in &items[k + 1..] {
                    *together.entry((i, j)).or_insert(0) += 1;
                }
            }
        }
        Self { products, baskets_with, together }
    }

    fn index(&self, p: &P) -> Option<usize> {
        self.products.binary_search(p).ok()
    }

    fn pair_similarity(&self, i: usize, j: usize) -> f64 {
        let key = if i < j { (i, j) } else { (j, i) };
        let both = f64::from(self.together.get(&key).copied().unwrap_or(0));
        both / (f64::from(self.baskets_with[i]) * f64::from(self.baskets_with[j])).sqrt()
    }

    /// Cosine similarity of two products' basket sets: baskets with both over the geometric
    /// mean of baskets with each. 0 for an unknown product.
    pub fn similarity(&self, a: &P, b: &P) -> f64 {
        match (self.index(a), self.index(b)) {
            (Some(i), Some(j)) if i != j => self.pair_similarity(i, j),
            _ => 0.0,
        }
    }

    /// The `n` products most often bought with `product`, most similar first.
    pub fn bought_with(&self, product: &P, n: usize) -> Vec<(P, f64)> {
        let Some(i) = self.index(product) else { return Vec::new() };
        let mut neighbours: Vec<(usize, f64)> = self
            .together
            .keys()
            .filter_map(|&(a, b)| {
                if a == i {
                    Some(b)
                } else if b == i {
                    Some(a)
                } else {
                    None
                }
            })
            .map(|j| (j, self.pair_similarity(i, j)))
            .collect();
        neighbours.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        neighbours.into_iter().take(n).map(|(j, s)| (self.products[j].clone(), s)).collect()
    }

    /// Groups products by average linkage: the two groups whose pairs are on average most
    /// similar are merged while that average is at least `threshold`. Only pairs bought
    /// together in at least `min_baskets` baskets count, so one chance basket links nothing.
    /// Largest groups first; products that go with nothing stay alone.
    pub fn clusters(&self, threshold: f64, min_baskets: u32) -> Vec<ProductCluster<P>> {
        let n = self.products.len();
        let mut members: Vec<Option<Vec<usize>>> = (0..n).map(|i| Some(vec![i])).collect();
        // Sum of similarities between two live groups (only pairs that share baskets).
        let mut links: HashMap<(usize, usize), f64> = self
            .together
            .iter()
            .filter(|(_, count)| **count >= min_baskets)
            .map(|(&(i, j), _)| ((i, j), self.pair_similarity(i, j)))
            .collect();
        let size = |m: &Vec<Option<Vec<usize>>>, g: usize| m[g].as_ref().map_or(0, Vec::len) as f64;
        loop {
            let best = links
                .iter()
                .map(|(&(a, b), &sum)| ((a, b), sum / (size(&members, a) * size(&members, b))))
                .max_by(|x, y| x.1.total_cmp(&y.1).then(y.0.cmp(&x.0)));
            let Some(((a, b), average)) = best else { break };
            if average < threshold {
                break;
            }
            // Merge b into a, and fold b's links into a's.
            let moved = members[b].take().unwrap_or_default();
            if let Some(into) = members[a].as_mut() {
                into.extend(moved);
            }
            let old: Vec<((usize, usize), f64)> = links
                .iter()
                .filter(|((x, y), _)| [*x, *y].contains(&b) || [*x, *y].contains(&a))
                .map(|(k, v)| (*k, *v))
                .collect();
            for (key, _) in &old {
                links.remove(key);
            }
            let mut merged: HashMap<usize, f64> = HashMap::new();
            for ((x, y), sum) in old {
                let other = if x == a || x == b { y } else { x };
                if other != a && other != b {
                    *merged.entry(other).or_insert(0.0) += sum;
                }
            }
            for (other, sum) in merged {
                links.insert(if a < other { (a, other) } else { (other, a) }, sum);
            }
        }
        let mut clusters: Vec<ProductCluster<P>> = members
            .into_iter()
            .flatten()
            .map(|mut group| {
                group.sort_by(|&x, &y| self.baskets_with[y].cmp(&self.baskets_with[x]).then(x.cmp(&y)));
                let pairs = group.len() * (group.len() - 1) / 2;
                let total: f64 = group
                    .iter()
                    .enumerate()
                    .flat_map(|(k, &i)| group[k + 1..].iter().map(move |&j| (i, j)))
                    .map(|(i, j)| self.pair_similarity(i, j))
                    .sum();
                ProductCluster {
                    products: group.iter().map(|&i| self.products[i].clone()).collect(),
                    cohesion: if pairs == 0 { 0.0 } else { total / pairs as f64 },
                }
            })
            .collect();
        clusters.sort_by(|a, b| b.products.len().cmp(&a.products.len()).then(a.products.cmp(&b.products)));
        clusters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baskets() -> Vec<Vec<&'static str>> {
        let mut b = Vec::new();
        for _ in 0..10 {
            b.push(vec!["bread", "butter", "jam"]);
            b.push(vec!["tent", "stove", "sleeping bag"]);
        }
        for _ in 0..5 {
            b.push(vec!["bread", "butter"]);
            b.push(vec!["tent", "sleeping bag"]);
        }
        b.push(vec!["bread", "tent"]);
        b.push(vec!["umbrella"]);
        b
    }

    #[test]
    fn similarity_is_the_cosine_of_basket_sets() {
        let c = CoPurchase::from_baskets(&baskets());
        // bread: 16 baskets, jam: 10, together: 10 → 10 / √160.
        assert!((c.similarity(&"bread", &"jam") - 10.0 / 160f64.sqrt()).abs() < 1e-12);
        assert_eq!(c.similarity(&"jam", &"stove"), 0.0);
        assert_eq!(c.similarity(&"jam", &"unknown"), 0.0);
    }

    #[test]
    fn bought_with_lists_the_most_similar_products_first() {
        let c = CoPurchase::from_baskets(&baskets());
        let with_bread: Vec<&str> = c.bought_with(&"bread", 3).into_iter().map(|(p, _)| p).collect();
        assert_eq!(with_bread, vec!["butter", "jam", "tent"]);
    }

    #[test]
    fn products_bought_together_form_clusters() {
        let c = CoPurchase::from_baskets(&baskets());
        let clusters = c.clusters(0.3, 2);
        let names: Vec<Vec<&str>> = clusters.iter().map(|c| c.products.clone()).collect();
        assert_eq!(
            names,
            vec![vec!["bread", "butter", "jam"], vec!["tent", "sleeping bag", "stove"], vec!["umbrella"]]
        );
        assert!(clusters[0].cohesion > 0.7);
        assert_eq!(clusters[2].cohesion, 0.0);
    }
}
