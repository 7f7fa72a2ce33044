//! Anonymous answers from memory: a repeated public query costs no statement, a write to
//! public data (by anyone, here plain SQL) is seen at once, signed-in requests are not served
//! anonymous answers, mutations are never kept, and GET answers carry `Cache-Control` for
//! browsers and CDNs.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use justice_counts::limits::Limits;

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

    // Signed in, the anonymous answer is not served: the user's own is run (and then kept
    // apart from it).
    let token = app.token_for(&db, "harbor.contributor@example.com").await;
    // (Its token is checked against the database the first time it is seen.)
    let me = app
        .graphql_as(Some(&token), "{ me { email } }", json!({}))
        .await;
    assert!(me["errors"].is_null(), "{me}");
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
    let mut bodies = Vec::new();
    // The first answer is made, the second kept: both say the same, in the media type asked.
    for accept in ["application/json", "application/graphql-response+json"] {
        let before = db.statements.get();
        let get = app
            .client
            .get(url.clone())
            .header("Apollo-Require-Preflight", "true")
            .header("Accept", accept)
            .send()
            .await
            .expect("sent");
        assert_eq!(get.status(), 200);
        let header = |name: &str| {
            get.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            header("cache-control").as_deref(),
            Some("public, max-age=60")
        );
        assert_eq!(
            header("content-type"),
            Some(format!("{accept}; charset=utf-8"))
        );
        bodies.push((
            get.text().await.expect("body"),
            db.statements.get() - before,
        ));
    }
    assert_eq!(bodies[0].0, bodies[1].0);
    assert!(bodies[0].1 > 0);
    assert_eq!(bodies[1].1, 0, "the second answer is the kept one");
    let post = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .json(&json!({ "query": DASHBOARD, "variables": { "id": harbor } }))
        .send()
        .await
        .expect("sent");
    assert!(post.headers().get("cache-control").is_none());
}

#[tokio::test]
async fn kept_answers_fit_in_their_budget_of_bytes() {
    let db = TestDb::with_demo().await;
    let budget = 2_000;
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            public_cache_bytes: budget,
            ..Limits::default()
        },
    )
    .await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let small = "query($id: ID!) { agency(id: $id) { name } }";
    let first = app.graphql(small, json!({ "id": harbor })).await;
    assert!(first["errors"].is_null(), "{first}");
    let before = db.statements.get();
    app.graphql(small, json!({ "id": harbor })).await;
    assert_eq!(db.statements.get(), before, "a small answer is kept");

    // The dashboard's answer is larger than the whole budget: it is never kept.
    let dashboard = app.graphql(DASHBOARD, json!({ "id": harbor })).await;
    assert!(dashboard.to_string().len() > budget, "{dashboard}");
    let before = db.statements.get();
    app.graphql(DASHBOARD, json!({ "id": harbor })).await;
    assert!(db.statements.get() > before, "too large to keep");

    // Answers that fit one by one but not all together: the least recently used go.
    let names: Vec<String> = (0..100)
        .map(|n| format!("query Name{n}($id: ID!) {{ agency(id: $id) {{ name }} }}"))
        .collect();
    for name in &names {
        app.graphql(name, json!({ "id": harbor })).await;
    }
    let before = db.statements.get();
    app.graphql(&names[99], json!({ "id": harbor })).await;
    assert_eq!(db.statements.get(), before, "the newest answer is kept");
    app.graphql(&names[0], json!({ "id": harbor })).await;
    assert!(db.statements.get() > before, "the oldest went");
}

#[tokio::test]
async fn no_operation_name_and_an_empty_one_are_different_requests() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let ask = async |name: Value| -> Value {
        app.client
            .post(format!("{}/graphql", app.base_url))
            .json(&json!({ "query": "{ __typename }", "operationName": name }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    for _ in 0..2 {
        let without = ask(Value::Null).await;
        assert_eq!(without["data"]["__typename"], "Query", "{without}");
    }
    let empty = ask(json!("")).await;
    assert!(
        !empty["errors"].is_null(),
        "no operation is named \"\": {empty}"
    );
}
