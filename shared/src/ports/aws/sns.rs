//! [`SnsNotifier`]: alerts published with `PublishBatch`.
//!
//! A batch holds at most 10 entries and 256 KiB of payload (messages, subjects and
//! attributes together); entry ids only need to be unique within a batch. `PublishBatch`
//! can succeed as a call and still fail some entries: those (and only those) are retried
//! with exponential backoff when the failure is on AWS's side; a sender fault (invalid
//! parameter) is permanent. The SDK retries whole calls (throttling, 5xx) itself, as
//! configured once in [`super::Ports`].

use super::classify::classify;
use crate::ports::{Alert, Notifier, PortError};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use std::time::Duration;

/// Entries per `PublishBatch` call (SNS limit).
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Payload bytes per `PublishBatch` call (SNS limit: 256 KiB), less a margin for the
/// per-entry overhead SNS may count.
pub const MAX_BATCH_BYTES: usize = 256 * 1024 - 2048;
/// Rounds of retrying failed entries.
const ENTRY_RETRIES: u32 = 4;
/// First backoff between rounds; doubled each round.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Publishes alerts to one topic.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

/// Payload bytes SNS counts for one alert.
fn entry_size(a: &Alert) -> usize {
    let attrs = [
        ("severity", a.severity.as_str()),
        ("rule_id", a.rule_id.as_str()),
        ("account_id", a.account_id.as_str()),
    ];
    a.body.len()
        + a.subject.len()
        + attrs
            .iter()
            .map(|(k, v)| k.len() + "String".len() + v.len())
            .sum::<usize>()
}

/// Split `alerts` into batches within the entry and byte limits (an alert larger than
/// the byte limit goes alone, and SNS rejects it as a sender fault).
pub fn batches(alerts: &[Alert]) -> Vec<&[Alert]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, a) in alerts.iter().enumerate() {
        let size = entry_size(a);
        let n = i - start;
        if n > 0 && (n == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES) {
            out.extend(alerts.get(start..i));
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < alerts.len() {
        out.extend(alerts.get(start..));
    }
    out
}

fn string_attr(v: &str) -> Result<MessageAttributeValue, PortError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| PortError::Permanent {
            op: "PublishBatch",
            message: e.to_string(),
        })
}

fn entry(id: String, a: &Alert) -> Result<PublishBatchRequestEntry, PortError> {
    PublishBatchRequestEntry::builder()
        .id(id)
        .message(&a.body)
        .subject(&a.subject)
        .message_attributes("severity", string_attr(a.severity.as_str())?)
        .message_attributes("rule_id", string_attr(&a.rule_id)?)
        .message_attributes("account_id", string_attr(&a.account_id)?)
        .build()
        .map_err(|e| PortError::Permanent {
            op: "PublishBatch",
            message: e.to_string(),
        })
}

impl SnsNotifier {
    /// Publish to `topic_arn` through `client`.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        SnsNotifier {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// Publish one batch, retrying only its failed entries.
    async fn publish_batch(&self, batch: &[Alert]) -> Result<(), PortError> {
        // entry ids are the alert's index in the batch: unique within the call
        let mut todo: Vec<usize> = (0..batch.len()).collect();
        let mut backoff = FIRST_BACKOFF;
        for round in 0..=ENTRY_RETRIES {
            let entries = todo
                .iter()
                .filter_map(|&i| batch.get(i).map(|a| entry(format!("a{i}"), a)))
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .publish_batch()
                .topic_arn(&self.topic_arn)
                .set_publish_batch_request_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("PublishBatch", e))?;
            let failed = out.failed();
            if failed.is_empty() {
                return Ok(());
            }
            if let Some(f) = failed.iter().find(|f| f.sender_fault()) {
                return Err(PortError::Permanent {
                    op: "PublishBatch",
                    message: format!(
                        "{} of {} entries rejected, e.g. {}: {}",
                        failed.len(),
                        todo.len(),
                        f.code(),
                        f.message().unwrap_or_default()
                    ),
                });
            }
            todo = failed
                .iter()
                .filter_map(|f| f.id().strip_prefix('a')?.parse().ok())
                .collect();
            if round == ENTRY_RETRIES {
                let code = failed.first().map(|f| f.code()).unwrap_or_default();
                return Err(PortError::Transient {
                    op: "PublishBatch",
                    message: format!(
                        "{} entries still failing after {ENTRY_RETRIES} retries: {code}",
                        failed.len()
                    ),
                });
            }
            tracing::warn!(
                failed = failed.len(),
                round,
                "PublishBatch entries failed; retrying them"
            );
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
        Ok(())
    }
}

impl Notifier for SnsNotifier {
    async fn publish(&self, alerts: &[Alert]) -> Result<(), PortError> {
        for batch in batches(alerts) {
            self.publish_batch(batch).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Severity;

    fn alert(i: usize, body_bytes: usize) -> Alert {
        Alert {
            subject: format!("s{i}"),
            body: "x".repeat(body_bytes),
            severity: Severity::High,
            rule_id: "r".into(),
            account_id: "111122223333".into(),
            id: format!("id{i}"),
        }
    }

    #[test]
    fn batches_respect_count_and_size() {
        let small: Vec<Alert> = (0..23).map(|i| alert(i, 100)).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [10, 10, 3]);
        let big: Vec<Alert> = (0..5).map(|i| alert(i, 100 * 1024)).collect();
        let b = batches(&big);
        assert_eq!(b.iter().map(|b| b.len()).collect::<Vec<_>>(), [2, 2, 1]);
        for batch in b {
            assert!(batch.iter().map(entry_size).sum::<usize>() <= MAX_BATCH_BYTES);
        }
        assert!(batches(&[]).is_empty());
    }
}
