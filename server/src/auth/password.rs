//! Password hashing with argon2 (RustCrypto), in the PHC string format.

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
