//! Panther's CloudTrail rule tests as a second opinion on the bundled rule pack.
//!
//! Reads `../shared/corpus/panther/panther_tests.jsonl` in place (skips with a notice when the
//! corpus is absent). Each line is one Panther unit test: a log and whether *one Panther rule*
//! should alert on it. Our pack is not a port of Panther's rules, so agreement is defined per
//! Panther rule ("family"):
//!
//! - the family of a Panther rule is the set of our rules that fire on at least one of its
//!   `expected: true` logs, leaving out the broad CIS 4.x change-monitoring rules (`cis.*` tags)
//!   unless nothing else fires: those flag every change of a kind on purpose, so their firing on
//!   a near miss is not a disagreement about the behaviour Panther's rule looks for;
//! - a positive test agrees when any of our rules fires on its log;
//! - a negative test agrees ("quiet") when no rule of its family fires. Panther negatives are
//!   usually near misses of that one rule (same API, benign parameters), and another of our rules
//!   may flag them for a different, legitimate reason (a CIS change-monitoring rule, root use):
//!   those are counted separately as "flagged by other rules", not as disagreement. When the family
//!   is empty (we detect none of the rule's positives) a negative is quiet only if nothing fires.
//!
//! Failed calls: Panther rules mostly ignore records with an `errorCode`; ours deliberately
//! still fire on them one level lower (`failed_attempts: lower`, a denied `StopLogging` is worth
//! knowing about). Such negatives are reported as "failed attempts flagged by design".
//!
//! Expected disagreement: Panther rules that need state or thresholds (brute force, impossible
//! travel, unused regions), `mocks`, Panther enrichment, or lower-case keys (`quirks`) cannot be
//! mirrored by single-event Sigma rules. No high threshold is asserted; the test checks that every
//! line was evaluated and that the counts add up to what was read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use trailwatch::detect::{FailedAttempts, RuleSet};

struct PantherTest {
    rule_id: String,
    name: String,
    expected: bool,
    fired: BTreeSet<String>,
    quirky: bool,
    failed_call: bool,
}

#[test]
fn panther_second_opinion() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus/panther/panther_tests.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("SKIP: Panther corpus not found at {}", path.display());
        return;
    };
    let set = RuleSet::bundled().unwrap_or_else(|e| panic!("bundled rules do not load: {e:?}"));

    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut tests = Vec::with_capacity(lines.len());
    let mut matched = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
        let field = |k: &str| v.get(k).unwrap_or_else(|| panic!("line {}: no {k}", n + 1));
        let log = field("log");
        matched.clear();
        set.matches(log, &mut matched);
        tests.push(PantherTest {
            rule_id: field("rule_id").as_str().unwrap_or_default().to_owned(),
            name: field("test_name").as_str().unwrap_or_default().to_owned(),
            expected: field("expected")
                .as_bool()
                .unwrap_or_else(|| panic!("line {}: expected is not a boolean", n + 1)),
            fired: matched
                .iter()
                .filter(|r| !r.correlation_only)
                .map(|r| r.id.clone())
                .collect(),
            failed_call: log.get("errorCode").is_some_and(|e| !e.is_null()),
            quirky: v.get("quirks").is_some_and(|q| !q.is_null())
                || v.get("mocks").is_some_and(|m| !m.is_null()),
        });
    }

    let is_cis = |id: &str| {
        set.rule(id)
            .is_some_and(|r| r.tags.iter().any(|t| t.starts_with("cis.")))
    };
    let mut all_fired: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for t in &tests {
        let fired = all_fired.entry(t.rule_id.as_str()).or_default();
        if t.expected {
            fired.extend(t.fired.iter().map(String::as_str));
        }
    }
    let families: BTreeMap<&str, BTreeSet<&str>> = all_fired
        .into_iter()
        .map(|(panther_rule, fired)| {
            let specific: BTreeSet<&str> = fired.iter().copied().filter(|id| !is_cis(id)).collect();
            (
                panther_rule,
                if specific.is_empty() { fired } else { specific },
            )
        })
        .collect();
    let lowers_failures = |id: &str| {
        set.rule(id)
            .is_some_and(|r| r.failed_attempts == FailedAttempts::Lower)
    };

    let (mut pos, mut pos_hit, mut neg, mut neg_quiet, mut neg_other) = (0, 0, 0, 0, 0);
    let (mut quirky_disagree, mut failed_by_design) = (0, 0);
    for t in &tests {
        let family = &families[t.rule_id.as_str()];
        let agrees = if t.expected {
            pos += 1;
            let hit = !t.fired.is_empty();
            pos_hit += usize::from(hit);
            hit
        } else {
            neg += 1;
            let quiet = if family.is_empty() {
                t.fired.is_empty()
            } else {
                !t.fired.iter().any(|r| family.contains(r.as_str()))
            };
            neg_quiet += usize::from(quiet);
            neg_other += usize::from(quiet && !t.fired.is_empty());
            if !quiet && t.failed_call {
                // our rule fired on a failed call of the behaviour Panther's rule looks for
                let family_hit: Vec<&str> = t
                    .fired
                    .iter()
                    .map(String::as_str)
                    .filter(|r| family.is_empty() || family.contains(r))
                    .collect();
                if family_hit
                    .iter()
                    .all(|r| lowers_failures(r) || *r == "tw-cis-4-1-unauthorized-api-calls")
                {
                    failed_by_design += 1;
                }
            }
            quiet
        };
        if !agrees {
            quirky_disagree += usize::from(t.quirky);
            let fired: Vec<&str> = t.fired.iter().map(String::as_str).collect();
            println!(
                "DISAGREE {:50} expected={:5} {:45} fired=[{}]",
                t.rule_id,
                t.expected,
                t.name,
                fired.join(" ")
            );
        }
    }
    let covered = families.values().filter(|f| !f.is_empty()).count();
    println!(
        "panther rules with at least one positive detected: {covered}/{}",
        families.len()
    );
    println!(
        "panther agreement: true-positive tests detected {pos_hit}/{pos}; negative tests quiet {neg_quiet}/{neg} ({neg_other} of them flagged by other rules of ours); {failed_by_design} loud negatives are failed attempts flagged by design; {quirky_disagree} disagreements involve mocks or quirks"
    );

    assert_eq!(tests.len(), lines.len(), "every line is evaluated");
    assert_eq!(pos + neg, lines.len(), "every test is counted once");
    assert_eq!(
        pos,
        tests.iter().filter(|t| t.expected).count(),
        "positives counted as read"
    );
    assert!(
        pos_hit > 0 && neg_quiet > 0,
        "the pack agrees with Panther on nothing: is it empty?"
    );
}
