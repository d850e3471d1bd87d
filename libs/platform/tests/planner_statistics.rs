//! Planner statistics are kept current when the server's autovacuum is off, against real
//! Postgres.

use std::time::Duration;

use idic_platform::db;
use idic_testkit::TestEnv;

#[tokio::test]
async fn tables_changed_beyond_the_threshold_are_analysed_and_unchanged_ones_left_alone() {
    let env = TestEnv::start(&[]).await;
    let pool = env.pool("identification").await;
    sqlx::query("CREATE TABLE grown (id bigint PRIMARY KEY)").execute(&pool).await.expect("create");
    sqlx::query("CREATE TABLE untouched (id bigint PRIMARY KEY)").execute(&pool).await.expect("create");
    sqlx::query("INSERT INTO grown SELECT generate_series(1, 5000)").execute(&pool).await.expect("insert");
    let autovacuum: String =
        sqlx::query_scalar("SELECT current_setting('autovacuum')").fetch_one(&pool).await.expect("setting");

    // Table activity reaches the statistics views shortly after the transaction ends.
    let mut analysed = false;
    for _ in 0..50 {
        db::analyze_stale_tables(&pool).await.expect("analyze");
        analysed = sqlx::query_scalar::<_, bool>(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'grown' \
             AND schemaname = current_schema()",
        )
        .fetch_one(&pool)
        .await
        .expect("stats");
        if analysed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let untouched: bool = sqlx::query_scalar(
        "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'untouched' \
         AND schemaname = current_schema()",
    )
    .fetch_one(&pool)
    .await
    .expect("stats");
    if autovacuum == "on" {
        // The server keeps its own statistics then; nothing is analysed here.
        assert!(!analysed && !untouched);
    } else {
        assert!(analysed, "the grown table was not analysed");
        assert!(!untouched, "an unchanged table was analysed");
        assert_eq!(db::analyze_stale_tables(&pool).await.expect("analyze"), 0, "nothing is stale any more");
    }
    pool.close().await;
    env.cleanup().await;
}
