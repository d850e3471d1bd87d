//! Settings shared by every service, loaded from a TOML file and `IDIC_*` environment
//! variables (environment wins), validated at start-up with errors naming the setting.
//! Service crates define their own sections; the binary nests them all in one struct.

use std::net::SocketAddr;

use confique::Config;
use serde::Deserialize;

/// Postgres connection settings.
#[derive(Debug, Clone, Config)]
pub struct DatabaseConfig {
    /// Postgres URL. Each service keeps its tables in its own schema of this database.
    #[config(env = "IDIC_DATABASE_URL", default = "postgres://postgres@127.0.0.1:5432/idic")]
    pub url: String,
    /// Maximum connections in each service's pool.
    #[config(env = "IDIC_DATABASE_MAX_CONNECTIONS", default = 16, validate(*max_connections >= 1, "must be at least 1"))]
    pub max_connections: u32,
    /// How long a query waits for a free connection before failing, in milliseconds.
    #[config(env = "IDIC_DATABASE_ACQUIRE_TIMEOUT_MS", default = 5000)]
    pub acquire_timeout_ms: u64,
    /// Create the database at start-up when it does not exist (development and demos).
    #[config(env = "IDIC_DATABASE_CREATE_IF_MISSING", default = false)]
    pub create_if_missing: bool,
}

/// Redis connection settings (caches and event streams).
#[derive(Debug, Clone, Config)]
pub struct RedisConfig {
    /// Redis URL.
    #[config(env = "IDIC_REDIS_URL", default = "redis://127.0.0.1:6379")]
    pub url: String,
    /// Prefix of every key and stream IDIC writes, so deployments (and tests) can share one Redis.
    #[config(env = "IDIC_REDIS_KEY_PREFIX", default = "idic:")]
    pub key_prefix: String,
    /// How long one Redis command may take before the caller falls back to Postgres, in milliseconds.
    #[config(env = "IDIC_REDIS_RESPONSE_TIMEOUT_MS", default = 200)]
    pub response_timeout_ms: u64,
    /// How long a connection attempt may take, in milliseconds.
    #[config(env = "IDIC_REDIS_CONNECT_TIMEOUT_MS", default = 300)]
    pub connect_timeout_ms: u64,
}

/// Logs and metrics.
#[derive(Debug, Clone, Config)]
pub struct TelemetryConfig {
    /// Log format: `human` or `json`.
    #[config(env = "IDIC_LOG_FORMAT", default = "human")]
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, e.g. `info,idic_identification=debug`.
    #[config(env = "IDIC_LOG_FILTER", default = "info,sqlx=warn")]
    pub log_filter: String,
    /// Address of the Prometheus `/metrics` endpoint; empty disables it.
    #[config(env = "IDIC_METRICS_LISTEN", default = "")]
    pub metrics_listen: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line for log collectors.
    Json,
}

/// The gRPC server's protective limits.
#[derive(Debug, Clone, Config)]
pub struct ServerConfig {
    /// Address the gRPC server listens on (port 0 picks a free port).
    #[config(env = "IDIC_LISTEN", default = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    /// Longest time an RPC may run, in milliseconds; a shorter client deadline wins.
    /// Client-streaming uploads (imports) are bounded by the client's deadline only.
    #[config(env = "IDIC_REQUEST_TIMEOUT_MS", default = 30000, validate(*request_timeout_ms > 0, "must be positive"))]
    pub request_timeout_ms: u64,
    /// RPCs served at once by this process; more are refused with RESOURCE_EXHAUSTED (load shedding).
    #[config(env = "IDIC_CONCURRENCY_LIMIT", default = 512, validate(*concurrency_limit > 0, "must be positive"))]
    pub concurrency_limit: usize,
    /// How long shutdown waits for in-flight RPCs to finish, in milliseconds.
    #[config(env = "IDIC_DRAIN_TIMEOUT_MS", default = 20000)]
    pub drain_timeout_ms: u64,
    /// Longest life of one client connection, in milliseconds (0: unlimited). Clients then
    /// reconnect, so long-lived HTTP/2 connections spread over new replicas behind a
    /// Kubernetes Service; RPCs in flight finish first.
    #[config(env = "IDIC_MAX_CONNECTION_AGE_MS", default = 300000)]
    pub max_connection_age_ms: u64,
}

/// Callers and what they may do.
#[derive(Debug, Clone, Config)]
pub struct AuthConfig {
    /// Static API keys (development and service accounts). Prefer `api_keys_file` for real secrets.
    #[config(default = [])]
    pub api_keys: Vec<ApiKey>,
    /// A TOML file holding more `[[api_keys]]` entries (e.g. a mounted Kubernetes Secret).
    #[config(env = "IDIC_AUTH_API_KEYS_FILE")]
    pub api_keys_file: Option<std::path::PathBuf>,
    /// The token this process uses for its own calls to other services when no caller's
    /// token is being propagated (background workers, event consumers).
    #[config(env = "IDIC_AUTH_SERVICE_TOKEN", default = "")]
    pub service_token: String,
}

/// One static API key.
#[derive(Clone, Deserialize)]
pub struct ApiKey {
    /// Who the caller is (logged and written to audit entries).
    pub caller: String,
    /// The bearer token the caller presents.
    pub token: String,
    /// Scopes granted, e.g. `["profiles.read", "pii.read"]`; `admin` grants every scope.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("caller", &self.caller)
            .field("token", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Where the other services answer, for service-to-service calls. Empty means "this
/// process" (monolithic mode: calls still go through gRPC, to our own port).
#[derive(Debug, Clone, Config)]
pub struct PeersConfig {
    /// Identification service endpoint, e.g. `http://identification:50051`.
    #[config(env = "IDIC_PEERS_IDENTIFICATION", default = "")]
    pub identification: String,
    /// Segmentation service endpoint.
    #[config(env = "IDIC_PEERS_SEGMENTATION", default = "")]
    pub segmentation: String,
    /// Interaction service endpoint.
    #[config(env = "IDIC_PEERS_INTERACTION", default = "")]
    pub interaction: String,
    /// Customization service endpoint.
    #[config(env = "IDIC_PEERS_CUSTOMIZATION", default = "")]
    pub customization: String,
    /// Deadline of a service-to-service call when the caller set none, in milliseconds.
    #[config(env = "IDIC_PEERS_DEFAULT_DEADLINE_MS", default = 2000)]
    pub default_deadline_ms: u64,
    /// Attempts of an idempotent service-to-service call on UNAVAILABLE (1 = no retry).
    #[config(env = "IDIC_PEERS_MAX_ATTEMPTS", default = 3, validate(*max_attempts >= 1, "must be at least 1"))]
    pub max_attempts: u32,
}

/// Loads a configuration: defaults, then the file (when given), then `IDIC_*` variables.
/// The error names the setting that is missing or invalid.
pub fn load<C: Config>(file: Option<&std::path::Path>) -> anyhow::Result<C> {
    let mut builder = C::builder().env();
    if let Some(path) = file {
        if !path.exists() {
            anyhow::bail!("configuration file {} does not exist", path.display());
        }
        builder = builder.file(path);
    }
    builder.load().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
}

/// The documented TOML template of a configuration: every setting with its doc,
/// default and environment variable. Shown by `idic config` and `--help`.
pub fn template<C: Config>() -> String {
    confique::toml::template::<C>(confique::toml::FormatOptions::default())
}

impl AuthConfig {
    /// Every API key: the inline ones and those of `api_keys_file`.
    pub fn all_api_keys(&self) -> anyhow::Result<Vec<ApiKey>> {
        #[derive(Deserialize)]
        struct KeysFile {
            #[serde(default)]
            api_keys: Vec<ApiKey>,
        }
        let mut keys = self.api_keys.clone();
        if let Some(path) = &self.api_keys_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("auth.api_keys_file {}: {e}", path.display()))?;
            let file: KeysFile =
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("auth.api_keys_file {}: {e}", path.display()))?;
            keys.extend(file.api_keys);
        }
        for (i, key) in keys.iter().enumerate() {
            if key.token.len() < 16 {
                anyhow::bail!("auth.api_keys[{i}] ({}): token must be at least 16 characters", key.caller);
            }
        }
        Ok(keys)
    }
}
