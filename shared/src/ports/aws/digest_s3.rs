//! [`S3DigestSource`]: the digest validator's [`DigestSource`] port over S3
//! `ListObjectsV2`, `GetObject` and `HeadObject`; and [`S3DigestSource::list_public_keys`],
//! CloudTrail `ListPublicKeys` in every region whose digests are validated.
//!
//! SDK errors are classified here (transient: timeouts, dispatch failures, throttling, 5xx;
//! permanent: access denied, validation, unknown) and never leave this module as SDK types.
//! A missing object is `None`, not an error: the validator reports it.

use std::collections::BTreeSet;

use aws_config::SdkConfig;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use bytes::Bytes;
use time::OffsetDateTime;

use crate::audit::digest::public_keys::decode_der;
use crate::audit::digest::{DigestMetadata, DigestSource, PublicKey, PublicKeySet, SourceError};

/// Error codes that mean "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
];

/// A trail bucket read through the S3 API.
#[derive(Debug, Clone)]
pub struct S3DigestSource {
    client: aws_sdk_s3::Client,
    bucket: String,
    sdk: SdkConfig,
}

impl S3DigestSource {
    /// A source over `bucket` with a client built from `sdk` (path-style addressing when
    /// the config has a custom endpoint such as moto).
    pub fn new(sdk: &SdkConfig, bucket: impl Into<String>) -> Self {
        let conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket: bucket.into(),
            sdk: sdk.clone(),
        }
    }

    /// A source over `bucket` with the default credential and region chain (honours
    /// `AWS_ENDPOINT_URL`), for the CLI.
    pub async fn from_env(bucket: impl Into<String>) -> Self {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::new(&sdk, bucket)
    }

    /// CloudTrail `ListPublicKeys` from `start` to now in each of `regions`: each region
    /// signs its digests with its own key, and backfill digests are signed with the key
    /// current when they were generated, so the list runs to the present.
    ///
    /// # Errors
    /// [`SourceError::Service`] when a call fails (classified like the S3 calls).
    pub async fn list_public_keys(
        &self,
        regions: &BTreeSet<String>,
        start: OffsetDateTime,
    ) -> Result<PublicKeySet, SourceError> {
        list_public_keys(&self.sdk, regions, start).await
    }
}

impl DigestSource for S3DigestSource {
    async fn list_keys(&self, prefix: Option<&str>) -> Result<Vec<String>, SourceError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .set_prefix(prefix.map(str::to_owned))
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| classify("ListObjectsV2", prefix.unwrap_or_default(), e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    async fn get_object(&self, key: &str) -> Result<Option<Bytes>, SourceError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(classify("GetObject", key, e)),
        };
        // a body cut off mid-stream is a network failure: retry
        let body = out.body.collect().await.map_err(|e| SourceError::Service {
            operation: "GetObject",
            key: key.to_owned(),
            transient: true,
            source: Box::new(e),
        })?;
        Ok(Some(body.into_bytes()))
    }

    async fn get_digest_metadata(&self, key: &str) -> Result<Option<DigestMetadata>, SourceError> {
        let out = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
            Err(e) => return Err(classify("HeadObject", key, e)),
        };
        // S3 returns user metadata keys lowercased, without the `x-amz-meta-` prefix
        let get = |name: &str| out.metadata().and_then(|m| m.get(name)).cloned();
        Ok(Some(DigestMetadata {
            signature: get("signature"),
            signature_algorithm: get("signature-algorithm"),
            backfill_generation_timestamp: get("backfill-generation-timestamp"),
        }))
    }
}

async fn list_public_keys(
    sdk: &SdkConfig,
    regions: &BTreeSet<String>,
    start: OffsetDateTime,
) -> Result<PublicKeySet, SourceError> {
    let mut keys = Vec::new();
    for region in regions {
        let conf = aws_sdk_cloudtrail::config::Builder::from(sdk)
            .region(aws_sdk_cloudtrail::config::Region::new(region.clone()))
            .build();
        let client = aws_sdk_cloudtrail::Client::from_conf(conf);
        let mut token: Option<String> = None;
        loop {
            let out = client
                .list_public_keys()
                .start_time(to_smithy(start))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify("ListPublicKeys", region, e))?;
            for k in out.public_key_list() {
                let Some(fingerprint) = k.fingerprint() else {
                    continue;
                };
                let key = match k.value() {
                    Some(der) => decode_der(der.as_ref()),
                    None => Err("no Value".to_owned()),
                };
                keys.push(PublicKey {
                    fingerprint: fingerprint.to_ascii_lowercase(),
                    key,
                    valid_from: k.validity_start_time().and_then(from_smithy),
                    valid_until: k.validity_end_time().and_then(from_smithy),
                });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
    }
    Ok(PublicKeySet::from_keys(keys))
}

fn to_smithy(t: OffsetDateTime) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs(t.unix_timestamp())
}

fn from_smithy(t: &aws_smithy_types::DateTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t.secs()).ok()
}

/// Classify an SDK error as transient or permanent, keeping it as the source.
fn classify<E>(operation: &'static str, key: &str, err: SdkError<E, HttpResponse>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ConstructionFailure(_) => false,
        _ => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            err.code().is_some_and(|c| TRANSIENT_CODES.contains(&c))
                || status.is_some_and(|s| s >= 500 || s == 429)
        }
    };
    SourceError::Service {
        operation,
        key: key.to_owned(),
        transient,
        source: Box::new(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service_error(status: u16, code: &str) -> SdkError<GetObjectError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("m").build();
        let resp = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(""));
        SdkError::service_error(GetObjectError::generic(meta), resp)
    }

    #[test]
    fn classification() {
        assert!(classify("GetObject", "k", service_error(503, "SlowDown")).is_transient());
        assert!(classify("GetObject", "k", service_error(400, "RequestTimeout")).is_transient());
        assert!(classify("GetObject", "k", service_error(500, "Whatever")).is_transient());
        assert!(!classify("GetObject", "k", service_error(403, "AccessDenied")).is_transient());
        let timeout = SdkError::<GetObjectError, HttpResponse>::timeout_error("slow");
        assert!(classify("GetObject", "k", timeout).is_transient());
        let e = classify("GetObject", "the/key", service_error(403, "AccessDenied"));
        assert_eq!(e.to_string(), "GetObject \"the/key\" failed");
    }

    #[test]
    fn smithy_time_round_trip() {
        let t = time::macros::datetime!(2025-03-01 00:05:17 UTC);
        assert_eq!(from_smithy(&to_smithy(t)), Some(t));
    }
}
