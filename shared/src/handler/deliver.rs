//! Delivery of findings, shared by the log-processor and the event-handler: store each
//! finding once, alert the ones not alerted yet, then mark them alerted.
//!
//! The order makes retries safe. Puts are conditional (a second put is a
//! `Duplicate { alerted }`), so a retried invocation stores nothing twice; a finding is
//! marked alerted only after its alert was published, so a publish that failed is retried
//! by the next delivery of the same finding, and one that succeeded is not repeated. The
//! remaining window (published, then crashed before `mark_alerted`) can send one alert
//! twice: at-least-once, never lost. Alerts carry the finding id for deduplication.
//!
//! Errors: any transient failure returns `Err` (the caller retries the invocation);
//! permanent ones (validation, access denied) are logged once here and counted in the
//! report and an EMF metric: retrying would not fix them.

use crate::findings::alert;
use crate::metrics::{self, Unit};
use crate::ports::{FindingStore, Notifier, PortError, Put, StoredFinding};
use crate::Config;
use futures::stream::{self, StreamExt};

/// What one delivery did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Findings stored for the first time.
    pub created: usize,
    /// Findings already stored.
    pub duplicates: usize,
    /// Alerts published (a flood summary counts once).
    pub alerts: usize,
    /// Findings marked alerted.
    pub marked: usize,
    /// Findings that could not be stored for a permanent reason.
    pub store_failures: usize,
    /// Alerts that could not be published for a permanent reason.
    pub publish_failures: usize,
}

/// Store `findings` (at most `cfg.max_in_flight` puts in flight), publish alerts for the
/// new and not-yet-alerted ones, then mark those alerted.
///
/// # Errors
/// The first transient [`PortError`] (always retryable); permanent failures are logged and
/// counted in the report instead.
pub async fn deliver<S: FindingStore, N: Notifier>(
    cfg: &Config,
    store: &S,
    notifier: &N,
    findings: &[StoredFinding<'_>],
) -> Result<DeliveryReport, PortError> {
    let mut report = DeliveryReport::default();
    if findings.is_empty() {
        return Ok(report);
    }
    let results: Vec<(usize, Result<Put, PortError>)> = stream::iter(findings.iter().enumerate())
        .map(|(i, sf)| async move { (i, store.put_stored(*sf).await) })
        .buffer_unordered(cfg.max_in_flight.get())
        .collect()
        .await;
    let mut pending = Vec::new();
    let mut transient = None;
    // keep input order so alerts (and flood grouping) do not depend on completion order
    let mut results = results;
    results.sort_by_key(|(i, _)| *i);
    for (i, r) in results {
        let Some(sf) = findings.get(i) else { continue };
        match r {
            Ok(Put::Created) => {
                report.created += 1;
                pending.push(sf.finding);
            }
            Ok(Put::Duplicate { alerted }) => {
                report.duplicates += 1;
                if !alerted {
                    pending.push(sf.finding);
                }
            }
            Err(e) if e.is_retryable() => {
                transient.get_or_insert(e);
            }
            Err(e) => {
                report.store_failures += 1;
                tracing::error!(finding_id = %sf.finding.id, rule_id = %sf.finding.rule_id, error = %e, "storing finding failed permanently");
            }
        }
    }
    // alert what was stored even when some puts must be retried: the retry's puts find
    // them alerted and do not alert again
    let plan = alert::plan(cfg, &pending);
    if !plan.alerts.is_empty() {
        match notifier.publish(&plan.alerts).await {
            Ok(()) => {
                report.alerts = plan.alerts.len();
                store.mark_alerted(&plan.covered).await?;
                report.marked = plan.covered.len();
            }
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => {
                report.publish_failures = plan.alerts.len();
                tracing::error!(alerts = plan.alerts.len(), error = %e, "publishing alerts failed permanently");
            }
        }
    }
    if report.store_failures + report.publish_failures > 0 {
        metrics::emit(
            &[("Function", "deliver")],
            &[
                ("StoreFailures", report.store_failures as f64, Unit::Count),
                (
                    "PublishFailures",
                    report.publish_failures as f64,
                    Unit::Count,
                ),
            ],
        );
    }
    match transient {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{finding_id, Finding, Severity};
    use crate::ports::memory::{MemFindingStore, MemNotifier};

    fn finding(event: &str, sev: Severity) -> Finding {
        Finding {
            id: finding_id("r", event),
            rule_id: "r".into(),
            title: "Rule".into(),
            severity: sev,
            tags: vec![],
            event_id: event.into(),
            event_name: "StopLogging".into(),
            event_time: "2024-01-01T00:00:00Z".into(),
            event_source: "cloudtrail.amazonaws.com".into(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            source: "s3://b/k".into(),
            principal: Some(format!("p-{event}")),
            source_ip: None,
            error_code: None,
        }
    }

    fn cfg() -> Config {
        Config::new("t", "arn:aws:sns:us-east-1:111122223333:a")
    }

    fn stored(fs: &[Finding]) -> Vec<StoredFinding<'_>> {
        fs.iter()
            .map(|f| StoredFinding {
                finding: f,
                record_json: Some(r#"{"eventID":"x"}"#),
                object_key: Some("k"),
            })
            .collect()
    }

    #[tokio::test]
    async fn delivering_twice_stores_and_alerts_once() {
        let (store, notifier) = (MemFindingStore::default(), MemNotifier::default());
        let fs = vec![
            finding("a", Severity::High),
            finding("b", Severity::Critical),
            finding("c", Severity::Info),
        ];
        let r = deliver(&cfg(), &store, &notifier, &stored(&fs))
            .await
            .unwrap();
        assert_eq!((r.created, r.duplicates, r.alerts, r.marked), (3, 0, 2, 2));
        assert_eq!(store.findings().len(), 3);
        assert!(store.is_alerted(&fs[0].id) && !store.is_alerted(&fs[2].id));
        assert_eq!(
            store.stored_context(&fs[0].id),
            Some((Some(r#"{"eventID":"x"}"#.into()), Some("k".into())))
        );
        let sent = notifier.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].severity, Severity::Critical);

        let r = deliver(&cfg(), &store, &notifier, &stored(&fs))
            .await
            .unwrap();
        assert_eq!((r.created, r.duplicates, r.alerts), (0, 3, 0));
        assert_eq!(notifier.sent().len(), 2);
    }

    #[tokio::test]
    async fn failed_publish_is_retried_by_the_next_delivery() {
        let (store, notifier) = (MemFindingStore::default(), MemNotifier::default());
        let fs = vec![finding("a", Severity::High)];
        notifier.fail_next_publishes(1);
        let e = deliver(&cfg(), &store, &notifier, &stored(&fs))
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(store.findings().len(), 1);
        assert!(!store.is_alerted(&fs[0].id) && notifier.sent().is_empty());

        let r = deliver(&cfg(), &store, &notifier, &stored(&fs))
            .await
            .unwrap();
        assert_eq!((r.created, r.duplicates, r.alerts, r.marked), (0, 1, 1, 1));
        assert!(store.is_alerted(&fs[0].id));
        assert_eq!(notifier.sent().len(), 1);
    }

    #[tokio::test]
    async fn throttled_put_is_retryable_but_the_rest_is_delivered() {
        let (store, notifier) = (MemFindingStore::default(), MemNotifier::default());
        let mut c = cfg();
        c.max_in_flight = std::num::NonZeroUsize::MIN; // deterministic order of puts
        let fs = vec![finding("a", Severity::High), finding("b", Severity::High)];
        store.fail_next_puts(1);
        let e = deliver(&c, &store, &notifier, &stored(&fs))
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(store.findings().len(), 1);
        assert_eq!(notifier.sent().len(), 1);
        let r = deliver(&c, &store, &notifier, &stored(&fs)).await.unwrap();
        assert_eq!((r.created, r.duplicates, r.alerts), (1, 1, 1));
        assert_eq!(notifier.sent().len(), 2);
    }
}
