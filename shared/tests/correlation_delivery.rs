//! One burst of failed console sign-ins split across three log files, delivered out of
//! order with one file delivered twice, through the pipeline, the correlator and delivery:
//! exactly one stored correlation finding and exactly one alert. Also the allow-list on the
//! same path: a suppressed correlation finding is stored, marked, and not alerted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_arguments
)]

use serde_json::{json, Value};
use trailwatch::correlate::{Batch, Correlator};
use trailwatch::detect::RuleSet;
use trailwatch::findings::Finding;
use trailwatch::handler::deliver::deliver;
use trailwatch::ingest::{ReaderOptions, RecordReader};
use trailwatch::pipeline;
use trailwatch::ports::memory::{MemFindingStore, MemNotifier};
use trailwatch::ports::memory_state::MemCorrelationState;
use trailwatch::ports::StoredFinding;
use trailwatch::suppress::{self, AllowList};
use trailwatch::Config;

const T0: i64 = 1_794_999_600;

fn failed_login(i: i64) -> Value {
    let time = time::OffsetDateTime::from_unix_timestamp(T0 + i * 40)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": "111122223333",
                         "userName": format!("user{}", i % 4)},
        "eventTime": time, "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.7",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64)", "requestParameters": null,
        "responseElements": {"ConsoleLogin": "Failure"}, "errorMessage": "Failed authentication",
        "additionalEventData": {"MFAUsed": "No"},
        "eventID": format!("00000000-0000-4000-8000-{i:012}"), "readOnly": false,
        "eventType": "AwsConsoleSignIn", "managementEvent": true,
        "recipientAccountId": "111122223333", "eventCategory": "Management"
    })
}

/// A CloudTrail log file body holding events `from..to`.
fn file(from: i64, to: i64) -> Vec<u8> {
    let records: Vec<Value> = (from..to).map(failed_login).collect();
    serde_json::to_vec(&json!({ "Records": records })).unwrap()
}

/// One log-processor invocation: scan the file, observe, flush, deliver.
async fn process(
    rules: &RuleSet,
    correlator: &Correlator,
    state: &MemCorrelationState,
    store: &MemFindingStore,
    notifier: &MemNotifier,
    allow: &AllowList,
    name: &str,
    body: &[u8],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut batch = Batch::default();
    let reader = RecordReader::new(body, ReaderOptions::default());
    let report = pipeline::scan_observed(
        reader,
        rules,
        name,
        |f| findings.push(f),
        |record, matched| correlator.observe(&mut batch, record, matched, name),
    );
    assert!(!report.has_errors());
    // failed sign-ins alone are building blocks here: no per-record finding of the base rule
    assert!(findings.iter().all(|f| !f.rule_id.starts_with("tw-base-")));
    let mut correlated = correlator.flush(state, batch).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    for f in &mut correlated {
        suppress::mark(allow, f, Some("Mozilla/5.0 (X11; Linux x86_64)"), now);
    }
    findings.extend(correlated.iter().cloned());
    let cfg = Config::new("t", "arn:aws:sns:us-east-1:111122223333:a");
    let alertable: Vec<StoredFinding<'_>> = findings
        .iter()
        .filter(|f| !suppress::is_suppressed(f))
        .map(StoredFinding::from)
        .collect();
    deliver(&cfg, store, notifier, state, &alertable)
        .await
        .unwrap();
    // suppressed findings are stored too (never offered to the alert plan)
    for f in findings.iter().filter(|f| suppress::is_suppressed(f)) {
        trailwatch::ports::FindingStore::put(store, f)
            .await
            .unwrap();
    }
    correlated
}

#[tokio::test]
async fn a_split_reordered_duplicated_burst_alerts_once() {
    let rules = RuleSet::bundled().unwrap();
    let correlator = Correlator::new(&rules);
    let (state, store, notifier) = (
        MemCorrelationState::default(),
        MemFindingStore::default(),
        MemNotifier::default(),
    );
    let none = AllowList::default();
    // 12 failures from one address within 8 minutes, in three files
    let files = [file(0, 4), file(4, 8), file(8, 12)];
    let mut seen = Vec::new();
    for (name, i) in [("c", 2), ("a", 0), ("c-again", 2), ("b", 1)] {
        seen.extend(
            process(
                &rules,
                &correlator,
                &state,
                &store,
                &notifier,
                &none,
                name,
                &files[i],
            )
            .await,
        );
    }
    let by_ip: Vec<&Finding> = seen
        .iter()
        .filter(|f| f.rule_id == "tw-corr-console-login-failures-by-ip")
        .collect();
    assert!(!by_ip.is_empty());
    assert!(by_ip.iter().all(|f| f.id == by_ip[0].id));
    let stored: Vec<Finding> = store
        .findings()
        .into_iter()
        .filter(|f| f.rule_id == "tw-corr-console-login-failures-by-ip")
        .collect();
    assert_eq!(stored.len(), 1);
    let alerts: Vec<_> = notifier
        .sent()
        .into_iter()
        .filter(|a| a.rule_id == "tw-corr-console-login-failures-by-ip")
        .collect();
    assert_eq!(alerts.len(), 1);
    assert!(store.is_alerted(&stored[0].id));
    // with 12 failures over 4 users the per-user rule (5 in 30 min) stays silent
    assert!(store
        .findings()
        .iter()
        .all(|f| f.rule_id != "tw-corr-console-login-failures-by-user"));
}

#[tokio::test]
async fn an_allow_listed_burst_is_stored_suppressed_and_not_alerted() {
    let rules = RuleSet::bundled().unwrap();
    let correlator = Correlator::new(&rules);
    let (state, store, notifier) = (
        MemCorrelationState::default(),
        MemFindingStore::default(),
        MemNotifier::default(),
    );
    let allow = AllowList::parse(
        "allow.yml",
        "entries:\n  - id: pentest\n    reason: scheduled penetration test\n    expires: 2099-01-01\n    rules: ['tw-corr-console-*']\n    source_cidrs: [198.51.100.0/24]\n",
    )
    .unwrap();
    process(
        &rules,
        &correlator,
        &state,
        &store,
        &notifier,
        &allow,
        "a",
        &file(0, 12),
    )
    .await;
    let stored: Vec<Finding> = store
        .findings()
        .into_iter()
        .filter(|f| f.rule_id.starts_with("tw-corr-console-"))
        .collect();
    assert!(!stored.is_empty());
    assert!(stored.iter().all(suppress::is_suppressed));
    assert!(stored
        .iter()
        .all(|f| f.tags.iter().any(|t| t == "trailwatch.allowlist:pentest")));
    assert!(notifier.sent().is_empty());
}
