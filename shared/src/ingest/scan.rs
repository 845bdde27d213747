//! A structural JSON scanner: finds where one value ends in a byte stream without parsing it.
//!
//! It tracks only strings, escapes and bracket depth, so it runs at memory speed and lets the
//! reader hand one record at a time to `serde_json`. A record that fails to parse does not
//! lose the records after it: the scanner already knows where the next one starts.

use std::io::{self, BufRead};

/// Why a scan stopped short.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The stream ended inside a value.
    #[error("stream ended inside a value (truncated)")]
    Truncated,
    /// Reading the underlying stream failed (a corrupt gzip stream surfaces here).
    #[error("reading the stream: {0}")]
    Io(#[from] io::Error),
    /// A byte that cannot start or continue the expected structure.
    #[error("unexpected byte {byte:#04x} ({ch:?}), expected {expected}")]
    Unexpected {
        /// The byte seen.
        byte: u8,
        /// The byte as a char, for the message.
        ch: char,
        /// What the scanner expected.
        expected: &'static str,
    },
}

/// How a value scan ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Scanned {
    /// The whole value was copied into the buffer.
    Complete,
    /// The value was longer than the limit: it was skipped, not copied; its full length.
    TooLarge(u64),
}

/// Byte scanner over a buffered reader, counting the offset it has consumed.
pub struct Scanner<R> {
    inner: R,
    offset: u64,
    max_depth: usize,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// Walk `buf` from inside a container or string: returns the offset just past the value's
/// end (if it ends in `buf`), the depth and the deepest depth so far. String bodies are
/// skipped with `memchr2` (most of a CloudTrail record's bytes are inside strings), so the
/// byte-at-a-time state machine only sees keys' quotes and punctuation.
pub(crate) fn scan_structure(
    buf: &[u8],
    in_str: &mut bool,
    escaped: &mut bool,
    mut depth: usize,
    mut max: usize,
) -> (Option<usize>, usize, usize) {
    let mut i = 0;
    while let Some(rest) = buf.get(i..).filter(|r| !r.is_empty()) {
        if *in_str {
            if *escaped {
                *escaped = false;
                i += 1;
                continue;
            }
            match memchr::memchr2(b'"', b'\\', rest) {
                None => return (None, depth, max),
                Some(j) => {
                    i += j + 1;
                    if rest.get(j) == Some(&b'\\') {
                        *escaped = true;
                    } else {
                        *in_str = false;
                        if depth == 0 {
                            return (Some(i), depth, max);
                        }
                    }
                }
            }
            continue;
        }
        // outside strings: find the next structural byte
        for &b in rest {
            i += 1;
            match b {
                b'"' => {
                    *in_str = true;
                    break;
                }
                b'{' | b'[' => {
                    depth += 1;
                    max = max.max(depth);
                }
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return (Some(i), depth, max);
                    }
                }
                _ => {}
            }
        }
    }
    (None, depth, max)
}

impl<R: BufRead> Scanner<R> {
    /// Wrap a buffered reader.
    pub fn new(inner: R) -> Self {
        Scanner {
            inner,
            offset: 0,
            max_depth: 0,
        }
    }

    /// Bytes consumed so far (offset in the uncompressed stream).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Deepest bracket nesting of the last value scanned by [`Scanner::value`].
    pub fn last_max_depth(&self) -> usize {
        self.max_depth
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n);
        self.offset += n as u64;
    }

    /// Skip whitespace (and a UTF-8 byte-order mark) and return the next byte without
    /// consuming it; `None` at the end of the stream.
    ///
    /// # Errors
    /// [`ScanError::Io`] when reading fails.
    pub fn peek(&mut self) -> Result<Option<u8>, ScanError> {
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(None);
            }
            let skip = buf
                .iter()
                .position(|&b| !is_ws(b) && b != 0xEF && b != 0xBB && b != 0xBF);
            match skip {
                Some(i) => {
                    let b = buf[i];
                    self.consume(i);
                    return Ok(Some(b));
                }
                None => {
                    let n = buf.len();
                    self.consume(n);
                }
            }
        }
    }

    /// Consume one byte that [`Scanner::peek`] returned.
    pub fn bump(&mut self) {
        self.consume(1);
    }

    /// Expect `want` as the next non-whitespace byte and consume it.
    ///
    /// # Errors
    /// [`ScanError::Truncated`] at the end of the stream, [`ScanError::Unexpected`] otherwise.
    pub fn expect(&mut self, want: u8, expected: &'static str) -> Result<(), ScanError> {
        match self.peek()? {
            Some(b) if b == want => {
                self.bump();
                Ok(())
            }
            Some(byte) => Err(ScanError::Unexpected {
                byte,
                ch: byte as char,
                expected,
            }),
            None => Err(ScanError::Truncated),
        }
    }

    /// Copy (or, past `limit` bytes, skip) the JSON value starting at the next
    /// non-whitespace byte into `out` (appending).
    ///
    /// # Errors
    /// [`ScanError::Truncated`] when the stream ends inside the value.
    pub fn value(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<Scanned, ScanError> {
        let first = match self.peek()? {
            Some(b) => b,
            None => return Err(ScanError::Truncated),
        };
        let start_len = out.len();
        let mut total: u64 = 0;
        let mut copying = true;
        let mut depth: usize = 0;
        self.max_depth = 0;
        let mut in_str = false;
        let mut escaped = false;
        let scalar = !matches!(first, b'{' | b'[' | b'"');
        let mut started = false;
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                // a bare scalar may end at the end of the stream
                return if scalar && started {
                    Ok(self.finish(copying, total))
                } else {
                    Err(ScanError::Truncated)
                };
            }
            let end = if scalar {
                let mut end = None;
                for (i, &b) in buf.iter().enumerate() {
                    if started && (is_ws(b) || matches!(b, b',' | b']' | b'}')) {
                        end = Some(i);
                        break;
                    }
                    started = true;
                }
                end
            } else {
                let (end, d, max) =
                    scan_structure(buf, &mut in_str, &mut escaped, depth, self.max_depth);
                depth = d;
                self.max_depth = max;
                end
            };
            let take = end.unwrap_or(buf.len());
            total += take as u64;
            if copying {
                if out.len() - start_len + take > limit {
                    copying = false;
                    out.truncate(start_len);
                } else {
                    out.extend_from_slice(&buf[..take]);
                }
            }
            self.consume(take);
            if end.is_some() {
                return Ok(self.finish(copying, total));
            }
        }
    }

    /// When the value at the next non-whitespace byte lies whole in the reader's current
    /// buffer and `read` accepts it (`Some((result, length))`, reading the value's text
    /// in place), consume it and return the result; otherwise consume nothing and return
    /// `None` (the caller scans with [`Scanner::value`]). This lets a caller validate,
    /// index and copy a record in the same pass that finds its end, with no copy through
    /// an intermediate buffer.
    ///
    /// # Errors
    /// [`ScanError::Io`] when reading fails.
    pub(crate) fn value_in_buffer<T>(
        &mut self,
        read: impl FnOnce(&[u8]) -> Option<(T, usize)>,
    ) -> Result<Option<T>, ScanError> {
        if self.peek()?.is_none() {
            return Ok(None);
        }
        let buf = self.inner.fill_buf()?;
        let Some((found, len)) = read(buf).filter(|(_, len)| *len <= buf.len()) else {
            return Ok(None);
        };
        self.max_depth = 0;
        self.consume(len);
        Ok(Some(found))
    }

    fn finish(&self, copying: bool, total: u64) -> Scanned {
        if copying {
            Scanned::Complete
        } else {
            Scanned::TooLarge(total)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(input: &str) -> Vec<String> {
        let mut s = Scanner::new(input.as_bytes());
        let mut out = Vec::new();
        while s.peek().unwrap().is_some() {
            let mut buf = Vec::new();
            assert_eq!(s.value(&mut buf, usize::MAX).unwrap(), Scanned::Complete);
            out.push(String::from_utf8(buf).unwrap());
        }
        out
    }

    #[test]
    fn finds_value_ends_through_strings_and_escapes() {
        let got = scan_all(r#" {"a":"}\"{"} [1,[2]] "x\\" 12 true"#);
        assert_eq!(
            got,
            [r#"{"a":"}\"{"}"#, "[1,[2]]", r#""x\\""#, "12", "true"]
        );
    }

    #[test]
    fn truncation_is_reported() {
        let mut s = Scanner::new(&br#"{"a":[1,2"#[..]);
        assert!(matches!(
            s.value(&mut Vec::new(), 100),
            Err(ScanError::Truncated)
        ));
    }

    #[test]
    fn oversized_values_are_skipped_not_copied() {
        let mut s = Scanner::new(&br#"{"a":"0123456789"} {"b":1}"#[..]);
        let mut buf = Vec::new();
        assert_eq!(s.value(&mut buf, 5).unwrap(), Scanned::TooLarge(18));
        assert!(buf.is_empty());
        assert_eq!(s.value(&mut buf, 100).unwrap(), Scanned::Complete);
        assert_eq!(buf, br#"{"b":1}"#);
    }

    #[test]
    fn small_reader_buffers_do_not_matter() {
        let text = r#"{"k":"v\"}","n":[{"x":1}]}"#;
        let r = std::io::BufReader::with_capacity(1, text.as_bytes());
        let mut s = Scanner::new(r);
        let mut buf = Vec::new();
        s.value(&mut buf, usize::MAX).unwrap();
        assert_eq!(buf, text.as_bytes());
        assert_eq!(s.offset(), text.len() as u64);
    }
}
