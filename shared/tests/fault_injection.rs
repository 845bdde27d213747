//! Faults against the AWS APIs (issue 10, part 4): the real handlers and SDK adapters
//! against moto, through a proxy that injects throttling, 5xx, connection resets and
//! timeouts per operation (`support/fault_proxy.rs`).
//!
//! Shown here:
//! - transient faults on S3 `GetObject`, DynamoDB `PutItem`/`UpdateItem` and SNS
//!   `PublishBatch` are retried by the SDK (same invocation id, attempt 2, 3, ...) with
//!   jittered, bounded backoff, and the invocation succeeds with every finding stored and
//!   alerted exactly once;
//! - persistent faults exhaust the [`MAX_ATTEMPTS`] attempts well within the Lambda
//!   deadline and fail the invocation (`Err` for a direct S3 event: Lambda retries), and a
//!   rerun after the fault clears adds no duplicate item or alert;
//! - an SQS batch reports only the message whose object or finding failed;
//! - a message that keeps failing is received `maxReceiveCount` times and then lands in the
//!   dead-letter queue through the queue's redrive policy. moto cannot run Lambda's event
//!   source mapping, so the test drives the receive → invoke → delete loop itself, as the
//!   mapping does with `ReportBatchItemFailures`.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/fault_proxy.rs"]
mod fault_proxy;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use fault_proxy::{Fault, FaultProxy, Reply, Seen};
use serde_json::{json, Value};
use support::Moto;
use trailwatch::correlate::Correlator;
use trailwatch::detect::RuleSet;
use trailwatch::handler::event_handler::EventHandler;
use trailwatch::handler::log_processor::{Invocation, LogProcessor, RetryError};
use trailwatch::model::Record;
use trailwatch::pipeline::Evaluator;
use trailwatch::ports::aws::{Ports, ATTEMPT_TIMEOUT, MAX_ATTEMPTS, OPERATION_TIMEOUT};
use trailwatch::ports::memory_state::MemCorrelationState;
use trailwatch::ports::remediate::MemRemediator;
use trailwatch::Config;

const BUCKET: &str = "fault-bucket";
const TABLE: &str = "findings";
const ACCOUNT: &str = "111122223333";
/// The log-processor's Lambda timeout in template.yaml.
const LAMBDA_TIMEOUT: Duration = Duration::from_secs(300);

type Item = std::collections::HashMap<String, AttributeValue>;

fn key(n: &str) -> String {
    format!("AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/23/{ACCOUNT}_CloudTrail_us-east-1_20261123T1000Z_{n}.json.gz")
}

fn rec(id: &str, name: &str, source: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE",
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/mallory"), "accountId": ACCOUNT, "userName": "mallory"},
        "eventTime": "2026-11-23T10:00:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.50",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": {"name": "main"},
        "responseElements": null,
        "eventID": id,
        "readOnly": false,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
    })
}

/// Three records that each raise at least one alerting finding, ids prefixed by `tag`.
fn records(tag: &str) -> Vec<Value> {
    vec![
        rec(
            &format!("{tag}-0000-4000-8000-000000000001"),
            "StopLogging",
            "cloudtrail.amazonaws.com",
        ),
        rec(
            &format!("{tag}-0000-4000-8000-000000000002"),
            "DeleteTrail",
            "cloudtrail.amazonaws.com",
        ),
        rec(
            &format!("{tag}-0000-4000-8000-000000000003"),
            "PutBucketPublicAccessBlock",
            "s3.amazonaws.com",
        ),
    ]
}

fn gzip_log(records: &[Value]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(json!({ "Records": records }).to_string().as_bytes())
        .unwrap();
    gz.finish().unwrap()
}

fn s3_event(keys: &[String]) -> Value {
    let recs: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                   "eventName": "ObjectCreated:Put",
                   "s3": {"bucket": {"name": BUCKET}, "object": {"key": k, "size": 1}}})
        })
        .collect();
    json!({ "Records": recs })
}

fn sqs_event(messages: &[(String, String)]) -> Value {
    let recs: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({"messageId": id, "receiptHandle": "h", "body": body,
                   "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                   "eventSourceARN": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:objects"),
                   "attributes": {}, "messageAttributes": {}})
        })
        .collect();
    json!({ "Records": recs })
}

struct Env {
    moto: Moto,
    proxy: FaultProxy,
    cfg: Config,
    ports: Ports,
    rules: Arc<RuleSet>,
    alerts_queue: String,
}

impl Env {
    async fn start(test: &str) -> Option<Env> {
        let moto = Moto::start(test)?;
        moto.create_findings_table(TABLE).await;
        moto.create_bucket(BUCKET).await;
        let topic = moto.create_topic("alerts").await;
        let alerts_queue = moto.subscribe_queue(&topic, "alerts-q").await;
        let proxy = FaultProxy::start(&moto.authority());
        // the handler's clients go through the proxy; the test's own (set-up, read-back)
        // talk to moto directly
        let sdk = moto.sdk_config_via(&proxy.endpoint()).await;
        let mut cfg = Config::new(TABLE, topic);
        cfg.retention_days = 30;
        // every finding alerts, so "one alert per finding" is checkable by id
        cfg.min_alert_severity = trailwatch::findings::Severity::Info;
        // one alert per finding is what these tests count; alert grouping (tested in
        // `handler::deliver`, `moto_state`, `moto_log_processor`) would fold them
        cfg.alert_group_window_secs = 0;
        let ports = Ports::from_sdk_config(&sdk, &cfg);
        Some(Env {
            moto,
            proxy,
            cfg,
            ports,
            rules: Arc::new(RuleSet::bundled().unwrap()),
            alerts_queue,
        })
    }

    async fn invoke(&self, payload: Value) -> Result<Value, RetryError> {
        let inv = Invocation {
            request_id: "fault-test".into(),
            deadline: Some(SystemTime::now() + LAMBDA_TIMEOUT),
        };
        LogProcessor {
            cfg: &self.cfg,
            rules: self.rules.clone(),
            objects: &self.ports.objects,
            store: &self.ports.store,
            notifier: &self.ports.notifier,
            correlator: Arc::new(Correlator::new(&self.rules)),
            state: &MemCorrelationState::default(),
            allowlist: None,
        }
        .handle(payload, &inv)
        .await
    }

    /// Finding id → item, failing on a repeated id (the table key makes that impossible,
    /// so this guards the test's own reading).
    async fn items(&self) -> BTreeMap<String, Item> {
        let mut out = BTreeMap::new();
        for item in self.moto.scan_table(TABLE).await {
            let id = item["id"].as_s().unwrap().clone();
            assert!(out.insert(id.clone(), item).is_none(), "item {id} twice");
        }
        out
    }

    /// Alert ids received since the last call (each alert body carries its finding id).
    async fn alerts(&self) -> Vec<String> {
        self.moto
            .receive_all(&self.alerts_queue)
            .await
            .iter()
            .map(|env| {
                let body: Value = serde_json::from_str(env["Message"].as_str().unwrap()).unwrap();
                body["id"].as_str().unwrap().to_owned()
            })
            .collect()
    }
}

/// Finding ids the bundled rules raise for `records`.
fn expected_ids(rules: &RuleSet, records: &[Value]) -> BTreeSet<String> {
    let mut eval = Evaluator::new(rules);
    let mut out = Vec::new();
    for r in records {
        eval.evaluate(&Record::from_value(r).unwrap(), "s", &mut out);
    }
    out.into_iter().map(|f| f.id).collect()
}

fn alerted(item: &Item) -> bool {
    matches!(item.get("alerted"), Some(AttributeValue::Bool(true)))
}

/// Requests of `op` grouped by SDK invocation (one SDK call and all its retries).
fn by_invocation(seen: &[Seen], op: &str) -> BTreeMap<String, Vec<Seen>> {
    let mut out: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    for s in seen.iter().filter(|s| s.op == op) {
        let id = s
            .invocation
            .clone()
            .expect("SDK sends amz-sdk-invocation-id");
        out.entry(id).or_default().push(s.clone());
    }
    out
}

/// For every retried call: attempts numbered 1..n in order, and each backoff within the
/// standard mode's exponential cap (1 s × 2^(attempt-2), plus scheduling slack). Returns
/// the backoffs seen.
fn check_retries(seen: &[Seen], op: &str) -> Vec<Duration> {
    let mut gaps = Vec::new();
    for (inv, attempts) in by_invocation(seen, op) {
        let numbers: Vec<u32> = attempts.iter().map(|a| a.attempt.unwrap()).collect();
        let want: Vec<u32> = (1..=attempts.len() as u32).collect();
        assert_eq!(numbers, want, "{op} call {inv}: attempts out of order");
        for pair in attempts.windows(2) {
            let gap = pair[1].at.duration_since(pair[0].at);
            let n = pair[1].attempt.unwrap();
            let cap = Duration::from_secs(1u64 << (n - 2).min(4)).min(Duration::from_secs(20));
            assert!(
                gap <= cap + Duration::from_millis(750),
                "{op} attempt {n}: backoff {gap:?} over the cap {cap:?}"
            );
            gaps.push(gap);
        }
    }
    gaps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_and_deliver_exactly_once() {
    let Some(env) = Env::start("transient_faults_are_retried_and_deliver_exactly_once").await
    else {
        return;
    };
    let recs = records("aaaaaaaa");
    let want = expected_ids(&env.rules, &recs);
    assert!(want.len() >= 3, "{want:?}");
    env.moto
        .put_object(BUCKET, &key("a"), gzip_log(&recs))
        .await;

    env.proxy
        .add(Fault::s3("GetObject", 503, "SlowDown").times(1));
    env.proxy
        .add(Fault::dynamodb("PutItem", "ProvisionedThroughputExceededException").times(2));
    env.proxy
        .add(Fault::dynamodb("PutItem", "ThrottlingException").times(1));
    env.proxy
        .add(Fault::sns("PublishBatch", "Throttling").times(1));
    env.proxy.add(Fault::status("PublishBatch", 500).times(1));
    env.proxy.add(
        Fault::status("UpdateItem", 503)
            .with_reply(Reply::Reset)
            .times(1),
    );

    let out = env
        .invoke(s3_event(&[key("a")]))
        .await
        .expect("retries absorb the faults");
    assert_eq!(out["objects"], 1, "{out}");

    let items = env.items().await;
    assert_eq!(items.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(items.values().all(alerted), "every finding marked alerted");
    let alerts = env.alerts().await;
    let unique: BTreeSet<String> = alerts.iter().cloned().collect();
    assert_eq!(alerts.len(), unique.len(), "duplicate alerts: {alerts:?}");
    assert_eq!(unique, want, "one alert per finding");

    // the faults were answered and retried by the SDK, not by the handler
    let seen = env.proxy.seen();
    let faulted = seen.iter().filter(|s| s.faulted).count();
    assert_eq!(faulted, 7, "{seen:#?}");
    let mut gaps = Vec::new();
    for op in ["GetObject", "PutItem", "PublishBatch", "UpdateItem"] {
        let retried = by_invocation(&seen, op)
            .values()
            .filter(|a| a.len() > 1)
            .count();
        assert!(retried >= 1, "{op} was not retried: {seen:#?}");
        gaps.extend(check_retries(&seen, op));
    }
    // full jitter: the backoffs are random, not one fixed delay
    let distinct: BTreeSet<u128> = gaps.iter().map(|g| g.as_millis() / 5).collect();
    assert!(distinct.len() >= 3, "backoffs without jitter: {gaps:?}");
    eprintln!("backoffs: {gaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_throttling_fails_within_the_deadline_and_a_rerun_adds_no_duplicates() {
    let Some(env) = Env::start("persistent_throttling_fails_within_the_deadline").await else {
        return;
    };
    let recs = records("bbbbbbbb");
    let want = expected_ids(&env.rules, &recs);
    env.moto
        .put_object(BUCKET, &key("b"), gzip_log(&recs))
        .await;

    env.proxy
        .add(Fault::dynamodb("PutItem", "ThrottlingException"));
    let started = Instant::now();
    let err = env
        .invoke(s3_event(&[key("b")]))
        .await
        .expect_err("a direct invocation fails so that Lambda retries it");
    let took = started.elapsed();
    eprintln!("persistent throttling: failed after {took:?}: {err}");
    assert_eq!((err.retry, err.total), (1, 1));
    assert!(took < OPERATION_TIMEOUT, "{took:?}");
    assert!(took + Duration::from_millis(env.cfg.deadline_margin_ms) < LAMBDA_TIMEOUT);

    let seen = env.proxy.seen();
    let calls = by_invocation(&seen, "PutItem");
    assert!(!calls.is_empty());
    for (inv, attempts) in &calls {
        assert_eq!(
            attempts.len() as u32,
            MAX_ATTEMPTS,
            "PutItem call {inv}: every attempt was used"
        );
    }
    check_retries(&seen, "PutItem");
    assert!(env.items().await.is_empty());
    assert!(
        env.alerts().await.is_empty(),
        "nothing alerted before storing"
    );

    // the fault clears; Lambda's retry succeeds, and a further duplicate delivery of the
    // same notification changes nothing
    env.proxy.clear();
    env.invoke(s3_event(&[key("b")]))
        .await
        .expect("retry succeeds");
    let items = env.items().await;
    assert_eq!(items.keys().cloned().collect::<BTreeSet<_>>(), want);
    let first = env.alerts().await;
    assert_eq!(first.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(first.len(), want.len());

    env.invoke(s3_event(&[key("b")])).await.expect("redelivery");
    assert_eq!(env.items().await.len(), want.len());
    assert_eq!(env.alerts().await, Vec::<String>::new(), "no alert twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_publishes_are_alerted_once_after_recovery() {
    let Some(env) = Env::start("failed_publishes_are_alerted_once_after_recovery").await else {
        return;
    };
    let recs = records("cccccccc");
    let want = expected_ids(&env.rules, &recs);
    env.moto
        .put_object(BUCKET, &key("c"), gzip_log(&recs))
        .await;

    env.proxy.add(Fault::status("PublishBatch", 503));
    env.invoke(s3_event(&[key("c")]))
        .await
        .expect_err("alerts could not be sent: retry");
    let items = env.items().await;
    assert_eq!(
        items.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "stored"
    );
    assert!(
        !items.values().any(alerted),
        "not marked alerted before publishing"
    );
    assert!(env.alerts().await.is_empty());

    env.proxy.clear();
    env.invoke(s3_event(&[key("c")]))
        .await
        .expect("retry succeeds");
    let items = env.items().await;
    assert_eq!(items.len(), want.len(), "no duplicate item");
    assert!(items.values().all(alerted));
    let alerts = env.alerts().await;
    assert_eq!(alerts.len(), want.len(), "{alerts:?}");
    assert_eq!(alerts.into_iter().collect::<BTreeSet<_>>(), want);

    env.invoke(s3_event(&[key("c")])).await.expect("redelivery");
    assert!(env.alerts().await.is_empty(), "no alert twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_batch_reports_only_the_failed_message() {
    let Some(env) = Env::start("sqs_batch_reports_only_the_failed_message").await else {
        return;
    };
    let (ra, rb) = (records("dddddddd"), records("eeeeeeee"));
    let (want_a, want_b) = (expected_ids(&env.rules, &ra), expected_ids(&env.rules, &rb));
    env.moto.put_object(BUCKET, &key("d"), gzip_log(&ra)).await;
    env.moto.put_object(BUCKET, &key("e"), gzip_log(&rb)).await;
    // S3 keeps failing for object e only
    env.proxy
        .add(Fault::s3("GetObject", 503, "SlowDown").on_path("_e.json.gz"));
    let batch = sqs_event(&[
        ("msg-d".into(), s3_event(&[key("d")]).to_string()),
        ("msg-e".into(), s3_event(&[key("e")]).to_string()),
    ]);
    let out = env
        .invoke(batch.clone())
        .await
        .expect("a batch never fails whole");
    assert_eq!(
        out["batchItemFailures"],
        json!([{"itemIdentifier": "msg-e"}]),
        "{out}"
    );
    let items = env.items().await;
    assert_eq!(items.keys().cloned().collect::<BTreeSet<_>>(), want_a);

    // SQS redelivers msg-e only, after the fault clears
    env.proxy.clear();
    let out = env
        .invoke(sqs_event(&[(
            "msg-e".into(),
            s3_event(&[key("e")]).to_string(),
        )]))
        .await
        .unwrap();
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    let all: BTreeSet<String> = want_a.union(&want_b).cloned().collect();
    assert_eq!(
        env.items().await.keys().cloned().collect::<BTreeSet<_>>(),
        all
    );
    let alerts = env.alerts().await;
    assert_eq!(alerts.len(), all.len(), "{alerts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_handler_batch_reports_only_the_message_whose_finding_failed() {
    let Some(env) = Env::start("event_handler_batch_reports_only_the_failed_message").await else {
        return;
    };
    let (ra, rb) = (records("f0f0f0f0"), records("f1f1f1f1"));
    let envelope = |r: &Value| {
        json!({"version": "0", "id": format!("eb-{}", r["eventID"].as_str().unwrap()),
               "detail-type": "AWS API Call via CloudTrail", "source": "aws.cloudtrail",
               "account": ACCOUNT, "time": "2026-11-23T10:00:00Z", "region": "us-east-1",
               "resources": [], "detail": r})
    };
    let messages: Vec<(String, String)> = ra
        .iter()
        .chain(rb.iter())
        .map(|r| {
            (
                format!("m-{}", r["eventID"].as_str().unwrap()),
                envelope(r).to_string(),
            )
        })
        .collect();
    // DynamoDB throttles every write of one event's finding
    let victim = rb[0]["eventID"].as_str().unwrap().to_owned();
    env.proxy
        .add(Fault::dynamodb("PutItem", "ProvisionedThroughputExceededException").on_body(&victim));
    let correlator = Correlator::new(&env.rules);
    let state = MemCorrelationState::default();
    let handler = EventHandler {
        cfg: &env.cfg,
        rules: &env.rules,
        store: &env.ports.store,
        notifier: &env.ports.notifier,
        remediator: None::<&MemRemediator>,
        correlator: &correlator,
        state: &state,
        allowlist: None,
    };
    let resp = handler
        .handle(&sqs_event(&messages), None)
        .await
        .expect("a batch never fails whole");
    let failed: Vec<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, [format!("m-{victim}").as_str()]);
    let items = env.items().await;
    assert!(items
        .values()
        .all(|i| !i["event_id"].as_s().unwrap().contains(&victim)));

    env.proxy.clear();
    let retry: Vec<(String, String)> = messages
        .iter()
        .filter(|(id, _)| id.contains(&victim))
        .cloned()
        .collect();
    let resp = handler.handle(&sqs_event(&retry), None).await.unwrap();
    assert!(resp.batch_item_failures.is_empty());
    let want: BTreeSet<String> = expected_ids(&env.rules, &ra)
        .union(&expected_ids(&env.rules, &rb))
        .cloned()
        .collect();
    assert_eq!(
        env.items().await.keys().cloned().collect::<BTreeSet<_>>(),
        want
    );
    let alerts = env.alerts().await;
    assert_eq!(
        alerts.len(),
        want.len(),
        "one alert per finding: {alerts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_times_out_is_retried() {
    let Some(env) = Env::start("an_attempt_that_times_out_is_retried").await else {
        return;
    };
    let recs = records("99999999");
    env.moto
        .put_object(BUCKET, &key("t"), gzip_log(&recs))
        .await;
    // the first GetObject hangs past the attempt timeout
    env.proxy.add(
        Fault::status("GetObject", 200)
            .with_reply(Reply::Delay(ATTEMPT_TIMEOUT + Duration::from_secs(5)))
            .times(1),
    );
    let started = Instant::now();
    env.invoke(s3_event(&[key("t")]))
        .await
        .expect("second attempt succeeds");
    let took = started.elapsed();
    let seen = env.proxy.seen_op("GetObject");
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(
        seen[0].invocation, seen[1].invocation,
        "one SDK call, two attempts"
    );
    assert!(
        seen[1].at.duration_since(seen[0].at) >= ATTEMPT_TIMEOUT,
        "the retry came after the attempt timeout"
    );
    assert!(took < OPERATION_TIMEOUT, "{took:?}");
    assert_eq!(
        env.items().await.len(),
        expected_ids(&env.rules, &recs).len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_lands_in_the_dead_letter_queue() {
    let Some(env) = Env::start("a_message_that_keeps_failing_lands_in_the_dlq").await else {
        return;
    };
    const MAX_RECEIVES: usize = 3;
    let sqs = env.moto.sqs().await;
    let dlq = sqs
        .create_queue()
        .queue_name("objects-dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = format!(
        "arn:aws:sqs:us-east-1:{}:objects-dlq",
        support::MOTO_ACCOUNT
    );
    let queue = sqs
        .create_queue()
        .queue_name("objects")
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES.to_string()})
                .to_string(),
        )
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "1",
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    let recs = records("dededede");
    env.moto
        .put_object(BUCKET, &key("dlq"), gzip_log(&recs))
        .await;
    env.moto
        .put_object(BUCKET, &key("ok"), gzip_log(&records("0k0k0k0k")))
        .await;
    env.proxy
        .add(Fault::s3("GetObject", 500, "InternalError").on_path("_dlq.json.gz"));
    let bad_body = s3_event(&[key("dlq")]).to_string();
    for body in [bad_body.clone(), s3_event(&[key("ok")]).to_string()] {
        sqs.send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    // the event source mapping's loop: receive, invoke, delete what succeeded
    let mut invocations: BTreeMap<String, usize> = BTreeMap::new();
    let mut reasons = Vec::new();
    // a bound, not a timing assertion: each failing invocation spends the SDK's full retry
    // budget (several seconds of backoff), and a loaded CI machine stretches that
    let deadline = Instant::now() + Duration::from_secs(240);
    while Instant::now() < deadline {
        let got = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let msgs = got.messages.unwrap_or_default();
        if msgs.is_empty() {
            let in_dlq = sqs
                .get_queue_attributes()
                .queue_url(&dlq)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                )
                .send()
                .await
                .unwrap();
            let n = in_dlq
                .attributes
                .unwrap_or_default()
                .values()
                .next()
                .cloned()
                .unwrap_or_default();
            if n == "1" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        let batch: Vec<(String, String)> = msgs
            .iter()
            .map(|m| {
                (
                    m.message_id().unwrap().to_owned(),
                    m.body().unwrap().to_owned(),
                )
            })
            .collect();
        for (id, _) in &batch {
            *invocations.entry(id.clone()).or_default() += 1;
        }
        let out = env.invoke(sqs_event(&batch)).await.unwrap();
        let failed: BTreeSet<String> = out["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
            .collect();
        for m in &msgs {
            if failed.contains(m.message_id().unwrap()) {
                reasons.push(out.to_string());
            } else {
                sqs.delete_message()
                    .queue_url(&queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    let dead = sqs
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(
        dead.len(),
        1,
        "exactly the failing message is dead-lettered"
    );
    assert_eq!(dead[0].body(), Some(bad_body.as_str()));
    let dead_id = dead[0].message_id().unwrap();
    assert_eq!(
        invocations.get(dead_id),
        Some(&MAX_RECEIVES),
        "invoked maxReceiveCount times before dead-lettering: {invocations:?}"
    );
    assert_eq!(invocations.len(), 2);
    assert!(
        invocations.values().any(|n| *n == 1),
        "the good message succeeded first time"
    );
    eprintln!(
        "dead-lettered after {MAX_RECEIVES} receives; attributes {:?}; handler answers {reasons:?}",
        dead[0].attributes()
    );
    // the good object's findings were stored once; none for the dead one
    let want = expected_ids(&env.rules, &records("0k0k0k0k"));
    assert_eq!(
        env.items().await.keys().cloned().collect::<BTreeSet<_>>(),
        want
    );
}
