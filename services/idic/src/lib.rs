//! Wiring of the one IDIC binary: the configuration of every section, and starting the
//! services a target names on one gRPC server (monolithic mode: all four on one port;
//! microservices mode: one). Used by `main.rs` and by the test kit.

use std::{net::SocketAddr, str::FromStr};

use confique::Config;
use idic_customization::Customization;
use idic_identification::{Identification, IdentificationConfig};
use idic_interaction::{Interaction, InteractionConfig};
use idic_platform::{
    config::{AuthConfig, DatabaseConfig, PeersConfig, RedisConfig, ServerConfig, TelemetryConfig},
    redis::Redis,
    runtime::{Peers, ServiceContext},
    server::{self, ServiceSet},
};
use idic_segmentation::Segmentation;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Every setting of an IDIC process, one section per concern and per service.
#[derive(Debug, Clone, Config)]
pub struct IdicConfig {
    /// gRPC server: address and protective limits.
    #[config(nested)]
    pub server: ServerConfig,
    /// Postgres (each service uses its own schema).
    #[config(nested)]
    pub database: DatabaseConfig,
    /// Redis (caches and event streams).
    #[config(nested)]
    pub redis: RedisConfig,
    /// Logs and metrics.
    #[config(nested)]
    pub telemetry: TelemetryConfig,
    /// Callers and their scopes.
    #[config(nested)]
    pub auth: AuthConfig,
    /// Where the other services are (microservices mode).
    #[config(nested)]
    pub peers: PeersConfig,
    /// Identification service.
    #[config(nested)]
    pub identification: IdentificationConfig,
    /// Interaction service.
    #[config(nested)]
    pub interaction: InteractionConfig,
}

/// Which services a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// All four on one port (monolithic mode).
    All,
    /// Identification only.
    Identification,
    /// Segmentation only.
    Segmentation,
    /// Interaction only.
    Interaction,
    /// Customization only.
    Customization,
}

impl Target {
    /// The four single-service targets.
    pub const SERVICES: [Target; 4] =
        [Target::Identification, Target::Segmentation, Target::Interaction, Target::Customization];

    fn includes(self, service: Target) -> bool {
        self == Target::All || self == service
    }

    /// Its name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Identification => "identification",
            Self::Segmentation => "segmentation",
            Self::Interaction => "interaction",
            Self::Customization => "customization",
        }
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Target::All].into_iter().chain(Target::SERVICES).find(|t| t.as_str() == s).ok_or_else(|| {
            format!("unknown target {s:?}: use all, identification, segmentation, interaction or customization")
        })
    }
}

/// Applies the migrations of the target's services, each into its own schema.
pub async fn migrate(config: &IdicConfig, target: Target) -> anyhow::Result<()> {
    let db = &config.database;
    if target.includes(Target::Identification) {
        idic_identification::migrate(db).await?;
    }
    if target.includes(Target::Segmentation) {
        idic_segmentation::migrate(db).await?;
    }
    if target.includes(Target::Interaction) {
        idic_interaction::migrate(db).await?;
    }
    if target.includes(Target::Customization) {
        idic_customization::migrate(db).await?;
    }
    Ok(())
}

/// Serves the target's services on `listener` until `shutdown` is cancelled, then
/// drains in-flight RPCs.
pub async fn serve(
    config: &IdicConfig,
    target: Target,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let ctx = ServiceContext {
        database: config.database.clone(),
        redis: Redis::new(&config.redis)?,
        peers: Peers::new(config.peers.clone(), &config.auth.service_token, &own_endpoint(addr)),
        shutdown: shutdown.clone(),
        instance: format!("{}-{}", target.as_str(), uuid::Uuid::new_v4().simple()),
    };
    let mut services = ServiceSet::default();
    if target.includes(Target::Identification) {
        services.add(Identification::start(&ctx, &config.identification).await?.server);
    }
    if target.includes(Target::Segmentation) {
        services.add(Segmentation::start(&ctx).await?.server);
    }
    if target.includes(Target::Interaction) {
        services.add(Interaction::start(&ctx, &config.interaction).await?.server);
    }
    if target.includes(Target::Customization) {
        services.add(Customization::start(&ctx).await?.server);
    }
    tracing::info!(%addr, target = target.as_str(), services = ?services.names(), "serving");
    server::serve(&config.server, &config.auth, listener, services, async move {
        shutdown.cancelled().await;
    })
    .await
}

/// How this process reaches itself: the bound address, with a wildcard host replaced
/// by loopback.
fn own_endpoint(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    format!("http://{host}:{}", addr.port())
}
