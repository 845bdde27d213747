//! The hot path shared by every entry point: a record stream → the rule pack → findings.
//!
//! The log-processor, the event-handler and `trailwatch scan` all call this module, so a
//! record yields the same findings (same ids, same severities) whichever way it arrived.
//! Synchronous and CPU-bound: async callers run it in `spawn_blocking`.

use crate::detect::{FailedAttempts, Rule, RuleSet};
use crate::findings::Finding;
use crate::ingest::{Item, RecordReader, StreamError};
use crate::model::Record;
use std::io::BufRead;

/// Build the finding for `rule` matching `record`.
pub fn finding_from(rule: &Rule, record: &Record, source: &str) -> Finding {
    let failed = record.error_code().is_some();
    let severity = if failed && rule.failed_attempts == FailedAttempts::Lower {
        // a failed attempt of a high-impact action still alerts, one level lower
        rule.level.lowered()
    } else {
        rule.level
    };
    Finding::about(
        record,
        source,
        rule.id.clone(),
        rule.title.clone(),
        severity,
        rule.tags.clone(),
    )
}

/// Evaluates records against a rule set, reusing its scratch space between records.
pub struct Evaluator<'r> {
    rules: &'r RuleSet,
    scratch: Vec<&'r Rule>,
}

impl<'r> Evaluator<'r> {
    /// An evaluator over `rules`.
    pub fn new(rules: &'r RuleSet) -> Self {
        Evaluator {
            rules,
            scratch: Vec::new(),
        }
    }

    /// Append the findings of `record` to `out`; returns how many were added.
    ///
    /// Rules that only feed correlations (Sigma `generate: false`, the default) match but
    /// produce no finding of their own; [`Evaluator::matched`] still lists them so the
    /// caller can hand them to [`crate::correlate::Correlator::observe`].
    pub fn evaluate(&mut self, record: &Record, source: &str, out: &mut Vec<Finding>) -> usize {
        self.scratch.clear();
        self.rules.matches(record, &mut self.scratch);
        let before = out.len();
        for rule in self.scratch.iter().filter(|r| !r.correlation_only) {
            out.push(finding_from(rule, record, source));
        }
        out.len() - before
    }

    /// Every rule the last evaluated record matched, building blocks included.
    pub fn matched(&self) -> &[&'r Rule] {
        &self.scratch
    }
}

/// What reading one object or file produced. `records_read = records_evaluated +
/// records_rejected` always holds (`skipped` elements carry no record).
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Record-shaped elements read.
    pub records_read: u64,
    /// Records evaluated against the rules.
    pub records_evaluated: u64,
    /// Records rejected (malformed, too large), each logged with its position.
    pub records_rejected: u64,
    /// Elements that carry no CloudTrail record (other EventBridge events).
    pub skipped: u64,
    /// Uncompressed bytes read.
    pub bytes: u64,
    /// Findings produced.
    pub findings: u64,
    /// The first rejections, for the error report (all are logged).
    pub rejections: Vec<String>,
    /// Why the stream stopped early, if it did (every record before was evaluated).
    pub stream_error: Option<StreamError>,
}

impl ScanReport {
    /// Whether anything in the input could not be read.
    pub fn has_errors(&self) -> bool {
        self.records_rejected > 0 || self.stream_error.is_some()
    }
}

/// How many rejection messages a report keeps (all are logged and counted).
const KEEP_REJECTIONS: usize = 20;

/// Read every record of `reader`, evaluate it, and hand each finding to `on_finding`.
pub fn scan<R: BufRead>(
    reader: RecordReader<R>,
    rules: &RuleSet,
    source: &str,
    on_finding: impl FnMut(Finding),
) -> ScanReport {
    scan_observed(reader, rules, source, on_finding, |_, _| {})
}

/// [`scan`], also handing every record and the rules it matched (building blocks
/// included) to `on_match`, e.g. [`crate::correlate::Correlator::observe`].
pub fn scan_observed<R: BufRead>(
    mut reader: RecordReader<R>,
    rules: &RuleSet,
    source: &str,
    mut on_finding: impl FnMut(Finding),
    mut on_match: impl FnMut(&Record, &[&Rule]),
) -> ScanReport {
    let mut report = ScanReport::default();
    let mut eval = Evaluator::new(rules);
    let mut batch = Vec::new();
    while let Some(item) = reader.next() {
        match item {
            Ok(Item::Record(record)) => {
                report.records_read += 1;
                report.records_evaluated += 1;
                batch.clear();
                report.findings += eval.evaluate(&record, source, &mut batch) as u64;
                if !eval.matched().is_empty() {
                    on_match(&record, eval.matched());
                }
                for f in batch.drain(..) {
                    on_finding(f);
                }
                reader.recycle(record);
            }
            Ok(Item::Rejected(r)) => {
                report.records_read += 1;
                report.records_rejected += 1;
                // the caller reports the object once (counts + first rejections); each
                // rejection stays visible at debug level
                tracing::debug!(source, index = r.at.index, offset = r.at.offset, error = %r.reason, "record rejected");
                if report.rejections.len() < KEEP_REJECTIONS {
                    report.rejections.push(format!("{}: {}", r.at, r.reason));
                }
            }
            Ok(Item::Skipped { at, what }) => {
                report.skipped += 1;
                tracing::debug!(source, index = at.index, what, "element skipped");
            }
            Err(e) => {
                tracing::debug!(source, error = %e, "stream ended early");
                report.stream_error = Some(e);
            }
        }
    }
    report.bytes = reader.counts().bytes;
    report
}
