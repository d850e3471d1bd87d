//! Bearer-token authentication and per-RPC scopes, as a tower layer in front of every
//! IDIC service. The scope each RPC needs comes from the `required_scope` option in
//! `proto/`; health checks and reflection stay open so standard tools work. It also
//! sets each call's context (caller, token, request id, deadline) and ends the call at
//! its deadline.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::{Request, Response};
use tonic::{Status, body::Body};
use tower::{Layer, Service};

use crate::{
    config::ApiKey,
    context::{self, CallContext, Caller},
};

/// Header carrying the request id, accepted from callers and propagated downstream.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Known tokens and who they belong to.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    callers_by_token: Arc<HashMap<String, Arc<Caller>>>,
}

impl Authenticator {
    /// An authenticator accepting exactly these keys.
    pub fn new(keys: &[ApiKey]) -> Self {
        let callers_by_token = keys
            .iter()
            .map(|k| {
                let caller =
                    Caller { name: k.caller.clone(), scopes: k.scopes.iter().cloned().collect::<BTreeSet<_>>() };
                (k.token.clone(), Arc::new(caller))
            })
            .collect();
        Self { callers_by_token: Arc::new(callers_by_token) }
    }

    /// The caller a request's `authorization` header identifies.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Arc<Caller>, Status> {
        let header = authorization
            .ok_or_else(|| Status::unauthenticated("missing authorization: send `authorization: Bearer <token>`"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        self.callers_by_token
            .get(token.trim())
            .cloned()
            .ok_or_else(|| Status::unauthenticated("unknown or expired token"))
    }
}

/// Whether a path is open to unauthenticated callers (health and reflection).
fn is_open_path(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

/// Tower layer enforcing authentication and scopes.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    authenticator: Authenticator,
    default_timeout: std::time::Duration,
}

impl AuthLayer {
    /// A layer that authenticates with `authenticator` and ends a call after the
    /// caller's `grpc-timeout` or `default_timeout`, whichever comes first (client
    /// streams: only the caller's).
    pub fn new(authenticator: Authenticator, default_timeout: std::time::Duration) -> Self {
        Self { authenticator, default_timeout }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, authenticator: self.authenticator.clone(), default_timeout: self.default_timeout }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Authenticator,
    default_timeout: std::time::Duration,
}

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // Take the service that was driven to readiness, leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = request.uri().path().to_owned();
        if is_open_path(&path) {
            return Box::pin(inner.call(request));
        }
        let request_id: Arc<str> = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map_or_else(|| uuid::Uuid::new_v4().to_string().into(), Into::into);
        let authorization = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let caller = match self.authenticator.authenticate(authorization) {
            Ok(caller) => caller,
            Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
        };
        if let Some(scope) = idic_proto::required_scope(&path)
            && !caller.has_scope(scope)
        {
            let status =
                Status::permission_denied(format!("caller {} lacks scope {scope} required by {path}", caller.name));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let token = authorization.and_then(|h| h.split_once(' ')).map(|(_, t)| Arc::<str>::from(t.trim()));
        request.extensions_mut().insert(caller.clone());
        let asked = request.headers().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout);
        // A client stream lasts as long as its upload: only the caller bounds it.
        let limit = if idic_proto::is_client_streaming(&path) {
            asked
        } else {
            Some(asked.map_or(self.default_timeout, |a| a.min(self.default_timeout)))
        };
        let deadline = limit.and_then(|d| tokio::time::Instant::now().checked_add(d));
        let ctx = CallContext { caller, token, request_id, deadline };
        let call = context::scope(ctx, inner.call(request));
        match limit {
            None => Box::pin(call),
            Some(limit) => Box::pin(async move {
                match tokio::time::timeout(limit, call).await {
                    Ok(answer) => answer,
                    Err(_elapsed) => {
                        Ok(Status::deadline_exceeded(format!("{path} took longer than {limit:?}")).into_http())
                    }
                }
            }),
        }
    }
}

/// Parses a `grpc-timeout` header value (`100m`, `5S`, ...).
fn parse_grpc_timeout(value: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    // The gRPC spec allows at most 8 digits.
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator() -> Authenticator {
        Authenticator::new(&[ApiKey {
            caller: "crm".into(),
            token: "0123456789abcdef".into(),
            scopes: vec!["profiles.read".into()],
        }])
    }

    #[test]
    fn known_bearer_token_identifies_its_caller() {
        let caller = authenticator().authenticate(Some("Bearer 0123456789abcdef")).expect("known");
        assert_eq!(caller.name, "crm");
        assert!(caller.has_scope("profiles.read"));
        assert!(!caller.has_scope("pii.read"));
    }

    #[test]
    fn missing_or_unknown_tokens_are_unauthenticated() {
        let auth = authenticator();
        for header in [None, Some("Basic abc"), Some("Bearer nope")] {
            let err = auth.authenticate(header).expect_err("must fail");
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{header:?}");
        }
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        use std::time::Duration;
        assert_eq!(parse_grpc_timeout("150m"), Some(Duration::from_millis(150)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout("18446744073709551615S"), None, "more than 8 digits");
        assert_eq!(parse_grpc_timeout(""), None);
    }

    #[test]
    fn admin_grants_every_scope() {
        assert!(Caller::system("test").has_scope("customers.erase"));
    }
}
