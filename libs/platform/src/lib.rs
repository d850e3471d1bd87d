//! The runtime every IDIC service shares, and the only home of cross-cutting code:
//! configuration, telemetry, Postgres and Redis pools, cache-aside, the event bus,
//! the gRPC server and client stacks, errors, paging, idempotency, jobs and audit.
//! Nothing service-specific lives here.

pub mod audit;
pub mod auth;
pub mod cache;
pub mod client;
pub mod config;
pub mod context;
pub mod customers;
pub mod db;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod jobs;
pub mod metrics;
pub mod paging;
pub mod redis;
pub mod runtime;
pub mod server;
pub mod shared_rpcs;
pub mod telemetry;
pub mod validate;

pub use error::{ApiError, ApiResult, FieldViolation};
