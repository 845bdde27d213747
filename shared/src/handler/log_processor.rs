//! The log-processor: an S3 notification (direct, through SNS, through SQS, or an
//! EventBridge "Object Created" event) → each new log object streamed through the rules →
//! findings stored and alerted.
//!
//! Retry decisions (see [`crate::handler`]): a missing object (deleted after the
//! notification) and damaged data (rejected records, truncated gzip) are logged, counted
//! and acknowledged, because a retry would read the same bytes; throttling, 5xx, timeouts
//! and objects not started before the deadline margin are retryable: `Err` for direct
//! invocations, the message ids in `batchItemFailures` for SQS. Retrying an object is safe:
//! delivery is idempotent ([`super::deliver`]).
//!
//! Objects are processed with bounded concurrency (`cfg.max_in_flight`); each is streamed
//! (S3 body → `SyncIoBridge` → gunzip → one record at a time) on the blocking pool, so
//! memory stays bounded by the largest record plus the findings' record copies. Logs carry
//! the request id, bucket, key and counts, never record contents.
//!
//! Correlations: every record that matched a rule (building blocks included) is observed
//! by the [`Correlator`] during the scan; the objects' batches are merged as their scans end
//! and flushed to the correlation state once per invocation (earlier only past
//! [`CORRELATION_FLUSH_SLOTS`] or the deadline margin), so a principal active in several
//! objects of an SQS batch costs one state update; then the correlation findings are
//! delivered. A retryable state failure retries the objects whose observations the flush
//! carried (updates are idempotent, finding ids are deterministic); a permanent one is
//! logged and counted. Before delivery every finding is
//! checked against the allow-list ([`suppress::mark`]): suppressed findings are stored,
//! never alerted. Delivery groups alerts across invocations in the same state
//! ([`super::deliver`], `ALERT_GROUP_WINDOW_SECS`).

use super::deliver::deliver;
use crate::correlate::{Batch, Correlator, FlushStats};
use crate::detect::RuleSet;
use crate::findings::Finding;
use crate::ingest::{self, Item, ReaderOptions, StreamError};
use crate::metrics::{self, Unit};
use crate::model::s3key::KeyDecodeError;
use crate::model::{decode_notification_key, S3Key};
use crate::pipeline::Evaluator;
use crate::ports::state::CorrelationState;
use crate::ports::{FindingStore, Notifier, ObjectSource, PortError, StoredFinding};
use crate::suppress::{self, AllowList};
use crate::Config;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How deep envelopes may nest (SQS → SNS → S3 is 2).
const MAX_DEPTH: usize = 4;
/// Correlation slots an invocation holds before writing them (~0.5 KB each): objects' batches
/// are merged until then, so one flush serves the objects of an SQS batch.
pub const CORRELATION_FLUSH_SLOTS: usize = 8192;
/// Rejected records logged one by one per object; the rest are only counted.
const LOG_REJECTIONS: u64 = 20;

/// One object named by a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Bucket.
    pub bucket: String,
    /// Key, decoded.
    pub key: String,
}

/// One SQS message of a batch and what it names.
#[derive(Debug)]
pub struct SqsMessage {
    /// `messageId`, echoed in `batchItemFailures`.
    pub message_id: String,
    /// The objects, or why the body is not understood (permanent: not retried).
    pub objects: Result<Vec<ObjectRef>, ShapeError>,
}

/// What invoked the function.
#[derive(Debug)]
pub enum Trigger {
    /// S3, SNS or EventBridge: every object of the event.
    Direct(Vec<ObjectRef>),
    /// An SQS batch: per message.
    Sqs(Vec<SqsMessage>),
}

/// An event this function does not understand (permanent).
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    /// No known shape.
    #[error("unrecognised event shape: {0}")]
    Unknown(&'static str),
    /// A nested message is not JSON.
    #[error("{what} is not JSON: {source}")]
    Json {
        /// Which part.
        what: &'static str,
        /// Parser error.
        #[source]
        source: serde_json::Error,
    },
    /// A notification key that does not decode.
    #[error(transparent)]
    Key(#[from] KeyDecodeError),
    /// Envelopes nested too deep.
    #[error("envelopes nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn nested(text: &str, what: &'static str, depth: usize) -> Result<Vec<ObjectRef>, ShapeError> {
    let v: Value =
        serde_json::from_str(text).map_err(|source| ShapeError::Json { what, source })?;
    objects_in(&v, depth + 1)
}

/// The objects an S3 event, SNS event or envelope, or EventBridge event names.
///
/// # Errors
/// [`ShapeError`] when `v` has none of these shapes.
pub fn objects_in(v: &Value, depth: usize) -> Result<Vec<ObjectRef>, ShapeError> {
    if depth > MAX_DEPTH {
        return Err(ShapeError::TooDeep);
    }
    // S3 sends s3:TestEvent when a notification is configured: nothing to read
    if str_at(v, &["Event"]) == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    if let Some(records) = v.get("Records").and_then(Value::as_array) {
        let mut out = Vec::new();
        for r in records {
            if let Some(s3) = r.get("s3") {
                let event = str_at(r, &["eventName"]).unwrap_or_default();
                if !event.starts_with("ObjectCreated:") {
                    tracing::debug!(event, "S3 record is not an object creation; skipped");
                    continue;
                }
                let bucket = str_at(s3, &["bucket", "name"])
                    .ok_or(ShapeError::Unknown("S3 record without s3.bucket.name"))?;
                let raw = str_at(s3, &["object", "key"])
                    .ok_or(ShapeError::Unknown("S3 record without s3.object.key"))?;
                // notification keys are form-encoded: '+' is a space
                let key = decode_notification_key(raw)?;
                out.push(ObjectRef {
                    bucket: bucket.to_owned(),
                    key,
                });
            } else if let Some(msg) = str_at(r, &["Sns", "Message"]) {
                out.extend(nested(msg, "SNS message", depth)?);
            } else {
                return Err(ShapeError::Unknown("record without s3 or Sns"));
            }
        }
        return Ok(out);
    }
    if str_at(v, &["detail-type"]) == Some("Object Created")
        && str_at(v, &["source"]) == Some("aws.s3")
    {
        let bucket = str_at(v, &["detail", "bucket", "name"]).ok_or(ShapeError::Unknown(
            "Object Created without detail.bucket.name",
        ))?;
        // EventBridge keys are not URL-encoded
        let key = str_at(v, &["detail", "object", "key"]).ok_or(ShapeError::Unknown(
            "Object Created without detail.object.key",
        ))?;
        return Ok(vec![ObjectRef {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }]);
    }
    if str_at(v, &["Type"]) == Some("Notification") {
        if let Some(msg) = str_at(v, &["Message"]) {
            return nested(msg, "SNS envelope message", depth);
        }
    }
    Err(ShapeError::Unknown(
        "expected an S3, SNS, SQS or EventBridge Object Created event",
    ))
}

/// Classify the invocation payload.
///
/// # Errors
/// [`ShapeError`] when the payload is not a known event (an SQS batch never fails as a
/// whole: each message carries its own result).
pub fn parse_trigger(v: &Value) -> Result<Trigger, ShapeError> {
    let records = v.get("Records").and_then(Value::as_array);
    let is_sqs = records
        .and_then(|r| r.first())
        .is_some_and(|r| str_at(r, &["eventSource"]) == Some("aws:sqs"));
    if !is_sqs {
        return objects_in(v, 0).map(Trigger::Direct);
    }
    let messages = records
        .into_iter()
        .flatten()
        .map(|r| SqsMessage {
            message_id: str_at(r, &["messageId"]).unwrap_or_default().to_owned(),
            objects: match str_at(r, &["body"]) {
                Some(body) => nested(body, "SQS body", 0),
                None => Err(ShapeError::Unknown("SQS record without body")),
            },
        })
        .collect();
    Ok(Trigger::Sqs(messages))
}

/// The parts of a Lambda invocation the handler needs.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Request id, on every log line.
    pub request_id: String,
    /// When Lambda stops the invocation, if known.
    pub deadline: Option<SystemTime>,
}

/// Some objects must be retried (direct invocations only; SQS reports per message).
#[derive(Debug, thiserror::Error)]
#[error("{retry} of {total} objects must be retried; first: {first}")]
pub struct RetryError {
    /// Objects to retry.
    pub retry: usize,
    /// Objects in the event.
    pub total: usize,
    /// The first reason.
    pub first: String,
}

#[cfg(feature = "aws")]
impl From<RetryError> for lambda_runtime::Diagnostic {
    fn from(e: RetryError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "Retryable".into(),
            error_message: e.to_string(),
        }
    }
}

/// Counts for one object; `records_read = records_evaluated + records_rejected`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ObjectStats {
    /// Record-shaped elements read.
    pub records_read: u64,
    /// Records evaluated.
    pub records_evaluated: u64,
    /// Records rejected.
    pub records_rejected: u64,
    /// Findings produced.
    pub findings: u64,
    /// Whether the stream ended early on damaged data.
    pub stream_error: bool,
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Read to the end (or to damage, which is logged and counted) and delivered.
    Done(ObjectStats),
    /// Not a log file, or gone: nothing to do.
    Skipped,
    /// Retryable failure.
    Retry(String),
    /// Not started: too close to the deadline (retryable).
    Unstarted,
}

impl Outcome {
    fn must_retry(&self) -> bool {
        matches!(self, Outcome::Retry(_) | Outcome::Unstarted)
    }
    fn reason(&self) -> String {
        match self {
            Outcome::Retry(r) => r.clone(),
            Outcome::Unstarted => "not started before the deadline".into(),
            _ => String::new(),
        }
    }
}

/// Marks I/O errors that came from the object body (network), as opposed to bad data
/// found by the decoder, so a cut download is retried and a cut file is not.
struct TrackedRead<R> {
    inner: R,
    failed: Arc<AtomicBool>,
}

impl<R: Read> Read for TrackedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| {
            self.failed.store(true, Ordering::Relaxed);
        })
    }
}

/// What scanning one object produced.
struct Scanned {
    stats: ObjectStats,
    /// Each finding with the JSON text of its record.
    found: Vec<(Finding, String)>,
    /// Damage that ended the stream.
    damage: Option<String>,
    /// What the records contribute to correlations (merged and flushed by `process_all`).
    batch: Batch,
}

/// Read every record of `input`, keeping findings with their record text.
fn scan_object(
    input: impl Read + Send + 'static,
    rules: &RuleSet,
    correlator: &Correlator,
    opts: ReaderOptions,
    bucket: &str,
    key: &str,
) -> Scanned {
    let source = format!("s3://{bucket}/{key}");
    let mut out = Scanned {
        stats: ObjectStats::default(),
        found: Vec::new(),
        damage: None,
        batch: Batch::default(),
    };
    let mut reader = match ingest::open(input, opts) {
        Ok(r) => r,
        Err(e) => {
            out.stats.stream_error = true;
            out.damage = Some(format!("reading the first bytes: {e}"));
            return out;
        }
    };
    let mut eval = Evaluator::new(rules);
    let mut batch = Vec::new();
    while let Some(item) = reader.next() {
        match item {
            Ok(Item::Record(record)) => {
                out.stats.records_read += 1;
                out.stats.records_evaluated += 1;
                batch.clear();
                eval.evaluate(&record, &source, &mut batch);
                if !eval.matched().is_empty() {
                    correlator.observe(&mut out.batch, &record, eval.matched(), &source);
                }
                for f in batch.drain(..) {
                    out.stats.findings += 1;
                    out.found.push((f, record.as_json().to_owned()));
                }
                reader.recycle(record);
            }
            Ok(Item::Rejected(r)) => {
                out.stats.records_read += 1;
                out.stats.records_rejected += 1;
                if out.stats.records_rejected <= LOG_REJECTIONS {
                    tracing::error!(bucket, key, index = r.at.index, offset = r.at.offset, error = %r.reason, "record rejected");
                }
            }
            Ok(Item::Skipped { at, what }) => {
                tracing::debug!(bucket, key, index = at.index, what, "element skipped");
            }
            Err(e) => {
                out.stats.stream_error = true;
                out.damage = Some(describe(&e));
            }
        }
    }
    out
}

fn describe(e: &StreamError) -> String {
    e.to_string()
}

/// The log-processor over any ports (AWS in Lambda, in-memory in tests).
pub struct LogProcessor<'a, O, S, N, C> {
    /// Configuration.
    pub cfg: &'a Config,
    /// The rules, shared with the blocking scan tasks.
    pub rules: Arc<RuleSet>,
    /// Where log objects are read.
    pub objects: &'a O,
    /// Where findings are stored.
    pub store: &'a S,
    /// Where alerts go.
    pub notifier: &'a N,
    /// The correlations of `rules`, prepared once and shared with the scan tasks.
    pub correlator: Arc<Correlator>,
    /// Where correlation state lives.
    pub state: &'a C,
    /// The allow-list, when `ALLOWLIST_FILE` is set.
    pub allowlist: Option<&'a AllowList>,
}

impl<O: ObjectSource, S: FindingStore, N: Notifier, C: CorrelationState>
    LogProcessor<'_, O, S, N, C>
{
    /// Handle one invocation payload.
    ///
    /// # Errors
    /// [`RetryError`] when objects of a direct (S3/SNS/EventBridge) invocation must be
    /// retried. SQS batches never fail as a whole: the answer lists the messages to retry.
    pub async fn handle(&self, payload: Value, inv: &Invocation) -> Result<Value, RetryError> {
        let request_id = inv.request_id.as_str();
        let trigger = match parse_trigger(&payload) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(request_id, error = %e, "event not understood; acknowledged without processing");
                metrics::emit(
                    &[("Function", "log-processor")],
                    &[("UnknownEvents", 1.0, Unit::Count)],
                );
                return Ok(json!({"objects": 0}));
            }
        };
        match trigger {
            Trigger::Direct(objects) => {
                let outcomes = self.process_all(&objects, inv).await;
                let retry: Vec<&Outcome> = outcomes.iter().filter(|o| o.must_retry()).collect();
                if let Some(first) = retry.first() {
                    return Err(RetryError {
                        retry: retry.len(),
                        total: objects.len(),
                        first: first.reason(),
                    });
                }
                Ok(summary(&outcomes))
            }
            Trigger::Sqs(messages) => {
                let mut jobs = Vec::new();
                let mut owner = Vec::new();
                for (i, m) in messages.iter().enumerate() {
                    match &m.objects {
                        Ok(objs) => {
                            for o in objs {
                                jobs.push(o.clone());
                                owner.push(i);
                            }
                        }
                        Err(e) => {
                            tracing::error!(request_id, message_id = %m.message_id, error = %e, "SQS message not understood; acknowledged");
                            metrics::emit(
                                &[("Function", "log-processor")],
                                &[("UnknownEvents", 1.0, Unit::Count)],
                            );
                        }
                    }
                }
                let outcomes = self.process_all(&jobs, inv).await;
                let mut failed: Vec<&str> = outcomes
                    .iter()
                    .zip(&owner)
                    .filter(|(o, _)| o.must_retry())
                    .filter_map(|(_, &i)| messages.get(i).map(|m| m.message_id.as_str()))
                    .collect();
                failed.dedup();
                let items: Vec<Value> = failed
                    .iter()
                    .map(|id| json!({"itemIdentifier": id}))
                    .collect();
                Ok(json!({"batchItemFailures": items}))
            }
        }
    }

    /// Process `objects`, at most `max_in_flight` at a time; outcomes in input order.
    ///
    /// What the objects contribute to correlations is merged as each scan ends and written
    /// once for the invocation ([`CORRELATION_FLUSH_SLOTS`] bounds what is held, and once the
    /// deadline margin is reached each object's are written as it finishes): a principal
    /// active in several objects of an SQS batch is one state update, not one per object.
    /// A retryable state failure retries every object whose observations it carried.
    pub async fn process_all(&self, objects: &[ObjectRef], inv: &Invocation) -> Vec<Outcome> {
        let budget = super::Budget::start(
            inv.deadline,
            Duration::from_millis(self.cfg.deadline_margin_ms),
        );
        let mut outcomes = vec![Outcome::Skipped; objects.len()];
        let mut held = Batch::default();
        let mut carried: Vec<usize> = Vec::new();
        let mut done = stream::iter(objects.iter().enumerate())
            .map(|(i, o)| async move {
                // checked when the object would start, not when the batch starts
                if !budget.has_time() {
                    tracing::warn!(request_id = %inv.request_id, bucket = %o.bucket, key = %o.key, "deadline near; object left for a retry");
                    return (i, Outcome::Unstarted, None);
                }
                let (outcome, batch) = self.scan_and_deliver(o, inv).await;
                (i, outcome, batch)
            })
            .buffer_unordered(self.cfg.max_in_flight.get());
        while let Some((i, outcome, batch)) = done.next().await {
            if let Some(slot) = outcomes.get_mut(i) {
                *slot = outcome;
            }
            if let Some(batch) = batch.filter(|b| !b.is_empty()) {
                self.correlator.merge(&mut held, batch);
                carried.push(i);
                // past the budget every finished object is written at once: the flush at
                // the end must not be the one that runs into the timeout
                if held.len() >= CORRELATION_FLUSH_SLOTS || !budget.has_time() {
                    let batch = std::mem::take(&mut held);
                    let objs = std::mem::take(&mut carried);
                    Box::pin(self.flush_correlations(batch, &objs, &mut outcomes, inv)).await;
                }
            }
        }
        // boxed: the flush's future nests the state and delivery calls, deep enough to pass
        // the compiler's layout depth limit in the binaries that await this one
        Box::pin(self.flush_correlations(held, &carried, &mut outcomes, inv)).await;
        outcomes
    }

    /// Write `batch` (the observations of the objects `carried`) to the correlation state
    /// and deliver the correlation findings; on a retryable failure those objects are
    /// retried (updates are idempotent, finding ids deterministic).
    async fn flush_correlations(
        &self,
        batch: Batch,
        carried: &[usize],
        outcomes: &mut [Outcome],
        inv: &Invocation,
    ) {
        if batch.is_empty() {
            return;
        }
        let request_id = inv.request_id.as_str();
        let (slots, objects) = (batch.len(), carried.len());
        let mut retry = None;
        let (mut correlated, stats) = match self.correlator.flush_counting(self.state, batch).await
        {
            Ok(flushed) => flushed,
            Err(e) if e.is_retryable() => {
                tracing::warn!(request_id, objects, error = %e, "correlation state update failed; its objects will be retried");
                retry = Some(e.to_string());
                (Vec::new(), FlushStats::default())
            }
            Err(e) => {
                tracing::error!(request_id, objects, error = %e, "correlation state update failed permanently; correlations of these objects skipped");
                metrics::emit(
                    &[("Function", "log-processor")],
                    &[("CorrelationErrors", 1.0, Unit::Count)],
                );
                (Vec::new(), FlushStats::default())
            }
        };
        let suppressed = self.allowlist.map_or(0, |list| {
            suppress::mark_all(list, correlated.iter_mut().map(|f| (f, None)))
        });
        let stored: Vec<StoredFinding<'_>> = correlated
            .iter()
            .map(|f| StoredFinding {
                finding: f,
                record_json: None,
                object_key: None,
            })
            .collect();
        if let Err(e) = deliver(self.cfg, self.store, self.notifier, self.state, &stored).await {
            tracing::warn!(request_id, objects, error = %e, "delivering correlation findings failed; their objects will be retried");
            retry = Some(e.to_string());
        }
        tracing::info!(
            request_id,
            objects,
            slots,
            state_writes = stats.writes,
            state_reads = stats.reads,
            correlations = correlated.len(),
            suppressed,
            "correlations flushed"
        );
        metrics::emit(
            &[("Function", "log-processor")],
            &[
                ("CorrelationStateWrites", stats.writes as f64, Unit::Count),
                ("CorrelationStateReads", stats.reads as f64, Unit::Count),
                ("CorrelationFindings", correlated.len() as f64, Unit::Count),
                ("SuppressedFindings", suppressed as f64, Unit::Count),
            ],
        );
        if let Some(why) = retry {
            for &i in carried {
                if let Some(o) = outcomes.get_mut(i).filter(|o| !o.must_retry()) {
                    *o = Outcome::Retry(why.clone());
                }
            }
        }
    }

    /// Process one object (as [`LogProcessor::process_all`] does for a list of one).
    pub async fn process(&self, obj: &ObjectRef, inv: &Invocation) -> Outcome {
        let mut outcomes = self.process_all(std::slice::from_ref(obj), inv).await;
        outcomes.pop().unwrap_or(Outcome::Skipped)
    }

    /// Scan one object and deliver its findings; its correlation observations are returned
    /// for the invocation's flush (also when the object is to be retried: a partial batch is
    /// written too, the retry adds the rest).
    async fn scan_and_deliver(
        &self,
        obj: &ObjectRef,
        inv: &Invocation,
    ) -> (Outcome, Option<Batch>) {
        let (request_id, bucket, key) = (
            inv.request_id.as_str(),
            obj.bucket.as_str(),
            obj.key.as_str(),
        );
        let started = Instant::now();
        let parsed = S3Key::parse(key);
        if !parsed.kind.is_evaluated() {
            tracing::debug!(request_id, bucket, key, kind = %parsed.kind, "not a log file; skipped");
            return (Outcome::Skipped, None);
        }
        let body = match self.objects.open(bucket, key).await {
            Ok(b) => b,
            Err(PortError::NotFound { .. }) => {
                tracing::warn!(request_id, bucket, key, "object no longer exists; skipped");
                return (Outcome::Skipped, None);
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(request_id, bucket, key, error = %e, "reading object failed; will retry");
                return (Outcome::Retry(e.to_string()), None);
            }
            Err(e) => {
                tracing::error!(request_id, bucket, key, error = %e, "object cannot be read");
                metrics::emit(
                    &[("Function", "log-processor")],
                    &[("ReadErrors", 1.0, Unit::Count)],
                );
                return (Outcome::Skipped, None);
            }
        };
        let failed = Arc::new(AtomicBool::new(false));
        let input = TrackedRead {
            inner: tokio_util::io::SyncIoBridge::new(body.reader),
            failed: failed.clone(),
        };
        let rules = self.rules.clone();
        let correlator = self.correlator.clone();
        let opts = ReaderOptions {
            max_record_bytes: self.cfg.max_record_bytes,
        };
        let (b, k) = (bucket.to_owned(), key.to_owned());
        let mut scanned = match tokio::task::spawn_blocking(move || {
            scan_object(input, &rules, &correlator, opts, &b, &k)
        })
        .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(request_id, bucket, key, error = %e, "scan task failed");
                return (Outcome::Retry(format!("scan task failed: {e}")), None);
            }
        };
        let download_failed = failed.load(Ordering::Relaxed);
        let batch = std::mem::take(&mut scanned.batch);
        let suppressed = self.allowlist.map_or(0, |list| {
            let found = scanned.found.iter_mut();
            suppress::mark_all(
                list,
                found.map(|(f, json)| (f, suppress::user_agent_of(json))),
            )
        });
        let stored: Vec<StoredFinding<'_>> = scanned
            .found
            .iter()
            .map(|(f, json)| StoredFinding {
                finding: f,
                record_json: Some(json),
                object_key: Some(key),
            })
            .collect();
        // deliver what was found even if the download broke: the retry finds them stored
        let delivered = deliver(self.cfg, self.store, self.notifier, self.state, &stored).await;
        let s = &scanned.stats;
        let duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            request_id,
            bucket,
            key,
            records_read = s.records_read,
            evaluated = s.records_evaluated,
            rejected = s.records_rejected,
            findings = s.findings,
            suppressed,
            duration_ms,
            "object processed"
        );
        let parse_errors = s.records_rejected + u64::from(s.stream_error && !download_failed);
        metrics::emit(
            &[("Function", "log-processor")],
            &[
                ("RecordsProcessed", s.records_evaluated as f64, Unit::Count),
                ("Findings", s.findings as f64, Unit::Count),
                ("ParseErrors", parse_errors as f64, Unit::Count),
                ("RecordsRejected", s.records_rejected as f64, Unit::Count),
                ("SuppressedFindings", suppressed as f64, Unit::Count),
            ],
        );
        let outcome = if download_failed {
            let why = scanned.damage.unwrap_or_default();
            tracing::warn!(request_id, bucket, key, error = %why, "download interrupted; will retry");
            Outcome::Retry(format!(
                "download of s3://{bucket}/{key} interrupted: {why}"
            ))
        } else {
            if let Some(damage) = &scanned.damage {
                tracing::error!(request_id, bucket, key, records_read = s.records_read, error = %damage, "log object damaged; records before the damage were evaluated");
            }
            match delivered {
                Ok(_) => Outcome::Done(scanned.stats),
                Err(e) => {
                    tracing::warn!(request_id, bucket, key, error = %e, "delivering findings failed; will retry");
                    Outcome::Retry(e.to_string())
                }
            }
        };
        (outcome, Some(batch))
    }
}

fn summary(outcomes: &[Outcome]) -> Value {
    let mut records = 0;
    let mut findings = 0;
    let mut processed = 0;
    for o in outcomes {
        if let Outcome::Done(s) = o {
            processed += 1;
            records += s.records_evaluated;
            findings += s.findings;
        }
    }
    json!({"objects": outcomes.len(), "processed": processed, "records": records, "findings": findings})
}

/// The rule pack could not be loaded (fails the cold start).
#[derive(Debug, thiserror::Error)]
#[error("loading rules: {}", .0.join("; "))]
pub struct RulesError(pub Vec<String>);

/// Load the rules once per cold start: `cfg.rules_dir` when set, else the bundled pack.
///
/// # Errors
/// [`RulesError`] listing every `file:line: message`.
pub fn load_rules(cfg: &Config) -> Result<Arc<RuleSet>, RulesError> {
    let loaded = match &cfg.rules_dir {
        Some(dir) => RuleSet::from_dir(dir),
        None => RuleSet::bundled(),
    };
    loaded
        .map(Arc::new)
        .map_err(|errs| RulesError(errs.iter().map(ToString::to_string).collect()))
}

/// The Lambda entry point: `main` calls this from `service_fn`.
///
/// # Errors
/// [`RetryError`] when the invocation must be retried.
#[cfg(feature = "aws")]
pub async fn handle(
    cfg: &Config,
    rules: &Arc<RuleSet>,
    correlator: &Arc<Correlator>,
    allowlist: Option<&AllowList>,
    ports: &crate::ports::aws::Ports,
    event: lambda_runtime::LambdaEvent<Value>,
) -> Result<Value, RetryError> {
    let inv = Invocation {
        request_id: event.context.request_id.clone(),
        deadline: super::lambda_deadline(event.context.deadline),
    };
    LogProcessor {
        cfg,
        rules: rules.clone(),
        objects: &ports.objects,
        store: &ports.store,
        notifier: &ports.notifier,
        correlator: correlator.clone(),
        state: &ports.state,
        allowlist,
    }
    .handle(event.payload, &inv)
    .await
}

#[cfg(test)]
mod tests;
