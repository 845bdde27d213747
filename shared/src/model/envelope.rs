//! EventBridge envelopes carrying CloudTrail records in `detail`.
//!
//! Detail-type spellings vary (`AWS Console Sign In via CloudTrail` in rule patterns,
//! `AWS Console Signin via CloudTrail` in the EventBridge guide), so classification falls
//! back to `detail.eventType`/`eventCategory`, which CloudTrail always writes the same way.

use serde::Deserialize;
use serde_json::Value;

/// An EventBridge event (`version`, `id`, `detail-type`, `source`, `account`, `time`,
/// `region`, `resources`, `detail`).
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    /// EventBridge event id.
    #[serde(default)]
    pub id: Option<String>,
    /// `detail-type`.
    #[serde(rename = "detail-type", default)]
    pub detail_type: Option<String>,
    /// `source`, e.g. `aws.cloudtrail`, `aws.iam`, `aws.s3`.
    #[serde(default)]
    pub source: Option<String>,
    /// Account the event was delivered in.
    #[serde(default)]
    pub account: Option<String>,
    /// Region the event was delivered in.
    #[serde(default)]
    pub region: Option<String>,
    /// The payload: for CloudTrail detail-types, the CloudTrail record.
    #[serde(default)]
    pub detail: Option<Value>,
}

impl Envelope {
    /// Whether a JSON value looks like an EventBridge envelope.
    pub fn looks_like(v: &Value) -> bool {
        v.get("detail-type").is_some() && v.get("source").is_some()
    }

    /// What the envelope carries.
    pub fn kind(&self) -> DetailType {
        classify_detail_type(self.detail_type.as_deref(), self.detail.as_ref())
    }
}

/// What an EventBridge event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetailType {
    /// `AWS API Call via CloudTrail` (and the console's `Object-Level API call`).
    ApiCall,
    /// `AWS Console Sign In via CloudTrail` / `AWS Console Signin via CloudTrail`.
    ConsoleSignIn,
    /// `AWS Console Action via CloudTrail`.
    ConsoleAction,
    /// `AWS Service Event via CloudTrail`.
    ServiceEvent,
    /// `AWS Insight via CloudTrail`.
    Insight,
    /// Anything else (not a CloudTrail record), with its detail-type.
    Other(String),
}

impl DetailType {
    /// Whether `detail` is a CloudTrail record.
    pub fn is_cloudtrail(&self) -> bool {
        !matches!(self, DetailType::Other(_))
    }
}

/// Classify by detail-type, falling back to the record's `eventType`/`eventCategory`.
pub fn classify_detail_type(detail_type: Option<&str>, detail: Option<&Value>) -> DetailType {
    let dt = detail_type.unwrap_or_default();
    let norm: String = dt
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    match norm.as_str() {
        "awsapicallviacloudtrail" | "object-levelapicallviacloudtrail" => {
            return DetailType::ApiCall
        }
        "awsconsolesigninviacloudtrail" => return DetailType::ConsoleSignIn,
        "awsconsoleactionviacloudtrail" => return DetailType::ConsoleAction,
        "awsserviceeventviacloudtrail" => return DetailType::ServiceEvent,
        "awsinsightviacloudtrail" => return DetailType::Insight,
        _ => {}
    }
    let field = |k: &str| detail.and_then(|d| d.get(k)).and_then(Value::as_str);
    match (field("eventType"), field("eventCategory")) {
        (Some("AwsApiCall" | "AwsVpceEvent"), _) => DetailType::ApiCall,
        (Some("AwsConsoleSignIn"), _) => DetailType::ConsoleSignIn,
        (Some("AwsConsoleAction"), _) => DetailType::ConsoleAction,
        (Some("AwsServiceEvent"), _) => DetailType::ServiceEvent,
        (Some("AwsCloudTrailInsight"), _) | (_, Some("Insight")) => DetailType::Insight,
        _ => DetailType::Other(dt.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spellings_and_fallback() {
        assert_eq!(
            classify_detail_type(Some("AWS API Call via CloudTrail"), None),
            DetailType::ApiCall
        );
        assert_eq!(
            classify_detail_type(Some("AWS Console Sign In via CloudTrail"), None),
            DetailType::ConsoleSignIn
        );
        assert_eq!(
            classify_detail_type(Some("AWS Console Signin via CloudTrail"), None),
            DetailType::ConsoleSignIn
        );
        assert_eq!(
            classify_detail_type(Some("AWS Insight via CloudTrail"), None),
            DetailType::Insight
        );
        let d = json!({"eventType": "AwsServiceEvent"});
        assert_eq!(
            classify_detail_type(Some("Something new via CloudTrail"), Some(&d)),
            DetailType::ServiceEvent
        );
        let ec2 = classify_detail_type(
            Some("EC2 Instance State-change Notification"),
            Some(&json!({"state": "running"})),
        );
        assert!(!ec2.is_cloudtrail());
    }

    #[test]
    fn envelope_parses() {
        let v = json!({"version":"0","id":"x","detail-type":"AWS API Call via CloudTrail","source":"aws.iam","account":"111122223333","time":"2024-01-01T00:00:00Z","region":"us-east-1","resources":[],"detail":{"eventName":"CreateUser"}});
        assert!(Envelope::looks_like(&v));
        let e: Envelope = serde_json::from_value(v).unwrap();
        assert_eq!(e.kind(), DetailType::ApiCall);
        assert_eq!(e.detail.unwrap()["eventName"], "CreateUser");
    }
}
