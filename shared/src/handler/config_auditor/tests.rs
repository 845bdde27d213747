//! The handler over in-memory ports: alerts on changes only, daily digest, digest chain,
//! retry decisions.

use std::io::Write as _;

use flate2::{write::GzEncoder, Compression};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use time::macros::datetime;
use time::Duration;

use super::*;
use crate::audit::digest::public_keys::tests::test_key;
use crate::audit::digest::{DigestMetadata, MemDigestSource};
use crate::findings::Severity;
use crate::ports::memory::MemNotifier;
use crate::ports::trail::{
    BasicSelector, EventSelectors, MemBucketAuditSource, MemCheckStateStore, MemTrailSource,
    PublicAccessBlock, PublicKeyEntry, ReadWriteType, TrailInfo, TrailStatus, Versioning,
};

const ACCOUNT: &str = "111122223333";
const ARN: &str = "arn:aws:cloudtrail:us-east-1:111122223333:trail/main";
const BUCKET: &str = "trail-logs";
const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

struct Ports {
    trails: MemTrailSource,
    buckets: MemBucketAuditSource,
    state: MemCheckStateStore,
    notifier: MemNotifier,
    digests: MemDigestSource,
}

impl AuditorPorts for Ports {
    type Trails = MemTrailSource;
    type Buckets = MemBucketAuditSource;
    type State = MemCheckStateStore;
    type Notifier = MemNotifier;
    type Digests = MemDigestSource;
    fn trails(&self) -> &MemTrailSource {
        &self.trails
    }
    fn buckets(&self) -> &MemBucketAuditSource {
        &self.buckets
    }
    fn state(&self) -> &MemCheckStateStore {
        &self.state
    }
    fn notifier(&self) -> &MemNotifier {
        &self.notifier
    }
    fn digest_source(&self, _bucket: &str) -> MemDigestSource {
        self.digests.clone()
    }
    fn region(&self) -> &str {
        "us-east-1"
    }
}

fn all_on() -> PublicAccessBlock {
    PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    }
}

/// A trail that is fine except for what the tests change; validation off by default.
fn ports() -> Ports {
    let info = TrailInfo {
        name: "main".into(),
        arn: ARN.into(),
        home_region: "us-east-1".into(),
        s3_bucket: Some(BUCKET.into()),
        is_multi_region: true,
        include_global_service_events: true,
        kms_key_id: Some("arn:aws:kms:us-east-1:111122223333:key/k".into()),
        ..Default::default()
    };
    let mut trails = MemTrailSource {
        trails: vec![info],
        ..Default::default()
    };
    trails.status.insert(
        ARN.into(),
        Ok(TrailStatus {
            is_logging: true,
            latest_delivery_time: Some(NOW - Duration::minutes(3)),
            ..Default::default()
        }),
    );
    trails.selectors.insert(
        ARN.into(),
        Ok(EventSelectors {
            basic: vec![BasicSelector {
                read_write: ReadWriteType::All,
                include_management_events: true,
                ..Default::default()
            }],
            advanced: vec![],
        }),
    );
    let buckets = MemBucketAuditSource {
        bucket: BUCKET.into(),
        bucket_pab: Some(all_on()),
        account_pab: Some(all_on()),
        versioning: Versioning {
            status: Some("Enabled".into()),
            mfa_delete: None,
        },
        ..Default::default()
    };
    Ports {
        trails,
        buckets,
        state: MemCheckStateStore::default(),
        notifier: MemNotifier::default(),
        digests: MemDigestSource::new(),
    }
}

fn cfg() -> Config {
    Config::new("table", "arn:aws:sns:us-east-1:111122223333:alerts")
}

fn event(time: OffsetDateTime) -> Value {
    json!({
        "version": "0", "id": "e", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": ACCOUNT, "time": checks::rfc3339(time), "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:111122223333:rule/audit"], "detail": {}
    })
}

fn alerted(p: &Ports) -> Vec<(String, Severity)> {
    p.notifier
        .sent()
        .iter()
        .map(|a| {
            let body: Value = serde_json::from_str(&a.body).unwrap();
            (
                format!("{}:{}", body["kind"].as_str().unwrap(), a.rule_id),
                a.severity,
            )
        })
        .collect()
}

#[tokio::test]
async fn alerts_on_changes_only() {
    let mut p = ports();
    let s = handle(&cfg(), &p, event(NOW)).await.unwrap();
    assert_eq!(s.account_id, ACCOUNT);
    assert!(s.error.is_none());
    // medium and above: the default threshold drops the low/info failures
    let mut first = alerted(&p);
    first.sort();
    assert_eq!(
        first,
        [
            (
                "failing:tw-audit-bucket-access-logging".to_owned(),
                Severity::Medium
            ),
            (
                "failing:tw-audit-bucket-policy-sourcearn".to_owned(),
                Severity::Medium
            ),
            (
                "failing:tw-audit-bucket-policy-tls".to_owned(),
                Severity::Medium
            ),
            (
                "failing:tw-audit-log-validation".to_owned(),
                Severity::Medium
            ),
        ]
    );
    assert_eq!(s.alerts, 4);
    let stored = p.state.all();
    assert_eq!(stored.len(), s.results);
    let logging = stored
        .iter()
        .find(|x| x.check_id == "tw-audit-log-validation")
        .unwrap();
    assert_eq!(logging.status, CheckStatus::Fail);
    assert_eq!(logging.since, NOW);
    assert_eq!(
        logging.finding.as_ref().unwrap().event_id,
        format!("tw-audit-log-validation#{ARN}")
    );

    // an hour later, nothing changed: nothing alerted
    let later = NOW + Duration::HOUR;
    let mut moved = p.trails.status.clone();
    moved.insert(
        ARN.into(),
        Ok(TrailStatus {
            is_logging: true,
            latest_delivery_time: Some(later - Duration::minutes(3)),
            ..Default::default()
        }),
    );
    p.trails.status = moved;
    let s = handle(&cfg(), &p, event(later)).await.unwrap();
    assert_eq!(s.alerts, 0);
    assert_eq!(p.notifier.sent().len(), 4);

    // logging stops and access logging gets fixed: one failing, one resolved
    p.trails.status.insert(
        ARN.into(),
        Ok(TrailStatus {
            is_logging: false,
            latest_delivery_time: Some(later - Duration::minutes(3)),
            ..Default::default()
        }),
    );
    p.buckets.logging = Some(crate::ports::trail::LoggingTarget {
        bucket: "access-logs".into(),
        prefix: String::new(),
    });
    let s = handle(&cfg(), &p, event(later + Duration::minutes(10)))
        .await
        .unwrap();
    assert_eq!(s.alerts, 3, "{:?}", alerted(&p));
    let new: Vec<_> = alerted(&p).into_iter().skip(4).collect();
    assert!(new.contains(&("failing:tw-audit-trail-logging".to_owned(), Severity::High)));
    assert!(new.contains(&(
        "failing:tw-audit-multi-region-trail".to_owned(),
        Severity::High
    )));
    assert!(new.contains(&(
        "resolved:tw-audit-bucket-access-logging".to_owned(),
        Severity::Low
    )));
}

#[tokio::test]
async fn access_denied_is_unknown_and_alerted_once() {
    let mut p = ports();
    p.buckets.deny = vec!["GetBucketVersioning"];
    let c = Config {
        min_alert_severity: Severity::Low,
        ..cfg()
    };
    handle(&c, &p, event(NOW)).await.unwrap();
    let unauditable: Vec<_> = alerted(&p)
        .into_iter()
        .filter(|(k, _)| k.starts_with("unauditable"))
        .collect();
    assert_eq!(
        unauditable,
        [
            (
                "unauditable:tw-audit-bucket-versioning".to_owned(),
                Severity::Low
            ),
            (
                "unauditable:tw-audit-bucket-mfa-delete".to_owned(),
                Severity::Low
            ),
        ]
    );
    let n = p.notifier.sent().len();
    let s = handle(&c, &p, event(NOW + Duration::minutes(30)))
        .await
        .unwrap();
    assert_eq!((s.alerts, s.unknown), (0, 2));
    assert_eq!(p.notifier.sent().len(), n);
}

#[tokio::test]
async fn daily_digest_once_per_utc_day() {
    let p = ports();
    let c = Config {
        daily_digest: true,
        ..cfg()
    };
    let s = handle(&c, &p, event(NOW)).await.unwrap();
    assert!(s.daily_digest_sent);
    let digest = p.notifier.sent().pop().unwrap();
    assert_eq!(digest.rule_id, "tw-audit-daily-digest");
    let body: Value = serde_json::from_str(&digest.body).unwrap();
    // the four medium failures plus the low/info ones: everything still failing is listed
    assert_eq!(body["failing"], s.failing);
    assert!(s.failing > 4);
    let s = handle(&c, &p, event(NOW + Duration::hours(6)))
        .await
        .unwrap();
    assert!(!s.daily_digest_sent);
    let s = handle(&c, &p, event(datetime!(2026-11-24 00:10 UTC)))
        .await
        .unwrap();
    assert!(s.daily_digest_sent);
    let digests = p
        .notifier
        .sent()
        .iter()
        .filter(|a| a.rule_id == "tw-audit-daily-digest")
        .count();
    assert_eq!(digests, 2);
}

#[tokio::test]
async fn retry_decisions() {
    let p = ports();
    p.notifier.fail_next_publishes(1);
    let e = handle(&cfg(), &p, event(NOW)).await.unwrap_err();
    assert!(e.is_retryable());
    assert!(
        p.state.all().is_empty(),
        "states are written only after the alerts went out"
    );
    // the retry publishes the same alert ids
    handle(&cfg(), &p, event(NOW)).await.unwrap();
    assert_eq!(p.notifier.sent().len(), 4);

    let mut p = ports();
    p.trails.status.insert(
        ARN.into(),
        Err(PortError::Transient {
            op: "GetTrailStatus",
            message: "ThrottlingException".into(),
        }),
    );
    assert!(handle(&cfg(), &p, event(NOW))
        .await
        .unwrap_err()
        .is_retryable());

    // no account in the event and no trail: permanent, reported, not retried
    let mut p = ports();
    p.trails.trails.clear();
    let s = handle(&cfg(), &p, json!({"time": checks::rfc3339(NOW)}))
        .await
        .unwrap();
    assert!(s.error.unwrap().contains("which account"));
}

// ---- digest chain -------------------------------------------------------------------

const FP: &str = "00112233445566778899aabbccddeeff";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Writes `n` signed hourly digests (one log each) for `main` in us-east-1; returns the
/// log keys.
fn write_chain(
    src: &mut MemDigestSource,
    key: &RsaPrivateKey,
    t0: OffsetDateTime,
    n: usize,
) -> Vec<String> {
    let mut prev: Option<(String, String, String)> = None;
    let mut logs = Vec::new();
    for i in 0..n {
        let t = t0 + Duration::hours(i as i64);
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        let day = format!("{:04}/{:02}/{:02}", t.year(), u8::from(t.month()), t.day());
        let dkey = format!(
            "AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/{day}/{ACCOUNT}_CloudTrail-Digest_us-east-1_main_us-east-1_{stamp}.json.gz"
        );
        let lkey = format!("AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/{day}/{ACCOUNT}_CloudTrail_us-east-1_{stamp}_x{i}.json.gz");
        let raw_log = format!("{{\"Records\":[{{\"eventID\":\"{i}\"}}]}}");
        src.put(
            lkey.clone(),
            gzip(raw_log.as_bytes()),
            DigestMetadata::default(),
        );
        let end = checks::rfc3339(t);
        let doc = json!({
            "digestEndTime": end, "digestS3Bucket": BUCKET, "digestS3Object": dkey,
            "digestPublicKeyFingerprint": FP,
            "previousDigestS3Bucket": prev.as_ref().map(|_| BUCKET),
            "previousDigestS3Object": prev.as_ref().map(|p| p.0.clone()),
            "previousDigestHashValue": prev.as_ref().map(|p| p.1.clone()),
            "previousDigestHashAlgorithm": prev.as_ref().map(|_| "SHA-256"),
            "previousDigestSignature": prev.as_ref().map(|p| p.2.clone()),
            "logFiles": [{"s3Bucket": BUCKET, "s3Object": lkey,
                "hashValue": hex::encode(Sha256::digest(raw_log.as_bytes())), "hashAlgorithm": "SHA-256"}]
        })
        .to_string();
        let doc_hash = hex::encode(Sha256::digest(doc.as_bytes()));
        let prev_sig = prev.as_ref().map_or("null".to_owned(), |p| p.2.clone());
        let signing = format!("{end}\n{BUCKET}/{dkey}\n{doc_hash}\n{prev_sig}");
        let sig = hex::encode(
            key.sign(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(signing.as_bytes()),
            )
            .unwrap(),
        );
        src.put(
            dkey.clone(),
            gzip(doc.as_bytes()),
            DigestMetadata {
                signature: Some(sig.clone()),
                signature_algorithm: Some("SHA256withRSA".into()),
                backfill_generation_timestamp: None,
            },
        );
        logs.push(lkey);
        prev = Some((dkey, doc_hash, sig));
    }
    logs
}

fn chain_ports() -> (Ports, Vec<String>, RsaPrivateKey) {
    let mut p = ports();
    p.trails.trails[0].log_file_validation = true;
    p.trails.status.insert(
        ARN.into(),
        Ok(TrailStatus {
            is_logging: true,
            latest_delivery_time: Some(NOW - Duration::minutes(3)),
            latest_digest_delivery_time: Some(NOW - Duration::minutes(30)),
            ..Default::default()
        }),
    );
    let key = test_key(11);
    let logs = write_chain(
        &mut p.digests,
        &key,
        NOW - Duration::hours(5) - Duration::minutes(30),
        5,
    );
    p.buckets.keys = logs.clone();
    // folder listing comes from the bucket port: give it the digest keys too
    let mut all = logs.clone();
    all.push(format!(
        "AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/x.json.gz"
    ));
    p.buckets.keys = all;
    p.trails.public_keys.insert(
        "us-east-1".into(),
        vec![PublicKeyEntry {
            der: key
                .to_public_key()
                .to_pkcs1_der()
                .unwrap()
                .as_bytes()
                .to_vec(),
            fingerprint: FP.into(),
            valid_from: None,
            valid_until: None,
        }],
    );
    (p, logs, key)
}

#[tokio::test]
async fn digest_chain_tampering_is_critical_and_alerted_on_change() {
    let (mut p, logs, _key) = chain_ports();
    let s = handle(&cfg(), &p, event(NOW)).await.unwrap();
    assert_eq!(s.digest_files, 10, "5 digests + 5 logs");
    let chain_states: Vec<_> = p
        .state
        .all()
        .into_iter()
        .filter(|x| x.check_id == "tw-audit-digest-chain")
        .collect();
    // valid objects that never failed get no state item; the trail summary does
    assert_eq!(chain_states.len(), 1);
    assert_eq!(chain_states[0].resource, ARN);
    assert_eq!(chain_states[0].status, CheckStatus::Pass);

    // tamper one log: that object is a critical finding, alerted once
    p.digests.put(
        logs[2].clone(),
        gzip(b"{\"Records\":[]}"),
        DigestMetadata::default(),
    );
    let s = handle(&cfg(), &p, event(NOW + Duration::minutes(5)))
        .await
        .unwrap();
    let chain_alerts: Vec<_> = p
        .notifier
        .sent()
        .into_iter()
        .filter(|a| a.rule_id == "tw-audit-digest-chain")
        .collect();
    assert_eq!(chain_alerts.len(), 2, "the file and the trail summary");
    assert!(chain_alerts
        .iter()
        .all(|a| a.severity == Severity::Critical));
    let file_alert: Value = serde_json::from_str(&chain_alerts[0].body).unwrap();
    assert_eq!(file_alert["resource"], format!("s3://{BUCKET}/{}", logs[2]));
    assert!(file_alert["detail"]
        .as_str()
        .unwrap()
        .starts_with("hash-mismatch"));
    assert!(s.failing >= 2);

    // restored: resolved alerts for both
    let raw_log = "{\"Records\":[{\"eventID\":\"2\"}]}";
    p.digests.put(
        logs[2].clone(),
        gzip(raw_log.as_bytes()),
        DigestMetadata::default(),
    );
    handle(&cfg(), &p, event(NOW + Duration::minutes(10)))
        .await
        .unwrap();
    let resolved = alerted(&p)
        .into_iter()
        .filter(|(k, _)| k == "resolved:tw-audit-digest-chain")
        .count();
    assert_eq!(resolved, 2);
}

#[tokio::test]
async fn digest_chain_without_keys_reports_invalid_signatures() {
    let (mut p, _logs, _key) = chain_ports();
    p.trails.public_keys.clear();
    let s = handle(&cfg(), &p, event(NOW)).await.unwrap();
    let bad = p
        .state
        .all()
        .into_iter()
        .filter(|x| x.check_id == "tw-audit-digest-chain" && x.status == CheckStatus::Fail)
        .count();
    assert_eq!(bad, 6, "5 digests signature-invalid + the trail summary");
    assert!(s.failing >= 6);
}

#[tokio::test]
async fn sample_events_drive_the_handler() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut seen = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("config-auditor-") && name.ends_with(".json")) {
            continue;
        }
        let ev: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let p = ports();
        let s = handle(&cfg(), &p, ev.clone()).await.unwrap();
        assert_eq!(s.account_id, ev["account"].as_str().unwrap(), "{name}");
        assert_eq!(s.audit_time, ev["time"].as_str().unwrap(), "{name}");
        assert!(s.error.is_none() && s.results > 0, "{name}: {s:?}");
        seen += 1;
    }
    assert!(seen >= 1, "no events/config-auditor-*.json sample");
}

#[tokio::test]
async fn all_digests_deleted_is_caught_by_the_delivery_time() {
    let (mut p, _logs, _key) = chain_ports();
    p.digests = MemDigestSource::new();
    handle(&cfg(), &p, event(NOW)).await.unwrap();
    let summary = p
        .state
        .all()
        .into_iter()
        .find(|x| x.check_id == "tw-audit-digest-chain" && x.resource == ARN)
        .unwrap();
    assert_eq!(summary.status, CheckStatus::Fail);
    assert!(
        summary.detail.contains("no digest file"),
        "{}",
        summary.detail
    );
}
