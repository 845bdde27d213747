//! Bucket policy reading for the bucket checks: which statements make the bucket public,
//! whether non-TLS access is denied, whether CloudTrail's grant is scoped by
//! `aws:SourceArn`. Pure JSON inspection; a policy that does not parse is reported by the
//! caller, never a panic.

use serde_json::Value;

/// A parsed bucket policy: its statements.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Value>,
}

/// Condition keys that tie a `Principal: *` statement to specific callers, networks or
/// resources (the keys S3's own "is public" evaluation treats as restricting).
const RESTRICTING_KEYS: [&str; 14] = [
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:sourceowner",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourceip",
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:userid",
    "aws:sourceorgid",
    "s3:dataaccesspointarn",
    "s3:dataaccesspointaccount",
];

impl Policy {
    /// Parses a policy document.
    ///
    /// # Errors
    /// A message when the document is not JSON or has no `Statement`.
    pub fn parse(doc: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(doc).map_err(|e| format!("policy is not JSON: {e}"))?;
        let statements = match v.get("Statement") {
            Some(Value::Array(a)) => a.clone(),
            Some(s @ Value::Object(_)) => vec![s.clone()],
            _ => return Err("policy has no Statement".into()),
        };
        Ok(Self { statements })
    }

    /// Descriptions (`Sid` or index) of `Allow` statements open to everyone: `Principal: *`
    /// (or `{"AWS": "*"}`) without a condition that restricts the caller.
    pub fn public_statements(&self) -> Vec<String> {
        self.statements
            .iter()
            .enumerate()
            .filter(|(_, s)| effect_is(s, "Allow") && principal_is_everyone(s))
            .filter(|(_, s)| !has_restricting_condition(s))
            .map(|(i, s)| describe(i, s))
            .collect()
    }

    /// Whether a `Deny` for everyone covers `s3:*` on the bucket when
    /// `aws:SecureTransport` is false.
    pub fn denies_insecure_transport(&self, bucket: &str) -> bool {
        self.statements.iter().any(|s| {
            effect_is(s, "Deny")
                && principal_is_everyone(s)
                && strings(s.get("Action"))
                    .iter()
                    .any(|a| a == "*" || a.eq_ignore_ascii_case("s3:*"))
                && covers_bucket(s, bucket)
                && condition_values(s, "aws:securetransport", |op| op.starts_with("bool"))
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case("false"))
        })
    }

    /// The statements that let `cloudtrail.amazonaws.com` write objects, each with whether
    /// it carries an `aws:SourceArn` condition.
    pub fn cloudtrail_write_grants(&self) -> Vec<(String, bool)> {
        self.statements
            .iter()
            .enumerate()
            .filter(|(_, s)| effect_is(s, "Allow"))
            .filter(|(_, s)| {
                let p = s.get("Principal");
                strings(p.and_then(|p| p.get("Service")))
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case("cloudtrail.amazonaws.com"))
            })
            .filter(|(_, s)| {
                strings(s.get("Action")).iter().any(|a| {
                    a == "*"
                        || a.eq_ignore_ascii_case("s3:*")
                        || a.eq_ignore_ascii_case("s3:PutObject")
                })
            })
            .map(|(i, s)| {
                let scoped = !condition_values(s, "aws:sourcearn", |op| {
                    !op.contains("not") && !op.ends_with("ifexists")
                })
                .is_empty();
                (describe(i, s), scoped)
            })
            .collect()
    }
}

fn describe(i: usize, s: &Value) -> String {
    match s.get("Sid").and_then(Value::as_str) {
        Some(sid) if !sid.is_empty() => format!("statement {sid:?}"),
        _ => format!("statement #{}", i + 1),
    }
}

fn effect_is(s: &Value, effect: &str) -> bool {
    s.get("Effect")
        .and_then(Value::as_str)
        .is_some_and(|e| e.eq_ignore_ascii_case(effect))
}

/// A string or an array of strings (anything else: empty).
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::Bool(b)) => vec![b.to_string()],
        _ => Vec::new(),
    }
}

fn principal_is_everyone(s: &Value) -> bool {
    match s.get("Principal") {
        Some(Value::String(p)) => p == "*",
        Some(Value::Object(m)) => strings(m.get("AWS")).iter().any(|p| p == "*"),
        _ => false,
    }
}

fn covers_bucket(s: &Value, bucket: &str) -> bool {
    let arn = format!("arn:aws:s3:::{bucket}");
    strings(s.get("Resource")).iter().any(|r| {
        r == "*"
            || r == &arn
            || r.strip_prefix(arn.as_str())
                .is_some_and(|rest| rest.starts_with('/') || rest == "*")
    })
}

/// Values of condition `key` (case-insensitive) under operators accepted by `op_ok`
/// (given lowercase, e.g. `stringequals`, `forallvalues:stringlike`).
fn condition_values(s: &Value, key: &str, op_ok: impl Fn(&str) -> bool) -> Vec<String> {
    let Some(Value::Object(ops)) = s.get("Condition") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (op, body) in ops {
        let op = op.to_ascii_lowercase();
        if !op_ok(&op) {
            continue;
        }
        if let Value::Object(keys) = body {
            for (k, v) in keys {
                if k.eq_ignore_ascii_case(key) {
                    out.extend(strings(Some(v)));
                }
            }
        }
    }
    out
}

/// Whether a condition limits who can use the statement: a restricting key under a
/// positive, non-`IfExists` operator with concrete values (not `*`, not `0.0.0.0/0`).
fn has_restricting_condition(s: &Value) -> bool {
    let Some(Value::Object(ops)) = s.get("Condition") else {
        return false;
    };
    ops.iter().any(|(op, body)| {
        let op = op.to_ascii_lowercase();
        // a negated operator ("not these accounts") or IfExists (absent key matches) still
        // lets everyone else in
        if op.contains("not") || op.ends_with("ifexists") {
            return false;
        }
        let Value::Object(keys) = body else {
            return false;
        };
        keys.iter().any(|(k, v)| {
            let k = k.to_ascii_lowercase();
            let vals = strings(Some(v));
            RESTRICTING_KEYS.contains(&k.as_str())
                && !vals.is_empty()
                && vals
                    .iter()
                    .all(|x| !x.trim().is_empty() && x != "*" && x != "0.0.0.0/0" && x != "::/0")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Policy {
        Policy::parse(&v.to_string()).unwrap()
    }

    #[test]
    fn public_statements_consider_conditions() {
        let pol = p(json!({"Statement": [
            {"Sid": "Open", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
            {"Sid": "OrgOnly", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::b/*", "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}},
            {"Sid": "Wildcard", "Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::b/*", "Condition": {"StringLike": {"aws:PrincipalOrgID": "*"}}},
            {"Sid": "Negated", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::b/*", "Condition": {"StringNotEquals": {"aws:SourceAccount": "1"}}},
            {"Sid": "AnyIp", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::b/*", "Condition": {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}},
            {"Sid": "Office", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::b/*", "Condition": {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24"]}}},
            {"Sid": "DenyAll", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"},
            {"Sid": "Trail", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"}
        ]}));
        assert_eq!(
            pol.public_statements(),
            [
                "statement \"Open\"",
                "statement \"Wildcard\"",
                "statement \"Negated\"",
                "statement \"AnyIp\""
            ]
        );
    }

    #[test]
    fn tls_deny_needs_everyone_all_actions_bucket_and_false() {
        let good = json!({"Statement": {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*",
            "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}});
        assert!(p(good.clone()).denies_insecure_transport("b"));
        assert!(!p(good).denies_insecure_transport("other"));
        let boolean = json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": ["s3:*"],
            "Resource": "arn:aws:s3:::b/*", "Condition": {"Bool": {"aws:SecureTransport": false}}}]});
        assert!(p(boolean).denies_insecure_transport("b"));
        let only_get = json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::b/*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]});
        assert!(!p(only_get).denies_insecure_transport("b"));
        let allow = json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*",
            "Resource": "arn:aws:s3:::b/*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]});
        assert!(!p(allow).denies_insecure_transport("b"));
    }

    #[test]
    fn cloudtrail_grants_report_source_arn() {
        let pol = p(json!({"Statement": [
            {"Sid": "AclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:GetBucketAcl", "Resource": "arn:aws:s3:::b"},
            {"Sid": "Write", "Effect": "Allow", "Principal": {"Service": ["cloudtrail.amazonaws.com"]},
             "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/AWSLogs/1/*",
             "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control",
                 "AWS:SourceArn": "arn:aws:cloudtrail:us-east-1:1:trail/t"}}},
            {"Sid": "Loose", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": ["s3:PutObject"], "Resource": "arn:aws:s3:::b/*"}
        ]}));
        assert_eq!(
            pol.cloudtrail_write_grants(),
            [
                ("statement \"Write\"".to_owned(), true),
                ("statement \"Loose\"".to_owned(), false)
            ]
        );
    }

    #[test]
    fn malformed_policies_are_errors() {
        assert!(Policy::parse("{").is_err());
        assert!(Policy::parse("{\"Version\": \"2012-10-17\"}").is_err());
        let odd = p(json!({"Statement": [1, "x", {"Effect": 3, "Principal": {"AWS": 4}}]}));
        assert!(odd.public_statements().is_empty());
        assert!(!odd.denies_insecure_transport("b"));
    }
}
