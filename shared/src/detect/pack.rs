//! The rule pack's test harness: every rule ships positive and negative example records in
//! `rules/tests/<rule>.yml`, and [`run_tests`] checks them through the real
//! [`RuleSet::matches`] path (index included).
//!
//! Test file format:
//! ```yaml
//! rule: tw-cloudtrail-stop-logging      # the rule's id (`name`)
//! cases:
//!   - name: StopLogging on a trail
//!     match: true
//!     event: { eventSource: cloudtrail.amazonaws.com, eventName: StopLogging }
//!   - name: StartLogging is fine
//!     match: false
//!     event: { eventSource: cloudtrail.amazonaws.com, eventName: StartLogging }
//! ```
//! This module reads test files and runs them; it never changes rules.

use super::sigma::yaml::{self, Kind, Node, Scalar};
use super::sigma::{bundled, read_yaml_files};
use super::{LoadError, RuleSet};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::path::Path;

/// One example record and whether the rule must match it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    /// Case name, shown in reports.
    pub name: String,
    /// `match:` — whether the rule must fire.
    pub expect_match: bool,
    /// The CloudTrail record.
    pub event: Value,
    /// Line of the case in its file.
    pub line: usize,
}

/// The cases of one rule (one test file).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleTests {
    /// The tested rule's id.
    pub rule: String,
    /// The test file.
    pub file: String,
    /// Cases in file order.
    pub cases: Vec<TestCase>,
}

/// One failed case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFailure {
    /// Case name.
    pub name: String,
    /// `file:line` of the case.
    pub location: String,
    /// Whether the rule was expected to match.
    pub expected: bool,
}

/// Outcome for one rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleReport {
    /// Rule id.
    pub rule: String,
    /// Names of passed cases.
    pub passed: Vec<String>,
    /// Failed cases.
    pub failed: Vec<CaseFailure>,
    /// Problems with the tests themselves: no positive case, no negative case, no tests,
    /// tests for an unknown rule.
    pub problems: Vec<String>,
}

impl RuleReport {
    /// Whether every case passed and the rule has both kinds of case.
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty() && self.problems.is_empty()
    }
}

/// Outcome for a whole pack.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestReport {
    /// One entry per rule (and per test file naming an unknown rule), sorted by rule id.
    pub rules: Vec<RuleReport>,
}

impl TestReport {
    /// Whether every rule passed.
    pub fn is_ok(&self) -> bool {
        self.rules.iter().all(RuleReport::is_ok)
    }

    /// Number of passed cases.
    pub fn passed_cases(&self) -> usize {
        self.rules.iter().map(|r| r.passed.len()).sum()
    }

    /// Number of failed cases.
    pub fn failed_cases(&self) -> usize {
        self.rules.iter().map(|r| r.failed.len()).sum()
    }

    /// The rules that did not pass.
    pub fn failures(&self) -> impl Iterator<Item = &RuleReport> {
        self.rules.iter().filter(|r| !r.is_ok())
    }
}

impl std::fmt::Display for TestReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ok = self.rules.iter().filter(|r| r.is_ok()).count();
        writeln!(
            f,
            "{ok} of {} rules pass; {} cases passed, {} failed",
            self.rules.len(),
            self.passed_cases(),
            self.failed_cases()
        )?;
        for r in self.failures() {
            for p in &r.problems {
                writeln!(f, "  {}: {p}", r.rule)?;
            }
            for c in &r.failed {
                let want = if c.expected {
                    "should match but did not"
                } else {
                    "matched but should not"
                };
                writeln!(f, "  {}: case {:?} ({}) {want}", r.rule, c.name, c.location)?;
            }
        }
        Ok(())
    }
}

/// Parse one test file.
///
/// # Errors
/// Invalid YAML or a file that does not follow the format, with file and line.
pub fn parse_tests(file: &str, text: &str) -> Result<RuleTests, LoadError> {
    let err = |line: Option<usize>, message: String| LoadError {
        file: file.to_owned(),
        line,
        message,
    };
    let docs = yaml::parse_documents(text).map_err(|e| err(e.line, e.message))?;
    let [doc] = docs.as_slice() else {
        return Err(err(
            None,
            format!("expected one YAML document, found {}", docs.len()),
        ));
    };
    let rule = doc
        .get("rule")
        .and_then(Node::as_text)
        .ok_or_else(|| {
            err(
                Some(doc.line),
                "test file has no `rule:` naming the rule id".into(),
            )
        })?
        .to_owned();
    let cases_node = doc
        .get("cases")
        .ok_or_else(|| err(Some(doc.line), "test file has no `cases:`".into()))?;
    let Kind::Seq(items) = &cases_node.kind else {
        return Err(err(Some(cases_node.line), "`cases` must be a list".into()));
    };
    let mut cases = Vec::with_capacity(items.len());
    for item in items {
        let name = item
            .get("name")
            .and_then(Node::as_text)
            .ok_or_else(|| err(Some(item.line), "case has no `name`".into()))?
            .to_owned();
        let expect_match = match item.get("match").map(|n| &n.kind) {
            Some(Kind::Scalar(Scalar::Bool(b))) => *b,
            _ => {
                return Err(err(
                    Some(item.line),
                    format!("case {name:?}: `match` must be true or false"),
                ))
            }
        };
        let event_node = item
            .get("event")
            .ok_or_else(|| err(Some(item.line), format!("case {name:?} has no `event`")))?;
        if !matches!(event_node.kind, Kind::Map(_)) {
            return Err(err(
                Some(event_node.line),
                format!("case {name:?}: `event` must be a map"),
            ));
        }
        cases.push(TestCase {
            name,
            expect_match,
            event: to_json(event_node),
            line: item.line,
        });
    }
    Ok(RuleTests {
        rule,
        file: file.to_owned(),
        cases,
    })
}

/// YAML node to JSON value (numbers as JSON numbers when they fit, else strings).
fn to_json(node: &Node) -> Value {
    match &node.kind {
        Kind::Scalar(Scalar::Null) => Value::Null,
        Kind::Scalar(Scalar::Bool(b)) => Value::Bool(*b),
        Kind::Scalar(Scalar::Number(n)) => n
            .parse::<i64>()
            .ok()
            .map(Number::from)
            .or_else(|| n.parse::<f64>().ok().and_then(Number::from_f64))
            .map_or_else(|| Value::String(n.clone()), Value::Number),
        Kind::Scalar(Scalar::Str(s)) => Value::String(s.clone()),
        Kind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Kind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, _, v)| (k.clone(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

/// Load every test file below `dir` (`*.yml`/`*.yaml`).
///
/// # Errors
/// Unreadable or malformed files.
pub fn load_tests(dir: &Path) -> Result<Vec<RuleTests>, Vec<LoadError>> {
    let files = read_yaml_files(dir, false)?;
    collect(files.iter().map(|(f, t)| (f.as_str(), t.as_str())))
}

/// The test files of the bundled pack (`rules/tests/`), embedded at build time.
///
/// # Errors
/// Malformed test files.
pub fn bundled_tests() -> Result<Vec<RuleTests>, Vec<LoadError>> {
    collect(bundled::TESTS.iter().copied())
}

fn collect<'a>(
    files: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<RuleTests>, Vec<LoadError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (file, text) in files {
        match parse_tests(file, text) {
            Ok(t) => out.push(t),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Run `tests` against `set`. Every rule of the set gets an entry: a rule without tests, or
/// without at least one positive and one negative case, fails.
pub fn run_tests(set: &RuleSet, tests: &[RuleTests]) -> TestReport {
    let mut by_rule: HashMap<&str, Vec<&RuleTests>> = HashMap::new();
    for t in tests {
        by_rule.entry(t.rule.as_str()).or_default().push(t);
    }
    let mut reports = Vec::new();
    let mut matched = Vec::new();
    for rule in set.rules() {
        let mut report = RuleReport {
            rule: rule.id.clone(),
            ..RuleReport::default()
        };
        let files = by_rule.remove(rule.id.as_str()).unwrap_or_default();
        let cases: Vec<(&RuleTests, &TestCase)> = files
            .iter()
            .flat_map(|f| f.cases.iter().map(move |c| (*f, c)))
            .collect();
        if cases.is_empty() {
            report.problems.push("no test cases".into());
        } else {
            if !cases.iter().any(|(_, c)| c.expect_match) {
                report
                    .problems
                    .push("no positive case (`match: true`)".into());
            }
            if cases.iter().any(|(_, c)| c.expect_match)
                && !cases.iter().any(|(_, c)| !c.expect_match)
            {
                report
                    .problems
                    .push("no negative case (`match: false`)".into());
            }
        }
        for (file, case) in cases {
            matched.clear();
            set.matches(&case.event, &mut matched);
            let fired = matched.iter().any(|r| r.id == rule.id);
            if fired == case.expect_match {
                report.passed.push(case.name.clone());
            } else {
                report.failed.push(CaseFailure {
                    name: case.name.clone(),
                    location: format!("{}:{}", file.file, case.line),
                    expected: case.expect_match,
                });
            }
        }
        reports.push(report);
    }
    for (rule, files) in by_rule {
        let where_ = files
            .iter()
            .map(|f| f.file.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        reports.push(RuleReport {
            rule: rule.to_owned(),
            problems: vec![format!("tests in {where_} name a rule that is not loaded")],
            ..RuleReport::default()
        });
    }
    reports.sort_by(|a, b| a.rule.cmp(&b.rule));
    TestReport { rules: reports }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str =
        "title: Stop logging\nname: tw-stop\nlogsource: {product: aws, service: cloudtrail}\n\
        detection:\n  sel:\n    eventName: StopLogging\n  condition: sel\nlevel: high\n";

    const TESTS: &str = "rule: tw-stop\ncases:\n  - name: stop\n    match: true\n    event: {eventName: StopLogging, n: 22, f: 1.5, b: true, z: null}\n  - name: start\n    match: false\n    event:\n      eventName: StartLogging\n";

    #[test]
    fn parses_cases_with_typed_events() {
        let t = parse_tests("t.yml", TESTS).unwrap();
        assert_eq!(t.rule, "tw-stop");
        assert_eq!(t.cases.len(), 2);
        assert_eq!(
            t.cases[0].event,
            serde_json::json!({"eventName": "StopLogging", "n": 22, "f": 1.5, "b": true, "z": null})
        );
        assert!(!t.cases[1].expect_match);
        assert_eq!(t.cases[1].line, 6);
    }

    #[test]
    fn passing_pack() {
        let set = RuleSet::from_sources([("r.yml", RULE)]).unwrap();
        let report = run_tests(&set, &[parse_tests("t.yml", TESTS).unwrap()]);
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.passed_cases(), 2);
    }

    #[test]
    fn failures_and_missing_cases_are_reported() {
        let set = RuleSet::from_sources([("r.yml", RULE)]).unwrap();
        // a wrong expectation fails with its location
        let wrong = TESTS.replace("match: false", "match: true");
        let report = run_tests(&set, &[parse_tests("t.yml", &wrong).unwrap()]);
        assert!(!report.is_ok());
        assert_eq!(report.failed_cases(), 1);
        let r = &report.rules[0];
        assert_eq!(r.failed[0].location, "t.yml:6");
        assert!(r.problems.iter().any(|p| p.contains("no negative")));
        // no tests at all
        let report = run_tests(&set, &[]);
        assert_eq!(report.rules[0].problems, vec!["no test cases".to_string()]);
        // tests for a rule that does not exist
        let other = TESTS.replace("rule: tw-stop", "rule: tw-nope");
        let report = run_tests(&set, &[parse_tests("t.yml", &other).unwrap()]);
        assert!(report
            .rules
            .iter()
            .any(|r| r.rule == "tw-nope" && !r.is_ok()));
    }

    #[test]
    fn malformed_test_files_name_the_line() {
        let e = parse_tests(
            "t.yml",
            "rule: x\ncases:\n  - name: a\n    match: maybe\n    event: {}\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(parse_tests("t.yml", "cases: []\n").is_err());
    }
}
