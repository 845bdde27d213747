#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/corpus/<target>/.

Every seed is synthetic (made-up accounts, ids and addresses) and small: libFuzzer mutates
them, so they only need to show each parser the shapes it accepts. Run from anywhere:
`python3 fuzz/make_seeds.py`. Deterministic (gzip mtime 0), so re-running changes nothing.
"""
import gzip
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "corpus"
ACCT = "111122223333"


def write(target: str, name: str, data) -> None:
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def record(i: int, name: str, source: str, **extra) -> dict:
    r = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLEID:session",
            "arn": f"arn:aws:sts::{ACCT}:assumed-role/admin/session",
            "accountId": ACCT,
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCT}:role/admin"}},
        },
        "eventTime": f"2026-11-23T11:{i:02d}:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": {"name": "main"},
        "responseElements": None,
        "eventID": f"00000000-0000-4000-8000-{i:012d}",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCT,
    }
    r.update(extra)
    return r


def main() -> None:
    # s3_key: log, digest, insight, org trail with prefix, form-encoded, other
    log_key = f"AWSLogs/{ACCT}/CloudTrail/us-east-1/2026/11/23/{ACCT}_CloudTrail_us-east-1_20261123T1155Z_abcdefghijklmnop.json.gz"
    keys = {
        "log": log_key,
        "digest": f"AWSLogs/{ACCT}/CloudTrail-Digest/us-east-1/2026/11/23/{ACCT}_CloudTrail-Digest_us-east-1_main_us-east-1_20261123T120000Z.json.gz",
        "insight": f"AWSLogs/{ACCT}/CloudTrail-Insight/eu-west-1/2026/11/23/{ACCT}_CloudTrail-Insight_eu-west-1_20261123T1100Z_qrstuvwxyzabcdef.json.gz",
        "org-prefix": f"my+trail/AWSLogs/o-abc123def4/{ACCT}/CloudTrail/us-east-1/2026/11/23/{ACCT}_CloudTrail_us-east-1_20261123T1155Z_x.json.gz",
        "encoded": "logs%2Fa%2Bb/AWSLogs/111122223333/CloudTrail/us-east-1/2026/02/29/x.json",
        "config": f"AWSLogs/{ACCT}/Config/ConfigWritabilityCheckFile",
        "trail-arn": f"arn:aws:cloudtrail:us-east-1:{ACCT}:trail/main",
    }
    for n, k in keys.items():
        write("s3_key", n, k)

    # log_file: a gzipped log, plain JSON, NDJSON, an envelope array, lookup-events output
    recs = [
        record(1, "ConsoleLogin", "signin.amazonaws.com", eventType="AwsConsoleSignIn",
               additionalEventData={"MFAUsed": "No"}, responseElements={"ConsoleLogin": "Success"}),
        record(2, "StopLogging", "cloudtrail.amazonaws.com"),
        record(3, "GetObject", "s3.amazonaws.com", readOnly=True),
    ]
    body = json.dumps({"Records": recs}).encode()
    write("log_file", "log.json.gz", gz(body))
    write("log_file", "log.json", body)
    write("log_file", "lines.ndjson", "\n".join(json.dumps(r) for r in recs) + "\n")
    env = {"version": "0", "id": "e1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.cloudtrail",
           "account": ACCT, "time": "2026-11-23T11:02:00Z", "region": "us-east-1", "resources": [], "detail": recs[1]}
    write("log_file", "envelopes.json", json.dumps([env, {**env, "detail-type": "Scheduled Event", "detail": {}}]))
    write("log_file", "lookup-events.json", json.dumps({"Events": [{"EventId": "x", "CloudTrailEvent": json.dumps(recs[0])}]}))
    write("log_file", "two-members.json.gz", gz(json.dumps({"Records": recs[:1]}).encode()) + gz(json.dumps({"Records": recs[1:]}).encode()))

    # envelope: each detail-type, a bare record, detail without type
    write("envelope", "api-call.json", json.dumps(env))
    write("envelope", "signin.json", json.dumps({**env, "detail-type": "AWS Console Sign In via CloudTrail", "detail": recs[0]}))
    write("envelope", "other.json", json.dumps({**env, "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {"state": "running"}}))
    write("envelope", "bare-record.json", json.dumps(recs[2]))
    write("envelope", "no-type.json", json.dumps({"source": "aws.cloudtrail", "detail": {"eventCategory": "Insight", "eventID": 5}}))

    # digest: mode byte + payload (see fuzz_targets/digest.rs)
    doc = {
        "awsAccountId": ACCT,
        "digestStartTime": "2026-11-23T11:00:00Z",
        "digestEndTime": "2026-11-23T12:00:00Z",
        "digestS3Bucket": "trail-bucket",
        "digestS3Object": keys["digest"],
        "digestPublicKeyFingerprint": "0123456789abcdef0123456789abcdef",
        "digestSignatureAlgorithm": "SHA256withRSA",
        "newestEventTime": "2026-11-23T11:59:00Z",
        "oldestEventTime": "2026-11-23T11:00:00Z",
        "previousDigestS3Bucket": "trail-bucket",
        "previousDigestS3Object": keys["digest"].replace("T120000Z", "T110000Z").replace("/23/" + ACCT, "/23/" + ACCT),
        "previousDigestHashValue": "ab" * 32,
        "previousDigestHashAlgorithm": "SHA-256",
        "previousDigestSignature": "cd" * 256,
        "logFiles": [{"s3Bucket": "trail-bucket", "s3Object": log_key, "hashValue": "ef" * 32,
                      "hashAlgorithm": "SHA-256", "newestEventTime": "2026-11-23T11:59:00Z",
                      "oldestEventTime": "2026-11-23T11:00:00Z"}],
    }
    dj = json.dumps(doc).encode()
    write("digest", "document", b"\x00" + dj)
    write("digest", "verify", b"\x01" + dj)
    write("digest", "starting-digest", b"\x01" + json.dumps({**doc, "previousDigestS3Bucket": None,
          "previousDigestS3Object": None, "previousDigestSignature": None, "logFiles": None}).encode())
    keys_body = {"PublicKeyList": [{"Value": "MIIBCgKCAQEA", "ValidityStartTime": 1700000000,
                                    "ValidityEndTime": "2027-01-01T00:00:00Z", "Fingerprint": "0123456789ABCDEF0123456789ABCDEF"}]}
    write("digest", "public-keys", b"\x02" + json.dumps(keys_body).encode())
    write("digest", "validate", b"\x03" + dj)

    # sigma_rule: a field rule with modifiers, a keyword/regex rule, a correlation
    write("sigma_rule", "fields.yml", """title: Root console login without MFA
id: 5b6c7d8e-1111-4222-8333-944455556666
status: test
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    eventName: ConsoleLogin
    userIdentity.type: Root
    additionalEventData.MFAUsed: 'No'
  filter:
    sourceIPAddress|cidr: ['10.0.0.0/8', '2001:db8::/32']
  condition: selection and not filter
level: high
""")
    write("sigma_rule", "modifiers.yml", """title: Trail tampering
id: 6c7d8e9f-2222-4333-8444-a55566667777
logsource: {product: aws, service: cloudtrail}
detection:
  sel_source:
    eventSource|endswith: '.amazonaws.com'
  sel_name:
    eventName|re|i: '^(Stop|Delete)(Logging|Trail)$'
  sel_any:
    - errorCode|exists: false
    - userAgent|contains|all: ['aws', 'cli']
  keywords:
    - 'StopLogging'
  condition: all of sel_* or 1 of keywords
level: critical
tags: [attack.defense-evasion, attack.t1562.008]
""")
    write("sigma_rule", "correlation.yml", """title: Failed logins
id: 7d8e9fa0-3333-4444-8555-b66677778888
name: failed_login
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    eventName: ConsoleLogin
    errorMessage|contains: Failed
  condition: selection
level: low
---
title: Many failed logins
id: 8e9fa0b1-4444-4555-8666-c77788889999
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [sourceIPAddress]
  timespan: 10m
  condition: {gte: 5}
level: high
""")


if __name__ == "__main__":
    main()
