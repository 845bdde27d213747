//! A JSON validator that reports where values end, for indexing a record in one pass.
//!
//! It accepts exactly what `serde_json` accepts when it skips a value (strict RFC 8259:
//! no control characters in strings, only the standard escapes, no leading zeros, no
//! trailing commas, no `NaN`) and never more; on anything unusual it answers `None` and the
//! caller lets `serde_json` read the text, so error messages and positions stay
//! serde_json's. It does not unescape strings or build values.

/// Bytes JSON treats as whitespace.
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// The offset of the first byte at or after `i` that is not whitespace.
pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).copied().is_some_and(is_ws) {
        i += 1;
    }
    i
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `word` is `"`, `\` or a control character (< 0x20); the lowest set
/// high bit marks the first such byte (later bits may be false positives).
fn special(word: u64) -> u64 {
    let quote = word ^ (ONES * u64::from(b'"'));
    let slash = word ^ (ONES * u64::from(b'\\'));
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    let ctrl = word.wrapping_sub(ONES * 0x20) & !word;
    (zero(quote) | zero(slash) | ctrl) & HIGH
}

/// The offset of the first `"`, `\` or control byte at or after `i` (eight bytes at a time:
/// most of a record is string bodies).
#[inline]
fn to_special(b: &[u8], mut i: usize) -> Option<usize> {
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let m = special(u64::from_le_bytes(w));
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Skip a string whose opening quote is at `i - 1`; returns the offset past the closing
/// quote and whether the body holds escapes.
#[inline]
pub(crate) fn skip_str(b: &[u8], i: usize) -> Option<(usize, bool)> {
    // inlined where strings are skipped: most strings (every key, most values) end at the
    // first special byte, and a call per string cost a third of the skipping
    let end = to_special(b, i)?;
    if b.get(end)? == &b'"' {
        return Some((end + 1, false));
    }
    skip_str_from(b, end)
}

/// [`skip_str`] from its first special byte (at `i`) that is not the closing quote.
#[cold]
#[inline(never)]
fn skip_str_from(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        match b.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                match b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' => {
                        let hex = b.get(i + 2..i + 6)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        i += 6;
                    }
                    _ => return None,
                }
            }
            // a control character: serde_json rejects it
            _ => return None,
        }
        i = to_special(b, i)?;
    }
}

fn skip_digits(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// Skip a number starting at `i` (JSON grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)?
/// ([eE] [+-]? [0-9]+)?`).
fn skip_number(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = skip_digits(b, i + 1),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let end = skip_digits(b, i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = skip_digits(b, i);
        if end == i {
            return None;
        }
        i = end;
    }
    // a number runs into the next token: `01`, `1x` and `-` are not numbers
    match b.get(i) {
        Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'-') => None,
        _ => Some(i),
    }
}

/// Skip the value starting at `i` (no leading whitespace); returns the offset just past it.
/// `depth` counts the containers already open; deeper than `max_depth` answers `None`.
pub(crate) fn skip_value(b: &[u8], i: usize, depth: usize, max_depth: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_str(b, i + 1).map(|(end, _)| end),
        b'{' => skip_container(b, i + 1, b'}', depth + 1, max_depth),
        b'[' => skip_container(b, i + 1, b']', depth + 1, max_depth),
        b't' => literal(b, i, b"true"),
        b'f' => literal(b, i, b"false"),
        b'n' => literal(b, i, b"null"),
        b'-' | b'0'..=b'9' => skip_number(b, i),
        _ => None,
    }
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len())? == word).then_some(i + word.len())
}

/// Skip the rest of an object (`close` = `}`) or array (`]`) whose opening bracket is at
/// `i - 1`.
fn skip_container(b: &[u8], i: usize, close: u8, depth: usize, max_depth: usize) -> Option<usize> {
    if depth > max_depth {
        return None;
    }
    let mut i = skip_ws(b, i);
    if b.get(i) == Some(&close) {
        return Some(i + 1);
    }
    loop {
        if close == b'}' {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            i = skip_ws(b, skip_str(b, i + 1)?.0);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
        }
        // string members and elements (most of them) skip without a call per value
        let end = match b.get(i) {
            Some(b'"') => skip_str(b, i + 1)?.0,
            _ => skip_value(b, i, depth, max_depth)?,
        };
        i = skip_ws(b, end);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            c if *c == close => return Some(i + 1),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(text: &str) -> bool {
        let b = text.as_bytes();
        let i = skip_ws(b, 0);
        skip_value(b, i, 0, 128).is_some_and(|end| skip_ws(b, end) == b.len())
    }

    #[test]
    fn agrees_with_serde_json_on_edge_cases() {
        let cases = [
            r#"{}"#,
            r#"[]"#,
            r#"{"a":1}"#,
            r#"{"a":1,}"#,
            r#"[1,]"#,
            r#"{"a" 1}"#,
            r#"{1:1}"#,
            r#"0"#,
            r#"-0"#,
            r#"01"#,
            r#"-"#,
            r#"1."#,
            r#"1.5"#,
            r#".5"#,
            r#"1e5"#,
            r#"1E+5"#,
            r#"1e"#,
            r#"1e-"#,
            r#"-1.25e-7"#,
            r#"1x"#,
            r#"NaN"#,
            r#"Infinity"#,
            r#"true"#,
            r#"tru"#,
            r#"nul"#,
            r#"nulll"#,
            r#""a\"b""#,
            r#""a\/b""#,
            r#""a\xb""#,
            r#""\u00e9""#,
            r#""\u00g9""#,
            r#""\u12""#,
            r#""\ud800""#,
            "\"a\tb\"",
            "\"a\u{1}b\"",
            "\"a\u{7f}b\"",
            "\"é, ü and 日本\"",
            r#""unterminated"#,
            r#"{"a":[1,{"b":null}],"c":"}"}"#,
            r#"{"a":[1,{"b":null}],"c":"}"]"#,
            r#"[[[]]]"#,
            r#"[[[]]"#,
            " { \"a\" : [ 1 , 2 ] } ",
            r#"{"a":1} x"#,
            r#"{"a":1}{}"#,
            r#""0123456789abcdef0123456789\"abcdef""#,
            r#""0123456789abcdef0123456789\\""#,
        ];
        for text in cases {
            let serde = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
            assert_eq!(accepts(text), serde, "{text:?}");
        }
    }

    #[test]
    fn never_accepts_what_serde_json_rejects() {
        // every byte of a realistic record replaced by each interesting byte, one at a time
        let record = r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/A/s","n":-12.5e3,"ok":true,"l":[null,{"k":"v\"w\u00e9"}]},"eventName":"GetObject","readOnly":false}"#;
        let bytes = record.as_bytes();
        for at in 0..bytes.len() {
            for sub in [
                b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'0', b'-', b'.', b'e', b'x',
                0x01, b' ',
            ] {
                let mut m = bytes.to_vec();
                m[at] = sub;
                let Ok(text) = std::str::from_utf8(&m) else {
                    continue;
                };
                let serde = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
                if accepts(text) {
                    assert!(serde, "accepted what serde_json rejects: {text}");
                }
            }
        }
        assert!(accepts(record));
    }

    /// [`skip_str`] one byte at a time, as the grammar reads.
    fn skip_str_bytewise(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
        let mut escaped = false;
        loop {
            match *b.get(i)? {
                b'"' => return Some((i + 1, escaped)),
                b'\\' => {
                    escaped = true;
                    match *b.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' if b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i += 6,
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => i += 1,
            }
        }
    }

    #[test]
    fn word_skipping_agrees_with_a_byte_loop() {
        // strings of every length up to three words past the eight-byte steps, made of the
        // bytes that matter, ending anywhere (closing quote, escape, end of buffer)
        let alphabet: &[u8] = b"aZ\"\\u0fE/nbx\x01\x1f\x7f\xc3\xa9 ";
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            for start in 0..=len.min(3) {
                assert_eq!(
                    skip_str(&text, start),
                    skip_str_bytewise(&text, start),
                    "{:?} from {start}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
        // a plain body of each length, closed, then cut before its quote
        for len in 0..40 {
            let mut text = vec![b'a'; len];
            text.push(b'"');
            assert_eq!(skip_str(&text, 0), Some((len + 1, false)));
            assert_eq!(skip_str(&text[..len], 0), None);
        }
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(!accepts(&deep));
        let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(accepts(&fine));
    }
}
