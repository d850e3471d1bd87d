//! Test kit: starts IDIC services in this process — all four on one port (monolithic
//! mode) or each on its own port (microservices mode) — on ephemeral loopback ports,
//! against the real Postgres and Redis, each test isolated in its own database and Redis
//! key prefix, removed again by [`TestEnv::cleanup`].
//!
//! Postgres and Redis are found at `IDIC_TEST_DATABASE_URL` (a server URL, default
//! `postgres://postgres@127.0.0.1:5432`) and `IDIC_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`).

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use idic::{IdicConfig, Target};
pub use idic_platform::client::Bearer;
use idic_platform::{config::ApiKey, db, redis::Redis};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

/// Tokens the test servers accept, one per kind of caller tests need.
pub mod tokens {
    /// Holds `admin` (every scope).
    pub const ADMIN: &str = "test-admin-token-0000000000000001";
    /// Holds `profiles.read` only: no `pii.read`, no writes.
    pub const PROFILE_READER: &str = "test-profile-reader-000000000001";
    /// Holds `profiles.read` and `pii.read`.
    pub const PII_READER: &str = "test-pii-reader-0000000000000001";
    /// Holds no scope at all.
    pub const NO_SCOPES: &str = "test-no-scopes-00000000000000001";
    /// Holds `interactions.read` only: reads interactions, complaints and the contact
    /// policy, without `pii.read`.
    pub const INTERACTION_READER: &str = "test-interaction-reader-00000001";
}

/// Services running for one test, with their own database and Redis prefix.
pub struct TestEnv {
    config: IdicConfig,
    servers: HashMap<Target, Server>,
    shutdown: CancellationToken,
    cleaned: bool,
}

struct Server {
    addr: SocketAddr,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestEnv {
    /// All four services in one server (monolithic mode).
    pub async fn monolith() -> Self {
        Self::start(&[Target::All]).await
    }

    /// Each service on its own server, calling the others through configured peers
    /// (microservices mode).
    pub async fn microservices() -> Self {
        Self::start(&Target::SERVICES).await
    }

    /// Starts the given targets. Panics (failing the test) if the environment cannot start.
    pub async fn start(targets: &[Target]) -> Self {
        Self::start_with(targets, |_| {}).await
    }

    /// Starts the given targets after `adjust` has changed the test configuration (for
    /// example a Redis URL where nothing listens, to test that reads survive Redis down).
    pub async fn start_with(targets: &[Target], adjust: impl FnOnce(&mut IdicConfig)) -> Self {
        match Self::try_start(targets, adjust).await {
            Ok(env) => env,
            Err(e) => panic!("test environment did not start: {e:#}"),
        }
    }

    async fn try_start(targets: &[Target], adjust: impl FnOnce(&mut IdicConfig)) -> anyhow::Result<Self> {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let mut config: IdicConfig = idic_platform::config::load(None)?;
        let server_url =
            std::env::var("IDIC_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
        config.database.url = format!("{}/idic_test_{run}", server_url.trim_end_matches('/'));
        config.database.max_connections = 4;
        config.database.create_if_missing = true;
        config.redis.url = std::env::var("IDIC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        config.redis.key_prefix = format!("test:{run}:");
        config.server.drain_timeout_ms = 2000;
        config.telemetry.log_filter = std::env::var("IDIC_TEST_LOG").unwrap_or_else(|_| "warn".to_owned());
        let key = |caller: &str, token: &str, scopes: &[&str]| ApiKey {
            caller: caller.to_owned(),
            token: token.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        };
        config.auth.api_keys = vec![
            key("test-admin", tokens::ADMIN, &["admin"]),
            key("test-profile-reader", tokens::PROFILE_READER, &["profiles.read"]),
            key("test-pii-reader", tokens::PII_READER, &["profiles.read", "pii.read"]),
            key("test-no-scopes", tokens::NO_SCOPES, &[]),
            key("test-interaction-reader", tokens::INTERACTION_READER, &["interactions.read"]),
        ];
        config.auth.service_token = tokens::ADMIN.to_owned();
        adjust(&mut config);
        idic_platform::telemetry::init(&config.telemetry)?;
        idic_platform::metrics::install("")?;

        db::ensure_database(&config.database.url).await?;
        idic::migrate(&config, Target::All).await?;

        // Bind every listener first so peers can be configured before any server starts.
        let mut listeners = Vec::new();
        for &target in targets {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            listeners.push((target, listener));
        }
        for (target, listener) in &listeners {
            let endpoint = format!("http://{}", listener.local_addr()?);
            match target {
                Target::Identification => config.peers.identification = endpoint,
                Target::Segmentation => config.peers.segmentation = endpoint,
                Target::Interaction => config.peers.interaction = endpoint,
                Target::Customization => config.peers.customization = endpoint,
                Target::All => {}
            }
        }
        let shutdown = CancellationToken::new();
        let mut servers = HashMap::new();
        for (target, listener) in listeners {
            let addr = listener.local_addr()?;
            let (config, shutdown) = (config.clone(), shutdown.clone());
            let task = tokio::spawn(async move { idic::serve(&config, target, listener, shutdown).await });
            servers.insert(target, Server { addr, task });
        }
        let env = Self { config, servers, shutdown, cleaned: false };
        for target in env.servers.keys() {
            env.wait_serving(*target).await?;
        }
        Ok(env)
    }

    async fn wait_serving(&self, target: Target) -> anyhow::Result<()> {
        let addr = self.servers[&target].addr;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(channel) = Channel::from_shared(format!("http://{addr}"))?.connect().await {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let ok = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.is_ok_and(
                    |r| r.into_inner().status() == tonic_health::pb::health_check_response::ServingStatus::Serving,
                );
                if ok {
                    return Ok(());
                }
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "{} did not become healthy", target.as_str());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The address serving `target` (in monolithic mode every service is at `Target::All`'s).
    pub fn addr(&self, target: Target) -> SocketAddr {
        self.servers
            .get(&target)
            .or_else(|| self.servers.get(&Target::All))
            .map(|s| s.addr)
            .unwrap_or_else(|| panic!("{} is not running in this environment", target.as_str()))
    }

    /// A connected channel to `target`, without credentials.
    pub async fn channel(&self, target: Target) -> Channel {
        let url = format!("http://{}", self.addr(target));
        match Channel::from_shared(url).map(|e| e.connect_timeout(Duration::from_secs(5))) {
            Ok(endpoint) => endpoint.connect().await.unwrap_or_else(|e| panic!("connect: {e}")),
            Err(e) => panic!("endpoint: {e}"),
        }
    }

    /// A channel to `target` that presents `token` on every call.
    pub async fn authorized(&self, target: Target, token: &str) -> InterceptedService<Channel, Bearer> {
        let bearer = Bearer::new(token).unwrap_or_else(|e| panic!("token {token:?}: {e}"));
        InterceptedService::new(self.channel(target).await, bearer)
    }

    /// The configuration the servers run with (database URL, Redis prefix, ...).
    pub fn config(&self) -> &IdicConfig {
        &self.config
    }

    /// A Redis handle under this test's key prefix.
    pub fn redis(&self) -> Redis {
        Redis::new(&self.config.redis).unwrap_or_else(|e| panic!("redis: {e}"))
    }

    /// A pool on one service's schema of this test's database.
    pub async fn pool(&self, schema: &str) -> sqlx::PgPool {
        db::connect(&self.config.database, schema).await.unwrap_or_else(|e| panic!("pool: {e}"))
    }

    /// Stops the servers, drops the database and deletes the Redis keys of this test.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        self.shutdown.cancel();
        for (_, server) in self.servers.drain() {
            let _ = tokio::time::timeout(Duration::from_secs(5), server.task).await;
        }
        if let Err(e) = db::drop_database(&self.config.database.url).await {
            eprintln!("warning: dropping test database: {e:#}");
        }
        let deleted = match Redis::new(&self.config.redis) {
            Ok(redis) => redis.delete_prefix().await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        if let Err(e) = deleted {
            eprintln!("warning: redis cleanup: {e:#}");
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // A test that panicked before cleanup: remove its database and keys anyway.
        self.shutdown.cancel();
        let url = self.config.database.url.clone();
        let redis = self.config.redis.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = db::drop_database(&url).await;
                if let Ok(r) = Redis::new(&redis) {
                    let _ = r.delete_prefix().await;
                }
            });
        })
        .join();
    }
}

/// The fields a refusal names in its `BadRequest` details, in order.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// Asserts that `status` is INVALID_ARGUMENT naming exactly `fields`, in order.
#[track_caller]
pub fn assert_invalid(status: &tonic::Status, fields: &[&str]) {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_fields(status), fields, "{}", status.message());
}

/// Polls `check` every 50 ms until it gives a value, failing after 60 seconds: for effects
/// that travel by events (a consumer in another service, a model following a log).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
