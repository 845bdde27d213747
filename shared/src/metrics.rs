//! CloudWatch Embedded Metric Format (being built).
