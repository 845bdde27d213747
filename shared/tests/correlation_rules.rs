//! Every correlation rule of the bundled pack against a sequence that must fire it and a
//! near miss that must not, through the real engine, correlator and in-memory state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use std::cell::Cell;
use std::collections::BTreeSet;
use trailwatch::correlate::{Batch, Correlator};
use trailwatch::detect::RuleSet;
use trailwatch::findings::Finding;
use trailwatch::model::Record;
use trailwatch::ports::memory_state::MemCorrelationState;

const T0: i64 = 1_794_999_600; // 2026-11-18T13:00:00Z, on a bucket boundary of every span
const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const BOB: &str = "arn:aws:iam::111122223333:user/bob";

thread_local!(static SEQ: Cell<u64> = const { Cell::new(0) });

/// A CloudTrail record at `T0 + secs` by `who`, with `extra` top-level fields merged in.
fn ev(secs: i64, name: &str, source: &str, who: &str, extra: Value) -> Value {
    let n = SEQ.with(|s| {
        s.set(s.get() + 1);
        s.get()
    });
    let time = time::OffsetDateTime::from_unix_timestamp(T0 + secs)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let user = who.rsplit('/').next().unwrap_or(who);
    let mut v = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": who,
                         "accountId": "111122223333", "userName": user},
        "eventTime": time, "eventSource": source, "eventName": name,
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.24", "userAgent": "aws-cli/2.17.20",
        "requestParameters": null, "responseElements": null,
        "requestID": format!("req-{n}"), "eventID": format!("00000000-0000-4000-8000-{n:012}"),
        "readOnly": false, "eventType": "AwsApiCall", "managementEvent": true,
        "recipientAccountId": "111122223333", "eventCategory": "Management"
    });
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
        obj.extend(extra);
    }
    v
}

fn failed_login(secs: i64, user: &str, ip: &str) -> Value {
    ev(
        secs,
        "ConsoleLogin",
        "signin.amazonaws.com",
        ALICE,
        json!({"userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE",
                "accountId": "111122223333", "userName": user},
               "sourceIPAddress": ip, "eventType": "AwsConsoleSignIn",
               "responseElements": {"ConsoleLogin": "Failure"},
               "errorMessage": "Failed authentication"}),
    )
}

fn denied(secs: i64, who: &str, name: &str, source: &str) -> Value {
    ev(
        secs,
        name,
        source,
        who,
        json!({"errorCode": "AccessDenied"}),
    )
}

fn launch(secs: i64, who: &str, region: &str, instance_type: &str) -> Value {
    ev(
        secs,
        "RunInstances",
        "ec2.amazonaws.com",
        who,
        json!({"awsRegion": region, "requestParameters": {"instanceType": instance_type,
               "instancesSet": {"items": [{"imageId": "ami-0abcdef1234567890", "minCount": 1, "maxCount": 1}]}}}),
    )
}

fn iam(secs: i64, who: &str, name: &str, params: Value) -> Value {
    ev(
        secs,
        name,
        "iam.amazonaws.com",
        who,
        json!({"requestParameters": params}),
    )
}

/// Distinct findings of correlation `id` when `events` arrive `per_flush` at a time.
fn fired(id: &str, events: &[Value], per_flush: usize) -> usize {
    let rules = RuleSet::bundled().unwrap();
    assert!(
        rules.correlations().iter().any(|c| c.id == id),
        "no correlation {id}"
    );
    let correlator = Correlator::new(&rules);
    assert!(
        correlator.warnings().is_empty(),
        "{:?}",
        correlator.warnings()
    );
    let state = MemCorrelationState::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut found: Vec<Finding> = Vec::new();
    for chunk in events.chunks(per_flush) {
        let mut batch = Batch::default();
        for e in chunk {
            let record = Record::from_value(e).unwrap();
            let mut matched = Vec::new();
            rules.matches(&record, &mut matched);
            // building blocks never alert on their own
            assert!(matched
                .iter()
                .all(|r| !r.id.starts_with("tw-base-") || r.correlation_only));
            correlator.observe(&mut batch, &record, &matched, "test");
        }
        found.extend(runtime.block_on(correlator.flush(&state, batch)).unwrap());
    }
    let ids: BTreeSet<&str> = found
        .iter()
        .filter(|f| f.rule_id == id)
        .map(|f| f.id.as_str())
        .collect();
    ids.len()
}

/// Positive: exactly one finding, delivered one record at a time and all at once.
fn assert_fires(id: &str, events: &[Value]) {
    assert_eq!(fired(id, events, 1), 1, "{id}: one record per flush");
    assert_eq!(fired(id, events, events.len()), 1, "{id}: one flush");
    let mut rev = events.to_vec();
    rev.reverse();
    assert_eq!(fired(id, &rev, 3), 1, "{id}: reversed, three per flush");
}

fn assert_silent(id: &str, events: &[Value]) {
    assert_eq!(fired(id, events, 1), 0, "{id}: one record per flush");
    assert_eq!(fired(id, events, events.len()), 0, "{id}: one flush");
}

#[test]
fn console_login_failures_by_ip() {
    let id = "tw-corr-console-login-failures-by-ip";
    let pos: Vec<Value> = (0..10)
        .map(|i| failed_login(i * 50, &format!("user{}", i % 3), "198.51.100.7"))
        .collect();
    assert_fires(id, &pos);
    // ten failures, but over 45 minutes
    let slow: Vec<Value> = (0..10)
        .map(|i| failed_login(i * 300, "user1", "198.51.100.7"))
        .collect();
    assert_silent(id, &slow);
}

#[test]
fn console_login_failures_by_user() {
    let id = "tw-corr-console-login-failures-by-user";
    let pos: Vec<Value> = (0..5)
        .map(|i| failed_login(i * 120, "carol", &format!("198.51.100.{i}")))
        .collect();
    assert_fires(id, &pos);
    let neg: Vec<Value> = (0..5)
        .map(|i| failed_login(i * 120, &format!("user{i}"), "198.51.100.7"))
        .collect();
    assert_silent(id, &neg);
}

#[test]
fn console_password_spray() {
    let id = "tw-corr-console-password-spray";
    let pos: Vec<Value> = (0..5)
        .map(|i| failed_login(i * 400, &format!("user{i}"), "198.51.100.9"))
        .collect();
    assert_fires(id, &pos);
    let neg: Vec<Value> = (0..20)
        .map(|i| failed_login(i * 60, "carol", "198.51.100.9"))
        .collect();
    assert_silent(id, &neg);
}

#[test]
fn access_denied_burst() {
    let id = "tw-corr-access-denied-burst";
    let pos: Vec<Value> = (0..20)
        .map(|i| denied(i * 20, ALICE, "ListBuckets", "s3.amazonaws.com"))
        .collect();
    assert_fires(id, &pos);
    let neg: Vec<Value> = (0..20)
        .map(|i| {
            let who = if i % 2 == 0 { ALICE } else { BOB };
            denied(i * 20, who, "ListBuckets", "s3.amazonaws.com")
        })
        .collect();
    assert_silent(id, &neg);
}

#[test]
fn access_denied_across_services() {
    let id = "tw-corr-access-denied-across-services";
    let services = ["s3", "ec2", "iam", "lambda", "rds"];
    let pos: Vec<Value> = services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            denied(
                i as i64 * 60,
                ALICE,
                "ListThings",
                &format!("{s}.amazonaws.com"),
            )
        })
        .collect();
    assert_fires(id, &pos);
    let neg: Vec<Value> = (0..30)
        .map(|i| denied(i * 10, ALICE, "ListBuckets", "s3.amazonaws.com"))
        .collect();
    assert_silent(id, &neg);
}

#[test]
fn secret_harvesting() {
    let id = "tw-corr-secret-harvesting";
    let mut pos: Vec<Value> = (0..6)
        .map(|i| {
            ev(
                i * 30,
                "GetSecretValue",
                "secretsmanager.amazonaws.com",
                ALICE,
                json!({"requestParameters": {"secretId": format!("prod/app{i}")}}),
            )
        })
        .collect();
    pos.push(ev(
        200,
        "GetParameters",
        "ssm.amazonaws.com",
        ALICE,
        json!({"requestParameters": {"names": ["/p/a", "/p/b", "/p/c"], "withDecryption": true}}),
    ));
    pos.push(ev(
        260,
        "GetParameter",
        "ssm.amazonaws.com",
        ALICE,
        json!({"requestParameters": {"name": "/p/d", "withDecryption": true}}),
    ));
    assert_fires(id, &pos);
    // the same secret over and over, and parameters read without decryption
    let mut neg: Vec<Value> = (0..30)
        .map(|i| {
            ev(
                i * 20,
                "GetSecretValue",
                "secretsmanager.amazonaws.com",
                ALICE,
                json!({"requestParameters": {"secretId": "prod/db"}}),
            )
        })
        .collect();
    neg.push(ev(
        100,
        "GetParameters",
        "ssm.amazonaws.com",
        ALICE,
        json!({"requestParameters": {"names": ["/p/a", "/p/b", "/p/c", "/p/d", "/p/e", "/p/f", "/p/g", "/p/h", "/p/i"], "withDecryption": false}}),
    ));
    assert_silent(id, &neg);
}

#[test]
fn enumeration_across_services() {
    let id = "tw-corr-enumeration-across-services";
    let calls = [
        ("ListUsers", "iam"),
        ("ListBuckets", "s3"),
        ("DescribeInstances", "ec2"),
        ("ListFunctions", "lambda"),
        ("DescribeDBInstances", "rds"),
        ("ListSecrets", "secretsmanager"),
        ("DescribeTrails", "cloudtrail"),
        ("GetAccountAuthorizationDetails", "iam"),
        ("ListKeys", "kms"),
    ];
    let pos: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (n, s))| {
            ev(
                i as i64 * 30,
                n,
                &format!("{s}.amazonaws.com"),
                ALICE,
                json!({"readOnly": true}),
            )
        })
        .collect();
    assert_fires(id, &pos);
    let neg: Vec<Value> = (0..50)
        .map(|i| {
            let (n, s) = calls[i % 3];
            ev(
                i as i64 * 5,
                n,
                &format!("{s}.amazonaws.com"),
                ALICE,
                json!({}),
            )
        })
        .collect();
    assert_silent(id, &neg);
}

#[test]
fn mass_instance_launch() {
    let id = "tw-corr-mass-instance-launch";
    let pos: Vec<Value> = (0..10)
        .map(|i| launch(i * 60, ALICE, "us-east-1", "c5.large"))
        .collect();
    assert_fires(id, &pos);
    let neg: Vec<Value> = (0..9)
        .map(|i| launch(i * 60, ALICE, "us-east-1", "c5.large"))
        .collect();
    assert_silent(id, &neg);
}

#[test]
fn instance_launch_many_regions() {
    let id = "tw-corr-instance-launch-many-regions";
    let regions = ["us-east-1", "eu-west-1", "ap-south-1", "sa-east-1"];
    let pos: Vec<Value> = regions
        .iter()
        .enumerate()
        .map(|(i, r)| launch(i as i64 * 600, ALICE, r, "c5.large"))
        .collect();
    assert_fires(id, &pos);
    let neg: Vec<Value> = (0..8)
        .map(|i| launch(i * 300, ALICE, regions[(i % 3) as usize], "c5.large"))
        .collect();
    assert_silent(id, &neg);
}

#[test]
fn gpu_instance_launches() {
    let id = "tw-corr-gpu-instance-launches";
    let pos: Vec<Value> = (0..3)
        .map(|i| launch(i * 600, ALICE, "us-east-1", "p4d.24xlarge"))
        .collect();
    assert_fires(id, &pos);
    let neg: Vec<Value> = (0..3)
        .map(|i| launch(i * 600, ALICE, "us-east-1", "m5.large"))
        .collect();
    assert_silent(id, &neg);
}

fn bedrock(secs: i64, name: &str) -> Value {
    ev(
        secs,
        name,
        "bedrock.amazonaws.com",
        ALICE,
        json!({"requestParameters": {"modelId": "anthropic.claude-3-sonnet-20240229-v1:0"}}),
    )
}

#[test]
fn llmjacking_discovery_then_invoke() {
    let id = "tw-corr-llmjacking-discovery-then-invoke";
    assert_fires(
        id,
        &[
            bedrock(0, "ListFoundationModels"),
            bedrock(900, "InvokeModel"),
        ],
    );
    // invocation first, enumeration later: not the pattern
    assert_silent(
        id,
        &[
            bedrock(0, "InvokeModel"),
            bedrock(900, "ListFoundationModels"),
        ],
    );
    // too far apart
    assert_silent(
        id,
        &[
            bedrock(0, "ListFoundationModels"),
            bedrock(7200, "InvokeModel"),
        ],
    );
}

#[test]
fn llmjacking_access_requested_then_invoke() {
    let id = "tw-corr-llmjacking-access-requested-then-invoke";
    assert_fires(
        id,
        &[
            bedrock(0, "GetFoundationModelAvailability"),
            bedrock(3600, "PutUseCaseForModelAccess"),
            bedrock(7200, "InvokeModel"),
        ],
    );
    assert_silent(
        id,
        &[
            bedrock(0, "GetFoundationModelAvailability"),
            bedrock(7200, "InvokeModel"),
        ],
    );
}

#[test]
fn user_admin_access_key() {
    let id = "tw-corr-user-admin-access-key";
    let admin = "arn:aws:iam::aws:policy/AdministratorAccess";
    assert_fires(
        id,
        &[
            iam(0, ALICE, "CreateUser", json!({"userName": "backup-svc"})),
            iam(
                600,
                ALICE,
                "AttachUserPolicy",
                json!({"userName": "backup-svc", "policyArn": admin}),
            ),
            iam(
                1200,
                BOB,
                "CreateAccessKey",
                json!({"userName": "backup-svc"}),
            ),
        ],
    );
    // the key is for another user
    assert_silent(
        id,
        &[
            iam(0, ALICE, "CreateUser", json!({"userName": "backup-svc"})),
            iam(
                600,
                ALICE,
                "AttachUserPolicy",
                json!({"userName": "backup-svc", "policyArn": admin}),
            ),
            iam(1200, ALICE, "CreateAccessKey", json!({"userName": "alice"})),
        ],
    );
    // the key came first
    assert_silent(
        id,
        &[
            iam(
                0,
                ALICE,
                "CreateAccessKey",
                json!({"userName": "backup-svc"}),
            ),
            iam(600, ALICE, "CreateUser", json!({"userName": "backup-svc"})),
            iam(
                1200,
                ALICE,
                "AttachUserPolicy",
                json!({"userName": "backup-svc", "policyArn": admin}),
            ),
        ],
    );
}

fn assume(secs: i64, caller_account: &str) -> Value {
    ev(
        secs,
        "AssumeRole",
        "sts.amazonaws.com",
        ALICE,
        json!({"userIdentity": {"type": "AWSAccount", "principalId": "AIDAEXAMPLEFOREIGN", "accountId": caller_account},
               "requestParameters": {"roleArn": "arn:aws:iam::111122223333:role/deploy", "roleSessionName": "s"}}),
    )
}

#[test]
fn role_trust_changed_then_foreign_assume() {
    let id = "tw-corr-role-trust-changed-then-foreign-assume";
    let trust = iam(
        0,
        ALICE,
        "UpdateAssumeRolePolicy",
        json!({"roleName": "deploy", "policyDocument": "{}"}),
    );
    assert_fires(id, &[trust.clone(), assume(900, "444455556666")]);
    assert_silent(id, &[trust, assume(900, "111122223333")]);
}

#[test]
fn trail_stopped_then_sensitive_action() {
    let id = "tw-corr-trail-stopped-then-sensitive-action";
    let stop = |s| {
        ev(
            s,
            "StopLogging",
            "cloudtrail.amazonaws.com",
            ALICE,
            json!({"requestParameters": {"name": "org-trail"}}),
        )
    };
    let key = |s| iam(s, BOB, "CreateAccessKey", json!({"userName": "bob"}));
    assert_fires(id, &[stop(0), key(600)]);
    assert_silent(id, &[key(0), stop(600)]);
}

#[test]
fn ebs_snapshot_created_then_shared() {
    let id = "tw-corr-ebs-snapshot-created-then-shared";
    let create = ev(
        0,
        "CreateSnapshot",
        "ec2.amazonaws.com",
        ALICE,
        json!({"requestParameters": {"volumeId": "vol-1"}, "responseElements": {"snapshotId": "snap-1", "status": "pending"}}),
    );
    let share = |snap: &str| {
        ev(
            3600,
            "ModifySnapshotAttribute",
            "ec2.amazonaws.com",
            ALICE,
            json!({"requestParameters": {"snapshotId": snap, "attributeType": "CREATE_VOLUME_PERMISSION",
                   "createVolumePermission": {"add": {"items": [{"userId": "444455556666"}]}}}}),
        )
    };
    assert_fires(id, &[create.clone(), share("snap-1")]);
    assert_silent(id, &[create, share("snap-2")]);
}

#[test]
fn rds_snapshot_created_then_shared() {
    let id = "tw-corr-rds-snapshot-created-then-shared";
    let create = ev(
        0,
        "CreateDBSnapshot",
        "rds.amazonaws.com",
        ALICE,
        json!({"requestParameters": {"dBSnapshotIdentifier": "orders-snap", "dBInstanceIdentifier": "orders"}}),
    );
    let modify = |key: &str| {
        ev(
            1800,
            "ModifyDBSnapshotAttribute",
            "rds.amazonaws.com",
            ALICE,
            json!({"requestParameters": {"dBSnapshotIdentifier": "orders-snap", "attributeName": "restore", key: ["444455556666"]}}),
        )
    };
    assert_fires(id, &[create.clone(), modify("valuesToAdd")]);
    assert_silent(id, &[create, modify("valuesToRemove")]);
}

/// `privileged` privilege-changing calls after `others` ordinary ones.
fn mix(who: &str, others: i64, privileged: i64, priv_name: &str) -> Vec<Value> {
    let mut v: Vec<Value> = (0..others)
        .map(|i| {
            ev(
                i * 10,
                "DescribeInstances",
                "ec2.amazonaws.com",
                who,
                json!({}),
            )
        })
        .collect();
    v.extend((0..privileged).map(|i| {
        iam(
            others * 10 + i * 10,
            who,
            priv_name,
            json!({"userName": "x", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
        )
    }));
    v
}

#[test]
fn privilege_escalation_ratio() {
    let id = "tw-corr-privilege-escalation-ratio";
    // 12 of 30 calls (40 %) change privileges
    let pos = mix(ALICE, 18, 12, "AttachUserPolicy");
    assert_eq!(fired(id, &pos, 1), 1);
    assert_eq!(fired(id, &pos, 30), 1);
    // 12 of 112 (11 %)
    let neg = mix(BOB, 100, 12, "AttachUserPolicy");
    assert_eq!(fired(id, &neg, 1), 0);
    assert_eq!(fired(id, &neg, 200), 0);
    // many calls, few privilege changes: below the count
    assert_eq!(fired(id, &mix(BOB, 10, 9, "AttachUserPolicy"), 100), 0);
}

#[test]
fn enumeration_ratio() {
    let id = "tw-corr-enumeration-ratio";
    let calls = |who: &str, enumerations: i64, writes: i64| -> Vec<Value> {
        let mut v: Vec<Value> = (0..writes)
            .map(|i| ev(i * 10, "PutObjectAcl", "s3.amazonaws.com", who, json!({})))
            .collect();
        v.extend((0..enumerations).map(|i| {
            ev(
                writes * 10 + i * 10,
                "ListUsers",
                "iam.amazonaws.com",
                who,
                json!({"readOnly": true}),
            )
        }));
        v
    };
    // 170 of 200 (85 %)
    let pos = calls(ALICE, 170, 30);
    assert_eq!(fired(id, &pos, 50), 1);
    // 170 of 270 (63 %)
    let neg = calls(BOB, 170, 100);
    assert_eq!(fired(id, &neg, 50), 0);
}

#[test]
fn every_correlation_of_the_pack_is_tested_here() {
    let rules = RuleSet::bundled().unwrap();
    let src = include_str!("correlation_rules.rs");
    let untested: Vec<&str> = rules
        .correlations()
        .iter()
        .map(|c| c.id.as_str())
        .filter(|id| !src.contains(&format!("let id = \"{id}\"")))
        .collect();
    assert!(untested.is_empty(), "untested correlations: {untested:?}");
    assert!(rules.correlations().len() >= 15);
    assert!(Correlator::new(&rules).warnings().is_empty());
}
