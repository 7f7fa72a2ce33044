//! The test harness: one PostgreSQL server per test run (a private cluster started from the
//! machine's binaries, or the server named by `TEST_DATABASE_URL`), a template database that
//! is migrated and holds the catalogue, and a fresh database cloned from it for every test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use justice_counts::auth::AuthConfig;
use justice_counts::auth::tokens::TokenKeys;
use justice_counts::catalogue::{Catalogue, sync};
use justice_counts::db::cluster::{BinarySearch, Cluster, ClusterOptions, PgBinaries};
use justice_counts::db::{self, Pool, StatementCounter, quote_identifier};
use justice_counts::limits::Limits;
use justice_counts::{graphql, http, seed};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

struct TestServer {
    /// URL of any database, with `{db}` where the database name goes.
    url_pattern: String,
    /// Migrated, catalogue synced.
    template: String,
    run: String,
}

impl TestServer {
    fn url(&self, database: &str) -> String {
        self.url_pattern.replace("{db}", database)
    }
}

static SERVER: OnceCell<TestServer> = OnceCell::const_new();
static DEMO_TEMPLATE: OnceCell<String> = OnceCell::const_new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Replaces the database of a PostgreSQL URL by the `{db}` placeholder.
fn url_pattern(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or_default();
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{{db}}{query}")
}

async fn start_server() -> TestServer {
    let run = format!("jc{}", std::process::id());
    let url_pattern = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) => url_pattern(&url),
        Err(_) => {
            let dir = tempfile::Builder::new()
                .prefix("jc-test-")
                .tempdir()
                .expect("temporary directory")
                .keep();
            let cluster = tokio::task::spawn_blocking(move || {
                let binaries = PgBinaries::locate(&BinarySearch::system(None))?;
                let (cluster, _) = Cluster::start(
                    binaries,
                    &ClusterOptions {
                        root: dir,
                        durable: false,
                        ..ClusterOptions::default()
                    },
                )?;
                let pattern = cluster.url("{db}");
                cluster.stop_and_remove_after_exit_of(std::process::id())?;
                anyhow::Ok(pattern)
            })
            .await
            .expect("cluster task");
            cluster.expect("the test PostgreSQL cluster starts")
        }
    };
    let template = format!("{run}_template");
    let server = TestServer {
        url_pattern,
        template: template.clone(),
        run,
    };
    create_database(&server, &template, None).await;
    let url = server.url(&template);
    db::run_migrations(&url).await.expect("migrations run");
    let mut conn = AsyncPgConnection::establish(&url)
        .await
        .expect("connect to template");
    sync::sync(&mut conn, &Catalogue::standard().expect("catalogue"))
        .await
        .expect("catalogue sync");
    server
}

async fn create_database(server: &TestServer, name: &str, template: Option<&str>) {
    let mut admin = AsyncPgConnection::establish(&server.url("postgres"))
        .await
        .expect("connect to the maintenance database");
    let mut statement = format!("CREATE DATABASE {}", quote_identifier(name));
    if let Some(template) = template {
        statement.push_str(&format!(" TEMPLATE {}", quote_identifier(template)));
    }
    diesel::sql_query(statement)
        .execute(&mut admin)
        .await
        .expect("create database");
}

async fn server() -> &'static TestServer {
    SERVER.get_or_init(start_server).await
}

/// A database of its own for one test, dropped at the end of the test.
pub struct TestDb {
    pub url: String,
    pub pool: Pool,
    /// Statements sent over `pool`.
    pub statements: StatementCounter,
    pub catalogue: Arc<Catalogue>,
    /// The database's name.
    pub name: String,
    /// The maintenance database of the same server.
    pub admin_url: String,
}

impl TestDb {
    async fn clone_of(template: Option<&str>) -> Self {
        let server = server().await;
        let name = format!("{}_{}", server.run, COUNTER.fetch_add(1, Ordering::Relaxed));
        create_database(server, &name, template).await;
        let catalogue = Arc::new(Catalogue::standard().expect("catalogue"));
        Self::opened(server.url(&name), name, server.url("postgres"), catalogue).await
    }

    /// The test's view of database `name` at `url`, with a counting pool.
    async fn opened(
        url: String,
        name: String,
        admin_url: String,
        catalogue: Arc<Catalogue>,
    ) -> Self {
        // Uploaded workbooks are read by the server's executable, not by this test harness.
        justice_counts::ingest::workbook::set_reader_program(
            env!("CARGO_BIN_EXE_justice-counts").into(),
        );
        let statements = StatementCounter::default();
        // As the server's pool: statements on generic plans.
        let pool = db::connect_with(
            &url,
            db::PoolSettings {
                counter: Some(statements.clone()),
                generic_plans: true,
                ..db::PoolSettings::new(4)
            },
        )
        .await
        .expect("pool");
        Self {
            url,
            pool,
            statements,
            catalogue,
            name,
            admin_url,
        }
    }

    /// A migrated database holding the catalogue and nothing else.
    pub async fn new() -> Self {
        let template = server().await.template.clone();
        Self::clone_of(Some(&template)).await
    }

    /// A migrated database holding the catalogue and the demo data.
    pub async fn with_demo() -> Self {
        let template = DEMO_TEMPLATE
            .get_or_init(|| async {
                let server = server().await;
                let name = format!("{}_demo", server.run);
                create_database(server, &name, Some(&server.template)).await;
                let mut conn = AsyncPgConnection::establish(&server.url(&name))
                    .await
                    .expect("connect");
                let catalogue = Catalogue::standard().expect("catalogue");
                seed::demo::seed(&mut conn, &catalogue)
                    .await
                    .expect("demo data loads");
                name
            })
            .await
            .clone();
        Self::clone_of(Some(&template)).await
    }

    /// A migrated database holding the catalogue and the demo data on another PostgreSQL
    /// server, whose databases have URLs `url_pattern` with `{db}` for the name.
    pub async fn with_demo_on(url_pattern: &str) -> Self {
        let name = "demo".to_owned();
        let admin_url = url_pattern.replace("{db}", "postgres");
        db::create_database_if_missing(&admin_url, &name)
            .await
            .expect("create database");
        let url = url_pattern.replace("{db}", &name);
        db::run_migrations(&url).await.expect("migrations run");
        let catalogue = Arc::new(Catalogue::standard().expect("catalogue"));
        let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
        sync::sync(&mut conn, &catalogue)
            .await
            .expect("catalogue sync");
        seed::demo::seed(&mut conn, &catalogue)
            .await
            .expect("demo data loads");
        Self::opened(url, name, admin_url, catalogue).await
    }

    /// An empty database: no migrations, no catalogue.
    pub async fn empty() -> Self {
        Self::clone_of(Some("template0")).await
    }

    /// A connection of the test's own, outside the pool.
    pub async fn connect(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url)
            .await
            .expect("connect")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let statement = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_identifier(&self.name)
        );
        // The test's runtime may be shutting down: drop from a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = AsyncPgConnection::establish(&admin_url).await?;
                diesel::sql_query(statement).execute(&mut admin).await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// The server's router listening on a loopback port, and a client for it.
pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    pub auth: Arc<AuthConfig>,
    /// How the router runs GraphQL requests.
    pub executor: graphql::Executor,
}

impl TestApp {
    /// Serves the API over `db` until the test ends.
    pub async fn spawn(db: &TestDb) -> Self {
        Self::spawn_with(db, AuthConfig::new(TokenKeys::generate())).await
    }

    /// Serves the API over `db` with these token settings, and the default limits except
    /// the general rate limit (the tests send requests as fast as loopback carries them; the
    /// tests of that limit turn it on).
    pub async fn spawn_with(db: &TestDb, auth: AuthConfig) -> Self {
        let limits = Limits {
            rate_limit_burst: 0,
            ..Limits::default()
        };
        Self::serve(db, db.pool.clone(), auth, limits).await
    }

    /// Serves the API over `db` with these limits.
    pub async fn spawn_with_limits(db: &TestDb, limits: Limits) -> Self {
        let auth = AuthConfig::with_limits(TokenKeys::generate(), &limits);
        Self::serve(db, db.pool.clone(), auth, limits).await
    }

    /// Serves the API over `db` with these settings and CORS settings.
    pub async fn serve_with_cors(
        db: &TestDb,
        auth: AuthConfig,
        limits: Limits,
        cors: justice_counts::http::cors::CorsSettings,
    ) -> Self {
        Self::serve_all(db, db.pool.clone(), auth, limits, cors, Vec::new()).await
    }

    /// Serves the API over `pool` (a pool of `db`) with these settings.
    pub async fn serve(db: &TestDb, pool: Pool, auth: AuthConfig, limits: Limits) -> Self {
        Self::serve_all(db, pool, auth, limits, Default::default(), Vec::new()).await
    }

    /// Serves the API over `db`, queries reading from these replicas' pools.
    pub async fn spawn_with_replicas(db: &TestDb, replicas: Vec<Pool>) -> Self {
        let limits = Limits {
            rate_limit_burst: 0,
            ..Limits::default()
        };
        let auth = AuthConfig::new(TokenKeys::generate());
        Self::serve_all(
            db,
            db.pool.clone(),
            auth,
            limits,
            Default::default(),
            replicas,
        )
        .await
    }

    async fn serve_all(
        db: &TestDb,
        pool: Pool,
        auth: AuthConfig,
        limits: Limits,
        cors: justice_counts::http::cors::CorsSettings,
        replicas: Vec<Pool>,
    ) -> Self {
        let auth = Arc::new(auth);
        let events = justice_counts::events::EventBus::new();
        events.listen(db.url.clone()).await.expect("event listener");
        auth.credentials.follow(&events);
        let services = http::Services {
            cors,
            replicas: Arc::new(justice_counts::db::replicas::Replicas::over(replicas)),
            ..http::Services::over(
                graphql::SchemaData {
                    pool,
                    catalogue: db.catalogue.clone(),
                    auth: auth.clone(),
                    events,
                    limits: Arc::new(limits),
                },
                &db.url,
            )
        };
        let executor = services.executor.clone();
        let router = http::router(services).expect("router");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
        });
        Self {
            base_url: format!("http://{address}"),
            client: reqwest::Client::new(),
            auth,
            executor,
        }
    }

    /// Posts a GraphQL request without a token and returns the response body.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_as(None, query, variables).await
    }

    /// Posts a GraphQL request with `token` (if any) and returns the response body, whatever
    /// the HTTP status.
    pub async fn graphql_as(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base_url))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        assert!(
            status.is_success() || status.as_u16() == 401,
            "HTTP {status}"
        );
        response.json().await.expect("JSON body")
    }

    /// A token for the user with `email`, valid for an hour, as the `token issue` command
    /// makes them.
    pub async fn token_for(&self, db: &TestDb, email: &str) -> String {
        let mut conn = db.connect().await;
        let user = justice_counts::models::user::User::find_by_email(&mut conn, email)
            .await
            .expect("query")
            .unwrap_or_else(|| panic!("no user {email}"));
        self.auth
            .keys
            .issue(
                user.id,
                None,
                chrono::Utc::now() + chrono::Duration::hours(1),
            )
            .expect("token")
    }
}

/// The `extensions.code` of every error of a GraphQL response.
pub fn error_codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    error["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The text of a committed screen operation (`operations/<name>.graphql`).
pub fn operation(name: &str) -> String {
    let path = format!("{}/operations/{name}.graphql", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{path} is missing"))
}

/// The id of the demo agency whose name contains `name`, found as platform staff.
pub async fn agency_id(app: &TestApp, db: &TestDb, name: &str) -> String {
    let admin = app.token_for(db, "admin@example.com").await;
    let response = app
        .graphql_as(
            Some(&admin),
            "query($n: String) { agencies(filter: {nameContains: $n}) { nodes { id } } }",
            json!({ "n": name }),
        )
        .await;
    response["data"]["agencies"]["nodes"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no agency like {name}: {response}"))
        .to_owned()
}

/// Replaces what differs between runs (ids, timestamps, cursors) by placeholders.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let varies = key == "id"
                    || key.ends_with("Id") && key != "dimensionId"
                    || key.ends_with("At")
                    || key.ends_with("ursor");
                if varies && !item.is_null() {
                    *item = Value::String(format!("[{key}]"));
                } else {
                    redact(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `dir` (a folder of the repository with an npm `package-lock.json`) with its pinned
/// packages installed: `npm ci` once per checkout, unless `marker` (a path in
/// `node_modules`) shows they are there. `.ci/run` installs them beforehand.
pub async fn npm_installed(dir: &str, marker: &str) -> std::path::PathBuf {
    static INSTALLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let _one_at_a_time = INSTALLING.lock().await;
    if !dir.join("node_modules").join(marker).exists() {
        let output = tokio::process::Command::new("npm")
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .await
            .expect("npm is installed (.ci/run installs Node.js)");
        assert!(
            output.status.success(),
            "npm ci in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    dir
}
