//! RFM: each customer's raw recency, frequency and monetary value over a window, and their
//! quintile scores against the whole base (5 = most recent, most frequent, highest spend), the
//! objective grading that is redone at every rescoring.

use super::history::CustomerHistory;

/// Raw RFM values of one customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rfm {
    /// Weeks since the last purchase (smaller is better).
    pub recency_weeks: f64,
    /// Purchases (transactions) in the window, the first included.
    pub frequency: u32,
    /// Total spend in the window.
    pub monetary: f64,
}

impl From<&CustomerHistory> for Rfm {
    fn from(h: &CustomerHistory) -> Self {
        Self { recency_weeks: h.weeks_since_last, frequency: h.repeat.frequency() + 1, monetary: h.total_spend }
    }
}

/// A quintile score from 1 (bottom fifth of the base) to 5 (top fifth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quintile(u8);

impl Quintile {
    /// The score, 1 to 5.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// A customer's three quintile scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RfmScore {
    /// Recency score (5 = bought most recently).
    pub recency: Quintile,
    /// Frequency score (5 = buys most often).
    pub frequency: Quintile,
    /// Monetary score (5 = spends most).
    pub monetary: Quintile,
}

impl RfmScore {
    /// The conventional three-digit cell, e.g. "545".
    pub fn cell(&self) -> String {
        format!("{}{}{}", self.recency.0, self.frequency.0, self.monetary.0)
    }
}

/// Scores every customer against the base, in the input's order. Equal values always get the
/// same score (a customer's grade must not depend on how ties were ordered), so with many ties
/// (e.g. most customers buying once) some quintiles stay empty.
pub fn score(base: &[Rfm]) -> Vec<RfmScore> {
    let recency = quintiles(&base.iter().map(|c| -c.recency_weeks).collect::<Vec<_>>());
    let frequency = quintiles(&base.iter().map(|c| f64::from(c.frequency)).collect::<Vec<_>>());
    let monetary = quintiles(&base.iter().map(|c| c.monetary).collect::<Vec<_>>());
    (0..base.len()).map(|i| RfmScore { recency: recency[i], frequency: frequency[i], monetary: monetary[i] }).collect()
}

/// Quintile of each value (higher value, higher score): 1 + ⌊5 · (share of the base strictly
/// below it)⌋, so ties share the score of their lowest rank.
fn quintiles(values: &[f64]) -> Vec<Quintile> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    values
        .iter()
        .map(|v| {
            let below = sorted.partition_point(|s| s.total_cmp(v).is_lt()) as f64;
            Quintile(1 + ((5.0 * below / n).floor() as u8).min(4))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(recency_weeks: f64, frequency: u32, monetary: f64) -> Rfm {
        Rfm { recency_weeks, frequency, monetary }
    }

    #[test]
    fn ten_distinct_customers_fill_each_quintile_with_two() {
        let base: Vec<Rfm> = (0..10).map(|i| customer(f64::from(i), 10 - i as u32, f64::from(i) * 10.0)).collect();
        let scores = score(&base);
        for q in 1..=5u8 {
            assert_eq!(scores.iter().filter(|s| s.monetary.get() == q).count(), 2);
        }
        // Customer 0 bought most recently and most often, but spent least.
        assert_eq!(scores[0].cell(), "551");
        assert_eq!(scores[9].cell(), "115");
    }

    #[test]
    fn equal_values_get_equal_scores() {
        let base = vec![customer(1.0, 1, 5.0); 7].into_iter().chain([customer(0.0, 3, 50.0)]).collect::<Vec<_>>();
        let scores = score(&base);
        assert!(scores[..7].iter().all(|s| *s == scores[0]));
        assert_eq!(scores[0].cell(), "111");
        assert_eq!(scores[7].cell(), "555");
    }

    #[test]
    fn higher_values_never_score_lower() {
        let mut rng = crate::domain::rng::SplitMix64::new(9);
        let base: Vec<Rfm> =
            (0..500).map(|_| customer(rng.below(52) as f64, 1 + rng.below(8) as u32, rng.gamma(1.0, 0.02))).collect();
        let scores = score(&base);
        for (a, sa) in base.iter().zip(&scores) {
            for (b, sb) in base.iter().zip(&scores) {
                if a.monetary > b.monetary {
                    assert!(sa.monetary >= sb.monetary);
                }
                if a.recency_weeks < b.recency_weeks {
                    assert!(sa.recency >= sb.recency);
                }
            }
        }
        assert!(scores.iter().all(|s| (1..=5).contains(&s.frequency.get())));
    }

    #[test]
    fn raw_rfm_counts_the_first_purchase() {
        use crate::domain::history::{Purchase, summarise};
        use chrono::NaiveDate;
        let day = |d| NaiveDate::from_ymd_opt(2025, 3, d).expect("valid date");
        let purchases = [Purchase { on: day(1), amount: 20.0 }, Purchase { on: day(8), amount: 30.0 }];
        let rfm = Rfm::from(&summarise(&purchases, day(22)).expect("bought"));
        assert_eq!(rfm, customer(2.0, 2, 50.0));
    }
}
