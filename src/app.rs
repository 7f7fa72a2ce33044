//! What each command does: opening the database (configured or private), preparing it, and
//! serving.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::AuthConfig;
use crate::auth::tokens::{self, KeySource, Restrictions, TokenKeys};
use crate::catalogue::{Catalogue, sync};
use crate::config::{GlobalOptions, SeedArgs, ServeArgs, TokenCommand};
use crate::db::cluster::{BinarySearch, Cluster, ClusterOptions, PgBinaries};
use crate::db::{self, Pool, PoolSettings};
use crate::events::EventBus;
use crate::models::ids::AgencyId;
use crate::models::user::User;
use crate::{graphql, http, seed};

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
        let root = options.data_dir.join("postgres");
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
        ..PoolSettings::new(options.pool_size)
    };
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
    let router = http::router(http::Services {
        cors: args.cors.clone(),
        ..http::Services::over(graphql::SchemaData {
            pool,
            catalogue,
            auth,
            events,
            limits,
        })
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
    event_listener.stop();
    tracing::info!("shutting down");
    Ok(())
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
