//! AWS SDK implementations of the ports (feature `aws`).

mod remediate;
pub use remediate::AwsRemediator;
