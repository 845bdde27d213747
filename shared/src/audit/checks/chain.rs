//! The digest-chain check (`tw-audit-digest-chain`): runs the digest validator
//! ([`crate::audit::digest::validate`]) over the last [`AUDIT_WINDOW`] of an audited trail
//! with log file validation, and turns every object that does not validate into a failing
//! result per object (critical), plus one result per trail summarising the run.
//!
//! Listing is narrow: only the `CloudTrail-Digest/` folders of each account folder under
//! `[prefix/]AWSLogs/` (and `AWSLogs/o-*/`), never the log files, so the cost does not grow
//! with the bucket. Each region signs its digests with its own key: public keys are listed
//! in every region that has a digest folder.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use time::{Duration, OffsetDateTime};

use super::{CheckResult, TrailFacts, DIGEST_CHAIN};
use crate::audit::digest::{
    self, DigestError, DigestSource, FileStatus, PublicKey, PublicKeySet, TrailArn, ValidateRequest,
};
use crate::ports::trail::{BucketAuditSource, CheckState, CheckStatus, TrailSource};
use crate::ports::PortError;

/// How far back each run validates: a day of hourly digests plus an hour of overlap, so
/// consecutive daily-or-faster runs leave no hour unchecked.
pub const AUDIT_WINDOW: Duration = Duration::hours(25);

/// The digest validation could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// Listing folders or public keys failed.
    #[error("reading digest folders or public keys")]
    Port(#[from] PortError),
    /// The validator's source failed.
    #[error("validating the digest chain")]
    Digest(#[from] DigestError),
}

impl ChainError {
    /// Whether running again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ChainError::Port(e) => e.is_retryable(),
            ChainError::Digest(e) => e.is_retryable(),
        }
    }
}

/// What one validation run covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainRun {
    /// Per-object and per-trail results.
    pub results: Vec<CheckResult>,
    /// Objects (digests and logs) checked.
    pub files_checked: usize,
}

/// The digest folders (`.../<account>/CloudTrail-Digest/`) under the trail's prefix.
async fn digest_folders<B: BucketAuditSource>(
    buckets: &B,
    bucket: &str,
    key_prefix: Option<&str>,
) -> Result<Vec<String>, PortError> {
    let base = match key_prefix.filter(|p| !p.is_empty()) {
        Some(p) => format!("{}/AWSLogs/", p.trim_end_matches('/')),
        None => "AWSLogs/".to_owned(),
    };
    let mut accounts = Vec::new();
    for folder in buckets.list_subfolders(bucket, &base).await? {
        let name = folder
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        if name.starts_with("o-") {
            // organization trails: AWSLogs/o-xxxx/<account>/
            accounts.extend(buckets.list_subfolders(bucket, &folder).await?);
        } else {
            accounts.push(folder);
        }
    }
    Ok(accounts
        .into_iter()
        .map(|a| format!("{a}CloudTrail-Digest/"))
        .collect())
}

/// Validates the trail's digests in `[now - AUDIT_WINDOW, now]`.
///
/// # Errors
/// [`ChainError`] when listing, public keys or the validator's reads fail; callers retry
/// transient ones and report permanent ones as "cannot audit".
pub async fn digest_chain<T: TrailSource, B: BucketAuditSource, D: DigestSource>(
    trails: &T,
    buckets: &B,
    source: &D,
    trail: &TrailFacts,
    now: OffsetDateTime,
    max_in_flight: NonZeroUsize,
) -> Result<ChainRun, ChainError> {
    let arn = trail.info.arn.as_str();
    let Some(bucket) = trail.info.s3_bucket.as_deref() else {
        return Ok(ChainRun::default());
    };
    let trail_arn = match TrailArn::parse(arn) {
        Ok(t) => t,
        Err(e) => {
            return Ok(ChainRun {
                results: vec![result(arn, CheckStatus::Unknown, e.to_string())],
                files_checked: 0,
            })
        }
    };
    let start = now - AUDIT_WINDOW;
    let latest = trail
        .status
        .as_ref()
        .ok()
        .and_then(|s| s.latest_digest_delivery_time);

    let folders = digest_folders(buckets, bucket, trail.info.s3_key_prefix.as_deref()).await?;
    let mut regions: Vec<String> = Vec::new();
    for f in &folders {
        for r in buckets.list_subfolders(bucket, f).await? {
            if let Some(name) = r.trim_end_matches('/').rsplit('/').next() {
                regions.push(name.to_owned());
            }
        }
    }
    regions.sort();
    regions.dedup();
    let mut keys: BTreeMap<String, PublicKey> = BTreeMap::new();
    for region in &regions {
        for k in trails.list_public_keys(region, start, now).await? {
            let fingerprint = k.fingerprint.to_ascii_lowercase();
            keys.entry(fingerprint.clone()).or_insert(PublicKey {
                fingerprint,
                key: digest::public_keys::decode_der(&k.der),
                valid_from: k.valid_from,
                valid_until: k.valid_until,
            });
        }
    }
    let keys = PublicKeySet::from_keys(keys.into_values().collect());

    let mut run = ChainRun::default();
    let mut bad = 0usize;
    for folder in &folders {
        let req = ValidateRequest {
            bucket_name: bucket.to_owned(),
            trail: trail_arn.clone(),
            start_time: start,
            end_time: now,
            latest_delivery_time: latest,
            list_prefix: Some(folder.clone()),
            max_in_flight,
        };
        let report = digest::validate(source, &keys, &req).await?;
        run.files_checked += report.files.len();
        for f in report.files {
            let resource = format!("s3://{bucket}/{}", f.key);
            if f.status == FileStatus::Valid {
                run.results
                    .push(result(&resource, CheckStatus::Pass, "valid"));
            } else {
                bad += 1;
                let detail = match &f.detail {
                    Some(d) => format!("{}: {d}", f.status.as_str()),
                    None => f.status.as_str().to_owned(),
                };
                run.results
                    .push(result(&resource, CheckStatus::Fail, detail));
            }
        }
    }
    let digests_seen = run
        .results
        .iter()
        .any(|r| r.resource.contains("/CloudTrail-Digest/"));
    let summary = if let (false, Some(at)) = (digests_seen, latest.filter(|t| *t >= start)) {
        // CloudTrail says it delivered a digest in the window, and none is in the bucket:
        // every digest was deleted (no surviving digest names them, so only this shows it)
        result(
            arn,
            CheckStatus::Fail,
            format!(
                "no digest file of the last {} h is in s3://{bucket}, but CloudTrail delivered one at {}",
                AUDIT_WINDOW.whole_hours(),
                super::rfc3339(at)
            ),
        )
    } else if bad == 0 {
        result(
            arn,
            CheckStatus::Pass,
            format!(
                "{} digest and log files of the last {} h validate",
                run.files_checked,
                AUDIT_WINDOW.whole_hours()
            ),
        )
    } else {
        result(
            arn,
            CheckStatus::Fail,
            format!(
                "{bad} of {} digest and log files do not validate",
                run.files_checked
            ),
        )
    };
    run.results.push(summary);
    Ok(run)
}

fn result(resource: &str, status: CheckStatus, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        check_id: DIGEST_CHAIN.id,
        resource: resource.to_owned(),
        status,
        detail: detail.into(),
    }
}

/// Drops per-object passes that have no stored state: a valid object that never failed
/// needs no state item (hundreds per run), while one that failed before must be seen
/// passing to be reported fixed.
pub fn prune_passes(results: &mut Vec<CheckResult>, previous: &[CheckState]) {
    results.retain(|r| {
        r.check_id != DIGEST_CHAIN.id
            || r.status != CheckStatus::Pass
            || !r.resource.starts_with("s3://")
            || previous
                .iter()
                .any(|p| p.check_id == r.check_id && p.resource == r.resource)
    });
}
