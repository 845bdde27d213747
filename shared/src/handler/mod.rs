//! Per-function handlers: envelope → domain → `Ok`/`Err`, the retry decision.
//!
//! `Ok` means "done, do not retry" (including permanent failures, which are logged once
//! and counted in a metric); `Err` means "retry me" (throttling, 5xx, timeouts, or work
//! left when the deadline approached). For SQS batches only the failed messages are
//! returned in `batchItemFailures`.

pub mod config_auditor;
pub mod event_handler;
pub mod deliver;
pub mod log_processor;
