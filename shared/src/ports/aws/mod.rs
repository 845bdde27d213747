//! AWS SDK implementations of the ports (feature `aws`).
