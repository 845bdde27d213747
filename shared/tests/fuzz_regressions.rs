//! Every input the fuzzers found (`fuzz/`, see `docs/fuzzing.md`) replayed through the
//! same checks as its fuzz target, so a fixed crash stays fixed without nightly or
//! libFuzzer. Inputs live in `tests/fuzz-regressions/<target>-<what>.<ext>`; the file name
//! prefix picks the target.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Cursor;
use std::path::Path;

use serde_json::Value;
use trailwatch::detect::RuleSet;
use trailwatch::ingest::{self, ReaderOptions};
use trailwatch::model::{decode_notification_key, Envelope, KeyKind, Record, S3Key};
use trailwatch::pipeline;

fn check_s3_key(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    for key in [Some(raw.to_owned()), decode_notification_key(raw).ok()]
        .into_iter()
        .flatten()
    {
        let k = S3Key::parse(&key);
        assert_eq!(k.as_str(), key);
        if matches!(k.kind, KeyKind::Log | KeyKind::Digest | KeyKind::Insight) {
            assert!(k.account.is_some() && k.region.is_some() && k.date.is_some());
        }
    }
}

fn check_log_file(data: &[u8]) {
    let rules = RuleSet::bundled().expect("bundled rules");
    let opts = ReaderOptions {
        max_record_bytes: 256 * 1024,
    };
    let reader = ingest::open(Cursor::new(data.to_vec()), opts).expect("open from memory");
    let mut findings = 0u64;
    let report = pipeline::scan(reader, &rules, "fuzz", |_| findings += 1);
    assert_eq!(
        report.records_read,
        report.records_evaluated + report.records_rejected
    );
    assert_eq!(report.findings, findings);
}

fn check_record(r: &Record) {
    match serde_json::from_str::<Value>(r.as_json()) {
        Ok(v) => assert!(v.is_object()),
        // findings 1 and 2: the record reader keeps nested values as raw text and checks
        // neither number range nor surrogate pairing, where `Value` refuses both
        Err(e) => assert!(
            [
                "number out of range",
                "surrogate",
                "hex escape",
                "expected raw value"
            ]
            .iter()
            .any(|m| e.to_string().contains(m)),
            "{e}"
        ),
    }
    assert_eq!(r.len_bytes(), r.as_json().len());
    assert!(!r.event_id_or_digest().is_empty());
    let _ = (
        r.event_time(),
        r.principal(),
        r.identity_type(),
        r.read_only(),
    );
    for k in r.keys() {
        let _ = r.get(k);
    }
}

fn check_envelope(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = Record::from_json(text) {
            check_record(&r);
        }
    }
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(env) = serde_json::from_value::<Envelope>(v.clone()) {
        let _ = env.kind();
        if let Some(Ok(r)) = env.detail.as_ref().map(Record::from_value) {
            check_record(&r);
        }
    }
    if let Ok(r) = Record::from_value(&v) {
        check_record(&r);
    }
}

fn check_sigma_rule(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = RuleSet::from_sources([("fuzz.yml", text)]) {
        assert!(!errors.is_empty());
        assert!(errors
            .iter()
            .all(|e| e.file == "fuzz.yml" && !e.message.is_empty()));
    }
}

fn check_digest(data: &[u8]) {
    use trailwatch::audit::digest::document::{signing_string, DigestDocument};
    use trailwatch::audit::digest::PublicKeySet;
    let Some((_, rest)) = data.split_first() else {
        return;
    };
    if let Ok(doc) = serde_json::from_slice::<DigestDocument>(rest) {
        assert!(signing_string(&doc, "00").starts_with(&doc.digest_end_time));
    }
    let _ = PublicKeySet::from_list_public_keys_json(rest);
}

fn replay(path: &Path) -> Result<(), String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("file name")?;
    let data = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
    let check: fn(&[u8]) = match name.split_once('-').map(|(t, _)| t) {
        Some("s3_key") => check_s3_key,
        Some("log_file") => check_log_file,
        Some("envelope") => check_envelope,
        Some("sigma_rule") => check_sigma_rule,
        Some("digest") => check_digest,
        _ => return Err(format!("{name}: no fuzz target prefix")),
    };
    std::panic::catch_unwind(|| check(&data)).map_err(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        format!("{name}: {msg}")
    })
}

#[test]
fn every_fuzz_finding_stays_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/fuzz-regressions")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no regression inputs in {}",
        dir.display()
    );
    let failures: Vec<String> = files.iter().filter_map(|p| replay(p).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Finding 1 (envelope target): a record whose numbers overflow f64 is valid JSON text to
/// the record reader; reading its fields must not panic, and the log path evaluates it.
#[test]
fn out_of_range_numbers_do_not_panic() {
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz-regressions/envelope-number-out-of-range.json"),
    )
    .expect("input");
    let text = String::from_utf8(data.clone()).expect("utf-8");
    if let Ok(r) = Record::from_json(text.as_str()) {
        check_record(&r);
    }
    check_log_file(&data);
}

/// Finding 2 (envelope target): a lone UTF-16 surrogate escape (`"\udcaa"`) inside a nested
/// string. The record is accepted and path lookups into the same subtree still work (rules
/// read `requestParameters.bucketName`), so the S3 path evaluates it; `serde_json::Value`
/// refuses the text, so the event-handler drops such an event as malformed.
#[test]
fn lone_surrogate_in_a_nested_string_keeps_sibling_fields_readable() {
    let text = r#"{"eventName":"PutBucketPolicy","eventSource":"s3.amazonaws.com","eventID":"e1","requestParameters":{"bucketName":"victim","tag":"\udcaa"}}"#;
    let r = Record::from_json(text).expect("accepted like any valid JSON text");
    assert_eq!(r.str_field("eventName"), Some("PutBucketPolicy"));
    assert_eq!(r.str_at("requestParameters.bucketName"), Some("victim"));
    check_record(&r);
    assert!(serde_json::from_str::<Value>(text).is_err());
}
