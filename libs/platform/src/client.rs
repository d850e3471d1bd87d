//! gRPC clients for service-to-service calls: lazily connected channels, an interceptor
//! that propagates the caller's token, request id and remaining deadline (or applies a
//! default deadline), and bounded retries for idempotent calls.

use std::{future::Future, sync::Arc, time::Duration};

use backon::{ExponentialBuilder, Retryable as _};
use tonic::{
    Code, Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

use crate::{auth::REQUEST_ID_HEADER, context};

/// A channel to another service plus what every call on it should carry.
pub type PeerChannel = InterceptedService<Channel, Propagate>;

/// Opens a lazily connected channel to `endpoint` (e.g. `http://127.0.0.1:50051`).
pub fn connect(endpoint: &str, default_deadline: Duration, service_token: &str) -> anyhow::Result<PeerChannel> {
    let channel = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| anyhow::anyhow!("peer endpoint {endpoint:?}: {e}"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy();
    Ok(InterceptedService::new(channel, Propagate::new(default_deadline, service_token)))
}

/// Interceptor adding authorization, request id and deadline to outgoing calls.
#[derive(Clone)]
pub struct Propagate {
    default_deadline: Duration,
    service_token: Arc<str>,
}

impl std::fmt::Debug for Propagate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Propagate").field("default_deadline", &self.default_deadline).finish_non_exhaustive()
    }
}

impl Propagate {
    /// Calls outside an RPC use `service_token`; all get at most `default_deadline`.
    pub fn new(default_deadline: Duration, service_token: &str) -> Self {
        Self { default_deadline, service_token: service_token.into() }
    }
}

impl Interceptor for Propagate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let ctx = context::current();
        let token = ctx.as_ref().and_then(|c| c.token.clone()).unwrap_or_else(|| self.service_token.clone());
        if !token.is_empty() {
            let value = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| Status::internal("token is not a valid header value"))?;
            request.metadata_mut().insert("authorization", value);
        }
        if let Some(ctx) = &ctx
            && let Ok(value) = MetadataValue::try_from(ctx.request_id.as_ref())
        {
            request.metadata_mut().insert(REQUEST_ID_HEADER, value);
        }
        let remaining = ctx.and_then(|c| c.deadline).map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
        let deadline = remaining.map_or(self.default_deadline, |r| r.min(self.default_deadline));
        if deadline.is_zero() {
            return Err(Status::deadline_exceeded("the caller's deadline has passed"));
        }
        request.set_timeout(deadline);
        Ok(request)
    }
}

/// Runs an idempotent call up to `max_attempts` times while it answers UNAVAILABLE,
/// with jittered exponential backoff (20 ms to 500 ms). Other errors return at once.
pub async fn retry_idempotent<T, F, Fut>(max_attempts: u32, call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    call.retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(20))
            .with_max_delay(Duration::from_millis(500))
            .with_max_times(max_attempts.saturating_sub(1) as usize)
            .with_jitter(),
    )
    .when(|s: &Status| s.code() == Code::Unavailable)
    .await
}
