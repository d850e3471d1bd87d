//! `idic eval recommendations` run as the binary on an interaction file with co-purchase
//! structure: the recommender's leave-last-out hit rate is printed beside popularity's and
//! beats it; a file without the named column is refused with a non-zero exit.

use idic_customization::domain::{evaluation::synthetic_log, recommend::FeedbackKind};
#[path = "support/run.rs"]
#[allow(dead_code, reason = "the summary counts are read by the other client command tests")]
mod run;

use run::idic;

fn write_log(path: &std::path::Path) {
    let log = synthetic_log(7, 2_000, 400, 12, 1_800_000_000);
    let mut csv = String::from("user_id,product,event,ts\n");
    for x in log {
        let kind = match x.kind {
            FeedbackKind::View => "view",
            FeedbackKind::Basket => "basket_add",
            FeedbackKind::Purchase => "purchase",
            FeedbackKind::Negative => "return",
        };
        csv.push_str(&format!("u{},sku-{},{kind},{}\n", x.customer.0, x.item.0, x.at));
    }
    std::fs::write(path, csv).expect("write log");
}

/// The HR@k column of the row named `ranker`.
fn hit_rate(stdout: &str, ranker: &str) -> f64 {
    let line = stdout.lines().find(|l| l.starts_with(ranker)).unwrap_or_else(|| panic!("no {ranker} row in\n{stdout}"));
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no HR in {line:?}"))
}

#[tokio::test]
async fn eval_recommendations_prints_hit_rates_beside_popularity() {
    let dir = std::env::temp_dir().join(format!("idic-eval-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("log.csv");
    write_log(&file);
    let path = file.to_str().expect("path");
    let args = [
        "eval",
        "recommendations",
        path,
        "--customer-column",
        "user_id",
        "--item-column",
        "product",
        "--kind-column",
        "event",
        "--time-column",
        "ts",
    ];
    let run = idic(&args).await;
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("2000 customers, 400 items"), "{}", run.stdout);
    let (model, popularity) = (hit_rate(&run.stdout, "item-neighbours"), hit_rate(&run.stdout, "popularity"));
    assert!(model > 2.0 * popularity && model > 0.3, "model {model} against popularity {popularity}");

    let run = idic(&["eval", "recommendations", path]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("no column \"customer\""), "{}", run.stderr);
    std::fs::remove_dir_all(&dir).expect("clean up");
}
