//! Check logic over hardened and weakened snapshots, and collection over the in-memory ports.

use super::*;
use crate::ports::trail::{
    BasicSelector, DataResource, MemBucketAuditSource, MemTrailSource, ReadWriteType,
};
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);
const ARN: &str = "arn:aws:cloudtrail:us-east-1:111122223333:trail/main";
const BUCKET: &str = "trail-logs";

fn pab() -> PublicAccessBlock {
    PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    }
}

fn hardened_policy() -> String {
    serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "AclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:GetBucketAcl", "Resource": format!("arn:aws:s3:::{BUCKET}"),
         "Condition": {"StringEquals": {"aws:SourceArn": ARN}}},
        {"Sid": "Write", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{BUCKET}/AWSLogs/111122223333/*"),
         "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": ARN}}},
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [format!("arn:aws:s3:::{BUCKET}"), format!("arn:aws:s3:::{BUCKET}/*")],
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    ]})
    .to_string()
}

fn trail_info() -> TrailInfo {
    TrailInfo {
        name: "main".into(),
        arn: ARN.into(),
        home_region: "us-east-1".into(),
        s3_bucket: Some(BUCKET.into()),
        s3_key_prefix: None,
        is_multi_region: true,
        include_global_service_events: true,
        log_file_validation: true,
        kms_key_id: Some("arn:aws:kms:us-east-1:111122223333:key/1234".into()),
        cloudwatch_logs_log_group_arn: Some(
            "arn:aws:logs:us-east-1:111122223333:log-group:ct:*".into(),
        ),
        is_organization_trail: false,
        has_insight_selectors: true,
    }
}

fn hardened_selectors() -> EventSelectors {
    EventSelectors {
        basic: vec![BasicSelector {
            read_write: ReadWriteType::All,
            include_management_events: true,
            exclude_management_event_sources: vec![],
            data_resources: vec![DataResource {
                kind: "AWS::S3::Object".into(),
                values: vec![format!("arn:aws:s3:::{BUCKET}/")],
            }],
        }],
        advanced: vec![],
    }
}

fn hardened() -> Snapshot {
    let status = TrailStatus {
        is_logging: true,
        latest_delivery_time: Some(NOW - Duration::minutes(5)),
        latest_digest_delivery_time: Some(NOW - Duration::minutes(40)),
        ..Default::default()
    };
    let bucket = BucketFacts {
        acl: Ok(vec![AclGrant {
            grantee_uri: None,
            grantee: Some("owner".into()),
            permission: "FULL_CONTROL".into(),
        }]),
        policy: Ok(Some(hardened_policy())),
        policy_is_public: Ok(Some(false)),
        public_access_block: Ok(Some(pab())),
        versioning: Ok(Versioning {
            status: Some("Enabled".into()),
            mfa_delete: Some("Enabled".into()),
        }),
        logging: Ok(Some(LoggingTarget {
            bucket: "access-logs".into(),
            prefix: "trail-logs/".into(),
        })),
        lifecycle: Ok(vec![LifecycleRule {
            id: Some("archive".into()),
            enabled: true,
            prefix: String::new(),
            expiration_days: Some(400),
            ..Default::default()
        }]),
        encryption: Ok(None),
    };
    Snapshot {
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
        trail_name: None,
        trails: vec![TrailFacts {
            info: trail_info(),
            role: TrailRole::Audited,
            status: Ok(status),
            selectors: Ok(hardened_selectors()),
            insights: Ok(vec!["ApiCallRateInsight".into()]),
        }],
        buckets: [(BUCKET.to_owned(), bucket)].into_iter().collect(),
        account_public_access_block: Ok(Some(pab())),
    }
}

fn opts() -> EvalOptions {
    EvalOptions {
        now: NOW,
        retention_min_days: 365,
    }
}

fn statuses(r: &[CheckResult]) -> Vec<(&'static str, CheckStatus)> {
    r.iter().map(|x| (x.check_id, x.status)).collect()
}

fn status_of(r: &[CheckResult], id: &str) -> CheckStatus {
    let found: Vec<&CheckResult> = r.iter().filter(|x| x.check_id == id).collect();
    assert_eq!(found.len(), 1, "{id}: {r:#?}");
    found[0].status
}

fn detail_of<'a>(r: &'a [CheckResult], id: &str) -> &'a str {
    &r.iter().find(|x| x.check_id == id).unwrap().detail
}

#[test]
fn hardened_setup_passes_every_check_once() {
    let r = evaluate(&hardened(), &opts());
    let failing: Vec<_> = r.iter().filter(|x| x.status != CheckStatus::Pass).collect();
    assert!(failing.is_empty(), "{failing:#?}");
    // every catalogue check but the digest chain (run by the handler) reported once
    let ids: Vec<&str> = r.iter().map(|x| x.check_id).collect();
    let expected: Vec<&str> = CHECKS
        .iter()
        .map(|c| c.id)
        .filter(|id| *id != DIGEST_CHAIN.id)
        .collect();
    assert_eq!(ids, expected);
    let res: Vec<(&str, &str)> = r
        .iter()
        .map(|x| (x.check_id, x.resource.as_str()))
        .collect();
    assert!(res.contains(&("tw-audit-bucket-pab", "arn:aws:s3:::trail-logs")));
    assert!(res.contains(&("tw-audit-account-pab", "111122223333")));
    assert!(res.contains(&("tw-audit-trail-logging", ARN)));
}

#[test]
fn weakened_trail_fails_the_trail_checks() {
    let mut s = hardened();
    let t = &mut s.trails[0];
    t.info.include_global_service_events = false;
    t.info.log_file_validation = false;
    t.info.kms_key_id = Some("arn:aws:kms:us-east-1:111122223333:alias/aws/s3".into());
    t.info.cloudwatch_logs_log_group_arn = None;
    t.insights = Ok(vec![]);
    t.status = Ok(TrailStatus {
        is_logging: false,
        latest_delivery_time: Some(NOW - Duration::minutes(61)),
        ..Default::default()
    });
    t.selectors = Ok(EventSelectors {
        basic: vec![BasicSelector {
            read_write: ReadWriteType::WriteOnly,
            include_management_events: true,
            ..Default::default()
        }],
        advanced: vec![],
    });
    let r = evaluate(&s, &opts());
    for id in [
        "tw-audit-multi-region-trail",
        "tw-audit-trail-logging",
        "tw-audit-delivery-fresh",
        "tw-audit-global-events",
        "tw-audit-log-validation",
        "tw-audit-kms-cmk",
        "tw-audit-cloudwatch-logs",
        "tw-audit-trail-bucket-data-events",
        "tw-audit-insights",
    ] {
        assert_eq!(status_of(&r, id), CheckStatus::Fail, "{id}");
    }
    assert!(detail_of(&r, "tw-audit-multi-region-trail")
        .contains("not logging, management events: write only"));
    assert!(detail_of(&r, "tw-audit-delivery-fresh").contains("61 min ago"));
    assert!(detail_of(&r, "tw-audit-kms-cmk").contains("AWS managed"));
    // validation off: the digest delivery check is not applicable, not a second failure
    assert!(!r.iter().any(|x| x.check_id == "tw-audit-digest-delivery"));
}

#[test]
fn delivery_errors_and_stale_digests_fail() {
    let mut s = hardened();
    s.trails[0].status = Ok(TrailStatus {
        is_logging: true,
        latest_delivery_time: Some(NOW - Duration::minutes(2)),
        latest_delivery_error: Some("AccessDenied".into()),
        latest_digest_delivery_time: Some(NOW - Duration::hours(3)),
        ..Default::default()
    });
    let r = evaluate(&s, &opts());
    assert_eq!(status_of(&r, "tw-audit-delivery-fresh"), CheckStatus::Fail);
    assert_eq!(
        detail_of(&r, "tw-audit-delivery-fresh"),
        "LatestDeliveryError: AccessDenied"
    );
    assert_eq!(status_of(&r, "tw-audit-digest-delivery"), CheckStatus::Fail);
    assert_eq!(status_of(&r, "tw-audit-trail-logging"), CheckStatus::Pass);
    // exactly one hour is still fresh
    s.trails[0].status = Ok(TrailStatus {
        is_logging: true,
        latest_delivery_time: Some(NOW - Duration::HOUR),
        latest_digest_delivery_time: Some(NOW - Duration::HOUR),
        ..Default::default()
    });
    let r = evaluate(&s, &opts());
    assert_eq!(status_of(&r, "tw-audit-delivery-fresh"), CheckStatus::Pass);
}

#[test]
fn weakened_bucket_fails_the_bucket_checks() {
    let mut s = hardened();
    let b = s.buckets.get_mut(BUCKET).unwrap();
    b.acl = Ok(vec![AclGrant {
        grantee_uri: Some("http://acs.amazonaws.com/groups/global/AllUsers".into()),
        grantee: None,
        permission: "READ".into(),
    }]);
    b.policy = Ok(Some(
        serde_json::json!({"Statement": [
            {"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "s3:PutObject", "Resource": "arn:aws:s3:::trail-logs/*"},
            {"Sid": "Everyone", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::trail-logs/*"}
        ]})
        .to_string(),
    ));
    b.policy_is_public = Ok(Some(true));
    b.public_access_block = Ok(None);
    b.versioning = Ok(Versioning::default());
    b.logging = Ok(None);
    b.lifecycle = Ok(vec![LifecycleRule {
        id: Some("expire".into()),
        enabled: true,
        prefix: "AWSLogs/".into(),
        expiration_days: Some(30),
        noncurrent_expiration_days: Some(1),
        ..Default::default()
    }]);
    s.account_public_access_block = Ok(Some(PublicAccessBlock {
        block_public_policy: true,
        ..Default::default()
    }));
    let r = evaluate(&s, &opts());
    for id in [
        "tw-audit-bucket-not-public",
        "tw-audit-bucket-pab",
        "tw-audit-account-pab",
        "tw-audit-bucket-versioning",
        "tw-audit-bucket-mfa-delete",
        "tw-audit-bucket-access-logging",
        "tw-audit-bucket-retention",
        "tw-audit-bucket-policy-sourcearn",
        "tw-audit-bucket-policy-tls",
    ] {
        assert_eq!(status_of(&r, id), CheckStatus::Fail, "{id}");
    }
    let public = detail_of(&r, "tw-audit-bucket-not-public");
    assert!(public.contains("ACL grants READ to AllUsers"), "{public}");
    assert!(public.contains("statement \"Everyone\""), "{public}");
    assert!(public.contains("IsPublic=true"), "{public}");
    let retention = detail_of(&r, "tw-audit-bucket-retention");
    assert!(
        retention.contains("after 30 days") && retention.contains("after 1 days"),
        "{retention}"
    );
    assert_eq!(
        detail_of(&r, "tw-audit-account-pab"),
        "off: BlockPublicAcls, IgnorePublicAcls, RestrictPublicBuckets"
    );
    // the trail checks are unaffected
    assert_eq!(status_of(&r, "tw-audit-trail-logging"), CheckStatus::Pass);
}

#[test]
fn public_access_block_neutralises_public_acl_and_policy() {
    let mut s = hardened();
    let b = s.buckets.get_mut(BUCKET).unwrap();
    b.acl = Ok(vec![AclGrant {
        grantee_uri: Some("http://acs.amazonaws.com/groups/global/AuthenticatedUsers".into()),
        grantee: None,
        permission: "READ".into(),
    }]);
    b.policy_is_public = Ok(Some(true));
    b.public_access_block = Ok(None);
    // the account-level block (IgnorePublicAcls, RestrictPublicBuckets) covers the bucket
    let r = evaluate(&s, &opts());
    assert_eq!(
        status_of(&r, "tw-audit-bucket-not-public"),
        CheckStatus::Pass
    );
    assert_eq!(status_of(&r, "tw-audit-bucket-pab"), CheckStatus::Fail);
    s.account_public_access_block = Ok(None);
    let r = evaluate(&s, &opts());
    assert_eq!(
        status_of(&r, "tw-audit-bucket-not-public"),
        CheckStatus::Fail
    );
}

#[test]
fn retention_rules_only_count_when_they_cover_the_logs() {
    let mut s = hardened();
    s.trails[0].info.s3_key_prefix = Some("audit".into());
    let b = s.buckets.get_mut(BUCKET).unwrap();
    b.lifecycle = Ok(vec![
        LifecycleRule {
            id: Some("tmp".into()),
            enabled: true,
            prefix: "tmp/".into(),
            expiration_days: Some(1),
            ..Default::default()
        },
        LifecycleRule {
            id: Some("off".into()),
            enabled: false,
            prefix: String::new(),
            expiration_days: Some(1),
            ..Default::default()
        },
        LifecycleRule {
            id: Some("audit".into()),
            enabled: true,
            prefix: "audit/AWSLogs/111122223333/".into(),
            expiration_days: Some(365),
            ..Default::default()
        },
    ]);
    let r = evaluate(&s, &opts());
    assert_eq!(
        status_of(&r, "tw-audit-bucket-retention"),
        CheckStatus::Pass
    );
    let r = evaluate(
        &s,
        &EvalOptions {
            retention_min_days: 400,
            ..opts()
        },
    );
    assert_eq!(
        status_of(&r, "tw-audit-bucket-retention"),
        CheckStatus::Fail
    );
}

#[test]
fn denied_reads_are_unknown_not_failures() {
    let mut s = hardened();
    let denied = Unavailable {
        reason: "permanent failure calling GetBucketPolicy: AccessDenied".into(),
    };
    let b = s.buckets.get_mut(BUCKET).unwrap();
    b.policy = Err(denied.clone());
    s.trails[0].status = Err(Unavailable {
        reason: "permanent failure calling GetTrailStatus: AccessDenied".into(),
    });
    let r = evaluate(&s, &opts());
    for id in [
        "tw-audit-bucket-policy-tls",
        "tw-audit-bucket-policy-sourcearn",
        "tw-audit-bucket-not-public",
        "tw-audit-trail-logging",
        "tw-audit-delivery-fresh",
        "tw-audit-digest-delivery",
        "tw-audit-cloudwatch-logs",
        "tw-audit-multi-region-trail",
    ] {
        assert_eq!(status_of(&r, id), CheckStatus::Unknown, "{id}");
    }
    assert!(detail_of(&r, "tw-audit-bucket-policy-tls").contains("AccessDenied"));
    let unknown = r
        .iter()
        .find(|x| x.check_id == "tw-audit-bucket-policy-tls")
        .unwrap();
    let f = unknown.to_finding("111122223333", "us-east-1", NOW);
    assert_eq!(f.severity, Severity::Low);
    assert!(f.title.starts_with("cannot audit"));
    assert_eq!(
        f.event_id,
        "tw-audit-bucket-policy-tls#arn:aws:s3:::trail-logs"
    );
    assert_eq!(f.event_name, "ConfigAudit");
    assert_eq!(f.source, "config-auditor");
    assert_eq!(f.id, finding_id("tw-audit-bucket-policy-tls", &f.event_id));
}

#[test]
fn shadow_and_foreign_organization_trails_count_but_are_not_audited() {
    let mut s = hardened();
    // the home trail becomes single-region; a shadow multi-region trail covers the account
    s.trails[0].info.is_multi_region = false;
    let shadow = TrailFacts {
        info: TrailInfo {
            name: "global".into(),
            arn: "arn:aws:cloudtrail:eu-west-1:111122223333:trail/global".into(),
            home_region: "eu-west-1".into(),
            s3_bucket: Some("other-bucket".into()),
            is_multi_region: true,
            ..Default::default()
        },
        role: TrailRole::Shadow,
        status: Ok(TrailStatus {
            is_logging: true,
            ..Default::default()
        }),
        selectors: Ok(hardened_selectors()),
        insights: Ok(vec![]),
    };
    s.trails.push(shadow);
    let r = evaluate(&s, &opts());
    assert_eq!(
        status_of(&r, "tw-audit-multi-region-trail"),
        CheckStatus::Pass
    );
    assert!(detail_of(&r, "tw-audit-multi-region-trail").contains("shadow"));
    // nothing reported about the shadow trail itself
    assert!(!r
        .iter()
        .any(|x| x.resource.contains("trail/global") || x.resource.contains("other-bucket")));

    let scope = Scope {
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
        trail_name: None,
    };
    let org = TrailInfo {
        arn: "arn:aws:cloudtrail:us-east-1:999999999999:trail/org".into(),
        home_region: "us-east-1".into(),
        is_organization_trail: true,
        ..Default::default()
    };
    assert_eq!(role_of(&org, &scope), TrailRole::ForeignOrganization);
    let own_org = TrailInfo {
        arn: ARN.into(),
        ..org.clone()
    };
    assert_eq!(role_of(&own_org, &scope), TrailRole::Audited);
    let named = Scope {
        trail_name: Some("other".into()),
        ..scope
    };
    assert_eq!(role_of(&own_org, &named), TrailRole::NotSelected);
}

#[test]
fn missing_named_trail_is_a_failure() {
    let mut s = hardened();
    s.trail_name = Some("deleted-trail".into());
    let r = evaluate(&s, &opts());
    let f = r.iter().find(|x| x.resource == "deleted-trail").unwrap();
    assert_eq!(
        (f.check_id, f.status),
        ("tw-audit-trail-logging", CheckStatus::Fail)
    );
    s.trails.clear();
    s.buckets.clear();
    let r = evaluate(&s, &opts());
    assert_eq!(
        statuses(&r),
        [
            ("tw-audit-multi-region-trail", CheckStatus::Fail),
            ("tw-audit-trail-logging", CheckStatus::Fail),
            ("tw-audit-account-pab", CheckStatus::Pass),
        ]
    );
}

#[tokio::test]
async fn collect_reads_through_the_ports_and_classifies_errors() {
    let mut trails = MemTrailSource {
        trails: vec![trail_info()],
        ..Default::default()
    };
    trails.status.insert(
        ARN.into(),
        Ok(TrailStatus {
            is_logging: true,
            ..Default::default()
        }),
    );
    trails.selectors.insert(
        ARN.into(),
        Err(PortError::Permanent {
            op: "GetEventSelectors",
            message: "AccessDenied".into(),
        }),
    );
    let buckets = MemBucketAuditSource {
        bucket: BUCKET.into(),
        policy: Some(hardened_policy()),
        account_pab: Some(pab()),
        deny: vec!["GetBucketLogging"],
        ..Default::default()
    };
    let scope = Scope {
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
        trail_name: None,
    };
    let one = NonZeroUsize::MIN;
    let snap = collect(&trails, &buckets, &scope, one).await.unwrap();
    assert_eq!(snap.trails.len(), 1);
    assert!(snap.trails[0].selectors.is_err());
    let b = &snap.buckets[BUCKET];
    assert!(b
        .logging
        .as_ref()
        .unwrap_err()
        .reason
        .contains("AccessDenied"));
    assert_eq!(
        b.policy.as_ref().unwrap().as_deref(),
        Some(hardened_policy().as_str())
    );
    assert_eq!(snap.account_public_access_block, Ok(Some(pab())));

    // a throttled read aborts the collection: the invocation is retried
    trails.status.insert(
        ARN.into(),
        Err(PortError::Transient {
            op: "GetTrailStatus",
            message: "ThrottlingException".into(),
        }),
    );
    let e = collect(&trails, &buckets, &scope, one).await.unwrap_err();
    assert!(e.is_retryable());
}

#[test]
fn docs_table_lists_every_check() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/checks.md");
    let doc = std::fs::read_to_string(path).unwrap();
    for c in CHECKS {
        let row = format!("| `{}` |", c.id);
        let line = doc.lines().find(|l| l.starts_with(&row));
        let line = line.unwrap_or_else(|| panic!("docs/checks.md has no row for {}", c.id));
        assert!(
            line.contains(&format!("| {} |", c.severity.as_str())),
            "{line}"
        );
    }
}
