//! config-auditor handler: a scheduled event → collect the snapshot, evaluate the checks,
//! validate the digest chain, compare with the stored states, alert on changes (and the
//! daily digest), store the new states.
//!
//! The audit time is the event's `time` (the scheduled instant): a retried invocation
//! evaluates the same instant and publishes the same alert ids. Alerts are published
//! before the states are written, so a failure in between re-alerts (same ids) rather than
//! losing an alert. Transient errors → `Err` (Lambda retries the async invoke); permanent
//! ones (a denied table, a malformed event) → `Ok` with one `error!` and a metric.

use std::num::NonZeroUsize;
use std::time::Instant;

use futures::{stream, StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::{error, info, instrument, warn};

use crate::audit::checks::chain::{self, ChainError};
use crate::audit::checks::{self, CheckResult, EvalOptions, Scope, CHECKS, DIGEST_CHAIN};
use crate::audit::digest::DigestSource;
use crate::audit::state;
use crate::config::Config;
use crate::metrics::{self, Unit};
use crate::ports::trail::{
    BucketAuditSource, CheckState, CheckStateStore, CheckStatus, TrailSource,
};
use crate::ports::{Notifier, PortError};

/// Everything the auditor talks to.
pub trait AuditorPorts: Send + Sync {
    /// CloudTrail.
    type Trails: TrailSource;
    /// S3 and S3 Control reads.
    type Buckets: BucketAuditSource;
    /// Check states (DynamoDB).
    type State: CheckStateStore;
    /// Alerts (SNS).
    type Notifier: Notifier;
    /// Digest and log objects of one bucket.
    type Digests: DigestSource;
    /// CloudTrail reads.
    fn trails(&self) -> &Self::Trails;
    /// Bucket and account reads.
    fn buckets(&self) -> &Self::Buckets;
    /// The state store.
    fn state(&self) -> &Self::State;
    /// The notifier.
    fn notifier(&self) -> &Self::Notifier;
    /// A digest source reading `bucket`.
    fn digest_source(&self, bucket: &str) -> Self::Digests;
    /// The region the function runs in (used when the event names none).
    fn region(&self) -> &str;
}

/// Why an audit run did not finish.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// An AWS call failed.
    #[error("audit run failed")]
    Port(#[from] PortError),
    /// Digest validation could not finish.
    #[error("digest chain validation failed")]
    Chain(#[from] ChainError),
    /// No account id in the event and no trail to take it from.
    #[error(
        "cannot tell which account to audit: the event has no `account` and no trail was found"
    )]
    NoAccount,
}

impl AuditError {
    /// Whether the invocation should be retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            AuditError::Port(e) => e.is_retryable(),
            AuditError::Chain(e) => e.is_retryable(),
            AuditError::NoAccount => false,
        }
    }
}

/// What one run did (also the function's response).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditSummary {
    /// Account audited.
    pub account_id: String,
    /// Region audited.
    pub region: String,
    /// Audit time (RFC 3339).
    pub audit_time: String,
    /// Results evaluated (checks × resources, digest objects included).
    pub results: usize,
    /// Failing results.
    pub failing: usize,
    /// Results that could not be evaluated.
    pub unknown: usize,
    /// Alerts published (changes + digest).
    pub alerts: usize,
    /// Digest and log objects validated.
    pub digest_files: usize,
    /// Milliseconds spent validating digests.
    pub digest_ms: u64,
    /// Whether the daily digest went out in this run.
    pub daily_digest_sent: bool,
    /// Set when the run stopped on a permanent error (the invocation is not retried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn event_time(ev: &Value) -> Option<OffsetDateTime> {
    ev.get("time")
        .and_then(Value::as_str)
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

/// Handles one scheduled (EventBridge) event; any JSON object is accepted (`account`,
/// `region`, `time` are used when present).
///
/// # Errors
/// [`AuditError`] when the run should be retried (throttling, 5xx, timeouts). Permanent
/// failures are logged and returned as `Ok` with [`AuditSummary::error`] set.
#[instrument(skip_all, fields(function = "config-auditor"))]
pub async fn handle<P: AuditorPorts>(
    cfg: &Config,
    ports: &P,
    event: Value,
) -> Result<AuditSummary, AuditError> {
    let now = event_time(&event).unwrap_or_else(OffsetDateTime::now_utc);
    let region = event
        .get("region")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .unwrap_or(ports.region())
        .to_owned();
    let account = event
        .get("account")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .map(str::to_owned);
    match run(cfg, ports, account, &region, now).await {
        Ok(s) => {
            info!(
                account_id = %s.account_id,
                results = s.results,
                failing = s.failing,
                unknown = s.unknown,
                alerts = s.alerts,
                digest_files = s.digest_files,
                digest_ms = s.digest_ms,
                "audit done"
            );
            metrics::emit(
                &[("Function", "config-auditor")],
                &[
                    ("AuditFailing", s.failing as f64, Unit::Count),
                    ("AuditUnknown", s.unknown as f64, Unit::Count),
                    ("AuditAlerts", s.alerts as f64, Unit::Count),
                    (
                        "DigestValidationTime",
                        s.digest_ms as f64,
                        Unit::Milliseconds,
                    ),
                ],
            );
            Ok(s)
        }
        Err(e) if e.is_retryable() => {
            warn!(error = ?e, "audit run failed transiently; retrying");
            Err(e)
        }
        Err(e) => {
            error!(error = ?e, region = %region, "audit run failed permanently");
            metrics::emit(
                &[("Function", "config-auditor")],
                &[("AuditErrors", 1.0, Unit::Count)],
            );
            Ok(AuditSummary {
                region,
                audit_time: checks::rfc3339(now),
                error: Some(format!("{e}: {}", error_chain(&e))),
                ..AuditSummary::default()
            })
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// One audit run at `now`.
///
/// # Errors
/// [`AuditError`] from the ports (classified) or the digest validation.
pub async fn run<P: AuditorPorts>(
    cfg: &Config,
    ports: &P,
    account: Option<String>,
    region: &str,
    now: OffsetDateTime,
) -> Result<AuditSummary, AuditError> {
    let account_id = match account {
        Some(a) => a,
        None => ports
            .trails()
            .describe_trails()
            .await?
            .iter()
            .find_map(|t| t.account().map(str::to_owned))
            .ok_or(AuditError::NoAccount)?,
    };
    let scope = Scope {
        account_id: account_id.clone(),
        region: region.to_owned(),
        trail_name: cfg.trail_name.clone(),
    };
    let snap = checks::collect(ports.trails(), ports.buckets(), &scope, cfg.max_in_flight).await?;
    let mut results = checks::evaluate(
        &snap,
        &EvalOptions {
            now,
            retention_min_days: cfg.audit_retention_min_days,
        },
    );

    let started = Instant::now();
    let mut digest_files = 0usize;
    for t in snap.audited().filter(|t| t.info.log_file_validation) {
        let Some(bucket) = t.info.s3_bucket.as_deref() else {
            continue;
        };
        let source = ports.digest_source(bucket);
        match chain::digest_chain(
            ports.trails(),
            ports.buckets(),
            &source,
            t,
            now,
            cfg.max_in_flight,
        )
        .await
        {
            Ok(r) => {
                digest_files += r.files_checked;
                results.extend(r.results);
            }
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                warn!(trail = %t.info.arn, error = ?e, "digest chain cannot be validated");
                results.push(CheckResult {
                    check_id: DIGEST_CHAIN.id,
                    resource: t.info.arn.clone(),
                    status: CheckStatus::Unknown,
                    detail: format!("{e}: {}", error_chain(&e)),
                });
            }
        }
    }
    let digest_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

    let previous = load_states(ports.state(), cfg.max_in_flight).await?;
    chain::prune_passes(&mut results, &previous);
    let diff = state::diff(&previous, &results, &account_id, region, now);

    // alert when the check's severity reaches the threshold (resolved and "cannot audit"
    // alerts follow the check they are about)
    let mut alerts: Vec<_> = diff
        .changes
        .iter()
        .filter(|c| c.state.severity >= cfg.min_alert_severity)
        .map(|c| c.to_alert(&account_id))
        .collect();
    if !alerts.is_empty() {
        ports.notifier().publish(&alerts).await?;
    }
    if !diff.states.is_empty() {
        ports.state().save(&diff.states).await?;
    }

    let mut daily_digest_sent = false;
    if cfg.daily_digest {
        let last = ports.state().last_digest_date().await?;
        if state::digest_due(last.as_deref(), now) {
            let mut all: Vec<CheckState> = diff.states.clone();
            all.extend(previous.into_iter().filter(|p| {
                !diff
                    .states
                    .iter()
                    .any(|s| s.check_id == p.check_id && s.resource == p.resource)
            }));
            let digest = state::daily_digest(&all, &account_id, now);
            ports
                .notifier()
                .publish(std::slice::from_ref(&digest))
                .await?;
            ports
                .state()
                .set_last_digest_date(&state::utc_date(now))
                .await?;
            alerts.push(digest);
            daily_digest_sent = true;
        }
    }

    Ok(AuditSummary {
        account_id,
        region: region.to_owned(),
        audit_time: checks::rfc3339(now),
        results: results.len(),
        failing: results
            .iter()
            .filter(|r| r.status == CheckStatus::Fail)
            .count(),
        unknown: results
            .iter()
            .filter(|r| r.status == CheckStatus::Unknown)
            .count(),
        alerts: alerts.len(),
        digest_files,
        digest_ms,
        daily_digest_sent,
        error: None,
    })
}

/// Every stored state of every check (one query per check, bounded).
async fn load_states<S: CheckStateStore>(
    store: &S,
    max_in_flight: NonZeroUsize,
) -> Result<Vec<CheckState>, PortError> {
    let per_check: Vec<Vec<CheckState>> = stream::iter(CHECKS.iter())
        .map(|c| store.load(c.id))
        .buffered(max_in_flight.get())
        .try_collect()
        .await?;
    Ok(per_check.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests;
