//! Carry out a [`plan`](super::plan) through the ports: check it was not already recorded,
//! act (or only log, in dry-run), and return the finding that records what happened.
//!
//! Idempotent under duplicate delivery: the recording finding's id is deterministic, and
//! an event whose remediation (or remediation failure) is already stored is not acted on
//! again. Between acting and storing, a retry acts a second time; every action is
//! idempotent on the AWS side, so that repeats nothing visible. Storing and alerting the
//! returned finding is the caller's job (the same deliver path as every finding).

use super::{plan, remediation_finding, Action, Outcome, OwnIdentity};
use crate::config::Config;
use crate::findings::Finding;
use crate::model::Record;
use crate::ports::remediate::{FindingLookup, Remediator};
use crate::ports::PortError;

/// A remediation that should be retried (a transient failure).
#[derive(Debug, thiserror::Error)]
pub enum RemediateError {
    /// Checking whether the remediation was already recorded failed.
    #[error("checking for an earlier {action} remediation of event {event_id}")]
    Lookup {
        /// The action's name.
        action: &'static str,
        /// The record's `eventID`.
        event_id: String,
        /// The port error.
        #[source]
        source: PortError,
    },
    /// The action itself failed.
    #[error("remediation {action} of event {event_id}")]
    Act {
        /// The action's name.
        action: &'static str,
        /// The record's `eventID`.
        event_id: String,
        /// The port error.
        #[source]
        source: PortError,
    },
}

impl RemediateError {
    /// Whether retrying the invocation may succeed (permanent failures never get here:
    /// they become a "remediation failed" finding).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Lookup { source, .. } | Self::Act { source, .. } => source.is_retryable(),
        }
    }
}

/// What [`remediate`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Nothing to do for this record.
    NotApplicable,
    /// The remediation of this record is already recorded (duplicate delivery).
    AlreadyRecorded,
    /// Acted (or dry-run, or failed permanently): store and alert this finding.
    Recorded(Box<Finding>),
}

/// Remediate `record` if the plan says so.
///
/// # Errors
/// [`RemediateError`] only for transient failures (the invocation should be retried); a
/// permanent failure (access denied, resource gone) is logged and returned as
/// [`Applied::Recorded`] with a "remediation failed" finding, to be alerted.
pub async fn remediate<R: Remediator, L: FindingLookup>(
    cfg: &Config,
    remediator: &R,
    lookup: &L,
    record: &Record,
    source: &str,
) -> Result<Applied, RemediateError> {
    let own = OwnIdentity::from_arn(remediator.acting_as());
    let Some(action) = plan(cfg, record, &own) else {
        return Ok(Applied::NotApplicable);
    };
    let event_id = record.event_id_or_digest();
    let name = action.name();
    let dry_run = cfg.remediation.dry_run;
    let recorded = remediation_finding(
        &action,
        if dry_run {
            &Outcome::DryRun
        } else {
            &Outcome::Done
        },
        record,
        source,
    );
    let failed = remediation_finding(
        &action,
        &Outcome::Failed {
            reason: String::new(),
        },
        record,
        source,
    );
    for earlier in [&recorded, &failed] {
        match lookup.contains(earlier).await {
            Ok(true) => {
                tracing::info!(
                    event_id,
                    action = name,
                    rule_id = earlier.rule_id,
                    "remediation already recorded"
                );
                return Ok(Applied::AlreadyRecorded);
            }
            Ok(false) => {}
            Err(e) if e.is_retryable() => {
                return Err(RemediateError::Lookup {
                    action: name,
                    event_id,
                    source: e,
                })
            }
            // acting twice is harmless, not acting is not: go on without the check
            Err(e) => {
                tracing::warn!(event_id, action = name, error = %e, "remediation lookup failed, acting anyway")
            }
        }
    }
    let target = action.target();
    if dry_run {
        tracing::warn!(event_id, action = name, target, "dry run: would remediate");
        return Ok(Applied::Recorded(Box::new(recorded)));
    }
    match act(remediator, &action).await {
        Ok(()) => {
            tracing::warn!(event_id, action = name, target, "remediated");
            Ok(Applied::Recorded(Box::new(recorded)))
        }
        Err(e) if e.is_retryable() => Err(RemediateError::Act {
            action: name,
            event_id,
            source: e,
        }),
        Err(e) => {
            tracing::error!(event_id, action = name, target, error = %e, "remediation failed");
            let reason = e.to_string();
            Ok(Applied::Recorded(Box::new(remediation_finding(
                &action,
                &Outcome::Failed { reason },
                record,
                source,
            ))))
        }
    }
}

async fn act<R: Remediator>(r: &R, action: &Action) -> Result<(), PortError> {
    match action {
        Action::StartLogging { trail } => r.start_logging(trail).await,
        Action::RestorePublicAccessBlock { bucket } => r.restore_public_access_block(bucket).await,
        Action::DeactivateAccessKey {
            user_name,
            access_key_id,
        } => r.deactivate_access_key(user_name, access_key_id).await,
    }
}
