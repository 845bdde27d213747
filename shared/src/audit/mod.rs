//! Trail and bucket audit: best-practice checks and digest-chain validation.

pub mod checks;
pub mod digest;
pub mod state;
