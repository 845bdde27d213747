//! Records shared by the micro-benchmarks: a few CloudTrail shapes, varied ids, ~1.4 KB each.

use std::io::Write;

const SHAPES: &[&str] = &[
    r#"{"eventVersion":"1.10","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLEROLEID0001:app","arn":"arn:aws:sts::111122223333:assumed-role/app-orders-lambda/app","accountId":"111122223333","accessKeyId":"ASIAEXAMPLEKEY00001","sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROAEXAMPLEROLEID0001","arn":"arn:aws:iam::111122223333:role/app-orders-lambda","accountId":"111122223333","userName":"app-orders-lambda"},"webIdFederationData":{},"attributes":{"creationDate":"2026-11-01T07:12:44Z","mfaAuthenticated":"false"}}},"eventTime":"2026-11-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.7","userAgent":"aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/s3#1.51.4","requestParameters":{"bucketName":"orders-data","Host":"orders-data.s3.us-east-1.amazonaws.com","key":"exports/eu/2026/11/part-0001.parquet"},"responseElements":null,"additionalEventData":{"SignatureVersion":"SigV4","CipherSuite":"TLS_AES_128_GCM_SHA256","bytesTransferredIn":0,"AuthenticationMethod":"AuthHeader","x-amz-id-2":"b3JkZXJzLWRhdGEtZXhhbXBsZS1yZXF1ZXN0LWlkLWZvci1iZW5jaG1hcmtz","bytesTransferredOut":18231},"requestID":"7SMN3YQ3J6B2XWHB","eventID":"ID","readOnly":true,"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::orders-data/exports/eu/2026/11/part-0001.parquet"},{"accountId":"111122223333","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::orders-data"}],"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"111122223333","eventCategory":"Data","tlsDetails":{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"orders-data.s3.us-east-1.amazonaws.com"}}"#,
    r#"{"eventVersion":"1.09","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLEROLEID0002:1763900000000","arn":"arn:aws:sts::111122223333:assumed-role/platform-deployer/1763900000000","accountId":"111122223333","accessKeyId":"ASIAEXAMPLEKEY00002","sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROAEXAMPLEROLEID0002","arn":"arn:aws:iam::111122223333:role/platform-deployer","accountId":"111122223333","userName":"platform-deployer"},"webIdFederationData":{},"attributes":{"creationDate":"2026-11-01T07:12:44Z","mfaAuthenticated":"false"}}},"eventTime":"2026-11-01T10:00:01Z","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.23","userAgent":"Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.10 md/arch#x86_64 lang/python#3.12.2 Botocore/1.34.69","requestParameters":{"roleArn":"arn:aws:iam::444455556666:role/OrganizationAccountAccessRole","roleSessionName":"session-0a1b2c3d4e5f","durationSeconds":3600},"responseElements":{"credentials":{"accessKeyId":"ASIAEXAMPLEKEY00003","sessionToken":"SESSIONTOKENEXAMPLE","expiration":"Nov 23, 2026, 1:12:44 PM"},"assumedRoleUser":{"assumedRoleId":"AROAEXAMPLEROLEID0003:session-0a1b2c3d4e5f","arn":"arn:aws:sts::444455556666:assumed-role/OrganizationAccountAccessRole/session-0a1b2c3d4e5f"}},"requestID":"0d6f5a3e-1b2c-4d5e-8f90-a1b2c3d4e5f6","eventID":"ID","readOnly":true,"resources":[{"accountId":"444455556666","type":"AWS::IAM::Role","ARN":"arn:aws:iam::444455556666:role/OrganizationAccountAccessRole"}],"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","eventCategory":"Management","tlsDetails":{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"sts.us-east-1.amazonaws.com"}}"#,
    r#"{"eventVersion":"1.09","userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLEUSERID001","arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333","accessKeyId":"AKIAEXAMPLEKEY00001","userName":"alice"},"eventTime":"2026-11-01T10:00:02Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"eu-west-1","sourceIPAddress":"192.0.2.44","userAgent":"aws-cli/2.15.30 Python/3.11.8 Linux/5.10.213-201.855.amzn2.x86_64 exe/x86_64.amzn.2 prompt/off command/ec2.describe-instances","errorCode":"Client.UnauthorizedOperation","errorMessage":"You are not authorized to perform this operation.","requestParameters":{"instancesSet":{"items":[{"instanceId":"i-0123456789abcdef0"}]},"filterSet":{"items":[{"name":"tag:team","valueSet":{"items":[{"value":"orders"}]}},{"name":"instance-state-name","valueSet":{"items":[{"value":"running"}]}}]},"maxResults":1000},"responseElements":null,"requestID":"3e0c9a1b-2d4f-4a6b-8c0d-e1f2a3b4c5d6","eventID":"ID","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","eventCategory":"Management","tlsDetails":{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"ec2.eu-west-1.amazonaws.com"}}"#,
    r#"{"eventVersion":"1.09","userIdentity":{"type":"AWSService","invokedBy":"s3.amazonaws.com"},"eventTime":"2026-11-01T10:00:03Z","eventSource":"kms.amazonaws.com","eventName":"Decrypt","awsRegion":"us-east-1","sourceIPAddress":"s3.amazonaws.com","userAgent":"s3.amazonaws.com","requestParameters":{"encryptionContext":{"aws:s3:arn":"arn:aws:s3:::orders-data/exports/eu/2026/11/part-0001.parquet"},"encryptionAlgorithm":"SYMMETRIC_DEFAULT"},"responseElements":null,"requestID":"9b8a7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d","eventID":"ID","readOnly":true,"resources":[{"accountId":"111122223333","type":"AWS::KMS::Key","ARN":"arn:aws:kms:us-east-1:111122223333:key/0e1d2c3b-4a59-4687-a8b9-cadbecfd0e1f"}],"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","sharedEventID":"5f4e3d2c-1b0a-4998-8776-655443322110","eventCategory":"Management"}"#,
];

/// `n` records, shapes in rotation, each with its own eventID.
pub fn records(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let shape = SHAPES.get(i % SHAPES.len()).copied().unwrap_or_default();
            shape.replace(
                "\"eventID\":\"ID\"",
                &format!("\"eventID\":\"00000000-0000-4000-8000-{i:012}\""),
            )
        })
        .collect()
}

/// A CloudTrail log file document holding `n` records.
pub fn log_file(n: usize) -> String {
    format!("{{\"Records\":[{}]}}", records(n).join(","))
}

/// The same, gzip-compressed as CloudTrail delivers it.
pub fn log_file_gz(n: usize) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = gz.write_all(log_file(n).as_bytes());
    gz.finish().unwrap_or_default()
}
