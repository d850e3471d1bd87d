//! The value models composed on the CDNOW base, as a rescoring runs them: fit BG/NBD and
//! Gamma-Gamma, project each customer's lifetime value, grade the base and draw its Pareto view.

use idic_segmentation::domain::{
    PurchaseModel,
    bgnbd::BgNbd,
    clv::{ClvSettings, Margin, lifetime_value},
    cost::Profit,
    gamma_gamma::{GammaGamma, SpendHistory},
    history::RepeatHistory,
    tiers::{CustomerValue, Tier, TierSettings, grade, pareto_view},
};

mod reference;

const MARGIN: f64 = 0.3;

struct Customer {
    history: RepeatHistory,
    /// Mean value of the repeat purchases (0 without any).
    mean_repeat_spend: f64,
}

impl Customer {
    fn spend(&self) -> Option<SpendHistory> {
        SpendHistory::new(self.history.frequency(), self.mean_repeat_spend).ok()
    }

    /// Spend on repeat purchases so far (the summary does not give the first purchase's value).
    fn repeat_spend(&self) -> f64 {
        f64::from(self.history.frequency()) * self.mean_repeat_spend
    }
}

fn cdnow() -> Vec<Customer> {
    reference::reference_file("cdnow_customers_summary_with_transactions.csv")
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f: Vec<f64> = line.split(',').map(|v| v.parse().expect("numeric field")).collect();
            let history = RepeatHistory::new(f[1] as u32, f[2], f[3]).expect("valid history");
            Customer { history, mean_repeat_spend: f[4] }
        })
        .collect()
}

#[test]
fn cdnow_value_is_concentrated_in_few_customers() {
    let base = cdnow();
    let histories: Vec<RepeatHistory> = base.iter().map(|c| c.history).collect();
    let spends: Vec<SpendHistory> = base.iter().filter_map(Customer::spend).collect();
    let purchases = BgNbd::fit(&histories).expect("fits").params;
    let spend = GammaGamma::fit(&spends).expect("fits").params;
    let settings = ClvSettings::yearly_monthly(Margin::new(MARGIN).expect("valid"));

    let values: Vec<CustomerValue> = base
        .iter()
        .map(|c| CustomerValue {
            profit: Profit { margin: MARGIN * c.repeat_spend(), cost_to_serve: 0.0 },
            predicted_value: lifetime_value(&purchases, &c.history, spend.expected_spend(c.spend()), &settings),
            share_of_wallet: None,
            probability_alive: purchases.probability_alive(&c.history),
            previous_probability_alive: None,
        })
        .collect();
    let grades = grade(&values, &TierSettings::default());
    let view = pareto_view(&values, &grades);

    assert!(view.curve.windows(2).all(|w| w[0].value_share <= w[1].value_share));
    assert_eq!(view.curve[99].value_share, 1.0);
    // The 80/20 rule holds on CDNOW: about a fifth of the customers hold 80% of the value
    // (20.1% with these settings), and they are the Most Valuable tier.
    let holding = view.customers_holding_80_percent;
    assert!((0.17..0.23).contains(&holding), "{holding}");
    let tier = |t: Tier| view.tiers.iter().find(|s| s.tier == t).expect("every tier is reported");
    let mvc = tier(Tier::MostValuable);
    assert!((mvc.customers as f64 / base.len() as f64 - holding).abs() < 0.01);
    assert!((mvc.value_share - 0.8).abs() < 0.01);
    // Without service costs recorded nobody is Below-Zero; the long tail is many small buyers.
    assert_eq!(tier(Tier::BelowZero).customers, 0);
    assert!(tier(Tier::LongTail).customers * 4 > base.len() && tier(Tier::LongTail).value_share <= 0.05);
    assert!(grades.iter().any(|g| g.valuable_at_risk), "some valuable CDNOW customers have lapsed");
}
