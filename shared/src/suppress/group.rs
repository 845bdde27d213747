//! Alert grouping across invocations: findings of one rule, principal and resource within
//! a fixed window (by event time) form one group; only its leader (the first finding to
//! reach the state) alerts, the others are counted with first and last seen times, and the
//! group re-alerts once as an *update* when its count reaches each of [`UPDATE_THRESHOLDS`].
//!
//! State: `pk = ALERTGROUP#<hash of rule, principal, resource>`, `sk = <window start>`,
//! a set `f` of `<event time>|<finding id>` members (a redelivered finding is the same
//! member, so a duplicate adds nothing), `leader` and `update_<n>` written only if absent.
//! Both decisions are made by the state, not by the caller: two invocations racing on one
//! group alert once, and one of them announces each threshold. A retried delivery of the
//! leader (or of a threshold's announcer) finds itself named again and alerts again, so a
//! publish that failed is retried.
//!
//! The resource is [`resource_of`] the finding's record; without one the group is rule +
//! principal. Must not publish or store findings: [`crate::handler::deliver`] does that.

use crate::findings::alert::GroupSummary;
use crate::findings::Finding;
use crate::model::parse_time;
use crate::ports::state::{CorrelationState, Member, StateItem, StateKey, StateUpdate};
use crate::ports::PortError;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};

/// Findings a group counts individually (beyond this, the count is "at least").
pub const GROUP_CAP: usize = 1000;
/// Group sizes announced once each by an update alert.
pub const UPDATE_THRESHOLDS: [usize; 3] = [10, 100, 1000];
/// Members sent in one state update (keeps the request well under DynamoDB's limits; a
/// group may exceed [`GROUP_CAP`] by at most this many).
pub const MAX_MEMBERS_PER_UPDATE: usize = 100;
/// Longest resource kept (it is hashed into the group id and shown in alerts).
pub const MAX_RESOURCE_CHARS: usize = 512;

/// `requestParameters` fields naming the resource acted on, in order of preference.
const RESOURCE_PARAMETERS: [&str; 16] = [
    "bucketName",
    "userName",
    "roleName",
    "groupName",
    "policyArn",
    "roleArn",
    "instanceId",
    "functionName",
    "secretId",
    "keyId",
    "trailName",
    "name",
    "dBInstanceIdentifier",
    "snapshotId",
    "topicArn",
    "queueUrl",
];

/// The resource a record acts on, for grouping: the first ARN in `resources` that is not
/// an S3 object (object ARNs are per object, so a mass download would never group; its
/// bucket follows in the same list), else the first of a fixed list of `requestParameters`
/// string fields (`bucketName`, `userName`, `roleName`, ..., `name`). `None` when the
/// record names neither or is not JSON.
pub fn resource_of(record_json: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Refs {
        resources: Option<Value>,
        #[serde(rename = "requestParameters")]
        request_parameters: Option<Value>,
    }
    let refs: Refs = serde_json::from_str(record_json).ok()?;
    let from_resources = refs
        .resources
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("type").and_then(Value::as_str) != Some("AWS::S3::Object"))
        .find_map(|r| {
            r.get("ARN")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
        });
    let found = from_resources.or_else(|| {
        let params = refs.request_parameters.as_ref()?.as_object()?;
        RESOURCE_PARAMETERS
            .iter()
            .find_map(|k| params.get(*k)?.as_str().filter(|v| !v.is_empty()))
    })?;
    Some(found.chars().take(MAX_RESOURCE_CHARS).collect())
}

/// The group a finding belongs to: rule, principal, resource, window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// Hash of rule id, principal and resource (hex, 24 characters).
    pub hash: String,
    /// Window start, epoch seconds.
    pub start: i64,
    /// The resource, as given.
    pub resource: Option<String>,
}

impl GroupKey {
    /// The group of `finding` about `resource` for windows of `window_secs` seconds
    /// (findings with an unparsable event time fall in the current window).
    pub fn of(finding: &Finding, resource: Option<&str>, window_secs: i64) -> GroupKey {
        let window = window_secs.max(1);
        let mut h = Sha256::new();
        for part in [
            finding.rule_id.as_str(),
            finding.principal.as_deref().unwrap_or_default(),
            resource.unwrap_or_default(),
        ] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        let t = parse_time(&finding.event_time)
            .unwrap_or_else(time::OffsetDateTime::now_utc)
            .unix_timestamp();
        GroupKey {
            hash: hex::encode(h.finalize().get(..12).unwrap_or_default()),
            start: t.div_euclid(window) * window,
            resource: resource.map(str::to_owned),
        }
    }

    /// The id alerts and stored findings carry: `<hash>-<window start>`.
    pub fn id(&self) -> String {
        format!("{}-{}", self.hash, self.start)
    }

    fn state_key(&self) -> StateKey {
        StateKey {
            pk: format!("ALERTGROUP#{}", self.hash),
            sk: self.start.to_string(),
        }
    }
}

/// What the caller should alert for the findings it admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announce {
    /// The group's leader is among them: alert it, with the group's count.
    Leader(String),
    /// No leader among them, but one of them announces that the group reached `threshold`.
    Update {
        /// The threshold reached (one of [`UPDATE_THRESHOLDS`]).
        threshold: usize,
        /// The finding that carries the update alert (mark it alerted once published).
        by: String,
    },
    /// Only followers: store them as grouped, alert nothing.
    Nothing,
}

/// What admitting findings to their group found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOutcome {
    /// The group as alerts report it (id, count, first and last seen, resource).
    pub summary: GroupSummary,
    /// The finding that leads the group (possibly admitted by another invocation).
    pub leader_id: String,
    /// What to alert.
    pub announce: Announce,
}

impl GroupOutcome {
    /// Whether finding `id` leads the group.
    pub fn is_leader(&self, id: &str) -> bool {
        self.leader_id == id
    }
}

fn time_of(member: &str) -> String {
    member
        .split_once('|')
        .map(|(t, _)| t.to_owned())
        .unwrap_or_default()
}

fn expires_at(key: &GroupKey, window: i64) -> i64 {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    now.max(key.start)
        .saturating_add(window.saturating_mul(2))
        .saturating_add(86_400)
}

/// Admit `members` (findings of the group `key`; duplicates allowed) with one state update
/// per [`MAX_MEMBERS_PER_UPDATE`] findings. The earliest of them (by event time, then id)
/// is the leader if the group has none yet. When the group's count reaches a threshold not
/// announced yet, one more conditional update names the announcer: the leader if it is
/// among `members` (its own alert carries the count, so no update alert is sent), else the
/// latest of `members`.
///
/// # Errors
/// [`PortError`] from the state (the caller decides; updates are idempotent).
pub async fn admit_all<S: CorrelationState>(
    state: &S,
    key: &GroupKey,
    members: &[&Finding],
    window_secs: i64,
) -> Result<GroupOutcome, PortError> {
    let window = window_secs.max(1);
    let mut sorted: Vec<&Finding> = members.to_vec();
    sorted.sort_by(|a, b| (&a.event_time, &a.id).cmp(&(&b.event_time, &b.id)));
    sorted.dedup_by(|a, b| a.id == b.id);
    let ids: HashSet<&str> = sorted.iter().map(|f| f.id.as_str()).collect();
    let expires_at = expires_at(key, window);
    let mut item = StateItem::default();
    if let Some(first) = sorted.first() {
        let first_writer = BTreeMap::from([
            ("leader".to_owned(), first.id.clone()),
            ("rule_id".to_owned(), first.rule_id.clone()),
        ]);
        for chunk in sorted.chunks(MAX_MEMBERS_PER_UPDATE) {
            let update = StateUpdate {
                key: key.state_key(),
                add: BTreeMap::from([(
                    "f".to_owned(),
                    chunk
                        .iter()
                        .map(|f| Member::from(format!("{}|{}", f.event_time, f.id)))
                        .collect(),
                )]),
                set_if_absent: first_writer.clone(),
                set: BTreeMap::new(),
                cap: GROUP_CAP,
                expires_at,
            };
            item = state.add(&update).await?;
            if item.full {
                break; // the rest would be refused too
            }
        }
    }
    let count = item.len_of("f");
    let leader_id = item.scalars.get("leader").cloned().unwrap_or_default();
    let mut announce = if ids.contains(leader_id.as_str()) {
        Announce::Leader(leader_id.clone())
    } else {
        Announce::Nothing
    };
    // only the highest threshold reached: lower ones missed are not worth an alert now
    let reached = UPDATE_THRESHOLDS
        .iter()
        .rev()
        .find(|t| count >= **t)
        .copied();
    if let (Some(threshold), Some(latest)) = (reached, sorted.last()) {
        let name = format!("update_{threshold}");
        let holder = match item.scalars.get(&name) {
            Some(h) => h.clone(),
            None => {
                let by = match &announce {
                    Announce::Leader(id) => id.clone(),
                    _ => latest.id.clone(),
                };
                let claim = StateUpdate {
                    key: key.state_key(),
                    add: BTreeMap::new(),
                    set_if_absent: BTreeMap::from([(name.clone(), by)]),
                    set: BTreeMap::new(),
                    cap: GROUP_CAP,
                    expires_at,
                };
                let claimed = state.add(&claim).await?;
                claimed.scalars.get(&name).cloned().unwrap_or_default()
            }
        };
        if announce == Announce::Nothing && ids.contains(holder.as_str()) {
            announce = Announce::Update {
                threshold,
                by: holder,
            };
        }
    }
    let set = item.sets.get("f");
    let first_seen = set
        .and_then(|s| s.first())
        .map_or_else(String::new, |m| time_of(m));
    let last_seen = set
        .and_then(|s| s.last())
        .map_or_else(String::new, |m| time_of(m));
    Ok(GroupOutcome {
        summary: GroupSummary {
            id: key.id(),
            count,
            saturated: item.full || count >= GROUP_CAP,
            first_seen,
            last_seen,
            resource: key.resource.clone(),
        },
        leader_id,
        announce,
    })
}

/// Admit one `finding` (about `resource`, when known) to its group of `window_secs`
/// seconds; see [`admit_all`].
///
/// # Errors
/// [`PortError`] from the state.
pub async fn admit<S: CorrelationState>(
    state: &S,
    finding: &Finding,
    resource: Option<&str>,
    window_secs: i64,
) -> Result<GroupOutcome, PortError> {
    let key = GroupKey::of(finding, resource, window_secs);
    admit_all(state, &key, &[finding], window_secs).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{finding_id, Severity};
    use crate::ports::memory_state::MemCorrelationState;

    fn finding(event: &str, time: &str, principal: &str) -> Finding {
        Finding {
            episode_start: None,
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
        assert_eq!(ra.announce, Announce::Leader(a.id.clone()));
        assert_eq!(rb.announce, Announce::Nothing);
        assert!(rb.is_leader(&a.id) && !rb.is_leader(&b.id));
        assert_eq!(ra2.announce, Announce::Leader(a.id.clone()));
        assert_eq!(rc.announce, Announce::Leader(c.id.clone()));
        assert_eq!(rd.announce, Announce::Leader(b.id.clone()));
        assert_eq!(rb.summary.id, ra.summary.id);
        assert_ne!(rc.summary.id, ra.summary.id);
        assert_eq!((rb.summary.count, ra2.summary.count), (2, 2));
        assert_eq!(rb.summary.first_seen, "2026-11-21T10:01:00Z");
        assert_eq!(rb.summary.last_seen, "2026-11-21T10:05:00Z");
        assert_eq!(ra.summary.resource.as_deref(), Some("bucket-1"));
        // the next window is a new group
        let later = finding("e", "2026-11-21T11:00:00Z", "p");
        let rl = admit(&s, &later, Some("bucket-1"), 3600).await.unwrap();
        assert_eq!(rl.announce, Announce::Leader(later.id.clone()));
        assert_ne!(rl.summary.id, ra.summary.id);
    }

    fn burst(range: std::ops::Range<usize>) -> Vec<Finding> {
        range
            .map(|i| {
                finding(
                    &format!("ev-{i:04}"),
                    &format!("2026-11-21T10:{:02}:{:02}Z", i / 60 % 60, i % 60),
                    "bot",
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn thresholds_are_announced_once_by_a_follower() {
        let s = MemCorrelationState::default();
        let all = burst(0..1200);
        let key = GroupKey::of(&all[0], None, 3600);
        let refs: Vec<&Finding> = all.iter().collect();
        // batch 1 (5 findings, one of them twice): the earliest leads
        let b1 = [refs[3], refs[0], refs[4], refs[1], refs[2], refs[0]];
        let r1 = admit_all(&s, &key, &b1, 3600).await.unwrap();
        assert_eq!(r1.announce, Announce::Leader(all[0].id.clone()));
        assert_eq!(r1.summary.count, 5);
        // batch 2 reaches 12: its latest finding announces 10
        let r2 = admit_all(&s, &key, &refs[5..12], 3600).await.unwrap();
        let update_10 = Announce::Update {
            threshold: 10,
            by: all[11].id.clone(),
        };
        assert_eq!(r2.announce, update_10);
        // redelivered: the same announcer again (its publish may have failed)
        let again = admit_all(&s, &key, &refs[5..12], 3600).await.unwrap();
        assert_eq!((again.announce, again.summary.count), (update_10, 12));
        // more followers below 100: nothing
        let r3 = admit_all(&s, &key, &refs[12..99], 3600).await.unwrap();
        assert_eq!((r3.announce, r3.summary.count), (Announce::Nothing, 99));
        // 99 -> 250: only the highest threshold reached (100) is announced
        let r4 = admit_all(&s, &key, &refs[99..250], 3600).await.unwrap();
        assert_eq!(
            r4.announce,
            Announce::Update {
                threshold: 100,
                by: all[249].id.clone()
            }
        );
        // 250 -> 1200 in one go: chunks stop at the cap, 1000 is announced
        let r5 = admit_all(&s, &key, &refs[250..], 3600).await.unwrap();
        assert!(matches!(
            r5.announce,
            Announce::Update {
                threshold: 1000,
                ..
            }
        ));
        assert!(r5.summary.saturated);
        assert!(r5.summary.count >= GROUP_CAP && r5.summary.count <= GROUP_CAP + 100);
        assert_eq!(r5.summary.first_seen, all[0].event_time);
        // the leader's retry is still the leader and announces nothing else
        let lead = admit(&s, &all[0], None, 3600).await.unwrap();
        assert_eq!(lead.announce, Announce::Leader(all[0].id.clone()));
    }

    #[tokio::test]
    async fn a_leader_batch_claims_thresholds_silently() {
        let s = MemCorrelationState::default();
        let all = burst(0..30);
        let key = GroupKey::of(&all[0], None, 3600);
        let refs: Vec<&Finding> = all.iter().collect();
        let r = admit_all(&s, &key, &refs[..25], 3600).await.unwrap();
        assert_eq!(r.announce, Announce::Leader(all[0].id.clone()));
        assert_eq!(r.summary.count, 25);
        // 10 was claimed by the leader, whose alert already said 25
        let r = admit_all(&s, &key, &refs[25..], 3600).await.unwrap();
        assert_eq!((r.announce, r.summary.count), (Announce::Nothing, 30));
    }

    #[test]
    fn resources_come_from_resources_then_request_parameters() {
        let r = |j: &str| resource_of(j);
        assert_eq!(
            r(r#"{"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::b/k"},{"type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::b"}],"requestParameters":{"bucketName":"b"}}"#)
                .as_deref(),
            Some("arn:aws:s3:::b")
        );
        assert_eq!(
            r(r#"{"requestParameters":{"policyArn":"arn:p","userName":"bob"}}"#).as_deref(),
            Some("bob")
        );
        assert_eq!(
            r(r#"{"resources":null,"requestParameters":{"name":"main"}}"#).as_deref(),
            Some("main")
        );
        assert_eq!(r(r#"{"requestParameters":{"userName":""}}"#), None);
        assert_eq!(
            r(r#"{"resources":[1,"x",{"ARN":7}],"requestParameters":null}"#),
            None
        );
        assert_eq!(r("not json"), None);
        let long = format!(
            r#"{{"requestParameters":{{"bucketName":"{}"}}}}"#,
            "é".repeat(600)
        );
        assert_eq!(r(&long).unwrap().chars().count(), MAX_RESOURCE_CHARS);
    }
}
