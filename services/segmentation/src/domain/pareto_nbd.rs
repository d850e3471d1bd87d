//! The Pareto/NBD model (Schmittlein, Morrison & Colombo 1987), the alternative to BG/NBD:
//! while active, a customer buys at a Poisson rate λ ~ Gamma(r, α); their lifetime is
//! exponential with rate μ ~ Gamma(s, β), so they may drop out at any time, not only after a
//! purchase. Likelihood and expectations as in Fader & Hardie's 2005 derivation note.

use super::{
    Fit, GroupedHistories, ModelError, PurchaseModel,
    history::RepeatHistory,
    optimize::nelder_mead,
    special::{hyp2f1, ln_gamma},
};

/// Pareto/NBD parameters: purchase rate ~ Gamma(r, α), drop-out rate ~ Gamma(s, β).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParetoNbd {
    /// Shape of the purchase-rate distribution.
    pub r: f64,
    /// Rate of the purchase-rate distribution.
    pub alpha: f64,
    /// Shape of the drop-out-rate distribution.
    pub s: f64,
    /// Rate of the drop-out-rate distribution.
    pub beta: f64,
}

impl ParetoNbd {
    /// Fits the model by maximum likelihood; slower than BG/NBD (two ₂F₁ per customer).
    pub fn fit(histories: &[RepeatHistory]) -> Result<Fit<Self>, ModelError> {
        if !histories.iter().any(|h| h.frequency() > 0) {
            return Err(ModelError::NotEnoughData {
                model: "Pareto/NBD",
                reason: "no customer made a repeat purchase".into(),
            });
        }
        let data = GroupedHistories::new(histories);
        let objective = |p: &[f64]| -Self::from_logs(p).log_likelihood_grouped(&data);
        let min = nelder_mead(objective, &[0.0; 4], 1e-13, 20_000);
        if !min.value.is_finite() || min.value == f64::MAX {
            return Err(ModelError::NotConverged { model: "Pareto/NBD" });
        }
        Ok(Fit {
            params: Self::from_logs(&min.point),
            log_likelihood: -min.value,
            customers: histories.len(),
            evaluations: min.evaluations,
        })
    }

    fn from_logs(p: &[f64]) -> Self {
        Self { r: p[0].exp(), alpha: p[1].exp(), s: p[2].exp(), beta: p[3].exp() }
    }

    /// The log-likelihood of the histories under these parameters.
    pub fn log_likelihood(&self, histories: &[RepeatHistory]) -> f64 {
        self.log_likelihood_grouped(&GroupedHistories::new(histories))
    }

    fn log_likelihood_grouped(&self, data: &GroupedHistories) -> f64 {
        let Self { r, alpha, s, beta } = *self;
        let common = -ln_gamma(r) + r * alpha.ln() + s * beta.ln();
        data.histories
            .iter()
            .zip(&data.weights)
            .map(|(h, w)| {
                let x = f64::from(h.frequency());
                let alive = -(r + x) * (alpha + h.age()).ln() - s * (beta + h.age()).ln();
                let ll = match self.ln_a0(h) {
                    Some(ln_a0) => {
                        let died = s.ln() - (r + s + x).ln() + ln_a0;
                        let m = alive.max(died);
                        m + ((alive - m).exp() + (died - m).exp()).ln()
                    }
                    None => alive,
                };
                w * (ln_gamma(r + x) + common + ll)
            })
            .sum()
    }

    /// ln A₀, the integral over drop-out times between the last purchase and T; `None` when it
    /// vanishes (the last purchase at T itself).
    fn ln_a0(&self, h: &RepeatHistory) -> Option<f64> {
        let Self { r, alpha, s, beta } = *self;
        let x = f64::from(h.frequency());
        let (big, small, b) = if alpha >= beta { (alpha, beta, s + 1.0) } else { (beta, alpha, r + x) };
        let a = r + s + x;
        let term = |t: f64| hyp2f1(a, b, a + 1.0, (big - small) / (big + t)).ln() - a * (big + t).ln();
        let (at_last, at_end) = (term(h.recency()), term(h.age()));
        let gap = at_end - at_last;
        (gap < 0.0).then(|| at_last + (-gap.exp_m1()).ln())
    }
}

impl PurchaseModel for ParetoNbd {
    fn probability_alive(&self, history: &RepeatHistory) -> f64 {
        let Self { r, alpha, s, beta } = *self;
        let x = f64::from(history.frequency());
        match self.ln_a0(history) {
            Some(ln_a0) => {
                let ln_odds = (s / (r + s + x)).ln()
                    + (r + x) * (alpha + history.age()).ln()
                    + s * (beta + history.age()).ln()
                    + ln_a0;
                1.0 / (1.0 + ln_odds.exp())
            }
            None => 1.0,
        }
    }

    fn conditional_expected_purchases(&self, history: &RepeatHistory, weeks: f64) -> f64 {
        let Self { r, alpha, s, beta } = *self;
        let x = f64::from(history.frequency());
        let t_end = beta + history.age();
        // At s = 1 the bracket's limit is ln((β+T+t)/(β+T)); nudge off the singularity.
        let s = if (s - 1.0).abs() < 1e-9 { 1.0 + 1e-9 } else { s };
        let rate = (r + x) * t_end / ((alpha + history.age()) * (s - 1.0));
        rate * (1.0 - (t_end / (t_end + weeks)).powf(s - 1.0)) * self.probability_alive(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testdata;

    /// Fader & Hardie's Pareto/NBD fit to CDNOW (the `lifetimes` documentation reports the same).
    const PUBLISHED: ParetoNbd = ParetoNbd { r: 0.553, alpha: 10.58, s: 0.606, beta: 11.67 };
    const PUBLISHED_LL: f64 = -9595.0;

    fn cdnow() -> Vec<RepeatHistory> {
        testdata::cdnow_summary().iter().map(|row| row.history).collect()
    }

    #[test]
    fn pareto_nbd_fit_matches_fader_hardie_cdnow() {
        let fit = ParetoNbd::fit(&cdnow()).expect("CDNOW fits");
        let p = fit.params;
        let within = |ours: f64, published: f64| (ours - published).abs() <= 0.01 * published;
        assert!(within(p.r, PUBLISHED.r), "r = {}", p.r);
        assert!(within(p.alpha, PUBLISHED.alpha), "alpha = {}", p.alpha);
        assert!(within(p.s, PUBLISHED.s), "s = {}", p.s);
        assert!(within(p.beta, PUBLISHED.beta), "beta = {}", p.beta);
        assert!((fit.log_likelihood - PUBLISHED_LL).abs() < 0.1, "LL = {}", fit.log_likelihood);
    }

    #[test]
    fn pareto_nbd_probability_alive_falls_with_time_since_last_purchase() {
        let recent = RepeatHistory::new(4, 38.0, 39.0).expect("valid");
        let lapsed = RepeatHistory::new(4, 5.0, 39.0).expect("valid");
        assert!(PUBLISHED.probability_alive(&recent) > PUBLISHED.probability_alive(&lapsed));
        let p = PUBLISHED.probability_alive(&lapsed);
        assert!(p > 0.0 && p < 1.0);
    }

    #[test]
    fn pareto_nbd_customer_predictions_match_direct_integration_of_the_model() {
        // CDNOW customer 1 at the published fit. The reference values integrate the model's
        // definition numerically over λ and μ (a 1,200 × 1,200 grid on log scales), without
        // the closed forms used here.
        let h = RepeatHistory::new(2, 30.43, 38.86).expect("valid");
        let alive = PUBLISHED.probability_alive(&h);
        let expected = PUBLISHED.conditional_expected_purchases(&h, 39.0);
        assert!((alive - 0.86917).abs() < 1e-4, "P(alive) = {alive}");
        assert!((expected - 1.45507).abs() < 1e-4, "E[Y(39)] = {expected}");
    }

    #[test]
    fn pareto_nbd_probability_alive_is_one_when_the_last_purchase_is_now() {
        let h = RepeatHistory::new(3, 20.0, 20.0).expect("valid");
        assert_eq!(PUBLISHED.probability_alive(&h), 1.0);
    }
}
