//! [`Config`]: every setting the functions read from the environment, read once in `main`.
//!
//! This is the only place that calls `std::env::var`; tests build a `Config` literally or
//! with [`Config::from_lookup`]. Errors name the variable.

use crate::findings::Severity;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;

/// A missing or malformed environment variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set (or empty).
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    /// A variable has a value that does not parse.
    #[error("environment variable {name}={value:?} is invalid: {why}")]
    Invalid {
        /// Variable.
        name: &'static str,
        /// Value found.
        value: String,
        /// Why it is wrong.
        why: String,
    },
}

/// Longest accepted `ALERT_GROUP_WINDOW_SECS` (7 days): a longer window would keep a
/// burst silent for days after its first alert.
pub const MAX_ALERT_GROUP_WINDOW_SECS: u64 = 7 * 86_400;

/// Auto-remediation switches (event-handler), all off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remediation {
    /// `REMEDIATE_START_LOGGING`: `StartLogging` after `StopLogging` on a protected trail.
    pub start_logging: bool,
    /// `REMEDIATE_PUBLIC_ACCESS_BLOCK`: restore the trail bucket's public access block.
    pub public_access_block: bool,
    /// `REMEDIATE_FOREIGN_ACCESS_KEYS`: deactivate access keys created for another user.
    pub foreign_access_keys: bool,
    /// `REMEDIATION_DRY_RUN`: log what would be done, do nothing.
    pub dry_run: bool,
    /// `REMEDIATION_ALLOWED_PRINCIPALS`: comma-separated ARN patterns (`*` wildcard) whose
    /// access-key creations for other users are expected.
    pub allowed_principals: Vec<String>,
    /// `PROTECTED_TRAILS`: trail names/ARNs to keep logging (default: `TRAIL_NAME`).
    pub protected_trails: Vec<String>,
}

/// Runtime configuration shared by the three functions.
#[derive(Debug, Clone)]
pub struct Config {
    /// `FINDINGS_TABLE`: DynamoDB table (string keys `pk`, `sk`).
    pub findings_table: String,
    /// `ALERTS_TOPIC_ARN`: SNS topic for alerts.
    pub alerts_topic_arn: String,
    /// `TRAIL_NAME`: the trail this stack deployed (optional for the processors).
    pub trail_name: Option<String>,
    /// `TRAIL_BUCKET`: its bucket.
    pub trail_bucket: Option<String>,
    /// `MIN_ALERT_SEVERITY` (default `medium`).
    pub min_alert_severity: Severity,
    /// `RETENTION_DAYS`: TTL of stored findings (default 365).
    pub retention_days: u32,
    /// `MAX_IN_FLIGHT`: concurrent AWS calls / objects per invocation (default 8).
    pub max_in_flight: NonZeroUsize,
    /// `MAX_RECORD_BYTES`: largest record accepted (default 32 MiB).
    pub max_record_bytes: usize,
    /// `RULES_DIR`: load rules from here instead of the bundled pack.
    pub rules_dir: Option<PathBuf>,
    /// `FLOOD_THRESHOLD`: more findings than this of one rule and principal in one
    /// invocation are summarised into one alert (default 20).
    pub flood_threshold: usize,
    /// `DEADLINE_MARGIN_MS`: stop starting new work this long before the Lambda deadline
    /// (default 10 000).
    pub deadline_margin_ms: u64,
    /// Auto-remediation (event-handler).
    pub remediation: Remediation,
    /// `AUDIT_RETENTION_MIN_DAYS`: minimum log retention the auditor accepts (default 365,
    /// never below 90).
    pub audit_retention_min_days: u32,
    /// `DAILY_DIGEST`: the auditor sends a daily summary of still-failing checks.
    pub daily_digest: bool,
    /// `ALLOWLIST_FILE`: the allow-list (`suppress::AllowList`) applied before alerting;
    /// suppressed findings are still stored. None: nothing is suppressed.
    pub allowlist_file: Option<PathBuf>,
    /// `ALERT_GROUP_WINDOW_SECS`: findings of one rule, principal and resource within a
    /// window this long (fixed windows by event time) form one alert group across
    /// invocations; only the group's first finding alerts, with threshold updates at 10,
    /// 100 and 1000 (`suppress::group`). Default 3600; 0 turns grouping off.
    pub alert_group_window_secs: u64,
}

impl Config {
    /// A configuration with defaults for everything but the table and topic (tests, CLI).
    pub fn new(findings_table: impl Into<String>, alerts_topic_arn: impl Into<String>) -> Self {
        Config {
            findings_table: findings_table.into(),
            alerts_topic_arn: alerts_topic_arn.into(),
            trail_name: None,
            trail_bucket: None,
            min_alert_severity: Severity::Medium,
            retention_days: 365,
            max_in_flight: NonZeroUsize::new(8).unwrap_or(NonZeroUsize::MIN),
            max_record_bytes: 32 * 1024 * 1024,
            rules_dir: None,
            flood_threshold: 20,
            deadline_margin_ms: 10_000,
            remediation: Remediation::default(),
            audit_retention_min_days: 365,
            daily_digest: false,
            allowlist_file: None,
            alert_group_window_secs: 3600,
        }
    }

    /// Read the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first missing or invalid variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Read configuration through `get` (the environment, or a map in tests).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first missing or invalid variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let opt = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let req = |k: &'static str| opt(k).ok_or(ConfigError::Missing(k));
        let mut c = Config::new(req("FINDINGS_TABLE")?, req("ALERTS_TOPIC_ARN")?);
        c.trail_name = opt("TRAIL_NAME");
        c.trail_bucket = opt("TRAIL_BUCKET");
        if let Some(v) = opt("MIN_ALERT_SEVERITY") {
            c.min_alert_severity = parse("MIN_ALERT_SEVERITY", &v)?;
        }
        if let Some(v) = opt("RETENTION_DAYS") {
            c.retention_days = parse("RETENTION_DAYS", &v)?;
        }
        if let Some(v) = opt("MAX_IN_FLIGHT") {
            c.max_in_flight = parse("MAX_IN_FLIGHT", &v)?;
        }
        if let Some(v) = opt("MAX_RECORD_BYTES") {
            c.max_record_bytes = parse("MAX_RECORD_BYTES", &v)?;
        }
        c.rules_dir = opt("RULES_DIR").map(PathBuf::from);
        if let Some(v) = opt("FLOOD_THRESHOLD") {
            c.flood_threshold = parse("FLOOD_THRESHOLD", &v)?;
        }
        if let Some(v) = opt("DEADLINE_MARGIN_MS") {
            c.deadline_margin_ms = parse("DEADLINE_MARGIN_MS", &v)?;
        }
        let flag = |k: &'static str| -> Result<bool, ConfigError> {
            match opt(k) {
                None => Ok(false),
                Some(v) => parse_bool(k, &v),
            }
        };
        let list = |k: &str| -> Vec<String> {
            opt(k)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        c.remediation = Remediation {
            start_logging: flag("REMEDIATE_START_LOGGING")?,
            public_access_block: flag("REMEDIATE_PUBLIC_ACCESS_BLOCK")?,
            foreign_access_keys: flag("REMEDIATE_FOREIGN_ACCESS_KEYS")?,
            dry_run: flag("REMEDIATION_DRY_RUN")?,
            allowed_principals: list("REMEDIATION_ALLOWED_PRINCIPALS"),
            protected_trails: {
                let mut t = list("PROTECTED_TRAILS");
                if t.is_empty() {
                    t.extend(c.trail_name.clone());
                }
                t
            },
        };
        if let Some(v) = opt("AUDIT_RETENTION_MIN_DAYS") {
            let days: u32 = parse("AUDIT_RETENTION_MIN_DAYS", &v)?;
            if days < 90 {
                return Err(ConfigError::Invalid {
                    name: "AUDIT_RETENTION_MIN_DAYS",
                    value: v,
                    why: "must be at least 90 days".into(),
                });
            }
            c.audit_retention_min_days = days;
        }
        c.daily_digest = flag("DAILY_DIGEST")?;
        c.allowlist_file = opt("ALLOWLIST_FILE").map(PathBuf::from);
        if let Some(v) = opt("ALERT_GROUP_WINDOW_SECS") {
            let secs: u64 = parse("ALERT_GROUP_WINDOW_SECS", &v)?;
            // a window longer than the findings' TTL would outlive its own items
            if secs > MAX_ALERT_GROUP_WINDOW_SECS {
                return Err(ConfigError::Invalid {
                    name: "ALERT_GROUP_WINDOW_SECS",
                    value: v,
                    why: format!("must be at most {MAX_ALERT_GROUP_WINDOW_SECS} (7 days)"),
                });
            }
            c.alert_group_window_secs = secs;
        }
        Ok(c)
    }
}

fn parse<T: FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError::Invalid {
        name,
        value: value.to_owned(),
        why: e.to_string(),
    })
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid {
            name,
            value: value.to_owned(),
            why: "expected true or false".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn required_and_defaults() {
        let e = cfg(&[("ALERTS_TOPIC_ARN", "arn")]).unwrap_err();
        assert!(e.to_string().contains("FINDINGS_TABLE"));
        let c = cfg(&[
            ("FINDINGS_TABLE", "t"),
            ("ALERTS_TOPIC_ARN", "arn"),
            ("TRAIL_NAME", "main"),
        ])
        .unwrap();
        assert_eq!(c.min_alert_severity, Severity::Medium);
        assert_eq!(c.retention_days, 365);
        assert_eq!(c.remediation.protected_trails, ["main"]);
        assert!(!c.remediation.start_logging);
        assert_eq!(c.alert_group_window_secs, 3600);
        let c = cfg(&[
            ("FINDINGS_TABLE", "t"),
            ("ALERTS_TOPIC_ARN", "arn"),
            ("ALERT_GROUP_WINDOW_SECS", "0"),
        ])
        .unwrap();
        assert_eq!(c.alert_group_window_secs, 0);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let e = cfg(&[
            ("FINDINGS_TABLE", "t"),
            ("ALERTS_TOPIC_ARN", "a"),
            ("MIN_ALERT_SEVERITY", "urgent"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("MIN_ALERT_SEVERITY"), "{e}");
        let e = cfg(&[
            ("FINDINGS_TABLE", "t"),
            ("ALERTS_TOPIC_ARN", "a"),
            ("AUDIT_RETENTION_MIN_DAYS", "30"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("at least 90"), "{e}");
        let e = cfg(&[
            ("FINDINGS_TABLE", "t"),
            ("ALERTS_TOPIC_ARN", "a"),
            ("REMEDIATE_START_LOGGING", "maybe"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("REMEDIATE_START_LOGGING"), "{e}");
        for bad in ["-1", "1h", "604801"] {
            let e = cfg(&[
                ("FINDINGS_TABLE", "t"),
                ("ALERTS_TOPIC_ARN", "a"),
                ("ALERT_GROUP_WINDOW_SECS", bad),
            ])
            .unwrap_err();
            assert!(e.to_string().contains("ALERT_GROUP_WINDOW_SECS"), "{e}");
        }
    }
}
