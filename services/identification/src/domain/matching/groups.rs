//! What a cleansing reports: duplicate groups made of the clusters to merge (links
//! at or above the auto-merge threshold, without chaining) and the uncertain pairs
//! between them (review band), each group with what should become of it.

use std::collections::HashMap;

use super::blocking::Slot;
use super::cluster::Link;
use super::model::probability;

/// What becomes of a duplicate group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Every member merges into one.
    AutoMerged,
    /// Nothing merges; pairs go to review.
    Review,
    /// Some members merge; the rest go to review.
    PartiallyMerged,
}

/// Records found to be (probably) the same person.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateGroup {
    /// Members, ascending, with the best match probability each has inside the group.
    pub members: Vec<(Slot, f64)>,
    /// The scored pairs holding the group together.
    pub links: Vec<Link>,
    /// Sets of members to merge, each into one (at least two members each).
    pub merges: Vec<Vec<Slot>>,
    /// Pairs to file for review (between different merge sets or lone members).
    pub reviews: Vec<Link>,
    /// What becomes of the group.
    pub disposition: Disposition,
}

/// Groups `clusters` (to merge) and `links` (every pair at or above the review
/// threshold) into duplicate groups: the pairs at or above `link_weight` inside a
/// cluster hold it; the others become reviews unless both ends are in one cluster.
pub fn duplicate_groups(clusters: &[Vec<Slot>], links: &[Link], link_weight: f32) -> Vec<DuplicateGroup> {
    let mut cluster_of: HashMap<Slot, usize> = HashMap::new();
    for (i, cluster) in clusters.iter().enumerate() {
        for &slot in cluster {
            cluster_of.insert(slot, i);
        }
    }
    // Union-find over slots: clusters are joined, then review pairs join groups.
    let mut parent: HashMap<Slot, Slot> = HashMap::new();
    fn find(parent: &mut HashMap<Slot, Slot>, x: Slot) -> Slot {
        let mut root = x;
        while let Some(&p) = parent.get(&root) {
            if p == root {
                break;
            }
            root = p;
        }
        // Path compression.
        let mut node = x;
        while let Some(&p) = parent.get(&node) {
            if p == root {
                break;
            }
            parent.insert(node, root);
            node = p;
        }
        parent.entry(root).or_insert(root);
        root
    }
    let union = |parent: &mut HashMap<Slot, Slot>, a: Slot, b: Slot| {
        let (ra, rb) = (find(parent, a), find(parent, b));
        if ra != rb {
            parent.insert(ra.max(rb), ra.min(rb));
        }
    };
    for cluster in clusters {
        for &slot in &cluster[1..] {
            union(&mut parent, cluster[0], slot);
        }
    }
    let mut kept: Vec<(Link, bool)> = Vec::new();
    for link in links {
        let same_cluster = matches!((cluster_of.get(&link.a), cluster_of.get(&link.b)), (Some(x), Some(y)) if x == y);
        if same_cluster {
            if link.weight >= link_weight {
                kept.push((*link, false));
            }
        } else {
            union(&mut parent, link.a, link.b);
            kept.push((*link, true));
        }
    }
    let mut groups: HashMap<Slot, DuplicateGroup> = HashMap::new();
    let mut best: HashMap<Slot, f64> = HashMap::new();
    for (link, review) in kept {
        let p = probability(f64::from(link.weight));
        for slot in [link.a, link.b] {
            let entry = best.entry(slot).or_insert(0.0);
            *entry = entry.max(p);
        }
        let root = find(&mut parent, link.a);
        let group = groups.entry(root).or_insert_with(|| DuplicateGroup {
            members: Vec::new(),
            links: Vec::new(),
            merges: Vec::new(),
            reviews: Vec::new(),
            disposition: Disposition::Review,
        });
        group.links.push(link);
        if review {
            group.reviews.push(link);
        }
    }
    for cluster in clusters {
        let root = find(&mut parent, cluster[0]);
        if let Some(group) = groups.get_mut(&root) {
            group.merges.push(cluster.clone());
        }
    }
    let mut out: Vec<DuplicateGroup> = groups
        .into_values()
        .map(|mut group| {
            let mut slots: Vec<Slot> = group.links.iter().flat_map(|l| [l.a, l.b]).collect();
            slots.sort_unstable();
            slots.dedup();
            group.members = slots.into_iter().map(|s| (s, best.get(&s).copied().unwrap_or(0.0))).collect();
            group.merges.sort_unstable();
            group.disposition = match (group.merges.is_empty(), group.reviews.is_empty()) {
                (false, true) => Disposition::AutoMerged,
                (false, false) => Disposition::PartiallyMerged,
                (true, _) => Disposition::Review,
            };
            group
        })
        .collect();
    out.sort_by_key(|g| g.members.first().map(|m| m.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(a: Slot, b: Slot, weight: f32) -> Link {
        Link { a, b, weight }
    }

    #[test]
    fn clusters_merge_and_uncertain_pairs_join_their_group_for_review() {
        // 0-1-2 one person (strong links), 5 an uncertain match of 2, 7-8 only uncertain.
        let clusters = vec![vec![0, 1, 2]];
        let links = [link(0, 1, 20.0), link(1, 2, 15.0), link(0, 2, 3.0), link(2, 5, 2.0), link(7, 8, 1.0)];
        let groups = duplicate_groups(&clusters, &links, 10.0);
        assert_eq!(groups.len(), 2);
        let first = &groups[0];
        assert_eq!(first.members.iter().map(|m| m.0).collect::<Vec<_>>(), vec![0, 1, 2, 5]);
        assert_eq!(first.merges, vec![vec![0, 1, 2]]);
        assert_eq!(first.reviews, vec![link(2, 5, 2.0)]);
        assert_eq!(first.disposition, Disposition::PartiallyMerged);
        // The weak pair inside the cluster neither holds it nor goes to review.
        assert!(!first.links.contains(&link(0, 2, 3.0)));
        let second = &groups[1];
        assert_eq!(second.disposition, Disposition::Review);
        assert_eq!(second.reviews, vec![link(7, 8, 1.0)]);
        assert!((second.members[0].1 - probability(1.0)).abs() < 1e-9);
    }

    #[test]
    fn a_cluster_alone_is_auto_merged() {
        let groups = duplicate_groups(&[vec![3, 4]], &[link(3, 4, 12.0)], 10.0);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].disposition, Disposition::AutoMerged);
        assert!(groups[0].reviews.is_empty());
    }
}
