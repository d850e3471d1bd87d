//! Next best offer as plain Rust: per-customer caps and cool-downs, the propensity of an offer
//! learned from its responses (a Beta posterior, with an optimistic bonus that lets new offers
//! be tried), and the ranking of eligible offers by expected value.

/// How often one customer may see and take an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Most presentations in the window; 0 means no limit.
    pub max_presentations: u32,
    /// Most acceptances in the window (at least 1).
    pub max_acceptances: u32,
    /// Seconds the counts run over; `None` means the whole validity.
    pub window_secs: Option<i64>,
    /// Seconds after a refusal during which the offer is not presented again.
    pub cooldown_after_refusal_secs: i64,
}

impl Default for Caps {
    fn default() -> Self {
        Self { max_presentations: 0, max_acceptances: 1, window_secs: None, cooldown_after_refusal_secs: 30 * 86_400 }
    }
}

/// What one customer has done with one offer, within the caps' window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CustomerHistory {
    /// Presentations in the window.
    pub presentations: u32,
    /// Acceptances in the window.
    pub acceptances: u32,
    /// The latest refusal, seconds since the epoch.
    pub last_refusal: Option<i64>,
}

/// Why an offer cannot be presented to a customer now, by their own history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapOutcome {
    /// It may be presented.
    Open,
    /// A presentation or acceptance cap is reached.
    CapReached,
    /// Refused within the cool-down.
    RecentlyRefused,
}

impl Caps {
    /// Whether the offer may be presented to a customer with `history` at `now`.
    pub fn check(&self, history: &CustomerHistory, now: i64) -> CapOutcome {
        if history.last_refusal.is_some_and(|t| now - t < self.cooldown_after_refusal_secs) {
            return CapOutcome::RecentlyRefused;
        }
        let presented_out = self.max_presentations > 0 && history.presentations >= self.max_presentations;
        if presented_out || history.acceptances >= self.max_acceptances.max(1) {
            return CapOutcome::CapReached;
        }
        CapOutcome::Open
    }
}

/// Prior acceptance rate of an offer nobody has answered yet, as a Beta(α, β) prior worth
/// `PRIOR_STRENGTH` presentations.
pub const PRIOR_RATE: f64 = 0.1;
/// How many presentations the prior counts for.
pub const PRIOR_STRENGTH: f64 = 10.0;
/// Offers presented fewer times than this are explored: ranked by an optimistic estimate.
pub const EXPLORE_BELOW: u64 = 30;
/// Standard deviations added to the estimate of an explored offer (about the 90th percentile).
const OPTIMISM: f64 = 1.28;

/// An offer's estimated acceptance probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Propensity {
    /// Posterior mean: (accepted + α) / (presented + α + β).
    pub mean: f64,
    /// The mean plus an optimistic bonus while the offer has few presentations; the mean after.
    pub optimistic: f64,
}

/// The propensity of an offer presented `presented` times and accepted `accepted` times.
pub fn propensity(presented: u64, accepted: u64) -> Propensity {
    let accepted = accepted.min(presented) as f64;
    let a = accepted + PRIOR_RATE * PRIOR_STRENGTH;
    let b = (presented as f64 - accepted) + (1.0 - PRIOR_RATE) * PRIOR_STRENGTH;
    let mean = a / (a + b);
    let optimistic = if presented < EXPLORE_BELOW {
        let sd = (a * b / ((a + b) * (a + b) * (a + b + 1.0))).sqrt();
        (mean + OPTIMISM * sd).min(1.0)
    } else {
        mean
    };
    Propensity { mean, optimistic }
}

/// An eligible offer to rank.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its index in the caller's list.
    pub index: usize,
    /// Its estimated acceptance probability.
    pub propensity: Propensity,
    /// What an acceptance is worth, in minor units.
    pub business_value_minor: i64,
    /// Tie-breaker, higher first.
    pub priority: i32,
}

/// A ranked offer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    /// The candidate's index.
    pub index: usize,
    /// propensity × business value (by the mean), in minor units.
    pub expected_value_minor: f64,
    /// True when the optimistic bonus put it above an offer of higher expected value.
    pub exploration: bool,
}

/// Ranks candidates by optimistic expected value (priority, then index, breaking ties). An
/// offer is marked as exploration when an offer ranked below it has a higher expected value
/// by the mean.
pub fn rank(candidates: &[Candidate]) -> Vec<Ranked> {
    let value = |c: &Candidate, p: f64| p * c.business_value_minor.max(0) as f64;
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    order.sort_by(|x, y| {
        value(y, y.propensity.optimistic)
            .total_cmp(&value(x, x.propensity.optimistic))
            .then(y.priority.cmp(&x.priority))
            .then(x.index.cmp(&y.index))
    });
    let mut best_below = vec![f64::NEG_INFINITY; order.len() + 1];
    for i in (0..order.len()).rev() {
        best_below[i] = best_below[i + 1].max(value(order[i], order[i].propensity.mean));
    }
    order
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let expected = value(c, c.propensity.mean);
            Ranked { index: c.index, expected_value_minor: expected, exploration: best_below[i + 1] > expected }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn caps_count_presentations_acceptances_and_refusals() {
        let caps = Caps { max_presentations: 3, max_acceptances: 1, window_secs: Some(7 * DAY), ..Caps::default() };
        let now = 100 * DAY;
        assert_eq!(caps.check(&CustomerHistory::default(), now), CapOutcome::Open);
        let seen = CustomerHistory { presentations: 3, ..Default::default() };
        assert_eq!(caps.check(&seen, now), CapOutcome::CapReached);
        let took = CustomerHistory { acceptances: 1, ..Default::default() };
        assert_eq!(caps.check(&took, now), CapOutcome::CapReached);
        let refused = CustomerHistory { last_refusal: Some(now - 29 * DAY), ..Default::default() };
        assert_eq!(caps.check(&refused, now), CapOutcome::RecentlyRefused);
        let long_ago = CustomerHistory { last_refusal: Some(now - 31 * DAY), ..Default::default() };
        assert_eq!(caps.check(&long_ago, now), CapOutcome::Open);
        let unlimited = Caps { max_presentations: 0, ..caps };
        assert_eq!(
            unlimited.check(&CustomerHistory { presentations: 1000, ..Default::default() }, now),
            CapOutcome::Open
        );
    }

    #[test]
    fn propensity_is_the_beta_posterior_mean_and_optimism_fades_with_evidence() {
        // No answer yet: the prior, 1 / 10.
        let fresh = propensity(0, 0);
        assert!((fresh.mean - 0.1).abs() < 1e-12);
        // Beta(1, 9): variance 9 / (100 × 11); sd ≈ 0.0905, so optimistic ≈ 0.1 + 1.28 × 0.0905.
        assert!((fresh.optimistic - (0.1 + 1.28 * (9.0f64 / 1100.0).sqrt())).abs() < 1e-12);
        // 50 of 200 accepted: (50 + 1) / (200 + 10).
        let known = propensity(200, 50);
        assert!((known.mean - 51.0 / 210.0).abs() < 1e-12);
        assert_eq!(known.optimistic, known.mean, "no bonus past the exploration threshold");
        // Acceptances beyond presentations (a cap overrun recorded late) are clamped.
        assert!(propensity(1, 5).mean <= 1.0);
    }

    #[test]
    fn a_new_offer_is_explored_above_a_known_one_of_slightly_higher_value() {
        let known = Candidate { index: 0, propensity: propensity(500, 100), business_value_minor: 1000, priority: 0 };
        let fresh = Candidate { index: 1, propensity: propensity(0, 0), business_value_minor: 1500, priority: 0 };
        let ranked = rank(&[known.clone(), fresh]);
        assert_eq!(ranked[0].index, 1);
        assert!(ranked[0].exploration, "picked for its optimistic estimate");
        assert!(!ranked[1].exploration);
        // Once well known, the same new offer loses on expected value.
        let tried = Candidate { index: 1, propensity: propensity(500, 20), business_value_minor: 1500, priority: 0 };
        let ranked = rank(&[known, tried]);
        assert_eq!((ranked[0].index, ranked[0].exploration), (0, false));
        assert!((ranked[0].expected_value_minor - 1000.0 * 101.0 / 510.0).abs() < 1e-9);
    }

    #[test]
    fn priority_breaks_ties_of_equal_value() {
        let c =
            |index, priority| Candidate { index, propensity: propensity(100, 10), business_value_minor: 500, priority };
        let ranked = rank(&[c(0, 1), c(1, 5)]);
        assert_eq!(ranked[0].index, 1);
    }
}
