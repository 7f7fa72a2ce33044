//! What each command does: opening the database (configured or private), preparing it, and
//! serving.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::AuthConfig;
use crate::auth::tokens::{self, KeySource, Restrictions, TokenKeys};
use crate::catalogue::{Catalogue, sync};
use crate::config::{
    BackgroundArgs, ExportArgs, ExportFormat, GlobalOptions, IngestArgs, SeedArgs, ServeArgs,
    TokenCommand,
};
use crate::db::cluster::{BinarySearch, Cluster, ClusterOptions, PgBinaries};
use crate::db::replicas::Replicas;
use crate::db::{self, Pool, PoolSettings};
use crate::events::EventBus;
use crate::ingest::job::{DropDirectory, IngestHandler};
use crate::ingest::{self, IngestSettings};
use crate::models::ids::AgencyId;
use crate::models::user::User;
use crate::{graphql, http, jobs, seed};

/// Name of the database inside the private cluster.
pub const EMBEDDED_DATABASE: &str = "justice_counts";

/// An open database: its URL, and the private cluster serving it if there is one.
pub struct Database {
    /// Connection URL.
    pub url: String,
    /// Whether the database was created by this call (first start of the private cluster).
    pub created: bool,
    cluster: Option<Cluster>,
}

impl Database {
    /// The configured database, or the private cluster in the data directory (started here,
    /// or, when a running server holds it, used through its socket).
    pub async fn open(options: &GlobalOptions) -> anyhow::Result<Self> {
        if let Some(url) = &options.database_url {
            return Ok(Self {
                url: url.clone(),
                created: false,
                cluster: None,
            });
        }
        let root = Cluster::placed(&options.data_dir.join("postgres"))?;
        if let Some(url) = Cluster::held_elsewhere(&root, EMBEDDED_DATABASE) {
            tracing::info!(dir = %root.display(), "using the private cluster of the running server");
            return Ok(Self {
                url,
                created: false,
                cluster: None,
            });
        }
        let search = BinarySearch::system(options.pg_bin_dir.clone());
        let cluster_options = ClusterOptions {
            root,
            durable: true,
            ..ClusterOptions::default()
        };
        let (cluster, _) = tokio::task::spawn_blocking(move || {
            let binaries = PgBinaries::locate(&search)?;
            Cluster::start(binaries, &cluster_options)
        })
        .await??;
        tracing::info!(dir = %cluster.root().display(), "private PostgreSQL cluster running");
        let created =
            db::create_database_if_missing(&cluster.url("postgres"), EMBEDDED_DATABASE).await?;
        Ok(Self {
            url: cluster.url(EMBEDDED_DATABASE),
            created,
            cluster: Some(cluster),
        })
    }

    /// Stops the private cluster, if any, waiting for a clean shutdown.
    pub async fn close(mut self) -> anyhow::Result<()> {
        if let Some(mut cluster) = self.cluster.take() {
            tokio::task::spawn_blocking(move || cluster.stop()).await??;
            tracing::info!("private PostgreSQL cluster stopped");
        }
        Ok(())
    }
}

/// Migrates the database, syncs the catalogue and opens the pool.
pub async fn prepare(url: &str, pool: PoolSettings) -> anyhow::Result<(Pool, Arc<Catalogue>)> {
    let applied = db::run_migrations(url).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "migrations applied");
    }
    let catalogue = Arc::new(Catalogue::standard()?);
    let pool = db::connect_with(url, pool).await?;
    let mut conn = pool.get().await?;
    let outcome = sync::sync(&mut conn, &catalogue).await?;
    tracing::info!(
        ?outcome,
        metrics = catalogue.metrics().len(),
        "metric catalogue synced"
    );
    drop(conn);
    Ok((pool, catalogue))
}

/// `serve`: the API until SIGINT or SIGTERM.
pub async fn serve(options: &GlobalOptions, args: &ServeArgs) -> anyhow::Result<()> {
    let database = Database::open(options).await?;
    let result = serve_on(&database, options, args).await;
    database.close().await?;
    result
}

async fn serve_on(
    database: &Database,
    options: &GlobalOptions,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    let limits = Arc::new(args.limits.clone());
    let pool_settings = PoolSettings {
        wait: limits.pool_wait,
        statement_timeout: Some(limits.statement_timeout),
        generic_plans: args.generic_plans,
        ..PoolSettings::new(options.pool_size)
    };
    let replicas = Replicas::connect(&args.database_replica_urls, &pool_settings).await?;
    if !replicas.is_empty() {
        tracing::info!(
            replicas = args.database_replica_urls.len(),
            "queries read from streaming replicas"
        );
    }
    let (pool, catalogue) = prepare(&database.url, pool_settings).await?;
    if database.created {
        let mut conn = pool.get().await?;
        let summary = seed::demo::seed(&mut conn, &catalogue).await?;
        tracing::info!(%summary, "demo data loaded on first start");
    }
    let mut auth = AuthConfig::with_limits(load_keys(options)?, &limits);
    auth.access_token_lifetime = chrono::Duration::from_std(args.access_token_lifetime)?;
    auth.session_lifetime = chrono::Duration::from_std(args.session_lifetime)?;
    let auth = Arc::new(auth);
    let events = EventBus::new();
    let event_listener = events.listen(database.url.clone()).await?;
    auth.credentials.follow(&events);
    let background = Background::start(&pool, &catalogue, &events, &args.background);
    let router = http::router(http::Services {
        cors: args.cors.clone(),
        replicas: Arc::new(replicas),
        ..http::Services::over(
            graphql::SchemaData {
                pool,
                catalogue,
                auth,
                events,
                limits,
            },
            &database.url,
        )
    })?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "listening");
    println!(
        "GraphiQL: http://{address}/graphiql   (GraphQL endpoint: POST http://{address}/graphql)"
    );
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    background.stop();
    event_listener.stop();
    tracing::info!("shutting down");
    Ok(())
}

/// The work a server process does besides answering requests: the job workers and the drop
/// directory's watcher.
pub struct Background {
    workers: jobs::Workers,
    watcher: Option<tokio::task::JoinHandle<()>>,
    purger: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Starts the workers (and the watcher, when a drop directory is set).
    pub fn start(
        pool: &Pool,
        catalogue: &Arc<Catalogue>,
        events: &EventBus,
        args: &BackgroundArgs,
    ) -> Self {
        let settings = IngestSettings {
            batch_rows: args.ingest_batch_rows as usize,
            statement_timeout: args.ingest_statement_timeout,
            work_mem_mb: args.ingest_work_mem_mb,
            workbook: ingest::workbook::ReaderLimits {
                memory_mb: args.workbook_memory_mb,
                cpu_seconds: args.workbook_cpu_seconds,
            },
        };
        let mut handlers: HashMap<String, Arc<dyn jobs::Handler>> = HashMap::new();
        handlers.insert(
            ingest::JOB_KIND.into(),
            Arc::new(IngestHandler::new(
                pool.clone(),
                catalogue.clone(),
                settings,
            )),
        );
        let workers = jobs::Workers::start(
            pool.clone(),
            handlers,
            jobs::WorkerSettings {
                workers: args.job_workers,
                lease: args.job_lease,
                poll: args.job_poll,
            },
            events.job_queued(),
        );
        let watcher = args.ingest_dir.clone().map(|dir| {
            tracing::info!(dir = %dir.display(), "watching the drop directory");
            tokio::spawn(
                DropDirectory {
                    dir,
                    poll: args.ingest_dir_poll,
                    pool: pool.clone(),
                }
                .watch(),
            )
        });
        let retention = ingest::retention::Retention {
            dry_runs: args.dry_run_retention,
            jobs: args.job_retention,
        };
        let purger = tokio::spawn(purge_every_hour(pool.clone(), retention));
        Self {
            workers,
            watcher,
            purger,
        }
    }

    /// Stops the workers and the watcher; jobs they held are taken up again later.
    pub fn stop(self) {
        self.workers.stop();
        if let Some(watcher) = self.watcher {
            watcher.abort();
        }
        self.purger.abort();
    }
}

/// Deletes finished work past its retention, every hour (every server does; the deletes
/// are idempotent).
async fn purge_every_hour(pool: Pool, retention: ingest::retention::Retention) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        let purged = match pool.get().await {
            Ok(mut conn) => ingest::retention::purge(&mut conn, retention)
                .await
                .map_err(anyhow::Error::from),
            Err(error) => Err(anyhow::Error::from(error)),
        };
        match purged {
            Ok(purged) if purged != ingest::retention::Purged::default() => {
                tracing::info!(
                    staged_values = purged.staged_values,
                    jobs = purged.jobs,
                    "finished work past its retention deleted"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot delete finished work past its retention"),
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// `migrate`: migrations and catalogue sync.
pub async fn migrate(options: &GlobalOptions) -> anyhow::Result<()> {
    let database = Database::open(options).await?;
    let result = prepare(&database.url, PoolSettings::new(2)).await.map(drop);
    database.close().await?;
    result
}

/// `seed`: the demo data, or a large generated data set.
pub async fn seed(options: &GlobalOptions, args: &SeedArgs) -> anyhow::Result<()> {
    let database = Database::open(options).await?;
    let result = seed_on(&database, options, args).await;
    database.close().await?;
    result
}

async fn seed_on(
    database: &Database,
    options: &GlobalOptions,
    args: &SeedArgs,
) -> anyhow::Result<()> {
    let (pool, catalogue) =
        prepare(&database.url, PoolSettings::new(options.pool_size.max(2))).await?;
    match args.scale {
        None => {
            let mut conn = pool.get().await?;
            let summary = seed::demo::seed(&mut conn, &catalogue).await?;
            println!("demo data loaded: {summary}");
        }
        Some(scale) => {
            let report = seed::scale::seed(&pool, &catalogue, scale as usize * 100, true).await?;
            println!("{report}");
        }
    }
    Ok(())
}

/// `ingest FILE`: an automated upload, run here and now; prints its result. Fails (exit
/// status 1) when the file had errors.
pub async fn ingest(options: &GlobalOptions, args: &IngestArgs) -> anyhow::Result<()> {
    let system = crate::models::enums::System::from_key(&args.system.to_uppercase())
        .with_context(|| format!("{} is not a system", args.system))?;
    let file_name = args
        .file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .with_context(|| format!("{} is not a file", args.file.display()))?;
    let file = tokio::fs::File::open(&args.file)
        .await
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let database = Database::open(options).await?;
    let result = async {
        let (pool, catalogue) = prepare(&database.url, PoolSettings::new(3)).await?;
        let upload = ingest::NewUpload {
            agency: AgencyId(args.agency),
            system,
            file_name,
            user: None,
            source: crate::models::enums::ValueSource::AutomatedBulkUpload,
            dry_run: args.dry_run,
        };
        let mut conn = pool.get().await?;
        let id = ingest::create(&mut conn, &upload, file, ingest::Queue::Caller)
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        drop(conn);
        let bar = progress_bar();
        let observer = BarObserver(bar.clone());
        ingest::run(&pool, &catalogue, id, &IngestSettings::default(), &observer).await?;
        bar.finish_and_clear();
        ingest::job::summary(&pool, id).await
    }
    .await;
    database.close().await?;
    let summary = result?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if summary["status"] != "INGESTED" {
        anyhow::bail!("the file was not ingested cleanly: see its messages");
    }
    Ok(())
}

/// `export`: agencies' values to a file or standard output, streamed from one snapshot.
pub async fn export(options: &GlobalOptions, args: &ExportArgs) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;

    let system = args
        .system
        .as_deref()
        .map(|system| {
            crate::models::enums::System::from_key(&system.to_uppercase())
                .with_context(|| format!("{system} is not a system"))
        })
        .transpose()?;
    let since = args
        .since
        .as_deref()
        .map(crate::export::Cursor::decode)
        .transpose()
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let database = Database::open(options).await?;
    let result = async {
        let (pool, catalogue) = prepare(&database.url, PoolSettings::new(2)).await?;
        let mut conn = pool.get().await?;
        let agencies: Vec<AgencyId> = if args.agencies.is_empty() {
            crate::models::agency::Agency::all_ids(&mut conn).await?
        } else {
            args.agencies.iter().copied().map(AgencyId).collect()
        };
        let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &args.out {
            Some(path) => Box::new(
                tokio::fs::File::create(path)
                    .await
                    .with_context(|| format!("cannot create {}", path.display()))?,
            ),
            None => Box::new(tokio::io::stdout()),
        };
        if args.format == ExportFormat::Xlsx {
            let (&[agency], Some(system)) = (agencies.as_slice(), system) else {
                anyhow::bail!(
                    "a spreadsheet holds one agency's system: give one --agency and --system"
                );
            };
            let sheets = crate::export::sheets::sheets(
                &mut conn,
                &catalogue,
                agency,
                system,
                args.single_page,
            )
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
            out.write_all(&crate::ingest::template::xlsx(&sheets)?)
                .await?;
            out.flush().await?;
            return Ok(());
        }
        drop(conn);
        let mut query = crate::export::FeedQuery::new(
            if args.published_only {
                crate::export::Audience::Public
            } else {
                crate::export::Audience::Members
            },
            agencies,
        );
        query.system = system;
        query.since = since;
        let format = match args.format {
            ExportFormat::Jsonl => crate::export::Format::JsonLines,
            _ => crate::export::Format::Csv,
        };
        let mut feed =
            crate::export::open(&database.url, &pool, &catalogue, &query, format, 4096, None)
                .await
                .map_err(|error| anyhow::anyhow!("{error}"))?;
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} lines written ({per_sec})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let mut lines = 0u64;
        while let Some(chunk) = feed.body.next().await {
            let chunk = chunk?;
            let count = chunk.iter().filter(|&&byte| byte == b'\n').count();
            lines += u64::try_from(count).unwrap_or(0);
            bar.set_position(lines);
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        bar.finish_and_clear();
        tracing::info!(lines, "exported");
        eprintln!("next cursor: {}", feed.next.encode());
        Ok(())
    }
    .await;
    database.close().await?;
    result
}

/// A spinner counting rows on a terminal (hidden otherwise).
fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} rows read ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar
}

struct BarObserver(indicatif::ProgressBar);

impl ingest::Observer for BarObserver {
    fn batch_stored(&self, rows_read: i64) -> futures_util::future::BoxFuture<'_, ()> {
        self.0.set_position(u64::try_from(rows_read).unwrap_or(0));
        Box::pin(async {})
    }
}

/// The token root key from configuration or the data directory.
fn load_keys(options: &GlobalOptions) -> anyhow::Result<TokenKeys> {
    TokenKeys::load(&KeySource {
        hex: options.token_root_key.clone(),
        file: options.token_root_key_file.clone(),
        data_dir: options.data_dir.clone(),
    })
}

/// `token ...`: issue, attenuate or inspect a token; prints the result.
pub async fn token(options: &GlobalOptions, command: &TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Issue { email, lifetime } => {
            let keys = load_keys(options)?;
            let database = Database::open(options).await?;
            let result = issue_token(&database.url, &keys, email, *lifetime).await;
            database.close().await?;
            println!("{}", result?);
        }
        TokenCommand::Attenuate {
            token,
            read_only,
            agencies,
            expires_in,
        } => {
            let restrictions = Restrictions {
                read_only: *read_only,
                agencies: agencies.iter().copied().map(AgencyId).collect(),
                expires_at: expires_in
                    .map(chrono::Duration::from_std)
                    .transpose()?
                    .map(|lifetime| chrono::Utc::now() + lifetime),
            };
            println!("{}", tokens::attenuate(token, &restrictions)?);
        }
        TokenCommand::Inspect { token } => {
            print!("{}", tokens::describe(token, &load_keys(options)?)?)
        }
    }
    Ok(())
}

async fn issue_token(
    url: &str,
    keys: &TokenKeys,
    email: &str,
    lifetime: std::time::Duration,
) -> anyhow::Result<String> {
    use diesel_async::AsyncConnection;
    let mut conn = diesel_async::AsyncPgConnection::establish(url).await?;
    let user = User::find_by_email(&mut conn, email)
        .await?
        .with_context(|| format!("no user has email {email}"))?;
    let expires = chrono::Utc::now() + chrono::Duration::from_std(lifetime)?;
    Ok(keys.issue(user.id, None, expires)?)
}

/// `schema`: the SDL on standard output.
pub fn print_schema() {
    print!("{}", graphql::sdl());
}
