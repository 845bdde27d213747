//! Log hygiene (issue 10, part 6): what the handlers log never carries credentials,
//! secrets or request/response bodies, whatever the records hold; and what they store and
//! publish stays within DynamoDB's and SNS's size limits.
//!
//! Both handlers run over the in-memory ports (no moto needed) on records that carry
//! marker secrets in the places CloudTrail puts them (`responseElements.credentials`,
//! `requestParameters`, `additionalEventData`), plus huge request bodies, broken records
//! and unknown event shapes that reach the error paths. Every log line of the test binary,
//! at every level and with every span field, is captured by a subscriber that records each
//! field's text, then searched for the markers. The capture itself is checked (the
//! expected "object done" line is there), so a broken capture cannot pass silently.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Event, Metadata, Subscriber};
use trailwatch::correlate::Correlator;
use trailwatch::detect::RuleSet;
use trailwatch::findings::alert::MAX_BODY_BYTES;
use trailwatch::findings::item::{item_size, to_item, MAX_ITEM_BYTES};
use trailwatch::handler::event_handler::EventHandler;
use trailwatch::handler::log_processor::{Invocation, LogProcessor};
use trailwatch::ports::memory::{MemFindingStore, MemNotifier, MemObjectSource};
use trailwatch::ports::memory_state::MemCorrelationState;
use trailwatch::ports::remediate::MemRemediator;
use trailwatch::ports::StoredFinding;
use trailwatch::Config;

/// Values that must never be logged: each is unique, so any hit is a leak.
const SECRET_ACCESS_KEY: &str = "wJalrFAKEHYGIENEsecretKEY/K7MDENG+bPxRfiCY";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzFAKEHYGIENEsessionTOKEN0123456789abcdef";
const TEMP_ACCESS_KEY_ID: &str = "ASIAFAKEHYGIENE00042";
const PASSWORD: &str = "Hyg1ene-P@ssw0rd-FAKE";
const BODY_MARKER: &str = "HYGIENEBODYMARKER";
/// Field names whose presence in a log line means a record fragment was logged.
const FORBIDDEN_FIELDS: [&str; 4] = [
    "secretAccessKey",
    "sessionToken",
    "\"password\"",
    "requestParameters\":",
];

// ---------------------------------------------------------------- log capture

/// A subscriber that writes every event and span, with every field, to one buffer.
struct Capture {
    buf: Arc<Mutex<String>>,
    next_id: AtomicU64,
}

struct FieldText<'a>(&'a mut String);

impl Visit for FieldText<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // raw, not Debug-escaped: an escaped copy of a secret must still be found
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let _ = write!(self.0, " {}={}", field.name(), value);
        let mut cur = value.source();
        while let Some(c) = cur {
            let _ = write!(self.0, ": {c}");
            cur = c.source();
        }
    }
}

impl Capture {
    fn push(&self, line: String) {
        if let Ok(mut b) = self.buf.lock() {
            b.push_str(&line);
            b.push('\n');
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut line = format!("SPAN {}", attrs.metadata().name());
        attrs.record(&mut FieldText(&mut line));
        self.push(line);
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, values: &SpanRecord<'_>) {
        let mut line = String::from("SPAN-RECORD");
        values.record(&mut FieldText(&mut line));
        self.push(line);
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let m = event.metadata();
        let mut line = format!("{} {}", m.level(), m.target());
        event.record(&mut FieldText(&mut line));
        self.push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// The process-wide capture (a global default, so the blocking pool's threads log into
/// it too).
fn logs() -> &'static Arc<Mutex<String>> {
    static BUF: OnceLock<Arc<Mutex<String>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(String::new()));
        let sub = Capture {
            buf: buf.clone(),
            next_id: AtomicU64::new(0),
        };
        tracing::subscriber::set_global_default(sub).expect("no other subscriber in this binary");
        buf
    })
}

fn captured() -> String {
    logs().lock().expect("log buffer").clone()
}

fn assert_no_secrets(text: &str, what: &str) {
    for s in [
        SECRET_ACCESS_KEY,
        SESSION_TOKEN,
        TEMP_ACCESS_KEY_ID,
        PASSWORD,
        BODY_MARKER,
    ] {
        assert!(
            !text.contains(s),
            "{what} contains secret {s:?}:\n{}",
            lines_with(text, s)
        );
    }
    for f in FORBIDDEN_FIELDS {
        assert!(
            !text.contains(f),
            "{what} contains record field {f:?}:\n{}",
            lines_with(text, f)
        );
    }
}

fn lines_with(text: &str, needle: &str) -> String {
    text.lines()
        .filter(|l| l.contains(needle))
        .take(3)
        .map(|l| l.chars().take(400).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------- records

const ACCT: &str = "111122223333";

fn base(i: usize, name: &str, source: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:hygiene",
            "arn": format!("arn:aws:sts::{ACCT}:assumed-role/admin/hygiene"),
            "accountId": ACCT,
            "accessKeyId": TEMP_ACCESS_KEY_ID,
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": format!("arn:aws:iam::{ACCT}:role/admin")}}
        },
        "eventTime": format!("2026-11-23T10:{:02}:00Z", i % 60),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0",
        "eventID": format!("00000000-0000-4000-8000-{i:012}"),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCT,
    })
}

/// Records that raise findings in the bundled pack and carry secrets in their bodies.
fn secret_records() -> Vec<Value> {
    let huge = BODY_MARKER.repeat(40_000); // ~680 KB of request body
    let mut stop = base(1, "StopLogging", "cloudtrail.amazonaws.com");
    stop["requestParameters"] = json!({"name": "main", "note": huge, "password": PASSWORD});
    let mut delete = base(2, "DeleteTrail", "cloudtrail.amazonaws.com");
    delete["requestParameters"] = json!({"name": "main", "secretAccessKey": SECRET_ACCESS_KEY});
    let mut login = base(3, "ConsoleLogin", "signin.amazonaws.com");
    login["eventType"] = json!("AwsConsoleSignIn");
    login["userIdentity"] =
        json!({"type": "Root", "arn": format!("arn:aws:iam::{ACCT}:root"), "accountId": ACCT});
    login["additionalEventData"] = json!({"MFAUsed": "No", "password": PASSWORD});
    login["responseElements"] = json!({"ConsoleLogin": "Success"});
    let mut token = base(4, "GetSessionToken", "sts.amazonaws.com");
    token["responseElements"] = json!({"credentials": {
        "accessKeyId": TEMP_ACCESS_KEY_ID,
        "secretAccessKey": SECRET_ACCESS_KEY,
        "sessionToken": SESSION_TOKEN,
        "expiration": "Nov 23, 2026 10:00:00 PM"
    }});
    let mut profile = base(5, "CreateLoginProfile", "iam.amazonaws.com");
    profile["requestParameters"] =
        json!({"userName": "bob", "password": PASSWORD, "passwordResetRequired": false});
    vec![stop, delete, login, token, profile]
}

fn gzip(text: &str) -> Vec<u8> {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).expect("gzip to memory");
    e.finish().expect("gzip to memory")
}

fn log_key(n: usize) -> String {
    format!("AWSLogs/{ACCT}/CloudTrail/us-east-1/2026/11/23/{ACCT}_CloudTrail_us-east-1_20261123T10{n:02}Z_hygiene{n}.json.gz")
}

fn s3_event(bucket: &str, keys: &[String]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                   "s3": {"bucket": {"name": bucket}, "object": {"key": k}}})
        })
        .collect();
    json!({ "Records": records })
}

fn config() -> Config {
    let mut cfg = Config::new("findings", "arn:aws:sns:us-east-1:111122223333:alerts");
    cfg.min_alert_severity = trailwatch::findings::Severity::Info;
    cfg
}

fn rules() -> Arc<RuleSet> {
    Arc::new(RuleSet::bundled().expect("bundled rules load"))
}

fn inv() -> Invocation {
    Invocation {
        request_id: "req-hygiene".into(),
        deadline: Some(SystemTime::now() + Duration::from_secs(300)),
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_processor_logs_no_secrets_or_bodies() {
    logs();
    let cfg = config();
    let objects = MemObjectSource::default();
    let store = MemFindingStore::default();
    let notifier = MemNotifier::default();
    let bucket = "trail-bucket";

    // a good log file full of secrets
    let records = secret_records();
    let good = gzip(&json!({ "Records": records }).to_string());
    objects.insert(bucket, &log_key(1), good);
    // a damaged one: a record cut inside its secrets, then a truncated stream
    let mut text = json!({ "Records": [records[3].clone()] }).to_string();
    text.insert_str(
        text.len() - 2,
        &format!(r#",{{"eventID":"x","secretAccessKey":"{SECRET_ACCESS_KEY}",}}"#),
    );
    text.push_str(&format!(
        r#"{{"Records":[{{"sessionToken":"{SESSION_TOKEN}"#
    ));
    objects.insert(bucket, &log_key(2), gzip(&text));
    // a record over the size limit
    let big = json!({"Records": [records[0].clone()]}).to_string();
    objects.insert(bucket, &log_key(3), gzip(&big));

    let state = MemCorrelationState::default();
    let lp = LogProcessor {
        cfg: &cfg,
        rules: rules(),
        objects: &objects,
        store: &store,
        notifier: &notifier,
        correlator: Arc::new(Correlator::new(&rules())),
        state: &state,
        allowlist: None,
    };
    let keys = [log_key(1), log_key(2)];
    let out = lp
        .handle(s3_event(bucket, &keys), &inv())
        .await
        .expect("no retryable failure over memory ports");
    assert_eq!(out["objects"], 2, "{out}");
    // the same huge record, over a smaller limit: rejected as too large
    let mut small = config();
    small.max_record_bytes = 100_000;
    LogProcessor {
        cfg: &small,
        rules: rules(),
        objects: &objects,
        store: &store,
        notifier: &notifier,
        correlator: Arc::new(Correlator::new(&rules())),
        state: &state,
        allowlist: None,
    }
    .handle(s3_event(bucket, &[log_key(3)]), &inv())
    .await
    .expect("acknowledged");

    // a notification that is not understood, carrying secrets in unexpected places
    let weird = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": {"secretAccessKey": SECRET_ACCESS_KEY}}}}]});
    lp.handle(weird, &inv()).await.expect("acknowledged");
    let sqs = json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m-1",
        "body": format!(r#"{{"Records":[{{"password":"{PASSWORD}""#)}]});
    lp.handle(sqs, &inv()).await.expect("acknowledged");

    // transient store failures are logged with their error, not the finding's record
    store.fail_next_puts(2);
    objects.insert(
        bucket,
        &log_key(4),
        gzip(&json!({ "Records": records }).to_string()),
    );
    let _ = lp.handle(s3_event(bucket, &[log_key(4)]), &inv()).await;

    let stored = store.findings();
    for name in ["StopLogging", "DeleteTrail", "ConsoleLogin"] {
        assert!(
            stored.iter().any(|f| f.event_name == name),
            "the secret-bearing {name} record raised a finding: {:?}",
            stored.iter().map(|f| &f.rule_id).collect::<Vec<_>>()
        );
    }
    let text = captured();
    assert!(
        text.contains(&log_key(1)),
        "capture works: the object key is logged"
    );
    assert!(text.contains("req-hygiene"), "request id is logged");
    assert_no_secrets(&text, "log-processor logs");
    // alerts never copy request bodies either
    for a in notifier.sent() {
        assert_no_secrets(&a.body, "alert body");
        assert_no_secrets(&a.subject, "alert subject");
        assert!(
            a.body.len() <= MAX_BODY_BYTES,
            "alert body {} bytes",
            a.body.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_handler_logs_no_secrets_or_bodies() {
    logs();
    let cfg = config();
    let rules = rules();
    let store = MemFindingStore::default();
    let notifier = MemNotifier::default();
    let (correlator, _) = Correlator::new(&rules).leaving_out_ratios();
    let state = MemCorrelationState::default();
    let h = EventHandler {
        cfg: &cfg,
        rules: &rules,
        store: &store,
        notifier: &notifier,
        remediator: None::<&MemRemediator>,
        correlator: &correlator,
        state: &state,
        allowlist: None,
    };
    let envelope = |i: usize, detail: Value| {
        json!({"version": "0", "id": format!("eb-hygiene-{i}"), "detail-type": "AWS API Call via CloudTrail",
               "source": "aws.cloudtrail", "account": ACCT, "time": "2026-11-23T10:00:00Z",
               "region": "us-east-1", "resources": [], "detail": detail})
    };
    let mut messages = Vec::new();
    for (i, r) in secret_records().into_iter().enumerate() {
        let ev = envelope(i, r);
        h.handle(&ev, None).await.expect("single event handled");
        messages.push(json!({"messageId": format!("m-{i}"), "eventSource": "aws:sqs", "body": ev.to_string()}));
    }
    // broken bodies and details that carry secrets
    messages.push(json!({"messageId": "m-bad-json", "eventSource": "aws:sqs",
        "body": format!(r#"{{"detail":{{"secretAccessKey":"{SECRET_ACCESS_KEY}""#)}));
    messages.push(
        json!({"messageId": "m-not-object", "eventSource": "aws:sqs",
        "body": envelope(90, json!([SESSION_TOKEN, PASSWORD])).to_string()}),
    );
    let other = json!({"id": "eb-other", "detail-type": "Other Thing", "source": "custom",
        "detail": {"password": PASSWORD}});
    messages
        .push(json!({"messageId": "m-other", "eventSource": "aws:sqs", "body": other.to_string()}));
    store.fail_next_puts(1);
    let resp = h
        .handle(&json!({ "Records": messages }), None)
        .await
        .expect("a batch never fails whole");
    assert!(
        resp.batch_item_failures.len() <= 1,
        "only the message whose put failed is retried: {:?}",
        resp.batch_item_failures
    );

    let text = captured();
    assert!(text.contains("eb-hygiene-0") || text.contains("00000000-0000-4000-8000-000000000001"));
    assert!(
        text.contains("m-bad-json"),
        "malformed message is logged by id"
    );
    assert_no_secrets(&text, "event-handler logs");
    for a in notifier.sent() {
        assert_no_secrets(&a.body, "alert body");
        assert!(a.body.len() <= MAX_BODY_BYTES);
    }
}

/// Stored items keep a copy of the record, cut to stay within DynamoDB's item limit even
/// for a record of several hundred KB.
#[test]
fn stored_items_are_size_capped() {
    let records = secret_records();
    let huge = records[0].to_string();
    assert!(huge.len() > 600_000);
    let record = trailwatch::model::Record::from_json(huge.clone()).expect("record");
    let rules = RuleSet::bundled().expect("bundled rules");
    let mut findings = Vec::new();
    trailwatch::pipeline::Evaluator::new(&rules).evaluate(&record, "s3://b/k", &mut findings);
    let finding = findings.first().expect("StopLogging raises a finding");
    let item = to_item(
        &StoredFinding {
            finding,
            record_json: Some(&huge),
            object_key: Some("AWSLogs/x"),
        },
        time::OffsetDateTime::now_utc(),
        30,
    );
    let size = item_size(&item);
    assert!(size <= MAX_ITEM_BYTES, "item is {size} bytes");
    assert!(size < 400 * 1024);
}

/// User rules cannot make the engine slow or huge: regexes are linear-time and compiled
/// with a size limit; an oversized one is a load error naming the rule.
#[test]
fn rule_regexes_are_linear_and_size_limited() {
    let rule = |re: &str| {
        format!(
            "title: t\nid: 3f0d8c1e-5a6b-4c7d-8e9f-0a1b2c3d4e5f\nlogsource: {{product: aws, service: cloudtrail}}\n\
             detection:\n  sel:\n    eventName|re: '{re}'\n  condition: sel\nlevel: low\n"
        )
    };
    // catastrophic backtracking in a backtracking engine; linear in Rust's
    let src = rule("^(a+)+$");
    let set = RuleSet::from_sources([("redos.yml", src.as_str())]).expect("loads");
    let mut r = base(1, &format!("{}b", "a".repeat(100_000)), "x.amazonaws.com");
    r["eventName"] = json!(format!("{}!", "a".repeat(100_000)));
    let record = trailwatch::model::Record::from_value(&r).expect("record");
    let mut out = Vec::new();
    let t = std::time::Instant::now();
    set.matches(&record, &mut out);
    assert!(out.is_empty());
    // generous bound: a backtracking engine would take longer than the universe's age
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    let src = rule("(a{1000}){1000}");
    let errors = RuleSet::from_sources([("huge.yml", src.as_str())]).expect_err("refused");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, "huge.yml");
    assert!(errors[0].line.is_some(), "{:?}", errors[0]);
    assert!(
        errors[0].message.to_lowercase().contains("size") || errors[0].message.contains("limit"),
        "{}",
        errors[0].message
    );
}
