//! Anonymous answers from memory: a repeated public query costs no statement, a write to
//! public data (by anyone, here plain SQL) is seen at once, signed-in requests and mutations
//! are never kept, and GET answers carry `Cache-Control` for browsers and CDNs.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, agency_id};
use crate::uploads::execute;

const DASHBOARD: &str = "query($id: ID!) { agency(id: $id) { name
    publishedMetrics { metric { key } series { points { start value } } } } }";

#[tokio::test]
async fn a_repeated_public_query_costs_nothing_until_public_data_changes() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let variables = json!({ "id": harbor });

    let before = db.statements.get();
    let first = app.graphql(DASHBOARD, variables.clone()).await;
    assert!(first["errors"].is_null(), "{first}");
    assert!(db.statements.get() > before);
    let before = db.statements.get();
    let second = app.graphql(DASHBOARD, variables.clone()).await;
    assert_eq!(second, first);
    assert_eq!(db.statements.get(), before, "answered from memory");

    // Other variables are another answer.
    let sheriff = agency_id(&app, &db, "Pine County Sheriff").await;
    let before = db.statements.get();
    app.graphql(DASHBOARD, json!({ "id": sheriff })).await;
    assert!(db.statements.get() > before);

    // Signed in, nothing is kept.
    let token = app.token_for(&db, "harbor.contributor@example.com").await;
    app.graphql_as(Some(&token), DASHBOARD, variables.clone())
        .await;
    let before = db.statements.get();
    app.graphql_as(Some(&token), DASHBOARD, variables.clone())
        .await;
    assert!(db.statements.get() > before);

    // A published value changes: the next answers show it.
    execute(
        &db,
        &format!(
            "UPDATE datapoints SET value = value + 1000 WHERE id IN (SELECT d.id FROM datapoints d
             JOIN reports r ON r.id = d.report_id WHERE r.agency_id = {harbor}
             AND r.status = 'PUBLISHED' AND d.dimension_id IS NULL)"
        ),
    )
    .await;
    let started = Instant::now();
    loop {
        let now = app.graphql(DASHBOARD, variables.clone()).await;
        if now != first {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the change was not seen"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn mutations_are_never_kept_and_get_answers_may_be_cached_by_others() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let sign_in = "mutation { signIn(input: {email: \"sheriff.reader@example.com\", password: \"justice-counts-demo\"}) { accessToken } }";
    let tokens: Vec<Value> = [
        app.graphql(sign_in, json!({})).await,
        app.graphql(sign_in, json!({})).await,
    ]
    .iter()
    .map(|answer| answer["data"]["signIn"]["accessToken"].clone())
    .collect();
    assert!(tokens[0].is_string() && tokens[1].is_string());
    assert_ne!(tokens[0], tokens[1], "each sign-in is its own");

    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let url = reqwest::Url::parse_with_params(
        &format!("{}/graphql", app.base_url),
        &[
            ("query", DASHBOARD),
            ("variables", &json!({ "id": harbor }).to_string()),
        ],
    )
    .expect("url");
    let get = app
        .client
        .get(url)
        .header("Apollo-Require-Preflight", "true")
        .send()
        .await
        .expect("sent");
    assert_eq!(get.status(), 200);
    assert_eq!(
        get.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("public, max-age=60")
    );
    let post = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .json(&json!({ "query": DASHBOARD, "variables": { "id": harbor } }))
        .send()
        .await
        .expect("sent");
    assert!(post.headers().get("cache-control").is_none());
}
