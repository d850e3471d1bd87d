//! The ideas of identification as plain Rust, free of I/O, gRPC and SQL: customers,
//! identifiers and their normalisation, and the masking of personal data.

pub mod consent;
pub mod customer;
pub mod drip;
pub mod facts;
pub mod identifier;
pub mod identifier_limits;
pub mod masking;
pub mod matching;
pub mod survivorship;

pub use customer::{
    BirthDate, Customer, CustomerId, CustomerKind, CustomerRole, CustomerState, DateOrder, NewCustomer,
};
pub use identifier::{Identifier, IdentifierError, IdentifierKind};

/// Gives a fieldless enum its stored form (`as_str`) and the parsing of it (`parse`),
/// from one list of `Variant => "name"` pairs.
macro_rules! stored_names {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// Stored form.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }
            /// Parses the stored form.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(Self::$variant),)* _ => None }
            }
        }
    };
}
pub(crate) use stored_names;
