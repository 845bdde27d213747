//! Configuration from the environment (being built).
/// Runtime configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {}
