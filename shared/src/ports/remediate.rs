//! The [`Remediator`] port: the three write actions auto-remediation may take, and
//! [`FindingLookup`], the read that keeps remediation idempotent under duplicate delivery
//! (remediators implement it over the findings table, where remediations are recorded).
//!
//! Each action is idempotent on the AWS side (starting a trail that logs, putting an
//! all-true public access block, deactivating an inactive key change nothing), which is
//! what makes "act, then record" safe to retry. This module decides nothing: when to act
//! lives in [`crate::remediate`]. [`MemRemediator`] records calls for tests; the SDK
//! implementation is `ports::aws::AwsRemediator` (feature `aws`).

use super::memory::MemFindingStore;
use super::PortError;
use crate::findings::Finding;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Writes that undo a tampering action.
pub trait Remediator: Send + Sync {
    /// The ARN the remediator acts as (STS `GetCallerIdentity` at cold start), so events
    /// caused by its own calls are recognised and never remediated again.
    fn acting_as(&self) -> &str;

    /// CloudTrail `StartLogging` on a trail (name or ARN).
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter (`TrailNotFoundException` is `NotFound`).
    fn start_logging(&self, trail: &str) -> impl Future<Output = Result<(), PortError>> + Send;

    /// S3 `PutPublicAccessBlock` on `bucket` with all four flags true.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter (`NoSuchBucket` is `NotFound`).
    fn restore_public_access_block(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// IAM `UpdateAccessKey` with `Status=Inactive`.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter (`NoSuchEntity` is `NotFound`).
    fn deactivate_access_key(
        &self,
        user_name: &str,
        access_key_id: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Whether a finding is already stored (by its deterministic id).
pub trait FindingLookup: Send + Sync {
    /// Whether `finding` (same id, same keys) is stored.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn contains(&self, finding: &Finding) -> impl Future<Output = Result<bool, PortError>> + Send;
}

impl FindingLookup for MemFindingStore {
    async fn contains(&self, finding: &Finding) -> Result<bool, PortError> {
        Ok(self.findings().iter().any(|f| f.id == finding.id))
    }
}

impl FindingLookup for MemRemediator {
    async fn contains(&self, finding: &Finding) -> Result<bool, PortError> {
        match &self.ledger {
            Some(store) => store.contains(finding).await,
            None => Ok(false),
        }
    }
}

/// One call a [`MemRemediator`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `start_logging(trail)`.
    StartLogging(String),
    /// `restore_public_access_block(bucket)`.
    RestorePublicAccessBlock(String),
    /// `deactivate_access_key(user, key)`.
    DeactivateAccessKey(String, String),
}

/// Records calls in memory; can be told to fail the next calls. Its [`FindingLookup`]
/// reads the [`MemFindingStore`] attached with [`MemRemediator::with_ledger`] (the store
/// findings are delivered to), as the AWS one reads the findings table.
#[derive(Debug, Clone)]
pub struct MemRemediator {
    acting_as: String,
    calls: Arc<Mutex<Vec<Call>>>,
    fail_next: Arc<Mutex<Vec<PortError>>>,
    ledger: Option<MemFindingStore>,
}

impl MemRemediator {
    /// A remediator acting as `acting_as` (an STS caller ARN).
    pub fn new(acting_as: impl Into<String>) -> Self {
        MemRemediator {
            acting_as: acting_as.into(),
            calls: Arc::default(),
            fail_next: Arc::default(),
            ledger: None,
        }
    }

    /// Look remediation findings up in `store` (a clone shares its contents).
    pub fn with_ledger(mut self, store: MemFindingStore) -> Self {
        self.ledger = Some(store);
        self
    }

    /// Every successful call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Make the next calls fail with these errors, in order.
    pub fn fail_next(&self, errors: Vec<PortError>) {
        if let Ok(mut f) = self.fail_next.lock() {
            *f = errors;
        }
    }

    fn record(&self, op: &'static str, call: Call) -> Result<(), PortError> {
        let poisoned = || PortError::Permanent {
            op,
            message: "in-memory remediator lock poisoned".into(),
        };
        {
            let mut f = self.fail_next.lock().map_err(|_| poisoned())?;
            if !f.is_empty() {
                return Err(f.remove(0));
            }
        }
        self.calls.lock().map_err(|_| poisoned())?.push(call);
        Ok(())
    }
}

impl Remediator for MemRemediator {
    fn acting_as(&self) -> &str {
        &self.acting_as
    }

    async fn start_logging(&self, trail: &str) -> Result<(), PortError> {
        self.record("StartLogging", Call::StartLogging(trail.into()))
    }

    async fn restore_public_access_block(&self, bucket: &str) -> Result<(), PortError> {
        self.record(
            "PutPublicAccessBlock",
            Call::RestorePublicAccessBlock(bucket.into()),
        )
    }

    async fn deactivate_access_key(
        &self,
        user_name: &str,
        access_key_id: &str,
    ) -> Result<(), PortError> {
        self.record(
            "UpdateAccessKey",
            Call::DeactivateAccessKey(user_name.into(), access_key_id.into()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::FindingStore;

    #[tokio::test]
    async fn mem_remediator_records_and_fails_on_demand() {
        let r = MemRemediator::new("arn:aws:sts::1:assumed-role/r/f");
        assert_eq!(r.acting_as(), "arn:aws:sts::1:assumed-role/r/f");
        r.start_logging("main").await.unwrap();
        r.fail_next(vec![PortError::Transient {
            op: "PutPublicAccessBlock",
            message: "SlowDown".into(),
        }]);
        assert!(r
            .restore_public_access_block("b")
            .await
            .unwrap_err()
            .is_retryable());
        r.restore_public_access_block("b").await.unwrap();
        r.deactivate_access_key("bob", "AKIA1").await.unwrap();
        assert_eq!(
            r.calls(),
            [
                Call::StartLogging("main".into()),
                Call::RestorePublicAccessBlock("b".into()),
                Call::DeactivateAccessKey("bob".into(), "AKIA1".into()),
            ]
        );
    }

    #[tokio::test]
    async fn mem_lookup_sees_stored_findings() {
        let s = MemFindingStore::default();
        let f = Finding {
            episode_start: None,
            id: "abc".into(),
            rule_id: "r".into(),
            title: "t".into(),
            severity: crate::findings::Severity::High,
            tags: vec![],
            event_id: "e".into(),
            event_name: "StopLogging".into(),
            event_time: "2024-01-01T00:00:00Z".into(),
            event_source: "cloudtrail.amazonaws.com".into(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            source: "eventbridge".into(),
            principal: None,
            source_ip: None,
            error_code: None,
        };
        assert!(!s.contains(&f).await.unwrap());
        s.put(&f).await.unwrap();
        assert!(s.contains(&f).await.unwrap());
        let r = MemRemediator::new("arn:aws:sts::1:assumed-role/r/f");
        assert!(!r.contains(&f).await.unwrap());
        assert!(r.with_ledger(s).contains(&f).await.unwrap());
    }
}
