//! Value tiers, re-graded at every rescoring: Most Valuable, Most Growable, Below-Zero, the
//! ordinary middle and the long tail, plus the "valuable at risk" flag; and the Pareto view of
//! how value is spread over the base (the 80/20 curve, per tier, the long tail's total).

use super::{ModelError, cost::Profit};

/// What the tiers are graded on, per customer, over the same window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerValue {
    /// Margin earned and cost to serve so far.
    pub profit: Profit,
    /// Discounted margin expected over the horizon (see `clv::lifetime_value`).
    pub predicted_value: f64,
    /// The customer's spend with us as a share of their spend in the category, when known.
    pub share_of_wallet: Option<f64>,
    /// P(alive) now.
    pub probability_alive: f64,
    /// P(alive) at the previous rescoring, when there was one.
    pub previous_probability_alive: Option<f64>,
}

impl CustomerValue {
    /// Value so far plus value to come: what ranks customers into tiers.
    pub fn lifetime_value(&self) -> f64 {
        self.profit.net() + self.predicted_value
    }
}

/// The value tier of a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// The top customers who together hold most of the base's value.
    MostValuable,
    /// Customers with much more to give than they have given so far.
    MostGrowable,
    /// Ordinary customers.
    Middle,
    /// The many small customers who together hold a small share of value.
    LongTail,
    /// Customers who cost more to serve than they bring.
    BelowZero,
}

impl Tier {
    /// Every tier, in report order.
    pub const ALL: [Tier; 5] = [Tier::MostValuable, Tier::MostGrowable, Tier::Middle, Tier::LongTail, Tier::BelowZero];
}

/// How tiers are cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierSettings {
    most_valuable_share: f64,
    long_tail_share: f64,
    growth_ratio: f64,
    low_share_of_wallet: f64,
    at_risk_probability_alive: f64,
    at_risk_drop: f64,
}

impl Default for TierSettings {
    /// The customers holding 80% of value are Most Valuable; the smallest holding 5% are the
    /// long tail; growable means a predicted value at least twice the value so far, or a share
    /// of wallet under 30%; a Most Valuable customer is at risk below P(alive) 0.5 or after a
    /// fall of 0.2 since the last rescoring.
    fn default() -> Self {
        Self {
            most_valuable_share: 0.8,
            long_tail_share: 0.05,
            growth_ratio: 2.0,
            low_share_of_wallet: 0.3,
            at_risk_probability_alive: 0.5,
            at_risk_drop: 0.2,
        }
    }
}

impl TierSettings {
    /// Checked settings; shares and probabilities lie in [0, 1], the growth ratio above 1.
    pub fn new(
        most_valuable_share: f64,
        long_tail_share: f64,
        growth_ratio: f64,
        low_share_of_wallet: f64,
        at_risk_probability_alive: f64,
        at_risk_drop: f64,
    ) -> Result<Self, ModelError> {
        let unit = |v: f64| (0.0..=1.0).contains(&v);
        if !(unit(most_valuable_share) && unit(long_tail_share) && most_valuable_share + long_tail_share <= 1.0) {
            return Err(ModelError::InvalidSetting {
                name: "most_valuable_share",
                reason: "value shares must lie in [0, 1] and add up to at most 1",
            });
        }
        if !(growth_ratio.is_finite() && growth_ratio > 1.0) {
            return Err(ModelError::InvalidSetting { name: "growth_ratio", reason: "must be above 1" });
        }
        if !(unit(low_share_of_wallet) && unit(at_risk_probability_alive) && unit(at_risk_drop)) {
            return Err(ModelError::InvalidSetting {
                name: "at_risk",
                reason: "shares and probabilities lie in [0, 1]",
            });
        }
        Ok(Self {
            most_valuable_share,
            long_tail_share,
            growth_ratio,
            low_share_of_wallet,
            at_risk_probability_alive,
            at_risk_drop,
        })
    }
}

/// A customer's grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grade {
    /// Their tier.
    pub tier: Tier,
    /// A Most Valuable customer whose P(alive) is low or falling.
    pub valuable_at_risk: bool,
}

/// Grades the whole base, in input order. Below-Zero comes first (a customer who loses money is
/// not valuable however much they buy); then, among the others, the highest lifetime values
/// until they hold the Most Valuable share of those customers' positive value; then the
/// growable; then, from the smallest up, the customers holding the long-tail share; the rest
/// are the middle.
pub fn grade(base: &[CustomerValue], settings: &TierSettings) -> Vec<Grade> {
    let mut tiers = vec![Tier::Middle; base.len()];
    let mut ranked: Vec<usize> = (0..base.len()).filter(|&i| !base[i].profit.is_below_zero()).collect();
    ranked.sort_by(|&a, &b| base[b].lifetime_value().total_cmp(&base[a].lifetime_value()).then(a.cmp(&b)));
    // Shares are of the value held by the customers being ranked: a Below-Zero customer's
    // expected future margin must not leave the Most Valuable share out of reach.
    let total: f64 = ranked.iter().map(|&i| base[i].lifetime_value().max(0.0)).sum();

    for (i, c) in base.iter().enumerate() {
        if c.profit.is_below_zero() {
            tiers[i] = Tier::BelowZero;
        }
    }
    let mut held = 0.0;
    for &i in &ranked {
        if total <= 0.0 || held >= settings.most_valuable_share * total {
            break;
        }
        tiers[i] = Tier::MostValuable;
        held += base[i].lifetime_value().max(0.0);
    }

    let median_predicted = median(ranked.iter().map(|&i| base[i].predicted_value));
    for &i in &ranked {
        let c = &base[i];
        let growing = c.predicted_value >= settings.growth_ratio * c.profit.net().max(0.0);
        let under_served = c.share_of_wallet.is_some_and(|s| s < settings.low_share_of_wallet);
        if tiers[i] == Tier::Middle
            && c.predicted_value > 0.0
            && c.predicted_value >= median_predicted
            && (growing || under_served)
        {
            tiers[i] = Tier::MostGrowable;
        }
    }

    let mut tail = 0.0;
    for &i in ranked.iter().rev() {
        let value = base[i].lifetime_value().max(0.0);
        if tail + value > settings.long_tail_share * total {
            break;
        }
        tail += value;
        if tiers[i] == Tier::Middle {
            tiers[i] = Tier::LongTail;
        }
    }

    base.iter()
        .zip(tiers)
        .map(|(c, tier)| {
            let falling =
                c.previous_probability_alive.is_some_and(|p| p - c.probability_alive >= settings.at_risk_drop);
            let low = c.probability_alive < settings.at_risk_probability_alive;
            Grade { tier, valuable_at_risk: tier == Tier::MostValuable && (falling || low) }
        })
        .collect()
}

fn total_value(base: &[CustomerValue]) -> f64 {
    base.iter().map(|c| c.lifetime_value().max(0.0)).sum()
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One point of the Pareto (Lorenz-style) curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// The top share of customers, by value.
    pub customer_share: f64,
    /// The share of the base's value they hold.
    pub value_share: f64,
}

/// Totals of one tier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierTotals {
    /// The tier.
    pub tier: Tier,
    /// Its customers.
    pub customers: usize,
    /// Their lifetime value (negative values included).
    pub value: f64,
    /// Their share of the base's positive value.
    pub value_share: f64,
}

/// How value is spread over the base.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoView {
    /// Cumulative share of value held by the top 1%, 2%, … 100% of customers. Value is counted
    /// from zero up (a loss-making customer adds nothing), so the curve rises to exactly 1
    /// (or stays at 0 in a base where nobody has positive value).
    pub curve: Vec<CurvePoint>,
    /// The smallest share of customers holding 80% of value (0.2 is the textbook 80/20).
    pub customers_holding_80_percent: f64,
    /// Totals per tier, in `Tier::ALL` order.
    pub tiers: Vec<TierTotals>,
    /// The long tail's value taken together.
    pub long_tail_value: f64,
}

/// The Pareto view of a graded base (`grades` in the same order as `base`).
pub fn pareto_view(base: &[CustomerValue], grades: &[Grade]) -> ParetoView {
    let total = total_value(base);
    let mut values: Vec<f64> = base.iter().map(|c| c.lifetime_value().max(0.0)).collect();
    values.sort_by(|a, b| b.total_cmp(a));
    let mut cumulative = Vec::with_capacity(values.len());
    let mut sum = 0.0;
    for v in &values {
        sum += v;
        cumulative.push(if total > 0.0 { sum / total } else { 0.0 });
    }
    let n = values.len();
    let curve = (1..=100)
        .map(|p| {
            let customers = (p * n).div_ceil(100);
            let value_share = if customers == 0 { 0.0 } else { cumulative[customers - 1] };
            CurvePoint {
                customer_share: f64::from(p as u32) / 100.0,
                value_share: if p == 100 && total > 0.0 { 1.0 } else { value_share },
            }
        })
        .collect();
    let holding = cumulative.iter().position(|&s| s >= 0.8 - 1e-12).map_or(1.0, |i| (i + 1) as f64 / n as f64);
    let tiers: Vec<TierTotals> = Tier::ALL
        .iter()
        .map(|&tier| {
            let members = base.iter().zip(grades).filter(|(_, g)| g.tier == tier);
            let (customers, value, positive) = members.fold((0, 0.0, 0.0), |(n, v, p), (c, _)| {
                (n + 1, v + c.lifetime_value(), p + c.lifetime_value().max(0.0))
            });
            TierTotals { tier, customers, value, value_share: if total > 0.0 { positive / total } else { 0.0 } }
        })
        .collect();
    let long_tail_value = tiers.iter().find(|t| t.tier == Tier::LongTail).map_or(0.0, |t| t.value);
    ParetoView { curve, customers_holding_80_percent: if n == 0 { 0.0 } else { holding }, tiers, long_tail_value }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(margin: f64, cost: f64, predicted: f64) -> CustomerValue {
        CustomerValue {
            profit: Profit { margin, cost_to_serve: cost },
            predicted_value: predicted,
            share_of_wallet: None,
            probability_alive: 0.9,
            previous_probability_alive: None,
        }
    }

    /// Ten customers worth 400, 200, 100, 100, 80, 50, 30, 20, 10, 10 (total 1,000).
    fn base() -> Vec<CustomerValue> {
        [400.0, 200.0, 100.0, 100.0, 80.0, 50.0, 30.0, 20.0, 10.0, 10.0]
            .iter()
            .map(|&v| customer(v, 0.0, 0.0))
            .collect()
    }

    #[test]
    fn tiers_put_customers_holding_80_percent_of_value_in_most_valuable() {
        let grades = grade(&base(), &TierSettings::default());
        let mvc: Vec<usize> = (0..10).filter(|&i| grades[i].tier == Tier::MostValuable).collect();
        // 400 + 200 + 100 + 100 = 800: the first four hold exactly 80%.
        assert_eq!(mvc, vec![0, 1, 2, 3]);
    }

    #[test]
    fn long_tail_holds_the_smallest_customers_up_to_its_share() {
        let grades = grade(&base(), &TierSettings::default());
        let tail: Vec<usize> = (0..10).filter(|&i| grades[i].tier == Tier::LongTail).collect();
        // 10 + 10 + 20 = 40 ≤ 5% of 1,000; adding 30 would exceed it.
        assert_eq!(tail, vec![7, 8, 9]);
        assert_eq!(grades[5].tier, Tier::Middle);
    }

    #[test]
    fn below_zero_customers_are_never_most_valuable() {
        let mut base = base();
        base[0] = customer(400.0, 450.0, 900.0);
        let grades = grade(&base, &TierSettings::default());
        assert_eq!(grades[0].tier, Tier::BelowZero);
    }

    #[test]
    fn customers_with_much_more_to_come_than_so_far_are_most_growable() {
        let mut base = base();
        base[8].predicted_value = 25.0;
        base[5].share_of_wallet = Some(0.1);
        base[5].predicted_value = 10.0;
        let grades = grade(&base, &TierSettings::default());
        assert_eq!(grades[8].tier, Tier::MostGrowable, "predicted 25 after 10 so far");
        assert_eq!(grades[5].tier, Tier::MostGrowable, "10% share of wallet");
        assert_eq!(grades[6].tier, Tier::Middle);
    }

    #[test]
    fn valuable_customers_with_falling_probability_alive_are_at_risk() {
        let mut base = base();
        base[0].previous_probability_alive = Some(0.95);
        base[0].probability_alive = 0.7;
        base[1].probability_alive = 0.3;
        base[9].probability_alive = 0.1;
        let grades = grade(&base, &TierSettings::default());
        assert!(grades[0].valuable_at_risk && grades[1].valuable_at_risk);
        assert!(!grades[2].valuable_at_risk, "P(alive) steady and high");
        assert!(!grades[9].valuable_at_risk, "not valuable");
    }

    #[test]
    fn pareto_curve_is_monotone_and_ends_at_one() {
        let mut base = base();
        base.push(customer(10.0, 60.0, 0.0));
        let grades = grade(&base, &TierSettings::default());
        let view = pareto_view(&base, &grades);
        assert_eq!(view.curve.len(), 100);
        assert!(view.curve.windows(2).all(|w| w[0].value_share <= w[1].value_share));
        assert_eq!(view.curve[99].value_share, 1.0);
        // The top 10% (one customer of eleven rounds up to two) hold 600 of 1,000.
        assert!((view.curve[9].value_share - 0.6).abs() < 1e-12);
    }

    #[test]
    fn pareto_curve_and_tiers_hold_for_random_bases() {
        let mut rng = crate::domain::rng::SplitMix64::new(5);
        for size in [1, 2, 7, 100, 1_000] {
            let base: Vec<CustomerValue> = (0..size)
                .map(|_| customer(rng.gamma(0.5, 0.01), rng.exponential(0.05), rng.gamma(0.5, 0.01)))
                .collect();
            let grades = grade(&base, &TierSettings::default());
            let view = pareto_view(&base, &grades);
            assert!(view.curve.windows(2).all(|w| w[0].value_share <= w[1].value_share + 1e-12));
            assert_eq!(view.tiers.iter().map(|t| t.customers).sum::<usize>(), size);
            // A base where nobody has positive value has no value to share out.
            let valued = base.iter().any(|c| c.lifetime_value() > 0.0);
            assert_eq!(view.curve[99].value_share, if valued { 1.0 } else { 0.0 });
            let value_of = |tier: Tier| -> f64 {
                base.iter().zip(&grades).filter(|(_, g)| g.tier == tier).map(|(c, _)| c.lifetime_value().max(0.0)).sum()
            };
            let ranked: f64 =
                base.iter().filter(|c| !c.profit.is_below_zero()).map(|c| c.lifetime_value().max(0.0)).sum();
            assert!(value_of(Tier::MostValuable) >= 0.8 * ranked - 1e-9, "size {size}");
            assert!(value_of(Tier::LongTail) <= 0.05 * ranked + 1e-9, "size {size}");
            for (c, g) in base.iter().zip(&grades) {
                assert_eq!(g.tier == Tier::BelowZero, c.profit.is_below_zero());
            }
        }
    }

    #[test]
    fn pareto_view_totals_each_tier_and_the_long_tail() {
        let base = base();
        let grades = grade(&base, &TierSettings::default());
        let view = pareto_view(&base, &grades);
        let mvc = view.tiers.iter().find(|t| t.tier == Tier::MostValuable).expect("reported");
        assert_eq!((mvc.customers, mvc.value), (4, 800.0));
        assert!((mvc.value_share - 0.8).abs() < 1e-12);
        assert_eq!(view.long_tail_value, 40.0);
        assert!((view.customers_holding_80_percent - 0.4).abs() < 1e-12);
        assert_eq!(view.tiers.iter().map(|t| t.customers).sum::<usize>(), 10);
    }

    #[test]
    fn tier_settings_outside_their_range_are_refused() {
        assert!(TierSettings::new(0.9, 0.2, 2.0, 0.3, 0.5, 0.2).is_err());
        assert!(TierSettings::new(0.8, 0.05, 1.0, 0.3, 0.5, 0.2).is_err());
        assert!(TierSettings::new(0.8, 0.05, 2.0, 0.3, 1.5, 0.2).is_err());
        assert!(TierSettings::new(0.8, 0.05, 2.0, 0.3, 0.5, 0.2).is_ok());
    }
}
