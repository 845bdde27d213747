//! Stratus Red Team coverage of the bundled rule pack.
//!
//! Reads the detonation logs in `../shared/corpus/stratus/` (one JSON array of CloudTrail
//! records per technique, listed in `techniques.tsv`) in place, runs every record through
//! `RuleSet::bundled()` and requires at least 90 % of the techniques that have a log to raise
//! a finding. Skips with a notice when the corpus is not checked out next to the workspace.
//!
//! A technique only counts as detected through a rule written for its behaviour: the
//! catch-all CIS 4.1 rule (any `AccessDenied`/`UnauthorizedOperation`) would otherwise
//! "detect" every technique whose detonation was denied, which says nothing about coverage.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use trailwatch::detect::RuleSet;

/// Rules that fire on any failed call, whatever the technique.
const GENERIC: &[&str] = &["tw-cis-4-1-unauthorized-api-calls"];

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/stratus")
}

struct Technique {
    id: String,
    file: String,
    records: usize,
}

/// Techniques with a detonation log; `Err` names the malformed line.
fn read_techniques(tsv: &str) -> Result<Vec<Technique>, String> {
    let mut out = Vec::new();
    for (n, line) in tsv.lines().enumerate().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [id, _name, _tactic, file, records] = cols[..] else {
            return Err(format!("techniques.tsv line {}: expected 5 columns", n + 1));
        };
        if file.is_empty() {
            continue; // technique without a detonation log
        }
        let records = records
            .parse()
            .map_err(|e| format!("techniques.tsv line {}: records: {e}", n + 1))?;
        out.push(Technique {
            id: id.to_owned(),
            file: file.to_owned(),
            records,
        });
    }
    Ok(out)
}

#[test]
fn bundled_pack_detects_stratus_techniques() {
    let dir = corpus_dir();
    let Ok(tsv) = std::fs::read_to_string(dir.join("techniques.tsv")) else {
        println!("SKIP: Stratus corpus not found at {}", dir.display());
        return;
    };
    let set = RuleSet::bundled().unwrap_or_else(|e| panic!("bundled rules do not load: {e:?}"));
    let techniques = read_techniques(&tsv).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !techniques.is_empty(),
        "techniques.tsv lists no technique with a log"
    );

    let mut detected = 0;
    let mut matched = Vec::new();
    for t in &techniques {
        let text = std::fs::read_to_string(dir.join(&t.file))
            .unwrap_or_else(|e| panic!("{}: {e}", t.file));
        let records: Vec<Value> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", t.file));
        assert_eq!(
            records.len(),
            t.records,
            "{}: record count differs from techniques.tsv",
            t.file
        );
        let mut fired = BTreeSet::new();
        for record in &records {
            matched.clear();
            set.matches(record, &mut matched);
            fired.extend(
                matched
                    .iter()
                    .filter(|r| !r.correlation_only && !GENERIC.contains(&r.id.as_str()))
                    .map(|r| r.id.clone()),
            );
        }
        let verdict = if fired.is_empty() {
            "MISSED"
        } else {
            "DETECTED"
        };
        if !fired.is_empty() {
            detected += 1;
        }
        let rules: Vec<&str> = fired.iter().map(String::as_str).collect();
        println!("{verdict:8} {:60} {}", t.id, rules.join(" "));
    }
    let total = techniques.len();
    println!("stratus techniques detected: {detected}/{total}");
    assert!(
        detected * 100 >= 90 * total,
        "only {detected} of {total} Stratus techniques detected"
    );
}
