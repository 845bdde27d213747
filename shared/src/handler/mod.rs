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

/// The time an invocation may use, fixed when it starts: work not started while
/// [`Budget::has_time`] holds is left for a retry.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    deadline: Option<std::time::SystemTime>,
    reserve: std::time::Duration,
}

impl Budget {
    /// A budget ending `reserve` before `deadline`; the reserve is never more than a quarter
    /// of the time left now, so a function with a short timeout (Lambda's default is 3 s,
    /// below the default 10 s reserve) still does its work. No deadline: no limit.
    pub fn start(deadline: Option<std::time::SystemTime>, reserve: std::time::Duration) -> Budget {
        let reserve = match deadline.map(|d| d.duration_since(std::time::SystemTime::now())) {
            Some(Ok(left)) => reserve.min(left / 4),
            // already past: nothing starts
            Some(Err(_)) => std::time::Duration::ZERO,
            None => reserve,
        };
        Budget { deadline, reserve }
    }

    /// Whether work may still start.
    pub fn has_time(&self) -> bool {
        let Some(deadline) = self.deadline else {
            return true;
        };
        deadline
            .duration_since(std::time::SystemTime::now())
            .is_ok_and(|left| left > self.reserve)
    }
}

/// The deadline of a Lambda invocation (epoch milliseconds from the runtime API).
///
/// Lambda never starts a handler after its deadline; one that has already passed comes from
/// a runtime that does not send an epoch deadline (`cargo lambda watch` 1.9 sends its
/// timeout, `600000`, i.e. 1970) or whose clock disagrees with ours. Honouring it would
/// leave every object "not started" forever, so it is logged and the invocation runs
/// without one.
pub fn lambda_deadline(deadline_ms: u64) -> Option<std::time::SystemTime> {
    let deadline = std::time::UNIX_EPOCH + std::time::Duration::from_millis(deadline_ms);
    match deadline.duration_since(std::time::SystemTime::now()) {
        Ok(_) => Some(deadline),
        Err(e) => {
            tracing::warn!(
                deadline_ms,
                passed_ms = u64::try_from(e.duration().as_millis()).unwrap_or(u64::MAX),
                "invocation deadline already passed at start (a local emulator sending a timeout instead of an epoch time, or a clock that disagrees with ours); running without a deadline"
            );
            None
        }
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn the_reserve_shrinks_to_a_quarter_of_a_short_timeout() {
        let b = Budget::start(
            Some(SystemTime::now() + Duration::from_secs(3)),
            Duration::from_secs(10),
        );
        assert!(b.reserve <= Duration::from_millis(750));
        assert!(b.has_time());
        let long = Budget::start(
            Some(SystemTime::now() + Duration::from_secs(300)),
            Duration::from_secs(10),
        );
        assert_eq!(long.reserve, Duration::from_secs(10));
        assert!(Budget::start(None, Duration::from_secs(10)).has_time());
        assert!(!Budget::start(Some(SystemTime::now()), Duration::from_secs(10)).has_time());
    }

    #[test]
    fn a_deadline_already_passed_at_start_is_not_honoured() {
        let now_ms = u64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        assert_eq!(lambda_deadline(now_ms - 120_000), None);
        let ahead = lambda_deadline(now_ms + 60_000).unwrap();
        assert!(ahead > SystemTime::now());
    }
}
