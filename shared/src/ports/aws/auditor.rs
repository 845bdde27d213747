//! [`AuditPorts`]: the config-auditor's AWS ports, built once per cold start, and their
//! [`AuditorPorts`] implementation for the handler.

use aws_config::SdkConfig;

use super::audit_state::DynamoDbCheckStateStore;
use super::cloudtrail::CloudTrailSource;
use super::digest_s3::S3DigestSource;
use super::s3_audit::S3AuditSource;
use crate::config::Config;
use crate::handler::config_auditor::AuditorPorts;
use crate::ports::Notifier;

/// CloudTrail, S3/S3 Control, DynamoDB state and a notifier, sharing one SDK configuration.
#[derive(Debug, Clone)]
pub struct AuditPorts<N> {
    sdk: SdkConfig,
    trails: CloudTrailSource,
    buckets: S3AuditSource,
    state: DynamoDbCheckStateStore,
    notifier: N,
    region: String,
}

impl<N: Notifier> AuditPorts<N> {
    /// Builds the clients from `sdk` (state in `cfg.findings_table`) around `notifier`.
    pub fn new(cfg: &Config, sdk: &SdkConfig, notifier: N) -> Self {
        Self {
            sdk: sdk.clone(),
            trails: CloudTrailSource::new(sdk),
            buckets: S3AuditSource::new(sdk),
            state: DynamoDbCheckStateStore::new(sdk, cfg.findings_table.clone()),
            notifier,
            region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
        }
    }
}

impl<N: Notifier> AuditorPorts for AuditPorts<N> {
    type Trails = CloudTrailSource;
    type Buckets = S3AuditSource;
    type State = DynamoDbCheckStateStore;
    type Notifier = N;
    type Digests = S3DigestSource;

    fn trails(&self) -> &CloudTrailSource {
        &self.trails
    }
    fn buckets(&self) -> &S3AuditSource {
        &self.buckets
    }
    fn state(&self) -> &DynamoDbCheckStateStore {
        &self.state
    }
    fn notifier(&self) -> &N {
        &self.notifier
    }
    fn digest_source(&self, bucket: &str) -> S3DigestSource {
        S3DigestSource::new(&self.sdk, bucket)
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl AuditPorts<super::SnsNotifier> {
    /// The auditor's ports beside the shared [`super::Ports`] (same SDK configuration,
    /// retry and timeout policy; alerts through its SNS notifier).
    pub fn from_ports(cfg: &Config, ports: &super::Ports) -> Self {
        Self::new(cfg, ports.sdk_config(), ports.notifier.clone())
    }
}
