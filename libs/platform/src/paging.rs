//! List paging (AIP-158): page sizes bounded and defaulted, and opaque page tokens
//! that carry the cursor of the last item and refuse to be reused with another filter.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest as _, Sha256};

use crate::error::{ApiError, ApiResult};

/// Page size when the caller sends 0.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page size served.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The page size to serve: 0 means the default; negative or above the maximum is invalid.
pub fn page_size(requested: i32, field: &str) -> ApiResult<u32> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        1.. if requested as u32 <= MAX_PAGE_SIZE => Ok(requested as u32),
        _ => Err(ApiError::invalid(field, format!("must be between 0 and {MAX_PAGE_SIZE}"))),
    }
}

#[derive(Serialize, serde::Deserialize)]
struct Token<C> {
    /// Cursor: the sort key of the last item served.
    c: C,
    /// Fingerprint of the request's filter.
    f: String,
}

fn fingerprint(filter: &str) -> String {
    let digest = Sha256::digest(filter.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..8])
}

/// The token for the page after `cursor`, bound to `filter` (anything that defines the
/// listing: parent, filter, order).
pub fn next_page_token<C: Serialize>(cursor: &C, filter: &str) -> String {
    let token = Token { c: cursor, f: fingerprint(filter) };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// The cursor in `token` (`None` for the first page), checked against `filter`.
pub fn decode_page_token<C: DeserializeOwned>(token: &str, filter: &str, field: &str) -> ApiResult<Option<C>> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || ApiError::invalid(field, "is not a page token returned by this listing");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let token: Token<C> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if token.f != fingerprint(filter) {
        return Err(ApiError::invalid(field, "was issued for a different filter; restart from the first page"));
    }
    Ok(Some(token.c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_and_bounds() {
        assert_eq!(page_size(0, "page_size").ok(), Some(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(7, "page_size").ok(), Some(7));
        assert_eq!(page_size(1000, "page_size").ok(), Some(1000));
        assert!(page_size(1001, "page_size").is_err());
        assert!(page_size(-1, "page_size").is_err());
    }

    #[test]
    fn tokens_round_trip_and_are_bound_to_their_filter() {
        let token = next_page_token(&("2026-01-01T00:00:00Z", 42_i64), "kind=a");
        let cursor: Option<(String, i64)> = decode_page_token(&token, "kind=a", "page_token").expect("valid");
        assert_eq!(cursor, Some(("2026-01-01T00:00:00Z".to_owned(), 42)));
        assert!(decode_page_token::<(String, i64)>(&token, "kind=b", "page_token").is_err());
        assert!(decode_page_token::<(String, i64)>("garbage!", "kind=a", "page_token").is_err());
    }
}
