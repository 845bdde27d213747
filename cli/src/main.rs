//! The `trailwatch` command line (being built).
fn main() {}
