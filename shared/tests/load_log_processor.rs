//! Load (issue 10, part 5): 1,000 log files, 1,000,000 records, through the real
//! log-processor and AWS adapters against moto, as 100 SQS batches of 10 objects with 8
//! invocations in flight, plus a second delivery of 10 batches (SQS is at-least-once).
//! Every finding is counted by its deterministic id: none lost, none duplicated.
//!
//! Ignored by default (minutes of CPU): `LOAD_FILES=1000 cargo test -p trailwatch
//! --features aws --release --test load_log_processor -- --ignored --nocapture`.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use serde_json::{json, Value};
use support::Moto;
use trailwatch::correlate::Correlator;
use trailwatch::detect::RuleSet;
use trailwatch::handler::log_processor::{Invocation, LogProcessor};
use trailwatch::model::Record;
use trailwatch::pipeline::Evaluator;
use trailwatch::ports::aws::Ports;
use trailwatch::ports::memory_state::MemCorrelationState;
use trailwatch::Config;

const BUCKET: &str = "load-bucket";
const TABLE: &str = "findings";
const ACCOUNT: &str = "111122223333";
const RECORDS_PER_FILE: usize = 1000;
/// One record in this many raises a finding.
const SUSPICIOUS_EVERY: usize = 250;
const CONCURRENCY: usize = 8;
const BATCH: usize = 10;

fn record(file: usize, i: usize) -> Value {
    let suspicious = i % SUSPICIOUS_EVERY == 0;
    let (name, source) = if suspicious {
        ("StopLogging", "cloudtrail.amazonaws.com")
    } else {
        ("GetObject", "s3.amazonaws.com")
    };
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "AssumedRole", "principalId": "AROAEXAMPLE:load",
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/app-{}/load", file % 50),
            "accountId": ACCOUNT},
        "eventTime": format!("2026-11-23T{:02}:{:02}:{:02}Z", (file / 60) % 24, file % 60, i % 60),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-sdk-java/2.20",
        "requestParameters": {"bucketName": "data", "key": format!("obj/{file}/{i}")},
        "responseElements": null,
        "eventID": format!("{file:08}-0000-4000-8000-{i:012}"),
        "readOnly": !suspicious,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
    })
}

fn key(file: usize) -> String {
    format!("AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/23/{ACCOUNT}_CloudTrail_us-east-1_20261123T1000Z_f{file:05}.json.gz")
}

fn log_file(file: usize) -> (Vec<u8>, Vec<Value>) {
    let recs: Vec<Value> = (0..RECORDS_PER_FILE).map(|i| record(file, i)).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(json!({ "Records": recs }).to_string().as_bytes())
        .unwrap();
    let suspicious = recs
        .iter()
        .filter(|r| r["eventName"] == "StopLogging")
        .cloned()
        .collect();
    (gz.finish().unwrap(), suspicious)
}

fn sqs_batch(files: &[usize]) -> Value {
    let recs: Vec<Value> = files
        .iter()
        .map(|f| {
            let body = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": BUCKET}, "object": {"key": key(*f)}}}]});
            json!({"messageId": format!("m-{f}"), "receiptHandle": "h", "body": body.to_string(),
                   "eventSource": "aws:sqs", "awsRegion": "us-east-1"})
        })
        .collect();
    json!({ "Records": recs })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "load test: minutes of CPU; run with --ignored"]
async fn a_million_records_no_finding_lost_or_duplicated() {
    let files: usize = std::env::var("LOAD_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let Some(moto) = Moto::start("load") else {
        return;
    };
    moto.create_findings_table(TABLE).await;
    moto.create_bucket(BUCKET).await;
    let topic = moto.create_topic("alerts").await;
    let mut cfg = Config::new(TABLE, topic);
    cfg.retention_days = 30;
    let rules = Arc::new(RuleSet::bundled().unwrap());

    // upload, and compute the expected finding ids from the same records
    let started = Instant::now();
    let s3 = moto.s3().await;
    let mut want = BTreeSet::new();
    let mut eval = Evaluator::new(&rules);
    let mut uploads = tokio::task::JoinSet::new();
    for f in 0..files {
        let (bytes, suspicious) = log_file(f);
        let mut out = Vec::new();
        for r in &suspicious {
            eval.evaluate(&Record::from_value(r).unwrap(), "s", &mut out);
        }
        want.extend(out.into_iter().map(|x| x.id));
        let s3 = s3.clone();
        uploads.spawn(async move {
            s3.put_object()
                .bucket(BUCKET)
                .key(key(f))
                .body(bytes.into())
                .send()
                .await
                .unwrap();
        });
        if uploads.len() >= 16 {
            uploads.join_next().await;
        }
    }
    while uploads.join_next().await.is_some() {}
    let uploaded = started.elapsed();

    let ports = Ports::from_sdk_config(&moto.sdk_config().await, &cfg);
    let mut batches: Vec<Vec<usize>> = (0..files)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(<[usize]>::to_vec)
        .collect();
    // SQS redelivers: the first 10 batches arrive twice
    let redelivered: Vec<Vec<usize>> = batches.iter().take(10).cloned().collect();
    batches.extend(redelivered);
    // 8 invocations in flight (their scans run on the blocking pool, in parallel); one
    // task drives them because the handler's futures borrow the shared ports
    let t0 = Instant::now();
    let records: u64 = futures::stream::iter(batches.into_iter().enumerate())
        .map(|(n, b)| {
            let (cfg, ports, rules) = (&cfg, &ports, &rules);
            async move {
                let inv = Invocation {
                    request_id: format!("load-{n}"),
                    deadline: Some(SystemTime::now() + Duration::from_secs(300)),
                };
                let out = LogProcessor {
                    cfg,
                    rules: rules.clone(),
                    objects: &ports.objects,
                    store: &ports.store,
                    notifier: &ports.notifier,
                    correlator: Arc::new(Correlator::new(rules)),
                    state: &MemCorrelationState::default(),
                    allowlist: None,
                }
                .handle(sqs_batch(&b), &inv)
                .await
                .unwrap();
                assert_eq!(out["batchItemFailures"], json!([]), "{out}");
                // an object counts once its message was acknowledged
                (b.len() * RECORDS_PER_FILE) as u64
            }
        })
        .buffer_unordered(CONCURRENCY)
        .fold(0u64, |acc, n| async move { acc + n })
        .await;
    let processed = t0.elapsed();

    // correlation findings (bursts across the generated records) are not in `want`
    let items: Vec<_> = moto
        .scan_table(TABLE)
        .await
        .into_iter()
        .filter(|i| {
            i.get("rule_id")
                .and_then(|v| v.as_s().ok())
                .is_none_or(|r| !r.starts_with("tw-corr-"))
        })
        .collect();
    let ids: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_s().unwrap().clone())
        .collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    eprintln!(
        "load: {files} files, {records} records in acknowledged objects (incl. {} redelivered \
         files), {} findings \
         expected, {} items, {} unique; upload {uploaded:?}, processing {processed:?} \
         with {CONCURRENCY} invocations in flight",
        files.min(10 * BATCH),
        want.len(),
        ids.len(),
        unique.len()
    );
    assert_eq!(ids.len(), unique.len(), "duplicated findings");
    assert_eq!(unique, want, "lost or unexpected findings");
    assert_eq!(
        records,
        ((files + files.min(10 * BATCH)) * RECORDS_PER_FILE) as u64
    );
}
