//! Prometheus metrics: the process-wide recorder, its `/metrics` endpoint, and a tower
//! layer counting every RPC by method and status code with a latency histogram.

use std::{
    sync::OnceLock,
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use http::{Request, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower::{Layer, Service};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
/// Serialises installation, so a second caller racing the first waits for its handle.
static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Latency buckets in seconds, fine at the low end where IDIC's targets are.
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the process-wide recorder once and, when `listen` is set, serves `/metrics`
/// there. Later calls return the same handle (many servers may share a test process).
pub fn install(listen: &str) -> anyhow::Result<PrometheusHandle> {
    let _installing = INSTALLING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let mut builder =
        PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?;
    if listen.is_empty() {
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_ok() {
            let _ = HANDLE.set(handle);
        }
    } else {
        let addr: std::net::SocketAddr =
            listen.parse().map_err(|e| anyhow::anyhow!("telemetry.metrics_listen {listen:?}: {e}"))?;
        builder = builder.with_http_listener(addr);
        let (recorder, exporter) = builder.build()?;
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_ok() {
            tokio::spawn(async move {
                if let Err(e) = exporter.await {
                    tracing::error!(error = ?e, "metrics endpoint stopped");
                }
            });
            let _ = HANDLE.set(handle);
        }
    }
    HANDLE.get().cloned().ok_or_else(|| anyhow::anyhow!("another metrics recorder is installed"))
}

/// The current metrics in Prometheus text format (empty before [`install`]).
pub fn render() -> String {
    HANDLE.get().map(PrometheusHandle::render).unwrap_or_default()
}

/// Tower layer recording `idic_grpc_requests_total{method,code}` and
/// `idic_grpc_request_duration_seconds{method}`.
#[derive(Debug, Clone, Default)]
pub struct RpcMetricsLayer;

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

/// The service [`RpcMetricsLayer`] produces.
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for RpcMetrics<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let path = request.uri().path();
        // Only known methods get their own series: arbitrary paths must not create
        // unbounded label values.
        let known = idic_proto::required_scope(path).is_some()
            || path.starts_with("/grpc.health.v1.")
            || path.starts_with("/grpc.reflection.");
        let method = if known { path.to_owned() } else { "unknown".to_owned() };
        let started = Instant::now();
        let fut = self.inner.call(request);
        Box::pin(async move {
            let result = fut.await;
            // Errors are answered "trailers-only", so the code is in the headers;
            // a response without it is a success (unary) or streams its code later.
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from),
                Err(_) => tonic::Code::Unknown,
            };
            let code = format!("{code:?}");
            metrics::counter!("idic_grpc_requests_total", "method" => method.clone(), "code" => code).increment(1);
            metrics::histogram!("idic_grpc_request_duration_seconds", "method" => method)
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}
