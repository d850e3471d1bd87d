//! Campaigns with control groups as plain Rust: the deterministic split of a segment into
//! treatment and control, and the comparison of the two arms — differences of proportions with
//! a normal-approximation interval, differences of means with Welch's t interval — so that a
//! campaign's uplift is measured, not assumed.

use sha2::{Digest as _, Sha256};
use statrs::distribution::{ContinuousCDF as _, Normal, StudentsT};

/// Whether a customer belongs to the control group: a hash of the campaign's seed and the
/// customer id, read as a number in [0, 1), below the holdout share. The same customer always
/// lands in the same arm of a campaign; different seeds split independently.
pub fn in_control(seed: &str, customer: &str, holdout_share: f64) -> bool {
    let mut hash = Sha256::new();
    hash.update(seed.as_bytes());
    hash.update([0]);
    hash.update(customer.as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let unit = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
    unit < holdout_share
}

/// One measure compared between arms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Treatment value.
    pub treatment: f64,
    /// Control value.
    pub control: f64,
    /// treatment − control.
    pub uplift: f64,
    /// 95% interval of the uplift, low end.
    pub low: f64,
    /// 95% interval of the uplift, high end.
    pub high: f64,
    /// Two-sided p-value of no difference.
    pub p_value: f64,
}

impl Comparison {
    /// Whether the interval excludes zero.
    pub fn significant(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }

    fn undefined(treatment: f64, control: f64) -> Self {
        Self {
            treatment,
            control,
            uplift: treatment - control,
            low: f64::NEG_INFINITY,
            high: f64::INFINITY,
            p_value: 1.0,
        }
    }
}

/// Difference of two proportions (`hits` of `n` per arm), with the unpooled normal interval
/// and the pooled two-proportion z-test's p-value.
pub fn proportions(treatment_hits: u64, treatment_n: u64, control_hits: u64, control_n: u64) -> Comparison {
    if treatment_n == 0 || control_n == 0 {
        let rate = |h: u64, n: u64| if n == 0 { 0.0 } else { h as f64 / n as f64 };
        return Comparison::undefined(rate(treatment_hits, treatment_n), rate(control_hits, control_n));
    }
    let (n1, n2) = (treatment_n as f64, control_n as f64);
    let (p1, p2) = (treatment_hits as f64 / n1, control_hits as f64 / n2);
    let diff = p1 - p2;
    let se = (p1 * (1.0 - p1) / n1 + p2 * (1.0 - p2) / n2).sqrt();
    let pooled = (treatment_hits + control_hits) as f64 / (n1 + n2);
    let se0 = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let Ok(normal) = Normal::new(0.0, 1.0) else { return Comparison::undefined(p1, p2) };
    let z = normal.inverse_cdf(0.975);
    let p_value = if se0 > 0.0 { 2.0 * (1.0 - normal.cdf((diff / se0).abs())) } else { 1.0 };
    Comparison { treatment: p1, control: p2, uplift: diff, low: diff - z * se, high: diff + z * se, p_value }
}

/// Mean and variance (n − 1) of a sample.
fn moments(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var)
}

/// Difference of two means with Welch's t interval (Welch–Satterthwaite degrees of freedom)
/// and its two-sided p-value.
pub fn means(treatment: &[f64], control: &[f64]) -> Comparison {
    if treatment.is_empty() || control.is_empty() {
        let mean = |xs: &[f64]| if xs.is_empty() { 0.0 } else { moments(xs).0 };
        return Comparison::undefined(mean(treatment), mean(control));
    }
    let ((m1, v1), (m2, v2)) = (moments(treatment), moments(control));
    let (n1, n2) = (treatment.len() as f64, control.len() as f64);
    let (a, b) = (v1 / n1, v2 / n2);
    let se = (a + b).sqrt();
    let diff = m1 - m2;
    if se == 0.0 || treatment.len() < 2 || control.len() < 2 {
        return Comparison::undefined(m1, m2);
    }
    let df = (a + b) * (a + b) / (a * a / (n1 - 1.0) + b * b / (n2 - 1.0));
    let Ok(t) = StudentsT::new(0.0, 1.0, df) else { return Comparison::undefined(m1, m2) };
    let q = t.inverse_cdf(0.975);
    let p_value = 2.0 * (1.0 - t.cdf((diff / se).abs()));
    Comparison { treatment: m1, control: m2, uplift: diff, low: diff - q * se, high: diff + q * se, p_value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_deterministic_and_near_the_holdout_share() {
        let control = (0..20_000).filter(|i| in_control("seed-1", &format!("customer-{i}"), 0.1)).count();
        assert!((1_850..=2_150).contains(&control), "{control} of 20000 in a 10% holdout");
        assert_eq!(in_control("seed-1", "customer-7", 0.1), in_control("seed-1", "customer-7", 0.1));
        let moved = (0..2_000)
            .filter(|i| in_control("seed-1", &format!("c{i}"), 0.5) != in_control("seed-2", &format!("c{i}"), 0.5))
            .count();
        assert!(moved > 800, "another seed splits independently ({moved} of 2000 changed arm)");
        assert!(!in_control("s", "c", 0.0));
        assert!(in_control("s", "c", 1.0));
    }

    #[test]
    fn proportions_match_a_worked_two_sample_z_example() {
        // 60 of 200 against 40 of 200: difference 0.10; unpooled SE √(0.3·0.7/200 + 0.2·0.8/200)
        // = 0.043012; 95% interval 0.10 ± 1.959964 × 0.043012 = [0.01570, 0.18430]; pooled
        // p = 0.25, SE₀ = √(0.25·0.75·0.01) = 0.043301, z = 2.3094, p-value 0.02092.
        let c = proportions(60, 200, 40, 200);
        assert!((c.uplift - 0.10).abs() < 1e-12);
        assert!((c.low - 0.015698).abs() < 1e-5, "{}", c.low);
        assert!((c.high - 0.184302).abs() < 1e-5, "{}", c.high);
        assert!((c.p_value - 0.02092).abs() < 1e-4, "{}", c.p_value);
        assert!(c.significant());
    }

    #[test]
    fn means_match_welchs_t_test() {
        // Two samples of unequal variance; scipy.stats.ttest_ind(x, y, equal_var=False) gives
        // t = -2.45536, df = 24.9885, p = 0.021378 and the 95% interval [-3.98410, -0.34924].
        let x = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4];
        let y = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4];
        let c = means(&x, &y);
        assert!((c.uplift - (-2.1666667)).abs() < 1e-6, "{}", c.uplift);
        assert!((c.low - (-3.98410)).abs() < 1e-4, "{}", c.low);
        assert!((c.high - (-0.34924)).abs() < 1e-4, "{}", c.high);
        assert!((c.p_value - 0.021378).abs() < 1e-5, "{}", c.p_value);
    }

    #[test]
    fn empty_arms_give_no_interval() {
        let c = proportions(1, 10, 0, 0);
        assert!(!c.significant());
        assert_eq!(c.p_value, 1.0);
        assert!(!means(&[1.0], &[]).significant());
    }
}
