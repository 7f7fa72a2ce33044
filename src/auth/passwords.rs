//! Password hashing with argon2id. Verification takes the same time whether or not the
//! account exists, so a failed sign-in reveals nothing.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::{AppError, AppResult};

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 10;

/// Checks a password a user chooses.
pub fn validate_new(password: &str) -> AppResult<()> {
    if password.chars().count() < MIN_LENGTH {
        return Err(AppError::BadUserInput(format!(
            "a password needs at least {MIN_LENGTH} characters"
        )));
    }
    Ok(())
}

/// The PHC string (argon2id, random salt) of a password.
pub fn hash(password: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| AppError::internal(anyhow::anyhow!("hashing a password failed: {error}")))
}

/// A hash no password matches, verified against when the account is unknown.
static DECOY: LazyLock<Option<String>> =
    LazyLock::new(|| hash("decoy password of no account").ok());

/// Whether `password` matches `stored`; with no stored hash, spends the same time and fails.
/// The comparison of hash outputs is constant-time (argon2's verifier).
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let (candidate, real) = match stored {
        Some(stored) => (stored, true),
        None => match DECOY.as_deref() {
            Some(decoy) => (decoy, false),
            None => return false,
        },
    };
    let Ok(parsed) = PasswordHash::new(candidate) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    matches && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse battery").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(&stored)));
        assert!(!verify("correct horse battery!", Some(&stored)));
        assert!(!verify("correct horse battery", None));
        assert_ne!(stored, hash("correct horse battery").unwrap(), "salted");
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(validate_new("short").is_err());
        assert!(validate_new("long enough now").is_ok());
    }
}
