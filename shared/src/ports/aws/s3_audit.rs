//! [`S3AuditSource`]: the auditor's [`BucketAuditSource`] over S3 (`GetBucketAcl`,
//! `GetBucketPolicy`, `GetBucketPolicyStatus`, `GetPublicAccessBlock`,
//! `GetBucketVersioning`, `GetBucketLogging`, `GetBucketLifecycleConfiguration`,
//! `GetBucketEncryption`, `ListObjectsV2`) and S3 Control (account `GetPublicAccessBlock`).
//!
//! "Not configured" error codes (`NoSuchBucketPolicy`, `NoSuchPublicAccessBlockConfiguration`,
//! `NoSuchLifecycleConfiguration`, `ServerSideEncryptionConfigurationNotFoundError`) are
//! `Ok(None)`/empty; every other SDK error goes through the shared `classify`.

use aws_config::SdkConfig;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::classify::classify;
use crate::ports::trail::{
    AclGrant, BucketAuditSource, BucketEncryption, LifecycleRule, LoggingTarget, PublicAccessBlock,
    Versioning,
};
use crate::ports::PortError;

/// The error code of a service error, if it is one.
fn code_of<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

/// The output of a `Get*` call whose setting may not be configured: `None` when the call
/// failed with the service's `absent` code, the classified error for any other failure.
fn unless_absent<T, E>(
    op: &'static str,
    absent: &str,
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<Option<T>, PortError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if code_of(&e) == Some(absent) => Ok(None),
        Err(e) => Err(classify(op, e)),
    }
}

/// The code of a bucket or account without a public access block.
const NO_PAB: &str = "NoSuchPublicAccessBlockConfiguration";

/// S3 and S3 Control reads for the audit.
#[derive(Debug, Clone)]
pub struct S3AuditSource {
    s3: aws_sdk_s3::Client,
    control: aws_sdk_s3control::Client,
}

impl S3AuditSource {
    /// Clients from the shared SDK configuration (path-style addressing when an endpoint
    /// override such as a local moto is configured).
    pub fn new(sdk: &SdkConfig) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        let mut control = aws_sdk_s3control::config::Builder::from(sdk);
        if let Some(url) = sdk.endpoint_url() {
            control = control.endpoint_resolver(FixedEndpoint(url.to_owned()));
        }
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3),
            control: aws_sdk_s3control::Client::from_conf(control.build()),
        }
    }
}

/// S3 Control's endpoint rules put the account id in front of the host
/// (`<account>.<endpoint>`), which a local emulator's `127.0.0.1:<port>` cannot resolve;
/// with an endpoint override the URL is used as given (the account travels in the
/// `x-amz-account-id` header anyway).
#[derive(Debug)]
struct FixedEndpoint(String);

impl aws_sdk_s3control::config::endpoint::ResolveEndpoint for FixedEndpoint {
    fn resolve_endpoint<'a>(
        &'a self,
        _params: &'a aws_sdk_s3control::config::endpoint::Params,
    ) -> aws_sdk_s3control::config::endpoint::EndpointFuture<'a> {
        aws_sdk_s3control::config::endpoint::EndpointFuture::ready(Ok(
            aws_sdk_s3control::config::endpoint::Endpoint::builder()
                .url(self.0.clone())
                .build(),
        ))
    }
}

fn pab_of(
    acls: Option<bool>,
    ignore: Option<bool>,
    policy: Option<bool>,
    restrict: Option<bool>,
) -> PublicAccessBlock {
    PublicAccessBlock {
        block_public_acls: acls.unwrap_or(false),
        ignore_public_acls: ignore.unwrap_or(false),
        block_public_policy: policy.unwrap_or(false),
        restrict_public_buckets: restrict.unwrap_or(false),
    }
}

impl BucketAuditSource for S3AuditSource {
    async fn bucket_acl(&self, bucket: &str) -> Result<Vec<AclGrant>, PortError> {
        let out = self
            .s3
            .get_bucket_acl()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| classify("GetBucketAcl", e))?;
        Ok(out
            .grants()
            .iter()
            .map(|g| {
                let grantee = g.grantee();
                AclGrant {
                    grantee_uri: grantee.and_then(|x| x.uri()).map(str::to_owned),
                    grantee: grantee
                        .and_then(|x| x.id().or(x.email_address()).or(x.display_name()))
                        .map(str::to_owned),
                    permission: g
                        .permission()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn bucket_policy(&self, bucket: &str) -> Result<Option<String>, PortError> {
        let result = self.s3.get_bucket_policy().bucket(bucket).send().await;
        let out = unless_absent("GetBucketPolicy", "NoSuchBucketPolicy", result)?;
        Ok(out.and_then(|o| o.policy().map(str::to_owned)))
    }

    async fn bucket_policy_is_public(&self, bucket: &str) -> Result<Option<bool>, PortError> {
        let result = self
            .s3
            .get_bucket_policy_status()
            .bucket(bucket)
            .send()
            .await;
        let out = unless_absent("GetBucketPolicyStatus", "NoSuchBucketPolicy", result)?;
        Ok(out.and_then(|o| o.policy_status().and_then(|s| s.is_public())))
    }

    async fn bucket_public_access_block(
        &self,
        bucket: &str,
    ) -> Result<Option<PublicAccessBlock>, PortError> {
        let result = self
            .s3
            .get_public_access_block()
            .bucket(bucket)
            .send()
            .await;
        let out = unless_absent("GetPublicAccessBlock", NO_PAB, result)?;
        Ok(out
            .as_ref()
            .and_then(|o| o.public_access_block_configuration())
            .map(|c| {
                pab_of(
                    c.block_public_acls(),
                    c.ignore_public_acls(),
                    c.block_public_policy(),
                    c.restrict_public_buckets(),
                )
            }))
    }

    async fn account_public_access_block(
        &self,
        account_id: &str,
    ) -> Result<Option<PublicAccessBlock>, PortError> {
        let request = self
            .control
            .get_public_access_block()
            .account_id(account_id);
        let out = unless_absent(
            "GetPublicAccessBlock(account)",
            NO_PAB,
            request.send().await,
        )?;
        Ok(out
            .as_ref()
            .and_then(|o| o.public_access_block_configuration())
            .map(|c| {
                pab_of(
                    c.block_public_acls(),
                    c.ignore_public_acls(),
                    c.block_public_policy(),
                    c.restrict_public_buckets(),
                )
            }))
    }

    async fn bucket_versioning(&self, bucket: &str) -> Result<Versioning, PortError> {
        let out = self
            .s3
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| classify("GetBucketVersioning", e))?;
        Ok(Versioning {
            status: out.status().map(|s| s.as_str().to_owned()),
            mfa_delete: out.mfa_delete().map(|s| s.as_str().to_owned()),
        })
    }

    async fn bucket_logging(&self, bucket: &str) -> Result<Option<LoggingTarget>, PortError> {
        let out = self
            .s3
            .get_bucket_logging()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| classify("GetBucketLogging", e))?;
        Ok(out.logging_enabled().map(|l| LoggingTarget {
            bucket: l.target_bucket().to_owned(),
            prefix: l.target_prefix().to_owned(),
        }))
    }

    async fn bucket_lifecycle(&self, bucket: &str) -> Result<Vec<LifecycleRule>, PortError> {
        let request = self.s3.get_bucket_lifecycle_configuration().bucket(bucket);
        let result = request.send().await;
        let absent = "NoSuchLifecycleConfiguration";
        let Some(out) = unless_absent("GetBucketLifecycleConfiguration", absent, result)? else {
            return Ok(Vec::new());
        };
        Ok(out
            .rules()
            .iter()
            .map(|r| {
                let filter = r.filter();
                #[allow(deprecated)] // the legacy top-level Prefix still exists on old rules
                let legacy = r.prefix();
                let prefix = filter
                    .and_then(|f| f.prefix().or_else(|| f.and().and_then(|a| a.prefix())))
                    .or(legacy)
                    .unwrap_or_default()
                    .to_owned();
                LifecycleRule {
                    id: r.id().map(str::to_owned),
                    enabled: r.status().as_str() == "Enabled",
                    prefix,
                    expiration_days: r.expiration().and_then(|e| e.days()),
                    expiration_date: r.expiration().is_some_and(|e| e.date().is_some()),
                    noncurrent_expiration_days: r
                        .noncurrent_version_expiration()
                        .and_then(|n| n.noncurrent_days()),
                }
            })
            .collect())
    }

    async fn bucket_encryption(&self, bucket: &str) -> Result<Option<BucketEncryption>, PortError> {
        let result = self.s3.get_bucket_encryption().bucket(bucket).send().await;
        let absent = "ServerSideEncryptionConfigurationNotFoundError";
        let out = unless_absent("GetBucketEncryption", absent, result)?;
        Ok(out
            .as_ref()
            .and_then(|o| o.server_side_encryption_configuration())
            .and_then(|c| c.rules().first())
            .and_then(|r| r.apply_server_side_encryption_by_default())
            .map(|d| BucketEncryption {
                algorithm: d.sse_algorithm().as_str().to_owned(),
                kms_key_id: d.kms_master_key_id().map(str::to_owned),
            }))
    }

    async fn list_subfolders(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, PortError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .delimiter("/")
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify("ListObjectsV2", e))?;
            out.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_owned)),
            );
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }
}
