//! Streaming read replicas (`DATABASE_REPLICA_URLS`): PostgreSQL's own physical replication
//! does the copying; this module only chooses where a read goes.
//!
//! Reads go to the replicas in turn. A reader that has just written (a mutation) must see its
//! write: the primary's WAL position after the write is remembered for that reader, and until
//! a replica has replayed up to it, the reader's reads go to that replica only once it has,
//! and to the primary meanwhile. The positions are kept in this process, so a reader whose
//! next request reaches another server process reads there as any other reader does.
//!
//! Each replica is asked every second whether it answers ([`Replicas::watch`]); one that does
//! not is skipped until it does again, and its pool's idle connections, dead with it, are
//! dropped as the checks meet them.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use diesel::sql_types::{BigInt, Nullable};
use diesel_async::RunQueryDsl;
use lru::LruCache;

use super::{Pool, PoolSettings, connect_with};

/// Readers whose last write is remembered.
const REMEMBERED_WRITERS: usize = 10_000;

/// The primary's position just after everything committed so far: the end of the WAL
/// inserted, which covers commit records not yet flushed.
const PRIMARY_POSITION: &str = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8 AS lsn";

/// How far a standby has replayed; NULL on a server that is not a standby (then everything
/// committed there is visible).
const REPLAYED_POSITION: &str = "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8 AS lsn";

/// A reader's last write: the primary's WAL position after it, and which replicas were seen
/// to have replayed it (a bit each).
#[derive(Debug, Clone, Copy)]
struct Written {
    position: i64,
    replayed: u64,
}

/// The replicas and the readers that must not read from them yet.
pub struct Replicas {
    pools: Vec<Pool>,
    next: AtomicUsize,
    /// The replicas that did not answer their last check (a bit each).
    down: AtomicU64,
    written: Mutex<LruCache<u64, Written>>,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field("replicas", &self.pools.len())
            .finish_non_exhaustive()
    }
}

impl Default for Replicas {
    fn default() -> Self {
        Self::over(Vec::new())
    }
}

fn reader_key(reader: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    reader.hash(&mut hasher);
    hasher.finish()
}

impl Replicas {
    /// Replicas served by these pools (none: every read goes to the primary). At most 64.
    pub fn over(mut pools: Vec<Pool>) -> Self {
        pools.truncate(64);
        Self {
            pools,
            next: AtomicUsize::new(0),
            down: AtomicU64::new(0),
            written: Mutex::new(LruCache::new(
                NonZeroUsize::new(REMEMBERED_WRITERS).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// Pools over each URL with the primary's settings; each replica must answer now.
    pub async fn connect(urls: &[String], settings: &PoolSettings) -> anyhow::Result<Self> {
        anyhow::ensure!(urls.len() <= 64, "at most 64 read replicas");
        let mut pools = Vec::with_capacity(urls.len());
        for url in urls {
            pools.push(connect_with(url, settings.clone()).await?);
        }
        Ok(Self::over(pools))
    }

    /// Whether any replica is configured.
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    /// The pool `reader` (anyone when None) should read from: the next replica, provided it
    /// has replayed the reader's last write; None means the primary.
    pub async fn reader(&self, reader: Option<&str>) -> Option<Pool> {
        if self.pools.is_empty() {
            return None;
        }
        let down = AtomicU64::load(&self.down, Ordering::Relaxed);
        let up = self.pools.len() - down.count_ones() as usize;
        if up == 0 {
            return None;
        }
        // The next replica in turn among those that answer.
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % up;
        let index = (0..self.pools.len())
            .filter(|index| down & (1u64 << index) == 0)
            .nth(turn)?;
        let pool = &self.pools[index];
        let Some(key) = reader.map(reader_key) else {
            return Some(pool.clone());
        };
        let written = self.written.lock().ok()?.get(&key).copied();
        let Some(written) = written else {
            return Some(pool.clone());
        };
        let bit = 1u64 << index;
        if written.replayed & bit != 0 {
            return Some(pool.clone());
        }
        let replayed = replayed_position(pool).await?;
        if replayed.is_some_and(|replayed| replayed < written.position) {
            return None;
        }
        if let Ok(mut remembered) = self.written.lock()
            && let Some(entry) = remembered.get_mut(&key)
            && entry.position == written.position
        {
            entry.replayed |= bit;
            if entry.replayed.count_ones() as usize == self.pools.len() {
                remembered.pop(&key);
            }
        }
        Some(pool.clone())
    }

    /// Asks every replica whether it answers, within `within`, and marks the ones that do
    /// not as down (and the others as up).
    pub async fn check(&self, within: Duration) {
        let checks = self.pools.iter().map(|pool| async move {
            // A pool whose every open connection is in use is busy, not down: no check then.
            let state = pool.state();
            if state.idle_connections == 0 && state.connections > 0 {
                return None;
            }
            let answered = tokio::time::timeout(within, async {
                let mut conn = pool.get().await.ok()?;
                diesel::sql_query("SELECT 1").execute(&mut conn).await.ok()
            })
            .await
            .ok()
            .flatten()
            .is_some();
            Some(answered)
        });
        let outcomes = futures_util::future::join_all(checks).await;
        for (index, answered) in outcomes.into_iter().enumerate() {
            let Some(answered) = answered else { continue };
            let bit = 1u64 << index;
            let was_down = if answered {
                self.down.fetch_and(!bit, Ordering::Relaxed) & bit != 0
            } else {
                self.down.fetch_or(bit, Ordering::Relaxed) & bit == 0
            };
            if was_down && answered {
                tracing::info!(replica = index, "a read replica answers again");
            } else if was_down {
                tracing::warn!(
                    replica = index,
                    "a read replica does not answer; reading elsewhere"
                );
            }
        }
    }

    /// Checks the replicas every second for as long as they are in use.
    pub fn watch(self: &Arc<Self>) {
        if self.pools.is_empty() {
            return;
        }
        let replicas: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(replicas) = replicas.upgrade() else {
                    return;
                };
                replicas.check(Duration::from_secs(1)).await;
            }
        });
    }

    /// Remembers that `reader` has just written through `primary`: its reads stay on the
    /// primary until a replica has replayed that far.
    pub async fn wrote(&self, primary: &Pool, reader: &str) {
        if self.pools.is_empty() {
            return;
        }
        let position = match primary.get().await {
            Ok(mut conn) => {
                diesel::sql_query(PRIMARY_POSITION)
                    .load::<Position>(&mut conn)
                    .await
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the primary's WAL position");
                return;
            }
        };
        match position
            .ok()
            .and_then(|rows| rows.into_iter().next().and_then(|row| row.lsn))
        {
            Some(position) => {
                if let Ok(mut remembered) = self.written.lock() {
                    remembered.put(
                        reader_key(reader),
                        Written {
                            position,
                            replayed: 0,
                        },
                    );
                }
            }
            None => tracing::warn!("cannot read the primary's WAL position"),
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Position {
    #[diesel(sql_type = Nullable<BigInt>)]
    lsn: Option<i64>,
}

/// The replica's replayed position (None inside: not a standby), or None when the replica
/// cannot be asked (then the primary serves the read).
async fn replayed_position(pool: &Pool) -> Option<Option<i64>> {
    let mut conn = pool.get().await.ok()?;
    let rows = diesel::sql_query(REPLAYED_POSITION)
        .load::<Position>(&mut conn)
        .await
        .ok()?;
    Some(rows.into_iter().next().and_then(|row| row.lsn))
}
