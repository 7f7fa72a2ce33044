//! Bulk upload: spreadsheets in the agencies' layout become values, with a message for every
//! row that cannot — read as a durable job, resumable, idempotent, and with a dry run.

use std::sync::Arc;

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use justice_counts::ingest::{self, IngestSettings, NewUpload, Queue};
use justice_counts::models::enums::{System, ValueSource};
use justice_counts::models::ids::{AgencyId, SpreadsheetId, UserId};
use serde_json::{Value, json};

use crate::support::TestDb;

/// Runs a query and returns its rows as JSON objects.
pub async fn rows(db: &TestDb, query: &str) -> Vec<Value> {
    #[derive(QueryableByName)]
    struct Json {
        #[diesel(sql_type = Text)]
        json: String,
    }
    let mut conn = db.connect().await;
    let result: Json = diesel::sql_query(format!(
        "SELECT coalesce(json_agg(t), '[]')::text AS json FROM ({query}) t"
    ))
    .get_result(&mut conn)
    .await
    .unwrap_or_else(|error| panic!("{query}: {error}"));
    match serde_json::from_str(&result.json).expect("JSON") {
        Value::Array(rows) => rows,
        _ => Vec::new(),
    }
}

/// The id of the demo agency whose name contains `name`.
pub async fn agency(db: &TestDb, name: &str) -> AgencyId {
    let found = rows(
        db,
        &format!("SELECT id FROM agencies WHERE name LIKE '%{name}%' ORDER BY id LIMIT 1"),
    )
    .await;
    AgencyId(found[0]["id"].as_i64().expect("agency") as i32)
}

/// The id of the demo user with `email`.
pub async fn user(db: &TestDb, email: &str) -> UserId {
    let found = rows(db, &format!("SELECT id FROM users WHERE email = '{email}'")).await;
    UserId(found[0]["id"].as_i64().expect("user") as i32)
}

/// Who uploads.
#[derive(Clone, Copy)]
pub enum By<'a> {
    Person(&'a str),
    Automated,
}

/// One finished ingest: its summary (status, messages) and id.
pub struct Ingested {
    pub id: SpreadsheetId,
    pub summary: Value,
}

impl Ingested {
    pub fn status(&self) -> &str {
        self.summary["status"].as_str().unwrap_or_default()
    }

    pub fn messages(&self) -> &[Value] {
        self.summary["messages"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn titles(&self) -> Vec<String> {
        self.messages()
            .iter()
            .map(|m| m["title"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn message(&self, title: &str) -> &Value {
        self.messages()
            .iter()
            .find(|m| m["title"] == title)
            .unwrap_or_else(|| panic!("no {title:?} among {:#?}", self.messages()))
    }
}

/// Stores a file as an upload of `agency` for `system` and ingests it here.
pub async fn ingest_file(
    db: &TestDb,
    agency: AgencyId,
    system: System,
    file_name: &str,
    bytes: &[u8],
    by: By<'_>,
    dry_run: bool,
) -> Ingested {
    let user = match by {
        By::Person(email) => Some(user(db, email).await),
        By::Automated => None,
    };
    let upload = NewUpload {
        agency,
        system,
        file_name: file_name.into(),
        user,
        source: if user.is_some() {
            ValueSource::BulkUpload
        } else {
            ValueSource::AutomatedBulkUpload
        },
        dry_run,
    };
    let mut conn = db.pool.get().await.expect("connection");
    let id = ingest::create(&mut conn, &upload, bytes, Queue::Caller)
        .await
        .expect("stored");
    drop(conn);
    ingest::run(
        &db.pool,
        &db.catalogue,
        id,
        &IngestSettings {
            batch_rows: 3,
            ..IngestSettings::default()
        },
        &ingest::Quiet,
    )
    .await
    .expect("ingested");
    let summary = ingest::job::summary(&db.pool, id).await.expect("summary");
    Ingested { id, summary }
}

/// The stored values of an agency's metric, with their reports.
pub async fn values(db: &TestDb, agency: AgencyId, metric: &str) -> Vec<Value> {
    rows(
        db,
        &format!(
            "SELECT r.id AS report, r.frequency::text AS frequency, \
                 r.date_range_start::text AS start, r.status::text AS status, r.version, \
                 d.dimension_id AS dimension, d.member, d.value, d.source::text AS source \
             FROM datapoints d JOIN reports r ON r.id = d.report_id \
             WHERE r.agency_id = {} AND d.metric_key = '{metric}' \
             ORDER BY r.date_range_start, r.frequency, d.dimension_id NULLS FIRST, d.member",
            agency.0
        ),
    )
    .await
}

const CONTRIBUTOR: By = By::Person("harbor.contributor@example.com");

#[tokio::test]
async fn a_csv_of_monthly_arrests_creates_draft_reports_with_the_values() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let csv = "year,month,value\n2022,1,40\n2022,2,41.256\n2022,February,41.26\n";
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        csv.as_bytes(),
        CONTRIBUTOR,
        false,
    )
    .await;
    // Rows 3 and 4 are the same month twice: neither is saved.
    assert_eq!(ingested.status(), "ERRORED", "{:#}", ingested.summary);
    assert_eq!(ingested.titles(), ["Too Many Rows"]);
    let stored = values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS").await;
    let stored: Vec<&Value> = stored.iter().filter(|v| v["start"] == "2022-01-01").collect();
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0]["value"], 40.0);
    assert_eq!(stored[0]["status"], "DRAFT");
    assert_eq!(stored[0]["source"], "BULK_UPLOAD");
    let february = values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS").await;
    assert!(!february.iter().any(|v| v["start"] == "2022-02-01"));
    let editors = rows(
        &db,
        &format!(
            "SELECT u.email FROM report_editors e JOIN users u ON u.id = e.user_id \
             WHERE e.report_id = {}",
            stored[0]["report"]
        ),
    )
    .await;
    assert_eq!(editors, [json!({"email": "harbor.contributor@example.com"})]);
}

#[tokio::test]
async fn the_same_file_twice_changes_nothing_the_second_time() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let csv = "year,month,value\n2022,1,40\n2022,2,41\n2024,3,7\n";
    let first = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        csv.as_bytes(),
        CONTRIBUTOR,
        false,
    )
    .await;
    assert_eq!(first.status(), "INGESTED", "{:#}", first.summary);
    let before = values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS").await;
    let history = rows(&db, "SELECT id FROM datapoint_changes").await.len();
    let second = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        csv.as_bytes(),
        CONTRIBUTOR,
        false,
    )
    .await;
    assert_eq!(second.status(), "INGESTED");
    assert_eq!(values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS").await, before);
    assert_eq!(rows(&db, "SELECT id FROM datapoint_changes").await.len(), history);
    let outcomes = rows(
        &db,
        &format!(
            "SELECT DISTINCT outcome::text AS outcome FROM spreadsheet_values \
             WHERE spreadsheet_id = {}",
            second.id.0
        ),
    )
    .await;
    assert_eq!(outcomes, [json!({"outcome": "UNCHANGED"})]);
    let changes = rows(
        &db,
        &format!(
            "SELECT DISTINCT change::text AS change FROM spreadsheet_report_changes \
             WHERE spreadsheet_id = {}",
            second.id.0
        ),
    )
    .await;
    assert_eq!(changes, [json!({"change": "UNCHANGED"})]);
    let _ = Arc::new(());
}
