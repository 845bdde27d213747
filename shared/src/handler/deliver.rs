//! Delivery of findings, shared by the log-processor and the event-handler: store each
//! finding once, group the ones not alerted yet, alert each group once, then mark them
//! alerted.
//!
//! The order makes retries safe. Puts are conditional (a second put is a
//! `Duplicate { alerted }`), so a retried invocation stores nothing twice; a finding is
//! marked alerted only after its alert was published, so a publish that failed is retried
//! by the next delivery of the same finding, and one that succeeded is not repeated. The
//! remaining window (published, then crashed before `mark_alerted`) can send one alert
//! twice: at-least-once, never lost. Alerts carry the finding id for deduplication.
//!
//! Grouping (`cfg.alert_group_window_secs > 0`): the new, unsuppressed findings at or above
//! the alert threshold are admitted to their alert group ([`group`]: rule, principal,
//! [`group::resource_of`] the record, window by event time), one batch per group. A group's
//! leader alerts with the group's count and first/last seen; followers are stored with
//! `group_id`, `grouped = true` and marked alerted, so they never alert later; when a
//! group reaches 10, 100 or 1000 findings, one of its findings carries an update alert
//! (decided by the state, so concurrent invocations send it once). A retried leader or
//! announcer is named again by the state and alerts again; a duplicate follower is the
//! same set member and adds nothing. If the state fails (transient or not) the findings of
//! the groups concerned are alerted individually: more alerts rather than silence.
//!
//! Errors: any transient failure of the store or the notifier returns `Err` (the caller
//! retries the invocation); permanent ones (validation, access denied) are logged once
//! here and counted in the report and an EMF metric: retrying would not fix them.

use crate::findings::alert::{self, GroupSummary};
use crate::findings::Finding;
use crate::metrics::{self, Unit};
use crate::ports::state::CorrelationState;
use crate::ports::{FindingStore, GroupMark, Notifier, PortError, Put, StoredFinding};
use crate::suppress::group::{self, Announce, GroupKey};
use crate::Config;
use futures::stream::{self, StreamExt};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What one delivery did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Findings stored for the first time.
    pub created: usize,
    /// Findings already stored.
    pub duplicates: usize,
    /// Alerts published (a flood summary or a group update counts once).
    pub alerts: usize,
    /// Findings marked alerted (followers of a group included).
    pub marked: usize,
    /// Followers: findings counted in their group's alert, not alerted themselves.
    pub grouped: usize,
    /// Group update alerts among `alerts`.
    pub group_updates: usize,
    /// Groups whose state update failed (their findings were alerted individually).
    pub group_failures: usize,
    /// Findings that could not be stored for a permanent reason.
    pub store_failures: usize,
    /// Alerts that could not be published for a permanent reason.
    pub publish_failures: usize,
}

/// The alert-worthy findings of one delivery after grouping.
#[derive(Default)]
struct Grouped<'a> {
    /// Findings to plan alerts for: group leaders and findings not grouped.
    alertable: Vec<&'a Finding>,
    /// Group of each leader, by finding id.
    leaders: HashMap<String, GroupSummary>,
    /// Update alerts: the carrying finding, its group, the threshold.
    updates: Vec<(&'a Finding, GroupSummary, usize)>,
    /// Followers with their group id.
    followers: Vec<(&'a Finding, String)>,
    /// Group id of every finding that belongs to a group.
    group_of: HashMap<String, String>,
    /// Groups whose admission failed.
    failures: usize,
}

/// Admit the alert-worthy `pending` findings to their groups and sort out who alerts.
async fn group_findings<'a, C: CorrelationState>(
    cfg: &Config,
    state: &C,
    pending: &[&StoredFinding<'a>],
) -> Grouped<'a> {
    let mut out = Grouped::default();
    let window = i64::try_from(cfg.alert_group_window_secs).unwrap_or(i64::MAX);
    let mut groups: BTreeMap<GroupKey, Vec<&'a Finding>> = BTreeMap::new();
    for sf in pending {
        let f = sf.finding;
        if !alert::is_alertable(cfg, f) {
            continue;
        }
        if window == 0 {
            out.alertable.push(f);
            continue;
        }
        let resource = sf.record_json.and_then(group::resource_of);
        groups
            .entry(GroupKey::of(f, resource.as_deref(), window))
            .or_default()
            .push(f);
    }
    let admitted: Vec<_> = stream::iter(groups)
        .map(|(key, members)| async move {
            let r = group::admit_all(state, &key, &members, window).await;
            (key, members, r)
        })
        .buffer_unordered(cfg.max_in_flight.get())
        .collect()
        .await;
    let mut admitted = admitted;
    // keep a deterministic order whatever finished first
    admitted.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, members, r) in admitted {
        let outcome = match r {
            Ok(o) => o,
            Err(e) => {
                out.failures += 1;
                let rule_id = members.first().map(|f| f.rule_id.as_str());
                tracing::warn!(group_id = %key.id(), rule_id, findings = members.len(), error = %e, "alert group update failed; alerting its findings individually");
                out.alertable.extend(members);
                continue;
            }
        };
        let gid = outcome.summary.id.clone();
        let mut seen = HashSet::new();
        for f in members {
            if !seen.insert(f.id.as_str()) {
                continue;
            }
            out.group_of.insert(f.id.clone(), gid.clone());
            match &outcome.announce {
                Announce::Leader(id) if *id == f.id => {
                    out.leaders.insert(f.id.clone(), outcome.summary.clone());
                    out.alertable.push(f);
                }
                Announce::Update { threshold, by } if *by == f.id => {
                    out.updates.push((f, outcome.summary.clone(), *threshold));
                }
                _ => out.followers.push((f, gid.clone())),
            }
        }
    }
    out
}

/// Store `findings` (at most `cfg.max_in_flight` puts in flight), group the new and
/// not-yet-alerted ones in `state`, publish alerts for group leaders, group updates and
/// ungrouped findings, then mark them (and the followers) alerted.
///
/// # Errors
/// The first transient [`PortError`] of the store or the notifier (always retryable);
/// permanent failures are logged and counted in the report instead, and state failures
/// fall back to individual alerts.
pub async fn deliver<S: FindingStore, N: Notifier, C: CorrelationState>(
    cfg: &Config,
    store: &S,
    notifier: &N,
    state: &C,
    findings: &[StoredFinding<'_>],
) -> Result<DeliveryReport, PortError> {
    let mut report = DeliveryReport::default();
    if findings.is_empty() {
        return Ok(report);
    }
    let results: Vec<(usize, Result<Put, PortError>)> = stream::iter(findings.iter().enumerate())
        .map(|(i, sf)| async move { (i, store.put_stored(*sf).await) })
        .buffer_unordered(cfg.max_in_flight.get())
        .collect()
        .await;
    let mut pending = Vec::new();
    let mut transient = None;
    // keep input order so alerts (and flood grouping) do not depend on completion order
    let mut results = results;
    results.sort_by_key(|(i, _)| *i);
    for (i, r) in results {
        let Some(sf) = findings.get(i) else { continue };
        match r {
            Ok(Put::Created) => {
                report.created += 1;
                pending.push(sf);
            }
            Ok(Put::Duplicate { alerted }) => {
                report.duplicates += 1;
                if !alerted {
                    pending.push(sf);
                }
            }
            Err(e) if e.is_retryable() => {
                transient.get_or_insert(e);
            }
            Err(e) => {
                report.store_failures += 1;
                tracing::error!(finding_id = %sf.finding.id, rule_id = %sf.finding.rule_id, error = %e, "storing finding failed permanently");
            }
        }
    }
    // alert what was stored even when some puts must be retried: the retry's puts find
    // them alerted and do not alert again
    let grouped = group_findings(cfg, state, &pending).await;
    report.group_failures = grouped.failures;
    let plan = alert::plan_grouped(cfg, &grouped.alertable, &grouped.leaders);
    let mut alerts = plan.alerts;
    let mut covered = plan.covered;
    for (f, g, threshold) in &grouped.updates {
        alerts.push(alert::group_update(f, g, *threshold));
        covered.push(f);
    }
    let followers: Vec<GroupMark<'_>> = grouped
        .followers
        .iter()
        .map(|(finding, group_id)| GroupMark {
            finding,
            group_id,
            follower: true,
        })
        .collect();
    if !alerts.is_empty() {
        match notifier.publish(&alerts).await {
            Ok(()) => {
                report.alerts = alerts.len();
                report.group_updates = grouped.updates.len();
                let (in_group, alone): (Vec<&Finding>, Vec<&Finding>) = covered
                    .iter()
                    .partition(|f| grouped.group_of.contains_key(&f.id));
                store.mark_alerted(&alone).await?;
                let marks: Vec<GroupMark<'_>> = in_group
                    .iter()
                    .filter_map(|f| {
                        Some(GroupMark {
                            finding: f,
                            group_id: grouped.group_of.get(&f.id)?,
                            follower: false,
                        })
                    })
                    .collect();
                store.mark_grouped(&marks).await?;
                report.marked = covered.len();
            }
            // nothing marked: the retry re-admits the same members and decides the same
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => {
                report.publish_failures = alerts.len();
                tracing::error!(alerts = alerts.len(), error = %e, "publishing alerts failed permanently");
            }
        }
    }
    if !followers.is_empty() {
        store.mark_grouped(&followers).await?;
        report.grouped = followers.len();
        report.marked += followers.len();
    }
    if report.store_failures + report.publish_failures + report.group_failures > 0 {
        metrics::emit(
            &[("Function", "deliver")],
            &[
                ("StoreFailures", report.store_failures as f64, Unit::Count),
                (
                    "PublishFailures",
                    report.publish_failures as f64,
                    Unit::Count,
                ),
                ("GroupFailures", report.group_failures as f64, Unit::Count),
            ],
        );
    }
    match transient {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{finding_id, Finding, Severity};
    use crate::ports::memory::{MemFindingStore, MemNotifier};
    use crate::ports::memory_state::MemCorrelationState;

    fn finding(event: &str, sev: Severity) -> Finding {
        Finding {
            episode_start: None,
            id: finding_id("r", event),
            rule_id: "r".into(),
            title: "Rule".into(),
            severity: sev,
            tags: vec![],
            event_id: event.into(),
            event_name: "StopLogging".into(),
            event_time: "2024-01-01T00:00:00Z".into(),
            event_source: "cloudtrail.amazonaws.com".into(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            source: "s3://b/k".into(),
            principal: Some(format!("p-{event}")),
            source_ip: None,
            error_code: None,
        }
    }

    fn cfg() -> Config {
        Config::new("t", "arn:aws:sns:us-east-1:111122223333:a")
    }

    fn stored(fs: &[Finding]) -> Vec<StoredFinding<'_>> {
        fs.iter()
            .map(|f| StoredFinding {
                finding: f,
                record_json: Some(r#"{"eventID":"x"}"#),
                object_key: Some("k"),
            })
            .collect()
    }

    #[tokio::test]
    async fn delivering_twice_stores_and_alerts_once() {
        let (store, notifier) = (MemFindingStore::default(), MemNotifier::default());
        let state = MemCorrelationState::default();
        let fs = vec![
            finding("a", Severity::High),
            finding("b", Severity::Critical),
            finding("c", Severity::Info),
        ];
        let r = deliver(&cfg(), &store, &notifier, &state, &stored(&fs))
            .await
            .unwrap();
        assert_eq!((r.created, r.duplicates, r.alerts, r.marked), (3, 0, 2, 2));
        assert_eq!(store.findings().len(), 3);
        assert!(store.is_alerted(&fs[0].id) && !store.is_alerted(&fs[2].id));
        assert_eq!(
            store.stored_context(&fs[0].id),
            Some((Some(r#"{"eventID":"x"}"#.into()), Some("k".into())))
        );
        let sent = notifier.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].severity, Severity::Critical);

        let r = deliver(&cfg(), &store, &notifier, &state, &stored(&fs))
            .await
            .unwrap();
        assert_eq!((r.created, r.duplicates, r.alerts), (0, 3, 0));
        assert_eq!(notifier.sent().len(), 2);
    }

    #[tokio::test]
    async fn failed_publish_is_retried_by_the_next_delivery() {
        let (store, notifier) = (MemFindingStore::default(), MemNotifier::default());
        let state = MemCorrelationState::default();
        let fs = vec![finding("a", Severity::High)];
        notifier.fail_next_publishes(1);
        let e = deliver(&cfg(), &store, &notifier, &state, &stored(&fs))
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(store.findings().len(), 1);
        assert!(!store.is_alerted(&fs[0].id) && notifier.sent().is_empty());

        let r = deliver(&cfg(), &store, &notifier, &state, &stored(&fs))
            .await
            .unwrap();
        assert_eq!((r.created, r.duplicates, r.alerts, r.marked), (0, 1, 1, 1));
        assert!(store.is_alerted(&fs[0].id));
        assert_eq!(notifier.sent().len(), 1);
    }

    #[tokio::test]
    async fn throttled_put_is_retryable_but_the_rest_is_delivered() {
        let (store, notifier) = (MemFindingStore::default(), MemNotifier::default());
        let state = MemCorrelationState::default();
        let mut c = cfg();
        c.max_in_flight = std::num::NonZeroUsize::MIN; // deterministic order of puts
        let fs = vec![finding("a", Severity::High), finding("b", Severity::High)];
        store.fail_next_puts(1);
        let e = deliver(&c, &store, &notifier, &state, &stored(&fs))
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(store.findings().len(), 1);
        assert_eq!(notifier.sent().len(), 1);
        let r = deliver(&c, &store, &notifier, &state, &stored(&fs))
            .await
            .unwrap();
        assert_eq!((r.created, r.duplicates, r.alerts), (1, 1, 1));
        assert_eq!(notifier.sent().len(), 2);
    }

    /// Finding `i` of a burst: one rule, one principal, one bucket, second `i` of 10:xx.
    fn burst_finding(i: usize) -> Finding {
        let event = format!("ev-{i:04}");
        Finding {
            episode_start: None,
            id: finding_id("tw-s3-delete", &event),
            rule_id: "tw-s3-delete".into(),
            title: "Bucket deleted".into(),
            severity: Severity::High,
            tags: vec![],
            event_id: event,
            event_name: "DeleteBucket".into(),
            event_time: format!("2026-11-21T10:{:02}:{:02}Z", i / 60, i % 60),
            event_source: "s3.amazonaws.com".into(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            source: "s3://b/k".into(),
            principal: Some("arn:aws:iam::111122223333:user/bot".into()),
            source_ip: None,
            error_code: None,
        }
    }

    const BUCKET_RECORD: &str = r#"{"eventID":"x","requestParameters":{"bucketName":"victim"}}"#;

    fn burst_file(fs: &[Finding]) -> Vec<StoredFinding<'_>> {
        fs.iter()
            .map(|f| StoredFinding {
                finding: f,
                record_json: Some(BUCKET_RECORD),
                object_key: Some("k"),
            })
            .collect()
    }

    fn body(a: &crate::ports::Alert) -> serde_json::Value {
        serde_json::from_str(&a.body).unwrap()
    }

    #[tokio::test]
    async fn a_burst_over_three_deliveries_out_of_order_and_duplicated_alerts_once_plus_update() {
        let (store, notifier) = (MemFindingStore::default(), MemNotifier::default());
        let state = MemCorrelationState::default();
        let c = cfg();
        let burst: Vec<Finding> = (0..120).map(burst_finding).collect();
        let (a, b, last) = (&burst[..40], &burst[40..80], &burst[80..]);

        // the last file first: its earliest finding leads, alerting with the count so far
        let r = deliver(&c, &store, &notifier, &state, &burst_file(last))
            .await
            .unwrap();
        assert_eq!((r.created, r.alerts, r.grouped, r.marked), (40, 1, 39, 40));
        let sent = notifier.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].id, burst[80].id);
        let g = &body(&sent[0])["group"];
        assert_eq!(g["count"], 40);
        assert_eq!(g["first_seen"], "2026-11-21T10:01:20Z");
        assert_eq!(g["last_seen"], "2026-11-21T10:01:59Z");
        assert_eq!(g["resource"], "victim");
        assert!(sent[0].subject.starts_with("[HIGH] 40 x Bucket deleted"));
        let gid = g["id"].as_str().unwrap().to_owned();

        // the first file: followers only (10 was announced by the leader's own alert)
        let r = deliver(&c, &store, &notifier, &state, &burst_file(a))
            .await
            .unwrap();
        assert_eq!((r.created, r.alerts, r.grouped), (40, 0, 40));
        // the last file again: every finding is stored and alerted, nothing happens
        let r = deliver(&c, &store, &notifier, &state, &burst_file(last))
            .await
            .unwrap();
        assert_eq!(
            (r.created, r.duplicates, r.alerts, r.grouped),
            (0, 40, 0, 0)
        );
        // the middle file: the group reaches 120, one update for 100
        let r = deliver(&c, &store, &notifier, &state, &burst_file(b))
            .await
            .unwrap();
        assert_eq!(
            (r.created, r.alerts, r.group_updates, r.grouped),
            (40, 1, 1, 39)
        );
        let sent = notifier.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].id, format!("{gid}-update-100"));
        let u = body(&sent[1]);
        assert_eq!(u["update"], true);
        assert_eq!(u["threshold"], 100);
        assert_eq!(u["group"]["count"], 120);
        assert_eq!(u["group"]["first_seen"], "2026-11-21T10:00:00Z");
        assert_eq!(u["group"]["last_seen"], "2026-11-21T10:01:59Z");
        assert!(sent[1]
            .subject
            .starts_with("[HIGH] Update: 120 x Bucket deleted"));

        // every finding stored once, alerted, in the group; only the two carriers not followers
        assert_eq!(store.findings().len(), 120);
        assert!(burst.iter().all(|f| store.is_alerted(&f.id)));
        let followers = burst
            .iter()
            .filter(|f| store.group_of(&f.id) == Some((gid.clone(), true)))
            .count();
        assert_eq!(followers, 118);
        assert_eq!(store.group_of(&burst[80].id), Some((gid.clone(), false)));
        assert_eq!(store.group_of(&burst[79].id), Some((gid.clone(), false)));
        // any file again: nothing more
        for file in [a, b, last] {
            deliver(&c, &store, &notifier, &state, &burst_file(file))
                .await
                .unwrap();
        }
        assert_eq!(notifier.sent().len(), 2);
    }

    #[tokio::test]
    async fn a_leader_whose_publish_failed_alerts_on_the_retry() {
        let (store, notifier) = (MemFindingStore::default(), MemNotifier::default());
        let state = MemCorrelationState::default();
        let burst: Vec<Finding> = (0..15).map(burst_finding).collect();
        notifier.fail_next_publishes(1);
        let e = deliver(&cfg(), &store, &notifier, &state, &burst_file(&burst[..5]))
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        assert!(burst[..5].iter().all(|f| !store.is_alerted(&f.id)));
        // another invocation's followers meanwhile (they cross 10: the update is theirs)
        let r = deliver(
            &cfg(),
            &store,
            &notifier,
            &state,
            &burst_file(&burst[5..15]),
        )
        .await
        .unwrap();
        assert_eq!((r.alerts, r.group_updates, r.grouped), (1, 1, 9));
        // the retry: the same leader, the same decision, now published
        let r = deliver(&cfg(), &store, &notifier, &state, &burst_file(&burst[..5]))
            .await
            .unwrap();
        assert_eq!((r.duplicates, r.alerts, r.grouped), (5, 1, 4));
        let sent = notifier.sent();
        let ids: Vec<&str> = sent.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1], burst[0].id);
        assert_eq!(body(&sent[1])["group"]["count"], 15);
    }

    #[tokio::test]
    async fn without_grouping_or_state_findings_alert_on_their_own() {
        let burst: Vec<Finding> = (0..10).map(burst_finding).collect();
        // window 0: no state touched, ten alerts
        let (store, notifier) = (MemFindingStore::default(), MemNotifier::default());
        let state = MemCorrelationState::default();
        let mut off = cfg();
        off.alert_group_window_secs = 0;
        let r = deliver(&off, &store, &notifier, &state, &burst_file(&burst))
            .await
            .unwrap();
        assert_eq!((r.alerts, r.grouped), (10, 0));
        assert!(state.is_empty());
        // a failing state: alerted individually rather than lost
        let (store, notifier) = (MemFindingStore::default(), MemNotifier::default());
        state.fail_next(vec![PortError::Transient {
            op: "UpdateItem",
            message: "throttled".into(),
        }]);
        let r = deliver(&cfg(), &store, &notifier, &state, &burst_file(&burst))
            .await
            .unwrap();
        assert_eq!((r.alerts, r.grouped, r.group_failures), (10, 0, 1));
        assert!(burst.iter().all(|f| store.is_alerted(&f.id)));
    }

    #[tokio::test]
    async fn findings_of_other_resources_or_below_the_threshold_are_not_grouped() {
        let (store, notifier) = (MemFindingStore::default(), MemNotifier::default());
        let state = MemCorrelationState::default();
        let fs: Vec<Finding> = (0..3).map(burst_finding).collect();
        let records = [
            r#"{"requestParameters":{"bucketName":"one"}}"#,
            r#"{"requestParameters":{"bucketName":"two"}}"#,
            r#"{"resources":[{"ARN":"arn:aws:s3:::two","type":"AWS::S3::Bucket"}]}"#,
        ];
        let stored: Vec<StoredFinding<'_>> = fs
            .iter()
            .zip(records)
            .map(|(finding, json)| StoredFinding {
                finding,
                record_json: Some(json),
                object_key: None,
            })
            .collect();
        let r = deliver(&cfg(), &store, &notifier, &state, &stored)
            .await
            .unwrap();
        assert_eq!((r.alerts, r.grouped), (3, 0));
        let mut low = burst_finding(9);
        low.severity = Severity::Low;
        deliver(
            &cfg(),
            &store,
            &notifier,
            &state,
            &[StoredFinding::from(&low)],
        )
        .await
        .unwrap();
        assert_eq!(state.len(), 3, "a finding never alerted is not grouped");
        assert_eq!(store.group_of(&low.id), None);
    }
}
