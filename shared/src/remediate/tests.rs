use super::*;
use crate::ports::memory::MemFindingStore;
use crate::ports::remediate::{Call, MemRemediator};
use crate::ports::{FindingStore, PortError};
use serde_json::json;

const OWN: &str =
    "arn:aws:sts::111122223333:assumed-role/tw-EventHandlerRole-AB12/tw-event-handler";

fn cfg() -> Config {
    let mut c = Config::new("t", "arn:aws:sns:us-east-1:111122223333:alerts");
    c.trail_name = Some("main".into());
    c.trail_bucket = Some("trail-bucket".into());
    c.remediation = Remediation {
        start_logging: true,
        public_access_block: true,
        foreign_access_keys: true,
        dry_run: false,
        allowed_principals: vec!["arn:aws:iam::111122223333:role/IdentityAdmin*".into()],
        protected_trails: vec!["main".into()],
    };
    c
}

fn alice() -> Value {
    json!({
        "type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": "111122223333",
        "arn": "arn:aws:iam::111122223333:user/alice", "userName": "alice"
    })
}

fn rec(identity: Value, source: &str, name: &str, params: Value, response: Value) -> Record {
    Record::from_value(&json!({
        "eventVersion": "1.09", "userIdentity": identity,
        "eventTime": "2024-05-01T10:00:00Z", "eventSource": source, "eventName": name,
        "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.7",
        "requestParameters": params, "responseElements": response,
        "eventID": "9b1f0c2e-0000-4000-8000-000000000001", "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333"
    }))
    .unwrap()
}

fn stop_logging(trail: &str) -> Record {
    rec(
        alice(),
        "cloudtrail.amazonaws.com",
        "StopLogging",
        json!({"name": trail}),
        Value::Null,
    )
}

fn own() -> OwnIdentity {
    OwnIdentity::from_arn(OWN)
}

#[test]
fn stop_logging_on_protected_trail_by_name_or_arn() {
    let c = cfg();
    let want = |t: &str| {
        Some(Action::StartLogging {
            trail: t.to_owned(),
        })
    };
    assert_eq!(plan(&c, &stop_logging("main"), &own()), want("main"));
    let arn = "arn:aws:cloudtrail:us-east-1:111122223333:trail/main";
    assert_eq!(plan(&c, &stop_logging(arn), &own()), want(arn));
    assert_eq!(plan(&c, &stop_logging("other"), &own()), None);
    // same name in another account is not ours
    let foreign = "arn:aws:cloudtrail:us-east-1:999999999999:trail/main";
    let mut c2 = c.clone();
    c2.remediation.protected_trails = vec![arn.into()];
    assert_eq!(plan(&c2, &stop_logging(foreign), &own()), None);
    assert_eq!(plan(&c2, &stop_logging("main"), &own()), want("main"));
    // switched off
    let mut off = c.clone();
    off.remediation.start_logging = false;
    assert_eq!(plan(&off, &stop_logging("main"), &own()), None);
}

#[test]
fn failed_calls_are_never_remediated() {
    let mut v: Value = serde_json::from_str(stop_logging("main").as_json()).unwrap();
    v["errorCode"] = json!("AccessDenied");
    let r = Record::from_value(&v).unwrap();
    assert_eq!(plan(&cfg(), &r, &own()), None);
}

#[test]
fn own_calls_are_never_remediated() {
    let me = json!({
        "type": "AssumedRole", "principalId": "AROAEXAMPLE:tw-event-handler",
        "arn": OWN, "accountId": "111122223333",
        "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
            "arn": "arn:aws:iam::111122223333:role/tw-EventHandlerRole-AB12",
            "accountId": "111122223333", "userName": "tw-EventHandlerRole-AB12"}}
    });
    let r = rec(
        me.clone(),
        "cloudtrail.amazonaws.com",
        "StopLogging",
        json!({"name": "main"}),
        Value::Null,
    );
    assert!(own().is_caller_of(&r));
    assert_eq!(plan(&cfg(), &r, &own()), None);
    // another session of the same role (a concurrent invocation) is still us
    let mut other_session = me.clone();
    other_session["arn"] =
        json!("arn:aws:sts::111122223333:assumed-role/tw-EventHandlerRole-AB12/other");
    let r = rec(
        other_session,
        "cloudtrail.amazonaws.com",
        "StopLogging",
        json!({"name": "main"}),
        Value::Null,
    );
    assert!(own().is_caller_of(&r));
    // a different role is not
    let mut admin = me;
    admin["arn"] = json!("arn:aws:sts::111122223333:assumed-role/Admin/bob");
    admin["sessionContext"]["sessionIssuer"]["arn"] = json!("arn:aws:iam::111122223333:role/Admin");
    admin["sessionContext"]["sessionIssuer"]["userName"] = json!("Admin");
    let r = rec(
        admin,
        "cloudtrail.amazonaws.com",
        "StopLogging",
        json!({"name": "main"}),
        Value::Null,
    );
    assert!(!own().is_caller_of(&r));
    assert!(plan(&cfg(), &r, &own()).is_some());
}

#[test]
fn own_identity_parses_caller_arns() {
    assert_eq!(own().role_name(), Some("tw-EventHandlerRole-AB12"));
    let role = OwnIdentity::from_arn("arn:aws:iam::1:role/service/path/Name");
    assert_eq!(role.role_name(), Some("Name"));
    let user = OwnIdentity::from_arn("arn:aws:iam::123456789012:user/moto");
    assert_eq!(user.role_name(), None);
    assert_eq!(user.as_arn(), "arn:aws:iam::123456789012:user/moto");
    assert_eq!(OwnIdentity::from_arn("garbage").role_name(), None);
}

fn pab(name: &str, bucket: &str, flags: Option<[bool; 4]>) -> Record {
    let mut params = json!({"bucketName": bucket, "Host": format!("{bucket}.s3.amazonaws.com")});
    if let Some([a, b, c, d]) = flags {
        params["PublicAccessBlockConfiguration"] = json!({
            "xmlns": "http://s3.amazonaws.com/doc/2006-03-01/",
            "BlockPublicAcls": a, "IgnorePublicAcls": b,
            "BlockPublicPolicy": c, "RestrictPublicBuckets": d
        });
    }
    rec(alice(), "s3.amazonaws.com", name, params, Value::Null)
}

#[test]
fn public_access_block_on_trail_bucket() {
    let c = cfg();
    let want = Some(Action::RestorePublicAccessBlock {
        bucket: "trail-bucket".into(),
    });
    let del = pab("DeleteBucketPublicAccessBlock", "trail-bucket", None);
    assert_eq!(plan(&c, &del, &own()), want);
    let weak = pab(
        "PutBucketPublicAccessBlock",
        "trail-bucket",
        Some([true, true, true, false]),
    );
    assert_eq!(plan(&c, &weak, &own()), want);
    let strong = pab(
        "PutBucketPublicAccessBlock",
        "trail-bucket",
        Some([true; 4]),
    );
    assert_eq!(plan(&c, &strong, &own()), None);
    // a configuration missing a flag sets it to false
    let missing = pab("PutBucketPublicAccessBlock", "trail-bucket", None);
    assert_eq!(plan(&c, &missing, &own()), want);
    let other = pab("DeleteBucketPublicAccessBlock", "someone-elses", None);
    assert_eq!(plan(&c, &other, &own()), None);
    let mut no_bucket = c.clone();
    no_bucket.trail_bucket = None;
    assert_eq!(plan(&no_bucket, &del, &own()), None);
}

fn create_key(identity: Value, user: Option<&str>) -> Record {
    let params = match user {
        Some(u) => json!({"userName": u}),
        None => Value::Null,
    };
    rec(
        identity,
        "iam.amazonaws.com",
        "CreateAccessKey",
        params,
        json!({"accessKey": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "status": "Active",
            "userName": user.unwrap_or("alice"), "createDate": "May 1, 2024 10:00:00 AM"}}),
    )
}

#[test]
fn foreign_access_keys() {
    let c = cfg();
    let want = Some(Action::DeactivateAccessKey {
        user_name: "bob".into(),
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
    });
    assert_eq!(plan(&c, &create_key(alice(), Some("bob")), &own()), want);
    // for oneself, explicitly or implicitly
    assert_eq!(plan(&c, &create_key(alice(), Some("alice")), &own()), None);
    assert_eq!(plan(&c, &create_key(alice(), None), &own()), None);
    // an allowed principal (pattern on the session issuer's role ARN)
    let admin = json!({
        "type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/IdentityAdminTeam/carol",
        "accountId": "111122223333",
        "sessionContext": {"sessionIssuer": {"type": "Role",
            "arn": "arn:aws:iam::111122223333:role/IdentityAdminTeam", "userName": "IdentityAdminTeam"}}
    });
    assert_eq!(plan(&c, &create_key(admin, Some("bob")), &own()), None);
    let mut off = c.clone();
    off.remediation.foreign_access_keys = false;
    assert_eq!(plan(&off, &create_key(alice(), Some("bob")), &own()), None);
}

#[test]
fn wildcard_patterns() {
    assert!(matches_pattern("*", "anything"));
    assert!(matches_pattern("*", ""));
    assert!(matches_pattern(
        "arn:aws:iam::*:role/Admin*",
        "arn:aws:iam::1:role/AdminX"
    ));
    assert!(matches_pattern("a*b*c", "aXXbYYc"));
    assert!(matches_pattern("a*c", "abcbc"));
    assert!(!matches_pattern("a*c", "abcb"));
    assert!(!matches_pattern(
        "arn:aws:iam::1:user/bob",
        "arn:aws:iam::1:user/bobby"
    ));
    assert!(matches_pattern("exact", "exact"));
    assert!(!matches_pattern("", "x"));
}

#[test]
fn enabled_only_when_an_action_is_on() {
    assert!(!is_enabled(&Remediation::default()));
    let dry_only = Remediation {
        dry_run: true,
        ..Remediation::default()
    };
    assert!(!is_enabled(&dry_only));
    assert!(is_enabled(&cfg().remediation));
}

#[test]
fn remediation_findings_are_deterministic_and_distinct() {
    let r = stop_logging("main");
    let a = Action::StartLogging {
        trail: "main".into(),
    };
    let done = remediation_finding(&a, &Outcome::Done, &r, "eventbridge");
    assert_eq!(done.rule_id, "tw-remediation-start-logging");
    assert_eq!(
        done.title,
        "Auto-remediation: logging restarted on trail main"
    );
    assert_eq!(done.severity, Severity::High);
    assert_eq!(done.event_id, "9b1f0c2e-0000-4000-8000-000000000001");
    assert_eq!(
        done.id,
        remediation_finding(&a, &Outcome::Done, &r, "eventbridge").id
    );
    let dry = remediation_finding(&a, &Outcome::DryRun, &r, "eventbridge");
    assert_eq!(
        dry.title,
        "Auto-remediation (dry run): would restart logging on trail main"
    );
    let failed = remediation_finding(
        &a,
        &Outcome::Failed {
            reason: "AccessDenied".into(),
        },
        &r,
        "eventbridge",
    );
    assert_eq!(failed.rule_id, "tw-remediation-start-logging-failed");
    assert_ne!(failed.id, done.id);
    assert!(failed.title.ends_with(": AccessDenied"), "{}", failed.title);
}

#[tokio::test]
async fn remediate_acts_once_and_records() {
    let (c, rem, store) = (cfg(), MemRemediator::new(OWN), MemFindingStore::default());
    let r = stop_logging("main");
    let Applied::Recorded(f) = remediate(&c, &rem, &store, &r, "eventbridge")
        .await
        .unwrap()
    else {
        panic!("expected a remediation")
    };
    assert_eq!(rem.calls(), [Call::StartLogging("main".into())]);
    assert_eq!(f.rule_id, "tw-remediation-start-logging");
    store.put(&f).await.unwrap();
    // duplicate delivery: the recorded remediation stops a second call
    let again = remediate(&c, &rem, &store, &r, "eventbridge")
        .await
        .unwrap();
    assert_eq!(again, Applied::AlreadyRecorded);
    assert_eq!(rem.calls().len(), 1);
    // unrelated records do nothing
    let other = create_key(alice(), Some("alice"));
    let none = remediate(&c, &rem, &store, &other, "eventbridge")
        .await
        .unwrap();
    assert_eq!(none, Applied::NotApplicable);
}

#[tokio::test]
async fn dry_run_changes_nothing_but_records() {
    let mut c = cfg();
    c.remediation.dry_run = true;
    let (rem, store) = (MemRemediator::new(OWN), MemFindingStore::default());
    let r = pab("DeleteBucketPublicAccessBlock", "trail-bucket", None);
    let Applied::Recorded(f) = remediate(&c, &rem, &store, &r, "eventbridge")
        .await
        .unwrap()
    else {
        panic!("expected a dry-run record")
    };
    assert!(rem.calls().is_empty());
    assert!(f.title.contains("(dry run): would restore"), "{}", f.title);
}

#[tokio::test]
async fn transient_failures_retry_permanent_ones_are_recorded() {
    let (c, rem, store) = (cfg(), MemRemediator::new(OWN), MemFindingStore::default());
    let r = create_key(alice(), Some("bob"));
    rem.fail_next(vec![PortError::Transient {
        op: "UpdateAccessKey",
        message: "Throttling".into(),
    }]);
    let e = remediate(&c, &rem, &store, &r, "eventbridge")
        .await
        .unwrap_err();
    assert!(e.is_retryable());
    rem.fail_next(vec![PortError::Permanent {
        op: "UpdateAccessKey",
        message: "AccessDenied: not authorized".into(),
    }]);
    let Applied::Recorded(f) = remediate(&c, &rem, &store, &r, "eventbridge")
        .await
        .unwrap()
    else {
        panic!("expected a failure record")
    };
    assert_eq!(f.rule_id, "tw-remediation-deactivate-access-key-failed");
    assert!(f.title.contains("AccessDenied"), "{}", f.title);
    assert!(rem.calls().is_empty());
    // once the failure is stored, a duplicate delivery does not try again
    store.put(&f).await.unwrap();
    let again = remediate(&c, &rem, &store, &r, "eventbridge")
        .await
        .unwrap();
    assert_eq!(again, Applied::AlreadyRecorded);
    assert!(rem.calls().is_empty());
}
