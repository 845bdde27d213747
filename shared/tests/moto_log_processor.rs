//! The log-processor end to end against a private moto server, through the real SDK
//! clients: objects in S3 → handler (S3, SQS-wrapped and SNS-wrapped events) → DynamoDB
//! items and SNS messages (read back from an SQS queue subscribed to the topic).
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::Moto;
use trailwatch::correlate::Correlator;
use trailwatch::detect::RuleSet;
use trailwatch::handler::log_processor::{Invocation, LogProcessor, RetryError};
use trailwatch::model::Record;
use trailwatch::pipeline::Evaluator;
use trailwatch::ports::aws::Ports;
use trailwatch::ports::memory_state::MemCorrelationState;
use trailwatch::ports::state::CorrelationState;
use trailwatch::Config;

const BUCKET: &str = "trailwatch-test-bucket";
const TABLE: &str = "findings";
const ACCOUNT: &str = "111122223333";
const DAY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/23";

type Item = HashMap<String, AttributeValue>;

fn rec(i: usize, name: &str, source: &str) -> Value {
    json!({
        "eventVersion": "1.10", "eventTime": format!("2026-11-23T10:{:02}:{:02}Z", (i / 60) % 60, i % 60),
        "eventSource": source, "eventName": name, "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7", "userAgent": "aws-cli/2.17.20",
        "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::{ACCOUNT}:user/alice"),
                         "accountId": ACCOUNT, "userName": "alice"},
        "requestParameters": {"instancesSet": {}, "filterSet": {}},
        "eventID": format!("7e57da7a-0000-4000-8000-{i:012}"), "eventType": "AwsApiCall",
        "readOnly": name.starts_with("Describe"), "recipientAccountId": ACCOUNT,
        "managementEvent": true, "eventCategory": "Management",
    })
}

fn benign(i: usize) -> Value {
    rec(i, "DescribeInstances", "ec2.amazonaws.com")
}

fn stop(i: usize) -> Value {
    rec(i, "StopLogging", "cloudtrail.amazonaws.com")
}

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text).unwrap();
    gz.finish().unwrap()
}

fn log(records: &[Value]) -> Vec<u8> {
    gzip(json!({ "Records": records }).to_string().as_bytes())
}

/// Finding ids the rules raise for `records` (what the store must hold).
fn expected_ids(rules: &RuleSet, records: &[Value]) -> Vec<String> {
    let mut eval = Evaluator::new(rules);
    let mut out = Vec::new();
    for r in records {
        eval.evaluate(&Record::from_value(r).unwrap(), "s", &mut out);
    }
    let mut ids: Vec<String> = out.into_iter().map(|f| f.id).collect();
    ids.sort();
    ids.dedup();
    ids
}

fn s3_event(encoded_keys: &[&str]) -> Value {
    let recs: Vec<Value> = encoded_keys
        .iter()
        .map(|k| {
            json!({"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": BUCKET, "arn": format!("arn:aws:s3:::{BUCKET}")},
                   "object": {"key": k, "size": 1}}})
        })
        .collect();
    json!({ "Records": recs })
}

fn sqs_event(bodies: &[(&str, Value)]) -> Value {
    let recs: Vec<Value> = bodies
        .iter()
        .map(|(id, body)| {
            json!({"messageId": id, "receiptHandle": "h", "body": body.to_string(),
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:q",
            "awsRegion": "us-east-1", "attributes": {}, "messageAttributes": {}})
        })
        .collect();
    json!({ "Records": recs })
}

fn sns_event(message: &Value) -> Value {
    json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
        "Sns": {"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:111122223333:t",
                "Subject": "Amazon S3 Notification", "Message": message.to_string(),
                "Timestamp": "2026-11-23T10:10:30.000Z", "MessageAttributes": {}}}]})
}

struct Env {
    moto: Moto,
    cfg: Config,
    ports: Ports,
    rules: Arc<RuleSet>,
    queue: String,
}

impl Env {
    async fn start(test: &str) -> Option<Env> {
        let moto = Moto::start(test)?;
        moto.create_findings_table(TABLE).await;
        moto.create_bucket(BUCKET).await;
        let topic = moto.create_topic("alerts").await;
        let queue = moto.subscribe_queue(&topic, "alerts-q").await;
        let mut cfg = Config::new(TABLE, topic);
        cfg.retention_days = 30;
        let ports = Ports::from_sdk_config(&moto.sdk_config().await, &cfg);
        let rules = Arc::new(RuleSet::bundled().unwrap());
        Some(Env {
            moto,
            cfg,
            ports,
            rules,
            queue,
        })
    }

    /// One invocation with a fresh in-memory correlation state (alert groups included).
    async fn invoke(&self, payload: Value) -> Result<Value, RetryError> {
        self.invoke_with(payload, &MemCorrelationState::default())
            .await
    }

    /// One invocation with the state in the findings table, as in Lambda.
    async fn invoke_with_table_state(&self, payload: Value) -> Result<Value, RetryError> {
        self.invoke_with(payload, &self.ports.state).await
    }

    async fn invoke_with<C: CorrelationState>(
        &self,
        payload: Value,
        state: &C,
    ) -> Result<Value, RetryError> {
        let inv = Invocation {
            request_id: "test-request".into(),
            deadline: Some(SystemTime::now() + Duration::from_secs(600)),
        };
        LogProcessor {
            cfg: &self.cfg,
            rules: self.rules.clone(),
            objects: &self.ports.objects,
            store: &self.ports.store,
            notifier: &self.ports.notifier,
            correlator: Arc::new(Correlator::new(&self.rules)),
            state,
            allowlist: None,
        }
        .handle(payload, &inv)
        .await
    }

    /// The stored findings (not the correlation and alert-group state items).
    async fn items(&self) -> Vec<Item> {
        let mut all = self.moto.scan_table(TABLE).await;
        all.retain(
            |i| matches!(i.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with("ACCT#")),
        );
        all
    }

    /// The alert-group state items.
    async fn groups(&self) -> Vec<Item> {
        let mut all = self.moto.scan_table(TABLE).await;
        all.retain(
            |i| matches!(i.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with("ALERTGROUP#")),
        );
        all
    }
}

fn s<'a>(item: &'a Item, k: &str) -> &'a str {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .unwrap_or_else(|| panic!("{k} missing: {item:?}"))
}

fn ids_of(items: &[Item]) -> Vec<String> {
    let mut ids: Vec<String> = items.iter().map(|i| s(i, "id").to_owned()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_creates_resources() {
    let Some(moto) = Moto::start("harness_creates_resources") else {
        return;
    };
    moto.create_findings_table("findings").await;
    let table = moto
        .dynamodb()
        .await
        .describe_table()
        .table_name("findings")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(table.global_secondary_indexes().len(), 2);
    moto.create_bucket("harness-bucket").await;
    moto.put_object("harness-bucket", "k", b"hi".to_vec()).await;
    let topic = moto.create_topic("alerts").await;
    let queue = moto.subscribe_queue(&topic, "alerts-q").await;
    moto.sns()
        .await
        .publish()
        .topic_arn(&topic)
        .subject("s")
        .message("m")
        .send()
        .await
        .unwrap();
    let got = moto.receive_all(&queue).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["Message"], "m");
    assert_eq!(got[0]["Subject"], "s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sqs_and_sns_events_store_and_alert_exactly_once() {
    let Some(env) = Env::start("s3_sqs_and_sns_events_store_and_alert_exactly_once").await else {
        return;
    };
    // account path, org-trail path, and a prefix with a space and a '+'
    let account_key = format!("{DAY}/{ACCOUNT}_CloudTrail_us-east-1_20261123T1005Z_A.json.gz");
    let org_key = format!("AWSLogs/o-abc123def4/{ACCOUNT}/CloudTrail/us-east-1/2026/11/23/{ACCOUNT}_CloudTrail_us-east-1_20261123T1010Z_B.json.gz");
    let odd_key =
        format!("team logs+x/{DAY}/{ACCOUNT}_CloudTrail_us-east-1_20261123T1015Z_C.json.gz");
    let odd_encoded =
        format!("team+logs%2Bx/{DAY}/{ACCOUNT}_CloudTrail_us-east-1_20261123T1015Z_C.json.gz");
    let a: Vec<Value> = vec![benign(1), stop(2), benign(3)];
    let b: Vec<Value> = vec![benign(10), stop(11)];
    let c: Vec<Value> = vec![stop(20), benign(21)];
    env.moto.put_object(BUCKET, &account_key, log(&a)).await;
    env.moto.put_object(BUCKET, &org_key, log(&b)).await;
    env.moto.put_object(BUCKET, &odd_key, log(&c)).await;
    let all: Vec<Value> = a.iter().chain(&b).chain(&c).cloned().collect();
    let want = expected_ids(&env.rules, &all);
    assert!(want.len() >= 3);

    let events = [
        s3_event(&[&account_key]),
        sqs_event(&[("msg-1", s3_event(&[&org_key]))]),
        sns_event(&s3_event(&[&odd_encoded])),
    ];
    for ev in &events {
        let out = env.invoke_with_table_state(ev.clone()).await.unwrap();
        if let Some(f) = out.get("batchItemFailures") {
            assert_eq!(f, &json!([]));
        } else {
            assert_eq!(out["processed"], 1, "{out}");
        }
    }
    let items = env.items().await;
    assert_eq!(ids_of(&items), want);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for item in &items {
        assert_eq!(s(item, "pk"), format!("ACCT#{ACCOUNT}#2026-11-23"));
        assert_eq!(
            s(item, "sk"),
            format!("F#{}#{}", s(item, "event_time"), s(item, "id"))
        );
        assert_eq!(s(item, "gsi1pk"), format!("RULE#{}", s(item, "rule_id")));
        assert_eq!(
            s(item, "gsi2pk"),
            format!("PRINCIPAL#arn:aws:iam::{ACCOUNT}:user/alice")
        );
        let ttl: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
        assert!((ttl - (now + 30 * 86_400)).abs() < 600, "ttl {ttl}");
        let record: Value = serde_json::from_str(s(item, "record")).unwrap();
        assert_eq!(record["eventID"].as_str(), Some(s(item, "event_id")));
        assert!(!item.contains_key("record_truncated"));
        let key = s(item, "object_key");
        assert!(
            [&account_key, &org_key, &odd_key].contains(&&key.to_owned()),
            "{key}"
        );
        assert_eq!(s(item, "source"), format!("s3://{BUCKET}/{key}"));
        let alerted = *item["alerted"].as_bool().unwrap();
        let sev = s(item, "severity");
        assert_eq!(
            alerted,
            ["medium", "high", "critical"].contains(&sev),
            "{sev}"
        );
    }
    // alert grouping: the three StopLogging findings (one rule, one principal, no resource
    // named, one hour) are one group in DynamoDB; the first invocation's finding leads and
    // alerts, the two later ones are stored as followers with the same group_id
    let stops: Vec<&Item> = items
        .iter()
        .filter(|i| s(i, "rule_id") == "tw-cloudtrail-stop-logging")
        .collect();
    assert_eq!(stops.len(), 3);
    let leader_id = stops
        .iter()
        .find(|i| s(i, "event_id").ends_with("000000000002"))
        .map(|i| s(i, "id").to_owned())
        .unwrap();
    let group_id = s(stops[0], "group_id");
    for item in &stops {
        assert_eq!(s(item, "group_id"), group_id);
        let follower = item.get("grouped").and_then(|v| v.as_bool().ok()).copied();
        let is_leader = s(item, "id") == leader_id;
        assert_eq!(follower, (!is_leader).then_some(true), "{item:?}");
    }
    let mut groups = env.groups().await;
    groups.retain(|g| s(g, "rule_id") == "tw-cloudtrail-stop-logging");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["f"].as_ss().unwrap().len(), 3);
    assert_eq!(s(&groups[0], "leader"), leader_id);
    assert_eq!(
        format!(
            "{}-{}",
            s(&groups[0], "pk").trim_start_matches("ALERTGROUP#"),
            s(&groups[0], "sk")
        ),
        group_id
    );

    // one message per alert: the leader's (and any other rule's findings)
    let msgs = env.moto.receive_all(&env.queue).await;
    let alerted_alone = items
        .iter()
        .filter(|i| *i["alerted"].as_bool().unwrap() && !i.contains_key("grouped"))
        .count();
    assert_eq!(msgs.len(), alerted_alone);
    let stop_msgs: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["MessageAttributes"]["rule_id"]["Value"] == "tw-cloudtrail-stop-logging")
        .collect();
    assert_eq!(stop_msgs.len(), 1);
    for m in &stop_msgs {
        assert_eq!(m["MessageAttributes"]["severity"]["Value"], "high");
        assert_eq!(m["MessageAttributes"]["account_id"]["Value"], ACCOUNT);
        assert_eq!(m["MessageAttributes"]["severity"]["Type"], "String");
        let subject = m["Subject"].as_str().unwrap();
        assert!(subject.starts_with("[HIGH] CloudTrail logging stopped - StopLogging by arn:aws:iam::111122223333:user/alice"), "{subject}");
        assert!(subject.len() < 100);
        let body: Value = serde_json::from_str(m["Message"].as_str().unwrap()).unwrap();
        assert_eq!(body["rule_id"], "tw-cloudtrail-stop-logging");
        assert_eq!(body["id"], leader_id.as_str());
        assert_eq!(body["group"]["id"], group_id);
        assert_eq!(body["group"]["count"], 1);
        assert_eq!(body["group"]["first_seen"], "2026-11-23T10:00:02Z");
    }

    // the same events again: nothing new stored, nothing new sent
    for ev in &events {
        env.invoke_with_table_state(ev.clone()).await.unwrap();
    }
    assert_eq!(ids_of(&env.items().await), want);
    assert!(env.moto.receive_all(&env.queue).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_objects_digests_and_test_events_do_nothing() {
    let Some(env) = Env::start("deleted_objects_digests_and_test_events_do_nothing").await else {
        return;
    };
    let key = format!("{DAY}/{ACCOUNT}_CloudTrail_us-east-1_20261123T1005Z_D.json.gz");
    env.moto.put_object(BUCKET, &key, log(&[stop(1)])).await;
    env.moto.delete_object(BUCKET, &key).await;
    let out = env.invoke(s3_event(&[&key])).await.unwrap();
    assert_eq!(out["processed"], 0);
    let digest = format!("AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/11/23/{ACCOUNT}_CloudTrail-Digest_us-east-1_t_us-east-1_20261123T100500Z.json.gz");
    env.moto.put_object(BUCKET, &digest, log(&[stop(2)])).await;
    let out = env.invoke(s3_event(&[&digest])).await.unwrap();
    assert_eq!(out["processed"], 0);
    env.invoke(json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}))
        .await
        .unwrap();
    assert!(env.items().await.is_empty());
    assert!(env.moto.receive_all(&env.queue).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_truncated_files() {
    let Some(env) = Env::start("large_and_truncated_files").await else {
        return;
    };
    // ~50 MB uncompressed: benign records with a few detections spread through the file
    let mut text = Vec::with_capacity(52 * 1024 * 1024);
    text.extend_from_slice(b"{\"Records\":[");
    let mut detections = Vec::new();
    let mut n = 0usize;
    while text.len() < 50 * 1024 * 1024 {
        let r = if n % 20_000 == 7 { stop(n) } else { benign(n) };
        if n % 20_000 == 7 {
            detections.push(r.clone());
        }
        if n > 0 {
            text.push(b',');
        }
        serde_json::to_writer(&mut text, &r).unwrap();
        n += 1;
    }
    text.extend_from_slice(b"]}");
    let big_key = format!("{DAY}/{ACCOUNT}_CloudTrail_us-east-1_20261123T1020Z_Big.json.gz");
    let compressed = gzip(&text);
    drop(text);
    env.moto.put_object(BUCKET, &big_key, compressed).await;
    // peak RSS of the processing alone (Linux: writing 5 to clear_refs resets VmHWM);
    // printed for the report, meaningful when this test runs alone (--test-threads=1)
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let out = env
        .invoke_with_table_state(s3_event(&[&big_key]))
        .await
        .unwrap();
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(hwm) = status.lines().find(|l| l.starts_with("VmHWM")) {
            eprintln!("processing {n} records (~50 MB): peak {hwm}");
        }
    }
    assert_eq!(out["records"], n);
    let want = expected_ids(&env.rules, &detections);
    let (corr, per_record): (Vec<Item>, Vec<Item>) = env
        .items()
        .await
        .into_iter()
        .partition(|i| s(i, "rule_id").starts_with("tw-corr-"));
    assert_eq!(ids_of(&per_record), want);
    assert!(detections.len() >= 3);
    // ~80,000 DescribeInstances calls by one principal in one file, far beyond the ratio's
    // 2,000-event cap: the enumeration ratio still fires (its counters stay paired)
    let corr_rules: Vec<&str> = corr.iter().map(|i| s(i, "rule_id")).collect();
    assert!(
        corr_rules.contains(&"tw-corr-enumeration-ratio"),
        "{corr_rules:?}"
    );

    // a truncated gzip: the records before the cut are evaluated, the object acknowledged
    let mut records = vec![stop(1_000_000)];
    records.extend((1..3000).map(|i| benign(1_000_000 + i)));
    let full = log(&records);
    let cut_key = format!("{DAY}/{ACCOUNT}_CloudTrail_us-east-1_20261123T1025Z_Cut.json.gz");
    env.moto
        .put_object(BUCKET, &cut_key, full[..full.len() / 2].to_vec())
        .await;
    let out = env
        .invoke_with_table_state(s3_event(&[&cut_key]))
        .await
        .unwrap();
    assert_eq!(out["processed"], 1);
    let records_read = out["records"].as_u64().unwrap();
    assert!(records_read > 0 && records_read < 3000, "{out}");
    let mut want_all = want.clone();
    want_all.extend(expected_ids(&env.rules, &records[..1]));
    want_all.sort();
    // the benign calls by one principal also trip a correlation, delivered with the
    // detections: compare the per-record detections here
    let all = env.items().await;
    let detections: Vec<Item> = all
        .iter()
        .filter(|i| !s(i, "rule_id").starts_with("tw-corr-"))
        .cloned()
        .collect();
    assert_eq!(ids_of(&detections), want_all);
    assert!(
        all.len() > detections.len(),
        "no correlation finding stored"
    );
}
