//! Live updates of reports, across server processes.
//!
//! Every write that changes a report sends a notification on the PostgreSQL channel
//! [`CHANNEL`] inside its transaction, so it is delivered only if the write commits. Each
//! server process listens on one dedicated connection and fans the events out to its
//! subscribers; several processes on one database thus see each other's changes.

use std::time::Duration;

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::models::enums::ReportStatus;
use crate::models::ids::{AgencyId, ReportId};

/// The notification channel.
pub const CHANNEL: &str = "report_events";

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
    let payload = serde_json::to_string(event)
        .map_err(|error| diesel::result::Error::SerializationError(Box::new(error)))?;
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(CHANNEL)
        .bind::<Text, _>(payload)
        .execute(conn)
        .await
        .map(drop)
}

/// This process's subscribers' side of the channel.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<ReportEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus with room for a burst of events per subscriber.
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(1024);
        Self { sender }
    }

    /// Receives the events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ReportEvent> {
        self.sender.subscribe()
    }

    /// Listens on the database at `url` in the background for as long as the process runs,
    /// reconnecting after failures. Returns once the first LISTEN is in place, so that no
    /// event committed after this call is missed.
    pub async fn listen(&self, url: String) -> anyhow::Result<Listener> {
        let first = connect(&url).await?;
        let sender = self.sender.clone();
        let task = tokio::spawn(async move {
            let mut conn = Some(first);
            loop {
                let result = match conn.take() {
                    Some(conn) => pump(conn, &sender).await,
                    None => match connect(&url).await {
                        Ok(conn) => pump(conn, &sender).await,
                        Err(error) => Err(error),
                    },
                };
                if let Err(error) = result {
                    tracing::warn!(%error, "report event listener lost its connection; reconnecting");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(Listener(task.abort_handle()))
    }
}

/// The background listener; stop it before the database goes away.
#[derive(Debug)]
pub struct Listener(tokio::task::AbortHandle);

impl Listener {
    /// Stops listening.
    pub fn stop(self) {
        self.0.abort();
    }
}

async fn connect(url: &str) -> anyhow::Result<AsyncPgConnection> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    diesel::sql_query(format!("LISTEN {CHANNEL}"))
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

async fn pump(
    mut conn: AsyncPgConnection,
    sender: &broadcast::Sender<ReportEvent>,
) -> anyhow::Result<()> {
    let mut notifications = std::pin::pin!(conn.notifications_stream());
    while let Some(notification) = notifications.next().await {
        let notification = notification?;
        match serde_json::from_str::<ReportEvent>(&notification.payload) {
            // No receivers is not an error: nobody is subscribed right now.
            Ok(event) => drop(sender.send(event)),
            Err(error) => tracing::warn!(%error, "ignoring a malformed report event"),
        }
    }
    anyhow::bail!("the notification stream ended")
}
