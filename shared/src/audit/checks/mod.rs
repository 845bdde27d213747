//! Trail and bucket best-practice checks: the catalogue ([`CHECKS`]), the [`Snapshot`] of
//! every API answer they need ([`collect`] fills it through the ports with bounded
//! concurrency), and [`evaluate`], pure over the snapshot.
//!
//! A read that was denied (or whose resource is gone) is a fact too: the checks that need
//! it report [`CheckStatus::Unknown`] with the reason instead of failing the run. Only
//! transient errors (throttling, 5xx, timeouts) abort [`collect`], so the scheduled
//! invocation is retried.
//!
//! Which trails are audited: trails whose home region is this region (optionally only
//! `TRAIL_NAME`) and that this account owns. Shadow trails (another home region) and
//! organization trails of another account are recognised: they count for the account-wide
//! multi-region check but are audited by the auditor of their home region and account, so
//! nothing is reported twice.

pub mod chain;
pub mod policy;
pub mod selectors;

use std::collections::BTreeMap;
use std::future::Future;
use std::num::NonZeroUsize;

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use tokio::sync::Semaphore;

use crate::findings::{finding_id, Finding, Severity};
use crate::ports::trail::{
    AclGrant, BucketAuditSource, BucketEncryption, CheckStatus, EventSelectors, LifecycleRule,
    LoggingTarget, PublicAccessBlock, TrailInfo, TrailSource, TrailStatus, Versioning,
};
use crate::ports::PortError;
use policy::Policy;

/// One check of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable id (`tw-audit-...`): the finding's `rule_id` and the state's key.
    pub id: &'static str,
    /// What is checked.
    pub title: &'static str,
    /// Severity of a failure.
    pub severity: Severity,
    /// Security Hub control and CIS AWS Foundations Benchmark recommendation(s).
    pub controls: &'static str,
    /// How to fix a failure.
    pub remediation: &'static str,
}

macro_rules! check {
    ($name:ident, $id:literal, $sev:ident, $title:literal, $controls:literal, $fix:literal) => {
        #[doc = $title]
        pub const $name: Check = Check {
            id: $id,
            title: $title,
            severity: Severity::$sev,
            controls: $controls,
            remediation: $fix,
        };
    };
}

check!(MULTI_REGION_TRAIL, "tw-audit-multi-region-trail", High,
    "A logging multi-region trail records read and write management events",
    "Security Hub CloudTrail.1, CloudTrail.3; CIS v1.4.0 3.1, v3.0.0 3.1",
    "Create or update a trail with IsMultiRegionTrail=true, start logging, and use an event selector with IncludeManagementEvents=true and ReadWriteType=All (or an advanced selector eventCategory=Management without readOnly), with no excluded event sources.");
check!(TRAIL_LOGGING, "tw-audit-trail-logging", High,
    "The trail is logging",
    "Security Hub CloudTrail.3; CIS v1.4.0 3.1",
    "Run `aws cloudtrail start-logging --name <trail>` and find out who stopped it (StopLogging in the trail's own logs).");
check!(DELIVERY_FRESH, "tw-audit-delivery-fresh", High,
    "Log files reached the bucket in the last hour without delivery errors",
    "CIS v1.4.0 3.1 (trail must deliver); trailwatch pipeline self-check",
    "Check GetTrailStatus LatestDeliveryError: fix the bucket policy (CloudTrail needs s3:PutObject with bucket-owner-full-control), the KMS key policy, or recreate a deleted bucket.");
check!(
    GLOBAL_EVENTS,
    "tw-audit-global-events",
    Medium,
    "The trail includes global service events (IAM, STS, CloudFront)",
    "CIS v1.4.0 3.1 (multi-region trail includes global services)",
    "Run `aws cloudtrail update-trail --name <trail> --include-global-service-events`."
);
check!(
    LOG_VALIDATION,
    "tw-audit-log-validation",
    Medium,
    "Log file integrity validation is enabled",
    "Security Hub CloudTrail.4; CIS v1.4.0 3.2, v3.0.0 3.2",
    "Run `aws cloudtrail update-trail --name <trail> --enable-log-file-validation`."
);
check!(DIGEST_DELIVERY, "tw-audit-digest-delivery", Medium,
    "Digest files are delivered (hourly) without errors",
    "Security Hub CloudTrail.4; CIS v1.4.0 3.2",
    "Check GetTrailStatus LatestDigestDeliveryError; the bucket policy must let CloudTrail write the CloudTrail-Digest/ prefix.");
check!(DIGEST_CHAIN, "tw-audit-digest-chain", Critical,
    "Digest chain and log files validate (signatures, links, hashes)",
    "Security Hub CloudTrail.4; CIS v1.4.0 3.2",
    "Treat as possible tampering: restore the object from a previous version, investigate who deleted or overwrote it (S3 data events, server access logs), and enable versioning, MFA delete or Object Lock.");
check!(KMS_CMK, "tw-audit-kms-cmk", Medium,
    "Logs are encrypted with SSE-KMS using a customer managed key",
    "Security Hub CloudTrail.2; CIS v1.4.0 3.7, v3.0.0 3.5",
    "Create a customer managed KMS key whose policy allows CloudTrail (with aws:SourceArn) and run `aws cloudtrail update-trail --name <trail> --kms-key-id <key-arn>`.");
check!(CLOUDWATCH_LOGS, "tw-audit-cloudwatch-logs", Low,
    "The trail delivers to CloudWatch Logs",
    "Security Hub CloudTrail.5; CIS v1.4.0 3.4",
    "Create a log group and a role for CloudTrail, then `aws cloudtrail update-trail --cloud-watch-logs-log-group-arn <arn> --cloud-watch-logs-role-arn <role>`.");
check!(BUCKET_NOT_PUBLIC, "tw-audit-bucket-not-public", Critical,
    "The trail bucket is not public (ACL, policy, policy status)",
    "Security Hub CloudTrail.6, S3.2, S3.3; CIS v1.4.0 3.3",
    "Remove AllUsers/AuthenticatedUsers grants and Principal:* Allow statements without restricting conditions, and turn on the bucket and account public access block.");
check!(BUCKET_PAB, "tw-audit-bucket-pab", High,
    "The trail bucket blocks public access (all four flags)",
    "Security Hub S3.8; CIS v1.4.0 2.1.5",
    "Run `aws s3api put-public-access-block --bucket <bucket> --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true`.");
check!(ACCOUNT_PAB, "tw-audit-account-pab", Medium,
    "The account blocks S3 public access (all four flags)",
    "Security Hub S3.1; CIS v1.4.0 2.1.5, v3.0.0 2.1.4",
    "Run `aws s3control put-public-access-block --account-id <account> --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true`.");
check!(BUCKET_VERSIONING, "tw-audit-bucket-versioning", Medium,
    "Versioning is enabled on the trail bucket",
    "Security Hub S3.14",
    "Run `aws s3api put-bucket-versioning --bucket <bucket> --versioning-configuration Status=Enabled`.");
check!(BUCKET_MFA_DELETE, "tw-audit-bucket-mfa-delete", Low,
    "MFA delete is enabled on the trail bucket",
    "Security Hub S3.20; CIS v1.4.0 2.1.3, v3.0.0 2.1.2",
    "As the root user with an MFA device: `aws s3api put-bucket-versioning --bucket <bucket> --versioning-configuration Status=Enabled,MFADelete=Enabled --mfa '<serial> <code>'` (or use Object Lock).");
check!(BUCKET_ACCESS_LOGGING, "tw-audit-bucket-access-logging", Medium,
    "Server access logging is enabled on the trail bucket (to another bucket)",
    "Security Hub CloudTrail.7, S3.9; CIS v1.4.0 3.6, v3.0.0 3.4",
    "Run `aws s3api put-bucket-logging --bucket <bucket>` with a separate, locked-down target bucket.");
check!(BUCKET_RETENTION, "tw-audit-bucket-retention", Medium,
    "Lifecycle rules keep logs at least the configured minimum",
    "Security Hub S3.13 (lifecycle); retention policy AUDIT_RETENTION_MIN_DAYS",
    "Raise Expiration/NoncurrentVersionExpiration days of the rules covering the AWSLogs/ prefix to at least the minimum, or archive with a Transition instead of expiring.");
check!(BUCKET_POLICY_SOURCE_ARN, "tw-audit-bucket-policy-sourcearn", Medium,
    "The bucket policy grants CloudTrail writes only with an aws:SourceArn condition",
    "CloudTrail User Guide: Amazon S3 bucket policy for CloudTrail (confused deputy prevention)",
    "Add a Condition {\"StringEquals\": {\"aws:SourceArn\": \"arn:aws:cloudtrail:<region>:<account>:trail/<trail>\"}} to the statements that allow cloudtrail.amazonaws.com s3:PutObject.");
check!(BUCKET_POLICY_TLS, "tw-audit-bucket-policy-tls", Medium,
    "The bucket policy denies requests without TLS",
    "Security Hub S3.5; CIS v1.4.0 2.1.2, v3.0.0 2.1.1",
    "Add a Deny statement: Principal \"*\", Action \"s3:*\", Resource the bucket and bucket/*, Condition {\"Bool\": {\"aws:SecureTransport\": \"false\"}}.");
check!(TRAIL_BUCKET_DATA_EVENTS, "tw-audit-trail-bucket-data-events", Low,
    "S3 data events (read and write) are recorded for the trail bucket itself",
    "Security Hub S3.22, S3.23; CIS v1.4.0 3.10, 3.11, v3.0.0 3.8, 3.9",
    "Add an advanced event selector eventCategory=Data, resources.type=AWS::S3::Object, resources.ARN StartsWith arn:aws:s3:::<bucket>/ (on this trail, or log the bucket's data events with a second trail writing elsewhere to avoid loops).");
check!(INSIGHTS, "tw-audit-insights", Info,
    "CloudTrail Insights is enabled",
    "none (AWS best practice)",
    "Run `aws cloudtrail put-insight-selectors --trail-name <trail> --insight-selectors '[{\"InsightType\":\"ApiCallRateInsight\"},{\"InsightType\":\"ApiErrorRateInsight\"}]'`.");

/// Every check, in report order.
pub const CHECKS: [Check; 20] = [
    MULTI_REGION_TRAIL,
    TRAIL_LOGGING,
    DELIVERY_FRESH,
    GLOBAL_EVENTS,
    LOG_VALIDATION,
    DIGEST_DELIVERY,
    DIGEST_CHAIN,
    KMS_CMK,
    CLOUDWATCH_LOGS,
    BUCKET_NOT_PUBLIC,
    BUCKET_PAB,
    ACCOUNT_PAB,
    BUCKET_VERSIONING,
    BUCKET_MFA_DELETE,
    BUCKET_ACCESS_LOGGING,
    BUCKET_RETENTION,
    BUCKET_POLICY_SOURCE_ARN,
    BUCKET_POLICY_TLS,
    TRAIL_BUCKET_DATA_EVENTS,
    INSIGHTS,
];

/// The check with this id.
pub fn check_by_id(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

/// A fact that could not be read: the operation and why (access denied, not found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// What failed, e.g. `GetBucketPolicy: AccessDenied: ...`.
    pub reason: String,
}

/// An API answer, or why it is not available.
pub type Fact<T> = Result<T, Unavailable>;

/// Transient errors abort (retry the invocation); denied and not-found reads become facts.
fn fact<T>(r: Result<T, PortError>) -> Result<Fact<T>, PortError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e) if e.is_retryable() => Err(e),
        Err(e) => Ok(Err(Unavailable {
            reason: e.to_string(),
        })),
    }
}

/// How the trail relates to this auditor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailRole {
    /// Home region is this region and this account owns it: audited here.
    Audited,
    /// Home region is another region: audited there.
    Shadow,
    /// An organization trail owned by another account: audited by that account.
    ForeignOrganization,
    /// Home here, but `TRAIL_NAME` names another trail.
    NotSelected,
}

/// What the auditor knows about one trail.
#[derive(Debug, Clone)]
pub struct TrailFacts {
    /// `DescribeTrails` entry.
    pub info: TrailInfo,
    /// Audited here, or recognised only.
    pub role: TrailRole,
    /// `GetTrailStatus`.
    pub status: Fact<TrailStatus>,
    /// `GetEventSelectors`.
    pub selectors: Fact<EventSelectors>,
    /// `GetInsightSelectors` (audited trails only; empty otherwise).
    pub insights: Fact<Vec<String>>,
}

/// What the auditor knows about one trail bucket.
#[derive(Debug, Clone)]
pub struct BucketFacts {
    /// `GetBucketAcl`.
    pub acl: Fact<Vec<AclGrant>>,
    /// `GetBucketPolicy`.
    pub policy: Fact<Option<String>>,
    /// `GetBucketPolicyStatus`.
    pub policy_is_public: Fact<Option<bool>>,
    /// `GetPublicAccessBlock`.
    pub public_access_block: Fact<Option<PublicAccessBlock>>,
    /// `GetBucketVersioning`.
    pub versioning: Fact<Versioning>,
    /// `GetBucketLogging`.
    pub logging: Fact<Option<LoggingTarget>>,
    /// `GetBucketLifecycleConfiguration`.
    pub lifecycle: Fact<Vec<LifecycleRule>>,
    /// `GetBucketEncryption`.
    pub encryption: Fact<Option<BucketEncryption>>,
}

/// Every answer the checks need, collected first.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The account audited.
    pub account_id: String,
    /// The region the auditor runs in.
    pub region: String,
    /// `TRAIL_NAME`, when set.
    pub trail_name: Option<String>,
    /// Every trail `DescribeTrails` returned.
    pub trails: Vec<TrailFacts>,
    /// Buckets of the audited trails.
    pub buckets: BTreeMap<String, BucketFacts>,
    /// The account's public access block.
    pub account_public_access_block: Fact<Option<PublicAccessBlock>>,
}

impl Snapshot {
    /// The audited trails.
    pub fn audited(&self) -> impl Iterator<Item = &TrailFacts> {
        self.trails.iter().filter(|t| t.role == TrailRole::Audited)
    }
}

/// Where the auditor runs.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Account id.
    pub account_id: String,
    /// Region.
    pub region: String,
    /// Only audit this trail (name or ARN).
    pub trail_name: Option<String>,
}

fn role_of(t: &TrailInfo, scope: &Scope) -> TrailRole {
    let foreign = t.account().is_some_and(|a| a != scope.account_id);
    if t.is_organization_trail && foreign {
        TrailRole::ForeignOrganization
    } else if t.home_region != scope.region {
        TrailRole::Shadow
    } else if scope
        .trail_name
        .as_deref()
        .is_some_and(|n| n != t.name && n != t.arn)
    {
        TrailRole::NotSelected
    } else {
        TrailRole::Audited
    }
}

async fn gated<F: Future>(sem: &Semaphore, f: F) -> F::Output {
    // the semaphore is never closed: a failed acquire only means "no limit"
    let _permit = sem.acquire().await.ok();
    f.await
}

/// Reads everything the checks need, at most `max_in_flight` calls at a time.
///
/// # Errors
/// The first transient [`PortError`] (the invocation should be retried). Denied or
/// missing reads are recorded as [`Unavailable`] facts.
pub async fn collect<T: TrailSource, B: BucketAuditSource>(
    trails: &T,
    buckets: &B,
    scope: &Scope,
    max_in_flight: NonZeroUsize,
) -> Result<Snapshot, PortError> {
    let sem = Semaphore::new(max_in_flight.get());
    let sem = &sem;
    let described = trails.describe_trails().await?;
    let per_trail = described.into_iter().map(|info| async move {
        let role = role_of(&info, scope);
        let status = fact(gated(sem, trails.trail_status(&info.arn)).await)?;
        let selectors = fact(gated(sem, trails.event_selectors(&info.arn)).await)?;
        let insights = if role == TrailRole::Audited {
            fact(gated(sem, trails.insight_selectors(&info.arn)).await)?
        } else {
            Ok(Vec::new())
        };
        Ok::<_, PortError>(TrailFacts {
            info,
            role,
            status,
            selectors,
            insights,
        })
    });
    let trail_facts = futures::future::try_join_all(per_trail).await?;

    let mut names: Vec<String> = trail_facts
        .iter()
        .filter(|t| t.role == TrailRole::Audited)
        .filter_map(|t| t.info.s3_bucket.clone())
        .collect();
    names.sort();
    names.dedup();
    let per_bucket = names.into_iter().map(|b| async move {
        let (acl, policy, status, pab, versioning, logging, lifecycle, encryption) = tokio::join!(
            gated(sem, buckets.bucket_acl(&b)),
            gated(sem, buckets.bucket_policy(&b)),
            gated(sem, buckets.bucket_policy_is_public(&b)),
            gated(sem, buckets.bucket_public_access_block(&b)),
            gated(sem, buckets.bucket_versioning(&b)),
            gated(sem, buckets.bucket_logging(&b)),
            gated(sem, buckets.bucket_lifecycle(&b)),
            gated(sem, buckets.bucket_encryption(&b)),
        );
        let facts = BucketFacts {
            acl: fact(acl)?,
            policy: fact(policy)?,
            policy_is_public: fact(status)?,
            public_access_block: fact(pab)?,
            versioning: fact(versioning)?,
            logging: fact(logging)?,
            lifecycle: fact(lifecycle)?,
            encryption: fact(encryption)?,
        };
        Ok::<_, PortError>((b, facts))
    });
    let bucket_facts = futures::future::try_join_all(per_bucket).await?;
    let account_pab =
        fact(gated(sem, buckets.account_public_access_block(&scope.account_id)).await)?;
    Ok(Snapshot {
        account_id: scope.account_id.clone(),
        region: scope.region.clone(),
        trail_name: scope.trail_name.clone(),
        trails: trail_facts,
        buckets: bucket_facts.into_iter().collect(),
        account_public_access_block: account_pab,
    })
}

/// The result of one check on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Check id.
    pub check_id: &'static str,
    /// Resource: trail ARN, `arn:aws:s3:::<bucket>`, account id, or a digest/log key.
    pub resource: String,
    /// Pass, fail, or unknown.
    pub status: CheckStatus,
    /// Why (for failures and unknowns), or what was seen (passes).
    pub detail: String,
}

impl CheckResult {
    fn new(check: &Check, resource: &str, status: CheckStatus, detail: impl Into<String>) -> Self {
        Self {
            check_id: check.id,
            resource: resource.to_owned(),
            status,
            detail: detail.into(),
        }
    }

    /// The check of this result (`None` only for ids outside the catalogue).
    pub fn check(&self) -> Option<&'static Check> {
        check_by_id(self.check_id)
    }

    /// Severity of this result: the check's, or `Low` for "cannot audit".
    pub fn severity(&self) -> Severity {
        match self.status {
            CheckStatus::Unknown => Severity::Low,
            _ => self.check().map_or(Severity::Medium, |c| c.severity),
        }
    }

    /// The stable event id of the finding: `<check id>#<resource>`.
    pub fn event_id(&self) -> String {
        format!("{}#{}", self.check_id, self.resource)
    }

    /// The finding for this result (meaningful for failures and unknowns).
    pub fn to_finding(&self, account_id: &str, region: &str, now: OffsetDateTime) -> Finding {
        let event_id = self.event_id();
        let title = match (self.status, self.check()) {
            (CheckStatus::Unknown, Some(c)) => format!("cannot audit: {}", c.title),
            (_, Some(c)) => c.title.to_owned(),
            (_, None) => self.check_id.to_owned(),
        };
        Finding {
            episode_start: None,
            id: finding_id(self.check_id, &event_id),
            rule_id: self.check_id.to_owned(),
            title,
            severity: self.severity(),
            tags: Vec::new(),
            event_id,
            event_name: "ConfigAudit".into(),
            event_time: rfc3339(now),
            event_source: "config-auditor".into(),
            account_id: account_id.to_owned(),
            region: region.to_owned(),
            source: "config-auditor".into(),
            principal: None,
            source_ip: None,
            error_code: None,
        }
    }
}

/// RFC 3339 text of a time (`unknown` if it cannot be formatted, which needs a year
/// outside 0..=9999).
pub fn rfc3339(t: OffsetDateTime) -> String {
    crate::model::format_time(t).unwrap_or_else(|| "unknown".into())
}

/// Options of [`evaluate`].
#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    /// The audit time.
    pub now: OffsetDateTime,
    /// Minimum log retention in days (`AUDIT_RETENTION_MIN_DAYS`, ≥ 90).
    pub retention_min_days: u32,
}

/// Log files older than this mean the trail is not delivering.
const DELIVERY_MAX_AGE: Duration = Duration::HOUR;
/// Digests are hourly and delivered within about an hour of the period they cover.
const DIGEST_MAX_AGE: Duration = Duration::hours(2);

fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

/// Evaluates every check on the snapshot. Results are sorted by (check order, resource).
pub fn evaluate(snap: &Snapshot, opts: &EvalOptions) -> Vec<CheckResult> {
    let mut out = Vec::new();
    multi_region(snap, &mut out);
    if let Some(name) = &snap.trail_name {
        let known = snap
            .trails
            .iter()
            .any(|t| &t.info.name == name || &t.info.arn == name);
        if !known {
            out.push(CheckResult::new(
                &TRAIL_LOGGING,
                name,
                CheckStatus::Fail,
                format!(
                    "trail {name} (TRAIL_NAME) does not exist: DescribeTrails does not list it"
                ),
            ));
        }
    }
    for t in snap.audited() {
        trail_checks(t, opts, &mut out);
        if let Some(b) = &t.info.s3_bucket {
            if let Some(facts) = snap.buckets.get(b) {
                per_trail_bucket_checks(t, b, facts, opts, &mut out);
            }
        }
    }
    for (b, facts) in &snap.buckets {
        bucket_checks(snap, b, facts, &mut out);
    }
    account_checks(snap, &mut out);
    let order = |id: &str| CHECKS.iter().position(|c| c.id == id).unwrap_or(usize::MAX);
    out.sort_by(|a, b| (order(a.check_id), &a.resource).cmp(&(order(b.check_id), &b.resource)));
    out.dedup_by(|a, b| a.check_id == b.check_id && a.resource == b.resource);
    out
}

fn multi_region(snap: &Snapshot, out: &mut Vec<CheckResult>) {
    let mut why: Vec<String> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for t in &snap.trails {
        let name = &t.info.arn;
        if !t.info.is_multi_region {
            why.push(format!("{name}: single-region"));
            continue;
        }
        let status = match &t.status {
            Ok(s) => s,
            Err(u) => {
                unknown.push(format!("{name}: {}", u.reason));
                continue;
            }
        };
        let sel = match &t.selectors {
            Ok(s) => s,
            Err(u) => {
                unknown.push(format!("{name}: {}", u.reason));
                continue;
            }
        };
        let cov = selectors::management_coverage(sel);
        if status.is_logging && cov.is_complete() {
            let kind = match t.role {
                TrailRole::ForeignOrganization => " (organization trail)",
                TrailRole::Shadow => " (shadow of another region)",
                _ => "",
            };
            out.push(CheckResult::new(
                &MULTI_REGION_TRAIL,
                &snap.account_id,
                CheckStatus::Pass,
                format!("{name}{kind} is multi-region, logging, management events read+write"),
            ));
            return;
        }
        let mut w = Vec::new();
        if !status.is_logging {
            w.push("not logging".to_owned());
        }
        if !cov.is_complete() {
            w.push(format!("management events: {}", cov.describe()));
        }
        why.push(format!("{name}: {}", w.join(", ")));
    }
    let (status, detail) = if !unknown.is_empty() {
        (CheckStatus::Unknown, unknown.join("; "))
    } else if why.is_empty() {
        (CheckStatus::Fail, "no trail exists".to_owned())
    } else {
        (CheckStatus::Fail, why.join("; "))
    };
    out.push(CheckResult::new(
        &MULTI_REGION_TRAIL,
        &snap.account_id,
        status,
        detail,
    ));
}

fn unknown(check: &Check, resource: &str, u: &Unavailable) -> CheckResult {
    CheckResult::new(check, resource, CheckStatus::Unknown, u.reason.clone())
}

fn pass_fail(check: &Check, resource: &str, ok: bool, detail: impl Into<String>) -> CheckResult {
    let status = if ok {
        CheckStatus::Pass
    } else {
        CheckStatus::Fail
    };
    CheckResult::new(check, resource, status, detail)
}

fn age_text(now: OffsetDateTime, t: OffsetDateTime) -> String {
    let mins = (now - t).whole_minutes();
    if mins >= 120 {
        format!("{} h ago", mins / 60)
    } else {
        format!("{mins} min ago")
    }
}

fn trail_checks(t: &TrailFacts, opts: &EvalOptions, out: &mut Vec<CheckResult>) {
    let arn = t.info.arn.as_str();
    let info = &t.info;
    let now = opts.now;
    match &t.status {
        Err(u) => {
            for c in [&TRAIL_LOGGING, &DELIVERY_FRESH] {
                out.push(unknown(c, arn, u));
            }
            if info.log_file_validation {
                out.push(unknown(&DIGEST_DELIVERY, arn, u));
            }
            if info.cloudwatch_logs_log_group_arn.is_some() {
                out.push(unknown(&CLOUDWATCH_LOGS, arn, u));
            }
        }
        Ok(s) => {
            out.push(pass_fail(
                &TRAIL_LOGGING,
                arn,
                s.is_logging,
                if s.is_logging {
                    "IsLogging is true"
                } else {
                    "IsLogging is false: the trail records nothing"
                },
            ));
            let fresh = match (&s.latest_delivery_error, s.latest_delivery_time) {
                (Some(e), _) if !e.is_empty() => Err(format!("LatestDeliveryError: {e}")),
                (_, None) => Err("no log file was ever delivered".to_owned()),
                (_, Some(at)) if now - at > DELIVERY_MAX_AGE => Err(format!(
                    "last log file delivered {} ({}): nothing in the last hour",
                    rfc3339(at),
                    age_text(now, at)
                )),
                (_, Some(at)) => Ok(format!("last delivery {}", rfc3339(at))),
            };
            out.push(match fresh {
                Ok(d) => pass_fail(&DELIVERY_FRESH, arn, true, d),
                Err(d) => pass_fail(&DELIVERY_FRESH, arn, false, d),
            });
            if info.log_file_validation {
                let digest = match (
                    &s.latest_digest_delivery_error,
                    s.latest_digest_delivery_time,
                ) {
                    (Some(e), _) if !e.is_empty() => Err(format!("LatestDigestDeliveryError: {e}")),
                    (_, None) => Err("no digest file was ever delivered".to_owned()),
                    (_, Some(at)) if now - at > DIGEST_MAX_AGE => Err(format!(
                        "last digest delivered {} ({}): digests are hourly",
                        rfc3339(at),
                        age_text(now, at)
                    )),
                    (_, Some(at)) => Ok(format!("last digest {}", rfc3339(at))),
                };
                out.push(match digest {
                    Ok(d) => pass_fail(&DIGEST_DELIVERY, arn, true, d),
                    Err(d) => pass_fail(&DIGEST_DELIVERY, arn, false, d),
                });
            }
            if let Some(group) = &info.cloudwatch_logs_log_group_arn {
                let err = s
                    .latest_cloudwatch_logs_delivery_error
                    .as_deref()
                    .filter(|e| !e.is_empty());
                out.push(match err {
                    Some(e) => pass_fail(
                        &CLOUDWATCH_LOGS,
                        arn,
                        false,
                        format!("delivers to {group}, but LatestCloudWatchLogsDeliveryError: {e}"),
                    ),
                    None => pass_fail(&CLOUDWATCH_LOGS, arn, true, format!("delivers to {group}")),
                });
            }
        }
    }
    if info.cloudwatch_logs_log_group_arn.is_none() {
        out.push(pass_fail(
            &CLOUDWATCH_LOGS,
            arn,
            false,
            "no CloudWatch Logs log group configured",
        ));
    }
    out.push(pass_fail(
        &GLOBAL_EVENTS,
        arn,
        info.include_global_service_events,
        if info.include_global_service_events {
            "IncludeGlobalServiceEvents is true"
        } else {
            "IncludeGlobalServiceEvents is false: IAM, STS and CloudFront calls are not recorded"
        },
    ));
    out.push(pass_fail(
        &LOG_VALIDATION,
        arn,
        info.log_file_validation,
        if info.log_file_validation {
            "LogFileValidationEnabled is true"
        } else {
            "LogFileValidationEnabled is false: tampering with log files cannot be detected"
        },
    ));
    out.push(match info.kms_key_id.as_deref() {
        None => pass_fail(&KMS_CMK, arn, false, "no KmsKeyId: logs use SSE-S3 only"),
        Some(k) if k.contains("alias/aws/") => pass_fail(
            &KMS_CMK,
            arn,
            false,
            format!("{k} is an AWS managed key, not a customer managed one"),
        ),
        Some(k) => pass_fail(&KMS_CMK, arn, true, format!("SSE-KMS with {k}")),
    });
    out.push(match &t.insights {
        Err(u) => unknown(&INSIGHTS, arn, u),
        Ok(v) if v.is_empty() => pass_fail(&INSIGHTS, arn, false, "no insight selectors"),
        Ok(v) => pass_fail(&INSIGHTS, arn, true, format!("insights: {}", v.join(", "))),
    });
}

/// Checks that need both the trail and its bucket.
fn per_trail_bucket_checks(
    t: &TrailFacts,
    bucket: &str,
    facts: &BucketFacts,
    opts: &EvalOptions,
    out: &mut Vec<CheckResult>,
) {
    let arn = t.info.arn.as_str();
    out.push(match &t.selectors {
        Err(u) => unknown(&TRAIL_BUCKET_DATA_EVENTS, arn, u),
        Ok(sel) => {
            let cov = selectors::s3_data_coverage(sel, bucket);
            pass_fail(
                &TRAIL_BUCKET_DATA_EVENTS,
                arn,
                cov.read && cov.write,
                format!("S3 data events for {bucket}: {}", cov.describe()),
            )
        }
    });
    let resource = bucket_arn(bucket);
    out.push(match &facts.lifecycle {
        Err(u) => unknown(&BUCKET_RETENTION, &resource, u),
        Ok(rules) => retention(t, rules, opts.retention_min_days, &resource),
    });
}

fn retention(t: &TrailFacts, rules: &[LifecycleRule], min: u32, resource: &str) -> CheckResult {
    let prefix = match t.info.s3_key_prefix.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => format!("{p}/AWSLogs/"),
        None => "AWSLogs/".to_owned(),
    };
    let min_i = i64::from(min);
    let mut short = Vec::new();
    for r in rules.iter().filter(|r| r.enabled) {
        let applies =
            r.prefix.is_empty() || prefix.starts_with(&r.prefix) || r.prefix.starts_with(&prefix);
        if !applies {
            continue;
        }
        let id = r.id.clone().unwrap_or_else(|| "(no id)".into());
        if r.expiration_date {
            short.push(format!("rule {id} expires objects on a fixed date"));
        }
        if let Some(d) = r.expiration_days.filter(|d| i64::from(*d) < min_i) {
            short.push(format!("rule {id} expires logs after {d} days"));
        }
        if let Some(d) = r
            .noncurrent_expiration_days
            .filter(|d| i64::from(*d) < min_i)
        {
            short.push(format!(
                "rule {id} deletes noncurrent log versions after {d} days"
            ));
        }
    }
    if short.is_empty() {
        pass_fail(
            &BUCKET_RETENTION,
            resource,
            true,
            format!("no enabled rule deletes {prefix} objects before {min} days"),
        )
    } else {
        pass_fail(
            &BUCKET_RETENTION,
            resource,
            false,
            format!("{} (minimum {min} days)", short.join("; ")),
        )
    }
}

/// Bucket checks (each bucket once, however many trails write to it).
fn bucket_checks(snap: &Snapshot, bucket: &str, f: &BucketFacts, out: &mut Vec<CheckResult>) {
    let res = bucket_arn(bucket);
    let res = res.as_str();
    let account_pab = snap
        .account_public_access_block
        .as_ref()
        .ok()
        .copied()
        .flatten();
    let bucket_pab = f.public_access_block.as_ref().ok().copied().flatten();
    let either = |get: fn(&PublicAccessBlock) -> bool| {
        bucket_pab.as_ref().is_some_and(get) || account_pab.as_ref().is_some_and(get)
    };

    // not public: ACL grants to everyone unless ignored, policy statements unless
    // restricted, and S3's own policy status
    let mut public = Vec::new();
    let mut unknowns = Vec::new();
    match &f.acl {
        Err(u) => unknowns.push(u.reason.clone()),
        Ok(grants) if !either(|p| p.ignore_public_acls) => {
            for g in grants {
                let uri = g.grantee_uri.as_deref().unwrap_or_default();
                if uri.ends_with("/global/AllUsers") || uri.ends_with("/global/AuthenticatedUsers")
                {
                    let who = uri.rsplit('/').next().unwrap_or(uri);
                    public.push(format!("ACL grants {} to {who}", g.permission));
                }
            }
        }
        Ok(_) => {}
    }
    let restricted = either(|p| p.restrict_public_buckets);
    match &f.policy {
        Err(u) => unknowns.push(u.reason.clone()),
        Ok(None) => {}
        Ok(Some(doc)) => match Policy::parse(doc) {
            Err(e) => unknowns.push(e),
            Ok(p) if !restricted => {
                for s in p.public_statements() {
                    public.push(format!(
                        "policy {s} allows Principal * without a restricting condition"
                    ));
                }
            }
            Ok(_) => {}
        },
    }
    if let Ok(Some(true)) = &f.policy_is_public {
        if !restricted {
            public.push("GetBucketPolicyStatus reports IsPublic=true".into());
        }
    }
    public.dedup();
    out.push(if !public.is_empty() {
        pass_fail(&BUCKET_NOT_PUBLIC, res, false, public.join("; "))
    } else if !unknowns.is_empty() {
        CheckResult::new(
            &BUCKET_NOT_PUBLIC,
            res,
            CheckStatus::Unknown,
            unknowns.join("; "),
        )
    } else {
        pass_fail(
            &BUCKET_NOT_PUBLIC,
            res,
            true,
            "no public ACL grant or policy statement",
        )
    });

    out.push(match &f.public_access_block {
        Err(u) => unknown(&BUCKET_PAB, res, u),
        Ok(None) => pass_fail(
            &BUCKET_PAB,
            res,
            false,
            "no public access block configured on the bucket",
        ),
        Ok(Some(p)) if p.is_complete() => pass_fail(&BUCKET_PAB, res, true, "all four flags on"),
        Ok(Some(p)) => pass_fail(
            &BUCKET_PAB,
            res,
            false,
            format!("off: {}", p.missing().join(", ")),
        ),
    });

    match &f.versioning {
        Err(u) => {
            out.push(unknown(&BUCKET_VERSIONING, res, u));
            out.push(unknown(&BUCKET_MFA_DELETE, res, u));
        }
        Ok(v) => {
            let status = v.status.as_deref().unwrap_or("never enabled");
            out.push(pass_fail(
                &BUCKET_VERSIONING,
                res,
                status == "Enabled",
                format!("versioning: {status}"),
            ));
            let mfa = v.mfa_delete.as_deref().unwrap_or("Disabled");
            out.push(pass_fail(
                &BUCKET_MFA_DELETE,
                res,
                mfa == "Enabled",
                format!("MFA delete: {mfa}"),
            ));
        }
    }

    out.push(match &f.logging {
        Err(u) => unknown(&BUCKET_ACCESS_LOGGING, res, u),
        Ok(None) => pass_fail(&BUCKET_ACCESS_LOGGING, res, false, "server access logging is off"),
        Ok(Some(t)) if t.bucket == bucket => pass_fail(
            &BUCKET_ACCESS_LOGGING,
            res,
            false,
            "access logs are written into the trail bucket itself (a log loop anyone with write access there can hide in)",
        ),
        Ok(Some(t)) => pass_fail(
            &BUCKET_ACCESS_LOGGING,
            res,
            true,
            format!("access logs to s3://{}/{}", t.bucket, t.prefix),
        ),
    });

    match &f.policy {
        Err(u) => {
            out.push(unknown(&BUCKET_POLICY_SOURCE_ARN, res, u));
            out.push(unknown(&BUCKET_POLICY_TLS, res, u));
        }
        Ok(None) => {
            out.push(pass_fail(
                &BUCKET_POLICY_SOURCE_ARN,
                res,
                false,
                "the bucket has no policy",
            ));
            out.push(pass_fail(
                &BUCKET_POLICY_TLS,
                res,
                false,
                "the bucket has no policy",
            ));
        }
        Ok(Some(doc)) => match Policy::parse(doc) {
            Err(e) => {
                let u = Unavailable { reason: e };
                out.push(unknown(&BUCKET_POLICY_SOURCE_ARN, res, &u));
                out.push(unknown(&BUCKET_POLICY_TLS, res, &u));
            }
            Ok(p) => {
                let grants = p.cloudtrail_write_grants();
                let loose: Vec<&str> = grants
                    .iter()
                    .filter(|(_, scoped)| !scoped)
                    .map(|(d, _)| d.as_str())
                    .collect();
                out.push(if grants.is_empty() {
                    pass_fail(
                        &BUCKET_POLICY_SOURCE_ARN,
                        res,
                        false,
                        "no statement grants cloudtrail.amazonaws.com s3:PutObject",
                    )
                } else if loose.is_empty() {
                    pass_fail(
                        &BUCKET_POLICY_SOURCE_ARN,
                        res,
                        true,
                        "CloudTrail writes are scoped by aws:SourceArn",
                    )
                } else {
                    pass_fail(
                        &BUCKET_POLICY_SOURCE_ARN,
                        res,
                        false,
                        format!(
                            "{} grant CloudTrail s3:PutObject without aws:SourceArn",
                            loose.join(", ")
                        ),
                    )
                });
                let tls = p.denies_insecure_transport(bucket);
                out.push(pass_fail(
                    &BUCKET_POLICY_TLS,
                    res,
                    tls,
                    if tls {
                        "requests without TLS are denied"
                    } else {
                        "no Deny of s3:* for everyone when aws:SecureTransport is false"
                    },
                ));
            }
        },
    }
}

fn account_checks(snap: &Snapshot, out: &mut Vec<CheckResult>) {
    let res = snap.account_id.as_str();
    out.push(match &snap.account_public_access_block {
        Err(u) => unknown(&ACCOUNT_PAB, res, u),
        Ok(None) => pass_fail(
            &ACCOUNT_PAB,
            res,
            false,
            "no account-level public access block",
        ),
        Ok(Some(p)) if p.is_complete() => pass_fail(&ACCOUNT_PAB, res, true, "all four flags on"),
        Ok(Some(p)) => pass_fail(
            &ACCOUNT_PAB,
            res,
            false,
            format!("off: {}", p.missing().join(", ")),
        ),
    });
}

#[cfg(test)]
mod tests;
