//! Request ids are forgotten after their retention, and only then, against real Postgres.

use std::time::Duration;

use idic_platform::idempotency::{self, Claim};
use idic_testkit::TestEnv;

#[tokio::test]
async fn request_ids_past_retention_are_pruned_and_newer_ones_kept() {
    let env = TestEnv::start(&[]).await;
    let pool = env.pool("identification").await;
    for request_id in ["old-1", "old-2", "new-1"] {
        let mut tx = pool.begin().await.expect("tx");
        let claim = idempotency::claim(&mut tx, "Create", request_id, b"hash").await.expect("claim");
        assert!(matches!(claim, Claim::New));
        idempotency::complete(&mut tx, "Create", request_id, b"answer").await.expect("complete");
        tx.commit().await.expect("commit");
    }
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '8 days' WHERE request_id LIKE 'old-%'")
        .execute(&pool)
        .await
        .expect("age");

    assert_eq!(idempotency::prune(&pool, idempotency::RETENTION).await.expect("prune"), 2);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT request_id FROM idempotency_keys").fetch_all(&pool).await.expect("keys");
    assert_eq!(left, vec!["new-1".to_owned()]);
    // A retry of a kept id still replays; a retry of a pruned one acts anew.
    let mut tx = pool.begin().await.expect("tx");
    assert!(matches!(idempotency::claim(&mut tx, "Create", "new-1", b"hash").await.expect("claim"), Claim::Replay(_)));
    assert!(matches!(idempotency::claim(&mut tx, "Create", "old-1", b"hash").await.expect("claim"), Claim::New));
    tx.rollback().await.expect("rollback");
    assert_eq!(idempotency::prune(&pool, Duration::ZERO).await.expect("prune all"), 1);
    pool.close().await;
    env.cleanup().await;
}
