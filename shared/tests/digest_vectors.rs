//! Runs every scenario of `../shared/digest-vectors/scenarios` (read in place, never
//! copied) through the digest validator and compares the report with `expected.json`:
//! same `ok`, same (key, status) set, each key once, sorted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

#[cfg(feature = "aws")]
mod support;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use trailwatch::audit::digest::{
    validate, DigestSource, LocalDigestSource, PublicKeySet, TrailArn, ValidateRequest,
};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/digest-vectors/scenarios")
}

fn time_field(v: &Value, name: &str) -> Option<OffsetDateTime> {
    v.get(name)
        .and_then(Value::as_str)
        .map(|s| OffsetDateTime::parse(s, &Rfc3339).unwrap())
}

async fn run_scenario(dir: &Path) -> Result<(), String> {
    let source = LocalDigestSource::open(dir.join("bucket"), dir.join("metadata.json"))
        .await
        .unwrap();
    check_scenario(dir, &source).await
}

/// Validates `dir`'s scenario read through `source` and compares with `expected.json`.
async fn check_scenario<S: DigestSource>(dir: &Path, source: &S) -> Result<(), String> {
    let scenario: Value =
        serde_json::from_slice(&std::fs::read(dir.join("scenario.json")).unwrap()).unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let keys = PublicKeySet::from_list_public_keys_json(
        &std::fs::read(dir.join("public-keys.json")).unwrap(),
    )
    .unwrap();
    let req = ValidateRequest {
        bucket_name: scenario["bucket_name"].as_str().unwrap().to_owned(),
        trail: TrailArn::parse(scenario["trail_arn"].as_str().unwrap()).unwrap(),
        start_time: time_field(&scenario, "start_time").unwrap(),
        end_time: time_field(&scenario, "end_time").unwrap(),
        latest_delivery_time: time_field(&scenario, "latest_digest_delivery_time"),
        list_prefix: None,
        max_in_flight: NonZeroUsize::new(8).unwrap(),
    };
    let report = validate(source, &keys, &req)
        .await
        .map_err(|e| format!("validate failed: {e:?}"))?;

    let got: Vec<(String, String)> = report
        .files
        .iter()
        .map(|f| (f.key.clone(), f.status.as_str().to_owned()))
        .collect();
    let want: Vec<(String, String)> = expected["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = got.clone();
    sorted.sort();
    sorted.dedup_by(|a, b| a.0 == b.0);
    if sorted != got {
        return Err("report files are not sorted by key, each once".into());
    }
    let want_ok = expected["ok"].as_bool().unwrap();
    let mut problems = Vec::new();
    if report.ok != want_ok {
        problems.push(format!("ok: got {}, want {want_ok}", report.ok));
    }
    for w in &want {
        match got.iter().find(|g| g.0 == w.0) {
            None => problems.push(format!("missing {} ({})", w.0, w.1)),
            Some(g) if g.1 != w.1 => {
                let detail = report
                    .files
                    .iter()
                    .find(|f| f.key == w.0)
                    .and_then(|f| f.detail.clone());
                problems.push(format!("{}: got {} ({detail:?}), want {}", w.0, g.1, w.1));
            }
            Some(_) => {}
        }
    }
    for g in &got {
        if !want.iter().any(|w| w.0 == g.0) {
            problems.push(format!("unexpected {} ({})", g.0, g.1));
        }
    }
    // the JSON shape the CLI prints: statuses serialise to their kebab-case names
    let json = serde_json::to_value(&report).unwrap();
    if json["ok"] != expected["ok"] || json["files"].as_array().map(Vec::len) != Some(want.len()) {
        problems.push("serialised report differs in ok or length".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n  "))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_vector_scenarios() {
    let root = scenarios_dir();
    if !root.is_dir() {
        println!("digest scenarios: skipped, {} not found", root.display());
        return;
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no scenarios under {}", root.display());
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if let Err(e) = run_scenario(dir).await {
            failures.push(format!("{name}:\n  {e}"));
        }
    }
    println!(
        "digest scenarios: {}/{}",
        dirs.len() - failures.len(),
        dirs.len()
    );
    assert!(
        failures.is_empty(),
        "failing scenarios:\n{}",
        failures.join("\n")
    );
}

/// The same scenarios through the S3 source: each scenario's bucket uploaded to a private
/// moto server with its digests' user metadata (skipped when moto is not installed).
#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_vector_scenarios_through_s3() {
    use trailwatch::audit::digest::DigestMetadata;
    use trailwatch::ports::aws::S3DigestSource;

    let root = scenarios_dir();
    if !root.is_dir() {
        println!(
            "digest scenarios (s3): skipped, {} not found",
            root.display()
        );
        return;
    }
    let Some(moto) = support::Moto::start("digest_vector_scenarios_through_s3") else {
        return;
    };
    let sdk = moto.sdk_config().await;
    let s3 = moto.s3().await;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut failures = Vec::new();
    let mut created = std::collections::HashSet::new();
    for dir in &dirs {
        let scenario: Value =
            serde_json::from_slice(&std::fs::read(dir.join("scenario.json")).unwrap()).unwrap();
        let bucket = scenario["bucket_name"].as_str().unwrap();
        // one moto server, one bucket name: empty it between scenarios
        if created.insert(bucket.to_owned()) {
            moto.create_bucket(bucket).await;
        }
        for key in S3DigestSource::new(&sdk, bucket)
            .list_keys(None)
            .await
            .unwrap()
        {
            moto.delete_object(bucket, &key).await;
        }
        let metadata: std::collections::HashMap<String, DigestMetadata> =
            serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
        let local = LocalDigestSource::open(dir.join("bucket"), dir.join("metadata.json"))
            .await
            .unwrap();
        for key in local.list_keys(None).await.unwrap() {
            let body = local.get_object(&key).await.unwrap().unwrap();
            let mut put = s3
                .put_object()
                .bucket(bucket)
                .key(&key)
                .body(body.to_vec().into());
            if let Some(m) = metadata.get(&key) {
                for (name, value) in [
                    ("signature", &m.signature),
                    ("signature-algorithm", &m.signature_algorithm),
                    (
                        "backfill-generation-timestamp",
                        &m.backfill_generation_timestamp,
                    ),
                ] {
                    if let Some(v) = value {
                        put = put.metadata(name, v);
                    }
                }
            }
            put.send().await.unwrap();
        }
        let source = S3DigestSource::new(&sdk, bucket);
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if let Err(e) = check_scenario(dir, &source).await {
            failures.push(format!("{name}:\n  {e}"));
        }
    }
    println!(
        "digest scenarios (s3): {}/{}",
        dirs.len() - failures.len(),
        dirs.len()
    );
    assert!(
        failures.is_empty(),
        "failing scenarios:\n{}",
        failures.join("\n")
    );
}
