//! Runs the built `trailwatch validate` on digest vector scenarios (read in place from
//! `../shared/digest-vectors`, skipped with a notice when absent) and checks the JSON
//! report and the exit code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn scenario(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/digest-vectors/scenarios")
        .join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("validate cli: skipped, {} not found", dir.display());
        None
    }
}

fn run(dir: &Path, format: &str) -> Output {
    let s: Value =
        serde_json::from_slice(&std::fs::read(dir.join("scenario.json")).unwrap()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailwatch"));
    cmd.arg("validate")
        .arg("--local")
        .arg(dir.join("bucket"))
        .arg("--metadata")
        .arg(dir.join("metadata.json"))
        .arg("--public-keys")
        .arg(dir.join("public-keys.json"))
        .args(["--bucket-name", s["bucket_name"].as_str().unwrap()])
        .args(["--trail-arn", s["trail_arn"].as_str().unwrap()])
        .args(["--start-time", s["start_time"].as_str().unwrap()])
        .args(["--end-time", s["end_time"].as_str().unwrap()])
        .args(["--format", format]);
    if let Some(t) = s["latest_digest_delivery_time"].as_str() {
        cmd.args(["--latest-delivery-time", t]);
    }
    cmd.output().unwrap()
}

/// (key, status) pairs of a report, in the order printed.
fn pairs(report: &Value) -> Vec<(String, String)> {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn check_json(name: &str, want_code: i32) {
    let Some(dir) = scenario(name) else { return };
    let out = run(&dir, "json");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(want_code),
        "{name}: stderr {stderr}"
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    assert_eq!(got["ok"], expected["ok"], "{name}");
    assert_eq!(pairs(&got), pairs(&expected), "{name}");
}

#[test]
fn ok_scenario_prints_the_expected_report_and_exits_0() {
    check_json("valid-two-regions", 0);
}

#[test]
fn failing_scenario_prints_the_expected_report_and_exits_1() {
    check_json("digest-deleted-two-consecutive", 1);
}

#[test]
fn table_format_ends_with_a_summary() {
    let Some(dir) = scenario("log-tampered") else {
        return;
    };
    let out = run(&dir, "table");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let last = text.lines().last().unwrap();
    assert_eq!(last, "FAILED: 24 files (1 hash-mismatch, 23 valid)");
    assert!(text.lines().next().unwrap().starts_with("STATUS"));
}

#[test]
fn io_and_usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args([
            "validate",
            "--local",
            "/nonexistent/bucket",
            "--metadata",
            "/nonexistent/metadata.json",
            "--public-keys",
            "/nonexistent/keys.json",
            "--bucket-name",
            "b",
            "--trail-arn",
            "arn:aws:cloudtrail:us-east-1:111122223333:trail/t",
            "--start-time",
            "2025-03-01T00:00:00Z",
            "--end-time",
            "2025-03-01T01:00:00Z",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("public keys"));
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["validate", "--bucket", "b", "--start-time", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
