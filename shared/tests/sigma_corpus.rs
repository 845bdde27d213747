//! Compatibility with SigmaHQ's CloudTrail rules, checked against the public corpus in
//! `../shared/corpus` (read in place; skipped with a notice when absent).
//!
//! 1. Every rule in `sigma/{rules,unsupported,placeholder}` loads.
//! 2. Each SigmaHQ rule that is restricted to `eventName`s present in the corpus fires on at
//!    least one corpus record, except the documented misses below (records with that
//!    `eventName` exist but none satisfies the rule's other selections).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use trailwatch::detect::{Event, RuleSet};

/// SigmaHQ rules (file names) that legitimately fire on no corpus record although records
/// with their `eventName` exist, with the reason found when investigating the miss.
const EXPECTED_MISSES: &[(&str, &str)] = &[
    ("aws_cloudtrail_bucket_deleted.yml", "the DeleteBucket records have errorCode \"\" or BucketNotEmpty, neither Success nor null"),
    ("aws_cloudtrail_region_enabled.yml", "the EnableRegion record has eventSource cloudtrail.amazonaws.com, the rule wants account.amazonaws.com"),
    ("aws_delete_saml_provider.yml", "the rule requires a `status` field, which CloudTrail records do not have"),
    ("aws_ec2_startup_script_change.yml", "the records carry requestParameters.userData, the rule wants requestParameters.attribute: userData"),
    ("aws_enum_buckets.yml", "every ListBuckets record is by an AssumedRole, which the rule filters out"),
    ("aws_iam_s3browser_loginprofile_creation.yml", "no record has an `S3 Browser` user agent"),
    ("aws_iam_s3browser_templated_s3_bucket_policy_creation.yml", "no record has an `S3 Browser` user agent"),
    ("aws_iam_s3browser_user_or_accesskey_creation.yml", "no record has an `S3 Browser` user agent"),
];

fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    if p.is_dir() {
        Some(p)
    } else {
        println!(
            "NOTICE: {} not found; sigma corpus test skipped",
            p.display()
        );
        None
    }
}

fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, exts, out);
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| exts.contains(&x))
        {
            out.push(p);
        }
    }
}

/// CloudTrail records inside any of the corpus' top-level shapes.
fn records_in(v: Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.into_iter().for_each(|i| records_in(i, out)),
        Value::Object(mut map) => {
            if let Some(Value::Array(recs)) = map.remove("Records") {
                recs.into_iter().for_each(|r| records_in(r, out));
            } else if let Some(Value::Array(evs)) = map.remove("Events") {
                // lookup-events output: the record is a JSON string
                for e in evs {
                    if let Some(s) = e.get("CloudTrailEvent").and_then(Value::as_str) {
                        if let Ok(r) = serde_json::from_str(s) {
                            records_in(r, out);
                        }
                    }
                }
            } else if map.contains_key("detail-type") {
                if let Some(d) = map.remove("detail") {
                    records_in(d, out);
                }
            } else if map.contains_key("eventName")
                || map.contains_key("eventSource")
                || map.contains_key("eventVersion")
            {
                out.push(Value::Object(map));
            }
        }
        _ => {}
    }
}

fn load_records(root: &Path) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut push = |name: &str, v: Value| {
        let mut recs = Vec::new();
        records_in(v, &mut recs);
        out.extend(recs.into_iter().map(|r| (name.to_owned(), r)));
    };
    let mut json = Vec::new();
    files(&root.join("stratus"), &["json"], &mut json);
    files(&root.join("real"), &["json"], &mut json);
    for p in json {
        let Ok(text) = std::fs::read_to_string(&p) else {
            println!("  unreadable: {}", p.display());
            continue;
        };
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            push(&p.display().to_string(), v);
        }
    }
    let mut lines = Vec::new();
    files(&root.join("real"), &["log", "jsonl"], &mut lines);
    for p in lines {
        let Ok(text) = std::fs::read_to_string(&p) else {
            println!("  unreadable: {}", p.display());
            continue;
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                push(&p.display().to_string(), v);
            }
        }
    }
    let panther = root.join("panther/panther_tests.jsonl");
    for line in std::fs::read_to_string(panther).unwrap_or_default().lines() {
        if let Ok(mut v) = serde_json::from_str::<Value>(line) {
            if let Some(log) = v.get_mut("log").map(Value::take) {
                push("panther", log);
            }
        }
    }
    out
}

#[test]
fn sigmahq_cloudtrail_rules_load_and_fire() {
    let Some(root) = corpus() else { return };
    let mut sources = Vec::new();
    for sub in ["rules", "unsupported", "placeholder"] {
        let mut found = Vec::new();
        files(&root.join("sigma").join(sub), &["yml", "yaml"], &mut found);
        found.sort();
        for p in found {
            sources.push((
                sub,
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
    let total = sources.len();
    let mut failures = Vec::new();
    for (sub, name, text) in &sources {
        if let Err(errs) =
            RuleSet::from_sources([(format!("{sub}/{name}").as_str(), text.as_str())])
        {
            failures.extend(errs.iter().map(ToString::to_string));
        }
    }
    let loaded = total
        - sources
            .iter()
            .filter(|(s, n, _)| failures.iter().any(|f| f.starts_with(&format!("{s}/{n}:"))))
            .count();
    println!("sigma rules loaded: {loaded} of {total}");
    for f in &failures {
        println!("  cannot load: {f}");
    }
    assert_eq!(loaded, total, "every SigmaHQ CloudTrail rule must load");
    assert_eq!(total, 66, "corpus has 57 + 8 + 1 rules");

    let names: Vec<String> = sources.iter().map(|(s, n, _)| format!("{s}/{n}")).collect();
    let set = RuleSet::from_sources(
        names
            .iter()
            .map(String::as_str)
            .zip(sources.iter().map(|(_, _, t)| t.as_str())),
    )
    .unwrap();
    println!(
        "rule set: {} detection rules ({} unindexed), {} correlations, {} warnings",
        set.rules().len(),
        set.unindexed_count(),
        set.correlations().len(),
        set.warnings().len()
    );
    for w in set.warnings() {
        println!("  warning: {w}");
    }
    assert_eq!(
        set.correlations().len(),
        7,
        "the 7 legacy aggregations become correlations"
    );

    let records = load_records(&root);
    println!("corpus records: {}", records.len());
    assert!(records.len() > 800, "corpus reader found too few records");
    let corpus_names: BTreeSet<String> = records
        .iter()
        .filter_map(|(_, r)| r.event_name())
        .map(str::to_lowercase)
        .collect();

    let mut fired: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (_, r) in &records {
        out.clear();
        set.matches(r, &mut out);
        for rule in &out {
            *fired.entry(rule.file.as_str()).or_default() += 1;
        }
    }
    let firing: BTreeSet<&str> = fired.keys().copied().collect();
    println!(
        "rules firing on at least one corpus record: {} of {}",
        firing.len(),
        set.rules().len()
    );
    for (file, n) in &fired {
        println!("  {file}: {n}");
    }

    // SigmaHQ rules restricted to eventNames that the corpus contains must fire
    let mut misses = BTreeSet::new();
    for rule in set.rules().iter().filter(|r| r.file.starts_with("rules/")) {
        let names = rule.indexed_event_names();
        if names.is_empty() || !names.iter().any(|n| corpus_names.contains(n)) {
            continue;
        }
        if !firing.contains(rule.file.as_str()) {
            println!(
                "  miss: {} ({}) never fires although the corpus has {names:?}",
                rule.file, rule.title
            );
            misses.insert(rule.file.trim_start_matches("rules/").to_owned());
        }
    }
    let expected: BTreeSet<String> = EXPECTED_MISSES
        .iter()
        .map(|(f, _)| (*f).to_owned())
        .collect();
    assert_eq!(
        misses, expected,
        "rules that should fire on corpus records but do not (or documented misses that now fire)"
    );
}
