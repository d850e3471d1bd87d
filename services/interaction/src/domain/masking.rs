//! How free texts that may hold personal data (notes, descriptions) are shown to callers
//! without `pii.read`: a placeholder saying a text exists, never the text.

/// `***` for a non-empty text; empty stays empty.
pub fn mask_text(text: &str) -> String {
    if text.is_empty() { String::new() } else { "***".to_owned() }
}
