//! Logs: `tracing` with a filter, as human-readable lines or JSON for collectors.
//! Metrics live in [`crate::metrics`].

use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt as _, util::SubscriberInitExt as _};

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global subscriber once; later calls (tests starting many servers) are no-ops.
pub fn init(config: &TelemetryConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| anyhow::anyhow!("telemetry.log_filter {:?}: {e}", config.log_filter))?;
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match config.log_format {
        LogFormat::Human => registry.with(fmt::layer().with_target(true)).try_init(),
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true).with_current_span(true)).try_init(),
    };
    Ok(())
}
