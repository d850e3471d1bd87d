//! The ideas of identification as plain Rust, free of I/O, gRPC and SQL: customers,
//! identifiers and their normalisation, and the masking of personal data.

pub mod consent;
pub mod customer;
pub mod drip;
pub mod facts;
pub mod identifier;
pub mod masking;

pub use customer::{BirthDate, Customer, CustomerId, CustomerKind, CustomerRole, CustomerState, NewCustomer};
pub use identifier::{Identifier, IdentifierError, IdentifierKind};
