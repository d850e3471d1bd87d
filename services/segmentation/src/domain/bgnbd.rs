//! The BG/NBD model (Fader, Hardie & Lee 2005): while active, a customer buys at a Poisson rate
//! λ ~ Gamma(r, α); after each purchase they drop out with probability p ~ Beta(a, b). Fitted by
//! maximum likelihood on the whole base; gives expected future purchases and P(alive).

use std::ops::RangeInclusive;

use super::{
    Fit, GroupedHistories, ModelError, PurchaseModel,
    history::RepeatHistory,
    optimize::nelder_mead,
    rng::SplitMix64,
    special::{hyp2f1, ln_gamma},
};

/// BG/NBD parameters: purchase rate ~ Gamma(shape r, rate α), drop-out ~ Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    /// Shape of the purchase-rate distribution.
    pub r: f64,
    /// Rate (scale in weeks) of the purchase-rate distribution.
    pub alpha: f64,
    /// First shape of the drop-out probability distribution.
    pub a: f64,
    /// Second shape of the drop-out probability distribution.
    pub b: f64,
}

/// Relative change of the likelihood below which the fit is taken as converged.
const TOLERANCE: f64 = 1e-13;
const MAX_EVALUATIONS: usize = 20_000;

impl BgNbd {
    /// Fits the model by maximum likelihood; every customer needs at least one purchase.
    pub fn fit(histories: &[RepeatHistory]) -> Result<Fit<Self>, ModelError> {
        if !histories.iter().any(|h| h.frequency() > 0) {
            return Err(ModelError::NotEnoughData {
                model: "BG/NBD",
                reason: "no customer made a repeat purchase".into(),
            });
        }
        let data = GroupedHistories::new(histories);
        let mut table = Vec::new();
        let objective = |p: &[f64]| -Self::from_logs(p).log_likelihood_grouped(&data, &mut table);
        let min = nelder_mead(objective, &[0.0; 4], TOLERANCE, MAX_EVALUATIONS);
        let params = Self::from_logs(&min.point);
        if !min.value.is_finite() || min.value == f64::MAX {
            return Err(ModelError::NotConverged { model: "BG/NBD" });
        }
        Ok(Fit { params, log_likelihood: -min.value, customers: histories.len(), evaluations: min.evaluations })
    }

    fn from_logs(p: &[f64]) -> Self {
        Self { r: p[0].exp(), alpha: p[1].exp(), a: p[2].exp(), b: p[3].exp() }
    }

    /// The log-likelihood of the histories under these parameters.
    pub fn log_likelihood(&self, histories: &[RepeatHistory]) -> f64 {
        self.log_likelihood_grouped(&GroupedHistories::new(histories), &mut Vec::new())
    }

    fn log_likelihood_grouped(&self, data: &GroupedHistories, table: &mut Vec<[f64; 3]>) -> f64 {
        let Self { r, alpha, a, b } = *self;
        // Terms that depend on x alone are computed once per distinct x, keeping ln Γ out of
        // the per-customer loop.
        table.clear();
        let (lg_r, lg_b, lg_ab, ln_alpha, ln_a) = (ln_gamma(r), ln_gamma(b), ln_gamma(a + b), alpha.ln(), a.ln());
        for x in 0..=data.max_frequency {
            let x = f64::from(x);
            let a1 = ln_gamma(r + x) - lg_r + r * ln_alpha;
            let a2 = lg_ab + ln_gamma(b + x) - lg_b - ln_gamma(a + b + x);
            let dropout = if x > 0.0 { ln_a - (b + x - 1.0).ln() } else { 0.0 };
            table.push([a1 + a2, r + x, dropout]);
        }
        let mut total = 0.0;
        for (h, w) in data.histories.iter().zip(&data.weights) {
            let [base, rx, dropout] = table[h.frequency() as usize];
            let a3 = -rx * (alpha + h.age()).ln();
            let ll = if h.frequency() > 0 {
                let a4 = dropout - rx * (alpha + h.recency()).ln();
                let m = a3.max(a4);
                base + m + ((a3 - m).exp() + (a4 - m).exp()).ln()
            } else {
                base + a3
            };
            total += w * ll;
        }
        total
    }

    /// Expected repeat purchases of a new customer in their first `weeks`.
    pub fn expected_purchases(&self, weeks: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let a = nudge_from_one(a);
        let z = weeks / (alpha + weeks);
        (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + weeks)).powf(r) * hyp2f1(r, b, a + b - 1.0, z))
    }

    /// Draws a base of `customers` histories from the model, each observed for a number of
    /// weeks uniform in `ages`: for synthetic bases and for checking that fits recover the truth.
    ///
    /// # Panics
    ///
    /// If `ages` admits an age that is not positive.
    pub fn simulate(&self, customers: usize, ages: RangeInclusive<f64>, rng: &mut SplitMix64) -> Vec<RepeatHistory> {
        (0..customers)
            .map(|_| {
                let age = ages.start() + rng.uniform() * (ages.end() - ages.start());
                let rate = rng.gamma(self.r, self.alpha);
                let dropout = rng.beta(self.a, self.b);
                let (mut x, mut t) = (0u32, 0.0);
                loop {
                    let next = t + rng.exponential(rate);
                    if next > age {
                        break;
                    }
                    x += 1;
                    t = next;
                    if rng.uniform() < dropout {
                        break;
                    }
                }
                RepeatHistory::new(x, if x > 0 { t } else { 0.0 }, age).expect("ages are positive")
            })
            .collect()
    }

    /// The odds term that weighs "dropped out after the last purchase" against "still active".
    fn dropout_odds(&self, h: &RepeatHistory) -> f64 {
        if h.frequency() == 0 {
            return 0.0;
        }
        let x = f64::from(h.frequency());
        self.a / (self.b + x - 1.0) * ((self.alpha + h.age()) / (self.alpha + h.recency())).powf(self.r + x)
    }
}

/// The BG/NBD expectations divide by a − 1; at exactly one they are a removable singularity.
fn nudge_from_one(a: f64) -> f64 {
    if (a - 1.0).abs() < 1e-9 { 1.0 + 1e-9 } else { a }
}

impl PurchaseModel for BgNbd {
    fn probability_alive(&self, history: &RepeatHistory) -> f64 {
        1.0 / (1.0 + self.dropout_odds(history))
    }

    fn conditional_expected_purchases(&self, history: &RepeatHistory, weeks: f64) -> f64 {
        let Self { r, alpha, b, .. } = *self;
        let a = nudge_from_one(self.a);
        let x = f64::from(history.frequency());
        let horizon = alpha + history.age() + weeks;
        let z = weeks / horizon;
        let tail = ((alpha + history.age()) / horizon).powf(r + x) * hyp2f1(r + x, b + x, a + b + x - 1.0, z);
        (a + b + x - 1.0) / (a - 1.0) * (1.0 - tail) / (1.0 + self.dropout_odds(history))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testdata;

    /// Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", CDNOW, 39 weeks.
    const PUBLISHED: BgNbd = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
    const PUBLISHED_LL: f64 = -9582.4;

    fn cdnow() -> Vec<RepeatHistory> {
        testdata::cdnow_summary().iter().map(|row| row.history).collect()
    }

    fn within(ours: f64, published: f64, relative: f64) -> bool {
        (ours - published).abs() <= relative * published.abs()
    }

    #[test]
    fn bgnbd_fit_matches_fader_hardie_lee_cdnow() {
        let fit = BgNbd::fit(&cdnow()).expect("CDNOW fits");
        let p = fit.params;
        assert_eq!(fit.customers, 2357);
        assert!(within(p.r, PUBLISHED.r, 0.01), "r = {}", p.r);
        assert!(within(p.alpha, PUBLISHED.alpha, 0.01), "alpha = {}", p.alpha);
        assert!(within(p.a, PUBLISHED.a, 0.01), "a = {}", p.a);
        assert!(within(p.b, PUBLISHED.b, 0.01), "b = {}", p.b);
        assert!((fit.log_likelihood - PUBLISHED_LL).abs() < 0.1, "LL = {}", fit.log_likelihood);
    }

    #[test]
    fn log_likelihood_at_published_parameters_matches_published_value() {
        // The published parameters are rounded to three decimals, so the LL is too.
        assert!((PUBLISHED.log_likelihood(&cdnow()) - PUBLISHED_LL).abs() < 0.1);
    }

    #[test]
    fn probability_alive_is_one_for_customers_without_repeat() {
        let h = RepeatHistory::new(0, 0.0, 38.86).expect("valid");
        assert_eq!(PUBLISHED.probability_alive(&h), 1.0);
    }

    #[test]
    fn probability_alive_falls_the_longer_a_frequent_buyer_stays_away() {
        let recent = RepeatHistory::new(5, 38.0, 39.0).expect("valid");
        let lapsed = RepeatHistory::new(5, 10.0, 39.0).expect("valid");
        let p_recent = PUBLISHED.probability_alive(&recent);
        let p_lapsed = PUBLISHED.probability_alive(&lapsed);
        assert!(p_recent > 0.85 && p_lapsed < 0.05 && p_lapsed > 0.0, "{p_recent} {p_lapsed}");
    }

    #[test]
    fn conditional_expectation_for_the_first_cdnow_customer() {
        // Customer 1 in the CDNOW data: x = 2, tₓ = 30.43, T = 38.86, over the next 39 weeks;
        // Fader, Hardie & Lee's Excel implementation note reports 1.226 at the published fit.
        let h = RepeatHistory::new(2, 30.43, 38.86).expect("valid");
        let expected = PUBLISHED.conditional_expected_purchases(&h, 39.0);
        assert!((expected - 1.226).abs() < 0.001, "E[Y(39)] = {expected}");
    }

    #[test]
    fn conditional_expectation_of_a_new_customer_is_the_unconditional_one() {
        // With no time observed the history tells nothing, so both formulas must agree.
        let h = RepeatHistory::new(0, 0.0, 1e-9).expect("valid");
        let conditional = PUBLISHED.conditional_expected_purchases(&h, 52.0);
        assert!((conditional - PUBLISHED.expected_purchases(52.0)).abs() < 1e-6);
    }

    #[test]
    fn expected_purchases_grow_with_the_horizon_and_start_at_zero() {
        assert!(PUBLISHED.expected_purchases(0.0).abs() < 1e-12);
        let mut last = 0.0;
        for weeks in [1.0, 13.0, 39.0, 78.0, 260.0] {
            let e = PUBLISHED.expected_purchases(weeks);
            assert!(e > last, "E[X({weeks})] = {e}");
            last = e;
        }
    }

    #[test]
    fn fit_recovers_the_parameters_of_a_simulated_base() {
        let truth = BgNbd { r: 0.5, alpha: 6.0, a: 0.7, b: 3.0 };
        let base = truth.simulate(20_000, 26.0..=52.0, &mut SplitMix64::new(7));
        let fit = BgNbd::fit(&base).expect("simulated base fits").params;
        assert!(within(fit.r, truth.r, 0.1), "{fit:?}");
        assert!(within(fit.alpha, truth.alpha, 0.15), "{fit:?}");
        assert!(within(fit.a, truth.a, 0.25), "{fit:?}");
        assert!(within(fit.b, truth.b, 0.35), "{fit:?}");
    }

    #[test]
    fn predictions_stay_in_range_for_random_histories_and_parameters() {
        let mut rng = SplitMix64::new(11);
        for _ in 0..2_000 {
            let model = BgNbd {
                r: (rng.uniform() * 6.0 - 3.0).exp(),
                alpha: (rng.uniform() * 6.0 - 2.0).exp(),
                a: (rng.uniform() * 6.0 - 3.0).exp(),
                b: (rng.uniform() * 6.0 - 3.0).exp(),
            };
            let age = 1.0 + rng.uniform() * 100.0;
            let x = rng.below(30) as u32;
            let recency = if x == 0 { 0.0 } else { rng.uniform() * age };
            let h = RepeatHistory::new(x, recency, age).expect("valid");
            let alive = model.probability_alive(&h);
            let (near, far) =
                (model.conditional_expected_purchases(&h, 10.0), model.conditional_expected_purchases(&h, 50.0));
            assert!(alive > 0.0 && alive <= 1.0, "{model:?} {h:?}: P(alive) {alive}");
            assert!(near >= 0.0 && far >= near - 1e-9, "{model:?} {h:?}: {near} then {far}");
        }
    }

    #[test]
    fn fitting_a_base_without_repeat_purchases_is_refused() {
        let base = vec![RepeatHistory::new(0, 0.0, 10.0).expect("valid"); 10];
        assert!(matches!(BgNbd::fit(&base), Err(ModelError::NotEnoughData { .. })));
    }
}
