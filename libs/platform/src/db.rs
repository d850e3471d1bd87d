//! Postgres: one pool per service whose connections see only that service's schema
//! (`search_path`), and the migrations run into it: the platform's tables (outbox,
//! jobs, audit, idempotency) followed by the service's own.

use std::{str::FromStr, time::Duration};

use backon::{ExponentialBuilder, Retryable as _};
use sqlx::{
    ConnectOptions as _, Executor as _, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::config::DatabaseConfig;

/// The platform's own migrations, applied to every service schema first.
static PLATFORM_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Service migration versions must be at least this, to stay after the platform's.
pub const FIRST_SERVICE_MIGRATION: i64 = 1000;

/// A pool on `config.url` whose connections use `schema` (created if missing).
/// Retries the first connection for a while, so a service may start before Postgres.
pub async fn connect(config: &DatabaseConfig, schema: &str) -> anyhow::Result<PgPool> {
    if !schema.chars().all(|c| c.is_ascii_lowercase() || c == '_') || schema.is_empty() {
        anyhow::bail!("invalid schema name {schema:?}");
    }
    if config.create_if_missing {
        ensure_database(&config.url).await?;
    }
    let options = PgConnectOptions::from_str(&config.url)
        .map_err(|e| anyhow::anyhow!("database.url: {e}"))?
        .application_name(&format!("idic-{schema}"))
        .options([
            ("search_path", schema),
            // No statement or idle transaction may hang a request or a worker forever.
            ("statement_timeout", "30s"),
            ("lock_timeout", "10s"),
            ("idle_in_transaction_session_timeout", "60s"),
        ])
        .log_statements(tracing::log::LevelFilter::Trace);
    let pool_options = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms));
    let pool = (|| pool_options.clone().connect_with(options.clone()))
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(2))
                .with_max_times(10),
        )
        .notify(|e, wait| tracing::warn!(error = %e, ?wait, "postgres not reachable yet"))
        .await
        .map_err(|e| anyhow::anyhow!("connecting to postgres for schema {schema}: {e}"))?;
    // Concurrent starts may race to create the schema; losing that race is fine.
    if let Err(e) = pool.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}"))).await {
        let exists = schema_exists(&pool, schema).await.unwrap_or(false);
        if !exists {
            return Err(anyhow::anyhow!("creating schema {schema}: {e}"));
        }
    }
    Ok(pool)
}

async fn schema_exists(pool: &PgPool, schema: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(pool)
        .await
}

/// Applies the platform's and then the service's migrations to the pool's schema.
pub async fn migrate(pool: &PgPool, service: &Migrator) -> anyhow::Result<()> {
    if let Some(m) = service.iter().find(|m| m.version < FIRST_SERVICE_MIGRATION) {
        anyhow::bail!(
            "service migration {} ({}) must have a version >= {FIRST_SERVICE_MIGRATION}",
            m.version,
            m.description
        );
    }
    let all = PLATFORM_MIGRATIONS.iter().chain(service.iter()).cloned().collect();
    Migrator::with_migrations(all).run(pool).await.map_err(|e| anyhow::anyhow!("migrations: {e}"))
}

/// Creates the database named in `url` when it does not exist.
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url).map_err(|e| anyhow::anyhow!("database.url: {e}"))?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let mut admin = options.database("postgres").connect().await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        let created =
            admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")))).await;
        if let Err(e) = created {
            // Another process may have created it meanwhile.
            let now_exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut admin)
                .await?;
            if !now_exists {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Drops the database named in `url` (tests clean up with this), closing its sessions.
pub async fn drop_database(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url)?;
    let name = options.get_database().unwrap_or_default().to_owned();
    anyhow::ensure!(!name.is_empty() && name != "postgres", "refusing to drop {name:?}");
    let mut admin = options.database("postgres").connect().await?;
    admin
        .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", name.replace('"', "\"\""))))
        .await?;
    Ok(())
}

/// How often [`keep_statistics`] looks for tables whose planner statistics fell behind.
const STATISTICS_INTERVAL: Duration = Duration::from_secs(30);

/// Keeps the planner statistics of the pool's schema current while the server's
/// autovacuum is off, until `shutdown`: every [`STATISTICS_INTERVAL`], tables changed by
/// more than autovacuum's default analyze threshold (50 rows plus 10%) since their last
/// analysis are analysed. Without statistics the planner picks wrong indexes and
/// lookups scan whole tables as they grow (an import then slows to a crawl). With
/// autovacuum on, this does nothing.
pub async fn keep_statistics(pool: PgPool, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        if let Err(e) = analyze_stale_tables(&pool).await {
            tracing::warn!(error = %e, "keeping planner statistics failed; retrying later");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(STATISTICS_INTERVAL) => {}
        }
    }
}

/// Analyses the tables of the pool's schema whose statistics fell behind (see
/// [`keep_statistics`]) when autovacuum is off; returns how many.
pub async fn analyze_stale_tables(pool: &PgPool) -> sqlx::Result<usize> {
    let autovacuum: String = sqlx::query_scalar("SELECT current_setting('autovacuum')").fetch_one(pool).await?;
    if autovacuum == "on" {
        return Ok(0);
    }
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables \
         WHERE schemaname = current_schema() AND n_mod_since_analyze > 50 + 0.1 * n_live_tup",
    )
    .fetch_all(pool)
    .await?;
    for table in &stale {
        pool.execute(sqlx::AssertSqlSafe(format!("ANALYZE {table}"))).await?;
    }
    Ok(stale.len())
}
