//! The one error type of the gRPC edge and its mapping to `tonic::Status`, with
//! `google.rpc` details (field violations, resource info, retry info). Internal
//! errors are logged with their context and answered without leaking it.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Result of anything that ends at the gRPC edge.
pub type ApiResult<T> = Result<T, ApiError>;

/// One invalid field of a request, named by its path in the request message
/// (`customer.identifiers[2].value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the offending field.
    pub field: String,
    /// What is wrong with it, for the caller's developer.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }

    /// The same violation, nested under `parent` (`value` under `customer` gives `customer.value`).
    #[must_use]
    pub fn under(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_owned()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// Everything a service can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; each violation names a field.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The named resource does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The resource to create exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A field's value collides with an existing resource (a unique identifier
    /// already held elsewhere): ALREADY_EXISTS naming the field.
    #[error("{}: {}", .0.field, .0.description)]
    Conflict(FieldViolation),
    /// The system is not in a state that allows the operation.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// A concurrent change won (etag mismatch, serialization failure): retry the read-modify-write.
    #[error("aborted: {0}")]
    Aborted(String),
    /// No (valid) credentials.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller lacks the scope.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A limit was reached; the caller may retry after the given delay.
    #[error("resource exhausted: {message}")]
    ResourceExhausted {
        /// What was exhausted.
        message: String,
        /// When retrying makes sense.
        retry_after: Option<Duration>,
    },
    /// A dependency is down; retrying later may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The deadline passed before the work finished.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// The operation is not offered (yet) by this service.
    #[error("unimplemented: {0}")]
    Unimplemented(String),
    /// A bug or an unexpected failure; logged, never shown to the caller.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ")
}

impl ApiError {
    /// A single invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// The same error with its field violations nested under `parent`; other errors unchanged.
    #[must_use]
    pub fn within(self, parent: &str) -> Self {
        match self {
            Self::InvalidArgument(v) => Self::InvalidArgument(v.into_iter().map(|f| f.under(parent)).collect()),
            other => other,
        }
    }

    /// The gRPC code this error is answered with.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::AlreadyExists(_) | Self::Conflict(_) => Code::AlreadyExists,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::Aborted(_) => Code::Aborted,
            Self::Unimplemented(_) => Code::Unimplemented,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::ResourceExhausted { .. } => Code::ResourceExhausted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        let code = err.code();
        match err {
            ApiError::InvalidArgument(violations) => {
                let message = format!("invalid argument: {}", describe(&violations));
                let mut details = ErrorDetails::new();
                for v in violations {
                    details.add_bad_request_violation(v.field, v.description);
                }
                Status::with_error_details(code, message, details)
            }
            ApiError::Conflict(violation) => {
                let message = format!("{}: {}", violation.field, violation.description);
                let mut details = ErrorDetails::new();
                details.add_bad_request_violation(violation.field, violation.description);
                Status::with_error_details(code, message, details)
            }
            ApiError::NotFound(ref resource) | ApiError::AlreadyExists(ref resource) => {
                let details =
                    ErrorDetails::with_resource_info(resource_type(resource), resource.clone(), "", err.to_string());
                Status::with_error_details(code, err.to_string(), details)
            }
            ApiError::ResourceExhausted { message, retry_after } => match retry_after {
                Some(delay) => Status::with_error_details(code, message, ErrorDetails::with_retry_info(Some(delay))),
                None => Status::new(code, message),
            },
            ApiError::Internal(source) => {
                let request_id = crate::context::current_request_id().unwrap_or_default();
                tracing::error!(error = ?source, %request_id, "internal error");
                Status::internal(format!("internal error (request id {request_id})"))
            }
            other => Status::new(code, other.to_string()),
        }
    }
}

/// `customers/123` → `customers`, for `google.rpc.ResourceInfo.resource_type`.
fn resource_type(name: &str) -> String {
    name.split('/').next().unwrap_or_default().to_owned()
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut => Self::Unavailable("database busy: no free connection".into()),
            sqlx::Error::Io(_) | sqlx::Error::PoolClosed => Self::Unavailable("database unreachable".into()),
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some("40001" | "40P01") => Self::Aborted("concurrent update; retry".into()),
                Some("57014") => Self::DeadlineExceeded("the database statement timed out".into()),
                Some("55P03") => Self::Aborted("the data is locked by another request; retry".into()),
                // Data exceptions (class 22: bad characters, out-of-range values) and rows
                // too large for an index come from values a caller sent.
                Some(code) if code.starts_with("22") || code == "54000" => {
                    Self::invalid("", "a value is not acceptable to the database (control characters or too large)")
                }
                _ => Self::Internal(anyhow::Error::new(err).context("database")),
            },
            _ => Self::Internal(anyhow::Error::new(err).context("database")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_field_violations() {
        let status: Status = ApiError::invalid("customer.identifiers[0].value", "not an email").into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        assert_eq!(bad.field_violations[0].field, "customer.identifiers[0].value");
        assert_eq!(bad.field_violations[0].description, "not an email");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status: Status = ApiError::Internal(anyhow::anyhow!("password=hunter2 leaked")).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
    }

    #[test]
    fn violations_nest_under_their_parent() {
        let v = FieldViolation::new("value", "bad").under("identifiers[2]").under("customer");
        assert_eq!(v.field, "customer.identifiers[2].value");
        let v = FieldViolation::new("[3]", "bad").under("identifiers");
        assert_eq!(v.field, "identifiers[3]");
    }
}
