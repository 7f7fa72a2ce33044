//! Data out: the public and member feeds (CSV or JSON Lines), their incremental sync, the
//! change stream in pages, and an agency's data in the bulk-upload layout.
//!
//! A feed is PostgreSQL's own `COPY … TO STDOUT` of one statement ([`sql`]), streamed as it
//! comes: memory stays flat whatever the size, and the rows leave as fast as PostgreSQL makes
//! them. What is public is decided by [`PublishedScope`], the rule the dashboard's series
//! follow too. Every read runs in one repeatable-read transaction whose snapshot becomes the
//! next [`Cursor`].

pub mod cursor;
pub mod sheets;
pub mod sql;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Date, Double, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

pub use self::cursor::{Cursor, Position, Snapshot};
use crate::catalogue::Catalogue;
use crate::db::Pool;
use crate::error::{AppError, AppResult};
use crate::models::agency::Agency;
use crate::models::enums::System;
use crate::models::ids::AgencyId;
use crate::models::metric_setting::AgencyMetricSettings;
use crate::reports::published::PublishedScope;

/// Who a feed is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Anyone: published values of agencies with a public dashboard.
    Public,
    /// Members of the agencies: every value, drafts included, with report status.
    Members,
}

/// How a feed is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// CSV with a header row (RFC 4180 quoting).
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl Format {
    /// The media type of the feed.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8; header=present",
            Self::JsonLines => "application/x-ndjson",
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::JsonLines => "jsonl",
        }
    }
}

/// What a feed holds.
#[derive(Debug, Clone)]
pub struct FeedQuery {
    /// Who reads it.
    pub audience: Audience,
    /// The agencies.
    pub agencies: Vec<AgencyId>,
    /// Only this metric.
    pub metric: Option<String>,
    /// Only metrics of this system.
    pub system: Option<System>,
    /// Only periods starting on or after this day.
    pub from: Option<NaiveDate>,
    /// Only periods starting before this day.
    pub to: Option<NaiveDate>,
    /// Only changes after this cursor.
    pub since: Option<Cursor>,
}

impl FeedQuery {
    /// Everything of these agencies for `audience`.
    pub fn new(audience: Audience, agencies: Vec<AgencyId>) -> Self {
        Self {
            audience,
            agencies,
            metric: None,
            system: None,
            from: None,
            to: None,
            since: None,
        }
    }

    /// Checks the filters against the catalogue.
    pub fn check(&self, catalogue: &Catalogue) -> AppResult<()> {
        if let Some(metric) = &self.metric
            && catalogue.metric(metric).is_none()
        {
            return Err(AppError::BadUserInput(format!(
                "no metric has key {metric:?}"
            )));
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(AppError::BadUserInput("`from` must be before `to`".into()));
        }
        Ok(())
    }

    /// The filters the statement applies.
    fn filtered(&self) -> sql::Filtered {
        sql::Filtered {
            metric: self.metric.is_some(),
            system: self.system.is_some(),
            from: self.from.is_some(),
            to: self.to.is_some(),
        }
    }

    fn since_snapshot(&self) -> Option<&Snapshot> {
        self.since.as_ref().and_then(|cursor| cursor.since.as_ref())
    }

    /// The values of [`sql::SETTINGS`].
    fn settings(&self, scope: &PublishedScope) -> AppResult<[String; 7]> {
        let agencies: Vec<String> = self.agencies.iter().map(|id| id.0.to_string()).collect();
        let date = |day: Option<NaiveDate>| day.map(|d| d.to_string()).unwrap_or_default();
        Ok([
            format!("{{{}}}", agencies.join(",")),
            self.metric.clone().unwrap_or_default(),
            self.system.map(|s| s.key().to_owned()).unwrap_or_default(),
            date(self.from),
            date(self.to),
            self.since_snapshot()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            serde_json::to_string(scope).map_err(|error| AppError::Internal(error.into()))?,
        ])
    }
}

/// What the public feed of these agencies may show, read in the caller's transaction.
pub async fn scope_of(
    conn: &mut AsyncPgConnection,
    catalogue: &Catalogue,
    agencies: &[AgencyId],
) -> AppResult<PublishedScope> {
    let found = Agency::by_ids(&mut &*conn, agencies).await?;
    let ids: Vec<AgencyId> = found.iter().map(|agency| agency.id).collect();
    let mut settings = AgencyMetricSettings::of_agencies(&mut &*conn, &ids).await?;
    let mut scope = PublishedScope::default();
    for agency in &found {
        let settings = settings.remove(&agency.id).unwrap_or_default();
        let one = PublishedScope::of(catalogue, agency, &settings);
        scope.metrics.extend(one.metrics);
        scope.hidden_members.extend(one.hidden_members);
    }
    Ok(scope)
}

/// A feed's version, for HTTP caching: it changes whenever the feed's content may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedVersion {
    /// A weak entity tag (`W/"…"`) of the content.
    pub etag: String,
    /// When the content last changed (a publication, a value, a removal, a setting).
    pub last_modified: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = Text)]
    tag: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_modified: Option<DateTime<Utc>>,
}

/// The version of a feed: the writes it depends on (agencies and their settings, report
/// statuses, values, removals), with the query and format. Each kind of write counts by the
/// number of rows and the sum of their writing transactions' ids, not by the latest id: a
/// transaction that began before another but committed after it still changes the version.
/// `last_modified` is the latest of their times, for information: a time cannot tell a late
/// commit from an early one, so only the entity tag answers revalidation. A public feed's
/// version counts published reports only: drafts coming and going tell the public nothing.
pub async fn version(
    conn: &mut AsyncPgConnection,
    query: &FeedQuery,
    format: Format,
) -> AppResult<FeedVersion> {
    let row: VersionRow = diesel::sql_query(
        "WITH r AS (SELECT id, status, status_xid, published_at FROM reports
                    WHERE agency_id = ANY ($1))
        SELECT concat_ws('/',
            (SELECT concat(count(*), ':', sum(changed_xid::text::numeric))
             FROM agencies WHERE id = ANY ($1)),
            (SELECT concat(count(*), ':', sum(changed_xid::text::numeric))
             FROM metric_settings WHERE agency_id = ANY ($1)),
            (SELECT concat(count(*), ':', sum(changed_xid::text::numeric))
             FROM metric_setting_members WHERE agency_id = ANY ($1)),
            (SELECT concat(count(*), ':', sum(status_xid::text::numeric)) FROM r
             WHERE $2 OR r.status = 'PUBLISHED'),
            (SELECT concat(count(*), ':', sum(d.changed_xid::text::numeric))
             FROM r JOIN datapoints d ON d.report_id = r.id WHERE $2 OR r.status = 'PUBLISHED'),
            (SELECT concat(count(*), ':', sum(deleted_xid::text::numeric))
             FROM deleted_datapoints WHERE agency_id = ANY ($1))
        ) AS tag,
        greatest(
            (SELECT max(published_at) FROM r),
            (SELECT max(c.changed_at) FROM r JOIN report_status_changes c ON c.report_id = r.id
             WHERE $2 OR r.status = 'PUBLISHED' OR c.old_status = 'PUBLISHED'),
            (SELECT max(d.updated_at) FROM r JOIN datapoints d ON d.report_id = r.id
             WHERE $2 OR r.status = 'PUBLISHED'),
            (SELECT max(deleted_at) FROM deleted_datapoints WHERE agency_id = ANY ($1)),
            (SELECT max(updated_at) FROM metric_settings WHERE agency_id = ANY ($1))
        ) AS last_modified",
    )
    .bind::<diesel::sql_types::Array<Integer>, _>(
        query.agencies.iter().map(|id| id.0).collect::<Vec<_>>(),
    )
    .bind::<Bool, _>(query.audience == Audience::Members)
    .get_result(conn)
    .await?;
    let mut hash = Sha256::new();
    // The statement's length stands for its version: a new server's feed is not cached
    // as the old one's.
    hash.update(format!(
        "{:?}|{format:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{}",
        query.audience,
        query.agencies,
        query.metric,
        query.system,
        query.from,
        query.to,
        query.since.as_ref().map(Cursor::encode),
        row.tag,
        sql::rows(query.audience, query.since.is_some(), query.filtered()).len(),
    ));
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    Ok(FeedVersion {
        etag: format!("W/\"{hex}\""),
        last_modified: row.last_modified,
    })
}

/// An open feed: the cursor to sync from next time, and the rows as they come.
pub struct Feed {
    /// The cursor that gives the changes after this read.
    pub next: Cursor,
    /// The feed's bytes.
    pub body: FeedBody,
}

/// The bytes of a feed, in chunks of whole rows of about `chunk_rows` rows; the feed's own
/// connection closes (and its transaction ends) when this is dropped.
pub struct FeedBody {
    rows: Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
    _client: tokio_postgres::Client,
}

impl Stream for FeedBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rows.as_mut().poll_next(cx)
    }
}

fn database_error(error: tokio_postgres::Error) -> AppError {
    let detail = error
        .as_db_error()
        .map_or_else(|| error.to_string(), |db| db.message().to_owned());
    AppError::Internal(anyhow::anyhow!("the feed's statement failed: {detail}"))
}

/// Opens a feed on a connection of its own (`database_url`), so that a long download holds no
/// connection of `pool`; `pool` serves the short reads that decide what is public, in the
/// feed's own snapshot. The body comes in chunks of about `chunk_rows` rows; `timeout` ends a
/// feed that takes longer.
pub async fn open(
    database_url: &str,
    pool: &Pool,
    catalogue: &Catalogue,
    query: &FeedQuery,
    format: Format,
    chunk_rows: usize,
    timeout: Option<std::time::Duration>,
) -> AppResult<Feed> {
    query.check(catalogue)?;
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "cannot open a feed's connection");
            AppError::Unavailable("the feed cannot be opened now; try again".into())
        })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "a feed's connection ended");
        }
    });
    client
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
             SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL TimeZone = 'UTC'; \
             SET LOCAL extra_float_digits = 1",
        )
        .await
        .map_err(database_error)?;
    if let Some(timeout) = timeout {
        client
            .batch_execute(&format!(
                "SET LOCAL statement_timeout = {}",
                timeout.as_millis().max(1)
            ))
            .await
            .map_err(database_error)?;
    }
    let row = client
        .query_one(
            "SELECT pg_export_snapshot(), pg_current_snapshot()::text",
            &[],
        )
        .await
        .map_err(database_error)?;
    let (exported, current): (String, String) = (row.get(0), row.get(1));
    let scope = match query.audience {
        Audience::Members => PublishedScope::default(),
        Audience::Public => {
            let mut conn = pool.get().await?;
            in_snapshot(&mut conn, &exported, catalogue, &query.agencies).await?
        }
    };
    let settings = query.settings(&scope)?;
    let parameters: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = settings
        .iter()
        .map(|value| value as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    tokio_postgres::Client::execute(&client, sql::set_config().as_str(), &parameters)
        .await
        .map_err(database_error)?;
    let statement = sql::copy(
        query.audience,
        query.since.is_some(),
        query.filtered(),
        format == Format::JsonLines,
    );
    let copy = client
        .copy_out(statement.as_str())
        .await
        .map_err(database_error)?;
    let next =
        Cursor::after(Snapshot::parse(&current).ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("unexpected snapshot {current:?}"))
        })?);
    let rows = copy
        .ready_chunks(chunk_rows.max(1))
        .map(|chunk| {
            let mut bytes = BytesMut::new();
            for row in chunk {
                bytes.extend_from_slice(&row.map_err(std::io::Error::other)?);
            }
            Ok(bytes.freeze())
        })
        .boxed();
    Ok(Feed {
        next,
        body: FeedBody {
            rows,
            _client: client,
        },
    })
}

/// The published scope of `agencies`, read in the exported snapshot `snapshot`.
async fn in_snapshot(
    conn: &mut AsyncPgConnection,
    snapshot: &str,
    catalogue: &Catalogue,
    agencies: &[AgencyId],
) -> AppResult<PublishedScope> {
    if !snapshot.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(AppError::Internal(anyhow::anyhow!(
            "unexpected snapshot id {snapshot:?}"
        )));
    }
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(async |conn| {
            conn.batch_execute(&format!("SET TRANSACTION SNAPSHOT '{snapshot}'"))
                .await?;
            scope_of(conn, catalogue, agencies).await
        })
        .await
}

/// One change of the change stream.
#[derive(Debug, Clone, QueryableByName)]
pub struct ChangeRow {
    /// The part of the stream (for paging).
    #[diesel(sql_type = Integer)]
    pub part: i32,
    /// The row's id within its part (for paging).
    #[diesel(sql_type = BigInt)]
    pub row_id: i64,
    /// `upsert` or `delete`.
    #[diesel(sql_type = Text)]
    pub change: String,
    /// The agency.
    #[diesel(sql_type = Integer)]
    pub agency_id: i32,
    /// The metric.
    #[diesel(sql_type = Text)]
    pub metric_key: String,
    /// The report period's first day.
    #[diesel(sql_type = Date)]
    pub period_start: NaiveDate,
    /// The day after the period.
    #[diesel(sql_type = Date)]
    pub period_end: NaiveDate,
    /// MONTHLY or ANNUAL.
    #[diesel(sql_type = Text)]
    pub frequency: String,
    /// The breakdown, for a breakdown value.
    #[diesel(sql_type = Nullable<Text>)]
    pub breakdown: Option<String>,
    /// The member, for a breakdown value.
    #[diesel(sql_type = Nullable<Text>)]
    pub member: Option<String>,
    /// The free-text sub-category (member feeds only).
    #[diesel(sql_type = Nullable<Text>)]
    pub sub_category: Option<String>,
    /// The value; none when removed or not reported.
    #[diesel(sql_type = Nullable<Double>)]
    pub value: Option<f64>,
    /// The report's status (none for a removal).
    #[diesel(sql_type = Nullable<Text>)]
    pub report_status: Option<String>,
    /// When the report was published (RFC 3339).
    #[diesel(sql_type = Nullable<Text>)]
    pub published_at: Option<String>,
    /// When the value last changed, or was removed (RFC 3339).
    #[diesel(sql_type = Nullable<Text>)]
    pub updated_at: Option<String>,
}

/// A page of the change stream.
#[derive(Debug, Clone)]
pub struct ChangePage {
    /// The changes, removals first.
    pub changes: Vec<ChangeRow>,
    /// Where to go on from: the next page, or — when this was the last — the next sync.
    pub next: Cursor,
    /// Whether this was the last page of the read.
    pub complete: bool,
}

/// At most `first` changes after `query.since` (everything when none), in one snapshot.
pub async fn changes(
    conn: &mut AsyncPgConnection,
    catalogue: &Catalogue,
    query: &FeedQuery,
    first: usize,
) -> AppResult<ChangePage> {
    query.check(catalogue)?;
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(async |conn| {
            #[derive(QueryableByName)]
            struct Current {
                #[diesel(sql_type = Text)]
                snapshot: String,
            }
            let current: Current =
                diesel::sql_query("SELECT pg_current_snapshot()::text AS snapshot")
                    .get_result(conn)
                    .await?;
            let current = Snapshot::parse(&current.snapshot).ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!(
                    "unexpected snapshot {:?}",
                    current.snapshot
                ))
            })?;
            let scope = match query.audience {
                Audience::Members => PublishedScope::default(),
                Audience::Public => scope_of(conn, catalogue, &query.agencies).await?,
            };
            let [agencies, metric, system, from, to, since, scope] = query.settings(&scope)?;
            diesel::sql_query(sql::set_config())
                .bind::<Text, _>(agencies)
                .bind::<Text, _>(metric)
                .bind::<Text, _>(system)
                .bind::<Text, _>(from)
                .bind::<Text, _>(to)
                .bind::<Text, _>(since)
                .bind::<Text, _>(scope)
                .execute(conn)
                .await?;
            let (first_snapshot, after) =
                match query.since.as_ref().and_then(|c| c.continues.clone()) {
                    Some((snapshot, position)) => (snapshot, position),
                    None => (current, Position { part: -1, id: 0 }),
                };
            let limit = i64::try_from(first).unwrap_or(i64::MAX);
            let mut changes: Vec<ChangeRow> = diesel::sql_query(sql::page(
                query.audience,
                query.since_snapshot().is_some(),
                query.filtered(),
            ))
            .bind::<Integer, _>(after.part)
            .bind::<BigInt, _>(after.id)
            .bind::<BigInt, _>(limit.saturating_add(1))
            .load(conn)
            .await?;
            let complete = changes.len() <= first;
            changes.truncate(first);
            let next = match changes.last() {
                Some(last) if !complete => Cursor {
                    since: query.since_snapshot().cloned(),
                    continues: Some((
                        first_snapshot,
                        Position {
                            part: last.part,
                            id: last.row_id,
                        },
                    )),
                },
                _ => Cursor::after(first_snapshot),
            };
            Ok(ChangePage {
                changes,
                next,
                complete,
            })
        })
        .await
}
