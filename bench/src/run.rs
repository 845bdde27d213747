//! Throughput of each stage of the hot path over a corpus, with N threads.
//!
//! Modes, cheapest first: `gunzip` (inflate only), `floor` (inflate + serde_json validating
//! every byte while materialising nothing: the least a correct reader can do), `ingest`
//! (trailwatch's streaming reader: records out, no rules), `pipeline` (reader + the full
//! bundled rule pack, as `trailwatch scan` runs it).

use anyhow::Context as _;
use clap::ValueEnum;
use flate2::bufread::MultiGzDecoder;
use serde::Serialize;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;
use trailwatch::detect::RuleSet;
use trailwatch::ingest::{self, Item, ReaderOptions};

/// A stage of the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Inflate only.
    Gunzip,
    /// Inflate + serde_json validation of the whole document.
    Floor,
    /// trailwatch's record reader, no rules.
    Ingest,
    /// Reader + bundled rule pack + findings.
    Pipeline,
}

/// One measurement.
#[derive(Debug, Serialize)]
pub struct Measurement {
    /// Stage measured.
    pub mode: Mode,
    /// Worker threads.
    pub threads: usize,
    /// Files read.
    pub files: u64,
    /// Records (counted by the reader in `ingest`/`pipeline`, from the manifest otherwise).
    pub records: u64,
    /// Uncompressed bytes.
    pub bytes: u64,
    /// Findings (pipeline only).
    pub findings: u64,
    /// Wall-clock seconds (rule loading excluded).
    pub secs: f64,
}

fn list(dir: &Path, out: &mut Vec<(u64, PathBuf)>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if path.is_dir() {
            list(&path, out)?;
        } else if path.to_string_lossy().ends_with(".json.gz") {
            out.push((entry.metadata()?.len(), path));
        }
    }
    Ok(())
}

fn open(path: &Path) -> anyhow::Result<MultiGzDecoder<BufReader<std::fs::File>>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, f)))
}

struct Counters {
    records: AtomicU64,
    bytes: AtomicU64,
    findings: AtomicU64,
}

fn one_file(
    mode: Mode,
    path: &Path,
    rules: &RuleSet,
    scratch: &mut Vec<u8>,
    c: &Counters,
) -> anyhow::Result<()> {
    match mode {
        Mode::Gunzip => {
            let mut gz = open(path)?;
            scratch.resize(128 * 1024, 0);
            loop {
                let n = gz.read(scratch)?;
                if n == 0 {
                    break;
                }
                c.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        Mode::Floor => {
            scratch.clear();
            open(path)?.read_to_end(scratch)?;
            serde_json::from_slice::<serde::de::IgnoredAny>(scratch)
                .with_context(|| format!("parsing {}", path.display()))?;
            c.bytes.fetch_add(scratch.len() as u64, Ordering::Relaxed);
        }
        Mode::Ingest => {
            let f = std::fs::File::open(path)?;
            let mut reader = ingest::open(f, ReaderOptions::default())?;
            let mut n = 0u64;
            for item in reader.by_ref() {
                if let Item::Record(_) = item? {
                    n += 1;
                }
            }
            c.records.fetch_add(n, Ordering::Relaxed);
            c.bytes.fetch_add(reader.counts().bytes, Ordering::Relaxed);
        }
        Mode::Pipeline => {
            let f = std::fs::File::open(path)?;
            let reader = ingest::open(f, ReaderOptions::default())?;
            let mut found = 0u64;
            let report =
                trailwatch::pipeline::scan(reader, rules, &path.to_string_lossy(), |_| found += 1);
            if let Some(e) = report.stream_error {
                anyhow::bail!("{}: {e}", path.display());
            }
            c.records.fetch_add(report.records_read, Ordering::Relaxed);
            c.bytes.fetch_add(report.bytes, Ordering::Relaxed);
            c.findings.fetch_add(found, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Run `mode` over every `*.json.gz` below `dir` with `threads` workers.
///
/// # Errors
/// Unreadable or corrupt files, rules that do not load.
pub fn run(mode: Mode, dir: &Path, threads: usize) -> anyhow::Result<Measurement> {
    let mut files = Vec::new();
    list(dir, &mut files)?;
    // largest first, so one big file does not finish alone at the end
    files.sort_by(|a, b| b.cmp(a));
    let rules = if mode == Mode::Pipeline {
        RuleSet::bundled()
            .map_err(|e| anyhow::anyhow!("bundled rules do not load: {} error(s)", e.len()))?
    } else {
        RuleSet::default()
    };
    let c = Counters {
        records: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        findings: AtomicU64::new(0),
    };
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    let mut scratch = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((_, path)) = files.get(i) else {
                            return Ok(());
                        };
                        one_file(mode, path, &rules, &mut scratch, &c)?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("worker panicked")))
            })
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    for r in results {
        r?;
    }
    let mut records = c.records.load(Ordering::Relaxed);
    if matches!(mode, Mode::Gunzip | Mode::Floor) {
        records = manifest_records(dir)?;
    }
    Ok(Measurement {
        mode,
        threads,
        files: files.len() as u64,
        records,
        bytes: c.bytes.load(Ordering::Relaxed),
        findings: c.findings.load(Ordering::Relaxed),
        secs,
    })
}

fn manifest_records(dir: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(crate::gen::manifest_path(dir))
        .context("gunzip/floor modes need the generator's manifest")?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    v.pointer("/totals/records")
        .and_then(serde_json::Value::as_u64)
        .context("manifest.json has no totals.records")
}
