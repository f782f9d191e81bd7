//! Fault injection for the crash tests.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Fault injection for the crash tests: `XOS_SYNC_CRASH=<point>:<n>` kills the process (as
/// SIGKILL would) the n-th time it reaches `before_backend`, `after_backend` or `after_status`.
pub(super) struct CrashPoint {
    point: String,
    at: usize,
    seen: AtomicUsize,
}

impl CrashPoint {
    pub(super) fn from_env() -> Option<CrashPoint> {
        let v = std::env::var("XOS_SYNC_CRASH").ok()?;
        let (point, n) = v.split_once(':')?;
        Some(CrashPoint {
            point: point.to_string(),
            at: n.parse().ok()?,
            seen: AtomicUsize::new(0),
        })
    }
    pub(super) fn reach(&self, point: &str) {
        if self.point == point && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            eprintln!("xos sync: crash injected at {point} #{}", self.at);
            // SAFETY: kill(2) on our own pid; SIGKILL ends the process at once, like a crash.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}
