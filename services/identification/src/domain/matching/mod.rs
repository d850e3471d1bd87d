//! Record linkage: deciding whether two descriptions of a customer are the same
//! person. Records are prepared once ([`record`]), compared field by field into
//! similarity levels ([`compare`]), weighed by a Fellegi–Sunter model fitted to the
//! data by EM ([`model`]), found through blocking keys ([`blocking`]) and grouped into
//! duplicate clusters without chaining ([`cluster`]).

pub mod blocking;
pub mod cluster;
pub mod compare;
pub mod engine;
pub mod groups;
pub mod model;
pub mod record;
pub mod text;
