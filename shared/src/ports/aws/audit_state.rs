//! [`DynamoDbCheckStateStore`]: check states in the findings table (`FINDINGS_TABLE`, keys
//! `pk`/`sk`): `pk = AUDIT#<check id>`, `sk = <resource>`, attributes `status`
//! (`pass|fail|unknown`), `since`, `last_run` (RFC 3339), `detail`, `severity`, `finding`
//! (the finding as JSON, failing/unknown only). The daily digest date is the item
//! `pk = AUDIT#daily-digest`, `sk = last`, attribute `date`.
//!
//! States are current facts, not history: they have no TTL and are overwritten each run.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::warn;

use super::classify::classify;
use crate::findings::Severity;
use crate::ports::trail::{CheckState, CheckStateStore, CheckStatus};
use crate::ports::PortError;

/// `BatchWriteItem` takes at most 25 requests.
const BATCH: usize = 25;
/// Rounds of re-sending unprocessed items before giving up (as a transient error).
const UNPROCESSED_ROUNDS: usize = 5;
const DIGEST_PK: &str = "AUDIT#daily-digest";

/// Check states in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDbCheckStateStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbCheckStateStore {
    /// A store over `table`.
    pub fn new(sdk: &SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(sdk),
            table: table.into(),
        }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn item_of(st: &CheckState) -> HashMap<String, AttributeValue> {
    let mut m = HashMap::new();
    m.insert("pk".into(), s(format!("AUDIT#{}", st.check_id)));
    m.insert("sk".into(), s(st.resource.clone()));
    m.insert("check_id".into(), s(st.check_id.clone()));
    m.insert("status".into(), s(st.status.as_str()));
    m.insert("since".into(), s(crate::audit::checks::rfc3339(st.since)));
    m.insert(
        "last_run".into(),
        s(crate::audit::checks::rfc3339(st.last_run)),
    );
    m.insert("detail".into(), s(st.detail.clone()));
    m.insert("severity".into(), s(st.severity.as_str()));
    if let Some(f) = &st.finding {
        if let Ok(json) = serde_json::to_string(f) {
            m.insert("finding".into(), s(json));
        }
    }
    m
}

fn get_s<'a>(m: &'a HashMap<String, AttributeValue>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// An item written by [`item_of`]; `None` (skipped with a warning) for anything else.
fn state_of(check_id: &str, m: &HashMap<String, AttributeValue>) -> Option<CheckState> {
    let time = |k: &str| get_s(m, k).and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    Some(CheckState {
        check_id: check_id.to_owned(),
        resource: get_s(m, "sk")?.to_owned(),
        status: CheckStatus::parse(get_s(m, "status")?)?,
        since: time("since")?,
        last_run: time("last_run")?,
        detail: get_s(m, "detail").unwrap_or_default().to_owned(),
        severity: get_s(m, "severity")
            .and_then(|v| v.parse::<Severity>().ok())
            .unwrap_or(Severity::Medium),
        finding: get_s(m, "finding").and_then(|j| serde_json::from_str(j).ok()),
    })
}

impl CheckStateStore for DynamoDbCheckStateStore {
    async fn load(&self, check_id: &str) -> Result<Vec<CheckState>, PortError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(format!("AUDIT#{check_id}")))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            for item in page.items() {
                match state_of(check_id, item) {
                    Some(st) => out.push(st),
                    None => warn!(check_id, "skipping a malformed check state item"),
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn save(&self, states: &[CheckState]) -> Result<(), PortError> {
        for chunk in states.chunks(BATCH) {
            let mut requests: Vec<WriteRequest> = Vec::with_capacity(chunk.len());
            for st in chunk {
                let put = PutRequest::builder()
                    .set_item(Some(item_of(st)))
                    .build()
                    .map_err(|e| PortError::Permanent {
                        op: "BatchWriteItem",
                        message: e.to_string(),
                    })?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            let mut rounds = 0;
            while !requests.is_empty() {
                if rounds == UNPROCESSED_ROUNDS {
                    return Err(PortError::Transient {
                        op: "BatchWriteItem",
                        message: format!("{} items still unprocessed", requests.len()),
                    });
                }
                rounds += 1;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut requests))
                    .send()
                    .await
                    .map_err(|e| classify("BatchWriteItem", e))?;
                requests = out
                    .unprocessed_items()
                    .and_then(|m| m.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
                if !requests.is_empty() {
                    // back off before re-sending throttled items (50, 100, 200 ms ...)
                    let ms = 50u64 << rounds.min(6);
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                }
            }
        }
        Ok(())
    }

    async fn last_digest_date(&self) -> Result<Option<String>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(DIGEST_PK))
            .key("sk", s("last"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        Ok(out.item().and_then(|m| get_s(m, "date")).map(str::to_owned))
    }

    async fn set_last_digest_date(&self, date: &str) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(DIGEST_PK))
            .item("sk", s("last"))
            .item("date", s(date))
            .send()
            .await
            .map_err(|e| classify("PutItem", e))?;
        Ok(())
    }
}
