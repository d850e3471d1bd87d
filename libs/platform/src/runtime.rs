//! What a service needs from the process that hosts it: its database settings, the
//! shared Redis handle, clients to its peers, and the shutdown signal of its workers.

use std::{sync::OnceLock, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    client::{self, PeerChannel},
    config::{DatabaseConfig, PeersConfig},
    redis::Redis,
};

/// Everything the host hands to a service when starting it.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    /// Postgres settings (each service connects to its own schema).
    pub database: DatabaseConfig,
    /// The shared Redis handle.
    pub redis: Redis,
    /// Clients to the other services.
    pub peers: Peers,
    /// Cancelled when the process shuts down; workers stop on it.
    pub shutdown: CancellationToken,
    /// A name unique to this process, for consumer groups and job claims.
    pub instance: String,
}

/// Lazily connected channels to the four services.
#[derive(Debug, Clone)]
pub struct Peers {
    config: PeersConfig,
    service_token: String,
    /// This process's own address, used for peers configured as "" (monolithic mode).
    own_endpoint: String,
    channels: std::sync::Arc<[OnceLock<PeerChannel>; 4]>,
}

/// The four services a peer can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerService {
    /// Identification.
    Identification = 0,
    /// Segmentation.
    Segmentation = 1,
    /// Interaction.
    Interaction = 2,
    /// Customization.
    Customization = 3,
}

impl Peers {
    /// Peers as configured; unset ones are reached at `own_endpoint`.
    pub fn new(config: PeersConfig, service_token: &str, own_endpoint: &str) -> Self {
        Self {
            config,
            service_token: service_token.to_owned(),
            own_endpoint: own_endpoint.to_owned(),
            channels: std::sync::Arc::new(Default::default()),
        }
    }

    /// The channel to `service` (created on first use; connects lazily).
    pub fn channel(&self, service: PeerService) -> anyhow::Result<PeerChannel> {
        let slot = &self.channels[service as usize];
        if let Some(channel) = slot.get() {
            return Ok(channel.clone());
        }
        let configured = match service {
            PeerService::Identification => &self.config.identification,
            PeerService::Segmentation => &self.config.segmentation,
            PeerService::Interaction => &self.config.interaction,
            PeerService::Customization => &self.config.customization,
        };
        let endpoint = if configured.is_empty() { &self.own_endpoint } else { configured };
        let channel =
            client::connect(endpoint, Duration::from_millis(self.config.default_deadline_ms), &self.service_token)?;
        Ok(slot.get_or_init(|| channel).clone())
    }

    /// Attempts of an idempotent call (for [`client::retry_idempotent`]).
    pub fn max_attempts(&self) -> u32 {
        self.config.max_attempts
    }
}
