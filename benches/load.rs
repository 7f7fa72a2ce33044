//! The load harness: the frontend's screens against the real server binary over HTTP on
//! loopback, on the `seed --scale 5` data set (the demo data and 500 generated agencies), next
//! to PostgreSQL's own ceiling for the same statements.
//!
//! For each screen, in interleaved rounds of one run:
//!
//! - **saturation**: 10 connections sending back to back; requests per second, p50 and p99;
//! - **fixed rate**: 400 requests per second scheduled open-loop (latency counted from the
//!   moment a request was due, so a stalled server cannot hide its queue); p50 and p99;
//! - **cost per request** during saturation: the server process's CPU time and PostgreSQL's
//!   (every process of the cluster, from `/proc`), and statements per request from
//!   `pg_stat_statements`;
//! - **ceiling**: the statements the server sent for one request of the screen (captured
//!   from PostgreSQL's statement log with their parameters) replayed as prepared statements
//!   by 10 connections for the same time; the server's ratio to that is the figure to raise.
//!
//! Each signed-in screen is measured twice, on two servers over the same database: as its
//! answers are worked out (a server with `MEMBER_CACHE_ENTRIES=0`: the request path itself,
//! each request run in full), and as the frontend is served by default, a screen asked again
//! while nothing changed being answered from memory (the row marked "kept", read against its
//! screen's ceiling). The statements of the ceiling are those of a request run in full. The
//! public dashboard's anonymous answers are kept on both servers (no ceiling).
//!
//! Then the first screen (records) at 100 connections on each server, for its resident memory.
//!
//! Run with `cargo bench --bench load` (`LOAD_SCREENS=records,home` for some screens only,
//! `LOAD_ROUNDS=N` for more or fewer rounds). Medians over the rounds; the machines are shared, so
//! read the ratios rather than the absolute figures.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use justice_counts::seed;
use serde_json::{Value, json};
use support::{BenchDb, ScreenIds, operation};

mod support;

const ROUNDS: usize = 3;
const PHASE: Duration = Duration::from_secs(3);
const CONNECTIONS: usize = 10;
const RATE: f64 = 400.0;
const MEMORY_CONNECTIONS: usize = 100;
/// Linux reports process CPU times in these units (`USER_HZ`) whatever the kernel's tick.
const TICKS_PER_SECOND: f64 = 100.0;

struct Screen {
    name: &'static str,
    body: Value,
    signed_in: bool,
    /// PostGraphile v5's requests per second at 10 connections on a 2-core machine, where
    /// measured, and so the target of twice that.
    peer: Option<f64>,
}

/// A line of the results: a screen on one of the servers.
struct Row<'a> {
    name: String,
    screen: &'a Screen,
    server: &'a Server,
    url: &'a str,
    /// The index of the screen's captured statements.
    captured: usize,
    /// Answered from memory: measured against its screen's ceiling, not replaying it again.
    kept: bool,
}

/// The server under test: the release binary, as deployed.
struct Server {
    child: tokio::process::Child,
    pid: u32,
    url: String,
}

impl Server {
    async fn start(
        database_url: &str,
        data_dir: &Path,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        drop(listener);
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_justice-counts"))
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("DATA_DIR", data_dir)
            .env("LISTEN_ADDR", address.to_string())
            .env("RATE_LIMIT_BURST", "0")
            .env("JOB_WORKERS", "0")
            .env("ACCESS_TOKEN_LIFETIME", "2h")
            .env("LOG_LEVEL", "warn")
            .envs(settings.iter().copied())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().unwrap();
        let server = Self {
            child,
            pid,
            url: format!("http://{address}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            let ready = client
                .get(format!("{}/health/ready", server.url))
                .send()
                .await;
            if ready.is_ok_and(|response| response.status().is_success()) {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("the server did not become ready")
    }

    fn status(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|line| line.starts_with(field))
                    .and_then(|line| line.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse().ok())
            })
            .unwrap_or(0)
    }
}

/// User and system CPU ticks of a process, and its parent.
fn process_ticks(pid: u32) -> Option<(u64, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let parent = fields.get(1)?.parse().ok()?;
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some((user + system, parent))
}

/// CPU ticks of the postmaster and each of its children, by process id.
fn cluster_ticks(postmaster: u32) -> HashMap<u32, u64> {
    let mut ticks = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some((used, parent)) = process_ticks(pid)
            && (pid == postmaster || parent == postmaster)
        {
            ticks.insert(pid, used);
        }
    }
    ticks
}

/// CPU seconds the cluster used between two readings (processes that ended in between are
/// not counted; the server's pooled connections live throughout).
fn cluster_seconds(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> f64 {
    let ticks: u64 = after
        .iter()
        .map(|(pid, used)| used.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum();
    ticks as f64 / TICKS_PER_SECOND
}

fn own_seconds() -> f64 {
    process_ticks(std::process::id()).map_or(0.0, |(used, _)| used as f64) / TICKS_PER_SECOND
}

fn server_seconds(server: &Server) -> f64 {
    process_ticks(server.pid).map_or(0.0, |(used, _)| used as f64) / TICKS_PER_SECOND
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Sends one request; false when it failed (an overloaded server answers 503).
async fn send(client: &reqwest::Client, url: &str, body: &Value, token: Option<&str>) -> bool {
    let mut request = client.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let Ok(response) = request.send().await else {
        return false;
    };
    if !response.status().is_success() {
        return false;
    }
    // Checked without building the answer: the load generator shares the machine's cores
    // with the server and PostgreSQL, and should take as little of them as it can.
    let Ok(body) = response.bytes().await else {
        return false;
    };
    serde_json::from_slice::<Answer>(&body)
        .is_ok_and(|answer| answer.data.is_some() && answer.errors.is_none())
}

/// What the load generator checks of an answer: data, and no errors.
#[derive(serde::Deserialize)]
struct Answer {
    data: Option<serde::de::IgnoredAny>,
    errors: Option<serde::de::IgnoredAny>,
}

/// One request that must succeed (warming up, capturing).
async fn send_ok(client: &reqwest::Client, url: &str, screen: &Screen, token: &str) {
    let token = screen.signed_in.then_some(token);
    assert!(
        send(client, url, &screen.body, token).await,
        "{} failed",
        screen.name
    );
}

struct Sample {
    requests: usize,
    failed: usize,
    seconds: f64,
    latencies: Vec<Duration>,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// `connections` clients sending back to back for `length`.
async fn saturate(
    client: &reqwest::Client,
    url: &str,
    screen: &Screen,
    token: &str,
    connections: usize,
    length: Duration,
) -> Sample {
    let started = Instant::now();
    let deadline = started + length;
    let token = screen.signed_in.then_some(token);
    let clients = (0..connections).map(|_| async move {
        let (mut latencies, mut failed) = (Vec::new(), 0);
        while Instant::now() < deadline {
            let sent = Instant::now();
            if send(client, url, &screen.body, token).await {
                latencies.push(sent.elapsed());
            } else {
                failed += 1;
            }
        }
        (latencies, failed)
    });
    let (mut latencies, mut failed) = (Vec::new(), 0);
    for (some, some_failed) in futures_util::future::join_all(clients).await {
        latencies.extend(some);
        failed += some_failed;
    }
    latencies.sort_unstable();
    Sample {
        requests: latencies.len(),
        failed,
        seconds: started.elapsed().as_secs_f64(),
        latencies,
    }
}

/// Requests due at a fixed rate whatever the answers do; each latency counts from when its
/// request was due.
async fn fixed_rate(client: &reqwest::Client, url: &str, screen: &Screen, token: &str) -> Sample {
    let started = Instant::now();
    let count = (RATE * PHASE.as_secs_f64()) as usize;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(count);
    let interval = Duration::from_secs_f64(1.0 / RATE);
    for n in 0..count {
        let due = started + interval * n as u32;
        tokio::time::sleep_until(due.into()).await;
        let (client, url, body, token, latencies, failed) = (
            client.clone(),
            url.to_owned(),
            screen.body.clone(),
            screen.signed_in.then(|| token.to_owned()),
            latencies.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            if send(&client, &url, &body, token.as_deref()).await {
                latencies.lock().unwrap().push(due.elapsed());
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort_unstable();
    Sample {
        requests: latencies.len(),
        failed: AtomicUsize::load(&failed, Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        latencies,
    }
}

/// The cluster's monitoring connection (database `postgres`, so its own statements are not
/// counted against the server's).
struct Monitor {
    client: tokio_postgres::Client,
    log: std::path::PathBuf,
    /// Captured statements that were not prepared statements reused.
    unprepared: Mutex<usize>,
}

impl Monitor {
    async fn statements(&self) -> f64 {
        let row = tokio_postgres::Client::query_one(
            &self.client,
            "SELECT coalesce(sum(calls), 0)::float8 FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'bench')",
            &[],
        )
        .await
        .unwrap();
        row.get(0)
    }

    /// Sessions opened on the `bench` database so far.
    async fn sessions(&self) -> i64 {
        let row = tokio_postgres::Client::query_one(
            &self.client,
            "SELECT sessions FROM pg_stat_database WHERE datname = 'bench'",
            &[],
        )
        .await
        .unwrap();
        row.get(0)
    }

    async fn set_statement_log(&self, on: bool) {
        let sql = if on {
            "ALTER SYSTEM SET log_min_duration_statement = 0"
        } else {
            "ALTER SYSTEM RESET log_min_duration_statement"
        };
        self.client.batch_execute(sql).await.unwrap();
        self.client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .unwrap();
        // Backends take the new setting at their next command.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// The statements (with parameters in place) the server ran on the `bench` database for
    /// one request of the screen.
    async fn capture(
        &self,
        client: &reqwest::Client,
        url: &str,
        screen: &Screen,
        token: &str,
    ) -> Vec<(String, Vec<Option<String>>)> {
        self.set_statement_log(true).await;
        let from = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        send_ok(client, url, screen, token).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.set_statement_log(false).await;
        let text = std::fs::read(&self.log).unwrap();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(&text[from as usize..]);
        let mut statements = Vec::new();
        for record in reader.records() {
            let record = record.unwrap();
            if record.get(2) != Some("bench") {
                continue;
            }
            let (message, detail) = (record.get(13).unwrap_or(""), record.get(14).unwrap_or(""));
            let Some((_, logged)) = message.split_once(" ms  ") else {
                continue;
            };
            // A statement parsed during the request was prepared for it (whatever its name:
            // a client may name a statement it closes after one use); one kept prepared
            // since the warm-up is only executed.
            if logged.starts_with("parse ") {
                *self.unprepared.lock().unwrap() += 1;
                continue;
            }
            let text = if let Some(rest) = logged.strip_prefix("execute ") {
                rest.split_once(": ").map(|(_, sql)| sql)
            } else {
                logged.strip_prefix("statement: ").inspect(|_| {
                    *self.unprepared.lock().unwrap() += 1;
                })
            };
            // The event listener's check of its own connection is no part of a request.
            if let Some(sql) = text.filter(|sql| *sql != "SELECT 1") {
                statements.push((sql.to_owned(), parameters(detail)));
            }
        }
        statements
    }
}

/// The values of `parameters: $1 = '…', $2 = NULL` in a log line's detail.
fn parameters(detail: &str) -> Vec<Option<String>> {
    let mut values = Vec::new();
    let Some(mut rest) = detail.strip_prefix("parameters: ") else {
        return values;
    };
    while let Some((_, after)) = rest.split_once(" = ") {
        if let Some(after) = after.strip_prefix("NULL") {
            values.push(None);
            rest = after;
            continue;
        }
        let mut chars = after.char_indices().skip(1).peekable();
        let mut value = String::new();
        let mut end = after.len();
        while let Some((index, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().is_some_and(|&(_, next)| next == '\'') {
                    chars.next();
                    value.push('\'');
                    continue;
                }
                end = index + 1;
                break;
            }
            value.push(c);
        }
        values.push(Some(value));
        rest = &after[end..];
    }
    values
}

/// The captured statements as prepared statements without parameters: each value written in
/// as a literal of the type PostgreSQL inferred for it.
async fn prepare_replay(
    client: &tokio_postgres::Client,
    captured: &[(String, Vec<Option<String>>)],
) -> Vec<tokio_postgres::Statement> {
    let mut prepared = Vec::new();
    for (sql, values) in captured {
        let original = client.prepare(sql).await.unwrap();
        let mut text = sql.clone();
        for (index, ty) in original.params().iter().enumerate().rev() {
            let literal = match values.get(index).cloned().flatten() {
                Some(value) => format!("'{}'::{}", value.replace('\'', "''"), ty.name()),
                None => format!("NULL::{}", ty.name()),
            };
            text = text.replace(&format!("${}", index + 1), &literal);
        }
        prepared.push(client.prepare(&text).await.unwrap());
    }
    prepared
}

/// Requests per second of the captured statements replayed by 10 connections, and
/// PostgreSQL's CPU milliseconds per replayed request. The cluster's CPU is read while the
/// replay's connections are still open: the CPU of a backend that has exited is no longer in
/// `/proc`.
async fn ceiling(
    database_url: &str,
    postmaster: u32,
    captured: &[(String, Vec<Option<String>>)],
) -> (f64, f64) {
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let statements = prepare_replay(&client, captured).await;
        clients.push((client, statements));
    }
    let cluster_before = cluster_ticks(postmaster);
    let started = Instant::now();
    let deadline = started + PHASE;
    let runs = clients.iter().map(|(client, statements)| async move {
        let mut done = 0;
        while Instant::now() < deadline {
            for statement in statements {
                tokio_postgres::Client::query(client, statement, &[])
                    .await
                    .unwrap();
            }
            done += 1;
        }
        done
    });
    let done: usize = futures_util::future::join_all(runs).await.into_iter().sum();
    let rate = done as f64 / started.elapsed().as_secs_f64();
    let postgres_ms =
        cluster_seconds(&cluster_before, &cluster_ticks(postmaster)) * 1e3 / done as f64;
    drop(clients);
    (rate, postgres_ms)
}

#[derive(Default)]
struct Figures {
    rate: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    fixed_p50: Vec<f64>,
    fixed_p99: Vec<f64>,
    fixed_rate: Vec<f64>,
    failed: usize,
    server_ms: Vec<f64>,
    postgres_ms: Vec<f64>,
    harness_ms: Vec<f64>,
    statements: Vec<f64>,
    ceiling: Vec<f64>,
    ceiling_postgres_ms: Vec<f64>,
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let settings = [
        ("shared_preload_libraries", "pg_stat_statements"),
        ("pg_stat_statements.track", "top"),
        ("logging_collector", "on"),
        ("log_destination", "csvlog"),
        ("log_directory", "log"),
        ("log_filename", "server.log"),
        ("log_rotation_size", "0"),
    ];
    let bench = BenchDb::with_settings(
        settings
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
    )
    .await?;
    let url = bench.url.clone();
    let pool = justice_counts::db::connect(&url, 4).await?;
    eprintln!("generating 500 agencies (seed --scale 5) ...");
    seed::scale::seed(&pool, &bench.catalogue, 500, false).await?;
    drop(pool);
    // Fresh statistics, and no autovacuum running through the measurements.
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    admin.batch_execute("VACUUM ANALYZE").await?;
    drop(admin);

    let ScreenIds {
        sheriff,
        jail,
        report,
    } = ScreenIds::find(&url).await?;
    let body =
        |name: &str, variables: Value| json!({ "query": operation(name), "variables": variables });
    let screens = [
        Screen {
            name: "records",
            body: body(
                "records",
                json!({ "agencyId": jail.to_string(), "first": 20 }),
            ),
            signed_in: true,
            peer: Some(882.0),
        },
        Screen {
            name: "home",
            body: body("home", json!({ "agencyId": jail.to_string() })),
            signed_in: true,
            peer: Some(595.0),
        },
        Screen {
            name: "data entry",
            body: body("data_entry", json!({ "reportId": report.to_string() })),
            signed_in: true,
            peer: Some(251.0),
        },
        Screen {
            name: "team and settings",
            body: body(
                "team_and_settings",
                json!({ "agencyId": sheriff.to_string(), "withEmails": true }),
            ),
            signed_in: true,
            peer: None,
        },
        Screen {
            name: "public dashboard",
            body: body(
                "public_dashboard",
                json!({ "agencyId": sheriff.to_string() }),
            ),
            signed_in: false,
            peer: None,
        },
    ];

    // LOAD_SCREENS=records,home narrows a run to some screens (for profiling one).
    let chosen = std::env::var("LOAD_SCREENS").ok();
    let screens: Vec<Screen> = screens
        .into_iter()
        .filter(|screen| {
            chosen
                .as_deref()
                .is_none_or(|chosen| chosen.split(',').any(|name| name == screen.name))
        })
        .collect();
    let rounds: usize = std::env::var("LOAD_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(ROUNDS);

    let data_dir = tempfile::tempdir()?;
    // One after the other: the second takes the signing key the first wrote, so that one
    // token signs in to both.
    let server = Server::start(&url, data_dir.path(), &[]).await?;
    let computed = Server::start(&url, data_dir.path(), &[("MEMBER_CACHE_ENTRIES", "0")]).await?;
    let graphql = format!("{}/graphql", server.url);
    let computed_graphql = format!("{}/graphql", computed.url);
    let client = reqwest::Client::new();
    let signed_in: Value = client
        .post(&graphql)
        .json(&json!({
            "query": "mutation($input: SignInInput!) { signIn(input: $input) { accessToken } }",
            "variables": { "input": {
                "email": "admin@example.com",
                "password": seed::demo::DEMO_PASSWORD,
            }},
        }))
        .send()
        .await?
        .json()
        .await?;
    let token = signed_in["data"]["signIn"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("sign-in failed: {signed_in}"))
        .to_owned();

    let (monitor_client, connection) = tokio_postgres::connect(
        &url.replace("postgres:///bench", "postgres:///postgres"),
        tokio_postgres::NoTls,
    )
    .await?;
    tokio::spawn(connection);
    monitor_client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await?;
    let monitor = Monitor {
        client: monitor_client,
        log: bench.pgdata().join("log/server.csv"),
        unprepared: Mutex::new(0),
    };
    let postmaster = bench.postmaster_pid()?;

    // The rows: each screen as worked out, and each signed-in one again as served.
    let rows: Vec<Row> = screens
        .iter()
        .enumerate()
        .map(|(index, screen)| Row {
            name: screen.name.to_owned(),
            screen,
            server: &computed,
            url: &computed_graphql,
            captured: index,
            kept: false,
        })
        .chain(
            screens
                .iter()
                .enumerate()
                .filter(|(_, screen)| screen.signed_in)
                .map(|(index, screen)| Row {
                    name: format!("{} (kept)", screen.name),
                    screen,
                    server: &server,
                    url: &graphql,
                    captured: index,
                    kept: true,
                }),
        )
        .collect();
    let mut figures: Vec<Figures> = rows.iter().map(|_| Figures::default()).collect();
    let mut captured = Vec::new();
    let statements_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("load-statements");
    std::fs::create_dir_all(&statements_dir)?;
    for screen in &screens {
        for _ in 0..20 {
            send_ok(&client, &graphql, screen, &token).await;
            send_ok(&client, &computed_graphql, screen, &token).await;
        }
        let unprepared_before = *monitor.unprepared.lock().unwrap();
        let statements = monitor
            .capture(&client, &computed_graphql, screen, &token)
            .await;
        eprintln!(
            "{}: {} statements, {} of them not reused prepared statements",
            screen.name,
            statements.len(),
            *monitor.unprepared.lock().unwrap() - unprepared_before
        );
        let listing: String = statements
            .iter()
            .map(|(sql, values)| format!("{sql};\n-- parameters: {values:?}\n\n"))
            .collect();
        std::fs::write(
            statements_dir.join(format!("{}.sql", screen.name.replace(' ', "_"))),
            listing,
        )?;
        captured.push(statements);
    }

    eprintln!(
        "server processes {} (answers worked out) and {} (as served)",
        computed.pid, server.pid
    );
    for round in 1..=rounds {
        eprintln!("round {round} of {rounds} ...");
        for (row, figures) in rows.iter().zip(&mut figures) {
            let (screen, server, graphql) = (row.screen, row.server, row.url);
            let captured = &captured[row.captured];
            let statements_before = monitor.statements().await;
            let sessions_before = monitor.sessions().await;
            let (server_before, cluster_before, own_before) = (
                server_seconds(server),
                cluster_ticks(postmaster),
                own_seconds(),
            );
            let sample = saturate(&client, graphql, screen, &token, CONNECTIONS, PHASE).await;
            let requests = sample.requests as f64;
            let statements = monitor.statements().await - statements_before;
            eprintln!(
                "{}: {} sessions opened",
                row.name,
                monitor.sessions().await - sessions_before
            );
            figures
                .server_ms
                .push((server_seconds(server) - server_before) * 1e3 / requests);
            figures.postgres_ms.push(
                cluster_seconds(&cluster_before, &cluster_ticks(postmaster)) * 1e3 / requests,
            );
            figures
                .harness_ms
                .push((own_seconds() - own_before) * 1e3 / requests);
            figures.statements.push(statements / requests);
            figures.rate.push(sample.rate());
            figures.p50.push(ms(percentile(&sample.latencies, 0.5)));
            figures.p99.push(ms(percentile(&sample.latencies, 0.99)));

            let fixed = fixed_rate(&client, graphql, screen, &token).await;
            figures.fixed_rate.push(fixed.rate());
            figures.failed += sample.failed + fixed.failed;
            figures
                .fixed_p50
                .push(ms(percentile(&fixed.latencies, 0.5)));
            figures
                .fixed_p99
                .push(ms(percentile(&fixed.latencies, 0.99)));

            if !captured.is_empty() && !row.kept {
                let (rate, postgres_ms) = ceiling(&url, postmaster, captured).await;
                figures.ceiling.push(rate);
                figures.ceiling_postgres_ms.push(postgres_ms);
            }
        }
    }

    println!(
        "\nmedians of {rounds} rounds of {} s per phase; {CONNECTIONS} connections at saturation",
        PHASE.as_secs()
    );
    println!(
        "{:<25} {:>8} {:>7} {:>7} | {:>9} {:>7} {:>7} | {:>7} {:>7} {:>7} {:>6} | {:>8} {:>7} {:>7} | {:>9} {:>7}",
        "screen",
        "req/s",
        "p50 ms",
        "p99 ms",
        "@400 req/s",
        "p50 ms",
        "p99 ms",
        "server",
        "pg",
        "client",
        "stmts",
        "ceiling",
        "pg",
        "ratio",
        "2x peer",
        "failed",
    );
    // A kept row is read against the ceiling of its screen worked out.
    let ceilings: Vec<(Option<f64>, Option<f64>)> = rows
        .iter()
        .map(|row| {
            let measured = rows
                .iter()
                .zip(&figures)
                .find(|(other, _)| other.captured == row.captured && !other.kept)
                .map(|(_, figures)| figures);
            let of = |values: Option<&Vec<f64>>| {
                values
                    .filter(|values| !values.is_empty())
                    .map(|values| median(values.clone()))
            };
            (
                of(measured.map(|figures| &figures.ceiling)),
                of(measured.map(|figures| &figures.ceiling_postgres_ms)),
            )
        })
        .collect();
    for ((row, figures), (ceiling, ceiling_postgres_ms)) in rows.iter().zip(figures).zip(ceilings) {
        let rate = median(figures.rate);
        println!(
            "{:<25} {:>8.0} {:>7.1} {:>7.1} | {:>10.0} {:>7.1} {:>7.1} | {:>7.2} {:>7.2} {:>7.2} {:>6.1} | {:>8} {:>7} {:>7} | {:>9} {:>7}",
            row.name,
            rate,
            median(figures.p50),
            median(figures.p99),
            median(figures.fixed_rate),
            median(figures.fixed_p50),
            median(figures.fixed_p99),
            median(figures.server_ms),
            median(figures.postgres_ms),
            median(figures.harness_ms),
            median(figures.statements),
            ceiling.map_or("cached".into(), |c| format!("{c:.0}")),
            ceiling_postgres_ms.map_or("-".into(), |ms| format!("{ms:.2}")),
            ceiling.map_or("-".into(), |c| format!("{:.2}", rate / c)),
            row.screen
                .peer
                .map_or("-".into(), |peer| format!("{:.2}", rate / (2.0 * peer))),
            figures.failed,
        );
    }
    println!(
        "server, pg, client: CPU ms per request of the server process, of PostgreSQL's \
         processes and of this load generator; stmts: statements per request \
         (pg_stat_statements); ceiling: the same statements replayed as prepared statements \
         by {CONNECTIONS} connections, requests/s and PostgreSQL CPU ms per request; ratio: \
         server req/s over the ceiling; 2x peer: req/s over twice PostGraphile v5's figure; \
         failed: requests answered with an error (503 when the pool wait runs out); \
         (kept): the same screen asked again while nothing changed, answered from memory, \
         against its screen's ceiling; public dashboard: anonymous answers are kept on both \
         servers."
    );

    for (server, graphql, how) in [
        (&computed, &computed_graphql, "worked out"),
        (&server, &graphql, "kept"),
    ] {
        let rss_before = server.status("VmRSS:");
        let sample = saturate(
            &client,
            graphql,
            &screens[0],
            &token,
            MEMORY_CONNECTIONS,
            PHASE,
        )
        .await;
        println!(
            "{} ({how}) at {MEMORY_CONNECTIONS} connections: {:.0} req/s, p99 {:.1} ms, {} \
             failed; server RSS {:.1} MB before, {:.1} MB after, peak {:.1} MB",
            screens[0].name,
            sample.rate(),
            ms(percentile(&sample.latencies, 0.99)),
            sample.failed,
            rss_before as f64 / 1024.0,
            server.status("VmRSS:") as f64 / 1024.0,
            server.status("VmHWM:") as f64 / 1024.0,
        );
    }
    println!(
        "the statements of one request of each screen are in {}",
        statements_dir.display()
    );
    drop(rows);
    drop(server.child);
    drop(computed.child);
    drop(bench);
    Ok(())
}
