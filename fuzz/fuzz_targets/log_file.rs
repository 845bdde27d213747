//! Log files as the log-processor reads them: raw object bytes (gzip or JSON text, any of
//! the shapes `ingest` accepts) → records → the rule engine → findings. The reader's
//! accounting must hold whatever the bytes are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use std::sync::OnceLock;
use trailwatch::detect::RuleSet;
use trailwatch::ingest::{self, ReaderOptions};
use trailwatch::pipeline;

/// Two small rules: a field match with modifiers and a keyword-free condition with `not`,
/// so records that parse reach the matcher code.
const RULES: &str = r#"
title: fuzz console login without mfa
id: 6f1c2a8e-0d7e-4c1f-9e58-2f4b7a9c0d11
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    eventName: ConsoleLogin
    additionalEventData.MFAUsed: 'No'
  condition: selection
level: high
---
title: fuzz trail tampering
id: 0b9d3e55-61a4-4c8b-a0f7-8e3f1d2c4b5a
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    eventSource: cloudtrail.amazonaws.com
    eventName|startswith: [Stop, Delete, Update]
  readonly:
    readOnly: true
  condition: selection and not readonly
level: critical
"#;

fn rules() -> &'static RuleSet {
    static SET: OnceLock<RuleSet> = OnceLock::new();
    SET.get_or_init(|| match RuleSet::from_sources([("fuzz.yml", RULES)]) {
        Ok(set) => set,
        Err(errors) => panic!("fuzz rules do not load: {errors:?}"),
    })
}

fuzz_target!(|data: &[u8]| {
    // a small record limit keeps the fuzzer's memory bounded (gzip can inflate 1000x)
    let opts = ReaderOptions {
        max_record_bytes: 256 * 1024,
    };
    let Ok(reader) = ingest::open(Cursor::new(data.to_vec()), opts) else {
        return;
    };
    let mut findings = 0u64;
    let report = pipeline::scan(reader, rules(), "fuzz", |f| {
        assert!(!f.id.is_empty());
        findings += 1;
    });
    assert_eq!(
        report.records_read,
        report.records_evaluated + report.records_rejected
    );
    assert_eq!(report.findings, findings);
    assert!(report.rejections.len() as u64 <= report.records_rejected);
});
