//! Settings of the interaction service (`[interaction]` in the config file, `IDIC_INTERACTION_*`
//! in the environment).

use confique::Config;

/// Settings of the interaction service.
#[derive(Debug, Clone, Config)]
pub struct InteractionConfig {
    /// Capacity of an account manager's book when CreateAccountManager leaves it 0: the
    /// most key customers one manager serves well (the source material reports 1,500 and
    /// more per manager as too many).
    #[config(
        env = "IDIC_INTERACTION_MANAGER_DEFAULT_CAPACITY",
        default = 500,
        validate(*manager_default_capacity >= 1 && *manager_default_capacity <= 100_000, "must be from 1 to 100000")
    )]
    pub manager_default_capacity: u32,
}

impl Default for InteractionConfig {
    fn default() -> Self {
        Self { manager_default_capacity: 500 }
    }
}
