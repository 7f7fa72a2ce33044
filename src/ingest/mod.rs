//! Bulk upload: agencies send a year of metrics as one spreadsheet (CSV, XLSX or XLS) in the
//! layout they already use, and the server reads it as a background job.
//!
//! An upload is stored whole in PostgreSQL ([`create`]), with a job to ingest it. The job
//! ([`run`]) reads the file in batches: each batch's values go to a staging table and its
//! messages beside them, in one transaction with the position reached, so a job interrupted
//! by a crash continues after the last batch stored. When the whole file is read, the staged
//! values are applied in one transaction ([`apply`]); a dry run compares them with what is
//! stored and writes nothing else. Applying the same file twice changes nothing the second
//! time.

pub mod apply;
pub mod fuzzy;
pub mod job;
pub mod layout;
pub mod parse;
pub mod read;
pub mod retention;
pub mod stage;
pub mod template;
pub mod workbook;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Integer, Text};
use diesel_async::{
    AnsiTransactionManager, AsyncConnection, AsyncPgConnection, RunQueryDsl, TransactionManager,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::catalogue::Catalogue;
use crate::db::Pool;
use crate::db::schema::{agencies, spreadsheets};
use crate::error::{AppError, AppResult};
use crate::events::{self, UploadProgress};
use crate::models::agency::Agency;
use crate::models::enums::{MessageSeverity, SpreadsheetStatus, System, ValueSource};
use crate::models::ids::{AgencyId, SpreadsheetId, UserId};
use crate::models::metric_setting::AgencyMetricSettings;
use parse::{Context, Message, Output, Parser, Target};
use read::Format;
use stage::Batch;

/// The job kind of an ingest.
pub const JOB_KIND: &str = "ingest";

/// Size of the parts a file is stored in.
const PART_BYTES: usize = 1 << 20;

/// How an ingest runs.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Rows read per batch (one transaction each).
    pub batch_rows: usize,
    /// How long one statement of an ingest may run.
    pub statement_timeout: Duration,
    /// PostgreSQL's `work_mem` for the ingest's statements, in MiB.
    pub work_mem_mb: u32,
    /// What the reader of a workbook may use.
    pub workbook: workbook::ReaderLimits,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            batch_rows: 10_000,
            statement_timeout: Duration::from_secs(600),
            work_mem_mb: 64,
            workbook: workbook::ReaderLimits::default(),
        }
    }
}

/// A file to ingest.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// The uploading agency.
    pub agency: AgencyId,
    /// The system the file is for.
    pub system: System,
    /// The file's name (its extension says its format).
    pub file_name: String,
    /// The person uploading it, for a person's upload.
    pub user: Option<UserId>,
    /// A person's upload or an automated one.
    pub source: ValueSource,
    /// Compare only.
    pub dry_run: bool,
}

/// The job's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestJob {
    /// The spreadsheet to ingest.
    pub spreadsheet_id: i32,
    /// For a file of the drop directory: where it waits for its result.
    #[serde(default)]
    pub drop_path: Option<String>,
}

/// Checks an upload before its file is read: a known format, and a system the agency (or,
/// for a superagency, one of its children) reports for.
pub async fn check(
    conn: &mut AsyncPgConnection,
    upload: &NewUpload,
) -> AppResult<(Agency, Vec<Agency>)> {
    if Format::of(&upload.file_name).is_none() {
        return Err(AppError::BadUserInput(format!(
            "\"{}\" is not a .csv, .xlsx or .xls file",
            upload.file_name
        )));
    }
    if upload.file_name.len() > 255 || upload.file_name.contains(['\0', '\n']) {
        return Err(AppError::BadUserInput(
            "the file name must be at most 255 characters on one line".into(),
        ));
    }
    let agency = Agency::by_ids(&mut &*conn, &[upload.agency])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::NotFound(format!("no agency has id {}", upload.agency)))?;
    let children = Agency::children_of(&mut &*conn, &[upload.agency]).await?;
    let mut systems = agency.systems();
    for child in &children {
        systems.extend(child.systems());
    }
    if !systems.contains(&upload.system) {
        let mut valid: Vec<&str> = systems.iter().map(|s| s.key()).collect();
        valid.sort_unstable();
        valid.dedup();
        return Err(AppError::BadUserInput(format!(
            "{} does not report for {}: upload for one of {}",
            agency.name,
            upload.system.key(),
            valid.join(", ")
        )));
    }
    Ok((agency, children))
}

/// How a stored upload gets ingested.
#[derive(Debug, Clone)]
pub enum Queue {
    /// By a job of the server's workers; for a file of the drop directory, with its path.
    Job {
        /// Where a dropped file waits for its result.
        drop_path: Option<String>,
    },
    /// By the caller, who runs it at once.
    Caller,
}

/// Stores an upload and (unless the caller runs it) queues its ingest, in one transaction;
/// the file is read from `file`. Returns the new spreadsheet.
pub async fn create(
    conn: &mut AsyncPgConnection,
    upload: &NewUpload,
    file: impl AsyncRead + Unpin + Send,
    queue: Queue,
) -> AppResult<SpreadsheetId> {
    check(conn, upload).await?;
    conn.transaction(async |conn| {
        let id: SpreadsheetId = diesel::insert_into(spreadsheets::table)
            .values((
                spreadsheets::agency_id.eq(upload.agency),
                spreadsheets::system.eq(upload.system),
                spreadsheets::file_name.eq(&upload.file_name),
                spreadsheets::uploaded_by.eq(upload.user),
                spreadsheets::source.eq(upload.source),
                spreadsheets::dry_run.eq(upload.dry_run),
            ))
            .returning(spreadsheets::id)
            .get_result(conn)
            .await?;
        let (size, digest) = store_file(conn, id, file).await?;
        diesel::sql_query("UPDATE spreadsheets SET file_size = $2, file_sha256 = $3 WHERE id = $1")
            .bind::<Integer, _>(id.0)
            .bind::<BigInt, _>(size)
            .bind::<Text, _>(digest)
            .execute(conn)
            .await?;
        if let Queue::Job { drop_path } = queue {
            let payload = IngestJob {
                spreadsheet_id: id.0,
                drop_path,
            };
            crate::jobs::enqueue(conn, JOB_KIND, &payload).await?;
        }
        Ok(id)
    })
    .await
}

async fn store_file(
    conn: &mut AsyncPgConnection,
    id: SpreadsheetId,
    mut file: impl AsyncRead + Unpin + Send,
) -> AppResult<(i64, String)> {
    let mut digest = Sha256::new();
    let mut size: i64 = 0;
    let mut part: i32 = 0;
    let mut buffer = vec![0u8; PART_BYTES];
    loop {
        let mut filled = 0;
        while filled < PART_BYTES {
            let read = file.read(&mut buffer[filled..]).await.map_err(|error| {
                AppError::BadUserInput(format!("the file could not be read: {error}"))
            })?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        if filled == 0 {
            break;
        }
        digest.update(&buffer[..filled]);
        size += filled as i64;
        diesel::sql_query(
            "INSERT INTO spreadsheet_file_parts (spreadsheet_id, part, bytes) VALUES ($1, $2, $3)",
        )
        .bind::<Integer, _>(id.0)
        .bind::<Integer, _>(part)
        .bind::<Bytea, _>(&buffer[..filled])
        .execute(conn)
        .await?;
        part += 1;
        if filled < PART_BYTES {
            break;
        }
    }
    let hex: String = digest
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok((size, hex))
}

#[derive(QueryableByName)]
struct Part {
    #[diesel(sql_type = Bytea)]
    bytes: Vec<u8>,
}

/// One part of a stored file (none past the end).
pub async fn file_part(
    conn: &mut AsyncPgConnection,
    id: SpreadsheetId,
    part: i32,
) -> diesel::QueryResult<Option<Vec<u8>>> {
    let found: Option<Part> = diesel::sql_query(
        "SELECT bytes FROM spreadsheet_file_parts WHERE spreadsheet_id = $1 AND part = $2",
    )
    .bind::<Integer, _>(id.0)
    .bind::<Integer, _>(part)
    .get_result(conn)
    .await
    .optional()?;
    Ok(found.map(|found| found.bytes))
}

/// Reads a stored file part by part into `out`.
pub async fn read_file(
    conn: &mut AsyncPgConnection,
    id: SpreadsheetId,
    mut out: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> AppResult<()> {
    let mut part = 0;
    loop {
        let Some(bytes) = file_part(conn, id, part).await? else {
            return Ok(());
        };
        out(&bytes).map_err(|error| AppError::Internal(error.into()))?;
        part += 1;
    }
}

/// The stored state of an ingest.
#[derive(Debug, Clone, QueryableByName)]
struct JobState {
    #[diesel(sql_type = Integer)]
    agency_id: AgencyId,
    #[diesel(sql_type = crate::db::schema::sql_types::System)]
    system: System,
    #[diesel(sql_type = Text)]
    file_name: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Integer>)]
    uploaded_by: Option<UserId>,
    #[diesel(sql_type = crate::db::schema::sql_types::ValueSource)]
    source: ValueSource,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    dry_run: bool,
    #[diesel(sql_type = crate::db::schema::sql_types::SpreadsheetStatus)]
    status: SpreadsheetStatus,
    #[diesel(sql_type = Integer)]
    read_sheet: i32,
    #[diesel(sql_type = BigInt)]
    read_row: i64,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    read_done: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    cancel_requested: bool,
}

/// Where reading stands: sheet slot (0 = before the first sheet) and row within it.
type Position = (i32, i64);

/// What a finished ingest ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Applied (or compared), with its counts.
    Applied(SpreadsheetStatus, apply::Applied),
    /// Cancelled before it was applied.
    Cancelled,
    /// It had already ended.
    AlreadyDone(SpreadsheetStatus),
    /// Not applied: its uploader may no longer enter the agency's data.
    Refused,
}

/// Told about progress between batches.
pub trait Observer: Send + Sync {
    /// A batch was stored: `rows_read` rows are read in all.
    fn batch_stored(&self, rows_read: i64) -> futures_util::future::BoxFuture<'_, ()>;
}

/// An observer that does nothing.
pub struct Quiet;

impl Observer for Quiet {
    fn batch_stored(&self, _: i64) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Runs (or resumes) the ingest of a stored spreadsheet.
pub async fn run(
    pool: &Pool,
    catalogue: &Arc<Catalogue>,
    id: SpreadsheetId,
    settings: &IngestSettings,
    observer: &dyn Observer,
) -> anyhow::Result<Finished> {
    // One runner per upload, whatever the job queue believes: the lock belongs to a
    // transaction left open on a connection of its own while the ingest runs. A runner that
    // stops half-way leaves the transaction open, so the pool discards the connection and
    // the lock ends with its session.
    let mut lock = pool.get().await?;
    AnsiTransactionManager::begin_transaction(&mut *lock).await?;
    let locked: Locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1, $2) AS locked")
        .bind::<Integer, _>(LOCK_CLASS)
        .bind::<Integer, _>(id.0)
        .get_result(&mut *lock)
        .await?;
    if !locked.locked {
        AnsiTransactionManager::rollback_transaction(&mut *lock).await?;
        anyhow::bail!("upload {id} is being ingested by another worker");
    }
    let result = run_locked(pool, catalogue, id, settings, observer).await;
    AnsiTransactionManager::rollback_transaction(&mut *lock).await?;
    result
}

/// The advisory lock class of ingests (the second key is the spreadsheet id).
const LOCK_CLASS: i32 = 0x1_9e57;

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

async fn run_locked(
    pool: &Pool,
    catalogue: &Arc<Catalogue>,
    id: SpreadsheetId,
    settings: &IngestSettings,
    observer: &dyn Observer,
) -> anyhow::Result<Finished> {
    let mut conn = pool.get().await?;
    let state: JobState = diesel::sql_query(
        "SELECT agency_id, system, file_name, uploaded_by, source, dry_run, status, read_sheet, \
             read_row, read_done, cancel_requested_at IS NOT NULL AS cancel_requested \
         FROM spreadsheets WHERE id = $1",
    )
    .bind::<Integer, _>(id.0)
    .get_result(&mut *conn)
    .await?;
    if matches!(
        state.status,
        SpreadsheetStatus::Ingested | SpreadsheetStatus::Errored | SpreadsheetStatus::Cancelled
    ) {
        return Ok(Finished::AlreadyDone(state.status));
    }
    if state.cancel_requested {
        drop(conn);
        return cancel(pool, id, settings).await;
    }
    diesel::update(spreadsheets::table.find(id))
        .set(spreadsheets::status.eq(SpreadsheetStatus::Ingesting))
        .execute(&mut *conn)
        .await?;
    notify_progress(&mut conn, id).await?;
    drop(conn);
    if !state.read_done {
        let mut conn = pool.get().await?;
        let context = context(&mut conn, catalogue, state.agency_id, state.system).await?;
        drop(conn);
        let cancelled = read_file_into_stage(pool, id, &state, context, settings, observer).await?;
        if cancelled {
            return cancel(pool, id, settings).await;
        }
    }
    apply_staged(pool, id, &state, settings).await
}

/// What reading an agency's files for a system depends on: the agency, its children, and
/// their settings.
pub async fn context(
    conn: &mut AsyncPgConnection,
    catalogue: &Arc<Catalogue>,
    agency: AgencyId,
    system: System,
) -> AppResult<Context> {
    let agency = Agency::by_ids(&mut &*conn, &[agency])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::NotFound(format!("no agency has id {agency}")))?;
    let children = Agency::children_of(&mut &*conn, &[agency.id]).await?;
    let ids: Vec<AgencyId> = std::iter::once(agency.id)
        .chain(children.iter().map(|c| c.id))
        .collect();
    let mut settings = AgencyMetricSettings::of_agencies(&mut &*conn, &ids).await?;
    let mut target = |agency: &Agency| Target {
        id: agency.id,
        name: agency.name.clone(),
        systems: agency.systems(),
        settings: settings.remove(&agency.id).unwrap_or_default(),
    };
    Ok(Context {
        system,
        agency: target(&agency),
        children: children.iter().map(&mut target).collect(),
        catalogue: catalogue.clone(),
        current_year: Utc::now().year(),
    })
}

/// What the reading thread sends: a batch of outputs and the position after them.
struct Chunk {
    outputs: Vec<Output>,
    rows_read: i64,
    position: Position,
    done: bool,
}

/// Reads the file on a blocking thread and stages it batch by batch. Returns whether the
/// upload was cancelled meanwhile.
async fn read_file_into_stage(
    pool: &Pool,
    id: SpreadsheetId,
    state: &JobState,
    context: Context,
    settings: &IngestSettings,
    observer: &dyn Observer,
) -> anyhow::Result<bool> {
    let file = tempfile::NamedTempFile::new()?;
    {
        let mut conn = pool.get().await?;
        let mut writer = std::io::BufWriter::new(file.as_file());
        read_file(&mut conn, id, |bytes| writer.write_all(bytes))
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        writer.flush()?;
    }
    let checkpoint: Position = (state.read_sheet, state.read_row);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Chunk>(2);
    let file_name = state.file_name.clone();
    let batch_rows = settings.batch_rows.max(1);
    let path = file.path().to_owned();
    let limits = settings.workbook;
    let reader = tokio::task::spawn_blocking(move || {
        let reading = Reading {
            path: &path,
            file_name: &file_name,
            limits,
            checkpoint,
            batch_rows,
        };
        read_sheets(&reading, context, &sender)
    });
    let mut rows_read: i64 = 0;
    let mut cancelled = false;
    while let Some(chunk) = receiver.recv().await {
        rows_read += chunk.rows_read;
        let mut batch = Batch::default();
        for output in chunk.outputs {
            batch.push(output);
        }
        let mut conn = pool.get().await?;
        let accepted = batch.value_count() as i64;
        let stop = conn
            .transaction(async |conn| {
                set_session_limits(conn, settings).await?;
                let requested: Option<chrono::DateTime<Utc>> = spreadsheets::table
                    .find(id)
                    .select(spreadsheets::cancel_requested_at)
                    .for_update()
                    .first(conn)
                    .await?;
                if requested.is_some() {
                    return Ok::<_, diesel::result::Error>(true);
                }
                batch.write(conn, id).await?;
                diesel::sql_query(
                    "UPDATE spreadsheets SET read_sheet = $2, read_row = $3, read_done = $4, \
                         rows_read = rows_read + $5, rows_accepted = rows_accepted + $6 \
                     WHERE id = $1",
                )
                .bind::<Integer, _>(id.0)
                .bind::<Integer, _>(chunk.position.0)
                .bind::<BigInt, _>(chunk.position.1)
                .bind::<diesel::sql_types::Bool, _>(chunk.done)
                .bind::<BigInt, _>(chunk.rows_read)
                .bind::<BigInt, _>(accepted)
                .execute(conn)
                .await?;
                notify_progress(conn, id).await?;
                Ok(false)
            })
            .await?;
        drop(conn);
        if stop {
            cancelled = true;
            break;
        }
        observer.batch_stored(rows_read).await;
    }
    drop(receiver);
    reader.await??;
    Ok(cancelled)
}

/// What the reading thread reads, and from where on.
#[derive(Clone, Copy)]
struct Reading<'a> {
    path: &'a std::path::Path,
    file_name: &'a str,
    limits: workbook::ReaderLimits,
    checkpoint: Position,
    batch_rows: usize,
}

/// The reading thread: every sheet and row through the parser, sending what comes after the
/// checkpoint in batches.
///
/// Fails only when the file could not be looked at for reasons of the server's own (the
/// workbook reader could not be started): the job then fails and is tried again, rather than
/// the file being called unreadable.
fn read_sheets(
    reading: &Reading<'_>,
    context: Context,
    sender: &tokio::sync::mpsc::Sender<Chunk>,
) -> Result<(), read::ReadError> {
    let Reading {
        path,
        file_name,
        limits,
        checkpoint,
        batch_rows,
    } = *reading;
    let is_csv = Format::of(file_name) == Some(Format::Csv);
    let mut parser = Parser::new(context, is_csv);
    let mut pending: Vec<Output> = Vec::new();
    let mut pending_rows: i64 = 0;
    let mut position: Position = checkpoint;
    let after = |at: Position| at > checkpoint;
    let flush = |outputs: &mut Vec<Output>, rows: &mut i64, position: Position, done: bool| {
        let chunk = Chunk {
            outputs: std::mem::take(outputs),
            rows_read: std::mem::take(rows),
            position,
            done,
        };
        sender.blocking_send(chunk).is_ok()
    };
    let unreadable = |error: &read::ReadError| {
        Output::Message(Message {
            severity: MessageSeverity::Error,
            title: "Unreadable File".into(),
            description: format!(
                "{error}. Save the file again as CSV (UTF-8) or XLSX and upload it."
            ),
            sheet: None,
            row: None,
            metric_key: None,
            value: None,
            options: Vec::new(),
        })
    };
    let sources = match read::open(path, file_name, limits) {
        Ok(sources) => sources,
        Err(error @ read::ReadError::Reader(_)) => return Err(error),
        Err(error) => {
            let at = (1, 0);
            if after(at) {
                pending.push(unreadable(&error));
            }
            flush(&mut pending, &mut pending_rows, at.max(checkpoint), true);
            return Ok(());
        }
    };
    let slots = i32::try_from(sources.len()).unwrap_or(i32::MAX - 1);
    for (index, source) in sources.iter().enumerate() {
        let slot = i32::try_from(index + 1).unwrap_or(i32::MAX - 1);
        if slot < checkpoint.0 {
            continue;
        }
        let sheet = match source.read() {
            Ok(sheet) => sheet,
            Err(error) => {
                if after((slot, 0)) {
                    pending.push(unreadable(&error));
                }
                continue;
            }
        };
        let outputs = parser.begin_sheet(index, &sheet.name, &sheet.header);
        position = position.max((slot, 0));
        if after((slot, 0)) {
            pending.extend(outputs);
        }
        for row in sheet.rows {
            let (number, cells) = match row {
                Ok(row) => row,
                Err(error) => {
                    if after((slot, i64::MAX - 1)) {
                        pending.push(unreadable(&error));
                    }
                    break;
                }
            };
            let at = (slot, i64::try_from(number).unwrap_or(i64::MAX - 2));
            let outputs = parser.row(number, &cells);
            if after(at) {
                pending.extend(outputs);
                pending_rows += 1;
                position = at;
                if pending_rows as usize >= batch_rows
                    && !flush(&mut pending, &mut pending_rows, position, false)
                {
                    return Ok(());
                }
            }
        }
        let end = (slot, i64::MAX);
        let outputs = parser.end_sheet();
        if after(end) {
            pending.extend(outputs);
            position = end;
        }
    }
    let outputs = parser.finish();
    let end = (slots + 1, 0);
    if after(end) {
        pending.extend(outputs);
        position = end;
    }
    flush(&mut pending, &mut pending_rows, position, true);
    Ok(())
}

/// The ingest's settings for the rest of the transaction: its statement timeout, its memory
/// for sorts and hashes, PostgreSQL's own choice of plans (a pool may force generic plans,
/// which suit short statements, not these; forcing plans made for the values instead would
/// plan the foreign keys' checks anew for every row), and no JIT compilation (its statements
/// are few and large, and their estimated costs, far above JIT's thresholds, would have each
/// compiled at length).
async fn set_session_limits(
    conn: &mut AsyncPgConnection,
    settings: &IngestSettings,
) -> diesel::QueryResult<()> {
    use diesel_async::SimpleAsyncConnection;
    conn.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}; SET LOCAL work_mem = '{}MB'; SET LOCAL jit = off; \
         SET LOCAL plan_cache_mode = auto",
        settings.statement_timeout.as_millis().max(1),
        settings.work_mem_mb.clamp(1, 4096)
    ))
    .await
}

async fn apply_staged(
    pool: &Pool,
    id: SpreadsheetId,
    state: &JobState,
    settings: &IngestSettings,
) -> anyhow::Result<Finished> {
    let mut conn = pool.get().await?;
    let refreshed = conn
        .transaction(async |conn| {
            set_session_limits(conn, settings).await?;
            apply::refresh_statistics(conn).await
        })
        .await;
    if let Err(error) = refreshed {
        // Statistics only guide the planner: apply with the ones there are.
        tracing::warn!(%error, upload = id.0, "cannot refresh the staging table's statistics");
    }
    let mode = apply::Mode {
        spreadsheet: id,
        dry_run: state.dry_run,
        source: state.source,
        user: state.uploaded_by,
    };
    let finished = conn
        .transaction(async |conn| {
            set_session_limits(conn, settings).await?;
            let (status, requested): (SpreadsheetStatus, Option<chrono::DateTime<Utc>>) =
                spreadsheets::table
                    .find(id)
                    .select((spreadsheets::status, spreadsheets::cancel_requested_at))
                    .for_update()
                    .first(conn)
                    .await?;
            if status != SpreadsheetStatus::Ingesting && status != SpreadsheetStatus::Uploaded {
                return Ok::<_, diesel::result::Error>(Some(Finished::AlreadyDone(status)));
            }
            if requested.is_some() {
                return Ok(None);
            }
            // A person's upload writes with their rights as they are now, not as they were
            // when the file was queued: someone removed from the agency since writes nothing.
            if !state.dry_run
                && let Some(user) = state.uploaded_by
                && !may_enter_data(conn, user, state.agency_id).await?
            {
                refuse_uploader(conn, id).await?;
                return Ok(Some(Finished::Refused));
            }
            let applied = apply::apply(conn, mode).await?;
            let status = if applied.has_errors {
                SpreadsheetStatus::Errored
            } else {
                SpreadsheetStatus::Ingested
            };
            diesel::update(spreadsheets::table.find(id))
                .set((
                    spreadsheets::status.eq(status),
                    spreadsheets::ingested_at.eq(Some(Utc::now())),
                    spreadsheets::finished_at.eq(Some(Utc::now())),
                    spreadsheets::rows_saved.eq(applied.rows_saved),
                    spreadsheets::new_datapoint_count
                        .eq(i32::try_from(applied.new_values).unwrap_or(i32::MAX)),
                ))
                .execute(conn)
                .await?;
            notify_progress(conn, id).await?;
            Ok(Some(Finished::Applied(status, applied)))
        })
        .await?;
    drop(conn);
    match finished {
        Some(finished) => Ok(finished),
        None => cancel(pool, id, settings).await,
    }
}

/// Whether `user` may still enter data for `agency` (contributor or more there, or in its
/// superagency, or platform staff).
async fn may_enter_data(
    conn: &mut AsyncPgConnection,
    user: UserId,
    agency: AgencyId,
) -> diesel::QueryResult<bool> {
    let credentials = crate::models::user::User::credentials(conn, user, &[], None).await?;
    Ok(credentials.is_some_and(|credentials| {
        credentials.is_platform_admin
            || credentials
                .roles
                .get(&agency)
                .is_some_and(|&role| role >= crate::models::enums::AgencyRole::Contributor)
    }))
}

/// Ends an upload whose uploader may no longer enter the agency's data (inside the caller's
/// transaction).
async fn refuse_uploader(
    conn: &mut AsyncPgConnection,
    id: SpreadsheetId,
) -> diesel::QueryResult<()> {
    end_with(
        conn,
        id,
        "Uploader Not Allowed",
        "The file was not applied: the person who uploaded it may no longer enter this \
         agency's data. Nothing of it was saved."
            .into(),
    )
    .await
}

/// Ends an upload as ERRORED with one message about the file, its staged values dropped
/// (inside the caller's transaction).
async fn end_with(
    conn: &mut AsyncPgConnection,
    id: SpreadsheetId,
    title: &str,
    description: String,
) -> diesel::QueryResult<()> {
    let mut batch = Batch::default();
    batch.push(Output::Message(Message {
        severity: MessageSeverity::Error,
        title: title.into(),
        description,
        sheet: None,
        row: None,
        metric_key: None,
        value: None,
        options: Vec::new(),
    }));
    batch.write(conn, id).await?;
    end_as(conn, id, SpreadsheetStatus::Errored).await
}

/// Ends an upload that applied nothing with `status`: its staged values dropped, its
/// followers told (inside the caller's transaction).
async fn end_as(
    conn: &mut AsyncPgConnection,
    id: SpreadsheetId,
    status: SpreadsheetStatus,
) -> diesel::QueryResult<()> {
    diesel::sql_query("DELETE FROM spreadsheet_values WHERE spreadsheet_id = $1")
        .bind::<Integer, _>(id.0)
        .execute(conn)
        .await?;
    diesel::update(spreadsheets::table.find(id))
        .set((
            spreadsheets::status.eq(status),
            spreadsheets::finished_at.eq(Some(Utc::now())),
        ))
        .execute(conn)
        .await?;
    notify_progress(conn, id).await
}

/// Ends a cancelled ingest: its staged values are dropped, nothing was applied.
async fn cancel(
    pool: &Pool,
    id: SpreadsheetId,
    settings: &IngestSettings,
) -> anyhow::Result<Finished> {
    let mut conn = pool.get().await?;
    conn.transaction(async |conn| {
        // An upload's staged values may be millions of rows: the ingest's own time limit.
        set_session_limits(conn, settings).await?;
        end_as(conn, id, SpreadsheetStatus::Cancelled).await
    })
    .await?;
    Ok(Finished::Cancelled)
}

/// Asks a queued or running ingest to stop. Returns false when it had already ended.
pub async fn request_cancel(conn: &mut AsyncPgConnection, id: SpreadsheetId) -> AppResult<bool> {
    conn.transaction(async |conn| {
        let status: Option<SpreadsheetStatus> = diesel::update(
            spreadsheets::table.find(id).filter(
                spreadsheets::status
                    .eq_any([SpreadsheetStatus::Uploaded, SpreadsheetStatus::Ingesting]),
            ),
        )
        .set(spreadsheets::cancel_requested_at.eq(Some(Utc::now())))
        .returning(spreadsheets::status)
        .get_result(conn)
        .await
        .optional()?;
        if status.is_some() {
            notify_progress(conn, id).await?;
        }
        Ok(status.is_some())
    })
    .await
}

/// The current progress of an ingest.
pub async fn progress(
    conn: &mut AsyncPgConnection,
    id: SpreadsheetId,
) -> diesel::QueryResult<Option<UploadProgress>> {
    diesel::sql_query(
        "SELECT s.id AS spreadsheet_id, s.agency_id, s.status, s.rows_read, \
             s.rows_accepted, s.rows_saved, \
             (SELECT count(*) FROM spreadsheet_messages m WHERE m.spreadsheet_id = s.id) \
                 AS messages, \
             s.cancel_requested_at IS NOT NULL AS cancel_requested \
         FROM spreadsheets s WHERE s.id = $1",
    )
    .bind::<Integer, _>(id.0)
    .get_result(conn)
    .await
    .optional()
}

/// Announces an ingest's progress when the current transaction commits.
async fn notify_progress(
    conn: &mut AsyncPgConnection,
    id: SpreadsheetId,
) -> diesel::QueryResult<()> {
    let Some(progress) = progress(conn, id).await? else {
        return Ok(());
    };
    events::notify_upload(conn, &progress).await
}

/// Marks an ingest that failed for good (its job gave up) as ERRORED, with the reason.
pub async fn fail(
    conn: &mut AsyncPgConnection,
    id: SpreadsheetId,
    reason: &str,
    settings: &IngestSettings,
) -> AppResult<()> {
    tracing::error!(upload = id.0, reason, "an upload could not be ingested");
    conn.transaction(async |conn| {
        // Dropping the staged values takes as long as an ingest may.
        set_session_limits(conn, settings).await?;
        // Not while a runner still holds the upload (its job's lease ran out under it): that
        // runner finishes it.
        let locked: Locked =
            diesel::sql_query("SELECT pg_try_advisory_xact_lock($1, $2) AS locked")
                .bind::<Integer, _>(LOCK_CLASS)
                .bind::<Integer, _>(id.0)
                .get_result(conn)
                .await?;
        if !locked.locked {
            return Err(AppError::internal(anyhow::anyhow!(
                "upload {id} is still being ingested by another worker"
            )));
        }
        // Nor once it has ended: an applied upload stays applied.
        let status: Option<SpreadsheetStatus> = spreadsheets::table
            .find(id)
            .select(spreadsheets::status)
            .for_update()
            .first(conn)
            .await
            .optional()?;
        if !matches!(
            status,
            Some(SpreadsheetStatus::Uploaded | SpreadsheetStatus::Ingesting)
        ) {
            return Ok(());
        }
        // The reason stays in the job's record and the logs: it speaks of the server's
        // inside (statements, tables), not of the file.
        end_with(
            conn,
            id,
            "Unexpected Error",
            format!(
                "The file could not be ingested; nothing of it was saved. Try again, and tell \
                 the platform's staff if it fails again (upload {}).",
                id.0
            ),
        )
        .await?;
        Ok(())
    })
    .await
}

/// The agency of a spreadsheet (for access checks).
pub async fn agency_of(
    conn: &mut AsyncPgConnection,
    id: SpreadsheetId,
) -> diesel::QueryResult<Option<AgencyId>> {
    spreadsheets::table
        .find(id)
        .select(spreadsheets::agency_id)
        .first(conn)
        .await
        .optional()
}

/// Agencies by id, for a CLI caller that names one.
pub async fn agency_exists(
    conn: &mut AsyncPgConnection,
    id: AgencyId,
) -> diesel::QueryResult<bool> {
    diesel::select(diesel::dsl::exists(agencies::table.find(id)))
        .get_result(conn)
        .await
}
