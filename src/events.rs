//! Live updates of reports and revocations of sign-ins, across server processes.
//!
//! Every write that changes a report sends a notification on the PostgreSQL channel
//! [`CHANNEL`] inside its transaction, so it is delivered only if the write commits; every
//! sign-out or revoked session sends one on [`REVOCATIONS`], so that open subscriptions of
//! the revoked credentials end. Each server process listens on one dedicated connection and
//! fans the events out to its subscribers; several processes on one database thus see each
//! other's changes.

use std::time::Duration;

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::models::enums::ReportStatus;
use crate::models::ids::{AgencyId, ReportId};

/// The notification channel of report changes.
pub const CHANNEL: &str = "report_events";

/// The notification channel of revoked sessions and tokens.
pub const REVOCATIONS: &str = "token_revocations";

/// The notification channel of changed credentials (roles, platform staff, superagency
/// links), sent by triggers.
pub const CREDENTIALS: &str = "credentials_changed";

/// The notification channel of writes to public data, sent by statement triggers.
pub const PUBLIC_DATA: &str = "public_data_changed";

/// The notification channel of writes to the other data signed-in answers read, sent by
/// statement triggers.
pub const MEMBER_DATA: &str = "member_data_changed";

/// A user's credentials changed — or, without a user, anyone's may have (also sent by this
/// process when its listener reconnects, as it may have missed changes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsChange {
    /// The user, if only one.
    pub user_id: Option<i32>,
}

/// Credentials that stopped working: a session, and revocation identifiers of tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The ended session, if any.
    pub session_id: Option<i64>,
    /// Revocation identifiers (hex) of revoked tokens.
    pub revocation_ids: Vec<String>,
}

/// Announces a revocation (now, or when the current transaction commits).
pub async fn notify_revocation(
    conn: &mut AsyncPgConnection,
    revocation: &Revocation,
) -> diesel::QueryResult<()> {
    send(conn, REVOCATIONS, revocation).await
}

/// What happened to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReportEventKind {
    /// The report was created.
    Created,
    /// Values or contexts were saved.
    Saved,
    /// The report was published.
    Published,
    /// The report was taken back to draft.
    Unpublished,
    /// The report was deleted.
    Deleted,
}

/// A change of a report, as delivered to subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportEvent {
    /// The report's agency.
    pub agency_id: i32,
    /// The report.
    pub report_id: i32,
    /// What happened.
    pub kind: ReportEventKind,
    /// The report's version after the change.
    pub version: i32,
    /// The report's status after the change (none once deleted).
    pub status: Option<ReportStatus>,
}

impl ReportEvent {
    /// The event for `kind` happening to a report.
    pub fn new(
        agency: AgencyId,
        report: ReportId,
        kind: ReportEventKind,
        version: i32,
        status: Option<ReportStatus>,
    ) -> Self {
        Self {
            agency_id: agency.0,
            report_id: report.0,
            kind,
            version,
            status,
        }
    }
}

/// Queues the event for delivery when the current transaction commits.
pub async fn notify(conn: &mut AsyncPgConnection, event: &ReportEvent) -> diesel::QueryResult<()> {
    send(conn, CHANNEL, event).await
}

async fn send(
    conn: &mut AsyncPgConnection,
    channel: &str,
    payload: &impl Serialize,
) -> diesel::QueryResult<()> {
    let payload = serde_json::to_string(payload)
        .map_err(|error| diesel::result::Error::SerializationError(Box::new(error)))?;
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(channel)
        .bind::<Text, _>(payload)
        .execute(conn)
        .await
        .map(drop)
}

/// The notification channel of upload (ingest) progress.
pub const UPLOADS: &str = "upload_progress";

/// The notification channel announcing queued jobs.
pub const JOBS: &str = "jobs_queued";

/// Where an upload's ingest stands, as delivered to subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, diesel::QueryableByName)]
pub struct UploadProgress {
    /// The spreadsheet.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub spreadsheet_id: i32,
    /// Its agency.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub agency_id: i32,
    /// Its status.
    #[diesel(sql_type = crate::db::schema::sql_types::SpreadsheetStatus)]
    pub status: crate::models::enums::SpreadsheetStatus,
    /// Rows read so far.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub rows_read: i64,
    /// Rows whose value was accepted so far.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub rows_accepted: i64,
    /// Rows saved (once applied).
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub rows_saved: i64,
    /// Messages so far.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub messages: i64,
    /// Whether a cancel was asked for.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub cancel_requested: bool,
}

/// Announces an upload's progress when the current transaction commits.
pub async fn notify_upload(
    conn: &mut AsyncPgConnection,
    progress: &UploadProgress,
) -> diesel::QueryResult<()> {
    send(conn, UPLOADS, progress).await
}

/// This process's subscribers' side of the channel.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<ReportEvent>,
    revocations: broadcast::Sender<Revocation>,
    credentials: broadcast::Sender<CredentialsChange>,
    public_data: broadcast::Sender<()>,
    member_data: broadcast::Sender<()>,
    uploads: broadcast::Sender<UploadProgress>,
    jobs: std::sync::Arc<tokio::sync::Notify>,
    listening: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connected: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// How long the listener waits without news before it checks that its connection still
    /// answers, and how long that check (or a new connection) may take.
    quiet: Duration,
    answer_within: Duration,
}

/// How long the listener goes without news before it checks its connection: a connection that
/// went silent (a network partition, a proxy's idle timeout) would otherwise look connected
/// for as long as TCP takes to notice, while what is kept in memory goes on being served.
const LISTENER_QUIET: Duration = Duration::from_secs(5);
/// How long that check, or connecting again, may take before the connection counts as lost:
/// long enough for a database that is merely busy.
const LISTENER_ANSWER_WITHIN: Duration = Duration::from_secs(15);

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus with room for a burst of events per subscriber.
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(1024);
        let (revocations, _) = broadcast::channel(256);
        let (uploads, _) = broadcast::channel(1024);
        let (credentials, _) = broadcast::channel(256);
        let (public_data, _) = broadcast::channel(16);
        let (member_data, _) = broadcast::channel(16);
        Self {
            sender,
            revocations,
            credentials,
            public_data,
            member_data,
            listening: std::sync::Arc::default(),
            connected: std::sync::Arc::default(),
            connections: std::sync::Arc::default(),
            uploads,
            jobs: std::sync::Arc::default(),
            quiet: LISTENER_QUIET,
            answer_within: LISTENER_ANSWER_WITHIN,
        }
    }

    /// The same bus, its listener checking its connection after `quiet` without news and
    /// counting it lost when it has not answered within `answer_within` (tests shorten them).
    #[must_use]
    pub fn checking(mut self, quiet: Duration, answer_within: Duration) -> Self {
        self.quiet = quiet;
        self.answer_within = answer_within;
        self
    }

    /// Receives upload progress from now on.
    pub fn uploads(&self) -> broadcast::Receiver<UploadProgress> {
        self.uploads.subscribe()
    }

    /// Notified whenever a job is queued (by any process on the database).
    pub fn job_queued(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.jobs.clone()
    }

    /// Receives the events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ReportEvent> {
        self.sender.subscribe()
    }

    /// Receives the revocations from now on.
    pub fn revocations(&self) -> broadcast::Receiver<Revocation> {
        self.revocations.subscribe()
    }

    /// Hears of writes to public data from now on (also when the listener reconnects, as it
    /// may have missed some).
    pub fn public_data_changes(&self) -> broadcast::Receiver<()> {
        self.public_data.subscribe()
    }

    /// Hears of writes to any data a signed-in answer reads, public data included, from now
    /// on (also when the listener reconnects, as it may have missed some).
    pub fn member_data_changes(&self) -> broadcast::Receiver<()> {
        self.member_data.subscribe()
    }

    /// Whether the listener is connected now: while it is not, changes may go unheard, and
    /// what is kept in memory must not be served.
    pub fn connected(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.connected.clone()
    }

    /// How many times the listener has connected: a memory of what the database held must
    /// forget it all when this changes, as changes made while it was away went unheard.
    pub fn connections(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.connections.clone()
    }

    /// Whether the bus listens to the database ([`EventBus::listen`]).
    pub fn is_listening(&self) -> bool {
        std::sync::atomic::AtomicBool::load(&self.listening, std::sync::atomic::Ordering::SeqCst)
    }

    /// Receives the changes of credentials from now on.
    pub fn credential_changes(&self) -> broadcast::Receiver<CredentialsChange> {
        self.credentials.subscribe()
    }

    /// Listens on the database at `url` in the background for as long as the process runs,
    /// reconnecting after failures. Returns once the first LISTEN is in place, so that no
    /// event committed after this call is missed.
    pub async fn listen(&self, url: String) -> anyhow::Result<Listener> {
        let first = tokio::time::timeout(self.answer_within, connect(&url))
            .await
            .map_err(|_| anyhow::anyhow!("the database did not answer the event listener"))??;
        self.listening
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let bus = self.clone();
        let task = tokio::spawn(async move {
            let mut conn = Some(first);
            loop {
                let result = match conn.take() {
                    Some(conn) => bus.pump(conn).await,
                    None => match tokio::time::timeout(bus.answer_within, connect(&url)).await {
                        Ok(Ok(conn)) => bus.pump(conn).await,
                        Ok(Err(error)) => Err(error),
                        Err(_) => Err(anyhow::anyhow!("the database did not answer in time")),
                    },
                };
                bus.connected
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                if let Err(error) = result {
                    tracing::warn!(%error, "report event listener lost its connection; reconnecting");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(Listener(task.abort_handle(), self.connected.clone()))
    }
}

/// The background listener; stop it before the database goes away.
#[derive(Debug)]
pub struct Listener(
    tokio::task::AbortHandle,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
);

impl Listener {
    /// Stops listening.
    pub fn stop(self) {
        self.1.store(false, std::sync::atomic::Ordering::SeqCst);
        self.0.abort();
    }
}

async fn connect(url: &str) -> anyhow::Result<AsyncPgConnection> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    for channel in [
        CHANNEL,
        REVOCATIONS,
        CREDENTIALS,
        PUBLIC_DATA,
        MEMBER_DATA,
        UPLOADS,
        JOBS,
    ] {
        diesel::sql_query(format!("LISTEN {channel}"))
            .execute(&mut conn)
            .await?;
    }
    Ok(conn)
}

impl EventBus {
    async fn pump(&self, mut conn: AsyncPgConnection) -> anyhow::Result<()> {
        // Listening again after a gap: whatever changed meanwhile was not heard.
        drop(self.credentials.send(CredentialsChange::default()));
        drop(self.public_data.send(()));
        drop(self.member_data.send(()));
        // Counted before it says it is connected: whoever sees it connected sees the count
        // too, and forgets what it kept before, synchronously.
        self.connections
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.connected
            .store(true, std::sync::atomic::Ordering::SeqCst);
        loop {
            let next = {
                let mut notifications = std::pin::pin!(conn.notifications_stream());
                tokio::time::timeout(self.quiet, notifications.next()).await
            };
            match next {
                Ok(Some(notification)) => self.deliver(&notification?),
                Ok(None) => break,
                // No news for a while: make sure the connection still answers (a notification
                // arriving meanwhile waits in the connection's queue).
                Err(_) => {
                    let answered = tokio::time::timeout(
                        self.answer_within,
                        diesel::sql_query("SELECT 1").execute(&mut conn),
                    )
                    .await;
                    if answered.is_err() {
                        // What arrived before the silence is delivered before giving up.
                        let mut notifications = std::pin::pin!(conn.notifications_stream());
                        while let Some(Some(Ok(notification))) = notifications.next().now_or_never()
                        {
                            self.deliver(&notification);
                        }
                        anyhow::bail!("the connection stopped answering");
                    }
                    answered??;
                }
            }
        }
        anyhow::bail!("the notification stream ended")
    }

    /// Hands a notification to this process's receivers.
    fn deliver(&self, notification: &diesel::pg::PgNotification) {
        let payload = &notification.payload;
        // No receivers is not an error: nobody is subscribed right now.
        let delivered = match notification.channel.as_str() {
            CHANNEL => serde_json::from_str(payload).map(|event| drop(self.sender.send(event))),
            REVOCATIONS => {
                serde_json::from_str(payload).map(|event| drop(self.revocations.send(event)))
            }
            PUBLIC_DATA => {
                drop(self.public_data.send(()));
                drop(self.member_data.send(()));
                Ok(())
            }
            MEMBER_DATA => {
                drop(self.member_data.send(()));
                Ok(())
            }
            CREDENTIALS => {
                serde_json::from_str(payload).map(|event| drop(self.credentials.send(event)))
            }
            UPLOADS => serde_json::from_str(payload).map(|event| drop(self.uploads.send(event))),
            JOBS => {
                self.jobs.notify_waiters();
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(error) = delivered {
            tracing::warn!(%error, channel = %notification.channel, "ignoring a malformed event");
        }
    }
}
