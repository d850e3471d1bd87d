//! Customer lifetime value over a horizon: expected purchases from a purchase model, times
//! expected spend from the Gamma-Gamma model, times the margin, discounted period by period.

use super::{ModelError, PurchaseModel, history::RepeatHistory};

/// A fraction in [0, 1]: the gross margin on a sale.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Margin(f64);

impl Margin {
    /// `value` must lie in [0, 1].
    pub fn new(value: f64) -> Result<Self, ModelError> {
        if (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(ModelError::InvalidSetting { name: "margin", reason: "must lie in [0, 1]" })
        }
    }

    /// The fraction.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// How lifetime value is projected: over `periods` periods of `period_weeks` weeks each,
/// each discounted at `discount_rate` per period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClvSettings {
    periods: u32,
    period_weeks: f64,
    discount_rate: f64,
    margin: Margin,
}

impl ClvSettings {
    /// The usual choice is a year of months: 12 periods of 52/12 weeks at 1% a month.
    pub fn new(periods: u32, period_weeks: f64, discount_rate: f64, margin: Margin) -> Result<Self, ModelError> {
        if periods == 0 {
            return Err(ModelError::InvalidSetting { name: "periods", reason: "must be at least 1" });
        }
        if !(period_weeks.is_finite() && period_weeks > 0.0) {
            return Err(ModelError::InvalidSetting { name: "period_weeks", reason: "must be positive" });
        }
        if !(discount_rate.is_finite() && discount_rate >= 0.0) {
            return Err(ModelError::InvalidSetting { name: "discount_rate", reason: "must be zero or positive" });
        }
        Ok(Self { periods, period_weeks, discount_rate, margin })
    }

    /// A year of months at 1% a month (about 12.7% a year), with the given margin.
    pub fn yearly_monthly(margin: Margin) -> Self {
        Self { periods: 12, period_weeks: 52.0 / 12.0, discount_rate: 0.01, margin }
    }
}

/// The discounted margin a customer is expected to bring over the horizon:
/// Σₖ margin · spend · (E[Y(k·P)] − E[Y((k−1)·P)]) / (1 + d)ᵏ.
pub fn lifetime_value(
    model: &impl PurchaseModel,
    history: &RepeatHistory,
    expected_spend: f64,
    settings: &ClvSettings,
) -> f64 {
    let mut value = 0.0;
    let mut previous = 0.0;
    for k in 1..=settings.periods {
        let cumulative = model.conditional_expected_purchases(history, f64::from(k) * settings.period_weeks);
        value += (cumulative - previous) / (1.0 + settings.discount_rate).powi(k as i32);
        previous = cumulative;
    }
    value * expected_spend * settings.margin.get()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::bgnbd::BgNbd;

    const CDNOW: BgNbd = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };

    fn history() -> RepeatHistory {
        RepeatHistory::new(2, 30.43, 38.86).expect("valid")
    }

    #[test]
    fn undiscounted_value_is_margin_times_spend_times_expected_purchases() {
        let settings = ClvSettings::new(3, 13.0, 0.0, Margin::new(0.25).expect("valid")).expect("valid");
        let value = lifetime_value(&CDNOW, &history(), 40.0, &settings);
        let purchases = CDNOW.conditional_expected_purchases(&history(), 39.0);
        assert!((value - 0.25 * 40.0 * purchases).abs() < 1e-9);
    }

    #[test]
    fn discounting_lowers_value_and_longer_horizons_raise_it() {
        let margin = Margin::new(0.3).expect("valid");
        let undiscounted = ClvSettings::new(12, 52.0 / 12.0, 0.0, margin).expect("valid");
        let discounted = ClvSettings::yearly_monthly(margin);
        let longer = ClvSettings::new(24, 52.0 / 12.0, 0.01, margin).expect("valid");
        let v = |s: &ClvSettings| lifetime_value(&CDNOW, &history(), 50.0, s);
        assert!(v(&discounted) < v(&undiscounted));
        assert!(v(&longer) > v(&discounted));
    }

    #[test]
    fn a_one_period_horizon_discounts_once() {
        let settings = ClvSettings::new(1, 39.0, 0.1, Margin::new(1.0).expect("valid")).expect("valid");
        let value = lifetime_value(&CDNOW, &history(), 1.0, &settings);
        // 1.226 expected purchases in 39 weeks (Fader, Hardie & Lee), discounted by 10%.
        assert!((value - 1.226 / 1.1).abs() < 0.001, "{value}");
    }

    #[test]
    fn settings_outside_their_range_are_refused() {
        assert!(Margin::new(1.2).is_err());
        assert!(Margin::new(-0.1).is_err());
        let margin = Margin::new(0.5).expect("valid");
        assert!(ClvSettings::new(0, 4.0, 0.01, margin).is_err());
        assert!(ClvSettings::new(12, 0.0, 0.01, margin).is_err());
        assert!(ClvSettings::new(12, 4.0, -0.01, margin).is_err());
    }
}
