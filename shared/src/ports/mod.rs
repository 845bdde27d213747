//! Ports: one small trait per AWS service the functions use, and their implementations.
//!
//! - [`ObjectSource`]: read an object as a byte stream (S3 `GetObject`).
//! - [`FindingStore`]: store a finding exactly once, remember whether it was alerted
//!   (DynamoDB conditional `PutItem`).
//! - [`Notifier`]: publish alerts (SNS `PublishBatch`).
//! - [`remediate::Remediator`]: the auto-remediation writes (CloudTrail, S3, IAM).
//!
//! [`memory`] holds the in-memory implementations used by unit tests and the CLI;
//! `aws` (feature `aws`) holds the SDK ones. No SDK type crosses this module's boundary:
//! adapters translate SDK errors into the errors below, each knowing if it is retryable.

pub mod memory;
pub mod memory_state;
pub mod remediate;
pub mod state;
pub mod trail;

#[cfg(feature = "aws")]
pub mod aws;

use crate::findings::{Finding, Severity};
use std::future::Future;
use std::pin::Pin;
use tokio::io::AsyncRead;

/// An error from an AWS call, classified once by the adapter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Throttling, 5xx, timeouts, connection failures: retrying may succeed.
    #[error("transient failure calling {op}: {message}")]
    Transient {
        /// The API operation.
        op: &'static str,
        /// What the service or the client said.
        message: String,
    },
    /// The object or resource does not exist (`NoSuchKey`, `ResourceNotFoundException`).
    #[error("{op}: not found: {message}")]
    NotFound {
        /// The API operation.
        op: &'static str,
        /// What.
        message: String,
    },
    /// Access denied, validation errors, anything retrying will not fix.
    #[error("permanent failure calling {op}: {message}")]
    Permanent {
        /// The API operation.
        op: &'static str,
        /// What the service said.
        message: String,
    },
}

impl PortError {
    /// Whether retrying the invocation may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PortError::Transient { .. })
    }
}

/// An object's bytes as an async stream (never collected into memory).
pub struct ObjectBody {
    /// `Content-Length`, when known.
    pub size: Option<u64>,
    /// The body.
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
}

impl std::fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBody")
            .field("size", &self.size)
            .finish()
    }
}

/// Reads objects (S3 `GetObject`).
pub trait ObjectSource: Send + Sync {
    /// Open `bucket`/`key` for streaming.
    ///
    /// # Errors
    /// [`PortError::NotFound`] when the object is gone (deleted after the notification),
    /// [`PortError::Transient`] for throttling/5xx/timeouts, [`PortError::Permanent`] else.
    fn open(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<ObjectBody, PortError>> + Send;
}

/// What a conditional put found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The finding is new: it was written, not alerted yet.
    Created,
    /// The finding existed; `alerted` tells whether its alert went out, so a retry after a
    /// failed publish alerts it then, and a retry after a successful one does not.
    Duplicate {
        /// Whether the stored finding is marked alerted.
        alerted: bool,
    },
}

/// A finding as stored: the finding, plus the record it came from and the log object.
///
/// The store keeps a (size-capped) copy of the record so an analyst can read the event
/// without going back to the log files, which may have expired by then.
#[derive(Debug, Clone, Copy)]
pub struct StoredFinding<'a> {
    /// The finding.
    pub finding: &'a Finding,
    /// The record's JSON text, if the caller has it.
    pub record_json: Option<&'a str>,
    /// The log object's key (S3 path only).
    pub object_key: Option<&'a str>,
}

impl<'a> From<&'a Finding> for StoredFinding<'a> {
    fn from(finding: &'a Finding) -> Self {
        StoredFinding {
            finding,
            record_json: None,
            object_key: None,
        }
    }
}

/// Stores findings exactly once (DynamoDB `PutItem` with `attribute_not_exists(pk)`).
pub trait FindingStore: Send + Sync {
    /// Store one finding (with its record copy) unless a finding with the same id exists.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn put_stored(
        &self,
        item: StoredFinding<'_>,
    ) -> impl Future<Output = Result<Put, PortError>> + Send;

    /// Store one finding without a record copy; see [`FindingStore::put_stored`].
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn put(&self, finding: &Finding) -> impl Future<Output = Result<Put, PortError>> + Send {
        self.put_stored(StoredFinding::from(finding))
    }

    /// Record that the alert for these findings was published.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn mark_alerted(
        &self,
        findings: &[&Finding],
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Record that these findings belong to an alert group (attribute `group_id`) and need
    /// no alert of their own (`alerted`): either their group alert was published, or they
    /// are followers (`grouped`), counted in their leader's alert.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn mark_grouped(
        &self,
        marks: &[GroupMark<'_>],
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// One finding's membership of an alert group ([`FindingStore::mark_grouped`]).
#[derive(Debug, Clone, Copy)]
pub struct GroupMark<'a> {
    /// The finding.
    pub finding: &'a Finding,
    /// Its group's id (`crate::suppress::group::GroupKey::id`).
    pub group_id: &'a str,
    /// A follower: never alerted itself, counted in the group leader's alert.
    pub follower: bool,
}

/// One alert message.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Subject line (≤ 100 characters, no newlines: SNS's limit for email subjects).
    pub subject: String,
    /// JSON body.
    pub body: String,
    /// Severity, also a message attribute.
    pub severity: Severity,
    /// Rule id, also a message attribute.
    pub rule_id: String,
    /// Account id, also a message attribute.
    pub account_id: String,
    /// Stable id (finding id or group id) so subscribers can deduplicate.
    pub id: String,
}

/// Publishes alerts (SNS).
pub trait Notifier: Send + Sync {
    /// Publish every alert (batched by the adapter).
    ///
    /// # Errors
    /// [`PortError`] when any alert could not be published after retries.
    fn publish(&self, alerts: &[Alert]) -> impl Future<Output = Result<(), PortError>> + Send;
}
