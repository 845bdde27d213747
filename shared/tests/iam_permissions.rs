//! IAM review (issue 10, part 6): every AWS API call a function's code can make is allowed
//! by that function's role in `template.yaml`.
//!
//! The code side is read from the adapters (`shared/src/ports/aws/*.rs`, where every SDK
//! call lives): each `.send()` is traced back to its operation (`.get_object()`,
//! `.put_item()`, ...) and to the client it runs on (a field or local declared as
//! `aws_sdk_<service>::Client`), and mapped to its IAM action by [`ACTIONS`]. An operation
//! the table does not know fails the test, so a new call cannot slip past the review.
//! Which adapters a function reaches is [`FUNCTIONS`], checked against the wiring in
//! `functions/<name>/src/main.rs`.
//!
//! The template side: each function's `Role: !GetAtt <Role>.Arn`, and the `Allow`
//! statements of that role's inline policies, including statements under `!If`
//! (remediation permissions exist only when the feature is switched on, which is when the
//! code calls them). Resource scoping is reviewed by hand in `docs/iam-permissions.md`;
//! this test checks actions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// (service crate, operation) → IAM action; `None` for calls that need no permission.
const ACTIONS: &[(&str, &str, Option<&str>)] = &[
    ("s3", "get_object", Some("s3:GetObject")),
    ("s3", "head_object", Some("s3:GetObject")),
    ("s3", "list_objects_v2", Some("s3:ListBucket")),
    ("s3", "get_bucket_acl", Some("s3:GetBucketAcl")),
    ("s3", "get_bucket_policy", Some("s3:GetBucketPolicy")),
    (
        "s3",
        "get_bucket_policy_status",
        Some("s3:GetBucketPolicyStatus"),
    ),
    (
        "s3",
        "get_public_access_block",
        Some("s3:GetBucketPublicAccessBlock"),
    ),
    (
        "s3",
        "put_public_access_block",
        Some("s3:PutBucketPublicAccessBlock"),
    ),
    (
        "s3",
        "get_bucket_versioning",
        Some("s3:GetBucketVersioning"),
    ),
    ("s3", "get_bucket_logging", Some("s3:GetBucketLogging")),
    (
        "s3",
        "get_bucket_lifecycle_configuration",
        Some("s3:GetLifecycleConfiguration"),
    ),
    (
        "s3",
        "get_bucket_encryption",
        Some("s3:GetEncryptionConfiguration"),
    ),
    (
        "s3",
        "get_object_lock_configuration",
        Some("s3:GetBucketObjectLockConfiguration"),
    ),
    ("s3", "get_bucket_location", Some("s3:GetBucketLocation")),
    (
        "s3control",
        "get_public_access_block",
        Some("s3:GetAccountPublicAccessBlock"),
    ),
    ("dynamodb", "get_item", Some("dynamodb:GetItem")),
    ("dynamodb", "put_item", Some("dynamodb:PutItem")),
    ("dynamodb", "update_item", Some("dynamodb:UpdateItem")),
    ("dynamodb", "delete_item", Some("dynamodb:DeleteItem")),
    ("dynamodb", "query", Some("dynamodb:Query")),
    ("dynamodb", "scan", Some("dynamodb:Scan")),
    (
        "dynamodb",
        "batch_write_item",
        Some("dynamodb:BatchWriteItem"),
    ),
    ("dynamodb", "batch_get_item", Some("dynamodb:BatchGetItem")),
    // PublishBatch is authorised by sns:Publish (there is no sns:PublishBatch action)
    ("sns", "publish", Some("sns:Publish")),
    ("sns", "publish_batch", Some("sns:Publish")),
    (
        "cloudtrail",
        "describe_trails",
        Some("cloudtrail:DescribeTrails"),
    ),
    ("cloudtrail", "get_trail", Some("cloudtrail:GetTrail")),
    (
        "cloudtrail",
        "get_trail_status",
        Some("cloudtrail:GetTrailStatus"),
    ),
    (
        "cloudtrail",
        "get_event_selectors",
        Some("cloudtrail:GetEventSelectors"),
    ),
    (
        "cloudtrail",
        "get_insight_selectors",
        Some("cloudtrail:GetInsightSelectors"),
    ),
    (
        "cloudtrail",
        "list_public_keys",
        Some("cloudtrail:ListPublicKeys"),
    ),
    (
        "cloudtrail",
        "lookup_events",
        Some("cloudtrail:LookupEvents"),
    ),
    (
        "cloudtrail",
        "start_logging",
        Some("cloudtrail:StartLogging"),
    ),
    ("iam", "update_access_key", Some("iam:UpdateAccessKey")),
    ("iam", "list_access_keys", Some("iam:ListAccessKeys")),
    // sts:GetCallerIdentity needs no permission (AWS allows it for every principal)
    ("sts", "get_caller_identity", None),
    ("sqs", "send_message", Some("sqs:SendMessage")),
];

/// What a `main.rs` wires → the adapter files that reaches.
type Wires = &'static [(&'static str, &'static [&'static str])];

/// Function binary → (what its `main.rs` wires, the adapter files that reaches). A
/// wire counts only when its text appears in `main.rs`: the event-handler builds `Ports`
/// but reads no objects, so it needs no `s3:GetObject`.
const FUNCTIONS: &[(&str, Wires)] = &[
    (
        "log-processor",
        &[
            // `log_processor::handle(cfg, rules, correlator, allowlist, ports, ev)` uses
            // objects, store, notifier and state
            (
                "log_processor",
                &["s3.rs", "dynamodb.rs", "sns.rs", "state.rs"],
            ),
        ],
    ),
    (
        "event-handler",
        &[
            ("ports.state", &["state.rs"]),
            ("ports.objects", &["s3.rs"]),
            ("ports.store", &["dynamodb.rs"]),
            ("ports.notifier", &["sns.rs"]),
            ("AwsRemediator", &["remediate.rs"]),
        ],
    ),
    (
        "config-auditor",
        &[(
            "AuditPorts",
            &[
                "auditor.rs",
                "cloudtrail.rs",
                "s3_audit.rs",
                "digest_s3.rs",
                "audit_state.rs",
                "sns.rs",
            ],
        )],
    ),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// One SDK call found in an adapter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    file: String,
    line: usize,
    service: String,
    op: String,
}

fn line_of(text: &str, pos: usize) -> usize {
    text[..pos].matches('\n').count() + 1
}

/// The service of the client `recv` names at `pos`: for a bare name, the nearest
/// `let recv = aws_sdk_X::` before the call; else (and for `self.recv`) a
/// `recv: aws_sdk_X::Client` declaration (fields, parameters).
fn service_of(code: &str, pos: usize, recv: &str, via_self: bool) -> Option<String> {
    let before = &code[..pos];
    let after_pat = |at: usize, pat: &str| -> Option<String> {
        let rest = &code[at + pat.len()..];
        Some(rest.split("::").next()?.trim().to_owned())
    };
    if !via_self {
        // a local is declared before its use
        let pat = format!("let {recv} = aws_sdk_");
        if let Some(at) = before.rfind(&pat) {
            return after_pat(at, &pat);
        }
    }
    // a field (declared anywhere in the file) or a parameter (before)
    let pat = format!("{recv}: aws_sdk_");
    let at = before.rfind(&pat).or_else(|| code.find(&pat))?;
    after_pat(at, &pat)
}

/// Every SDK call in one adapter file (its `#[cfg(test)]` module excluded).
fn calls_in(file: &str, text: &str, unknown: &mut Vec<String>) -> Vec<Call> {
    let code = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    let known: BTreeSet<&str> = ACTIONS.iter().map(|(_, op, _)| *op).collect();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(rel) = code[from..].find(".send()") {
        let send = from + rel;
        from = send + 1;
        // the call's operation: the last `.op()` before `.send()` in the same function
        // (a builder may be kept in a variable and finished a few statements later)
        let start = code[..send]
            .rfind("fn ")
            .unwrap_or(0)
            .max(code[..send].rfind(".send()").map_or(0, |i| i + 7));
        let stmt = &code[start..send];
        let mut found = None;
        let mut i = 0;
        while let Some(r) = stmt[i..].find("()") {
            let end = i + r;
            i = end + 2;
            let name_start = stmt[..end]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |p| p + 1);
            let name = &stmt[name_start..end];
            let dotted = stmt[..name_start].trim_end().ends_with('.');
            if dotted && known.contains(name) {
                found = Some((name_start, name));
            }
        }
        let Some((name_start, op)) = found else {
            let from = stmt.char_indices().rev().nth(160).map_or(0, |(i, _)| i);
            let tail = &stmt[from..];
            unknown.push(format!(
                "{file}:{}: SDK call with an operation the table does not know: ...{}",
                line_of(code, send),
                tail.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
            continue;
        };
        // the receiver: `self.s3`, `client`, or `aws_sdk_sts::Client::new(sdk)`
        let prefix = stmt[..name_start]
            .trim_end()
            .trim_end_matches('.')
            .trim_end();
        let abs = start + name_start;
        let service = if prefix.ends_with(')') {
            prefix
                .rfind("aws_sdk_")
                .and_then(|p| prefix[p + 8..].split("::").next())
                .map(str::to_owned)
        } else {
            let recv_start = prefix
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |p| p + 1);
            let recv = &prefix[recv_start..];
            let via_self = prefix[..recv_start]
                .split_whitespace()
                .collect::<String>()
                .ends_with("self.");
            service_of(code, abs, recv, via_self)
        };
        let Some(service) = service else {
            unknown.push(format!(
                "{file}:{}: cannot tell which client `.{op}()` runs on",
                line_of(code, abs)
            ));
            continue;
        };
        out.push(Call {
            file: file.to_owned(),
            line: line_of(code, abs),
            service,
            op: op.to_owned(),
        });
    }
    out
}

fn adapter_calls() -> (BTreeMap<String, Vec<Call>>, Vec<String>) {
    let dir = root().join("shared/src/ports/aws");
    let mut by_file = BTreeMap::new();
    let mut unknown = Vec::new();
    for e in std::fs::read_dir(&dir).expect("ports/aws") {
        let p = e.expect("entry").path();
        if p.extension().and_then(|x| x.to_str()) != Some("rs") {
            continue;
        }
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        let text = std::fs::read_to_string(&p).expect("read adapter");
        by_file.insert(name.clone(), calls_in(&name, &text, &mut unknown));
    }
    (by_file, unknown)
}

fn action_of(c: &Call) -> Result<Option<&'static str>, String> {
    ACTIONS
        .iter()
        .find(|(s, o, _)| *s == c.service && *o == c.op)
        .map(|(_, _, a)| *a)
        .ok_or_else(|| {
            format!(
                "{}:{}: {}::{} is not in the operation → action table",
                c.file, c.line, c.service, c.op
            )
        })
}

// ---------------------------------------------------------------- template

fn str_of(y: &Yaml) -> Option<&str> {
    y.as_str()
}

/// Actions of an `Allow` statement, looking through `!If [cond, then, else]` (a tagged
/// sequence, read as a plain one).
fn statement_actions(stmt: &Yaml, out: &mut BTreeSet<String>) {
    match stmt {
        Yaml::Array(items) => {
            // `!If [Condition, A, B]`: both branches may apply
            for branch in items.iter().skip(1) {
                statement_actions(branch, out);
            }
        }
        Yaml::Hash(_) => {
            if str_of(&stmt["Effect"]) != Some("Allow") {
                return;
            }
            match &stmt["Action"] {
                Yaml::String(a) => {
                    out.insert(a.clone());
                }
                Yaml::Array(list) => out.extend(list.iter().filter_map(str_of).map(str::to_owned)),
                _ => {}
            }
        }
        _ => {}
    }
}

/// Allowed actions of each function (by its binary name).
fn template_actions() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    let docs = YamlLoader::load_from_str(&text).expect("template.yaml parses");
    let resources = &docs[0]["Resources"];
    let Yaml::Hash(res) = resources else {
        panic!("template has no Resources map");
    };
    let mut out = BTreeMap::new();
    for (_, r) in res {
        if str_of(&r["Type"]) != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(binary) = str_of(&r["Metadata"]["BuildProperties"]["Binary"]) else {
            continue;
        };
        // `Role: !GetAtt LogProcessorRole.Arn`
        let role_ref = str_of(&r["Properties"]["Role"]).expect("function names its role");
        let role_name = role_ref.trim_end_matches(".Arn");
        let role = &resources[role_name];
        assert_eq!(
            str_of(&role["Type"]),
            Some("AWS::IAM::Role"),
            "{binary}: role {role_name} is not an AWS::IAM::Role in the template"
        );
        let mut actions = BTreeSet::new();
        for policy in role["Properties"]["Policies"]
            .as_vec()
            .into_iter()
            .flatten()
        {
            for stmt in policy["PolicyDocument"]["Statement"]
                .as_vec()
                .into_iter()
                .flatten()
            {
                statement_actions(stmt, &mut actions);
            }
        }
        out.insert(binary.to_owned(), actions);
    }
    out
}

fn allows(granted: &BTreeSet<String>, action: &str) -> bool {
    granted.iter().any(|g| {
        g == action
            || g == "*"
            || g.strip_suffix('*')
                .is_some_and(|prefix| action.starts_with(prefix))
    })
}

// ---------------------------------------------------------------- tests

#[test]
fn every_sdk_call_is_known() {
    let (calls, unknown) = adapter_calls();
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));
    let errors: Vec<String> = calls
        .values()
        .flatten()
        .filter_map(|c| action_of(c).err())
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // the scan finds the calls we know are there (a broken scan must not pass)
    let all: BTreeSet<(String, String)> = calls
        .values()
        .flatten()
        .map(|c| (c.service.clone(), c.op.clone()))
        .collect();
    for (s, o) in [
        ("s3", "get_object"),
        ("dynamodb", "put_item"),
        ("sns", "publish_batch"),
        ("cloudtrail", "list_public_keys"),
    ] {
        assert!(
            all.contains(&(s.to_owned(), o.to_owned())),
            "{s}::{o} not found in the adapters: {all:?}"
        );
    }
}

#[test]
fn every_adapter_with_sdk_calls_belongs_to_a_function() {
    let (calls, _) = adapter_calls();
    let assigned: BTreeSet<&str> = FUNCTIONS
        .iter()
        .flat_map(|(_, wires)| wires.iter().flat_map(|(_, files)| files.iter().copied()))
        .collect();
    for (file, cs) in &calls {
        if !cs.is_empty() {
            assert!(
                assigned.contains(file.as_str()),
                "{file} calls AWS ({} calls) but no function in FUNCTIONS reaches it",
                cs.len()
            );
        }
    }
}

#[test]
fn functions_wire_the_adapters_the_table_says() {
    for (binary, wires) in FUNCTIONS {
        let main = root().join("functions").join(binary).join("src/main.rs");
        let text = std::fs::read_to_string(&main).expect("main.rs");
        // a function whose main is not wired yet reaches nothing
        if !text.contains("trailwatch::") {
            eprintln!("notice: {binary} main.rs is not wired yet");
            continue;
        }
        assert!(
            wires.iter().any(|(ty, _)| text.contains(ty)),
            "{binary}: main.rs uses none of {:?}",
            wires.iter().map(|(t, _)| t).collect::<Vec<_>>()
        );
    }
}

#[test]
fn every_role_allows_the_calls_of_its_function() {
    let (calls, _) = adapter_calls();
    let roles = template_actions();
    let mut missing = Vec::new();
    let mut report = Vec::new();
    for (binary, wires) in FUNCTIONS {
        let granted = roles
            .get(*binary)
            .unwrap_or_else(|| panic!("template.yaml has no function with Binary: {binary}"));
        let main =
            std::fs::read_to_string(root().join("functions").join(binary).join("src/main.rs"))
                .expect("main.rs");
        let mut needed = BTreeMap::<&str, Vec<String>>::new();
        for (ty, files) in *wires {
            if !main.contains(ty) {
                continue;
            }
            for f in *files {
                for c in calls.get(*f).into_iter().flatten() {
                    if let Ok(Some(action)) = action_of(c) {
                        needed
                            .entry(action)
                            .or_default()
                            .push(format!("{}:{}", c.file, c.line));
                    }
                }
            }
        }
        for (action, sites) in &needed {
            if !allows(granted, action) {
                missing.push(format!(
                    "{binary}: code calls {action} ({}) but its role does not allow it",
                    sites.join(", ")
                ));
            }
        }
        let unused: Vec<&String> = granted
            .iter()
            .filter(|g| {
                !g.starts_with("logs:")
                    && !g.starts_with("kms:")
                    && !g.starts_with("sqs:")
                    && !needed
                        .keys()
                        .any(|a| allows(&BTreeSet::from([(*g).clone()]), a))
            })
            .collect();
        report.push(format!(
            "{binary}: {} actions needed, granted beyond the code's calls: {unused:?}",
            needed.len()
        ));
    }
    // printed with --nocapture: grants the code does not use (review candidates)
    for r in &report {
        eprintln!("{r}");
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The scanner itself: receivers resolve through fields, locals and inline clients.
#[test]
fn scanner_resolves_receivers() {
    let src = r#"
struct A { s3: aws_sdk_s3::Client, control: aws_sdk_s3control::Client, client: aws_sdk_s3::Client }
impl A {
    async fn f(&self) {
        self.s3.get_public_access_block().bucket(b).send().await;
        self.control
            .get_public_access_block()
            .account_id(a)
            .send()
            .await;
        let client = aws_sdk_cloudtrail::Client::from_conf(c);
        client.list_public_keys().send().await;
        aws_sdk_sts::Client::new(sdk)
            .get_caller_identity()
            .send()
            .await;
        self.client.frobnicate().send().await;
    }
}
"#;
    let mut unknown = Vec::new();
    let calls = calls_in("x.rs", src, &mut unknown);
    let got: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| (c.service.as_str(), c.op.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("s3", "get_public_access_block"),
            ("s3control", "get_public_access_block"),
            ("cloudtrail", "list_public_keys"),
            ("sts", "get_caller_identity"),
        ]
    );
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(unknown[0].contains("frobnicate"));
}
