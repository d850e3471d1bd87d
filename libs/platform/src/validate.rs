//! Checks shared by every gRPC edge: resource names, request ids, string lengths,
//! and an accumulator that reports every invalid field of a request at once.

use uuid::Uuid;

use crate::error::{ApiError, ApiResult, FieldViolation};

/// Longest `request_id` accepted.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Collects field violations; `finish` answers INVALID_ARGUMENT listing them all.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a violation of `field`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Keeps the value of `result`, or records its violations (nested under `parent`).
    pub fn check<T>(&mut self, parent: &str, result: ApiResult<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(ApiError::InvalidArgument(vs)) => {
                self.0.extend(vs.into_iter().map(|v| if parent.is_empty() { v } else { v.under(parent) }));
                None
            }
            Err(other) => {
                self.0.push(FieldViolation::new(parent, other.to_string()));
                None
            }
        }
    }

    /// Ok when nothing was recorded.
    pub fn finish(self) -> ApiResult<()> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::InvalidArgument(self.0)) }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parses `{collection}/{uuid}` (e.g. `customers/0190…`) from `field`.
pub fn resource_id(name: &str, collection: &str, field: &str) -> ApiResult<Uuid> {
    let Some(id) = name.strip_prefix(collection).and_then(|rest| rest.strip_prefix('/')) else {
        return Err(ApiError::invalid(field, format!("must be {collection}/{{id}}, got {:?}", truncate(name))));
    };
    Uuid::parse_str(id)
        .map_err(|_| ApiError::invalid(field, format!("{:?} is not a valid {collection} id", truncate(id))))
}

/// Parses a bare UUID from `field`.
pub fn uuid(value: &str, field: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(value).map_err(|_| ApiError::invalid(field, format!("{:?} is not a valid id", truncate(value))))
}

/// Checks an optional idempotency key: at most 128 printable ASCII characters.
pub fn request_id<'a>(value: &'a str, field: &str) -> ApiResult<Option<&'a str>> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > MAX_REQUEST_ID_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {MAX_REQUEST_ID_LEN} printable ASCII characters"),
        ));
    }
    Ok(Some(value))
}

/// Checks that `value` has at most `max` characters.
pub fn max_chars(value: &str, max: usize, field: &str) -> ApiResult<()> {
    if value.chars().count() > max {
        return Err(ApiError::invalid(field, format!("must be at most {max} characters")));
    }
    Ok(())
}

/// Checks free text: at most `max` characters and no control characters other than
/// line breaks and tabs.
pub fn text(value: &str, max: usize, field: &str) -> ApiResult<()> {
    max_chars(value, max, field)?;
    if value.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(ApiError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Checks that a required string is present and at most `max` characters.
pub fn required(value: &str, max: usize, field: &str) -> ApiResult<()> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    max_chars(value, max, field)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_must_match_collection_and_id() {
        let id = Uuid::new_v4();
        assert_eq!(resource_id(&format!("customers/{id}"), "customers", "name").ok(), Some(id));
        for bad in ["", "customers/", "customers/xyz", &format!("segments/{id}"), &id.to_string()] {
            let err = resource_id(bad, "customers", "name").expect_err(bad);
            assert!(matches!(err, ApiError::InvalidArgument(ref v) if v[0].field == "name"), "{bad}");
        }
    }

    #[test]
    fn request_ids_are_bounded_printable_ascii() {
        assert_eq!(request_id("", "request_id").ok(), Some(None));
        assert!(request_id("import-42:row-7", "request_id").is_ok());
        assert!(request_id("has space", "request_id").is_err());
        assert!(request_id(&"x".repeat(129), "request_id").is_err());
    }

    #[test]
    fn violations_report_every_field() {
        let mut v = Violations::new();
        v.add("a", "bad");
        v.check("customer", Err::<(), _>(ApiError::invalid("email", "bad")));
        let Err(ApiError::InvalidArgument(all)) = v.finish() else { panic!("expected invalid") };
        let fields: Vec<_> = all.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["a", "customer.email"]);
    }
}
