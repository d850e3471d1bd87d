//! What the binary's client commands (`idic import`, `idic export`, `idic bench`,
//! `idic segment`, `idic models`) share:
//! where the server is, the token presented to it, the connections, and the progress bar.

use std::{io::IsTerminal as _, path::PathBuf, time::Duration};

use anyhow::Context as _;
use idic_platform::client::Bearer;
use idic_proto::{
    customization::v1::customization_service_client::CustomizationServiceClient,
    identification::v1::identification_service_client::IdentificationServiceClient,
    interaction::v1::interaction_service_client::InteractionServiceClient,
    segmentation::v1::segmentation_service_client::SegmentationServiceClient,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tonic::{Code, Status, service::interceptor::InterceptedService, transport::Channel};

/// The identification service, authenticated.
pub type Identification = IdentificationServiceClient<InterceptedService<Channel, Bearer>>;

/// The interaction service, authenticated.
pub type Interaction = InteractionServiceClient<InterceptedService<Channel, Bearer>>;

/// The segmentation service, authenticated.
pub type Segmentation = SegmentationServiceClient<InterceptedService<Channel, Bearer>>;

/// The customization service, authenticated.
pub type Customization = CustomizationServiceClient<InterceptedService<Channel, Bearer>>;

/// Where the server is and how to authenticate to it.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The IDIC server to call.
    #[arg(long, env = "IDIC_SERVER", default_value = "http://127.0.0.1:50051")]
    server: String,
    /// Bearer token to present; without it, the first line of --token-file, else the
    /// IDIC_TOKEN environment variable.
    #[arg(long, conflicts_with = "token_file")]
    token: Option<String>,
    /// File whose first line is the token (keeps it out of the shell history and `ps`).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
}

impl ServerArgs {
    /// The token from --token, --token-file or IDIC_TOKEN, in that order.
    fn token(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path).with_context(|| format!("--token-file {}", path.display()))?;
            return Ok(text.lines().next().unwrap_or_default().trim().to_owned());
        }
        match std::env::var("IDIC_TOKEN") {
            Ok(token) => Ok(token.trim().to_owned()),
            Err(_) => anyhow::bail!("no token: give --token, --token-file or IDIC_TOKEN"),
        }
    }

    /// Connects to the identification service, presenting the token on every call.
    pub async fn identification(&self) -> anyhow::Result<Identification> {
        let bearer = self.bearer()?;
        Ok(IdentificationServiceClient::with_interceptor(self.connect().await?, bearer))
    }

    /// Connects to the segmentation service, presenting the token on every call.
    pub async fn segmentation(&self) -> anyhow::Result<Segmentation> {
        let bearer = self.bearer()?;
        Ok(SegmentationServiceClient::with_interceptor(self.connect().await?, bearer))
    }

    /// Connects to the interaction service, presenting the token on every call.
    pub async fn interaction(&self) -> anyhow::Result<Interaction> {
        let bearer = self.bearer()?;
        Ok(InteractionServiceClient::with_interceptor(self.connect().await?, bearer))
    }

    /// Connects to the customization service, presenting the token on every call.
    pub async fn customization(&self) -> anyhow::Result<Customization> {
        let bearer = self.bearer()?;
        Ok(CustomizationServiceClient::with_interceptor(self.connect().await?, bearer))
    }

    /// The interceptor presenting the token on every call.
    pub fn bearer(&self) -> anyhow::Result<Bearer> {
        Bearer::new(&self.token()?).context("the token")
    }

    /// Opens one connection (one HTTP/2 connection) to the server.
    pub async fn connect(&self) -> anyhow::Result<Channel> {
        Channel::from_shared(self.server.clone())
            .map_err(|e| anyhow::anyhow!("--server {:?}: {e}", self.server))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("cannot reach the IDIC server at {}", self.server))
    }
}

/// Turns an error answer into one line saying what went wrong, with a hint where the
/// caller can fix it.
pub fn explain(status: &Status) -> anyhow::Error {
    let hint = match status.code() {
        Code::Unauthenticated => " (check the token)",
        Code::PermissionDenied => " (the token lacks the scope this needs)",
        Code::Unavailable => " (is the server running?)",
        _ => "",
    };
    anyhow::anyhow!("{:?}: {}{hint}", status.code(), status.message())
}

/// A progress bar drawn on stdout when it is a terminal, hidden otherwise (a pipe, a
/// file, a test), so that only the summary is printed there.
pub fn progress_bar(len: u64, style: ProgressStyle) -> ProgressBar {
    let target =
        if std::io::stdout().is_terminal() { ProgressDrawTarget::stdout() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(len), target).with_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
