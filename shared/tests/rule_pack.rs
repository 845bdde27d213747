//! The bundled rule pack (`rules/`, embedded at build time) loads, and every rule passes its
//! own examples in `rules/tests/`: at least one record it must match and one it must not.

use trailwatch::detect::pack::{bundled_tests, run_tests};
use trailwatch::detect::RuleSet;

/// The pack's agreed size (issue 3): the test fails until the pack is complete.
const MIN_RULES: usize = 80;

fn joined<E: ToString>(errors: &[E]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn bundled_pack_loads_and_passes_its_tests() {
    let set =
        RuleSet::bundled().unwrap_or_else(|e| panic!("bundled rules do not load:\n{}", joined(&e)));
    let tests = bundled_tests()
        .unwrap_or_else(|e| panic!("bundled rule tests do not load:\n{}", joined(&e)));
    for w in set.warnings() {
        println!("warning: {w}");
    }
    let report = run_tests(&set, &tests);
    let cases: usize = tests.iter().map(|t| t.cases.len()).sum();
    println!(
        "rule pack: {} rules, {} correlations, {} test files, {cases} cases",
        set.rules().len(),
        set.correlations().len(),
        tests.len()
    );
    print!("{report}");
    assert!(
        set.warnings().is_empty(),
        "the bundled pack must load without warnings"
    );
    assert!(report.is_ok(), "rule pack tests failed:\n{report}");
    for r in &report.rules {
        assert!(!r.passed.is_empty(), "{} has no passing case", r.rule);
    }
    assert!(
        set.rules().len() >= MIN_RULES,
        "the pack has {} rules, {MIN_RULES} expected",
        set.rules().len()
    );
}
