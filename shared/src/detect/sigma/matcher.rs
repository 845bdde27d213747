//! Compiled value matchers: one Sigma value (with its modifiers) against one event value.
//!
//! Everything costly happens at compile time: needles are lowercased once, wildcard
//! patterns become prefix/suffix/substring tests or a size-limited regex, CIDRs are parsed.
//! Matching never allocates for ASCII strings (the common case in CloudTrail); non-ASCII
//! text under case-insensitive comparison is lowercased on the fly.

use crate::detect::ValueRef;
use aho_corasick::AhoCorasick;
use ipnet::IpNet;
use memchr::memmem::Finder;
use regex::{Regex, RegexBuilder};
use serde_json::Value;
use std::io::Write as _;
use std::net::IpAddr;

/// Upper bound on a compiled regex (user rules must not exhaust memory at load).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// How a string needle is compared.
#[derive(Debug, Clone)]
pub(crate) enum StrTest {
    /// Whole-value equality.
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// Substring search, prebuilt (ASCII case-insensitive unless `cased`); the string is the
    /// shortest needle (one automaton may search for several, see [`merge_contains`]); the
    /// finders, one per needle, are there when the needles are few (see [`few_finders`]).
    Contains(String, AhoCorasick, Box<[Finder<'static>]>),
    /// `*`: any string (including empty).
    Any,
    /// Wildcards in the middle, or a `re` modifier.
    Regex(Regex),
}

/// A string comparison with its case rule (`needle` is already lowercase unless `cased`).
#[derive(Debug, Clone)]
pub(crate) struct StrMatch {
    pub test: StrTest,
    pub cased: bool,
}

/// Numeric comparison operators (`gt`, `gte`, `lt`, `lte`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// One expected value, compiled.
#[derive(Debug, Clone)]
pub(crate) enum ValueMatch {
    /// `null`: the field is missing or null (handled at field level, never matches a value).
    Null,
    /// Any of these string tests (base64offset yields three).
    Str(Vec<StrMatch>),
    Num(NumOp, f64),
    Cidr(IpNet),
}

/// Render a scalar event value as text without allocating (numbers go to `buf`).
pub(crate) fn scalar_text<'v>(v: ValueRef<'v>, buf: &'v mut [u8; 40]) -> Option<&'v str> {
    let v = match v {
        ValueRef::Str(s) => return Some(s),
        ValueRef::Json(v) => v,
    };
    match v {
        Value::String(s) => Some(s),
        Value::Bool(true) => Some("true"),
        Value::Bool(false) => Some("false"),
        Value::Number(n) => {
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            write!(cursor, "{n}").ok()?;
            let len = usize::try_from(cursor.position()).ok()?;
            std::str::from_utf8(buf.get(..len)?).ok()
        }
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// String tests against a value. A field that holds an object or a list (Sigma rules write
/// `requestParameters|contains: Suspended` for SIEMs that store it as text) matches when any
/// scalar nested in it matches.
fn str_match(tests: &[StrMatch], v: &Value, depth: usize) -> bool {
    match v {
        Value::Object(map) => depth < 32 && map.values().any(|i| str_match(tests, i, depth + 1)),
        Value::Array(items) => depth < 32 && items.iter().any(|i| str_match(tests, i, depth + 1)),
        _ => {
            let mut buf = [0u8; 40];
            scalar_text(ValueRef::Json(v), &mut buf)
                .is_some_and(|text| tests.iter().any(|t| t.is_match(text)))
        }
    }
}

impl ValueMatch {
    /// Whether the single (non-list) event value `v` matches.
    #[cfg(test)]
    pub(crate) fn is_match(&self, v: &Value) -> bool {
        self.is_match_ref(ValueRef::Json(v))
    }

    /// Whether the single (non-list) event value `v` matches; a borrowed string compares
    /// exactly as the same string parsed would.
    pub(crate) fn is_match_ref(&self, v: ValueRef<'_>) -> bool {
        match self {
            ValueMatch::Null => v.is_null(),
            ValueMatch::Str(tests) => match v {
                ValueRef::Str(s) => tests.iter().any(|t| t.is_match(s)),
                ValueRef::Json(v) => str_match(tests, v, 0),
            },
            ValueMatch::Num(op, want) => {
                let got = match v {
                    ValueRef::Json(Value::Number(n)) => n.as_f64(),
                    ValueRef::Str(s) => s.trim().parse::<f64>().ok(),
                    ValueRef::Json(Value::String(s)) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                got.is_some_and(|got| match op {
                    NumOp::Gt => got > *want,
                    NumOp::Gte => got >= *want,
                    NumOp::Lt => got < *want,
                    NumOp::Lte => got <= *want,
                })
            }
            ValueMatch::Cidr(net) => v
                .as_str()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
                .is_some_and(|ip| net.contains(&ip)),
        }
    }

    /// The exact, wildcard-free needle this matcher needs, if that is all it does
    /// (used to index rules by `eventName`/`eventSource`).
    pub(crate) fn exact_needle(&self) -> Option<&str> {
        match self {
            ValueMatch::Str(tests) => match tests.as_slice() {
                [StrMatch {
                    test: StrTest::Exact(s),
                    ..
                }] => Some(s),
                _ => None,
            },
            _ => None,
        }
    }
}

impl StrMatch {
    /// Whether `text` passes this test.
    pub(crate) fn is_match(&self, text: &str) -> bool {
        if let StrTest::Regex(re) = &self.test {
            return re.is_match(text);
        }
        if self.cased {
            return test_bytes(&self.test, text, false);
        }
        if text.is_ascii() {
            // needles are lowercase; compare ASCII case-insensitively without allocating
            test_bytes(&self.test, text, true)
        } else {
            test_bytes(&self.test, &text.to_lowercase(), false)
        }
    }
}

fn test_bytes(test: &StrTest, text: &str, fold: bool) -> bool {
    let eq = |a: &[u8], b: &[u8]| {
        if fold {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    let t = text.as_bytes();
    match test {
        StrTest::Exact(n) => eq(t, n.as_bytes()),
        StrTest::Prefix(n) => t.get(..n.len()).is_some_and(|h| eq(h, n.as_bytes())),
        StrTest::Suffix(n) => t
            .len()
            .checked_sub(n.len())
            .and_then(|start| t.get(start..))
            .is_some_and(|h| eq(h, n.as_bytes())),
        // the finder was built case-insensitive for uncased needles (lowercase haystacks
        // for non-ASCII text are fine too: the needle is lowercase)
        StrTest::Contains(n, finder, few) => {
            n.len() <= t.len() && search_few(few, t, fold).unwrap_or_else(|| finder.is_match(t))
        }
        StrTest::Any => true,
        StrTest::Regex(re) => re.is_match(text),
    }
}

/// Most needles searched one by one instead of by the automaton.
const FEW_NEEDLES: usize = 8;

/// Longest value lowercased on the stack for [`search_few`].
const FEW_HAYSTACK: usize = 256;

/// One SIMD substring finder per needle when there are at most [`FEW_NEEDLES`]: for a few
/// short needles over a short value (`userAgent|contains: [trufflehog, pacu, kali, ...]`
/// is read for every record) a few vector searches cost less than stepping the automaton
/// through every byte. None (the automaton searches) for longer lists.
fn few_finders(needles: &[String]) -> Box<[Finder<'static>]> {
    if needles.len() > FEW_NEEDLES {
        return Box::default();
    }
    needles
        .iter()
        .map(|n| Finder::new(n.as_bytes()).into_owned())
        .collect()
}

/// Whether `t` contains one of the needles of `few`, ASCII case-insensitively when `fold`
/// (the needles are lowercase); None when the automaton must answer (no finders, or a value
/// too long to lowercase on the stack).
fn search_few(few: &[Finder<'static>], t: &[u8], fold: bool) -> Option<bool> {
    if few.is_empty() {
        return None;
    }
    if !fold {
        return Some(few.iter().any(|f| f.find(t).is_some()));
    }
    let mut buf = [0u8; FEW_HAYSTACK];
    let lower = buf.get_mut(..t.len())?;
    lower.copy_from_slice(t);
    lower.make_ascii_lowercase();
    Some(few.iter().any(|f| f.find(lower).is_some()))
}

/// A piece of a Sigma value after escape processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(char),
    /// `*`
    Star,
    /// `?`
    One,
}

/// Split a Sigma plain value into literal characters and wildcards.
///
/// Sigma escaping: `\*`, `\?` and `\\` are literals; any other backslash is itself literal
/// (so Windows paths such as `C:\Windows` need no doubling).
pub(crate) fn pieces(value: &str) -> Vec<Piece> {
    let mut out = Vec::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&next @ ('*' | '?' | '\\')) => {
                    out.push(Piece::Lit(next));
                    chars.next();
                }
                _ => out.push(Piece::Lit('\\')),
            },
            '*' => out.push(Piece::Star),
            '?' => out.push(Piece::One),
            c => out.push(Piece::Lit(c)),
        }
    }
    out
}

/// Pieces of a value that must be taken literally (base64 output, field references).
pub(crate) fn literal_pieces(value: &str) -> Vec<Piece> {
    value.chars().map(Piece::Lit).collect()
}

/// Compile wildcard pieces into the cheapest test that is equivalent.
pub(crate) fn compile_pieces(pieces: &[Piece], cased: bool) -> Result<StrMatch, String> {
    let lead = pieces.iter().take_while(|p| **p == Piece::Star).count();
    let rest = pieces.get(lead..).unwrap_or_default();
    let trail = rest.iter().rev().take_while(|p| **p == Piece::Star).count();
    let core = rest.get(..rest.len() - trail).unwrap_or_default();
    let literal: Option<String> = core
        .iter()
        .map(|p| match p {
            Piece::Lit(c) => Some(*c),
            _ => None,
        })
        .collect();
    let fold = |s: String| if cased { s } else { s.to_lowercase() };
    let test = match literal {
        Some(lit) if lit.is_empty() && (lead > 0 || trail > 0) => StrTest::Any,
        Some(lit) => match (lead > 0, trail > 0) {
            (false, false) => StrTest::Exact(fold(lit)),
            (false, true) => StrTest::Prefix(fold(lit)),
            (true, false) => StrTest::Suffix(fold(lit)),
            (true, true) => {
                let needle = fold(lit);
                let finder = AhoCorasick::builder()
                    .ascii_case_insensitive(!cased)
                    .build([needle.as_str()])
                    .map_err(|e| format!("cannot build a matcher for `{needle}`: {e}"))?;
                let few = few_finders(std::slice::from_ref(&needle));
                StrTest::Contains(needle, finder, few)
            }
        },
        None => {
            let mut re = String::from("^");
            for p in pieces {
                match p {
                    Piece::Star => re.push_str(".*"),
                    Piece::One => re.push('.'),
                    Piece::Lit(c) => re.push_str(&regex::escape(c.encode_utf8(&mut [0u8; 4]))),
                }
            }
            re.push('$');
            StrTest::Regex(build_regex(&re, !cased, false, true)?)
        }
    };
    Ok(StrMatch { test, cased })
}

/// Fold the plain `contains` values of an any-of list (`userAgent|contains: [a, b, c]`) into
/// one automaton per case rule, so a value is searched once instead of once per needle.
/// The list matches exactly when it did before: a value contains one of the needles.
pub(crate) fn merge_contains(values: Vec<ValueMatch>) -> Result<Vec<ValueMatch>, String> {
    let mut out = Vec::with_capacity(values.len());
    // needles by case rule: [uncased, cased]
    let mut needles: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let mut at: [Option<usize>; 2] = [None, None];
    for v in values {
        match v {
            ValueMatch::Str(tests) if is_single_contains(&tests) => {
                let Some(StrMatch {
                    test: StrTest::Contains(n, ..),
                    cased,
                }) = tests.into_iter().next()
                else {
                    continue;
                };
                let slot = usize::from(cased);
                needles[slot].push(n);
                if at[slot].is_none() {
                    at[slot] = Some(out.len());
                    out.push(ValueMatch::Null); // replaced below
                }
            }
            other => out.push(other),
        }
    }
    for (slot, list) in needles.into_iter().enumerate() {
        let Some(i) = at[slot] else { continue };
        let cased = slot == 1;
        let shortest = list
            .iter()
            .min_by_key(|n| n.len())
            .cloned()
            .unwrap_or_default();
        let finder = AhoCorasick::builder()
            .ascii_case_insensitive(!cased)
            .build(&list)
            .map_err(|e| format!("cannot build a matcher for {list:?}: {e}"))?;
        let few = few_finders(&list);
        if let Some(slot) = out.get_mut(i) {
            *slot = ValueMatch::Str(vec![StrMatch {
                test: StrTest::Contains(shortest, finder, few),
                cased,
            }]);
        }
    }
    Ok(out)
}

fn is_single_contains(tests: &[StrMatch]) -> bool {
    matches!(
        tests,
        [StrMatch {
            test: StrTest::Contains(..),
            ..
        }]
    )
}

/// Build a regex with the size limit every user-supplied pattern gets.
pub(crate) fn build_regex(
    pattern: &str,
    insensitive: bool,
    multi_line: bool,
    dot_all: bool,
) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .case_insensitive(insensitive)
        .multi_line(multi_line)
        .dot_matches_new_line(dot_all)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
}

/// Parse a `cidr` value: a network (`10.0.0.0/8`, `2001:db8::/32`) or a bare address.
pub(crate) fn parse_cidr(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    if let Ok(net) = value.parse::<IpNet>() {
        return Ok(net);
    }
    value
        .parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{value}` is not a CIDR network or IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(value: &str, cased: bool) -> StrMatch {
        compile_pieces(&pieces(value), cased).unwrap()
    }

    #[test]
    fn few_needles_search_like_the_automaton() {
        let long = format!("{}pacu", "x".repeat(300));
        // (value, matches uncased, matches cased)
        let cases = [
            ("aws-cli PACU/1", true, false),
            ("Pacu!", true, true),
            ("kal", false, false),
            ("Kali Linux", true, false),
            ("xü-xy", true, true),
            ("XÜ-X", true, false),
            // too long to lowercase on the stack: the automaton answers
            (long.as_str(), true, false),
            ("nothing", false, false),
        ];
        for cased in [false, true] {
            let values = ["Pacu", "kali", "ü-x"]
                .iter()
                .map(|v| ValueMatch::Str(vec![m(&format!("*{v}*"), cased)]))
                .collect();
            let merged = merge_contains(values).unwrap();
            assert_eq!(merged.len(), 1);
            let finders = match merged.first() {
                Some(ValueMatch::Str(tests)) => match tests.as_slice() {
                    [StrMatch {
                        test: StrTest::Contains(_, _, few),
                        ..
                    }] => few.len(),
                    _ => 0,
                },
                _ => 0,
            };
            assert_eq!(finders, 3);
            for (value, uncased, with_case) in &cases {
                let want = if cased { *with_case } else { *uncased };
                assert_eq!(merged[0].is_match(&json!(value)), want, "{value} {cased}");
            }
        }
    }

    #[test]
    fn plain_values_compile_to_cheap_tests() {
        assert!(matches!(m("abc", false).test, StrTest::Exact(ref s) if s == "abc"));
        assert!(matches!(m("ab*", false).test, StrTest::Prefix(_)));
        assert!(matches!(m("*ab", false).test, StrTest::Suffix(_)));
        assert!(matches!(m("*ab*", false).test, StrTest::Contains(..)));
        assert!(matches!(m("**", false).test, StrTest::Any));
        assert!(matches!(m("a*b", false).test, StrTest::Regex(_)));
        assert!(matches!(m("a?", false).test, StrTest::Regex(_)));
    }

    #[test]
    fn wildcards_and_escapes() {
        assert!(m("Stop*", false).is_match("StopLogging"));
        assert!(m("a*c", false).is_match("abbbc"));
        assert!(!m("a*c", false).is_match("abbbd"));
        assert!(m("a?c", false).is_match("abc"));
        assert!(!m("a?c", false).is_match("ac"));
        // escaped wildcards are literal
        assert!(m(r"a\*c", false).is_match("a*c"));
        assert!(!m(r"a\*c", false).is_match("abc"));
        assert!(m(r"a\?c", false).is_match("a?c"));
        assert!(!m(r"a\?c", false).is_match("abc"));
        // `\\*` is a literal backslash followed by a wildcard
        assert!(m(r"a\\*", false).is_match(r"a\xyz"));
        // other backslashes are literal
        assert!(m(r"C:\Windows", false).is_match(r"c:\windows"));
        // regex metacharacters in values are literal
        assert!(m("a.c*", false).is_match("a.cd"));
        assert!(!m("a.c*", false).is_match("abcd"));
        assert!(m("a(b*", false).is_match("a(bc"));
    }

    #[test]
    fn case_rules() {
        assert!(m("stoplogging", false).is_match("StopLogging"));
        assert!(m("*LOGG*", false).is_match("StopLogging"));
        assert!(!m("stoplogging", true).is_match("StopLogging"));
        assert!(m("StopLogging", true).is_match("StopLogging"));
        assert!(m("ÄBC", false).is_match("äbc"));
        assert!(m("a*Ä", false).is_match("Abbä"));
        assert!(m("*ÄB*", false).is_match("xxäbxx"));
        assert!(m("*LOG*", false).is_match("StopLogging"));
        assert!(!m("*LOG*", true).is_match("StopLogging"));
        assert!(m("*Log*", true).is_match("StopLogging"));
        assert!(!m("a*Ä", false).is_match("xxAbbä"));
    }

    #[test]
    fn scalar_values_compare_as_text() {
        let t = ValueMatch::Str(vec![m("true", false)]);
        assert!(t.is_match(&json!(true)));
        assert!(t.is_match(&json!("True")));
        assert!(!t.is_match(&json!(false)));
        let n = ValueMatch::Str(vec![m("22", false)]);
        assert!(n.is_match(&json!(22)));
        assert!(n.is_match(&json!("22")));
        assert!(!n.is_match(&json!(23)));
        assert!(!n.is_match(&Value::Null));
        // objects match through their nested scalars
        let c = ValueMatch::Str(vec![m("*suspended*", false)]);
        assert!(c.is_match(&json!({"VersioningConfiguration": {"Status": "Suspended"}})));
        assert!(!c.is_match(&json!({"VersioningConfiguration": {"Status": "Enabled"}})));
        let empty = ValueMatch::Str(vec![m("", false)]);
        assert!(empty.is_match(&json!("")));
        assert!(!empty.is_match(&json!("x")));
        assert!(!empty.is_match(&Value::Null));
    }

    #[test]
    fn borrowed_strings_match_like_parsed_ones() {
        let matchers = [
            ValueMatch::Str(vec![m("*Logg*", false)]),
            ValueMatch::Str(vec![m("stoplogging", true)]),
            ValueMatch::Num(NumOp::Gt, 10.0),
            ValueMatch::Cidr(parse_cidr("10.0.0.0/8").unwrap()),
            ValueMatch::Null,
        ];
        for text in [
            "StopLogging",
            "stoplogging",
            " 11 ",
            "10.1.2.3",
            "",
            "null",
            "Ä",
        ] {
            let parsed = json!(text);
            for mt in &matchers {
                assert_eq!(
                    mt.is_match_ref(ValueRef::Str(text)),
                    mt.is_match(&parsed),
                    "{mt:?} on {text:?}"
                );
            }
        }
    }

    #[test]
    fn merged_contains_lists_match_like_the_list() {
        let list = |cased: bool| {
            ["*kali*", "*Pacu*", "*x*", "*ÄB*"]
                .iter()
                .map(|v| ValueMatch::Str(vec![m(v, cased)]))
                .chain([ValueMatch::Str(vec![m("exact", false)]), ValueMatch::Null])
                .collect::<Vec<_>>()
        };
        for cased in [false, true] {
            let merged = merge_contains(list(cased)).unwrap();
            // four needles in one automaton, the other matchers kept in place
            assert_eq!(merged.len(), 3);
            for text in [
                "Kali-linux",
                "pacu/1.0",
                "PACU",
                "",
                "none",
                "xx",
                "äb",
                "EXACT",
                "null",
            ] {
                let v = json!(text);
                assert_eq!(
                    merged.iter().any(|mt| mt.is_match(&v)),
                    list(cased).iter().any(|mt| mt.is_match(&v)),
                    "{text:?} cased={cased}"
                );
            }
        }
    }

    #[test]
    fn numeric_comparisons() {
        let gt = ValueMatch::Num(NumOp::Gt, 10.0);
        assert!(gt.is_match(&json!(11)));
        assert!(gt.is_match(&json!("10.5")));
        assert!(!gt.is_match(&json!(10)));
        assert!(!gt.is_match(&json!("ten")));
        assert!(ValueMatch::Num(NumOp::Gte, 10.0).is_match(&json!(10)));
        assert!(ValueMatch::Num(NumOp::Lt, 10.0).is_match(&json!(-1)));
        assert!(ValueMatch::Num(NumOp::Lte, 10.0).is_match(&json!(10.0)));
        assert!(!ValueMatch::Num(NumOp::Lte, 10.0).is_match(&json!(10.01)));
    }

    #[test]
    fn cidr_v4_v6_and_non_ips() {
        let v4 = ValueMatch::Cidr(parse_cidr("10.0.0.0/8").unwrap());
        assert!(v4.is_match(&json!("10.1.2.3")));
        assert!(!v4.is_match(&json!("11.1.2.3")));
        assert!(!v4.is_match(&json!("AWS Internal")));
        assert!(!v4.is_match(&json!("ec2.amazonaws.com")));
        let v6 = ValueMatch::Cidr(parse_cidr("2001:db8::/32").unwrap());
        assert!(v6.is_match(&json!("2001:db8::1")));
        assert!(!v6.is_match(&json!("2001:db9::1")));
        assert!(!v6.is_match(&json!("10.1.2.3")));
        let host = ValueMatch::Cidr(parse_cidr("1.2.3.4").unwrap());
        assert!(host.is_match(&json!("1.2.3.4")));
        assert!(parse_cidr("not-a-net").is_err());
    }

    #[test]
    fn huge_regex_is_refused() {
        assert!(build_regex("(a{1000}){1000}", false, false, false).is_err());
    }
}
