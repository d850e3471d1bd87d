//! The matcher: a population with its model. Scores a contact against its
//! candidates, scores every candidate pair of the population in parallel, fits the
//! model to the population, and finds duplicate clusters.

use std::hash::{BuildHasher as _, Hasher as _};

use super::blocking::{Population, Slot};
use super::cluster::{ClusterRules, Link, cluster};
use super::compare::{Comparison, compare};
use super::model::{Evidence, Fit, Model, Parameters, fit, probability, weight_for_probability};
use super::record::MatchRecord;

/// Candidate pairs and random pairs a fit looks at, at most.
const FIT_CANDIDATE_SAMPLE: usize = 2_000_000;
const FIT_RANDOM_SAMPLE: usize = 1_000_000;
/// Populations below this keep the initial parameters (too few pairs to learn from).
pub const MIN_POPULATION_TO_FIT: usize = 2_000;

/// A population and the model that weighs its pairs.
#[derive(Debug)]
pub struct Matcher {
    /// The records and their blocking index.
    pub population: Population,
    /// The Fellegi–Sunter model.
    pub model: Model,
}

/// A scored candidate.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The candidate's slot.
    pub slot: Slot,
    /// How the two compared.
    pub comparison: Comparison,
    /// Total weight in bits.
    pub weight: f32,
}

impl Scored {
    /// Match probability.
    pub fn probability(&self) -> f64 {
        probability(f64::from(self.weight))
    }
}

/// Thresholds of a deduplication, as match probabilities.
#[derive(Debug, Clone, Copy)]
pub struct DedupThresholds {
    /// Pairs at or above this are linked (merged).
    pub link: f64,
    /// Pairs at or above this (and below `link`) are worth a human look.
    pub review: f64,
}

/// The default auto-link threshold (match probability).
pub const DEFAULT_LINK_PROBABILITY: f64 = 0.9;
/// The default review threshold (match probability).
pub const DEFAULT_REVIEW_PROBABILITY: f64 = 0.5;

impl Default for DedupThresholds {
    fn default() -> Self {
        Self { link: DEFAULT_LINK_PROBABILITY, review: DEFAULT_REVIEW_PROBABILITY }
    }
}

/// The duplicates found in a population.
#[derive(Debug, Clone, Default)]
pub struct Dedup {
    /// Candidate pairs scored.
    pub pairs_scored: u64,
    /// Pairs at or above the review threshold.
    pub links: Vec<Link>,
    /// Clusters of records linked at or above the link threshold (no chaining).
    pub clusters: Vec<Vec<Slot>>,
}

impl Matcher {
    /// A matcher over `population` with the initial parameters for its size.
    pub fn new(population: Population) -> Self {
        let model = Model::new(Parameters::initial(population.len()));
        Self { population, model }
    }

    /// Compares two records and weighs the comparison.
    #[inline]
    pub fn score(&self, a: &MatchRecord, b: &MatchRecord) -> (Comparison, f32) {
        let comparison = compare(a, b, |straight, swapped| self.model.prefer_swapped(straight, swapped));
        let weight = self.model.weight(&comparison, &self.population);
        (comparison, weight)
    }

    /// Weight of two slots' records (very negative when one is gone).
    pub fn score_slots(&self, a: Slot, b: Slot) -> f32 {
        match (self.population.get(a), self.population.get(b)) {
            (Some(x), Some(y)) => self.score(x, y).1,
            _ => f32::MIN,
        }
    }

    /// The best-weighing candidate for `query` among the population, skipping slots
    /// `skip` refuses.
    pub fn best_match(&self, query: &MatchRecord, skip: impl Fn(Slot) -> bool) -> Option<Scored> {
        let mut candidates = Vec::new();
        self.population.candidates(query, &mut candidates);
        let mut best: Option<Scored> = None;
        for slot in candidates {
            if skip(slot) {
                continue;
            }
            let Some(record) = self.population.get(slot) else { continue };
            let (comparison, weight) = self.score(query, record);
            if best.as_ref().is_none_or(|b| weight > b.weight) {
                best = Some(Scored { slot, comparison, weight });
            }
        }
        best
    }

    /// Per-field evidence of a comparison.
    pub fn evidence(&self, comparison: &Comparison) -> Vec<Evidence> {
        self.model.evidence(comparison, &self.population)
    }

    /// Weights of `pairs`, computed on `threads` threads.
    pub fn score_pairs(&self, pairs: &[(Slot, Slot)], threads: usize) -> Vec<f32> {
        let mut weights = vec![0f32; pairs.len()];
        let chunk = pairs.len().div_ceil(threads.max(1)).max(1);
        std::thread::scope(|scope| {
            for (pairs, out) in pairs.chunks(chunk).zip(weights.chunks_mut(chunk)) {
                scope.spawn(move || {
                    for (&(a, b), w) in pairs.iter().zip(out.iter_mut()) {
                        *w = self.score_slots(a, b);
                    }
                });
            }
        });
        weights
    }

    /// Fits the model to the population: m by EM over (a sample of) the candidate
    /// pairs, u from random pairs. Answers the fit; the matcher then uses it.
    /// Populations under [`MIN_POPULATION_TO_FIT`] keep the initial parameters.
    pub fn fit(&mut self, max_iterations: usize) -> Option<Fit> {
        let population = self.population.len();
        if population < MIN_POPULATION_TO_FIT {
            self.model = Model::new(Parameters::initial(population));
            return None;
        }
        let pairs = self.population.candidate_pairs();
        let step = pairs.len().div_ceil(FIT_CANDIDATE_SAMPLE).max(1);
        let candidates: Vec<Comparison> =
            pairs.iter().step_by(step).filter_map(|&(a, b)| self.compare_slots(a, b)).collect();
        let slots: Vec<Slot> = self.population.slots().collect();
        let random_pairs = FIT_RANDOM_SAMPLE.min(population * 10);
        let random: Vec<Comparison> = (0..random_pairs as u64)
            .filter_map(|k| {
                let a = slots[(sample_hash(k, 1) % slots.len() as u64) as usize];
                let b = slots[(sample_hash(k, 2) % slots.len() as u64) as usize];
                if a == b { None } else { self.compare_slots(a, b) }
            })
            .collect();
        let start = self.model.parameters().clone();
        let result = fit(&candidates, pairs.len() as u64, &random, population, &start, max_iterations);
        self.model = Model::new(result.parameters.clone());
        Some(result)
    }

    fn compare_slots(&self, a: Slot, b: Slot) -> Option<Comparison> {
        let (x, y) = (self.population.get(a)?, self.population.get(b)?);
        Some(compare(x, y, |straight, swapped| self.model.prefer_swapped(straight, swapped)))
    }

    /// Finds duplicates: scores every candidate pair on `threads` threads, keeps pairs
    /// at or above the review threshold, and clusters those at or above the link
    /// threshold so that no two members of a cluster are clearly different people
    /// (every pair inside weighs at least 0 bits, i.e. probability ≥ ½) and no
    /// cannot-link pair shares a cluster.
    pub fn deduplicate(
        &self,
        thresholds: DedupThresholds,
        threads: usize,
        cannot_link: impl Fn(Slot, Slot) -> bool,
    ) -> Dedup {
        let pairs = self.population.candidate_pairs();
        let weights = self.score_pairs(&pairs, threads);
        let review = weight_for_probability(thresholds.review) as f32;
        let links: Vec<Link> = pairs
            .iter()
            .zip(&weights)
            .filter(|(_, w)| **w >= review)
            .map(|(&(a, b), &weight)| Link { a, b, weight })
            .collect();
        let rules = ClusterRules {
            link_weight: weight_for_probability(thresholds.link) as f32,
            floor_weight: 0.0,
            max_size: 50,
        };
        let clusters = cluster(&links, rules, |a, b| self.score_slots(a, b), cannot_link);
        Dedup { pairs_scored: pairs.len() as u64, links, clusters }
    }
}

/// A deterministic pseudo-random number for sample `k` (stream `stream`).
fn sample_hash(k: u64, stream: u64) -> u64 {
    let mut hasher = std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().build_hasher();
    hasher.write_u64(stream);
    hasher.write_u64(k);
    hasher.finish()
}
