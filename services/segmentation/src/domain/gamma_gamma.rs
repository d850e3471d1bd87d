//! The Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"): a customer's purchase
//! values vary around their own mean, which varies across customers; fitted on repeat buyers,
//! it shrinks each customer's observed mean towards the population's to estimate their spend.

use super::{Fit, ModelError, optimize::nelder_mead, special::ln_gamma};

/// Gamma-Gamma parameters: each purchase ~ Gamma(p, ν), ν ~ Gamma(q, γ).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    /// Shape of a single purchase's value.
    pub p: f64,
    /// Shape of the per-customer rate distribution.
    pub q: f64,
    /// Scale of the per-customer rate distribution.
    pub gamma: f64,
}

/// A repeat buyer's spend: how many repeat purchases and their mean value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendHistory {
    frequency: u32,
    mean_spend: f64,
}

impl SpendHistory {
    /// `frequency` ≥ 1 repeat purchases of mean value `mean_spend` > 0.
    pub fn new(frequency: u32, mean_spend: f64) -> Result<Self, ModelError> {
        if frequency >= 1 && mean_spend.is_finite() && mean_spend > 0.0 {
            Ok(Self { frequency, mean_spend })
        } else {
            Err(ModelError::NotEnoughData {
                model: "Gamma-Gamma",
                reason: format!("needs repeat purchases of positive value, got {frequency} of {mean_spend}"),
            })
        }
    }
}

impl GammaGamma {
    /// Fits the model by maximum likelihood on repeat buyers.
    pub fn fit(spends: &[SpendHistory]) -> Result<Fit<Self>, ModelError> {
        if spends.len() < 2 {
            return Err(ModelError::NotEnoughData {
                model: "Gamma-Gamma",
                reason: "fewer than two repeat buyers".into(),
            });
        }
        let objective = |l: &[f64]| -Self { p: l[0].exp(), q: l[1].exp(), gamma: l[2].exp() }.log_likelihood(spends);
        let min = nelder_mead(objective, &[0.0; 3], 1e-13, 20_000);
        if !min.value.is_finite() || min.value == f64::MAX {
            return Err(ModelError::NotConverged { model: "Gamma-Gamma" });
        }
        let params = Self { p: min.point[0].exp(), q: min.point[1].exp(), gamma: min.point[2].exp() };
        Ok(Fit { params, log_likelihood: -min.value, customers: spends.len(), evaluations: min.evaluations })
    }

    /// The log-likelihood of the observed mean spends (the density of z̄, the mean of x values).
    pub fn log_likelihood(&self, spends: &[SpendHistory]) -> f64 {
        let Self { p, q, gamma } = *self;
        let common = q * gamma.ln() - ln_gamma(q);
        spends
            .iter()
            .map(|s| {
                let x = f64::from(s.frequency);
                let (px, z) = (p * x, s.mean_spend);
                common + ln_gamma(px + q) - ln_gamma(px) + (px - 1.0) * z.ln() + px * x.ln()
                    - (px + q) * (gamma + x * z).ln()
            })
            .sum()
    }

    /// The population's mean spend per purchase, E[Z] = pγ / (q − 1) (infinite when q ≤ 1).
    pub fn population_mean_spend(&self) -> f64 {
        if self.q > 1.0 { self.p * self.gamma / (self.q - 1.0) } else { f64::INFINITY }
    }

    /// Expected value of a customer's next purchase: a weighted average of the population mean
    /// and their own mean, the weight on their own growing with their purchases.
    /// A customer without repeat purchases gets the population mean.
    pub fn expected_spend(&self, history: Option<SpendHistory>) -> f64 {
        match history {
            None => self.population_mean_spend(),
            Some(s) => {
                let x = f64::from(s.frequency);
                self.p * (self.gamma + x * s.mean_spend) / (self.p * x + self.q - 1.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testdata;

    /// Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base
    /// Analysis", CDNOW repeat buyers; the `lifetimes` documentation reports the same fit.
    const PUBLISHED: GammaGamma = GammaGamma { p: 6.25, q: 3.74, gamma: 15.44 };

    fn repeat_buyers() -> Vec<SpendHistory> {
        testdata::cdnow_summary()
            .iter()
            .filter(|row| row.history.frequency() > 0)
            .map(|row| SpendHistory::new(row.history.frequency(), row.mean_repeat_spend).expect("repeat buyer"))
            .collect()
    }

    #[test]
    fn gamma_gamma_fit_matches_fader_hardie_lee_cdnow() {
        let fit = GammaGamma::fit(&repeat_buyers()).expect("CDNOW fits");
        let p = fit.params;
        assert_eq!(fit.customers, 946);
        assert!((p.p - PUBLISHED.p).abs() < 0.01 * PUBLISHED.p, "p = {}", p.p);
        assert!((p.q - PUBLISHED.q).abs() < 0.01 * PUBLISHED.q, "q = {}", p.q);
        assert!((p.gamma - PUBLISHED.gamma).abs() < 0.01 * PUBLISHED.gamma, "gamma = {}", p.gamma);
    }

    #[test]
    fn expected_spend_lies_between_population_and_own_mean() {
        let own = SpendHistory::new(3, 100.0).expect("valid");
        let e = PUBLISHED.expected_spend(Some(own));
        let population = PUBLISHED.population_mean_spend();
        assert!(population < e && e < 100.0, "{population} < {e} < 100");
    }

    #[test]
    fn more_purchases_pull_expected_spend_towards_the_customers_own_mean() {
        let few = PUBLISHED.expected_spend(Some(SpendHistory::new(1, 100.0).expect("valid")));
        let many = PUBLISHED.expected_spend(Some(SpendHistory::new(20, 100.0).expect("valid")));
        assert!(few < many && many < 100.0);
    }

    #[test]
    fn customers_without_repeat_purchases_get_the_population_mean() {
        assert_eq!(PUBLISHED.expected_spend(None), PUBLISHED.population_mean_spend());
    }
}
