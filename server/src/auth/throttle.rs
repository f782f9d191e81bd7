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

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long failures are remembered.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
const PER_PAIR: u32 = 10;
const PER_ADDRESS: u32 = 50;
const PER_ACCOUNT: u32 = 100;
/// Keys kept at most (expired ones are dropped first; past it the table starts over).
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

    /// `Some(seconds to wait)` when a login attempt for `account` from `address` is refused.
    pub fn check(&self, account: &str, address: &str) -> Option<u64> {
        let now = Instant::now();
        let counts = self.counts.lock().expect("throttle lock");
        Self::keys(account, address)
            .iter()
            .filter_map(|(k, limit)| {
                let c = counts.get(k)?;
                let left = self.window.checked_sub(now.duration_since(c.start))?;
                (c.failures >= *limit).then(|| left.as_secs().max(1))
            })
            .max()
    }

    /// Count a failed attempt.
    pub fn failed(&self, account: &str, address: &str) {
        let now = Instant::now();
        let mut counts = self.counts.lock().expect("throttle lock");
        if counts.len() >= MAX_KEYS {
            counts.retain(|_, c| now.duration_since(c.start) < self.window);
            if counts.len() >= MAX_KEYS {
                counts.clear();
            }
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

    /// A correct password: forget this account's failures from this address.
    pub fn succeeded(&self, account: &str, address: &str) {
        let [(pair, _), ..] = Self::keys(account, address);
        self.counts.lock().expect("throttle lock").remove(&pair);
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
