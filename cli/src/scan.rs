//! `trailwatch scan`: files, folders and S3 prefixes through the same pipeline as the
//! Lambda functions, in parallel across files.

use crate::inputs::{self, Input};
use crate::output;
use anyhow::Context as _;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use time::Date;
use trailwatch::correlate::{Batch, Correlator};
use trailwatch::findings::{Finding, Severity};
use trailwatch::ingest::{self, ReaderOptions};
use trailwatch::model::{KeyKind, S3Key};
use trailwatch::pipeline::{self, ScanReport};
use trailwatch::ports::memory_state::MemCorrelationState;
use trailwatch::suppress::{self, AllowList};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One finding per line as JSON.
    Jsonl,
    /// An aligned table, most severe first.
    Table,
}

/// Arguments of `trailwatch scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files, folders (recursive) or s3://bucket/prefix to scan.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Only report findings at or above this severity.
    #[arg(long, value_name = "SEVERITY", default_value = "info")]
    pub min_severity: Severity,
    /// Load rules from this directory instead of the bundled pack.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// S3 only: skip log files dated before this day (YYYY-MM-DD, from the key).
    #[arg(long, value_name = "DATE", value_parser = inputs::parse_date)]
    pub since: Option<Date>,
    /// S3 only: skip log files dated after this day (YYYY-MM-DD, from the key).
    #[arg(long, value_name = "DATE", value_parser = inputs::parse_date)]
    pub until: Option<Date>,
    /// Allow-list file (YAML or JSON): matching findings are marked suppressed (tag
    /// `trailwatch.suppressed`) and counted apart in the summary.
    #[arg(long, value_name = "FILE")]
    pub allowlist: Option<PathBuf>,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Default)]
struct Totals {
    files: AtomicU64,
    files_with_errors: AtomicU64,
    records: AtomicU64,
    rejected: AtomicU64,
    bytes: AtomicU64,
    by_severity: [AtomicU64; 5],
    suppressed: AtomicU64,
}

/// Correlation groups a worker may hold before they are written to the state (~0.5 KB
/// each); between files it writes at half this.
const FLUSH_GROUPS: usize = 4096;

/// Most files whose correlation observations a worker holds before writing them.
const FILES_PER_FLUSH: usize = 8;

/// Correlation across every input of one scan: the same state a Lambda keeps in
/// DynamoDB, here in memory, so a burst spread over many files is found once.
struct Correlation {
    correlator: Correlator,
    state: MemCorrelationState,
}

impl Correlation {
    /// Write `batch` to the state (in memory: a flush cannot fail transiently, and it runs
    /// on the calling worker).
    fn flush(&self, rt: &tokio::runtime::Handle, batch: Batch) -> anyhow::Result<Vec<Finding>> {
        rt.block_on(self.correlator.flush(&self.state, batch))
            .context("correlating")
    }
}

/// How often (in finished files) the scan drops expired correlation state.
const EVICT_EVERY: usize = 32;

/// The inputs, handed to the workers one at a time in delivery order when every input is a
/// CloudTrail log file with its delivery time in the name, else in the order given.
struct Queue {
    list: Vec<Input>,
    /// Delivery time of each input (epoch seconds), when every input has one.
    times: Option<Vec<i64>>,
    progress: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    next: usize,
    /// (delivery time, index) of the files being scanned.
    running: std::collections::BTreeSet<(i64, usize)>,
    finished: usize,
}

impl Queue {
    /// Sort `list` by delivery time when every input has one.
    fn new(list: Vec<Input>) -> Queue {
        let delivered = |label: &str| {
            let key = S3Key::parse(label);
            matches!(key.kind, KeyKind::Log | KeyKind::Insight)
                .then_some(key.file_time)
                .flatten()
                .map(time::OffsetDateTime::unix_timestamp)
        };
        let mut keyed: Vec<(Option<i64>, String, Input)> = list
            .into_iter()
            .map(|input| {
                let label = input.label();
                (delivered(&label), label, input)
            })
            .collect();
        let ordered = keyed.iter().all(|(time, ..)| time.is_some());
        if ordered {
            keyed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        }
        let (times, list): (Vec<Option<i64>>, Vec<Input>) = keyed
            .into_iter()
            .map(|(time, _, input)| (time, input))
            .unzip();
        Queue {
            list,
            times: ordered.then(|| times.into_iter().flatten().collect()),
            progress: Mutex::new(QueueState::default()),
        }
    }

    /// The next input to scan.
    fn take(&self) -> Option<(usize, &Input)> {
        let mut q = self.progress.lock().ok()?;
        let i = q.next;
        let input = self.list.get(i)?;
        q.next += 1;
        if let Some(t) = self.times.as_ref().and_then(|t| t.get(i)) {
            q.running.insert((*t, i));
        }
        Some((i, input))
    }

    /// Input `i` is done. Every [`EVICT_EVERY`] files, when the inputs are in delivery
    /// order: the time before which state can be dropped, the delivery time of the earliest
    /// file not finished. Its records are at most [`trailwatch::correlate::STATE_GRACE_SECS`]
    /// older than its delivery, and a state item expires (in log time) only after the last
    /// event that late could touch it.
    fn finish(&self, i: usize) -> Option<i64> {
        let times = self.times.as_ref()?;
        let mut q = self.progress.lock().ok()?;
        if let Some(t) = times.get(i) {
            q.running.remove(&(*t, i));
        }
        q.finished += 1;
        if q.finished % EVICT_EVERY != 0 {
            return None;
        }
        let oldest_running = q.running.first().map(|(t, _)| *t);
        oldest_running.or_else(|| times.get(q.next).copied())
    }
}

/// Run `trailwatch scan`.
///
/// # Errors
/// Usage errors (rules that do not load, paths that do not exist, S3 listing failures).
pub fn run(args: &ScanArgs, rt: &tokio::runtime::Handle) -> anyhow::Result<ExitCode> {
    let rules = crate::rules::load_rules(args.rules.as_ref())?;
    let allowlist = match &args.allowlist {
        Some(p) => {
            let list = AllowList::load(p).with_context(|| format!("allow-list {}", p.display()))?;
            for e in list.expired(time::OffsetDateTime::now_utc()) {
                eprintln!(
                    "warning: allow-list entry {} expired on {}",
                    e.id, e.expires
                );
            }
            Some(list)
        }
        None => None,
    };
    let correlation = Correlation {
        correlator: Correlator::new(&rules).expiring_in_log_time(),
        state: MemCorrelationState::default(),
    };
    for w in correlation.correlator.warnings() {
        eprintln!("warning: {w}");
    }
    let mut list = Vec::new();
    let mut local = Vec::new();
    let mut s3 = Vec::new();
    for p in &args.paths {
        match inputs::parse_s3_url(p) {
            Some(loc) => s3.push(loc?),
            None => local.push(PathBuf::from(p)),
        }
    }
    inputs::collect_local(&local, &mut list)?;
    let s3_source = if s3.is_empty() {
        None
    } else {
        let src = rt.block_on(crate::s3::S3Inputs::load());
        for loc in &s3 {
            rt.block_on(src.list(loc, args.since, args.until, &mut list))?;
        }
        Some(src)
    };

    // CloudTrail files in delivery order, so correlation state no unfinished file can reach
    // can be dropped as the scan goes (a month does not fit in memory otherwise)
    let queue = Queue::new(list);
    if queue.times.is_none() && !queue.list.is_empty() {
        tracing::info!(
            "some inputs carry no CloudTrail delivery time in their name: correlation state is kept for the whole scan"
        );
    }

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()
        .context("starting worker threads")?;
    let progress = (!args.no_progress && std::io::stderr().is_terminal() && queue.list.len() > 1)
        .then(|| {
            let bar = ProgressBar::new(queue.list.len() as u64);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {pos}/{len} files  {msg}  [{elapsed_precise}, eta {eta}]",
            ) {
                bar.set_style(style);
            }
            bar
        });
    let totals = Totals::default();
    let stdout = Mutex::new(std::io::BufWriter::new(std::io::stdout()));
    let table: Mutex<Vec<Finding>> = Mutex::new(Vec::new());
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // finding ids are deterministic per (rule, eventID) and per correlation episode: a record
    // in two copies of a file, or a burst re-reported as it grows, is one finding
    let seen: Mutex<std::collections::HashSet<String, foldhash::fast::RandomState>> =
        Mutex::new(Default::default());
    let started = Instant::now();
    let opts = ReaderOptions::default();

    let emit = |mut f: Finding| {
        if f.severity < args.min_severity {
            return;
        }
        if let Ok(mut seen) = seen.lock() {
            if !seen.insert(f.id.clone()) {
                return;
            }
        }
        if let Some(list) = &allowlist {
            // the CLI has the finding, not the record: match the user agent-free fields
            if suppress::mark(list, &mut f, None, time::OffsetDateTime::now_utc()).is_some() {
                totals.suppressed.fetch_add(1, Ordering::Relaxed);
            }
        }
        totals.by_severity[f.severity as usize].fetch_add(1, Ordering::Relaxed);
        match args.format {
            Format::Jsonl => {
                if let Ok(mut out) = stdout.lock() {
                    // a closed pipe (`| head`) is not an error worth reporting per line
                    let _ = output::write_jsonl(&mut *out, &f);
                }
            }
            Format::Table => {
                if let Ok(mut t) = table.lock() {
                    t.push(f);
                }
            }
        }
    };
    // scan one input into the worker's batch; returns its label
    let scan_input = |input: &Input, batch: &mut Batch| -> String {
        let label = input.label();
        let result = scan_one(
            input,
            &label,
            &rules,
            &correlation,
            batch,
            opts,
            s3_source.as_ref(),
            rt,
            &emit,
        );
        totals.files.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(report) => {
                totals
                    .records
                    .fetch_add(report.records_read, Ordering::Relaxed);
                totals
                    .rejected
                    .fetch_add(report.records_rejected, Ordering::Relaxed);
                totals.bytes.fetch_add(report.bytes, Ordering::Relaxed);
                if report.has_errors() {
                    totals.files_with_errors.fetch_add(1, Ordering::Relaxed);
                    let mut why = Vec::new();
                    if report.records_rejected > 0 {
                        why.push(format!(
                            "{} record(s) rejected, first: {}",
                            report.records_rejected,
                            report.rejections.first().map(String::as_str).unwrap_or("?")
                        ));
                    }
                    if let Some(e) = &report.stream_error {
                        why.push(e.to_string());
                    }
                    if let Ok(mut f) = failures.lock() {
                        f.push(format!("{label}: {}", why.join("; ")));
                    }
                }
            }
            Err(e) => {
                totals.files_with_errors.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut f) = failures.lock() {
                    f.push(format!("{label}: {e:#}"));
                }
            }
        }
        if let Some(bar) = &progress {
            bar.inc(1);
            bar.set_message(format!(
                "{} records",
                totals.records.load(Ordering::Relaxed)
            ));
        }
        label
    };
    // write held observations to the state, then let the queue know their files are done
    let flush_held = |batch: Batch, held: &mut Vec<(usize, String)>| {
        if !batch.is_empty() {
            match correlation.flush(rt, batch) {
                Ok(found) => found.into_iter().for_each(&emit),
                Err(e) => {
                    if let Ok(mut f) = failures.lock() {
                        for (_, label) in held.iter() {
                            totals.files_with_errors.fetch_add(1, Ordering::Relaxed);
                            f.push(format!("{label}: {e:#}"));
                        }
                    }
                }
            }
        }
        for (i, _) in held.drain(..) {
            if let Some(before) = queue.finish(i) {
                let evicted = correlation.state.evict_expired(before);
                if evicted > 0 {
                    tracing::debug!(evicted, before, "dropped expired correlation state");
                }
            }
        }
    };
    pool.scope(|s| {
        for _ in 0..pool.current_num_threads() {
            s.spawn(|_| {
                // a worker's observations wait for several files: a principal active in
                // consecutive files is then one state update, not one per file
                let mut batch = Batch::default();
                let mut held = Vec::new();
                while let Some((i, input)) = queue.take() {
                    let label = scan_input(input, &mut batch);
                    held.push((i, label));
                    if batch.len() >= FLUSH_GROUPS / 2 || held.len() >= FILES_PER_FLUSH {
                        flush_held(std::mem::take(&mut batch), &mut held);
                    }
                }
                flush_held(batch, &mut held);
            });
        }
    });
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    tracing::debug!(
        items = correlation.state.len(),
        updates = correlation.state.updates(),
        "correlation state at the end of the scan"
    );
    // after a long scan the state holds millions of small allocations and the process is
    // about to exit: leave them to the OS rather than free them one by one (2 % of a scan)
    std::mem::forget(correlation);

    let mut out = stdout.into_inner().unwrap_or_else(|e| e.into_inner());
    if args.format == Format::Table {
        let mut findings = table.into_inner().unwrap_or_else(|e| e.into_inner());
        if findings.is_empty() {
            let _ = writeln!(out, "no findings");
        } else {
            let _ = output::write_table(&mut out, &mut findings);
        }
    }
    let _ = out.flush();

    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut failures = failures;
    failures.sort();
    for f in &failures {
        eprintln!("error: {f}");
    }
    let counts: [u64; 5] = std::array::from_fn(|i| totals.by_severity[i].load(Ordering::Relaxed));
    let secs = started.elapsed().as_secs_f64();
    let records = totals.records.load(Ordering::Relaxed);
    eprintln!(
        "scanned {} file(s), {} record(s) ({} rejected), {:.1} MB in {:.2}s; {} finding(s): {}{}; {} file(s) with errors",
        totals.files.load(Ordering::Relaxed),
        records,
        totals.rejected.load(Ordering::Relaxed),
        totals.bytes.load(Ordering::Relaxed) as f64 / 1e6,
        secs,
        counts.iter().sum::<u64>(),
        output::severity_counts(&counts),
        match totals.suppressed.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!(" ({n} suppressed by the allow-list)"),
        },
        totals.files_with_errors.load(Ordering::Relaxed),
    );
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[allow(clippy::too_many_arguments)]
fn scan_one(
    input: &Input,
    label: &str,
    rules: &trailwatch::detect::RuleSet,
    correlation: &Correlation,
    batch: &mut Batch,
    opts: ReaderOptions,
    s3: Option<&crate::s3::S3Inputs>,
    rt: &tokio::runtime::Handle,
    emit: &impl Fn(Finding),
) -> anyhow::Result<ScanReport> {
    let reader: Box<dyn std::io::Read + Send> = match input {
        Input::File(p) => Box::new(std::fs::File::open(p).with_context(|| "cannot open")?),
        Input::S3 { bucket, key, .. } => {
            let src = s3.context("no S3 client")?;
            src.open(rt, bucket, key)?
        }
    };
    let records = ingest::open(reader, opts).context("cannot read")?;
    let mut found = Vec::new();
    let mut failed = None;
    let report = pipeline::scan_observed(records, rules, label, emit, |record, matched| {
        correlation
            .correlator
            .observe(batch, record, matched, label);
        // a file of many principals would hold a group per principal and correlation until
        // its end: write them to the state as the file goes (updates are idempotent and
        // order-independent, as across the files of one scan)
        if batch.len() >= FLUSH_GROUPS && failed.is_none() {
            match correlation.flush(rt, std::mem::take(batch)) {
                Ok(f) => found.extend(f),
                Err(e) => failed = Some(e),
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    found.into_iter().for_each(emit);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(key: &str) -> Input {
        Input::S3 {
            bucket: "trail".into(),
            key: key.into(),
            size: 1,
        }
    }

    const DAY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/20";

    #[test]
    fn cloudtrail_files_are_queued_in_delivery_order() {
        let late = s3(&format!(
            "{DAY}/111122223333_CloudTrail_us-east-1_20261120T1210Z_a.json.gz"
        ));
        let early = s3(&format!(
            "{DAY}/111122223333_CloudTrail_us-east-1_20261120T1205Z_b.json.gz"
        ));
        let q = Queue::new(vec![late.clone(), early.clone()]);
        assert_eq!(q.list, vec![early, late]);
        assert_eq!(q.times, Some(vec![1_795_176_300, 1_795_176_600]));
    }

    #[test]
    fn a_file_without_a_delivery_time_keeps_the_given_order() {
        let log = s3(&format!(
            "{DAY}/111122223333_CloudTrail_us-east-1_20261120T1210Z_a.json.gz"
        ));
        let other = Input::File(PathBuf::from("lookup-events.json"));
        let q = Queue::new(vec![log.clone(), other.clone()]);
        assert_eq!(q.list, vec![log, other]);
        assert_eq!(q.times, None);
    }
}
