//! Who is calling and on behalf of which request: set by the server's auth layer for
//! the life of each RPC, read by handlers (audit, masking) and by outgoing clients
//! (token and request id propagation).

use std::{collections::BTreeSet, sync::Arc};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's name, as configured with its key.
    pub name: String,
    /// Scopes granted to the caller.
    pub scopes: BTreeSet<String>,
}

impl Caller {
    /// The scope that grants every other one.
    pub const ADMIN: &'static str = "admin";

    /// Whether the caller holds `scope` (directly or through `admin`).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope) || self.scopes.contains(Self::ADMIN)
    }

    /// The internal caller used by background work (event consumers, jobs).
    pub fn system(service: &str) -> Self {
        Self { name: format!("system:{service}"), scopes: BTreeSet::from([Self::ADMIN.to_owned()]) }
    }
}

/// The context of the RPC being served.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The authenticated caller.
    pub caller: Arc<Caller>,
    /// The bearer token the caller presented, propagated to downstream calls.
    pub token: Option<Arc<str>>,
    /// The request id (from `x-request-id`, or generated), propagated downstream.
    pub request_id: Arc<str>,
    /// When the caller stops waiting (from `grpc-timeout`), propagated downstream.
    pub deadline: Option<tokio::time::Instant>,
}

tokio::task_local! {
    static CURRENT: CallContext;
}

/// Runs `fut` with `ctx` as the current call context.
pub async fn scope<F: std::future::Future>(ctx: CallContext, fut: F) -> F::Output {
    CURRENT.scope(ctx, fut).await
}

/// The current call context, if the code runs inside an RPC.
pub fn current() -> Option<CallContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The current request id, if any.
pub fn current_request_id() -> Option<String> {
    CURRENT.try_with(|c| c.request_id.to_string()).ok()
}

/// The current caller, if any.
pub fn current_caller() -> Option<Arc<Caller>> {
    CURRENT.try_with(|c| c.caller.clone()).ok()
}

/// Runs `fut` (calls to other services) with this service's own identity instead of the
/// caller's token, keeping the caller's request id and deadline: for reads a caller may not
/// make itself but the service needs to answer (a customer's metrics, their consent).
pub async fn as_service<F: std::future::Future>(fut: F) -> F::Output {
    match current() {
        Some(mut ctx) => {
            ctx.token = None;
            scope(ctx, fut).await
        }
        None => fut.await,
    }
}
