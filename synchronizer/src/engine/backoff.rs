//! Backoff: each failing object waits twice as long as the last time (capped), kept in its
//! `backend_register` as XOS did.

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
            .get_str("backend_register")
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
    /// Whether the object's backoff has run out.
    pub(super) fn due(&self) -> bool {
        self.next_run_ms <= now_ms()
    }

    /// The register after one more failure: the next run `base · 2^exponent` from now (the
    /// exponent capped at 20), at most `cap`.
    pub(super) fn after_failure(&self, base: Duration, cap: Duration) -> String {
        let delay = base.saturating_mul(1u32 << self.exponent.min(20)).min(cap);
        json!({
            "next_run": now_ms() + delay.as_millis() as i64,
            "exponent": self.exponent + 1,
            "failures": self.failures + 1,
            "last_failure": now_ms(),
        })
        .to_string()
    }
}

/// Milliseconds since the epoch, the unit of `backend_register`.
/// Milliseconds since the epoch: the clock backoff and intervals are stored in.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
