//! Ports of the config-auditor: what it reads about trails ([`TrailSource`], CloudTrail),
//! about their buckets and the account ([`BucketAuditSource`], S3 and S3 Control), and
//! where it keeps each check's last result ([`CheckStateStore`], DynamoDB).
//!
//! The types here are plain data answers, no SDK type: the adapters in `ports::aws`
//! translate, the in-memory [`MemTrailSource`], [`MemBucketAuditSource`] and
//! [`MemCheckStateStore`] serve unit tests. "Not configured" answers (no bucket policy, no
//! public access block, no lifecycle) are `Ok(None)`, never errors: the checks decide what
//! an absent setting means. Errors are [`PortError`]s classified by the adapter.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::PortError;
use crate::findings::{Finding, Severity};

/// One trail as `DescribeTrails(includeShadowTrails=true)` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrailInfo {
    /// `Name`.
    pub name: String,
    /// `TrailARN` (its region is the home region).
    pub arn: String,
    /// `HomeRegion`.
    pub home_region: String,
    /// `S3BucketName`.
    pub s3_bucket: Option<String>,
    /// `S3KeyPrefix`.
    pub s3_key_prefix: Option<String>,
    /// `IsMultiRegionTrail`.
    pub is_multi_region: bool,
    /// `IncludeGlobalServiceEvents`.
    pub include_global_service_events: bool,
    /// `LogFileValidationEnabled`.
    pub log_file_validation: bool,
    /// `KmsKeyId` (a key ARN, or an alias ARN).
    pub kms_key_id: Option<String>,
    /// `CloudWatchLogsLogGroupArn`.
    pub cloudwatch_logs_log_group_arn: Option<String>,
    /// `IsOrganizationTrail`.
    pub is_organization_trail: bool,
    /// `HasInsightSelectors`.
    pub has_insight_selectors: bool,
}

impl TrailInfo {
    /// The account in the trail ARN (`arn:aws:cloudtrail:<region>:<account>:trail/<name>`).
    pub fn account(&self) -> Option<&str> {
        self.arn.split(':').nth(4).filter(|a| !a.is_empty())
    }
}

/// `GetTrailStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrailStatus {
    /// `IsLogging`.
    pub is_logging: bool,
    /// `LatestDeliveryTime`: last log file delivered to the bucket.
    pub latest_delivery_time: Option<OffsetDateTime>,
    /// `LatestDeliveryError` (S3 error text) when the last delivery failed.
    pub latest_delivery_error: Option<String>,
    /// `LatestDigestDeliveryTime`.
    pub latest_digest_delivery_time: Option<OffsetDateTime>,
    /// `LatestDigestDeliveryError`.
    pub latest_digest_delivery_error: Option<String>,
    /// `LatestCloudWatchLogsDeliveryTime`.
    pub latest_cloudwatch_logs_delivery_time: Option<OffsetDateTime>,
    /// `LatestCloudWatchLogsDeliveryError`.
    pub latest_cloudwatch_logs_delivery_error: Option<String>,
}

/// `ReadWriteType` of a basic event selector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadWriteType {
    /// `ReadOnly`.
    ReadOnly,
    /// `WriteOnly`.
    WriteOnly,
    /// `All` (also the API default).
    #[default]
    All,
}

/// A `DataResources` entry of a basic selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataResource {
    /// `Type`, e.g. `AWS::S3::Object`.
    pub kind: String,
    /// `Values`: ARN prefixes (`arn:aws:s3` = every bucket, `arn:aws:s3:::bucket/` = one).
    pub values: Vec<String>,
}

/// A basic `EventSelectors` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BasicSelector {
    /// `ReadWriteType`.
    pub read_write: ReadWriteType,
    /// `IncludeManagementEvents`.
    pub include_management_events: bool,
    /// `ExcludeManagementEventSources`.
    pub exclude_management_event_sources: Vec<String>,
    /// `DataResources`.
    pub data_resources: Vec<DataResource>,
}

/// One field condition of an advanced selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// `Field`: `eventCategory`, `readOnly`, `resources.type`, `resources.ARN`, `eventSource`...
    pub field: String,
    /// `Equals`.
    pub equals: Vec<String>,
    /// `StartsWith`.
    pub starts_with: Vec<String>,
    /// `EndsWith`.
    pub ends_with: Vec<String>,
    /// `NotEquals`.
    pub not_equals: Vec<String>,
    /// `NotStartsWith`.
    pub not_starts_with: Vec<String>,
    /// `NotEndsWith`.
    pub not_ends_with: Vec<String>,
}

/// An `AdvancedEventSelectors` entry: every field condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdvancedSelector {
    /// `Name`.
    pub name: Option<String>,
    /// `FieldSelectors`.
    pub fields: Vec<FieldSelector>,
}

/// `GetEventSelectors`: a trail uses basic or advanced selectors, never both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSelectors {
    /// `EventSelectors`.
    pub basic: Vec<BasicSelector>,
    /// `AdvancedEventSelectors`.
    pub advanced: Vec<AdvancedSelector>,
}

/// One CloudTrail public key (`ListPublicKeys`), DER as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyEntry {
    /// `Value`: DER bytes (PKCS#1 or SubjectPublicKeyInfo).
    pub der: Vec<u8>,
    /// `Fingerprint`.
    pub fingerprint: String,
    /// `ValidityStartTime`.
    pub valid_from: Option<OffsetDateTime>,
    /// `ValidityEndTime`.
    pub valid_until: Option<OffsetDateTime>,
}

/// CloudTrail reads.
pub trait TrailSource: Send + Sync {
    /// `DescribeTrails` with shadow trails (trails of other regions, organization trails).
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn describe_trails(&self) -> impl Future<Output = Result<Vec<TrailInfo>, PortError>> + Send;

    /// `GetTrailStatus` of a trail (by ARN: works for shadow trails too).
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn trail_status(
        &self,
        trail_arn: &str,
    ) -> impl Future<Output = Result<TrailStatus, PortError>> + Send;

    /// `GetEventSelectors`.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn event_selectors(
        &self,
        trail_arn: &str,
    ) -> impl Future<Output = Result<EventSelectors, PortError>> + Send;

    /// `GetInsightSelectors`: the insight types enabled (empty when none).
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter ("no insight selectors" is `Ok(vec![])`).
    fn insight_selectors(
        &self,
        trail_arn: &str,
    ) -> impl Future<Output = Result<Vec<String>, PortError>> + Send;

    /// `ListPublicKeys` in `region` for `[start, end]` (each region signs its digests with
    /// its own key).
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn list_public_keys(
        &self,
        region: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<PublicKeyEntry>, PortError>> + Send;
}

/// A grant of a bucket ACL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclGrant {
    /// `Grantee.URI` for group grantees (`.../global/AllUsers`, `.../AuthenticatedUsers`).
    pub grantee_uri: Option<String>,
    /// `Grantee.ID` / email / display name, for the detail text.
    pub grantee: Option<String>,
    /// `Permission`.
    pub permission: String,
}

/// The four public access block flags (bucket or account).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublicAccessBlock {
    /// `BlockPublicAcls`.
    pub block_public_acls: bool,
    /// `IgnorePublicAcls`.
    pub ignore_public_acls: bool,
    /// `BlockPublicPolicy`.
    pub block_public_policy: bool,
    /// `RestrictPublicBuckets`.
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    /// All four flags on.
    pub fn is_complete(&self) -> bool {
        self.block_public_acls
            && self.ignore_public_acls
            && self.block_public_policy
            && self.restrict_public_buckets
    }

    /// The names of the flags that are off.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            (self.block_public_acls, "BlockPublicAcls"),
            (self.ignore_public_acls, "IgnorePublicAcls"),
            (self.block_public_policy, "BlockPublicPolicy"),
            (self.restrict_public_buckets, "RestrictPublicBuckets"),
        ]
        .into_iter()
        .filter(|(on, _)| !on)
        .map(|(_, n)| n)
        .collect()
    }
}

/// `GetBucketVersioning`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versioning {
    /// `Status`: `Enabled`, `Suspended`, or absent (never enabled).
    pub status: Option<String>,
    /// `MFADelete`: `Enabled`, `Disabled`, or absent.
    pub mfa_delete: Option<String>,
}

/// `GetBucketLogging` target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoggingTarget {
    /// `TargetBucket`.
    pub bucket: String,
    /// `TargetPrefix`.
    pub prefix: String,
}

/// One lifecycle rule, reduced to what retention depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleRule {
    /// `ID`.
    pub id: Option<String>,
    /// `Status` is `Enabled`.
    pub enabled: bool,
    /// The key prefix the rule applies to (`Filter.Prefix`, `Filter.And.Prefix` or the
    /// legacy `Prefix`); empty = every object.
    pub prefix: String,
    /// `Expiration.Days`.
    pub expiration_days: Option<i32>,
    /// `Expiration.Date` is set (deletes everything from that date on).
    pub expiration_date: bool,
    /// `NoncurrentVersionExpiration.NoncurrentDays`.
    pub noncurrent_expiration_days: Option<i32>,
}

/// `GetBucketEncryption` default rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketEncryption {
    /// `SSEAlgorithm`: `AES256`, `aws:kms`, `aws:kms:dsse`.
    pub algorithm: String,
    /// `KMSMasterKeyID`.
    pub kms_key_id: Option<String>,
}

/// S3 and S3 Control reads about the trail bucket and the account.
pub trait BucketAuditSource: Send + Sync {
    /// `GetBucketAcl` grants.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter (`NoSuchBucket` is `NotFound`).
    fn bucket_acl(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Vec<AclGrant>, PortError>> + Send;

    /// `GetBucketPolicy` document; `None` when the bucket has no policy.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn bucket_policy(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Option<String>, PortError>> + Send;

    /// `GetBucketPolicyStatus.IsPublic`; `None` when the bucket has no policy.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn bucket_policy_is_public(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Option<bool>, PortError>> + Send;

    /// `GetPublicAccessBlock` of the bucket; `None` when none is configured.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn bucket_public_access_block(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Option<PublicAccessBlock>, PortError>> + Send;

    /// S3 Control `GetPublicAccessBlock` of the account; `None` when none is configured.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn account_public_access_block(
        &self,
        account_id: &str,
    ) -> impl Future<Output = Result<Option<PublicAccessBlock>, PortError>> + Send;

    /// `GetBucketVersioning`.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn bucket_versioning(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Versioning, PortError>> + Send;

    /// `GetBucketLogging`; `None` when server access logging is off.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn bucket_logging(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Option<LoggingTarget>, PortError>> + Send;

    /// `GetBucketLifecycleConfiguration` rules; empty when none is configured.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn bucket_lifecycle(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Vec<LifecycleRule>, PortError>> + Send;

    /// `GetBucketEncryption`; `None` when no default encryption is configured.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn bucket_encryption(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Option<BucketEncryption>, PortError>> + Send;

    /// The "folders" directly under `prefix` (`ListObjectsV2` with delimiter `/`), e.g.
    /// the regions under `AWSLogs/<account>/CloudTrail-Digest/`.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn list_subfolders(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, PortError>> + Send;
}

/// The outcome of one check on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Compliant.
    Pass,
    /// Not compliant.
    Fail,
    /// Could not be evaluated (access denied, resource unreadable).
    Unknown,
}

impl CheckStatus {
    /// `pass`, `fail`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::Unknown => "unknown",
        }
    }

    /// Parses [`CheckStatus::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pass" => Some(CheckStatus::Pass),
            "fail" => Some(CheckStatus::Fail),
            "unknown" => Some(CheckStatus::Unknown),
            _ => None,
        }
    }
}

/// The stored last result of one check on one resource (item `pk = AUDIT#<check id>`,
/// `sk = <resource>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckState {
    /// Check id.
    pub check_id: String,
    /// Resource (trail ARN, bucket name, account id, digest key).
    pub resource: String,
    /// Last status.
    pub status: CheckStatus,
    /// When the check entered this status.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// When the check last ran on this resource.
    #[serde(with = "time::serde::rfc3339")]
    pub last_run: OffsetDateTime,
    /// Why (the failing detail, or the reason it could not be evaluated).
    pub detail: String,
    /// Severity of the check.
    pub severity: Severity,
    /// The finding, for failing and unknown results.
    pub finding: Option<Finding>,
}

/// Remembers each check's last result and the date of the last daily digest.
pub trait CheckStateStore: Send + Sync {
    /// Every stored state of `check_id` (a DynamoDB `Query` on `pk = AUDIT#<check id>`).
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn load(
        &self,
        check_id: &str,
    ) -> impl Future<Output = Result<Vec<CheckState>, PortError>> + Send;

    /// Write (replace) these states.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn save(&self, states: &[CheckState]) -> impl Future<Output = Result<(), PortError>> + Send;

    /// The UTC date (`YYYY-MM-DD`) the last daily digest was sent, if any.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn last_digest_date(&self) -> impl Future<Output = Result<Option<String>, PortError>> + Send;

    /// Remember that the daily digest of `date` was sent.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn set_last_digest_date(
        &self,
        date: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

fn poisoned(op: &'static str) -> PortError {
    PortError::Permanent {
        op,
        message: "in-memory lock poisoned".into(),
    }
}

/// Scripted answers for [`TrailSource`]: each map holds the answer per trail ARN (an `Err`
/// to simulate a denied or throttled call); missing entries answer `NotFound`.
#[derive(Debug, Clone, Default)]
pub struct MemTrailSource {
    /// `DescribeTrails`.
    pub trails: Vec<TrailInfo>,
    /// `GetTrailStatus` per ARN.
    pub status: HashMap<String, Result<TrailStatus, PortError>>,
    /// `GetEventSelectors` per ARN.
    pub selectors: HashMap<String, Result<EventSelectors, PortError>>,
    /// `GetInsightSelectors` per ARN (missing = none).
    pub insights: HashMap<String, Result<Vec<String>, PortError>>,
    /// `ListPublicKeys` per region.
    pub public_keys: HashMap<String, Vec<PublicKeyEntry>>,
}

fn scripted<T: Clone>(
    m: &HashMap<String, Result<T, PortError>>,
    key: &str,
    op: &'static str,
) -> Result<T, PortError> {
    m.get(key).cloned().unwrap_or_else(|| {
        Err(PortError::NotFound {
            op,
            message: key.to_owned(),
        })
    })
}

impl TrailSource for MemTrailSource {
    async fn describe_trails(&self) -> Result<Vec<TrailInfo>, PortError> {
        Ok(self.trails.clone())
    }
    async fn trail_status(&self, arn: &str) -> Result<TrailStatus, PortError> {
        scripted(&self.status, arn, "GetTrailStatus")
    }
    async fn event_selectors(&self, arn: &str) -> Result<EventSelectors, PortError> {
        scripted(&self.selectors, arn, "GetEventSelectors")
    }
    async fn insight_selectors(&self, arn: &str) -> Result<Vec<String>, PortError> {
        self.insights.get(arn).cloned().unwrap_or(Ok(Vec::new()))
    }
    async fn list_public_keys(
        &self,
        region: &str,
        _start: OffsetDateTime,
        _end: OffsetDateTime,
    ) -> Result<Vec<PublicKeyEntry>, PortError> {
        Ok(self.public_keys.get(region).cloned().unwrap_or_default())
    }
}

/// Scripted answers for [`BucketAuditSource`] for one bucket and one account; `deny`
/// lists operations (e.g. `GetBucketPolicy`) that answer `AccessDenied`.
#[derive(Debug, Clone, Default)]
pub struct MemBucketAuditSource {
    /// The only bucket that exists.
    pub bucket: String,
    /// ACL grants.
    pub acl: Vec<AclGrant>,
    /// Policy document.
    pub policy: Option<String>,
    /// Policy status.
    pub policy_is_public: Option<bool>,
    /// Bucket public access block.
    pub bucket_pab: Option<PublicAccessBlock>,
    /// Account public access block.
    pub account_pab: Option<PublicAccessBlock>,
    /// Versioning.
    pub versioning: Versioning,
    /// Server access logging.
    pub logging: Option<LoggingTarget>,
    /// Lifecycle rules.
    pub lifecycle: Vec<LifecycleRule>,
    /// Default encryption.
    pub encryption: Option<BucketEncryption>,
    /// Object keys (for `list_subfolders`).
    pub keys: Vec<String>,
    /// Operations answering `AccessDenied`.
    pub deny: Vec<&'static str>,
}

impl MemBucketAuditSource {
    fn gate(&self, op: &'static str, bucket: &str) -> Result<(), PortError> {
        if self.deny.contains(&op) {
            return Err(PortError::Permanent {
                op,
                message: "AccessDenied: Access Denied".into(),
            });
        }
        if bucket != self.bucket && op != "GetPublicAccessBlock(account)" {
            return Err(PortError::NotFound {
                op,
                message: format!("NoSuchBucket: {bucket}"),
            });
        }
        Ok(())
    }
}

impl BucketAuditSource for MemBucketAuditSource {
    async fn bucket_acl(&self, bucket: &str) -> Result<Vec<AclGrant>, PortError> {
        self.gate("GetBucketAcl", bucket)?;
        Ok(self.acl.clone())
    }
    async fn bucket_policy(&self, bucket: &str) -> Result<Option<String>, PortError> {
        self.gate("GetBucketPolicy", bucket)?;
        Ok(self.policy.clone())
    }
    async fn bucket_policy_is_public(&self, bucket: &str) -> Result<Option<bool>, PortError> {
        self.gate("GetBucketPolicyStatus", bucket)?;
        Ok(self.policy_is_public)
    }
    async fn bucket_public_access_block(
        &self,
        bucket: &str,
    ) -> Result<Option<PublicAccessBlock>, PortError> {
        self.gate("GetPublicAccessBlock", bucket)?;
        Ok(self.bucket_pab)
    }
    async fn account_public_access_block(
        &self,
        account: &str,
    ) -> Result<Option<PublicAccessBlock>, PortError> {
        self.gate("GetPublicAccessBlock(account)", account)?;
        Ok(self.account_pab)
    }
    async fn bucket_versioning(&self, bucket: &str) -> Result<Versioning, PortError> {
        self.gate("GetBucketVersioning", bucket)?;
        Ok(self.versioning.clone())
    }
    async fn bucket_logging(&self, bucket: &str) -> Result<Option<LoggingTarget>, PortError> {
        self.gate("GetBucketLogging", bucket)?;
        Ok(self.logging.clone())
    }
    async fn bucket_lifecycle(&self, bucket: &str) -> Result<Vec<LifecycleRule>, PortError> {
        self.gate("GetBucketLifecycleConfiguration", bucket)?;
        Ok(self.lifecycle.clone())
    }
    async fn bucket_encryption(&self, bucket: &str) -> Result<Option<BucketEncryption>, PortError> {
        self.gate("GetBucketEncryption", bucket)?;
        Ok(self.encryption.clone())
    }
    async fn list_subfolders(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, PortError> {
        self.gate("ListObjectsV2", bucket)?;
        let mut out: Vec<String> = self
            .keys
            .iter()
            .filter_map(|k| k.strip_prefix(prefix))
            .filter_map(|rest| rest.split_once('/'))
            .map(|(folder, _)| format!("{prefix}{folder}/"))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// Check states in memory.
#[derive(Debug, Clone, Default)]
pub struct MemCheckStateStore {
    states: Arc<Mutex<BTreeMap<(String, String), CheckState>>>,
    digest_date: Arc<Mutex<Option<String>>>,
}

impl MemCheckStateStore {
    /// Every stored state, sorted by (check id, resource).
    pub fn all(&self) -> Vec<CheckState> {
        self.states
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

impl CheckStateStore for MemCheckStateStore {
    async fn load(&self, check_id: &str) -> Result<Vec<CheckState>, PortError> {
        let m = self.states.lock().map_err(|_| poisoned("Query"))?;
        Ok(m.values()
            .filter(|s| s.check_id == check_id)
            .cloned()
            .collect())
    }
    async fn save(&self, states: &[CheckState]) -> Result<(), PortError> {
        let mut m = self.states.lock().map_err(|_| poisoned("BatchWriteItem"))?;
        for s in states {
            m.insert((s.check_id.clone(), s.resource.clone()), s.clone());
        }
        Ok(())
    }
    async fn last_digest_date(&self) -> Result<Option<String>, PortError> {
        Ok(self
            .digest_date
            .lock()
            .map_err(|_| poisoned("GetItem"))?
            .clone())
    }
    async fn set_last_digest_date(&self, date: &str) -> Result<(), PortError> {
        *self.digest_date.lock().map_err(|_| poisoned("PutItem"))? = Some(date.to_owned());
        Ok(())
    }
}
