//! [`AwsRemediator`]: the [`Remediator`] port over CloudTrail `StartLogging`, S3
//! `PutPublicAccessBlock` and IAM `UpdateAccessKey`, plus STS `GetCallerIdentity` once at
//! construction (the function's own identity, so it never remediates its own calls).
//!
//! STS over the Lambda-name route: the SAM template lets CloudFormation name the role
//! (`<stack>-EventHandlerRole-<random>`), so the role cannot be derived from
//! `AWS_LAMBDA_FUNCTION_NAME`; `GetCallerIdentity` needs no IAM permission and returns
//! `arn:aws:sts::<acct>:assumed-role/<role>/<function>`. Built only when a remediation is
//! switched on, so the other functions (and a no-remediation deployment) never call STS.
//! SDK errors are classified here and never leave this module.

use crate::config::Config;
use crate::ports::remediate::Remediator;
use crate::ports::PortError;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// Remediation through the AWS SDK.
#[derive(Debug, Clone)]
pub struct AwsRemediator {
    cloudtrail: aws_sdk_cloudtrail::Client,
    s3: aws_sdk_s3::Client,
    iam: aws_sdk_iam::Client,
    acting_as: String,
}

impl AwsRemediator {
    /// Build the remediator when `cfg` switches any remediation on; `None` otherwise.
    ///
    /// # Errors
    /// [`PortError`] when STS `GetCallerIdentity` fails: without knowing its own identity
    /// the function must not remediate (it could not tell its own calls from others'), so
    /// the cold start fails.
    pub async fn load(cfg: &Config) -> Result<Option<AwsRemediator>, PortError> {
        if !crate::remediate::is_enabled(&cfg.remediation) {
            return Ok(None);
        }
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        AwsRemediator::from_sdk(&sdk).await.map(Some)
    }

    /// Build from an SDK configuration (tests point it at moto).
    ///
    /// # Errors
    /// [`PortError`] when STS `GetCallerIdentity` fails or returns no ARN.
    pub async fn from_sdk(sdk: &SdkConfig) -> Result<AwsRemediator, PortError> {
        let out = aws_sdk_sts::Client::new(sdk)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| classify("GetCallerIdentity", e))?;
        let acting_as = out
            .arn()
            .filter(|a| !a.is_empty())
            .ok_or(PortError::Permanent {
                op: "GetCallerIdentity",
                message: "no caller ARN in the response".into(),
            })?
            .to_owned();
        // custom endpoints (moto, LocalStack) cannot resolve virtual-host bucket names
        let s3_conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        Ok(AwsRemediator {
            cloudtrail: aws_sdk_cloudtrail::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            iam: aws_sdk_iam::Client::new(sdk),
            acting_as,
        })
    }
}

impl Remediator for AwsRemediator {
    fn acting_as(&self) -> &str {
        &self.acting_as
    }

    async fn start_logging(&self, trail: &str) -> Result<(), PortError> {
        self.cloudtrail
            .start_logging()
            .name(trail)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("StartLogging", e))
    }

    async fn restore_public_access_block(&self, bucket: &str) -> Result<(), PortError> {
        let block = aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        self.s3
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(block)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("PutPublicAccessBlock", e))
    }

    async fn deactivate_access_key(
        &self,
        user_name: &str,
        access_key_id: &str,
    ) -> Result<(), PortError> {
        self.iam
            .update_access_key()
            .user_name(user_name)
            .access_key_id(access_key_id)
            .status(aws_sdk_iam::types::StatusType::Inactive)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("UpdateAccessKey", e))
    }
}

/// Error codes retrying can fix (besides any 5xx or 429).
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServiceFailure",
    "OperationAbortedException",
];

/// Error codes saying the resource is gone.
const NOT_FOUND_CODES: &[&str] = &[
    "TrailNotFoundException",
    "NoSuchBucket",
    "NoSuchEntity",
    "NotFound",
];

/// Classify an SDK error: timeouts, dispatch and unparseable responses, throttling and 5xx
/// are transient; missing resources are `NotFound`; the rest (access denied, validation)
/// is permanent.
fn classify<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    let message = match (&code, err.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        _ => aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
    };
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            PortError::Transient { op, message }
        }
        SdkError::ConstructionFailure(_) => PortError::Permanent { op, message },
        _ => {
            let code = code.as_deref().unwrap_or_default();
            if TRANSIENT_CODES.contains(&code) || status.is_some_and(|s| s >= 500 || s == 429) {
                PortError::Transient { op, message }
            } else if NOT_FOUND_CODES.contains(&code) {
                PortError::NotFound { op, message }
            } else {
                PortError::Permanent { op, message }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::config::http::HttpResponse;
    use aws_sdk_s3::operation::put_public_access_block::PutPublicAccessBlockError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service_error(status: u16, code: &str) -> SdkError<PutPublicAccessBlockError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("m").build();
        let resp = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(""));
        SdkError::service_error(PutPublicAccessBlockError::generic(meta), resp)
    }

    #[test]
    fn classification() {
        let e = classify("PutPublicAccessBlock", service_error(503, "SlowDown"));
        assert!(e.is_retryable(), "{e}");
        let e = classify("PutPublicAccessBlock", service_error(400, "Throttling"));
        assert!(e.is_retryable(), "{e}");
        let e = classify("PutPublicAccessBlock", service_error(403, "AccessDenied"));
        assert!(matches!(e, PortError::Permanent { .. }), "{e}");
        assert!(e.to_string().contains("AccessDenied"), "{e}");
        let e = classify("PutPublicAccessBlock", service_error(404, "NoSuchBucket"));
        assert!(matches!(e, PortError::NotFound { .. }), "{e}");
        let e = classify(
            "PutPublicAccessBlock",
            SdkError::<PutPublicAccessBlockError, HttpResponse>::timeout_error("slow"),
        );
        assert!(e.is_retryable(), "{e}");
    }
}
