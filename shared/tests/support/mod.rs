//! Test harness: a private moto server per test, and helpers to create the resources the
//! functions use (findings table, alerts topic with an SQS queue subscribed to it, bucket).
//!
//! Use from an integration test compiled with `--features aws`:
//! ```ignore
//! mod support;
//! let Some(moto) = support::Moto::start("my_test") else { return };
//! let sdk = moto.sdk_config().await;
//! ```
//! Each test starts its own `moto_server` on 127.0.0.1 and a free port, so tests run in
//! parallel without sharing state; the process is killed when the [`Moto`] is dropped.
//! The endpoint reaches the SDK through the `SdkConfig`, never through the process
//! environment (which parallel tests share).
//!
//! The binary is `$MOTO_SERVER`, else `<workspace>/.venv/bin/moto_server` (where
//! `make test` installs the pinned `moto[server]==5.1.22`), else `moto_server` on `PATH`.
//! Without one the test is skipped with a printed notice, unless `TRAILWATCH_REQUIRE_MOTO=1`
//! (CI), which turns the skip into a failure.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)] // each test binary uses a different subset

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Test credentials moto accepts (any non-empty values).
const ACCESS_KEY: &str = "testing";
const SECRET_KEY: &str = "testing";

/// The account id moto uses for every resource.
pub const MOTO_ACCOUNT: &str = "123456789012";

/// A running moto server, killed on drop.
pub struct Moto {
    child: Child,
    port: u16,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Where the moto server binary is, if anywhere.
pub fn moto_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let venv = workspace_root().join(".venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    find_on_path("moto_server")
}

/// Ports this process has handed to a moto server. `bind(0)` may return a port that was
/// released a moment ago, and between `free_port` releasing it and moto binding it (a
/// second or more of Python start-up) a parallel test could be handed the same port: its
/// moto then fails to bind while the readiness probe is answered by the *other* test's
/// server, so two tests share one moto ("table already exists", foreign items). Never
/// handing out a port twice in one process closes that race between tests of a binary.
static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

fn free_port() -> u16 {
    // bind port 0 to let the kernel pick, then release it for moto
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = l.local_addr().expect("local addr").port();
        let mut used = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !used.contains(&port) {
            used.push(port);
            return port;
        }
    }
}

/// One plain HTTP GET; the status code, if the server answered.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 32];
    let n = s.read(&mut head).ok()?;
    let line = std::str::from_utf8(head.get(..n)?).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Moto {
    /// Start a private moto server, or `None` (after printing why) when moto is not
    /// installed. Panics when `TRAILWATCH_REQUIRE_MOTO=1` and moto is missing, or when the
    /// server does not come up.
    pub fn start(test: &str) -> Option<Moto> {
        let Some(bin) = moto_binary() else {
            if std::env::var("TRAILWATCH_REQUIRE_MOTO").as_deref() == Ok("1") {
                panic!(
                    "moto not found (TRAILWATCH_REQUIRE_MOTO=1): set MOTO_SERVER or run \
                     `python3 -m venv .venv && .venv/bin/pip install 'moto[server]==5.1.22'`"
                );
            }
            eprintln!("moto not found: skipping {test}");
            return None;
        };
        // a port taken by another process between `free_port` and moto's bind makes moto
        // exit at start-up: try another port, a few times
        for attempt in 1..=3 {
            let port = free_port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let mut moto = Moto { child, port };
            let started = Instant::now();
            loop {
                if let Ok(Some(status)) = moto.child.try_wait() {
                    if attempt == 3 {
                        panic!("moto_server exited during startup ({status}) on port {port}");
                    }
                    eprintln!("moto_server exited during startup on port {port}; retrying");
                    break;
                }
                if http_status(port, "/moto-api/").is_some() {
                    return Some(moto);
                }
                if started.elapsed() > Duration::from_secs(15) {
                    panic!("moto_server did not answer on port {port} within 15 s");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        unreachable!("the third failed attempt panics")
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`: what a proxy in front of this server forwards to
    /// (`support/fault_proxy.rs`).
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// [`Moto::sdk_config`] sending every request to `endpoint` instead (a proxy in front
    /// of this server).
    pub async fn sdk_config_via(&self, endpoint: &str) -> SdkConfig {
        self.sdk_config()
            .await
            .to_builder()
            .endpoint_url(endpoint)
            .build()
    }

    /// An `SdkConfig` pointing at this server: region us-east-1, static test credentials.
    /// S3 clients built from it must use path-style addressing (the adapters do that when
    /// the config carries an endpoint; [`Moto::s3`] does too).
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "moto",
            ))
            .endpoint_url(self.endpoint())
            .load()
            .await
    }

    /// An S3 client (path-style addressing).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// A DynamoDB client.
    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config().await)
    }

    /// An SNS client.
    pub async fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk_config().await)
    }

    /// An SQS client.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config().await)
    }

    /// Create the findings table as `template.yaml` declares it: string keys `pk`/`sk`,
    /// GSIs `by-rule` (`gsi1pk`/`gsi1sk`) and `by-principal` (`gsi2pk`/`gsi2sk`), TTL on
    /// `expires_at`.
    pub async fn create_findings_table(&self, name: &str) {
        let ddb = self.dynamodb().await;
        let attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        let key = |n: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
                .unwrap()
        };
        let gsi = |index: &str, pk: &str, sk: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(index)
                .key_schema(key(pk, KeyType::Hash))
                .key_schema(key(sk, KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap()
        };
        ddb.create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk"))
            .attribute_definitions(attr("sk"))
            .attribute_definitions(attr("gsi1pk"))
            .attribute_definitions(attr("gsi1sk"))
            .attribute_definitions(attr("gsi2pk"))
            .attribute_definitions(attr("gsi2sk"))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .global_secondary_indexes(gsi("by-rule", "gsi1pk", "gsi1sk"))
            .global_secondary_indexes(gsi("by-principal", "gsi2pk", "gsi2sk"))
            .send()
            .await
            .expect("create findings table");
        ddb.update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                    .attribute_name("expires_at")
                    .enabled(true)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("enable TTL");
    }

    /// Every item of `table` (scan, all pages).
    pub async fn scan_table(&self, table: &str) -> Vec<HashMap<String, AttributeValue>> {
        let ddb = self.dynamodb().await;
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = ddb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return out;
            }
        }
    }

    /// Create an SNS topic; its ARN.
    pub async fn create_topic(&self, name: &str) -> String {
        self.sns()
            .await
            .create_topic()
            .name(name)
            .send()
            .await
            .expect("create topic")
            .topic_arn
            .expect("topic arn")
    }

    /// Create an SQS queue subscribed to `topic_arn` with raw delivery off, so each
    /// message body is the SNS envelope (`Subject`, `Message`, `MessageAttributes`).
    /// Returns the queue URL.
    pub async fn subscribe_queue(&self, topic_arn: &str, queue: &str) -> String {
        let sqs = self.sqs().await;
        let url = sqs
            .create_queue()
            .queue_name(queue)
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let arn = format!("arn:aws:sqs:us-east-1:{MOTO_ACCOUNT}:{queue}");
        self.sns()
            .await
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(arn)
            .attributes("RawMessageDelivery", "false")
            .send()
            .await
            .expect("subscribe queue");
        url
    }

    /// Drain `queue_url`: every SNS envelope delivered so far, parsed, deleted from the queue.
    pub async fn receive_all(&self, queue_url: &str) -> Vec<serde_json::Value> {
        let sqs = self.sqs().await;
        let mut out = Vec::new();
        loop {
            let got = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let msgs = got.messages.unwrap_or_default();
            if msgs.is_empty() {
                return out;
            }
            for m in msgs {
                let body = m.body.unwrap_or_default();
                out.push(serde_json::from_str(&body).expect("SNS envelope JSON"));
                if let Some(h) = m.receipt_handle {
                    sqs.delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(h)
                        .send()
                        .await
                        .expect("delete message");
                }
            }
        }
    }

    /// Create a bucket.
    pub async fn create_bucket(&self, bucket: &str) {
        self.s3()
            .await
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create bucket");
    }

    /// Upload `bytes` to `bucket`/`key`.
    pub async fn put_object(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        self.s3()
            .await
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(bytes.into())
            .send()
            .await
            .expect("put object");
    }

    /// Delete `bucket`/`key`.
    pub async fn delete_object(&self, bucket: &str, key: &str) {
        self.s3()
            .await
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("delete object");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
