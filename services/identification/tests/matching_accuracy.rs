//! Accuracy of the matcher on generated customer files with known truth (typos,
//! phonetic spellings, swapped names, nicknames, transposed birth dates, moves,
//! missing fields, households, twins): pairwise precision, recall and F1 for
//! deduplicating one file and for linking two, at the default thresholds, with no
//! national id. Pure domain code: no database involved.

use idic_identification::domain::matching::engine::{DedupThresholds, Matcher};
use idic_identification::domain::matching::record::MatchRecord;
#[path = "support/generated.rs"]
mod generated;
#[path = "support/report.rs"]
mod report;

use generated::subject;
use idic_synth::{Corruption, dedup_file, eval, link_files, population};

fn thresholds() -> DedupThresholds {
    DedupThresholds::default()
}

#[test]
fn deduplicating_one_file_reaches_f1_0_998() {
    let people = population(11, 20_000);
    let records = dedup_file(12, &people, 0.3, &Corruption::default());
    let mut matcher = Matcher::new(Default::default());
    for record in &records {
        matcher.population.insert(MatchRecord::new(&subject(record)));
    }
    let fit = matcher.fit(200).expect("enough records to fit");
    let dedup = matcher.deduplicate(thresholds(), 2, |_, _| false);
    let truth: Vec<u64> = records.iter().map(|r| r.entity_id).collect();
    let predicted = report::cluster_labels(&dedup.clusters, records.len());
    let scores = eval::pairwise_from_clusters(&truth, &predicted);
    eprintln!(
        "dedup: {} records, {} pairs scored, EM {} iterations (converged {}), {}",
        records.len(),
        dedup.pairs_scored,
        fit.iterations,
        fit.converged,
        report::scores_line(&scores)
    );
    assert!(scores.f1() >= 0.998, "F1 {:.5}", scores.f1());
}

#[test]
fn linking_two_files_reaches_f1_0_998() {
    let people = population(21, 20_000);
    let (a, b) = link_files(22, &people, 0.5, &Corruption::default());
    let mut matcher = Matcher::new(Default::default());
    for record in &a {
        matcher.population.insert(MatchRecord::new(&subject(record)));
    }
    // The model is fitted on both files together (pairs across them are where the
    // matches are), then file A alone is searched.
    let b_slots: Vec<_> =
        b.iter().map(|record| matcher.population.insert(MatchRecord::new(&subject(record)))).collect();
    matcher.fit(200).expect("enough records to fit");
    for slot in b_slots {
        matcher.population.remove(slot);
    }
    let link = thresholds().link;
    let mut predicted = Vec::new();
    for (j, record) in b.iter().enumerate() {
        let query = MatchRecord::new(&subject(record));
        if let Some(best) = matcher.best_match(&query, |_| false)
            && best.probability() >= link
        {
            predicted.push((best.slot as usize, j));
        }
    }
    let truth = eval::true_links(&a, &b);
    let scores = eval::pairwise_links(&truth, &predicted);
    eprintln!("link: {} × {} records, {}", a.len(), b.len(), report::scores_line(&scores));
    assert!(scores.f1() >= 0.998, "F1 {:.5}", scores.f1());
}

#[test]
#[ignore = "diagnostic: prints the wrong decisions of a deduplication"]
fn show_mistakes() {
    let people = population(11, 20_000);
    let records = dedup_file(12, &people, 0.3, &Corruption::default());
    let mut matcher = Matcher::new(Default::default());
    for record in &records {
        matcher.population.insert(MatchRecord::new(&subject(record)));
    }
    let fit = matcher.fit(200).expect("fit");
    eprintln!("{fit:#?}");
    let link = idic_identification::domain::matching::model::weight_for_probability(thresholds().link) as f32;
    let mut shown = (0, 0);
    for (a, b) in matcher.population.candidate_pairs() {
        let (x, y) = (&records[a as usize], &records[b as usize]);
        let record = |s| matcher.population.get(s).expect("held");
        let (c, w) = matcher.score(record(a), record(b));
        let same = x.entity_id == y.entity_id;
        let wrong = (same && w < link) || (!same && w >= link);
        let counter = if same { &mut shown.0 } else { &mut shown.1 };
        if wrong && *counter < 40 {
            *counter += 1;
            eprintln!(
                "{} {w:.1}\n  {x:?}\n  {y:?}\n  {}",
                if same { "MISSED" } else { "WRONG" },
                report::evidence_line(&matcher, &c)
            );
        }
    }
}
