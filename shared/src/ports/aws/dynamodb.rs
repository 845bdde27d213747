//! [`DynamoDbFindingStore`]: findings stored exactly once with a conditional `PutItem`.
//!
//! Why not `BatchWriteItem`: batch writes cannot carry a condition, so they would
//! overwrite an existing finding (resetting its `alerted` flag) and could not tell a new
//! finding from a duplicate, which is exactly what alerting needs to know. Each finding is
//! therefore one `PutItem` with `attribute_not_exists(pk)`; the caller bounds how many are
//! in flight (`buffer_unordered(cfg.max_in_flight)`), which gives batch-like throughput
//! for the few findings an object produces. On a duplicate,
//! `ReturnValuesOnConditionCheckFailure=ALL_OLD` returns the stored item in the same call,
//! so its `alerted` flag costs no extra read (a consistent `GetItem` is the fallback for
//! endpoints that do not return it). `mark_alerted` is an `UpdateItem SET alerted = :t`
//! conditioned on the item existing, so it never creates a partial item; `mark_grouped`
//! likewise sets `alerted`, `group_id` and, for followers, `grouped = true`.
//!
//! Item layout: [`crate::findings::item`].

use super::classify::classify;
use crate::findings::item::{self, Attr};
use crate::findings::Finding;
use crate::ports::{FindingStore, GroupMark, PortError, Put, StoredFinding};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use time::OffsetDateTime;

/// The findings table.
#[derive(Debug, Clone)]
pub struct DynamoDbFindingStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention_days: u32,
    max_in_flight: NonZeroUsize,
}

fn to_attribute(a: Attr) -> AttributeValue {
    match a {
        Attr::S(s) => AttributeValue::S(s),
        Attr::N(n) => AttributeValue::N(n),
        Attr::Bool(b) => AttributeValue::Bool(b),
        Attr::L(items) => AttributeValue::L(items.into_iter().map(to_attribute).collect()),
    }
}

fn alerted_flag(item: Option<&HashMap<String, AttributeValue>>) -> Option<bool> {
    match item?.get("alerted") {
        Some(AttributeValue::Bool(b)) => Some(*b),
        _ => Some(false),
    }
}

impl DynamoDbFindingStore {
    /// A store over `table`; items expire `retention_days` after they are written, and
    /// `mark_alerted` keeps at most `max_in_flight` updates in flight.
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        retention_days: u32,
        max_in_flight: NonZeroUsize,
    ) -> Self {
        DynamoDbFindingStore {
            client,
            table: table.into(),
            retention_days,
            max_in_flight,
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn key_of(finding: &Finding) -> HashMap<String, AttributeValue> {
        let (pk, sk) = item::keys(finding);
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk)),
            ("sk".to_owned(), AttributeValue::S(sk)),
        ])
    }

    /// Whether finding's item exists and is alerted (consistent read).
    async fn read_alerted(&self, finding: &Finding) -> Result<bool, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key_of(finding)))
            .consistent_read(true)
            .projection_expression("alerted")
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        Ok(alerted_flag(out.item()).unwrap_or(false))
    }

    async fn mark_one(
        &self,
        finding: &Finding,
        group: Option<(&str, bool)>,
    ) -> Result<(), PortError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key_of(finding)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", AttributeValue::Bool(true));
        req = match group {
            None => req.update_expression("SET alerted = :t"),
            Some((group_id, follower)) => req
                .update_expression(if follower {
                    "SET alerted = :t, group_id = :g, grouped = :t"
                } else {
                    "SET alerted = :t, group_id = :g"
                })
                .expression_attribute_values(":g", AttributeValue::S(group_id.to_owned())),
        };
        let r = req.send().await;
        match r {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                // the item is gone (expired or deleted): nothing to mark
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(()),
                _ => Err(classify("UpdateItem", e)),
            },
        }
    }
}

impl FindingStore for DynamoDbFindingStore {
    async fn put_stored(&self, stored: StoredFinding<'_>) -> Result<Put, PortError> {
        let attrs: HashMap<String, AttributeValue> =
            item::to_item(&stored, OffsetDateTime::now_utc(), self.retention_days)
                .into_iter()
                .map(|(k, v)| (k, to_attribute(v)))
                .collect();
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attrs))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(_) => Ok(Put::Created),
            Err(e) => {
                if let Some(PutItemError::ConditionalCheckFailedException(c)) = e.as_service_error()
                {
                    let alerted = match alerted_flag(c.item()) {
                        Some(a) => a,
                        None => self.read_alerted(stored.finding).await?,
                    };
                    return Ok(Put::Duplicate { alerted });
                }
                Err(classify("PutItem", e))
            }
        }
    }

    async fn mark_alerted(&self, findings: &[&Finding]) -> Result<(), PortError> {
        // a plain loop, not a closure: closures over borrowed findings defeat the
        // higher-ranked `Send` check of the trait's future
        let mut updates = Vec::with_capacity(findings.len());
        for f in findings {
            updates.push(self.mark_one(f, None));
        }
        stream::iter(updates)
            .buffer_unordered(self.max_in_flight.get())
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    async fn mark_grouped(&self, marks: &[GroupMark<'_>]) -> Result<(), PortError> {
        let mut updates = Vec::with_capacity(marks.len());
        for g in marks {
            updates.push(self.mark_one(g.finding, Some((g.group_id, g.follower))));
        }
        stream::iter(updates)
            .buffer_unordered(self.max_in_flight.get())
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }
}
