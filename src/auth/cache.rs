//! Authentication served from memory: a presented token's verified contents and its user's
//! credentials (platform staff, roles), kept until the token expires — at most a minute, so
//! that a check appended to the token with an earlier time is met — and dropped the moment
//! the database says something changed.
//!
//! Every server process learns of changes through PostgreSQL: revocations (sign-out, revoked
//! sessions) on the `token_revocations` channel, and changes of users, memberships and
//! superagency links on `credentials_changed`, sent by triggers whatever wrote them. A
//! listener that lost its connection may have missed some: the cache is then emptied. A read
//! of the database that overlapped a change is not kept (a generation counter), so the cache
//! never holds what was true before a change it has heard of.
//!
//! The cache serves only once it follows the events ([`CredentialCache::follow`]); until then
//! every request reads the database.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use lru::LruCache;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast::error::RecvError;

use super::tokens::VerifiedToken;
use crate::events::{CredentialsChange, EventBus, Revocation};
use crate::models::user::Credentials;

/// Longest an entry is served without verifying its token again.
const MAX_AGE: chrono::Duration = chrono::Duration::seconds(60);

/// What a cached token stands for.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The token's contents.
    pub token: VerifiedToken,
    /// Its user's credentials.
    pub credentials: Credentials,
    valid_until: DateTime<Utc>,
}

/// Verified tokens and their credentials, by the token's SHA-256.
#[derive(Debug)]
pub struct CredentialCache {
    entries: Mutex<LruCache<[u8; 32], Entry>>,
    generation: AtomicU64,
    following: AtomicBool,
    /// Whether the event listener is connected (set when following).
    connected: std::sync::OnceLock<std::sync::Arc<AtomicBool>>,
    enabled: bool,
}

/// A read of the database in progress: kept only if nothing changed meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    key: [u8; 32],
    generation: u64,
}

impl CredentialCache {
    /// A cache of at most `capacity` tokens (0: none kept).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
            generation: AtomicU64::new(0),
            following: AtomicBool::new(false),
            connected: std::sync::OnceLock::new(),
            enabled: capacity > 0,
        }
    }

    /// Whether entries may be served: following events over a connected listener.
    fn serving(&self) -> bool {
        self.enabled
            && self.following.load(Ordering::SeqCst)
            && self
                .connected
                .get()
                .is_some_and(|connected| connected.load(Ordering::SeqCst))
    }

    fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.trim().as_bytes()).into()
    }

    /// The entry of `token`, if it is known and still current; otherwise a ticket to store
    /// what the caller reads.
    pub fn get(&self, token: &str) -> Result<Entry, Ticket> {
        let key = Self::key(token);
        let ticket = Ticket {
            key,
            generation: self.generation.load(Ordering::SeqCst),
        };
        if !self.serving() {
            return Err(ticket);
        }
        let Ok(mut entries) = self.entries.lock() else {
            return Err(ticket);
        };
        match entries.get(&key) {
            Some(entry) if entry.valid_until > Utc::now() => Ok(entry.clone()),
            Some(_) => {
                entries.pop(&key);
                Err(ticket)
            }
            None => Err(ticket),
        }
    }

    /// Keeps what was read for `ticket`, unless a change was heard of since.
    pub fn put(&self, ticket: Ticket, token: &VerifiedToken, credentials: &Credentials) {
        if !self.serving() || credentials.revoked {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        // Checked under the lock that invalidations take too.
        if self.generation.load(Ordering::SeqCst) != ticket.generation {
            return;
        }
        let valid_until = token.expires_at.min(Utc::now() + MAX_AGE);
        entries.put(
            ticket.key,
            Entry {
                token: token.clone(),
                credentials: credentials.clone(),
                valid_until,
            },
        );
    }

    /// Drops the entries `matches` selects (all when none), and every read in progress.
    fn invalidate(&self, matches: Option<&dyn Fn(&Entry) -> bool>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        self.generation.fetch_add(1, Ordering::SeqCst);
        match matches {
            None => entries.clear(),
            Some(matches) => {
                let stale: Vec<[u8; 32]> = entries
                    .iter()
                    .filter(|(_, entry)| matches(entry))
                    .map(|(key, _)| *key)
                    .collect();
                for key in stale {
                    entries.pop(&key);
                }
            }
        }
    }

    /// Drops the tokens a revocation ends (also called by the process that revoked them, so
    /// that its own next request does not wait for the notification).
    pub fn revoke(&self, revocation: &Revocation) {
        self.invalidate(Some(&|entry: &Entry| {
            revocation
                .session_id
                .is_some_and(|session| entry.token.session_id == Some(session))
                || entry
                    .token
                    .revocation_ids
                    .iter()
                    .any(|id| revocation.revocation_ids.contains(id))
        }));
    }

    /// Drops the tokens of a user whose credentials this process just changed.
    pub fn forget_user(&self, user: crate::models::ids::UserId) {
        self.changed(&CredentialsChange {
            user_id: Some(user.0),
        });
    }

    fn changed(&self, change: &CredentialsChange) {
        match change.user_id {
            Some(user) => self.invalidate(Some(&|entry: &Entry| entry.token.user_id.0 == user)),
            None => self.invalidate(None),
        }
    }

    /// Follows the changes `events` hears of, for as long as the cache lives; from then on
    /// the cache serves.
    pub fn follow(self: &std::sync::Arc<Self>, events: &EventBus) {
        // Only a bus that listens to the database can say when to forget.
        if !self.enabled || !events.is_listening() {
            return;
        }
        let mut revocations = events.revocations();
        let mut changes = events.credential_changes();
        let cache = std::sync::Arc::downgrade(self);
        let _ = self.connected.set(events.connected());
        self.following.store(true, Ordering::SeqCst);
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    revocation = revocations.recv() => revocation.map(Ok),
                    change = changes.recv() => change.map(Err),
                };
                let Some(cache) = cache.upgrade() else {
                    return;
                };
                match event {
                    Ok(Ok(revocation)) => cache.revoke(&revocation),
                    Ok(Err(change)) => cache.changed(&change),
                    // Missed events: forget everything.
                    Err(RecvError::Lagged(_)) => cache.invalidate(None),
                    Err(RecvError::Closed) => {
                        cache.following.store(false, Ordering::SeqCst);
                        cache.invalidate(None);
                        return;
                    }
                }
            }
        });
    }

    /// How many tokens are kept.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.len())
    }

    /// Whether no token is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
