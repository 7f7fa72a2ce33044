//! GraphiQL in a real headless browser (Debian's `chromium`), driven over the Chrome DevTools
//! Protocol, with no network beyond the server: every other address goes to a dead proxy.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{TestApp, TestDb};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A headless Chromium and a DevTools session on one page.
struct Browser {
    _process: Child,
    _profile: tempfile::TempDir,
    socket: Socket,
    session: String,
    next_id: u64,
    /// Every URL the page asked for.
    requested: Vec<String>,
    /// Exceptions thrown in the page.
    exceptions: Vec<String>,
}

impl Browser {
    async fn launch() -> Self {
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("Debian's chromium is installed (.ci/run installs it)");
        let profile = tempfile::tempdir().unwrap();
        let mut process = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                // Offline: anything but loopback goes to a port where nothing listens.
                "--proxy-server=127.0.0.1:9",
                "--proxy-bypass-list=127.0.0.1;localhost",
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(process.stderr.take().unwrap()).lines();
        let endpoint = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("chromium exited without a DevTools address");
        })
        .await
        .expect("chromium starts in time");
        // Keep reading stderr so that chromium never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (socket, _) = tokio_tungstenite::connect_async(endpoint).await.unwrap();
        let mut browser = Self {
            _process: process,
            _profile: profile,
            socket,
            session: String::new(),
            next_id: 0,
            requested: Vec::new(),
            exceptions: Vec::new(),
        };
        let target = browser
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        for domain in ["Page.enable", "Runtime.enable", "Network.enable"] {
            browser.call(domain, json!({})).await;
        }
        browser
    }

    /// Sends a command (to the page once attached) and waits for its result, noting events.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .expect("DevTools answers in time")
                .expect("DevTools connection open")
                .unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(&text).unwrap();
            match value["method"].as_str() {
                Some("Network.requestWillBeSent") => self.requested.push(
                    value["params"]["request"]["url"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                ),
                Some("Runtime.exceptionThrown") => self
                    .exceptions
                    .push(value["params"]["exceptionDetails"].to_string()),
                Some("Runtime.consoleAPICalled") if value["params"]["type"] == "error" => {
                    self.exceptions.push(value["params"]["args"].to_string());
                }
                Some("Network.loadingFailed") => self
                    .exceptions
                    .push(format!("failed to load: {}", value["params"])),
                _ => {}
            }
            if value["id"] == id {
                assert!(value["error"].is_null(), "{method}: {value}");
                return value["result"].clone();
            }
        }
    }

    /// Evaluates an expression in the page; its value.
    async fn evaluate(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is truthy.
    async fn wait_for(&mut self, expression: &str, within: Duration) {
        let started = Instant::now();
        loop {
            let value = self.evaluate(expression).await;
            if value.as_bool() == Some(true) {
                return;
            }
            if started.elapsed() >= within {
                let page = self
                    .evaluate("JSON.stringify([JusticeCountsGraphiQL.getQuery(), JusticeCountsGraphiQL.getResponse(), document.querySelector('.graphiql-response')?.innerText])")
                    .await;
                let requested: Vec<&String> = self
                    .requested
                    .iter()
                    .filter(|url| !url.starts_with("data:"))
                    .collect();
                panic!(
                    "{expression} never held; exceptions: {:?}; requested: {requested:?}; page: {page}",
                    self.exceptions
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_runs_a_query_offline_and_shows_the_result() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let mut browser = Browser::launch().await;
    browser
        .call(
            "Page.navigate",
            json!({ "url": format!("{}/graphiql", app.base_url) }),
        )
        .await;
    browser
        .wait_for(
            "!!(window.JusticeCountsGraphiQL && JusticeCountsGraphiQL.isReady())",
            Duration::from_secs(60),
        )
        .await;
    // The frontend's operations are there as tabs, after the welcome tab.
    let tabs = browser
        .evaluate("document.querySelectorAll('.graphiql-tab').length")
        .await;
    assert_eq!(tabs, 11, "a welcome tab and ten examples");
    browser
        .evaluate(
            "JusticeCountsGraphiQL.setQuery('{ agencies(first: 3) { totalCount nodes { name } } }'), true",
        )
        .await;
    // GraphiQL reads the operation's name from the editor after a short debounce.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    browser
        .evaluate("document.querySelector('.graphiql-execute-button').click(), true")
        .await;
    browser
        .wait_for(
            "(JusticeCountsGraphiQL.getResponse() ?? '').includes('totalCount')",
            Duration::from_secs(30),
        )
        .await;
    let response: Value = serde_json::from_str(
        browser
            .evaluate("JusticeCountsGraphiQL.getResponse()")
            .await
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(response["data"]["agencies"]["totalCount"], 9, "{response}");
    assert_eq!(
        response["data"]["agencies"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let shown = browser
        .evaluate("document.querySelector('.graphiql-response').innerText")
        .await;
    let first = response["data"]["agencies"]["nodes"][0]["name"]
        .as_str()
        .unwrap();
    // The result pane wraps long lines.
    let shown = shown
        .as_str()
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(shown.contains(first), "{shown}");
    assert!(shown.contains("\"totalCount\": 9"), "{shown}");
    assert!(browser.exceptions.is_empty(), "{:?}", browser.exceptions);
    let elsewhere: Vec<&String> = browser
        .requested
        .iter()
        .filter(|url| {
            !url.starts_with(&app.base_url)
                && !url.starts_with("data:")
                && !url.starts_with("blob:")
        })
        .collect();
    assert!(
        elsewhere.is_empty(),
        "requests beyond the server: {elsewhere:?}"
    );
    assert!(
        browser
            .requested
            .iter()
            .any(|url| url.ends_with("/graphiql/assets/graphiql.js"))
    );
}
