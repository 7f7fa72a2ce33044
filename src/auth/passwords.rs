//! Password hashing with argon2id. Verification takes the same time whether or not the
//! account exists, so a failed sign-in reveals nothing. The server hashes through a
//! [`Hasher`]: on blocking threads, a bounded number at once, so that sign-ins can neither
//! stall the async workers nor take all the memory (each hash needs about 19 MiB).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::{AppError, AppResult};

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 10;

/// Longest password accepted or checked, in bytes.
pub const MAX_LENGTH: usize = 1_024;

/// Runs password hashes off the async workers, at most `concurrency` at once.
#[derive(Debug)]
pub struct Hasher {
    permits: Semaphore,
    running: AtomicUsize,
    peak: AtomicUsize,
    done: AtomicUsize,
}

impl Hasher {
    /// A hasher running at most `concurrency` (at least one) hashes at once.
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Semaphore::new(concurrency.max(1)),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        }
    }

    /// The most hashes that ever ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// The hashes run so far.
    pub fn hashes(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> AppResult<T> {
        let _permit = self.permits.acquire().await.map_err(|error| {
            AppError::internal(anyhow::anyhow!("password hasher closed: {error}"))
        })?;
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(running, Ordering::SeqCst);
        let result = tokio::task::spawn_blocking(job).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
        result.map_err(|error| AppError::internal(anyhow::anyhow!("password task failed: {error}")))
    }

    /// [`verify`] on a blocking thread.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> AppResult<bool> {
        let (password, stored) = (password.to_owned(), stored.map(str::to_owned));
        self.run(move || verify(&password, stored.as_deref())).await
    }

    /// [`hash`] on a blocking thread.
    pub async fn hash(&self, password: &str) -> AppResult<String> {
        let password = password.to_owned();
        self.run(move || hash(&password)).await?
    }
}

/// Checks a password a user chooses.
pub fn validate_new(password: &str) -> AppResult<()> {
    if password.chars().count() < MIN_LENGTH {
        return Err(AppError::BadUserInput(format!(
            "a password needs at least {MIN_LENGTH} characters"
        )));
    }
    if password.len() > MAX_LENGTH {
        return Err(AppError::BadUserInput(format!(
            "a password may have at most {MAX_LENGTH} bytes"
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
    // Longer passwords are never accepted: checking them costs the same and always fails.
    let (password, stored) = if password.len() > MAX_LENGTH {
        ("", None)
    } else {
        (password, stored)
    };
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
