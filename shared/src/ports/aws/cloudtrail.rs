//! [`CloudTrailSource`]: the auditor's [`TrailSource`] over CloudTrail (`DescribeTrails`
//! with shadow trails, `GetTrailStatus`, `GetEventSelectors`, `GetInsightSelectors`,
//! `ListPublicKeys` in any region).
//!
//! Trails are addressed by ARN, and per-trail reads go to the trail's home region (the
//! region in its ARN): a shadow trail's settings are always readable there.
//! `InsightNotEnabledException` means "no insight selectors", not an error.

use aws_config::SdkConfig;
use aws_sdk_cloudtrail::types::ReadWriteType as SdkReadWrite;
use aws_smithy_types::DateTime;
use time::OffsetDateTime;

use super::classify::classify;
use crate::ports::trail::{
    AdvancedSelector, BasicSelector, DataResource, EventSelectors, FieldSelector, PublicKeyEntry,
    ReadWriteType, TrailInfo, TrailSource, TrailStatus,
};
use crate::ports::PortError;

/// CloudTrail reads for the audit.
#[derive(Debug, Clone)]
pub struct CloudTrailSource {
    client: aws_sdk_cloudtrail::Client,
    sdk: SdkConfig,
}

impl CloudTrailSource {
    /// A client from the shared SDK configuration; `ListPublicKeys` of other regions
    /// builds a client for that region from the same configuration.
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_cloudtrail::Client::new(sdk),
            sdk: sdk.clone(),
        }
    }
}

impl CloudTrailSource {
    /// The client for the home region of `trail_arn` (the default client when it is ours
    /// or the ARN has no region).
    fn client_for(&self, trail_arn: &str) -> aws_sdk_cloudtrail::Client {
        let home = trail_arn.split(':').nth(3).filter(|r| !r.is_empty());
        let ours = self.sdk.region().map(|r| r.as_ref());
        match home {
            Some(h) if Some(h) != ours => self.client_in(h),
            _ => self.client.clone(),
        }
    }

    fn client_in(&self, region: &str) -> aws_sdk_cloudtrail::Client {
        let conf = aws_sdk_cloudtrail::config::Builder::from(&self.sdk)
            .region(aws_config::Region::new(region.to_owned()))
            .build();
        aws_sdk_cloudtrail::Client::from_conf(conf)
    }
}

fn to_time(t: Option<&DateTime>) -> Option<OffsetDateTime> {
    t.and_then(|t| OffsetDateTime::from_unix_timestamp_nanos(t.as_nanos()).ok())
}

fn to_smithy(t: OffsetDateTime) -> DateTime {
    DateTime::from_secs(t.unix_timestamp())
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

impl TrailSource for CloudTrailSource {
    async fn describe_trails(&self) -> Result<Vec<TrailInfo>, PortError> {
        let out = self
            .client
            .describe_trails()
            .include_shadow_trails(true)
            .send()
            .await
            .map_err(|e| classify("DescribeTrails", e))?;
        Ok(out
            .trail_list()
            .iter()
            .map(|t| TrailInfo {
                name: t.name().unwrap_or_default().to_owned(),
                arn: t.trail_arn().unwrap_or_default().to_owned(),
                home_region: t.home_region().unwrap_or_default().to_owned(),
                s3_bucket: non_empty(t.s3_bucket_name()),
                s3_key_prefix: non_empty(t.s3_key_prefix()),
                is_multi_region: t.is_multi_region_trail().unwrap_or(false),
                include_global_service_events: t.include_global_service_events().unwrap_or(false),
                log_file_validation: t.log_file_validation_enabled().unwrap_or(false),
                kms_key_id: non_empty(t.kms_key_id()),
                cloudwatch_logs_log_group_arn: non_empty(t.cloud_watch_logs_log_group_arn()),
                is_organization_trail: t.is_organization_trail().unwrap_or(false),
                has_insight_selectors: t.has_insight_selectors().unwrap_or(false),
            })
            .collect())
    }

    async fn trail_status(&self, trail_arn: &str) -> Result<TrailStatus, PortError> {
        let client: aws_sdk_cloudtrail::Client = self.client_for(trail_arn);
        let s = client
            .get_trail_status()
            .name(trail_arn)
            .send()
            .await
            .map_err(|e| classify("GetTrailStatus", e))?;
        Ok(TrailStatus {
            is_logging: s.is_logging().unwrap_or(false),
            latest_delivery_time: to_time(s.latest_delivery_time()),
            latest_delivery_error: non_empty(s.latest_delivery_error()),
            latest_digest_delivery_time: to_time(s.latest_digest_delivery_time()),
            latest_digest_delivery_error: non_empty(s.latest_digest_delivery_error()),
            latest_cloudwatch_logs_delivery_time: to_time(
                s.latest_cloud_watch_logs_delivery_time(),
            ),
            latest_cloudwatch_logs_delivery_error: non_empty(
                s.latest_cloud_watch_logs_delivery_error(),
            ),
        })
    }

    async fn event_selectors(&self, trail_arn: &str) -> Result<EventSelectors, PortError> {
        let client: aws_sdk_cloudtrail::Client = self.client_for(trail_arn);
        let out = client
            .get_event_selectors()
            .trail_name(trail_arn)
            .send()
            .await
            .map_err(|e| classify("GetEventSelectors", e))?;
        let basic = out
            .event_selectors()
            .iter()
            .map(|s| BasicSelector {
                read_write: match s.read_write_type() {
                    Some(SdkReadWrite::ReadOnly) => ReadWriteType::ReadOnly,
                    Some(SdkReadWrite::WriteOnly) => ReadWriteType::WriteOnly,
                    _ => ReadWriteType::All,
                },
                // the API default is true
                include_management_events: s.include_management_events().unwrap_or(true),
                exclude_management_event_sources: s.exclude_management_event_sources().to_vec(),
                data_resources: s
                    .data_resources()
                    .iter()
                    .map(|d| DataResource {
                        kind: d.r#type().unwrap_or_default().to_owned(),
                        values: d.values().to_vec(),
                    })
                    .collect(),
            })
            .collect();
        let advanced = out
            .advanced_event_selectors()
            .iter()
            .map(|a| AdvancedSelector {
                name: a.name().map(str::to_owned),
                fields: a
                    .field_selectors()
                    .iter()
                    .map(|f| FieldSelector {
                        field: f.field().to_owned(),
                        equals: f.equals().to_vec(),
                        starts_with: f.starts_with().to_vec(),
                        ends_with: f.ends_with().to_vec(),
                        not_equals: f.not_equals().to_vec(),
                        not_starts_with: f.not_starts_with().to_vec(),
                        not_ends_with: f.not_ends_with().to_vec(),
                    })
                    .collect(),
            })
            .collect();
        Ok(EventSelectors { basic, advanced })
    }

    async fn insight_selectors(&self, trail_arn: &str) -> Result<Vec<String>, PortError> {
        let client: aws_sdk_cloudtrail::Client = self.client_for(trail_arn);
        match client
            .get_insight_selectors()
            .trail_name(trail_arn)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .insight_selectors()
                .iter()
                .filter_map(|s| s.insight_type().map(|t| t.as_str().to_owned()))
                .collect()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_insight_not_enabled_exception()) =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(classify("GetInsightSelectors", e)),
        }
    }

    async fn list_public_keys(
        &self,
        region: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Result<Vec<PublicKeyEntry>, PortError> {
        let client: aws_sdk_cloudtrail::Client = self.client_in(region);
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = client
                .list_public_keys()
                .start_time(to_smithy(start))
                .end_time(to_smithy(end))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify("ListPublicKeys", e))?;
            keys.extend(out.public_key_list().iter().filter_map(|k| {
                Some(PublicKeyEntry {
                    der: k.value()?.as_ref().to_vec(),
                    fingerprint: k.fingerprint()?.to_owned(),
                    valid_from: to_time(k.validity_start_time()),
                    valid_until: to_time(k.validity_end_time()),
                })
            }));
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(keys)
    }
}
