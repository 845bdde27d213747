//! AWS SDK implementations of the ports (feature `aws`).
//!
//! [`Ports`] builds the log-processor's and event-handler's adapters once per cold start
//! from one `SdkConfig` (so `AWS_ENDPOINT_URL` and the region come from the environment in
//! Lambda, and tests pass a moto endpoint explicitly). SDK retries are configured here once
//! for every client: standard mode, [`MAX_ATTEMPTS`] attempts, each call bounded by
//! [`OPERATION_TIMEOUT`] so retries cannot outlive the invocation. Every adapter turns SDK
//! errors into [`crate::ports::PortError`] with `classify` (in `classify.rs`); no SDK type leaves
//! this module. Other adapters live beside these, one file each.

mod classify;
mod dynamodb;
mod s3;
mod sns;
pub use dynamodb::DynamoDbFindingStore;
pub use s3::S3ObjectSource;
pub use sns::SnsNotifier;

use crate::Config;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// Attempts per SDK call (the first try and up to four retries, with backoff).
pub const MAX_ATTEMPTS: u32 = 5;
/// Upper bound of one SDK call including its retries (a `GetObject` returns once the
/// headers arrive; its body is streamed afterwards, guarded by stalled-stream protection).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound of one attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Connection establishment bound.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The retry policy every client uses.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

/// The timeouts every client uses.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .operation_timeout(OPERATION_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
}

/// The AWS adapters of the log-processor and the event-handler.
#[derive(Debug, Clone)]
pub struct Ports {
    /// S3 `GetObject`.
    pub objects: S3ObjectSource,
    /// The findings table.
    pub store: DynamoDbFindingStore,
    /// The alerts topic.
    pub notifier: SnsNotifier,
    /// Correlation state, in the findings table.
    pub state: DynamoDbCorrelationState,
    sdk: SdkConfig,
}

impl Ports {
    /// Load the SDK configuration from the environment (region, credentials,
    /// `AWS_ENDPOINT_URL`) and build every adapter.
    pub async fn load(cfg: &Config) -> Ports {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(retry_config())
            .timeout_config(timeout_config())
            .load()
            .await;
        Ports::from_sdk_config(&sdk, cfg)
    }

    /// Build every adapter from `sdk` (tests point it at moto). The retry and timeout
    /// policy is applied here too, whatever `sdk` says.
    pub fn from_sdk_config(sdk: &SdkConfig, cfg: &Config) -> Ports {
        let sdk = sdk
            .to_builder()
            .retry_config(retry_config())
            .timeout_config(timeout_config())
            .build();
        // a custom endpoint (moto, LocalStack) has no per-bucket DNS names: path style
        let s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        Ports {
            objects: S3ObjectSource::new(aws_sdk_s3::Client::from_conf(s3)),
            store: DynamoDbFindingStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                &cfg.findings_table,
                cfg.retention_days,
                cfg.max_in_flight,
            ),
            notifier: SnsNotifier::new(aws_sdk_sns::Client::new(&sdk), &cfg.alerts_topic_arn),
            state: DynamoDbCorrelationState::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                &cfg.findings_table,
            ),
            sdk,
        }
    }

    /// The SDK configuration the adapters were built from, for other adapters.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.sdk
    }
}

mod remediate;
pub use remediate::AwsRemediator;

mod audit_state;
mod auditor;
mod cloudtrail;
mod s3_audit;
pub use audit_state::DynamoDbCheckStateStore;
pub use auditor::AuditPorts;
pub use cloudtrail::CloudTrailSource;
pub use s3_audit::S3AuditSource;
mod digest_s3;
pub use digest_s3::S3DigestSource;

mod state;
pub use state::DynamoDbCorrelationState;
