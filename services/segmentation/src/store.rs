//! Segmentation's SQL, one module per area, all against its own schema (`segmentation`).

pub mod clusters;
pub mod models;
pub mod segments;
pub mod value;
