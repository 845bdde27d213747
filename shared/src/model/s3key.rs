//! [`S3Key`]: what an object key in a trail bucket is.
//!
//! CloudTrail delivers to `[prefix/]AWSLogs/[o-orgid/]<account>/CloudTrail/<region>/YYYY/MM/DD/
//! <account>_CloudTrail_<region>_YYYYMMDDTHHMMZ_<rand>.json.gz`; digests go to
//! `CloudTrail-Digest/`, Insights events to `CloudTrail-Insight/`. The same bucket often
//! holds AWS Config files and the `ConfigWritabilityCheckFile`. Parsing never fails: an
//! unrecognised key is [`KeyKind::Other`], to be skipped with a debug log.

use percent_encoding::percent_decode_str;
use std::fmt;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// What an object in a trail bucket holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A CloudTrail log file: evaluate its records.
    Log,
    /// A CloudTrail Insights file: evaluate its records as Insights events.
    Insight,
    /// A digest file (log file integrity validation): not evaluated by the rules.
    Digest,
    /// AWS Config history/snapshot files sharing the bucket.
    Config,
    /// AWS Config's `ConfigWritabilityCheckFile` (or CloudTrail's own test object).
    WritabilityCheck,
    /// Anything else.
    Other,
}

impl KeyKind {
    /// Whether records in such an object are evaluated by the rules.
    pub fn is_evaluated(self) -> bool {
        matches!(self, KeyKind::Log | KeyKind::Insight)
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Log => "log",
            KeyKind::Insight => "insight",
            KeyKind::Digest => "digest",
            KeyKind::Config => "config",
            KeyKind::WritabilityCheck => "writability-check",
            KeyKind::Other => "other",
        })
    }
}

/// A parsed trail-bucket object key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Key {
    key: String,
    /// What the object holds.
    pub kind: KeyKind,
    /// Prefix before `AWSLogs/` (without the trailing `/`), if any.
    pub prefix: Option<String>,
    /// Organization id (`o-...`) of an organization trail path.
    pub org_id: Option<String>,
    /// Account folder.
    pub account: Option<String>,
    /// Region folder.
    pub region: Option<String>,
    /// The date folders.
    pub date: Option<Date>,
    /// The timestamp in the file name (`YYYYMMDDTHHMMZ` for logs, `...SSZ` for digests).
    pub file_time: Option<OffsetDateTime>,
}

/// A notification key that is not valid percent-encoded UTF-8.
#[derive(Debug, thiserror::Error)]
#[error("object key {0:?} is not valid percent-encoded UTF-8")]
pub struct KeyDecodeError(pub String);

/// Decode a key as it appears in S3 event notifications: form-encoded, so `+` is a space
/// and everything else is percent-encoded.
///
/// # Errors
/// [`KeyDecodeError`] when the decoded bytes are not UTF-8.
pub fn decode_notification_key(raw: &str) -> Result<String, KeyDecodeError> {
    // notification keys are form-encoded: '+' is a space, a real '+' arrives as %2B
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| KeyDecodeError(raw.to_owned()))
}

fn parse_date(y: &str, m: &str, d: &str) -> Option<Date> {
    let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

/// `YYYYMMDDTHHMMZ` or `YYYYMMDDTHHMMSSZ`.
fn parse_compact_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.strip_suffix('Z')?;
    let (d, t) = s.split_once('T')?;
    if d.len() != 8 || !(t.len() == 4 || t.len() == 6) || !s.is_ascii() {
        return None;
    }
    let date = parse_date(d.get(0..4)?, d.get(4..6)?, d.get(6..8)?)?;
    let hh = t.get(0..2)?.parse().ok()?;
    let mm = t.get(2..4)?.parse().ok()?;
    let ss = if t.len() == 6 {
        t.get(4..6)?.parse().ok()?
    } else {
        0
    };
    let time = Time::from_hms(hh, mm, ss).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

impl S3Key {
    /// Parse a (decoded) object key. Never fails; see [`KeyKind::Other`].
    pub fn parse(key: &str) -> S3Key {
        let mut out = S3Key {
            key: key.to_owned(),
            kind: KeyKind::Other,
            prefix: None,
            org_id: None,
            account: None,
            region: None,
            date: None,
            file_time: None,
        };
        let file_name = key.rsplit('/').next().unwrap_or(key);
        if file_name == "ConfigWritabilityCheckFile" || file_name == "CloudTrail_Test_Object" {
            out.kind = KeyKind::WritabilityCheck;
            return out;
        }
        let segs: Vec<&str> = key.split('/').collect();
        let Some(at) = segs.iter().position(|s| *s == "AWSLogs") else {
            return out;
        };
        let prefix = segs[..at].join("/");
        out.prefix = (!prefix.is_empty()).then_some(prefix);
        let mut rest = segs.get(at + 1..).unwrap_or_default();
        if let Some(first) = rest.first() {
            if first.starts_with("o-") {
                out.org_id = Some((*first).to_owned());
                rest = rest.get(1..).unwrap_or_default();
            }
        }
        // <account>/<Kind>/<region>/YYYY/MM/DD/<file>
        let [account, kind, region, y, m, d, file] = rest else {
            // AWS Config uses the same AWSLogs/<account>/Config/... tree with other depths
            if rest.get(1) == Some(&"Config") {
                out.account = rest.first().map(|s| (*s).to_owned());
                out.kind = KeyKind::Config;
            }
            return out;
        };
        out.account = Some((*account).to_owned());
        out.region = Some((*region).to_owned());
        out.date = parse_date(y, m, d);
        let kind = match *kind {
            "CloudTrail" => KeyKind::Log,
            "CloudTrail-Insight" => KeyKind::Insight,
            "CloudTrail-Digest" => KeyKind::Digest,
            "Config" => KeyKind::Config,
            _ => KeyKind::Other,
        };
        if kind == KeyKind::Config {
            out.kind = kind;
            return out;
        }
        let is_json = file.ends_with(".json.gz") || file.ends_with(".json");
        if kind == KeyKind::Other || !is_json || out.date.is_none() {
            return out;
        }
        out.kind = kind;
        // <account>_CloudTrail_<region>_<time>_<rand>.json.gz: the time is the 4th field
        // (region names hold '-', never '_'); digests carry it last, before any _backfill
        let stem = file.trim_end_matches(".gz").trim_end_matches(".json");
        let parts: Vec<&str> = stem.split('_').collect();
        out.file_time = match kind {
            KeyKind::Digest => parts.iter().rev().find_map(|p| parse_compact_time(p)),
            _ => parts.get(3).and_then(|p| parse_compact_time(p)),
        };
        out
    }

    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for S3Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn account_log_key() {
        let k = S3Key::parse("AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T1445Z_9nYN7gp2eWAJHIfT.json.gz");
        assert_eq!(k.kind, KeyKind::Log);
        assert_eq!(k.account.as_deref(), Some("111122223333"));
        assert_eq!(k.region.as_deref(), Some("us-east-2"));
        assert_eq!(k.prefix, None);
        assert_eq!(k.org_id, None);
        assert_eq!(k.file_time.map(|t| t.unix_timestamp()), Some(1_439_822_700));
        assert_eq!(k.date.map(|d| d.to_string()).as_deref(), Some("2015-08-17"));
    }

    #[test]
    fn org_trail_with_prefix() {
        let k = S3Key::parse("audit/cloudtrail/AWSLogs/o-a1b2c3d4e5/444455556666/CloudTrail/eu-west-1/2025/03/01/444455556666_CloudTrail_eu-west-1_20250301T0009Z_abcdEFGH12345678.json.gz");
        assert_eq!(k.kind, KeyKind::Log);
        assert_eq!(k.prefix.as_deref(), Some("audit/cloudtrail"));
        assert_eq!(k.org_id.as_deref(), Some("o-a1b2c3d4e5"));
        assert_eq!(k.account.as_deref(), Some("444455556666"));
    }

    #[test]
    fn digests_insights_config_and_others() {
        let d = S3Key::parse("AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_your-trail-name_us-east-2_20150817T140131Z.json.gz");
        assert_eq!(d.kind, KeyKind::Digest);
        assert_eq!(d.file_time.map(|t| t.unix_timestamp()), Some(1_439_820_091));
        let i = S3Key::parse("AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2024/01/01/111122223333_CloudTrail-Insight_us-east-1_20240101T0000Z_abc.json.gz");
        assert_eq!(i.kind, KeyKind::Insight);
        assert!(i.kind.is_evaluated());
        assert_eq!(
            S3Key::parse("AWSLogs/111122223333/Config/ConfigWritabilityCheckFile").kind,
            KeyKind::WritabilityCheck
        );
        assert_eq!(
            S3Key::parse("AWSLogs/111122223333/Config/us-east-1/2024/1/2/ConfigHistory/x.json.gz")
                .kind,
            KeyKind::Config
        );
        assert_eq!(S3Key::parse("random/file.txt").kind, KeyKind::Other);
        assert_eq!(
            S3Key::parse("AWSLogs/111122223333/CloudTrail/us-east-1/2024/13/01/x.json.gz").kind,
            KeyKind::Other
        );
        assert_eq!(S3Key::parse("").kind, KeyKind::Other);
    }

    #[test]
    fn notification_keys_are_form_decoded() {
        assert_eq!(
            decode_notification_key("my+logs/AWSLogs/a%2Bb%20c.json.gz").unwrap(),
            "my logs/AWSLogs/a+b c.json.gz"
        );
        assert!(decode_notification_key("%FF").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = S3Key::parse(&s);
            let _ = decode_notification_key(&s);
        }

        #[test]
        fn log_keys_round_trip(acct in "[0-9]{12}", region in "[a-z]{2}-[a-z]{4,9}-[1-9]", prefix in "([a-z0-9-]{1,10}/){0,3}", rand in "[A-Za-z0-9]{16}", h in 0u8..24, mi in 0u8..60) {
            let key = format!("{prefix}AWSLogs/{acct}/CloudTrail/{region}/2024/02/29/{acct}_CloudTrail_{region}_20240229T{h:02}{mi:02}Z_{rand}.json.gz");
            let k = S3Key::parse(&key);
            prop_assert_eq!(k.kind, KeyKind::Log);
            prop_assert_eq!(k.account.as_deref(), Some(acct.as_str()));
            prop_assert_eq!(k.region.as_deref(), Some(region.as_str()));
            let want_prefix = prefix.trim_end_matches('/');
            prop_assert_eq!(k.prefix.as_deref(), (!want_prefix.is_empty()).then_some(want_prefix));
            prop_assert_eq!(k.as_str(), key.as_str());
            let t = k.file_time.unwrap();
            prop_assert_eq!((t.hour(), t.minute()), (h, mi));
        }
    }
}
