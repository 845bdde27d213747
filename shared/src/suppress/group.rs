//! Alert grouping across invocations: findings of one rule, principal and resource within
//! a fixed window (by event time) form one group; only its leader (the first finding to
//! reach the state) alerts, the others are counted with first and last seen times.
//!
//! State: `pk = ALERTGROUP#<hash of rule, principal, resource>`, `sk = <window start>`,
//! a set of `<event time>|<finding id>` members (a redelivered finding is the same member)
//! and `leader`, written only if absent. The leader is decided by DynamoDB, not by the
//! caller, so two invocations racing on one group still alert once; a retried delivery of
//! the leader sees itself as leader again and alerts if its earlier publish failed.

use crate::findings::Finding;
use crate::model::record::parse_time;
use crate::ports::state::{CorrelationState, StateKey, StateUpdate};
use crate::ports::PortError;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Findings a group counts individually (beyond this, the count is "at least").
pub const GROUP_CAP: usize = 1000;

/// What admitting a finding to its group found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOutcome {
    /// Stable group id (alert subscribers can deduplicate on it).
    pub group_id: String,
    /// Whether this finding leads the group (alert it; the others are only counted).
    pub leader: bool,
    /// Findings in the group so far.
    pub count: usize,
    /// The group holds [`GROUP_CAP`] findings: `count` is a lower bound.
    pub saturated: bool,
    /// Earliest event time in the group.
    pub first_seen: String,
    /// Latest event time in the group.
    pub last_seen: String,
}

/// Admit `finding` (about `resource`, when the caller knows one) to its group of
/// `window_secs` seconds.
///
/// # Errors
/// [`PortError`] from the state.
pub async fn admit<S: CorrelationState>(
    state: &S,
    finding: &Finding,
    resource: Option<&str>,
    window_secs: i64,
) -> Result<GroupOutcome, PortError> {
    let window = window_secs.max(1);
    let principal = finding.principal.as_deref().unwrap_or_default();
    let mut h = Sha256::new();
    for part in [
        finding.rule_id.as_str(),
        principal,
        resource.unwrap_or_default(),
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let group_hash = hex::encode(h.finalize().get(..12).unwrap_or_default());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let t = parse_time(&finding.event_time).map_or(now, |t| t.unix_timestamp());
    let start = t.div_euclid(window) * window;
    let update = StateUpdate {
        key: StateKey {
            pk: format!("ALERTGROUP#{group_hash}"),
            sk: start.to_string(),
        },
        add: BTreeMap::from([(
            "f".to_owned(),
            BTreeSet::from([format!("{}|{}", finding.event_time, finding.id)]),
        )]),
        set_if_absent: BTreeMap::from([
            ("leader".to_owned(), finding.id.clone()),
            ("rule_id".to_owned(), finding.rule_id.clone()),
        ]),
        set: BTreeMap::new(),
        cap: GROUP_CAP,
        expires_at: now.max(start) + 2 * window + 86_400,
    };
    let item = state.add(&update).await?;
    let members: Vec<&str> = item.set("f").collect();
    let time_of = |m: &&str| m.split_once('|').map(|(t, _)| t.to_owned());
    Ok(GroupOutcome {
        group_id: format!("{group_hash}-{start}"),
        // a saturated group was led by someone else long ago
        leader: item.scalars.get("leader") == Some(&finding.id),
        count: members.len(),
        saturated: item.full,
        first_seen: members.first().and_then(time_of).unwrap_or_default(),
        last_seen: members.last().and_then(time_of).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{finding_id, Severity};
    use crate::ports::memory_state::MemCorrelationState;

    fn finding(event: &str, time: &str, principal: &str) -> Finding {
        Finding {
            id: finding_id("r", event),
            rule_id: "r".into(),
            title: "t".into(),
            severity: Severity::High,
            tags: vec![],
            event_id: event.into(),
            event_name: "DeleteBucket".into(),
            event_time: time.into(),
            event_source: "s3.amazonaws.com".into(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            source: "s".into(),
            principal: Some(principal.into()),
            source_ip: None,
            error_code: None,
        }
    }

    #[tokio::test]
    async fn one_leader_per_group_with_count_and_span() {
        let s = MemCorrelationState::default();
        let a = finding("a", "2026-11-21T10:05:00Z", "p");
        let b = finding("b", "2026-11-21T10:01:00Z", "p");
        let c = finding("c", "2026-11-21T10:30:00Z", "other");
        let ra = admit(&s, &a, Some("bucket-1"), 3600).await.unwrap();
        let rb = admit(&s, &b, Some("bucket-1"), 3600).await.unwrap();
        let ra2 = admit(&s, &a, Some("bucket-1"), 3600).await.unwrap();
        let rc = admit(&s, &c, Some("bucket-1"), 3600).await.unwrap();
        let rd = admit(&s, &b, Some("bucket-2"), 3600).await.unwrap();
        assert!(ra.leader && !rb.leader && ra2.leader && rc.leader && rd.leader);
        assert_eq!(rb.group_id, ra.group_id);
        assert_ne!(rc.group_id, ra.group_id);
        assert_eq!((rb.count, ra2.count), (2, 2));
        assert_eq!(rb.first_seen, "2026-11-21T10:01:00Z");
        assert_eq!(rb.last_seen, "2026-11-21T10:05:00Z");
        // the next window is a new group
        let later = finding("e", "2026-11-21T11:00:00Z", "p");
        let rl = admit(&s, &later, Some("bucket-1"), 3600).await.unwrap();
        assert!(rl.leader);
        assert_ne!(rl.group_id, ra.group_id);
    }
}
