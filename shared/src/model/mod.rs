//! The data model: CloudTrail records, trail-bucket keys, EventBridge envelopes.
//!
//! Owns parsing of single values (a record, a key, an envelope); streaming over files is
//! [`crate::ingest`]'s job. Nothing here does I/O.

pub mod envelope;
mod json;
pub mod record;
pub mod s3key;

pub use envelope::{classify_detail_type, DetailType, Envelope};
pub use record::{format_time, parse_time, IdentityType, Record, RecordError};
pub use s3key::{decode_notification_key, KeyKind, S3Key};
