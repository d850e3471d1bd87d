//! A customer's purchase history reduced to what the purchase models read: how many repeat
//! purchases, when the last one was, how long the customer has been observed, and what the
//! repeat purchases were worth. Time is in weeks, the unit of the published CDNOW results.

use chrono::NaiveDate;

use super::ModelError;

/// Days in the models' unit of time.
pub const DAYS_PER_WEEK: f64 = 7.0;

/// One purchase: its day and amount (in the currency's major unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Purchase {
    /// The day of purchase.
    pub on: NaiveDate,
    /// What was spent.
    pub amount: f64,
}

/// The (x, tₓ, T) summary the BG/NBD and Pareto/NBD models are fitted on, checked once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RepeatHistory {
    frequency: u32,
    recency: f64,
    age: f64,
}

impl RepeatHistory {
    /// `frequency` repeat purchases (x), the last at `recency` weeks after the first (tₓ), the
    /// customer observed for `age` weeks since the first purchase (T).
    pub fn new(frequency: u32, recency: f64, age: f64) -> Result<Self, ModelError> {
        let valid = age.is_finite()
            && recency.is_finite()
            && age > 0.0
            && (0.0..=age).contains(&recency)
            && (frequency > 0 || recency == 0.0);
        if valid {
            Ok(Self { frequency, recency, age })
        } else {
            Err(ModelError::InvalidHistory { frequency, recency, age })
        }
    }

    /// Repeat purchases (x).
    pub fn frequency(&self) -> u32 {
        self.frequency
    }

    /// Weeks from the first to the last purchase (tₓ).
    pub fn recency(&self) -> f64 {
        self.recency
    }

    /// Weeks from the first purchase to the end of observation (T).
    pub fn age(&self) -> f64 {
        self.age
    }
}

/// A customer's summarised history over an observation window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerHistory {
    /// The purchase-count summary.
    pub repeat: RepeatHistory,
    /// Mean value of the repeat purchases (the Gamma-Gamma model's z̄), if any.
    pub mean_repeat_spend: Option<f64>,
    /// Everything spent in the window, the first purchase included.
    pub total_spend: f64,
    /// Weeks from the last purchase to the end of observation (RFM recency).
    pub weeks_since_last: f64,
}

/// Summarises the purchases made up to and including `observed_until`, as Fader, Hardie and
/// Lee do for CDNOW: purchases on the same day are one transaction (amounts added), the first
/// transaction starts the customer's clock and is not a repeat. `None` when nothing was bought
/// in the window, or when the only purchases fall on the last observed day (T would be zero).
pub fn summarise(purchases: &[Purchase], observed_until: NaiveDate) -> Option<CustomerHistory> {
    let mut days: Vec<(NaiveDate, f64)> = Vec::new();
    let mut sorted: Vec<&Purchase> = purchases.iter().filter(|p| p.on <= observed_until).collect();
    sorted.sort_by_key(|p| p.on);
    for p in sorted {
        match days.last_mut() {
            Some((day, amount)) if *day == p.on => *amount += p.amount,
            _ => days.push((p.on, p.amount)),
        }
    }
    let (first, _) = *days.first()?;
    let (last, _) = *days.last()?;
    let weeks = |from: NaiveDate, to: NaiveDate| (to - from).num_days() as f64 / DAYS_PER_WEEK;
    let repeats = &days[1..];
    let repeat = RepeatHistory::new(repeats.len() as u32, weeks(first, last), weeks(first, observed_until)).ok()?;
    let mean_repeat_spend =
        (!repeats.is_empty()).then(|| repeats.iter().map(|(_, a)| a).sum::<f64>() / repeats.len() as f64);
    Some(CustomerHistory {
        repeat,
        mean_repeat_spend,
        total_spend: days.iter().map(|(_, a)| a).sum(),
        weeks_since_last: weeks(last, observed_until),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testdata;

    #[test]
    fn summarising_cdnow_transactions_reproduces_the_published_summary() {
        let calibration_end = NaiveDate::from_ymd_opt(1997, 9, 30).expect("valid date");
        let purchases = testdata::cdnow_transactions();
        let summary = testdata::cdnow_summary();
        assert_eq!(purchases.len(), summary.len());
        for (id, (bought, published)) in purchases.iter().zip(&summary).enumerate() {
            let ours =
                summarise(bought, calibration_end).expect("every CDNOW customer bought in the calibration window");
            assert_eq!(ours.repeat.frequency(), published.history.frequency(), "customer {}", id + 1);
            assert!((ours.repeat.recency() - published.history.recency()).abs() < 0.006, "customer {}", id + 1);
            assert!((ours.repeat.age() - published.history.age()).abs() < 0.006, "customer {}", id + 1);
            let spend = ours.mean_repeat_spend.unwrap_or(0.0);
            assert!((spend - published.mean_repeat_spend).abs() < 0.006, "customer {}: {spend}", id + 1);
        }
    }

    #[test]
    fn same_day_purchases_are_one_transaction() {
        let day = |d| NaiveDate::from_ymd_opt(2025, 1, d).expect("valid date");
        let purchases = [
            Purchase { on: day(1), amount: 10.0 },
            Purchase { on: day(8), amount: 5.0 },
            Purchase { on: day(8), amount: 7.0 },
            Purchase { on: day(20), amount: 99.0 },
        ];
        let h = summarise(&purchases, day(15)).expect("bought in the window");
        assert_eq!(h.repeat.frequency(), 1);
        assert_eq!(h.repeat.recency(), 1.0);
        assert_eq!(h.repeat.age(), 2.0);
        assert_eq!(h.mean_repeat_spend, Some(12.0));
        assert_eq!(h.total_spend, 22.0);
        assert_eq!(h.weeks_since_last, 1.0);
    }

    #[test]
    fn histories_that_cannot_happen_are_rejected() {
        assert!(RepeatHistory::new(0, 1.0, 2.0).is_err());
        assert!(RepeatHistory::new(2, 3.0, 2.0).is_err());
        assert!(RepeatHistory::new(0, 0.0, 0.0).is_err());
        assert!(RepeatHistory::new(1, f64::NAN, 2.0).is_err());
        assert!(RepeatHistory::new(2, 1.5, 2.0).is_ok());
    }
}
