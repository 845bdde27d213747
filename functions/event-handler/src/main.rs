//! event-handler: EventBridge CloudTrail events → findings, alerts, opt-in remediation.
//! Wiring only; the behaviour is `trailwatch::handler::event_handler`.

use lambda_runtime::{run, service_fn, LambdaEvent};
use serde_json::Value;
use trailwatch::correlate::Correlator;
use trailwatch::handler::event_handler::{load_rules, EventHandler};
use trailwatch::handler::{lambda_deadline, load_allowlist};
use trailwatch::ports::aws::{AwsRemediator, Ports};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let cfg = trailwatch::Config::from_env()?;
    let rules = load_rules(&cfg)?;
    // day-long ratios are left to the log-processor, which sees every call (see
    // `Correlator::leaving_out_ratios`)
    let (correlator, left_out) = Correlator::new(&rules).leaving_out_ratios();
    for w in correlator.warnings() {
        lambda_runtime::tracing::warn!(warning = %w, "correlation not evaluated");
    }
    if !left_out.is_empty() {
        lambda_runtime::tracing::info!(correlations = ?left_out, "ratio correlations left to the log-processor");
    }
    let allowlist = load_allowlist(&cfg)?;
    let ports = Ports::load(&cfg).await;
    // STS + remediation clients only when a remediation is switched on
    let remediator = AwsRemediator::load(&cfg, ports.sdk_config()).await?;
    let handler = EventHandler {
        cfg: &cfg,
        rules: &rules,
        store: &ports.store,
        notifier: &ports.notifier,
        remediator: remediator.as_ref(),
        correlator: &correlator,
        state: &ports.state,
        allowlist: allowlist.as_ref(),
    };
    let handler = &handler;
    run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let deadline = lambda_deadline(ev.context.deadline);
        handler.handle(&ev.payload, deadline).await
    }))
    .await
}
