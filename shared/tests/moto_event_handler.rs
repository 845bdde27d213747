//! The event-handler end to end against a private moto server, through the real SDK
//! clients: EventBridge event → handler → DynamoDB items and SNS messages (read back from an
//! SQS queue subscribed to the topic), and each remediation checked on the resource itself
//! (trail status, bucket public access block, access key status).
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use std::collections::HashMap;
use support::Moto;
use trailwatch::correlate::Correlator;
use trailwatch::detect::RuleSet;
use trailwatch::handler::event_handler::{EventHandler, EventOutcome};
use trailwatch::ports::aws::{AwsRemediator, Ports};
use trailwatch::ports::memory_state::MemCorrelationState;
use trailwatch::Config;

const TABLE: &str = "findings";
const TRAIL: &str = "trailwatch-trail";
const BUCKET: &str = "trailwatch-trail-bucket";

/// A moto server with the findings table, the alerts topic and a queue reading it.
struct Env {
    moto: Moto,
    cfg: Config,
    queue: String,
    rules: RuleSet,
}

async fn env(test: &str, configure: impl FnOnce(&mut Config)) -> Option<Env> {
    let moto = Moto::start(test)?;
    moto.create_findings_table(TABLE).await;
    let topic = moto.create_topic("alerts").await;
    let queue = moto.subscribe_queue(&topic, "alerts-q").await;
    let mut cfg = Config::new(TABLE, topic);
    cfg.trail_name = Some(TRAIL.into());
    cfg.trail_bucket = Some(BUCKET.into());
    cfg.remediation.protected_trails = vec![TRAIL.into()];
    configure(&mut cfg);
    Some(Env {
        moto,
        cfg,
        queue,
        rules: RuleSet::bundled().unwrap(),
    })
}

impl Env {
    /// Deliver `event` through the real handler and adapters.
    async fn deliver(&self, event: &Value) -> Vec<EventOutcome> {
        let sdk = self.moto.sdk_config().await;
        let ports = Ports::from_sdk_config(&sdk, &self.cfg);
        let remediator = AwsRemediator::load(&self.cfg, ports.sdk_config())
            .await
            .unwrap();
        let (correlator, _) = Correlator::new(&self.rules).leaving_out_ratios();
        let state = MemCorrelationState::default();
        let h = EventHandler {
            cfg: &self.cfg,
            rules: &self.rules,
            store: &ports.store,
            notifier: &ports.notifier,
            remediator: remediator.as_ref(),
            correlator: &correlator,
            state: &state,
            allowlist: None,
        };
        let resp = h.handle(event, None).await.unwrap();
        assert!(resp.batch_item_failures.is_empty());
        resp.outcomes
    }

    async fn items(&self) -> Vec<HashMap<String, AttributeValue>> {
        self.moto.scan_table(TABLE).await
    }

    async fn alerts(&self) -> Vec<Value> {
        self.moto.receive_all(&self.queue).await
    }

    async fn is_logging(&self) -> bool {
        let ct = aws_sdk_cloudtrail::Client::new(&self.moto.sdk_config().await);
        let status = ct.get_trail_status().name(TRAIL).send().await.unwrap();
        status.is_logging().unwrap()
    }

    /// The trail bucket and a trail writing to it, logging then stopped.
    async fn stopped_trail(&self) {
        self.moto.create_bucket(BUCKET).await;
        let ct = aws_sdk_cloudtrail::Client::new(&self.moto.sdk_config().await);
        ct.create_trail()
            .name(TRAIL)
            .s3_bucket_name(BUCKET)
            .send()
            .await
            .unwrap();
        ct.start_logging().name(TRAIL).send().await.unwrap();
        assert!(self.is_logging().await);
        ct.stop_logging().name(TRAIL).send().await.unwrap();
        assert!(!self.is_logging().await);
    }
}

fn s(item: &HashMap<String, AttributeValue>, k: &str) -> String {
    match item.get(k) {
        Some(AttributeValue::S(v)) => v.clone(),
        other => panic!("{k}: {other:?}"),
    }
}

fn rule_ids(items: &[HashMap<String, AttributeValue>]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|i| s(i, "rule_id")).collect();
    v.sort();
    v
}

fn alert_rules(alerts: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = alerts
        .iter()
        .map(|a| {
            a["MessageAttributes"]["rule_id"]["Value"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    v.sort();
    v
}

fn sample(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// An EventBridge envelope around `detail`.
fn envelope(detail: Value) -> Value {
    json!({"version": "0", "id": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        "detail-type": "AWS API Call via CloudTrail", "source": "aws.s3",
        "account": "123456789012", "time": "2024-05-01T10:30:00Z", "region": "us-east-1",
        "resources": [], "detail": detail})
}

fn mallory() -> Value {
    json!({"type": "IAMUser", "principalId": "AIDAMALLORYEXAMPLE",
        "arn": "arn:aws:iam::123456789012:user/mallory", "accountId": "123456789012",
        "accessKeyId": "AKIAI44QH8DHBEXAMPLE", "userName": "mallory"})
}

fn api_call(name: &str, source: &str, event_id: &str, params: Value, response: Value) -> Value {
    envelope(json!({
        "eventVersion": "1.09", "userIdentity": mallory(),
        "eventTime": "2024-05-01T10:29:58Z", "eventSource": source, "eventName": name,
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.45",
        "userAgent": "aws-cli/2.15.40", "requestParameters": params,
        "responseElements": response, "requestID": "REQ1EXAMPLE", "eventID": event_id,
        "readOnly": false, "eventType": "AwsApiCall", "managementEvent": true,
        "recipientAccountId": "123456789012", "eventCategory": "Management"
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_call_is_stored_and_alerted_once() {
    let Some(env) = env("api_call_is_stored_and_alerted_once", |_| {}).await else {
        return;
    };
    let event = sample("event-handler-api-call.json");
    let outcomes = env.deliver(&event).await;
    let EventOutcome::Evaluated { findings, .. } = &outcomes[0] else {
        panic!("{outcomes:?}")
    };
    let items = env.items().await;
    assert_eq!(items.len(), findings.len());
    assert!(rule_ids(&items).contains(&"tw-cloudtrail-stop-logging".to_owned()));
    let stop = items
        .iter()
        .find(|i| s(i, "rule_id") == "tw-cloudtrail-stop-logging")
        .unwrap();
    assert_eq!(s(stop, "event_id"), "0d3c5a1e-7f2b-4c9d-8e6a-3b4c5d6e7f80");
    assert_eq!(s(stop, "source"), "eventbridge");
    assert_eq!(s(stop, "severity"), "high");
    assert_eq!(stop.get("alerted"), Some(&AttributeValue::Bool(true)));
    let alerts = env.alerts().await;
    let alertable = findings
        .iter()
        .filter(|f| f.severity >= env.cfg.min_alert_severity)
        .count();
    assert_eq!(alerts.len(), alertable);
    assert!(alert_rules(&alerts).contains(&"tw-cloudtrail-stop-logging".to_owned()));

    // EventBridge delivers at least once: the same event again adds nothing
    env.deliver(&event).await;
    assert_eq!(env.items().await.len(), items.len());
    assert!(env.alerts().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_logging_is_undone_once() {
    let Some(env) = env("stop_logging_is_undone_once", |c| {
        c.remediation.start_logging = true;
    })
    .await
    else {
        return;
    };
    env.stopped_trail().await;
    let event = sample("event-handler-api-call.json");
    env.deliver(&event).await;
    assert!(env.is_logging().await, "StartLogging was not called");
    let items = env.items().await;
    let note = items
        .iter()
        .find(|i| s(i, "rule_id") == "tw-remediation-start-logging")
        .expect("remediation recorded");
    assert_eq!(
        s(note, "title"),
        "Auto-remediation: logging restarted on trail trailwatch-trail"
    );
    let alerts = alert_rules(&env.alerts().await);
    assert!(
        alerts.contains(&"tw-remediation-start-logging".to_owned()),
        "{alerts:?}"
    );
    assert!(
        alerts.contains(&"tw-cloudtrail-stop-logging".to_owned()),
        "{alerts:?}"
    );

    // a duplicate delivery finds the remediation recorded and does not act again: the trail
    // an operator stopped since stays stopped, and nobody is alerted twice
    let ct = aws_sdk_cloudtrail::Client::new(&env.moto.sdk_config().await);
    ct.stop_logging().name(TRAIL).send().await.unwrap();
    env.deliver(&event).await;
    assert!(!env.is_logging().await);
    assert_eq!(env.items().await.len(), items.len());
    assert!(env.alerts().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weakened_public_access_block_is_restored() {
    let Some(env) = env("weakened_public_access_block_is_restored", |c| {
        c.remediation.public_access_block = true;
    })
    .await
    else {
        return;
    };
    env.moto.create_bucket(BUCKET).await;
    let s3 = env.moto.s3().await;
    let weak = aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(false)
        .restrict_public_buckets(false)
        .build();
    s3.put_public_access_block()
        .bucket(BUCKET)
        .public_access_block_configuration(weak)
        .send()
        .await
        .unwrap();
    let event = api_call(
        "PutBucketPublicAccessBlock",
        "s3.amazonaws.com",
        "c2b1a0f9-e8d7-4c6b-a5f4-e3d2c1b0a9f8",
        json!({"PublicAccessBlockConfiguration": {
            "xmlns": "http://s3.amazonaws.com/doc/2006-03-01/",
            "BlockPublicAcls": true, "IgnorePublicAcls": true,
            "BlockPublicPolicy": false, "RestrictPublicBuckets": false},
            "bucketName": BUCKET, "Host": format!("{BUCKET}.s3.us-east-1.amazonaws.com"),
            "publicAccessBlock": ""}),
        Value::Null,
    );
    env.deliver(&event).await;
    let got = s3
        .get_public_access_block()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap()
        .public_access_block_configuration
        .unwrap();
    assert_eq!(
        (
            got.block_public_acls(),
            got.ignore_public_acls(),
            got.block_public_policy(),
            got.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let rules = rule_ids(&env.items().await);
    assert!(
        rules.contains(&"tw-remediation-public-access-block".to_owned()),
        "{rules:?}"
    );
    assert!(
        rules.contains(&"tw-s3-public-access-block-removed".to_owned()),
        "{rules:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_access_key_is_deactivated() {
    let Some(env) = env("foreign_access_key_is_deactivated", |c| {
        c.remediation.foreign_access_keys = true;
        c.remediation.allowed_principals = vec!["arn:aws:iam::*:role/IdentityAdmin*".into()];
    })
    .await
    else {
        return;
    };
    let iam = aws_sdk_iam::Client::new(&env.moto.sdk_config().await);
    iam.create_user().user_name("bob").send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name("bob")
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    let event = api_call(
        "CreateAccessKey",
        "iam.amazonaws.com",
        "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        json!({"userName": "bob"}),
        json!({"accessKey": {"userName": "bob", "accessKeyId": key.access_key_id(),
            "status": "Active", "createDate": "May 1, 2024 10:29:58 AM"}}),
    );
    env.deliver(&event).await;
    let keys = iam
        .list_access_keys()
        .user_name("bob")
        .send()
        .await
        .unwrap()
        .access_key_metadata;
    assert_eq!(keys.len(), 1);
    assert_eq!(
        keys[0].status(),
        Some(&aws_sdk_iam::types::StatusType::Inactive)
    );
    let rules = rule_ids(&env.items().await);
    assert!(
        rules.contains(&"tw-remediation-deactivate-access-key".to_owned()),
        "{rules:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_and_says_so() {
    let Some(env) = env("dry_run_changes_nothing_and_says_so", |c| {
        c.remediation.start_logging = true;
        c.remediation.dry_run = true;
    })
    .await
    else {
        return;
    };
    env.stopped_trail().await;
    env.deliver(&sample("event-handler-api-call.json")).await;
    assert!(!env.is_logging().await, "dry run restarted the trail");
    let items = env.items().await;
    let note = items
        .iter()
        .find(|i| s(i, "rule_id") == "tw-remediation-start-logging")
        .expect("dry run recorded");
    assert_eq!(
        s(note, "title"),
        "Auto-remediation (dry run): would restart logging on trail trailwatch-trail"
    );
    let alerts = alert_rules(&env.alerts().await);
    assert!(
        alerts.contains(&"tw-remediation-start-logging".to_owned()),
        "{alerts:?}"
    );
}
