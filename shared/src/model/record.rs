//! [`Record`]: one CloudTrail record, owned, with lazily parsed fields.
//!
//! A record keeps its JSON text and an index of its top-level fields (key → byte range).
//! A top-level field is parsed into a `serde_json::Value` only the first time a rule asks
//! for it, so the large `requestParameters`/`responseElements` of a record that no rule
//! looks at are never materialised. Plain string fields (`eventName`, `eventSource`, ...)
//! are read straight from the text when they hold no escapes.

use crate::detect::{any_in_walk, walk, Event, ValueRef};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;
use time::OffsetDateTime;

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not valid JSON (syntax, invalid UTF-8, nesting deeper than serde_json's limit).
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Nested deeper than [`MAX_DEPTH`] levels.
    #[error("record nests deeper than 128 levels (found {0})")]
    TooDeep(usize),
    /// Valid JSON that is not an object.
    #[error("a record must be a JSON object, found {0}")]
    NotAnObject(&'static str),
}

/// Deepest nesting accepted in a record (serde_json's own recursion limit is 128).
pub const MAX_DEPTH: usize = 128;

/// Maximum bracket depth of JSON text, ignoring brackets inside strings.
pub fn max_depth(text: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in text {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// A field of an object: where its key and value sit in the record's text. 40 bytes: a
/// record's index of ~24 fields is written for every record and read by every rule, and the
/// caches only some fields ever fill live behind [`TopField::lazy`] (as one `Node` with its
/// caches inline, an entry took 128 bytes and building the index ~5 % of a scan).
struct TopField {
    /// The key's range in the text; unused when [`TopField::owned_key`].
    key: Range<u32>,
    /// The value's range in the text.
    value: Range<u32>,
    /// [`key_tag`] of the key: a lookup compares the key's bytes only when tags agree.
    tag: u8,
    /// The value is a string without escapes (known from indexing): its text between the
    /// quotes is the value, no need to look for a `\` on every read. `false` when unknown.
    plain: bool,
    /// The key holds escapes: its unescaped text is [`Lazy::key`] (set when indexed).
    owned_key: bool,
    /// What reading the value materialises: filled on demand.
    lazy: OnceLock<Box<Lazy>>,
}

/// A value inside the record's text, materialised only on demand: `parsed` holds its
/// `serde_json::Value` once a rule needs the value itself, `children` the index of its
/// fields once a rule walks into it (`userIdentity.type` indexes `userIdentity` and parses
/// only `type`, never the rest of the object).
#[derive(Default)]
struct Lazy {
    /// The unescaped text of a key with escapes (serde_json's reading only).
    key: Option<Box<str>>,
    parsed: OnceLock<Value>,
    children: OnceLock<Vec<TopField>>,
}

impl TopField {
    /// A field at `key` and `value` (byte ranges of the text; `None` past 4 GiB, which
    /// [`Record::from_json_checked`] rejects before indexing).
    fn at(key: Range<usize>, value: Range<usize>, tag: u8, plain: bool) -> Option<TopField> {
        let r = |r: Range<usize>| -> Option<Range<u32>> {
            Some(u32::try_from(r.start).ok()?..u32::try_from(r.end).ok()?)
        };
        Some(TopField {
            key: r(key)?,
            value: r(value)?,
            tag,
            plain,
            owned_key: false,
            lazy: OnceLock::new(),
        })
    }

    fn value_range(&self) -> Range<usize> {
        self.value.start as usize..self.value.end as usize
    }

    fn key_range(&self) -> Range<usize> {
        self.key.start as usize..self.key.end as usize
    }

    /// The caches, created on first use.
    fn lazy(&self) -> &Lazy {
        self.lazy.get_or_init(Box::default)
    }
}

/// A 7-bit hash of a key's text. Kept with each indexed field, so that a lookup skips the
/// fields whose tag differs without reading their keys; as a bit of a 128-bit membership
/// filter, the duplicate-key check (JSON allows duplicates; the last one wins) runs a
/// linear search only when two keys share a bit.
fn key_tag(key: &[u8]) -> u8 {
    // the length and the first and last four bytes (two loads) tell CloudTrail's keys
    // apart (`eventName`/`eventTime` differ in their last four); a collision only costs a
    // compare. Every indexed key and every rule's field read hashes its key.
    let ends = match (key.first_chunk::<4>(), key.last_chunk::<4>()) {
        (Some(first), Some(last)) => {
            u64::from(u32::from_le_bytes(*first)) | u64::from(u32::from_le_bytes(*last)) << 32
        }
        _ => key.iter().fold(0, |h, &c| h << 8 | u64::from(c)),
    };
    let h = (ends ^ (key.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    // the top 7 bits (they depend on every bit of the input): always below 128
    (h >> 57) as u8
}

/// One CloudTrail record (an element of a log file's `Records`, or an EventBridge `detail`).
pub struct Record {
    /// The text: a `String` so that its buffer can serve the next record ([`Spare`]).
    raw: String,
    fields: Vec<TopField>,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("event_id", &self.event_id())
            .field("event_name", &self.event_name())
            .field("bytes", &self.raw.len())
            .finish()
    }
}

/// Collects the top-level fields of an object (key and value ranges) without parsing values.
struct TopLevel<'a> {
    raw: &'a str,
    out: &'a mut Vec<TopField>,
}

enum KeyText<'a> {
    Borrowed(&'a str),
    Owned(String),
}

impl<'de> de::Deserialize<'de> for KeyText<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyText<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(KeyText::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(KeyText::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(KeyText::Owned(v))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> de::DeserializeSeed<'de> for TopLevel<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let base = self.raw.as_ptr() as usize;
        let mut seen: u128 = 0;
        while let Some(k) = map.next_key::<KeyText<'de>>()? {
            let v: &'de RawValue = map.next_value()?;
            let text = v.get();
            let start = (text.as_ptr() as usize).wrapping_sub(base);
            let (key_at, key_text): (Range<usize>, &str) = match &k {
                KeyText::Borrowed(s) => {
                    let at = (s.as_ptr() as usize).wrapping_sub(base);
                    (at..at + s.len(), s)
                }
                KeyText::Owned(s) => (0..0, s.as_str()),
            };
            let tag = key_tag(key_text.as_bytes());
            let bit = 1u128 << tag;
            if seen & bit != 0 {
                // JSON allows duplicate keys; like serde_json's maps, the last one wins
                if let Some(i) = self.out.iter().position(|f| f.key_in(self.raw) == key_text) {
                    self.out.remove(i);
                }
            }
            seen |= bit;
            let mut field = TopField::at(key_at, start..start + text.len(), tag, false)
                .ok_or_else(|| de::Error::custom("a record larger than 4 GiB"))?;
            if let KeyText::Owned(s) = k {
                field.owned_key = true;
                field.lazy = OnceLock::from(Box::new(Lazy {
                    key: Some(s.into()),
                    ..Lazy::default()
                }));
            }
            self.out.push(field);
        }
        Ok(())
    }
}

/// Index the fields of the object at `raw[range]` without parsing the record again: the
/// same one-pass indexer as the record's own fields ([`index_object`]), its ranges shifted
/// to `raw`. `None` (the caller lets serde_json do it) when a key holds escapes or the
/// text is not an object.
fn split_object(raw: &str, range: Range<usize>) -> Option<Vec<TopField>> {
    let b = raw.as_bytes().get(..range.end)?;
    index_in(b, range.start, Vec::with_capacity(NESTED_FIELDS), 1, None).map(|(fields, _)| fields)
}

/// Room for a record's top-level fields (CloudTrail writes about twenty).
const TOP_FIELDS: usize = 24;

/// Room for a nested object's fields: `userIdentity` and most parameter objects have fewer,
/// and an index this small stays within the allocator's per-thread cache.
const NESTED_FIELDS: usize = 8;

/// The top-level field index of a record's text, built by [`index_object`] while the text
/// was still in the reader's buffer; [`Record::from_indexed`] pairs it with the text.
pub(crate) struct FieldIndex(Vec<TopField>);

/// Validate a record's text and index its top-level fields in one pass, with the same
/// result as the serde_json reading ([`TopLevel`]): key and value ranges, the last of
/// duplicate keys kept. `None` when the text is not a plain valid object (invalid JSON, a
/// key with escapes or control characters): the caller falls back to serde_json, which
/// then gives the error.
fn index_fields(raw: &str) -> Option<Vec<TopField>> {
    let b = raw.as_bytes();
    let start = super::json::skip_ws(b, 0);
    let (fields, end) = index_in(b, start, Vec::with_capacity(TOP_FIELDS), 1, None)?;
    (super::json::skip_ws(b, end) == b.len()).then_some(fields)
}

/// [`index_fields`] over the object starting at `b[0]`, which may be followed by anything
/// (the rest of a stream buffer): the index (ranges relative to `b`) and the offset just
/// past the object. UTF-8 is not checked here: the caller checks the object's bytes
/// before it pairs them with the index.
pub(crate) fn index_object(b: &[u8], spare: &mut Spare) -> Option<(FieldIndex, usize)> {
    let fields = reuse(std::mem::take(&mut spare.fields), TOP_FIELDS);
    index_in(b, 0, fields, 1, Some(&mut spare.nested))
        .map(|(fields, end)| (FieldIndex(fields), end))
}

/// The buffers of a record done with, for the next one ([`Record::recycle`]): a record's
/// text (~1.4 KB) and its field index (24 fields) are each too large for the allocator's
/// per-thread cache, so allocating and freeing them for every record took the allocator's
/// slow path three times per record.
#[derive(Default)]
pub(crate) struct Spare {
    text: String,
    fields: Vec<TopField>,
    nested: SpareNested,
}

/// What the eagerly indexed `userIdentity` takes: its index and the box of its caches
/// (emptied), so that indexing it allocates nothing.
#[derive(Default)]
pub(crate) struct SpareNested {
    fields: Vec<TopField>,
    lazy: Option<Box<Lazy>>,
}

/// A spare buffer kept only up to this capacity: one huge record does not pin its buffer.
const SPARE_TEXT_MAX: usize = 64 * 1024;
const SPARE_FIELDS_MAX: usize = 4 * TOP_FIELDS;

impl Spare {
    /// `s` in the spare text buffer (or a new one).
    pub(crate) fn text(&mut self, s: &str) -> String {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        text.push_str(s);
        text
    }
}

/// `v` (empty) when it has room already, else a new vector with room for `room` fields.
fn reuse(v: Vec<TopField>, room: usize) -> Vec<TopField> {
    if v.capacity() == 0 {
        Vec::with_capacity(room)
    } else {
        v
    }
}

/// The one nested object indexed with the record: the rules evaluated for every record
/// (root usage, principal activity, access denied) read `userIdentity.type` or `.arn`, so
/// its fields are indexed while the record's pass skips over them anyway, instead of in a
/// second pass on the first read.
const EAGER_KEY: &[u8] = b"userIdentity";

/// [`index_object`] over the object at `b[start..]`, its ranges relative to `b` (nested
/// objects are indexed in place, no ranges to shift), with room for `room` fields. `depth`
/// counts the containers open, this object included (1: the record itself, whose
/// [`EAGER_KEY`] object is indexed too).
/// `out` is empty and may come from a recycled record, as may `nested` (the room for the
/// [`EAGER_KEY`] object's index).
fn index_in(
    b: &[u8],
    start: usize,
    mut out: Vec<TopField>,
    depth: usize,
    mut nested: Option<&mut SpareNested>,
) -> Option<(Vec<TopField>, usize)> {
    use super::json::{skip_str, skip_value, skip_ws};
    if b.get(start) != Some(&b'{') {
        return None;
    }
    let mut seen: u128 = 0;
    let mut i = skip_ws(b, start + 1);
    if b.get(i) == Some(&b'}') {
        return Some((out, i + 1));
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let ks = i + 1;
        let (after, escaped) = skip_str(b, ks)?;
        if escaped {
            return None;
        }
        let ke = after - 1;
        i = skip_ws(b, after);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let vs = skip_ws(b, i + 1);
        let key = b.get(ks..ke)?;
        // the same checks as skipping the value: indexing an object validates it like
        // skip_value would one level deeper; a key with escapes falls back to skipping
        let eager = if depth == 1 && key == EAGER_KEY && b.get(vs) == Some(&b'{') {
            let room = nested
                .as_deref_mut()
                .map(|n| std::mem::take(&mut n.fields))
                .unwrap_or_default();
            index_in(b, vs, reuse(room, NESTED_FIELDS), depth + 1, None)
        } else {
            None
        };
        let (ve, lazy, plain) = match eager {
            Some((children, ve)) => {
                let mut lazy = nested
                    .as_deref_mut()
                    .and_then(|n| n.lazy.take())
                    .unwrap_or_default();
                lazy.children = OnceLock::from(children);
                (ve, OnceLock::from(lazy), false)
            }
            // strings are most values: skipping one tells whether it holds escapes
            None if b.get(vs) == Some(&b'"') => {
                let (ve, escaped) = skip_str(b, vs + 1)?;
                (ve, OnceLock::new(), !escaped)
            }
            None => (skip_value(b, vs, depth, MAX_DEPTH)?, OnceLock::new(), false),
        };
        let tag = key_tag(key);
        let bit = 1u128 << tag;
        if seen & bit != 0 {
            // JSON allows duplicate keys; like serde_json's maps, the last one wins
            // (about one record in two has two keys sharing a tag: compare only those)
            if let Some(p) = out.iter().position(|f| f.tag == tag && f.key_is(b, key)) {
                out.remove(p);
            }
        }
        seen |= bit;
        let mut field = TopField::at(ks..ke, vs..ve, tag, plain)?;
        field.lazy = lazy;
        out.push(field);
        i = skip_ws(b, ve);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return Some((out, i + 1)),
            _ => return None,
        }
    }
}

/// The field named `key` (the last one wins on duplicates: they were removed at indexing).
fn find<'s>(fields: &'s [TopField], raw: &'s str, key: &str) -> Option<&'s TopField> {
    // every rule's field read lands here: compare tags first, then lengths, then bytes (no
    // char boundary checks: the ranges came from the indexer)
    let (raw, key) = (raw.as_bytes(), key.as_bytes());
    let tag = key_tag(key);
    fields
        .iter()
        .filter(|f| f.tag == tag)
        .find(|f| f.key_is(raw, key))
}

/// `a == b` for two keys of the same length. CloudTrail's keys are 3 to 32 bytes and many
/// share a length (`eventName`, `eventTime`, `errorCode`, `userAgent`): comparing them as
/// two overlapping words, first and last, beats a `memcmp` call per candidate.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    fn word<const N: usize>(s: &[u8], at: usize) -> Option<[u8; N]> {
        s.get(at..at + N)?.try_into().ok()
    }
    fn ends<const N: usize>(a: &[u8], b: &[u8]) -> bool {
        let last = a.len() - N;
        word::<N>(a, 0) == word::<N>(b, 0) && word::<N>(a, last) == word::<N>(b, last)
    }
    match a.len() {
        n if n != b.len() => false,
        4..=7 => ends::<4>(a, b),
        8..=15 => ends::<8>(a, b),
        16..=31 => ends::<16>(a, b),
        _ => a == b,
    }
}

impl TopField {
    /// The key's text; `raw` is the record text the field was indexed from.
    fn key_in<'s>(&'s self, raw: &'s str) -> &'s str {
        if self.owned_key {
            self.owned_key_text().unwrap_or_default()
        } else {
            raw.get(self.key_range()).unwrap_or_default()
        }
    }

    /// Whether the key is `key`; `raw` is the text the field was indexed from (no char
    /// boundary checks: the ranges came from the indexer).
    fn key_is(&self, raw: &[u8], key: &[u8]) -> bool {
        if self.owned_key {
            self.owned_key_text().is_some_and(|k| k.as_bytes() == key)
        } else {
            self.key.len() == key.len()
                && raw.get(self.key_range()).is_some_and(|k| same_key(k, key))
        }
    }

    /// The unescaped text of a key with escapes.
    fn owned_key_text(&self) -> Option<&str> {
        self.lazy.get()?.key.as_deref()
    }
}

fn kind_of(first: Option<u8>) -> &'static str {
    match first {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

impl Record {
    /// Parse one record from its JSON text.
    ///
    /// # Errors
    /// [`RecordError`] when the text is not a JSON object.
    pub fn from_json(text: impl Into<Box<str>>) -> Result<Record, RecordError> {
        let raw: String = text.into().into_string();
        let depth = max_depth(raw.as_bytes());
        if depth > MAX_DEPTH {
            return Err(RecordError::TooDeep(depth));
        }
        Record::from_json_checked(raw)
    }

    /// [`Record::from_json`] for text whose depth the caller already checked (the
    /// streaming scanner measures it while finding the record's end).
    pub(crate) fn from_json_checked(raw: String) -> Result<Record, RecordError> {
        if u32::try_from(raw.len()).is_err() {
            // the index keeps 32-bit offsets (see `TopField`)
            return Err(RecordError::Json(de::Error::custom(format!(
                "a record of {} bytes: larger than 4 GiB",
                raw.len()
            ))));
        }
        let first = raw.trim_start().bytes().next();
        if first != Some(b'{') {
            // report the shape, but let serde_json report syntax errors first
            serde_json::from_str::<de::IgnoredAny>(&raw)?;
            return Err(RecordError::NotAnObject(kind_of(first)));
        }
        if let Some(fields) = index_fields(&raw) {
            return Ok(Record { raw, fields });
        }
        // anything unusual (invalid JSON, escaped keys): serde_json reads it and reports
        // errors with their positions
        let mut fields = Vec::with_capacity(24);
        let mut de = serde_json::Deserializer::from_str(&raw);
        de::DeserializeSeed::deserialize(
            TopLevel {
                raw: &raw,
                out: &mut fields,
            },
            &mut de,
        )?;
        de.end()?;
        Ok(Record { raw, fields })
    }

    /// Pair a record's text with the index [`index_object`] built from these very bytes.
    pub(crate) fn from_indexed(raw: String, index: FieldIndex) -> Record {
        Record {
            raw,
            fields: index.0,
        }
    }

    /// Give this record's buffers to `spare` for the next record read (see [`Spare`]).
    pub(crate) fn recycle(self, spare: &mut Spare) {
        let Record { raw, mut fields } = self;
        // the first field with caches: the eager `userIdentity`, or one a rule read
        if let Some(mut lazy) = fields.iter_mut().find_map(|f| f.lazy.take()) {
            if let Some(mut nested) = lazy.children.take() {
                nested.clear();
                if spare.nested.fields.capacity() == 0 && nested.capacity() <= SPARE_FIELDS_MAX {
                    spare.nested.fields = nested;
                }
            }
            if spare.nested.lazy.is_none() {
                lazy.parsed.take();
                lazy.key = None;
                spare.nested.lazy = Some(lazy);
            }
        }
        fields.clear();
        if fields.capacity() <= SPARE_FIELDS_MAX {
            spare.fields = fields;
        }
        if raw.capacity() <= SPARE_TEXT_MAX {
            spare.text = raw;
        }
    }

    /// Build a record from an already parsed value (EventBridge `detail`, tests).
    ///
    /// # Errors
    /// [`RecordError::NotAnObject`] when `value` is not an object.
    pub fn from_value(value: &Value) -> Result<Record, RecordError> {
        if !value.is_object() {
            return Err(RecordError::NotAnObject(match value {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Bool(_) => "a boolean",
                Value::Null => "null",
                _ => "a number",
            }));
        }
        Record::from_json(value.to_string())
    }

    /// The record's JSON text as delivered.
    pub fn as_json(&self) -> &str {
        &self.raw
    }

    /// Size of the record's JSON text in bytes.
    pub fn len_bytes(&self) -> usize {
        self.raw.len()
    }

    fn field(&self, key: &str) -> Option<&TopField> {
        find(&self.fields, &self.raw, key)
    }

    fn text_of(&self, n: &TopField) -> &str {
        self.raw.get(n.value_range()).unwrap_or("null")
    }

    fn value_of<'s>(&'s self, n: &'s TopField) -> &'s Value {
        n.lazy().parsed.get_or_init(|| {
            let text = self.text_of(n);
            // the common leaves need no parser: strings without escapes and literals
            if let Some(inner) = self.plain_str_of(n) {
                return Value::String(inner.to_owned());
            }
            match text {
                "null" => return Value::Null,
                "true" => return Value::Bool(true),
                "false" => return Value::Bool(false),
                _ => {}
            }
            // the range was produced by serde_json from this very text, so it re-parses;
            // a failure here would be a serde_json bug, and Null is the safe reading
            serde_json::from_str(self.text_of(n)).unwrap_or(Value::Null)
        })
    }

    /// The fields of an object node (empty for other values), indexed on first use.
    fn children_of<'s>(&'s self, n: &'s TopField) -> &'s [TopField] {
        n.lazy().children.get_or_init(|| {
            if let Some(fields) = split_object(&self.raw, n.value_range()) {
                return fields;
            }
            let text = self.text_of(n);
            let mut out = Vec::new();
            if text.starts_with('{') {
                let mut de = serde_json::Deserializer::from_str(text);
                let seed = TopLevel {
                    raw: &self.raw,
                    out: &mut out,
                };
                // the text was validated with the record; on a (theoretical) failure the
                // object reads as empty
                if de::DeserializeSeed::deserialize(seed, &mut de).is_err() {
                    out.clear();
                }
            }
            out
        })
    }

    /// The body of a string node that holds no escapes (its value, borrowed from the text).
    fn plain_str_of<'s>(&'s self, n: &'s TopField) -> Option<&'s str> {
        let text = self.text_of(n);
        let inner = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'))?;
        // the indexer saw a string without escapes: no need to look for one again
        (n.plain || !inner.contains('\\')).then_some(inner)
    }

    /// A string node borrowed from the text when it holds no escapes.
    fn str_of<'s>(&'s self, n: &'s TopField) -> Option<&'s str> {
        if let Some(inner) = self.plain_str_of(n) {
            return Some(inner);
        }
        self.value_of(n).as_str()
    }

    /// The node at a dotted path of object fields (no arrays on the way).
    fn node_at<'s>(&'s self, path: &str) -> Option<&'s TopField> {
        let mut parts = path.split('.');
        let mut cur = self.field(parts.next()?)?;
        for p in parts {
            cur = find(self.children_of(cur), &self.raw, p)?;
        }
        Some(cur)
    }

    /// Push the values at `path` below `n` (Sigma semantics: lists flatten).
    fn push_values<'s>(&'s self, n: &'s TopField, path: &[Box<str>], out: &mut Vec<&'s Value>) {
        let Some((head, rest)) = path.split_first() else {
            walk(self.value_of(n), &[], out);
            return;
        };
        match self.text_of(n).as_bytes().first() {
            Some(b'{') => {
                if let Some(f) = find(self.children_of(n), &self.raw, head) {
                    self.push_values(f, rest, out);
                }
            }
            // lists along the path: walk the parsed value
            Some(b'[') => walk(self.value_of(n), path, out),
            _ => {}
        }
    }

    /// [`Record::push_values`] as a search: string leaves without escapes are borrowed from
    /// the text and literals are shared constants, so reading a field allocates nothing.
    fn any_below<'s>(
        &'s self,
        n: &'s TopField,
        path: &[Box<str>],
        f: &mut dyn FnMut(ValueRef<'s>) -> bool,
    ) -> bool {
        static NULL: Value = Value::Null;
        static TRUE: Value = Value::Bool(true);
        static FALSE: Value = Value::Bool(false);
        let text = self.text_of(n);
        let Some((head, rest)) = path.split_first() else {
            if let Some(inner) = self.plain_str_of(n) {
                return f(ValueRef::Str(inner));
            }
            return match text {
                "null" => f(ValueRef::Json(&NULL)),
                "true" => f(ValueRef::Json(&TRUE)),
                "false" => f(ValueRef::Json(&FALSE)),
                _ => any_in_walk(self.value_of(n), &[], f),
            };
        };
        match text.as_bytes().first() {
            Some(b'{') => find(self.children_of(n), &self.raw, head)
                .is_some_and(|c| self.any_below(c, rest, f)),
            // lists along the path: walk the parsed value
            Some(b'[') => any_in_walk(self.value_of(n), path, f),
            _ => false,
        }
    }

    /// The parsed value of a top-level field (parsed on first use, then cached).
    pub fn get(&self, key: &str) -> Option<&Value> {
        Some(self.value_of(self.field(key)?))
    }

    /// A top-level string field, borrowed from the text when it holds no escapes.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.str_of(self.field(key)?)
    }

    /// A string at a dotted path (first value found), e.g. `userIdentity.arn`.
    pub fn str_at(&self, path: &str) -> Option<&str> {
        self.str_of(self.node_at(path)?)
    }

    /// Whether the record has a top-level field `key` (of any value, `null` included).
    pub fn has_field(&self, key: &str) -> bool {
        self.field(key).is_some()
    }

    /// Names of the top-level fields, in document order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.key_in(&self.raw))
    }

    /// `eventID`, when present and non-empty.
    pub fn event_id(&self) -> Option<&str> {
        self.str_field("eventID").filter(|s| !s.is_empty())
    }

    /// `eventID`, or a stable id derived from the record's text when it has none
    /// (old and hand-made records), so findings on it still deduplicate.
    pub fn event_id_or_digest(&self) -> String {
        match self.event_id() {
            Some(id) => id.to_owned(),
            None => {
                use sha2::{Digest, Sha256};
                let d = Sha256::digest(self.raw.as_bytes());
                format!("sha256:{}", hex::encode(&d[..16]))
            }
        }
    }

    /// `eventTime` as written.
    pub fn event_time_str(&self) -> Option<&str> {
        self.str_field("eventTime")
    }

    /// `eventTime` parsed; accepts RFC 3339 and the `YYYY-MM-DD HH:MM:SS[.fff]` form.
    pub fn event_time(&self) -> Option<OffsetDateTime> {
        parse_time(self.event_time_str()?)
    }

    /// `eventType` (`AwsApiCall`, `AwsConsoleSignIn`, `AwsCloudTrailInsight`, ...).
    pub fn event_type(&self) -> Option<&str> {
        self.str_field("eventType")
    }

    /// Whether this is an Insights event.
    pub fn is_insight(&self) -> bool {
        self.event_type() == Some("AwsCloudTrailInsight")
            || self.str_field("eventCategory") == Some("Insight")
            || self.field("insightDetails").is_some()
    }

    /// `awsRegion`.
    pub fn region(&self) -> Option<&str> {
        self.str_field("awsRegion")
    }

    /// Account the event belongs to: `recipientAccountId`, else `userIdentity.accountId`.
    pub fn account_id(&self) -> Option<&str> {
        self.str_field("recipientAccountId")
            .filter(|s| !s.is_empty())
            .or_else(|| self.str_at("userIdentity.accountId"))
            .filter(|s| !s.is_empty())
    }

    /// `sourceIPAddress` as written (an IP, a service hostname, `AWS Internal`, ...).
    pub fn source_ip(&self) -> Option<&str> {
        self.str_field("sourceIPAddress").filter(|s| !s.is_empty())
    }

    /// `errorCode`, when present and non-empty.
    pub fn error_code(&self) -> Option<&str> {
        self.str_field("errorCode").filter(|s| !s.is_empty())
    }

    /// `userIdentity.type` parsed.
    pub fn identity_type(&self) -> IdentityType {
        IdentityType::from_name(self.str_at("userIdentity.type"))
    }

    /// `readOnly`, accepting a boolean or the strings `"true"`/`"false"`.
    pub fn read_only(&self) -> Option<bool> {
        match self.get("readOnly")? {
            Value::Bool(b) => Some(*b),
            Value::String(s) => s.trim().parse::<bool>().ok().or_else(|| {
                match s.trim().to_ascii_lowercase().as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                }
            }),
            _ => None,
        }
    }

    /// Best identity of the caller: `userIdentity.arn`, the session issuer's ARN, the
    /// root ARN built from the account, the invoking service, or the principal id.
    pub fn principal(&self) -> Option<String> {
        let nonempty = |s: Option<&str>| s.filter(|s| !s.trim().is_empty()).map(str::to_owned);
        if let Some(arn) = nonempty(self.str_at("userIdentity.arn")) {
            return Some(arn);
        }
        if let Some(arn) = nonempty(self.str_at("userIdentity.sessionContext.sessionIssuer.arn")) {
            return Some(arn);
        }
        if self.identity_type() == IdentityType::Root {
            if let Some(acct) = nonempty(self.str_at("userIdentity.accountId")) {
                return Some(format!("arn:aws:iam::{acct}:root"));
            }
        }
        nonempty(self.str_at("userIdentity.invokedBy"))
            .or_else(|| nonempty(self.str_at("userIdentity.principalId")))
            .or_else(|| nonempty(self.str_at("userIdentity.userName")))
    }
}

impl Event for Record {
    fn values_at<'s>(&'s self, path: &[Box<str>], out: &mut Vec<&'s Value>) {
        let Some((head, rest)) = path.split_first() else {
            return;
        };
        if let Some(f) = self.field(head) {
            self.push_values(f, rest, out);
        }
    }

    fn any_value_at<'s>(
        &'s self,
        path: &[Box<str>],
        f: &mut dyn FnMut(ValueRef<'s>) -> bool,
    ) -> bool {
        let Some((head, rest)) = path.split_first() else {
            return false;
        };
        self.field(head)
            .is_some_and(|field| self.any_below(field, rest, f))
    }

    fn event_name(&self) -> Option<&str> {
        self.str_field("eventName")
            .or_else(|| self.str_at("insightDetails.eventName"))
    }

    fn event_source(&self) -> Option<&str> {
        self.str_field("eventSource")
            .or_else(|| self.str_at("insightDetails.eventSource"))
    }
}

/// `userIdentity.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityType {
    /// The account's root user.
    Root,
    /// An IAM user.
    IamUser,
    /// A role session.
    AssumedRole,
    /// `GetFederationToken` credentials.
    FederatedUser,
    /// An AWS service acting on its own.
    AwsService,
    /// Another AWS account.
    AwsAccount,
    /// IAM Identity Center user.
    IdentityCenterUser,
    /// SAML federation (`AssumeRoleWithSAML`).
    SamlUser,
    /// Web identity federation.
    WebIdentityUser,
    /// `Unknown` as written by CloudTrail.
    Unknown,
    /// No `userIdentity.type` (Insights events, old records).
    Missing,
    /// A type this build does not know.
    Other,
}

impl IdentityType {
    /// Parse CloudTrail's spelling.
    pub fn from_name(name: Option<&str>) -> IdentityType {
        match name {
            None => IdentityType::Missing,
            Some("Root") => IdentityType::Root,
            Some("IAMUser") => IdentityType::IamUser,
            Some("AssumedRole") => IdentityType::AssumedRole,
            Some("FederatedUser") => IdentityType::FederatedUser,
            Some("AWSService") => IdentityType::AwsService,
            Some("AWSAccount") => IdentityType::AwsAccount,
            Some("IdentityCenterUser") => IdentityType::IdentityCenterUser,
            Some("SAMLUser") => IdentityType::SamlUser,
            Some("WebIdentityUser") => IdentityType::WebIdentityUser,
            Some("Unknown") => IdentityType::Unknown,
            Some(_) => IdentityType::Other,
        }
    }
}

/// Parse the timestamps seen in CloudTrail data: RFC 3339 (`2024-01-01T00:00:00Z`), and
/// `2022-12-11 19:42:55[.000[000000]]` (no zone: UTC).
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Some(t) = parse_plain_utc(s.as_bytes()) {
        return Some(t);
    }
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let (date, rest) = s.split_once([' ', 'T'])?;
    let rest = rest.trim_end_matches('Z');
    let (hms, frac) = match rest.split_once('.') {
        Some((h, f)) => (h, f),
        None => (rest, ""),
    };
    let stitched = if frac.is_empty() {
        format!("{date}T{hms}Z")
    } else {
        format!("{date}T{hms}.{frac}Z")
    };
    OffsetDateTime::parse(&stitched, &Rfc3339).ok()
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the form CloudTrail writes every `eventTime` in, without the
/// general RFC 3339 parser (a correlation reads the time of every record it observes).
/// Anything else, a leap second included, is left to [`parse_time`]'s general path, which
/// gives the same answer for the strings this one accepts.
fn parse_plain_utc(b: &[u8]) -> Option<OffsetDateTime> {
    let &[y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2, b'T', h1, h2, b':', n1, n2, b':', s1, s2, b'Z'] =
        b
    else {
        return None;
    };
    let digits = [y1, y2, y3, y4, m1, m2, d1, d2, h1, h2, n1, n2, s1, s2];
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |hi: u8, lo: u8| (hi - b'0') * 10 + (lo - b'0');
    let year = i32::from(n(y1, y2)) * 100 + i32::from(n(y3, y4));
    let month = time::Month::try_from(n(m1, m2)).ok()?;
    let date = time::Date::from_calendar_date(year, month, n(d1, d2)).ok()?;
    // `from_hms` refuses second 60: a leap second goes the general way
    let time = time::Time::from_hms(n(h1, h2), n(n1, n2), n(s1, s2)).ok()?;
    Some(time::PrimitiveDateTime::new(date, time).assume_utc())
}

/// The RFC 3339 text of a time (`2024-01-01T00:00:00Z`, the form CloudTrail writes); `None`
/// for a year outside 0..=9999, which has none. Callers choose what stands in for it.
pub fn format_time(t: OffsetDateTime) -> Option<String> {
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROA:s","arn":"arn:aws:sts::111122223333:assumed-role/Admin/s","accountId":"111122223333","sessionContext":{"sessionIssuer":{"arn":"arn:aws:iam::111122223333:role/Admin"}}},"eventTime":"2024-05-01T10:00:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.7","requestParameters":{"name":"main"},"responseElements":null,"eventID":"e-1","readOnly":"false","recipientAccountId":"111122223333","eventName":"StopLogging"}"#;

    #[test]
    fn typed_accessors() {
        let r = Record::from_json(SAMPLE).unwrap();
        assert_eq!(r.event_name(), Some("StopLogging"));
        assert_eq!(r.event_source(), Some("cloudtrail.amazonaws.com"));
        assert_eq!(r.event_id(), Some("e-1"));
        assert_eq!(r.account_id(), Some("111122223333"));
        assert_eq!(r.region(), Some("us-east-1"));
        assert_eq!(r.read_only(), Some(false));
        assert_eq!(r.identity_type(), IdentityType::AssumedRole);
        assert_eq!(
            r.principal().as_deref(),
            Some("arn:aws:sts::111122223333:assumed-role/Admin/s")
        );
        assert_eq!(r.get("responseElements"), Some(&Value::Null));
        assert_eq!(r.error_code(), None);
        assert_eq!(
            r.event_time().map(|t| t.unix_timestamp()),
            Some(1_714_557_600)
        );
    }

    #[test]
    fn dotted_paths_reach_nested_fields() {
        let r = Record::from_json(SAMPLE).unwrap();
        let mut out = Vec::new();
        r.values_at(&["requestParameters".into(), "name".into()], &mut out);
        assert_eq!(out, [&Value::String("main".into())]);
    }

    #[test]
    fn nested_index_agrees_with_serde() {
        // the first object is indexed by the structural fast path, the second (an escaped
        // key) by serde_json
        let fast = r#"{ "userIdentity" : { "type" : "Root" , "n":12,"abc":"x","arn":"old","arn":"arn:aws:iam::1:root", "l":[{"k":"}"}], "o":{"p":"q\"r"}, "e":{}, "last":true } }"#;
        let slow = fast.replace("\"abc\"", "\"a\\u0062c\"");
        for text in [fast, slow.as_str()] {
            let r = Record::from_json(text).unwrap();
            let v: Value = serde_json::from_str(text).unwrap();
            for path in ["type", "n", "abc", "arn", "l", "o", "e", "last", "missing"] {
                let mut got = Vec::new();
                r.values_at(&["userIdentity".into(), path.into()], &mut got);
                let mut want = Vec::new();
                v.values_at(&["userIdentity".into(), path.into()], &mut want);
                assert_eq!(got, want, "{path} in {text}");
                // the borrowed reading sees the same values
                let mut borrowed = Vec::new();
                r.any_value_at(&["userIdentity".into(), path.into()], &mut |v| {
                    borrowed.push(match v {
                        ValueRef::Str(s) => Value::String(s.to_owned()),
                        ValueRef::Json(v) => v.clone(),
                    });
                    false
                });
                let want: Vec<Value> = want.into_iter().cloned().collect();
                assert_eq!(borrowed, want, "{path} in {text}");
            }
        }
        let r = Record::from_json(fast).unwrap();
        assert_eq!(r.str_at("userIdentity.arn"), Some("arn:aws:iam::1:root"));
        assert_eq!(r.str_at("userIdentity.o.p"), Some("q\"r"));
        assert_eq!(r.identity_type(), IdentityType::Root);
    }

    #[test]
    fn user_identity_is_indexed_with_the_record() {
        let indexed = |text: &str| {
            let r = Record::from_json(text).unwrap();
            let f = r.field("userIdentity").unwrap();
            f.lazy.get()?.children.get().map(|c| pairs(text, c))
        };
        assert_eq!(
            indexed(SAMPLE).unwrap().first(),
            Some(&("type".to_owned(), "\"AssumedRole\"".to_owned()))
        );
        // a key with escapes: indexed by serde_json on first read, as any nested object
        let escaped = r#"{"userIdentity":{"t\u0079pe":"Root"}}"#;
        assert_eq!(indexed(escaped), None);
        let r = Record::from_json(escaped).unwrap();
        assert_eq!(r.identity_type(), IdentityType::Root);
    }

    /// The serde_json reading of a record's top-level fields: (key, value text) pairs.
    fn serde_index(text: &str) -> Option<Vec<(String, String)>> {
        let mut fields = Vec::new();
        let mut de = serde_json::Deserializer::from_str(text);
        let seed = TopLevel {
            raw: text,
            out: &mut fields,
        };
        de::DeserializeSeed::deserialize(seed, &mut de).ok()?;
        de.end().ok()?;
        Some(pairs(text, &fields))
    }

    fn pairs(text: &str, fields: &[TopField]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|f| {
                let v = text.get(f.value_range()).unwrap_or_default();
                (f.key_in(text).to_owned(), v.to_owned())
            })
            .collect()
    }

    #[test]
    fn one_pass_index_agrees_with_serde() {
        let cases = [
            SAMPLE,
            "{}",
            " { } ",
            r#"{"a":1,"b":[1,{"c":"}"}],"a":{"x":null}}"#,
            " {\n\t\"a\" : \"x\\\"y\" ,\"b\":-0.5e+3 } ",
        ];
        for text in cases {
            let fast = index_fields(text).map(|f| pairs(text, &f));
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, serde_index(text), "{text}");
        }
        // the one-pass index never accepts what serde_json rejects, and agrees when both do
        let bytes = SAMPLE.as_bytes();
        for at in 0..bytes.len() {
            for sub in [
                b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'1', b'x', 0x02,
            ] {
                let mut m = bytes.to_vec();
                m[at] = sub;
                let Ok(text) = std::str::from_utf8(&m) else {
                    continue;
                };
                if let Some(fast) = index_fields(text) {
                    assert_eq!(Some(pairs(text, &fast)), serde_index(text), "{text}");
                }
            }
        }
        // escaped keys are left to serde_json
        assert!(index_fields(r#"{"a\u0062":1}"#).is_none());
        assert_eq!(
            Record::from_json(r#"{"a\u0062":1}"#)
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["ab"]
        );
    }

    #[test]
    fn recycled_buffers_carry_nothing_into_the_next_record() {
        let first = r#"{"userIdentity":{"type":"Root","arn":"a1"},"x":"\u0041","eventName":"One"}"#;
        let second = r#"{"eventName":"Two","userIdentity":{"arn":"a2"}}"#;
        let mut spare = Spare::default();
        let read = |text: &str, spare: &mut Spare| {
            let (index, end) = index_object(text.as_bytes(), spare).unwrap();
            assert_eq!(end, text.len());
            Record::from_indexed(spare.text(text), index)
        };
        let r = read(first, &mut spare);
        // fill every cache: a parsed value, a parsed nested value, the eager index
        assert_eq!(r.get("x"), Some(&Value::String("A".into())));
        assert_eq!(
            r.get("userIdentity").map(|v| v["type"].clone()),
            Some("Root".into())
        );
        assert_eq!(r.str_at("userIdentity.arn"), Some("a1"));
        r.recycle(&mut spare);
        assert!(spare.nested.lazy.is_some() && spare.nested.fields.capacity() > 0);
        let r = read(second, &mut spare);
        assert_eq!(r.event_name(), Some("Two"));
        assert_eq!(r.str_at("userIdentity.arn"), Some("a2"));
        assert_eq!(r.str_at("userIdentity.type"), None);
        assert_eq!(r.get("x"), None);
        assert_eq!(
            r.get("userIdentity"),
            Some(&serde_json::json!({"arn": "a2"}))
        );
        // an entry stays small: the index is written for every record
        assert!(std::mem::size_of::<TopField>() <= 40);
    }

    #[test]
    fn plain_flag_marks_only_strings_without_escapes() {
        let text = r#"{"a":"x","b":"y\"z","c":1,"d":"","e":"\u0041"}"#;
        let r = Record::from_json(text).unwrap();
        let plain = |k: &str| r.field(k).unwrap().plain;
        assert!(plain("a") && plain("d"));
        assert!(!plain("b") && !plain("c") && !plain("e"));
        assert_eq!(r.str_field("a"), Some("x"));
        assert_eq!(r.str_field("b"), Some("y\"z"));
        assert_eq!(r.str_field("d"), Some(""));
        assert_eq!(r.str_field("e"), Some("A"));
        assert_eq!(r.get("b"), Some(&Value::String("y\"z".into())));
    }

    #[test]
    fn key_tags_spread_cloudtrail_keys() {
        let keys = "eventVersion userIdentity eventTime eventSource eventName awsRegion \
            sourceIPAddress userAgent requestParameters responseElements additionalEventData \
            requestID eventID readOnly resources eventType managementEvent recipientAccountId \
            eventCategory tlsDetails errorCode errorMessage sessionCredentialFromConsole \
            sharedEventID vpcEndpointId apiVersion serviceEventDetails insightDetails";
        let tags: std::collections::BTreeSet<u8> = keys
            .split_whitespace()
            .map(|k| key_tag(k.as_bytes()))
            .collect();
        // 28 keys: few share a tag (each sharing costs a key compare, never a wrong answer)
        assert!(tags.len() >= 24, "{} distinct tags", tags.len());
        assert_ne!(key_tag(b"eventName"), key_tag(b"eventTime"));
        // every length, short keys included, gives a tag below 128
        let long = [b'k'; 40];
        assert!((0..=long.len()).all(|n| key_tag(&long[..n]) < 128));
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let r = Record::from_json(r#"{"eventName":"A\u0042C","eventID":"x"}"#).unwrap();
        assert_eq!(r.event_name(), Some("ABC"));
    }

    #[test]
    fn root_principal_is_built_from_the_account() {
        let r = Record::from_json(
            r#"{"userIdentity":{"type":"Root","accountId":"111122223333","arn":""}}"#,
        )
        .unwrap();
        assert_eq!(
            r.principal().as_deref(),
            Some("arn:aws:iam::111122223333:root")
        );
        assert_eq!(r.event_id(), None);
        assert!(r.event_id_or_digest().starts_with("sha256:"));
    }

    #[test]
    fn not_objects_and_bad_json_are_errors() {
        assert!(matches!(
            Record::from_json("[1]"),
            Err(RecordError::NotAnObject("an array"))
        ));
        assert!(matches!(
            Record::from_json("{\"a\":"),
            Err(RecordError::Json(_))
        ));
        assert!(Record::from_json("{\"a\": NaN}").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            Record::from_json(deep),
            Err(RecordError::TooDeep(10_001))
        ));
    }

    #[test]
    fn time_forms() {
        for s in [
            "2022-12-11 19:42:55",
            "2022-12-11 19:42:55.000",
            "2022-12-11 19:42:55.000000000",
            "2022-12-11T19:42:55Z",
        ] {
            assert_eq!(
                parse_time(s).map(|t| t.unix_timestamp()),
                Some(1_670_787_775),
                "{s}"
            );
        }
        assert!(parse_time("Oct 8, 2024, 4:15:32 PM").is_none());
    }

    /// The `eventTime` shortcut answers as the RFC 3339 parser does on a grid of valid and
    /// invalid fields (leap years, day 31 of short months, hour 24, a leap second, ...).
    #[test]
    fn plain_utc_times_parse_as_rfc3339_does() {
        use time::format_description::well_known::Rfc3339;
        let mut fast = 0;
        for y in [
            "0000", "1900", "1970", "2000", "2023", "2024", "2100", "9999",
        ] {
            for m in 0..=13 {
                for d in [0, 1, 28, 29, 30, 31, 32] {
                    for (h, n, sec) in [
                        (0, 0, 0),
                        (23, 59, 59),
                        (24, 0, 0),
                        (12, 60, 0),
                        (23, 59, 60),
                        (7, 5, 9),
                    ] {
                        let s = format!("{y}-{m:02}-{d:02}T{h:02}:{n:02}:{sec:02}Z");
                        let general = OffsetDateTime::parse(&s, &Rfc3339).ok();
                        assert_eq!(parse_time(&s), general, "{s}");
                        match parse_plain_utc(s.as_bytes()) {
                            Some(t) => {
                                fast += 1;
                                assert_eq!(Some(t), general, "{s}");
                            }
                            // the shortcut declines only what the general path then answers
                            None => assert!(general.is_none() || sec == 60, "{s}"),
                        }
                    }
                }
            }
        }
        assert!(fast > 1000, "{fast}");
        for s in [
            "2024-01-01t00:00:00z",
            "2024-01-01T00:00:00+00:00",
            "2024-01-01T00:00:00.5Z",
            " 2024-01-01T00:00:00Z",
            "2024-1-01T00:00:00Z",
            "2024-01-01T00:00:0aZ",
        ] {
            assert_eq!(parse_plain_utc(s.as_bytes()), None, "{s}");
            assert_eq!(
                parse_time(s),
                OffsetDateTime::parse(s.trim(), &Rfc3339).ok(),
                "{s}"
            );
        }
    }
}
