//! [`classify`]: the one place an SDK error becomes a [`PortError`].
//!
//! Transient (retrying may succeed): timeouts, dispatch failures (connection refused or
//! reset, DNS), unparseable responses, throttling codes, HTTP 429 and 5xx. `NotFound`: the
//! object or resource is gone (`NoSuchKey`, HTTP 404, `ResourceNotFoundException`).
//! Permanent: everything else (access denied, validation, request construction). The
//! message keeps the service's code and message, never request parameters.

use crate::ports::PortError;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// Error codes that mean "slow down / try again" across S3, DynamoDB, SNS.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "TransactionInProgressException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "KMSThrottlingException",
    "KMSThrottling",
];

/// Error codes that mean the object or resource does not exist.
const NOT_FOUND_CODES: &[&str] = &[
    "NoSuchKey",
    "NotFound",
    "NoSuchBucket",
    "ResourceNotFoundException",
    "NotFoundException",
];

/// Classify `err` from operation `op`; see the module docs.
pub(crate) fn classify<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    let message = match (&code, err.message()) {
        (Some(c), Some(m)) if !m.is_empty() => format!("{c}: {m}"),
        (Some(c), _) => c.clone(),
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
            } else if NOT_FOUND_CODES.contains(&code) || status == Some(404) {
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
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service_error(status: u16, code: &str) -> SdkError<GetObjectError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("m").build();
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(GetObjectError::generic(meta), raw)
    }

    #[test]
    fn codes_and_statuses_are_classified() {
        let t = |s, c| classify("GetObject", service_error(s, c));
        assert!(matches!(t(404, "NoSuchKey"), PortError::NotFound { .. }));
        assert!(matches!(t(404, "Weird"), PortError::NotFound { .. }));
        assert!(matches!(
            t(403, "AccessDenied"),
            PortError::Permanent { .. }
        ));
        assert!(t(503, "SlowDown").is_retryable());
        assert!(t(500, "Whatever").is_retryable());
        assert!(t(400, "ThrottlingException").is_retryable());
        assert!(t(400, "ProvisionedThroughputExceededException").is_retryable());
        assert!(matches!(
            t(400, "ValidationException"),
            PortError::Permanent { .. }
        ));
        assert_eq!(
            t(403, "AccessDenied").to_string(),
            "permanent failure calling GetObject: AccessDenied: m"
        );
        let timeout: SdkError<GetObjectError, HttpResponse> =
            SdkError::timeout_error("operation timed out");
        assert!(classify("GetObject", timeout).is_retryable());
        let construction: SdkError<GetObjectError, HttpResponse> =
            SdkError::construction_failure("bad input");
        assert!(!classify("GetObject", construction).is_retryable());
    }
}
