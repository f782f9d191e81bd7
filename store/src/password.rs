//! Password hashing with argon2 (RustCrypto), in the PHC string format.
//!
//! Each argon2 run takes ~19 MB and a core for tens of milliseconds, so the async callers go
//! through [`verify_bounded`]: at most one run per core at a time, the rest wait in line. A
//! login flood then queues (a few bytes per waiting request) instead of starting hundreds of
//! blocking threads that together exhaust memory.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use std::sync::OnceLock;

/// Hash a password with a fresh random salt.
pub fn hash(plain: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(plain.as_bytes(), &salt)?
        .to_string())
}

/// Check a password against a stored hash. An empty or malformed hash never matches.
pub fn verify(plain: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(h) => Argon2::default().verify_password(plain.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// The permits of the hashing pool: one per core.
fn pool() -> &'static tokio::sync::Semaphore {
    static POOL: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        tokio::sync::Semaphore::new(cores)
    })
}

/// How many argon2 runs may go at once (the number of cores).
pub fn pool_size() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// Runs of argon2 going on now (for tests and metrics).
pub fn running() -> usize {
    pool_size().saturating_sub(pool().available_permits())
}

/// Run `f` (an argon2 hash or verification) on a blocking thread once a permit of the pool is
/// free.
pub async fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let _permit = pool().acquire().await.ok()?;
    tokio::task::spawn_blocking(f).await.ok()
}

/// [`verify`] through the bounded pool; `None` stored hash spends the time of a dummy check.
pub async fn verify_bounded(plain: String, stored: Option<String>) -> bool {
    bounded(move || match stored {
        Some(h) => verify(&plain, &h),
        None => {
            verify_dummy(&plain);
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// Spend the time of one verification without a real hash, so an unknown user answers as slowly
/// as a wrong password.
pub fn verify_dummy(plain: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let h = DUMMY.get_or_init(|| hash("dummy password for timing").unwrap_or_default());
    let _ = verify(plain, h);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_argon2_runs_than_cores_at_once() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..(pool_size() * 4))
            .map(|_| {
                let (now, peak) = (now.clone(), peak.clone());
                tokio::spawn(async move {
                    bounded(move || {
                        peak.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        now.fetch_sub(1, SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Some(()));
        }
        let peak = peak.load(SeqCst);
        assert!(peak >= 1 && peak <= pool_size(), "peak {peak} of {}", pool_size());
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("letmein").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("letmein", &h));
        assert!(!verify("letmeout", &h));
        assert!(!verify("letmein", ""));
        assert!(!verify("letmein", "letmein"));
    }
}
