#!/usr/bin/env python3
"""Local AWS resources for trying the functions against moto (boto3 ships with moto).

    local_aws.py setup   ENDPOINT   create bucket, findings table, topic; upload events/logs
    local_aws.py findings ENDPOINT  print the stored findings, one line each

Names match events/log-processor-s3-put.json: bucket trailwatch-demo-bucket, table
trailwatch-findings, topic trailwatch-alerts. Test credentials only.
"""
import os
import sys

import boto3

BUCKET = "trailwatch-demo-bucket"
TABLE = "trailwatch-findings"
TOPIC = "trailwatch-alerts"
TRAIL = "trailwatch-demo-trail"
PREFIX = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/23/"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def setup(endpoint):
    s3 = client("s3", endpoint)
    s3.create_bucket(Bucket=BUCKET)
    logs = os.path.join(ROOT, "events", "logs")
    for name in sorted(os.listdir(logs)):
        if name.endswith(".json") or name.endswith(".json.gz"):
            s3.upload_file(os.path.join(logs, name), BUCKET, PREFIX + name)
    ddb = client("dynamodb", endpoint)
    attrs = ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"]
    ddb.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in attrs],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {"IndexName": name, "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": pk, "KeyType": "HASH"}, {"AttributeName": sk, "KeyType": "RANGE"}]}
            for name, pk, sk in [("by-rule", "gsi1pk", "gsi1sk"), ("by-principal", "gsi2pk", "gsi2sk")]
        ],
    )
    arn = client("sns", endpoint).create_topic(Name=TOPIC)["TopicArn"]
    # a trail for the config-auditor to audit (deliberately not hardened: a demo with findings)
    client("cloudtrail", endpoint).create_trail(Name=TRAIL, S3BucketName=BUCKET)
    print(f"FINDINGS_TABLE={TABLE}")
    print(f"ALERTS_TOPIC_ARN={arn}")
    print(f"TRAIL_NAME={TRAIL}")
    print(f"TRAIL_BUCKET={BUCKET}")


def findings(endpoint):
    ddb = client("dynamodb", endpoint)
    items = []
    for page in ddb.get_paginator("scan").paginate(TableName=TABLE):
        items.extend(page["Items"])
    # findings only: correlation state (STATE#) and audit state (AUDIT#) share the table
    items = [i for i in items if i["pk"]["S"].startswith("ACCT#")]
    items.sort(key=lambda i: i["sk"]["S"])
    for i in items:
        g = lambda k: i.get(k, {}).get("S", "-")
        alerted = "alerted" if i.get("alerted", {}).get("BOOL") else "stored"
        print(f"{g('severity'):8} {g('rule_id'):45} {g('event_name'):32} {g('principal')} [{alerted}]")
    print(f"{len(items)} findings")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("setup", "findings"):
        sys.exit(__doc__)
    {"setup": setup, "findings": findings}[sys.argv[1]](sys.argv[2])
