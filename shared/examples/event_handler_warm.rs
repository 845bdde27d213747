//! Warm event-handler cost per event, without I/O: the bundled rules loaded once, in-memory
//! ports, 10 000 EventBridge events (the `events/event-handler-*.json` samples with unique
//! event ids) through `EventHandler::handle_event`, and through evaluation alone.
//!
//! `cargo run --release -p trailwatch --example event_handler_warm [-- <events>]`
//! Prints µs/event; a measurement, not a test (timings on a shared machine vary).

use serde_json::Value;
use std::time::Instant;
use trailwatch::correlate::Correlator;
use trailwatch::detect::RuleSet;
use trailwatch::handler::event_handler::{EventHandler, EventOutcome};
use trailwatch::model::Record;
use trailwatch::pipeline::Evaluator;
use trailwatch::ports::memory::{MemFindingStore, MemNotifier};
use trailwatch::ports::memory_state::MemCorrelationState;
use trailwatch::ports::remediate::MemRemediator;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn samples() -> Res<Vec<Value>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut out = Vec::new();
    for name in [
        "event-handler-api-call.json",
        "event-handler-console-signin.json",
        "event-handler-service-event.json",
        "event-handler-insight.json",
    ] {
        out.push(serde_json::from_str(&std::fs::read_to_string(
            dir.join(name),
        )?)?);
    }
    Ok(out)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Res<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let rules = RuleSet::bundled().map_err(|e| format!("{} rule errors", e.len()))?;
    let base = samples()?;
    let events: Vec<Value> = (0..n)
        .filter_map(|i| {
            let mut ev = base.get(i % base.len())?.clone();
            let id = format!("{}-{i}", ev["detail"]["eventID"].as_str().unwrap_or("e"));
            ev["detail"]["eventID"] = Value::String(id);
            Some(ev)
        })
        .collect();

    // evaluation only: Record::from_value(detail) + the rule pack
    let mut eval = Evaluator::new(&rules);
    let (mut out, start) = (Vec::new(), Instant::now());
    for ev in &events {
        let record = Record::from_value(&ev["detail"])?;
        out.clear();
        eval.evaluate(&record, "eventbridge", &mut out);
    }
    let evaluate = start.elapsed();

    // the whole handler per event, with in-memory store and notifier
    let cfg = trailwatch::Config::new("findings", "arn:aws:sns:us-east-1:111122223333:alerts");
    let (store, notifier) = (MemFindingStore::default(), MemNotifier::default());
    let correlator = Correlator::new(&rules);
    let state = MemCorrelationState::default();
    let h: EventHandler<'_, _, _, MemRemediator, _> = EventHandler {
        cfg: &cfg,
        rules: &rules,
        store: &store,
        notifier: &notifier,
        remediator: None,
        correlator: &correlator,
        state: &state,
        allowlist: None,
    };
    let (mut findings, start) = (0usize, Instant::now());
    for ev in &events {
        if let EventOutcome::Evaluated { findings: f, .. } = h.handle_event(ev).await? {
            findings += f.len();
        }
    }
    let handle = start.elapsed();
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "{n} events, {} rules: evaluate {:.1} µs/event, handle_event (Mem ports) {:.1} µs/event; {findings} findings, {} alerts",
        rules.rules().len(),
        per(evaluate),
        per(handle),
        notifier.sent().len()
    );
    Ok(())
}
