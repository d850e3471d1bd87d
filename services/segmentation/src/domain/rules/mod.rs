//! The segment rule language: a small boolean expression over one customer's metrics, parsed
//! by hand (lexer, recursive descent), type-checked against a catalogue of fields and
//! functions, and evaluated against a [`CustomerMetrics`] record. Plain Rust, no I/O.
//!
//! # The language
//!
//! ```text
//! tier = "MVC" and p_alive < 0.5 and days_since_purchase > 60
//! cluster = "family-shopper" and channel_share("web") > 0.5
//! tier in ("MVC", "MGC") and not at_risk
//! clv > 2 * cost_to_serve and count("complaint", 90) = 0
//! profile.customer_type = "business" and share_of_wallet is not null
//! days_to_anniversary(profile.birth_date) between 0 and 7
//! ```
//!
//! Grammar (EBNF; keywords case-insensitive, whitespace insignificant), as in the proto's
//! "Rule language" section, which is the contract:
//!
//! ```text
//! rule        = expr ;
//! expr        = and_expr { "or" and_expr } ;
//! and_expr    = not_expr { "and" not_expr } ;
//! not_expr    = "not" not_expr | predicate ;
//! predicate   = sum [ comparison ] ;          (a bare sum must be boolean)
//! comparison  = compare_op sum
//!             | [ "not" ] "in" "(" literal { "," literal } ")"
//!             | [ "not" ] "between" sum "and" sum
//!             | "is" [ "not" ] "null" ;
//! compare_op  = "=" | "!=" | "<" | "<=" | ">" | ">=" ;
//! sum         = product { ( "+" | "-" ) product } ;
//! product     = unary { ( "*" | "/" ) unary } ;
//! unary       = [ "-" ] primary ;
//! primary     = literal | field | call | "(" expr ")" ;
//! field       = identifier | "profile" "." identifier ;
//! call        = identifier "(" [ expr { "," expr } ] ")" ;
//! literal     = number | string | "true" | "false" ;
//! number      = digit { digit } [ "." digit { digit } ] ;
//! string      = '"' { any character but '"' or '\', or '\"' or '\\' } '"' ;
//! ```
//!
//! Precedence, loosest first: `or`, `and`, `not`, comparisons, `+ -`, `* /`, unary `-`.
//! `between` bounds are inclusive. Limits: 4,096 characters, 32 levels of nesting, 256
//! comparisons, 1,000 literals in an `in` list.
//!
//! **Types.** number, string, boolean; profile facts (`profile.<key>`) take their type per
//! customer. `=`, `!=` and `in` need both sides of one type; ordering, `between` and
//! arithmetic need numbers (ordering and `between` also take strings, by code point, so
//! "YYYY-MM-DD" dates order). Tier names compare case-insensitively, as do channel and
//! interaction kind names given to functions. Function arguments naming a channel, category,
//! kind, product or segment must be string literals; `count`'s days a whole number 1–3650.
//!
//! **Null.** An unknown value (no purchase yet, no P(alive) before scoring, a missing fact,
//! division by zero) is null. Any comparison with null is false, `!=`, `in` and `not in`
//! included; arithmetic with null is null; `not` of a false comparison is true; a null or
//! non-boolean value used as a condition is false; `is [not] null` tests for it. A profile
//! fact of another type than what it is compared with compares false, like null.
//!
//! **Fields** (the proto's list): numbers `days_since_purchase`, `days_since_contact`,
//! `frequency`, `monetary`, `purchase_count`, `total_spend`, `average_order_value`,
//! `category_count`, `r_score`, `f_score`, `m_score`, `expected_purchases`, `p_alive`,
//! `p_alive_change`, `expected_spend`, `clv`, `cost_to_serve`, `profit`, `share_of_wallet`,
//! `growth_ratio`, `value_percentile`; strings `tier`, `previous_tier`, `cluster`; boolean
//! `at_risk`; and `profile.<key>`. Unknown tier names and comparisons a bounded field can
//! never satisfy (`p_alive > 1`) are warnings, not errors. Functions:
//! `channel_share`, `category_share`, `category_spend`, `category_wallet_share`, `count`,
//! `days_since`, `bought`, `bought_category`, `in_segment`, `age`, `days_to_anniversary`.
//!
//! **Errors.** Lexing and parsing stop at the first error; type errors are all reported. Each
//! [`Diagnostic`] carries its position (code point offset, line, column), what was found and
//! what was expected, rendered as `1:26: expected a comparison operator, "and", "or" or end
//! of rule, found "p_alive"`; an unknown name suggests the nearest known one.

mod check;
mod eval;
mod lexer;
mod parser;

#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use chrono::NaiveDate;

pub use check::{CHANNELS, INTERACTION_KINDS, TIER_CODES};
pub use eval::{CategoryFigures, CustomerMetrics, FactValue, KindActivity, Subject, Value, tier_code};
pub use parser::{ArithOp, Ast, AstKind, CompareOp, Literal};

/// Longest rule, in characters.
pub const MAX_RULE_CHARS: usize = 4096;
/// Deepest nesting of parentheses and `not`.
pub const MAX_NESTING: usize = 32;
/// Most comparisons in one rule.
pub const MAX_COMPARISONS: usize = 256;
/// Most literals in one `in` list.
pub const MAX_IN_LIST: usize = 1000;

/// A byte range of the rule text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The span from the start of `self` to the end of `other`.
    pub(crate) fn to(self, other: Span) -> Span {
        Span::new(self.start, other.end.max(self.end))
    }

    /// The text it covers.
    pub fn slice(self, text: &str) -> &str {
        text.get(self.start..self.end).unwrap_or("")
    }
}

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The rule cannot be used.
    Error,
    /// The rule works but probably does not do what was meant.
    Warning,
}

/// One problem found in a rule, located in its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The problem in words, prefixed with `line:column: `.
    pub message: String,
    /// 0-based offset, in code points.
    pub offset: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column within the line, in code points.
    pub column: usize,
    /// Length of the offending text in code points (0 at the end of the rule).
    pub length: usize,
    /// What the parser expected (syntax errors only).
    pub expected: Vec<String>,
    /// What it found instead: the offending text quoted, or `end of rule`.
    pub found: String,
    /// A likely fix, e.g. the nearest known field name.
    pub suggestion: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// 1-based line and column (in code points) of byte `at` of `text`.
pub(crate) fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

impl Diagnostic {
    fn located(text: &str, span: Span, severity: Severity, body: String) -> Self {
        let (line, column) = line_column(text, span.start);
        let offset = text.get(..span.start).unwrap_or(text).chars().count();
        let found = if span.start >= text.len() { "end of rule".to_owned() } else { quote(span.slice(text)) };
        Self {
            severity,
            message: format!("{line}:{column}: {body}"),
            offset,
            line,
            column,
            length: span.slice(text).chars().count(),
            expected: Vec::new(),
            found,
            suggestion: None,
        }
    }

    /// A syntax error: `expected …, found …`.
    pub(crate) fn syntax(
        text: &str,
        span: Span,
        expected: Vec<String>,
        found: String,
        suggestion: Option<String>,
    ) -> Self {
        let body = format!("expected {}, found {found}", one_of(&expected));
        let mut d = Self::located(text, span, Severity::Error, body);
        d.expected = expected;
        d.found = found;
        d.suggestion = suggestion;
        d
    }

    /// A type or limit error, worded by the caller.
    pub(crate) fn error(text: &str, span: Span, body: String, suggestion: Option<String>) -> Self {
        let mut d = Self::located(text, span, Severity::Error, body);
        d.suggestion = suggestion;
        d
    }

    /// A warning, worded by the caller.
    pub(crate) fn warning(text: &str, span: Span, body: String, suggestion: Option<String>) -> Self {
        let mut d = Self::located(text, span, Severity::Warning, body);
        d.suggestion = suggestion;
        d
    }
}

/// `a`, `a or b`, `a, b or c`.
fn one_of(items: &[String]) -> String {
    match items {
        [] => "something else".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A string as the rule language writes it.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A number as the rule language writes it: `60`, `0.5`, `-3.25`.
pub(crate) fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { format!("{n}") }
}

/// A parsed, type-checked rule, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Rule {
    text: String,
    ast: Ast,
    expr: check::Expr,
    terms: Vec<Span>,
    warnings: Vec<Diagnostic>,
    fields: Vec<String>,
    segments: Vec<String>,
}

/// The outcome of one comparison of a rule for one customer (an explanation).
#[derive(Debug, Clone, PartialEq)]
pub struct TermOutcome {
    /// The comparison as written.
    pub term: String,
    /// Its offset in the rule, in code points.
    pub offset: usize,
    /// Its length in code points.
    pub length: usize,
    /// Whether it held.
    pub result: bool,
    /// The left-hand value, rendered as in the rule language; `null` when not evaluated.
    pub observed: String,
}

impl Rule {
    /// Parses and type-checks `text`. On failure, the errors: the first syntax error, or
    /// every type error, in order of position.
    pub fn parse(text: &str) -> Result<Self, Vec<Diagnostic>> {
        let chars = text.chars().count();
        if chars > MAX_RULE_CHARS {
            let at = text.char_indices().nth(MAX_RULE_CHARS).map_or(text.len(), |(i, _)| i);
            return Err(vec![Diagnostic::error(
                text,
                Span::new(at, text.len()),
                format!("the rule is {chars} characters long; at most {MAX_RULE_CHARS} are allowed"),
                None,
            )]);
        }
        let tokens = lexer::tokenize(text).map_err(|e| vec![*e])?;
        if matches!(tokens.first().map(|t| &t.token), Some(lexer::Token::End)) {
            return Err(vec![Diagnostic::syntax(
                text,
                Span::new(text.len(), text.len()),
                vec!["a condition".to_owned()],
                "end of rule".to_owned(),
                None,
            )]);
        }
        let ast = parser::parse(text, &tokens).map_err(|e| vec![*e])?;
        let checked = check::check(text, &ast);
        if !checked.errors.is_empty() {
            let mut errors = checked.errors;
            errors.sort_by_key(|d| d.offset);
            return Err(errors);
        }
        let mut warnings = checked.warnings;
        warnings.sort_by_key(|d| d.offset);
        Ok(Self {
            text: text.to_owned(),
            ast,
            expr: checked.expr,
            terms: checked.terms,
            warnings,
            fields: checked.fields,
            segments: checked.segments,
        })
    }

    /// The rule as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its syntax tree.
    pub fn ast(&self) -> &Ast {
        &self.ast
    }

    /// Warnings: the rule works but probably does not do what was meant.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// Fields and functions the rule reads (`tier`, `channel_share`, `profile.city`), in
    /// order of first use.
    pub fn referenced_fields(&self) -> &[String] {
        &self.fields
    }

    /// Segment ids the rule reads through `in_segment`.
    pub fn referenced_segments(&self) -> &[String] {
        &self.segments
    }

    /// Whether the rule reads profile facts (which needs `profiles.read`).
    pub fn reads_profile(&self) -> bool {
        self.fields.iter().any(|f| f.starts_with("profile."))
    }

    /// Whether the rule depends on the date (day counts, ages, anniversaries), so that it
    /// must be re-evaluated as time passes.
    pub fn depends_on_time(&self) -> bool {
        self.fields.iter().any(|f| {
            matches!(
                f.as_str(),
                "days_since_purchase" | "days_since_contact" | "count" | "days_since" | "age" | "days_to_anniversary"
            )
        })
    }

    /// Whether the customer satisfies the rule.
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        self.expr.holds(subject, &mut None)
    }

    /// Whether `metrics` satisfies the rule on `today`.
    pub fn matches_on(&self, metrics: &CustomerMetrics, today: NaiveDate) -> bool {
        self.matches(&Subject { metrics, today })
    }

    /// Evaluates the rule and explains it comparison by comparison, in rule order (every
    /// comparison is evaluated, without short-circuit).
    pub fn explain(&self, subject: &Subject<'_>) -> (bool, Vec<TermOutcome>) {
        let mut trace: eval::Trace = vec![None; self.terms.len()];
        let matched = self.expr.holds(subject, &mut Some(&mut trace));
        let mut outcomes: Vec<TermOutcome> = self
            .terms
            .iter()
            .zip(trace)
            .map(|(span, t)| {
                let (result, observed) = t.unwrap_or((false, "null".to_owned()));
                TermOutcome {
                    term: span.slice(&self.text).to_owned(),
                    offset: self.text[..span.start].chars().count(),
                    length: span.slice(&self.text).chars().count(),
                    result,
                    observed,
                }
            })
            .collect();
        outcomes.sort_by_key(|o| o.offset);
        (matched, outcomes)
    }

    /// The rule in canonical form: keywords lowercase, single spaces, minimal parentheses.
    pub fn normalized(&self) -> String {
        let mut out = String::new();
        write_ast(&mut out, &self.ast, 0);
        out
    }
}

/// Binding strength of a node, loosest first, for minimal parentheses.
fn precedence(kind: &AstKind) -> u8 {
    match kind {
        AstKind::Or(_) => 1,
        AstKind::And(_) => 2,
        AstKind::Not(_) => 3,
        AstKind::Compare(..) | AstKind::In { .. } | AstKind::Between { .. } | AstKind::IsNull { .. } => 4,
        AstKind::Arith(ArithOp::Add | ArithOp::Sub, ..) => 5,
        AstKind::Arith(ArithOp::Mul | ArithOp::Div, ..) => 6,
        AstKind::Neg(_) => 7,
        AstKind::Literal(_) | AstKind::Field(_) | AstKind::Call { .. } => 8,
    }
}

fn write_literal(out: &mut String, literal: &Literal) {
    match literal {
        Literal::Number(n) => out.push_str(&format_number(*n)),
        Literal::Str(s) => out.push_str(&quote(s)),
        Literal::Bool(b) => {
            let _ = write!(out, "{b}");
        }
    }
}

/// Writes `ast`, parenthesised when it binds looser than `min` allows.
fn write_ast(out: &mut String, ast: &Ast, min: u8) {
    let own = precedence(&ast.kind);
    let parens = own < min;
    if parens {
        out.push('(');
    }
    match &ast.kind {
        AstKind::Or(items) | AstKind::And(items) => {
            let sep = if own == 1 { " or " } else { " and " };
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                write_ast(out, item, own + 1);
            }
        }
        AstKind::Not(inner) => {
            out.push_str("not ");
            write_ast(out, inner, 3);
        }
        AstKind::Compare(op, l, r) => {
            write_ast(out, l, 5);
            let _ = write!(out, " {} ", op.symbol());
            write_ast(out, r, 5);
        }
        AstKind::In { negated, value, list } => {
            write_ast(out, value, 5);
            out.push_str(if *negated { " not in (" } else { " in (" });
            for (i, (literal, _)) in list.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_literal(out, literal);
            }
            out.push(')');
        }
        AstKind::Between { negated, value, low, high } => {
            write_ast(out, value, 5);
            out.push_str(if *negated { " not between " } else { " between " });
            write_ast(out, low, 5);
            out.push_str(" and ");
            write_ast(out, high, 5);
        }
        AstKind::IsNull { negated, value } => {
            write_ast(out, value, 5);
            out.push_str(if *negated { " is not null" } else { " is null" });
        }
        AstKind::Arith(op, l, r) => {
            write_ast(out, l, own);
            let _ = write!(out, " {} ", op.symbol());
            // Left-associative: a right operand of equal strength keeps its parentheses.
            write_ast(out, r, own + 1);
        }
        AstKind::Neg(inner) => {
            out.push('-');
            write_ast(out, inner, 7);
        }
        AstKind::Literal(literal) => write_literal(out, literal),
        AstKind::Field(name) => out.push_str(name),
        AstKind::Call { name, args, .. } => {
            out.push_str(name);
            out.push('(');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_ast(out, a, 0);
            }
            out.push(')');
        }
    }
    if parens {
        out.push(')');
    }
}
