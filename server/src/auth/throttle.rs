//! Failed-login throttling. Password guessing is refused with 429 before any password hash is
//! checked (so an attack also cannot burn the CPU on argon2), counted over a sliding-free fixed
//! window per key:
//!
//! - one account from one address: 10 failures per window (the usual typo-prone user is never
//!   near it; a guesser is stopped at once);
//! - one address, any accounts: 50 (one machine spraying many accounts);
//! - one account, any addresses: 100 (a distributed attack on one account).
//!
//! A window ends by itself ([`WINDOW`], 15 minutes), so nobody is locked out forever, and a
//! correct password from an address clears that address's count for the account. Because the
//! per-account limit is ten times the per-pair limit, an attacker elsewhere cannot lock the real
//! user out with a handful of tries.
//!
//! The check and the count are one step ([`Throttle::attempt`], under one lock): each attempt
//! is counted before its password is checked, so a parallel burst cannot slip past the limit
//! while the first answers are still being hashed; a correct password takes its count back. A
//! full table evicts its oldest entries (after the expired ones), never resets everyone's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long failures are remembered.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
const PER_PAIR: u32 = 10;
const PER_ADDRESS: u32 = 50;
const PER_ACCOUNT: u32 = 100;
/// Keys kept at most (expired ones are dropped first, then the oldest).
const MAX_KEYS: usize = 100_000;

#[derive(Clone, Copy)]
struct Count {
    start: Instant,
    failures: u32,
}

/// The failure counts.
pub struct Throttle {
    window: Duration,
    counts: Mutex<HashMap<String, Count>>,
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new(WINDOW)
    }
}

impl Throttle {
    pub fn new(window: Duration) -> Throttle {
        Throttle {
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn keys(account: &str, address: &str) -> [(String, u32); 3] {
        let account = account.trim().to_lowercase();
        [
            (format!("pair\0{account}\0{address}"), PER_PAIR),
            (format!("addr\0{address}"), PER_ADDRESS),
            (format!("acct\0{account}"), PER_ACCOUNT),
        ]
    }

    /// `Some(seconds to wait)` when a login attempt for `account` from `address` would be
    /// refused now (nothing is counted).
    pub fn check(&self, account: &str, address: &str) -> Option<u64> {
        let counts = self.counts.lock().expect("throttle lock");
        self.refusal(&counts, account, address, Instant::now())
    }

    fn refusal(
        &self,
        counts: &HashMap<String, Count>,
        account: &str,
        address: &str,
        now: Instant,
    ) -> Option<u64> {
        Self::keys(account, address)
            .iter()
            .filter_map(|(k, limit)| {
                let c = counts.get(k)?;
                let left = self.window.checked_sub(now.duration_since(c.start))?;
                (c.failures >= *limit).then(|| left.as_secs().max(1))
            })
            .max()
    }

    /// One login attempt: refused (`Err(seconds to wait)`) past a limit, else counted as a
    /// failure until [`Throttle::succeeded`] takes it back. Check and count under one lock.
    pub fn attempt(&self, account: &str, address: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut counts = self.counts.lock().expect("throttle lock");
        if let Some(wait) = self.refusal(&counts, account, address, now) {
            return Err(wait);
        }
        self.count(&mut counts, account, address, now);
        Ok(())
    }

    /// Count a failed attempt (for callers that did not go through [`Throttle::attempt`]).
    pub fn failed(&self, account: &str, address: &str) {
        let mut counts = self.counts.lock().expect("throttle lock");
        self.count(&mut counts, account, address, Instant::now());
    }

    fn count(&self, counts: &mut HashMap<String, Count>, account: &str, address: &str, now: Instant) {
        if counts.len() + 3 > MAX_KEYS {
            self.evict(counts, now);
        }
        for (k, _) in Self::keys(account, address) {
            let c = counts.entry(k).or_insert(Count {
                start: now,
                failures: 0,
            });
            if now.duration_since(c.start) >= self.window {
                *c = Count {
                    start: now,
                    failures: 0,
                };
            }
            c.failures += 1;
        }
    }

    /// Make room: drop expired entries, then the oldest tenth (never every counter at once,
    /// which would let an attacker reset its own by filling the table).
    fn evict(&self, counts: &mut HashMap<String, Count>, now: Instant) {
        counts.retain(|_, c| now.duration_since(c.start) < self.window);
        if counts.len() + 3 > MAX_KEYS {
            let mut starts: Vec<Instant> = counts.values().map(|c| c.start).collect();
            starts.sort_unstable();
            let cut = starts[(starts.len() / 10).min(starts.len() - 1)];
            counts.retain(|_, c| c.start > cut);
        }
    }

    /// A correct password: forget this account's failures from this address, and take back
    /// the wider counts of the attempt that succeeded.
    pub fn succeeded(&self, account: &str, address: &str) {
        let [(pair, _), (addr, _), (acct, _)] = Self::keys(account, address);
        let mut counts = self.counts.lock().expect("throttle lock");
        counts.remove(&pair);
        for k in [addr, acct] {
            if let Some(c) = counts.get_mut(&k) {
                c.failures = c.failures.saturating_sub(1);
            }
        }
    }
}

/// The client's address: the peer, or, when the peer is a proxy on this machine (nginx in the
/// production configuration) or unknown (in-process tests), the `X-Real-IP` it sets.
pub fn client_address(headers: &axum::http::HeaderMap, peer: Option<std::net::SocketAddr>) -> String {
    let forwarded = || {
        headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s.len() <= 64)
    };
    match peer {
        Some(p) if !p.ip().is_loopback() => p.ip().to_string(),
        Some(p) => forwarded().unwrap_or_else(|| p.ip().to_string()),
        None => forwarded().unwrap_or_else(|| "local".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_refused_after_ten_failures_and_the_window_ends() {
        let t = Throttle::new(Duration::from_millis(200));
        for _ in 0..PER_PAIR {
            assert_eq!(t.check("a@x.org", "10.0.0.1"), None);
            t.failed("A@x.org ", "10.0.0.1");
        }
        assert!(t.check("a@x.org", "10.0.0.1").is_some());
        // The same account from elsewhere, and another account from here, still may try.
        assert_eq!(t.check("a@x.org", "10.0.0.2"), None);
        assert_eq!(t.check("b@x.org", "10.0.0.1"), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(t.check("a@x.org", "10.0.0.1"), None, "the window ended");
    }

    #[test]
    fn a_success_clears_the_pair_but_not_the_wider_counts() {
        let t = Throttle::default();
        for _ in 0..PER_PAIR - 1 {
            t.failed("a@x.org", "10.0.0.1");
        }
        t.succeeded("a@x.org", "10.0.0.1");
        t.failed("a@x.org", "10.0.0.1");
        assert_eq!(t.check("a@x.org", "10.0.0.1"), None);
        // Spraying accounts from one address.
        for i in 0..PER_ADDRESS {
            t.failed(&format!("u{i}@x.org"), "10.9.9.9");
        }
        assert!(t.check("someone-new@x.org", "10.9.9.9").is_some());
    }

    #[test]
    fn a_parallel_burst_cannot_pass_the_limit() {
        let t = std::sync::Arc::new(Throttle::default());
        let passed = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (t, passed) = (t.clone(), passed.clone());
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        if t.attempt("a@x.org", "10.0.0.1").is_ok() {
                            passed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        // 80 attempts at once, none answered yet: exactly the pair's limit got through.
        assert_eq!(passed.load(std::sync::atomic::Ordering::SeqCst), PER_PAIR);
    }

    #[test]
    fn a_full_table_evicts_the_oldest_not_everyone() {
        let t = Throttle::default();
        let fill = |from: usize, n: usize| {
            for i in from..from + n {
                t.failed(
                    &format!("u{i}@x.org"),
                    &format!("10.{}.{}.{}", i / 62_500, (i / 250) % 250, i % 250),
                );
            }
        };
        fill(0, MAX_KEYS / 6);
        std::thread::sleep(Duration::from_millis(5));
        for _ in 0..PER_PAIR {
            t.failed("victim@x.org", "10.200.0.1");
        }
        std::thread::sleep(Duration::from_millis(5));
        // Past the table's size: the oldest entries make room, the recent guesser stays counted.
        fill(MAX_KEYS / 6, MAX_KEYS / 5);
        let len = t.counts.lock().unwrap().len();
        assert!(len <= MAX_KEYS && len > MAX_KEYS / 2, "{len}");
        assert!(
            t.check("victim@x.org", "10.200.0.1").is_some(),
            "the recent count survived"
        );
    }

    #[test]
    fn the_forwarded_address_counts_only_behind_a_local_proxy() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-real-ip", "203.0.113.7".parse().unwrap());
        let local: std::net::SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: std::net::SocketAddr = "198.51.100.1:5000".parse().unwrap();
        assert_eq!(client_address(&h, Some(local)), "203.0.113.7");
        assert_eq!(client_address(&h, Some(remote)), "198.51.100.1");
        assert_eq!(client_address(&h, None), "203.0.113.7");
        assert_eq!(client_address(&Default::default(), None), "local");
    }
}
