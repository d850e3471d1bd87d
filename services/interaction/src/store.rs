//! The SQL of interaction, against its own schema only: one submodule per area, each
//! with its plain SQL strings; the indexes that make them fast are in `migrations/`.

pub mod complaints;
pub mod contact_policy;
pub mod customers;
pub mod feedback;
pub mod interactions;
pub mod managers;
pub mod partitions;

use sqlx::PgPool;

/// The service's store: its pool and the partition upkeep of the interactions table.
#[derive(Debug, Clone)]
pub struct Store {
    /// The pool of the `interaction` schema.
    pub pool: PgPool,
    /// Creates the monthly partitions of `interactions` as they are needed.
    pub partitions: partitions::Partitions,
}

impl Store {
    /// The store over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { partitions: partitions::Partitions::new(pool.clone()), pool }
    }
}
