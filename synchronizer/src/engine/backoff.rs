//! Backoff: each failing object waits twice as long as the last time (capped), kept in its
//! `backend_register` as XOS did.

use registry::fields::common;
use serde_json::json;
use std::time::Duration;
use store::Record;

/// Backoff bookkeeping kept in `backend_register` (as XOS did).
#[derive(Default)]
pub(super) struct Register {
    next_run_ms: i64,
    exponent: u32,
    failures: u64,
}

impl Register {
    pub(super) fn parse(rec: &Record) -> Register {
        let v: serde_json::Value = rec
            .opt(common::BACKEND_REGISTER)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        Register {
            next_run_ms: v["next_run"].as_i64().unwrap_or(0),
            exponent: v["exponent"].as_u64().unwrap_or(0) as u32,
            failures: v["failures"].as_u64().unwrap_or(0),
        }
    }
}

impl Register {
    /// Whether the object's backoff has run out at `now` (ms).
    pub(super) fn due(&self, now: i64) -> bool {
        self.next_run_ms <= now
    }

    /// When the object's backoff runs out (ms).
    pub(super) fn next_run(&self) -> i64 {
        self.next_run_ms
    }

    /// The register after one more failure, and its next run: `base · 2^exponent` from now
    /// (the exponent capped at 20), at most `cap`.
    pub(super) fn after_failure(&self, now: i64, base: Duration, cap: Duration) -> (String, i64) {
        let delay = base.saturating_mul(1u32 << self.exponent.min(20)).min(cap);
        let next_run = now + delay.as_millis() as i64;
        let register = json!({
            "next_run": next_run,
            "exponent": self.exponent + 1,
            "failures": self.failures + 1,
            "last_failure": now,
        })
        .to_string();
        (register, next_run)
    }
}

/// Milliseconds since the epoch by the system's clock (the unit of `backend_register`).
pub fn now_ms() -> i64 {
    use super::clock::Clock;
    super::clock::SystemClock.now_ms()
}
