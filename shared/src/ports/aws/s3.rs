//! [`S3ObjectSource`]: `GetObject` as a byte stream, never collected into memory.

use super::classify::classify;
use crate::ports::{ObjectBody, ObjectSource, PortError};

/// Reads log objects from S3.
#[derive(Debug, Clone)]
pub struct S3ObjectSource {
    client: aws_sdk_s3::Client,
}

impl S3ObjectSource {
    /// Wrap a client (built once per cold start by [`super::Ports`]).
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3ObjectSource { client }
    }
}

impl ObjectSource for S3ObjectSource {
    async fn open(&self, bucket: &str, key: &str) -> Result<ObjectBody, PortError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("GetObject", e))?;
        Ok(ObjectBody {
            size: out.content_length().and_then(|n| u64::try_from(n).ok()),
            reader: Box::pin(out.body.into_async_read()),
        })
    }
}
