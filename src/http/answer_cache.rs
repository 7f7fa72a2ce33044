//! Answers served from memory, in two caches of one kind.
//!
//! - **Anonymous answers.** Public data (agencies, published series, the catalogue) changes
//!   only when something is written; an anonymous query's answer is kept by the hash of its
//!   document, operation name and variables, and every answer is dropped when PostgreSQL says
//!   public data may have changed (`public_data_changed`, sent by statement triggers on every
//!   table an anonymous answer reads, whatever wrote to it).
//! - **Signed-in answers.** Kept by the same hash and the viewer's standing: the user, whether
//!   platform staff, and the roles by agency as authentication found them. Two sessions of one
//!   user share their answers; a change of roles is another key at once. They are dropped on
//!   `public_data_changed` and on `member_data_changed`, which triggers send on every other
//!   table a signed-in answer reads. Tokens narrowed by their holder are never answered from
//!   memory: their checks may depend on the time.
//!
//! Signed-in answers are also dropped each time the credential cache forgets credentials
//! (after it has), and an answer worked out within a second of its token's expiry is not
//! kept (what the token reads may shrink during the request, without an error).
//!
//! Both are also dropped when the listener reconnects (it may have missed a change) and by
//! this process's own writes at once (a signed-in user's mutation); a run that overlapped a
//! change — from before its viewer was authenticated — is not kept. Only
//! queries are kept, only answers without errors and of bounded size, and only up to a budget
//! of bytes in all; a cache serves only once it follows the events. An answer is kept as the
//! bytes of its response body, so that serving it again costs a copy of a pointer rather than
//! building and serialising the response.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::auth::SignedIn;
use crate::events::EventBus;
use crate::memo::{Began, Memo, Ticket};

/// Largest answer kept, in bytes of JSON.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Longest an answer is kept, even without news of a change.
const MAX_AGE: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct Kept {
    body: Bytes,
    operation: Option<String>,
    at: Instant,
}

/// Answers by viewer and request.
pub struct AnswerCache(Memo<Kept>);

/// Whose answers: the part of a key that names the viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing(Vec<u8>);

impl Standing {
    /// Anyone's: the anonymous answers.
    pub fn anonymous() -> Self {
        Self(Vec::new())
    }

    /// A signed-in user's, by everything their answers depend on besides the data: the user,
    /// platform staff or not, and the roles by agency. None for a narrowed token, whose checks
    /// may depend on the time.
    pub fn of(user: &SignedIn) -> Option<Self> {
        if user.token.revocation_ids.len() != 1 {
            return None;
        }
        let mut roles: Vec<_> = user.roles.iter().collect();
        roles.sort_unstable_by_key(|(agency, _)| **agency);
        let mut standing = format!("user {} staff {}", user.user_id.0, user.is_platform_admin);
        for (agency, role) in roles {
            let _ = write!(standing, " {}:{role:?}", agency.0);
        }
        Some(Self(standing.into_bytes()))
    }
}

impl AnswerCache {
    /// A cache of at most `capacity` answers (0: none) of at most `budget` bytes in all.
    pub fn new(capacity: usize, budget: usize) -> Self {
        Self(Memo::weighed(capacity, budget, |kept| kept.body.len()))
    }

    /// Marks the start of a request, before its viewer is known: an answer is kept only if
    /// nothing changed since (credentials included).
    pub fn begin(&self) -> Began {
        self.0.begin()
    }

    /// The body of the kept answer of `request` for `standing` (a JSON response without
    /// errors) with the name of its operation (for logs and metrics), or a ticket to keep the
    /// one about to be made, for a request that began at `began` (none when the request is not
    /// one to keep).
    pub fn get(
        &self,
        began: Began,
        standing: &Standing,
        request: &async_graphql::Request,
    ) -> Result<(Bytes, Option<String>), Option<Ticket>> {
        let mut hash = Sha256::new();
        let mut part = |bytes: &[u8]| {
            hash.update(u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_le_bytes());
            hash.update(bytes);
        };
        part(&standing.0);
        part(request.query.as_bytes());
        // No operation name and an empty one are different requests (the second is an error).
        match &request.operation_name {
            None => part(b"none"),
            Some(name) => part(format!("some {name}").as_bytes()),
        }
        match serde_json::to_vec(&request.variables) {
            Ok(variables) => part(&variables),
            // Not a key to share with other such requests: never kept.
            Err(_) => return Err(None),
        }
        self.0
            .get_since(began, hash.finalize().into(), |kept| {
                kept.at.elapsed() < MAX_AGE
            })
            .map(|kept| (kept.body, kept.operation))
            .map_err(Some)
    }

    /// Whether this cache serves at all now (a key is worth working out).
    pub fn serving(&self) -> bool {
        self.0.serving()
    }

    /// Whether an answer worked out for `ticket` would still be kept: nothing it may have
    /// read changed since the request began.
    pub fn wants(&self, ticket: &Ticket) -> bool {
        self.0.current(ticket)
    }

    /// Keeps `body`, the JSON of an answer without errors to a document of queries only, for
    /// `ticket`, unless it is large or something changed meanwhile.
    pub fn keep(&self, ticket: Ticket, operation: Option<String>, body: Bytes) {
        if body.len() > MAX_ANSWER_BYTES {
            return;
        }
        self.0.put(
            ticket,
            Kept {
                body,
                operation,
                at: Instant::now(),
            },
        );
    }

    /// Forgets every answer (also called after a write of this process, so that its next
    /// answers do not wait for the notification).
    pub fn clear(&self) {
        self.0.forget(None);
    }

    /// Follows `events` for as long as the cache lives, forgetting everything at each news
    /// from any of `changes`: from then on it serves.
    ///
    /// Each of `changes` must live as long as the cache: when one closes, the cache can no
    /// longer tell when to forget, and stops serving for good.
    pub fn follow(self: &Arc<Self>, events: &EventBus, changes: Vec<broadcast::Receiver<()>>) {
        debug_assert!(!changes.is_empty(), "a cache must hear of changes");
        if changes.is_empty() || !self.0.follow(events) {
            return;
        }
        for mut changes in changes {
            let cache = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    let event = changes.recv().await;
                    let Some(cache) = cache.upgrade() else {
                        return;
                    };
                    if matches!(event, Err(RecvError::Closed)) {
                        cache.0.stop();
                        return;
                    }
                    cache.clear();
                }
            });
        }
    }

    /// How many answers are kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The bytes of the kept answers.
    pub fn bytes(&self) -> usize {
        self.0.weight()
    }

    /// Whether no answer is kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
