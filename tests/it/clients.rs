//! Client developers' side: typed clients generated from `schema.graphql` and `operations/`
//! (TypeScript with graphql-codegen, type-checked strictly; Rust with graphql_client, run
//! here against the demo data), the schema linted, breaking changes against the released
//! schema caught, and the trusted-documents manifest that the server loads.

use std::path::{Path, PathBuf};

use graphql_client::{GraphQLQuery, Response};
use justice_counts::limits::Limits;
use serde_json::json;
use tokio::process::Command;

use crate::support::{TestApp, TestDb, agency_id};

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// `clients/`, with its pinned packages installed.
async fn installed() -> PathBuf {
    crate::support::npm_installed("clients", ".bin/graphql-codegen").await
}

/// Runs a command in `clients/`; its exit status and output.
async fn run(program: &str, args: &[&str]) -> (bool, String) {
    let dir = installed().await;
    let output = Command::new(program)
        .args(args)
        .current_dir(&dir)
        .output()
        .await
        .unwrap_or_else(|error| panic!("{program}: {error}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn the_typescript_client_generates_and_type_checks_and_the_schema_lints_clean() {
    for script in ["lint:schema", "lint:operations", "check:ts"] {
        let (ok, output) = run("npm", &["run", "--silent", script]).await;
        assert!(ok, "npm run {script}:\n{output}");
    }
    let generated = clients_dir().join("typescript/generated/graphql.ts");
    let code = std::fs::read_to_string(generated).unwrap();
    assert!(
        code.contains("export type RecordsQuery"),
        "typed documents for the operations"
    );
    assert!(
        code.contains("dateRangeStart: IsoDate") && code.contains("lastModifiedAt: DateTimeString"),
        "the scalars have types of their own, not unknown"
    );
}

#[tokio::test]
async fn the_schema_keeps_every_released_field_unless_deprecated_first() {
    let (ok, output) = run(
        "node",
        &[
            "schema-diff.mjs",
            "../schema.released.graphql",
            "../schema.graphql",
        ],
    )
    .await;
    assert!(
        ok,
        "breaking changes against schema.released.graphql:\n{output}"
    );

    // A renamed field is caught, and named.
    let dir = tempfile::tempdir().unwrap();
    let current =
        std::fs::read_to_string(clients_dir().join("../schema.released.graphql")).unwrap();
    let renamed = current.replacen("\tagencies(", "\tagencyList(", 1);
    assert_ne!(renamed, current);
    let changed = dir.path().join("changed.graphql");
    std::fs::write(&changed, renamed).unwrap();
    let (ok, output) = run(
        "node",
        &[
            "schema-diff.mjs",
            "../schema.released.graphql",
            changed.to_str().unwrap(),
        ],
    )
    .await;
    assert!(!ok, "{output}");
    assert!(output.contains("Query.agencies"), "{output}");
}

#[tokio::test]
async fn the_generated_manifest_is_what_trusted_documents_run() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("trusted.json");
    let (ok, output) = run("node", &["manifest.mjs", manifest.to_str().unwrap()]).await;
    assert!(ok, "{output}");
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            trusted_documents: Some(manifest),
            ..Limits::default()
        },
    )
    .await;
    let token = app.token_for(&db, "sheriff.reader@example.com").await;
    let startup = crate::support::operation("startup");
    let hash = justice_counts::auth::secrets::digest(&startup);
    let response = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .bearer_auth(&token)
        .json(&json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } }))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(
        response["data"]["me"]["email"], "sheriff.reader@example.com",
        "{response}"
    );
}

/// The Rust client: one type per operation, generated from the schema at compile time. Every
/// operation compiles; the test runs those of the screens it reaches from the demo data.
#[allow(missing_docs, dead_code, clippy::enum_variant_names)]
mod generated {
    use graphql_client::GraphQLQuery;

    pub type Date = String;
    pub type DateTime = String;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "schema.graphql",
        query_path = "operations/startup.graphql",
        response_derives = "Debug"
    )]
    pub struct StartUp;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "schema.graphql",
        query_path = "operations/home.graphql",
        response_derives = "Debug"
    )]
    pub struct Home;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "schema.graphql",
        query_path = "operations/records.graphql",
        response_derives = "Debug"
    )]
    pub struct Records;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "schema.graphql",
        query_path = "operations/data_entry.graphql",
        response_derives = "Debug"
    )]
    pub struct DataEntry;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "schema.graphql",
        query_path = "operations/metric_configuration.graphql",
        response_derives = "Debug"
    )]
    pub struct MetricConfiguration;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "schema.graphql",
        query_path = "operations/data_visualisation.graphql",
        response_derives = "Debug"
    )]
    pub struct DataVisualisation;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "schema.graphql",
        query_path = "operations/team_and_settings.graphql",
        response_derives = "Debug"
    )]
    pub struct TeamAndSettings;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "schema.graphql",
        query_path = "operations/uploads.graphql",
        response_derives = "Debug"
    )]
    pub struct Uploads;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "schema.graphql",
        query_path = "operations/public_dashboard.graphql",
        response_derives = "Debug"
    )]
    pub struct PublicDashboard;
}

/// Sends an operation with the Rust client's types; the typed data.
async fn send<Q: GraphQLQuery>(
    app: &TestApp,
    token: &str,
    variables: Q::Variables,
) -> Q::ResponseData {
    let body = Q::build_query(variables);
    let response: Response<Q::ResponseData> = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(response.errors.is_none(), "{:?}", response.errors);
    response.data.expect("data")
}

#[tokio::test]
async fn the_rust_client_runs_the_screens_on_the_demo_data() {
    use generated::*;

    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let token = app.token_for(&db, "sheriff.admin@example.com").await;
    let sheriff = agency_id(&app, &db, "Sheriff").await;

    let startup = send::<StartUp>(&app, &token, start_up::Variables).await;
    assert_eq!(startup.me.email, "sheriff.admin@example.com");
    assert!(!startup.me.memberships.is_empty());

    let records = send::<Records>(
        &app,
        &token,
        records::Variables {
            agency_id: sheriff.clone(),
            filter: None,
            first: Some(5),
            after: None,
        },
    )
    .await;
    let reports = records.agency.expect("the agency").reports;
    assert!(reports.total_count > 5);
    assert_eq!(reports.edges.len(), 5);
    // Dates arrive as the `Date` scalar's text.
    let first = &reports.edges[0].node;
    assert_eq!(first.date_range_start.len(), 10, "{first:?}");

    let home = send::<Home>(
        &app,
        &token,
        home::Variables {
            agency_id: sheriff.clone(),
        },
    )
    .await;
    assert!(home.agency.is_some());

    let dashboard = send::<PublicDashboard>(
        &app,
        &token,
        public_dashboard::Variables {
            agency_id: sheriff.clone(),
            granularity: None,
        },
    )
    .await;
    assert!(dashboard.agencies.total_count > 0);

    let team = send::<TeamAndSettings>(
        &app,
        &token,
        team_and_settings::Variables {
            agency_id: sheriff,
            with_emails: true,
        },
    )
    .await;
    assert!(team.agency.is_some());
}
