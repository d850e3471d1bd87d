//! The ideas of customization as plain Rust, free of I/O, gRPC and SQL: the catalog's
//! products and bundles, products assembled from modules, item-to-item recommendations,
//! their offline evaluation, the prospects for a new product, next best offers, personal messages, and campaigns measured against control groups.

pub mod campaigns;
pub mod catalog;
pub mod evaluation;
pub mod messages;
pub mod modules;
pub mod offers;
pub mod prospects;
pub mod recommend;
