//! Alerts: which findings of one invocation are alerted, and how they read.
//!
//! Input: the findings that are new or stored but not yet alerted. Output: an
//! [`AlertPlan`], one [`Alert`] per finding at or above `min_alert_severity`, except that
//! more than `flood_threshold` findings of one rule and principal collapse into one summary
//! alert (count, first/last event time, up to [`MAX_EXAMPLES`] example event ids), so a
//! runaway script pages once, not a thousand times. The plan also lists every finding an
//! alert covers, for `mark_alerted` after a successful publish. Pure: no I/O.
//!
//! Alert groups ([`crate::suppress::group`]) add two shapes: a group leader's alert carries
//! a `group` object ([`GroupSummary`]: id, count, first/last seen, resource) and, when the
//! group already holds more than one finding, a count in its subject; an *update* alert
//! ([`group_update`]) announces that a group reached a threshold.
//!
//! Subjects follow SNS's rules for email subjects: ASCII, no line breaks or control
//! characters, fewer than 100 characters (longer ones are cut with `...`).

use crate::findings::{finding_id, Finding, Severity};
use crate::ports::Alert;
use crate::Config;
use serde_json::json;
use std::collections::HashMap;

/// Longest subject (SNS: "less than 100 characters").
pub const MAX_SUBJECT_CHARS: usize = 99;
/// Example event ids listed in a flood summary.
pub const MAX_EXAMPLES: usize = 10;
/// Largest body; SNS's message limit is 256 KiB for a whole batch entry.
pub const MAX_BODY_BYTES: usize = 200 * 1024;

/// What to publish, and which findings that covers.
#[derive(Debug, Default)]
pub struct AlertPlan<'a> {
    /// The alerts, most severe first.
    pub alerts: Vec<Alert>,
    /// Every finding an alert covers (mark these alerted once published).
    pub covered: Vec<&'a Finding>,
}

/// An alert group as its leader's alert or an update alert reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GroupSummary {
    /// Group id (`<hash>-<window start>`); stored findings carry it as `group_id`.
    pub id: String,
    /// Findings in the group so far.
    pub count: usize,
    /// The group stopped counting individual findings: `count` is a lower bound.
    pub saturated: bool,
    /// Earliest event time in the group.
    pub first_seen: String,
    /// Latest event time in the group.
    pub last_seen: String,
    /// The resource the group is about, when the records named one.
    pub resource: Option<String>,
}

impl GroupSummary {
    fn count_text(&self) -> String {
        if self.saturated {
            format!("{}+", self.count)
        } else {
            self.count.to_string()
        }
    }
}

/// Make `s` a valid SNS subject: printable ASCII only, at most [`MAX_SUBJECT_CHARS`].
pub fn subject_safe(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| match c {
            '\u{2014}' | '\u{2013}' => '-',
            c if c.is_ascii_graphic() || c == ' ' => c,
            c if c.is_whitespace() || c.is_control() => ' ',
            _ => '?',
        })
        .collect();
    let clean = clean.trim();
    if clean.chars().count() <= MAX_SUBJECT_CHARS {
        return clean.to_owned();
    }
    // all ASCII now, so byte = char
    let mut out: String = clean.chars().take(MAX_SUBJECT_CHARS - 3).collect();
    out.push_str("...");
    out
}

fn upper(sev: Severity) -> String {
    sev.as_str().to_ascii_uppercase()
}

fn non_empty(s: &str) -> &str {
    if s.is_empty() {
        "unknown"
    } else {
        s
    }
}

/// The subject of a single-finding alert.
pub fn subject_for(f: &Finding) -> String {
    let who = f.principal.as_deref().unwrap_or("unknown principal");
    subject_safe(&format!(
        "[{}] {} - {} by {} in {}",
        upper(f.severity),
        f.title,
        non_empty(&f.event_name),
        who,
        non_empty(&f.account_id)
    ))
}

fn explanation(f: &Finding) -> String {
    let outcome = match &f.error_code {
        Some(code) if !code.is_empty() => format!(" (failed attempt: {code})"),
        _ => String::new(),
    };
    format!(
        "Rule {} matched {} from {} in account {} region {}{}.",
        f.rule_id,
        non_empty(&f.event_name),
        non_empty(&f.event_source),
        non_empty(&f.account_id),
        non_empty(&f.region),
        outcome
    )
}

/// Cut a JSON body that would exceed the limit down to its identifying fields.
fn bounded_body(full: serde_json::Value, fallback: serde_json::Value) -> String {
    let text = full.to_string();
    if text.len() <= MAX_BODY_BYTES {
        text
    } else {
        fallback.to_string()
    }
}

fn single(f: &Finding, group: Option<&GroupSummary>) -> Alert {
    let mut body = serde_json::to_value(f).unwrap_or_else(|_| json!({}));
    if let Some(obj) = body.as_object_mut() {
        obj.insert("explanation".into(), json!(explanation(f)));
        if let Some(g) = group {
            obj.insert("group".into(), json!(g));
        }
    }
    let subject = match group {
        Some(g) if g.count > 1 => {
            let who = f.principal.as_deref().unwrap_or("unknown principal");
            subject_safe(&format!(
                "[{}] {} x {} - {} by {} in {}",
                upper(f.severity),
                g.count_text(),
                f.title,
                non_empty(&f.event_name),
                who,
                non_empty(&f.account_id)
            ))
        }
        _ => subject_for(f),
    };
    let fallback = json!({
        "id": f.id, "rule_id": f.rule_id, "severity": f.severity,
        "event_id": f.event_id, "explanation": "finding too large for an alert; see the findings table",
    });
    Alert {
        subject,
        body: bounded_body(body, fallback),
        severity: f.severity,
        rule_id: non_empty(&f.rule_id).to_owned(),
        account_id: non_empty(&f.account_id).to_owned(),
        id: f.id.clone(),
    }
}

fn flood(group: &[&Finding]) -> Option<Alert> {
    let first = group
        .iter()
        .min_by(|a, b| a.event_time.cmp(&b.event_time))?;
    let last = group
        .iter()
        .max_by(|a, b| a.event_time.cmp(&b.event_time))?;
    let severity = group.iter().map(|f| f.severity).max()?;
    let principal = first.principal.as_deref().unwrap_or("unknown principal");
    let accounts: Vec<&str> = {
        let mut a: Vec<&str> = group.iter().map(|f| f.account_id.as_str()).collect();
        a.sort_unstable();
        a.dedup();
        a
    };
    let account = if accounts.len() == 1 {
        non_empty(accounts.first().copied().unwrap_or_default())
    } else {
        "multiple"
    };
    // stable id: the same group (same findings) always gets the same summary id
    let smallest = group.iter().map(|f| f.id.as_str()).min()?;
    let id = finding_id(&first.rule_id, &format!("flood\0{principal}\0{smallest}"));
    let examples: Vec<&str> = group
        .iter()
        .take(MAX_EXAMPLES)
        .map(|f| f.event_id.as_str())
        .collect();
    let body = json!({
        "summary": true,
        "id": id,
        "rule_id": first.rule_id,
        "title": first.title,
        "severity": severity,
        "principal": principal,
        "account_id": account,
        "count": group.len(),
        "first_event_time": first.event_time,
        "last_event_time": last.event_time,
        "example_event_ids": examples,
        "explanation": format!(
            "{} findings of rule {} by {} in one batch; summarised into one alert. \
             Every finding is in the findings table.",
            group.len(), first.rule_id, principal
        ),
    });
    let fallback =
        json!({"summary": true, "id": id, "rule_id": first.rule_id, "count": group.len()});
    Some(Alert {
        subject: subject_safe(&format!(
            "[{}] {} x {} - by {} in {}",
            upper(severity),
            group.len(),
            first.title,
            principal,
            account
        )),
        body: bounded_body(body, fallback),
        severity,
        rule_id: non_empty(&first.rule_id).to_owned(),
        account_id: account.to_owned(),
        id,
    })
}

/// The update alert of group `g`, carried by its finding `f`, for reaching `threshold`.
/// Its id is `<group id>-update-<threshold>`, the same whoever sends it.
pub fn group_update(f: &Finding, g: &GroupSummary, threshold: usize) -> Alert {
    let principal = f.principal.as_deref().unwrap_or("unknown principal");
    let id = format!("{}-update-{threshold}", g.id);
    let on = g
        .resource
        .as_deref()
        .map(|r| format!(" on {r}"))
        .unwrap_or_default();
    let body = json!({
        "update": true,
        "id": id,
        "rule_id": f.rule_id,
        "title": f.title,
        "severity": f.severity,
        "principal": principal,
        "account_id": non_empty(&f.account_id),
        "threshold": threshold,
        "group": g,
        "example_finding_id": f.id,
        "example_event_id": f.event_id,
        "explanation": format!(
            "Alert group {} (rule {} by {}{}) reached {} findings between {} and {}. Only its \
             first finding was alerted; the others are stored with group_id {}.",
            g.id, f.rule_id, principal, on, g.count_text(), g.first_seen, g.last_seen, g.id
        ),
    });
    let fallback = json!({"update": true, "id": id, "rule_id": f.rule_id, "count": g.count});
    Alert {
        subject: subject_safe(&format!(
            "[{}] Update: {} x {} - by {} in {}",
            upper(f.severity),
            g.count_text(),
            f.title,
            principal,
            non_empty(&f.account_id)
        )),
        body: bounded_body(body, fallback),
        severity: f.severity,
        rule_id: non_empty(&f.rule_id).to_owned(),
        account_id: non_empty(&f.account_id).to_owned(),
        id,
    }
}

/// Whether `f` is worth an alert under `cfg`: at or above the threshold and not suppressed
/// by the allow-list ([`crate::suppress::is_suppressed`]).
pub fn is_alertable(cfg: &Config, f: &Finding) -> bool {
    f.severity >= cfg.min_alert_severity && !crate::suppress::is_suppressed(f)
}

/// Plan the alerts for `findings` (new or not yet alerted) under `cfg`'s threshold and
/// flood limit. Findings suppressed by the allow-list ([`crate::suppress::is_suppressed`])
/// are stored by the caller but never alerted: they are left out here.
pub fn plan<'a>(cfg: &Config, findings: &[&'a Finding]) -> AlertPlan<'a> {
    plan_grouped(cfg, findings, &HashMap::new())
}

/// [`plan`], where the findings that lead an alert group (by finding id in `leaders`) carry
/// their group in their alert.
pub fn plan_grouped<'a>(
    cfg: &Config,
    findings: &[&'a Finding],
    leaders: &HashMap<String, GroupSummary>,
) -> AlertPlan<'a> {
    // group by (rule, principal), keeping first-seen order
    let mut order: Vec<(&str, Option<&str>)> = Vec::new();
    let mut groups: HashMap<(&str, Option<&str>), Vec<&'a Finding>> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for f in findings.iter().copied() {
        if !is_alertable(cfg, f) || !seen.insert(f.id.as_str()) {
            continue;
        }
        let k = (f.rule_id.as_str(), f.principal.as_deref());
        groups
            .entry(k)
            .or_insert_with(|| {
                order.push(k);
                Vec::new()
            })
            .push(f);
    }
    let mut out = AlertPlan::default();
    for k in order {
        let Some(group) = groups.remove(&k) else {
            continue;
        };
        if group.len() > cfg.flood_threshold {
            if let Some(a) = flood(&group) {
                out.alerts.push(a);
                out.covered.extend(group);
            }
        } else {
            for f in group {
                out.alerts.push(single(f, leaders.get(&f.id)));
                out.covered.push(f);
            }
        }
    }
    // most severe first (stable: first-seen order within a severity)
    out.alerts.sort_by_key(|a| std::cmp::Reverse(a.severity));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: &str, event: &str, sev: Severity, principal: &str) -> Finding {
        Finding {
            episode_start: None,
            id: finding_id(rule, event),
            rule_id: rule.into(),
            title: "CloudTrail logging stopped".into(),
            severity: sev,
            tags: vec![],
            event_id: event.into(),
            event_name: "StopLogging".into(),
            event_time: format!("2024-01-01T00:00:{:02}Z", event.len() % 60),
            event_source: "cloudtrail.amazonaws.com".into(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            source: "s3://b/k".into(),
            principal: Some(principal.into()),
            source_ip: None,
            error_code: None,
        }
    }

    fn cfg(threshold: usize) -> Config {
        let mut c = Config::new("t", "arn:aws:sns:us-east-1:111122223333:a");
        c.flood_threshold = threshold;
        c
    }

    #[test]
    fn subject_reads_well_and_respects_sns_limits() {
        let f = finding(
            "r",
            "e",
            Severity::High,
            "arn:aws:iam::111122223333:user/alice",
        );
        assert_eq!(
            subject_for(&f),
            "[HIGH] CloudTrail logging stopped - StopLogging by arn:aws:iam::111122223333:user/alice in 111122223333"
                .chars()
                .take(96)
                .collect::<String>()
                + "..."
        );
        let mut long = f.clone();
        long.principal = Some(format!(
            "arn:aws:sts::1:assumed-role/{}\n/é",
            "x".repeat(200)
        ));
        let s = subject_for(&long);
        assert_eq!(s.chars().count(), MAX_SUBJECT_CHARS);
        assert!(s.ends_with("...") && s.is_ascii() && !s.contains('\n'));
        let mut short = f;
        short.principal = Some("root".into());
        assert_eq!(
            subject_for(&short),
            "[HIGH] CloudTrail logging stopped - StopLogging by root in 111122223333"
        );
        assert_eq!(subject_safe("a\u{2014}b\tc\u{e9}"), "a-b c?");
    }

    #[test]
    fn threshold_filters_and_body_explains() {
        let hi = finding("r1", "e1", Severity::High, "p");
        let lo = finding("r2", "e2", Severity::Low, "p");
        let plan = plan(&cfg(20), &[&lo, &hi]);
        assert_eq!(plan.alerts.len(), 1);
        assert_eq!(plan.covered.len(), 1);
        assert_eq!(plan.covered[0].id, hi.id);
        let a = &plan.alerts[0];
        assert_eq!(
            (a.severity, a.rule_id.as_str(), a.account_id.as_str()),
            (Severity::High, "r1", "111122223333")
        );
        let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(body["id"], hi.id);
        assert_eq!(body["event_id"], "e1");
        assert!(body["explanation"]
            .as_str()
            .unwrap()
            .starts_with("Rule r1 matched StopLogging"));
    }

    #[test]
    fn floods_of_one_rule_and_principal_are_summarised() {
        let many: Vec<Finding> = (0..25)
            .map(|i| finding("r1", &format!("ev-{i:03}"), Severity::Medium, "bot"))
            .collect();
        let other = finding("r1", "other", Severity::High, "alice");
        let mut refs: Vec<&Finding> = many.iter().collect();
        refs.push(&other);
        let plan = plan(&cfg(20), &refs);
        assert_eq!(plan.alerts.len(), 2);
        assert_eq!(plan.covered.len(), 26);
        let summary = plan.alerts.iter().find(|a| a.id != other.id).unwrap();
        let body: serde_json::Value = serde_json::from_str(&summary.body).unwrap();
        assert_eq!(body["count"], 25);
        assert_eq!(body["example_event_ids"].as_array().unwrap().len(), 10);
        assert_eq!(body["principal"], "bot");
        assert!(summary.subject.starts_with("[MEDIUM] 25 x "));
        // the high single alert sorts first
        assert_eq!(plan.alerts[0].id, other.id);
        // exactly at the threshold: no summary
        let plan = plan_for(&many[..20]);
        assert_eq!(plan, 20);
        // the same group always gets the same summary id
        let again = super::plan(&cfg(20), &refs);
        assert_eq!(again.alerts[1].id, summary.id);
    }

    #[test]
    fn suppressed_findings_are_not_alerted() {
        let alerted = finding("r1", "e1", Severity::High, "p");
        let mut quiet = finding("r1", "e2", Severity::Critical, "p");
        quiet.tags.push(crate::suppress::SUPPRESSED_TAG.to_owned());
        let plan = plan(&cfg(20), &[&quiet, &alerted]);
        assert_eq!(plan.alerts.len(), 1);
        assert_eq!(plan.alerts[0].id, alerted.id);
        assert_eq!(plan.covered.len(), 1);
        assert_eq!(plan.covered[0].id, alerted.id);
    }

    fn plan_for(fs: &[Finding]) -> usize {
        let refs: Vec<&Finding> = fs.iter().collect();
        plan(&cfg(20), &refs).alerts.len()
    }

    #[test]
    fn group_leaders_and_updates_carry_the_group() {
        let f = finding("r1", "e1", Severity::High, "bot");
        let g = GroupSummary {
            id: "abc-3600".into(),
            count: 1000,
            saturated: true,
            first_seen: "2024-01-01T00:00:00Z".into(),
            last_seen: "2024-01-01T00:59:00Z".into(),
            resource: Some("bucket-1".into()),
        };
        let leaders = HashMap::from([(f.id.clone(), g.clone())]);
        let p = plan_grouped(&cfg(20), &[&f], &leaders);
        assert_eq!(p.alerts.len(), 1);
        assert_eq!(p.alerts[0].id, f.id);
        assert!(p.alerts[0]
            .subject
            .starts_with("[HIGH] 1000+ x CloudTrail logging stopped"));
        let body: serde_json::Value = serde_json::from_str(&p.alerts[0].body).unwrap();
        assert_eq!(body["group"]["id"], "abc-3600");
        assert_eq!(body["group"]["resource"], "bucket-1");
        // a group of one reads like any single alert
        let one = GroupSummary {
            count: 1,
            saturated: false,
            ..g.clone()
        };
        let p = plan_grouped(&cfg(20), &[&f], &HashMap::from([(f.id.clone(), one)]));
        assert_eq!(p.alerts[0].subject, subject_for(&f));
        let u = group_update(&f, &g, 1000);
        assert_eq!(u.id, "abc-3600-update-1000");
        assert!(u
            .subject
            .starts_with("[HIGH] Update: 1000+ x CloudTrail logging stopped - by bot"));
        let body: serde_json::Value = serde_json::from_str(&u.body).unwrap();
        assert_eq!(
            (body["update"].as_bool(), body["threshold"].as_u64()),
            (Some(true), Some(1000))
        );
        assert!(body["explanation"]
            .as_str()
            .unwrap()
            .contains("on bucket-1"));
    }
}
