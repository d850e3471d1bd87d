//! Complaints and their daily chart: what a valid category is, and the chart's figures
//! per day and category (opened, resolved, first-contact resolution, resolution time
//! percentiles, backlog), computed from the complaints of a period.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Utc};
use chrono_tz::Tz;

/// Severity codes (the proto's numbers).
pub mod severity {
    /// Minor annoyance.
    pub const LOW: i16 = 1;
    /// Ordinary (the default).
    pub const MEDIUM: i16 = 2;
    /// Critical.
    pub const CRITICAL: i16 = 4;
}

/// State codes (the proto's numbers).
pub mod state {
    /// Being worked on.
    pub const OPEN: i16 = 1;
    /// Resolved.
    pub const RESOLVED: i16 = 2;
}

/// Whether `value` is a category or topic code: 1–64 characters of `[a-z0-9_.-]`.
pub fn is_code(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
}

/// What the chart needs of one complaint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartComplaint {
    /// Its category.
    pub category: String,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When it was resolved, if it was.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Resolved with one contact.
    pub first_contact: bool,
}

/// The figures of one row of the chart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChartRow {
    /// The local day, or None for a period total.
    pub date: Option<NaiveDate>,
    /// The category, or None for all categories together.
    pub category: Option<String>,
    /// Complaints opened in the span.
    pub opened: i64,
    /// Complaints resolved in the span.
    pub resolved: i64,
    /// Of them, resolved at first contact.
    pub first_contact_resolved: i64,
    /// `first_contact_resolved / resolved`; None when nothing was resolved.
    pub first_contact_resolution_rate: Option<f64>,
    /// Resolution time percentiles (p50, p90, p99) of those resolved in the span.
    pub resolution_time: Option<[Duration; 3]>,
    /// Complaints still open at the end of the span.
    pub open_at_end: i64,
}

/// The chart over a period.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chart {
    /// Per day and category with any activity, by date then category.
    pub rows: Vec<ChartRow>,
    /// Per day of the period, every day, all categories.
    pub daily_totals: Vec<ChartRow>,
    /// Per category over the whole period.
    pub category_totals: Vec<ChartRow>,
    /// The whole period.
    pub total: ChartRow,
}

/// The `p`-th percentile (0–100) of sorted `values` by the nearest-rank method: the
/// smallest value at or above which `p`% of the values lie.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// The local days of `[start, end)` in `tz`, each with its span clipped to the period.
pub fn days(start: DateTime<Utc>, end: DateTime<Utc>, tz: Tz) -> Vec<(NaiveDate, DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    if end <= start {
        return out;
    }
    let mut date = start.with_timezone(&tz).date_naive();
    let last = (end - Duration::nanoseconds(1)).with_timezone(&tz).date_naive();
    while date <= last {
        let next = date.succ_opt().unwrap_or(date);
        let from = local_midnight(date, tz).max(start);
        let to = local_midnight(next, tz).min(end);
        out.push((date, from, to));
        if next == date {
            break;
        }
        date = next;
    }
    out
}

/// The first instant of `date` in `tz` (a midnight skipped by DST starts at the first
/// instant after it).
fn local_midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut t = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..8 {
        if let Some(instant) = tz.from_local_datetime(&t).earliest() {
            return instant.with_timezone(&Utc);
        }
        t += Duration::minutes(30);
    }
    Utc.from_utc_datetime(&t)
}

/// The figures of `complaints` over `[from, to)`.
fn row(complaints: &[&ChartComplaint], from: DateTime<Utc>, to: DateTime<Utc>) -> ChartRow {
    let in_span = |t: DateTime<Utc>| from <= t && t < to;
    let opened = complaints.iter().filter(|c| in_span(c.opened_at)).count() as i64;
    let resolved: Vec<&&ChartComplaint> = complaints.iter().filter(|c| c.resolved_at.is_some_and(in_span)).collect();
    let first_contact_resolved = resolved.iter().filter(|c| c.first_contact).count() as i64;
    let mut times: Vec<Duration> = resolved.iter().filter_map(|c| c.resolved_at.map(|r| r - c.opened_at)).collect();
    times.sort_unstable();
    let resolution_time = match (percentile(&times, 50.0), percentile(&times, 90.0), percentile(&times, 99.0)) {
        (Some(p50), Some(p90), Some(p99)) => Some([p50, p90, p99]),
        _ => None,
    };
    let open_at_end =
        complaints.iter().filter(|c| c.opened_at < to && c.resolved_at.is_none_or(|r| r >= to)).count() as i64;
    let resolved_count = resolved.len() as i64;
    ChartRow {
        date: None,
        category: None,
        opened,
        resolved: resolved_count,
        first_contact_resolved,
        first_contact_resolution_rate: (resolved_count > 0)
            .then(|| first_contact_resolved as f64 / resolved_count as f64),
        resolution_time,
        open_at_end,
    }
}

/// The chart of `complaints` (every complaint open at some time in the period, opened
/// or resolved in it) over `[start, end)`, days cut at midnight in `tz`.
pub fn chart(complaints: &[ChartComplaint], start: DateTime<Utc>, end: DateTime<Utc>, tz: Tz) -> Chart {
    let days = days(start, end, tz);
    let all: Vec<&ChartComplaint> = complaints.iter().collect();
    let categories: BTreeSet<&str> = complaints.iter().map(|c| c.category.as_str()).collect();
    let by_category: BTreeMap<&str, Vec<&ChartComplaint>> =
        categories.iter().map(|cat| (*cat, complaints.iter().filter(|c| c.category == *cat).collect())).collect();
    let mut chart = Chart::default();
    for (date, from, to) in &days {
        for (category, members) in &by_category {
            let r = row(members, *from, *to);
            if r.opened > 0 || r.resolved > 0 {
                chart.rows.push(ChartRow { date: Some(*date), category: Some((*category).to_owned()), ..r });
            }
        }
        chart.daily_totals.push(ChartRow { date: Some(*date), ..row(&all, *from, *to) });
    }
    for (category, members) in &by_category {
        chart.category_totals.push(ChartRow { category: Some((*category).to_owned()), ..row(members, start, end) });
    }
    chart.total = row(&all, start, end);
    chart
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("a valid RFC 3339 time")
    }

    fn complaint(category: &str, opened: &str, resolved: Option<&str>, first_contact: bool) -> ChartComplaint {
        ChartComplaint {
            category: category.into(),
            opened_at: utc(opened),
            resolved_at: resolved.map(utc),
            first_contact,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let d: Vec<Duration> = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].iter().map(|h| Duration::hours(*h)).collect();
        assert_eq!(percentile(&d, 50.0), Some(Duration::hours(5)));
        assert_eq!(percentile(&d, 90.0), Some(Duration::hours(9)));
        assert_eq!(percentile(&d, 99.0), Some(Duration::hours(10)));
        assert_eq!(percentile(&d[..1], 50.0), Some(Duration::hours(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn days_are_cut_at_local_midnight_and_clipped_to_the_period() {
        let paris: Tz = "Europe/Paris".parse().expect("zone");
        let d = days(utc("2026-01-01T12:00:00Z"), utc("2026-01-03T00:00:00Z"), paris);
        let dates: Vec<String> = d.iter().map(|(date, _, _)| date.to_string()).collect();
        assert_eq!(dates, ["2026-01-01", "2026-01-02", "2026-01-03"]);
        assert_eq!(d[0].1, utc("2026-01-01T12:00:00Z"));
        assert_eq!(d[1].1, utc("2026-01-01T23:00:00Z"));
        assert_eq!(d[2].2, utc("2026-01-03T00:00:00Z"));
    }

    #[test]
    fn the_chart_counts_each_day_and_category() {
        let complaints = [
            // Billing: opened day 1, resolved day 1 after 2 h at first contact.
            complaint("billing", "2026-01-01T09:00:00Z", Some("2026-01-01T11:00:00Z"), true),
            // Billing: opened day 1, resolved day 2 after 24 h, three contacts.
            complaint("billing", "2026-01-01T10:00:00Z", Some("2026-01-02T10:00:00Z"), false),
            // Delivery: opened day 2, still open.
            complaint("delivery", "2026-01-02T08:00:00Z", None, false),
        ];
        let chart = chart(&complaints, utc("2026-01-01T00:00:00Z"), utc("2026-01-04T00:00:00Z"), Tz::UTC);
        let keyed: Vec<(String, String, i64, i64)> = chart
            .rows
            .iter()
            .map(|r| {
                (
                    r.date.map(|d| d.to_string()).unwrap_or_default(),
                    r.category.clone().unwrap_or_default(),
                    r.opened,
                    r.resolved,
                )
            })
            .collect();
        assert_eq!(
            keyed,
            [
                ("2026-01-01".into(), "billing".into(), 2, 1),
                ("2026-01-02".into(), "billing".into(), 0, 1),
                ("2026-01-02".into(), "delivery".into(), 1, 0),
            ]
        );
        assert_eq!(chart.daily_totals.len(), 3);
        assert_eq!(chart.daily_totals[0].open_at_end, 1);
        assert_eq!(chart.daily_totals[1].open_at_end, 1);
        assert_eq!(chart.daily_totals[2].opened, 0);
        assert_eq!(chart.total.opened, 3);
        assert_eq!(chart.total.resolved, 2);
        assert_eq!(chart.total.first_contact_resolution_rate, Some(0.5));
        assert_eq!(chart.total.resolution_time, Some([Duration::hours(2), Duration::hours(24), Duration::hours(24)]));
        assert_eq!(chart.total.open_at_end, 1);
        assert_eq!(chart.category_totals.len(), 2);
        assert_eq!(chart.category_totals[1].resolution_time, None);
    }
}
