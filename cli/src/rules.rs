//! `trailwatch rules list|test`: the rule pack as users see it.

use anyhow::bail;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use trailwatch::detect::{pack, LoadError, RuleSet};

/// Arguments of `trailwatch rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// List the rules (id, level, title).
    List {
        /// Load rules from this directory instead of the bundled pack.
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
    /// Run the rules' test cases and print pass/fail per rule.
    Test {
        /// Load rules from this directory instead of the bundled pack.
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        /// Test cases directory (default: `<rules>/tests`, or the bundled tests).
        #[arg(long, value_name = "DIR")]
        tests: Option<PathBuf>,
        /// Print every case, not only failures.
        #[arg(long, short)]
        verbose: bool,
    },
}

/// Load the bundled pack or a rules directory, reporting every load error with file:line.
pub fn load_rules(dir: Option<&PathBuf>) -> anyhow::Result<RuleSet> {
    let loaded = match dir {
        Some(d) => RuleSet::from_dir(d),
        None => RuleSet::bundled(),
    };
    match loaded {
        Ok(set) => {
            for w in set.warnings() {
                eprintln!("warning: {w}");
            }
            Ok(set)
        }
        Err(errors) => bail!("{}", format_errors(&errors)),
    }
}

fn format_errors(errors: &[LoadError]) -> String {
    let mut s = format!("{} rule file error(s):", errors.len());
    for e in errors {
        s.push_str(&format!("\n  {e}"));
    }
    s
}

/// Run `trailwatch rules`.
pub fn run(args: &RulesArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        RulesCommand::List { rules } => {
            let set = load_rules(rules.as_ref())?;
            let width = set.rules().iter().map(|r| r.id.len()).max().unwrap_or(0);
            for r in set.rules() {
                println!("{:<width$}  {:<8}  {}", r.id, r.level.as_str(), r.title);
            }
            for c in set.correlations() {
                println!(
                    "{:<width$}  {:<8}  {} (correlation)",
                    c.id,
                    c.level.as_str(),
                    c.title
                );
            }
            eprintln!(
                "{} rules, {} correlation rules",
                set.rules().len(),
                set.correlations().len()
            );
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Test {
            rules,
            tests,
            verbose,
        } => {
            let set = load_rules(rules.as_ref())?;
            let tests_dir = tests
                .clone()
                .or_else(|| rules.as_ref().map(|r| r.join("tests")));
            let cases = match &tests_dir {
                Some(d) => pack::load_tests(d),
                None => pack::bundled_tests(),
            }
            .map_err(|e| anyhow::anyhow!("{}", format_errors(&e)))?;
            let report = pack::run_tests(&set, &cases);
            for r in &report.rules {
                let status = if r.is_ok() { "PASS" } else { "FAIL" };
                println!(
                    "{status}  {}  ({} passed, {} failed)",
                    r.rule,
                    r.passed.len(),
                    r.failed.len()
                );
                if *verbose {
                    for p in &r.passed {
                        println!("        ok    {p}");
                    }
                }
                for p in &r.problems {
                    println!("        {p}");
                }
                for c in &r.failed {
                    let want = if c.expected {
                        "should match but did not"
                    } else {
                        "matched but should not"
                    };
                    println!("        FAIL  {} ({}) {want}", c.name, c.location);
                }
            }
            let ok = report.rules.iter().filter(|r| r.is_ok()).count();
            println!(
                "{ok} of {} rules pass; {} cases passed, {} failed",
                report.rules.len(),
                report.passed_cases(),
                report.failed_cases()
            );
            Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
