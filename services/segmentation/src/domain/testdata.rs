//! Readers for the published data sets the models are checked against (see
//! `tests/data/README.md` for their sources). The CDNOW files are not committed:
//! `scripts/reference-data.sh` fetches them (see [`reference_file`]).

use chrono::NaiveDate;

use super::history::{Purchase, RepeatHistory};

/// One row of the CDNOW calibration summary.
pub struct SummaryRow {
    pub history: RepeatHistory,
    /// z̄: mean value of the repeat purchases (0 when there were none).
    pub mean_repeat_spend: f64,
}

/// Environment variable naming the directory of the CDNOW datasets.
pub const REFERENCE_DATA_DIR: &str = "IDIC_REFERENCE_DATA_DIR";

/// The contents of `file` of the `lifetimes` package's datasets, from `$IDIC_REFERENCE_DATA_DIR`
/// or else `<workspace>/target/reference-data/lifetimes/datasets`, where
/// `scripts/reference-data.sh` puts them. Panics, naming the script, when the file is absent.
pub fn reference_file(file: &str) -> String {
    let dir = std::env::var_os(REFERENCE_DATA_DIR).map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/reference-data/lifetimes/datasets")
    });
    let path = dir.join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reference data {} is missing ({e}): run scripts/reference-data.sh first \
             (or set {REFERENCE_DATA_DIR} to the directory holding the lifetimes 0.11.3 datasets)",
            path.display()
        )
    })
}

const IRIS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/iris.csv"));

fn number(field: &str) -> f64 {
    field.trim().parse().unwrap_or_else(|e| panic!("fixture field {field:?}: {e}"))
}

/// The 2,357 CDNOW customers' (x, tₓ, T, z̄) after 39 weeks, in ID order.
pub fn cdnow_summary() -> Vec<SummaryRow> {
    reference_file("cdnow_customers_summary_with_transactions.csv")
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            SummaryRow {
                history: RepeatHistory::new(number(f[1]) as u32, number(f[2]), number(f[3]))
                    .unwrap_or_else(|e| panic!("fixture row {line}: {e}")),
                mean_repeat_spend: number(f[4]),
            }
        })
        .collect()
}

/// Every purchase of the 2,357 CDNOW sample customers over 78 weeks, by customer in ID order.
pub fn cdnow_transactions() -> Vec<Vec<Purchase>> {
    let mut customers: Vec<Vec<Purchase>> = Vec::new();
    for line in reference_file("CDNOW_sample.txt").lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let id = number(f[1]) as usize;
        let on = NaiveDate::parse_from_str(f[2], "%Y%m%d").unwrap_or_else(|e| panic!("fixture date {line}: {e}"));
        if customers.len() < id {
            customers.resize_with(id, Vec::new);
        }
        customers[id - 1].push(Purchase { on, amount: number(f[4]) });
    }
    customers
}

/// Fisher's iris measurements (150 × 4) and species labels.
pub fn iris() -> (Vec<Vec<f64>>, Vec<usize>) {
    IRIS.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (f[..4].iter().map(|v| number(v)).collect(), number(f[4]) as usize)
        })
        .unzip()
}
