//! The allow-list file: known-good activity that must not alert.
//!
//! ```yaml
//! entries:
//!   - id: cspm-scanner                  # optional; defaults to entry-<n>
//!     reason: CSPM scanner enumerates every service nightly   # required
//!     expires: 2027-06-30               # required (UTC, inclusive)
//!     rules: [tw-corr-enumeration-*]    # globs over rule ids
//!     principals: ["arn:aws:sts::*:assumed-role/cspm-scanner/*"]   # globs over ARNs
//!     accounts: ["111122223333"]
//!     source_cidrs: [10.0.0.0/8]
//!     user_agents: ["*prowler*"]        # globs, case-insensitive
//! ```
//!
//! An entry matches a finding when every criterion it names matches (one of the listed
//! values each); it must name at least one criterion, so an entry can never silence
//! everything by accident. Expired entries match nothing and are reported by
//! [`AllowList::expired`] so they get renewed or removed. JSON with the same shape is
//! accepted (it is YAML). Globs: `*` any run of characters, `?` one character.

use crate::findings::Finding;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;
use time::{Date, OffsetDateTime};

/// A malformed allow-list file.
#[derive(Debug, thiserror::Error)]
pub enum AllowListError {
    /// The file could not be read.
    #[error("reading allow-list {file}")]
    Read {
        /// File name.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not YAML/JSON.
    #[error("allow-list {file} is not valid YAML: {message}")]
    Syntax {
        /// File name.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// Valid YAML with the wrong shape (unknown field, missing reason, ...).
    #[error("allow-list {file}: {message}")]
    Shape {
        /// File name.
        file: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    entries: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    #[serde(default)]
    id: Option<String>,
    reason: String,
    expires: String,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    principals: Vec<String>,
    #[serde(default)]
    accounts: Vec<String>,
    #[serde(default)]
    source_cidrs: Vec<String>,
    #[serde(default)]
    user_agents: Vec<String>,
}

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Name used in reports and in the stored finding's suppression mark.
    pub id: String,
    /// Why the activity is expected.
    pub reason: String,
    /// Last day (UTC) the entry applies.
    pub expires: Date,
    rules: Vec<String>,
    principals: Vec<String>,
    accounts: Vec<String>,
    source_cidrs: Vec<IpNet>,
    user_agents: Vec<String>,
}

/// What an entry is matched against: a finding and, when known, the record's user agent.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The finding.
    pub finding: &'a Finding,
    /// `userAgent` of the record.
    pub user_agent: Option<&'a str>,
}

impl Entry {
    /// Whether the entry still applies at `now`.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        now.date() <= self.expires
    }

    fn matches(&self, s: &Subject<'_>) -> bool {
        let f = s.finding;
        let any = |globs: &[String], v: Option<&str>, fold: bool| {
            globs.is_empty() || v.is_some_and(|v| globs.iter().any(|g| glob_match(g, v, fold)))
        };
        any(&self.rules, Some(&f.rule_id), false)
            && any(&self.principals, f.principal.as_deref(), false)
            && (self.accounts.is_empty() || self.accounts.contains(&f.account_id))
            && (self.source_cidrs.is_empty()
                || f.source_ip
                    .as_deref()
                    .and_then(|ip| ip.parse::<IpAddr>().ok())
                    .is_some_and(|ip| self.source_cidrs.iter().any(|n| n.contains(&ip))))
            && any(&self.user_agents, s.user_agent, true)
    }
}

/// A loaded allow-list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowList {
    entries: Vec<Entry>,
}

impl AllowList {
    /// Parse an allow-list (`file` names it in errors).
    ///
    /// # Errors
    /// [`AllowListError::Syntax`] or [`AllowListError::Shape`], naming the entry.
    pub fn parse(file: &str, text: &str) -> Result<AllowList, AllowListError> {
        let shape = |message: String| AllowListError::Shape {
            file: file.to_owned(),
            message,
        };
        let docs =
            yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| AllowListError::Syntax {
                file: file.to_owned(),
                message: e.to_string(),
            })?;
        let value = match docs.first() {
            None => return Ok(AllowList::default()),
            Some(doc) => to_json(doc, 0).ok_or_else(|| shape("nesting too deep".into()))?,
        };
        let raw: RawFile = serde_json::from_value(value).map_err(|e| shape(e.to_string()))?;
        let mut entries = Vec::with_capacity(raw.entries.len());
        for (i, r) in raw.entries.into_iter().enumerate() {
            let id = r.id.clone().unwrap_or_else(|| format!("entry-{}", i + 1));
            let bad = |m: String| shape(format!("entry {id}: {m}"));
            if r.reason.trim().is_empty() {
                return Err(bad("`reason` is empty".into()));
            }
            let expires = Date::parse(
                r.expires.trim(),
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map_err(|e| bad(format!("`expires` must be YYYY-MM-DD: {e}")))?;
            if r.rules.is_empty()
                && r.principals.is_empty()
                && r.accounts.is_empty()
                && r.source_cidrs.is_empty()
                && r.user_agents.is_empty()
            {
                return Err(bad(
                    "names no criterion (rules, principals, accounts, source_cidrs, user_agents); it would suppress everything".into(),
                ));
            }
            let source_cidrs = r
                .source_cidrs
                .iter()
                .map(|c| parse_cidr(c).ok_or_else(|| bad(format!("invalid CIDR `{c}`"))))
                .collect::<Result<Vec<_>, _>>()?;
            entries.push(Entry {
                id,
                reason: r.reason,
                expires,
                rules: r.rules,
                principals: r.principals,
                accounts: r.accounts,
                source_cidrs,
                user_agents: r.user_agents,
            });
        }
        Ok(AllowList { entries })
    }

    /// Read and parse `path` (once, at start-up).
    ///
    /// # Errors
    /// As [`AllowList::parse`], plus [`AllowListError::Read`].
    pub fn load(path: &std::path::Path) -> Result<AllowList, AllowListError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AllowListError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&file, &text)
    }

    /// Every entry.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Entries past their expiry date at `now` (they no longer suppress anything).
    pub fn expired(&self, now: OffsetDateTime) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| !e.is_active(now))
    }

    /// The first active entry matching `subject`.
    pub fn matching(&self, subject: &Subject<'_>, now: OffsetDateTime) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.is_active(now) && e.matches(subject))
    }
}

fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// `*`/`?` glob match (iterative, linear backtracking: no blow-up on hostile patterns).
pub fn glob_match(pattern: &str, text: &str, fold_case: bool) -> bool {
    let fold = |c: char| if fold_case { c.to_ascii_lowercase() } else { c };
    let p: Vec<char> = pattern.chars().map(fold).collect();
    let t: Vec<char> = text.chars().map(fold).collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == t.get(ti) => {
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
    p.get(pi..).unwrap_or_default().iter().all(|&c| c == '*')
}

fn to_json(y: &yaml_rust2::Yaml, depth: usize) -> Option<serde_json::Value> {
    use serde_json::Value;
    use yaml_rust2::Yaml;
    if depth > 32 {
        return None;
    }
    Some(match y {
        Yaml::Real(s) | Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::String(i.to_string()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(
            a.iter()
                .map(|v| to_json(v, depth + 1))
                .collect::<Option<Vec<_>>>()?,
        ),
        Yaml::Hash(h) => {
            let mut m = serde_json::Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => continue,
                };
                m.insert(key, to_json(v, depth + 1)?);
            }
            Value::Object(m)
        }
        Yaml::Null | Yaml::BadValue | Yaml::Alias(_) => Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{finding_id, Severity};
    use time::macros::datetime;

    fn finding(rule: &str, principal: &str, ip: &str) -> Finding {
        Finding {
            episode_start: None,
            id: finding_id(rule, "e1"),
            rule_id: rule.into(),
            title: "t".into(),
            severity: Severity::Medium,
            tags: vec![],
            event_id: "e1".into(),
            event_name: "ListUsers".into(),
            event_time: "2026-11-21T10:00:00Z".into(),
            event_source: "iam.amazonaws.com".into(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            source: "test".into(),
            principal: Some(principal.into()),
            source_ip: Some(ip.into()),
            error_code: None,
        }
    }

    const FILE: &str = r#"
entries:
  - id: scanner
    reason: CSPM scanner enumerates nightly
    expires: 2027-06-30
    rules: [tw-corr-enumeration-*]
    principals: ["arn:aws:sts::*:assumed-role/cspm-scanner/*"]
    source_cidrs: [10.0.0.0/8, 192.0.2.7]
  - reason: old exception
    expires: 2026-01-31
    accounts: ["111122223333"]
  - id: prowler
    reason: quarterly audit
    expires: 2027-01-01
    user_agents: ["*Prowler*"]
"#;

    #[test]
    fn entries_match_on_every_named_criterion() {
        let list = AllowList::parse("a.yml", FILE).unwrap();
        let now = datetime!(2026-11-23 12:00 UTC);
        let f = finding(
            "tw-corr-enumeration-ratio",
            "arn:aws:sts::111122223333:assumed-role/cspm-scanner/run-1",
            "10.1.2.3",
        );
        let s = Subject {
            finding: &f,
            user_agent: None,
        };
        assert_eq!(list.matching(&s, now).unwrap().id, "scanner");
        // wrong address: the scanner entry no longer matches; the expired one never does
        let f2 = finding(
            "tw-corr-enumeration-ratio",
            "arn:aws:sts::111122223333:assumed-role/cspm-scanner/run-1",
            "203.0.113.9",
        );
        let s2 = Subject {
            finding: &f2,
            user_agent: Some("aws-cli/2"),
        };
        assert!(list.matching(&s2, now).is_none());
        // user agent globs are case-insensitive
        let s3 = Subject {
            finding: &f2,
            user_agent: Some("prowler/4.2 botocore"),
        };
        assert_eq!(list.matching(&s3, now).unwrap().id, "prowler");
        let expired: Vec<&str> = list.expired(now).map(|e| e.id.as_str()).collect();
        assert_eq!(expired, ["entry-2"]);
        // the expiry day itself still applies
        assert!(list.matching(&s, datetime!(2027-06-30 23:59 UTC)).is_some());
        assert!(list.matching(&s, datetime!(2027-07-01 00:00 UTC)).is_none());
    }

    #[test]
    fn malformed_lists_are_rejected_with_the_entry() {
        let e = AllowList::parse(
            "a.yml",
            "entries:\n  - reason: x\n    expires: 2027-01-01\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("names no criterion"), "{e}");
        let e = AllowList::parse(
            "a.yml",
            "entries:\n  - id: z\n    reason: x\n    expires: soon\n    accounts: ['1']\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("entry z: `expires`"), "{e}");
        let e = AllowList::parse(
            "a.yml",
            "entries:\n  - reason: x\n    expires: 2027-01-01\n    principal: ['a']\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = AllowList::parse(
            "a.yml",
            "entries:\n  - reason: ''\n    expires: 2027-01-01\n    accounts: ['1']\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("reason"), "{e}");
        assert!(AllowList::parse("a.yml", "entries: [").is_err());
        // JSON is YAML
        let j = AllowList::parse(
            "a.json",
            r#"{"entries":[{"reason":"r","expires":"2027-01-01","source_cidrs":["203.0.113.0/24"]}]}"#,
        )
        .unwrap();
        assert_eq!(j.entries().len(), 1);
    }

    #[test]
    fn globs() {
        assert!(glob_match(
            "arn:aws:iam::*:role/ci-*",
            "arn:aws:iam::1:role/ci-deploy",
            false
        ));
        assert!(!glob_match(
            "arn:aws:iam::*:role/ci-*",
            "arn:aws:iam::1:role/app",
            false
        ));
        assert!(glob_match("a?c", "abc", false));
        assert!(!glob_match("ABC", "abc", false));
        assert!(glob_match("ABC", "abc", true));
        assert!(glob_match("*", "", false));
        assert!(!glob_match(
            "a*b*c*d*e*f*g*h*i*j*k",
            &"a".repeat(2000),
            false
        ));
    }
}
