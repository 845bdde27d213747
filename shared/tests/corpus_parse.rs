//! Every CloudTrail-shaped file under `../shared/corpus` parses: no stream errors, no
//! rejected records, and the record counts are printed per folder.
//!
//! The corpus is public data written by others; it is read in place and never copied.
//! Without `../shared` (a user's clone) the test prints a notice and passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use trailwatch::detect::{Event, RuleSet};
use trailwatch::ingest::{self, Item, ReaderOptions};
use trailwatch::model::Record;
use trailwatch::pipeline;

fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    if p.is_dir() {
        Some(p)
    } else {
        println!(
            "notice: {} is absent: skipping the corpus parse test",
            p.display()
        );
        None
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[derive(Default, Debug)]
struct Tally {
    files: usize,
    records: u64,
    skipped: u64,
    with_event_name: u64,
}

#[test]
fn every_corpus_file_parses() {
    let Some(root) = corpus() else { return };
    let mut all = Vec::new();
    files(&root, &mut all);
    let mut by_folder: BTreeMap<String, Tally> = BTreeMap::new();
    let mut problems = Vec::new();
    let rules = RuleSet::bundled().unwrap();
    let mut accounted = 0u64;
    for path in &all {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let is_data = [".json", ".jsonl", ".log"]
            .iter()
            .any(|e| name.ends_with(e));
        if !is_data {
            continue;
        }
        let rel = path.strip_prefix(&root).unwrap();
        let folder = rel
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let tally = by_folder.entry(folder).or_default();
        tally.files += 1;
        if name.starts_with("panther_") {
            // Panther test lines wrap the record in `log` (rule tests) or hold a trail
            // configuration in `resource` (policy tests): read the records inside
            for (i, line) in std::fs::read_to_string(path).unwrap().lines().enumerate() {
                let v: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}:{}: {e}", rel.display(), i + 1));
                if let Some(log) = v.get("log") {
                    match Record::from_value(log) {
                        Ok(r) => {
                            tally.records += 1;
                            tally.with_event_name += u64::from(r.event_name().is_some());
                        }
                        Err(e) => problems.push(format!("{}:{}: {e}", rel.display(), i + 1)),
                    }
                } else {
                    assert!(
                        v.get("resource").is_some(),
                        "{}:{}: neither log nor resource",
                        rel.display(),
                        i + 1
                    );
                    tally.skipped += 1;
                }
            }
            continue;
        }
        // the accounting invariant over the same file through the full pipeline
        let file = std::fs::File::open(path).unwrap();
        let report = pipeline::scan(
            ingest::open(file, ReaderOptions::default()).unwrap(),
            &rules,
            &name,
            |_| {},
        );
        assert_eq!(
            report.records_read,
            report.records_evaluated + report.records_rejected,
            "{}",
            rel.display()
        );
        accounted += report.records_read;
        let file = std::fs::File::open(path).unwrap();
        let reader = ingest::open(file, ReaderOptions::default()).unwrap();
        for item in reader {
            match item {
                Ok(Item::Record(r)) => {
                    tally.records += 1;
                    tally.with_event_name += u64::from(r.event_name().is_some());
                    // every accessor must be total on every shape
                    let _ = (
                        r.event_id_or_digest(),
                        r.principal(),
                        r.account_id(),
                        r.read_only(),
                        r.event_time(),
                        r.identity_type(),
                    );
                }
                Ok(Item::Rejected(rej)) => {
                    problems.push(format!("{}: {}: {}", rel.display(), rej.at, rej.reason))
                }
                Ok(Item::Skipped { .. }) => tally.skipped += 1,
                Err(e) => problems.push(format!("{}: {e}", rel.display())),
            }
        }
    }
    let mut total = Tally::default();
    for (folder, t) in &by_folder {
        println!(
            "corpus {folder:<40} files {:>3}  records {:>5}  (with eventName {:>5})  skipped {:>3}",
            t.files, t.records, t.with_event_name, t.skipped
        );
        total.files += t.files;
        total.records += t.records;
        total.skipped += t.skipped;
    }
    println!(
        "corpus records parsed: {} from {} files ({} non-record elements skipped)",
        total.records, total.files, total.skipped
    );
    println!("records accounted through the pipeline (read = evaluated + rejected): {accounted}");
    assert!(
        problems.is_empty(),
        "corpus files that do not parse:\n{}",
        problems.join("\n")
    );
    // the corpus README counts 310 Stratus and 472 Panther test records at least
    assert!(
        total.records >= 310 + 472 + 103,
        "only {} records",
        total.records
    );
}
