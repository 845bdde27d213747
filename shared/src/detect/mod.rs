//! Detection: the Sigma rule engine ([`sigma`]) and the bundled rule pack ([`pack`]).
//!
//! The engine sees events only through the [`Event`] trait, so it runs on typed CloudTrail
//! records ([`crate::model::Record`]), on `serde_json::Value` (tests, CLI over odd shapes),
//! and on anything else that can answer "which values are at this dotted path".

use serde_json::Value;

pub mod pack;
pub mod sigma;

pub use sigma::{
    CmpOp, CorrelationCondition, CorrelationRatio, CorrelationRule, CorrelationType,
    FailedAttempts, FieldAlias, LoadError, LoadOptions, Rule, RuleSet,
};

/// Top-level CloudTrail fields searched by Sigma keyword (unnamed value list) selections when
/// an [`Event`] does not provide [`Event::any_string_value`] itself.
pub const KEYWORD_FIELDS: &[&str] = &[
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "errorCode",
    "errorMessage",
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "requestID",
    "eventID",
    "readOnly",
    "resources",
    "eventType",
    "apiVersion",
    "managementEvent",
    "recipientAccountId",
    "serviceEventDetails",
    "sharedEventID",
    "vpcEndpointId",
    "vpcEndpointAccountId",
    "eventCategory",
    "addendum",
    "sessionCredentialFromConsole",
    "edgeDeviceDetails",
    "tlsDetails",
    "insightDetails",
];

/// One value found at a path: a string borrowed from the event's own text (no allocation:
/// the common case for CloudTrail leaves), or a parsed JSON value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'s> {
    /// A string value, unescaped.
    Str(&'s str),
    /// Any JSON value (a string too, when the event holds it parsed).
    Json(&'s Value),
}

impl<'s> ValueRef<'s> {
    /// Whether this is JSON `null`.
    pub fn is_null(self) -> bool {
        matches!(self, ValueRef::Json(Value::Null))
    }

    /// The string, when the value is one.
    pub fn as_str(self) -> Option<&'s str> {
        match self {
            ValueRef::Str(s) => Some(s),
            ValueRef::Json(v) => v.as_str(),
        }
    }
}

/// What a rule can ask of an event.
pub trait Event {
    /// Push every value found at the dotted `path` (already split into segments).
    ///
    /// Lists met along the path are flattened (Sigma semantics: a field holding a list
    /// matches when any element matches). A missing field pushes nothing; a JSON `null`
    /// pushes `Value::Null`.
    fn values_at<'s>(&'s self, path: &[Box<str>], out: &mut Vec<&'s Value>);

    /// Whether `f` holds for any value at the dotted `path`: the values of
    /// [`Event::values_at`], in the same order, stopping at the first that passes.
    ///
    /// The rule engine reads fields through this: implementations hand out strings borrowed
    /// from their text ([`ValueRef::Str`]) instead of materialising a `Value` per leaf. The
    /// default collects [`Event::values_at`].
    fn any_value_at<'s>(
        &'s self,
        path: &[Box<str>],
        f: &mut dyn FnMut(ValueRef<'s>) -> bool,
    ) -> bool {
        let mut out = Vec::new();
        self.values_at(path, &mut out);
        out.into_iter().any(|v| f(ValueRef::Json(v)))
    }

    /// `eventName` (for Insights events, `insightDetails.eventName`), for rule indexing.
    fn event_name(&self) -> Option<&str>;

    /// `eventSource` (for Insights events, `insightDetails.eventSource`), for rule indexing.
    fn event_source(&self) -> Option<&str>;

    /// Whether `pred` holds for any string value anywhere in the event (Sigma keyword
    /// searches). The default walks the values of [`KEYWORD_FIELDS`] via
    /// [`Event::values_at`]; implementations holding the whole record can do better.
    fn any_string_value(&self, pred: &mut dyn FnMut(&str) -> bool) -> bool {
        let mut out = Vec::new();
        for field in KEYWORD_FIELDS {
            out.clear();
            self.values_at(&[Box::from(*field)], &mut out);
            if out.iter().any(|v| any_string_in(v, pred, 0)) {
                return true;
            }
        }
        false
    }
}

/// Whether `pred` holds for any string below `v` (depth-limited: records are shallow).
pub fn any_string_in(v: &Value, pred: &mut dyn FnMut(&str) -> bool, depth: usize) -> bool {
    if depth > 64 {
        return false;
    }
    match v {
        Value::String(s) => pred(s),
        Value::Array(items) => items.iter().any(|i| any_string_in(i, pred, depth + 1)),
        Value::Object(map) => map.values().any(|i| any_string_in(i, pred, depth + 1)),
        _ => false,
    }
}

/// Walk `path` below `root`, flattening lists; shared by every [`Event`] implementation.
pub fn walk<'s>(root: &'s Value, path: &[Box<str>], out: &mut Vec<&'s Value>) {
    match path.split_first() {
        None => match root {
            Value::Array(items) => out.extend(items.iter()),
            other => out.push(other),
        },
        Some((head, rest)) => match root {
            Value::Object(map) => {
                if let Some(v) = map.get(head.as_ref()) {
                    walk(v, rest, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, path, out);
                }
            }
            _ => {}
        },
    }
}

/// [`walk`] as a search: whether `f` holds for any value it would push, stopping at the
/// first (no collection).
pub fn any_in_walk<'s>(
    root: &'s Value,
    path: &[Box<str>],
    f: &mut dyn FnMut(ValueRef<'s>) -> bool,
) -> bool {
    match path.split_first() {
        None => match root {
            Value::Array(items) => items.iter().any(|i| f(ValueRef::Json(i))),
            other => f(ValueRef::Json(other)),
        },
        Some((head, rest)) => match root {
            Value::Object(map) => map
                .get(head.as_ref())
                .is_some_and(|v| any_in_walk(v, rest, f)),
            Value::Array(items) => items.iter().any(|i| any_in_walk(i, path, f)),
            _ => false,
        },
    }
}

impl Event for Value {
    fn values_at<'s>(&'s self, path: &[Box<str>], out: &mut Vec<&'s Value>) {
        if path.is_empty() {
            return;
        }
        walk(self, path, out);
    }

    fn any_value_at<'s>(
        &'s self,
        path: &[Box<str>],
        f: &mut dyn FnMut(ValueRef<'s>) -> bool,
    ) -> bool {
        !path.is_empty() && any_in_walk(self, path, f)
    }

    fn event_name(&self) -> Option<&str> {
        self.get("eventName")
            .or_else(|| self.get("insightDetails")?.get("eventName"))?
            .as_str()
    }

    fn event_source(&self) -> Option<&str> {
        self.get("eventSource")
            .or_else(|| self.get("insightDetails")?.get("eventSource"))?
            .as_str()
    }

    fn any_string_value(&self, pred: &mut dyn FnMut(&str) -> bool) -> bool {
        any_string_in(self, pred, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(p: &str) -> Vec<Box<str>> {
        p.split('.').map(Box::from).collect()
    }

    #[test]
    fn lists_along_the_path_are_flattened() {
        let ev = json!({"requestParameters": {"ipPermissions": {"items": [
            {"ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}, {"cidrIp": "10.0.0.0/8"}]}},
            {"ipRanges": {"items": [{"cidrIp": "1.2.3.4/32"}]}}
        ]}}});
        let mut out = Vec::new();
        ev.values_at(
            &path("requestParameters.ipPermissions.items.ipRanges.items.cidrIp"),
            &mut out,
        );
        let got: Vec<_> = out.iter().filter_map(|v| v.as_str()).collect();
        assert_eq!(got, ["0.0.0.0/0", "10.0.0.0/8", "1.2.3.4/32"]);
    }

    #[test]
    fn null_is_pushed_missing_is_not() {
        let ev = json!({"errorCode": null});
        let mut out = Vec::new();
        ev.values_at(&path("errorCode"), &mut out);
        assert_eq!(out, [&Value::Null]);
        out.clear();
        ev.values_at(&path("errorMessage"), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn any_value_at_sees_what_values_at_pushes() {
        let ev = json!({"a": [{"b": 1}, {"b": [2, 3]}, {"c": 4}], "n": null, "s": "x"});
        for p in ["a.b", "a", "n", "s", "missing", "a.c", "s.x"] {
            let mut want = Vec::new();
            ev.values_at(&path(p), &mut want);
            let mut got = Vec::new();
            let stopped = ev.any_value_at(&path(p), &mut |v| {
                got.push(v);
                false
            });
            assert!(!stopped, "{p}");
            let want: Vec<_> = want.into_iter().map(ValueRef::Json).collect();
            assert_eq!(got, want, "{p}");
        }
        // the search stops at the first value that passes
        let mut seen = 0;
        assert!(ev.any_value_at(&path("a.b"), &mut |_| {
            seen += 1;
            true
        }));
        assert_eq!(seen, 1);
    }

    #[test]
    fn insights_names_come_from_insight_details() {
        let ev = json!({"insightDetails": {"eventName": "PutObject", "eventSource": "s3.amazonaws.com"}});
        assert_eq!(ev.event_name(), Some("PutObject"));
        assert_eq!(ev.event_source(), Some("s3.amazonaws.com"));
    }
}
