//! The `justice-counts` binary as a user runs it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use justice_counts::db::schema::metric_definitions;
use justice_counts::graphql;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::TestDb;

const BINARY: &str = env!("CARGO_BIN_EXE_justice-counts");

fn command(data_dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_remove("DATABASE_URL")
        .env("DATA_DIR", data_dir)
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Starts `serve` and waits for the line saying where GraphiQL is; returns the base URL.
async fn serve(data_dir: &Path) -> (Child, String) {
    serve_with(data_dir, &[]).await
}

/// Like [`serve`], with more environment variables.
async fn serve_with(data_dir: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut command = command(data_dir);
    command.envs(env.iter().copied());
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let url = base_url(&mut child).await;
    (child, url)
}

/// Waits for the line a starting server prints to say where GraphiQL is; the base URL.
async fn base_url(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(180), lines.next_line())
        .await
        .expect("the server starts in time")
        .unwrap()
        .expect("the server prints where GraphiQL is");
    let url = line
        .split_whitespace()
        .find(|word| word.ends_with("/graphiql"))
        .unwrap_or_else(|| panic!("no GraphiQL address in {line:?}"));
    url.trim_end_matches("/graphiql").to_owned()
}

/// Posts a GraphQL request to the server at `base_url`, with `token` if any; the response body.
async fn graphql(base_url: &str, token: Option<&str>, query: &str, variables: Value) -> Value {
    let mut request = reqwest::Client::new()
        .post(format!("{base_url}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}

async fn agency_names(base_url: &str) -> Vec<String> {
    let response = graphql(base_url, None, "{ agencies { nodes { name } } }", json!({})).await;
    response["data"]["agencies"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|agency| agency["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn stop(mut child: Child) {
    let pid = Pid::from_raw(child.id().unwrap() as i32);
    kill(pid, Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the server stops in time")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// A data directory the unprivileged `postgres` user can reach when the tests run as root.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_on_a_private_cluster_with_demo_data_and_keeps_changes_across_restarts() {
    let dir = data_dir();
    let (child, base_url) = serve(dir.path()).await;
    let names = agency_names(&base_url).await;
    assert_eq!(names.len(), 9, "the public demo agencies: {names:?}");

    let url = format!(
        "postgres:///justice_counts?host={}&user=postgres",
        dir.path().join("postgres").display()
    );
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    diesel::sql_query("INSERT INTO agencies (name, state_code, systems, is_dashboard_enabled) VALUES ('Added While Running', 'us_tx', '{JAILS}', true)")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);

    stop(child).await;
    assert!(
        !dir.path().join("postgres/data/postmaster.pid").exists(),
        "PostgreSQL was stopped cleanly"
    );

    let (child, base_url) = serve(dir.path()).await;
    let names = agency_names(&base_url).await;
    assert_eq!(
        names.len(),
        10,
        "the change was kept and the demo data not loaded twice"
    );
    assert!(names.contains(&"Added While Running".to_owned()));
    stop(child).await;
}

/// A server killed outright (`kill -9`, the OOM killer) leaves its PostgreSQL running: the
/// next server on the same data directory takes that cluster over, and stops it when it
/// stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_outright_is_followed_by_one_that_takes_its_cluster_over() {
    let dir = data_dir();
    let (mut child, base_url) = serve(dir.path()).await;
    assert_eq!(agency_names(&base_url).await.len(), 9);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let pid_file = dir.path().join("postgres/data/postmaster.pid");
    assert!(pid_file.exists(), "PostgreSQL outlives the killed server");

    let (child, base_url) = serve(dir.path()).await;
    assert_eq!(
        agency_names(&base_url).await.len(),
        9,
        "the same data, the demo not loaded twice"
    );
    stop(child).await;
    assert!(!pid_file.exists(), "PostgreSQL was stopped with the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_database_url_the_configured_server_is_used() {
    let db = TestDb::empty().await;
    let dir = data_dir();
    let status = command(dir.path())
        .env("DATABASE_URL", &db.url)
        .arg("migrate")
        .status()
        .await
        .unwrap();
    assert!(status.success());
    assert!(
        !dir.path().join("postgres").exists(),
        "no private cluster was created"
    );
    let mut conn = db.connect().await;
    let metrics: i64 = metric_definitions::table
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(metrics, 117);
}

#[tokio::test]
async fn the_schema_command_prints_the_served_schema() {
    let dir = data_dir();
    let output = command(dir.path()).arg("schema").output().await.unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap(), graphql::sdl());
}

/// With `LOG_FORMAT=json`, every log line is one JSON object with its level and message.
#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let db = TestDb::new().await;
    let dir = data_dir();
    let output = command(dir.path())
        .env("DATABASE_URL", &db.url)
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "info")
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|line| !line.is_empty()).collect();
    assert!(!lines.is_empty(), "nothing logged");
    for line in &lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"));
        assert!(object["level"].is_string(), "{line}");
        assert!(object["fields"]["message"].is_string(), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|line| line.contains("metric catalogue synced")),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_bad_configuration_is_a_clear_error_not_a_panic() {
    let dir = data_dir();
    let output = command(dir.path())
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scale_one_generates_a_hundred_agencies_and_reports_its_rate() {
    let db = TestDb::new().await;
    let dir = data_dir();
    let output = command(dir.path())
        .env("DATABASE_URL", &db.url)
        .args(["seed", "--scale", "1"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("generated 100 agencies, 6500 reports"),
        "{stdout}"
    );
    assert!(stdout.contains("rows/s"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_command_issues_narrows_and_inspects_tokens() {
    use justice_counts::auth::AuthConfig;
    use justice_counts::auth::tokens::{KeySource, TokenKeys};

    let db = TestDb::with_demo().await;
    let dir = data_dir();
    // The key file the server generates in its data directory, passed on as configuration.
    TokenKeys::load(&KeySource {
        data_dir: dir.path().to_owned(),
        ..KeySource::default()
    })
    .unwrap();
    let key_hex = std::fs::read_to_string(dir.path().join("token-root-key")).unwrap();
    let run = |args: Vec<&str>| {
        let mut command = command(dir.path());
        command
            .env("DATABASE_URL", &db.url)
            .env("TOKEN_ROOT_KEY", &key_hex)
            .args(args);
        command
    };
    let issued = run(vec![
        "token",
        "issue",
        "--email",
        "sheriff.admin@example.com",
        "--lifetime",
        "10m",
    ])
    .output()
    .await
    .unwrap();
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    let token = String::from_utf8(issued.stdout).unwrap().trim().to_owned();

    let narrowed = run(vec!["token", "attenuate", "--token", &token, "--read-only"])
        .output()
        .await
        .unwrap();
    assert!(narrowed.status.success());
    let narrowed = String::from_utf8(narrowed.stdout)
        .unwrap()
        .trim()
        .to_owned();
    let inspected = run(vec!["token", "inspect", "--token", &narrowed])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8(inspected.stdout).unwrap();
    assert!(
        text.contains("// authority") && text.contains("check if operation(\"read\")"),
        "{text}"
    );

    let keys = TokenKeys::load(&KeySource {
        hex: Some(key_hex.clone()),
        ..KeySource::default()
    })
    .unwrap();
    let app = crate::support::TestApp::spawn_with(&db, AuthConfig::new(keys)).await;
    let me = app
        .graphql_as(Some(&token), "{ me { email } }", json!({}))
        .await;
    assert_eq!(
        me["data"]["me"]["email"], "sheriff.admin@example.com",
        "{me}"
    );
    let invite = "mutation { inviteMember(input: {agencyId: \"2\", email: \"z@example.com\", name: \"Z\", role: READ_ONLY}) { invitationCode } }";
    let denied = app.graphql_as(Some(&narrowed), invite, json!({})).await;
    assert_eq!(
        crate::support::error_codes(&denied),
        ["FORBIDDEN"],
        "{denied}"
    );
    assert!(
        denied["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("access token"),
        "{denied}"
    );
}

mod live_updates {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    use super::*;

    type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    async fn connect(base_url: &str, token: Option<&str>) -> Socket {
        let mut request = format!("{}/graphql/ws", base_url.replacen("http", "ws", 1))
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let payload = match token {
            Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
            None => json!({}),
        };
        socket
            .send(Message::text(
                json!({ "type": "connection_init", "payload": payload }).to_string(),
            ))
            .await
            .unwrap();
        let ack = next_message(&mut socket).await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        socket
    }

    async fn next_message(socket: &mut Socket) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(2), socket.next())
                .await
                .expect("a message in time")
                .expect("the socket is open")
                .unwrap();
            if let Message::Text(text) = message {
                return serde_json::from_str(&text).unwrap();
            }
        }
    }

    async fn subscribe(socket: &mut Socket, agency: &str) {
        let query = "subscription($a: ID!) { reportChanged(agencyId: $a) { kind reportId agencyId version status } }";
        let message = json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": { "a": agency } } });
        socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscriber_on_one_server_receives_a_change_made_through_another() {
        use justice_counts::auth::tokens::{KeySource, TokenKeys};

        let db = TestDb::with_demo().await;
        let dir = data_dir();
        TokenKeys::load(&KeySource {
            data_dir: dir.path().to_owned(),
            ..KeySource::default()
        })
        .unwrap();
        let key = std::fs::read_to_string(dir.path().join("token-root-key")).unwrap();
        let env = [
            ("DATABASE_URL", db.url.as_str()),
            ("TOKEN_ROOT_KEY", key.as_str()),
        ];
        let (first, first_url) = serve_with(dir.path(), &env).await;
        let (second, second_url) = serve_with(dir.path(), &env).await;

        let keys = TokenKeys::load(&KeySource {
            hex: Some(key.clone()),
            ..KeySource::default()
        })
        .unwrap();
        let mut conn = db.connect().await;
        let expires = chrono::Utc::now() + chrono::Duration::hours(1);
        let mut token = async |email: &str| {
            let user = justice_counts::models::user::User::find_by_email(&mut conn, email)
                .await
                .unwrap()
                .unwrap();
            keys.issue(user.id, None, expires).unwrap()
        };
        let reader = token("sheriff.reader@example.com").await;
        let contributor = token("sheriff.contributor@example.com").await;

        let agencies = graphql(
            &first_url,
            Some(&reader),
            "{ me { memberships { agency { id } } } }",
            json!({}),
        )
        .await;
        let sheriff = agencies["data"]["me"]["memberships"][0]["agency"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let reports = graphql(
            &first_url,
            Some(&reader),
            "query($a: ID!) { agency(id: $a) { reports(first: 1, filter: {statuses: [DRAFT]}) { nodes { id } } } }",
            json!({ "a": sheriff }),
        )
        .await;
        let report = reports["data"]["agency"]["reports"]["nodes"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();

        // Anonymous subscribers learn nothing about drafts.
        let mut anonymous = connect(&first_url, None).await;
        subscribe(&mut anonymous, &sheriff).await;
        let refused = next_message(&mut anonymous).await;
        assert!(refused["payload"]["data"].is_null(), "{refused}");
        assert_eq!(
            refused["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{refused}"
        );

        let mut socket = connect(&first_url, Some(&reader)).await;
        subscribe(&mut socket, &sheriff).await;
        // The subscription has no acknowledgement: save until an event arrives.
        let save = "mutation($input: SaveReportInput!) { saveReport(input: $input) { report { version } } }";
        let mut event = None;
        for attempt in 0..20 {
            let version = graphql(
                &second_url,
                Some(&contributor),
                "query($id: ID!) { report(id: $id) { version } }",
                json!({ "id": report }),
            )
            .await;
            let version = version["data"]["report"]["version"].as_i64().unwrap();
            let input = json!({ "reportId": report, "version": version, "values": [{ "metricKey": "LAW_ENFORCEMENT_ARRESTS", "value": 1000 + attempt }] });
            let saved = graphql(
                &second_url,
                Some(&contributor),
                save,
                json!({ "input": input }),
            )
            .await;
            assert!(saved["errors"].is_null(), "{saved}");
            if let Ok(Some(Ok(Message::Text(text)))) =
                tokio::time::timeout(Duration::from_millis(500), socket.next()).await
            {
                event = Some(serde_json::from_str::<Value>(&text).unwrap());
                break;
            }
        }
        let event = event.expect("an event within 20 saves");
        assert_eq!(event["type"], "next", "{event}");
        let change = &event["payload"]["data"]["reportChanged"];
        assert_eq!(change["kind"], "SAVED");
        assert_eq!(change["reportId"], report.as_str());
        assert_eq!(change["agencyId"], sheriff.as_str());
        assert_eq!(change["status"], "DRAFT");

        stop(first).await;
        stop(second).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_binary_reads_the_options_of_serve_from_the_environment() {
    let db = TestDb::with_demo().await;
    let dir = data_dir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut command = command(dir.path());
    let mut child = command
        .env("DATABASE_URL", &db.url)
        .env("LISTEN_ADDR", &listen)
        .env("MAX_QUERY_ALIASES", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(base_url(&mut child).await, format!("http://{listen}"));
    let response = graphql(
        &format!("http://{listen}"),
        None,
        "{ a: __typename b: __typename }",
        json!({}),
    )
    .await;
    assert_eq!(
        response["errors"][0]["extensions"]["limit"], "max_query_aliases",
        "{response}"
    );
    assert_eq!(response["errors"][0]["extensions"]["max"], 1, "{response}");
    stop(child).await;
}

/// Runs a command of the binary to success; its standard output.
async fn run_ok(data_dir: &Path, args: &[&str]) -> String {
    let output = command(data_dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_use_the_private_cluster_of_a_running_server() {
    let dir = data_dir();
    let (child, base_url) = serve(dir.path()).await;
    let token = run_ok(
        dir.path(),
        &["token", "issue", "--email", "sheriff.reader@example.com"],
    )
    .await
    .trim()
    .to_owned();
    let me = graphql(&base_url, Some(&token), "{ me { email } }", json!({})).await;
    assert_eq!(
        me["data"]["me"]["email"], "sheriff.reader@example.com",
        "{me}"
    );
    // An export reads the same cluster while the server serves it: an agency's public feed,
    // as the server's own feed gives it.
    let exported = run_ok(dir.path(), &["export", "--published-only", "--agency", "5"]).await;
    let served = reqwest::get(format!("{base_url}/feed/5.csv"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(exported.lines().count() > 100);
    assert_eq!(exported.lines().count(), served.lines().count());
    // The commands left the server's cluster running.
    assert_eq!(agency_names(&base_url).await.len(), 9);
    stop(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_an_access_log_line_without_terminal_colours() {
    use tokio::io::AsyncReadExt;

    let db = TestDb::with_demo().await;
    let dir = data_dir();
    let mut child = command(dir.path())
        .env("DATABASE_URL", &db.url)
        .env("LOG_LEVEL", "info")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut text = String::new();
        stderr.read_to_string(&mut text).await.unwrap();
        text
    });
    let base_url = base_url(&mut child).await;
    let response = reqwest::Client::new()
        .post(format!("{base_url}/graphql"))
        .header("x-request-id", "access-log-probe")
        .json(&json!({ "query": "query Probe { __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    stop(child).await;
    let log = log.await.unwrap();
    assert!(!log.contains('\u{1b}'), "no ANSI escape codes: {log}");
    let line = log
        .lines()
        .find(|line| {
            line.contains("access-log-probe") && line.contains("finished processing request")
        })
        .unwrap_or_else(|| panic!("no access log line in {log}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("status=200"), "{line}");
    assert!(line.contains("operation=\"Probe\""), "{line}");
}

/// Starts `serve` over `db` with these extra environment variables; the child and base URL.
async fn serve_over(db: &TestDb, dir: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = command(dir)
        .env("DATABASE_URL", &db.url)
        .envs(env.iter().copied())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let url = base_url(&mut child).await;
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_an_otlp_collector_with_spans_for_batches_and_statements() {
    use std::sync::{Arc, Mutex};

    // A collector that keeps what it is sent.
    let received: Arc<Mutex<Vec<u8>>> = Arc::default();
    let kept = received.clone();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().extend_from_slice(&body);
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let db = TestDb::with_demo().await;
    let dir = data_dir();
    let (child, base_url) = serve_over(
        &db,
        dir.path(),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    )
    .await;
    let response = graphql(
        &base_url,
        None,
        "query Traced { agencies(first: 3) { nodes { name publishedMetrics { metric { key } } } } }",
        json!({}),
    )
    .await;
    assert!(response["errors"].is_null(), "{response}");
    // Stopping flushes what is buffered.
    stop(child).await;
    let received = received.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&received);
    for expected in [
        "justice-counts",
        "request",
        "dataloader batch",
        "MetricSettingsOf",
        "sql",
        "SELECT",
    ] {
        assert!(text.contains(expected), "{expected} not exported");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_costs_no_request() {
    let db = TestDb::with_demo().await;
    let dir = data_dir();
    // A collector that takes connections and never answers: the worst kind.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let (child, base_url) = serve_over(
        &db,
        dir.path(),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
    )
    .await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        assert_eq!(agency_names(&base_url).await.len(), 9);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "a request waited for the collector: {:?}",
            started.elapsed()
        );
    }
    stop(child).await;
    drop(silent);
}
