//! The event-handler: EventBridge CloudTrail events (one per invocation, or an SQS batch of
//! them) → the same rules and findings as the log-processor → store + alert, then opt-in
//! remediation.
//!
//! Same evaluation as the S3 path: [`Evaluator`] over [`Record::from_value`] of `detail`,
//! findings with `source = "eventbridge"` and ids per (rule, `eventID`), delivered through
//! [`deliver`], so a record seen on both paths is stored and alerted once.
//!
//! The retry decision: transient failures (store, notify, remediate) → `Err` for a single
//! event (Lambda's async retries, then the on-failure queue), or the message's id in
//! `batchItemFailures` for an SQS batch. Malformed events (no `detail`, `detail` not an
//! object, a body that is not JSON) → one `error!` naming the event, the `BadEvents`
//! metric, `Ok`. Events that are not CloudTrail records (another detail-type) → `warn!`,
//! `Ok`. This module never logs `requestParameters`/`responseElements` or bodies.
//!
//! Correlations: each record's matched rules are observed and flushed at once
//! ([`correlate::observe`]); a retryable state failure is an `Err` (the redelivery repeats
//! idempotent updates and yields the same deterministic finding ids), a permanent one is
//! logged and counted. Every finding goes through the allow-list ([`suppress::mark`])
//! before delivery: suppressed findings are stored, never alerted. Delivery groups alerts
//! across invocations and with the log-processor in the same state ([`deliver`]).

use crate::config::Config;
use crate::correlate::{self, CorrelateError, Correlator};
use crate::detect::RuleSet;
use crate::findings::Finding;
use crate::handler::deliver::deliver;
use crate::metrics::{self, Unit};
use crate::model::{classify_detail_type, DetailType, Record};
use crate::pipeline::Evaluator;
use crate::ports::remediate::{FindingLookup, Remediator};
use crate::ports::state::CorrelationState;
use crate::ports::{FindingStore, Notifier, PortError, StoredFinding};
use crate::remediate::{remediate, Applied, RemediateError};
use crate::suppress::{self, AllowList};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// `Finding::source` of every finding this handler produces.
pub const SOURCE: &str = "eventbridge";

/// The `Function` dimension of this handler's metrics.
const FUNCTION: &str = "event-handler";

/// Everything one invocation needs, built once per cold start and borrowed.
pub struct EventHandler<'a, S, N, R, C> {
    /// Configuration.
    pub cfg: &'a Config,
    /// The rule pack, loaded once.
    pub rules: &'a RuleSet,
    /// Where findings (and remediation records) are stored.
    pub store: &'a S,
    /// Where alerts go.
    pub notifier: &'a N,
    /// The remediator, present only when some remediation is switched on; its
    /// [`FindingLookup`] reads the findings table `store` writes to.
    pub remediator: Option<&'a R>,
    /// The correlations of `rules`, prepared once.
    pub correlator: &'a Correlator,
    /// Where correlation state lives.
    pub state: &'a C,
    /// The allow-list, when `ALLOWLIST_FILE` is set.
    pub allowlist: Option<&'a AllowList>,
}

/// Why an event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum EventHandlerError {
    /// Storing or alerting its findings failed.
    #[error("event {event_id}: delivering {findings} findings")]
    Deliver {
        /// The record's `eventID`.
        event_id: String,
        /// How many findings were being delivered.
        findings: usize,
        /// The port error.
        #[source]
        source: PortError,
    },
    /// Remediation failed transiently.
    #[error("event {event_id}: remediation")]
    Remediate {
        /// The record's `eventID`.
        event_id: String,
        /// What failed.
        #[source]
        source: RemediateError,
    },
    /// Updating the correlation state failed.
    #[error("event {event_id}: correlation state")]
    Correlate {
        /// The record's `eventID`.
        event_id: String,
        /// What failed.
        #[source]
        source: CorrelateError,
    },
}

impl EventHandlerError {
    /// Whether retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Deliver { source, .. } => source.is_retryable(),
            Self::Remediate { source, .. } => source.is_retryable(),
            Self::Correlate { source, .. } => source.is_retryable(),
        }
    }
}

#[cfg(feature = "aws")]
impl From<EventHandlerError> for lambda_runtime::Diagnostic {
    /// Only retryable errors reach Lambda (permanent ones are settled as `Ok`); the type
    /// names the failed step, the message carries the whole chain.
    fn from(e: EventHandlerError) -> Self {
        let error_type = match &e {
            EventHandlerError::Deliver { .. } => "Retryable.Deliver",
            EventHandlerError::Remediate { .. } => "Retryable.Remediate",
            EventHandlerError::Correlate { .. } => "Retryable.Correlate",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: chain(&e),
        }
    }
}

/// The rule pack could not be loaded (every error, with file and line).
#[derive(Debug, thiserror::Error)]
#[error("loading rules from {from}: {}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct RulesError {
    /// The directory, or `the bundled pack`.
    pub from: String,
    /// Every load error.
    pub errors: Vec<crate::detect::LoadError>,
}

/// Load the rules once per cold start: `cfg.rules_dir` when set, else the bundled pack.
///
/// # Errors
/// [`RulesError`] listing every rule that failed to load (the function must not run with
/// a partial pack).
pub fn load_rules(cfg: &Config) -> Result<RuleSet, RulesError> {
    let (from, loaded) = match &cfg.rules_dir {
        Some(dir) => (dir.display().to_string(), RuleSet::from_dir(dir)),
        None => ("the bundled pack".to_owned(), RuleSet::bundled()),
    };
    let rules = loaded.map_err(|errors| RulesError {
        from: from.clone(),
        errors,
    })?;
    for w in rules.warnings() {
        tracing::warn!(warning = %w, "rule load warning");
    }
    tracing::info!(rules = rules.rules().len(), from, "rules loaded");
    Ok(rules)
}

/// What one event produced.
#[derive(Debug, Clone, PartialEq)]
pub enum EventOutcome {
    /// A CloudTrail record was evaluated; `findings` were delivered (detections first,
    /// then the remediation record if any).
    Evaluated {
        /// The record's `eventID`.
        event_id: String,
        /// Every finding delivered (new or already stored).
        findings: Vec<Finding>,
        /// Whether a remediation (or dry run, or recorded failure) happened now.
        remediated: bool,
    },
    /// Not a CloudTrail event (another detail-type): ignored.
    Skipped {
        /// The detail-type.
        detail_type: String,
    },
    /// Malformed: logged once, counted, not retried.
    Bad {
        /// The EventBridge event id (or SQS message id) when known.
        id: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// A permanent failure while delivering or remediating: logged, not retried.
    Failed {
        /// The record's `eventID`.
        event_id: String,
        /// The error.
        reason: String,
    },
    /// Not started before the deadline: retried (SQS batches only).
    Deferred,
}

/// One failed SQS message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchItemFailure {
    /// The SQS `messageId`.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// The invocation's answer: `batchItemFailures` (empty for a single event) for Lambda,
/// plus per-event outcomes for callers and tests (not serialised).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Response {
    /// SQS messages to retry.
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
    /// What each event (or message, in order) produced.
    #[serde(skip)]
    pub outcomes: Vec<EventOutcome>,
}

/// Whether `payload` is an SQS event (`Records[]` of messages with `body`).
fn is_sqs_batch(payload: &Value) -> bool {
    payload
        .get("Records")
        .and_then(Value::as_array)
        .is_some_and(|rs| {
            rs.iter().all(|r| {
                r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs")
                    || (r.get("body").is_some() && r.get("messageId").is_some())
            })
        })
}

impl<S, N, R, C> EventHandler<'_, S, N, R, C>
where
    S: FindingStore,
    N: Notifier,
    R: Remediator + FindingLookup,
    C: CorrelationState,
{
    /// Handle one invocation: a single EventBridge event or an SQS batch of them.
    /// `deadline` is the Lambda deadline; batch messages not started `deadline_margin_ms`
    /// before it are returned for retry.
    ///
    /// # Errors
    /// [`EventHandlerError`] when a single event failed transiently (retry the invocation).
    /// Batches never fail as a whole: failed messages are in `batchItemFailures`.
    pub async fn handle(
        &self,
        payload: &Value,
        deadline: Option<SystemTime>,
    ) -> Result<Response, EventHandlerError> {
        let mut resp = Response::default();
        if is_sqs_batch(payload) {
            let messages = payload
                .get("Records")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let budget =
                super::Budget::start(deadline, Duration::from_millis(self.cfg.deadline_margin_ms));
            let budget = &budget;
            let results: Vec<(String, Result<EventOutcome, EventHandlerError>)> =
                futures::stream::iter(messages.iter().enumerate())
                    .map(|(i, m)| async move {
                        let id = m
                            .get("messageId")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .unwrap_or_else(|| format!("#{i}"));
                        if !budget.has_time() {
                            return (id, Ok(EventOutcome::Deferred));
                        }
                        let outcome = self.handle_message(&id, m).await;
                        (id, outcome)
                    })
                    .buffered(self.cfg.max_in_flight.get())
                    .collect()
                    .await;
            let mut deferred = 0usize;
            for (id, result) in results {
                match settle(result) {
                    Ok(EventOutcome::Deferred) => {
                        deferred += 1;
                        resp.batch_item_failures.push(BatchItemFailure {
                            item_identifier: id,
                        });
                        resp.outcomes.push(EventOutcome::Deferred);
                    }
                    Ok(o) => resp.outcomes.push(o),
                    Err(e) => {
                        tracing::warn!(message_id = id, error = %chain(&e), "message will be retried");
                        resp.batch_item_failures.push(BatchItemFailure {
                            item_identifier: id,
                        });
                    }
                }
            }
            if deferred > 0 {
                tracing::warn!(deferred, "deadline near: messages left for retry");
            }
        } else {
            match settle(self.handle_event(payload).await) {
                Ok(outcome) => resp.outcomes.push(outcome),
                Err(e) => {
                    tracing::warn!(error = %chain(&e), "event will be retried");
                    return Err(e);
                }
            }
        }
        emit_metrics(&resp);
        Ok(resp)
    }

    async fn handle_message(
        &self,
        message_id: &str,
        message: &Value,
    ) -> Result<EventOutcome, EventHandlerError> {
        let body = message.get("body").and_then(Value::as_str);
        match body.map(serde_json::from_str::<Value>) {
            Some(Ok(event)) => self.handle_event(&event).await,
            Some(Err(e)) => Ok(bad(Some(message_id), format!("body is not JSON: {e}"))),
            None => Ok(bad(Some(message_id), "message has no string body".into())),
        }
    }

    /// Handle one EventBridge event.
    ///
    /// # Errors
    /// [`EventHandlerError`] when delivering or remediating failed (retryable or not; see
    /// [`EventHandlerError::is_retryable`]).
    #[tracing::instrument(skip_all, fields(eventbridge_id = tracing::field::Empty))]
    pub async fn handle_event(&self, event: &Value) -> Result<EventOutcome, EventHandlerError> {
        let id = event.get("id").and_then(Value::as_str);
        if let Some(id) = id {
            tracing::Span::current().record("eventbridge_id", id);
        }
        let detail_type = event.get("detail-type").and_then(Value::as_str);
        let detail = event.get("detail");
        let Some(detail) = detail.filter(|d| d.is_object()) else {
            let why = match detail {
                None => "event has no detail",
                Some(_) => "event detail is not an object",
            };
            return Ok(bad(id, why.into()));
        };
        let kind = classify_detail_type(detail_type, Some(detail));
        if let DetailType::Other(dt) = kind {
            tracing::warn!(
                event_id = id,
                detail_type = dt,
                "not a CloudTrail event, ignored"
            );
            return Ok(EventOutcome::Skipped { detail_type: dt });
        }
        let record = match Record::from_value(detail) {
            Ok(r) => r,
            Err(e) => return Ok(bad(id, format!("detail is not a CloudTrail record: {e}"))),
        };
        let event_id = record.event_id_or_digest();
        let mut findings = Vec::new();
        let mut eval = Evaluator::new(self.rules);
        eval.evaluate(&record, SOURCE, &mut findings);
        let detections = findings.len();
        if !eval.matched().is_empty() {
            match correlate::observe(self.state, self.correlator, &record, eval.matched(), SOURCE)
                .await
            {
                Ok(found) => findings.extend(found),
                Err(source) if source.is_retryable() => {
                    return Err(EventHandlerError::Correlate { event_id, source });
                }
                Err(e) => {
                    tracing::error!(event_id, error = %chain(&e), "correlation state update failed permanently; correlations of this event skipped");
                    metrics::emit(
                        &[("Function", FUNCTION)],
                        &[("CorrelationErrors", 1.0, Unit::Count)],
                    );
                }
            }
        }

        let mut pending = None;
        let mut remediated = false;
        if let Some(r) = self.remediator {
            match remediate(self.cfg, r, r, &record, SOURCE).await {
                Ok(Applied::Recorded(f)) => {
                    remediated = true;
                    findings.push(*f);
                }
                Ok(Applied::NotApplicable | Applied::AlreadyRecorded) => {}
                // deliver the detections first: they are worth alerting even if the
                // remediation has to be retried
                Err(e) => pending = Some(e),
            }
        }
        if let Some(list) = self.allowlist {
            let now = time::OffsetDateTime::now_utc();
            for f in &mut findings {
                if let Some(entry) = suppress::mark(list, f, record.str_field("userAgent"), now) {
                    tracing::info!(event_id, rule_id = %f.rule_id, entry = %entry.id, "finding suppressed by the allow-list");
                }
            }
        }
        if !findings.is_empty() {
            let stored: Vec<StoredFinding<'_>> = findings
                .iter()
                .map(|finding| StoredFinding {
                    finding,
                    record_json: Some(record.as_json()),
                    object_key: None,
                })
                .collect();
            deliver(self.cfg, self.store, self.notifier, self.state, &stored)
                .await
                .map_err(|source| EventHandlerError::Deliver {
                    event_id: event_id.clone(),
                    findings: findings.len(),
                    source,
                })?;
        }
        if let Some(source) = pending {
            return Err(EventHandlerError::Remediate { event_id, source });
        }
        if detections > 0 || remediated {
            let rule_ids: Vec<&str> = findings.iter().map(|f| f.rule_id.as_str()).collect();
            tracing::info!(
                event_id,
                ?kind,
                findings = findings.len(),
                ?rule_ids,
                remediated,
                "event evaluated"
            );
        } else {
            tracing::debug!(event_id, ?kind, "event evaluated, no findings");
        }
        Ok(EventOutcome::Evaluated {
            event_id,
            findings,
            remediated,
        })
    }
}

/// Turn permanent errors into a logged, counted `Ok`; keep retryable ones.
fn settle(
    result: Result<EventOutcome, EventHandlerError>,
) -> Result<EventOutcome, EventHandlerError> {
    match result {
        Err(e) if !e.is_retryable() => {
            let event_id = match &e {
                EventHandlerError::Deliver { event_id, .. }
                | EventHandlerError::Remediate { event_id, .. }
                | EventHandlerError::Correlate { event_id, .. } => event_id.clone(),
            };
            tracing::error!(event_id, error = %chain(&e), "permanent failure, not retried");
            Ok(EventOutcome::Failed {
                event_id,
                reason: chain(&e),
            })
        }
        other => other,
    }
}

/// An error and its sources, `: `-joined (one log line says everything).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Log a malformed event once and describe it.
fn bad(id: Option<&str>, reason: String) -> EventOutcome {
    tracing::error!(event_id = id, reason, "malformed event, not retried");
    EventOutcome::Bad {
        id: id.map(str::to_owned),
        reason,
    }
}

fn emit_metrics(resp: &Response) {
    let (mut events, mut findings, mut bad_events, mut failed, mut remediations, mut skipped) =
        (0u32, 0u32, 0u32, 0u32, 0u32, 0u32);
    for o in &resp.outcomes {
        match o {
            EventOutcome::Evaluated {
                findings: f,
                remediated,
                ..
            } => {
                events += 1;
                findings += u32::try_from(f.len()).unwrap_or(u32::MAX);
                remediations += u32::from(*remediated);
            }
            EventOutcome::Skipped { .. } => skipped += 1,
            EventOutcome::Bad { .. } => bad_events += 1,
            EventOutcome::Failed { .. } => failed += 1,
            EventOutcome::Deferred => {}
        }
    }
    metrics::emit(
        &[("Function", FUNCTION)],
        &[
            ("Events", f64::from(events), Unit::Count),
            ("Findings", f64::from(findings), Unit::Count),
            ("BadEvents", f64::from(bad_events), Unit::Count),
            ("FailedEvents", f64::from(failed), Unit::Count),
            ("Remediations", f64::from(remediations), Unit::Count),
            ("SkippedEvents", f64::from(skipped), Unit::Count),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::{MemFindingStore, MemNotifier};
    use crate::ports::memory_state::MemCorrelationState;
    use crate::ports::remediate::{Call, MemRemediator};
    use serde_json::json;
    use std::path::PathBuf;
    use std::sync::OnceLock;

    const OWN: &str =
        "arn:aws:sts::111122223333:assumed-role/tw-EventHandlerRole-X1/tw-event-handler";

    fn rules() -> &'static RuleSet {
        static RULES: OnceLock<RuleSet> = OnceLock::new();
        RULES.get_or_init(|| RuleSet::bundled().unwrap())
    }

    fn cfg() -> Config {
        let mut c = Config::new("findings", "arn:aws:sns:us-east-1:111122223333:alerts");
        c.trail_name = Some("trailwatch-trail".into());
        c.trail_bucket = Some("trailwatch-trail-bucket".into());
        c.remediation.protected_trails = vec!["trailwatch-trail".into()];
        c
    }

    struct World {
        cfg: Config,
        store: MemFindingStore,
        notifier: MemNotifier,
        remediator: Option<MemRemediator>,
        correlator: Correlator,
        state: MemCorrelationState,
        allowlist: Option<AllowList>,
    }

    impl World {
        fn new(cfg: Config) -> World {
            let store = MemFindingStore::default();
            let remediator = crate::remediate::is_enabled(&cfg.remediation)
                .then(|| MemRemediator::new(OWN).with_ledger(store.clone()));
            World {
                cfg,
                store,
                notifier: MemNotifier::default(),
                remediator,
                correlator: Correlator::new(rules()).leaving_out_ratios().0,
                state: MemCorrelationState::default(),
                allowlist: None,
            }
        }

        fn handler(
            &self,
        ) -> EventHandler<'_, MemFindingStore, MemNotifier, MemRemediator, MemCorrelationState>
        {
            EventHandler {
                cfg: &self.cfg,
                rules: rules(),
                store: &self.store,
                notifier: &self.notifier,
                remediator: self.remediator.as_ref(),
                correlator: &self.correlator,
                state: &self.state,
                allowlist: self.allowlist.as_ref(),
            }
        }
    }

    fn events_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
    }

    fn sample(name: &str) -> Value {
        let text = std::fs::read_to_string(events_dir().join(name)).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn rule_ids(o: &EventOutcome) -> Vec<&str> {
        match o {
            EventOutcome::Evaluated { findings, .. } => {
                findings.iter().map(|f| f.rule_id.as_str()).collect()
            }
            other => panic!("expected an evaluated event, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn every_sample_event_goes_through_the_dispatcher() {
        let mut seen = 0;
        for entry in std::fs::read_dir(events_dir()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !(name.starts_with("event-handler-") && name.ends_with(".json")) {
                continue;
            }
            seen += 1;
            let w = World::new(cfg());
            let resp = w.handler().handle(&sample(&name), None).await.unwrap();
            assert!(resp.batch_item_failures.is_empty(), "{name}");
            let o = &resp.outcomes;
            match name.as_str() {
                "event-handler-api-call.json" => {
                    assert!(
                        rule_ids(&o[0]).contains(&"tw-cloudtrail-stop-logging"),
                        "{o:?}"
                    )
                }
                "event-handler-console-signin.json" => {
                    assert!(
                        rule_ids(&o[0]).contains(&"tw-console-login-without-mfa"),
                        "{o:?}"
                    )
                }
                "event-handler-service-event.json" | "event-handler-insight.json" => {
                    assert_eq!(o.len(), 1);
                    assert!(
                        matches!(o[0], EventOutcome::Evaluated { .. }),
                        "{name}: {o:?}"
                    );
                }
                "event-handler-sqs-batch.json" => {
                    assert_eq!(o.len(), 3, "{o:?}");
                    assert!(rule_ids(&o[0]).contains(&"tw-s3-public-access-block-removed"));
                    assert!(rule_ids(&o[1]).contains(&"tw-console-login-without-mfa"));
                    assert!(matches!(&o[2], EventOutcome::Skipped { detail_type }
                        if detail_type == "EC2 Instance State-change Notification"));
                }
                "event-handler-unknown.json" => {
                    assert!(matches!(&o[..], [EventOutcome::Skipped { .. }]), "{o:?}")
                }
                other => panic!("no expectation for sample {other}"),
            }
            for f in w.store.findings() {
                assert_eq!(f.source, "eventbridge");
                assert!(w.store.is_alerted(&f.id) || f.severity < w.cfg.min_alert_severity);
            }
        }
        assert_eq!(
            seen,
            6,
            "sample events missing from {}",
            events_dir().display()
        );
    }

    #[test]
    fn rules_load_from_the_configured_dir_or_fail_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("broken.yml"), "title: [unclosed\n").unwrap();
        let mut c = cfg();
        c.rules_dir = Some(dir.path().to_path_buf());
        let e = load_rules(&c).unwrap_err();
        assert!(e.to_string().contains("broken.yml"), "{e}");
        c.rules_dir = None;
        assert!(load_rules(&c).unwrap().rules().len() > 50);
    }

    #[tokio::test]
    async fn findings_match_the_record_and_deduplicate() {
        let w = World::new(cfg());
        let ev = sample("event-handler-api-call.json");
        let resp = w.handler().handle(&ev, None).await.unwrap();
        let EventOutcome::Evaluated {
            event_id,
            findings,
            remediated,
        } = &resp.outcomes[0]
        else {
            panic!("{resp:?}")
        };
        assert_eq!(event_id, "0d3c5a1e-7f2b-4c9d-8e6a-3b4c5d6e7f80");
        assert!(!remediated);
        let stop = findings
            .iter()
            .find(|f| f.rule_id == "tw-cloudtrail-stop-logging")
            .unwrap();
        assert_eq!(
            stop.id,
            crate::findings::finding_id("tw-cloudtrail-stop-logging", event_id)
        );
        assert_eq!(
            stop.principal.as_deref(),
            Some("arn:aws:iam::111122223333:user/mallory")
        );
        let (stored, sent) = (w.store.findings().len(), w.notifier.sent().len());
        assert_eq!(stored, findings.len());
        assert!(sent >= 1);
        // the same event again (EventBridge delivers at least once): nothing new
        w.handler().handle(&ev, None).await.unwrap();
        assert_eq!(w.store.findings().len(), stored);
        assert_eq!(w.notifier.sent().len(), sent);
    }

    #[tokio::test]
    async fn malformed_events_are_logged_not_retried() {
        let w = World::new(cfg());
        let h = w.handler();
        for (ev, why) in [
            (
                json!({"id": "a", "detail-type": "AWS API Call via CloudTrail", "source": "aws.iam"}),
                "no detail",
            ),
            (
                json!({"id": "b", "detail-type": "AWS API Call via CloudTrail", "source": "aws.iam", "detail": "x"}),
                "not an object",
            ),
            (json!([1, 2]), "no detail"),
        ] {
            let resp = h.handle(&ev, None).await.unwrap();
            match &resp.outcomes[..] {
                [EventOutcome::Bad { reason, .. }] => assert!(reason.contains(why), "{reason}"),
                other => panic!("{other:?}"),
            }
        }
        let batch = json!({"Records": [
            {"messageId": "m1", "eventSource": "aws:sqs", "body": "{not json"},
            {"messageId": "m2", "eventSource": "aws:sqs", "body": "{\"id\":\"c\",\"detail-type\":\"AWS API Call via CloudTrail\"}"}
        ]});
        let resp = h.handle(&batch, None).await.unwrap();
        assert!(resp.batch_item_failures.is_empty());
        match &resp.outcomes[..] {
            [EventOutcome::Bad { id: Some(a), .. }, EventOutcome::Bad { id: Some(b), .. }] => {
                assert_eq!((a.as_str(), b.as_str()), ("m1", "c"));
            }
            other => panic!("{other:?}"),
        }
        assert!(w.store.findings().is_empty());
    }

    #[tokio::test]
    async fn transient_failures_are_retried_single_and_batched() {
        let w = World::new(cfg());
        let ev = sample("event-handler-api-call.json");
        w.store.fail_next_puts(1);
        let e = w.handler().handle(&ev, None).await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        w.notifier.fail_next_publishes(1);
        assert!(w
            .handler()
            .handle(&ev, None)
            .await
            .unwrap_err()
            .is_retryable());
        // the retry succeeds and alerts what the failed attempts did not
        w.handler().handle(&ev, None).await.unwrap();
        let n = w.notifier.sent().len();
        assert!(n >= 1);
        assert!(w.store.findings().iter().all(|f| w.store.is_alerted(&f.id)));

        let w = World::new(cfg());
        let batch = sample("event-handler-sqs-batch.json");
        w.store.fail_next_puts(1);
        let resp = w.handler().handle(&batch, None).await.unwrap();
        assert_eq!(
            resp.batch_item_failures,
            [BatchItemFailure {
                item_identifier: "059f36b4-87a3-44ab-83d2-661975830a7d".into()
            }]
        );
        assert_eq!(
            serde_json::to_value(&resp).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d"}]})
        );
    }

    #[tokio::test]
    async fn a_short_timeout_still_handles_its_batch() {
        // Lambda's default 3 s timeout is below the default 10 s reserve: the reserve shrinks
        // to a quarter of the time left instead of deferring every message
        let w = World::new(cfg());
        let batch = sample("event-handler-sqs-batch.json");
        let resp = w
            .handler()
            .handle(&batch, Some(SystemTime::now() + Duration::from_secs(3)))
            .await
            .unwrap();
        assert!(resp.batch_item_failures.is_empty());
        assert!(!w.store.findings().is_empty());
    }

    #[tokio::test]
    async fn deadline_defers_the_rest_of_a_batch() {
        let w = World::new(cfg());
        let batch = sample("event-handler-sqs-batch.json");
        let resp = w
            .handler()
            .handle(&batch, Some(SystemTime::now()))
            .await
            .unwrap();
        assert_eq!(resp.batch_item_failures.len(), 3);
        assert!(w.store.findings().is_empty());
    }

    fn remediating() -> Config {
        let mut c = cfg();
        c.remediation.start_logging = true;
        c.remediation.public_access_block = true;
        c
    }

    #[tokio::test]
    async fn remediation_runs_once_and_is_alerted() {
        let w = World::new(remediating());
        let ev = sample("event-handler-api-call.json");
        let resp = w.handler().handle(&ev, None).await.unwrap();
        let rem = w.remediator.as_ref().unwrap();
        assert_eq!(rem.calls(), [Call::StartLogging("trailwatch-trail".into())]);
        assert!(rule_ids(&resp.outcomes[0]).contains(&"tw-remediation-start-logging"));
        let alert = w
            .notifier
            .sent()
            .into_iter()
            .find(|a| a.rule_id == "tw-remediation-start-logging")
            .unwrap();
        assert!(
            alert
                .body
                .contains("logging restarted on trail trailwatch-trail"),
            "{}",
            alert.body
        );
        let sent = w.notifier.sent().len();
        // duplicate delivery: no second StartLogging, no second alert
        w.handler().handle(&ev, None).await.unwrap();
        assert_eq!(rem.calls().len(), 1);
        assert_eq!(w.notifier.sent().len(), sent);
    }

    #[tokio::test]
    async fn remediation_retry_keeps_detections_alerted() {
        let w = World::new(remediating());
        let ev = sample("event-handler-api-call.json");
        let rem = w.remediator.as_ref().unwrap();
        rem.fail_next(vec![PortError::Transient {
            op: "StartLogging",
            message: "Throttling".into(),
        }]);
        let e = w.handler().handle(&ev, None).await.unwrap_err();
        assert!(matches!(e, EventHandlerError::Remediate { .. }) && e.is_retryable());
        // the detection was alerted anyway
        assert!(w
            .notifier
            .sent()
            .iter()
            .any(|a| a.rule_id == "tw-cloudtrail-stop-logging"));
        w.handler().handle(&ev, None).await.unwrap();
        assert_eq!(rem.calls(), [Call::StartLogging("trailwatch-trail".into())]);
        let stop_alerts = w
            .notifier
            .sent()
            .iter()
            .filter(|a| a.rule_id == "tw-cloudtrail-stop-logging")
            .count();
        assert_eq!(stop_alerts, 1);
    }

    #[tokio::test]
    async fn permanent_remediation_failure_is_alerted_not_retried() {
        let w = World::new(remediating());
        let rem = w.remediator.as_ref().unwrap();
        rem.fail_next(vec![PortError::Permanent {
            op: "PutPublicAccessBlock",
            message: "AccessDenied: Access Denied".into(),
        }]);
        let batch = sample("event-handler-sqs-batch.json");
        let resp = w.handler().handle(&batch, None).await.unwrap();
        assert!(resp.batch_item_failures.is_empty());
        assert!(rule_ids(&resp.outcomes[0]).contains(&"tw-remediation-public-access-block-failed"));
        assert!(w
            .notifier
            .sent()
            .iter()
            .any(|a| a.rule_id == "tw-remediation-public-access-block-failed"));
        assert!(rem.calls().is_empty());
    }

    #[tokio::test]
    async fn dry_run_records_without_acting() {
        let mut c = remediating();
        c.remediation.dry_run = true;
        let w = World::new(c);
        let resp = w
            .handler()
            .handle(&sample("event-handler-api-call.json"), None)
            .await
            .unwrap();
        assert!(w.remediator.as_ref().unwrap().calls().is_empty());
        let EventOutcome::Evaluated {
            findings,
            remediated: true,
            ..
        } = &resp.outcomes[0]
        else {
            panic!("{resp:?}")
        };
        let note = findings
            .iter()
            .find(|f| f.rule_id == "tw-remediation-start-logging")
            .unwrap();
        assert_eq!(
            note.title,
            "Auto-remediation (dry run): would restart logging on trail trailwatch-trail"
        );
    }

    const BY_IP: &str = "tw-corr-console-login-failures-by-ip";

    fn failed_login(i: usize) -> Value {
        json!({"version": "0", "id": format!("eb-login-{i}"),
            "detail-type": "AWS Console Sign In via CloudTrail", "source": "aws.signin",
            "account": "111122223333", "region": "us-east-1",
            "detail": {
                "eventVersion": "1.10", "eventTime": format!("2026-11-23T10:02:{:02}Z", i * 3),
                "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
                "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.23",
                "userAgent": "Mozilla/5.0",
                "userIdentity": {"type": "IAMUser", "userName": format!("user{}", i % 2),
                                 "accountId": "111122223333"},
                "responseElements": {"ConsoleLogin": "Failure"},
                "eventID": format!("login-{i}"), "eventType": "AwsConsoleSignIn",
                "recipientAccountId": "111122223333"}})
    }

    fn sqs(events: &[Value]) -> Value {
        let recs: Vec<Value> = events
            .iter()
            .enumerate()
            .map(|(i, e)| json!({"messageId": format!("m{i}"), "eventSource": "aws:sqs", "body": e.to_string()}))
            .collect();
        json!({ "Records": recs })
    }

    fn stop_logging(i: usize) -> Value {
        json!({"version": "0", "id": format!("eb-stop-{i}"),
            "detail-type": "AWS API Call via CloudTrail", "source": "aws.cloudtrail",
            "account": "111122223333", "region": "us-east-1",
            "detail": {
                "eventVersion": "1.10", "eventTime": format!("2026-11-23T10:03:{:02}Z", i),
                "eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging",
                "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.23",
                "userAgent": "aws-cli/2.17.20",
                "userIdentity": {"type": "IAMUser", "userName": "mallory",
                                 "arn": "arn:aws:iam::111122223333:user/mallory",
                                 "accountId": "111122223333"},
                "requestParameters": {"name": "team-trail"},
                "eventID": format!("stop-{i}"), "eventType": "AwsApiCall",
                "recipientAccountId": "111122223333"}})
    }

    #[tokio::test]
    async fn repeated_findings_across_invocations_alert_once_plus_an_update() {
        let w = World::new(cfg());
        let stops: Vec<Value> = (0..12).map(stop_logging).collect();
        // an SQS batch, then single events out of order, one of them twice
        let resp = w.handler().handle(&sqs(&stops[..6]), None).await.unwrap();
        assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
        for i in [11, 6, 8, 8, 7, 10, 9] {
            w.handler().handle(&stops[i], None).await.unwrap();
        }
        let stored: Vec<Finding> = w
            .store
            .findings()
            .into_iter()
            .filter(|f| f.rule_id == "tw-cloudtrail-stop-logging")
            .collect();
        assert_eq!(stored.len(), 12);
        let sent: Vec<_> = w
            .notifier
            .sent()
            .into_iter()
            .filter(|a| a.rule_id == "tw-cloudtrail-stop-logging")
            .collect();
        // the first event leads; the tenth distinct one (event 7 here) announces 10
        assert_eq!(sent.len(), 2, "{sent:?}");
        let leader = stored.iter().find(|f| f.event_id == "stop-0").unwrap();
        assert_eq!(sent[0].id, leader.id);
        let update: Value = serde_json::from_str(&sent[1].body).unwrap();
        assert_eq!(update["threshold"], 10);
        assert_eq!(update["group"]["count"], 10);
        assert_eq!(update["group"]["resource"], "team-trail");
        assert_eq!(update["example_event_id"], "stop-7");
        assert!(stored.iter().all(|f| w.store.is_alerted(&f.id)));
        let followers = stored
            .iter()
            .filter(|f| {
                w.store
                    .group_of(&f.id)
                    .is_some_and(|(_, follower)| follower)
            })
            .count();
        assert_eq!(followers, 10);
    }

    #[tokio::test]
    async fn a_burst_across_invocations_yields_one_correlation_finding_and_one_alert() {
        let mut c = cfg();
        c.min_alert_severity = crate::findings::Severity::Low;
        let w = World::new(c);
        let logins: Vec<Value> = (0..12).map(failed_login).collect();
        // three SQS batches, the second delivered twice
        for batch in [&logins[..5], &logins[5..9], &logins[5..9], &logins[9..]] {
            let resp = w.handler().handle(&sqs(batch), None).await.unwrap();
            assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
        }
        let stored: Vec<Finding> = w
            .store
            .findings()
            .into_iter()
            .filter(|f| f.rule_id == BY_IP)
            .collect();
        assert_eq!(stored.len(), 1, "{stored:?}");
        let alerts = w.notifier.sent();
        assert_eq!(
            alerts.iter().filter(|a| a.rule_id == BY_IP).count(),
            1,
            "{alerts:?}"
        );
        assert!(w.store.is_alerted(&stored[0].id));
        // one event at a time gives the same single finding
        let w2 = World::new(w.cfg.clone());
        for e in logins.iter().chain(&logins[3..6]) {
            w2.handler().handle(e, None).await.unwrap();
        }
        let again: Vec<Finding> = w2
            .store
            .findings()
            .into_iter()
            .filter(|f| f.rule_id == BY_IP)
            .collect();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, stored[0].id);
    }

    #[tokio::test]
    async fn a_retryable_state_failure_is_an_error() {
        let w = World::new(cfg());
        w.state.fail_next(vec![PortError::Transient {
            op: "UpdateItem",
            message: "throttled".into(),
        }]);
        let err = w
            .handler()
            .handle(&failed_login(0), None)
            .await
            .unwrap_err();
        assert!(matches!(err, EventHandlerError::Correlate { .. }), "{err}");
        assert!(err.is_retryable());
        // the redelivery succeeds
        w.handler().handle(&failed_login(0), None).await.unwrap();
    }

    #[tokio::test]
    async fn allow_listed_findings_are_stored_but_not_alerted() {
        let mut w = World::new(cfg());
        w.allowlist = Some(
            AllowList::parse(
                "allow.yml",
                "entries:\n  - id: trail-maintenance\n    reason: planned trail change\n    expires: 2099-12-31\n    rules: ['tw-cloudtrail-stop-logging']\n",
            )
            .unwrap(),
        );
        let resp = w
            .handler()
            .handle(&sample("event-handler-api-call.json"), None)
            .await
            .unwrap();
        assert!(rule_ids(&resp.outcomes[0]).contains(&"tw-cloudtrail-stop-logging"));
        let stop: Vec<Finding> = w
            .store
            .findings()
            .into_iter()
            .filter(|f| f.rule_id == "tw-cloudtrail-stop-logging")
            .collect();
        assert_eq!(stop.len(), 1);
        assert!(suppress::is_suppressed(&stop[0]));
        assert!(stop[0]
            .tags
            .iter()
            .any(|t| t == "trailwatch.allowlist:trail-maintenance"));
        assert!(w
            .notifier
            .sent()
            .iter()
            .all(|a| a.rule_id != "tw-cloudtrail-stop-logging"));
    }
}
