//! Unit tests of the rule language: parsing and precedence, every error with its message,
//! warnings, normalisation and evaluation with its null semantics.

use chrono::NaiveDate;

use super::*;
use crate::domain::tiers::Tier;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

const TODAY: (i32, u32, u32) = (2026, 11, 23);

fn today() -> NaiveDate {
    day(TODAY.0, TODAY.1, TODAY.2)
}

fn rule(text: &str) -> Rule {
    match Rule::parse(text) {
        Ok(r) => r,
        Err(e) => panic!("{text:?} should parse: {e:?}"),
    }
}

/// The messages of the errors `text` produces.
fn errors(text: &str) -> Vec<String> {
    match Rule::parse(text) {
        Ok(_) => panic!("{text:?} should not parse"),
        Err(e) => e.into_iter().map(|d| d.message).collect(),
    }
}

fn error(text: &str) -> String {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    e[0].clone()
}

fn mvc_at_risk() -> CustomerMetrics {
    CustomerMetrics {
        last_purchase: Some(day(2026, 8, 1)),
        last_contact: Some(day(2026, 11, 1)),
        frequency: 4,
        monetary: 820.0,
        purchase_count: 12,
        total_spend: 2400.0,
        category_count: 3,
        r_score: Some(2),
        f_score: Some(5),
        m_score: Some(5),
        expected_purchases: Some(1.2),
        p_alive: Some(0.42),
        clv: Some(1500.0),
        cost_to_serve: Some(120.0),
        profit: Some(600.0),
        tier: Some(Tier::MostValuable),
        previous_tier: Some(Tier::Middle),
        at_risk: true,
        cluster: Some("family-shopper".to_owned()),
        channel_shares: vec![("web".to_owned(), 0.75), ("branch".to_owned(), 0.25)],
        categories: vec![CategoryFigures { category: "shoes".to_owned(), spend: 300.0, share: 0.366 }],
        activity: vec![KindActivity {
            kind: "complaint".to_owned(),
            window_count: 2,
            dates: vec![day(2026, 11, 20), day(2026, 1, 5)],
        }],
        products_bought: vec!["p-1".to_owned(), "p-7".to_owned()],
        categories_bought: vec!["shoes".to_owned()],
        facts: vec![
            ("customer_type".to_owned(), FactValue::Str("business".to_owned())),
            ("birth_date".to_owned(), FactValue::Str("1980-11-27".to_owned())),
            ("employees".to_owned(), FactValue::Number(40.0)),
        ],
        segments: vec!["vip".to_owned()],
        ..CustomerMetrics::default()
    }
}

fn holds(text: &str, m: &CustomerMetrics) -> bool {
    rule(text).matches_on(m, today())
}

// ---------------------------------------------------------------- parsing and precedence

#[test]
fn issue_examples_parse() {
    for text in [
        r#"tier = "MVC" and p_alive < 0.5 and days_since_purchase > 60"#,
        r#"cluster = "family-shopper" and channel_share("web") > 0.5"#,
        r#"tier in ("MVC", "MGC") and not at_risk"#,
        r#"clv > 2 * cost_to_serve and count("complaint", 90) = 0"#,
        r#"profile.customer_type = "business" and share_of_wallet is not null"#,
        r#"days_to_anniversary(profile.birth_date) between 0 and 7"#,
        r#"in_segment("mvc-at-risk") and category_share("shoes") >= 0.3"#,
    ] {
        rule(text);
    }
}

#[test]
fn and_binds_tighter_than_or() {
    let r = rule("at_risk or p_alive < 0.5 and clv > 10");
    let AstKind::Or(items) = &r.ast().kind else { panic!("top should be or: {:?}", r.ast()) };
    assert_eq!(items.len(), 2);
    assert!(matches!(items[1].kind, AstKind::And(_)));
}

#[test]
fn not_binds_tighter_than_and_but_looser_than_comparison() {
    let r = rule("not p_alive < 0.5 and at_risk");
    let AstKind::And(items) = &r.ast().kind else { panic!("top should be and") };
    let AstKind::Not(inner) = &items[0].kind else { panic!("first should be not") };
    assert!(matches!(inner.kind, AstKind::Compare(CompareOp::Lt, ..)));
}

#[test]
fn multiplication_binds_tighter_than_addition_and_is_left_associative() {
    let r = rule("clv > 1 + 2 * 3 - 4 - 5");
    let AstKind::Compare(_, _, rhs) = &r.ast().kind else { panic!() };
    // ((1 + (2 * 3)) - 4) - 5
    let AstKind::Arith(ArithOp::Sub, left, five) = &rhs.kind else { panic!("{rhs:?}") };
    assert_eq!(five.kind, AstKind::Literal(Literal::Number(5.0)));
    let AstKind::Arith(ArithOp::Sub, left, _) = &left.kind else { panic!() };
    let AstKind::Arith(ArithOp::Add, _, product) = &left.kind else { panic!() };
    assert!(matches!(product.kind, AstKind::Arith(ArithOp::Mul, ..)));
    assert_eq!(r.normalized(), "clv > 1 + 2 * 3 - 4 - 5");
}

#[test]
fn keywords_are_case_insensitive_and_normalized_lowercase() {
    let r = rule(r#"TIER = "mvc"   AND   Not at_risk OR p_alive Is NOT Null"#.replace("TIER", "tier").as_str());
    assert_eq!(r.normalized(), r#"tier = "mvc" and not at_risk or p_alive is not null"#);
}

#[test]
fn normalization_keeps_only_needed_parentheses() {
    assert_eq!(
        rule("((tier = \"MVC\")) and (at_risk or (p_alive < 0.5))").normalized(),
        "tier = \"MVC\" and (at_risk or p_alive < 0.5)"
    );
    assert_eq!(rule("clv > (1 + 2) * 3").normalized(), "clv > (1 + 2) * 3");
    assert_eq!(rule("clv > 10 - (2 - 1)").normalized(), "clv > 10 - (2 - 1)");
    assert_eq!(rule("not (at_risk and p_alive > 0.1)").normalized(), "not (at_risk and p_alive > 0.1)");
}

#[test]
fn in_between_and_is_null_forms_parse() {
    assert_eq!(
        rule(r#"tier not in ("MVC","BZC") and clv not between -5 and 10.5 and cluster is null"#).normalized(),
        r#"tier not in ("MVC", "BZC") and clv not between -5 and 10.5 and cluster is null"#
    );
}

#[test]
fn referenced_fields_and_segments_are_listed_once_in_order() {
    let r = rule(
        r#"tier = "MVC" and channel_share("web") > 0.5 and tier != "BZC" and profile.city = "Oslo" and in_segment("vip")"#,
    );
    assert_eq!(r.referenced_fields(), ["tier", "channel_share", "profile.city", "in_segment"]);
    assert_eq!(r.referenced_segments(), ["vip"]);
    assert!(r.reads_profile());
    assert!(!r.depends_on_time());
    assert!(rule("days_since_purchase > 60").depends_on_time());
}

#[test]
fn strings_unescape_quotes_and_backslashes() {
    let r = rule(r#"profile.note = "say \"hi\" \\ bye""#);
    assert_eq!(r.normalized(), r#"profile.note = "say \"hi\" \\ bye""#);
}

// ---------------------------------------------------------------- errors, one per kind

#[test]
fn missing_comparison_operator_names_position_and_expectation() {
    let e = Rule::parse(r#"tier = "MVC" and p_alive p_alive"#).expect_err("invalid");
    assert_eq!(e.len(), 1);
    let d = &e[0];
    assert_eq!(d.message, r#"1:26: expected a comparison operator, "and", "or" or end of rule, found "p_alive""#);
    assert_eq!((d.offset, d.line, d.column, d.length), (25, 1, 26, 7));
    assert_eq!(d.expected, ["a comparison operator", "\"and\"", "\"or\"", "end of rule"]);
    assert_eq!(d.found, "\"p_alive\"");
    assert_eq!(d.severity, Severity::Error);
}

#[test]
fn missing_operand_at_end_of_rule() {
    assert_eq!(
        error(r#"tier = "MVC" and p_alive <"#),
        r#"1:27: expected a number, string, field or "(" after "<", found end of rule"#
    );
}

#[test]
fn inside_parentheses_a_closing_parenthesis_is_expected() {
    assert_eq!(
        error("(at_risk p_alive"),
        r#"1:10: expected a comparison operator, "and", "or" or ")", found "p_alive""#
    );
    assert_eq!(error("(at_risk"), r#"1:9: expected ")", found end of rule"#);
    assert_eq!(error("at_risk)"), r#"1:8: expected "and", "or" or end of rule, found ")""#);
}

#[test]
fn positions_count_lines_and_code_points() {
    let d = &Rule::parse("cluster = \"café\"\n  and p_alive ! 1").expect_err("invalid")[0];
    assert_eq!((d.line, d.column, d.offset), (2, 15, 31));
    assert_eq!(
        d.message,
        r#"2:15: expected a field, function, literal, operator or "(", found "!" (use "!=" or "not")"#
    );
}

#[test]
fn empty_rule() {
    assert_eq!(error("   "), "1:4: expected a condition, found end of rule");
}

#[test]
fn unterminated_string() {
    assert_eq!(
        error(r#"tier = "MVC"#),
        r#"1:12: expected a closing '"' for the string opened at column 8, found end of rule"#
    );
}

#[test]
fn invalid_escape() {
    assert_eq!(error(r#"cluster = "a\nb""#), r#"1:13: expected \" or \\ (the only escapes in a string), found "\\n""#);
}

#[test]
fn malformed_numbers() {
    assert_eq!(error("clv > 1."), "1:9: expected a digit after the decimal point, found end of rule");
    assert_eq!(error("clv > 12abc"), r#"1:7: expected a number (digits with an optional decimal part), found "12abc""#);
}

#[test]
fn bad_in_list() {
    assert_eq!(error("tier in \"MVC\""), r#"1:9: expected "(" opening the list after "in", found "\"MVC\"""#);
    assert_eq!(error("tier in (clv)"), r#"1:10: expected a number, string, true or false, found "clv""#);
    assert_eq!(error(r#"tier in ("MVC" "MGC")"#), r#"1:16: expected "," or ")", found "\"MGC\"""#);
}

#[test]
fn bad_between_and_is() {
    assert_eq!(error("clv between 1 or 2"), r#"1:15: expected "and" between the bounds of "between", found "or""#);
    assert_eq!(error("clv is 3"), r#"1:8: expected "null" or "not null", found "3""#);
}

#[test]
fn bad_primary() {
    assert_eq!(error("tier = and"), r#"1:8: expected a number, string, field or "(" after "=", found "and""#);
    assert_eq!(
        error("and at_risk"),
        r#"1:1: expected a number, a string, a field, a function call, "not" or "(", found "and""#
    );
    assert_eq!(error("profile. = 1"), r#"1:10: expected a profile fact name after "profile.", found "=""#);
}

#[test]
fn nesting_and_size_limits() {
    let deep = format!("{}at_risk{}", "(".repeat(40), ")".repeat(40));
    assert!(error(&deep).ends_with("the rule nests deeper than 32 levels"), "{}", error(&deep));
    let many = vec!["clv > 1"; 257].join(" and ");
    assert!(error(&many).ends_with("the rule has more than 256 comparisons"));
    let list = (0..1001).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    assert!(error(&format!("clv in ({list})")).ends_with("an \"in\" list holds at most 1000 literals"));
    let long = format!("clv > 1{}", " ".repeat(4100));
    assert_eq!(error(&long), "1:4097: the rule is 4107 characters long; at most 4096 are allowed");
}

#[test]
fn unknown_field_suggests_the_nearest() {
    let d = &Rule::parse("p_alve < 0.5").expect_err("invalid")[0];
    assert_eq!(d.message, r#"1:1: unknown field "p_alve"; did you mean "p_alive"?"#);
    assert_eq!(d.suggestion.as_deref(), Some("p_alive"));
    assert!(d.expected.is_empty());
    assert_eq!(error("Tier = \"MVC\""), r#"1:1: unknown field "Tier"; did you mean "tier"?"#);
    assert_eq!(error("zzzzzz = 1"), r#"1:1: unknown field "zzzzzz""#);
}

#[test]
fn unknown_function_and_misused_function() {
    assert_eq!(
        error(r#"chanel_share("web") > 0.5"#),
        r#"1:1: unknown function "chanel_share"; did you mean "channel_share"?"#
    );
    assert_eq!(
        error("channel_share > 0.5"),
        r#"1:1: "channel_share" is a function; call it, e.g. `channel_share("…")`"#
    );
    assert_eq!(error(r#"channel_share("web", 2) > 0.5"#), "1:1: channel_share takes 1 argument, found 2");
    assert_eq!(
        error("channel_share(tier) > 0.5"),
        r#"1:15: channel_share takes a string literal, e.g. channel_share("…"), found "tier""#
    );
    assert_eq!(error(r#"channel_share("wbe") > 0.5"#), r#"1:15: unknown channel "wbe"; did you mean "web"?"#);
    assert_eq!(error(r#"count("complaint", 0) = 0"#), "1:20: count's days must be a whole number from 1 to 3650");
    assert_eq!(error("age(clv) > 30"), r#"1:5: age needs a "YYYY-MM-DD" date, but "clv" is a number"#);
}

#[test]
fn type_errors_are_all_reported_in_order() {
    assert_eq!(
        errors(r#"tier > 3 and p_alive = "high" or clv + tier > 1 or at_risk < true"#),
        [
            r#"1:1: cannot compare "tier" (a string) with "3" (a number)"#,
            r#"1:14: cannot compare "p_alive" (a number) with "\"high\"" (a string)"#,
            r#"1:40: "+" needs numbers, but "tier" is a string"#,
            r#"1:52: "<" needs numbers or strings, not booleans"#,
        ]
    );
}

#[test]
fn a_non_boolean_rule_is_an_error() {
    assert_eq!(
        error("p_alive"),
        r#"1:1: "p_alive" is a number where a condition is needed; compare it, e.g. `p_alive > 0`"#
    );
    assert_eq!(
        error(r#"at_risk and cluster"#),
        r#"1:13: "cluster" is a string where a condition is needed; compare it, e.g. `cluster = "…"`"#
    );
    assert_eq!(error(r#"tier in (1, "MVC")"#), r#"1:10: "tier" is a string but this list item is a number"#);
}

#[test]
fn warnings_flag_rules_that_never_match() {
    let r = rule(r#"tier = "gold" or p_alive > 1"#);
    let w: Vec<&str> = r.warnings().iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        w,
        [
            r#"1:8: "gold" is not a tier (tiers: MVC, MGC, BZC, MIDDLE, LONG_TAIL), so this never matches"#,
            "1:18: p_alive is 0–1, so this comparison is never true",
        ]
    );
    assert!(r.warnings().iter().all(|d| d.severity == Severity::Warning));
}

// ---------------------------------------------------------------- evaluation

#[test]
fn issue_examples_evaluate() {
    let m = mvc_at_risk();
    assert!(holds(r#"tier = "MVC" and p_alive < 0.5 and days_since_purchase > 60"#, &m));
    assert!(holds(r#"cluster = "family-shopper" and channel_share("web") > 0.5"#, &m));
    assert!(!holds(r#"cluster = "family-shopper" and channel_share("app") > 0.5"#, &m));
    assert!(!holds(r#"tier in ("MVC", "MGC") and not at_risk"#, &m));
    assert!(holds(r#"clv > 2 * cost_to_serve and count("complaint", 90) = 1"#, &m));
    assert!(holds(r#"count("complaint") = 2 and days_since("complaint") = 3"#, &m));
    assert!(holds(r#"profile.customer_type = "business" and share_of_wallet is null"#, &m));
    assert!(holds("days_to_anniversary(profile.birth_date) between 0 and 7", &m));
    assert!(holds("age(profile.birth_date) = 45", &m));
    assert!(holds(r#"in_segment("vip") and category_share("shoes") >= 0.3 and bought("p-7")"#, &m));
    assert!(!holds(r#"bought("p-2") or bought_category("toys") or in_segment("other")"#, &m));
}

#[test]
fn tier_names_compare_case_insensitively() {
    let m = mvc_at_risk();
    assert!(holds(r#"tier = "mvc" and previous_tier = "Middle""#, &m));
    assert!(holds(r#""mvc" = tier and tier in ("long_tail", "mvc")"#, &m));
    assert!(!holds(r#"cluster = "Family-Shopper""#, &m));
}

#[test]
fn comparisons_with_null_are_false_including_not_equal() {
    let new = CustomerMetrics::default();
    assert!(!holds("days_since_purchase > 60", &new));
    assert!(!holds("days_since_purchase <= 60", &new));
    assert!(!holds(r#"tier != "MVC""#, &new));
    assert!(!holds(r#"tier in ("MVC")"#, &new));
    assert!(!holds(r#"tier not in ("MVC")"#, &new));
    assert!(!holds("p_alive between 0 and 1", &new));
    assert!(!holds("p_alive not between 0 and 1", &new));
    assert!(holds("not days_since_purchase > 60", &new));
    assert!(holds("days_since_purchase is null and tier is null", &new));
    assert!(!holds("days_since_purchase is not null", &new));
    assert!(!holds("profile.city = \"Oslo\"", &new));
    assert!(!holds("average_order_value > 0", &new));
}

#[test]
fn a_new_customer_has_zero_counts() {
    let new = CustomerMetrics::default();
    assert!(holds(r#"purchase_count = 0 and frequency = 0 and count("purchase", 30) = 0"#, &new));
    assert!(holds(r#"channel_share("web") = 0 and category_spend("shoes") = 0 and not at_risk"#, &new));
    assert!(holds(r#"days_since("purchase") is null and category_wallet_share("shoes") is null"#, &new));
}

#[test]
fn arithmetic_with_null_or_division_by_zero_is_null() {
    let m = mvc_at_risk();
    assert!(holds("clv / 0 is null", &m));
    assert!(holds("share_of_wallet + 1 is null", &m));
    assert!(!holds("clv / 0 > 1", &m));
    assert!(holds("clv / (frequency - 4) is null", &m));
    assert!(holds("-clv < 0 and average_order_value = 200", &m));
}

#[test]
fn profile_facts_of_another_type_compare_false() {
    let m = mvc_at_risk();
    assert!(holds("profile.employees >= 40", &m));
    assert!(!holds("profile.employees = \"40\"", &m));
    assert!(!holds("profile.employees != \"40\"", &m));
    assert!(holds("profile.birth_date < \"1990-01-01\"", &m));
}

#[test]
fn a_boolean_fact_or_parenthesised_condition_can_be_compared() {
    let m = mvc_at_risk();
    assert!(holds("(p_alive < 0.5) = at_risk", &m));
    assert!(holds("at_risk = true and (tier = \"BZC\") = false", &m));
}

#[test]
fn explanation_lists_every_comparison_in_rule_order() {
    let r = rule(r#"tier = "MVC" or p_alive > 0.5 and days_since_purchase is null"#);
    let m = mvc_at_risk();
    let (matched, terms) = r.explain(&Subject { metrics: &m, today: today() });
    assert!(matched);
    let summary: Vec<(&str, bool, &str, usize)> =
        terms.iter().map(|t| (t.term.as_str(), t.result, t.observed.as_str(), t.offset)).collect();
    assert_eq!(
        summary,
        [
            (r#"tier = "MVC""#, true, r#""MVC""#, 0),
            ("p_alive > 0.5", false, "0.42", 16),
            ("days_since_purchase is null", false, "114", 34),
        ]
    );
}

#[test]
fn days_to_anniversary_wraps_to_next_year() {
    let m = CustomerMetrics {
        facts: vec![("since".to_owned(), FactValue::Str("2020-11-22".to_owned()))],
        ..CustomerMetrics::default()
    };
    assert!(holds("days_to_anniversary(profile.since) = 364", &m));
    assert!(holds("days_to_anniversary(\"2000-11-23\") = 0", &m));
    assert!(holds("days_to_anniversary(\"not a date\") is null", &m));
}
