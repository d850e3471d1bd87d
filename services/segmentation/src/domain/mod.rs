//! The segmentation service's domain: plain models of customer value (RFM, purchase and spend
//! models, lifetime value, cost to serve, value tiers, the Pareto view) and of customer needs
//! (behaviour clusters, product co-purchase clusters). No I/O; the API and store wrap them.

pub mod behaviour;
pub mod bgnbd;
pub mod clv;
pub mod copurchase;
pub mod cost;
pub mod gamma_gamma;
pub mod history;
pub mod holdout;
pub mod kmeans;
pub mod optimize;
pub mod pareto_nbd;
pub mod rfm;
pub mod rng;
pub mod rules;
pub mod special;
pub mod tiers;

#[cfg(test)]
mod testdata;

use history::RepeatHistory;

/// Why a model could not be fitted or applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// A purchase summary that no customer can have.
    #[error("invalid history: frequency {frequency}, recency {recency}, age {age}")]
    InvalidHistory {
        /// Repeat purchases.
        frequency: u32,
        /// Weeks from first to last purchase.
        recency: f64,
        /// Weeks observed.
        age: f64,
    },
    /// Too few customers (or none with repeat purchases) to fit the model.
    #[error("not enough data to fit {model}: {reason}")]
    NotEnoughData {
        /// The model being fitted.
        model: &'static str,
        /// What was missing.
        reason: String,
    },
    /// The optimiser ended at a point where the likelihood is not finite.
    #[error("{model} did not converge")]
    NotConverged {
        /// The model being fitted.
        model: &'static str,
    },
    /// A setting outside its allowed range.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// Its allowed range.
        reason: &'static str,
    },
}

/// A model fitted by maximum likelihood, with what the fit is judged by.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit<P> {
    /// The estimated parameters.
    pub params: P,
    /// The log-likelihood of the data at those parameters.
    pub log_likelihood: f64,
    /// Customers the model was fitted on.
    pub customers: usize,
    /// Likelihood evaluations the optimiser spent.
    pub evaluations: usize,
}

/// What a repeat-purchase model (BG/NBD or Pareto/NBD) predicts for one customer.
pub trait PurchaseModel {
    /// The probability that the customer is still active at the end of observation.
    fn probability_alive(&self, history: &RepeatHistory) -> f64;

    /// Expected repeat purchases in the next `weeks`, given the history.
    fn conditional_expected_purchases(&self, history: &RepeatHistory, weeks: f64) -> f64;
}

/// Sufficient statistics shared by the purchase models' likelihoods: identical histories are
/// evaluated once and weighted, which shrinks a real base (many one-off buyers share T).
#[derive(Debug, Clone)]
pub(crate) struct GroupedHistories {
    pub(crate) histories: Vec<RepeatHistory>,
    pub(crate) weights: Vec<f64>,
    pub(crate) max_frequency: u32,
}

impl GroupedHistories {
    pub(crate) fn new(histories: &[RepeatHistory]) -> Self {
        let mut sorted = histories.to_vec();
        sorted.sort_by(|a, b| {
            a.frequency()
                .cmp(&b.frequency())
                .then(a.recency().total_cmp(&b.recency()))
                .then(a.age().total_cmp(&b.age()))
        });
        let mut grouped = Self { histories: Vec::new(), weights: Vec::new(), max_frequency: 0 };
        for h in sorted {
            if grouped.histories.last() == Some(&h) {
                if let Some(w) = grouped.weights.last_mut() {
                    *w += 1.0;
                }
            } else {
                grouped.histories.push(h);
                grouped.weights.push(1.0);
                grouped.max_frequency = grouped.max_frequency.max(h.frequency());
            }
        }
        grouped
    }
}
