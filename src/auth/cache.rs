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

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast::{self, error::RecvError};

use super::tokens::VerifiedToken;
use crate::events::{CredentialsChange, EventBus, Revocation};
use crate::memo::{Memo, Ticket};
use crate::models::ids::UserId;
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
    /// What the entry weighs: the token's length, its roles and revocation identifiers.
    bytes: usize,
}

/// Verified tokens and their credentials, by the token's SHA-256.
#[derive(Debug)]
pub struct CredentialCache(Memo<Entry>, broadcast::Sender<()>);

impl CredentialCache {
    /// A cache of at most `capacity` tokens (0: none kept), of at most `budget` bytes of
    /// token in all.
    pub fn new(capacity: usize, budget: usize) -> Self {
        Self(
            Memo::weighed(capacity, budget, |entry| entry.bytes),
            broadcast::channel(16).0,
        )
    }

    /// Hears, from now on, each time the cache has forgotten credentials — after it has, so
    /// that what was kept from them can be forgotten in turn without a request slipping in
    /// between with the old ones.
    pub fn forgettings(&self) -> broadcast::Receiver<()> {
        self.1.subscribe()
    }

    fn forgot(&self) {
        // Nobody listening is no error.
        drop(self.1.send(()));
    }

    /// The entry of `token`, if it is known and still current; otherwise a ticket to store
    /// what the caller reads.
    pub fn get(&self, token: &str) -> Result<Entry, Ticket> {
        let key = Sha256::digest(token.trim().as_bytes()).into();
        self.0.get(key, |entry| entry.valid_until > Utc::now())
    }

    /// Keeps what was read for `ticket`, unless a change was heard of since.
    pub fn put(
        &self,
        ticket: Ticket,
        token_text: &str,
        token: &VerifiedToken,
        credentials: &Credentials,
    ) {
        if credentials.revoked {
            return;
        }
        self.0.put(
            ticket,
            Entry {
                token: token.clone(),
                credentials: credentials.clone(),
                valid_until: token.expires_at.min(Utc::now() + MAX_AGE),
                bytes: token_text.len()
                    + credentials.roles.len() * 16
                    + token.revocation_ids.iter().map(String::len).sum::<usize>(),
            },
        );
    }

    /// Drops the tokens a revocation ends (also called by the process that revoked them, so
    /// that its own next request does not wait for the notification).
    pub fn revoke(&self, revocation: &Revocation) {
        self.0.forget(Some(&|entry: &Entry| {
            revocation
                .session_id
                .is_some_and(|session| entry.token.session_id == Some(session))
                || entry
                    .token
                    .revocation_ids
                    .iter()
                    .any(|id| revocation.revocation_ids.contains(id))
        }));
        self.forgot();
    }

    /// Drops the tokens of a user whose credentials this process just changed.
    pub fn forget_user(&self, user: UserId) {
        self.changed(&CredentialsChange {
            user_id: Some(user.0),
        });
    }

    fn changed(&self, change: &CredentialsChange) {
        match change.user_id {
            Some(user) => self
                .0
                .forget(Some(&|entry: &Entry| entry.token.user_id.0 == user)),
            None => self.0.forget(None),
        }
        self.forgot();
    }

    /// Follows the changes `events` hears of, for as long as the cache lives; from then on
    /// the cache serves.
    pub fn follow(self: &Arc<Self>, events: &EventBus) {
        let mut revocations = events.revocations();
        let mut changes = events.credential_changes();
        if !self.0.follow(events) {
            return;
        }
        let cache = Arc::downgrade(self);
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
                    Err(RecvError::Lagged(_)) => {
                        cache.0.forget(None);
                        cache.forgot();
                    }
                    Err(RecvError::Closed) => {
                        cache.0.stop();
                        return;
                    }
                }
            }
        });
    }

    /// How many tokens are kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no token is kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
