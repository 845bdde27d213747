//! Per-function handlers: envelope → domain → `Ok`/`Err`, the retry decision.
//!
//! `Ok` means "done, do not retry" (including permanent failures, which are logged once
//! and counted in a metric); `Err` means "retry me" (throttling, 5xx, timeouts, or work
//! left when the deadline approached). For SQS batches only the failed messages are
//! returned in `batchItemFailures`.

pub mod config_auditor;
pub mod deliver;
pub mod event_handler;
pub mod log_processor;

use crate::suppress::{AllowList, AllowListError};
use crate::Config;

/// Load the allow-list named by `ALLOWLIST_FILE` once per cold start (shipped in the
/// deployment package or a layer); `None` when the variable is unset. Expired entries are
/// logged (they no longer suppress anything).
///
/// # Errors
/// [`AllowListError`] when the file cannot be read or parsed: the cold start fails rather
/// than alerting on everything the operator meant to suppress.
pub fn load_allowlist(cfg: &Config) -> Result<Option<AllowList>, AllowListError> {
    let Some(path) = &cfg.allowlist_file else {
        return Ok(None);
    };
    let list = AllowList::load(path)?;
    let now = time::OffsetDateTime::now_utc();
    for e in list.expired(now) {
        tracing::warn!(entry = %e.id, expires = %e.expires, file = %path.display(), "allow-list entry expired; it suppresses nothing");
    }
    tracing::info!(entries = list.entries().len(), file = %path.display(), "allow-list loaded");
    Ok(Some(list))
}
