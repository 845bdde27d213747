//! Streaming ingest: bytes of a log file (gzip or plain) → CloudTrail records, one at a time.
//!
//! [`RecordReader`] reads every shape a user hands us: a CloudTrail log file
//! (`{"Records":[...]}`, streamed element by element), a JSON array of records or of
//! EventBridge envelopes (streamed), a bare record, an EventBridge envelope (its `detail`),
//! `lookup-events` output (`{"Events":[{"CloudTrailEvent":"..."}]}`), and any sequence of
//! these (NDJSON / JSON lines). Gzip input is detected by its magic bytes and decoded with
//! all members. Memory is bounded by the largest record (capped by
//! [`ReaderOptions::max_record_bytes`]), never by the file.
//!
//! Damage is reported precisely and never silently: a record that is not valid JSON is an
//! [`Item::Rejected`] with its index and byte offset, and reading goes on with the next
//! one; a stream that cannot go on (truncated or corrupt gzip, cut JSON) ends with one
//! [`StreamError`] after every record before the damage was yielded.
//!
//! This module does no network I/O; callers bridge S3 bodies into a `Read`.

pub mod scan;

use crate::detect::Event as _;
use crate::model::{record, Envelope, Record, RecordError};
use flate2::bufread::MultiGzDecoder;
use scan::{ScanError, Scanned, Scanner};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};

/// Limits for a reader.
#[derive(Debug, Clone, Copy)]
pub struct ReaderOptions {
    /// Largest record kept, in bytes of JSON; larger ones are rejected (and skipped without
    /// being buffered). CloudTrail records are at most a few hundred KB.
    pub max_record_bytes: usize,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            max_record_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Where in a stream something was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Index of the record (0-based, counting every record-shaped element seen).
    pub index: u64,
    /// Byte offset in the uncompressed stream.
    pub offset: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {} at byte {}", self.index, self.offset)
    }
}

/// Why one record was rejected (reading continues).
#[derive(Debug, thiserror::Error)]
pub enum RejectReason {
    /// Not a JSON object / invalid JSON.
    #[error(transparent)]
    Invalid(#[from] RecordError),
    /// Not UTF-8.
    #[error("record is not valid UTF-8")]
    Utf8,
    /// Larger than [`ReaderOptions::max_record_bytes`].
    #[error("record of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// The record's size.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// An EventBridge envelope without `detail`.
    #[error("EventBridge envelope has no detail")]
    EnvelopeWithoutDetail,
}

/// A record that could not be read, and where.
#[derive(Debug)]
pub struct Rejected {
    /// Where.
    pub at: Position,
    /// Why.
    pub reason: RejectReason,
}

/// What the reader yields.
#[derive(Debug)]
pub enum Item {
    /// A record to evaluate.
    Record(Record),
    /// A record-shaped element that could not be read; counted, reading goes on.
    Rejected(Rejected),
    /// A valid element that carries no CloudTrail record (e.g. an EventBridge event of
    /// another service); counted separately, not an error.
    Skipped {
        /// Where.
        at: Position,
        /// What it was.
        what: String,
    },
}

/// A stream that cannot be read further. Every record before it was yielded.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The input is empty (zero bytes, or a gzip stream that inflates to nothing).
    #[error("input is empty")]
    Empty,
    /// The stream ended inside a value: a truncated upload or download.
    #[error("truncated input: stream ends inside {at}")]
    Truncated {
        /// Where the cut value started.
        at: Position,
    },
    /// The gzip stream is corrupt or cut.
    #[error("corrupt or truncated gzip data near {at}: {source}")]
    Gzip {
        /// Position reached.
        at: Position,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// Reading the object failed for a reason outside the data (connection reset, timeout
    /// while streaming the S3 body): retrying may succeed.
    #[error("reading the input failed near {at}: {source}")]
    Io {
        /// Position reached.
        at: Position,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
    /// The bytes are not JSON of a known shape.
    #[error("not a CloudTrail JSON document at byte {offset}: {detail}")]
    Shape {
        /// Offset.
        offset: u64,
        /// What was wrong.
        detail: String,
    },
}

impl StreamError {
    /// Whether reading again may succeed: only transport failures are; damaged data stays
    /// damaged (no poison retries).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StreamError::Io { .. })
    }
}

/// Decoder errors say the data is bad; anything else is the transport failing.
fn is_data_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof
    )
}

enum Mode {
    /// Between top-level values.
    Top,
    /// Inside the `Records` (or `Events`) array of a top-level object; `lookup` = the
    /// elements are `lookup-events` entries.
    InRecords { first: bool, lookup: bool },
    /// After the records array, skipping the rest of the enclosing object.
    AfterRecords,
    /// Inside a top-level array.
    InArray { first: bool },
    /// Finished.
    Done,
}

/// Counts a reader keeps, for the accounting invariant `read = evaluated + rejected`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Records yielded.
    pub records: u64,
    /// Record-shaped elements rejected.
    pub rejected: u64,
    /// Elements skipped as not CloudTrail.
    pub skipped: u64,
    /// Uncompressed bytes consumed.
    pub bytes: u64,
}

/// Streams records out of any `BufRead` of JSON text. See the module docs.
pub struct RecordReader<R> {
    scan: Scanner<R>,
    opts: ReaderOptions,
    mode: Mode,
    pending: VecDeque<Item>,
    buf: Vec<u8>,
    index: u64,
    counts: Counts,
    saw_anything: bool,
    /// Buffers of records handed back ([`RecordReader::recycle`]).
    spare: record::Spare,
}

/// Initial capacity of a record buffer: most CloudTrail records fit, so the scanner rarely
/// grows it.
const RECORD_BUF: usize = 4 * 1024;

/// Open a reader over raw object bytes: gzip (all members) when the data starts with the
/// gzip magic, plain JSON text otherwise.
///
/// # Errors
/// [`io::Error`] when the first bytes cannot be read.
pub fn open<R>(inner: R, opts: ReaderOptions) -> io::Result<RecordReader<Box<dyn BufRead + Send>>>
where
    R: Read + Send + 'static,
{
    let mut br = BufReader::with_capacity(64 * 1024, inner);
    let head = br.fill_buf()?;
    let gz = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
    let reader: Box<dyn BufRead + Send> = if gz {
        Box::new(BufReader::with_capacity(
            128 * 1024,
            MultiGzDecoder::new(br),
        ))
    } else {
        Box::new(br)
    };
    Ok(RecordReader::new(reader, opts))
}

fn shape(offset: u64, detail: impl Into<String>) -> StreamError {
    StreamError::Shape {
        offset,
        detail: detail.into(),
    }
}

impl<R: BufRead> RecordReader<R> {
    /// Read JSON text from `inner` (already decompressed).
    pub fn new(inner: R, opts: ReaderOptions) -> Self {
        RecordReader {
            scan: Scanner::new(inner),
            opts,
            mode: Mode::Top,
            pending: VecDeque::new(),
            buf: Vec::with_capacity(RECORD_BUF),
            index: 0,
            counts: Counts::default(),
            saw_anything: false,
            spare: record::Spare::default(),
        }
    }

    /// Hand back a record read from this reader once done with it: its buffers serve the
    /// next records (optional: a record simply dropped costs its allocations again).
    pub fn recycle(&mut self, record: Record) {
        record.recycle(&mut self.spare);
    }

    /// Counts so far.
    pub fn counts(&self) -> Counts {
        Counts {
            bytes: self.scan.offset(),
            ..self.counts
        }
    }

    fn pos(&self) -> Position {
        Position {
            index: self.index,
            offset: self.scan.offset(),
        }
    }

    fn scan_err(&self, e: ScanError, at: Position) -> StreamError {
        match e {
            ScanError::Truncated => StreamError::Truncated { at },
            ScanError::Io(source) if is_data_error(&source) => StreamError::Gzip { at, source },
            ScanError::Io(source) => StreamError::Io { at, source },
            ScanError::Unexpected { byte, expected, .. } => shape(
                self.scan.offset(),
                format!("unexpected byte {byte:#04x}, expected {expected}"),
            ),
        }
    }

    /// Scan the next value into `self.buf` (left empty when it was too large).
    fn take_value(&mut self) -> Result<Scanned, ScanError> {
        self.buf.clear();
        self.scan.value(&mut self.buf, self.opts.max_record_bytes)
    }

    /// Turn the record-shaped element in `self.buf` into items.
    fn element_items(&mut self, at: Position, lookup: bool) {
        self.index += 1;
        // the buffer becomes the record's text: one copy (stream → buffer), not two
        let next = Vec::with_capacity(RECORD_BUF);
        let bytes = std::mem::replace(&mut self.buf, next);
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                self.reject(at, RejectReason::Utf8);
                return;
            }
        };
        if lookup {
            // lookup-events entries carry the record as a JSON string in CloudTrailEvent
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => match v.get("CloudTrailEvent").and_then(Value::as_str) {
                    Some(inner) => self.record_from_text(inner.to_owned(), at),
                    None => self.push_value(v, at),
                },
                Err(e) => self.reject(at, RejectReason::Invalid(RecordError::Json(e))),
            }
            return;
        }
        self.record_from_scanned(text, at);
    }

    fn record_from_text(&mut self, text: String, at: Position) {
        match Record::from_json(text) {
            Ok(r) => self.push_record(r, at),
            Err(e) => self.reject(at, RejectReason::Invalid(e)),
        }
    }

    /// Queue a parsed record, unless it is a Lambda event record (an S3/SQS/SNS
    /// notification sitting in a `Records` array looks like a log file from outside).
    fn push_record(&mut self, r: Record, at: Position) {
        let lambda_source = r
            .str_field("eventSource")
            .or_else(|| r.str_field("EventSource"))
            .filter(|s| s.starts_with("aws:"));
        if let Some(src) = lambda_source {
            let what = format!("{src} event notification, not a CloudTrail record");
            self.skip(at, what);
            return;
        }
        // digest files share the bucket and the JSON shape of a bare object
        if r.event_name().is_none()
            && r.get("digestStartTime").is_some()
            && r.get("logFiles").is_some()
        {
            self.skip(at, "CloudTrail digest file, not a record".to_owned());
            return;
        }
        self.counts.records += 1;
        self.pending.push_back(Item::Record(r));
    }

    /// A record object validated, indexed and copied while it was still in the stream's
    /// buffer (`None`: its bytes are not UTF-8).
    fn indexed_element(&mut self, at: Position, read: (record::FieldIndex, Option<String>)) {
        self.index += 1;
        match read {
            (index, Some(text)) => self.classify(Ok(Record::from_indexed(text, index)), at),
            (_, None) => self.reject(at, RejectReason::Utf8),
        }
    }

    /// A record whose depth the scanner measured while finding its end.
    fn record_from_scanned(&mut self, text: String, at: Position) {
        let depth = self.scan.last_max_depth();
        if depth > crate::model::record::MAX_DEPTH {
            self.reject(at, RejectReason::Invalid(RecordError::TooDeep(depth)));
            return;
        }
        self.classify(Record::from_json_checked(text), at);
    }

    /// Queue a read record-shaped object: a record, an EventBridge envelope or a
    /// lookup-events entry, or a rejection.
    fn classify(&mut self, read: Result<Record, RecordError>, at: Position) {
        match read {
            // an EventBridge envelope or a lookup-events entry, told by its top-level keys
            // (free: the record's fields are indexed anyway)
            Ok(r) if r.has_field("detail-type") || r.has_field("CloudTrailEvent") => {
                match serde_json::from_str::<Value>(r.as_json()) {
                    Ok(v) => self.push_value(v, at),
                    Err(e) => self.reject(at, RejectReason::Invalid(RecordError::Json(e))),
                }
            }
            Ok(r) => self.push_record(r, at),
            Err(e) => self.reject(at, RejectReason::Invalid(e)),
        }
    }

    fn reject(&mut self, at: Position, reason: RejectReason) {
        self.counts.rejected += 1;
        self.pending
            .push_back(Item::Rejected(Rejected { at, reason }));
    }

    fn skip(&mut self, at: Position, what: String) {
        self.counts.skipped += 1;
        self.pending.push_back(Item::Skipped { at, what });
    }

    /// A parsed element: an envelope, a lookup entry, or a record.
    fn push_value(&mut self, v: Value, at: Position) {
        if Envelope::looks_like(&v) {
            match serde_json::from_value::<Envelope>(v) {
                Ok(env) => {
                    let kind = env.kind();
                    match env.detail {
                        None => self.reject(at, RejectReason::EnvelopeWithoutDetail),
                        Some(_) if !kind.is_cloudtrail() => self.skip(
                            at,
                            format!(
                                "EventBridge event {:?} is not a CloudTrail event",
                                env.detail_type.unwrap_or_default()
                            ),
                        ),
                        Some(d) => match Record::from_value(&d) {
                            Ok(r) => self.push_record(r, at),
                            Err(e) => self.reject(at, RejectReason::Invalid(e)),
                        },
                    }
                }
                Err(e) => self.reject(at, RejectReason::Invalid(RecordError::Json(e))),
            }
            return;
        }
        if let Some(inner) = v.get("CloudTrailEvent").and_then(Value::as_str) {
            self.record_from_text(inner.to_owned(), at);
            return;
        }
        match Record::from_value(&v) {
            Ok(r) => self.push_record(r, at),
            Err(e) => self.reject(at, RejectReason::Invalid(e)),
        }
    }

    /// A whole top-level object held in `self.buf`: a log file document, lookup-events
    /// output, an envelope or a record.
    fn top_object_items(&mut self, at: Position) {
        let parsed = std::str::from_utf8(&self.buf)
            .map_err(|_| RejectReason::Utf8)
            .and_then(|t| {
                serde_json::from_str::<Value>(t)
                    .map_err(|e| RejectReason::Invalid(RecordError::Json(e)))
            });
        let v = match parsed {
            Ok(v) => v,
            Err(reason) => {
                self.index += 1;
                self.reject(at, reason);
                return;
            }
        };
        for container in ["Records", "Events"] {
            if let Some(list) = v.get(container) {
                let Value::Array(items) = list else {
                    self.index += 1;
                    self.reject(
                        at,
                        RejectReason::Invalid(RecordError::NotAnObject("a non-array Records")),
                    );
                    return;
                };
                for item in items.iter().cloned() {
                    self.index += 1;
                    self.push_value(item, at);
                }
                return;
            }
        }
        self.index += 1;
        self.push_value(v, at);
    }

    fn step(&mut self) -> Result<(), StreamError> {
        match self.mode {
            Mode::Done => Ok(()),
            Mode::Top => self.step_top(),
            Mode::InRecords { first, lookup } => self.step_array(first, Some(lookup)),
            Mode::InArray { first } => self.step_array(first, None),
            Mode::AfterRecords => self.step_after_records(),
        }
    }

    fn step_top(&mut self) -> Result<(), StreamError> {
        let at = self.pos();
        let next = self.scan.peek().map_err(|e| self.scan_err(e, at))?;
        match next {
            None => {
                self.mode = Mode::Done;
                if !self.saw_anything {
                    return Err(StreamError::Empty);
                }
                Ok(())
            }
            Some(b'[') => {
                self.saw_anything = true;
                self.scan.bump();
                self.mode = Mode::InArray { first: true };
                Ok(())
            }
            Some(b'{') => {
                self.saw_anything = true;
                self.step_top_object(at)
            }
            Some(b) => {
                self.mode = Mode::Done;
                Err(shape(
                    at.offset,
                    format!("expected a JSON object or array, found byte {b:#04x}"),
                ))
            }
        }
    }

    /// At a top-level `{`: stream `Records`/`Events` when it is the first key, otherwise
    /// buffer the object (bounded) and classify it.
    fn step_top_object(&mut self, at: Position) -> Result<(), StreamError> {
        self.scan.bump(); // '{'
        self.buf.clear();
        self.buf.push(b'{');
        match self.scan.peek().map_err(|e| self.scan_err(e, at))? {
            Some(b'"') => {}
            Some(b'}') => {
                self.scan.bump();
                self.index += 1;
                self.reject(
                    at,
                    RejectReason::Invalid(RecordError::NotAnObject("an empty object")),
                );
                return Ok(());
            }
            Some(b) => {
                self.mode = Mode::Done;
                return Err(shape(
                    at.offset,
                    format!("unexpected byte {b:#04x} after '{{'"),
                ));
            }
            None => {
                self.mode = Mode::Done;
                return Err(StreamError::Truncated { at });
            }
        }
        let limit = self.opts.max_record_bytes;
        let mut key = Vec::new();
        self.scan
            .value(&mut key, 4096)
            .map_err(|e| self.scan_err(e, at))?;
        self.buf.extend_from_slice(&key);
        let key_text = key.get(1..key.len().saturating_sub(1)).unwrap_or_default();
        self.scan
            .expect(b':', "':'")
            .map_err(|e| self.scan_err(e, at))?;
        let next = self.scan.peek().map_err(|e| self.scan_err(e, at))?;
        if (key_text == b"Records" || key_text == b"Events") && next == Some(b'[') {
            self.scan.bump();
            self.mode = Mode::InRecords {
                first: true,
                lookup: key_text == b"Events",
            };
            return Ok(());
        }
        // not a log file document: buffer the rest of the object and classify it
        self.buf.push(b':');
        let mut rest = Vec::new();
        // the remainder of the object: value, then `,` key `:` value ... up to `}`
        loop {
            match self
                .scan
                .value(&mut rest, limit.saturating_sub(self.buf.len()))
            {
                Ok(Scanned::Complete) => {}
                Ok(Scanned::TooLarge(_)) => {
                    // skip to the end of the object, then reject it as too large
                    self.skip_object_rest(at)?;
                    self.index += 1;
                    self.reject(
                        at,
                        RejectReason::TooLarge {
                            size: self.scan.offset() - at.offset,
                            limit,
                        },
                    );
                    return Ok(());
                }
                Err(e) => {
                    self.mode = Mode::Done;
                    return Err(self.scan_err(e, at));
                }
            }
            self.buf.append(&mut rest);
            match self.scan.peek().map_err(|e| self.scan_err(e, at))? {
                Some(b',') => {
                    self.scan.bump();
                    self.buf.push(b',');
                    self.scan
                        .value(&mut self.buf, 4096)
                        .map_err(|e| self.scan_err(e, at))?;
                    self.scan
                        .expect(b':', "':'")
                        .map_err(|e| self.scan_err(e, at))?;
                    self.buf.push(b':');
                }
                Some(b'}') => {
                    self.scan.bump();
                    self.buf.push(b'}');
                    break;
                }
                Some(b) => {
                    self.mode = Mode::Done;
                    return Err(shape(
                        self.scan.offset(),
                        format!("unexpected byte {b:#04x} in object"),
                    ));
                }
                None => {
                    self.mode = Mode::Done;
                    return Err(StreamError::Truncated { at });
                }
            }
        }
        self.top_object_items(at);
        Ok(())
    }

    fn skip_object_rest(&mut self, at: Position) -> Result<(), StreamError> {
        let mut sink = Vec::new();
        loop {
            sink.clear();
            self.scan
                .value(&mut sink, 0)
                .map_err(|e| self.scan_err(e, at))?;
            match self.scan.peek().map_err(|e| self.scan_err(e, at))? {
                Some(b',') => {
                    self.scan.bump();
                    sink.clear();
                    self.scan
                        .value(&mut sink, 0)
                        .map_err(|e| self.scan_err(e, at))?;
                    self.scan
                        .expect(b':', "':'")
                        .map_err(|e| self.scan_err(e, at))?;
                }
                Some(b'}') => {
                    self.scan.bump();
                    return Ok(());
                }
                Some(_) | None => return Err(StreamError::Truncated { at }),
            }
        }
    }

    /// One element of a streamed array. `records` is `Some(lookup)` inside a `Records` /
    /// `Events` array, `None` in a top-level array.
    fn step_array(&mut self, first: bool, records: Option<bool>) -> Result<(), StreamError> {
        let at = self.pos();
        let next = self.scan.peek().map_err(|e| self.scan_err(e, at))?;
        let end_mode = if records.is_some() {
            Mode::AfterRecords
        } else {
            Mode::Top
        };
        match next {
            Some(b']') => {
                self.scan.bump();
                self.mode = end_mode;
                return Ok(());
            }
            Some(b',') if !first => self.scan.bump(),
            Some(_) if first => {}
            Some(b) => {
                self.mode = Mode::Done;
                return Err(shape(
                    at.offset,
                    format!("expected ',' or ']' between records, found byte {b:#04x}"),
                ));
            }
            None => {
                self.mode = Mode::Done;
                return Err(StreamError::Truncated { at });
            }
        }
        self.mode = match records {
            Some(lookup) => Mode::InRecords {
                first: false,
                lookup,
            },
            None => Mode::InArray { first: false },
        };
        let at = self.pos();
        if records != Some(true) {
            // most records lie whole in the inflater's buffer: find the end, validate and
            // index the top-level fields in one pass; anything else takes the scan below
            let limit = self.opts.max_record_bytes;
            // the record's text is copied straight from the stream's buffer into the buffer
            // of a record done with (see `recycle`)
            let spare = &mut self.spare;
            let read = |b: &[u8]| {
                let (index, len) = record::index_object(b, spare)?;
                let text = b.get(..len).filter(|_| len <= limit)?;
                let text = std::str::from_utf8(text).ok().map(|s| spare.text(s));
                Some(((index, text), len))
            };
            match self.scan.value_in_buffer(read) {
                Ok(Some(read)) => {
                    self.indexed_element(at, read);
                    return Ok(());
                }
                Ok(None) => {}
                Err(e) => {
                    self.mode = Mode::Done;
                    return Err(self.scan_err(e, at));
                }
            }
        }
        match self.take_value() {
            Ok(Scanned::Complete) => {}
            Ok(Scanned::TooLarge(size)) => {
                self.index += 1;
                self.reject(
                    at,
                    RejectReason::TooLarge {
                        size,
                        limit: self.opts.max_record_bytes,
                    },
                );
                return Ok(());
            }
            Err(e) => {
                self.mode = Mode::Done;
                return Err(self.scan_err(e, at));
            }
        }
        if self.buf.first() == Some(&b'{') {
            self.element_items(at, records.unwrap_or(false));
        } else {
            // `[1, "x"]` or nested arrays: record-shaped positions holding no object
            self.index += 1;
            self.reject(
                at,
                RejectReason::Invalid(RecordError::NotAnObject("a non-object element")),
            );
        }
        Ok(())
    }

    fn step_after_records(&mut self) -> Result<(), StreamError> {
        let at = self.pos();
        let mut sink = Vec::new();
        loop {
            match self.scan.peek().map_err(|e| self.scan_err(e, at))? {
                Some(b'}') => {
                    self.scan.bump();
                    self.mode = Mode::Top;
                    return Ok(());
                }
                Some(b',') => {
                    // other keys after Records (none in CloudTrail files): skip them
                    self.scan.bump();
                    sink.clear();
                    self.scan
                        .value(&mut sink, 0)
                        .map_err(|e| self.scan_err(e, at))?;
                    self.scan
                        .expect(b':', "':'")
                        .map_err(|e| self.scan_err(e, at))?;
                    sink.clear();
                    self.scan
                        .value(&mut sink, 0)
                        .map_err(|e| self.scan_err(e, at))?;
                }
                Some(b) => {
                    self.mode = Mode::Done;
                    return Err(shape(
                        at.offset,
                        format!("unexpected byte {b:#04x} after Records"),
                    ));
                }
                None => {
                    self.mode = Mode::Done;
                    return Err(StreamError::Truncated { at });
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for RecordReader<R> {
    type Item = Result<Item, StreamError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(Ok(item));
            }
            if matches!(self.mode, Mode::Done) {
                return None;
            }
            if let Err(e) = self.step() {
                self.mode = Mode::Done;
                return Some(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests;
