//! [`AwsRemediator`]: the [`Remediator`] port over CloudTrail `StartLogging`, S3
//! `PutPublicAccessBlock` and IAM `UpdateAccessKey`, plus STS `GetCallerIdentity` once at
//! construction (the function's own identity, so it never remediates its own calls), and
//! [`FindingLookup`] as a consistent `GetItem` on the findings table (keys from
//! [`crate::findings::item::keys`], the same the store writes).
//!
//! STS over the Lambda-name route: the SAM template lets CloudFormation name the role
//! (`<stack>-EventHandlerRole-<random>`), so the role cannot be derived from
//! `AWS_LAMBDA_FUNCTION_NAME`; `GetCallerIdentity` needs no IAM permission and returns
//! `arn:aws:sts::<acct>:assumed-role/<role>/<function>`. Built only when a remediation is
//! switched on, so the other functions (and a no-remediation deployment) never call STS.
//! SDK errors are classified by `classify` (shared with the other adapters) and never
//! leave this module.

use super::classify::classify;
use crate::config::Config;
use crate::findings::{item, Finding};
use crate::ports::remediate::{FindingLookup, Remediator};
use crate::ports::PortError;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;

/// Remediation through the AWS SDK.
#[derive(Debug, Clone)]
pub struct AwsRemediator {
    cloudtrail: aws_sdk_cloudtrail::Client,
    s3: aws_sdk_s3::Client,
    iam: aws_sdk_iam::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    acting_as: String,
}

impl AwsRemediator {
    /// Build the remediator from `sdk` (pass `Ports::sdk_config()`, which carries the retry
    /// and timeout policy) when `cfg` switches any remediation on; `None` otherwise.
    ///
    /// # Errors
    /// [`PortError`] when STS `GetCallerIdentity` fails or returns no ARN: without knowing
    /// its own identity the function could not tell its own calls from others', so the
    /// cold start fails rather than remediate blind.
    pub async fn load(cfg: &Config, sdk: &SdkConfig) -> Result<Option<AwsRemediator>, PortError> {
        if !crate::remediate::is_enabled(&cfg.remediation) {
            return Ok(None);
        }
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
        Ok(Some(AwsRemediator {
            cloudtrail: aws_sdk_cloudtrail::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            iam: aws_sdk_iam::Client::new(sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            table: cfg.findings_table.clone(),
            acting_as,
        }))
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

impl FindingLookup for AwsRemediator {
    async fn contains(&self, finding: &Finding) -> Result<bool, PortError> {
        let (pk, sk) = item::keys(finding);
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk))
            // a remediation recorded a moment ago by a concurrent delivery must be seen
            .consistent_read(true)
            .projection_expression("pk")
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        Ok(out.item().is_some())
    }
}
