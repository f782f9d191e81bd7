//! Helpers for the tests of every crate; a dev-dependency only, never a normal one.
//!
//! A test that waits for something another task or process does (a cache invalidated, a
//! listener connected, a status written by a synchronizer pass) asks for it again and again
//! with [`eventually`] instead of sleeping a fixed time: it goes on as soon as the condition
//! holds, and a condition that never holds fails with what was awaited rather than with an
//! assertion about a state that was merely not reached yet.

use std::future::Future;
use std::time::{Duration, Instant};

/// The first pause between two polls; each pause doubles, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between two polls.
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// Poll `f` until it returns `Some`, with a short backoff between polls, and return its value.
/// `f` is called at least once, and once more at the end of `timeout`.
///
/// # Panics
/// When `f` has not returned `Some` within `timeout`: the message names `what` and the time
/// waited.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    match within(timeout, f).await {
        Some(v) => v,
        None => panic!(
            "timed out waiting for {what}: not within {timeout:?} (waited {:?})",
            start.elapsed()
        ),
    }
}

/// [`eventually`] without the panic: `None` when `f` did not return `Some` within `timeout`,
/// for a caller that has more to say about the failure (the state it ended in).
pub async fn within<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return None;
        }
        // The last pause ends at the timeout, so the last poll sees the state at that moment.
        tokio::time::sleep(pause.min(timeout - elapsed)).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let v = eventually("the third call", Duration::from_secs(5), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            (n == 3).then_some(n * 10)
        })
        .await;
        assert_eq!(v, 30);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_condition_that_holds_at_once_is_polled_once() {
        let calls = AtomicU32::new(0);
        eventually("anything", Duration::ZERO, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Some(())
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out waiting for the impossible")]
    async fn panics_with_what_it_waited_for() {
        eventually("the impossible", Duration::from_millis(50), || async {
            None::<()>
        })
        .await;
    }

    #[tokio::test]
    async fn within_gives_up_after_the_timeout() {
        let start = Instant::now();
        let calls = AtomicU32::new(0);
        let got = within(Duration::from_millis(100), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            None::<()>
        })
        .await;
        assert!(got.is_none());
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert!(calls.load(Ordering::SeqCst) >= 2, "polled again at the timeout");
    }
}
