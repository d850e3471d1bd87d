//! gRPC clients for service-to-service calls: lazily connected channels, an interceptor
//! that propagates the caller's token, request id and remaining deadline (or applies a
//! default deadline), and bounded retries for idempotent calls. Also the plain bearer
//! interceptor of callers outside any RPC (the binary's client commands, tests).

use std::{future::Future, sync::Arc, time::Duration};

use backon::{ExponentialBuilder, Retryable as _};
use tonic::{
    Code, Request, Status,
    metadata::{Ascii, MetadataValue},
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

/// Interceptor presenting one fixed bearer token on every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(..)")
    }
}

impl Bearer {
    /// Presents `token`; fails if it cannot travel in a header (not visible ASCII).
    pub fn new(token: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()),
            "a token is one word of visible ASCII characters"
        );
        Ok(Self(MetadataValue::try_from(format!("Bearer {token}"))?))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
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

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeSet,
        sync::{
            Arc,
            atomic::{AtomicU32, Ordering},
        },
    };

    use super::*;
    use crate::context::{CallContext, Caller};

    fn call_context(deadline_in: Option<Duration>) -> CallContext {
        CallContext {
            caller: Arc::new(Caller { name: "crm".into(), scopes: BTreeSet::new() }),
            token: Some("caller-token".into()),
            request_id: "req-7".into(),
            deadline: deadline_in.map(|d| tokio::time::Instant::now() + d),
        }
    }

    fn header(request: &Request<()>, name: &str) -> Option<String> {
        request.metadata().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    #[tokio::test]
    async fn calls_inside_an_rpc_carry_the_callers_token_request_id_and_remaining_deadline() {
        let mut propagate = Propagate::new(Duration::from_secs(2), "service-token");
        let request =
            context::scope(call_context(Some(Duration::from_millis(300))), async { propagate.call(Request::new(())) })
                .await
                .expect("intercepted");
        assert_eq!(header(&request, "authorization").as_deref(), Some("Bearer caller-token"));
        assert_eq!(header(&request, REQUEST_ID_HEADER).as_deref(), Some("req-7"));
        let timeout = header(&request, "grpc-timeout").expect("deadline set");
        let micros: u64 = timeout.trim_end_matches('u').parse().expect("microseconds");
        assert!(micros <= 300_000 && micros > 200_000, "remaining deadline, got {timeout}");
    }

    #[tokio::test]
    async fn background_calls_use_the_service_token_and_the_default_deadline() {
        let mut propagate = Propagate::new(Duration::from_secs(2), "service-token");
        let request = propagate.call(Request::new(())).expect("intercepted");
        assert_eq!(header(&request, "authorization").as_deref(), Some("Bearer service-token"));
        assert!(header(&request, "grpc-timeout").is_some());
    }

    #[tokio::test]
    async fn a_passed_deadline_fails_before_calling() {
        let mut propagate = Propagate::new(Duration::from_secs(2), "service-token");
        let result =
            context::scope(call_context(Some(Duration::ZERO)), async { propagate.call(Request::new(())) }).await;
        assert_eq!(result.expect_err("deadline passed").code(), Code::DeadlineExceeded);
    }

    #[test]
    fn a_bearer_presents_its_token_and_refuses_what_no_header_can_carry() {
        let mut bearer = Bearer::new("abc-123").expect("valid token");
        let request = bearer.call(Request::new(())).expect("intercepted");
        assert_eq!(header(&request, "authorization").as_deref(), Some("Bearer abc-123"));
        assert!(!format!("{bearer:?}").contains("abc-123"), "the token stays out of debug output");
        for bad in ["", "two words", "tab\there", "é"] {
            assert!(Bearer::new(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn idempotent_calls_retry_only_unavailable_and_only_so_often() {
        let attempts = AtomicU32::new(0);
        let result: Result<(), Status> = retry_idempotent(3, || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err(Status::unavailable("down"))
        })
        .await;
        assert_eq!(result.expect_err("still down").code(), Code::Unavailable);
        assert_eq!(attempts.load(Ordering::SeqCst), 3);

        let attempts = AtomicU32::new(0);
        let result: Result<(), Status> = retry_idempotent(3, || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err(Status::invalid_argument("bad"))
        })
        .await;
        assert_eq!(result.expect_err("not retried").code(), Code::InvalidArgument);
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }
}
