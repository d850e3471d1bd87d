//! Pairwise accuracy of a matcher against the known truth.
//!
//! Both deduplication (clusters) and linkage (links between two files) are scored on pairs of
//! records: a pair is a true positive when the matcher joins two records of the same person.
//!
//! Conventions for empty sets: with no predicted pairs, precision is 1 (nothing claimed, nothing
//! wrong); with no true pairs, recall is 1 (nothing to find, nothing missed); F1 is 0 when
//! precision and recall are both 0. So a matcher that links nothing scores precision 1, recall 0
//! and F1 0 on data that has duplicates, and 1, 1, 1 on data that has none.

use crate::{FastMap, FastSet, Record};

/// Pair counts of a matcher's output against the truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairScores {
    /// Pairs predicted together that are the same person.
    pub true_positives: u64,
    /// Pairs predicted together that are different people.
    pub false_positives: u64,
    /// Pairs of the same person the matcher did not put together.
    pub false_negatives: u64,
}

impl PairScores {
    /// Share of predicted pairs that are right; 1 when nothing was predicted.
    pub fn precision(&self) -> f64 {
        ratio(self.true_positives, self.true_positives + self.false_positives)
    }

    /// Share of true pairs that were found; 1 when there was nothing to find.
    pub fn recall(&self) -> f64 {
        ratio(self.true_positives, self.true_positives + self.false_negatives)
    }

    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 1.0 } else { part as f64 / whole as f64 }
}

/// Number of unordered pairs among `n` items.
fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Pairwise scores of a clustering: `truth[i]` is the entity of record `i`, `predicted[i]` the
/// cluster the matcher put it in (labels need not match entity ids). Every pair of records in
/// one predicted cluster is a predicted link. Runs in O(n) by counting group sizes.
///
/// # Panics
///
/// If `truth` and `predicted` differ in length.
pub fn pairwise_from_clusters(truth: &[u64], predicted: &[u64]) -> PairScores {
    assert_eq!(truth.len(), predicted.len(), "one truth label and one predicted label per record");
    let mut by_truth: FastMap<u64, u64> = FastMap::default();
    let mut by_predicted: FastMap<u64, u64> = FastMap::default();
    let mut by_both: FastMap<(u64, u64), u64> = FastMap::default();
    for (&t, &p) in truth.iter().zip(predicted) {
        *by_truth.entry(t).or_default() += 1;
        *by_predicted.entry(p).or_default() += 1;
        *by_both.entry((t, p)).or_default() += 1;
    }
    let true_pairs: u64 = by_truth.values().map(|&n| pairs(n)).sum();
    let predicted_pairs: u64 = by_predicted.values().map(|&n| pairs(n)).sum();
    let true_positives: u64 = by_both.values().map(|&n| pairs(n)).sum();
    PairScores {
        true_positives,
        false_positives: predicted_pairs - true_positives,
        false_negatives: true_pairs - true_positives,
    }
}

/// Pairwise scores of a linkage between two files: `truth_pairs` and `predicted_pairs` are
/// (index in file A, index in file B) links. Repeated pairs count once.
pub fn pairwise_links(truth_pairs: &[(usize, usize)], predicted_pairs: &[(usize, usize)]) -> PairScores {
    let truth: FastSet<(usize, usize)> = truth_pairs.iter().copied().collect();
    let predicted: FastSet<(usize, usize)> = predicted_pairs.iter().copied().collect();
    let true_positives = predicted.intersection(&truth).count() as u64;
    PairScores {
        true_positives,
        false_positives: predicted.len() as u64 - true_positives,
        false_negatives: truth.len() as u64 - true_positives,
    }
}

/// The true links between two files: every (index in `a`, index in `b`) pair of rows captured
/// from the same person, in order of `a`'s index then `b`'s.
pub fn true_links(a: &[Record], b: &[Record]) -> Vec<(usize, usize)> {
    let mut in_b: FastMap<u64, Vec<usize>> = FastMap::default();
    for (j, record) in b.iter().enumerate() {
        in_b.entry(record.entity_id).or_default().push(j);
    }
    let mut links = Vec::new();
    for (i, record) in a.iter().enumerate() {
        if let Some(js) = in_b.get(&record.entity_id) {
            links.extend(js.iter().map(|&j| (i, j)));
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_are_scored_on_pairs() {
        // Truth pairs: (0,1), (2,3), (2,4), (3,4). Predicted pairs: (0,1), (0,2), (1,2), (3,4).
        let scores = pairwise_from_clusters(&[1, 1, 2, 2, 2], &[1, 1, 1, 2, 2]);
        assert_eq!(scores, PairScores { true_positives: 2, false_positives: 2, false_negatives: 2 });
        assert_eq!(scores.precision(), 0.5);
        assert_eq!(scores.recall(), 0.5);
        assert_eq!(scores.f1(), 0.5);
    }

    #[test]
    fn cluster_labels_need_not_match_entity_ids() {
        let scores = pairwise_from_clusters(&[7, 7, 9, 9, 9, 4], &[100, 100, 5, 5, 5, 3]);
        assert_eq!(scores, PairScores { true_positives: 4, false_positives: 0, false_negatives: 0 });
        assert_eq!(scores.f1(), 1.0);
    }

    #[test]
    fn one_big_cluster_finds_everything_with_low_precision() {
        // Truth: 3 people with 2, 2 and 1 records: 2 true pairs. Predicted: all 5 together: 10 pairs.
        let scores = pairwise_from_clusters(&[1, 1, 2, 2, 3], &[0; 5]);
        assert_eq!(scores, PairScores { true_positives: 2, false_positives: 8, false_negatives: 0 });
        assert_eq!(scores.precision(), 0.2);
        assert_eq!(scores.recall(), 1.0);
        assert!((scores.f1() - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn predicting_no_pairs_has_precision_one_and_recall_zero() {
        let scores = pairwise_from_clusters(&[1, 1, 2], &[1, 2, 3]);
        assert_eq!(scores, PairScores { true_positives: 0, false_positives: 0, false_negatives: 1 });
        assert_eq!(scores.precision(), 1.0);
        assert_eq!(scores.recall(), 0.0);
        assert_eq!(scores.f1(), 0.0);
    }

    #[test]
    fn empty_truth_and_prediction_score_perfectly() {
        let scores = pairwise_from_clusters(&[], &[]);
        assert_eq!(scores, PairScores::default());
        assert_eq!((scores.precision(), scores.recall(), scores.f1()), (1.0, 1.0, 1.0));
    }

    #[test]
    fn all_wrong_pairs_score_zero() {
        let scores = pairwise_from_clusters(&[1, 2, 3, 3], &[1, 1, 2, 3]);
        assert_eq!(scores, PairScores { true_positives: 0, false_positives: 1, false_negatives: 1 });
        assert_eq!((scores.precision(), scores.recall(), scores.f1()), (0.0, 0.0, 0.0));
    }

    #[test]
    #[should_panic(expected = "one truth label")]
    fn clusters_of_different_lengths_are_rejected() {
        pairwise_from_clusters(&[1, 2], &[1]);
    }

    #[test]
    fn links_are_scored_as_sets() {
        let truth = [(0, 0), (1, 2), (2, 1)];
        let predicted = [(0, 0), (1, 2), (1, 2), (2, 2)];
        let scores = pairwise_links(&truth, &predicted);
        assert_eq!(scores, PairScores { true_positives: 2, false_positives: 1, false_negatives: 1 });
        assert!((scores.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((scores.recall() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn true_links_pair_rows_of_the_same_person() {
        let row = |entity_id| Record {
            record_id: String::new(),
            entity_id,
            given_name: None,
            family_name: None,
            birth_date: None,
            email: None,
            phone: None,
            address_line: None,
            postcode: None,
            city: None,
        };
        let a = [row(1), row(2), row(3)];
        let b = [row(3), row(4), row(1)];
        assert_eq!(true_links(&a, &b), [(0, 2), (2, 0)]);
    }
}
