//! `trailwatch-bench`: the tools behind `make bench` (see `scripts/bench.sh`).
//!
//! - `gen`: write the deterministic corpus;
//! - `run`: measure one stage of the hot path with N threads, print one JSON line;
//! - `event-names`: the `eventName` values the rule pack selects on (the Python baseline's list).

mod gen;
mod names;
mod run;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "trailwatch benchmark tools")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a corpus (skipped when DIR already holds one with the same parameters).
    Gen {
        /// Output folder.
        dir: PathBuf,
        /// Uncompressed size to generate, in MB.
        #[arg(long, default_value_t = 300)]
        mb: u64,
        /// Write one single file of that size instead of 1k–5k-record files.
        #[arg(long)]
        single: bool,
        /// Seed.
        #[arg(long, default_value_t = 0x7472_6169_6c77)]
        seed: u64,
        /// How assumed-role sessions are named (`unique`: every call a new session).
        #[arg(long, value_enum, default_value_t = gen::Sessions::Pooled)]
        sessions: gen::Sessions,
    },
    /// Measure one stage over every *.json.gz below DIR; prints one JSON line.
    Run {
        /// Stage.
        #[arg(long, value_enum)]
        mode: run::Mode,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Corpus folder.
        dir: PathBuf,
    },
    /// Print the rule pack's selected eventName values, one per line.
    EventNames {
        /// Rules folder.
        #[arg(default_value = "rules")]
        dir: PathBuf,
    },
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Gen {
            dir,
            mb,
            single,
            seed,
            sessions,
        } => {
            let t = gen::generate(&dir, seed, sessions, mb * 1_000_000, single, cores())?;
            println!("{}", serde_json::to_string(&t)?);
        }
        Cmd::Run { mode, threads, dir } => {
            let m = run::run(mode, &dir, threads.unwrap_or_else(cores))?;
            println!("{}", serde_json::to_string(&m)?);
        }
        Cmd::EventNames { dir } => {
            for n in names::event_names(&dir)? {
                println!("{n}");
            }
        }
    }
    Ok(())
}
