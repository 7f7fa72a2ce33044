//! What the server keeps in memory until the database says it changed: a bounded LRU map
//! that serves only while it follows a connected event listener ([`crate::events`]), and that
//! does not keep a value read while a change was being heard of (a generation counter).
//! The credential cache and the public answer cache are built on it.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use lru::LruCache;

use crate::events::EventBus;

/// A key: the SHA-256 of what the value answers.
pub type Key = [u8; 32];

/// Values kept until a change is heard of.
#[derive(Debug)]
pub struct Memo<V> {
    entries: Mutex<LruCache<Key, V>>,
    generation: AtomicU64,
    following: AtomicBool,
    connected: OnceLock<Arc<AtomicBool>>,
    enabled: bool,
}

/// A read in progress: its value is kept only if nothing changed meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    key: Key,
    generation: u64,
}

impl<V: Clone> Memo<V> {
    /// At most `capacity` values (0: none kept).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
            generation: AtomicU64::new(0),
            following: AtomicBool::new(false),
            connected: OnceLock::new(),
            enabled: capacity > 0,
        }
    }

    /// Whether values may be served: following the events of a connected listener.
    pub fn serving(&self) -> bool {
        self.enabled
            && self.following.load(Ordering::SeqCst)
            && self
                .connected
                .get()
                .is_some_and(|connected| connected.load(Ordering::SeqCst))
    }

    /// Starts serving, following `events`; false (and nothing served) when the memo keeps
    /// nothing or the bus does not listen to the database — only such a bus can say when to
    /// forget.
    pub fn follow(&self, events: &EventBus) -> bool {
        if !self.enabled || !events.is_listening() {
            return false;
        }
        let _ = self.connected.set(events.connected());
        self.following.store(true, Ordering::SeqCst);
        true
    }

    /// Stops serving for good (the events ended).
    pub fn stop(&self) {
        self.following.store(false, Ordering::SeqCst);
        self.forget(None);
    }

    /// The value kept for `key` if `current` says it still holds; otherwise a ticket to keep
    /// the one about to be read.
    pub fn get(&self, key: Key, current: impl Fn(&V) -> bool) -> Result<V, Ticket> {
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
            Some(value) if current(value) => Ok(value.clone()),
            Some(_) => {
                entries.pop(&key);
                Err(ticket)
            }
            None => Err(ticket),
        }
    }

    /// Keeps what was read for `ticket`, unless a change was heard of since.
    pub fn put(&self, ticket: Ticket, value: V) {
        if !self.serving() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        // Checked under the lock that forgetting takes too.
        if self.generation.load(Ordering::SeqCst) == ticket.generation {
            entries.put(ticket.key, value);
        }
    }

    /// Forgets the values `matches` selects (all when none), and every read in progress.
    pub fn forget(&self, matches: Option<&dyn Fn(&V) -> bool>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        self.generation.fetch_add(1, Ordering::SeqCst);
        match matches {
            None => entries.clear(),
            Some(matches) => {
                let stale: Vec<Key> = entries
                    .iter()
                    .filter(|(_, value)| matches(value))
                    .map(|(key, _)| *key)
                    .collect();
                for key in stale {
                    entries.pop(&key);
                }
            }
        }
    }

    /// How many values are kept.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.len())
    }

    /// Whether no value is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
