//! handler (being built).
