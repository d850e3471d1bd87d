//! `idic bench identification` runs as the binary against a real server: it seeds generated
//! customers (a re-run with the same number seeds nothing new), measures every scenario at
//! every concurrency without errors, and refuses bad flags naming them.

use idic_testkit::{TestEnv, tokens};
#[path = "support/run.rs"]
mod run;

use run::{count, idic, table};

#[tokio::test]
async fn the_bench_seeds_once_and_measures_every_scenario_at_every_concurrency() {
    let env = TestEnv::monolith().await;
    let server = format!("http://{}", env.addr(idic::Target::Identification));
    let bench = |concurrency| {
        [
            "bench",
            "identification",
            "--server",
            server.as_str(),
            "--token",
            tokens::ADMIN,
            "--customers",
            "300",
            "--hot",
            "100",
            "--duration",
            "1",
            "--concurrency",
            concurrency,
        ]
    };

    let first = idic(&bench("1,2")).await;
    assert!(first.ok, "bench failed: {}\n{}", first.stderr, first.stdout);
    let output = &first.stdout;
    assert!(output.contains("seeded 300 customers as source bench"), "{output}");
    assert!(output.contains("rows/s"), "the seeding rate is reported:\n{output}");
    assert_eq!(count(output, "rejected"), 0, "{output}");
    assert!(count(output, "created") > 250, "most people are new customers:\n{output}");
    assert!(output.contains("100 customers contacted by email and by name"), "{output}");

    let rows = table(output);
    let expected: Vec<(&str, usize)> = ["empty", "resolve_known", "resolve_fuzzy", "resolve_first"]
        .into_iter()
        .flat_map(|scenario| [(scenario, 1), (scenario, 2)])
        .collect();
    let found: Vec<(&str, usize)> = rows.iter().map(|r| (r.scenario.as_str(), r.concurrency)).collect();
    assert_eq!(found, expected, "one row per scenario and concurrency:\n{output}");
    for row in &rows {
        assert!(row.requests_per_second > 0.0, "{} x{} completed requests:\n{output}", row.scenario, row.concurrency);
        assert_eq!(row.errors, 0, "{} x{} without errors:\n{output}", row.scenario, row.concurrency);
        let is_share = row.of_empty.ends_with('%');
        assert_eq!(is_share, row.scenario != "empty", "resolve rows are compared to empty:\n{output}");
    }

    let again = idic(&bench("1")).await;
    assert!(again.ok, "re-run failed: {}", again.stderr);
    let output = &again.stdout;
    assert_eq!((count(output, "created"), count(output, "updated")), (0, 0), "nothing new is seeded:\n{output}");
    assert_eq!(count(output, "duplicates"), 300, "every row seeded before:\n{output}");
    env.cleanup().await;
}

#[tokio::test]
async fn bad_flags_are_refused_naming_the_flag() {
    let refused = |args: &'static [&'static str], flag: &'static str| async move {
        let base = ["bench", "identification", "--server", "http://127.0.0.1:9", "--token", tokens::ADMIN];
        let run = idic(&[&base[..], args].concat()).await;
        assert!(!run.ok, "{args:?} is refused");
        assert!(run.stderr.contains(flag), "{args:?}: the error names {flag}: {}", run.stderr);
    };
    refused(&["--duration", "0"], "--duration").await;
    refused(&["--customers", "0"], "--customers").await;
    refused(&["--concurrency", ""], "--concurrency").await;
    refused(&["--concurrency", "4,0"], "--concurrency").await;
    refused(&["--connections", "0"], "--connections").await;
}
