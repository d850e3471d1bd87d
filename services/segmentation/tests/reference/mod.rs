//! The published CDNOW datasets of the `lifetimes` Python package (0.11.3), read from where
//! `scripts/reference-data.sh` puts them: `$IDIC_REFERENCE_DATA_DIR`, or else
//! `<workspace>/target/reference-data/lifetimes/datasets`. They are fetched, not committed.

use std::path::{Path, PathBuf};

/// Environment variable naming the directory of the datasets.
pub const REFERENCE_DATA_DIR: &str = "IDIC_REFERENCE_DATA_DIR";

/// The contents of dataset `file`; panics, naming the script to run, when it is absent.
pub fn reference_file(file: &str) -> String {
    let dir = std::env::var_os(REFERENCE_DATA_DIR).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/reference-data/lifetimes/datasets")
    });
    let path = dir.join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reference data {} is missing ({e}): run scripts/reference-data.sh first \
             (or set {REFERENCE_DATA_DIR} to the directory holding the lifetimes 0.11.3 datasets)",
            path.display()
        )
    })
}
