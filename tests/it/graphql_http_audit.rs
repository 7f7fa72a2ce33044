//! The GraphQL-over-HTTP audit suite (the `graphql-http` package's `auditServer`, run by
//! `tests/graphql-http/audit.mjs` with Node) against the server: every MUST, SHOULD and MAY
//! it checks passes.

use tokio::process::Command;

use crate::support::{TestApp, TestDb, npm_installed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_over_http_audit_passes() {
    let dir = npm_installed("tests/graphql-http", "graphql-http").await;
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let output = Command::new("node")
        .arg("audit.mjs")
        .arg(format!("{}/graphql", app.base_url))
        .current_dir(&dir)
        .output()
        .await
        .expect("node is installed (.ci/run installs Node.js)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let passed = report
        .lines()
        .filter(|line| line.starts_with("PASS "))
        .count();
    let other: Vec<&str> = report
        .lines()
        .filter(|line| {
            ["WARN ", "FAIL ", "NOTE "]
                .iter()
                .any(|tag| line.starts_with(tag))
        })
        .collect();
    assert!(passed >= 60, "{report}");
    assert!(other.is_empty(), "{report}");
}
