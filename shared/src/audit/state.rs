//! Check state and change detection: "state, not spam".
//!
//! Each (check, resource) keeps its last status and since when. A run alerts only on
//! changes: newly failing (at the check's severity), fixed (a low "resolved" alert), and
//! newly unauditable (a low "cannot audit" alert). A result that stays the same is stored
//! (its `last_run` moves) and not alerted. The optional daily digest summarises everything
//! still failing once per UTC day. Pure functions; the handler does the I/O.

use std::collections::HashMap;

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::checks::{rfc3339, CheckResult};
use crate::findings::{finding_id, Severity};
use crate::ports::trail::{CheckState, CheckStatus};
use crate::ports::Alert;

/// What changed for one (check, resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Failing now, was passing, unknown or never seen.
    Failing,
    /// Passing now, was failing.
    Resolved,
    /// Cannot be evaluated now (access denied), was evaluated or never seen.
    Unauditable,
}

impl ChangeKind {
    /// `failing`, `resolved`, `unauditable`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Failing => "failing",
            ChangeKind::Resolved => "resolved",
            ChangeKind::Unauditable => "unauditable",
        }
    }
}

/// One change to alert on.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What changed.
    pub kind: ChangeKind,
    /// The new state.
    pub state: CheckState,
    /// The previous status, if the check had run on this resource before.
    pub previous: Option<CheckStatus>,
}

/// The new states to store and the changes to alert on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff {
    /// One state per result.
    pub states: Vec<CheckState>,
    /// Changes, in result order.
    pub changes: Vec<Change>,
}

/// Compares this run's results with the stored states.
pub fn diff(
    previous: &[CheckState],
    results: &[CheckResult],
    account_id: &str,
    region: &str,
    now: OffsetDateTime,
) -> Diff {
    let prev: HashMap<(&str, &str), &CheckState> = previous
        .iter()
        .map(|s| ((s.check_id.as_str(), s.resource.as_str()), s))
        .collect();
    let mut d = Diff::default();
    for r in results {
        let before = prev.get(&(r.check_id, r.resource.as_str())).copied();
        let prev_status = before.map(|s| s.status);
        let since = match before {
            Some(b) if b.status == r.status => b.since,
            _ => now,
        };
        let state = CheckState {
            check_id: r.check_id.to_owned(),
            resource: r.resource.clone(),
            status: r.status,
            since,
            last_run: now,
            detail: r.detail.clone(),
            severity: r.check().map_or(Severity::Medium, |c| c.severity),
            finding: (r.status != CheckStatus::Pass).then(|| r.to_finding(account_id, region, now)),
        };
        let kind = match (r.status, prev_status) {
            (CheckStatus::Fail, Some(CheckStatus::Fail)) => None,
            (CheckStatus::Fail, _) => Some(ChangeKind::Failing),
            (CheckStatus::Pass, Some(CheckStatus::Fail)) => Some(ChangeKind::Resolved),
            (CheckStatus::Pass, _) => None,
            (CheckStatus::Unknown, Some(CheckStatus::Unknown)) => None,
            (CheckStatus::Unknown, _) => Some(ChangeKind::Unauditable),
        };
        if let Some(kind) = kind {
            d.changes.push(Change {
                kind,
                state: state.clone(),
                previous: prev_status,
            });
        }
        d.states.push(state);
    }
    d
}

/// SNS email subjects: at most 100 characters, no line breaks.
fn subject(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= 100 {
        clean
    } else {
        let mut s: String = clean.chars().take(99).collect();
        s.push('…');
        s
    }
}

impl Change {
    /// The alert for this change. Its id is stable per (check, resource, status, since),
    /// so a retried run publishes the same id and subscribers can deduplicate.
    pub fn to_alert(&self, account_id: &str) -> Alert {
        let s = &self.state;
        let check = super::checks::check_by_id(&s.check_id);
        let title = check.map_or(s.check_id.as_str(), |c| c.title);
        let severity = match self.kind {
            ChangeKind::Failing => s.severity,
            ChangeKind::Resolved | ChangeKind::Unauditable => Severity::Low,
        };
        let headline = match self.kind {
            ChangeKind::Failing => format!(
                "[{}] audit failing: {title}",
                s.severity.as_str().to_uppercase()
            ),
            ChangeKind::Resolved => format!("[RESOLVED] {title}"),
            ChangeKind::Unauditable => format!("[LOW] cannot audit: {title}"),
        };
        let event_id = format!("{}#{}", s.check_id, s.resource);
        let body = json!({
            "kind": self.kind.as_str(),
            "check_id": s.check_id,
            "title": title,
            "resource": s.resource,
            "status": s.status.as_str(),
            "previous_status": self.previous.map(CheckStatus::as_str),
            "severity": severity,
            "check_severity": s.severity,
            "detail": s.detail,
            "controls": check.map(|c| c.controls),
            "remediation": check.map(|c| c.remediation),
            "since": rfc3339(s.since),
            "finding_id": finding_id(&s.check_id, &event_id),
            "account_id": account_id,
        });
        Alert {
            subject: subject(&format!("trailwatch {headline}")),
            body: body.to_string(),
            severity,
            rule_id: s.check_id.clone(),
            account_id: account_id.to_owned(),
            id: finding_id(
                &s.check_id,
                &format!("{event_id}#{}#{}", s.status.as_str(), rfc3339(s.since)),
            ),
        }
    }
}

/// Rule id of the daily digest alert.
pub const DAILY_DIGEST_ID: &str = "tw-audit-daily-digest";

/// States not run for this long are left out of the digest (a digest file that left the
/// validation window, a trail that was deleted).
const DIGEST_STALE_AFTER: Duration = Duration::hours(48);

/// The UTC date of `now` as `YYYY-MM-DD`.
pub fn utc_date(now: OffsetDateTime) -> String {
    let d = now.to_offset(time::UtcOffset::UTC).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Whether the daily digest is due: none was sent on `now`'s UTC date.
pub fn digest_due(last_sent: Option<&str>, now: OffsetDateTime) -> bool {
    last_sent != Some(utc_date(now).as_str())
}

/// The daily digest: every state still failing or unknown (run in the last 48 h), worst
/// first. Sent even when nothing fails ("all clear" is a heartbeat of the auditor).
pub fn daily_digest(states: &[CheckState], account_id: &str, now: OffsetDateTime) -> Alert {
    let mut open: Vec<&CheckState> = states
        .iter()
        .filter(|s| s.status != CheckStatus::Pass && now - s.last_run <= DIGEST_STALE_AFTER)
        .collect();
    open.sort_by(|a, b| {
        (
            b.status == CheckStatus::Fail,
            b.severity,
            &a.check_id,
            &a.resource,
        )
            .cmp(&(
                a.status == CheckStatus::Fail,
                a.severity,
                &b.check_id,
                &b.resource,
            ))
    });
    let failing = open
        .iter()
        .filter(|s| s.status == CheckStatus::Fail)
        .count();
    let unknown = open.len() - failing;
    let severity = open
        .iter()
        .filter(|s| s.status == CheckStatus::Fail)
        .map(|s| s.severity)
        .max()
        .unwrap_or(Severity::Info);
    let date = utc_date(now);
    let items: Vec<_> = open
        .iter()
        .map(|s| {
            json!({
                "check_id": s.check_id,
                "resource": s.resource,
                "status": s.status.as_str(),
                "severity": s.severity,
                "since": rfc3339(s.since),
                "detail": s.detail,
            })
        })
        .collect();
    let body = json!({
        "kind": "daily-digest",
        "date": date,
        "failing": failing,
        "unknown": unknown,
        "checks": items,
        "account_id": account_id,
    });
    Alert {
        subject: subject(&format!(
            "trailwatch daily audit {date}: {failing} failing, {unknown} cannot be audited"
        )),
        body: body.to_string(),
        severity,
        rule_id: DAILY_DIGEST_ID.into(),
        account_id: account_id.to_owned(),
        id: finding_id(DAILY_DIGEST_ID, &format!("{account_id}#{date}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::checks::{BUCKET_PAB, TRAIL_LOGGING};
    use time::macros::datetime;

    fn result(check: &'static str, res: &str, status: CheckStatus) -> CheckResult {
        CheckResult {
            check_id: check,
            resource: res.into(),
            status,
            detail: format!("{status:?}"),
        }
    }

    const T1: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);
    const T2: OffsetDateTime = datetime!(2026-11-23 11:00 UTC);
    const T3: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

    #[test]
    fn alerts_only_on_changes() {
        let id = TRAIL_LOGGING.id;
        let first = diff(
            &[],
            &[
                result(id, "a", CheckStatus::Fail),
                result(id, "b", CheckStatus::Pass),
                result(BUCKET_PAB.id, "c", CheckStatus::Unknown),
            ],
            "1",
            "us-east-1",
            T1,
        );
        let kinds: Vec<_> = first
            .changes
            .iter()
            .map(|c| (c.kind, c.state.resource.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [(ChangeKind::Failing, "a"), (ChangeKind::Unauditable, "c")]
        );
        assert_eq!(first.states.len(), 3);
        assert!(first.states[0].finding.is_some() && first.states[1].finding.is_none());

        // same results again: nothing to alert, `since` kept, `last_run` moves
        let second = diff(
            &first.states,
            &[
                result(id, "a", CheckStatus::Fail),
                result(id, "b", CheckStatus::Pass),
            ],
            "1",
            "us-east-1",
            T2,
        );
        assert!(second.changes.is_empty());
        assert_eq!(second.states[0].since, T1);
        assert_eq!(second.states[0].last_run, T2);

        // a fixed, b broken, c now evaluable and passing (no alert: it was never failing)
        let third = diff(
            &second
                .states
                .iter()
                .chain(&first.states[2..])
                .cloned()
                .collect::<Vec<_>>(),
            &[
                result(id, "a", CheckStatus::Pass),
                result(id, "b", CheckStatus::Fail),
                result(BUCKET_PAB.id, "c", CheckStatus::Pass),
            ],
            "1",
            "us-east-1",
            T3,
        );
        let kinds: Vec<_> = third.changes.iter().map(|c| (c.kind, c.previous)).collect();
        assert_eq!(
            kinds,
            [
                (ChangeKind::Resolved, Some(CheckStatus::Fail)),
                (ChangeKind::Failing, Some(CheckStatus::Pass))
            ]
        );
        assert_eq!(third.states[0].since, T3);
    }

    #[test]
    fn alerts_carry_severity_and_stable_ids() {
        let d = diff(
            &[],
            &[result(TRAIL_LOGGING.id, "arn:t", CheckStatus::Fail)],
            "1",
            "r",
            T1,
        );
        let a = d.changes[0].to_alert("1");
        assert_eq!(a.severity, Severity::High);
        assert_eq!(a.rule_id, "tw-audit-trail-logging");
        assert!(
            a.subject.starts_with("trailwatch [HIGH] audit failing"),
            "{}",
            a.subject
        );
        assert!(a.subject.chars().count() <= 100);
        let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(body["resource"], "arn:t");
        assert_eq!(body["kind"], "failing");
        assert!(body["remediation"]
            .as_str()
            .unwrap()
            .contains("start-logging"));
        // the same change computed again (a retried run) has the same id
        let again = diff(
            &[],
            &[result(TRAIL_LOGGING.id, "arn:t", CheckStatus::Fail)],
            "1",
            "r",
            T1,
        );
        assert_eq!(again.changes[0].to_alert("1").id, a.id);
        let fixed = diff(
            &d.states,
            &[result(TRAIL_LOGGING.id, "arn:t", CheckStatus::Pass)],
            "1",
            "r",
            T2,
        );
        let r = fixed.changes[0].to_alert("1");
        assert_eq!(r.severity, Severity::Low);
        assert!(r.subject.contains("[RESOLVED]"));
        assert_ne!(r.id, a.id);
    }

    #[test]
    fn daily_digest_lists_open_checks_once_a_day() {
        let d = diff(
            &[],
            &[
                result(TRAIL_LOGGING.id, "t", CheckStatus::Fail),
                result(BUCKET_PAB.id, "b", CheckStatus::Fail),
                result(BUCKET_PAB.id, "ok", CheckStatus::Pass),
                result(TRAIL_LOGGING.id, "u", CheckStatus::Unknown),
            ],
            "1",
            "r",
            T1,
        );
        let mut states = d.states.clone();
        // a state not run for three days is stale and left out
        let mut stale = states[0].clone();
        stale.resource = "old".into();
        stale.last_run = T1 - Duration::days(3);
        states.push(stale);
        let a = daily_digest(&states, "1", T2);
        let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(body["failing"], 2);
        assert_eq!(body["unknown"], 1);
        let order: Vec<&str> = body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["resource"].as_str().unwrap())
            .collect();
        // failing first, worst first, then by check id
        assert_eq!(order, ["b", "t", "u"]);
        assert_eq!(a.severity, Severity::High);
        assert!(digest_due(None, T2));
        assert!(!digest_due(Some("2026-11-23"), T2));
        assert!(digest_due(Some("2026-11-22"), T2));
        assert_eq!(daily_digest(&[], "1", T2).severity, Severity::Info);
    }
}
