//! Every screen of the frontend is one request: its committed operation runs against the demo
//! data and must match the reviewed snapshot (ids, timestamps and cursors redacted).

use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, agency_id, operation, redact};

async fn screen(app: &TestApp, token: Option<&str>, name: &str, variables: Value) -> Value {
    let mut response = app.graphql_as(token, &operation(name), variables).await;
    assert!(response["errors"].is_null(), "{name}: {response}");
    redact(&mut response);
    response
}

async fn token(app: &TestApp, db: &TestDb, email: &str) -> String {
    app.token_for(db, email).await
}

#[tokio::test]
async fn start_up_screen() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let token = token(&app, &db, "mesa.admin@example.com").await;
    insta::assert_json_snapshot!(
        "startup",
        screen(&app, Some(&token), "startup", json!({})).await
    );
}

#[tokio::test]
async fn home_screen() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let agency = agency_id(&app, &db, "Public Defender").await;
    let token = token(&app, &db, "admin@example.com").await;
    insta::assert_json_snapshot!(
        "home",
        screen(&app, Some(&token), "home", json!({ "agencyId": agency })).await
    );
}

#[tokio::test]
async fn records_screen() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let agency = agency_id(&app, &db, "Sheriff").await;
    let token = token(&app, &db, "sheriff.reader@example.com").await;
    let variables = json!({ "agencyId": agency, "first": 5, "filter": { "year": 2025 } });
    insta::assert_json_snapshot!(
        "records",
        screen(&app, Some(&token), "records", variables).await
    );
}

#[tokio::test]
async fn data_entry_screen() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let agency = agency_id(&app, &db, "Public Defender").await;
    let token = token(&app, &db, "admin@example.com").await;
    // The defender's September 2025 report: a draft, partly filled in, with a corrected value.
    let reports = app
        .graphql_as(
            Some(&token),
            "query($a: ID!) { agency(id: $a) { reports(filter: {frequency: MONTHLY, from: \"2025-09-01\", to: \"2025-10-01\"}) { nodes { id } } } }",
            json!({ "a": agency }),
        )
        .await;
    let report = reports["data"]["agency"]["reports"]["nodes"][0]["id"].clone();
    insta::assert_json_snapshot!(
        "data_entry",
        screen(
            &app,
            Some(&token),
            "data_entry",
            json!({ "reportId": report })
        )
        .await
    );
}

#[tokio::test]
async fn metric_configuration_screen() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let agency = agency_id(&app, &db, "Community Corrections").await;
    let token = token(&app, &db, "council.admin@example.com").await;
    let variables = json!({ "agencyId": agency, "system": "PAROLE" });
    insta::assert_json_snapshot!(
        "metric_configuration",
        screen(&app, Some(&token), "metric_configuration", variables).await
    );
}

#[tokio::test]
async fn data_visualisation_screen() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let agency = agency_id(&app, &db, "Harbor City Police").await;
    let token = token(&app, &db, "harbor.contributor@example.com").await;
    let series = json!({
        "metricKey": "LAW_ENFORCEMENT_ARRESTS",
        "granularity": "ANNUAL",
        "dimensionId": "metric/offense/type",
    });
    let variables = json!({ "agencyId": agency, "series": series });
    insta::assert_json_snapshot!(
        "data_visualisation",
        screen(&app, Some(&token), "data_visualisation", variables).await
    );
}

#[tokio::test]
async fn team_and_settings_screen() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let agency = agency_id(&app, &db, "Sheriff").await;
    let token = token(&app, &db, "sheriff.admin@example.com").await;
    let variables = json!({ "agencyId": agency, "withEmails": true });
    insta::assert_json_snapshot!(
        "team_and_settings",
        screen(&app, Some(&token), "team_and_settings", variables).await
    );
}

#[tokio::test]
async fn uploads_screen() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let agency = agency_id(&app, &db, "Sheriff").await;
    let token = token(&app, &db, "sheriff.contributor@example.com").await;
    insta::assert_json_snapshot!(
        "uploads",
        screen(&app, Some(&token), "uploads", json!({ "agencyId": agency })).await
    );
}

#[tokio::test]
async fn public_dashboard_screen() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let agency = agency_id(&app, &db, "Pretrial Services").await;
    let variables = json!({ "agencyId": agency, "granularity": "ANNUAL" });
    insta::assert_json_snapshot!(
        "public_dashboard",
        screen(&app, None, "public_dashboard", variables).await
    );
}
