//! Auto-remediation decisions: which CloudTrail records undo-worthy tampering, and the
//! finding that records each remediation.
//!
//! Three actions, each off unless its switch in [`crate::config::Remediation`] is on:
//! - `StopLogging` (succeeded) on a protected trail → `StartLogging` on it;
//! - `DeleteBucketPublicAccessBlock`, or `PutBucketPublicAccessBlock` with any flag false
//!   or missing, on the trail bucket → put back an all-true public access block;
//! - `CreateAccessKey` for another user by a principal outside `allowed_principals` →
//!   deactivate the new key.
//!
//! Never acts on a failed call (`errorCode`), nor on a call made by the function's own
//! identity ([`OwnIdentity`], learned once at cold start from STS `GetCallerIdentity`):
//! none of the three remediations emits an event that would match again (`StartLogging`,
//! an all-true block, `UpdateAccessKey`), and the own-identity check makes that a rule
//! rather than a coincidence.
//!
//! This module is pure ([`plan`], [`remediation_finding`]); [`apply`] runs a plan through
//! the [`crate::ports::remediate::Remediator`] port.

pub mod apply;

pub use apply::{remediate, Applied, RemediateError};

use crate::config::{Config, Remediation};
use crate::findings::{Finding, Severity};
use crate::model::Record;
use serde_json::Value;

/// One remediation action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `StartLogging` on `trail` (the name or ARN the `StopLogging` call used).
    StartLogging {
        /// Trail name or ARN.
        trail: String,
    },
    /// `PutPublicAccessBlock` with all four flags true on `bucket`.
    RestorePublicAccessBlock {
        /// Bucket name.
        bucket: String,
    },
    /// `UpdateAccessKey Status=Inactive` on `access_key_id` of `user_name`.
    DeactivateAccessKey {
        /// The user the key was created for.
        user_name: String,
        /// The new key's id.
        access_key_id: String,
    },
}

impl Action {
    /// Short kebab-case name (`start-logging`, `public-access-block`, `deactivate-access-key`).
    pub fn name(&self) -> &'static str {
        match self {
            Action::StartLogging { .. } => "start-logging",
            Action::RestorePublicAccessBlock { .. } => "public-access-block",
            Action::DeactivateAccessKey { .. } => "deactivate-access-key",
        }
    }

    /// The rule id of the finding recording this action (`tw-remediation-<name>`).
    pub fn rule_id(&self) -> String {
        format!("tw-remediation-{}", self.name())
    }

    /// What the action changes, for logs and titles.
    pub fn target(&self) -> String {
        match self {
            Action::StartLogging { trail } => format!("trail {trail}"),
            Action::RestorePublicAccessBlock { bucket } => format!("bucket {bucket}"),
            Action::DeactivateAccessKey {
                user_name,
                access_key_id,
            } => format!("access key {access_key_id} of user {user_name}"),
        }
    }
}

/// How a remediation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The action was carried out.
    Done,
    /// Dry run: the action was only logged.
    DryRun,
    /// The action failed permanently (access denied, resource gone); `reason` says why.
    Failed {
        /// The port error, as text.
        reason: String,
    },
}

/// The identity the function runs as, to recognise (and skip) events it caused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnIdentity {
    arn: String,
    account: Option<String>,
    role_name: Option<String>,
}

impl OwnIdentity {
    /// Parse an STS caller ARN: `arn:aws:sts::<acct>:assumed-role/<role>/<session>` (Lambda),
    /// an IAM role ARN, or any other principal ARN (matched exactly).
    pub fn from_arn(arn: &str) -> OwnIdentity {
        let mut parts = arn.splitn(6, ':');
        let (service, account, resource) = (parts.nth(2), parts.nth(1), parts.next());
        let account = account.filter(|a| !a.is_empty()).map(str::to_owned);
        let role_name = match (service, resource) {
            (Some("sts"), Some(r)) => r
                .strip_prefix("assumed-role/")
                .and_then(|r| r.split('/').next()),
            // role ARNs may carry a path: role/path/to/Name
            (Some("iam"), Some(r)) => r.strip_prefix("role/").and_then(|r| r.rsplit('/').next()),
            _ => None,
        }
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
        OwnIdentity {
            arn: arn.to_owned(),
            account,
            role_name,
        }
    }

    /// The caller ARN this identity was built from.
    pub fn as_arn(&self) -> &str {
        &self.arn
    }

    /// The role name, when the identity is a role (assumed or not).
    pub fn role_name(&self) -> Option<&str> {
        self.role_name.as_deref()
    }

    /// Whether `record` is a call made by this identity.
    pub fn is_caller_of(&self, record: &Record) -> bool {
        if record.str_at("userIdentity.arn") == Some(self.arn.as_str()) {
            return true;
        }
        let Some(role) = self.role_name.as_deref() else {
            return false;
        };
        let same_account = match (self.account.as_deref(), caller_account(record)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        if !same_account {
            return false;
        }
        let issuer_role = record
            .str_at("userIdentity.sessionContext.sessionIssuer.arn")
            .and_then(|a| a.split_once(":role/"))
            .and_then(|(_, r)| r.rsplit('/').next());
        let assumed_role = record
            .str_at("userIdentity.arn")
            .and_then(|a| a.split_once(":assumed-role/"))
            .and_then(|(_, r)| r.split('/').next());
        issuer_role == Some(role)
            || assumed_role == Some(role)
            || (record.str_at("userIdentity.sessionContext.sessionIssuer.type") == Some("Role")
                && record.str_at("userIdentity.sessionContext.sessionIssuer.userName")
                    == Some(role))
    }
}

fn caller_account(record: &Record) -> Option<&str> {
    record
        .str_at("userIdentity.accountId")
        .or_else(|| record.str_at("userIdentity.sessionContext.sessionIssuer.accountId"))
        .filter(|a| !a.is_empty())
}

/// Whether any remediation is switched on (the remediator is built only then).
pub fn is_enabled(r: &Remediation) -> bool {
    r.start_logging || r.public_access_block || r.foreign_access_keys
}

/// `*`-wildcard match of a whole string (`*` matches any run, including empty and `/`).
pub fn matches_pattern(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    // position of the last `*` and the text position it was tried at
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match (p.get(pi), t.get(ti)) {
            (Some(b'*'), _) => {
                star = Some((pi, ti));
                pi += 1;
            }
            (Some(a), Some(b)) if a == b => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// A trail named by name or ARN: (region, account, name).
fn trail_ref(s: &str) -> (Option<&str>, Option<&str>, &str) {
    // arn:<partition>:cloudtrail:<region>:<account>:trail/<name>
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "cloudtrail", region, account, res] => match res.strip_prefix("trail/") {
            Some(name) => (Some(*region), Some(*account), name),
            None => (None, None, s),
        },
        _ => (None, None, s),
    }
}

/// Whether the trail `requested` (name or ARN, as in `requestParameters.name`, called in
/// `region` of `account`) is `protected` (name or ARN). Names must be equal; regions and
/// accounts are compared when both sides know them.
pub fn is_protected_trail(
    protected: &str,
    requested: &str,
    region: Option<&str>,
    account: Option<&str>,
) -> bool {
    let (pr, pa, pn) = trail_ref(protected.trim());
    let (rr, ra, rn) = trail_ref(requested.trim());
    // a bare name in the request means the trail of the call's own region and account
    let (rr, ra) = if rr.is_none() {
        (region, account)
    } else {
        (rr, ra)
    };
    let agree = |a: Option<&str>, b: Option<&str>| match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    !pn.is_empty() && pn == rn && agree(pr, rr) && agree(pa, ra)
}

/// A flag of a `PublicAccessBlockConfiguration`: true only when it says true.
fn flag_is_true(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The four flags of S3 public access blocks.
const PUBLIC_ACCESS_BLOCK_FLAGS: [&str; 4] = [
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
];

/// Decide what, if anything, to do about `record`.
pub fn plan(cfg: &Config, record: &Record, own: &OwnIdentity) -> Option<Action> {
    let r = &cfg.remediation;
    if record.error_code().is_some() || own.is_caller_of(record) {
        return None;
    }
    use crate::detect::Event;
    let params = record.get("requestParameters");
    let param = |k: &str| {
        params
            .and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    match (record.event_source()?, record.event_name()?) {
        ("cloudtrail.amazonaws.com", "StopLogging") if r.start_logging => {
            let trail = param("name")?;
            let (region, account) = (record.region(), record.account_id());
            r.protected_trails
                .iter()
                .any(|p| is_protected_trail(p, trail, region, account))
                .then(|| Action::StartLogging {
                    trail: trail.to_owned(),
                })
        }
        (
            "s3.amazonaws.com",
            name @ ("DeleteBucketPublicAccessBlock" | "PutBucketPublicAccessBlock"),
        ) if r.public_access_block => {
            let bucket = param("bucketName")?;
            if cfg.trail_bucket.as_deref() != Some(bucket) {
                return None;
            }
            let weakened = name == "DeleteBucketPublicAccessBlock" || {
                let conf = params.and_then(|p| p.get("PublicAccessBlockConfiguration"));
                // a flag left out of the request is set to false by S3
                !PUBLIC_ACCESS_BLOCK_FLAGS
                    .iter()
                    .all(|f| flag_is_true(conf.and_then(|c| c.get(*f))))
            };
            weakened.then(|| Action::RestorePublicAccessBlock {
                bucket: bucket.to_owned(),
            })
        }
        ("iam.amazonaws.com", "CreateAccessKey") if r.foreign_access_keys => {
            // without userName the key is for the caller itself
            let user = param("userName")?;
            let caller_user = match record.str_at("userIdentity.type") {
                Some("IAMUser") => record.str_at("userIdentity.userName"),
                _ => None,
            };
            if caller_user == Some(user) {
                return None;
            }
            let caller_arns = [
                record.str_at("userIdentity.arn"),
                record.str_at("userIdentity.sessionContext.sessionIssuer.arn"),
            ];
            let allowed = r.allowed_principals.iter().any(|p| {
                caller_arns
                    .iter()
                    .flatten()
                    .any(|arn| matches_pattern(p.trim(), arn))
            });
            if allowed {
                return None;
            }
            let key = record
                .get("responseElements")
                .and_then(|v| v.get("accessKey"))
                .and_then(|v| v.get("accessKeyId"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())?;
            Some(Action::DeactivateAccessKey {
                user_name: user.to_owned(),
                access_key_id: key.to_owned(),
            })
        }
        _ => None,
    }
}

/// Longest failure reason kept in a title (alert subjects are short).
const MAX_REASON_CHARS: usize = 120;

/// The finding recording `action` taken (or not) after `record`. Its id depends only on
/// the action, the outcome kind (done/dry-run vs failed) and the record's `eventID`, so a
/// duplicate delivery finds it stored and does not act again.
pub fn remediation_finding(
    action: &Action,
    outcome: &Outcome,
    record: &Record,
    source: &str,
) -> Finding {
    let (rule_id, title) = match outcome {
        Outcome::Done => (
            action.rule_id(),
            format!("Auto-remediation: {}", done_text(action)),
        ),
        Outcome::DryRun => (
            action.rule_id(),
            format!("Auto-remediation (dry run): would {}", todo_text(action)),
        ),
        Outcome::Failed { reason } => {
            let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
            (
                failed_rule_id(action),
                format!(
                    "Auto-remediation failed: could not {}: {reason}",
                    todo_text(action)
                ),
            )
        }
    };
    // the finding records the action, not the call: no failed attempt of its own
    Finding {
        error_code: None,
        ..Finding::about(
            record,
            source,
            rule_id,
            title,
            Severity::High,
            vec!["remediation".into()],
        )
    }
}

/// Rule id of the finding recording a failed `action`.
pub fn failed_rule_id(action: &Action) -> String {
    format!("tw-remediation-{}-failed", action.name())
}

fn done_text(a: &Action) -> String {
    match a {
        Action::StartLogging { trail } => format!("logging restarted on trail {trail}"),
        Action::RestorePublicAccessBlock { bucket } => {
            format!("public access block restored on bucket {bucket}")
        }
        Action::DeactivateAccessKey {
            user_name,
            access_key_id,
        } => format!("access key {access_key_id} of user {user_name} deactivated"),
    }
}

fn todo_text(a: &Action) -> String {
    match a {
        Action::StartLogging { trail } => format!("restart logging on trail {trail}"),
        Action::RestorePublicAccessBlock { bucket } => {
            format!("restore the public access block on bucket {bucket}")
        }
        Action::DeactivateAccessKey {
            user_name,
            access_key_id,
        } => format!("deactivate access key {access_key_id} of user {user_name}"),
    }
}

#[cfg(test)]
mod tests;
