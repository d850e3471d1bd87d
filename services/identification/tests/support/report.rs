//! What the accuracy tests print and compare: cluster labels per record, a pair's
//! evidence on one line, and pairwise scores (shared by the generated-file and FEBRL
//! accuracy tests and the cleansing benchmark; each uses some of it).
#![allow(dead_code)]

use idic_identification::domain::matching::blocking::Slot;
use idic_identification::domain::matching::compare::Comparison;
use idic_identification::domain::matching::engine::Matcher;
use idic_synth::eval::PairScores;

/// A cluster label per record slot: the cluster's index, or a label of its own for a
/// record left alone.
pub fn cluster_labels(clusters: &[Vec<Slot>], records: usize) -> Vec<u64> {
    let mut labels: Vec<u64> = (0..records as u64).map(|i| i + 1_000_000_000).collect();
    for (cluster_id, members) in clusters.iter().enumerate() {
        for &slot in members {
            labels[slot as usize] = cluster_id as u64;
        }
    }
    labels
}

/// Every field's level and weight, as `field=level:weight`.
pub fn evidence_line(matcher: &Matcher, comparison: &Comparison) -> String {
    let evidence: Vec<String> = matcher
        .evidence(comparison)
        .iter()
        .map(|e| format!("{}={}:{:.1}", e.field.name(), e.level, e.weight))
        .collect();
    evidence.join(" ")
}

/// Precision, recall and F1 with the counts behind them.
pub fn scores_line(scores: &PairScores) -> String {
    format!("precision {:.5} recall {:.5} F1 {:.5} ({scores:?})", scores.precision(), scores.recall(), scores.f1())
}
