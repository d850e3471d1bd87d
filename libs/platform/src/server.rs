//! The gRPC server every IDIC process runs: the services it is given, plus standard
//! health checking and reflection, behind one stack of tower layers (request id,
//! metrics, authentication and scopes, load shedding, concurrency limit, timeout),
//! with a graceful shutdown that drains in-flight RPCs.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_stream::{StreamExt as _, wrappers::TcpListenerStream};
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::{
    auth::{AuthLayer, Authenticator},
    config::{AuthConfig, ServerConfig},
    metrics::RpcMetricsLayer,
};

/// The services one process serves: their routes and the names health reports on.
#[derive(Default)]
pub struct ServiceSet {
    routes: tonic::service::RoutesBuilder,
    names: Vec<&'static str>,
}

impl ServiceSet {
    /// Adds a tonic service.
    pub fn add<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Names of the services added so far.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }
}

/// Serves `services` on `listener` until `shutdown` completes, then stops accepting,
/// reports NOT_SERVING, and waits up to `server.drain_timeout_ms` for in-flight RPCs.
pub async fn serve(
    server: &ServerConfig,
    auth: &AuthConfig,
    listener: TcpListener,
    services: ServiceSet,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let authenticator = Authenticator::new(&auth.all_api_keys()?);
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in &services.names {
        health.set_service_status(*name, ServingStatus::Serving).await;
    }
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(idic_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(idic_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let mut routes = services.routes;
    routes.add_service(health_service).add_service(reflection_v1).add_service(reflection_v1alpha);
    let routes: Routes = routes.routes();

    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(RpcMetricsLayer)
        .layer(AuthLayer::new(authenticator, Duration::from_millis(server.request_timeout_ms)))
        .layer(tower::load_shed::LoadShedLayer::new())
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(server.concurrency_limit))
        .into_inner();

    let incoming = TcpListenerStream::new(listener).map(|stream| {
        if let Ok(stream) = &stream {
            let _ = stream.set_nodelay(true);
        }
        stream
    });

    let shutdown_started = Arc::new(tokio::sync::Notify::new());
    let signal = {
        let shutdown_started = shutdown_started.clone();
        let names = services.names.clone();
        async move {
            shutdown.await;
            for name in names {
                health.set_service_status(name, ServingStatus::NotServing).await;
            }
            shutdown_started.notify_one();
            tracing::info!("shutting down: draining in-flight RPCs");
        }
    };

    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)));
    if server.max_connection_age_ms > 0 {
        // No grace limit: an aged connection gets GOAWAY, and the RPCs in flight on it (a
        // long import stream) run to their end.
        builder = builder.max_connection_age(Duration::from_millis(server.max_connection_age_ms));
    }
    let serving = builder.layer(layers).add_routes(routes).serve_with_incoming_shutdown(incoming, signal);

    let drain = Duration::from_millis(server.drain_timeout_ms);
    tokio::select! {
        result = serving => result?,
        () = async { shutdown_started.notified().await; tokio::time::sleep(drain).await } => {
            tracing::warn!(drain_ms = server.drain_timeout_ms, "drain timeout: closing with RPCs in flight");
        }
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM (what Kubernetes sends before killing a pod).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
