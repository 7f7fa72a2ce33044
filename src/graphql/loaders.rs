//! Dataloaders: every relation between objects is fetched through here, batched into one
//! query per key kind and request. A fresh loader is made for each request, so nothing is
//! cached across requests or viewers.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::hash::Hash;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::Duration;

use std::any::TypeId;

use async_graphql::dataloader::{
    CacheFactory, CacheStorage, DataLoader, HashMapCache, Loader, NoCache,
};
use chrono::{DateTime, Utc};
use futures_channel::mpsc::{self, UnboundedReceiver};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{Gql, OperationName};
use crate::db::{Pool, PooledConnection};
use crate::error::{AppError, AppResult};
use crate::models::agency::{Agency, AgencySetting, Jurisdiction};
use crate::models::datapoint::{Cell, DatapointChange, ReportValue, SeriesQuery, SeriesValue};
use crate::models::ids::{AgencyId, ReportId, SpreadsheetId, UserId};
use crate::models::metric_setting::{AgencyMetricSettings, SettingChange};
use crate::models::report::{Report, StatusChange};
use crate::models::spreadsheet::{ReportChange, SpreadsheetMessage};
use crate::models::user::{Membership, RoleChange, User};
use diesel_async::AsyncPgConnection;

/// Where a request's statements go: the primary, or for a document of queries only the read
/// replica chosen for the request (the primary when that replica cannot be reached).
///
/// The loaders' batches in flight at the same time share one connection: batches of the same
/// pass are sent one after the other without waiting for each other's answers (PostgreSQL's
/// pipelining), instead of each taking a connection from the pool and a round trip of its
/// own. The connection goes back to the pool as soon as no batch uses it, so a request never
/// holds one while it waits for another.
///
/// Resolvers that need a connection of their own (writes, paged lists) take one within the
/// request's budget: a list of such fields waits for a few connections in turn instead of
/// taking the whole pool from every other request.
#[derive(Clone)]
pub struct Route(Arc<RouteInner>);

struct RouteInner {
    primary: Pool,
    replica: Option<(Pool, OperationName)>,
    shared: tokio::sync::Mutex<Weak<PooledConnection<'static>>>,
    budget: tokio::sync::Semaphore,
}

/// A connection of a request's own, held within its budget.
pub struct Budgeted<'a> {
    conn: PooledConnection<'a>,
    _place: Option<tokio::sync::SemaphorePermit<'a>>,
}

impl<'a> Budgeted<'a> {
    /// A connection outside any request's budget.
    pub fn unbudgeted(conn: PooledConnection<'a>) -> Self {
        Self { conn, _place: None }
    }
}

impl<'a> std::ops::Deref for Budgeted<'a> {
    type Target = PooledConnection<'a>;

    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for Budgeted<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl Route {
    /// Everything to the primary, with the default budget.
    pub fn primary(pool: Pool) -> Self {
        Self::reading(
            pool,
            None,
            OperationName::default(),
            usize::from(crate::limits::Limits::default().max_request_connections),
        )
    }

    /// Reads to `replica` once `operation` is known to hold queries only (its document is
    /// parsed before any field resolves), everything else to `primary`; resolvers hold at
    /// most `budget` connections of their own at once.
    pub fn reading(
        primary: Pool,
        replica: Option<Pool>,
        operation: OperationName,
        budget: usize,
    ) -> Self {
        Self(Arc::new(RouteInner {
            primary,
            replica: replica.map(|replica| (replica, operation)),
            shared: tokio::sync::Mutex::new(Weak::new()),
            budget: tokio::sync::Semaphore::new(budget.max(1)),
        }))
    }

    fn replica(&self) -> Option<&Pool> {
        self.0
            .replica
            .as_ref()
            .filter(|(_, operation)| operation.queries_only())
            .map(|(replica, _)| replica)
    }

    /// A connection of its own for the request's next statements, once the request holds
    /// fewer than its budget.
    pub async fn get(&self) -> AppResult<Budgeted<'_>> {
        // The semaphore is never closed.
        let place = self.0.budget.acquire().await.ok();
        if let Some(replica) = self.replica() {
            match replica.get().await {
                Ok(conn) => {
                    return Ok(Budgeted {
                        conn,
                        _place: place,
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "a read replica is unreachable; reading from the primary");
                }
            }
        }
        Ok(Budgeted {
            conn: self.0.primary.get().await?,
            _place: place,
        })
    }

    /// The connection shared by the request's batches in flight, for statements that may be
    /// pipelined; it goes back to the pool when the last holder drops it.
    pub async fn shared(&self) -> AppResult<Arc<PooledConnection<'static>>> {
        let mut shared = self.0.shared.lock().await;
        if let Some(conn) = shared.upgrade() {
            return Ok(conn);
        }
        let mut conn = None;
        if let Some(replica) = self.replica() {
            match replica.get_owned().await {
                Ok(replica) => conn = Some(replica),
                Err(error) => {
                    tracing::warn!(%error, "a read replica is unreachable; reading from the primary");
                }
            }
        }
        let conn = match conn {
            Some(conn) => conn,
            None => self.0.primary.get_owned().await.map_err(AppError::from)?,
        };
        let conn = Arc::new(conn);
        *shared = Arc::downgrade(&conn);
        Ok(conn)
    }
}

/// The database behind the loaders; one per request.
pub struct Db {
    route: Route,
}

impl Db {
    /// The loader source over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self {
            route: Route::primary(pool),
        }
    }
}

/// The per-request loader over the database. For a document of queries only it keeps what
/// it fetched for the rest of the request, so a key asked for again in a later pass (the
/// agency's settings for its metrics, then for its latest reports' metrics) is not fetched
/// twice; for mutations it keeps nothing, since a write in the middle would make it stale.
/// The [pipeline](super::pipeline) turns keeping on once the document is parsed.
pub type DbLoader = DataLoader<Db, RequestCache>;

/// What a request's loader keeps: rows and settings that later passes ask for again (agencies,
/// users, reports, memberships, settings). Long lists (values, history, contexts) are asked
/// for once per report and would only be copied into the cache for nothing.
#[derive(Default)]
pub struct RequestCache;

impl CacheFactory for RequestCache {
    fn create<K, V>(&self) -> Box<dyn CacheStorage<Key = K, Value = V>>
    where
        K: Send + Sync + Clone + Eq + Hash + 'static,
        V: Send + Sync + Clone + 'static,
    {
        let kept = [
            TypeId::of::<AgencyId>(),
            TypeId::of::<UserId>(),
            TypeId::of::<ReportId>(),
            TypeId::of::<ChildrenOf>(),
            TypeId::of::<MembershipsOf>(),
            TypeId::of::<TeamOf>(),
            TypeId::of::<MetricSettingsOf>(),
            TypeId::of::<SettingsOf>(),
            TypeId::of::<JurisdictionsOf>(),
            // Fed by a page of reports that read them in its own statement.
            TypeId::of::<EditorsOf>(),
        ];
        if kept.contains(&TypeId::of::<K>()) {
            HashMapCache::default().create::<K, V>()
        } else {
            NoCache.create::<K, V>()
        }
    }
}

/// The batch fetches a request's loader has started, to be driven by that request.
pub struct LoaderTasks(UnboundedReceiver<BoxFuture<'static, ()>>);

/// A fresh loader for one request, whose batch fetches run on the request's own task: run the
/// request with [`LoaderTasks::drive`].
///
/// async-graphql's DataLoader fetches a batch once its delay has passed since the first key
/// arrived; with fetches spawned on the runtime, the delay races the resolvers still
/// registering keys, and a slow pass (a page of 100 items) splits a batch in two. Here the
/// fetch is only polled when the request itself is waiting, that is, after every resolver of
/// the pass has registered its keys, so batches do not depend on timing and need no delay.
pub fn new_loader(pool: Pool) -> (DbLoader, LoaderTasks) {
    new_routed_loader(Route::primary(pool))
}

/// As [`new_loader`], with the request's statements sent where `route` says.
pub fn new_routed_loader(route: Route) -> (DbLoader, LoaderTasks) {
    let (sender, receiver) = mpsc::unbounded();
    let spawner = move |task: BoxFuture<'static, ()>| {
        // A span per batch, a child of the request's; the batch names its loader in it.
        let span = tracing::debug_span!(
            "dataloader batch",
            loader = tracing::field::Empty,
            keys = tracing::field::Empty
        );
        // The receiver lives as long as the request; a fetch started after it ended has no
        // one waiting for it.
        let task: BoxFuture<'static, ()> = Box::pin(tracing::Instrument::instrument(task, span));
        let _ = sender.unbounded_send(task);
    };
    (
        {
            let loader =
                DataLoader::with_cache(Db { route }, spawner, RequestCache).delay(Duration::ZERO);
            loader.enable_all_cache(false);
            loader
        },
        LoaderTasks(receiver),
    )
}

impl LoaderTasks {
    /// Runs `request` to completion, driving the loader's fetches alongside it.
    pub async fn drive<F: Future>(self, request: F) -> F::Output {
        let mut request = pin!(request);
        let mut incoming = self.0;
        let mut running: FuturesUnordered<BoxFuture<'static, ()>> = FuturesUnordered::new();
        poll_fn(move |cx| {
            loop {
                // Resolvers yield in the middle of a pass (lists poll 32 items at a time and
                // wake themselves; so does a task out of its cooperative budget): then the
                // pass is not over, and the runtime polls again soon, since we were woken.
                let woken = Arc::new(SelfWake {
                    woken: AtomicBool::new(false),
                    outer: cx.waker().clone(),
                });
                let waker = Waker::from(woken.clone());
                if let Poll::Ready(output) =
                    request.as_mut().poll(&mut TaskContext::from_waker(&waker))
                {
                    return Poll::Ready(output);
                }
                if woken.woken.load(Ordering::SeqCst) {
                    return Poll::Pending;
                }
                while let Poll::Ready(Some(task)) = incoming.poll_next_unpin(cx) {
                    running.push(task);
                }
                let mut finished_any = false;
                while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {
                    finished_any = true;
                }
                // A finished fetch may have completed what the request waits for.
                if !finished_any {
                    return Poll::Pending;
                }
            }
        })
        .await
    }
}

/// A waker that remembers being woken, and passes the wake on.
struct SelfWake {
    woken: AtomicBool,
    outer: Waker,
}

impl Wake for SelfWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.outer.wake_by_ref();
    }
}

impl Db {
    /// The connection for one batch of `keys` keys of type `K`, counted in the metrics.
    async fn connection<K>(
        &self,
        keys: usize,
    ) -> async_graphql::Result<Arc<PooledConnection<'static>>> {
        let loader = std::any::type_name::<K>()
            .rsplit("::")
            .next()
            .unwrap_or("loader");
        crate::metrics::metrics()
            .loader_batch_size
            .get_or_create(&crate::metrics::LoaderLabel {
                loader: loader.to_owned(),
            })
            .observe(keys as f64);
        let span = tracing::Span::current();
        span.record("loader", loader);
        span.record("keys", keys);
        self.route.shared().await.gql()
    }
}

/// Groups rows under the keys they belong to; every key gets an entry, empty when no row
/// matched, so that "nothing" is not mistaken for "not loaded".
fn group<K: Copy + Eq + Hash, V>(
    keys: &[K],
    rows: impl IntoIterator<Item = V>,
    key_of: impl Fn(&V) -> Option<K>,
) -> HashMap<K, Vec<V>> {
    let mut grouped: HashMap<K, Vec<V>> = keys.iter().map(|&key| (key, Vec::new())).collect();
    for row in rows {
        if let Some(key) = key_of(&row) {
            grouped.entry(key).or_default().push(row);
        }
    }
    grouped
}

impl Loader<AgencyId> for Db {
    type Value = Agency;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[AgencyId]) -> Result<HashMap<AgencyId, Agency>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let conn = self.connection::<AgencyId>(keys.len()).await?;
        let agencies = Agency::by_ids(&mut &**conn, keys).await.gql()?;
        Ok(agencies
            .into_iter()
            .map(|agency| (agency.id, agency))
            .collect())
    }
}

/// Key: the child agencies of a superagency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChildrenOf(pub AgencyId);

impl Loader<ChildrenOf> for Db {
    type Value = Vec<Agency>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[ChildrenOf],
    ) -> Result<HashMap<ChildrenOf, Vec<Agency>>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let parents: Vec<AgencyId> = keys.iter().map(|key| key.0).collect();
        let conn = self.connection::<ChildrenOf>(keys.len()).await?;
        let children = Agency::children_of(&mut &**conn, &parents).await.gql()?;
        Ok(group(keys, children, |child| {
            child.super_agency_id.map(ChildrenOf)
        }))
    }
}

impl Loader<UserId> for Db {
    type Value = User;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, User>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let conn = self.connection::<UserId>(keys.len()).await?;
        let users = User::by_ids(&mut &**conn, keys).await.gql()?;
        Ok(users.into_iter().map(|user| (user.id, user)).collect())
    }
}

/// Key: a user's memberships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MembershipsOf(pub UserId);

impl Loader<MembershipsOf> for Db {
    type Value = Vec<Membership>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[MembershipsOf],
    ) -> Result<HashMap<MembershipsOf, Vec<Membership>>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let users: Vec<UserId> = keys.iter().map(|key| key.0).collect();
        let conn = self.connection::<MembershipsOf>(keys.len()).await?;
        let memberships = Membership::of_users(&mut &**conn, &users).await.gql()?;
        Ok(group(keys, memberships, |membership| {
            Some(MembershipsOf(membership.user_id))
        }))
    }
}

/// Key: an agency's team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TeamOf(pub AgencyId);

impl Loader<TeamOf> for Db {
    type Value = Vec<(Membership, User)>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[TeamOf],
    ) -> Result<HashMap<TeamOf, Vec<(Membership, User)>>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let agencies: Vec<AgencyId> = keys.iter().map(|key| key.0).collect();
        let conn = self.connection::<TeamOf>(keys.len()).await?;
        let members = Membership::of_agencies(&mut &**conn, &agencies)
            .await
            .gql()?;
        Ok(group(keys, members, |(membership, _)| {
            Some(TeamOf(membership.agency_id))
        }))
    }
}

impl Loader<ReportId> for Db {
    type Value = Report;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ReportId]) -> Result<HashMap<ReportId, Report>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let conn = self.connection::<ReportId>(keys.len()).await?;
        let reports = Report::by_ids(&mut &**conn, keys).await.gql()?;
        Ok(reports
            .into_iter()
            .map(|report| (report.id, report))
            .collect())
    }
}

/// Defines a key newtype whose loader returns, for each key, the rows a model function finds
/// for the batch, grouped by a column of the row.
macro_rules! grouped_loader {
    ($(#[$meta:meta])* $key:ident($id:ty) => $value:ty, |$conn:ident, $ids:ident| $fetch:expr, |$row:ident| $group:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $key(pub $id);

        impl Loader<$key> for Db {
            type Value = Vec<$value>;
            type Error = async_graphql::Error;

            async fn load(&self, keys: &[$key]) -> Result<HashMap<$key, Vec<$value>>, Self::Error> {
                if keys.is_empty() {
                    return Ok(HashMap::new());
                }
                let $ids: Vec<$id> = keys.iter().map(|key| key.0).collect();
                let connection = self.connection::<$key>(keys.len()).await?;
                let mut shared: &AsyncPgConnection = &connection;
                let $conn = &mut shared;
                let rows: Vec<$value> = $fetch.await.gql()?;
                Ok(group(keys, rows, |$row| Some($key($group))))
            }
        }
    };
}

grouped_loader!(
    /// Key: the values and the contexts on a report.
    ValuesOf(ReportId) => ReportValue,
    |conn, ids| ReportValue::of_reports(conn, &ids),
    |row| row.report_id()
);
grouped_loader!(
    /// Key: the recorded value changes on a report.
    ChangesOf(ReportId) => (DatapointChange, Cell),
    |conn, ids| DatapointChange::of_reports(conn, &ids),
    |row| row.1.report_id
);
grouped_loader!(
    /// Key: who edited a report.
    EditorsOf(ReportId) => (ReportId, DateTime<Utc>, User),
    |conn, ids| Report::editors_of(conn, &ids),
    |row| row.0
);
grouped_loader!(
    /// Key: a report's status changes.
    StatusChangesOf(ReportId) => StatusChange,
    |conn, ids| Report::status_changes_of(conn, &ids),
    |row| row.report_id
);
grouped_loader!(
    /// Key: an agency's settings.
    SettingsOf(AgencyId) => AgencySetting,
    |conn, ids| AgencySetting::of_agencies(conn, &ids),
    |row| row.agency_id
);
grouped_loader!(
    /// Key: an agency's jurisdictions.
    JurisdictionsOf(AgencyId) => Jurisdiction,
    |conn, ids| Jurisdiction::of_agencies(conn, &ids),
    |row| row.agency_id
);
grouped_loader!(
    /// Key: an agency's latest reports: the latest monthly one and the latest annual one of
    /// each reporting-year start, loaded together so that their metrics batch together too.
    LatestReportsOf(AgencyId) => Report,
    |conn, ids| Report::latest_of(conn, &ids),
    |row| row.agency_id
);
grouped_loader!(
    /// Key: the messages of an upload.
    MessagesOf(SpreadsheetId) => SpreadsheetMessage,
    |conn, ids| SpreadsheetMessage::of(conn, &ids),
    |row| row.spreadsheet_id
);
grouped_loader!(
    /// Key: what an upload did to reports.
    ReportChangesOf(SpreadsheetId) => ReportChange,
    |conn, ids| ReportChange::of(conn, &ids),
    |row| row.spreadsheet_id
);

/// Key: an agency's metric settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetricSettingsOf(pub AgencyId);

impl Loader<MetricSettingsOf> for Db {
    type Value = Arc<AgencyMetricSettings>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[MetricSettingsOf],
    ) -> Result<HashMap<MetricSettingsOf, Arc<AgencyMetricSettings>>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<AgencyId> = keys.iter().map(|key| key.0).collect();
        let conn = self.connection::<MetricSettingsOf>(keys.len()).await?;
        let settings = AgencyMetricSettings::of_agencies(&mut &**conn, &ids)
            .await
            .gql()?;
        Ok(settings
            .into_iter()
            .map(|(agency, settings)| (MetricSettingsOf(agency), Arc::new(settings)))
            .collect())
    }
}

/// Key: the values of one metric of one agency over time (aggregate and breakdowns).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesOf {
    /// The agency.
    pub agency: AgencyId,
    /// The metric.
    pub metric: String,
    /// Only published reports.
    pub published_only: bool,
}

impl Loader<SeriesOf> for Db {
    type Value = Vec<SeriesValue>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[SeriesOf],
    ) -> Result<HashMap<SeriesOf, Vec<SeriesValue>>, Self::Error> {
        let mut loaded: HashMap<SeriesOf, Vec<SeriesValue>> =
            keys.iter().map(|key| (key.clone(), Vec::new())).collect();
        // One query per visibility: all agencies and metrics of the batch at once.
        for published_only in [false, true] {
            let batch: Vec<&SeriesOf> = keys
                .iter()
                .filter(|key| key.published_only == published_only)
                .collect();
            if batch.is_empty() {
                continue;
            }
            let query = SeriesQuery {
                agencies: batch.iter().map(|key| key.agency).collect(),
                metrics: batch.iter().map(|key| key.metric.clone()).collect(),
                from: None,
                to: None,
                published_only,
            };
            let conn = self.connection::<SeriesOf>(batch.len()).await?;
            for value in SeriesValue::load(&mut &**conn, &query).await.gql()? {
                let key = SeriesOf {
                    agency: value.agency_id,
                    metric: value.metric_key.clone(),
                    published_only,
                };
                if let Some(values) = loaded.get_mut(&key) {
                    values.push(value);
                }
            }
        }
        Ok(loaded)
    }
}

grouped_loader!(
    /// Key: the recorded changes of an agency's metric settings.
    SettingChangesOf(AgencyId) => SettingChange,
    |conn, ids| SettingChange::of_agencies(conn, &ids),
    |row| row.agency_id
);
grouped_loader!(
    /// Key: the recorded changes of an agency's team.
    RoleChangesOf(AgencyId) => RoleChange,
    |conn, ids| RoleChange::of_agencies(conn, &ids),
    |row| row.agency_id
);
