#!/usr/bin/env python3
"""Regenerates the bad-input files byte for byte (deterministic: fixed gzip mtime).

Each file is damaged in one way a real pipeline meets; shared/tests/bad_input.rs holds the
table of what the reader must do with each. Records are written here, not copied.
"""
import gzip, io, json, os

HERE = os.path.dirname(os.path.abspath(__file__))

def rec(i, **extra):
    r = {"eventVersion": "1.08",
         "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice",
                          "accountId": "111122223333", "userName": "alice"},
         "eventTime": "2026-11-01T10:%02d:00Z" % (i % 60),
         "eventSource": "cloudtrail.amazonaws.com",
         "eventName": "StopLogging" if i == 1 else "DescribeTrails",
         "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.10",
         "requestParameters": {"name": "main"}, "responseElements": None,
         "eventID": "bad-input-%04d" % i, "readOnly": i != 1,
         "eventType": "AwsApiCall", "recipientAccountId": "111122223333"}
    r.update(extra)
    return r

def gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()

def log(records) -> bytes:
    return json.dumps({"Records": records}, separators=(",", ":")).encode()

def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)

three = log([rec(0), rec(1), rec(2)])
write("empty.json.gz", b"")
write("not-gzip.json.gz", b"PK\x03\x04 this is a zip header, not gzip or JSON")
write("gzip-of-text.json.gz", gz(b"<html>404 Not Found</html>\n"))
full = gz(log([rec(i) for i in range(400)]))
write("truncated-gzip.json.gz", full[: len(full) // 2])
write("truncated-json.json.gz", gz(three[: len(three) - 60]))
write("concatenated-members.json.gz", gz(log([rec(0), rec(1)])) + gz(log([rec(2)])))
write("records-not-array.json.gz", gz(json.dumps({"Records": rec(1)}).encode()))
big = rec(3, requestParameters={"policy": "x" * (20 * 1024 * 1024)})
write("huge-record.json.gz", gz(log([rec(0), big, rec(1)])))
deep = '{"Records":[%s,{"eventID":"deep","requestParameters":%s%s},%s]}' % (
    json.dumps(rec(0)), "[" * 10000, "]" * 10000, json.dumps(rec(1)))
write("deep-nesting.json.gz", gz(deep.encode()))
utf8 = three.replace(b'"bad-input-0002"', b'"bad-\xff\xfe-0002"')
write("invalid-utf8.json.gz", gz(utf8))
nan = ('{"Records":[%s,{"eventID":"nan","eventName":"X","value":NaN},%s]}' % (
    json.dumps(rec(0)), json.dumps(rec(1)).replace('"readOnly": false', '"readOnly": false, "bytesTransferredIn": 1e999999'))).encode()
write("nan-and-huge-numbers.json.gz", gz(nan))
dup = ('{"Records":[{"eventID":"dup","eventName":"DescribeTrails","eventName":"StopLogging",'
       '"eventSource":"cloudtrail.amazonaws.com","awsRegion":"us-east-1"}]}').encode()
write("duplicate-keys.json.gz", gz(dup))
odd = rec(1, requestParameters={"näme with spaces ✓": "value", "name": "main"})
odd["additional Event Data ✓"] = {"k": "v"}
write("unicode-keys.json.gz", gz(json.dumps({"Records": [odd]}, ensure_ascii=False).encode()))
write("zero-records.json.gz", gz(b'{"Records":[]}'))
write("envelope-without-detail.json", json.dumps(
    {"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": "AWS API Call via CloudTrail",
     "source": "aws.cloudtrail", "account": "111122223333", "time": "2026-11-01T10:00:00Z",
     "region": "us-east-1", "resources": []}).encode())
