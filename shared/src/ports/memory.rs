//! In-memory ports: for unit tests and for the CLI (which stores nothing remotely).
//!
//! They follow the same contracts as the AWS adapters (a second put of the same finding is
//! a [`Put::Duplicate`]); each can be told to fail, to test the handlers' retry decisions.

use super::{
    Alert, FindingStore, GroupMark, Notifier, ObjectBody, ObjectSource, PortError, Put,
    StoredFinding,
};
use crate::findings::Finding;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

fn poisoned(op: &'static str) -> PortError {
    PortError::Permanent {
        op,
        message: "in-memory store lock poisoned".into(),
    }
}

type Objects = HashMap<(String, String), Arc<Vec<u8>>>;

/// Objects held in memory, keyed by (bucket, key).
#[derive(Debug, Default, Clone)]
pub struct MemObjectSource {
    objects: Arc<Mutex<Objects>>,
    fail_next: Arc<Mutex<Vec<PortError>>>,
}

impl MemObjectSource {
    /// Add an object.
    pub fn insert(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        if let Ok(mut m) = self.objects.lock() {
            m.insert((bucket.into(), key.into()), Arc::new(bytes));
        }
    }

    /// Make the next `open` calls fail with these errors, in order.
    pub fn fail_next(&self, errors: Vec<PortError>) {
        if let Ok(mut f) = self.fail_next.lock() {
            *f = errors;
        }
    }
}

struct SharedBytes(Arc<Vec<u8>>);
impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl ObjectSource for MemObjectSource {
    async fn open(&self, bucket: &str, key: &str) -> Result<ObjectBody, PortError> {
        {
            let mut f = self.fail_next.lock().map_err(|_| poisoned("GetObject"))?;
            if !f.is_empty() {
                return Err(f.remove(0));
            }
        }
        let m = self.objects.lock().map_err(|_| poisoned("GetObject"))?;
        let bytes = m
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
            .ok_or_else(|| PortError::NotFound {
                op: "GetObject",
                message: format!("s3://{bucket}/{key}"),
            })?;
        Ok(ObjectBody {
            size: Some(bytes.len() as u64),
            reader: Box::pin(std::io::Cursor::new(SharedBytes(bytes))),
        })
    }
}

/// One stored finding.
#[derive(Debug, Clone)]
struct MemItem {
    finding: Finding,
    alerted: bool,
    record_json: Option<String>,
    object_key: Option<String>,
    group_id: Option<String>,
    grouped: bool,
}

/// Findings held in memory, keyed by finding id.
#[derive(Debug, Default, Clone)]
pub struct MemFindingStore {
    items: Arc<Mutex<HashMap<String, MemItem>>>,
    fail_puts: Arc<AtomicUsize>,
}

impl MemFindingStore {
    /// All stored findings (sorted by id).
    pub fn findings(&self) -> Vec<Finding> {
        let mut v: Vec<Finding> = self
            .items
            .lock()
            .map(|m| m.values().map(|i| i.finding.clone()).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Whether the finding `id` is marked alerted.
    pub fn is_alerted(&self, id: &str) -> bool {
        self.items
            .lock()
            .map(|m| m.get(id).is_some_and(|i| i.alerted))
            .unwrap_or(false)
    }

    /// The record copy and object key stored with finding `id`.
    pub fn stored_context(&self, id: &str) -> Option<(Option<String>, Option<String>)> {
        let m = self.items.lock().ok()?;
        m.get(id)
            .map(|i| (i.record_json.clone(), i.object_key.clone()))
    }

    /// The alert group of finding `id` and whether it is a follower (`grouped`).
    pub fn group_of(&self, id: &str) -> Option<(String, bool)> {
        let m = self.items.lock().ok()?;
        let item = m.get(id)?;
        Some((item.group_id.clone()?, item.grouped))
    }

    /// Make the next `n` puts fail with a transient error (throttling).
    pub fn fail_next_puts(&self, n: usize) {
        self.fail_puts.store(n, Ordering::SeqCst);
    }
}

impl FindingStore for MemFindingStore {
    async fn put_stored(&self, item: StoredFinding<'_>) -> Result<Put, PortError> {
        if self
            .fail_puts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(PortError::Transient {
                op: "PutItem",
                message: "ProvisionedThroughputExceededException (injected)".into(),
            });
        }
        let mut m = self.items.lock().map_err(|_| poisoned("PutItem"))?;
        match m.get(&item.finding.id) {
            Some(old) => Ok(Put::Duplicate {
                alerted: old.alerted,
            }),
            None => {
                m.insert(
                    item.finding.id.clone(),
                    MemItem {
                        finding: item.finding.clone(),
                        alerted: false,
                        record_json: item.record_json.map(str::to_owned),
                        object_key: item.object_key.map(str::to_owned),
                        group_id: None,
                        grouped: false,
                    },
                );
                Ok(Put::Created)
            }
        }
    }

    async fn mark_alerted(&self, findings: &[&Finding]) -> Result<(), PortError> {
        let mut m = self.items.lock().map_err(|_| poisoned("UpdateItem"))?;
        for f in findings {
            if let Some(entry) = m.get_mut(&f.id) {
                entry.alerted = true;
            }
        }
        Ok(())
    }

    async fn mark_grouped(&self, marks: &[GroupMark<'_>]) -> Result<(), PortError> {
        let mut m = self.items.lock().map_err(|_| poisoned("UpdateItem"))?;
        for g in marks {
            if let Some(entry) = m.get_mut(&g.finding.id) {
                entry.alerted = true;
                entry.group_id = Some(g.group_id.to_owned());
                entry.grouped = g.follower;
            }
        }
        Ok(())
    }
}

/// Alerts collected in memory.
#[derive(Debug, Default, Clone)]
pub struct MemNotifier {
    sent: Arc<Mutex<Vec<Alert>>>,
    fail_publishes: Arc<AtomicUsize>,
}

impl MemNotifier {
    /// Every alert published so far.
    pub fn sent(&self) -> Vec<Alert> {
        self.sent.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Make the next `n` publish calls fail with a transient error.
    pub fn fail_next_publishes(&self, n: usize) {
        self.fail_publishes.store(n, Ordering::SeqCst);
    }
}

impl Notifier for MemNotifier {
    async fn publish(&self, alerts: &[Alert]) -> Result<(), PortError> {
        if self
            .fail_publishes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(PortError::Transient {
                op: "PublishBatch",
                message: "Throttling (injected)".into(),
            });
        }
        let mut v = self.sent.lock().map_err(|_| poisoned("PublishBatch"))?;
        v.extend(alerts.iter().cloned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Severity;
    use tokio::io::AsyncReadExt;

    fn finding(id: &str) -> Finding {
        Finding {
            episode_start: None,
            id: id.into(),
            rule_id: "r".into(),
            title: "t".into(),
            severity: Severity::High,
            tags: vec![],
            event_id: "e".into(),
            event_name: "StopLogging".into(),
            event_time: "2024-01-01T00:00:00Z".into(),
            event_source: "cloudtrail.amazonaws.com".into(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            source: "test".into(),
            principal: None,
            source_ip: None,
            error_code: None,
        }
    }

    #[tokio::test]
    async fn store_is_idempotent_and_remembers_alerting() {
        let s = MemFindingStore::default();
        let f = finding("a");
        assert_eq!(s.put(&f).await.unwrap(), Put::Created);
        assert_eq!(s.put(&f).await.unwrap(), Put::Duplicate { alerted: false });
        s.mark_alerted(&[&f]).await.unwrap();
        assert_eq!(s.put(&f).await.unwrap(), Put::Duplicate { alerted: true });
        s.fail_next_puts(1);
        assert!(s.put(&f).await.unwrap_err().is_retryable());
        assert_eq!(s.findings().len(), 1);
    }

    #[tokio::test]
    async fn object_source_streams_and_reports_missing() {
        let src = MemObjectSource::default();
        src.insert("b", "k", b"hello".to_vec());
        let mut body = src.open("b", "k").await.unwrap();
        let mut s = String::new();
        body.reader.read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "hello");
        let err = src.open("b", "nope").await.unwrap_err();
        assert!(matches!(err, PortError::NotFound { .. }) && !err.is_retryable());
    }
}
