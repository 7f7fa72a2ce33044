//! What the benchmarks share: a private PostgreSQL cluster holding the demo data, and the
//! screens' documents.

use std::sync::Arc;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use justice_counts::auth::AuthConfig;
use justice_counts::auth::tokens::TokenKeys;
use justice_counts::catalogue::{Catalogue, sync};
use justice_counts::db::cluster::{BinarySearch, Cluster, ClusterOptions, PgBinaries};
use justice_counts::db::schema::{agencies, reports};
use justice_counts::events::EventBus;
use justice_counts::graphql::{self, SchemaData};
use justice_counts::limits::Limits;
use justice_counts::models::enums::System;
use justice_counts::models::ids::{AgencyId, ReportId};
use justice_counts::models::user::User;
use justice_counts::{db, http, seed};

/// A database of its own for a benchmark run; the cluster stops when this is dropped.
pub struct BenchDb {
    /// Connection URL.
    pub url: String,
    /// The metric catalogue.
    pub catalogue: Arc<Catalogue>,
    _cluster: Cluster,
    _dir: tempfile::TempDir,
}

impl BenchDb {
    /// A cluster in a temporary directory, a migrated database with the catalogue and the
    /// demo data.
    #[allow(dead_code, reason = "not every benchmark uses the plain demo data")]
    pub async fn with_demo() -> anyhow::Result<Self> {
        Self::with_settings(Vec::new()).await
    }

    /// As [`Self::with_demo`], with further PostgreSQL settings.
    pub async fn with_settings(settings: Vec<(String, String)>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().to_owned();
        let (cluster, _) = tokio::task::spawn_blocking(move || {
            let binaries = PgBinaries::locate(&BinarySearch::system(None))?;
            Cluster::start(
                binaries,
                &ClusterOptions {
                    root,
                    durable: false,
                    settings,
                    ..ClusterOptions::default()
                },
            )
        })
        .await??;
        db::create_database_if_missing(&cluster.url("postgres"), "bench").await?;
        let url = cluster.url("bench");
        db::run_migrations(&url).await?;
        let catalogue = Arc::new(Catalogue::standard()?);
        let mut conn = AsyncPgConnection::establish(&url).await?;
        sync::sync(&mut conn, &catalogue).await?;
        seed::demo::seed(&mut conn, &catalogue).await?;
        Ok(Self {
            url,
            catalogue,
            _cluster: cluster,
            _dir: dir,
        })
    }
}

impl BenchDb {
    /// The process id of the cluster's postmaster.
    #[allow(
        dead_code,
        reason = "not every benchmark watches PostgreSQL's processes"
    )]
    pub fn postmaster_pid(&self) -> anyhow::Result<u32> {
        let text = std::fs::read_to_string(self._cluster.pgdata().join("postmaster.pid"))?;
        Ok(text.lines().next().unwrap_or_default().trim().parse()?)
    }

    /// The cluster's server log.
    #[allow(dead_code, reason = "not every benchmark reads PostgreSQL's log")]
    pub fn log_path(&self) -> std::path::PathBuf {
        self._cluster.root().join("postgres.log")
    }

    /// The cluster's data directory.
    #[allow(dead_code, reason = "not every benchmark reads PostgreSQL's files")]
    pub fn pgdata(&self) -> std::path::PathBuf {
        self._cluster.pgdata()
    }
}

/// The rows the screens are run on, in the demo data with generated agencies added.
#[allow(dead_code, reason = "not every benchmark serves screens")]
pub struct ScreenIds {
    /// The demo sheriff's office.
    pub sheriff: AgencyId,
    /// A generated agency reporting jails.
    pub jail: AgencyId,
    /// Its latest report.
    pub report: ReportId,
}

impl ScreenIds {
    /// Looks them up in the database at `url`.
    #[allow(dead_code, reason = "not every benchmark serves screens")]
    pub async fn find(url: &str) -> anyhow::Result<Self> {
        let mut conn = AsyncPgConnection::establish(url).await?;
        let sheriff: AgencyId = agencies::table
            .filter(agencies::name.eq("Pine County Sheriff's Office"))
            .select(agencies::id)
            .first(&mut conn)
            .await?;
        let jail: AgencyId = agencies::table
            .filter(agencies::name.like("Benchmark Agency%"))
            .filter(agencies::systems.contains(vec![Some(System::Jails)]))
            .select(agencies::id)
            .first(&mut conn)
            .await?;
        let report: ReportId = reports::table
            .filter(reports::agency_id.eq(jail))
            .order(reports::date_range_start.desc())
            .select(reports::id)
            .first(&mut conn)
            .await?;
        Ok(Self {
            sheriff,
            jail,
            report,
        })
    }
}

/// The API served over `pool` (a pool of the database at `url`) on a loopback port by this
/// process: its `/graphql` URL and an access token of the demo platform admin. `checked`:
/// with the limits on documents; `follow`: with the in-memory caches kept current by the
/// database's notifications (without it, nothing is served from memory).
#[allow(dead_code, reason = "not every benchmark serves in-process")]
pub async fn serve_in_process(
    url: &str,
    pool: db::Pool,
    catalogue: &Arc<Catalogue>,
    limits: Arc<Limits>,
    checked: bool,
    follow: bool,
) -> anyhow::Result<(String, String)> {
    let keys = TokenKeys::generate();
    let mut conn = pool.get().await?;
    let user = User::find_by_email(&mut conn, "admin@example.com")
        .await?
        .ok_or_else(|| anyhow::anyhow!("the demo data has no platform admin"))?;
    drop(conn);
    let token = keys.issue(
        user.id,
        None,
        chrono::Utc::now() + chrono::Duration::hours(2),
    )?;
    let auth = Arc::new(AuthConfig::with_limits(keys, &limits));
    let events = EventBus::new();
    if follow {
        events.listen(url.to_owned()).await?;
        auth.credentials.follow(&events);
    }
    let data = SchemaData {
        pool: pool.clone(),
        catalogue: catalogue.clone(),
        auth: auth.clone(),
        events: events.clone(),
        limits: limits.clone(),
    };
    let executor = if checked {
        graphql::build_executor(data)
    } else {
        graphql::build_schema_without_document_limits(data)
    };
    let router = http::router(http::Services {
        executor,
        pool,
        auth,
        limits,
        events,
        cors: http::cors::CorsSettings::default(),
        catalogue: catalogue.clone(),
        database_url: url.to_owned(),
        replicas: Arc::default(),
    })?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    Ok((format!("http://{address}/graphql"), token))
}

/// The document of a screen (`operations/<name>.graphql`).
#[allow(dead_code, reason = "not every benchmark serves screens")]
pub fn operation(name: &str) -> String {
    let path = format!("{}/operations/{name}.graphql", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{path} is missing"))
}

/// The process's peak resident memory since the last reset, in KiB.
#[allow(dead_code, reason = "not every benchmark measures memory")]
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the peak resident memory (writing 5 to `clear_refs`, Linux 4.0 and later).
#[allow(dead_code, reason = "not every benchmark measures memory")]
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
