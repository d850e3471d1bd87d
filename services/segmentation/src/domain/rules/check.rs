//! The rule language's catalogue (fields, functions, channel and interaction kind names) and
//! its type-checker, which turns a syntax tree into the compiled expression the evaluator runs,
//! reporting every type error and the warnings (a comparison that can never hold).

use super::{
    Diagnostic, Span,
    parser::{ArithOp, Ast, AstKind, CompareOp, Literal},
};

/// A per-customer field of the rule language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Metric {
    DaysSincePurchase,
    DaysSinceContact,
    Frequency,
    Monetary,
    PurchaseCount,
    TotalSpend,
    AverageOrderValue,
    CategoryCount,
    RScore,
    FScore,
    MScore,
    ExpectedPurchases,
    PAlive,
    PAliveChange,
    ExpectedSpend,
    Clv,
    CostToServe,
    Profit,
    ShareOfWallet,
    GrowthRatio,
    ValuePercentile,
    Tier,
    PreviousTier,
    AtRisk,
    Cluster,
}

/// The type of a rule expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Number,
    String,
    Boolean,
    /// A profile fact: its type is known only per customer.
    Any,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Number => "a number",
            Ty::String => "a string",
            Ty::Boolean => "a boolean",
            Ty::Any => "a profile fact",
        }
    }

    fn fits(self, other: Ty) -> bool {
        self == other || self == Ty::Any || other == Ty::Any
    }
}

/// A field of the catalogue: name, metric, type, and the range of its values when bounded.
type FieldDef = (&'static str, Metric, Ty, Option<(f64, f64)>);

/// Every field.
pub(crate) const FIELDS: &[FieldDef] = &[
    ("days_since_purchase", Metric::DaysSincePurchase, Ty::Number, Some((0.0, f64::INFINITY))),
    ("days_since_contact", Metric::DaysSinceContact, Ty::Number, Some((0.0, f64::INFINITY))),
    ("frequency", Metric::Frequency, Ty::Number, Some((0.0, f64::INFINITY))),
    ("monetary", Metric::Monetary, Ty::Number, None),
    ("purchase_count", Metric::PurchaseCount, Ty::Number, Some((0.0, f64::INFINITY))),
    ("total_spend", Metric::TotalSpend, Ty::Number, None),
    ("average_order_value", Metric::AverageOrderValue, Ty::Number, None),
    ("category_count", Metric::CategoryCount, Ty::Number, Some((0.0, f64::INFINITY))),
    ("r_score", Metric::RScore, Ty::Number, Some((1.0, 5.0))),
    ("f_score", Metric::FScore, Ty::Number, Some((1.0, 5.0))),
    ("m_score", Metric::MScore, Ty::Number, Some((1.0, 5.0))),
    ("expected_purchases", Metric::ExpectedPurchases, Ty::Number, Some((0.0, f64::INFINITY))),
    ("p_alive", Metric::PAlive, Ty::Number, Some((0.0, 1.0))),
    ("p_alive_change", Metric::PAliveChange, Ty::Number, Some((-1.0, 1.0))),
    ("expected_spend", Metric::ExpectedSpend, Ty::Number, None),
    ("clv", Metric::Clv, Ty::Number, None),
    ("cost_to_serve", Metric::CostToServe, Ty::Number, Some((0.0, f64::INFINITY))),
    ("profit", Metric::Profit, Ty::Number, None),
    ("share_of_wallet", Metric::ShareOfWallet, Ty::Number, Some((0.0, 1.0))),
    ("growth_ratio", Metric::GrowthRatio, Ty::Number, None),
    ("value_percentile", Metric::ValuePercentile, Ty::Number, Some((0.0, 100.0))),
    ("tier", Metric::Tier, Ty::String, None),
    ("previous_tier", Metric::PreviousTier, Ty::String, None),
    ("at_risk", Metric::AtRisk, Ty::Boolean, None),
    ("cluster", Metric::Cluster, Ty::String, None),
];

/// Every function's name.
pub(crate) const FUNCTIONS: &[&str] = &[
    "channel_share",
    "category_share",
    "category_spend",
    "category_wallet_share",
    "count",
    "days_since",
    "bought",
    "bought_category",
    "in_segment",
    "age",
    "days_to_anniversary",
];

/// Tier codes as rules write them.
pub const TIER_CODES: &[&str] = &["MVC", "MGC", "BZC", "MIDDLE", "LONG_TAIL"];

/// Channel names as `channel_share` takes them.
pub const CHANNELS: &[&str] = &[
    "branch",
    "web",
    "app",
    "call_centre",
    "email",
    "sms",
    "letter",
    "gift",
    "event",
    "self_service",
    "account_manager",
];

/// Interaction kind names as `count` and `days_since` take them.
pub const INTERACTION_KINDS: &[&str] = &[
    "purchase",
    "return",
    "view",
    "visit",
    "basket_add",
    "basket_remove",
    "inquiry",
    "complaint",
    "feedback",
    "inbound_call",
    "outbound_call",
    "message_sent",
    "message_delivered",
    "message_opened",
    "message_clicked",
    "message_replied",
    "survey_answer",
];

/// A function call with its resolved arguments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Func {
    ChannelShare(String),
    CategoryShare(String),
    CategorySpend(String),
    CategoryWalletShare(String),
    Count(String, Option<u32>),
    DaysSince(String),
    Bought(String),
    BoughtCategory(String),
    InSegment(String),
    Age(Box<Expr>),
    DaysToAnniversary(Box<Expr>),
}

/// A constant of a compiled rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Const {
    Number(f64),
    Str(String),
    Bool(bool),
}

/// A compiled, type-checked rule expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    /// A comparison; `term` indexes the rule's terms (for explanations).
    Compare {
        op: CompareOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        term: usize,
    },
    In {
        negated: bool,
        value: Box<Expr>,
        list: Vec<Const>,
        term: usize,
    },
    Between {
        negated: bool,
        value: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        term: usize,
    },
    IsNull {
        negated: bool,
        value: Box<Expr>,
        term: usize,
    },
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Const(Const),
    Metric(Metric),
    Profile(String),
    Call(Func),
    /// Placeholder for a node that failed to check (never evaluated).
    Invalid,
}

/// What the checker produced.
pub(crate) struct Checked {
    pub(crate) expr: Expr,
    pub(crate) terms: Vec<Span>,
    pub(crate) errors: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Diagnostic>,
    pub(crate) fields: Vec<String>,
    pub(crate) segments: Vec<String>,
}

/// Type-checks `ast` (parsed from `text`) as a whole rule, which must be a condition.
pub(crate) fn check(text: &str, ast: &Ast) -> Checked {
    let mut checker = Checker {
        text,
        terms: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        fields: Vec::new(),
        segments: Vec::new(),
    };
    let expr = checker.condition(ast);
    Checked {
        expr,
        terms: checker.terms,
        errors: checker.errors,
        warnings: checker.warnings,
        fields: checker.fields,
        segments: checker.segments,
    }
}

struct Checker<'a> {
    text: &'a str,
    terms: Vec<Span>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    fields: Vec<String>,
    segments: Vec<String>,
}

impl Checker<'_> {
    fn error(&mut self, span: Span, message: String, suggestion: Option<String>) -> (Expr, Ty) {
        self.errors.push(Diagnostic::error(self.text, span, message, suggestion));
        (Expr::Invalid, Ty::Any)
    }

    fn warn(&mut self, span: Span, message: String, suggestion: Option<String>) {
        self.warnings.push(Diagnostic::warning(self.text, span, message, suggestion));
    }

    fn reference(&mut self, name: &str) {
        if !self.fields.iter().any(|f| f == name) {
            self.fields.push(name.to_owned());
        }
    }

    fn term(&mut self, span: Span) -> usize {
        self.terms.push(span);
        self.terms.len() - 1
    }

    /// An operand of `and`, `or`, `not` or the whole rule: it must be boolean.
    fn condition(&mut self, ast: &Ast) -> Expr {
        let (expr, ty) = self.expr(ast);
        if !matches!(ty, Ty::Boolean | Ty::Any) {
            let shown = ast.span.slice(self.text);
            let hint = match ty {
                Ty::Number => format!("compare it, e.g. `{shown} > 0`"),
                _ => format!("compare it, e.g. `{shown} = \"…\"`"),
            };
            self.error(ast.span, format!("{shown:?} is {} where a condition is needed; {hint}", ty.name()), None);
            return Expr::Invalid;
        }
        expr
    }

    fn expr(&mut self, ast: &Ast) -> (Expr, Ty) {
        match &ast.kind {
            AstKind::Or(items) => (Expr::Or(items.iter().map(|a| self.condition(a)).collect()), Ty::Boolean),
            AstKind::And(items) => (Expr::And(items.iter().map(|a| self.condition(a)).collect()), Ty::Boolean),
            AstKind::Not(inner) => (Expr::Not(Box::new(self.condition(inner))), Ty::Boolean),
            AstKind::Compare(op, lhs, rhs) => self.compare(ast.span, *op, lhs, rhs),
            AstKind::In { negated, value, list } => {
                let (value_expr, ty) = self.expr(value);
                let case_insensitive = is_tier(&value_expr);
                let mut consts = Vec::with_capacity(list.len());
                for (literal, span) in list {
                    let lty = literal_type(literal);
                    if !ty.fits(lty) {
                        let shown = value.span.slice(self.text);
                        self.error(
                            *span,
                            format!("{shown:?} is {} but this list item is {}", ty.name(), lty.name()),
                            None,
                        );
                        continue;
                    }
                    let c = self.literal_const(literal, case_insensitive, *span);
                    consts.push(c);
                }
                let term = self.term(ast.span);
                (Expr::In { negated: *negated, value: Box::new(value_expr), list: consts, term }, Ty::Boolean)
            }
            AstKind::Between { negated, value, low, high } => {
                let (v, vt) = self.expr(value);
                let (l, lt) = self.expr(low);
                let (h, ht) = self.expr(high);
                for (part, ty) in [(value, vt), (low, lt), (high, ht)] {
                    if !matches!(ty, Ty::Number | Ty::String | Ty::Any) {
                        let shown = part.span.slice(self.text);
                        self.error(
                            part.span,
                            format!("\"between\" needs numbers or strings, but {shown:?} is {}", ty.name()),
                            None,
                        );
                    }
                }
                if !(vt.fits(lt) && vt.fits(ht) && lt.fits(ht)) {
                    self.error(ast.span, "\"between\" needs its value and both bounds of one type".to_owned(), None);
                }
                let term = self.term(ast.span);
                (
                    Expr::Between { negated: *negated, value: Box::new(v), low: Box::new(l), high: Box::new(h), term },
                    Ty::Boolean,
                )
            }
            AstKind::IsNull { negated, value } => {
                let (v, _) = self.expr(value);
                let term = self.term(ast.span);
                (Expr::IsNull { negated: *negated, value: Box::new(v), term }, Ty::Boolean)
            }
            AstKind::Arith(op, lhs, rhs) => {
                let (l, _) = self.number_operand(lhs, op.symbol());
                let (r, _) = self.number_operand(rhs, op.symbol());
                (Expr::Arith(*op, Box::new(l), Box::new(r)), Ty::Number)
            }
            AstKind::Neg(inner) => {
                let (e, _) = self.number_operand(inner, "-");
                (Expr::Neg(Box::new(e)), Ty::Number)
            }
            AstKind::Literal(literal) => {
                (Expr::Const(self.literal_const(literal, false, ast.span)), literal_type(literal))
            }
            AstKind::Field(name) => self.field(name, ast.span),
            AstKind::Call { name, name_span, args } => self.call(name, *name_span, args, ast.span),
        }
    }

    fn number_operand(&mut self, ast: &Ast, op: &str) -> (Expr, Ty) {
        let (e, ty) = self.expr(ast);
        if !matches!(ty, Ty::Number | Ty::Any) {
            let shown = ast.span.slice(self.text);
            return self.error(ast.span, format!("{op:?} needs numbers, but {shown:?} is {}", ty.name()), None);
        }
        (e, ty)
    }

    fn literal_const(&mut self, literal: &Literal, tier: bool, span: Span) -> Const {
        match literal {
            Literal::Number(n) => Const::Number(*n),
            Literal::Bool(b) => Const::Bool(*b),
            Literal::Str(s) if tier => {
                let upper = s.to_ascii_uppercase();
                if !TIER_CODES.contains(&upper.as_str()) {
                    let suggestion = nearest(&upper, TIER_CODES.iter().copied());
                    self.warn(
                        span,
                        format!("{s:?} is not a tier (tiers: {}), so this never matches", TIER_CODES.join(", ")),
                        suggestion,
                    );
                }
                Const::Str(upper)
            }
            Literal::Str(s) => Const::Str(s.clone()),
        }
    }

    fn compare(&mut self, span: Span, op: CompareOp, lhs: &Ast, rhs: &Ast) -> (Expr, Ty) {
        let (mut l, lt) = self.expr(lhs);
        let (mut r, rt) = self.expr(rhs);
        let (ls, rs) = (lhs.span.slice(self.text), rhs.span.slice(self.text));
        if !lt.fits(rt) {
            let message = format!("cannot compare {ls:?} ({}) with {rs:?} ({})", lt.name(), rt.name());
            return self.error(span, message, None);
        }
        let ordering = !matches!(op, CompareOp::Eq | CompareOp::Ne);
        if ordering && (lt == Ty::Boolean || rt == Ty::Boolean) {
            let message = format!("{:?} needs numbers or strings, not booleans", op.symbol());
            return self.error(span, message, None);
        }
        // Tier names are case-insensitive: literals compared with a tier are upper-cased.
        if is_tier(&l)
            && let AstKind::Literal(lit @ Literal::Str(_)) = &rhs.kind
        {
            r = Expr::Const(self.literal_const(lit, true, rhs.span));
        }
        if is_tier(&r)
            && let AstKind::Literal(lit @ Literal::Str(_)) = &lhs.kind
        {
            l = Expr::Const(self.literal_const(lit, true, lhs.span));
        }
        self.range_warning(span, op, &l, &r);
        let term = self.term(span);
        (Expr::Compare { op, lhs: Box::new(l), rhs: Box::new(r), term }, Ty::Boolean)
    }

    /// Warns about `p_alive > 1` and the like: comparisons a bounded field can never satisfy.
    fn range_warning(&mut self, span: Span, op: CompareOp, l: &Expr, r: &Expr) {
        let (Expr::Metric(m), Expr::Const(Const::Number(n))) = (l, r) else { return };
        let Some((name, _, _, Some((lo, hi)))) = FIELDS.iter().find(|f| f.1 == *m) else { return };
        let never = match op {
            CompareOp::Eq => *n < *lo || *n > *hi,
            CompareOp::Ne => false,
            CompareOp::Lt => *n <= *lo,
            CompareOp::Le => *n < *lo,
            CompareOp::Gt => *n >= *hi,
            CompareOp::Ge => *n > *hi,
        };
        if never {
            let range = if hi.is_finite() { format!("{lo}–{hi}") } else { format!("at least {lo}") };
            self.warn(span, format!("{name} is {range}, so this comparison is never true"), None);
        }
    }

    fn field(&mut self, name: &str, span: Span) -> (Expr, Ty) {
        if let Some(key) = name.strip_prefix("profile.") {
            self.reference(name);
            return (Expr::Profile(key.to_owned()), Ty::Any);
        }
        if let Some((field, metric, ty, _)) = FIELDS.iter().find(|f| f.0 == name) {
            self.reference(field);
            return (Expr::Metric(*metric), *ty);
        }
        if FUNCTIONS.contains(&name) {
            return self.error(span, format!("{name:?} is a function; call it, e.g. `{name}(\"…\")`"), None);
        }
        if name.eq_ignore_ascii_case("profile") {
            return self.error(span, "a profile fact is written `profile.<name>`".to_owned(), None);
        }
        let suggestion = nearest(name, FIELDS.iter().map(|f| f.0));
        let hint = suggestion.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default();
        self.error(span, format!("unknown field {name:?}{hint}"), suggestion)
    }

    fn call(&mut self, name: &str, name_span: Span, args: &[Ast], span: Span) -> (Expr, Ty) {
        if !FUNCTIONS.contains(&name) {
            let suggestion = nearest(name, FUNCTIONS.iter().copied());
            let hint = suggestion.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default();
            return self.error(name_span, format!("unknown function {name:?}{hint}"), suggestion);
        }
        self.reference(name);
        let arity = match name {
            "count" => 1..=2,
            _ => 1..=1,
        };
        if !arity.contains(&args.len()) {
            let wanted = if name == "count" { "1 or 2 arguments".to_owned() } else { "1 argument".to_owned() };
            return self.error(span, format!("{name} takes {wanted}, found {}", args.len()), None);
        }
        match name {
            "age" | "days_to_anniversary" => {
                let (e, ty) = self.expr(&args[0]);
                if !matches!(ty, Ty::String | Ty::Any) {
                    let shown = args[0].span.slice(self.text);
                    return self.error(
                        args[0].span,
                        format!("{name} needs a \"YYYY-MM-DD\" date, but {shown:?} is {}", ty.name()),
                        None,
                    );
                }
                let f = if name == "age" { Func::Age(Box::new(e)) } else { Func::DaysToAnniversary(Box::new(e)) };
                (Expr::Call(f), Ty::Number)
            }
            _ => {
                let Some(key) = self.string_argument(name, &args[0]) else { return (Expr::Invalid, Ty::Any) };
                match name {
                    "channel_share" => match self.name_in(&key, CHANNELS, "channel", args[0].span) {
                        Some(k) => (Expr::Call(Func::ChannelShare(k)), Ty::Number),
                        None => (Expr::Invalid, Ty::Any),
                    },
                    "category_share" => (Expr::Call(Func::CategoryShare(key)), Ty::Number),
                    "category_spend" => (Expr::Call(Func::CategorySpend(key)), Ty::Number),
                    "category_wallet_share" => (Expr::Call(Func::CategoryWalletShare(key)), Ty::Number),
                    "bought" => (Expr::Call(Func::Bought(key)), Ty::Boolean),
                    "bought_category" => (Expr::Call(Func::BoughtCategory(key)), Ty::Boolean),
                    "in_segment" => {
                        if !self.segments.contains(&key) {
                            self.segments.push(key.clone());
                        }
                        (Expr::Call(Func::InSegment(key)), Ty::Boolean)
                    }
                    "days_since" => match self.name_in(&key, INTERACTION_KINDS, "interaction kind", args[0].span) {
                        Some(k) => (Expr::Call(Func::DaysSince(k)), Ty::Number),
                        None => (Expr::Invalid, Ty::Any),
                    },
                    _ => {
                        let kind = self.name_in(&key, INTERACTION_KINDS, "interaction kind", args[0].span);
                        let days = match args.get(1) {
                            None => None,
                            Some(a) => match &a.kind {
                                AstKind::Literal(Literal::Number(d))
                                    if d.fract() == 0.0 && (1.0..=3650.0).contains(d) =>
                                {
                                    Some(*d as u32)
                                }
                                _ => {
                                    self.error(
                                        a.span,
                                        "count's days must be a whole number from 1 to 3650".to_owned(),
                                        None,
                                    );
                                    return (Expr::Invalid, Ty::Any);
                                }
                            },
                        };
                        match kind {
                            Some(k) => (Expr::Call(Func::Count(k, days)), Ty::Number),
                            None => (Expr::Invalid, Ty::Any),
                        }
                    }
                }
            }
        }
    }

    fn string_argument(&mut self, function: &str, arg: &Ast) -> Option<String> {
        if let AstKind::Literal(Literal::Str(s)) = &arg.kind {
            return Some(s.clone());
        }
        let shown = arg.span.slice(self.text);
        self.error(
            arg.span,
            format!("{function} takes a string literal, e.g. {function}(\"…\"), found {shown:?}"),
            None,
        );
        None
    }

    /// Resolves a case-insensitive name from a fixed list, or reports it with the nearest.
    fn name_in(&mut self, key: &str, names: &[&str], what: &str, span: Span) -> Option<String> {
        let lower = key.to_ascii_lowercase();
        if names.contains(&lower.as_str()) {
            return Some(lower);
        }
        let suggestion = nearest(&lower, names.iter().copied());
        let hint = suggestion.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default();
        self.error(span, format!("unknown {what} {key:?}{hint}"), suggestion);
        None
    }
}

fn is_tier(e: &Expr) -> bool {
    matches!(e, Expr::Metric(Metric::Tier | Metric::PreviousTier))
}

fn literal_type(literal: &Literal) -> Ty {
    match literal {
        Literal::Number(_) => Ty::Number,
        Literal::Str(_) => Ty::String,
        Literal::Bool(_) => Ty::Boolean,
    }
}

/// The known name closest to `name` by edit distance, when close enough to be a typo.
pub(crate) fn nearest<'n>(name: &str, known: impl Iterator<Item = &'n str>) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let limit = (lower.chars().count() / 3).max(1);
    known
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.to_owned())
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// two neighbours ("wbe" is one edit from "web").
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}
