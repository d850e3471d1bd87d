//! The Fellegi–Sunter model: for every field level, m = P(level | same person) and
//! u = P(level | different people); a comparison's weight is the sum of
//! log2(m/u) over its fields plus the prior log-odds, and its match probability the
//! logistic of that. Exact name agreements are weighed by how rare the name is
//! (u = the name's frequency).
//!
//! People sharing an address (a household) also share their family name, landline
//! and sometimes an email far more often than strangers do, so those three fields
//! have a second u, conditional on the address agreeing: agreement there says little.
//!
//! u is estimated from random pairs (strangers dominate them) and, for the household
//! u, from pairs sharing an address but clearly different people. m is estimated by
//! expectation–maximisation with u fixed, on training sets of candidate pairs
//! selected by some fields (the same email; the same birth date and a similar given
//! or family name; similar names), each set estimating m of the fields it was not
//! selected by.

use serde::{Deserialize, Serialize};

use super::compare::{Comparison, FIELD_COUNT, Field, MAX_LEVELS};

/// Fields whose agreement is common among people sharing an address.
pub const HOUSEHOLD_FIELDS: [Field; 3] = [Field::FamilyName, Field::Phone, Field::Email];

/// Which u applies to a field of a comparison: agreement on some fields makes
/// agreement on others much more likely among strangers too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// No dependence: the plain u.
    Plain,
    /// The addresses agree: household u for family name, phone and email.
    SameAddress,
    /// The full names agree: namesakes' u for email (local parts are made of names).
    SameName,
    /// The addresses differ: the moved-house m for the phone (a move often changes it).
    Moved,
}

/// The context of `field` in a comparison with these levels.
#[inline]
pub fn context(levels: &[u8; FIELD_COUNT], field: Field) -> Context {
    let same_name = matches!(levels[Field::GivenName as usize], 1 | 2) && levels[Field::FamilyName as usize] == 1;
    if field == Field::Email && same_name {
        Context::SameName
    } else if HOUSEHOLD_FIELDS.contains(&field) && matches!(levels[Field::Location as usize], 1 | 2) {
        Context::SameAddress
    } else if field == Field::Phone && levels[Field::Location as usize] == 5 {
        Context::Moved
    } else {
        Context::Plain
    }
}

/// Whether a comparison's addresses agree.
#[inline]
pub fn same_address(c: &Comparison) -> bool {
    matches!(c.levels[Field::Location as usize], 1 | 2)
}

/// Populations smaller than this use the average u for exact names (frequencies of
/// a handful of records mean nothing).
pub const MIN_POPULATION_FOR_FREQUENCIES: usize = 1_000;

/// Smallest probability an estimated m or u may take (keeps weights finite).
const FLOOR: f64 = 1e-7;

/// The model's parameters: per field, a distribution over the non-missing levels
/// for matches (m) and non-matches (u), and the prior probability that two
/// records picked at random are the same person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameters {
    /// m[field][level]; level 0 (missing) unused.
    pub m: [[f64; MAX_LEVELS]; FIELD_COUNT],
    /// m of the phone for pairs whose addresses differ ([`Context::Moved`]).
    pub m_moved: [[f64; MAX_LEVELS]; FIELD_COUNT],
    /// u[field][level]; level 0 (missing) unused.
    pub u: [[f64; MAX_LEVELS]; FIELD_COUNT],
    /// u of the household fields ([`HOUSEHOLD_FIELDS`]) for pairs whose address agrees.
    pub u_same_address: [[f64; MAX_LEVELS]; FIELD_COUNT],
    /// u of the email for pairs whose full names agree.
    pub u_same_name: [[f64; MAX_LEVELS]; FIELD_COUNT],
    /// P(same person) for a random pair of records.
    pub prior: f64,
}

impl Parameters {
    /// The m of `field` at a comparison with these levels.
    #[inline]
    pub fn m_for(&self, levels: &[u8; FIELD_COUNT], field: Field) -> &[f64; MAX_LEVELS] {
        match context(levels, field) {
            Context::Moved => &self.m_moved[field as usize],
            _ => &self.m[field as usize],
        }
    }

    /// The u of `field` at a comparison with these levels.
    #[inline]
    pub fn u_for(&self, levels: &[u8; FIELD_COUNT], field: Field) -> &[f64; MAX_LEVELS] {
        match context(levels, field) {
            Context::Plain | Context::Moved => &self.u[field as usize],
            Context::SameAddress => &self.u_same_address[field as usize],
            Context::SameName => &self.u_same_name[field as usize],
        }
    }

    /// Parameters set from experience, used until the data has been fitted: typical
    /// agreement rates of duplicates and of strangers in a customer file of
    /// `population` records, with one duplicate per `population` pairs.
    pub fn initial(population: usize) -> Self {
        let mut m = [[0.0; MAX_LEVELS]; FIELD_COUNT];
        let mut u = [[0.0; MAX_LEVELS]; FIELD_COUNT];
        let mut set = |field: Field, ms: &[f64], us: &[f64]| {
            m[field as usize][1..=ms.len()].copy_from_slice(ms);
            u[field as usize][1..=us.len()].copy_from_slice(us);
        };
        // Levels after "missing", in the order of Field::levels.
        set(Field::GivenName, &[0.85, 0.03, 0.06, 0.03, 0.01, 0.02], &[0.01, 0.0005, 0.003, 0.03, 0.005, 0.9515]);
        set(Field::FamilyName, &[0.88, 0.06, 0.03, 0.03], &[0.005, 0.002, 0.02, 0.973]);
        set(Field::BirthDate, &[0.90, 0.03, 0.05, 0.02], &[0.00004, 0.00004, 0.003, 0.99692]);
        set(Field::Email, &[0.70, 0.10, 0.20], &[0.000001, 0.00001, 0.999989]);
        set(Field::Phone, &[0.75, 0.05, 0.20], &[0.000001, 0.00001, 0.999989]);
        set(Field::Location, &[0.70, 0.05, 0.03, 0.02, 0.20], &[0.00001, 0.000001, 0.0005, 0.01, 0.989489]);
        set(Field::NationalId, &[0.98, 0.02], &[0.0000001, 0.9999999]);
        let mut u_same_address = u;
        let mut household = |field: Field, us: &[f64]| {
            u_same_address[field as usize][1..=us.len()].copy_from_slice(us);
        };
        household(Field::FamilyName, &[0.80, 0.02, 0.02, 0.16]);
        household(Field::Phone, &[0.5, 0.001, 0.499]);
        household(Field::Email, &[0.03, 0.05, 0.92]);
        let mut u_same_name = u;
        u_same_name[Field::Email as usize][1..4].copy_from_slice(&[0.001, 0.3, 0.699]);
        let mut m_moved = m;
        m_moved[Field::Phone as usize][1..4].copy_from_slice(&[0.55, 0.02, 0.43]);
        let population = population.max(100) as f64;
        Self { m, m_moved, u, u_same_address, u_same_name, prior: 1.0 / population }
    }
}

/// Relative frequencies of names in the population (for exact-agreement weights).
pub trait NameFrequencies {
    /// Number of records the frequencies are over.
    fn population(&self) -> usize;
    /// Share of records with this given-name hash (0 when unseen).
    fn given(&self, hash: u64) -> f64;
    /// Share of records with this family-name hash (0 when unseen).
    fn family(&self, hash: u64) -> f64;
}

/// No frequency information: every exact name weighs the average.
#[derive(Debug, Clone, Copy)]
pub struct NoFrequencies;

impl NameFrequencies for NoFrequencies {
    fn population(&self) -> usize {
        0
    }
    fn given(&self, _: u64) -> f64 {
        0.0
    }
    fn family(&self, _: u64) -> f64 {
        0.0
    }
}

/// A model ready to score: the parameters and their weights in bits.
#[derive(Debug, Clone)]
pub struct Model {
    parameters: Parameters,
    weights: [[f32; MAX_LEVELS]; FIELD_COUNT],
    weights_same_address: [[f32; MAX_LEVELS]; FIELD_COUNT],
    weights_same_name: [[f32; MAX_LEVELS]; FIELD_COUNT],
    weights_moved: [[f32; MAX_LEVELS]; FIELD_COUNT],
    prior_weight: f32,
}

/// One field's contribution to a score.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// The field.
    pub field: Field,
    /// The level's name ("exact", "exact_rare_value", ...).
    pub level: &'static str,
    /// Weight in bits.
    pub weight: f64,
}

impl Model {
    /// A model with `parameters`.
    pub fn new(parameters: Parameters) -> Self {
        let mut weights = [[0f32; MAX_LEVELS]; FIELD_COUNT];
        let mut weights_same_address = [[0f32; MAX_LEVELS]; FIELD_COUNT];
        let mut weights_same_name = [[0f32; MAX_LEVELS]; FIELD_COUNT];
        let mut weights_moved = [[0f32; MAX_LEVELS]; FIELD_COUNT];
        for field in Field::ALL {
            let (f, levels) = (field as usize, field.level_count());
            weights[f] = level_weights(&parameters.m[f], &parameters.u[f], levels);
            weights_same_address[f] = level_weights(&parameters.m[f], &parameters.u_same_address[f], levels);
            weights_same_name[f] = level_weights(&parameters.m[f], &parameters.u_same_name[f], levels);
            weights_moved[f] = level_weights(&parameters.m_moved[f], &parameters.u[f], levels);
        }
        let prior = parameters.prior.clamp(1e-12, 0.5);
        let prior_weight = (prior / (1.0 - prior)).log2() as f32;
        Self { parameters, weights, weights_same_address, weights_same_name, weights_moved, prior_weight }
    }

    /// The parameters.
    pub fn parameters(&self) -> &Parameters {
        &self.parameters
    }

    /// The prior log-odds in bits.
    pub fn prior_weight(&self) -> f64 {
        f64::from(self.prior_weight)
    }

    /// Total weight in bits (prior included) of a comparison.
    #[inline]
    pub fn weight(&self, c: &Comparison, frequencies: &impl NameFrequencies) -> f32 {
        let mut total = self.prior_weight;
        for field in Field::ALL {
            total += self.field_weight(field, c, frequencies);
        }
        total
    }

    /// Weight in bits of one field of a comparison (0 when missing).
    #[inline]
    pub fn field_weight(&self, field: Field, c: &Comparison, frequencies: &impl NameFrequencies) -> f32 {
        let level = c.levels[field as usize] as usize;
        let context = context(&c.levels, field);
        // Swapped names were counted under the other field: their frequency is not known.
        let plain = context == Context::Plain && !c.swapped_names;
        match (field, level) {
            (Field::GivenName, 1) if plain => {
                self.exact_name_weight(field, c.given_value, |h| frequencies.given(h), frequencies)
            }
            (Field::FamilyName, 1) if plain => {
                self.exact_name_weight(field, c.family_value, |h| frequencies.family(h), frequencies)
            }
            _ => match context {
                Context::Plain => self.weights[field as usize][level],
                Context::SameAddress => self.weights_same_address[field as usize][level],
                Context::SameName => self.weights_same_name[field as usize][level],
                Context::Moved => self.weights_moved[field as usize][level],
            },
        }
    }

    fn exact_name_weight(
        &self,
        field: Field,
        value: Option<u64>,
        frequency: impl Fn(u64) -> f64,
        frequencies: &impl NameFrequencies,
    ) -> f32 {
        let population = frequencies.population();
        let average = self.weights[field as usize][1];
        let Some(value) = value else { return average };
        if population < MIN_POPULATION_FOR_FREQUENCIES {
            return average;
        }
        // u for agreeing on this very value is the chance a stranger has it too.
        let share = frequency(value).max(1.0 / population as f64);
        let m = self.parameters.m[field as usize][1].max(FLOOR);
        (m / share).log2() as f32
    }

    /// Which way round names compare better: true when `swapped` outweighs `straight`
    /// by more than a small penalty (swaps are rarer than straight agreement).
    pub fn prefer_swapped(&self, straight: &Comparison, swapped: &Comparison) -> bool {
        let names = |c: &Comparison| {
            self.weights[Field::GivenName as usize][c.levels[0] as usize]
                + self.weights[Field::FamilyName as usize][c.levels[1] as usize]
        };
        names(swapped) - 2.0 > names(straight)
    }

    /// The per-field evidence of a comparison, as the API reports it.
    pub fn evidence(&self, c: &Comparison, frequencies: &impl NameFrequencies) -> Vec<Evidence> {
        Field::ALL
            .iter()
            .map(|&field| {
                let level = c.levels[field as usize] as usize;
                let weight = f64::from(self.field_weight(field, c, frequencies));
                let name = field.levels()[level];
                let name = match (field, level) {
                    (Field::GivenName | Field::FamilyName, 1) if c.swapped_names => "exact_swapped",
                    (Field::GivenName | Field::FamilyName, 1)
                        if frequencies.population() >= MIN_POPULATION_FOR_FREQUENCIES
                            && weight > f64::from(self.weights[field as usize][1]) + 1.0 =>
                    {
                        "exact_rare_value"
                    }
                    (Field::GivenName | Field::FamilyName, 1)
                        if frequencies.population() >= MIN_POPULATION_FOR_FREQUENCIES
                            && weight < f64::from(self.weights[field as usize][1]) - 1.0 =>
                    {
                        "exact_common_value"
                    }
                    _ => name,
                };
                Evidence { field, level: name, weight }
            })
            .collect()
    }
}

/// log2(m/u) per level (0 for "missing" and unused levels).
fn level_weights(m: &[f64; MAX_LEVELS], u: &[f64; MAX_LEVELS], levels: usize) -> [f32; MAX_LEVELS] {
    let mut weights = [0f32; MAX_LEVELS];
    for (level, weight) in weights.iter_mut().enumerate().take(levels).skip(1) {
        *weight = (m[level].max(FLOOR) / u[level].max(FLOOR)).log2() as f32;
    }
    weights
}

/// Probability of a match from a total weight in bits.
pub fn probability(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

/// Weight in bits at which the match probability is `p`.
pub fn weight_for_probability(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    (p / (1.0 - p)).log2()
}

/// The outcome of fitting the model to a population.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fit {
    /// The fitted parameters.
    pub parameters: Parameters,
    /// EM iterations run, over all training sets.
    pub iterations: usize,
    /// Whether every EM run stopped moving (largest change below 1e-6).
    pub converged: bool,
    /// Log-likelihood of the candidate pairs under the fitted mixture (prior EM).
    pub log_likelihood: f64,
    /// Share of candidate pairs estimated to be matches.
    pub candidate_match_share: f64,
    /// Candidate pairs the fit used.
    pub candidate_pairs: u64,
    /// Random pairs u was estimated from.
    pub random_pairs: u64,
    /// Pairs sharing an address but clearly different people, for the household u.
    pub household_pairs: u64,
    /// Pairs with the same full name but clearly different people, for the namesakes' u.
    pub namesake_pairs: u64,
}

/// Fewest estimated matches a training set needs to estimate m.
const MIN_TRAINING_MATCHES: f64 = 100.0;

/// A set of candidate pairs selected by some fields, which estimates m of the others.
struct TrainingSet {
    /// Fields the set was selected by (ignored in its EM).
    selected_by: &'static [Field],
    /// Whether a comparison belongs to the set.
    includes: fn(&Comparison) -> bool,
}

const TRAINING_SETS: [TrainingSet; 4] = [
    TrainingSet { selected_by: &[Field::Email], includes: |c| c.level(Field::Email) == 1 },
    TrainingSet {
        selected_by: &[Field::BirthDate, Field::GivenName],
        includes: |c| c.level(Field::BirthDate) == 1 && matches!(c.level(Field::GivenName), 1..=3),
    },
    // Files without emails still teach how birth dates differ among matches: pairs
    // with similar names near each other (in a large file, similar names alone are
    // mostly namesakes).
    TrainingSet {
        selected_by: &[Field::GivenName, Field::FamilyName, Field::Location],
        includes: |c| {
            matches!(c.level(Field::GivenName), 1..=3)
                && matches!(c.level(Field::FamilyName), 1..=2)
                && matches!(c.level(Field::Location), 1..=3)
        },
    },
    TrainingSet {
        selected_by: &[Field::BirthDate, Field::FamilyName],
        includes: |c| c.level(Field::BirthDate) == 1 && matches!(c.level(Field::FamilyName), 1..=2),
    },
];

/// Fits the model.
///
/// `candidates` are comparisons of candidate pairs (blocked), a sample of
/// `candidate_total` in all; `random` are comparisons of random pairs. u comes from
/// `random` (where it has at least 1,000 observations, else from `start`), the
/// household u from candidates sharing an address whose given name and birth date
/// both differ. m comes from EM on each training set with u fixed, averaged over the
/// sets that estimate it. The prior is then fitted by EM on all candidates (m and u
/// fixed) and spread over all pairs of the `population`.
pub fn fit(
    candidates: &[Comparison],
    candidate_total: u64,
    random: &[Comparison],
    population: usize,
    start: &Parameters,
    max_iterations: usize,
) -> Fit {
    let u = level_distribution(random.iter(), &start.u, 1_000.0);
    let strangers_at_one_address = candidates
        .iter()
        .filter(|c| same_address(c) && c.level(Field::GivenName) == 6 && c.level(Field::BirthDate) == 4);
    let household_pairs = strangers_at_one_address.clone().count() as u64;
    // Where hardly any strangers share an address the file holds no households to
    // speak of: agreement at one address then means what it means anywhere.
    let mut u_same_address = level_distribution(strangers_at_one_address, &u, 50.0);
    let namesakes = candidates.iter().filter(|c| {
        context(&c.levels, Field::Email) == Context::SameName
            && c.level(Field::BirthDate) == 4
            && c.level(Field::Location) == 5
    });
    let namesake_pairs = namesakes.clone().count() as u64;
    let mut u_same_name = level_distribution(namesakes, &start.u_same_name, 50.0);
    for field in Field::ALL {
        if !HOUSEHOLD_FIELDS.contains(&field) {
            u_same_address[field as usize] = u[field as usize];
        }
        if field != Field::Email {
            u_same_name[field as usize] = u[field as usize];
        }
    }
    let mut parameters =
        Parameters { m: start.m, m_moved: start.m_moved, u, u_same_address, u_same_name, prior: start.prior };

    let mut iterations = 0;
    let mut converged = true;
    let mut m_sum = [[0f64; MAX_LEVELS]; FIELD_COUNT];
    let mut m_moved_sum = [[0f64; MAX_LEVELS]; FIELD_COUNT];
    let mut m_sets = [0usize; FIELD_COUNT];
    for set in &TRAINING_SETS {
        let selected: Vec<&Comparison> = candidates.iter().filter(|c| (set.includes)(c)).collect();
        if selected.len() < 100 {
            continue;
        }
        let estimate: Vec<Field> = Field::ALL.into_iter().filter(|f| !set.selected_by.contains(f)).collect();
        let run = em(&selected, &parameters, &estimate, 0.5, max_iterations);
        iterations += run.iterations;
        // A set with few matches (a file without duplicates) teaches nothing about them;
        // nor does a run where a field's exact agreement is rarer among matches than
        // complete disagreement.
        let matches = run.share * selected.len() as f64;
        let plausible = estimate.iter().all(|&field| {
            let m = &run.m[field as usize];
            m[1] >= m[field.level_count() - 1]
        });
        if matches < MIN_TRAINING_MATCHES || !plausible {
            continue;
        }
        converged &= run.converged;
        for field in estimate {
            let f = field as usize;
            for (sum, m) in m_sum[f].iter_mut().zip(run.m[f]).take(field.level_count()).skip(1) {
                *sum += m;
            }
            for (sum, m) in m_moved_sum[f].iter_mut().zip(run.m_moved[f]).take(field.level_count()).skip(1) {
                *sum += m;
            }
            m_sets[f] += 1;
        }
    }
    for field in Field::ALL {
        let f = field as usize;
        if m_sets[f] > 0 {
            for (m, sum) in parameters.m[f].iter_mut().zip(m_sum[f]).take(field.level_count()).skip(1) {
                *m = (sum / m_sets[f] as f64).max(FLOOR);
            }
            for (m, sum) in parameters.m_moved[f].iter_mut().zip(m_moved_sum[f]).take(field.level_count()).skip(1) {
                *m = (sum / m_sets[f] as f64).max(FLOOR);
            }
        }
    }

    let all: Vec<&Comparison> = candidates.iter().collect();
    let prior_run = em(&all, &parameters, &[], 0.1, max_iterations);
    iterations += prior_run.iterations;
    converged &= prior_run.converged;
    let all_pairs = population as f64 * (population as f64 - 1.0) / 2.0;
    let expected_matches = prior_run.share * candidate_total as f64;
    parameters.prior = if all_pairs > 0.0 { (expected_matches / all_pairs).clamp(1e-12, 0.5) } else { start.prior };
    Fit {
        parameters,
        iterations,
        converged,
        log_likelihood: prior_run.log_likelihood,
        candidate_match_share: prior_run.share,
        candidate_pairs: candidates.len() as u64,
        random_pairs: random.len() as u64,
        household_pairs,
        namesake_pairs,
    }
}

/// Level frequencies per field over `comparisons` (add-half smoothed); a field with
/// fewer than `min_observed` non-missing observations keeps `fallback`.
fn level_distribution<'a>(
    comparisons: impl Iterator<Item = &'a Comparison> + Clone,
    fallback: &[[f64; MAX_LEVELS]; FIELD_COUNT],
    min_observed: f64,
) -> [[f64; MAX_LEVELS]; FIELD_COUNT] {
    let mut out = *fallback;
    for field in Field::ALL {
        let f = field as usize;
        let levels = field.level_count();
        let mut counts = [0f64; MAX_LEVELS];
        for c in comparisons.clone() {
            counts[c.levels[f] as usize] += 1.0;
        }
        let observed: f64 = counts[1..levels].iter().sum();
        if observed >= min_observed {
            for (level, count) in counts.iter().enumerate().take(levels).skip(1) {
                out[f][level] = (count + 0.5) / (observed + 0.5 * (levels - 1) as f64);
            }
        }
    }
    out
}

/// One EM run's result.
struct EmRun {
    m: [[f64; MAX_LEVELS]; FIELD_COUNT],
    m_moved: [[f64; MAX_LEVELS]; FIELD_COUNT],
    share: f64,
    iterations: usize,
    converged: bool,
    log_likelihood: f64,
}

/// EM over `pairs` with u fixed (household u where addresses agree): estimates m of
/// the fields in `estimate` and the share of matches; fields not in `estimate` keep
/// their m and are ignored in the likelihood, unless `estimate` is empty: then every
/// field counts and only the share is estimated.
fn em(pairs: &[&Comparison], start: &Parameters, estimate: &[Field], share: f64, max_iterations: usize) -> EmRun {
    let counted: Vec<Field> = if estimate.is_empty() { Field::ALL.to_vec() } else { estimate.to_vec() };
    // Identical vectors are weighed once, with their count.
    let mut patterns: std::collections::HashMap<[u8; FIELD_COUNT], f64> = std::collections::HashMap::new();
    for c in pairs {
        *patterns.entry(c.levels).or_default() += 1.0;
    }
    let patterns: Vec<([u8; FIELD_COUNT], f64)> = patterns.into_iter().collect();
    let total: f64 = patterns.iter().map(|(_, n)| n).sum();
    let mut run =
        EmRun { m: start.m, m_moved: start.m_moved, share, iterations: 0, converged: false, log_likelihood: 0.0 };
    while run.iterations < max_iterations && total > 0.0 {
        run.iterations += 1;
        let mut m_next = [[0f64; MAX_LEVELS]; FIELD_COUNT];
        let mut m_moved_next = [[0f64; MAX_LEVELS]; FIELD_COUNT];
        let mut matched = 0.0;
        run.log_likelihood = 0.0;
        for (levels, count) in &patterns {
            let mut pm = run.share;
            let mut pu = 1.0 - run.share;
            for &field in &counted {
                let (f, l) = (field as usize, levels[field as usize] as usize);
                if l != 0 {
                    let u = start.u_for(levels, field)[l];
                    let m = if context(levels, field) == Context::Moved { run.m_moved[f][l] } else { run.m[f][l] };
                    pm *= m.max(FLOOR);
                    pu *= u.max(FLOOR);
                }
            }
            let posterior = pm / (pm + pu);
            run.log_likelihood += count * (pm + pu).ln();
            matched += count * posterior;
            for &field in estimate {
                let (f, l) = (field as usize, levels[field as usize] as usize);
                if context(levels, field) == Context::Moved {
                    m_moved_next[f][l] += count * posterior;
                } else {
                    m_next[f][l] += count * posterior;
                }
            }
        }
        let mut change: f64 = 0.0;
        for &field in estimate {
            let f = field as usize;
            let levels = field.level_count();
            for (current, next) in [(&mut run.m[f], &m_next[f]), (&mut run.m_moved[f], &m_moved_next[f])] {
                let sum: f64 = next[1..levels].iter().sum();
                if sum > 0.0 {
                    for (m, next) in current.iter_mut().zip(next).take(levels).skip(1) {
                        let value = (next / sum).max(FLOOR);
                        change = change.max((value - *m).abs());
                        *m = value;
                    }
                }
            }
        }
        let next_share = (matched / total).clamp(1e-9, 1.0 - 1e-9);
        change = change.max((next_share - run.share).abs());
        run.share = next_share;
        if change < 1e-6 {
            run.converged = true;
            break;
        }
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comparison(levels: [u8; FIELD_COUNT]) -> Comparison {
        Comparison { levels, ..Comparison::default() }
    }

    #[test]
    fn weights_are_log2_of_m_over_u() {
        let model = Model::new(Parameters::initial(10_000));
        let exact_names = comparison([1, 1, 0, 0, 0, 0, 0]);
        let expected = (0.85f64 / 0.01).log2() + (0.88f64 / 0.005).log2() + (1.0f64 / 9_999.0).log2();
        assert!((f64::from(model.weight(&exact_names, &NoFrequencies)) - expected).abs() < 1e-3);
        let missing = comparison([0; FIELD_COUNT]);
        assert!((f64::from(model.weight(&missing, &NoFrequencies)) - model.prior_weight()).abs() < 1e-6);
        assert!((probability(0.0) - 0.5).abs() < 1e-12);
        assert!((weight_for_probability(probability(7.5)) - 7.5).abs() < 1e-9);
    }

    #[test]
    fn rare_names_weigh_more_than_common_ones() {
        struct Names;
        impl NameFrequencies for Names {
            fn population(&self) -> usize {
                100_000
            }
            fn given(&self, hash: u64) -> f64 {
                if hash == 1 { 0.03 } else { 0.00002 }
            }
            fn family(&self, _: u64) -> f64 {
                0.0
            }
        }
        let model = Model::new(Parameters::initial(100_000));
        let with_given = |h| Comparison { given_value: Some(h), ..comparison([1, 0, 0, 0, 0, 0, 0]) };
        let common = model.field_weight(Field::GivenName, &with_given(1), &Names);
        let rare = model.field_weight(Field::GivenName, &with_given(2), &Names);
        assert!((f64::from(common) - (0.85f64 / 0.03).log2()).abs() < 1e-3);
        assert!((f64::from(rare) - (0.85f64 / 0.00002).log2()).abs() < 1e-3);
    }

    /// EM recovers m and the share of matches of the mixture the pairs were drawn from.
    #[test]
    fn em_recovers_known_parameters() {
        // Three binary fields (given name, family name, birth date: exact or different);
        // 20,000 matching and 80,000 non-matching pairs, every cell at its expectation.
        let fields = [Field::GivenName, Field::FamilyName, Field::BirthDate];
        let different = [6u8, 4, 4];
        let m_true = [0.9, 0.85, 0.95];
        let u_true = [0.05, 0.02, 0.01];
        let mut candidates = Vec::new();
        for pattern in 0..8u8 {
            let agrees = |i: usize| pattern & (1 << i) != 0;
            let p =
                |probs: &[f64; 3]| (0..3).map(|i| if agrees(i) { probs[i] } else { 1.0 - probs[i] }).product::<f64>();
            let count = (20_000.0 * p(&m_true) + 80_000.0 * p(&u_true)).round() as usize;
            let mut levels = [0u8; FIELD_COUNT];
            for (i, &f) in fields.iter().enumerate() {
                levels[f as usize] = if agrees(i) { 1 } else { different[i] };
            }
            candidates.extend(std::iter::repeat_n(comparison(levels), count));
        }
        // u known (as it is from random pairs); m starts away from the truth.
        let mut start = Parameters::initial(1_000);
        for (i, &field) in fields.iter().enumerate() {
            let (f, d) = (field as usize, different[i] as usize);
            start.m[f] = [0.0; MAX_LEVELS];
            start.m[f][1] = 0.6;
            start.m[f][d] = 0.4;
            start.u[f] = [0.0; MAX_LEVELS];
            start.u[f][1] = u_true[i];
            start.u[f][d] = 1.0 - u_true[i];
        }
        let pairs: Vec<&Comparison> = candidates.iter().collect();
        let run = em(&pairs, &start, &fields, 0.5, 1_000);
        assert!(run.converged);
        assert!((run.share - 0.2).abs() < 0.002, "share {}", run.share);
        for (i, &field) in fields.iter().enumerate() {
            let m = run.m[field as usize][1];
            assert!((m - m_true[i]).abs() < 0.002, "m {field:?}: {m}");
        }
    }
}
