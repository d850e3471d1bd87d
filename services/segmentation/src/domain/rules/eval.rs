//! Evaluation of a compiled rule against one customer's metrics record: the record the value
//! side fills ([`CustomerMetrics`]), the values a rule computes with, and the null semantics
//! (any comparison or arithmetic with null is false / null).

use chrono::{Datelike, NaiveDate};

use super::{
    check::{Const, Expr, Func, Metric},
    parser::{ArithOp, CompareOp},
};
use crate::domain::tiers::Tier;

/// Everything the rule language reads about one customer, as of the last update of their
/// metrics. The value side fills it from its tables; a customer segmentation knows nothing
/// about is `CustomerMetrics::default()` (zero counts, nulls).
///
/// Lists keyed by a name (channels, categories, interaction kinds, facts) are small per
/// customer and scanned linearly; names are stored lowercase except facts and categories,
/// which compare exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerMetrics {
    /// Day of the last purchase (for `days_since_purchase`); none if never purchased.
    pub last_purchase: Option<NaiveDate>,
    /// Day of the last interaction of any kind (for `days_since_contact`).
    pub last_contact: Option<NaiveDate>,
    /// Purchases in the behaviour window.
    pub frequency: u32,
    /// Net spend in the behaviour window, in major units of the reporting currency.
    pub monetary: f64,
    /// Purchases over the whole history.
    pub purchase_count: u32,
    /// Net spend over the whole history.
    pub total_spend: f64,
    /// Distinct categories bought in the window.
    pub category_count: u32,
    /// RFM quintile scores, 1–5, once scored.
    pub r_score: Option<u8>,
    /// Frequency quintile score.
    pub f_score: Option<u8>,
    /// Monetary quintile score.
    pub m_score: Option<u8>,
    /// Expected purchases over the CLV horizon.
    pub expected_purchases: Option<f64>,
    /// Probability of being active, 0–1.
    pub p_alive: Option<f64>,
    /// Change of P(alive) since the previous rescoring.
    pub p_alive_change: Option<f64>,
    /// Expected spend per purchase.
    pub expected_spend: Option<f64>,
    /// Customer lifetime value.
    pub clv: Option<f64>,
    /// Cost to serve over the behaviour window.
    pub cost_to_serve: Option<f64>,
    /// Profit over the behaviour window.
    pub profit: Option<f64>,
    /// Share of wallet, 0–1, when category spend is known.
    pub share_of_wallet: Option<f64>,
    /// CLV / margin so far, when defined.
    pub growth_ratio: Option<f64>,
    /// Rank by CLV, 0–100.
    pub value_percentile: Option<f64>,
    /// Value tier, once graded.
    pub tier: Option<Tier>,
    /// The tier before the last change.
    pub previous_tier: Option<Tier>,
    /// Valuable at risk.
    pub at_risk: bool,
    /// The needs cluster's label, once clustered.
    pub cluster: Option<String>,
    /// Share, 0–1, of interactions in the window per channel (lowercase channel name).
    pub channel_shares: Vec<(String, f64)>,
    /// Per category bought in the window: spend and share of spend.
    pub categories: Vec<CategoryFigures>,
    /// Known share of wallet per category (from category spend facts).
    pub category_wallet_shares: Vec<(String, f64)>,
    /// Per interaction kind (lowercase): count in the window and days of recent occurrences.
    pub activity: Vec<KindActivity>,
    /// Product ids ever bought (net of full returns), sorted.
    pub products_bought: Vec<String>,
    /// Categories ever bought, sorted.
    pub categories_bought: Vec<String>,
    /// Profile facts held by identification.
    pub facts: Vec<(String, FactValue)>,
    /// Ids of the segments the customer currently belongs to (for `in_segment`).
    pub segments: Vec<String>,
}

/// One category's figures for a customer over the behaviour window.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryFigures {
    /// The category, as in the catalog.
    pub category: String,
    /// Net spend in it.
    pub spend: f64,
    /// Share, 0–1, of the customer's net spend.
    pub share: f64,
}

/// One interaction kind's activity for a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct KindActivity {
    /// The kind's lowercase name (`purchase`, `complaint`, …).
    pub kind: String,
    /// Interactions of the kind in the behaviour window.
    pub window_count: u32,
    /// Days on which they happened (one entry per interaction), newest first, at most ten
    /// years back: enough for `count(kind, days)` and `days_since(kind)`.
    pub dates: Vec<NaiveDate>,
}

/// A profile fact's value.
#[derive(Debug, Clone, PartialEq)]
pub enum FactValue {
    /// Text (dates are "YYYY-MM-DD" text).
    Str(String),
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
}

/// The rule-language code of a tier: "MVC", "MGC", "BZC", "MIDDLE", "LONG_TAIL".
pub fn tier_code(tier: Tier) -> &'static str {
    match tier {
        Tier::MostValuable => "MVC",
        Tier::MostGrowable => "MGC",
        Tier::BelowZero => "BZC",
        Tier::Middle => "MIDDLE",
        Tier::LongTail => "LONG_TAIL",
    }
}

/// A value computed while evaluating a rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Not known.
    Null,
    /// A number.
    Number(f64),
    /// A string.
    Str(&'a str),
    /// A boolean.
    Bool(bool),
}

impl std::fmt::Display for Value<'_> {
    /// Renders the value as the rule language writes it: `0.42`, `"MVC"`, `true`, `null`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Number(n) => write!(f, "{}", super::format_number(*n)),
            Value::Str(s) => f.write_str(&super::quote(s)),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// What one evaluation reads: the customer's record and today's date (for day counts).
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The customer's metrics.
    pub metrics: &'a CustomerMetrics,
    /// Today, in the service's time zone.
    pub today: NaiveDate,
}

/// Records each comparison's outcome and observed left-hand value, by term index.
pub(crate) type Trace = Vec<Option<(bool, String)>>;

impl Expr {
    /// Evaluates a condition: null and non-boolean values are false.
    pub(crate) fn holds(&self, s: &Subject<'_>, trace: &mut Option<&mut Trace>) -> bool {
        match self {
            Expr::Or(items) => {
                if trace.is_some() {
                    let mut any = false;
                    for e in items {
                        any |= e.holds(s, trace);
                    }
                    return any;
                }
                items.iter().any(|e| e.holds(s, &mut None))
            }
            Expr::And(items) => {
                if trace.is_some() {
                    let mut all = true;
                    for e in items {
                        all &= e.holds(s, trace);
                    }
                    return all;
                }
                items.iter().all(|e| e.holds(s, &mut None))
            }
            Expr::Not(inner) => !inner.holds(s, trace),
            Expr::Compare { op, lhs, rhs, term } => {
                let (l, r) = (lhs.value(s), rhs.value(s));
                let result = compare(*op, l, r);
                record(trace, *term, result, l);
                result
            }
            Expr::In { negated, value, list, term } => {
                let v = value.value(s);
                let found = match v {
                    Value::Null => None,
                    v => Some(list.iter().any(|c| equal(v, const_value(c)) == Some(true))),
                };
                // Like comparisons, a null never satisfies `in` nor `not in`.
                let result = found.is_some_and(|f| f != *negated);
                record(trace, *term, result, v);
                result
            }
            Expr::Between { negated, value, low, high, term } => {
                let v = value.value(s);
                let inside = match (order(v, low.value(s)), order(v, high.value(s))) {
                    (Some(a), Some(b)) => Some(a.is_ge() && b.is_le()),
                    _ => None,
                };
                let result = inside.is_some_and(|i| i != *negated);
                record(trace, *term, result, v);
                result
            }
            Expr::IsNull { negated, value, term } => {
                let v = value.value(s);
                let result = matches!(v, Value::Null) != *negated;
                record(trace, *term, result, v);
                result
            }
            other => matches!(other.value(s), Value::Bool(true)),
        }
    }

    /// Evaluates a value.
    pub(crate) fn value<'a>(&'a self, s: &Subject<'a>) -> Value<'a> {
        let m = s.metrics;
        match self {
            Expr::Const(c) => const_value(c),
            Expr::Metric(metric) => metric_value(*metric, s),
            Expr::Profile(key) => match m.facts.iter().find(|(k, _)| k == key) {
                None => Value::Null,
                Some((_, FactValue::Str(v))) => Value::Str(v),
                Some((_, FactValue::Number(n))) => Value::Number(*n),
                Some((_, FactValue::Bool(b))) => Value::Bool(*b),
            },
            Expr::Arith(op, lhs, rhs) => match (lhs.value(s), rhs.value(s)) {
                (Value::Number(a), Value::Number(b)) => {
                    let r = match op {
                        ArithOp::Add => a + b,
                        ArithOp::Sub => a - b,
                        ArithOp::Mul => a * b,
                        ArithOp::Div => a / b,
                    };
                    if r.is_finite() { Value::Number(r) } else { Value::Null }
                }
                _ => Value::Null,
            },
            Expr::Neg(inner) => match inner.value(s) {
                Value::Number(n) => Value::Number(-n),
                _ => Value::Null,
            },
            Expr::Call(f) => call(f, s),
            Expr::Or(_) | Expr::And(_) | Expr::Not(_) | Expr::Compare { .. } | Expr::In { .. } => {
                Value::Bool(self.holds(s, &mut None))
            }
            Expr::Between { .. } | Expr::IsNull { .. } => Value::Bool(self.holds(s, &mut None)),
            Expr::Invalid => Value::Null,
        }
    }
}

fn record(trace: &mut Option<&mut Trace>, term: usize, result: bool, observed: Value<'_>) {
    if let Some(t) = trace.as_deref_mut()
        && let Some(slot) = t.get_mut(term)
    {
        *slot = Some((result, observed.to_string()));
    }
}

fn const_value(c: &Const) -> Value<'_> {
    match c {
        Const::Number(n) => Value::Number(*n),
        Const::Str(s) => Value::Str(s),
        Const::Bool(b) => Value::Bool(*b),
    }
}

fn opt(v: Option<f64>) -> Value<'static> {
    v.map_or(Value::Null, Value::Number)
}

fn days_between(from: NaiveDate, today: NaiveDate) -> f64 {
    (today - from).num_days().max(0) as f64
}

fn metric_value<'a>(metric: Metric, s: &Subject<'a>) -> Value<'a> {
    let m = s.metrics;
    match metric {
        Metric::DaysSincePurchase => m.last_purchase.map_or(Value::Null, |d| Value::Number(days_between(d, s.today))),
        Metric::DaysSinceContact => m.last_contact.map_or(Value::Null, |d| Value::Number(days_between(d, s.today))),
        Metric::Frequency => Value::Number(f64::from(m.frequency)),
        Metric::Monetary => Value::Number(m.monetary),
        Metric::PurchaseCount => Value::Number(f64::from(m.purchase_count)),
        Metric::TotalSpend => Value::Number(m.total_spend),
        Metric::AverageOrderValue => {
            if m.purchase_count == 0 {
                Value::Null
            } else {
                Value::Number(m.total_spend / f64::from(m.purchase_count))
            }
        }
        Metric::CategoryCount => Value::Number(f64::from(m.category_count)),
        Metric::RScore => opt(m.r_score.map(f64::from)),
        Metric::FScore => opt(m.f_score.map(f64::from)),
        Metric::MScore => opt(m.m_score.map(f64::from)),
        Metric::ExpectedPurchases => opt(m.expected_purchases),
        Metric::PAlive => opt(m.p_alive),
        Metric::PAliveChange => opt(m.p_alive_change),
        Metric::ExpectedSpend => opt(m.expected_spend),
        Metric::Clv => opt(m.clv),
        Metric::CostToServe => opt(m.cost_to_serve),
        Metric::Profit => opt(m.profit),
        Metric::ShareOfWallet => opt(m.share_of_wallet),
        Metric::GrowthRatio => opt(m.growth_ratio),
        Metric::ValuePercentile => opt(m.value_percentile),
        Metric::Tier => m.tier.map_or(Value::Null, |t| Value::Str(tier_code(t))),
        Metric::PreviousTier => m.previous_tier.map_or(Value::Null, |t| Value::Str(tier_code(t))),
        Metric::AtRisk => Value::Bool(m.at_risk),
        Metric::Cluster => m.cluster.as_deref().map_or(Value::Null, Value::Str),
    }
}

fn call<'a>(f: &'a Func, s: &Subject<'a>) -> Value<'a> {
    let m = s.metrics;
    match f {
        Func::ChannelShare(c) => Value::Number(m.channel_shares.iter().find(|(k, _)| k == c).map_or(0.0, |(_, v)| *v)),
        Func::CategoryShare(c) => {
            Value::Number(m.categories.iter().find(|x| &x.category == c).map_or(0.0, |x| x.share))
        }
        Func::CategorySpend(c) => {
            Value::Number(m.categories.iter().find(|x| &x.category == c).map_or(0.0, |x| x.spend))
        }
        Func::CategoryWalletShare(c) => opt(m.category_wallet_shares.iter().find(|(k, _)| k == c).map(|(_, v)| *v)),
        Func::Count(kind, days) => {
            let activity = m.activity.iter().find(|a| &a.kind == kind);
            let n = match (activity, days) {
                (None, _) => 0,
                (Some(a), None) => a.window_count,
                (Some(a), Some(d)) => {
                    // Within the last `d` days: today counts as day 1.
                    let since = s.today - chrono::Days::new(u64::from(*d));
                    a.dates.iter().take_while(|x| **x > since).count() as u32
                }
            };
            Value::Number(f64::from(n))
        }
        Func::DaysSince(kind) => m
            .activity
            .iter()
            .find(|a| &a.kind == kind)
            .and_then(|a| a.dates.first())
            .map_or(Value::Null, |d| Value::Number(days_between(*d, s.today))),
        Func::Bought(p) => Value::Bool(m.products_bought.binary_search(p).is_ok()),
        Func::BoughtCategory(c) => Value::Bool(m.categories_bought.binary_search(c).is_ok()),
        Func::InSegment(id) => Value::Bool(m.segments.iter().any(|x| x == id)),
        Func::Age(date) => match date.value(s) {
            Value::Str(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map_or(Value::Null, |born| {
                s.today.years_since(born).map_or(Value::Null, |y| Value::Number(f64::from(y)))
            }),
            _ => Value::Null,
        },
        Func::DaysToAnniversary(date) => match date.value(s) {
            Value::Str(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .map_or(Value::Null, |d| Value::Number(days_to_anniversary(d, s.today))),
            _ => Value::Null,
        },
    }
}

/// Days until the next anniversary of `date` (0 = today); 29 February falls on 28 February
/// in other years.
fn days_to_anniversary(date: NaiveDate, today: NaiveDate) -> f64 {
    let on = |year: i32| {
        NaiveDate::from_ymd_opt(year, date.month(), date.day())
            .or_else(|| NaiveDate::from_ymd_opt(year, date.month(), date.day() - 1))
    };
    let this_year = on(today.year());
    let next = match this_year {
        Some(d) if d >= today => d,
        _ => on(today.year() + 1).unwrap_or(today),
    };
    (next - today).num_days() as f64
}

fn equal(a: Value<'_>, b: Value<'_>) -> Option<bool> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Some(x == y),
        (Value::Str(x), Value::Str(y)) => Some(x == y),
        (Value::Bool(x), Value::Bool(y)) => Some(x == y),
        _ => None,
    }
}

fn order(a: Value<'_>, b: Value<'_>) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.partial_cmp(&y),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// A comparison: false whenever a side is null or the types differ (a profile fact of
/// another type than the literal), `!=` included.
fn compare(op: CompareOp, l: Value<'_>, r: Value<'_>) -> bool {
    match op {
        CompareOp::Eq => equal(l, r) == Some(true),
        CompareOp::Ne => equal(l, r) == Some(false),
        CompareOp::Lt => order(l, r).is_some_and(|o| o.is_lt()),
        CompareOp::Le => order(l, r).is_some_and(|o| o.is_le()),
        CompareOp::Gt => order(l, r).is_some_and(|o| o.is_gt()),
        CompareOp::Ge => order(l, r).is_some_and(|o| o.is_ge()),
    }
}
