use super::*;
use crate::ports::memory::{MemFindingStore, MemNotifier, MemObjectSource};
use crate::ports::memory_state::MemCorrelationState;
use std::io::Write;
use std::path::PathBuf;

const BUCKET: &str = "trailwatch-demo-bucket";
const LOG_KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/23/111122223333_CloudTrail_us-east-1_20261123T1005Z_a.json.gz";
const STOP_LOGGING_RULE: &str = "tw-cloudtrail-stop-logging";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rec(i: usize, name: &str, source: &str) -> Value {
    json!({
        "eventVersion": "1.10", "eventTime": "2026-11-23T10:02:33Z", "eventSource": source,
        "eventName": name, "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.7",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333"},
        "eventID": format!("ev-{i}"), "eventType": "AwsApiCall", "recipientAccountId": "111122223333",
    })
}

fn log_bytes(records: &[Value]) -> Vec<u8> {
    let text = json!({"Records": records}).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

fn s3_event(keys: &[&str]) -> Value {
    let recs: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                        "s3": {"bucket": {"name": BUCKET}, "object": {"key": k}}})
        })
        .collect();
    json!({ "Records": recs })
}

struct World {
    cfg: Config,
    rules: Arc<RuleSet>,
    objects: MemObjectSource,
    store: MemFindingStore,
    notifier: MemNotifier,
    correlator: Arc<Correlator>,
    state: MemCorrelationState,
    allowlist: Option<AllowList>,
}

impl World {
    fn new() -> Self {
        let rules = Arc::new(RuleSet::bundled().unwrap());
        World {
            cfg: Config::new("findings", "arn:aws:sns:us-east-1:111122223333:alerts"),
            correlator: Arc::new(Correlator::new(&rules)),
            state: MemCorrelationState::default(),
            allowlist: None,
            rules,
            objects: MemObjectSource::default(),
            store: MemFindingStore::default(),
            notifier: MemNotifier::default(),
        }
    }
    fn lp(
        &self,
    ) -> LogProcessor<'_, MemObjectSource, MemFindingStore, MemNotifier, MemCorrelationState> {
        LogProcessor {
            cfg: &self.cfg,
            rules: self.rules.clone(),
            objects: &self.objects,
            store: &self.store,
            notifier: &self.notifier,
            correlator: self.correlator.clone(),
            state: &self.state,
            allowlist: self.allowlist.as_ref(),
        }
    }
    async fn run(&self, payload: Value) -> Result<Value, RetryError> {
        self.lp().handle(payload, &inv()).await
    }
}

fn inv() -> Invocation {
    Invocation {
        request_id: "req-1".into(),
        deadline: Some(SystemTime::now() + Duration::from_secs(300)),
    }
}

/// Findings the bundled pack raises for the StopLogging record (so the tests follow the
/// pack; at least the stop-logging rule itself).
fn stop_findings(rules: &RuleSet) -> usize {
    let record =
        crate::model::Record::from_value(&rec(0, "StopLogging", "cloudtrail.amazonaws.com"))
            .unwrap();
    let mut out = Vec::new();
    Evaluator::new(rules).evaluate(&record, "s", &mut out);
    assert!(out.iter().any(|f| f.rule_id == STOP_LOGGING_RULE));
    out.len()
}

fn benign_and_stop(n: usize) -> Vec<Value> {
    let mut v: Vec<Value> = (0..n)
        .map(|i| rec(i, "DescribeInstances", "ec2.amazonaws.com"))
        .collect();
    v.push(rec(n, "StopLogging", "cloudtrail.amazonaws.com"));
    v
}

#[tokio::test]
async fn every_sample_event_parses() {
    let dir = workspace().join("events");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("log-processor-") && name.ends_with(".json")) {
            continue;
        }
        seen += 1;
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let t = parse_trigger(&v).unwrap_or_else(|e| panic!("{name}: {e}"));
        let keys: Vec<String> = match t {
            Trigger::Direct(o) => o.into_iter().map(|o| o.key).collect(),
            Trigger::Sqs(m) => m
                .into_iter()
                .flat_map(|m| m.objects.unwrap_or_else(|e| panic!("{name}: {e}")))
                .map(|o| o.key)
                .collect(),
        };
        match name.as_str() {
            "log-processor-test-event.json" => assert!(keys.is_empty()),
            "log-processor-sqs.json" => {
                assert_eq!(keys.len(), 2);
                // form-decoded: '+' is a space, %2B a plus
                assert!(
                    keys[0].starts_with("org trail+logs/AWSLogs/o-abc123def4/111122223333/"),
                    "{}",
                    keys[0]
                );
            }
            "log-processor-digest-key.json" => {
                assert_eq!(S3Key::parse(&keys[0]).kind, crate::model::KeyKind::Digest)
            }
            _ => {
                assert_eq!(keys.len(), 1, "{name}");
                assert_eq!(
                    S3Key::parse(&keys[0]).kind,
                    crate::model::KeyKind::Log,
                    "{name}"
                );
            }
        }
    }
    assert_eq!(seen, 6);
}

#[tokio::test]
async fn sample_logs_raise_the_demo_findings() {
    let w = World::new();
    let dir = workspace().join("events/logs");
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".json") || name.ends_with(".json.gz") {
            let key = format!("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/23/{name}");
            w.objects
                .insert(BUCKET, &key, std::fs::read(&path).unwrap());
            keys.push(key);
        }
    }
    assert_eq!(keys.len(), 3);
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let out = w.run(s3_event(&refs)).await.unwrap();
    assert_eq!(out["processed"], 3);
    let rules: std::collections::BTreeSet<String> =
        w.store.findings().into_iter().map(|f| f.rule_id).collect();
    for want in [
        STOP_LOGGING_RULE,
        "tw-console-login-without-mfa",
        "tw-ec2-security-group-open-to-world",
    ] {
        assert!(rules.contains(want), "{want} missing from {rules:?}");
    }
}

#[tokio::test]
async fn s3_event_stores_alerts_once_and_counts_records() {
    let w = World::new();
    w.objects
        .insert(BUCKET, LOG_KEY, log_bytes(&benign_and_stop(50)));
    let out = w.run(s3_event(&[LOG_KEY])).await.unwrap();
    assert_eq!(out["processed"], 1);
    assert_eq!(out["records"], 51);
    let n = stop_findings(&w.rules);
    let findings = w.store.findings();
    assert_eq!(findings.len(), n);
    assert_eq!(out["findings"], n);
    let stop = findings
        .iter()
        .find(|f| f.rule_id == STOP_LOGGING_RULE)
        .unwrap();
    assert_eq!(stop.source, format!("s3://{BUCKET}/{LOG_KEY}"));
    assert_eq!(stop.event_id, "ev-50");
    let (record, key) = w.store.stored_context(&stop.id).unwrap();
    assert!(record.unwrap().contains("\"StopLogging\""));
    assert_eq!(key.as_deref(), Some(LOG_KEY));
    let sent = w.notifier.sent();
    assert!(sent
        .iter()
        .any(|a| a.id == stop.id && a.rule_id == STOP_LOGGING_RULE));
    assert!(w.store.is_alerted(&stop.id));
    // the same event again: nothing new stored or sent
    w.run(s3_event(&[LOG_KEY])).await.unwrap();
    assert_eq!(w.store.findings().len(), n);
    assert_eq!(w.notifier.sent().len(), sent.len());
}

#[tokio::test]
async fn accounting_holds_with_rejected_records() {
    let w = World::new();
    // a record that is a string, not an object: rejected, reading goes on
    let text = format!(
        "{{\"Records\":[{},\"oops\",{}]}}",
        rec(1, "DescribeInstances", "ec2.amazonaws.com"),
        rec(2, "StopLogging", "cloudtrail.amazonaws.com")
    );
    w.objects.insert(BUCKET, LOG_KEY, text.into_bytes());
    let o = w
        .lp()
        .process(
            &ObjectRef {
                bucket: BUCKET.into(),
                key: LOG_KEY.into(),
            },
            &inv(),
        )
        .await;
    let Outcome::Done(s) = o else { panic!("{o:?}") };
    assert_eq!(s.records_read, s.records_evaluated + s.records_rejected);
    let n = stop_findings(&w.rules) as u64;
    assert_eq!((s.records_read, s.records_rejected, s.findings), (3, 1, n));
}

#[tokio::test]
async fn truncated_gzip_is_acknowledged_after_evaluating_what_was_read() {
    let w = World::new();
    let mut records = vec![rec(0, "StopLogging", "cloudtrail.amazonaws.com")];
    records.extend((1..2000).map(|i| rec(i, "DescribeInstances", "ec2.amazonaws.com")));
    let full = log_bytes(&records);
    w.objects
        .insert(BUCKET, LOG_KEY, full[..full.len() / 2].to_vec());
    let o = w
        .lp()
        .process(
            &ObjectRef {
                bucket: BUCKET.into(),
                key: LOG_KEY.into(),
            },
            &inv(),
        )
        .await;
    let Outcome::Done(s) = o else { panic!("{o:?}") };
    assert!(s.stream_error);
    assert!(s.records_read > 0 && s.records_read < 2000, "{s:?}");
    let n = stop_findings(&w.rules);
    assert_eq!(s.findings, n as u64);
    // ~1,000 DescribeInstances by one user also trip a correlation: count detections only
    let detections = w.store.findings();
    let detections = detections
        .iter()
        .filter(|f| !f.rule_id.starts_with("tw-corr-"));
    assert_eq!(detections.count(), n);
}

#[tokio::test]
async fn missing_objects_digests_and_test_events_are_acknowledged() {
    let w = World::new();
    assert_eq!(w.run(s3_event(&[LOG_KEY])).await.unwrap()["processed"], 0);
    let digest = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/23/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20261123T100500Z.json.gz";
    w.objects
        .insert(BUCKET, digest, log_bytes(&benign_and_stop(1)));
    assert_eq!(w.run(s3_event(&[digest])).await.unwrap()["processed"], 0);
    assert!(w.run(json!({"Event": "s3:TestEvent"})).await.is_ok());
    assert!(w.run(json!({"unexpected": true})).await.is_ok());
    assert!(w.store.findings().is_empty());
}

#[tokio::test]
async fn transient_errors_are_retried_direct_and_per_sqs_message() {
    let w = World::new();
    w.objects
        .insert(BUCKET, LOG_KEY, log_bytes(&benign_and_stop(3)));
    let throttled = PortError::Transient {
        op: "GetObject",
        message: "SlowDown".into(),
    };
    w.objects.fail_next(vec![throttled.clone()]);
    let e = w.run(s3_event(&[LOG_KEY])).await.unwrap_err();
    assert_eq!((e.retry, e.total), (1, 1));

    let other = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/23/111122223333_CloudTrail_us-east-1_20261123T1005Z_b.json.gz";
    w.objects
        .insert(BUCKET, other, log_bytes(&benign_and_stop(3)));
    let sqs = json!({"Records": [
        {"messageId": "m1", "eventSource": "aws:sqs", "body": s3_event(&[LOG_KEY]).to_string()},
        {"messageId": "m2", "eventSource": "aws:sqs", "body": "not json"},
        {"messageId": "m3", "eventSource": "aws:sqs", "body": json!({"Type": "Notification", "Message": s3_event(&[other]).to_string()}).to_string()},
    ]});
    let mut c = w.cfg.clone();
    c.max_in_flight = std::num::NonZeroUsize::MIN; // m1's object is opened first
    let lp = LogProcessor { cfg: &c, ..w.lp() };
    w.objects.fail_next(vec![throttled]);
    let out = lp.handle(sqs, &inv()).await.unwrap();
    assert_eq!(
        out,
        json!({"batchItemFailures": [{"itemIdentifier": "m1"}]})
    );
    // m3 was processed; the retry of m1 then finds its findings stored (same event ids)
    assert_eq!(w.store.findings().len(), stop_findings(&w.rules));
}

#[tokio::test]
async fn objects_not_started_before_the_deadline_are_retried() {
    let w = World::new();
    w.objects
        .insert(BUCKET, LOG_KEY, log_bytes(&benign_and_stop(3)));
    // the deadline has passed by the time the objects would start
    let late = Invocation {
        request_id: "r".into(),
        deadline: Some(SystemTime::now()),
    };
    let sqs = json!({"Records": [
        {"messageId": "m1", "eventSource": "aws:sqs", "body": s3_event(&[LOG_KEY]).to_string()},
    ]});
    let out = w.lp().handle(sqs, &late).await.unwrap();
    assert_eq!(
        out,
        json!({"batchItemFailures": [{"itemIdentifier": "m1"}]})
    );
    assert!(w.store.findings().is_empty());
    let e = w
        .lp()
        .handle(s3_event(&[LOG_KEY]), &late)
        .await
        .unwrap_err();
    assert!(e.first.contains("deadline"));
}

#[tokio::test]
async fn a_short_timeout_still_processes_its_objects() {
    // Lambda's default timeout is 3 s, far below the 10 s default margin: the margin
    // shrinks to a quarter of the invocation's time instead of refusing all work
    let w = World::new();
    w.objects
        .insert(BUCKET, LOG_KEY, log_bytes(&benign_and_stop(3)));
    let short = Invocation {
        request_id: "r".into(),
        deadline: Some(SystemTime::now() + Duration::from_secs(3)),
    };
    w.lp().handle(s3_event(&[LOG_KEY]), &short).await.unwrap();
    assert!(!w.store.findings().is_empty());
}

#[test]
fn eventbridge_keys_are_taken_verbatim_and_notification_keys_decoded() {
    let eb = json!({"source": "aws.s3", "detail-type": "Object Created",
        "detail": {"bucket": {"name": "b"}, "object": {"key": "a+b%2B/c d"}}});
    let Trigger::Direct(o) = parse_trigger(&eb).unwrap() else {
        panic!()
    };
    assert_eq!(o[0].key, "a+b%2B/c d");
    let Trigger::Direct(o) = parse_trigger(&s3_event(&["a+b%2B/c%20d"])).unwrap() else {
        panic!()
    };
    assert_eq!(o[0].key, "a b+/c d");
    let removed = json!({"Records": [{"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]});
    let Trigger::Direct(o) = parse_trigger(&removed).unwrap() else {
        panic!()
    };
    assert!(o.is_empty());
    let mut deep = s3_event(&["k"]);
    for _ in 0..6 {
        deep = json!({"Type": "Notification", "Message": deep.to_string()});
    }
    assert!(matches!(parse_trigger(&deep), Err(ShapeError::TooDeep)));
}

const BY_IP: &str = "tw-corr-console-login-failures-by-ip";

fn failed_login(i: usize) -> Value {
    json!({
        "eventVersion": "1.10", "eventTime": format!("2026-11-23T10:02:{:02}Z", i * 3),
        "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.23",
        "userAgent": "Mozilla/5.0",
        "userIdentity": {"type": "IAMUser", "userName": format!("user{}", i % 2),
                         "accountId": "111122223333"},
        "responseElements": {"ConsoleLogin": "Failure"},
        "eventID": format!("login-{i}"), "eventType": "AwsConsoleSignIn",
        "recipientAccountId": "111122223333",
    })
}

fn key_part(part: char) -> String {
    LOG_KEY.replace("_a.json.gz", &format!("_{part}.json.gz"))
}

#[tokio::test]
async fn a_burst_across_invocations_yields_one_correlation_finding_and_one_alert() {
    let mut w = World::new();
    w.cfg.min_alert_severity = crate::findings::Severity::Low;
    let logins: Vec<Value> = (0..12).map(failed_login).collect();
    let parts = [
        ('a', &logins[..5]),
        ('b', &logins[5..9]),
        ('c', &logins[9..]),
    ];
    for (p, recs) in parts {
        w.objects.insert(BUCKET, &key_part(p), log_bytes(recs));
    }
    // a: 5 failures, below the threshold; b: 9; b again (redelivered); c: 12
    for p in ['a', 'b', 'b', 'c'] {
        let out = w.run(s3_event(&[&key_part(p)])).await.unwrap();
        assert_eq!(out["processed"], 1, "{out}");
    }
    let stored: Vec<Finding> = w
        .store
        .findings()
        .into_iter()
        .filter(|f| f.rule_id == BY_IP)
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        stored[0].event_time.starts_with("2026-11-23T10:"),
        "{stored:?}"
    );
    let alerts = w.notifier.sent();
    assert_eq!(
        alerts.iter().filter(|a| a.rule_id == BY_IP).count(),
        1,
        "{alerts:?}"
    );
    assert!(w.store.is_alerted(&stored[0].id));
    // the building block raised nothing of its own
    assert!(w
        .store
        .findings()
        .iter()
        .all(|f| f.rule_id != "tw-base-console-login-failed"));
}

#[tokio::test]
async fn allow_listed_findings_are_stored_but_not_alerted() {
    let mut w = World::new();
    w.allowlist = Some(
        AllowList::parse(
            "allow.yml",
            "entries:\n  - id: trail-maintenance\n    reason: planned trail change\n    expires: 2099-12-31\n    rules: ['tw-cloudtrail-stop-logging']\n",
        )
        .unwrap(),
    );
    w.objects
        .insert(BUCKET, LOG_KEY, log_bytes(&benign_and_stop(2)));
    w.run(s3_event(&[LOG_KEY])).await.unwrap();
    let stop: Vec<Finding> = w
        .store
        .findings()
        .into_iter()
        .filter(|f| f.rule_id == STOP_LOGGING_RULE)
        .collect();
    assert_eq!(stop.len(), 1);
    assert!(stop[0].tags.iter().any(|t| t == suppress::SUPPRESSED_TAG));
    assert!(stop[0]
        .tags
        .iter()
        .any(|t| t == "trailwatch.allowlist:trail-maintenance"));
    assert!(w
        .notifier
        .sent()
        .iter()
        .all(|a| a.rule_id != STOP_LOGGING_RULE));
    // without the allow-list the same object alerts
    let w = World::new();
    w.objects
        .insert(BUCKET, LOG_KEY, log_bytes(&benign_and_stop(2)));
    w.run(s3_event(&[LOG_KEY])).await.unwrap();
    assert!(w
        .notifier
        .sent()
        .iter()
        .any(|a| a.rule_id == STOP_LOGGING_RULE));
}

fn sqs_of(keys: &[String]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            json!({"messageId": format!("m{i}"), "eventSource": "aws:sqs",
                   "body": s3_event(&[k.as_str()]).to_string()})
        })
        .collect();
    json!({ "Records": records })
}

/// A burst of failed logins and a principal's calls spread over three objects.
fn burst_in_three_objects(w: &World) -> Vec<String> {
    let logins: Vec<Value> = (0..12).map(failed_login).collect();
    let calls: Vec<Value> = (0..9)
        .map(|i| rec(100 + i, "DescribeInstances", "ec2.amazonaws.com"))
        .collect();
    let mut keys = Vec::new();
    for (n, p) in ['a', 'b', 'c'].into_iter().enumerate() {
        let mut records: Vec<Value> = logins[n * 4..n * 4 + 4].to_vec();
        records.extend_from_slice(&calls[n * 3..n * 3 + 3]);
        w.objects.insert(BUCKET, &key_part(p), log_bytes(&records));
        keys.push(key_part(p));
    }
    keys
}

fn stored_ids(w: &World) -> Vec<String> {
    let mut ids: Vec<String> = w.store.findings().into_iter().map(|f| f.id).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn an_sqs_batch_writes_each_correlation_group_once() {
    // one invocation per object
    let apart = World::new();
    for key in burst_in_three_objects(&apart) {
        let out = apart.run(sqs_of(&[key])).await.unwrap();
        assert_eq!(out, json!({"batchItemFailures": []}));
    }
    // the three objects in one SQS batch
    let together = World::new();
    let keys = burst_in_three_objects(&together);
    let out = together.run(sqs_of(&keys)).await.unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));
    // the same findings (the login burst among them) from fewer state updates: the
    // principal's activity, the login burst by IP and by user are one update each
    assert!(together.store.findings().iter().any(|f| f.rule_id == BY_IP));
    assert_eq!(stored_ids(&together), stored_ids(&apart));
    assert!(
        together.state.updates() * 2 < apart.state.updates(),
        "{} updates in one batch, {} apart",
        together.state.updates(),
        apart.state.updates()
    );
}

#[tokio::test]
async fn a_failed_correlation_flush_retries_every_object_it_carried() {
    let w = World::new();
    let mut keys = burst_in_three_objects(&w);
    // not a log file: carries nothing, never retried
    keys.push("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/23/d.json.gz".into());
    w.state.fail_next(vec![PortError::Transient {
        op: "UpdateItem",
        message: "ProvisionedThroughputExceededException".into(),
    }]);
    let out = w.run(sqs_of(&keys)).await.unwrap();
    assert_eq!(
        out,
        json!({"batchItemFailures": [
            {"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]})
    );
    assert!(w
        .store
        .findings()
        .iter()
        .all(|f| !f.rule_id.starts_with("tw-corr-")));
    // the retry of those messages converges on what a clean run finds
    let out = w.run(sqs_of(&keys[..3])).await.unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));
    let clean = World::new();
    clean
        .run(sqs_of(&burst_in_three_objects(&clean)))
        .await
        .unwrap();
    assert_eq!(stored_ids(&w), stored_ids(&clean));
    assert!(w.store.findings().iter().any(|f| f.rule_id == BY_IP));
}
