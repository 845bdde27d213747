//! `trailwatch scan s3://bucket/prefix` against a moto server: listing, date filters from
//! the key, streaming reads, and a missing bucket reported as a usage error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../shared/tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::process::Command;

fn gz(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

fn log(day: u32, id: &str) -> Vec<u8> {
    gz(&format!(
        r#"{{"Records":[{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/eve","accountId":"111122223333"}},"eventTime":"2026-11-{day:02}T09:00:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"DeleteTrail","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.9","requestParameters":{{"name":"main"}},"responseElements":null,"eventID":"{id}","eventType":"AwsApiCall","recipientAccountId":"111122223333"}}]}}"#
    ))
}

fn key(day: u32) -> String {
    format!("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/{day:02}/111122223333_CloudTrail_us-east-1_202611{day:02}T0905Z_r{day:02}.json.gz")
}

#[tokio::test(flavor = "multi_thread")]
async fn scans_an_s3_prefix_with_date_filters() {
    let Some(moto) = support::Moto::start("scans_an_s3_prefix_with_date_filters") else {
        return;
    };
    moto.create_bucket("trail-bucket").await;
    for day in [20, 21, 22] {
        moto.put_object("trail-bucket", &key(day), log(day, &format!("day-{day}")))
            .await;
    }
    // a digest under the same prefix is listed but never evaluated
    moto.put_object(
        "trail-bucket",
        "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/21/111122223333_CloudTrail-Digest_us-east-1_main_us-east-1_20261121T100000Z.json.gz",
        b"not a log".to_vec(),
    )
    .await;

    let run = |args: Vec<String>| {
        Command::new(env!("CARGO_BIN_EXE_trailwatch"))
            .args(args)
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap()
    };
    let out = run([
        "scan",
        "--format",
        "jsonl",
        "--since",
        "2026-11-21",
        "--until",
        "2026-11-21",
        "s3://trail-bucket/AWSLogs/",
    ]
    .map(String::from)
    .to_vec());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let ids: std::collections::BTreeSet<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.into_iter().collect::<Vec<_>>(), ["day-21"]);
    assert!(
        stdout.contains("s3://trail-bucket/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/21/"),
        "{stdout}"
    );
    assert!(stderr.contains("scanned 1 file(s)"), "{stderr}");

    let out = run(["scan", "s3://trail-bucket/"].map(String::from).to_vec());
    assert!(String::from_utf8_lossy(&out.stderr).contains("scanned 3 file(s)"));

    let out = run(["scan", "s3://no-such-bucket/AWSLogs/"]
        .map(String::from)
        .to_vec());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-bucket"));
}
