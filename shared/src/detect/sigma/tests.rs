//! Rule-level tests: the loader, every modifier through real rules, the index, correlations.

use super::*;
use serde_json::{json, Value};

const HEAD: &str = "title: t\nname: r\nlogsource:\n  product: aws\n  service: cloudtrail\n";

/// A rule with this `detection:` body (indented by the caller as under `detection:`).
fn rule(detection: &str) -> String {
    format!("{HEAD}detection:\n{detection}level: high\n")
}

fn load(detection: &str) -> RuleSet {
    match RuleSet::from_sources([("r.yml", rule(detection).as_str())]) {
        Ok(s) => s,
        Err(e) => panic!(
            "load failed: {}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

fn load_err(detection: &str) -> LoadError {
    let text = rule(detection);
    match RuleSet::from_sources([("r.yml", text.as_str())]) {
        Ok(_) => panic!("rule loaded but should not:\n{text}"),
        Err(mut e) => e.remove(0),
    }
}

fn hits(set: &RuleSet, ev: &Value) -> bool {
    let mut out = Vec::new();
    set.matches(ev, &mut out);
    out.len() == 1
}

#[test]
fn map_is_and_list_of_maps_is_or_value_list_is_or() {
    let s = load("  sel:\n    eventName: StopLogging\n    eventSource: cloudtrail.amazonaws.com\n  condition: sel\n");
    assert!(hits(
        &s,
        &json!({"eventName": "StopLogging", "eventSource": "cloudtrail.amazonaws.com"})
    ));
    assert!(!hits(
        &s,
        &json!({"eventName": "StopLogging", "eventSource": "s3.amazonaws.com"})
    ));
    let s = load("  sel:\n    - eventName: A\n    - eventSource: b\n  condition: sel\n");
    assert!(hits(&s, &json!({"eventName": "A"})));
    assert!(hits(&s, &json!({"eventSource": "b"})));
    assert!(!hits(&s, &json!({"eventName": "B"})));
    let s = load("  sel:\n    eventName:\n      - A\n      - B\n  condition: sel\n");
    assert!(hits(&s, &json!({"eventName": "b"})));
    assert!(!hits(&s, &json!({"eventName": "C"})));
}

#[test]
fn case_insensitive_by_default_and_cased() {
    let s = load("  sel:\n    eventName: stoplogging\n  condition: sel\n");
    assert!(hits(&s, &json!({"eventName": "StopLogging"})));
    let s = load("  sel:\n    eventName|cased: StopLogging\n  condition: sel\n");
    assert!(hits(&s, &json!({"eventName": "StopLogging"})));
    assert!(!hits(&s, &json!({"eventName": "stoplogging"})));
    let s = load("  sel:\n    userAgent|contains|cased: Boto\n  condition: sel\n");
    assert!(hits(&s, &json!({"userAgent": "x Boto3/1"})));
    assert!(!hits(&s, &json!({"userAgent": "x boto3/1"})));
}

#[test]
fn contains_startswith_endswith_all() {
    let s = load("  sel:\n    userAgent|contains: trufflehog\n  condition: sel\n");
    assert!(hits(&s, &json!({"userAgent": "TruffleHog/3"})));
    assert!(!hits(&s, &json!({"userAgent": "aws-cli"})));
    let s = load("  sel:\n    userAgent|startswith: aws-cli\n  condition: sel\n");
    assert!(hits(&s, &json!({"userAgent": "AWS-CLI/2.0"})));
    assert!(!hits(&s, &json!({"userAgent": "x aws-cli"})));
    let s = load("  sel:\n    userIdentity.arn|endswith: ':root'\n  condition: sel\n");
    assert!(hits(
        &s,
        &json!({"userIdentity": {"arn": "arn:aws:iam::1:root"}})
    ));
    assert!(!hits(
        &s,
        &json!({"userIdentity": {"arn": "arn:aws:iam::1:root/x"}})
    ));
    let s = load("  sel:\n    requestParameters.policy|contains|all:\n      - 's3:\\*'\n      - '\"\\*\"'\n  condition: sel\n");
    assert!(hits(
        &s,
        &json!({"requestParameters": {"policy": "{\"Action\":\"s3:*\",\"Principal\":\"*\"}"}})
    ));
    assert!(!hits(
        &s,
        &json!({"requestParameters": {"policy": "{\"Action\":\"s3:*\"}"}})
    ));
    // wildcards still work inside modified values; `contains` on a number value
    let s = load("  sel:\n    requestParameters.fromPort|startswith: 2\n  condition: sel\n");
    assert!(hits(&s, &json!({"requestParameters": {"fromPort": 22}})));
}

#[test]
fn wildcards_and_escapes_in_rules() {
    let s = load("  sel:\n    eventName: 'Delete*Policy'\n  condition: sel\n");
    assert!(hits(&s, &json!({"eventName": "DeleteBucketPolicy"})));
    assert!(!hits(&s, &json!({"eventName": "DeleteBucket"})));
    let s = load("  sel:\n    eventName: 'Get?'\n  condition: sel\n");
    assert!(hits(&s, &json!({"eventName": "GetX"})));
    assert!(!hits(&s, &json!({"eventName": "GetXY"})));
    let s = load("  sel:\n    requestParameters.x: 'a\\*b'\n  condition: sel\n");
    assert!(hits(&s, &json!({"requestParameters": {"x": "a*b"}})));
    assert!(!hits(&s, &json!({"requestParameters": {"x": "aXb"}})));
}

#[test]
fn regex_with_flags() {
    let s = load("  sel:\n    userIdentity.arn|re: '.+:assumed-role/aws:.+'\n  condition: sel\n");
    assert!(hits(
        &s,
        &json!({"userIdentity": {"arn": "arn:aws:sts::1:assumed-role/aws:ec2-instance/i-1"}})
    ));
    assert!(!hits(
        &s,
        &json!({"userIdentity": {"arn": "arn:aws:sts::1:assumed-role/admin/x"}})
    ));
    // `re` is case-sensitive unless `i`
    let s = load("  sel:\n    eventName|re: '^stop'\n  condition: sel\n");
    assert!(!hits(&s, &json!({"eventName": "StopLogging"})));
    let s = load("  sel:\n    eventName|re|i: '^stop'\n  condition: sel\n");
    assert!(hits(&s, &json!({"eventName": "StopLogging"})));
    let s = load("  sel:\n    x|re|m: '^b$'\n  condition: sel\n");
    assert!(hits(&s, &json!({"x": "a\nb\nc"})));
    let s = load("  sel:\n    x|re|s: 'a.b'\n  condition: sel\n");
    assert!(hits(&s, &json!({"x": "a\nb"})));
    let e = load_err("  sel:\n    x|re: '(unclosed'\n  condition: sel\n");
    assert_eq!(e.line, Some(8));
    assert!(e.message.contains("regular expression"), "{e}");
}

#[test]
fn cidr_matches_ipv4_and_ipv6_and_ignores_non_ips() {
    let s = load("  sel:\n    sourceIPAddress|cidr:\n      - 10.0.0.0/8\n      - '2001:db8::/32'\n  condition: sel\n");
    assert!(hits(&s, &json!({"sourceIPAddress": "10.2.3.4"})));
    assert!(hits(&s, &json!({"sourceIPAddress": "2001:db8::5"})));
    assert!(!hits(&s, &json!({"sourceIPAddress": "11.2.3.4"})));
    assert!(!hits(&s, &json!({"sourceIPAddress": "AWS Internal"})));
    assert!(!hits(&s, &json!({"sourceIPAddress": "ec2.amazonaws.com"})));
    let e = load_err("  sel:\n    sourceIPAddress|cidr: 10.0.0.0/99\n  condition: sel\n");
    assert_eq!(e.line, Some(8));
}

#[test]
fn exists_true_and_false() {
    let s = load("  sel:\n    errorCode|exists: true\n  condition: sel\n");
    assert!(hits(&s, &json!({"errorCode": "AccessDenied"})));
    assert!(!hits(&s, &json!({"errorCode": null})));
    assert!(!hits(&s, &json!({})));
    let s = load("  sel:\n    errorCode|exists: false\n  condition: sel\n");
    assert!(hits(&s, &json!({})));
    assert!(!hits(&s, &json!({"errorCode": "x"})));
    assert!(
        load_err("  sel:\n    errorCode|exists: maybe\n  condition: sel\n")
            .message
            .contains("exists")
    );
}

#[test]
fn numeric_comparisons() {
    let s = load("  sel:\n    requestParameters.maxResults|gte: 100\n  condition: sel\n");
    assert!(hits(&s, &json!({"requestParameters": {"maxResults": 100}})));
    assert!(hits(
        &s,
        &json!({"requestParameters": {"maxResults": "1000"}})
    ));
    assert!(!hits(&s, &json!({"requestParameters": {"maxResults": 99}})));
    let s = load("  sel:\n    n|gt: 1\n  sel2:\n    n|lt: 3\n  sel3:\n    n|lte: 2\n  condition: sel and sel2 and sel3\n");
    assert!(hits(&s, &json!({"n": 2})));
    assert!(!hits(&s, &json!({"n": 3})));
    assert!(load_err("  sel:\n    n|gt: many\n  condition: sel\n")
        .message
        .contains("not a number"));
}

#[test]
fn base64_modifiers() {
    // "#!/bin/sh" is 9 bytes: its encoding has no padding and prefixes longer scripts
    let s = load(
        "  sel:\n    requestParameters.userData|base64|contains: '#!/bin/sh'\n  condition: sel\n",
    );
    assert!(hits(
        &s,
        &json!({"requestParameters": {"userData": "IyEvYmluL3NoCmN1cmwgZXZpbA=="}})
    ));
    assert!(!hits(
        &s,
        &json!({"requestParameters": {"userData": "aGVsbG8="}})
    ));
    let s = load("  sel:\n    requestParameters.userData|base64: 'hello'\n  condition: sel\n");
    assert!(hits(
        &s,
        &json!({"requestParameters": {"userData": "aGVsbG8="}})
    ));
    // base64 is case-sensitive
    assert!(!hits(
        &s,
        &json!({"requestParameters": {"userData": "AGVSBG8="}})
    ));
    let s = load(
        "  sel:\n    requestParameters.userData|base64offset|contains: 'curl'\n  condition: sel\n",
    );
    // "echo curl" and "xcurl" encode "curl" at different offsets
    assert!(hits(
        &s,
        &json!({"requestParameters": {"userData": "ZWNobyBjdXJs"}})
    ));
    assert!(hits(
        &s,
        &json!({"requestParameters": {"userData": "eGN1cmw="}})
    ));
    assert!(!hits(
        &s,
        &json!({"requestParameters": {"userData": "ZWNobyBoaQ=="}})
    ));
    assert!(
        load_err("  sel:\n    x|base64offset: a\n  condition: sel\n")
            .message
            .contains("contains")
    );
}

#[test]
fn fieldref_compares_two_fields() {
    let s = load("  sel:\n    userIdentity.userName|fieldref: requestParameters.userName\n  condition: sel\n");
    assert!(hits(
        &s,
        &json!({"userIdentity": {"userName": "Bob"}, "requestParameters": {"userName": "bob"}})
    ));
    assert!(!hits(
        &s,
        &json!({"userIdentity": {"userName": "bob"}, "requestParameters": {"userName": "alice"}})
    ));
    assert!(!hits(&s, &json!({"userIdentity": {"userName": "bob"}})));
    let s = load("  sel:\n    userIdentity.arn|fieldref|endswith: requestParameters.userName\n  condition: sel\n");
    assert!(hits(
        &s,
        &json!({"userIdentity": {"arn": "arn:aws:iam::1:user/bob"}, "requestParameters": {"userName": "bob"}})
    ));
}

#[test]
fn null_and_empty_values() {
    let s = load("  sel:\n    errorCode: null\n  condition: sel\n");
    assert!(hits(&s, &json!({})));
    assert!(hits(&s, &json!({"errorCode": null})));
    assert!(!hits(&s, &json!({"errorCode": "AccessDenied"})));
    assert!(!hits(&s, &json!({"errorCode": ""})));
    let s = load("  sel:\n    errorCode: ''\n  condition: sel\n");
    assert!(hits(&s, &json!({"errorCode": ""})));
    assert!(!hits(&s, &json!({"errorCode": null})));
    assert!(!hits(&s, &json!({})));
}

#[test]
fn booleans_and_numbers_compare_with_strings() {
    let s = load("  sel:\n    sessionCredentialFromConsole: true\n    requestParameters.port: 22\n  condition: sel\n");
    assert!(hits(
        &s,
        &json!({"sessionCredentialFromConsole": "true", "requestParameters": {"port": "22"}})
    ));
    assert!(hits(
        &s,
        &json!({"sessionCredentialFromConsole": true, "requestParameters": {"port": 22}})
    ));
    assert!(!hits(
        &s,
        &json!({"sessionCredentialFromConsole": false, "requestParameters": {"port": 22}})
    ));
    let s = load("  sel:\n    readOnly: 'false'\n  condition: sel\n");
    assert!(hits(&s, &json!({"readOnly": false})));
}

#[test]
fn lists_in_events_are_flattened() {
    let s = load("  sel:\n    requestParameters.ipPermissions.items.ipRanges.items.cidrIp: 0.0.0.0/0\n  condition: sel\n");
    let ev = json!({"requestParameters": {"ipPermissions": {"items": [
        {"ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}]}},
        {"ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}}});
    assert!(hits(&s, &ev));
}

#[test]
fn keywords_search_every_string() {
    let s = load("  keywords:\n    - 'trufflehog'\n    - 'pacu'\n  condition: keywords\n");
    assert!(hits(&s, &json!({"userAgent": "TruffleHog"})));
    assert!(hits(
        &s,
        &json!({"requestParameters": {"tags": [{"v": "xPACUx"}]}})
    ));
    assert!(!hits(&s, &json!({"userAgent": "aws-cli"})));
}

#[test]
fn conditions_precedence_and_of() {
    let d = "  a:\n    x: 1\n  b:\n    y: 1\n  c:\n    z: 1\n";
    // not > and > or: a or (b and not c)
    let s = load(&format!("{d}  condition: a or b and not c\n"));
    assert!(hits(&s, &json!({"x": 1, "z": 1})));
    assert!(hits(&s, &json!({"y": 1})));
    assert!(!hits(&s, &json!({"y": 1, "z": 1})));
    let s = load(&format!("{d}  condition: (a or b) and not c\n"));
    assert!(!hits(&s, &json!({"x": 1, "z": 1})));
    let s = load("  sel_a:\n    x: 1\n  sel_b:\n    y: 1\n  filter:\n    z: 1\n  condition: 1 of sel_* and not filter\n");
    assert!(hits(&s, &json!({"y": 1})));
    assert!(!hits(&s, &json!({"y": 1, "z": 1})));
    let s = load("  sel_a:\n    x: 1\n  sel_b:\n    y: 1\n  condition: all of sel_*\n");
    assert!(hits(&s, &json!({"x": 1, "y": 1})));
    assert!(!hits(&s, &json!({"x": 1})));
    let s = load(&format!("{d}  condition: 2 of them\n"));
    assert!(hits(&s, &json!({"x": 1, "z": 1})));
    assert!(!hits(&s, &json!({"x": 1})));
    let s = load(&format!("{d}  condition: all of them\n"));
    assert!(!hits(&s, &json!({"x": 1, "y": 1})));
    assert!(hits(&s, &json!({"x": 1, "y": 1, "z": 1})));
    let s = load(&format!("{d}  condition: 1 of them\n"));
    assert!(hits(&s, &json!({"z": 1})));
    // a list of conditions is an OR
    let s = load(&format!("{d}  condition:\n    - a\n    - b\n"));
    assert!(hits(&s, &json!({"y": 1})));
}

#[test]
fn index_is_exact_and_keeps_unindexed_rules() {
    let by_name = format!(
        "{HEAD}detection:\n  sel:\n    eventName: [StopLogging, DeleteTrail]\n  condition: sel\n"
    )
    .replace("name: r", "name: by-name");
    let by_source =
        format!("{HEAD}detection:\n  sel:\n    eventSource: iam.amazonaws.com\n  condition: sel\n")
            .replace("name: r", "name: by-source");
    let neg =
        format!("{HEAD}detection:\n  sel:\n    eventName: StopLogging\n  condition: not sel\n")
            .replace("name: r", "name: negated");
    let anywhere =
        format!("{HEAD}detection:\n  sel:\n    userIdentity.type: Root\n  condition: sel\n")
            .replace("name: r", "name: anywhere");
    let wildcard = format!("{HEAD}detection:\n  sel:\n    eventName: Stop*\n  condition: sel\n")
        .replace("name: r", "name: wildcard");
    let or_branch = format!(
        "{HEAD}detection:\n  a:\n    eventName: A\n  b:\n    userAgent: x\n  condition: a or b\n"
    )
    .replace("name: r", "name: or-branch");
    let set = RuleSet::from_sources([
        ("1.yml", by_name.as_str()),
        ("2.yml", by_source.as_str()),
        ("3.yml", neg.as_str()),
        ("4.yml", anywhere.as_str()),
        ("5.yml", wildcard.as_str()),
        ("6.yml", or_branch.as_str()),
    ])
    .unwrap();
    // negated, wildcard and partly-constrained rules are evaluated for every event, except
    // where a guard field tells (`userIdentity.type: Root`)
    assert_eq!(set.unindexed_count(), 3);
    let ids = |ev: Value| {
        let mut out = Vec::new();
        set.matches(&ev, &mut out);
        out.iter().map(|r| r.id.as_str()).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(json!({"eventName": "stoplogging"})),
        ["by-name", "wildcard"]
    );
    assert_eq!(
        ids(json!({"eventName": "DeleteTrail", "userIdentity": {"type": "Root"}})),
        ["by-name", "negated", "anywhere"]
    );
    assert_eq!(
        ids(json!({"eventName": "CreateUser", "eventSource": "IAM.amazonaws.com"})),
        ["by-source", "negated"]
    );
    assert_eq!(ids(json!({"userAgent": "x"})), ["negated", "or-branch"]);
    // appends, does not clear
    let mut out = Vec::new();
    set.matches(&json!({"eventName": "StopLogging"}), &mut out);
    set.matches(&json!({"eventName": "StopLogging"}), &mut out);
    assert_eq!(out.len(), 4);
}

#[test]
fn guards_skip_only_rules_that_cannot_match() {
    let rule = |name: &str, detection: &str| {
        format!("{HEAD}detection:\n{detection}").replace("name: r", &format!("name: {name}"))
    };
    let rules = [
        // presence of a field CloudTrail does not always write
        rule(
            "denied-prefix",
            "  sel:\n  - errorCode|endswith: UnauthorizedOperation\n  - errorCode|startswith: AccessDenied\n  condition: sel\n",
        ),
        // exact values, with a negated filter on another field
        rule(
            "denied-exact",
            "  sel:\n    errorCode: [AccessDenied, Client.UnauthorizedOperation]\n  f:\n    userIdentity.type: AWSService\n  condition: sel and not f\n",
        ),
        rule(
            "root",
            "  sel:\n    userIdentity.type: Root\n  svc:\n    userIdentity.invokedBy|exists: true\n  condition: sel and not svc\n",
        ),
        rule("root-cased", "  sel:\n    userIdentity.type|cased: Root\n  condition: sel\n"),
        // `1 of`: every branch needs errorCode
        rule(
            "one-of",
            "  sel_a:\n    errorCode: Throttling\n  sel_b:\n    errorCode|contains: Limit\n  condition: 1 of sel_*\n",
        ),
        // null and `exists: false` match a missing field: never guarded by it
        rule("no-error", "  sel:\n    errorCode: null\n    userAgent|contains: x\n  condition: sel\n"),
        rule("no-error-2", "  sel:\n    errorCode|exists: false\n  condition: sel\n"),
        // an OR with a branch that needs no errorCode
        rule(
            "or-other",
            "  a:\n    errorCode: AccessDenied\n  b:\n    sourceIPAddress: 198.51.100.1\n  condition: a or b\n",
        ),
        // array values
        rule("arn", "  sel:\n    resources.ARN|endswith: ':trail/main'\n  condition: sel\n"),
        rule("typed", "  sel:\n    resources.type: AWS::S3::Bucket\n  condition: sel\n"),
        // category fields are not guards
        rule("api-call", "  sel:\n    eventType: AwsApiCall\n  condition: sel\n"),
    ];
    let set = RuleSet::from_sources(rules.iter().enumerate().map(|(i, r)| {
        (
            [
                "a.yml", "b.yml", "c.yml", "d.yml", "e.yml", "f.yml", "g.yml", "h.yml", "i.yml",
                "j.yml", "k.yml",
            ][i],
            r.as_str(),
        )
    }))
    .unwrap();
    let guarded = |id: &str| {
        set.guards.iter().any(|g| {
            g.present
                .iter()
                .chain(&g.valued)
                .any(|&i| set.rules[i].id == id)
        })
    };
    let with_guard = [
        "denied-prefix",
        "denied-exact",
        "root",
        "root-cased",
        "one-of",
        "arn",
        "typed",
    ];
    for id in with_guard {
        assert!(guarded(id), "{id} has a guard");
    }
    for id in ["no-error", "no-error-2", "or-other", "api-call"] {
        assert!(!guarded(id), "{id} is evaluated for every event");
    }
    let events = [
        json!({"eventType": "AwsApiCall", "userAgent": "x"}),
        json!({"errorCode": "AccessDenied", "userIdentity": {"type": "IAMUser"}}),
        json!({"errorCode": "accessdenied", "userIdentity": {"type": "AWSService"}}),
        json!({"errorCode": "Client.UnauthorizedOperation"}),
        json!({"errorCode": "AccessDeniedException", "sourceIPAddress": "198.51.100.1"}),
        json!({"errorCode": null, "userAgent": "x"}),
        json!({"errorCode": 403}),
        json!({"errorCode": ["AccessDenied", "Throttling"]}),
        json!({"errorCode": "Throttling"}),
        json!({"errorCode": "RequestLimitExceeded"}),
        json!({"userIdentity": {"type": "Root"}}),
        json!({"userIdentity": {"type": "ROOT", "invokedBy": "s3.amazonaws.com"}}),
        json!({"userIdentity": {"type": "root"}}),
        json!({"userIdentity": {"type": ["Root", "IAMUser"]}}),
        json!({"userIdentity": {"type": {"nested": "Root"}}}),
        json!({"resources": [{"ARN": "arn:aws:s3:::b", "type": "AWS::S3::Bucket"}, {"ARN": "arn:aws:cloudtrail:us-east-1:1:trail/main"}]}),
        json!({"resources": [{"type": "aws::s3::bucket"}]}),
        json!({"sourceIPAddress": "198.51.100.1"}),
        json!({}),
    ];
    for ev in &events {
        let brute: Vec<&str> = set
            .rules()
            .iter()
            .filter(|r| rule_matches(r, ev))
            .map(|r| r.id.as_str())
            .collect();
        let mut out = Vec::new();
        set.matches(ev, &mut out);
        let indexed: Vec<&str> = out.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(indexed, brute, "{ev}");
        // the record reading agrees with the JSON value's
        let record = crate::model::Record::from_value(ev).unwrap();
        let mut out = Vec::new();
        set.matches(&record, &mut out);
        let from_record: Vec<&str> = out.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(from_record, brute, "{ev}");
    }
    // the grid exercises every guarded rule both ways
    for id in with_guard {
        assert!(
            events.iter().any(|ev| set
                .rules()
                .iter()
                .any(|r| r.id == id && rule_matches(r, ev))),
            "{id} matches some event"
        );
    }
}

#[test]
fn load_errors_name_file_and_line() {
    let e = load_err("  sel:\n    eventName|containz: x\n  condition: sel\n");
    assert_eq!(e.line, Some(8));
    assert!(e.message.contains("unknown modifier `containz`"), "{e}");
    assert_eq!(e.to_string(), format!("r.yml:8: {}", e.message));
    let e = load_err("  sel:\n    eventName: x\n  condition: sel and filter\n");
    assert_eq!(e.line, Some(9));
    assert!(e.message.contains("filter"), "{e}");
    let e = load_err("  sel:\n    eventName: x\n  condition: 1 of filter_*\n");
    assert!(e.message.contains("matches no detection"), "{e}");
    let e = load_err("  sel:\n    eventName: x\n");
    assert!(e.message.contains("no `condition`"), "{e}");
    let e = load_err("  sel:\n    eventName|windash: x\n  condition: sel\n");
    assert!(e.message.contains("windash"), "{e}");
    let e = load_err("  sel: 5\n  condition: sel\n");
    assert_eq!(e.line, Some(7));
    let bad_yaml =
        RuleSet::from_sources([("bad.yml", "title: t\ndetection:\n  sel: [a\n")]).unwrap_err();
    assert_eq!(bad_yaml[0].file, "bad.yml");
    assert!(bad_yaml[0].line.is_some());
}

#[test]
fn other_logsources_and_collections_are_refused() {
    let text = "title: t\nid: x\nlogsource:\n  product: windows\n  service: security\ndetection:\n  sel:\n    EventID: 1\n  condition: sel\n";
    let e = RuleSet::from_sources([("w.yml", text)]).unwrap_err();
    assert_eq!(e[0].line, Some(4));
    assert!(
        e[0].message.contains("product: aws, service: cloudtrail"),
        "{}",
        e[0]
    );
    let text = format!(
        "action: global\ntitle: t\n---\n{}",
        rule("  sel:\n    x: 1\n  condition: sel\n")
    );
    let e = RuleSet::from_sources([("g.yml", text.as_str())]).unwrap_err();
    assert!(e[0].message.contains("action: global"), "{}", e[0]);
}

#[test]
fn metadata_and_failed_attempts() {
    let text = "title: Console login failures\nname: tw-login-fail\nid: 11111111-2222-3333-4444-555555555555\n\
        description: d\nlogsource: {product: aws, service: cloudtrail}\nfailed_attempts: keep\n\
        tags: [attack.t1110]\nfalsepositives: [typos]\ndetection:\n  sel:\n    eventName: ConsoleLogin\n  condition: sel\nlevel: informational\n";
    let set = RuleSet::from_sources([("f.yml", text)]).unwrap();
    let r = &set.rules()[0];
    assert_eq!(r.id, "tw-login-fail");
    assert_eq!(
        r.sigma_id.as_deref(),
        Some("11111111-2222-3333-4444-555555555555")
    );
    assert_eq!(r.level, Severity::Info);
    assert_eq!(r.failed_attempts, FailedAttempts::Keep);
    assert_eq!(r.tags, ["attack.t1110"]);
    assert_eq!(r.falsepositives, ["typos"]);
    assert!(!r.correlation_only);
    let bad = text.replace("failed_attempts: keep", "failed_attempts: sometimes");
    assert_eq!(
        RuleSet::from_sources([("f.yml", bad.as_str())]).unwrap_err()[0].line,
        Some(6)
    );
    let dup = RuleSet::from_sources([("a.yml", text), ("b.yml", text)]).unwrap_err();
    assert!(dup[0].message.contains("duplicate rule id"), "{}", dup[0]);
}

#[test]
fn correlations_load_and_resolve_references() {
    let base = "title: Failed login\nname: failed-login\nlogsource: {product: aws, service: cloudtrail}\n\
        detection:\n  sel:\n    eventName: ConsoleLogin\n    errorMessage: Failed authentication\n  condition: sel\nlevel: low\n";
    let corr = "title: Brute force\nname: brute-force\ncorrelation:\n  type: event_count\n  rules:\n    - failed-login\n\
        group-by:\n    - sourceIPAddress\n  timespan: 10m\n  condition:\n    gte: 10\nlevel: high\n";
    let corr = corr.replace("group-by", "  group-by");
    let set = RuleSet::from_sources([("base.yml", base), ("corr.yml", corr.as_str())]).unwrap();
    let c = &set.correlations()[0];
    assert_eq!(c.id, "brute-force");
    assert_eq!(c.kind, CorrelationType::EventCount);
    assert_eq!(c.rules, ["failed-login"]);
    assert_eq!(c.group_by, ["sourceIPAddress"]);
    assert_eq!(c.timespan, Duration::from_secs(600));
    assert!(c.condition.as_ref().unwrap().holds(10));
    assert!(!c.condition.as_ref().unwrap().holds(9));
    assert!(!c.generate);
    // generate: false (the default) makes the base rule correlation input only
    assert!(set.rule("failed-login").unwrap().correlation_only);
    // same file, multi-document, value_count by Sigma id
    let multi = format!(
        "{}\n---\ntitle: Many users\nname: many-users\ncorrelation:\n  type: value_count\n  rules: [abc-id]\n  group-by: [sourceIPAddress]\n  timespan: 1h\n  condition: {{gt: 3, field: userIdentity.userName}}\ngenerate: true\n",
        base.replace("name: failed-login", "id: abc-id")
    );
    let set = RuleSet::from_sources([("m.yml", multi.as_str())]).unwrap();
    assert_eq!(set.correlations()[0].rules, ["abc-id"]);
    assert_eq!(
        set.correlations()[0]
            .condition
            .as_ref()
            .unwrap()
            .field
            .as_deref(),
        Some("userIdentity.userName")
    );
    assert!(!set.rules()[0].correlation_only);
    // unknown reference: the load fails on the correlation's line
    let e = RuleSet::from_sources([("c.yml", corr.as_str())]).unwrap_err();
    assert_eq!(e[0].line, Some(1));
    assert!(
        e[0].message.contains("unknown rule `failed-login`"),
        "{}",
        e[0]
    );
    // value_count without a field, unknown type
    let vc = corr.replace("event_count", "value_count");
    assert!(
        RuleSet::from_sources([("b.yml", base), ("c.yml", vc.as_str())]).unwrap_err()[0]
            .message
            .contains("field")
    );
    let bad = corr.replace("event_count", "value_sum");
    assert!(
        RuleSet::from_sources([("b.yml", base), ("c.yml", bad.as_str())]).unwrap_err()[0]
            .message
            .contains("value_sum")
    );
}

#[test]
fn legacy_aggregations_become_correlations() {
    let text = rule("  sel:\n    eventName: ListBuckets\n  timeframe: 10m\n  condition: sel | count() by sourceIPAddress > 5\n");
    let set = RuleSet::from_sources([("l.yml", text.as_str())]).unwrap();
    assert_eq!(set.rules().len(), 1);
    assert_eq!(set.rules()[0].id, "r/base");
    assert!(set.rules()[0].correlation_only);
    let c = &set.correlations()[0];
    assert_eq!(
        (c.id.as_str(), c.kind, c.timespan),
        ("r", CorrelationType::EventCount, Duration::from_secs(600))
    );
    assert_eq!(c.rules, ["r/base"]);
    assert_eq!(c.group_by, ["sourceIPAddress"]);
    assert_eq!(c.condition.as_ref().unwrap().ops, [(CmpOp::Gt, 5)]);
    assert!(hits(&set, &json!({"eventName": "ListBuckets"})));
    let near = rule("  a:\n    eventName: CreateFunction\n  b:\n    eventName: Invoke\n  condition: a | near b\n");
    let set = RuleSet::from_sources([("n.yml", near.as_str())]).unwrap();
    assert_eq!(set.correlations()[0].kind, CorrelationType::Temporal);
    assert_eq!(set.correlations()[0].rules, ["r/base", "r/b"]);
    assert_eq!(set.warnings().len(), 1, "the missing timeframe is reported");
    let e = load_err("  sel:\n    x: 1\n  condition: sel | sum(x) > 3\n");
    assert!(e.message.contains("unsupported aggregation"), "{e}");
}

#[test]
fn placeholders_expand_or_never_match_with_a_warning() {
    let det = "  sel:\n    eventName: ConsoleLogin\n  filter:\n    sourceIPAddress|expand: '%trusted_ips%'\n  condition: sel and not filter\n";
    let text = rule(det);
    let set = RuleSet::from_sources([("p.yml", text.as_str())]).unwrap();
    assert_eq!(set.warnings().len(), 1);
    assert_eq!(set.warnings()[0].line, Some(10));
    assert!(set.warnings()[0].message.contains("%trusted_ips%"));
    // the filter never matches, so every login fires
    assert!(hits(
        &set,
        &json!({"eventName": "ConsoleLogin", "sourceIPAddress": "1.2.3.4"})
    ));
    let opts = LoadOptions {
        placeholders: HashMap::from([(
            "trusted_ips".to_string(),
            vec!["1.2.3.4".to_string(), "5.*".to_string()],
        )]),
    };
    let set = RuleSet::from_sources_with([("p.yml", text.as_str())], &opts).unwrap();
    assert!(set.warnings().is_empty());
    assert!(!hits(
        &set,
        &json!({"eventName": "ConsoleLogin", "sourceIPAddress": "1.2.3.4"})
    ));
    assert!(!hits(
        &set,
        &json!({"eventName": "ConsoleLogin", "sourceIPAddress": "5.6.7.8"})
    ));
    assert!(hits(
        &set,
        &json!({"eventName": "ConsoleLogin", "sourceIPAddress": "9.9.9.9"})
    ));
    // a selection on an unexpanded placeholder alone never matches
    let set = load("  sel:\n    sourceIPAddress|expand: '%nothing%'\n  condition: sel\n");
    assert!(!hits(&set, &json!({"sourceIPAddress": "%nothing%"})));
}

#[test]
fn rule_set_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RuleSet>();
}

#[test]
fn bundled_pack_loads() {
    // the pack is written concurrently; whatever is there must load
    if let Err(e) = RuleSet::bundled() {
        panic!(
            "{}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_loads_or_fails_cleanly(text in ".{0,400}") {
            let _ = RuleSet::from_sources([("p.yml", text.as_str())]);
        }

        #[test]
        fn arbitrary_conditions_and_values(cond in "[a-z_*() 0-9|]{0,60}", value in ".{0,40}", m in "(|\\|contains|\\|re|\\|cidr|\\|startswith|\\|base64offset\\|contains|\\|gt)") {
            let det = format!("  sel_a:\n    f{m}: {value:?}\n  sel_b:\n    - g: 1\n  condition: {cond}\n");
            if let Ok(set) = RuleSet::from_sources([("p.yml", rule(&det).as_str())]) {
                let mut out = Vec::new();
                set.matches(&json!({"f": value, "g": [1, "x", null, {"h": true}]}), &mut out);
            }
        }
    }
}

#[test]
fn unknown_top_level_fields_are_warned_about() {
    let text =
        rule("  sel:\n    x: 1\n  condition: sel\n") + "falsepositive: typo\nx-team: custom\n";
    let set = RuleSet::from_sources([("u.yml", text.as_str())]).unwrap();
    assert_eq!(set.warnings().len(), 1);
    assert_eq!(set.warnings()[0].line, Some(11));
    assert!(set.warnings()[0].message.contains("falsepositive"));
}

#[test]
fn ratio_extension_loads_and_is_validated() {
    let any = "title: any\nname: b-any\nlogsource: {product: aws, service: cloudtrail}\n\
        detection:\n  sel:\n    eventSource: iam.amazonaws.com\n  condition: sel\n";
    let denied = any.replace("name: b-any", "name: b-denied\nid: denied-uuid");
    let ratio = "title: mostly denied\nname: c-ratio\ncorrelation:\n  type: event_count\n  rules: [denied-uuid, b-any]\n\
        group-by: [userIdentity.arn]\n  timespan: 24h\n  condition: {gte: 4}\ntrailwatch:\n  ratio:\n\
        numerator: [denied-uuid]\n    min_percent: 50\n    min_total: 6\nlevel: medium\n"
        .replace("group-by", "  group-by")
        .replace("numerator:", "    numerator:");
    let set = RuleSet::from_sources([
        ("a.yml", any),
        ("d.yml", denied.as_str()),
        ("r.yml", ratio.as_str()),
    ])
    .unwrap();
    assert!(set.warnings().is_empty(), "{:?}", set.warnings());
    let r = set.correlations()[0].ratio.as_ref().unwrap();
    assert_eq!(r.numerator, ["b-denied"], "numerators resolve like rules");
    assert_eq!((r.min_percent, r.min_total), (50, 6));
    let load = |text: &str| {
        RuleSet::from_sources([("a.yml", any), ("d.yml", denied.as_str()), ("r.yml", text)])
    };
    let outsider = ratio.replace("numerator: [denied-uuid]", "numerator: [b-other]");
    assert!(load(&outsider).unwrap_err()[0]
        .message
        .contains("not one of its rules"));
    let pct = ratio.replace("min_percent: 50", "min_percent: 150");
    assert!(load(&pct).unwrap_err()[0].message.contains("percentage"));
    let temporal = ratio.replace("event_count", "temporal");
    assert!(load(&temporal).unwrap_err()[0]
        .message
        .contains("event_count"));
    let no_bound = ratio.replace("{gte: 4}", "{lte: 4}");
    assert!(load(&no_bound).unwrap_err()[0].message.contains("gte"));
    let typo = ratio.replace("min_total", "min_totl");
    assert!(load(&typo).is_err());
}
