//! The ideas of interaction as plain Rust, free of I/O, gRPC and SQL: interactions and
//! the rules they follow (directions, outbound contacts, amounts of product lines).

pub mod books;
pub mod complaints;
pub mod contact_policy;
pub mod feedback;
pub mod interaction;
pub mod masking;

pub use interaction::{Direction, Interaction, ItemLine, Kind};
