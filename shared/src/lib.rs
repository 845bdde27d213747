//! trailwatch: the library behind the three Lambda functions and the `trailwatch` CLI.
//!
//! Crate map (any behaviour is two hops away: this map, then the module):
//! - [`config`]: `Config::from_env`, the only place that reads environment variables.
//! - [`model`]: typed CloudTrail records ([`model::Record`]), S3 keys ([`model::S3Key`]),
//!   EventBridge envelopes; parsed once, tolerant of every shape real logs have.
//! - [`ingest`]: streaming gunzip + record scanner over any `Read`; memory stays flat.
//! - [`detect`]: the Sigma rule engine and the bundled rule pack.
//! - [`correlate`]: stateful detections (Sigma correlations: bursts, sequences, ratios) over
//!   state behind the `ports::state::CorrelationState` port.
//! - [`suppress`]: the allow-list (suppressed findings are stored, never alerted) and alert
//!   grouping of repeated findings across invocations.
//! - [`findings`]: [`findings::Finding`], [`findings::Severity`], deterministic finding ids.
//! - [`audit`]: trail/bucket best-practice checks and digest-chain validation.
//! - [`ports`]: one trait per AWS service (`FindingStore`, `Notifier`, `ObjectSource`, ...),
//!   with in-memory implementations for tests and AWS SDK ones behind the `aws` feature.
//! - [`handler`]: per function, envelope -> domain -> `Ok`/`Err` (the retry decision).
//! - [`metrics`]: CloudWatch Embedded Metric Format lines.
//! - [`remediate`]: opt-in auto-remediation: which events to undo, and the finding recording it.
//!
//! Errors: one `thiserror` enum per module; each says whether it is retryable (throttling,
//! 5xx, timeouts) or permanent (bad input, missing object, access denied). Handlers turn
//! retryable errors into `Err` (Lambda retries) and permanent ones into a logged, counted `Ok`.

pub mod audit;
pub mod config;
pub mod correlate;
pub mod detect;
pub mod findings;
pub mod handler;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod ports;
pub mod remediate;
pub mod suppress;

pub use config::Config;
