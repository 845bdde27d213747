//! Suppression and alert grouping, applied between detection and alerting.
//!
//! - [`allowlist`]: the allow-list file (`ALLOWLIST_FILE` / `--allowlist`): expected
//!   activity by rule, principal ARN pattern, account, source CIDR and user agent, each entry
//!   with a reason and an expiry date. [`mark`] applies it to a finding: a matching finding
//!   is still stored, tagged [`SUPPRESSED_TAG`] and `trailwatch.allowlist:<entry id>`, and
//!   never alerted ([`is_suppressed`]).
//! - [`group`]: findings of the same rule + principal + resource within a window become one
//!   alert group in the state table: the first finding (the group's leader) alerts, the rest
//!   are counted with first/last seen times, across invocations and both delivery paths.
//!
//! Owns no I/O of its own except through [`crate::ports::state::CorrelationState`].

pub mod allowlist;
pub mod group;

pub use allowlist::{AllowList, AllowListError, Entry, Subject};

use crate::findings::Finding;
use time::OffsetDateTime;

/// Tag carried by every suppressed finding (stored, never alerted).
pub const SUPPRESSED_TAG: &str = "trailwatch.suppressed";
/// Prefix of the tag naming the allow-list entry that suppressed a finding.
pub const ENTRY_TAG_PREFIX: &str = "trailwatch.allowlist:";

/// Apply `list` to `finding` (with the record's `userAgent` when known): when an active
/// entry matches, tag the finding as suppressed and return the entry.
pub fn mark<'l>(
    list: &'l AllowList,
    finding: &mut Finding,
    user_agent: Option<&str>,
    now: OffsetDateTime,
) -> Option<&'l Entry> {
    if is_suppressed(finding) {
        return None;
    }
    let entry = list.matching(
        &Subject {
            finding,
            user_agent,
        },
        now,
    )?;
    finding.tags.push(SUPPRESSED_TAG.to_owned());
    finding.tags.push(format!("{ENTRY_TAG_PREFIX}{}", entry.id));
    Some(entry)
}

/// [`mark`] each finding (with its record's `userAgent` when known) at one `now`; returns
/// how many the list suppressed.
pub fn mark_all<'f>(
    list: &AllowList,
    findings: impl IntoIterator<Item = (&'f mut Finding, Option<String>)>,
) -> u64 {
    let now = OffsetDateTime::now_utc();
    findings
        .into_iter()
        .map(|(f, user_agent)| u64::from(mark(list, f, user_agent.as_deref(), now).is_some()))
        .sum()
}

/// Whether `finding` was suppressed by the allow-list (store it, do not alert it).
pub fn is_suppressed(finding: &Finding) -> bool {
    finding.tags.iter().any(|t| t == SUPPRESSED_TAG)
}

/// The `userAgent` of a record's JSON text, for [`mark`] when only the text is at hand.
pub fn user_agent_of(record_json: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Ua {
        #[serde(rename = "userAgent")]
        user_agent: Option<String>,
    }
    serde_json::from_str::<Ua>(record_json).ok()?.user_agent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{finding_id, Severity};
    use time::macros::datetime;

    #[test]
    fn marking_tags_once_and_reads_the_user_agent() {
        let list = AllowList::parse(
            "a.yml",
            "entries:\n  - id: ci\n    reason: deploys\n    expires: 2027-01-01\n    user_agents: ['terraform/*']\n",
        )
        .unwrap();
        let mut f = Finding {
            episode_start: None,
            id: finding_id("r", "e"),
            rule_id: "r".into(),
            title: "t".into(),
            severity: Severity::High,
            tags: vec!["attack.t1098".into()],
            event_id: "e".into(),
            event_name: "AttachRolePolicy".into(),
            event_time: "2026-11-21T10:00:00Z".into(),
            event_source: "iam.amazonaws.com".into(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            source: "s".into(),
            principal: None,
            source_ip: None,
            error_code: None,
        };
        let ua = user_agent_of(
            r#"{"eventID":"e","userAgent":"terraform/1.9.0 (+https://www.terraform.io)"}"#,
        );
        let now = datetime!(2026-11-23 0:00 UTC);
        assert!(mark(&list, &mut f.clone(), Some("aws-cli/2"), now).is_none());
        assert_eq!(mark(&list, &mut f, ua.as_deref(), now).unwrap().id, "ci");
        assert!(is_suppressed(&f));
        assert_eq!(
            f.tags,
            ["attack.t1098", SUPPRESSED_TAG, "trailwatch.allowlist:ci"]
        );
        assert!(mark(&list, &mut f, ua.as_deref(), now).is_none());
        assert_eq!(f.tags.len(), 3);
    }
}
