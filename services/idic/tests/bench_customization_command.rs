//! `idic bench customization` runs as the binary against a real server at tiny scale: it
//! seeds products, a configurable product, customers and their interactions, waits until
//! the recommender has learned them, retrains, and measures every scenario at every
//! concurrency without errors; a re-run with the same numbers seeds nothing new.

use idic_testkit::{TestEnv, tokens};
#[path = "support/run.rs"]
#[allow(dead_code, reason = "the summary counts are read by the other client command tests")]
mod run;

use run::{idic, table};

#[tokio::test]
async fn the_bench_seeds_once_learns_retrains_and_measures_every_scenario() {
    let env = TestEnv::monolith().await;
    let server = format!("http://{}", env.addr(idic::Target::Customization));
    let bench = |concurrency| {
        [
            "bench",
            "customization",
            "--server",
            server.as_str(),
            "--token",
            tokens::ADMIN,
            "--items",
            "50",
            "--customers",
            "20",
            "--interactions-per-customer",
            "5",
            "--learn-timeout",
            "120",
            "--duration",
            "1",
            "--concurrency",
            concurrency,
        ]
    };

    let first = idic(&bench("1,2")).await;
    assert!(first.ok, "bench failed: {}\n{}", first.stderr, first.stdout);
    let output = &first.stdout;
    assert!(output.contains("catalog: 51 products upserted"), "{output}");
    assert!(output.contains("(created 51, updated 0, unchanged 0, rejected 0)"), "{output}");
    assert!(output.contains("10 module groups of 12 options, 9 constraints (set, revision 1)"), "{output}");
    assert!(output.contains("seeded 20 customers as source bench-customization"), "{output}");
    assert!(output.contains("interactions: 100 sent"), "{output}");
    assert!(output.contains("created 100, duplicates 0, rejected 0"), "{output}");
    assert!(output.contains("recommender caught up"), "{output}");
    assert!(output.contains(": 100 interactions (this run sent 100)"), "the retraining learned them all:\n{output}");

    let rows = table(output);
    let expected: Vec<(&str, usize)> =
        ["empty", "recommend_history", "recommend_viewing", "recommend_basket", "configure_product"]
            .into_iter()
            .flat_map(|scenario| [(scenario, 1), (scenario, 2)])
            .collect();
    let found: Vec<(&str, usize)> = rows.iter().map(|r| (r.scenario.as_str(), r.concurrency)).collect();
    assert_eq!(found, expected, "one row per scenario and concurrency:\n{output}");
    for run::Row { scenario, concurrency, requests_per_second, errors, of_empty } in &rows {
        assert!(*requests_per_second > 0.0, "{scenario} x{concurrency} completed requests:\n{output}");
        assert_eq!(*errors, 0, "{scenario} x{concurrency} without errors:\n{output}");
        assert_eq!(of_empty.ends_with('%'), scenario != "empty", "rows are compared to empty:\n{output}");
    }
    assert!(!output.contains("note: configure_product"), "every configuration is valid:\n{output}");

    let again = idic(&bench("1")).await;
    assert!(again.ok, "re-run failed: {}\n{}", again.stderr, again.stdout);
    let output = &again.stdout;
    assert!(output.contains("(created 0, updated 0, unchanged 51, rejected 0)"), "{output}");
    assert!(output.contains("9 constraints (unchanged, revision 1)"), "the modules are kept:\n{output}");
    assert!(output.contains("created 0, duplicates 100, rejected 0"), "nothing recorded twice:\n{output}");
    assert!(output.contains(": 100 interactions (this run sent 100)"), "{output}");
    env.cleanup().await;
}
