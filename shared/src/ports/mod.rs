//! ports (being built).
