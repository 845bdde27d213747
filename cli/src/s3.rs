//! S3 inputs for `trailwatch scan s3://bucket/prefix`: listing with date filtering from the
//! key, and streaming reads bridged into the synchronous pipeline.
//!
//! Objects are streamed (never downloaded whole); concurrency is bounded by the scan's
//! worker threads, each holding one object open at a time.

use crate::inputs::{in_date_range, Input, S3Location};
use anyhow::Context as _;
use time::Date;
use tokio_util::io::SyncIoBridge;
use trailwatch::model::S3Key;
use trailwatch::ports::aws::S3ObjectSource;
use trailwatch::ports::ObjectSource;

/// An S3 client for listing and reading trail buckets (honours `AWS_ENDPOINT_URL`,
/// `AWS_PROFILE`, `AWS_REGION`).
pub struct S3Inputs {
    client: aws_sdk_s3::Client,
    source: S3ObjectSource,
}

impl S3Inputs {
    /// Build the client from the default credential and region chain.
    pub async fn load() -> Self {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(std::env::var_os("AWS_ENDPOINT_URL").is_some())
            .build();
        let client = aws_sdk_s3::Client::from_conf(conf);
        S3Inputs {
            source: S3ObjectSource::new(client.clone()),
            client,
        }
    }

    /// Append the evaluated log objects under `loc` dated within `[since, until]`.
    ///
    /// # Errors
    /// When listing fails (no such bucket, access denied, network).
    pub async fn list(
        &self,
        loc: &S3Location,
        since: Option<Date>,
        until: Option<Date>,
        out: &mut Vec<Input>,
    ) -> anyhow::Result<()> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&loc.bucket)
            .prefix(&loc.prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.with_context(|| format!("listing s3://{}/{}", loc.bucket, loc.prefix))?;
            for obj in page.contents() {
                let Some(key) = obj.key() else { continue };
                let parsed = S3Key::parse(key);
                if !crate::inputs::is_evaluated_path(key) || !in_date_range(&parsed, since, until) {
                    continue;
                }
                out.push(Input::S3 {
                    bucket: loc.bucket.clone(),
                    key: key.to_owned(),
                    size: obj.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                });
            }
        }
        Ok(())
    }

    /// Open an object as a blocking reader (called from a worker thread, not the runtime).
    ///
    /// # Errors
    /// When `GetObject` fails.
    pub fn open(
        &self,
        rt: &tokio::runtime::Handle,
        bucket: &str,
        key: &str,
    ) -> anyhow::Result<Box<dyn std::io::Read + Send>> {
        let body = rt
            .block_on(self.source.open(bucket, key))
            .with_context(|| "GetObject")?;
        Ok(Box::new(SyncIoBridge::new_with_handle(
            body.reader,
            rt.clone(),
        )))
    }
}
