//! Deterministic CloudTrail corpus: realistic records (mixed services, nested request
//! parameters, ~1.4 KB on average) in gzip log files laid out as CloudTrail writes them.
//!
//! Every byte depends only on the seed and the file index, so two runs (and two machines)
//! benchmark the same input, and files can be written in parallel.

use anyhow::Context as _;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// splitmix64: tiny, fast, and enough for test data (no `rand` dependency needed).
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        // callers pass non-empty constant tables
        &items[self.below(items.len() as u64) as usize]
    }

    fn chars(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n).map(|_| *self.pick(alphabet) as char).collect()
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }

    fn ip(&mut self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.range(3, 223),
            self.below(256),
            self.below(256),
            self.range(1, 254)
        )
    }
}

const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &[u8] = b"0123456789abcdef";
const ACCOUNTS: &[&str] = &[
    "111122223333",
    "444455556666",
    "777788889999",
    "123456789012",
    "210987654321",
];
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-1",
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-2",
];
const ROLES: &[&str] = &[
    "OrganizationAccountAccessRole",
    "platform-deployer",
    "app-orders-lambda",
    "app-payments-ecs-task",
    "AWSReservedSSO_AdministratorAccess_4f2c1a9e0b7d3e61",
    "AWSReservedSSO_ReadOnly_8a1d3c5e7f9b2d40",
    "datadog-integration",
    "github-actions-oidc",
    "eks-node-group-general",
];
const USERS: &[&str] = &["alice", "bob", "ci-legacy", "backup-agent", "carol"];
const AGENTS: &[&str] = &[
    "aws-cli/2.15.30 Python/3.11.8 Linux/5.10.213-201.855.amzn2.x86_64 exe/x86_64.amzn.2 prompt/off command/sts.assume-role",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.10 md/arch#x86_64 lang/python#3.12.2 Botocore/1.34.69",
    "aws-sdk-rust/1.3.0 os/linux lang/rust/1.85.0",
    "console.amazonaws.com",
    "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/s3#1.51.4",
    "aws-sdk-java/2.25.11 Linux/5.10.210-201.852.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy",
    "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.648 Linux/5.10.210-178.855.amzn2int.x86_64 OpenJDK_64-Bit_Server_VM/25.402-b08 java/1.8.0_402 vendor/Oracle_Corporation cfg/retry-mode/standard]",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
    "APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.42.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go/1.51.6 (go1.22.1; linux; amd64)",
];

/// What a record's request/response look like.
#[derive(Clone, Copy)]
enum Kind {
    S3Object,
    S3Bucket,
    AssumeRole,
    Kms,
    Ec2Describe,
    RunInstances,
    SgIngress,
    IamRead,
    IamWrite,
    Lambda,
    Dynamo,
    Logs,
    ConsoleLogin,
    Secrets,
    Plain,
}

/// (eventSource, eventName, weight per 10 000, kind, readOnly)
const CATALOG: &[(&str, &str, u64, Kind, bool)] = &[
    ("s3.amazonaws.com", "GetObject", 1400, Kind::S3Object, true),
    ("s3.amazonaws.com", "PutObject", 700, Kind::S3Object, false),
    ("s3.amazonaws.com", "HeadObject", 400, Kind::S3Object, true),
    (
        "s3.amazonaws.com",
        "ListObjectsV2",
        300,
        Kind::S3Bucket,
        true,
    ),
    (
        "s3.amazonaws.com",
        "GetBucketAcl",
        200,
        Kind::S3Bucket,
        true,
    ),
    (
        "sts.amazonaws.com",
        "AssumeRole",
        1200,
        Kind::AssumeRole,
        true,
    ),
    (
        "sts.amazonaws.com",
        "AssumeRoleWithWebIdentity",
        150,
        Kind::AssumeRole,
        true,
    ),
    (
        "sts.amazonaws.com",
        "GetCallerIdentity",
        200,
        Kind::Plain,
        true,
    ),
    ("kms.amazonaws.com", "Decrypt", 1100, Kind::Kms, true),
    ("kms.amazonaws.com", "GenerateDataKey", 500, Kind::Kms, true),
    (
        "ec2.amazonaws.com",
        "DescribeInstances",
        500,
        Kind::Ec2Describe,
        true,
    ),
    (
        "ec2.amazonaws.com",
        "DescribeSecurityGroups",
        250,
        Kind::Ec2Describe,
        true,
    ),
    (
        "ec2.amazonaws.com",
        "DescribeVolumes",
        200,
        Kind::Ec2Describe,
        true,
    ),
    (
        "ec2.amazonaws.com",
        "DescribeNetworkInterfaces",
        200,
        Kind::Ec2Describe,
        true,
    ),
    (
        "ec2.amazonaws.com",
        "RunInstances",
        25,
        Kind::RunInstances,
        false,
    ),
    (
        "ec2.amazonaws.com",
        "AuthorizeSecurityGroupIngress",
        10,
        Kind::SgIngress,
        false,
    ),
    ("iam.amazonaws.com", "GetRole", 200, Kind::IamRead, true),
    ("iam.amazonaws.com", "ListRoles", 100, Kind::IamRead, true),
    (
        "iam.amazonaws.com",
        "GetPolicyVersion",
        100,
        Kind::IamRead,
        true,
    ),
    (
        "iam.amazonaws.com",
        "CreateAccessKey",
        3,
        Kind::IamWrite,
        false,
    ),
    (
        "iam.amazonaws.com",
        "AttachRolePolicy",
        6,
        Kind::IamWrite,
        false,
    ),
    ("iam.amazonaws.com", "CreateUser", 2, Kind::IamWrite, false),
    (
        "lambda.amazonaws.com",
        "GetFunction",
        150,
        Kind::Lambda,
        true,
    ),
    (
        "lambda.amazonaws.com",
        "UpdateFunctionCode20150331v2",
        20,
        Kind::Lambda,
        false,
    ),
    (
        "dynamodb.amazonaws.com",
        "DescribeTable",
        300,
        Kind::Dynamo,
        true,
    ),
    ("dynamodb.amazonaws.com", "Query", 250, Kind::Dynamo, true),
    (
        "logs.amazonaws.com",
        "CreateLogStream",
        300,
        Kind::Logs,
        false,
    ),
    (
        "logs.amazonaws.com",
        "DescribeLogGroups",
        150,
        Kind::Logs,
        true,
    ),
    (
        "signin.amazonaws.com",
        "ConsoleLogin",
        20,
        Kind::ConsoleLogin,
        false,
    ),
    (
        "secretsmanager.amazonaws.com",
        "GetSecretValue",
        150,
        Kind::Secrets,
        true,
    ),
    (
        "ssm.amazonaws.com",
        "GetParameter",
        150,
        Kind::Secrets,
        true,
    ),
    (
        "cloudtrail.amazonaws.com",
        "LookupEvents",
        60,
        Kind::Plain,
        true,
    ),
    (
        "cloudtrail.amazonaws.com",
        "DescribeTrails",
        40,
        Kind::Plain,
        true,
    ),
    (
        "cloudtrail.amazonaws.com",
        "StopLogging",
        1,
        Kind::Plain,
        false,
    ),
    (
        "guardduty.amazonaws.com",
        "ListDetectors",
        60,
        Kind::Plain,
        true,
    ),
    (
        "config.amazonaws.com",
        "DescribeConfigRules",
        60,
        Kind::Plain,
        true,
    ),
    (
        "kms.amazonaws.com",
        "ScheduleKeyDeletion",
        1,
        Kind::Kms,
        false,
    ),
    (
        "s3.amazonaws.com",
        "PutBucketPolicy",
        4,
        Kind::S3Bucket,
        false,
    ),
    (
        "ec2.amazonaws.com",
        "CreateSnapshot",
        30,
        Kind::Ec2Describe,
        false,
    ),
    (
        "ecr.amazonaws.com",
        "GetAuthorizationToken",
        200,
        Kind::Plain,
        true,
    ),
];

struct Caller {
    identity: Value,
    account: &'static str,
    user_agent: String,
    source_ip: String,
}

/// How the assumed-role sessions of the generated callers are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sessions {
    /// Each role has [`SESSIONS_PER_HOUR`] sessions an hour, each making many calls (a real
    /// account: SDK credentials last an hour or more, Lambda sessions are named after the
    /// function, instance roles after the instance).
    Pooled,
    /// Every call by a role a new session: the worst case for per-principal correlation
    /// state (one group per call), kept to measure it.
    Unique,
}

impl Sessions {
    fn name(self) -> &'static str {
        match self {
            Sessions::Pooled => "pooled",
            Sessions::Unique => "unique",
        }
    }
}

/// Sessions per role and hour with [`Sessions::Pooled`].
pub const SESSIONS_PER_HOUR: u64 = 40;

/// Where a record is generated: what the caller's session depends on.
#[derive(Debug, Clone, Copy)]
struct Place {
    account: &'static str,
    sessions: Sessions,
    /// Hours since the corpus start.
    hour: u64,
}

fn caller(rng: &mut Rng, place: Place, source: &str) -> Caller {
    let account = place.account;
    let key = format!("ASIA{}", rng.chars(16, UPPER_DIGITS));
    let roll = rng.below(100);
    let (identity, agent, ip) = if roll < 22 {
        // a service acting on its own behalf (KMS for S3, autoscaling, ...)
        let svc = *rng.pick(&[
            "autoscaling.amazonaws.com",
            "s3.amazonaws.com",
            "lambda.amazonaws.com",
            "ecs.amazonaws.com",
        ]);
        (
            json!({"type": "AWSService", "invokedBy": svc}),
            svc.to_owned(),
            svc.to_owned(),
        )
    } else if roll < 30 {
        let user = *rng.pick(USERS);
        (
            json!({
                "type": "IAMUser",
                "principalId": format!("AIDA{}", rng.chars(17, UPPER_DIGITS)),
                "arn": format!("arn:aws:iam::{account}:user/{user}"),
                "accountId": account,
                "accessKeyId": format!("AKIA{}", rng.chars(16, UPPER_DIGITS)),
                "userName": user
            }),
            rng.pick(AGENTS).to_string(),
            rng.ip(),
        )
    } else {
        let role = *rng.pick(ROLES);
        let session = if rng.chance(500) {
            format!("{}@example.com", rng.pick(USERS))
        } else if place.sessions == Sessions::Unique {
            format!("{}", rng.range(1_700_000_000_000, 1_799_999_999_999))
        } else {
            let n = place.hour * SESSIONS_PER_HOUR + rng.below(SESSIONS_PER_HOUR);
            format!("{}", 1_790_000_000_000 + n)
        };
        let role_id = format!("AROA{}", rng.chars(17, UPPER_DIGITS));
        let via_service = rng.chance(300);
        (
            json!({
                "type": "AssumedRole",
                "principalId": format!("{role_id}:{session}"),
                "arn": format!("arn:aws:sts::{account}:assumed-role/{role}/{session}"),
                "accountId": account,
                "accessKeyId": key,
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": role_id,
                        "arn": format!("arn:aws:iam::{account}:role/{role}"),
                        "accountId": account,
                        "userName": role
                    },
                    "webIdFederationData": {},
                    "attributes": {
                        "creationDate": "2026-11-01T07:12:44Z",
                        "mfaAuthenticated": "false"
                    }
                },
                "invokedBy": if via_service { Value::from(source) } else { Value::Null }
            }),
            rng.pick(AGENTS).to_string(),
            if via_service {
                source.to_owned()
            } else {
                rng.ip()
            },
        )
    };
    let mut identity = identity;
    if let Value::Object(m) = &mut identity {
        m.retain(|_, v| !v.is_null());
    }
    Caller {
        identity,
        account,
        user_agent: agent,
        source_ip: ip,
    }
}

fn arn_bucket(rng: &mut Rng) -> String {
    format!(
        "{}-{}",
        rng.pick(&[
            "orders-data",
            "app-artifacts",
            "analytics-raw",
            "terraform-state",
            "cdn-assets"
        ]),
        rng.pick(ACCOUNTS)
    )
}

fn object_key(rng: &mut Rng) -> String {
    format!(
        "{}/{}/{:04}/{:02}/part-{}.{}",
        rng.pick(&["exports", "uploads", "logs", "releases", "tmp"]),
        rng.pick(&["eu", "us", "apac"]),
        rng.range(2024, 2026),
        rng.range(1, 12),
        rng.chars(12, HEX),
        rng.pick(&["parquet", "json.gz", "csv", "zip"])
    )
}

/// (requestParameters, responseElements, additionalEventData, resources, eventCategory)
type Body = (Value, Value, Option<Value>, Option<Value>, &'static str);

fn body(rng: &mut Rng, kind: Kind, name: &str, account: &str, region: &str) -> Body {
    match kind {
        Kind::S3Object => {
            let bucket = arn_bucket(rng);
            let key = object_key(rng);
            (
                json!({"bucketName": bucket, "Host": format!("{bucket}.s3.{region}.amazonaws.com"), "key": key}),
                Value::Null,
                Some(json!({
                    "SignatureVersion": "SigV4",
                    "CipherSuite": "TLS_AES_128_GCM_SHA256",
                    "bytesTransferredIn": if name == "PutObject" { rng.range(100, 5_000_000) } else { 0 },
                    "AuthenticationMethod": "AuthHeader",
                    "x-amz-id-2": rng.chars(56, B64),
                    "bytesTransferredOut": if name == "PutObject" { 0 } else { rng.range(100, 5_000_000) }
                })),
                Some(json!([
                    {"type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::{bucket}/{key}")},
                    {"accountId": account, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}
                ])),
                "Data",
            )
        }
        Kind::S3Bucket => {
            let bucket = arn_bucket(rng);
            let mut params = json!({"bucketName": bucket, "Host": format!("{bucket}.s3.{region}.amazonaws.com")});
            if name == "ListObjectsV2" {
                params["list-type"] = json!("2");
                params["prefix"] = json!(format!("{}/", rng.pick(&["exports", "uploads", "logs"])));
                params["max-keys"] = json!("1000");
            } else if name == "PutBucketPolicy" {
                params["policy"] = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{}:root", rng.pick(ACCOUNTS))}, "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*")}]});
            } else {
                params["acl"] = json!("");
            }
            (
                params,
                Value::Null,
                Some(
                    json!({"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256", "bytesTransferredIn": 0, "AuthenticationMethod": "AuthHeader", "x-amz-id-2": rng.chars(56, B64), "bytesTransferredOut": rng.range(200, 90_000)}),
                ),
                Some(
                    json!([{"accountId": account, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}]),
                ),
                "Management",
            )
        }
        Kind::AssumeRole => {
            let role = *rng.pick(ROLES);
            let target = rng.pick(ACCOUNTS);
            let session = format!("session-{}", rng.chars(12, HEX));
            let role_id = format!("AROA{}", rng.chars(17, UPPER_DIGITS));
            (
                json!({"roleArn": format!("arn:aws:iam::{target}:role/{role}"), "roleSessionName": session, "durationSeconds": 3600}),
                json!({
                    "credentials": {"accessKeyId": format!("ASIA{}", rng.chars(16, UPPER_DIGITS)), "sessionToken": rng.chars(96, B64), "expiration": "Nov 23, 2026, 1:12:44 PM"},
                    "assumedRoleUser": {"assumedRoleId": format!("{role_id}:{session}"), "arn": format!("arn:aws:sts::{target}:assumed-role/{role}/{session}")}
                }),
                None,
                Some(
                    json!([{"accountId": target, "type": "AWS::IAM::Role", "ARN": format!("arn:aws:iam::{target}:role/{role}")}]),
                ),
                "Management",
            )
        }
        Kind::Kms => {
            let key = rng.uuid();
            let params = if name == "ScheduleKeyDeletion" {
                json!({"keyId": key, "pendingWindowInDays": 7})
            } else {
                json!({
                    "encryptionContext": {"aws:lambda:FunctionArn": format!("arn:aws:lambda:{region}:{account}:function:{}", rng.pick(&["orders-api", "payments-worker", "thumbnailer"]))},
                    "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                    "keySpec": if name == "GenerateDataKey" { Value::from("AES_256") } else { Value::Null }
                })
            };
            (
                params,
                Value::Null,
                None,
                Some(
                    json!([{"accountId": account, "type": "AWS::KMS::Key", "ARN": format!("arn:aws:kms:{region}:{account}:key/{key}")}]),
                ),
                "Management",
            )
        }
        Kind::Ec2Describe => {
            let n = rng.range(0, 4);
            let ids: Vec<Value> = (0..n)
                .map(|_| json!({"instanceId": format!("i-{}", rng.chars(17, HEX))}))
                .collect();
            (
                json!({
                    "instancesSet": {"items": ids},
                    "filterSet": {"items": [{"name": "tag:team", "valueSet": {"items": [{"value": rng.pick(&["orders", "payments", "platform"])}]}}, {"name": "instance-state-name", "valueSet": {"items": [{"value": "running"}]}}]},
                    "maxResults": 1000
                }),
                Value::Null,
                None,
                None,
                "Management",
            )
        }
        Kind::RunInstances => {
            let iid = format!("i-{}", rng.chars(17, HEX));
            (
                json!({
                    "instancesSet": {"items": [{"imageId": format!("ami-{}", rng.chars(17, HEX)), "minCount": 1, "maxCount": 1}]},
                    "instanceType": rng.pick(&["t3.micro", "m6i.large", "c7g.xlarge"]),
                    "blockDeviceMapping": {},
                    "monitoring": {"enabled": false},
                    "disableApiTermination": false,
                    "disableApiStop": false,
                    "clientToken": rng.uuid(),
                    "networkInterfaceSet": {"items": [{"deviceIndex": 0, "subnetId": format!("subnet-{}", rng.chars(17, HEX)), "associatePublicIpAddress": true, "groupSet": {"items": [{"groupId": format!("sg-{}", rng.chars(17, HEX))}]}}]},
                    "tagSpecificationSet": {"items": [{"resourceType": "instance", "tags": [{"key": "Name", "value": "worker"}, {"key": "team", "value": "platform"}]}]}
                }),
                json!({
                    "requestId": rng.uuid(),
                    "reservationId": format!("r-{}", rng.chars(17, HEX)),
                    "ownerId": account,
                    "groupSet": {},
                    "instancesSet": {"items": [{
                        "instanceId": iid,
                        "imageId": format!("ami-{}", rng.chars(17, HEX)),
                        "instanceState": {"code": 0, "name": "pending"},
                        "privateDnsName": format!("ip-10-0-{}-{}.ec2.internal", rng.below(256), rng.below(256)),
                        "amiLaunchIndex": 0,
                        "productCodes": {},
                        "instanceType": "m6i.large",
                        "launchTime": 1_763_900_000_000u64,
                        "placement": {"availabilityZone": format!("{region}a"), "tenancy": "default"},
                        "monitoring": {"state": "disabled"},
                        "subnetId": format!("subnet-{}", rng.chars(17, HEX)),
                        "vpcId": format!("vpc-{}", rng.chars(17, HEX)),
                        "privateIpAddress": format!("10.0.{}.{}", rng.below(256), rng.below(256)),
                        "stateReason": {"code": "pending", "message": "pending"},
                        "architecture": "x86_64",
                        "rootDeviceType": "ebs",
                        "rootDeviceName": "/dev/xvda",
                        "virtualizationType": "hvm",
                        "hypervisor": "xen",
                        "enaSupport": true,
                        "metadataOptions": {"state": "pending", "httpTokens": "required", "httpPutResponseHopLimit": 2, "httpEndpoint": "enabled"}
                    }]}
                }),
                None,
                None,
                "Management",
            )
        }
        Kind::SgIngress => {
            let cidr = if rng.chance(300) {
                "0.0.0.0/0".to_owned()
            } else {
                format!("10.{}.0.0/16", rng.below(256))
            };
            let port = *rng.pick(&[22u64, 443, 3389, 5432]);
            (
                json!({
                    "groupId": format!("sg-{}", rng.chars(17, HEX)),
                    "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": port, "toPort": port, "groups": {}, "ipRanges": {"items": [{"cidrIp": cidr}]}, "ipv6Ranges": {}, "prefixListIds": {}}]}
                }),
                json!({"requestId": rng.uuid(), "_return": true, "securityGroupRuleSet": {"items": [{"groupOwnerId": account, "groupId": "sg-0", "securityGroupRuleId": format!("sgr-{}", rng.chars(17, HEX)), "isEgress": false, "ipProtocol": "tcp", "fromPort": port, "toPort": port, "cidrIpv4": cidr}]}}),
                None,
                None,
                "Management",
            )
        }
        Kind::IamRead => (
            json!({"roleName": rng.pick(ROLES), "policyArn": format!("arn:aws:iam::{account}:policy/{}", rng.pick(&["deploy", "read-only-extra"])), "versionId": "v3"}),
            Value::Null,
            None,
            None,
            "Management",
        ),
        Kind::IamWrite => (
            json!({"userName": rng.pick(USERS), "roleName": rng.pick(ROLES), "policyArn": *rng.pick(&["arn:aws:iam::aws:policy/AdministratorAccess", "arn:aws:iam::aws:policy/ReadOnlyAccess"])}),
            if name == "CreateAccessKey" {
                json!({"accessKey": {"userName": rng.pick(USERS), "accessKeyId": format!("AKIA{}", rng.chars(16, UPPER_DIGITS)), "status": "Active", "createDate": "Nov 23, 2026, 11:02:13 AM"}})
            } else {
                Value::Null
            },
            None,
            None,
            "Management",
        ),
        Kind::Lambda => (
            json!({"functionName": format!("arn:aws:lambda:{region}:{account}:function:{}", rng.pick(&["orders-api", "payments-worker", "thumbnailer"])), "zipFile": if name.starts_with("Update") { Value::from("HIDDEN_DUE_TO_SECURITY_REASONS") } else { Value::Null }}),
            Value::Null,
            None,
            None,
            "Management",
        ),
        Kind::Dynamo => (
            json!({"tableName": rng.pick(&["orders", "sessions", "idempotency"]), "keyConditionExpression": "#pk = :pk", "expressionAttributeNames": {"#pk": "pk"}, "limit": 100}),
            Value::Null,
            None,
            Some(
                json!([{"accountId": account, "type": "AWS::DynamoDB::Table", "ARN": format!("arn:aws:dynamodb:{region}:{account}:table/orders")}]),
            ),
            if name == "Query" {
                "Data"
            } else {
                "Management"
            },
        ),
        Kind::Logs => (
            json!({"logGroupName": format!("/aws/lambda/{}", rng.pick(&["orders-api", "payments-worker", "thumbnailer"])), "logStreamName": format!("2026/11/23/[$LATEST]{}", rng.chars(32, HEX))}),
            Value::Null,
            None,
            None,
            "Management",
        ),
        Kind::ConsoleLogin => {
            let ok = rng.chance(900);
            (
                Value::Null,
                json!({"ConsoleLogin": if ok { "Success" } else { "Failure" }}),
                Some(
                    json!({"LoginTo": "https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true", "MobileVersion": "No", "MFAUsed": if rng.chance(800) { "Yes" } else { "No" }}),
                ),
                None,
                "Management",
            )
        }
        Kind::Secrets => (
            json!({"secretId": format!("arn:aws:secretsmanager:{region}:{account}:secret:prod/{}-{}", rng.pick(&["db", "stripe", "github"]), rng.chars(6, B64)), "name": format!("/prod/{}/password", rng.pick(&["db", "cache"])), "withDecryption": true}),
            Value::Null,
            None,
            None,
            "Management",
        ),
        Kind::Plain => (
            if name == "LookupEvents" {
                json!({"lookupAttributes": [{"attributeKey": "EventName", "attributeValue": "ConsoleLogin"}], "maxResults": 50})
            } else {
                Value::Null
            },
            Value::Null,
            None,
            None,
            "Management",
        ),
    }
}

fn pick_event(rng: &mut Rng) -> &'static (&'static str, &'static str, u64, Kind, bool) {
    let total: u64 = CATALOG.iter().map(|e| e.2).sum();
    let mut roll = rng.below(total);
    for e in CATALOG {
        if roll < e.2 {
            return e;
        }
        roll -= e.2;
    }
    &CATALOG[0]
}

/// Append one record (CloudTrail field order) as JSON to `out`.
fn write_record(
    rng: &mut Rng,
    place: Place,
    region: &str,
    time: &str,
    out: &mut Vec<u8>,
) -> anyhow::Result<()> {
    let (source, name, _, kind, read_only) = *pick_event(rng);
    let account = place.account;
    let who = caller(rng, place, source);
    let (params, response, extra, resources, category) = body(rng, kind, name, account, region);
    let failed = rng.chance(30);
    let mut fields: Vec<(&str, Value)> = vec![
        (
            "eventVersion",
            json!(if category == "Data" { "1.10" } else { "1.09" }),
        ),
        ("userIdentity", who.identity),
        ("eventTime", json!(time)),
        ("eventSource", json!(source)),
        ("eventName", json!(name)),
        ("awsRegion", json!(region)),
        ("sourceIPAddress", json!(who.source_ip)),
        ("userAgent", json!(who.user_agent)),
    ];
    if failed {
        fields.push(("errorCode", json!("AccessDenied")));
        fields.push(("errorMessage", json!(format!("User: arn:aws:sts::{}:assumed-role/app/x is not authorized to perform: {}:{} because no identity-based policy allows the action", who.account, source.trim_end_matches(".amazonaws.com"), name))));
    }
    fields.push((
        "requestParameters",
        if failed { Value::Null } else { params },
    ));
    fields.push((
        "responseElements",
        if failed { Value::Null } else { response },
    ));
    if let Some(extra) = extra {
        fields.push(("additionalEventData", extra));
    }
    // S3 request ids are 16 characters, the other services' are UUIDs
    let request_id = if source.starts_with("s3.") {
        rng.chars(16, UPPER_DIGITS)
    } else {
        rng.uuid()
    };
    fields.push(("requestID", json!(request_id)));
    fields.push(("eventID", json!(rng.uuid())));
    fields.push(("readOnly", json!(read_only)));
    if let Some(res) = resources {
        fields.push(("resources", res));
    }
    fields.push((
        "eventType",
        json!(if name == "ConsoleLogin" {
            "AwsConsoleSignIn"
        } else {
            "AwsApiCall"
        }),
    ));
    fields.push(("managementEvent", json!(category == "Management")));
    fields.push(("recipientAccountId", json!(who.account)));
    if rng.chance(50) {
        fields.push(("sharedEventID", json!(rng.uuid())));
    }
    fields.push(("eventCategory", json!(category)));
    if !source.starts_with("signin") && rng.chance(800) {
        fields.push((
            "tlsDetails",
            json!({"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": format!("{}.{region}.amazonaws.com", source.trim_end_matches(".amazonaws.com"))}),
        ));
    }
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, k)?;
        out.push(b':');
        serde_json::to_writer(&mut *out, v)?;
    }
    out.push(b'}');
    Ok(())
}

/// One generated file's totals.
#[derive(Debug, Default, Clone, Copy, Serialize, serde::Deserialize)]
pub struct Totals {
    /// Files written.
    pub files: u64,
    /// Records written.
    pub records: u64,
    /// Uncompressed JSON bytes.
    pub bytes: u64,
    /// Bytes on disk (gzip).
    pub gz_bytes: u64,
}

impl Totals {
    fn add(&mut self, o: Totals) {
        self.files += o.files;
        self.records += o.records;
        self.bytes += o.bytes;
        self.gz_bytes += o.gz_bytes;
    }
}

/// Write log file number `index` with `records` records under `dir`.
fn write_file(
    dir: &Path,
    seed: u64,
    sessions: Sessions,
    index: u64,
    records: u64,
) -> anyhow::Result<Totals> {
    let mut rng = Rng::new(seed ^ index.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let account = *rng.pick(ACCOUNTS);
    let region = *rng.pick(REGIONS);
    // five-minute files, one after another from 2026-11-01
    let minute0 = index * 5;
    let (day, hour, minute) = (1 + (minute0 / 1440) % 28, (minute0 / 60) % 24, minute0 % 60);
    let sub = dir
        .join("AWSLogs")
        .join(account)
        .join("CloudTrail")
        .join(region)
        .join(format!("2026/11/{day:02}"));
    std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
    let path: PathBuf = sub.join(format!(
        "{account}_CloudTrail_{region}_202611{day:02}T{hour:02}{minute:02}Z_{}.json.gz",
        rng.chars(
            16,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        )
    ));
    let mut text = Vec::with_capacity((records as usize) * 1500 + 16);
    text.extend_from_slice(b"{\"Records\":[");
    for i in 0..records {
        if i > 0 {
            text.push(b',');
        }
        let second = (i * 300) / records.max(1);
        let time = format!(
            "2026-11-{day:02}T{hour:02}:{:02}:{:02}Z",
            minute + second / 60,
            second % 60
        );
        let place = Place {
            account,
            sessions,
            hour: minute0 / 60,
        };
        write_record(&mut rng, place, region, &time, &mut text)?;
    }
    text.extend_from_slice(b"]}");
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut gz = GzEncoder::new(std::io::BufWriter::new(file), Compression::default());
    gz.write_all(&text)?;
    let mut w = gz.finish()?;
    w.flush()?;
    let gz_bytes = std::fs::metadata(&path)?.len();
    Ok(Totals {
        files: 1,
        records,
        bytes: text.len() as u64,
        gz_bytes,
    })
}

/// Plan: record counts per file until `target_bytes` is reached (~1.4 KB per record).
/// 1k–5k records per file, and one file in 40 is a large one (20k–40k records).
fn plan(seed: u64, target_bytes: u64, large_file: bool) -> Vec<u64> {
    let mut rng = Rng::new(seed);
    if large_file {
        return vec![target_bytes / 1450];
    }
    let mut out = Vec::new();
    let mut est = 0u64;
    while est < target_bytes {
        let n = if rng.chance(25) {
            rng.range(20_000, 40_000)
        } else {
            rng.range(1_000, 5_000)
        };
        out.push(n);
        est += n * 1450;
    }
    out
}

/// Where the corpus in `dir` is described: beside it, not in it, so that scanning `dir`
/// reads log files only.
pub fn manifest_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".manifest.json");
    dir.with_file_name(name)
}

/// Generate a corpus into `dir` (skipped when its manifest says it is already there
/// with the same parameters). `large_file` = one single file of `target_bytes`.
pub fn generate(
    dir: &Path,
    seed: u64,
    sessions: Sessions,
    target_bytes: u64,
    large_file: bool,
    threads: usize,
) -> anyhow::Result<Totals> {
    let manifest = manifest_path(dir);
    let params = json!({"seed": seed, "target_bytes": target_bytes, "large_file": large_file, "sessions": sessions.name(), "version": 2});
    if let Ok(text) = std::fs::read_to_string(&manifest) {
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            if v.get("params") == Some(&params) {
                if let Some(t) = v
                    .get("totals")
                    .and_then(|t| serde_json::from_value::<Totals>(t.clone()).ok())
                {
                    return Ok(t);
                }
            }
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let files = plan(seed, target_bytes, large_file);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<anyhow::Result<Totals>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| -> anyhow::Result<Totals> {
                    let mut t = Totals::default();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&n) = files.get(i) else { return Ok(t) };
                        t.add(write_file(dir, seed, sessions, i as u64, n)?);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("generator thread panicked")))
            })
            .collect()
    });
    let mut totals = Totals::default();
    for r in results {
        totals.add(r?);
    }
    std::fs::write(
        &manifest,
        serde_json::to_vec_pretty(&json!({"params": params, "totals": totals}))?,
    )?;
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_deterministic_valid_and_about_1_4_kb() {
        let mk = || {
            let mut rng = Rng::new(7);
            let mut out = Vec::new();
            let mut sizes = Vec::new();
            for _ in 0..2000 {
                let start = out.len();
                let place = Place {
                    account: "111122223333",
                    sessions: Sessions::Pooled,
                    hour: 0,
                };
                write_record(
                    &mut rng,
                    place,
                    "us-east-1",
                    "2026-11-01T00:00:00Z",
                    &mut out,
                )
                .unwrap();
                sizes.push(out.len() - start);
                let rec: Value = serde_json::from_slice(&out[start..]).unwrap();
                assert!(rec.get("eventName").and_then(Value::as_str).is_some());
            }
            (out, sizes)
        };
        let (a, sizes) = mk();
        assert_eq!(a, mk().0);
        let avg = sizes.iter().sum::<usize>() / sizes.len();
        assert!((1200..=1600).contains(&avg), "average record size {avg}");
    }

    #[test]
    fn pooled_sessions_repeat_and_unique_ones_do_not() {
        let principals = |sessions| {
            let mut rng = Rng::new(11);
            let mut arns = std::collections::HashSet::new();
            for _ in 0..3000 {
                let place = Place {
                    account: "111122223333",
                    sessions,
                    hour: 5,
                };
                let mut out = Vec::new();
                write_record(
                    &mut rng,
                    place,
                    "us-east-1",
                    "2026-11-01T05:00:00Z",
                    &mut out,
                )
                .unwrap();
                let rec: Value = serde_json::from_slice(&out).unwrap();
                if let Some(arn) = rec.pointer("/userIdentity/arn").and_then(Value::as_str) {
                    arns.insert(arn.to_owned());
                }
            }
            arns.len()
        };
        let pooled = principals(Sessions::Pooled);
        let unique = principals(Sessions::Unique);
        // roles x (sessions of the hour + user sessions) + IAM users, whatever the length
        let most = ROLES.len() * (SESSIONS_PER_HOUR as usize + USERS.len()) + USERS.len();
        assert!(pooled <= most, "{pooled} principals");
        assert!(unique > 900, "{unique} principals");
    }
}
