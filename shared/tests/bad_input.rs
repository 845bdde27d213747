//! The bad-input suite: every file in `tests/bad-input/` (regenerate them with
//! `make_bad_inputs.py`) damaged in one way a real pipeline meets. For each, the table
//! says what the reader must do: how many records still get evaluated, how many are
//! rejected, how the stream ends, and whether retrying could help. Nothing may panic, every
//! error names its position, and `read = evaluated + rejected` holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use trailwatch::detect::RuleSet;
use trailwatch::ingest::{self, ReaderOptions, StreamError};
use trailwatch::pipeline;

#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Clean,
    Empty,
    Shape,
    Truncated,
    Gzip,
}

struct Case {
    file: &'static str,
    evaluated: u64,
    rejected: u64,
    skipped: u64,
    end: End,
    /// rule ids that must still fire on the good records
    fires: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        file: "empty.json.gz",
        evaluated: 0,
        rejected: 0,
        skipped: 0,
        end: End::Empty,
        fires: &[],
    },
    Case {
        file: "not-gzip.json.gz",
        evaluated: 0,
        rejected: 0,
        skipped: 0,
        end: End::Shape,
        fires: &[],
    },
    Case {
        file: "gzip-of-text.json.gz",
        evaluated: 0,
        rejected: 0,
        skipped: 0,
        end: End::Shape,
        fires: &[],
    },
    Case {
        file: "truncated-json.json.gz",
        evaluated: 2,
        rejected: 0,
        skipped: 0,
        end: End::Truncated,
        fires: &["tw-cloudtrail-stop-logging"],
    },
    Case {
        file: "concatenated-members.json.gz",
        evaluated: 3,
        rejected: 0,
        skipped: 0,
        end: End::Clean,
        fires: &["tw-cloudtrail-stop-logging"],
    },
    Case {
        file: "records-not-array.json.gz",
        evaluated: 0,
        rejected: 1,
        skipped: 0,
        end: End::Clean,
        fires: &[],
    },
    Case {
        file: "huge-record.json.gz",
        evaluated: 3,
        rejected: 0,
        skipped: 0,
        end: End::Clean,
        fires: &["tw-cloudtrail-stop-logging"],
    },
    Case {
        file: "deep-nesting.json.gz",
        evaluated: 2,
        rejected: 1,
        skipped: 0,
        end: End::Clean,
        fires: &["tw-cloudtrail-stop-logging"],
    },
    Case {
        file: "invalid-utf8.json.gz",
        evaluated: 2,
        rejected: 1,
        skipped: 0,
        end: End::Clean,
        fires: &["tw-cloudtrail-stop-logging"],
    },
    Case {
        file: "nan-and-huge-numbers.json.gz",
        evaluated: 2,
        rejected: 1,
        skipped: 0,
        end: End::Clean,
        fires: &["tw-cloudtrail-stop-logging"],
    },
    Case {
        file: "duplicate-keys.json.gz",
        evaluated: 1,
        rejected: 0,
        skipped: 0,
        end: End::Clean,
        fires: &["tw-cloudtrail-stop-logging"],
    },
    Case {
        file: "unicode-keys.json.gz",
        evaluated: 1,
        rejected: 0,
        skipped: 0,
        end: End::Clean,
        fires: &["tw-cloudtrail-stop-logging"],
    },
    Case {
        file: "zero-records.json.gz",
        evaluated: 0,
        rejected: 0,
        skipped: 0,
        end: End::Clean,
        fires: &[],
    },
    Case {
        file: "envelope-without-detail.json",
        evaluated: 0,
        rejected: 1,
        skipped: 0,
        end: End::Clean,
        fires: &[],
    },
];

fn end_of(e: &Option<StreamError>) -> End {
    match e {
        None => End::Clean,
        Some(StreamError::Empty) => End::Empty,
        Some(StreamError::Shape { .. }) => End::Shape,
        Some(StreamError::Truncated { .. }) => End::Truncated,
        Some(StreamError::Gzip { .. }) => End::Gzip,
        Some(other) => panic!("unexpected stream error {other}"),
    }
}

#[test]
fn every_bad_input_is_handled_as_the_table_says() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input");
    let rules = RuleSet::bundled().unwrap();
    let mut listed: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".json"))
        .collect();
    listed.sort();
    let mut covered: Vec<String> = CASES.iter().map(|c| c.file.to_owned()).collect();
    covered.push("truncated-gzip.json.gz".into());
    covered.sort();
    assert_eq!(
        listed, covered,
        "every committed bad input has a row in the table"
    );

    for case in CASES {
        let file = std::fs::File::open(dir.join(case.file)).unwrap();
        let reader = ingest::open(file, ReaderOptions::default()).unwrap();
        let mut rule_ids = Vec::new();
        let report = pipeline::scan(reader, &rules, case.file, |f| rule_ids.push(f.rule_id));
        let got = (
            report.records_evaluated,
            report.records_rejected,
            report.skipped,
            end_of(&report.stream_error),
        );
        assert_eq!(
            got,
            (case.evaluated, case.rejected, case.skipped, case.end),
            "{}: {report:?}",
            case.file
        );
        assert_eq!(
            report.records_read,
            report.records_evaluated + report.records_rejected,
            "{}",
            case.file
        );
        for id in case.fires {
            assert!(
                rule_ids.iter().any(|r| r == id),
                "{}: {id} did not fire on the good records ({rule_ids:?})",
                case.file
            );
        }
        if let Some(e) = &report.stream_error {
            assert!(
                !e.is_retryable(),
                "{}: damaged data must not be retried",
                case.file
            );
            let msg = e.to_string();
            assert!(
                msg.contains("byte") || msg.contains("empty") || msg.contains("record"),
                "{}: {msg}",
                case.file
            );
        }
        for r in &report.rejections {
            assert!(
                r.contains("record ") && r.contains(" at byte "),
                "{}: rejection without position: {r}",
                case.file
            );
        }
    }
}

#[test]
fn truncated_gzip_evaluates_what_came_before_the_cut() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input");
    let rules = RuleSet::bundled().unwrap();
    let file = std::fs::File::open(dir.join("truncated-gzip.json.gz")).unwrap();
    let report = pipeline::scan(
        ingest::open(file, ReaderOptions::default()).unwrap(),
        &rules,
        "t",
        |_| {},
    );
    // 400 records were written; the cut keeps a prefix of them, never all, never none
    assert!(
        report.records_evaluated > 50 && report.records_evaluated < 400,
        "{report:?}"
    );
    assert!(
        matches!(
            report.stream_error,
            Some(StreamError::Gzip { .. }) | Some(StreamError::Truncated { .. })
        ),
        "{report:?}"
    );
    assert!(!report.stream_error.as_ref().unwrap().is_retryable());
}

#[test]
fn duplicate_keys_take_the_last_value_like_every_json_reader() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input");
    let file = std::fs::File::open(dir.join("duplicate-keys.json.gz")).unwrap();
    let mut reader = ingest::open(file, ReaderOptions::default()).unwrap();
    let Some(Ok(ingest::Item::Record(r))) = reader.next() else {
        panic!()
    };
    use trailwatch::detect::Event;
    assert_eq!(r.event_name(), Some("StopLogging"));
}

#[test]
fn a_transport_failure_is_retryable() {
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            ))
        }
    }
    let rules = RuleSet::bundled().unwrap();
    let r = ingest::open(Broken, ReaderOptions::default());
    // the first read already fails: open reports it (the caller retries)
    let err = r.err().expect("open fails on a broken transport");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    // a failure after some bytes surfaces as a retryable stream error
    let text = b"{\"Records\":[{\"eventID\":\"a\"},".to_vec();
    let chained = std::io::Read::chain(std::io::Cursor::new(text), Broken);
    let report = pipeline::scan(
        ingest::open(chained, ReaderOptions::default()).unwrap(),
        &rules,
        "t",
        |_| {},
    );
    assert_eq!(report.records_evaluated, 1);
    assert!(
        report
            .stream_error
            .as_ref()
            .is_some_and(|e| e.is_retryable()),
        "{report:?}"
    );
}
