//! `trailwatch scan` and `trailwatch rules` as a user runs them: the JSON-lines contract,
//! folders, exit codes, and error messages that name the file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn trailwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(args)
        .env_remove("TRAILWATCH_LOG")
        .output()
        .unwrap()
}

/// `trailwatch scan --format jsonl <extra> <path>` that must exit 0: its stdout.
fn scan_jsonl(extra: &[&str], path: &Path) -> String {
    let mut args = vec!["scan", "--format", "jsonl"];
    args.extend_from_slice(extra);
    args.push(path.to_str().unwrap());
    let out = trailwatch(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn record(id: &str, name: &str, source: &str, extra: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/bob","accountId":"111122223333","userName":"bob"}},"eventTime":"2026-11-20T12:00:00Z","eventSource":"{source}","eventName":"{name}","awsRegion":"eu-west-1","sourceIPAddress":"198.51.100.4","userAgent":"aws-cli/2.15","requestParameters":{{"name":"main"}},"responseElements":null,"eventID":"{id}","eventType":"AwsApiCall","recipientAccountId":"111122223333"{extra}}}"#
    )
}

fn gz(text: &str) -> Vec<u8> {
    use flate2::write::GzEncoder;
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

#[test]
fn jsonl_carries_the_contract_fields() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir
        .path()
        .join("AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/20");
    std::fs::create_dir_all(&nested).unwrap();
    let log = format!(
        r#"{{"Records":[{},{}]}}"#,
        record("ev-stop", "StopLogging", "cloudtrail.amazonaws.com", ""),
        record(
            "ev-read",
            "DescribeTrails",
            "cloudtrail.amazonaws.com",
            r#","readOnly":true"#
        )
    );
    std::fs::write(
        nested.join("111122223333_CloudTrail_eu-west-1_20261120T1200Z_abc.json.gz"),
        gz(&log),
    )
    .unwrap();
    // a digest in the same tree is not a log file and is not read
    let digest = dir
        .path()
        .join("AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2026/11/20");
    std::fs::create_dir_all(&digest).unwrap();
    std::fs::write(
        digest
            .join("111122223333_CloudTrail-Digest_eu-west-1_t_eu-west-1_20261120T120000Z.json.gz"),
        b"not even gzip",
    )
    .unwrap();

    let out = trailwatch(&["scan", "--format", "jsonl", dir.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stop = lines
        .iter()
        .find(|f| f["rule_id"] == "tw-cloudtrail-stop-logging")
        .expect("StopLogging finding");
    for field in [
        "rule_id",
        "title",
        "severity",
        "event_id",
        "event_name",
        "event_time",
        "account_id",
        "region",
        "source",
    ] {
        assert!(stop[field].is_string(), "{field} missing in {stop}");
    }
    assert_eq!(stop["event_id"], "ev-stop");
    assert_eq!(stop["severity"], "high");
    assert_eq!(stop["account_id"], "111122223333");
    assert_eq!(stop["region"], "eu-west-1");
    assert!(stop["source"].as_str().unwrap().ends_with("_abc.json.gz"));
    assert!(
        lines.iter().all(|f| f["event_id"] != "ev-read"),
        "a read-only DescribeTrails raised a finding"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("scanned 1 file(s), 2 record(s)"),
        "{stderr}"
    );
}

#[test]
fn min_severity_filters_and_table_prints() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("records.json");
    std::fs::write(
        &f,
        format!(
            "[{}]",
            record("e1", "StopLogging", "cloudtrail.amazonaws.com", "")
        ),
    )
    .unwrap();
    let out = trailwatch(&[
        "scan",
        "--format",
        "jsonl",
        "--min-severity",
        "high",
        f.to_str().unwrap(),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.is_empty());
    assert!(text.lines().all(|l| l.contains("\"severity\":\"high\"") || l.contains("\"severity\":\"critical\"")), "{text}");
    let out = trailwatch(&["scan", "--format", "table", f.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("SEVERITY"), "{text}");
    assert!(text.contains("tw-cloudtrail-stop-logging"), "{text}");
}

#[test]
fn damaged_input_exits_non_zero_after_scanning_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("a-good.json");
    std::fs::write(
        &good,
        format!(
            r#"{{"Records":[{}]}}"#,
            record("g1", "StopLogging", "cloudtrail.amazonaws.com", "")
        ),
    )
    .unwrap();
    let bad = dir.path().join("b-truncated.json.gz");
    let full = gz(&format!(
        r#"{{"Records":[{},{}]}}"#,
        record("t1", "StopLogging", "cloudtrail.amazonaws.com", ""),
        record("t2", "DeleteTrail", "cloudtrail.amazonaws.com", "")
    ));
    std::fs::write(&bad, &full[..full.len() - 30]).unwrap();
    let out = trailwatch(&["scan", "--format", "jsonl", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("\"event_id\":\"g1\""),
        "the good file was still scanned: {stdout}"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("error: ") && stderr.contains("b-truncated.json.gz"),
        "{stderr}"
    );
    assert!(stderr.contains("1 file(s) with errors"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let out = trailwatch(&["scan", "/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/definitely/not/here"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yml"), "title: x\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel: {eventName: A}\n  condition: sel and nope\n").unwrap();
    let out = trailwatch(&[
        "scan",
        "--rules",
        dir.path().to_str().unwrap(),
        root().join("events").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yml:"),
        "load errors name the file and line: {err}"
    );
}

#[test]
fn rules_list_and_test() {
    let out = trailwatch(&["rules", "list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().count() >= 80,
        "{} rules listed",
        text.lines().count()
    );
    assert!(text.contains("tw-cloudtrail-stop-logging"));
    let out = trailwatch(&["rules", "test"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("PASS  tw-cloudtrail-stop-logging"));
}

#[test]
fn demo_events_folder_scans_cleanly() {
    let text = scan_jsonl(&[], &root().join("events"));
    assert!(text.contains("tw-cloudtrail-stop-logging"));
}

fn failed_login(i: usize) -> String {
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/u{u}","accountId":"111122223333","userName":"u{u}"}},"eventTime":"2026-11-20T12:0{m}:{s:02}Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.66","userAgent":"Mozilla/5.0","requestParameters":null,"responseElements":{{"ConsoleLogin":"Failure"}},"additionalEventData":{{"MFAUsed":"No"}},"errorMessage":"Failed authentication","eventID":"fl-{i}","eventType":"AwsConsoleSignIn","recipientAccountId":"111122223333"}}"#,
        u = i % 3,
        m = i % 8,
        s = i * 3 % 60
    )
}

/// The JSON lines of the failed-login burst correlation.
fn login_bursts(jsonl: &str) -> Vec<&str> {
    jsonl
        .lines()
        .filter(|l| l.contains("\"rule_id\":\"tw-corr-console-login-failures-by-ip\""))
        .collect()
}

#[test]
fn a_burst_split_across_files_correlates_once_and_allowlists_apply() {
    let dir = tempfile::tempdir().unwrap();
    // 12 failed sign-ins from one address within 8 minutes, spread over three files (one
    // file delivered twice): one correlation finding, not one per file
    for (n, range) in [(0, 0..4), (1, 4..8), (2, 8..12), (3, 8..12)] {
        let recs: Vec<String> = range.map(failed_login).collect();
        std::fs::write(
            dir.path().join(format!("part{n}.json")),
            format!(r#"{{"Records":[{}]}}"#, recs.join(",")),
        )
        .unwrap();
    }
    let text = scan_jsonl(&["--threads", "1"], dir.path());
    let burst = login_bursts(&text);
    assert_eq!(burst.len(), 1, "{text}");

    let allow = dir.path().join("allow.yml");
    std::fs::write(&allow, "entries:\n  - id: pentest\n    reason: scheduled penetration test\n    expires: 2999-01-01\n    source_cidrs: [\"198.51.100.0/24\"]\n").unwrap();
    let out = trailwatch(&[
        "scan",
        "--format",
        "jsonl",
        "--allowlist",
        allow.to_str().unwrap(),
        dir.path().join("part0.json").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("suppressed by the allow-list"), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.is_empty() && text.lines().all(|l| l.contains("trailwatch.suppressed")),
        "{text}"
    );
}

#[test]
fn a_file_of_many_principals_is_correlated_as_it_goes_and_finds_the_same() {
    // 6,000 principals (12,000 ratio groups: more than one in-file flush of the CLI's
    // bounded batch) between two halves of a 12-login burst from one address: the burst
    // is found once and counts all twelve, as when its logins are scanned alone
    let dir = tempfile::tempdir().unwrap();
    let mut recs: Vec<String> = (0..6).map(failed_login).collect();
    for i in 0..6000 {
        let arn = format!("arn:aws:sts::111122223333:assumed-role/app/s{i}");
        recs.push(
            record(
                &format!("p-{i}"),
                "GetCallerIdentity",
                "sts.amazonaws.com",
                "",
            )
            .replace("arn:aws:iam::111122223333:user/bob", &arn),
        );
    }
    recs.extend((6..12).map(failed_login));
    let big = dir.path().join("big.json.gz");
    std::fs::write(&big, gz(&format!(r#"{{"Records":[{}]}}"#, recs.join(",")))).unwrap();
    let alone = dir.path().join("alone.json");
    let logins: Vec<String> = (0..12).map(failed_login).collect();
    std::fs::write(&alone, format!(r#"{{"Records":[{}]}}"#, logins.join(","))).unwrap();

    let burst = |path: &Path| -> Vec<String> {
        let text = scan_jsonl(&[], path);
        login_bursts(&text)
            .into_iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                format!("{} {}", v["id"], v["title"])
            })
            .collect()
    };
    let found = burst(&big);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("12 events"), "{found:?}");
    assert_eq!(found, burst(&alone));
}

#[test]
fn a_long_scan_drops_expired_state_in_delivery_order_and_still_correlates() {
    // a 12-login burst split over two files five minutes apart, then 38 files five hours
    // apart over eight days. In path order the burst's halves are the first and the last
    // file (regions af-south-1 < us-east-1 < us-west-2), and state dropped by the days in
    // between would split the burst; the scan reads in delivery order, drops expired state
    // as it goes, and finds the burst once with all twelve logins
    let dir = tempfile::tempdir().unwrap();
    let account = "111122223333";
    let write = |region: &str, at: time::OffsetDateTime, records: &[String]| {
        let folder = dir.path().join(format!(
            "AWSLogs/{account}/CloudTrail/{region}/{:04}/{:02}/{:02}",
            at.year(),
            u8::from(at.month()),
            at.day()
        ));
        std::fs::create_dir_all(&folder).unwrap();
        let name = format!(
            "{account}_CloudTrail_{region}_{:04}{:02}{:02}T{:02}{:02}Z_AbCdEfGh12345678.json.gz",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute()
        );
        let body = format!(r#"{{"Records":[{}]}}"#, records.join(","));
        std::fs::write(folder.join(name), gz(&body)).unwrap();
    };
    let start = time::macros::datetime!(2026-11-21 00:00 UTC);
    for k in 0..38 {
        let at = start + time::Duration::hours(5 * k);
        let stamp = at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let rec = record(&format!("f-{k}"), "ListBuckets", "s3.amazonaws.com", "")
            .replace("2026-11-20T12:00:00Z", &stamp);
        write("us-east-1", at, &[rec]);
    }
    let logins: Vec<String> = (0..12).map(failed_login).collect();
    write(
        "af-south-1",
        time::macros::datetime!(2026-11-20 12:05 UTC),
        &logins[..6],
    );
    write(
        "us-west-2",
        time::macros::datetime!(2026-11-20 12:10 UTC),
        &logins[6..],
    );

    let out = trailwatch(&[
        "scan",
        "--threads",
        "1",
        "--format",
        "jsonl",
        "--log",
        "trailwatch=debug",
        dir.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("scanned 40 file(s)"), "{stderr}");
    assert!(
        stderr.contains("dropped expired correlation state"),
        "{stderr}"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let burst = login_bursts(&text);
    assert_eq!(burst.len(), 1, "{text}");
    assert!(burst[0].contains("12 events"), "{}", burst[0]);
}
