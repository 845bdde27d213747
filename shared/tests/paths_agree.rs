//! The S3 path (a gzipped log file through `ingest::open` + `pipeline::scan`, delivered like
//! the log-processor does) and the EventBridge path (the same records as envelopes through
//! the event-handler) must agree: same finding ids, rules, severities and event ids, and
//! after both ran (in either order) each finding is stored once and alerted once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use trailwatch::correlate::Correlator;
use trailwatch::detect::RuleSet;
use trailwatch::findings::{Finding, Severity};
use trailwatch::handler::deliver::deliver;
use trailwatch::handler::event_handler::{EventHandler, EventOutcome};
use trailwatch::ingest::{self, ReaderOptions};
use trailwatch::pipeline;
use trailwatch::ports::memory::{MemFindingStore, MemNotifier};
use trailwatch::ports::memory_state::MemCorrelationState;
use trailwatch::ports::remediate::MemRemediator;
use trailwatch::ports::StoredFinding;
use trailwatch::Config;

const ACCT: &str = "111122223333";
const KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/111122223333_CloudTrail_us-east-1_20240501T1020Z_q1w2e3r4t5y6u7i8.json.gz";

fn user(name: &str) -> Value {
    json!({"type": "IAMUser", "principalId": format!("AIDA{}EXAMPLE", name.to_uppercase()),
        "arn": format!("arn:aws:iam::{ACCT}:user/{name}"), "accountId": ACCT,
        "accessKeyId": "AKIAI44QH8DHBEXAMPLE", "userName": name})
}

fn role(role: &str, session: &str) -> Value {
    json!({"type": "AssumedRole", "principalId": format!("AROAEXAMPLE:{session}"),
        "arn": format!("arn:aws:sts::{ACCT}:assumed-role/{role}/{session}"), "accountId": ACCT,
        "accessKeyId": "ASIAEXAMPLEKEY",
        "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
            "arn": format!("arn:aws:iam::{ACCT}:role/{role}"), "accountId": ACCT, "userName": role},
            "attributes": {"creationDate": "2024-05-01T10:00:00Z", "mfaAuthenticated": "false"}}})
}

#[allow(clippy::too_many_arguments)]
fn api(
    n: u32,
    who: Value,
    source: &str,
    name: &str,
    params: Value,
    response: Value,
    error: Option<&str>,
) -> Value {
    let mut r = json!({
        "eventVersion": "1.09", "userIdentity": who,
        "eventTime": format!("2024-05-01T10:{:02}:{:02}Z", 10 + n, n * 3),
        "eventSource": source, "eventName": name, "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.45", "userAgent": "aws-cli/2.15.40 Python/3.11.8",
        "requestParameters": params, "responseElements": response,
        "requestID": format!("req-{n:04}"),
        "eventID": format!("7f0c2b1a-3d4e-4f5a-8b6c-{n:012}"),
        "readOnly": false, "eventType": "AwsApiCall", "managementEvent": true,
        "recipientAccountId": ACCT, "eventCategory": "Management"
    });
    if let Some(code) = error {
        r["errorCode"] = json!(code);
        r["errorMessage"] = json!(format!(
            "User is not authorized to perform: {source}:{name}"
        ));
        r["responseElements"] = Value::Null;
    }
    r
}

fn console_login(n: u32, who: Value, mfa: &str) -> Value {
    json!({
        "eventVersion": "1.09", "userIdentity": who,
        "eventTime": format!("2024-05-01T08:{:02}:00Z", n),
        "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.23",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "requestParameters": null, "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No", "MFAUsed": mfa},
        "eventID": format!("5e9a7c3b-2d1f-4a6e-b8c0-{n:012}"), "readOnly": false,
        "eventType": "AwsConsoleSignIn", "managementEvent": true,
        "recipientAccountId": ACCT, "eventCategory": "Management"
    })
}

/// Eleven records: tampering, privilege, sign-ins, a failed attempt and benign calls.
fn records() -> Vec<Value> {
    let root = json!({"type": "Root", "principalId": ACCT,
        "arn": format!("arn:aws:iam::{ACCT}:root"), "accountId": ACCT});
    vec![
        api(
            1,
            user("mallory"),
            "cloudtrail.amazonaws.com",
            "StopLogging",
            json!({"name": "trailwatch-trail"}),
            Value::Null,
            None,
        ),
        api(
            2,
            role("Developer", "dev"),
            "s3.amazonaws.com",
            "DeleteBucketPublicAccessBlock",
            json!({"publicAccessBlock": "", "bucketName": "trailwatch-trail-bucket",
                "Host": "trailwatch-trail-bucket.s3.us-east-1.amazonaws.com"}),
            Value::Null,
            None,
        ),
        api(
            3,
            user("mallory"),
            "iam.amazonaws.com",
            "CreateAccessKey",
            json!({"userName": "bob"}),
            json!({"accessKey": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "status": "Active",
                "userName": "bob", "createDate": "May 1, 2024 10:13:09 AM"}}),
            None,
        ),
        console_login(4, user("alice"), "No"),
        api(
            5,
            user("mallory"),
            "iam.amazonaws.com",
            "AttachUserPolicy",
            json!({"userName": "mallory", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
            Value::Null,
            None,
        ),
        api(
            6,
            role("Developer", "dev"),
            "ec2.amazonaws.com",
            "DescribeInstances",
            json!({"instancesSet": {}, "filterSet": {}}),
            Value::Null,
            None,
        ),
        api(
            7,
            user("eve"),
            "cloudtrail.amazonaws.com",
            "StopLogging",
            json!({"name": "trailwatch-trail"}),
            Value::Null,
            Some("AccessDenied"),
        ),
        console_login(8, root, "Yes"),
        api(
            9,
            user("mallory"),
            "kms.amazonaws.com",
            "ScheduleKeyDeletion",
            json!({"keyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "pendingWindowInDays": 7}),
            json!({"keyId": format!("arn:aws:kms:us-east-1:{ACCT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
                "deletionDate": "May 8, 2024, 10:19:27 AM", "keyState": "PendingDeletion",
                "pendingWindowInDays": 7}),
            None,
        ),
        api(
            10,
            role("Developer", "dev"),
            "guardduty.amazonaws.com",
            "DeleteDetector",
            json!({"detectorId": "12abc34d567e8fa901bc2d34e56789f0"}),
            Value::Null,
            None,
        ),
        api(
            11,
            role("Developer", "dev"),
            "sts.amazonaws.com",
            "GetCallerIdentity",
            Value::Null,
            Value::Null,
            None,
        ),
    ]
}

fn envelope(i: usize, record: &Value) -> Value {
    let detail_type = match record["eventType"].as_str() {
        Some("AwsConsoleSignIn") => "AWS Console Sign In via CloudTrail",
        _ => "AWS API Call via CloudTrail",
    };
    let service = record["eventSource"]
        .as_str()
        .and_then(|s| s.split('.').next())
        .unwrap_or("cloudtrail");
    json!({"version": "0", "id": format!("eb-{i}"), "detail-type": detail_type,
        "source": format!("aws.{service}"), "account": ACCT, "time": record["eventTime"],
        "region": "us-east-1", "resources": [], "detail": record})
}

type Key = (String, String, Severity, String);

fn key(f: &Finding) -> Key {
    (
        f.id.clone(),
        f.rule_id.clone(),
        f.severity,
        f.event_id.clone(),
    )
}

fn rules() -> RuleSet {
    RuleSet::bundled().unwrap()
}

/// The S3 path: a gzipped log file, scanned and delivered as the log-processor does.
async fn s3_path(
    cfg: &Config,
    rules: &RuleSet,
    store: &MemFindingStore,
    notifier: &MemNotifier,
) -> Vec<Finding> {
    let file = serde_json::to_vec(&json!({"Records": records()})).unwrap();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&file).unwrap();
    let bytes = gz.finish().unwrap();
    let reader = ingest::open(std::io::Cursor::new(bytes), ReaderOptions::default()).unwrap();
    let mut findings = Vec::new();
    let source = format!("s3://trailwatch-trail-bucket/{KEY}");
    let report = pipeline::scan(reader, rules, &source, |f| findings.push(f));
    assert_eq!(report.records_evaluated, 11);
    assert!(!report.has_errors());
    let stored: Vec<StoredFinding<'_>> = findings
        .iter()
        .map(|finding| StoredFinding {
            finding,
            record_json: None,
            object_key: Some(KEY),
        })
        .collect();
    // grouping is off in this test (`cfg`); the state is only there to satisfy delivery
    let state = MemCorrelationState::default();
    deliver(cfg, store, notifier, &state, &stored)
        .await
        .unwrap();
    findings
}

/// The EventBridge path: the first half one event per invocation, the rest as an SQS batch.
async fn eventbridge_path(
    cfg: &Config,
    rules: &RuleSet,
    store: &MemFindingStore,
    notifier: &MemNotifier,
) -> Vec<Finding> {
    // per-record detections only: `s3_path` does not correlate (the handlers' own tests
    // cover correlations across invocations)
    let no_rules = RuleSet::default();
    let correlator = Correlator::new(&no_rules);
    let state = MemCorrelationState::default();
    let h: EventHandler<'_, _, _, MemRemediator, _> = EventHandler {
        cfg,
        rules,
        store,
        notifier,
        remediator: None,
        correlator: &correlator,
        state: &state,
        allowlist: None,
    };
    let envelopes: Vec<Value> = records()
        .iter()
        .enumerate()
        .map(|(i, r)| envelope(i, r))
        .collect();
    let (single, batched) = envelopes.split_at(5);
    let mut outcomes = Vec::new();
    for ev in single {
        outcomes.extend(h.handle(ev, None).await.unwrap().outcomes);
    }
    let batch = json!({"Records": batched.iter().enumerate().map(|(i, ev)| json!({
        "messageId": format!("m-{i}"), "eventSource": "aws:sqs", "body": ev.to_string()
    })).collect::<Vec<_>>()});
    let resp = h.handle(&batch, None).await.unwrap();
    assert!(resp.batch_item_failures.is_empty());
    outcomes.extend(resp.outcomes);
    assert_eq!(outcomes.len(), 11);
    outcomes
        .into_iter()
        .flat_map(|o| match o {
            EventOutcome::Evaluated { findings, .. } => findings,
            other => panic!("every record is a CloudTrail event: {other:?}"),
        })
        .collect()
}

fn assert_each_once(
    cfg: &Config,
    store: &MemFindingStore,
    notifier: &MemNotifier,
    all: &[Finding],
) {
    let ids: BTreeSet<&str> = all.iter().map(|f| f.id.as_str()).collect();
    let stored = store.findings();
    assert_eq!(stored.len(), ids.len(), "each finding stored once");
    assert_eq!(
        stored
            .iter()
            .map(|f| f.id.as_str())
            .collect::<BTreeSet<_>>(),
        ids
    );
    let sent = notifier.sent();
    let sent_ids: Vec<&str> = sent.iter().map(|a| a.id.as_str()).collect();
    let unique: HashSet<&str> = sent_ids.iter().copied().collect();
    assert_eq!(
        unique.len(),
        sent_ids.len(),
        "an alert sent twice: {sent_ids:?}"
    );
    let alertable: BTreeSet<&str> = all
        .iter()
        .filter(|f| f.severity >= cfg.min_alert_severity)
        .map(|f| f.id.as_str())
        .collect();
    assert_eq!(unique.into_iter().collect::<BTreeSet<_>>(), alertable);
}

#[tokio::test]
async fn log_file_and_eventbridge_paths_agree() {
    let (mut cfg, rules) = (
        Config::new("findings", "arn:aws:sns:us-east-1:111122223333:alerts"),
        rules(),
    );
    // each alertable finding must alert: alert grouping (tested in `handler::deliver` and
    // `moto_log_processor`) would fold the two StopLogging findings of one principal
    cfg.alert_group_window_secs = 0;

    // S3 first, then EventBridge
    let (store, notifier) = (MemFindingStore::default(), MemNotifier::default());
    let from_s3 = s3_path(&cfg, &rules, &store, &notifier).await;
    let from_eb = eventbridge_path(&cfg, &rules, &store, &notifier).await;
    let a: BTreeSet<Key> = from_s3.iter().map(key).collect();
    let b: BTreeSet<Key> = from_eb.iter().map(key).collect();
    assert_eq!(a, b, "the two paths disagree");
    assert_eq!(a.len(), from_s3.len(), "duplicate findings on the S3 path");

    // the set is what the records hold, not an empty agreement
    let rule_ids: BTreeSet<&str> = from_s3.iter().map(|f| f.rule_id.as_str()).collect();
    for want in [
        "tw-cloudtrail-stop-logging",
        "tw-s3-public-access-block-removed",
        "tw-iam-access-key-created-for-other-user",
        "tw-console-login-without-mfa",
        "tw-iam-admin-policy-attached",
        "tw-root-console-login",
        "tw-kms-key-deletion-scheduled",
        "tw-guardduty-detector-deleted",
    ] {
        assert!(rule_ids.contains(want), "{want} missing from {rule_ids:?}");
    }
    // benign calls (DescribeInstances, GetCallerIdentity) agree on "nothing" too
    let events: BTreeSet<&str> = from_s3.iter().map(|f| f.event_id.as_str()).collect();
    assert!(
        events.len() < records().len(),
        "every record produced a finding"
    );
    // the failed StopLogging is found, one severity lower than the successful one
    let stop = |e: &str| {
        from_s3
            .iter()
            .find(|f| f.rule_id == "tw-cloudtrail-stop-logging" && f.event_id.ends_with(e))
            .map(|f| f.severity)
    };
    assert_eq!(stop("000000000001"), Some(Severity::High));
    assert_eq!(stop("000000000007"), Some(Severity::Medium));
    assert!(from_s3.iter().all(|f| f.source.starts_with("s3://")));
    assert!(from_eb.iter().all(|f| f.source == "eventbridge"));
    assert_each_once(&cfg, &store, &notifier, &from_s3);

    // EventBridge first (the usual order: it is faster), then the log file
    let (store, notifier) = (MemFindingStore::default(), MemNotifier::default());
    let from_eb = eventbridge_path(&cfg, &rules, &store, &notifier).await;
    let sent_after_eb = notifier.sent().len();
    let from_s3 = s3_path(&cfg, &rules, &store, &notifier).await;
    assert_eq!(
        notifier.sent().len(),
        sent_after_eb,
        "the log file re-alerted"
    );
    assert_eq!(
        from_s3.iter().map(key).collect::<BTreeSet<_>>(),
        from_eb.iter().map(key).collect::<BTreeSet<_>>()
    );
    assert_each_once(&cfg, &store, &notifier, &from_eb);
    // the stored copy says where it was seen first
    assert!(store.findings().iter().all(|f| f.source == "eventbridge"));
}
