//! Synthetic customer files with known truth, for measuring record-linkage accuracy and for demos.
//!
//! [`population()`] draws a set of realistic UK people living in households; [`dedup_file`] and
//! [`link_files`] capture them as customer files the way channels really do (typos, nicknames,
//! moved house, formats, blanks), keeping the true person behind every row in
//! [`Record::entity_id`]; [`eval`] scores a matcher's output against that truth.
//!
//! Every output is a pure function of its seed and arguments (for a given version of this crate
//! and of `rand`, which `Cargo.lock` pins), so accuracy figures are reproducible.

mod address;
mod corrupt;
pub mod eval;
mod files;
mod formats;
mod names;
mod noise;
mod places;
mod population;
mod tables;

pub use corrupt::Corruption;
pub use files::{Record, dedup_file, link_files, write_csv};
pub use population::{Person, Population, population};

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// Given names and their usual nicknames or short forms ("William" → "Bill", "Will", ...).
///
/// This is the table the generator draws nickname corruptions from, so a matcher may use it too.
pub fn nicknames() -> &'static [(&'static str, &'static [&'static str])] {
    names::NICKNAMES
}

/// The generator used everywhere: a fixed algorithm, so a seed means the same data on every platform.
pub(crate) type SynthRng = Xoshiro256PlusPlus;

/// A generator for one use (`stream`) of a caller's seed, so that passing the same seed to
/// [`population()`] and [`dedup_file`] does not correlate their draws.
pub(crate) fn rng_for(seed: u64, stream: u64) -> SynthRng {
    SynthRng::seed_from_u64(mix(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// True with probability `p` (clamped to 0..=1); draws nothing when `p` is zero, so disabled
/// corruptions do not shift the random stream of the others.
pub(crate) fn chance(rng: &mut SynthRng, p: f64) -> bool {
    p > 0.0 && rng.random::<f64>() < p
}

/// SplitMix64 finaliser: a cheap, well-mixed hash of a 64-bit key.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A fast, fixed hasher for the integer keys of internal sets and maps (SipHash's resistance to
/// flooding is not needed here, and it dominated the generation time).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        mix(self.0)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv1a(self.0, bytes);
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = mix(self.0 ^ x);
    }

    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

/// A `HashSet` with [`MixHasher`].
pub(crate) type FastSet<T> = HashSet<T, BuildHasherDefault<MixHasher>>;
/// A `HashMap` with [`MixHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<MixHasher>>;

/// FNV-1a over `bytes`, continuing from `state` (start from 0 for a fresh hash).
pub(crate) fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    let mut h = state ^ 0xCBF2_9CE4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// A discrete distribution over `0..len` given by relative weights, sampled by binary search.
#[derive(Debug, Clone)]
pub(crate) struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    /// A distribution proportional to `weights` (which must not all be zero).
    pub(crate) fn new(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut total = 0.0;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                total += w.max(0.0);
                total
            })
            .collect();
        Self { cumulative }
    }

    /// Zipf-like weights `1 / (rank + offset)^exponent` for ranks `0..len`: a long tail.
    pub(crate) fn zipf(len: usize, offset: f64, exponent: f64) -> Self {
        Self::new((0..len).map(|rank| 1.0 / (rank as f64 + offset).powf(exponent)))
    }

    /// One index drawn from the distribution.
    pub(crate) fn sample(&self, rng: &mut SynthRng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = rng.random::<f64>() * total;
        self.cumulative.partition_point(|&c| c <= x).min(self.cumulative.len().saturating_sub(1))
    }

    /// The probability of index `i`.
    #[cfg(test)]
    pub(crate) fn probability(&self, i: usize) -> f64 {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let below = if i == 0 { 0.0 } else { self.cumulative[i - 1] };
        (self.cumulative[i] - below) / total
    }
}
