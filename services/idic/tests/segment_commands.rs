//! `idic segment rescore` and `idic models show` run as the binary against a real
//! segmentation server: the rescoring job followed to its end with its result printed,
//! the fitted purchase model printed with its parameters, log-likelihood, window and
//! holdout check, and a malformed model name refused with a non-zero exit.

use idic::Target;
use idic_testkit::{TestEnv, tokens};
#[path = "support/run.rs"]
#[allow(dead_code, reason = "the summary counts are read by the other client command tests")]
mod run;

use run::idic;

/// Forty customers who bought from one to seven times over the last ten months.
const PURCHASES: &str = "\
WITH c AS (SELECT i, gen_random_uuid() AS id FROM generate_series(1, 40) i), \
     known AS (INSERT INTO customer_values (customer_id, currency_code) SELECT id, 'USD' FROM c) \
INSERT INTO interactions (interaction_id, customer_id, kind, channel, occur_time, amount_minor, currency_code, categories) \
SELECT gen_random_uuid()::text, c.id, 'purchase', 2, now() - make_interval(days => 300 - c.i * 3 - k * 25), \
       1000 + 100 * c.i + 50 * k, 'USD', ARRAY['music'] \
FROM c, generate_series(0, c.i % 7) k";

#[tokio::test]
async fn segment_rescore_waits_for_the_job_and_models_show_prints_the_fit() {
    let env = TestEnv::start(&[Target::Segmentation]).await;
    let pool = env.pool("segmentation").await;
    sqlx::query(PURCHASES).execute(&pool).await.expect("purchases");
    let server = format!("http://{}", env.addr(Target::Segmentation));

    let run = idic(&["segment", "rescore", "--server", &server, "--token", tokens::ADMIN, "--reason", "test"]).await;
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("succeeded"), "{}", run.stdout);
    assert!(run.stdout.contains("customers_scored: 40"), "{}", run.stdout);
    let model = run
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("purchase_model: "))
        .unwrap_or_else(|| panic!("no purchase model in\n{}", run.stdout))
        .to_owned();

    let show = idic(&["models", "show", &model, "--server", &server, "--token", tokens::ADMIN]).await;
    assert!(show.ok, "{}\n{}", show.stdout, show.stderr);
    println!("{}", show.stdout);
    for expected in
        ["MODEL_KIND_BG_NBD", "ACTIVE", "customers:     40", "log-likelihood:", "holdout check (repeat_purchases)"]
    {
        assert!(show.stdout.contains(expected), "{expected:?} missing from\n{}", show.stdout);
    }
    let parameters: Vec<&str> = ["r", "alpha", "a", "b"]
        .into_iter()
        .filter(|p| show.stdout.lines().any(|l| l.trim_start().starts_with(&format!("{p} "))))
        .collect();
    assert_eq!(parameters, ["r", "alpha", "a", "b"], "{}", show.stdout);

    let bad = idic(&["models", "show", "models/not-a-model", "--server", &server, "--token", tokens::ADMIN]).await;
    assert!(!bad.ok);
    assert!(bad.stderr.contains("InvalidArgument"), "{}", bad.stderr);
    pool.close().await;
    env.cleanup().await;
}
