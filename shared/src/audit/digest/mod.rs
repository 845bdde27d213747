//! CloudTrail log file integrity validation: walks a trail's signed hourly digest chains
//! and reports every digest and log file with one status.
//!
//! Map:
//! - [`key`]: trail ARNs and digest keys (which objects are whose digests, which chain).
//! - [`source`]: the [`DigestSource`] port (list, get bytes, get digest metadata) with a
//!   local-directory and an in-memory implementation; the S3 one is under `ports::aws`.
//! - [`public_keys`]: `ListPublicKeys` parsing (PKCS#1 or SPKI DER), selection by fingerprint.
//! - [`document`]: one digest's signature check and the log file hash (all gzip members).
//! - [`validate()`]: the rules (chains, links, gaps, log files, precedence) → [`DigestReport`].
//!
//! Bad or tampered bucket content is never an error: it is a status in the report. Errors
//! are only for the source failing to answer, classified by [`DigestError::is_retryable`].

pub mod document;
pub mod key;
pub mod public_keys;
pub mod source;
mod validate;

use std::num::NonZeroUsize;

use serde::Serialize;
use time::OffsetDateTime;

pub use key::{trail_digest_regions, ChainId, DigestKey, DigestKind, TrailArn, TrailArnError};
pub use public_keys::{PublicKey, PublicKeySet, PublicKeysError};
pub use source::{DigestMetadata, DigestSource, LocalDigestSource, MemDigestSource, SourceError};
pub use validate::validate;

/// What to validate.
#[derive(Debug, Clone)]
pub struct ValidateRequest {
    /// The trail bucket's name (digests must name it as their location).
    pub bucket_name: String,
    /// The trail: its name and home region select the digests.
    pub trail: TrailArn,
    /// Digests with key time `>= start_time` are validated.
    pub start_time: OffsetDateTime,
    /// Digests with key time `<= end_time + 1 h` are validated (the digest covering the
    /// last hour of the window is delivered up to an hour after it).
    pub end_time: OffsetDateTime,
    /// The trail's `LatestDigestDeliveryTime`: enables the newest-digest gap rule.
    pub latest_delivery_time: Option<OffsetDateTime>,
    /// Only list keys under this prefix (all keys when `None`).
    pub list_prefix: Option<String>,
    /// Objects fetched and hashed at once.
    pub max_in_flight: NonZeroUsize,
}

/// The status of one reported object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileStatus {
    /// Digest: signature verifies and the chain is consistent. Log: hash matches.
    Valid,
    /// Log: the object exists but its uncompressed content does not hash to `hashValue`.
    HashMismatch,
    /// Log: a valid digest lists it and the object is absent.
    LogMissing,
    /// Digest: a verified successor names it and the object is absent.
    DigestMissing,
    /// Digest: unreadable, bad metadata, moved, unknown key, or the signature fails.
    DigestSignatureInvalid,
    /// Digest: verifies, but its successor recorded another hash or signature for it.
    DigestHashMismatch,
    /// Digest: verifies, but digests after it in its chain are gone and nothing names them.
    DigestGap,
}

impl FileStatus {
    /// The kebab-case name used in reports (`digest-signature-invalid`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::HashMismatch => "hash-mismatch",
            Self::LogMissing => "log-missing",
            Self::DigestMissing => "digest-missing",
            Self::DigestSignatureInvalid => "digest-signature-invalid",
            Self::DigestHashMismatch => "digest-hash-mismatch",
            Self::DigestGap => "digest-gap",
        }
    }

    /// Whether this is `valid`.
    pub fn is_valid(self) -> bool {
        self == Self::Valid
    }
}

/// One reported object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileResult {
    /// The S3 key.
    pub key: String,
    /// Its status.
    pub status: FileStatus,
    /// Why, for anything not plainly valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The validation result: each reported key once, sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigestReport {
    /// True exactly when every status is `valid`.
    pub ok: bool,
    /// Digests and log files, sorted by key.
    pub files: Vec<FileResult>,
}

/// The validation could not be completed (as opposed to: it found problems).
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// Listing the bucket failed.
    #[error("listing the trail bucket")]
    List(#[source] SourceError),
    /// Reading one object failed.
    #[error("reading {key}")]
    Read {
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: SourceError,
    },
    /// The window ends before it starts.
    #[error("end time {end} is before start time {start}")]
    Window {
        /// Start of the window.
        start: OffsetDateTime,
        /// End of the window.
        end: OffsetDateTime,
    },
    /// A hashing task died (it does not panic on any input; this is a runtime failure).
    #[error("hashing task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl DigestError {
    /// Whether running the validation again may succeed (throttling, timeouts, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::List(source) | Self::Read { source, .. } => source.is_transient(),
            Self::Window { .. } | Self::Task(_) => false,
        }
    }
}
