//! config-auditor: on a schedule, audits the trail, its bucket and its digest chain, and
//! alerts on changes. Wiring only; the library decides (`trailwatch::handler::config_auditor`).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use trailwatch::handler::config_auditor::handle;
use trailwatch::ports::aws::{AuditPorts, Ports};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let cfg = trailwatch::Config::from_env()?;
    let ports = Ports::load(&cfg).await; // once per cold start
    let audit = AuditPorts::from_ports(&cfg, &ports);
    let (cfg, audit) = (&cfg, &audit);
    lambda_runtime::run(service_fn(
        move |ev: LambdaEvent<serde_json::Value>| async move {
            handle(cfg, audit, ev.payload).await.map_err(Error::from)
        },
    ))
    .await
}
