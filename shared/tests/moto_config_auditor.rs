//! The config-auditor end to end against a private moto server through the real SDK
//! adapters: CloudTrail trails and status, S3 bucket settings, S3 Control account block,
//! DynamoDB check states, digest files with their S3 metadata.
//!
//! moto has no `ListPublicKeys`: the tests wrap the CloudTrail adapter and answer it from
//! the digest vectors' `public-keys.json` (or the key that signed generated digests);
//! every other call goes to moto. moto's `GetTrailStatus` has no digest delivery time, so
//! `tw-audit-digest-delivery` fails there, which the tests assert.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_config::SdkConfig;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use trailwatch::config::Config;
use trailwatch::handler::config_auditor::{handle, AuditSummary, AuditorPorts};
use trailwatch::ports::aws::{
    CloudTrailSource, DynamoDbCheckStateStore, S3AuditSource, S3DigestSource,
};
use trailwatch::ports::memory::MemNotifier;
use trailwatch::ports::trail::{
    CheckStateStore, CheckStatus, EventSelectors, PublicKeyEntry, TrailInfo, TrailSource,
    TrailStatus,
};
use trailwatch::ports::{Alert, PortError};

use support::{Moto, MOTO_ACCOUNT};

const TABLE: &str = "findings";

/// CloudTrail through moto, except `ListPublicKeys` (moto lacks it): injected keys.
struct KeysInjected {
    inner: CloudTrailSource,
    keys: Vec<PublicKeyEntry>,
}

impl TrailSource for KeysInjected {
    async fn describe_trails(&self) -> Result<Vec<TrailInfo>, PortError> {
        self.inner.describe_trails().await
    }
    async fn trail_status(&self, arn: &str) -> Result<TrailStatus, PortError> {
        self.inner.trail_status(arn).await
    }
    async fn event_selectors(&self, arn: &str) -> Result<EventSelectors, PortError> {
        self.inner.event_selectors(arn).await
    }
    async fn insight_selectors(&self, arn: &str) -> Result<Vec<String>, PortError> {
        self.inner.insight_selectors(arn).await
    }
    async fn list_public_keys(
        &self,
        _region: &str,
        _start: OffsetDateTime,
        _end: OffsetDateTime,
    ) -> Result<Vec<PublicKeyEntry>, PortError> {
        // the vectors merge every region's keys into one list
        Ok(self.keys.clone())
    }
}

struct Ports {
    sdk: SdkConfig,
    trails: KeysInjected,
    buckets: S3AuditSource,
    state: DynamoDbCheckStateStore,
    notifier: MemNotifier,
}

impl AuditorPorts for Ports {
    type Trails = KeysInjected;
    type Buckets = S3AuditSource;
    type State = DynamoDbCheckStateStore;
    type Notifier = MemNotifier;
    type Digests = S3DigestSource;
    fn trails(&self) -> &KeysInjected {
        &self.trails
    }
    fn buckets(&self) -> &S3AuditSource {
        &self.buckets
    }
    fn state(&self) -> &DynamoDbCheckStateStore {
        &self.state
    }
    fn notifier(&self) -> &MemNotifier {
        &self.notifier
    }
    fn digest_source(&self, bucket: &str) -> S3DigestSource {
        S3DigestSource::new(&self.sdk, bucket)
    }
    fn region(&self) -> &str {
        "us-east-1"
    }
}

async fn ports(moto: &Moto, keys: Vec<PublicKeyEntry>) -> Ports {
    let sdk = moto.sdk_config().await;
    Ports {
        trails: KeysInjected {
            inner: CloudTrailSource::new(&sdk),
            keys,
        },
        buckets: S3AuditSource::new(&sdk),
        state: DynamoDbCheckStateStore::new(&sdk, TABLE),
        notifier: MemNotifier::default(),
        sdk,
    }
}

fn cfg() -> Config {
    Config::new(TABLE, "arn:aws:sns:us-east-1:123456789012:alerts")
}

fn event(now: OffsetDateTime) -> Value {
    json!({"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
           "account": MOTO_ACCOUNT, "time": now.format(&Rfc3339).unwrap(), "region": "us-east-1",
           "resources": [], "detail": {}})
}

/// (check id, resource) -> status, read back from DynamoDB.
async fn states(p: &Ports) -> HashMap<(String, String), CheckStatus> {
    let mut m = HashMap::new();
    for c in trailwatch::audit::checks::CHECKS {
        for s in p.state.load(c.id).await.unwrap() {
            m.insert((s.check_id, s.resource), s.status);
        }
    }
    m
}

fn status(m: &HashMap<(String, String), CheckStatus>, id: &str, res: &str) -> Option<CheckStatus> {
    m.get(&(id.to_owned(), res.to_owned())).copied()
}

fn kinds(alerts: &[Alert]) -> Vec<String> {
    let mut v: Vec<String> = alerts
        .iter()
        .map(|a| {
            let b: Value = serde_json::from_str(&a.body).unwrap();
            format!("{} {}", b["kind"].as_str().unwrap_or("?"), a.rule_id)
        })
        .collect();
    v.sort();
    v
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/digest-vectors/scenarios")
}

const TRAIL: &str = "audited-trail";
const BUCKET: &str = "audited-trail-bucket";

fn trail_arn(name: &str) -> String {
    format!("arn:aws:cloudtrail:us-east-1:{MOTO_ACCOUNT}:trail/{name}")
}

/// S3 Control prefixes the host with the account id, which 127.0.0.1 cannot take.
#[derive(Debug)]
struct MotoControlEndpoint(String);

impl aws_sdk_s3control::config::endpoint::ResolveEndpoint for MotoControlEndpoint {
    fn resolve_endpoint<'a>(
        &'a self,
        _params: &'a aws_sdk_s3control::config::endpoint::Params,
    ) -> aws_sdk_s3control::config::endpoint::EndpointFuture<'a> {
        aws_sdk_s3control::config::endpoint::EndpointFuture::ready(Ok(
            aws_sdk_s3control::config::endpoint::Endpoint::builder()
                .url(self.0.clone())
                .build(),
        ))
    }
}

async fn harden(moto: &Moto) {
    use aws_sdk_cloudtrail::types as ct;
    use aws_sdk_s3::types as s3t;
    let sdk = moto.sdk_config().await;
    let s3 = moto.s3().await;
    let cloudtrail = aws_sdk_cloudtrail::Client::new(&sdk);
    let control = aws_sdk_s3control::Client::from_conf(
        aws_sdk_s3control::config::Builder::from(&sdk)
            .endpoint_resolver(MotoControlEndpoint(moto.endpoint()))
            .build(),
    );
    let arn = trail_arn(TRAIL);

    cloudtrail
        .update_trail()
        .name(TRAIL)
        .is_multi_region_trail(true)
        .include_global_service_events(true)
        .enable_log_file_validation(true)
        .kms_key_id(format!(
            "arn:aws:kms:us-east-1:{MOTO_ACCOUNT}:key/0b7e4c1e-0000-4000-8000-000000000001"
        ))
        .cloud_watch_logs_log_group_arn(format!(
            "arn:aws:logs:us-east-1:{MOTO_ACCOUNT}:log-group:trail:*"
        ))
        .cloud_watch_logs_role_arn(format!("arn:aws:iam::{MOTO_ACCOUNT}:role/trail-to-logs"))
        .send()
        .await
        .unwrap();
    cloudtrail
        .put_event_selectors()
        .trail_name(TRAIL)
        .event_selectors(
            ct::EventSelector::builder()
                .read_write_type(ct::ReadWriteType::All)
                .include_management_events(true)
                .data_resources(
                    ct::DataResource::builder()
                        .r#type("AWS::S3::Object")
                        .values(format!("arn:aws:s3:::{BUCKET}/"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    cloudtrail
        .put_insight_selectors()
        .trail_name(TRAIL)
        .insight_selectors(
            ct::InsightSelector::builder()
                .insight_type(ct::InsightType::ApiCallRateInsight)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let pab = s3t::PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build();
    s3.put_bucket_acl()
        .bucket(BUCKET)
        .acl(s3t::BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    s3.put_public_access_block()
        .bucket(BUCKET)
        .public_access_block_configuration(pab)
        .send()
        .await
        .unwrap();
    control
        .put_public_access_block()
        .account_id(MOTO_ACCOUNT)
        .public_access_block_configuration(
            aws_sdk_s3control::types::PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            s3t::VersioningConfiguration::builder()
                .status(s3t::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    moto.create_bucket("access-logs-bucket").await;
    // the access-log target must let the log delivery group write
    s3.put_bucket_acl()
        .bucket("access-logs-bucket")
        .acl(s3t::BucketCannedAcl::from("log-delivery-write"))
        .send()
        .await
        .unwrap();
    s3.put_bucket_logging()
        .bucket(BUCKET)
        .bucket_logging_status(
            s3t::BucketLoggingStatus::builder()
                .logging_enabled(
                    s3t::LoggingEnabled::builder()
                        .target_bucket("access-logs-bucket")
                        .target_prefix("trail/")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.put_bucket_lifecycle_configuration()
        .bucket(BUCKET)
        .lifecycle_configuration(
            s3t::BucketLifecycleConfiguration::builder()
                .rules(
                    s3t::LifecycleRule::builder()
                        .id("keep-400-days")
                        .status(s3t::ExpirationStatus::Enabled)
                        .filter(
                            s3t::LifecycleRuleFilter::builder()
                                .prefix("AWSLogs/")
                                .build(),
                        )
                        .expiration(s3t::LifecycleExpiration::builder().days(400).build())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "AWSCloudTrailAclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:GetBucketAcl", "Resource": format!("arn:aws:s3:::{BUCKET}"),
         "Condition": {"StringEquals": {"aws:SourceArn": arn}}},
        {"Sid": "AWSCloudTrailWrite", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{BUCKET}/AWSLogs/{MOTO_ACCOUNT}/*"),
         "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": arn}}},
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [format!("arn:aws:s3:::{BUCKET}"), format!("arn:aws:s3:::{BUCKET}/*")],
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    ]});
    s3.put_bucket_policy()
        .bucket(BUCKET)
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
}

async fn create_weak_trail(moto: &Moto) {
    moto.create_bucket(BUCKET).await;
    let s3 = moto.s3().await;
    s3.put_bucket_acl()
        .bucket(BUCKET)
        .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let cloudtrail = aws_sdk_cloudtrail::Client::new(&moto.sdk_config().await);
    cloudtrail
        .create_trail()
        .name(TRAIL)
        .s3_bucket_name(BUCKET)
        .send()
        .await
        .unwrap();
    cloudtrail.start_logging().name(TRAIL).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_then_hardened_trail_alerts_on_changes_only() {
    let Some(moto) = Moto::start("weak_then_hardened_trail_alerts_on_changes_only") else {
        return;
    };
    moto.create_findings_table(TABLE).await;
    create_weak_trail(&moto).await;
    let p = ports(&moto, vec![]).await;
    let c = Config {
        min_alert_severity: trailwatch::findings::Severity::Info,
        ..cfg()
    };
    let arn = trail_arn(TRAIL);
    let bucket_arn = format!("arn:aws:s3:::{BUCKET}");

    // 1. the weak trail: single-region, no validation, no KMS, public-read bucket
    let now = OffsetDateTime::now_utc();
    let s: AuditSummary = handle(&c, &p, event(now)).await.unwrap();
    assert!(s.error.is_none(), "{s:?}");
    let st = states(&p).await;
    let fail = Some(CheckStatus::Fail);
    let pass = Some(CheckStatus::Pass);
    assert_eq!(
        status(&st, "tw-audit-multi-region-trail", MOTO_ACCOUNT),
        fail
    );
    assert_eq!(status(&st, "tw-audit-trail-logging", &arn), pass);
    assert_eq!(status(&st, "tw-audit-delivery-fresh", &arn), pass);
    assert_eq!(status(&st, "tw-audit-log-validation", &arn), fail);
    assert_eq!(status(&st, "tw-audit-kms-cmk", &arn), fail);
    assert_eq!(status(&st, "tw-audit-cloudwatch-logs", &arn), fail);
    assert_eq!(status(&st, "tw-audit-insights", &arn), fail);
    assert_eq!(status(&st, "tw-audit-trail-bucket-data-events", &arn), fail);
    assert_eq!(status(&st, "tw-audit-bucket-not-public", &bucket_arn), fail);
    assert_eq!(status(&st, "tw-audit-bucket-pab", &bucket_arn), fail);
    assert_eq!(status(&st, "tw-audit-account-pab", MOTO_ACCOUNT), fail);
    assert_eq!(status(&st, "tw-audit-bucket-versioning", &bucket_arn), fail);
    assert_eq!(
        status(&st, "tw-audit-bucket-access-logging", &bucket_arn),
        fail
    );
    assert_eq!(status(&st, "tw-audit-bucket-policy-tls", &bucket_arn), fail);
    assert_eq!(status(&st, "tw-audit-bucket-retention", &bucket_arn), pass);
    assert_eq!(status(&st, "tw-audit-global-events", &arn), pass);
    let first = kinds(&p.notifier.sent());
    assert!(
        first.contains(&"failing tw-audit-bucket-not-public".to_owned()),
        "{first:?}"
    );
    assert!(first.iter().all(|k| k.starts_with("failing ")), "{first:?}");
    assert_eq!(first.len(), s.failing);

    // 2. the same again: state, not spam
    let s = handle(&c, &p, event(now + time::Duration::minutes(1)))
        .await
        .unwrap();
    assert_eq!(s.alerts, 0, "{:?}", kinds(&p.notifier.sent()));

    // 3. hardened: every fixed check resolves once; what moto cannot provide stays failing
    harden(&moto).await;
    let before = p.notifier.sent().len();
    let s = handle(&c, &p, event(now + time::Duration::minutes(2)))
        .await
        .unwrap();
    assert!(s.error.is_none(), "{s:?}");
    let st = states(&p).await;
    for (id, res) in [
        ("tw-audit-multi-region-trail", MOTO_ACCOUNT),
        ("tw-audit-log-validation", arn.as_str()),
        ("tw-audit-kms-cmk", arn.as_str()),
        ("tw-audit-cloudwatch-logs", arn.as_str()),
        ("tw-audit-insights", arn.as_str()),
        ("tw-audit-trail-bucket-data-events", arn.as_str()),
        ("tw-audit-bucket-not-public", bucket_arn.as_str()),
        ("tw-audit-bucket-pab", bucket_arn.as_str()),
        ("tw-audit-account-pab", MOTO_ACCOUNT),
        ("tw-audit-bucket-versioning", bucket_arn.as_str()),
        ("tw-audit-bucket-access-logging", bucket_arn.as_str()),
        ("tw-audit-bucket-retention", bucket_arn.as_str()),
        ("tw-audit-bucket-policy-sourcearn", bucket_arn.as_str()),
        ("tw-audit-bucket-policy-tls", bucket_arn.as_str()),
        // no digest in the bucket yet: nothing to fail
        ("tw-audit-digest-chain", arn.as_str()),
    ] {
        assert_eq!(status(&st, id, res), pass, "{id} {res}");
    }
    // MFA delete needs the root user's MFA device; moto reports no digest delivery time
    assert_eq!(status(&st, "tw-audit-bucket-mfa-delete", &bucket_arn), fail);
    assert_eq!(status(&st, "tw-audit-digest-delivery", &arn), fail);
    let third = kinds(&p.notifier.sent()[before..]);
    let resolved = third.iter().filter(|k| k.starts_with("resolved ")).count();
    assert_eq!(resolved, 13, "{third:?}");
    assert_eq!(
        third
            .iter()
            .filter(|k| k.starts_with("failing "))
            .collect::<Vec<_>>(),
        ["failing tw-audit-digest-delivery"],
        "validation is newly on, and moto never reports a digest delivery"
    );
}

/// Uploads a digest-vector scenario's bucket (objects and their user metadata) to S3.
async fn upload_scenario(moto: &Moto, scenario: &Path, bucket: &str) -> usize {
    let s3 = moto.s3().await;
    let meta: HashMap<String, HashMap<String, String>> =
        serde_json::from_slice(&std::fs::read(scenario.join("metadata.json")).unwrap()).unwrap();
    let root = scenario.join("bucket");
    let mut stack = vec![root.clone()];
    let mut n = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let key = path
                .strip_prefix(&root)
                .unwrap()
                .to_str()
                .unwrap()
                .replace('\\', "/");
            let mut put = s3
                .put_object()
                .bucket(bucket)
                .key(&key)
                .body(std::fs::read(&path).unwrap().into());
            for (k, v) in meta.get(&key).into_iter().flatten() {
                put = put.metadata(k, v);
            }
            put.send().await.unwrap();
            n += 1;
        }
    }
    n
}

fn vector_keys(scenario: &Path) -> Vec<PublicKeyEntry> {
    use base64::Engine as _;
    let v: Value =
        serde_json::from_slice(&std::fs::read(scenario.join("public-keys.json")).unwrap()).unwrap();
    v["PublicKeyList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| PublicKeyEntry {
            der: base64::engine::general_purpose::STANDARD
                .decode(k["Value"].as_str().unwrap())
                .unwrap(),
            fingerprint: k["Fingerprint"].as_str().unwrap().to_owned(),
            valid_from: None,
            valid_until: None,
        })
        .collect()
}

async fn digest_vector_run(scenario_name: &str) -> Option<(Ports, AuditSummary, Moto)> {
    let scenario = vectors_dir().join(scenario_name);
    if !scenario.is_dir() {
        println!("SKIP: {} is absent", scenario.display());
        return None;
    }
    let moto = Moto::start(scenario_name)?;
    moto.create_findings_table(TABLE).await;
    let bucket = "example-trail-bucket";
    moto.create_bucket(bucket).await;
    let uploaded = upload_scenario(&moto, &scenario, bucket).await;
    assert!(uploaded > 10);
    let cloudtrail = aws_sdk_cloudtrail::Client::new(&moto.sdk_config().await);
    // the vectors' trail: name and home region select its digests in the bucket
    cloudtrail
        .create_trail()
        .name("management-trail")
        .s3_bucket_name(bucket)
        .is_multi_region_trail(true)
        .enable_log_file_validation(true)
        .send()
        .await
        .unwrap();
    cloudtrail
        .start_logging()
        .name("management-trail")
        .send()
        .await
        .unwrap();
    let p = ports(&moto, vector_keys(&scenario)).await;
    let sc: Value =
        serde_json::from_slice(&std::fs::read(scenario.join("scenario.json")).unwrap()).unwrap();
    // audit a quarter of an hour after the scenario's window: the last 25 h cover it
    let end = OffsetDateTime::parse(sc["end_time"].as_str().unwrap(), &Rfc3339).unwrap();
    let s = handle(&cfg(), &p, event(end + time::Duration::minutes(15)))
        .await
        .unwrap();
    assert!(s.error.is_none(), "{s:?}");
    Some((p, s, moto))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_vectors_valid_chain_passes() {
    let Some((p, s, _moto)) = digest_vector_run("valid-two-regions").await else {
        return;
    };
    let expected: Value = serde_json::from_slice(
        &std::fs::read(vectors_dir().join("valid-two-regions/expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s.digest_files, expected["files"].as_array().unwrap().len());
    let st = states(&p).await;
    let arn = trail_arn("management-trail");
    assert_eq!(
        status(&st, "tw-audit-digest-chain", &arn),
        Some(CheckStatus::Pass)
    );
    let chain_items = st
        .keys()
        .filter(|(id, _)| id == "tw-audit-digest-chain")
        .count();
    assert_eq!(
        chain_items, 1,
        "valid objects get no state item of their own"
    );
    assert!(!kinds(&p.notifier.sent()).contains(&"failing tw-audit-digest-chain".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_vectors_tampered_log_is_a_critical_finding() {
    let Some((p, _s, _moto)) = digest_vector_run("log-tampered").await else {
        return;
    };
    let expected: Value = serde_json::from_slice(
        &std::fs::read(vectors_dir().join("log-tampered/expected.json")).unwrap(),
    )
    .unwrap();
    let bad: Vec<String> = expected["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] != "valid")
        .map(|f| format!("s3://example-trail-bucket/{}", f["key"].as_str().unwrap()))
        .collect();
    assert_eq!(bad.len(), 1);
    let st = states(&p).await;
    assert_eq!(
        status(&st, "tw-audit-digest-chain", &bad[0]),
        Some(CheckStatus::Fail)
    );
    let alerts: Vec<Alert> = p
        .notifier
        .sent()
        .into_iter()
        .filter(|a| a.rule_id == "tw-audit-digest-chain")
        .collect();
    assert_eq!(alerts.len(), 2, "the file and the trail summary");
    assert!(alerts
        .iter()
        .all(|a| a.severity == trailwatch::findings::Severity::Critical));
    let body: Value = serde_json::from_str(&alerts[0].body).unwrap();
    assert_eq!(body["resource"], bad[0]);
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .starts_with("hash-mismatch"));
}

// ---- performance: a day of digests for one region ------------------------------------

/// Deterministic filler (xorshift64*): log bodies that do not compress away.
fn filler(len: usize, mut seed: u64) -> String {
    let mut out = String::with_capacity(len + 64);
    while out.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        out.push_str(&format!(
            "{:016x}",
            seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
        ));
    }
    out
}

fn load_vector_key() -> Option<rsa::RsaPrivateKey> {
    use base64::Engine as _;
    use rsa::pkcs8::DecodePrivateKey as _;
    let pem_path = vectors_dir().join("../keys/us-east-1-2025a.pem");
    let pem = std::fs::read_to_string(&pem_path).ok()?;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    Some(rsa::RsaPrivateKey::from_pkcs8_der(&der).unwrap())
}

/// 24 hourly digests × 12-13 log files (300 in all) of about 1 MB each (gzipped), signed
/// with a digest-vector test key, validated through S3 on moto. Run with `--ignored`; it
/// prints the time (`digest_ms` of the run). Ignored by default: uploading 300 MB to moto
/// takes longer than the rest of the suite, and speed is for measurements, not asserts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: cargo test --features aws --test moto_config_auditor -- --ignored --nocapture"]
async fn digest_day_timing() {
    use futures::{stream, StreamExt as _};
    use rsa::pkcs1::EncodeRsaPublicKey as _;
    use rsa::Pkcs1v15Sign;
    use sha2::{Digest as _, Sha256};
    use std::io::Write as _;

    let Some(key) = load_vector_key() else {
        println!("SKIP: digest-vector keys are absent");
        return;
    };
    let Some(moto) = Moto::start("digest_day_timing") else {
        return;
    };
    moto.create_findings_table(TABLE).await;
    let bucket = "perf-trail-bucket";
    moto.create_bucket(bucket).await;
    let cloudtrail = aws_sdk_cloudtrail::Client::new(&moto.sdk_config().await);
    cloudtrail
        .create_trail()
        .name("perf-trail")
        .s3_bucket_name(bucket)
        .enable_log_file_validation(true)
        .send()
        .await
        .unwrap();
    cloudtrail
        .start_logging()
        .name("perf-trail")
        .send()
        .await
        .unwrap();

    // one ~1 MB gzipped body (random hex inside JSON) shared by every log object: each
    // object is still fetched, gunzipped and hashed on its own
    let raw = format!(
        "{{\"Records\":[{{\"eventID\":\"perf\",\"requestParameters\":{{\"blob\":\"{}\"}}}}]}}",
        filler(1_200_000, 0x9E37_79B9_7F4A_7C15)
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(raw.as_bytes()).unwrap();
    let body = gz.finish().unwrap();
    let log_hash = hex::encode(Sha256::digest(raw.as_bytes()));
    let fp = "0123456789abcdef0123456789abcdef";
    let acct = MOTO_ACCOUNT;
    let t0 = time::macros::datetime!(2026-11-22 00:30:00 UTC);
    let mut uploads: Vec<(String, Vec<u8>, Option<String>)> = Vec::new();
    let mut prev: Option<(String, String, String)> = None;
    let mut logs_total = 0;
    for h in 0..24i64 {
        let t = t0 + time::Duration::hours(h);
        let day = format!("{:04}/{:02}/{:02}", t.year(), u8::from(t.month()), t.day());
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        );
        let n_logs = if h < 12 { 13 } else { 12 }; // 12×13 + 12×12 = 300
        let mut log_files = Vec::new();
        for i in 0..n_logs {
            let lkey = format!("AWSLogs/{acct}/CloudTrail/us-east-1/{day}/{acct}_CloudTrail_us-east-1_{stamp}Z_perf{h:02}x{i:02}aaaaaa.json.gz");
            log_files.push(json!({"s3Bucket": bucket, "s3Object": lkey, "hashValue": log_hash, "hashAlgorithm": "SHA-256"}));
            uploads.push((lkey, body.clone(), None));
            logs_total += 1;
        }
        let dkey = format!("AWSLogs/{acct}/CloudTrail-Digest/us-east-1/{day}/{acct}_CloudTrail-Digest_us-east-1_perf-trail_us-east-1_{stamp}00Z.json.gz");
        let end = t.format(&Rfc3339).unwrap();
        let doc = json!({
            "digestEndTime": end, "digestS3Bucket": bucket, "digestS3Object": dkey,
            "digestPublicKeyFingerprint": fp,
            "previousDigestS3Bucket": prev.as_ref().map(|_| bucket),
            "previousDigestS3Object": prev.as_ref().map(|p| p.0.clone()),
            "previousDigestHashValue": prev.as_ref().map(|p| p.1.clone()),
            "previousDigestHashAlgorithm": prev.as_ref().map(|_| "SHA-256"),
            "previousDigestSignature": prev.as_ref().map(|p| p.2.clone()),
            "logFiles": log_files,
        })
        .to_string();
        let doc_hash = hex::encode(Sha256::digest(doc.as_bytes()));
        let prev_sig = prev.as_ref().map_or("null".to_owned(), |p| p.2.clone());
        let signing = format!("{end}\n{bucket}/{dkey}\n{doc_hash}\n{prev_sig}");
        let sig = hex::encode(
            key.sign(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(signing.as_bytes()),
            )
            .unwrap(),
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(doc.as_bytes()).unwrap();
        uploads.push((dkey.clone(), gz.finish().unwrap(), Some(sig.clone())));
        prev = Some((dkey, doc_hash, sig));
    }
    assert_eq!(logs_total, 300);
    let s3 = moto.s3().await;
    let s3 = &s3;
    stream::iter(uploads)
        .for_each_concurrent(8, |(k, b, sig)| async move {
            let mut put = s3.put_object().bucket(bucket).key(k).body(b.into());
            if let Some(sig) = sig {
                put = put
                    .metadata("signature", sig)
                    .metadata("signature-algorithm", "SHA256withRSA");
            }
            put.send().await.unwrap();
        })
        .await;

    let keys = vec![PublicKeyEntry {
        der: key
            .to_public_key()
            .to_pkcs1_der()
            .unwrap()
            .as_bytes()
            .to_vec(),
        fingerprint: fp.into(),
        valid_from: None,
        valid_until: None,
    }];
    let p = ports(&moto, keys).await;
    let now = t0 + time::Duration::hours(23) + time::Duration::minutes(15);
    let s = handle(&cfg(), &p, event(now)).await.unwrap();
    println!(
        "digest day: {} objects ({} digests + {} logs of {} bytes gzipped, {} uncompressed) validated in {} ms (max_in_flight {})",
        s.digest_files,
        24,
        logs_total,
        body.len(),
        raw.len(),
        s.digest_ms,
        cfg().max_in_flight
    );
    assert_eq!(s.digest_files, 324);
    let st = states(&p).await;
    assert_eq!(
        status(&st, "tw-audit-digest-chain", &trail_arn("perf-trail")),
        Some(CheckStatus::Pass)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_trail_counts_but_is_audited_in_its_home_region() {
    let Some(moto) = Moto::start("shadow_trail_counts_but_is_audited_in_its_home_region") else {
        return;
    };
    moto.create_findings_table(TABLE).await;
    moto.create_bucket("eu-trail-bucket").await;
    let sdk = moto.sdk_config().await;
    let eu = aws_sdk_cloudtrail::Client::from_conf(
        aws_sdk_cloudtrail::config::Builder::from(&sdk)
            .region(aws_config::Region::new("eu-west-1"))
            .build(),
    );
    eu.create_trail()
        .name("eu-global")
        .s3_bucket_name("eu-trail-bucket")
        .is_multi_region_trail(true)
        .send()
        .await
        .unwrap();
    eu.start_logging().name("eu-global").send().await.unwrap();
    eu.put_event_selectors()
        .trail_name("eu-global")
        .event_selectors(
            aws_sdk_cloudtrail::types::EventSelector::builder()
                .read_write_type(aws_sdk_cloudtrail::types::ReadWriteType::All)
                .include_management_events(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let p = ports(&moto, vec![]).await;
    let s = handle(&cfg(), &p, event(OffsetDateTime::now_utc()))
        .await
        .unwrap();
    assert!(s.error.is_none(), "{s:?}");
    let st = states(&p).await;
    assert_eq!(
        status(&st, "tw-audit-multi-region-trail", MOTO_ACCOUNT),
        Some(CheckStatus::Pass)
    );
    let about_shadow: Vec<_> = st
        .keys()
        .filter(|(_, res)| res.contains("eu-global") || res.contains("eu-trail-bucket"))
        .collect();
    assert!(about_shadow.is_empty(), "{about_shadow:?}");
    // only the account-level checks ran here
    let mut ids: Vec<&str> = st.keys().map(|(id, _)| id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["tw-audit-account-pab", "tw-audit-multi-region-trail"]);
}

/// One contract for both state stores: round trip, replace, per-check load, digest date.
async fn state_store_contract<S: CheckStateStore>(s: &S) {
    use trailwatch::findings::Severity;
    use trailwatch::ports::trail::CheckState;
    let t1 = time::macros::datetime!(2026-11-23 10:00 UTC);
    let t2 = time::macros::datetime!(2026-11-23 11:00 UTC);
    let state = |check: &str, res: &str, status, since| CheckState {
        check_id: check.into(),
        resource: res.into(),
        status,
        since,
        last_run: t2,
        detail: format!("{check} on {res}"),
        severity: Severity::High,
        finding: None,
    };
    assert!(s.load("tw-audit-trail-logging").await.unwrap().is_empty());
    let mut a = state("tw-audit-trail-logging", "arn:a", CheckStatus::Fail, t1);
    let b = state("tw-audit-trail-logging", "arn:b", CheckStatus::Pass, t2);
    let c = state(
        "tw-audit-bucket-pab",
        "arn:aws:s3:::b",
        CheckStatus::Unknown,
        t2,
    );
    a.finding = Some(trailwatch::findings::Finding {
        episode_start: None,
        id: "f".into(),
        rule_id: a.check_id.clone(),
        title: "t".into(),
        severity: Severity::High,
        tags: vec![],
        event_id: "tw-audit-trail-logging#arn:a".into(),
        event_name: "ConfigAudit".into(),
        event_time: "2026-11-23T11:00:00Z".into(),
        event_source: "config-auditor".into(),
        account_id: MOTO_ACCOUNT.into(),
        region: "us-east-1".into(),
        source: "config-auditor".into(),
        principal: None,
        source_ip: None,
        error_code: None,
    });
    // more than one BatchWriteItem (25 per call)
    let many: Vec<CheckState> = (0..30)
        .map(|i| {
            state(
                "tw-audit-digest-chain",
                &format!("s3://b/k{i:02}"),
                CheckStatus::Fail,
                t1,
            )
        })
        .collect();
    s.save(&[a.clone(), b.clone(), c.clone()]).await.unwrap();
    s.save(&many).await.unwrap();
    let mut got = s.load("tw-audit-trail-logging").await.unwrap();
    got.sort_by(|x, y| x.resource.cmp(&y.resource));
    assert_eq!(got, [a.clone(), b]);
    assert_eq!(s.load("tw-audit-bucket-pab").await.unwrap(), [c]);
    assert_eq!(s.load("tw-audit-digest-chain").await.unwrap().len(), 30);
    a.status = CheckStatus::Pass;
    a.finding = None;
    s.save(std::slice::from_ref(&a)).await.unwrap();
    let got = s.load("tw-audit-trail-logging").await.unwrap();
    assert!(got.contains(&a) && got.len() == 2);
    assert_eq!(s.last_digest_date().await.unwrap(), None);
    s.set_last_digest_date("2026-11-23").await.unwrap();
    assert_eq!(
        s.last_digest_date().await.unwrap().as_deref(),
        Some("2026-11-23")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_state_store_contract_on_both_impls() {
    state_store_contract(&trailwatch::ports::trail::MemCheckStateStore::default()).await;
    let Some(moto) = Moto::start("check_state_store_contract_on_both_impls") else {
        return;
    };
    moto.create_findings_table(TABLE).await;
    state_store_contract(&DynamoDbCheckStateStore::new(
        &moto.sdk_config().await,
        TABLE,
    ))
    .await;
}
