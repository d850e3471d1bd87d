//! Grouping of scored pairs into duplicate clusters without chaining: links are taken
//! strongest first, and two groups join only if every pair across them scores at
//! least a floor and none of them is a cannot-link. So A≈B and B≈C do not put A
//! with C when A and C are clearly different people (a shared household, twins).

use std::collections::HashMap;

use super::blocking::Slot;

/// A scored pair of records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// One record.
    pub a: Slot,
    /// The other record.
    pub b: Slot,
    /// Match weight in bits.
    pub weight: f32,
}

/// Rules of the clustering.
#[derive(Debug, Clone, Copy)]
pub struct ClusterRules {
    /// Links at or above this weight join groups.
    pub link_weight: f32,
    /// Every pair inside a group must weigh at least this.
    pub floor_weight: f32,
    /// No group grows beyond this many records.
    pub max_size: usize,
}

/// Groups linked records: each returned cluster has at least two records, sorted.
/// `score` weighs a pair that is not among `links`; `cannot_link` tells pairs that
/// must stay apart.
pub fn cluster(
    links: &[Link],
    rules: ClusterRules,
    score: impl Fn(Slot, Slot) -> f32,
    cannot_link: impl Fn(Slot, Slot) -> bool,
) -> Vec<Vec<Slot>> {
    let mut strong: Vec<Link> = links.iter().copied().filter(|l| l.weight >= rules.link_weight && l.a != l.b).collect();
    strong.sort_by(|x, y| y.weight.total_cmp(&x.weight).then(x.a.cmp(&y.a)).then(x.b.cmp(&y.b)));
    let known: HashMap<(Slot, Slot), f32> = links.iter().map(|l| (ordered(l.a, l.b), l.weight)).collect();
    let weight = |x: Slot, y: Slot| known.get(&ordered(x, y)).copied().unwrap_or_else(|| score(x, y));

    let mut group_of: HashMap<Slot, usize> = HashMap::new();
    let mut groups: Vec<Vec<Slot>> = Vec::new();
    for link in strong {
        let ga = *group_of.entry(link.a).or_insert_with(|| {
            groups.push(vec![link.a]);
            groups.len() - 1
        });
        let gb = *group_of.entry(link.b).or_insert_with(|| {
            groups.push(vec![link.b]);
            groups.len() - 1
        });
        if ga == gb || groups[ga].len() + groups[gb].len() > rules.max_size {
            continue;
        }
        let compatible = groups[ga]
            .iter()
            .all(|&x| groups[gb].iter().all(|&y| !cannot_link(x, y) && weight(x, y) >= rules.floor_weight));
        if !compatible {
            continue;
        }
        let (keep, gone) = if groups[ga].len() >= groups[gb].len() { (ga, gb) } else { (gb, ga) };
        let moved = std::mem::take(&mut groups[gone]);
        for &slot in &moved {
            group_of.insert(slot, keep);
        }
        groups[keep].extend(moved);
    }
    let mut clusters: Vec<Vec<Slot>> = groups
        .into_iter()
        .filter(|g| g.len() >= 2)
        .map(|mut g| {
            g.sort_unstable();
            g
        })
        .collect();
    clusters.sort_unstable();
    clusters
}

fn ordered(a: Slot, b: Slot) -> (Slot, Slot) {
    if a < b { (a, b) } else { (b, a) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: ClusterRules = ClusterRules { link_weight: 10.0, floor_weight: 0.0, max_size: 50 };

    fn link(a: Slot, b: Slot, weight: f32) -> Link {
        Link { a, b, weight }
    }

    #[test]
    fn weak_links_do_not_chain_strangers() {
        // 0≈1 and 1≈2 are strong, but 0 and 2 are clearly different people.
        let links = [link(0, 1, 20.0), link(1, 2, 15.0), link(0, 2, -30.0)];
        assert_eq!(cluster(&links, RULES, |_, _| -100.0, |_, _| false), vec![vec![0, 1]]);
    }

    #[test]
    fn consistent_groups_join_and_unknown_pairs_are_scored() {
        let links = [link(0, 1, 20.0), link(1, 2, 15.0), link(3, 4, 12.0), link(4, 5, 5.0)];
        let clusters = cluster(&links, RULES, |_, _| 3.0, |_, _| false);
        assert_eq!(clusters, vec![vec![0, 1, 2], vec![3, 4]]);
    }

    #[test]
    fn cannot_links_stay_apart() {
        let links = [link(0, 1, 20.0), link(1, 2, 15.0)];
        let clusters = cluster(&links, RULES, |_, _| 30.0, |a, b| (a, b) == (0, 2) || (a, b) == (2, 0));
        assert_eq!(clusters, vec![vec![0, 1]]);
    }

    #[test]
    fn groups_stop_growing_at_the_size_limit() {
        let links: Vec<Link> = (1..10).map(|i| link(0, i, 20.0)).collect();
        let rules = ClusterRules { max_size: 4, ..RULES };
        assert_eq!(cluster(&links, rules, |_, _| 20.0, |_, _| false), vec![vec![0, 1, 2, 3]]);
    }
}
