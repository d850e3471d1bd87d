//! Sampling tables built once from the static lists in `names` and `places`.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use crate::names::{FAMILY, FEMALE_GIVEN, MALE_GIVEN, NICKNAMES, TAIL_PREFIXES, TAIL_SUFFIXES};
use crate::places::{CITIES, COMMON_STREETS, EMAIL_DOMAINS, STREET_BASES, SUFFIXES};
use crate::{SynthRng, Weighted};

/// Every precomputed distribution the generator samples from.
pub(crate) struct Tables {
    /// Distribution over [`MALE_GIVEN`].
    pub male: Weighted,
    /// Distribution over [`FEMALE_GIVEN`].
    pub female: Weighted,
    /// Listed family names followed by the synthetic tail.
    pub family: Vec<String>,
    /// Distribution over `family`.
    pub family_weights: Weighted,
    /// Nicknames by given name.
    pub nicknames: HashMap<&'static str, &'static [&'static str]>,
    /// Distribution over [`COMMON_STREETS`].
    pub common_streets: Weighted,
    /// Distribution over [`STREET_BASES`].
    pub street_bases: Weighted,
    /// Distribution over [`SUFFIXES`].
    pub suffixes: Weighted,
    /// Street id of each base and suffix pair (`base * SUFFIXES.len() + suffix`): the index in
    /// [`COMMON_STREETS`] when the pair spells a common street ("Queens" "Road"), else
    /// `COMMON_STREETS.len()` plus the pair's index. One street, one id.
    pub street_ids: Vec<u32>,
    /// Distribution over [`CITIES`].
    pub cities: Weighted,
    /// Distribution over [`EMAIL_DOMAINS`].
    pub domains: Weighted,
}

/// The tables, built on first use.
pub(crate) static TABLES: LazyLock<Tables> = LazyLock::new(build);

fn build() -> Tables {
    let listed: HashSet<&str> = FAMILY.iter().copied().collect();
    let mut family: Vec<String> = FAMILY.iter().map(|s| (*s).to_owned()).collect();
    // The rare tail: interleave prefixes so that no one prefix dominates the low ranks.
    for suffix in TAIL_SUFFIXES {
        for prefix in TAIL_PREFIXES {
            let name = format!("{prefix}{suffix}");
            if !listed.contains(name.as_str()) {
                family.push(name);
            }
        }
    }
    // Listed names follow a Zipf-like curve ("Smith" about 1.2% of people); every tail name is as
    // rare as the rarest listed one, so the tail holds about a third of all people.
    let rarest = 1.0 / (FAMILY.len() as f64 + 11.0).powf(0.95);
    let family_weights = Weighted::new(
        (0..family.len()).map(|i| if i < FAMILY.len() { 1.0 / (i as f64 + 12.0).powf(0.95) } else { rarest }),
    );
    let common: HashMap<&str, usize> = COMMON_STREETS.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let street_ids = STREET_BASES
        .iter()
        .flat_map(|base| SUFFIXES.iter().map(move |suffix| format!("{base} {}", suffix.0)))
        .enumerate()
        .map(|(pair, name)| common.get(name.as_str()).copied().unwrap_or(COMMON_STREETS.len() + pair) as u32)
        .collect();
    Tables {
        male: Weighted::zipf(MALE_GIVEN.len(), 6.0, 1.0),
        female: Weighted::zipf(FEMALE_GIVEN.len(), 6.0, 1.0),
        family,
        family_weights,
        nicknames: NICKNAMES.iter().copied().collect(),
        common_streets: Weighted::zipf(COMMON_STREETS.len(), 2.0, 1.0),
        street_bases: Weighted::zipf(STREET_BASES.len(), 10.0, 0.8),
        suffixes: Weighted::new(SUFFIXES.iter().map(|s| s.2)),
        street_ids,
        cities: Weighted::new(CITIES.iter().map(|c| c.1)),
        domains: Weighted::new(EMAIL_DOMAINS.iter().map(|d| d.1)),
    }
}

impl Tables {
    /// A given name of the given sex, drawn by frequency.
    pub(crate) fn given(&self, female: bool, rng: &mut SynthRng) -> &'static str {
        if female { FEMALE_GIVEN[self.female.sample(rng)] } else { MALE_GIVEN[self.male.sample(rng)] }
    }

    /// A family name drawn by frequency.
    pub(crate) fn family(&'static self, rng: &mut SynthRng) -> &'static str {
        &self.family[self.family_weights.sample(rng)]
    }

    /// An email domain drawn by market share.
    pub(crate) fn domain(&self, rng: &mut SynthRng) -> &'static str {
        EMAIL_DOMAINS[self.domains.sample(rng)].0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn assert_distinct(list: &[&str], what: &str) {
        let mut seen = HashSet::new();
        for name in list {
            assert!(seen.insert(*name), "{name} is listed twice among {what}");
        }
    }

    #[test]
    fn name_lists_are_large_and_without_repeats() {
        assert_distinct(MALE_GIVEN, "male given names");
        assert_distinct(FEMALE_GIVEN, "female given names");
        assert_distinct(FAMILY, "family names");
        assert_distinct(STREET_BASES, "street names");
        assert_distinct(&CITIES.iter().map(|c| c.0).collect::<Vec<_>>(), "cities");
        assert!(MALE_GIVEN.len() + FEMALE_GIVEN.len() >= 300);
        assert!(FAMILY.len() >= 500, "{} family names", FAMILY.len());
        assert!(TABLES.family.len() >= 1_500);
        assert!(STREET_BASES.len() + COMMON_STREETS.len() >= 300);
        assert!(CITIES.len() >= 100);
        assert!(NICKNAMES.len() >= 60);
    }

    #[test]
    fn nicknames_belong_to_listed_given_names() {
        assert_distinct(&NICKNAMES.iter().map(|n| n.0).collect::<Vec<_>>(), "nickname entries");
        for (name, _) in NICKNAMES {
            assert!(MALE_GIVEN.contains(name) || FEMALE_GIVEN.contains(name), "{name} is not a given name");
        }
    }

    #[test]
    fn family_names_have_a_long_tail() {
        let w = &TABLES.family_weights;
        // "Smith" is about 1.2% of people in the UK; the rare tail holds about a third.
        assert!((0.010..0.016).contains(&w.probability(0)), "Smith {}", w.probability(0));
        let top_ten: f64 = (0..10).map(|i| w.probability(i)).sum();
        assert!((0.06..0.12).contains(&top_ten), "top ten {top_ten}");
        let tail: f64 = (FAMILY.len()..TABLES.family.len()).map(|i| w.probability(i)).sum();
        assert!((0.25..0.45).contains(&tail), "tail {tail}");
    }

    #[test]
    fn common_given_names_are_a_few_percent_each() {
        let top = TABLES.male.probability(0);
        assert!((0.03..0.07).contains(&top), "{top}");
        let rarest = TABLES.female.probability(FEMALE_GIVEN.len() - 1);
        assert!(rarest < top / 20.0);
    }
}
