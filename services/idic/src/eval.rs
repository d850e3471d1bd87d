//! `idic eval recommendations FILE.csv`: the offline leave-last-out evaluation of the
//! recommender on any interaction file (each customer's last new item held out, the rest
//! learned from), HR@k and NDCG@k beside the popularity baseline of the same split. Runs
//! locally on the file; no server is needed.

use std::{collections::HashMap, path::PathBuf, time::Instant};

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use idic_customization::domain::{
    evaluation::evaluate_against_popularity,
    recommend::{CustomerKey, FeedbackKind, Interaction, ItemId, TrainSettings},
};

/// Arguments of `idic eval recommendations`.
#[derive(Debug, clap::Args)]
pub struct EvalRecommendationsArgs {
    /// The interaction file: CSV with a header row.
    pub file: PathBuf,
    /// Column holding the customer (any string).
    #[arg(long, default_value = "customer")]
    pub customer_column: String,
    /// Column holding the item (any string).
    #[arg(long, default_value = "item")]
    pub item_column: String,
    /// Column holding the kind: view, basket (or basket_add), purchase, negative (or return).
    /// Without it every row is a purchase.
    #[arg(long)]
    pub kind_column: Option<String>,
    /// Column holding the time: Unix seconds, RFC 3339, `YYYY-MM-DD HH:MM:SS` or
    /// `YYYY-MM-DD`. Without it rows are in time order, one second apart.
    #[arg(long)]
    pub time_column: Option<String>,
    /// Field delimiter.
    #[arg(long, default_value = ",")]
    pub delimiter: char,
    /// Length of each ranked list (HR@k, NDCG@k).
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Half-life of the recency weight, in days.
    #[arg(long, default_value_t = 90.0)]
    pub half_life_days: f64,
    /// Neighbours kept per item.
    #[arg(long, default_value_t = 100)]
    pub neighbours: usize,
}

/// Runs the evaluation and prints its table.
pub fn recommendations(args: EvalRecommendationsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let log = read_log(&args)?;
    anyhow::ensure!(args.k >= 1, "--k must be at least 1");
    anyhow::ensure!(args.half_life_days > 0.0, "--half-life-days must be positive");
    let mut settings = TrainSettings::default();
    settings.weights.half_life_days = args.half_life_days;
    settings.neighbours_per_item = args.neighbours.max(1);
    let read = started.elapsed();
    let c = evaluate_against_popularity(&log.interactions, &settings, args.k);
    let k = args.k;
    println!(
        "{} interactions, {} customers, {} items read in {:.1} s; evaluated in {:.1} s",
        log.interactions.len(),
        log.customers,
        log.items,
        read.as_secs_f64(),
        (started.elapsed() - read).as_secs_f64()
    );
    println!("leave-last-out over {} customers with at least two items:", c.model.cases);
    println!("{:<14} {:>8} {:>9} {:>8}", "ranker", format!("HR@{k}"), format!("NDCG@{k}"), "hits");
    for (name, m) in [("item-neighbours", c.model), ("popularity", c.popularity)] {
        println!("{name:<14} {:>8.4} {:>9.4} {:>8}", m.hit_rate, m.ndcg, m.hits);
    }
    if c.popularity.hit_rate > 0.0 {
        println!("HR@{k} against popularity: {:.2}x", c.model.hit_rate / c.popularity.hit_rate);
    }
    Ok(())
}

/// An interaction file as the evaluation reads it.
struct Log {
    interactions: Vec<Interaction>,
    customers: usize,
    items: usize,
}

fn read_log(args: &EvalRecommendationsArgs) -> anyhow::Result<Log> {
    let delimiter = u8::try_from(args.delimiter).context("--delimiter must be one ASCII character")?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_path(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).with_context(|| {
            format!("no column {name:?}; the columns are {}", headers.iter().collect::<Vec<_>>().join(", "))
        })
    };
    let customer_at = column(&args.customer_column)?;
    let item_at = column(&args.item_column)?;
    let kind_at = args.kind_column.as_deref().map(column).transpose()?;
    let time_at = args.time_column.as_deref().map(column).transpose()?;
    let mut customers: HashMap<String, CustomerKey> = HashMap::new();
    let mut items: HashMap<String, ItemId> = HashMap::new();
    let mut interactions = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record?;
        let row = line + 2;
        let field = |at: usize| record.get(at).unwrap_or("").trim();
        let (customer, item) = (field(customer_at), field(item_at));
        anyhow::ensure!(!customer.is_empty() && !item.is_empty(), "line {row}: empty customer or item");
        let kind = match kind_at {
            None => FeedbackKind::Purchase,
            Some(at) => kind(field(at)).with_context(|| format!("line {row}: unknown kind {:?}", field(at)))?,
        };
        let at = match time_at {
            None => line as i64,
            Some(at) => time(field(at)).with_context(|| format!("line {row}: unreadable time {:?}", field(at)))?,
        };
        let next = CustomerKey(customers.len() as u32);
        let customer = *customers.entry(customer.to_owned()).or_insert(next);
        let next = ItemId(items.len() as u32);
        let item = *items.entry(item.to_owned()).or_insert(next);
        interactions.push(Interaction { customer, item, kind, at });
    }
    Ok(Log { interactions, customers: customers.len(), items: items.len() })
}

fn kind(value: &str) -> Option<FeedbackKind> {
    match value.to_ascii_lowercase().as_str() {
        "view" => Some(FeedbackKind::View),
        "basket" | "basket_add" | "cart" => Some(FeedbackKind::Basket),
        "purchase" | "buy" => Some(FeedbackKind::Purchase),
        "negative" | "return" => Some(FeedbackKind::Negative),
        _ => None,
    }
}

fn time(value: &str) -> Option<i64> {
    if let Ok(seconds) = value.parse::<i64>() {
        return Some(seconds);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.timestamp());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc().timestamp());
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_every_documented_form() {
        assert_eq!(time("86400"), Some(86_400));
        assert_eq!(time("1970-01-02T00:00:00Z"), Some(86_400));
        assert_eq!(time("1970-01-02 00:00:01"), Some(86_401));
        assert_eq!(time("1970-01-02"), Some(86_400));
        assert_eq!(time("yesterday"), None);
    }

    #[test]
    fn kinds_accept_the_interaction_names_too() {
        assert_eq!(kind("BASKET_ADD"), Some(FeedbackKind::Basket));
        assert_eq!(kind("return"), Some(FeedbackKind::Negative));
        assert_eq!(kind("like"), None);
    }
}
