//! The `trailwatch` command line: argument parsing and output formats only.
//!
//! Every decision (parsing, rules, findings, digest validation) is the library's, so the
//! CLI finds exactly what the Lambda functions find.

mod inputs;
mod output;
mod rules;
mod s3;
mod scan;
mod validate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// CloudTrail security monitoring on logs at rest: scan, validate digests, test rules.
#[derive(Debug, Parser)]
#[command(name = "trailwatch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "error", env = "TRAILWATCH_LOG")]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate CloudTrail records in files, folders or s3://bucket/prefix against the rules.
    Scan(scan::ScanArgs),
    /// Validate a trail's signed digest chain and the log files it vouches for.
    Validate(validate::ValidateArgs),
    /// List the rules or run their test cases.
    Rules(rules::RulesArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match &cli.command {
        Command::Scan(args) => scan::run(args, runtime.handle()),
        Command::Validate(args) => runtime.block_on(validate::run(args)),
        Command::Rules(args) => rules::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
