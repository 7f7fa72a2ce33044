//! What the server keeps in memory until the database says it changed: a bounded LRU map
//! that serves only while it follows a connected event listener ([`crate::events`]), and that
//! does not keep a value read while a change was being heard of (a generation counter).
//! A memo may also hold a budget of bytes (or any weight of its values): the least recently
//! used values go until the kept ones fit in it. The credential cache and the answer caches
//! are built on it.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use lru::LruCache;

use crate::events::EventBus;

/// A key: the SHA-256 of what the value answers.
pub type Key = [u8; 32];

/// The kept values and their total weight.
#[derive(Debug)]
struct Entries<V> {
    lru: LruCache<Key, V>,
    weight: usize,
}

/// Values kept until a change is heard of.
#[derive(Debug)]
pub struct Memo<V> {
    entries: Mutex<Entries<V>>,
    budget: usize,
    weigh: fn(&V) -> usize,
    generation: AtomicU64,
    following: AtomicBool,
    connected: OnceLock<Arc<AtomicBool>>,
    /// The listener's connections so far, and the count the kept values were read under.
    connections: OnceLock<Arc<AtomicU64>>,
    seen_connections: AtomicU64,
    enabled: bool,
}

/// The moment a read began.
#[derive(Debug, Clone, Copy)]
pub struct Began {
    generation: u64,
    connections: u64,
}

/// A read in progress: its value is kept only if nothing changed meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    key: Key,
    generation: u64,
    /// The listener's connections when the read began.
    connections: u64,
}

impl<V: Clone> Memo<V> {
    /// At most `capacity` values (0: none kept).
    pub fn new(capacity: usize) -> Self {
        Self::weighed(capacity, usize::MAX, |_| 0)
    }

    /// At most `capacity` values, of at most `budget` in total as `weigh` counts them.
    pub fn weighed(capacity: usize, budget: usize, weigh: fn(&V) -> usize) -> Self {
        Self {
            entries: Mutex::new(Entries {
                lru: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
                weight: 0,
            }),
            budget,
            weigh,
            generation: AtomicU64::new(0),
            following: AtomicBool::new(false),
            connected: OnceLock::new(),
            connections: OnceLock::new(),
            seen_connections: AtomicU64::new(0),
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
        let connections = events.connections();
        self.seen_connections
            .store(connections.load(Ordering::SeqCst), Ordering::SeqCst);
        let _ = self.connections.set(connections);
        self.following.store(true, Ordering::SeqCst);
        true
    }

    /// Stops serving for good (the events ended).
    pub fn stop(&self) {
        self.following.store(false, Ordering::SeqCst);
        self.forget(None);
    }

    /// Marks the start of a read whose key is not known yet: a value read after it is kept
    /// only if nothing changed since this moment.
    pub fn begin(&self) -> Began {
        Began {
            generation: self.generation.load(Ordering::SeqCst),
            connections: self.connections(),
        }
    }

    /// The value kept for `key` if `current` says it still holds; otherwise a ticket to keep
    /// the one about to be read.
    pub fn get(&self, key: Key, current: impl Fn(&V) -> bool) -> Result<V, Ticket> {
        self.get_since(self.begin(), key, current)
    }

    /// As [`Memo::get`], for a read that began at `began`.
    pub fn get_since(
        &self,
        began: Began,
        key: Key,
        current: impl Fn(&V) -> bool,
    ) -> Result<V, Ticket> {
        let ticket = Ticket {
            key,
            generation: began.generation,
            connections: began.connections,
        };
        if !self.serving() {
            return Err(ticket);
        }
        let Ok(mut entries) = self.entries.lock() else {
            return Err(ticket);
        };
        self.catch_up(&mut entries);
        match entries.lru.get(&key) {
            Some(value) if current(value) => Ok(value.clone()),
            Some(_) => {
                if let Some(stale) = entries.lru.pop(&key) {
                    entries.weight -= (self.weigh)(&stale);
                }
                Err(ticket)
            }
            None => Err(ticket),
        }
    }

    /// Whether what is read for `ticket` would still be kept: the memo serves and nothing
    /// changed since the read began (a value may still be refused for its weight).
    pub fn current(&self, ticket: &Ticket) -> bool {
        self.serving()
            && self.generation.load(Ordering::SeqCst) == ticket.generation
            && self.connections() == ticket.connections
    }

    /// Keeps what was read for `ticket`, unless a change was heard of since or it alone
    /// outweighs the budget; the least recently used values go until the rest fit.
    pub fn put(&self, ticket: Ticket, value: V) {
        let weight = (self.weigh)(&value);
        if !self.serving() || weight > self.budget {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        self.catch_up(&mut entries);
        // Checked under the lock that forgetting takes too. A read that began before the
        // listener connected again may have missed a change.
        if self.generation.load(Ordering::SeqCst) != ticket.generation
            || self.connections() != ticket.connections
        {
            return;
        }
        entries.weight += weight;
        if let Some((_, gone)) = entries.lru.push(ticket.key, value) {
            entries.weight -= (self.weigh)(&gone);
        }
        while entries.weight > self.budget {
            let Some((_, gone)) = entries.lru.pop_lru() else {
                break;
            };
            entries.weight -= (self.weigh)(&gone);
        }
    }

    /// The listener's connections so far (0 before it follows them).
    fn connections(&self) -> u64 {
        self.connections
            .get()
            .map_or(0, |connections| connections.load(Ordering::SeqCst))
    }

    /// Forgets everything when the listener has connected again since the values were kept:
    /// what changed in between was not heard of. Done here, under the lock, rather than left
    /// to the task that hears of the reconnection, so that no value from before is served in
    /// between; reads that began before are refused by their ticket's count.
    fn catch_up(&self, entries: &mut Entries<V>) {
        let now = self.connections();
        if self.seen_connections.swap(now, Ordering::SeqCst) != now {
            entries.lru.clear();
            entries.weight = 0;
        }
    }

    /// Forgets the values `matches` selects (all when none), and every read in progress.
    pub fn forget(&self, matches: Option<&dyn Fn(&V) -> bool>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        self.generation.fetch_add(1, Ordering::SeqCst);
        match matches {
            None => {
                entries.lru.clear();
                entries.weight = 0;
            }
            Some(matches) => {
                let stale: Vec<Key> = entries
                    .lru
                    .iter()
                    .filter(|(_, value)| matches(value))
                    .map(|(key, _)| *key)
                    .collect();
                for key in stale {
                    if let Some(gone) = entries.lru.pop(&key) {
                        entries.weight -= (self.weigh)(&gone);
                    }
                }
            }
        }
    }

    /// How many values are kept.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.lru.len())
    }

    /// The total weight of the kept values.
    pub fn weight(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.weight)
    }

    /// Whether no value is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serving(memo: &Memo<Vec<u8>>) {
        assert!(memo.connected.set(Arc::new(AtomicBool::new(true))).is_ok());
        assert!(memo.connections.set(Arc::new(AtomicU64::new(1))).is_ok());
        memo.seen_connections.store(1, Ordering::SeqCst);
        memo.following.store(true, Ordering::SeqCst);
    }

    fn key(n: u8) -> Key {
        [n; 32]
    }

    fn keep(memo: &Memo<Vec<u8>>, n: u8, bytes: usize) {
        let ticket = Ticket {
            key: key(n),
            generation: memo.generation.load(Ordering::SeqCst),
            connections: memo.connections(),
        };
        memo.put(ticket, vec![n; bytes]);
    }

    #[test]
    fn the_least_recently_used_values_go_until_the_rest_fit_the_budget() {
        let memo = Memo::weighed(100, 1_000, Vec::len);
        serving(&memo);
        keep(&memo, 1, 400);
        keep(&memo, 2, 400);
        assert_eq!(memo.weight(), 800);
        // 1 is used again, so 2 is the least recently used.
        assert!(memo.get(key(1), |_| true).is_ok());
        keep(&memo, 3, 400);
        assert_eq!(memo.len(), 2);
        assert_eq!(memo.weight(), 800);
        assert!(memo.get(key(2), |_| true).is_err());
        assert!(memo.get(key(1), |_| true).is_ok());
        assert!(memo.get(key(3), |_| true).is_ok());

        // A value above the whole budget is not kept, and evicts nothing.
        keep(&memo, 4, 1_001);
        assert!(memo.get(key(4), |_| true).is_err());
        assert_eq!(memo.weight(), 800);

        // Replacing a value counts only the new one.
        keep(&memo, 3, 100);
        assert_eq!(memo.weight(), 500);

        // A value found stale goes, and its weight with it.
        assert!(memo.get(key(3), |_| false).is_err());
        assert_eq!(memo.weight(), 400);

        memo.forget(Some(&|value: &Vec<u8>| value.first() == Some(&1)));
        assert_eq!((memo.len(), memo.weight()), (0, 0));
        keep(&memo, 5, 10);
        memo.forget(None);
        assert_eq!((memo.len(), memo.weight()), (0, 0));
    }

    #[test]
    fn nothing_kept_before_the_listener_reconnected_is_served_after() {
        let memo = Memo::new(10);
        serving(&memo);
        keep(&memo, 1, 10);
        assert!(memo.get(key(1), |_| true).is_ok());
        // A read begins; the listener drops and connects again (changes went unheard).
        let ticket = memo.get(key(2), |_| true).unwrap_err();
        let connected = memo.connected.get().unwrap();
        connected.store(false, Ordering::SeqCst);
        assert!(memo.get(key(1), |_| true).is_err(), "not served while away");
        memo.connections
            .get()
            .unwrap()
            .fetch_add(1, Ordering::SeqCst);
        connected.store(true, Ordering::SeqCst);
        assert!(memo.get(key(1), |_| true).is_err(), "forgotten at once");
        // The read that began before is not kept either.
        memo.put(ticket, vec![2]);
        assert!(memo.get(key(2), |_| true).is_err());
        assert_eq!(memo.len(), 0);
        keep(&memo, 3, 10);
        assert!(memo.get(key(3), |_| true).is_ok(), "serving again");
    }

    #[test]
    fn the_count_bounds_a_memo_without_a_budget() {
        let memo = Memo::new(2);
        serving(&memo);
        for n in 0..5 {
            keep(&memo, n, 1 << 20);
        }
        assert_eq!((memo.len(), memo.weight()), (2, 0));
    }
}
