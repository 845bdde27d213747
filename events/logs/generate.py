#!/usr/bin/env python3
"""Writes the sample CloudTrail log files in this folder (used by `make demo` and
scripts/invoke-log-processor.sh). Hand-written records, documentation-range IPs and
example account ids; nothing here comes from real logs. Re-run after editing:

    python3 events/logs/generate.py

Output is deterministic (gzip mtime 0), so re-running changes nothing unless the
records change.
"""
import gzip
import json
import os

ACCOUNT = "111122223333"
REGION = "us-east-1"
HERE = os.path.dirname(os.path.abspath(__file__))


def user(name, mfa="false"):
    return {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLE" + name.upper().ljust(9, "0")[:9],
        "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
        "accountId": ACCOUNT,
        "accessKeyId": "AKIAEXAMPLE" + name.upper().ljust(9, "0")[:9],
        "userName": name,
        "sessionContext": {"attributes": {"creationDate": "2026-11-23T09:55:00Z", "mfaAuthenticated": mfa}},
    }


def role(session):
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLEAPP000001:{session}",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/app-reader/{session}",
        "accountId": ACCOUNT,
        "accessKeyId": "ASIAEXAMPLEAPP000001",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEAPP000001",
                "arn": f"arn:aws:iam::{ACCOUNT}:role/app-reader",
                "accountId": ACCOUNT,
                "userName": "app-reader",
            },
            "attributes": {"creationDate": "2026-11-23T09:00:00Z", "mfaAuthenticated": "false"},
        },
    }


def record(n, time, source, name, identity, ip, read_only, params=None, response=None, extra=None):
    r = {
        "eventVersion": "1.10",
        "userIdentity": identity,
        "eventTime": time,
        "eventSource": source,
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": ip,
        "userAgent": "aws-cli/2.17.20 md/awscrt#0.20.11 ua/2.0 os/linux#6.8.0 md/arch#x86_64 lang/python#3.11.9",
        "requestParameters": params,
        "responseElements": response,
        "requestID": f"0c1d2e3f-0000-4000-8000-{n:012d}",
        "eventID": f"7e57da7a-0000-4000-8000-{n:012d}",
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    if extra:
        r.update(extra)
    return r


def benign(n, time):
    return [
        record(n, time, "ec2.amazonaws.com", "DescribeInstances", role("i-0abc"), "198.51.100.20", True,
               {"instancesSet": {}, "filterSet": {}}),
        record(n + 1, time, "s3.amazonaws.com", "ListBuckets", role("i-0abc"), "198.51.100.20", True,
               {"Host": "s3.amazonaws.com"}),
        record(n + 2, time, "sts.amazonaws.com", "GetCallerIdentity", user("bob"), "203.0.113.50", True),
    ]


FILES = {
    f"{ACCOUNT}_CloudTrail_{REGION}_20261123T1005Z_Demo0001StopLogging.json.gz": benign(1, "2026-11-23T10:01:10Z") + [
        record(10, "2026-11-23T10:02:33Z", "cloudtrail.amazonaws.com", "StopLogging", user("alice"),
               "203.0.113.7", False,
               {"name": f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/trailwatch"}),
    ],
    f"{ACCOUNT}_CloudTrail_{REGION}_20261123T1010Z_Demo0002LoginAndSg.json.gz": benign(20, "2026-11-23T10:06:00Z") + [
        record(30, "2026-11-23T10:07:12Z", "signin.amazonaws.com", "ConsoleLogin",
               {"type": "IAMUser", "principalId": "AIDAEXAMPLEMALLORY0", "arn": f"arn:aws:iam::{ACCOUNT}:user/mallory",
                "accountId": ACCOUNT, "userName": "mallory"},
               "192.0.2.99", False, None, {"ConsoleLogin": "Success"},
               {"additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home",
                                        "MobileVersion": "No", "MFAUsed": "No"},
                "eventType": "AwsConsoleSignIn", "readOnly": False}),
        record(31, "2026-11-23T10:08:40Z", "ec2.amazonaws.com", "AuthorizeSecurityGroupIngress", user("mallory"),
               "192.0.2.99", False,
               {"groupId": "sg-0a1b2c3d4e5f60718",
                "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                                             "groups": {}, "prefixListIds": {},
                                             "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
                                             "ipv6Ranges": {}}]}},
               {"requestId": "5c0d7f09-0000-4000-8000-000000000031", "_return": True}),
    ],
    f"{ACCOUNT}_CloudTrail_{REGION}_20261123T1015Z_Demo0003Benign.json": benign(40, "2026-11-23T10:11:00Z")
    + benign(50, "2026-11-23T10:12:00Z"),
}


def main():
    for name, records in FILES.items():
        text = json.dumps({"Records": records}, separators=(",", ":")).encode()
        path = os.path.join(HERE, name)
        if name.endswith(".gz"):
            with open(path, "wb") as f:
                f.write(gzip.compress(text, mtime=0))
        else:
            with open(path, "wb") as f:
                f.write(text)
        print(path)


if __name__ == "__main__":
    main()
