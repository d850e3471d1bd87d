//! Cost to serve: what a customer's service interactions cost (calls, complaints, returns,
//! account-manager visits, each at a configurable unit cost), so that profit, not only
//! revenue, decides their value.

use super::ModelError;

/// The cost of one interaction of each kind, in the currency's major unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitCosts {
    call: f64,
    complaint: f64,
    product_return: f64,
    account_manager_visit: f64,
}

impl UnitCosts {
    /// Each cost must be finite and not negative.
    pub fn new(call: f64, complaint: f64, product_return: f64, account_manager_visit: f64) -> Result<Self, ModelError> {
        if [call, complaint, product_return, account_manager_visit].iter().all(|c| c.is_finite() && *c >= 0.0) {
            Ok(Self { call, complaint, product_return, account_manager_visit })
        } else {
            Err(ModelError::InvalidSetting { name: "unit_costs", reason: "every unit cost must be zero or positive" })
        }
    }
}

/// A customer's service interactions over the scoring window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceCounts {
    /// Calls to the contact centre.
    pub calls: u32,
    /// Complaints logged.
    pub complaints: u32,
    /// Products returned.
    pub returns: u32,
    /// Visits by the account manager.
    pub account_manager_visits: u32,
}

impl ServiceCounts {
    /// What serving these interactions cost.
    pub fn cost(&self, unit: &UnitCosts) -> f64 {
        f64::from(self.calls) * unit.call
            + f64::from(self.complaints) * unit.complaint
            + f64::from(self.returns) * unit.product_return
            + f64::from(self.account_manager_visits) * unit.account_manager_visit
    }
}

/// Margin earned and cost to serve over the same window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profit {
    /// Gross margin earned from the customer's purchases.
    pub margin: f64,
    /// What serving the customer cost.
    pub cost_to_serve: f64,
}

impl Profit {
    /// Margin less cost to serve.
    pub fn net(&self) -> f64 {
        self.margin - self.cost_to_serve
    }

    /// True when the customer costs more than they bring.
    pub fn is_below_zero(&self) -> bool {
        self.cost_to_serve > self.margin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_to_serve_adds_each_interaction_at_its_unit_cost() {
        let unit = UnitCosts::new(4.0, 25.0, 8.0, 150.0).expect("valid");
        let counts = ServiceCounts { calls: 3, complaints: 1, returns: 2, account_manager_visits: 1 };
        assert_eq!(counts.cost(&unit), 12.0 + 25.0 + 16.0 + 150.0);
        assert_eq!(ServiceCounts::default().cost(&unit), 0.0);
    }

    #[test]
    fn below_zero_when_cost_to_serve_exceeds_margin() {
        assert!(Profit { margin: 100.0, cost_to_serve: 120.0 }.is_below_zero());
        assert!(!Profit { margin: 100.0, cost_to_serve: 100.0 }.is_below_zero());
        assert_eq!(Profit { margin: 100.0, cost_to_serve: 120.0 }.net(), -20.0);
    }

    #[test]
    fn negative_unit_costs_are_refused() {
        assert!(UnitCosts::new(-1.0, 0.0, 0.0, 0.0).is_err());
        assert!(UnitCosts::new(0.0, f64::NAN, 0.0, 0.0).is_err());
    }
}
