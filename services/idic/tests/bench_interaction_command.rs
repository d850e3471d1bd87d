//! `idic bench interaction` runs as the binary against a real server: it creates its
//! customers, measures RecordInteraction at every concurrency without errors, ingests
//! every row, and copies the same rows raw in a transaction it rolls back.

use idic_testkit::{TestEnv, tokens};
#[path = "support/run.rs"]
#[allow(dead_code, reason = "this test reads no summary counts")]
mod run;

use run::idic;

#[tokio::test]
async fn the_bench_measures_record_ingest_and_copy_and_leaves_no_copied_rows() {
    let env = TestEnv::monolith().await;
    let server = format!("http://{}", env.addr(idic::Target::Interaction));
    let database = env.config().database.url.clone();
    let args = [
        "bench",
        "interaction",
        "--server",
        server.as_str(),
        "--token",
        tokens::ADMIN,
        "--customers",
        "20",
        "--rows",
        "3000",
        "--streams",
        "2",
        "--duration",
        "1",
        "--concurrency",
        "1,2",
        "--database-url",
        database.as_str(),
    ];

    let run = idic(&args).await;

    assert!(run.ok, "bench failed: {}\n{}", run.stderr, run.stdout);
    let output = &run.stdout;
    assert!(output.contains("20 bench customers ready"), "{output}");
    let records: Vec<Vec<&str>> =
        output.lines().filter(|l| l.starts_with("record ")).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(records.len(), 2, "one row per concurrency:\n{output}");
    for cells in &records {
        assert!(cells[2].parse::<f64>().expect("requests/s") > 0.0, "{output}");
        assert_eq!(cells[6], "0", "no errors:\n{output}");
    }
    let ingest: Vec<&str> =
        output.lines().find(|l| l.starts_with("ingest ")).expect("ingest line").split_whitespace().collect();
    assert_eq!(ingest[1], "3000", "every row created:\n{output}");
    let copy: Vec<&str> =
        output.lines().find(|l| l.starts_with("copy ")).expect("copy line").split_whitespace().collect();
    assert_eq!(copy[1], "3000", "{output}");
    assert!(output.contains("ingest / copy:"), "{output}");

    let pool = env.pool("interaction").await;
    let copied: i64 = sqlx::query_scalar("SELECT count(*) FROM interactions WHERE request_id LIKE '%-copy'")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(copied, 0, "the raw COPY is rolled back");
    pool.close().await;
    env.cleanup().await;
}
