//! log-processor: S3 notifications of new CloudTrail log files → findings and alerts.
//! Wiring only; the behaviour is `trailwatch::handler::log_processor`.

use lambda_runtime::{run, service_fn, LambdaEvent};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use trailwatch::correlate::Correlator;
use trailwatch::handler::load_allowlist;
use trailwatch::handler::log_processor::{handle, load_rules};
use trailwatch::ports::aws::Ports;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let started = Instant::now();
    lambda_runtime::tracing::init_default_subscriber();
    let cfg = trailwatch::Config::from_env()?;
    let rules = load_rules(&cfg)?; // once per cold start; errors name file:line
    let correlator = Arc::new(Correlator::new(&rules));
    for w in correlator.warnings() {
        tracing::warn!(warning = %w, "correlation not evaluated");
    }
    let allowlist = load_allowlist(&cfg)?;
    let ports = Ports::load(&cfg).await;
    let init_ms = started.elapsed().as_millis() as u64;
    tracing::info!(init_ms, rules = rules.rules().len(), "cold start ready");
    let (cfg, rules, correlator, allowlist, ports) =
        (&cfg, &rules, &correlator, allowlist.as_ref(), &ports);
    run(service_fn(move |ev: LambdaEvent<Value>| async move {
        handle(cfg, rules, correlator, allowlist, ports, ev).await
    }))
    .await
}
