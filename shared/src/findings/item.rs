//! The DynamoDB item layout of a stored finding, as plain data (no SDK types).
//!
//! Owns the key formats every reader of the findings table relies on:
//! - `pk = ACCT#<account>#<YYYY-MM-DD of eventTime>`, `sk = F#<eventTime>#<id>`: one
//!   account-day per partition, sorted by time; for a correlation finding the time is its
//!   episode's start, so every report of one episode (each may show a later event) is one
//!   item;
//! - index `by-rule`: `gsi1pk = RULE#<rule_id>`, `gsi1sk = <eventTime>#<id>`;
//! - index `by-principal`: `gsi2pk = PRINCIPAL#<principal or unknown>`, `gsi2sk` likewise.
//!
//! The keys depend only on the finding, so `mark_alerted` (and a remediation lookup) can
//! address an item without reading it. The item carries a compact copy of the record, cut
//! so the whole item stays under [`MAX_ITEM_BYTES`] (DynamoDB's hard limit is 400 KB) and
//! marked `record_truncated`. `expires_at` is the TTL attribute. Attributes set later:
//! `alerted` (its alert went out, or it needs none), `group_id` (its alert group, see
//! `suppress::group`) and `grouped = true` (a follower, counted in its group leader's
//! alert). This module does no I/O; `ports::aws` converts [`Attr`] to SDK attribute values.

use crate::findings::Finding;
use crate::model::parse_time;
use crate::ports::StoredFinding;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The items' size budget, below DynamoDB's 400 KB item limit with room for overhead.
pub const MAX_ITEM_BYTES: usize = 350_000;

/// Name of the index on `gsi1pk`/`gsi1sk` (findings by rule).
pub const INDEX_BY_RULE: &str = "by-rule";
/// Name of the index on `gsi2pk`/`gsi2sk` (findings by principal).
pub const INDEX_BY_PRINCIPAL: &str = "by-principal";

/// One attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// String.
    S(String),
    /// Number, as its decimal text (DynamoDB's wire form).
    N(String),
    /// Boolean.
    Bool(bool),
    /// List.
    L(Vec<Attr>),
}

impl Attr {
    /// Bytes this value counts towards the item size (DynamoDB's rules: string length in
    /// UTF-8, numbers ≤ 21 bytes, booleans 1, lists 3 + elements + 1 each).
    pub fn size(&self) -> usize {
        match self {
            Attr::S(s) => s.len(),
            Attr::N(n) => n.len().min(21),
            Attr::Bool(_) => 1,
            Attr::L(items) => 3 + items.iter().map(|i| i.size() + 1).sum::<usize>(),
        }
    }
}

/// An item: attribute name → value.
pub type Item = BTreeMap<String, Attr>;

/// DynamoDB's size of `item`: names plus values.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum()
}

/// The day of `event_time` (`YYYY-MM-DD`), or `unknown` when it is missing or unparsable.
pub fn event_day(event_time: &str) -> String {
    parse_time(event_time)
        .map(|t| {
            let d = t.date();
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "unknown"
    } else {
        s
    }
}

/// The time a finding's keys sort by: its event's, or its correlation episode's start.
fn key_time(finding: &Finding) -> &str {
    finding
        .episode_start
        .as_deref()
        .unwrap_or(finding.event_time.as_str())
}

/// The primary key (`pk`, `sk`) of `finding`'s item.
pub fn keys(finding: &Finding) -> (String, String) {
    let time = key_time(finding);
    let pk = format!(
        "ACCT#{}#{}",
        or_unknown(&finding.account_id),
        event_day(time)
    );
    let sk = format!("F#{}#{}", or_unknown(time), finding.id);
    (pk, sk)
}

/// Parse then re-serialise `json` without insignificant whitespace; the text as given when
/// it is not valid JSON.
fn compact(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(v) => v.to_string(),
        Err(_) => json.to_owned(),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Build the item for `stored` at `now`, expiring `retention_days` later.
pub fn to_item(stored: &StoredFinding<'_>, now: OffsetDateTime, retention_days: u32) -> Item {
    let f = stored.finding;
    let s = |v: &str| Attr::S(v.to_owned());
    let mut item = Item::new();
    let (pk, sk) = keys(f);
    let sort = format!("{}#{}", or_unknown(key_time(f)), f.id);
    item.insert("pk".into(), Attr::S(pk));
    item.insert("sk".into(), Attr::S(sk));
    item.insert("gsi1pk".into(), Attr::S(format!("RULE#{}", f.rule_id)));
    item.insert("gsi1sk".into(), s(&sort));
    let principal = f.principal.as_deref().unwrap_or("unknown");
    item.insert(
        "gsi2pk".into(),
        Attr::S(format!("PRINCIPAL#{}", or_unknown(principal))),
    );
    item.insert("gsi2sk".into(), Attr::S(sort));
    for (name, value) in [
        ("id", &f.id),
        ("rule_id", &f.rule_id),
        ("title", &f.title),
        ("event_id", &f.event_id),
        ("event_name", &f.event_name),
        ("event_time", &f.event_time),
        ("event_source", &f.event_source),
        ("account_id", &f.account_id),
        ("region", &f.region),
        ("source", &f.source),
    ] {
        item.insert(name.into(), s(value));
    }
    item.insert("severity".into(), s(f.severity.as_str()));
    item.insert(
        "tags".into(),
        Attr::L(f.tags.iter().map(|t| s(t)).collect()),
    );
    for (name, value) in [
        ("principal", &f.principal),
        ("source_ip", &f.source_ip),
        ("error_code", &f.error_code),
        ("episode_start", &f.episode_start),
    ] {
        if let Some(v) = value {
            item.insert(name.into(), s(v));
        }
    }
    if let Some(k) = stored.object_key {
        item.insert("object_key".into(), s(k));
    }
    let ttl = now.unix_timestamp() + i64::from(retention_days) * 86_400;
    item.insert("expires_at".into(), Attr::N(ttl.to_string()));
    item.insert("alerted".into(), Attr::Bool(false));
    item.insert("created_at".into(), Attr::S(rfc3339(now)));
    if let Some(json) = stored.record_json {
        let record = compact(json);
        // budget what is left after every other attribute, the names "record" and
        // "record_truncated" and the flag itself
        let used = item_size(&item) + "record".len() + "record_truncated".len() + 1;
        let budget = MAX_ITEM_BYTES.saturating_sub(used);
        let kept = cut(&record, budget);
        if kept.len() < record.len() {
            item.insert("record_truncated".into(), Attr::Bool(true));
        }
        item.insert("record".into(), s(kept));
    }
    item
}

/// `created_at`: RFC 3339, else the epoch seconds (never empty).
fn rfc3339(t: OffsetDateTime) -> String {
    crate::model::format_time(t).unwrap_or_else(|| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Severity;

    fn finding(event_time: &str) -> Finding {
        Finding {
            episode_start: None,
            id: "0123456789abcdef0123456789abcdef".into(),
            rule_id: "aws-cloudtrail-stop-logging".into(),
            title: "CloudTrail logging stopped".into(),
            severity: Severity::High,
            tags: vec!["attack.defense-evasion".into()],
            event_id: "e-1".into(),
            event_name: "StopLogging".into(),
            event_time: event_time.into(),
            event_source: "cloudtrail.amazonaws.com".into(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            source: "s3://b/k".into(),
            principal: Some("arn:aws:iam::111122223333:user/alice".into()),
            source_ip: Some("198.51.100.7".into()),
            error_code: None,
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    #[test]
    fn a_correlation_episode_keeps_its_keys_whichever_event_it_shows() {
        let mut first = finding("2026-11-23T23:58:00Z");
        first.episode_start = Some("2026-11-23T23:50:00Z".into());
        let mut later = first.clone();
        later.event_time = "2026-11-24T00:03:00Z".into();
        later.event_id = "e-2".into();
        assert_eq!(keys(&first), keys(&later));
        let (pk, sk) = keys(&later);
        assert_eq!(pk, "ACCT#111122223333#2026-11-23");
        assert_eq!(sk, format!("F#2026-11-23T23:50:00Z#{}", later.id));
        let item = to_item(
            &StoredFinding {
                finding: &later,
                record_json: None,
                object_key: None,
            },
            now(),
            30,
        );
        assert_eq!(
            str_attr(&item, "gsi1sk"),
            format!("2026-11-23T23:50:00Z#{}", later.id)
        );
        assert_eq!(str_attr(&item, "event_time"), "2026-11-24T00:03:00Z");
        assert_eq!(str_attr(&item, "episode_start"), "2026-11-23T23:50:00Z");
        // a record finding is keyed by its event's time
        assert_eq!(
            keys(&finding("2026-11-24T00:03:00Z")).1,
            format!("F#2026-11-24T00:03:00Z#{}", later.id)
        );
    }

    fn str_attr<'a>(item: &'a Item, k: &str) -> &'a str {
        match item.get(k) {
            Some(Attr::S(s)) => s,
            other => panic!("{k}: {other:?}"),
        }
    }

    #[test]
    fn keys_and_attributes() {
        let f = finding("2024-03-05T23:59:59Z");
        let rec = "{ \"eventID\" : \"e-1\",\n \"eventName\": \"StopLogging\" }";
        let sf = StoredFinding {
            finding: &f,
            record_json: Some(rec),
            object_key: Some("AWSLogs/111122223333/x.json.gz"),
        };
        let item = to_item(&sf, now(), 30);
        assert_eq!(str_attr(&item, "pk"), "ACCT#111122223333#2024-03-05");
        assert_eq!(
            str_attr(&item, "sk"),
            "F#2024-03-05T23:59:59Z#0123456789abcdef0123456789abcdef"
        );
        assert_eq!(
            str_attr(&item, "gsi1pk"),
            "RULE#aws-cloudtrail-stop-logging"
        );
        assert_eq!(
            str_attr(&item, "gsi2pk"),
            "PRINCIPAL#arn:aws:iam::111122223333:user/alice"
        );
        assert_eq!(str_attr(&item, "gsi1sk"), str_attr(&item, "gsi2sk"));
        assert_eq!(str_attr(&item, "severity"), "high");
        assert_eq!(
            item.get("expires_at"),
            Some(&Attr::N((1_700_000_000i64 + 30 * 86_400).to_string()))
        );
        assert_eq!(item.get("alerted"), Some(&Attr::Bool(false)));
        // compact copy, no truncation flag
        assert_eq!(
            str_attr(&item, "record"),
            r#"{"eventID":"e-1","eventName":"StopLogging"}"#
        );
        assert!(!item.contains_key("record_truncated"));
        assert_eq!(
            str_attr(&item, "object_key"),
            "AWSLogs/111122223333/x.json.gz"
        );
        assert_eq!(
            item.get("tags"),
            Some(&Attr::L(vec![Attr::S("attack.defense-evasion".into())]))
        );
        assert_eq!(keys(&f), (item_pk(&item), item_sk(&item)));
    }

    fn item_pk(item: &Item) -> String {
        str_attr(item, "pk").to_owned()
    }
    fn item_sk(item: &Item) -> String {
        str_attr(item, "sk").to_owned()
    }

    #[test]
    fn missing_event_time_and_principal_are_unknown() {
        let mut f = finding("");
        f.principal = None;
        f.account_id = String::new();
        let item = to_item(&StoredFinding::from(&f), now(), 1);
        assert_eq!(str_attr(&item, "pk"), "ACCT#unknown#unknown");
        assert!(str_attr(&item, "sk").starts_with("F#unknown#"));
        assert_eq!(str_attr(&item, "gsi2pk"), "PRINCIPAL#unknown");
        assert!(!item.contains_key("record") && !item.contains_key("principal"));
        assert_eq!(event_day("not a time"), "unknown");
    }

    #[test]
    fn large_records_are_cut_to_the_item_budget() {
        let f = finding("2024-03-05T00:00:00Z");
        // a valid JSON record of ~600 KB with multi-byte characters at the cut
        let big = format!(r#"{{"eventID":"e-1","blob":"{}"}}"#, "é".repeat(300_000));
        let item = to_item(
            &StoredFinding {
                finding: &f,
                record_json: Some(&big),
                object_key: None,
            },
            now(),
            365,
        );
        assert_eq!(item.get("record_truncated"), Some(&Attr::Bool(true)));
        let size = item_size(&item);
        assert!(size <= MAX_ITEM_BYTES, "{size}");
        assert!(size > MAX_ITEM_BYTES - 8, "budget used: {size}");
        assert!(str_attr(&item, "record").contains(r#""blob":"éé"#));
    }
}
