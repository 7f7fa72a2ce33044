//! Anonymous answers served from memory. Public data (agencies, published series, the
//! catalogue) changes only when something is written; an anonymous query's answer is kept by
//! the hash of its document, operation name and variables, and every answer is dropped when
//! PostgreSQL says public data may have changed (`public_data_changed`, sent by statement
//! triggers on every table an anonymous answer reads, whatever wrote to it), or when the
//! listener reconnects. A run that overlapped such a change is not kept.
//!
//! Only queries are kept, only answers without errors and of bounded size, and only up to a
//! budget of bytes in all; the cache serves only once it follows the events. An answer is
//! kept as the bytes of its response body, so that serving it again costs a copy of a
//! pointer rather than building and serialising the response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast::error::RecvError;

use crate::events::EventBus;
use crate::memo::{Memo, Ticket};

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

/// Anonymous answers by request.
pub struct PublicCache(Memo<Kept>);

impl PublicCache {
    /// A cache of at most `capacity` answers (0: none) of at most `budget` bytes in all.
    pub fn new(capacity: usize, budget: usize) -> Self {
        Self(Memo::weighed(capacity, budget, |kept| kept.body.len()))
    }

    /// The body of the kept answer of `request` (a JSON response without errors) with the
    /// name of its operation (for logs and metrics), or a ticket to keep the one about to be
    /// made.
    pub fn get(&self, request: &async_graphql::Request) -> Result<(Bytes, Option<String>), Ticket> {
        let mut hash = Sha256::new();
        hash.update(request.query.as_bytes());
        hash.update([0]);
        hash.update(request.operation_name.as_deref().unwrap_or_default());
        hash.update([0]);
        hash.update(
            serde_json::to_vec(&request.variables)
                .unwrap_or_default()
                .as_slice(),
        );
        self.0
            .get(hash.finalize().into(), |kept| kept.at.elapsed() < MAX_AGE)
            .map(|kept| (kept.body, kept.operation))
    }

    /// Keeps the answer of a run for `ticket`, unless its document held more than queries,
    /// it has errors or is large, or public data changed meanwhile.
    pub fn put(
        &self,
        ticket: Ticket,
        queries_only: bool,
        operation: Option<String>,
        response: &async_graphql::Response,
    ) {
        if !self.0.serving() || !queries_only || !response.errors.is_empty() {
            return;
        }
        let Ok(body) = serde_json::to_vec(response) else {
            return;
        };
        if body.len() > MAX_ANSWER_BYTES {
            return;
        }
        self.0.put(
            ticket,
            Kept {
                body: body.into(),
                operation,
                at: Instant::now(),
            },
        );
    }

    /// Forgets every answer (also called after a mutation of this process, so that its
    /// next answers do not wait for the notification).
    pub fn clear(&self) {
        self.0.forget(None);
    }

    /// Follows `events` for as long as the cache lives: from then on it serves.
    pub fn follow(self: &Arc<Self>, events: &EventBus) {
        let mut changes = events.public_data_changes();
        if !self.0.follow(events) {
            return;
        }
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
