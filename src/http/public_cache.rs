//! Anonymous answers served from memory. Public data (agencies, published series, the
//! catalogue) changes only when something is written; an anonymous query's answer is kept by
//! the hash of its document, operation name and variables, and every answer is dropped when
//! PostgreSQL says public data may have changed (`public_data_changed`, sent by statement
//! triggers on every table an anonymous answer reads, whatever wrote to it), or when the
//! listener reconnects. A run that overlapped such a change is not kept.
//!
//! Only queries are kept, only answers without errors and of bounded size; the cache serves
//! only once it follows the events.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast::error::RecvError;

use crate::events::EventBus;

/// Largest answer kept, in bytes of JSON.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Longest an answer is kept, even without news of a change.
const MAX_AGE: Duration = Duration::from_secs(300);

struct Kept {
    data: async_graphql::Value,
    operation: Option<String>,
    at: Instant,
}

/// Anonymous answers by request.
pub struct PublicCache {
    entries: Mutex<LruCache<[u8; 32], Kept>>,
    generation: AtomicU64,
    following: AtomicBool,
    /// Whether the event listener is connected (set when following).
    connected: std::sync::OnceLock<std::sync::Arc<AtomicBool>>,
    enabled: bool,
}

/// A run in progress: its answer is kept only if nothing changed meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    key: [u8; 32],
    generation: u64,
}

impl PublicCache {
    /// A cache of at most `capacity` answers (0: none).
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

    fn serving(&self) -> bool {
        self.enabled
            && self.following.load(Ordering::SeqCst)
            && self
                .connected
                .get()
                .is_some_and(|connected| connected.load(Ordering::SeqCst))
    }

    /// The kept answer of `request`, or a ticket to keep the one about to be made.
    /// With the answer comes the name of its operation (for logs and metrics).
    #[allow(clippy::type_complexity)]
    pub fn get(
        &self,
        request: &async_graphql::Request,
    ) -> Result<(async_graphql::Response, Option<String>), Ticket> {
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
        let ticket = Ticket {
            key: hash.finalize().into(),
            generation: self.generation.load(Ordering::SeqCst),
        };
        if !self.serving() {
            return Err(ticket);
        }
        let Ok(mut entries) = self.entries.lock() else {
            return Err(ticket);
        };
        match entries.get(&ticket.key) {
            Some(kept) if kept.at.elapsed() < MAX_AGE => Ok((
                async_graphql::Response::new(kept.data.clone()),
                kept.operation.clone(),
            )),
            Some(_) => {
                entries.pop(&ticket.key);
                Err(ticket)
            }
            None => Err(ticket),
        }
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
        if !self.serving() || !queries_only || !response.errors.is_empty() {
            return;
        }
        if serde_json::to_vec(&response.data).map_or(usize::MAX, |json| json.len())
            > MAX_ANSWER_BYTES
        {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if self.generation.load(Ordering::SeqCst) != ticket.generation {
            return;
        }
        entries.put(
            ticket.key,
            Kept {
                data: response.data.clone(),
                operation,
                at: Instant::now(),
            },
        );
    }

    /// Forgets every answer (also called after a mutation of this process, so that its
    /// next answers do not wait for the notification).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            entries.clear();
        }
    }

    /// Follows `events` for as long as the cache lives: from then on it serves. Only a bus
    /// that listens to the database can say when to forget.
    pub fn follow(self: &Arc<Self>, events: &EventBus) {
        if !self.enabled || !events.is_listening() {
            return;
        }
        let mut changes = events.public_data_changes();
        let cache = Arc::downgrade(self);
        let _ = self.connected.set(events.connected());
        self.following.store(true, Ordering::SeqCst);
        tokio::spawn(async move {
            loop {
                let event = changes.recv().await;
                let Some(cache) = cache.upgrade() else {
                    return;
                };
                cache.clear();
                if matches!(event, Err(RecvError::Closed)) {
                    cache.following.store(false, Ordering::SeqCst);
                    return;
                }
            }
        });
    }

    /// How many answers are kept.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.len())
    }

    /// Whether no answer is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
