//! Findings: what a rule (or an audit check) produced about one event or resource.
//!
//! Owns [`Severity`], [`Finding`] and the deterministic [`finding_id`]: the id depends only
//! on the rule id and the record's `eventID`, so the log-processor (S3 path) and the
//! event-handler (EventBridge path) store and alert the same finding once, whichever path
//! saw it first, and a retried delivery never creates a second one. This module does no I/O.

pub mod alert;
pub mod item;

use crate::model::Record;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Severity of a finding, ordered `Info < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational, never alerted by default.
    Info,
    /// Low.
    Low,
    /// Medium (the default alerting threshold).
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// All severities, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase name used on the wire (`info`, `low`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// One step lower (used for failed attempts of high-impact actions); `Info` stays `Info`.
    pub fn lowered(self) -> Severity {
        match self {
            Severity::Critical => Severity::High,
            Severity::High => Severity::Medium,
            Severity::Medium => Severity::Low,
            Severity::Low | Severity::Info => Severity::Info,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A severity name that is not one of `info|low|medium|high|critical`.
#[derive(Debug, thiserror::Error)]
#[error("unknown severity {0:?} (expected info, low, medium, high or critical)")]
pub struct ParseSeverityError(pub String);

impl FromStr for Severity {
    type Err = ParseSeverityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Sigma's `level` uses `informational`; accept it as well as our short names
        match s.trim().to_ascii_lowercase().as_str() {
            "info" | "informational" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            _ => Err(ParseSeverityError(s.to_owned())),
        }
    }
}

/// Deterministic finding id: hex SHA-256 of `rule_id NUL event_id`, first 32 hex chars.
pub fn finding_id(rule_id: &str, event_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(rule_id.as_bytes());
    h.update([0u8]);
    h.update(event_id.as_bytes());
    let digest = h.finalize();
    hex::encode(&digest[..16])
}

/// One finding: a rule matched a record (or an audit check failed on a resource).
///
/// Serialised (JSON lines, DynamoDB items, SNS bodies) with the field names of the CLI
/// contract: `rule_id`, `title`, `severity`, `event_id`, `event_name`, `event_time`,
/// `account_id`, `region`, `source`, plus the context below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Deterministic id, see [`finding_id`].
    pub id: String,
    /// Rule (or audit check) id.
    pub rule_id: String,
    /// Rule title.
    pub title: String,
    /// Severity after adjustments (failed attempts are lowered).
    pub severity: Severity,
    /// ATT&CK and other tags of the rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The record's `eventID` (or a synthesised id for records that lack one).
    pub event_id: String,
    /// `eventName`.
    pub event_name: String,
    /// `eventTime` as written in the record (RFC 3339 in real logs).
    pub event_time: String,
    /// `eventSource`, e.g. `cloudtrail.amazonaws.com`.
    pub event_source: String,
    /// Account the event belongs to (`recipientAccountId`, else `userIdentity.accountId`).
    pub account_id: String,
    /// `awsRegion`.
    pub region: String,
    /// Where the record came from: `s3://bucket/key`, `eventbridge`, a file path.
    pub source: String,
    /// Principal ARN (or best available identity) that made the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// `sourceIPAddress` as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// `errorCode` when the call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Correlation findings: when the episode starts (RFC 3339, UTC). A later flush may
    /// report the same episode (same id) showing a later event; stored items are keyed by
    /// this time, not `event_time`, so the episode stays one item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode_start: Option<String>,
}

impl Finding {
    /// Finding `rule_id` (`title`, `severity`, `tags`) about `record`, read from `source`:
    /// its id and every event field come from the record (a record without an `eventID`
    /// gets the digest id of [`Record::event_id_or_digest`], as on every path).
    pub fn about(
        record: &Record,
        source: &str,
        rule_id: String,
        title: String,
        severity: Severity,
        tags: Vec<String>,
    ) -> Finding {
        use crate::detect::Event;
        let event_id = record.event_id_or_digest();
        Finding {
            episode_start: None,
            id: finding_id(&rule_id, &event_id),
            rule_id,
            title,
            severity,
            tags,
            event_id,
            event_name: record.event_name().unwrap_or_default().to_owned(),
            event_time: record.event_time_str().unwrap_or_default().to_owned(),
            event_source: record.event_source().unwrap_or_default().to_owned(),
            account_id: record.account_id().unwrap_or_default().to_owned(),
            region: record.region().unwrap_or_default().to_owned(),
            source: source.to_owned(),
            principal: record.principal(),
            source_ip: record.source_ip().map(str::to_owned),
            error_code: record.error_code().map(str::to_owned),
        }
    }

    /// Whether the underlying call failed (a failed attempt).
    pub fn is_failed_attempt(&self) -> bool {
        self.error_code.as_deref().is_some_and(|c| !c.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = finding_id("aws-cloudtrail-stop-logging", "e1");
        assert_eq!(a, finding_id("aws-cloudtrail-stop-logging", "e1"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, finding_id("aws-cloudtrail-stop-logging", "e2"));
        // the separator keeps ("ab","c") and ("a","bc") apart
        assert_ne!(finding_id("ab", "c"), finding_id("a", "bc"));
    }

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Info);
        assert_eq!(
            "informational".parse::<Severity>().ok(),
            Some(Severity::Info)
        );
        assert_eq!("HIGH".parse::<Severity>().ok(), Some(Severity::High));
        assert!("urgent".parse::<Severity>().is_err());
        assert_eq!(Severity::High.lowered(), Severity::Medium);
        assert_eq!(Severity::Info.lowered(), Severity::Info);
    }
}
