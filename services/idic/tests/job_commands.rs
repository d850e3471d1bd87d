//! `idic identify cleanse` and `idic customize retrain` run as the binary against real
//! servers: each starts its job, follows it to its end and prints its result; a retry with
//! the same request id reattaches to the same job; a refused request exits non-zero.

use idic::Target;
use idic_testkit::{TestEnv, tokens};
#[path = "support/run.rs"]
#[allow(dead_code, reason = "the summary counts are read by the other client command tests")]
mod run;

use run::idic;

/// The `jobs/...` name on the line starting with `what`.
fn job_name(stdout: &str, what: &str) -> String {
    let line = stdout.lines().find(|l| l.starts_with(what) && l.ends_with("succeeded")).unwrap_or_else(|| {
        panic!("no {what} ... succeeded line in\n{stdout}");
    });
    line.split_whitespace().nth(1).expect("job name").to_owned()
}

#[tokio::test]
async fn cleanse_and_retrain_follow_their_jobs_to_the_end() {
    let env = TestEnv::monolith().await;
    let server = format!("http://{}", env.addr(Target::All));
    let retrain = ["customize", "retrain", "--server", &server, "--token", tokens::ADMIN, "--request-id", "nightly-1"];
    let run = idic(&retrain).await;
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let first = job_name(&run.stdout, "retraining");
    assert!(run.stdout.contains("  interactions: 0"), "{}", run.stdout);
    let again = idic(&retrain).await;
    assert!(again.ok, "{}", again.stderr);
    assert_eq!(job_name(&again.stdout, "retraining"), first, "the same request id reattaches to the same job");

    let run = idic(&["identify", "cleanse", "--dry-run", "--server", &server, "--token", tokens::ADMIN]).await;
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(job_name(&run.stdout, "cleansing").starts_with("jobs/"));

    let bad =
        idic(&["customize", "retrain", "--neighbours-per-item", "5", "--server", &server, "--token", tokens::ADMIN])
            .await;
    assert!(!bad.ok);
    assert!(bad.stderr.contains("neighbours_per_item"), "{}", bad.stderr);
    env.cleanup().await;
}
