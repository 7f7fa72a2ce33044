//! The ingest as a background job, and the drop directory of automated uploads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use serde_json::json;

use super::{
    IngestJob, IngestSettings, NewUpload, Observer, Queue, Quiet, create, fail, progress, run,
};
use crate::catalogue::Catalogue;
use crate::db::Pool;
use crate::error::AppError;
use crate::jobs::{Handler, Job};
use crate::models::enums::{SpreadsheetStatus, System, ValueSource};
use crate::models::ids::{AgencyId, SpreadsheetId};

/// Runs ingest jobs.
pub struct IngestHandler {
    /// The database.
    pub pool: Pool,
    /// The catalogue.
    pub catalogue: Arc<Catalogue>,
    /// How ingests run.
    pub settings: IngestSettings,
    /// Told about each stored batch.
    pub observer: Arc<dyn Observer>,
}

impl IngestHandler {
    /// A handler with no observer.
    pub fn new(pool: Pool, catalogue: Arc<Catalogue>, settings: IngestSettings) -> Self {
        Self {
            pool,
            catalogue,
            settings,
            observer: Arc::new(Quiet),
        }
    }
}

impl Handler for IngestHandler {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let payload: IngestJob = serde_json::from_value(job.payload.clone())?;
            let id = SpreadsheetId(payload.spreadsheet_id);
            run(
                &self.pool,
                &self.catalogue,
                id,
                &self.settings,
                self.observer.as_ref(),
            )
            .await?;
            if let Some(path) = payload.drop_path {
                deliver(&self.pool, id, Path::new(&path)).await?;
            }
            Ok(())
        })
    }

    fn give_up<'a>(&'a self, job: &'a Job, error: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let payload: IngestJob = serde_json::from_value(job.payload.clone())?;
            let id = SpreadsheetId(payload.spreadsheet_id);
            let mut conn = self.pool.get().await?;
            fail(&mut conn, id, error, &self.settings)
                .await
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            drop(conn);
            if let Some(path) = payload.drop_path {
                deliver(&self.pool, id, Path::new(&path)).await?;
            }
            Ok(())
        })
    }
}

/// What an ingest ended with, as written beside a file of the drop directory and printed by
/// the `ingest` command.
pub async fn summary(pool: &Pool, id: SpreadsheetId) -> anyhow::Result<serde_json::Value> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;

    use crate::db::schema::spreadsheet_messages as m;
    let mut conn = pool.get().await?;
    let progress = progress(&mut conn, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("upload {id} is gone"))?;
    type Row = (
        String,
        String,
        String,
        Option<String>,
        Option<i32>,
        Option<String>,
    );
    let messages: Vec<Row> = m::table
        .filter(m::spreadsheet_id.eq(id))
        .order(m::id)
        .select((
            diesel::dsl::sql::<diesel::sql_types::Text>("severity::text"),
            m::title,
            m::message,
            m::sheet,
            m::row_number,
            m::metric_key,
        ))
        .load(&mut *conn)
        .await?;
    Ok(json!({
        "uploadId": id.0,
        "agencyId": progress.agency_id,
        "status": progress.status,
        "rowsRead": progress.rows_read,
        "rowsSaved": progress.rows_saved,
        "messages": messages.into_iter().map(|(severity, title, description, sheet, row, metric)| json!({
            "type": severity,
            "title": title,
            "description": description,
            "sheet": sheet,
            "row": row,
            "metricKey": metric,
        })).collect::<Vec<_>>(),
    }))
}

/// Moves a dropped file out of `processing/` to `done/` (ingested) or `failed/`, with its
/// result beside it as JSON.
async fn deliver(pool: &Pool, id: SpreadsheetId, path: &Path) -> anyhow::Result<()> {
    let summary = summary(pool, id).await?;
    let status: Option<SpreadsheetStatus> = serde_json::from_value(summary["status"].clone()).ok();
    let folder = if status == Some(SpreadsheetStatus::Ingested) {
        "done"
    } else {
        "failed"
    };
    let (Some(processing), Some(name)) = (path.parent(), path.file_name()) else {
        anyhow::bail!("{} is not a file of the drop directory", path.display());
    };
    let Some(system_dir) = processing.parent() else {
        anyhow::bail!("{} is not a file of the drop directory", path.display());
    };
    let target_dir = system_dir.join(folder);
    tokio::fs::create_dir_all(&target_dir).await?;
    let target = target_dir.join(format!("{}-{}", id.0, name.to_string_lossy()));
    if tokio::fs::try_exists(path).await? {
        tokio::fs::rename(path, &target).await?;
    }
    let mut result = target.clone().into_os_string();
    result.push(".result.json");
    write_whole(Path::new(&result), &serde_json::to_vec_pretty(&summary)?).await?;
    Ok(())
}

/// Writes a file so that a reader never sees it half-written: a temporary name, then a
/// rename (atomic within a directory).
async fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    tokio::fs::write(&partial, bytes).await?;
    tokio::fs::rename(&partial, path).await
}

/// How long ago a file must have been moved to `processing/` to be taken for one a stopped
/// server left there.
const ORPHAN_AGE: Duration = Duration::from_secs(600);

/// Watches the drop directory: each file that stopped growing in
/// `<dir>/<agency id>/<system>/` is moved to `processing/` and becomes an automated upload.
pub struct DropDirectory {
    /// The directory.
    pub dir: PathBuf,
    /// How often it is scanned.
    pub poll: Duration,
    /// The database.
    pub pool: Pool,
}

impl DropDirectory {
    /// Scans until the task is stopped. First, files a stopped server left in `processing/`
    /// are filed as refused.
    pub async fn watch(self) {
        if let Err(error) = self.recover(ORPHAN_AGE).await {
            tracing::warn!(%error, dir = %self.dir.display(), "cannot look for files left in processing/");
        }
        let mut seen: Vec<(PathBuf, u64, Option<SystemTime>)> = Vec::new();
        loop {
            match self.scan(&seen).await {
                Ok(now) => seen = now,
                Err(error) => {
                    tracing::warn!(%error, dir = %self.dir.display(), "cannot scan the drop directory")
                }
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Files in `processing/` that became no upload: a server took them (renamed them there)
    /// and stopped before recording the upload. They go to `failed/` with a result asking for
    /// the file again, rather than being ingested anew unseen. Only files moved there more than
    /// `min_age` ago: another server may be recording one that it has just taken.
    pub async fn recover(&self, min_age: Duration) -> anyhow::Result<usize> {
        use std::os::unix::fs::MetadataExt;

        use diesel_async::RunQueryDsl;
        let mut filed = 0;
        for (agency_dir, _) in subdirectories(&self.dir).await? {
            for (system_dir, _) in subdirectories(&agency_dir).await? {
                let mut entries = match tokio::fs::read_dir(system_dir.join("processing")).await {
                    Ok(entries) => entries,
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(error.into()),
                };
                while let Some(entry) = entries.next_entry().await? {
                    let metadata = entry.metadata().await?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !metadata.is_file() || name.starts_with('.') {
                        continue;
                    }
                    // The time of the rename into processing/ (the inode's change time).
                    let moved = SystemTime::UNIX_EPOCH
                        + Duration::from_secs(u64::try_from(metadata.ctime()).unwrap_or(0));
                    if moved.elapsed().unwrap_or_default() < min_age {
                        continue;
                    }
                    let path = entry.path();
                    let mut conn = self.pool.get().await?;
                    #[derive(diesel::QueryableByName)]
                    struct Known {
                        #[diesel(sql_type = diesel::sql_types::Bool)]
                        known: bool,
                    }
                    let known: Known = diesel::sql_query(
                        "SELECT EXISTS (SELECT 1 FROM jobs WHERE payload->>'drop_path' = $1) AS known",
                    )
                    .bind::<diesel::sql_types::Text, _>(path.to_string_lossy().into_owned())
                    .get_result(&mut *conn)
                    .await
                    .map_err(|error| anyhow::anyhow!("{error}"))?;
                    drop(conn);
                    if !known.known {
                        refuse(
                            &system_dir,
                            &path,
                            &name,
                            "the server stopped before this file became an upload; drop it again",
                        )
                        .await?;
                        filed += 1;
                    }
                }
            }
        }
        Ok(filed)
    }

    /// One scan: files unchanged since the previous scan are taken; the rest are returned to
    /// be compared next time.
    async fn scan(
        &self,
        previous: &[(PathBuf, u64, Option<SystemTime>)],
    ) -> anyhow::Result<Vec<(PathBuf, u64, Option<SystemTime>)>> {
        let mut now = Vec::new();
        for (agency_dir, agency) in subdirectories(&self.dir).await? {
            for (system_dir, system) in subdirectories(&agency_dir).await? {
                let mut entries = tokio::fs::read_dir(&system_dir).await?;
                while let Some(entry) = entries.next_entry().await? {
                    let metadata = entry.metadata().await?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !metadata.is_file() || name.starts_with('.') {
                        continue;
                    }
                    let state = (entry.path(), metadata.len(), metadata.modified().ok());
                    if previous.contains(&state) {
                        if let Err(error) = self.take(&system_dir, &name, &agency, &system).await {
                            tracing::warn!(%error, file = %state.0.display(), "cannot take a dropped file");
                        }
                    } else {
                        now.push(state);
                    }
                }
            }
        }
        Ok(now)
    }

    async fn take(
        &self,
        system_dir: &Path,
        name: &str,
        agency: &str,
        system: &str,
    ) -> anyhow::Result<()> {
        let processing = system_dir.join("processing");
        tokio::fs::create_dir_all(&processing).await?;
        let path = processing.join(name);
        // Taking the file is renaming it: of several servers watching, one wins.
        if tokio::fs::rename(system_dir.join(name), &path)
            .await
            .is_err()
        {
            return Ok(());
        }
        let upload = match (agency.parse::<i32>(), System::from_key(system)) {
            (Ok(agency), Some(system)) => NewUpload {
                agency: AgencyId(agency),
                system,
                file_name: name.to_owned(),
                user: None,
                source: ValueSource::AutomatedBulkUpload,
                dry_run: false,
            },
            _ => {
                return refuse(
                    system_dir,
                    &path,
                    name,
                    "the folders must be <agency id>/<SYSTEM>/",
                )
                .await;
            }
        };
        let created: Result<SpreadsheetId, AppError> = async {
            let mut conn = self.pool.get().await?;
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(AppError::internal)?;
            let queue = Queue::Job {
                drop_path: Some(path.to_string_lossy().into_owned()),
            };
            create(&mut conn, &upload, file, queue).await
        }
        .await;
        match created {
            Ok(id) => {
                tracing::info!(upload = %id, file = %path.display(), "dropped file queued");
                Ok(())
            }
            // The file's fault (its agency, its system, its size): filed as refused.
            Err(
                error @ (AppError::BadUserInput(_)
                | AppError::NotFound(_)
                | AppError::Forbidden(_)
                | AppError::Detailed { .. }),
            ) => refuse(system_dir, &path, name, &error.to_string()).await,
            // The server's (the database, the disk): put back, to be taken again later —
            // unless a newer file of that name was dropped meanwhile, which is not replaced
            // (a link does not replace; the file then waits in `processing/`).
            Err(error) => {
                let back = system_dir.join(name);
                if tokio::fs::hard_link(&path, &back).await.is_ok() {
                    tokio::fs::remove_file(&path).await?;
                }
                Err(anyhow::anyhow!("{error}"))
            }
        }
    }
}

/// A dropped file that cannot become an upload goes to `failed/` with the reason.
async fn refuse(system_dir: &Path, path: &Path, name: &str, reason: &str) -> anyhow::Result<()> {
    let failed = system_dir.join("failed");
    tokio::fs::create_dir_all(&failed).await?;
    tokio::fs::rename(path, failed.join(name)).await?;
    let summary = json!({ "status": "REFUSED", "error": reason });
    write_whole(
        &failed.join(format!("{name}.result.json")),
        &serde_json::to_vec_pretty(&summary)?,
    )
    .await?;
    Ok(())
}

async fn subdirectories(dir: &Path) -> std::io::Result<Vec<(PathBuf, String)>> {
    let mut found = Vec::new();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(error) => return Err(error),
    };
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let skip =
            matches!(name.as_str(), "processing" | "done" | "failed") || name.starts_with('.');
        if !skip && entry.file_type().await?.is_dir() {
            found.push((entry.path(), name));
        }
    }
    Ok(found)
}
