//! Behaviour features for needs clustering: each customer's category mix, channel mix, basket
//! size, purchase rhythm and price sensitivity, as one numeric row per customer.

use chrono::NaiveDate;

use super::{ModelError, history::DAYS_PER_WEEK, kmeans::FeatureMatrix};

/// One order: when, through which channel, and its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// The day of the order.
    pub on: NaiveDate,
    /// The channel it came through (web, branch, phone, …).
    pub channel: String,
    /// What was bought.
    pub lines: Vec<OrderLine>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderLine {
    /// The product's category.
    pub category: String,
    /// What was paid for the line.
    pub amount: f64,
    /// The discount given on it (0 at full price).
    pub discount: f64,
}

/// The categories and channels the features are counted over; others count in neither mix.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpace {
    categories: Vec<String>,
    channels: Vec<String>,
}

impl FeatureSpace {
    /// A space over these categories and channels.
    pub fn new(categories: Vec<String>, channels: Vec<String>) -> Self {
        Self { categories, channels }
    }

    /// The features' names, in row order.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.categories.iter().map(|c| format!("category:{c}")).collect();
        names.extend(self.channels.iter().map(|c| format!("channel:{c}")));
        names.extend(
            [
                "basket_value_log",
                "lines_per_order",
                "weeks_between_orders_log",
                "rhythm_irregularity",
                "discounted_share",
            ]
            .map(String::from),
        );
        names
    }

    /// One customer's row; `None` without orders.
    pub fn features(&self, orders: &[Order]) -> Option<Vec<f64>> {
        if orders.is_empty() {
            return None;
        }
        let spend: f64 = orders.iter().flat_map(|o| &o.lines).map(|l| l.amount).sum();
        let share = |part: f64, whole: f64| if whole > 0.0 { part / whole } else { 0.0 };
        let mut row: Vec<f64> = self
            .categories
            .iter()
            .map(|c| {
                share(orders.iter().flat_map(|o| &o.lines).filter(|l| &l.category == c).map(|l| l.amount).sum(), spend)
            })
            .collect();
        let n = orders.len() as f64;
        row.extend(self.channels.iter().map(|c| orders.iter().filter(|o| &o.channel == c).count() as f64 / n));
        row.push((spend / n).ln_1p());
        row.push(orders.iter().map(|o| o.lines.len()).sum::<usize>() as f64 / n);

        let mut days: Vec<NaiveDate> = orders.iter().map(|o| o.on).collect();
        days.sort();
        days.dedup();
        let gaps: Vec<f64> = days.windows(2).map(|w| (w[1] - w[0]).num_days() as f64 / DAYS_PER_WEEK).collect();
        let (mean_gap, irregularity) = if gaps.is_empty() {
            (0.0, 0.0)
        } else {
            let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
            let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
            (mean, share(sd, mean))
        };
        row.push(mean_gap.ln_1p());
        row.push(irregularity);
        let discounted: f64 = orders.iter().flat_map(|o| &o.lines).filter(|l| l.discount > 0.0).map(|l| l.amount).sum();
        row.push(share(discounted, spend));
        Some(row)
    }

    /// The feature matrix of the customers who ordered, with their positions in `customers`.
    pub fn matrix(&self, customers: &[Vec<Order>]) -> Result<(FeatureMatrix, Vec<usize>), ModelError> {
        let (kept, rows): (Vec<usize>, Vec<Vec<f64>>) =
            customers.iter().enumerate().filter_map(|(i, orders)| self.features(orders).map(|row| (i, row))).unzip();
        Ok((FeatureMatrix::new(self.names(), &rows)?, kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(day: u32, channel: &str, lines: &[(&str, f64, f64)]) -> Order {
        Order {
            on: NaiveDate::from_ymd_opt(2025, 1, day).expect("valid date"),
            channel: channel.into(),
            lines: lines
                .iter()
                .map(|&(c, amount, discount)| OrderLine { category: c.into(), amount, discount })
                .collect(),
        }
    }

    #[test]
    fn features_describe_mix_basket_rhythm_and_price_sensitivity() {
        let space = FeatureSpace::new(vec!["books".into(), "music".into()], vec!["web".into(), "store".into()]);
        let orders = [
            order(1, "web", &[("books", 30.0, 0.0), ("music", 10.0, 5.0)]),
            order(8, "web", &[("books", 20.0, 0.0)]),
            order(22, "store", &[("garden", 40.0, 0.0)]),
        ];
        let row = space.features(&orders).expect("has orders");
        let names = space.names();
        let get = |name: &str| row[names.iter().position(|n| n == name).expect("named")];
        assert_eq!(row.len(), names.len());
        assert!((get("category:books") - 0.5).abs() < 1e-12);
        assert!((get("category:music") - 0.1).abs() < 1e-12);
        assert!((get("channel:web") - 2.0 / 3.0).abs() < 1e-12);
        assert!((get("basket_value_log") - (100f64 / 3.0).ln_1p()).abs() < 1e-12);
        assert!((get("lines_per_order") - 4.0 / 3.0).abs() < 1e-12);
        // Gaps of one and two weeks: mean 1.5, standard deviation 0.5.
        assert!((get("weeks_between_orders_log") - 1.5f64.ln_1p()).abs() < 1e-12);
        assert!((get("rhythm_irregularity") - 1.0 / 3.0).abs() < 1e-12);
        assert!((get("discounted_share") - 0.1).abs() < 1e-12);
    }

    #[test]
    fn customers_without_orders_are_left_out_of_the_matrix() {
        let space = FeatureSpace::new(vec!["books".into()], vec!["web".into()]);
        let customers = vec![vec![], vec![order(3, "web", &[("books", 12.0, 0.0)])]];
        let (m, kept) = space.matrix(&customers).expect("valid");
        assert_eq!((m.rows(), kept), (1, vec![1]));
    }
}
