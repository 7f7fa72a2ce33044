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
        Value::Array(rows) => rows.into_iter().map(floats).collect(),
        _ => Vec::new(),
    }
}

/// Numbers as floats, whether PostgreSQL wrote them with a decimal point or not.
fn floats(value: Value) -> Value {
    match value {
        Value::Number(number) => json!(number.as_f64()),
        Value::Array(items) => Value::Array(items.into_iter().map(floats).collect()),
        Value::Object(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, floats(v))).collect())
        }
        other => other,
    }
}

/// A whole number of a row.
pub fn int(value: &Value) -> i64 {
    value.as_f64().unwrap_or(-1.0) as i64
}

/// Runs a statement.
pub async fn execute(db: &TestDb, statement: &str) -> usize {
    let mut conn = db.connect().await;
    diesel::sql_query(statement)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"))
}

/// The id of the demo agency whose name contains `name`.
pub async fn agency(db: &TestDb, name: &str) -> AgencyId {
    let found = rows(
        db,
        &format!("SELECT id FROM agencies WHERE name LIKE '%{name}%' ORDER BY id LIMIT 1"),
    )
    .await;
    AgencyId(int(&found[0]["id"]) as i32)
}

/// The id of the demo user with `email`.
pub async fn user(db: &TestDb, email: &str) -> UserId {
    let found = rows(db, &format!("SELECT id FROM users WHERE email = '{email}'")).await;
    UserId(int(&found[0]["id"]) as i32)
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
    let stored: Vec<&Value> = stored
        .iter()
        .filter(|v| v["start"] == "2022-01-01")
        .collect();
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
    assert_eq!(
        editors,
        [json!({"email": "harbor.contributor@example.com"})]
    );
}

#[tokio::test]
async fn the_same_file_twice_changes_nothing_the_second_time() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let csv = "year,month,value\n2022,1,40\n2022,2,41\n2024,3,7\n";
    let history_at_start = rows(&db, "SELECT id FROM datapoint_changes").await.len();
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
    // Values given for the first time are inserted with no history row; a change of a value
    // that was stored keeps one.
    let first_changes = rows(
        &db,
        &format!(
            "SELECT count(*) FILTER (WHERE datapoint_created) AS created, \
                 count(*) FILTER (WHERE NOT datapoint_created) AS changed \
             FROM spreadsheet_values \
             WHERE spreadsheet_id = {} AND outcome IN ('NEW', 'UPDATED')",
            first.id.0
        ),
    )
    .await;
    assert!(int(&first_changes[0]["created"]) > 0, "{first_changes:?}");
    assert_eq!(
        history - history_at_start,
        usize::try_from(int(&first_changes[0]["changed"])).unwrap_or(usize::MAX)
    );
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
    assert_eq!(
        rows(&db, "SELECT id FROM datapoint_changes").await.len(),
        history
    );
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
}

/// An XLSX workbook with these sheets of text cells.
pub fn workbook(sheets: &[(&str, &[&[&str]])]) -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    for (name, rows) in sheets {
        let sheet = workbook.add_worksheet();
        sheet.set_name(*name).expect("sheet name");
        for (r, row) in (0u32..).zip(rows.iter()) {
            for (c, cell) in (0u16..).zip(row.iter()) {
                if let Ok(number) = cell.parse::<f64>() {
                    sheet.write_number(r, c, number).expect("cell");
                } else if !cell.is_empty() {
                    sheet.write_string(r, c, *cell).expect("cell");
                }
            }
        }
    }
    workbook.save_to_buffer().expect("workbook")
}

/// A workbook of a few kilobytes whose two cells sit at opposite corners of a sheet: read
/// into a grid, it asks for 17 billion cells.
#[tokio::test]
async fn a_workbook_too_large_to_read_is_refused_and_the_server_stays_up() {
    let db = TestDb::with_demo().await;
    let mut bomb = rust_xlsxwriter::Workbook::new();
    let sheet = bomb.add_worksheet();
    sheet.set_name("arrests").expect("sheet name");
    sheet.write_string(0, 0, "year").expect("cell");
    sheet
        .write_string(1_048_575, 16_383, "far away")
        .expect("cell");
    let bytes = bomb.save_to_buffer().expect("workbook");
    assert!(bytes.len() < 20_000, "{}", bytes.len());
    let ingested = harbor_workbook(&db, &bytes, false).await;
    let message = ingested.message("Unreadable File");
    assert_eq!(message["type"], "ERROR");
    let description = message["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("it is too large or too complex to read within 2048 MiB"),
        "{description}"
    );

    // The same server reads the next workbook as usual.
    let normal = workbook(&[(
        "arrests",
        &[&["year", "month", "value"], &["2022", "1", "5"]],
    )]);
    let ingested = harbor_workbook(&db, &normal, false).await;
    assert!(
        !ingested.titles().contains(&"Unreadable File".to_owned()),
        "{:?}",
        ingested.titles()
    );
}

/// A sheet whose header row is too long to pass between the reader and the server: the
/// sheets after it are not read, rather than read under other sheets' names.
#[tokio::test]
async fn a_sheet_of_huge_wide_rows_is_refused_and_the_sheets_after_it_are_read() {
    let db = TestDb::with_demo().await;
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let arrests = workbook.add_worksheet();
    arrests.set_name("arrests").expect("sheet name");
    for (column, text) in (0u16..).zip(["year", "month", "value"]) {
        arrests.write_string(0, column, text).expect("cell");
    }
    for (column, number) in (0u16..).zip([2022.0, 1.0, 5.0]) {
        arrests.write_number(1, column, number).expect("cell");
    }
    // 600 cells of one 32,000-character shared string: a small file, a header of 19 MB, of
    // which the reader sends the first 65 cells' first 1,000 characters.
    let long = "x".repeat(32_000);
    let wide = workbook.add_worksheet();
    wide.set_name("b_wide").expect("sheet name");
    for column in 0..600u16 {
        wide.write_string(0, column, &long).expect("cell");
    }
    for name in ["c_after", "d_after"] {
        let sheet = workbook.add_worksheet();
        sheet.set_name(name).expect("sheet name");
        sheet.write_string(0, 0, "year").expect("cell");
        sheet.write_number(1, 0, 2022.0).expect("cell");
    }
    let bytes = workbook.save_to_buffer().expect("workbook");
    assert!(bytes.len() < 1 << 20, "{}", bytes.len());
    let ingested = harbor_workbook(&db, &bytes, true).await;
    let about = |sheet: &str| -> Vec<String> {
        ingested
            .messages()
            .iter()
            .filter(|message| message["sheet"] == sheet)
            .map(|message| message["title"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        about("b_wide"),
        ["Too Many Columns"],
        "{:#?}",
        ingested.messages()
    );
    assert!(
        !ingested
            .titles()
            .iter()
            .any(|title| title == "Unreadable File"),
        "{:#?}",
        ingested.messages()
    );
    // The arrests sheet before it was read whole.
    assert!(about("arrests").is_empty(), "{:#?}", ingested.messages());
}

/// Ingests `bytes` as Harbor City Police's law-enforcement workbook.
async fn harbor_workbook(db: &TestDb, bytes: &[u8], dry_run: bool) -> Ingested {
    let harbor = agency(db, "Harbor City Police").await;
    ingest_file(
        db,
        harbor,
        System::LawEnforcement,
        "arrests.xlsx",
        bytes,
        CONTRIBUTOR_OF_ALL,
        dry_run,
    )
    .await
}

/// One file and the message it must produce.
struct Case {
    agency: &'static str,
    system: System,
    file: &'static str,
    bytes: Vec<u8>,
    title: &'static str,
    severity: &'static str,
    row: Option<i64>,
    value: Option<&'static str>,
}

#[allow(clippy::too_many_arguments)]
fn case(
    agency: &'static str,
    system: System,
    file: &'static str,
    csv: &str,
    title: &'static str,
    severity: &'static str,
    row: Option<i64>,
    value: Option<&'static str>,
) -> Case {
    Case {
        agency,
        system,
        file,
        bytes: csv.as_bytes().to_vec(),
        title,
        severity,
        row,
        value,
    }
}

#[tokio::test]
async fn every_error_and_warning_has_a_file_that_raises_it() {
    use System::{LawEnforcement as Le, Supervision};
    let db = TestDb::with_demo().await;
    // One supervision metric that is not split by subsystem, for a sheet that mixes them.
    execute(
        &db,
        "UPDATE metric_settings SET is_disaggregated_by_subsystem = false \
         WHERE metric_key = 'SUPERVISION_FUNDING'",
    )
    .await;
    let (e, w) = ("ERROR", "WARNING");
    let harbor = "Harbor City Police";
    let council = "Public Safety Council";
    let corrections = "Community Corrections";
    let single = "metric,year,month,breakdown_category,breakdown,value\n";
    let cases = vec![
        Case {
            bytes: workbook(&[
                (
                    "arrests",
                    &[&["year", "month", "value"], &["2022", "1", "5"]],
                ),
                ("notes", &[&["anything"], &["at all"]]),
            ]),
            ..case(
                harbor,
                Le,
                "data.xlsx",
                "",
                "Invalid Sheet Name",
                e,
                None,
                Some("notes"),
            )
        },
        case(
            harbor,
            Le,
            "arrest_counts.csv",
            "year,month,value\n2022,1,5\n",
            "Invalid File Name for CSV",
            e,
            None,
            Some("arrest_counts"),
        ),
        case(
            harbor,
            Le,
            "arrests.csv",
            "month,value\n1,5\n",
            "Missing 'year' Column",
            e,
            None,
            None,
        ),
        case(
            harbor,
            Le,
            "arrests.csv",
            "year,value\n2022,5\n",
            "Missing 'month' Column",
            w,
            None,
            None,
        ),
        case(
            harbor,
            Le,
            "arrests.csv",
            "year,month,value\n2022,1,\n2022,2,\n",
            "Empty 'value' Column",
            e,
            None,
            None,
        ),
        case(
            harbor,
            Le,
            "arrests.csv",
            "year,month,value\n2022,,5\n",
            "Empty 'month' Column",
            w,
            None,
            None,
        ),
        case(
            harbor,
            Le,
            "arrests.csv",
            "year,month,value,Notes\n2022,1,5,x\n",
            "Unexpected 'Notes' Column",
            e,
            None,
            Some("Notes"),
        ),
        case(
            harbor,
            Le,
            "funding.csv",
            "year,month,value\n2022,3,100\n",
            "Unexpected 'month' Column",
            w,
            None,
            Some("month"),
        ),
        case(
            harbor,
            Le,
            "arrests.csv",
            "year,month,value\n2022,1,5\n,2,6\n",
            "Empty 'year' Column Value",
            e,
            Some(3),
            None,
        ),
        case(
            harbor,
            Le,
            "arrests.csv",
            "year,month,value\nFY2023-2024,1,5\n",
            "Invalid 'year' Column Value",
            e,
            Some(2),
            Some("FY2023-2024"),
        ),
        case(
            harbor,
            Le,
            "arrests.csv",
            "year,month,value\n2022,Sept,5\n",
            "Invalid 'month' Column Value",
            e,
            Some(2),
            Some("Sept"),
        ),
        case(
            harbor,
            Le,
            "arrests.csv",
            "year,month,value\n2022,1,\"1,000\"\n",
            "Invalid 'value' Column Value",
            e,
            Some(2),
            Some("1,000"),
        ),
        case(
            harbor,
            Le,
            "arrests.csv",
            "year,month,value\n2022,1,5\n2022,2,NA\n",
            "Empty 'value' Column Value",
            e,
            Some(3),
            None,
        ),
        case(
            harbor,
            Le,
            "arrests_by_type.csv",
            "year,month,offense_type,value\n2022,1,Person,3\n",
            "Invalid 'offense_type' Column Value",
            e,
            Some(2),
            Some("Person"),
        ),
        case(
            harbor,
            Le,
            "arrests_by_type.csv",
            "year,month,offense_type,value\n2022,1,Drug Offenses,3\n2022,1,,3\n",
            "Empty 'offense_type' Column Value",
            e,
            Some(3),
            None,
        ),
        case(
            council,
            Le,
            "arrests.csv",
            "year,month,agency,value\n2022,1,Nowhere PD,5\n2022,1,pine county sheriff's office,5\n",
            "Invalid 'agency' Column Value",
            e,
            Some(2),
            Some("Nowhere PD"),
        ),
        case(
            council,
            Le,
            "arrests.csv",
            "year,month,agency,value\n2022,1,Pine County District Attorney,5\n2022,2,Pine County Sheriff's Office,5\n",
            "Invalid 'agency' Column Value",
            e,
            Some(2),
            Some("Pine County District Attorney"),
        ),
        case(
            council,
            Le,
            "arrests.csv",
            "year,month,agency,value\n2022,1,,5\n2022,2,Pine County Sheriff's Office,5\n",
            "Empty 'agency' Column Value",
            e,
            Some(2),
            None,
        ),
        case(
            corrections,
            Supervision,
            "population.csv",
            "year,month,system,value\n2022,1,jail,5\n2022,1,parole,4\n",
            "Invalid 'system' Column Value",
            e,
            Some(2),
            Some("jail"),
        ),
        case(
            corrections,
            Supervision,
            "population.csv",
            "year,month,system,value\n2022,1,,5\n2022,1,probation,4\n",
            "Empty 'system' Column Value",
            e,
            Some(2),
            None,
        ),
        case(
            corrections,
            Supervision,
            "mixed.csv",
            "metric,year,month,system,value\nfunding,2022,,prison,5\npopulation,2022,1,parole,3\n",
            "System Not Recognized",
            e,
            Some(2),
            Some("prison"),
        ),
        case(
            harbor,
            Le,
            "mixed.csv",
            &format!("{single}bogus,2022,1,,,5\n"),
            "Invalid 'metric' Column Value",
            e,
            Some(2),
            Some("bogus"),
        ),
        case(
            harbor,
            Le,
            "mixed.csv",
            &format!("{single},2022,1,,,5\narrests,2022,1,,,5\n"),
            "Empty 'metric' Column Value",
            e,
            Some(2),
            None,
        ),
        case(
            harbor,
            Le,
            "mixed.csv",
            &format!("{single}arrests,2022,1,call_type,Person Offenses,5\n"),
            "Invalid 'breakdown_category' Column Value",
            e,
            Some(2),
            Some("call_type"),
        ),
        case(
            harbor,
            Le,
            "mixed.csv",
            &format!("{single}arrests,2022,1,offense_type,Persons Offensive Stuff,5\n"),
            "Invalid 'breakdown' Column Value",
            e,
            Some(2),
            Some("Persons Offensive Stuff"),
        ),
        case(
            harbor,
            Le,
            "arrests.csv",
            "year,month,value\n2022,1,5\n2022,01,6\n",
            "Too Many Rows",
            e,
            Some(2),
            None,
        ),
        case(
            harbor,
            Le,
            "mixed.csv",
            &format!(
                "{single}arrests,2021,1,,,10\narrests,2021,1,offense_type,Person Offenses,3\n"
            ),
            "Breakdown Total Warning",
            w,
            None,
            Some("3"),
        ),
        case(
            harbor,
            Le,
            "arrests.xlsx",
            "this is not a workbook",
            "Unreadable File",
            e,
            None,
            None,
        ),
    ];
    for case in cases {
        let agency = agency(&db, case.agency).await;
        let ingested = ingest_file(
            &db,
            agency,
            case.system,
            case.file,
            &case.bytes,
            CONTRIBUTOR_OF_ALL,
            false,
        )
        .await;
        let message = ingested.message(case.title);
        assert_eq!(
            message["type"], case.severity,
            "{}: {message:#}",
            case.title
        );
        assert_eq!(
            message["row"].as_i64(),
            case.row,
            "{}: {message:#}",
            case.title
        );
        let stored = rows(
            &db,
            &format!(
                "SELECT value FROM spreadsheet_messages WHERE spreadsheet_id = {} AND title = $${}$$",
                ingested.id.0, case.title
            ),
        )
        .await;
        assert_eq!(
            stored[0]["value"].as_str(),
            case.value,
            "{}: {message:#}",
            case.title
        );
        if case.row.is_some() {
            let description = message["description"].as_str().unwrap_or_default();
            assert!(
                description.starts_with(&format!("Row {}:", case.row.unwrap_or(0))),
                "{description}"
            );
        }
        let errors = ingested.messages().iter().any(|m| m["type"] == "ERROR");
        assert_eq!(
            ingested.status(),
            if errors { "ERRORED" } else { "INGESTED" },
            "{}",
            case.title
        );
    }
}

/// Platform staff may upload for every agency.
const CONTRIBUTOR_OF_ALL: By = By::Person("admin@example.com");

#[tokio::test]
async fn rows_become_months_years_and_fiscal_years() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    // Arrests are monthly: a blank month is the calendar year. Funding is annual: a month
    // makes a monthly report.
    let file = workbook(&[
        (
            "arrests",
            &[
                &["year", "month", "value"],
                &["2021", "3", "7"],
                &["2021", "", "80"],
            ],
        ),
        (
            "funding",
            &[
                &["year", "month", "value"],
                &["2021", "", "1000"],
                &["2021", "5", "90"],
            ],
        ),
    ]);
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "harbor.xlsx",
        &file,
        CONTRIBUTOR,
        false,
    )
    .await;
    assert_eq!(
        ingested.titles(),
        ["Unexpected 'month' Column"],
        "{:#}",
        ingested.summary
    );
    let periods = |values: Vec<Value>| -> Vec<(String, String, f64)> {
        values
            .iter()
            .filter(|v| v["start"].as_str().unwrap_or_default().starts_with("2021"))
            .map(|v| {
                (
                    v["frequency"].as_str().unwrap_or_default().to_owned(),
                    v["start"].as_str().unwrap_or_default().to_owned(),
                    v["value"].as_f64().unwrap_or(-1.0),
                )
            })
            .collect()
    };
    assert_eq!(
        periods(values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS").await),
        [
            ("ANNUAL".to_owned(), "2021-01-01".to_owned(), 80.0),
            ("MONTHLY".to_owned(), "2021-03-01".to_owned(), 7.0)
        ]
    );
    assert_eq!(
        periods(values(&db, harbor, "LAW_ENFORCEMENT_FUNDING").await),
        [
            ("ANNUAL".to_owned(), "2021-01-01".to_owned(), 1000.0),
            ("MONTHLY".to_owned(), "2021-05-01".to_owned(), 90.0)
        ]
    );
    // The Department of Corrections' year starts in July: the year column is the year the
    // fiscal year ends.
    let mesa = agency(&db, "Mesa State Department").await;
    let ingested = ingest_file(
        &db,
        mesa,
        System::Prisons,
        "funding.csv",
        b"year,value\n2022,5000\n2021-2022,4000\n",
        CONTRIBUTOR_OF_ALL,
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{:#}", ingested.summary);
    let funding = values(&db, mesa, "PRISONS_FUNDING").await;
    let fiscal: Vec<&Value> = funding
        .iter()
        .filter(|v| v["start"] == "2021-07-01")
        .collect();
    assert_eq!(fiscal.len(), 1, "{funding:#?}");
    assert_eq!(fiscal[0]["value"], 5000.0);
    assert_eq!(fiscal[0]["frequency"], "ANNUAL");
    let fiscal: Vec<&Value> = funding
        .iter()
        .filter(|v| v["start"] == "2020-07-01")
        .collect();
    assert_eq!(fiscal[0]["value"], 4000.0);
}

/// A report of the agency with a stored arrests total, and its status.
async fn report_with_arrests(db: &TestDb, agency: AgencyId, status: &str) -> Value {
    rows(
        db,
        &format!(
            "SELECT r.id, extract(year FROM r.date_range_start)::int AS year, \
                 extract(month FROM r.date_range_start)::int AS month, r.version, d.value \
             FROM reports r JOIN datapoints d ON d.report_id = r.id \
             WHERE r.agency_id = {} AND r.status = '{status}' AND r.frequency = 'MONTHLY' \
                 AND d.metric_key = 'LAW_ENFORCEMENT_ARRESTS' AND d.dimension_id IS NULL \
                 AND d.value IS NOT NULL \
             ORDER BY r.date_range_start LIMIT 1",
            agency.0
        ),
    )
    .await
    .into_iter()
    .next()
    .unwrap_or_else(|| panic!("no {status} report with arrests"))
}

#[tokio::test]
async fn a_persons_change_takes_a_published_report_back_to_draft_and_keeps_history() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let published = report_with_arrests(&db, harbor, "PUBLISHED").await;
    let (year, month, old) = (
        &published["year"],
        &published["month"],
        published["value"].as_f64().unwrap_or(0.0),
    );
    // Unchanged values leave the report published.
    let same = format!("year,month,value\n{year},{month},{old}\n");
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        same.as_bytes(),
        CONTRIBUTOR,
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED");
    let report = format!(
        "SELECT status::text AS status, version FROM reports WHERE id = {}",
        published["id"]
    );
    assert_eq!(rows(&db, &report).await[0]["status"], "PUBLISHED");
    // An automated upload's change leaves it published too.
    let automated = format!("year,month,value\n{year},{month},{}\n", old + 1.0);
    ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        automated.as_bytes(),
        By::Automated,
        false,
    )
    .await;
    assert_eq!(rows(&db, &report).await[0]["status"], "PUBLISHED");
    // A person's change takes it back to draft, with a new version and a history row.
    let changed = format!("year,month,value\n{year},{month},{}\n", old + 2.0);
    ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        changed.as_bytes(),
        CONTRIBUTOR,
        false,
    )
    .await;
    let after = &rows(&db, &report).await[0];
    assert_eq!(after["status"], "DRAFT");
    assert_eq!(after["version"], (int(&published["version"]) + 2) as f64);
    let history = rows(
        &db,
        &format!(
            "SELECT c.old_value, c.new_value, c.source::text AS source, \
                 c.changed_by IS NOT NULL AS by_person \
             FROM datapoint_changes c JOIN datapoints d ON d.id = c.datapoint_id \
             WHERE d.report_id = {} AND d.metric_key = 'LAW_ENFORCEMENT_ARRESTS' \
                 AND d.dimension_id IS NULL ORDER BY c.id",
            published["id"]
        ),
    )
    .await;
    let tail: Vec<&Value> = history.iter().rev().take(2).collect();
    assert_eq!(
        tail,
        [
            &json!({"old_value": old + 1.0, "new_value": old + 2.0, "source": "BULK_UPLOAD", "by_person": true}),
            &json!({"old_value": old, "new_value": old + 1.0, "source": "AUTOMATED_BULK_UPLOAD", "by_person": false}),
        ]
    );
    let status_changes = rows(
        &db,
        &format!(
            "SELECT old_status::text AS old, new_status::text AS new FROM report_status_changes \
             WHERE report_id = {} ORDER BY id DESC LIMIT 1",
            published["id"]
        ),
    )
    .await;
    assert_eq!(
        status_changes,
        [json!({"old": "PUBLISHED", "new": "DRAFT"})]
    );
}

#[tokio::test]
async fn a_dry_run_says_what_would_change_and_writes_nothing() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let draft = report_with_arrests(&db, harbor, "PUBLISHED").await;
    let counts = "SELECT (SELECT count(*) FROM datapoints) AS datapoints, \
        (SELECT count(*) FROM reports) AS reports, \
        (SELECT count(*) FROM datapoint_changes) AS history, \
        (SELECT sum(version) FROM reports) AS versions, \
        (SELECT count(*) FROM report_editors) AS editors";
    let before = rows(&db, counts).await;
    let csv = format!(
        "year,month,value\n{},{},{}\n2022,6,12\n",
        draft["year"],
        draft["month"],
        draft["value"].as_f64().unwrap_or(0.0) + 5.0
    );
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        csv.as_bytes(),
        CONTRIBUTOR,
        true,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{:#}", ingested.summary);
    assert_eq!(rows(&db, counts).await, before);
    let result = rows(
        &db,
        &format!(
            "SELECT outcome::text AS outcome, old_value, value, report_id IS NOT NULL AS has_report, \
                 report_created FROM spreadsheet_values WHERE spreadsheet_id = {} ORDER BY row_number",
            ingested.id.0
        ),
    )
    .await;
    assert_eq!(
        result,
        [
            json!({"outcome": "UPDATED", "old_value": draft["value"], "value": draft["value"].as_f64().unwrap_or(0.0) + 5.0, "has_report": true, "report_created": false}),
            json!({"outcome": "NEW", "old_value": null, "value": 12.0, "has_report": false, "report_created": true}),
        ]
    );
}

#[tokio::test]
async fn a_superagency_uploads_for_its_children_and_supervision_splits_by_subsystem() {
    let db = TestDb::with_demo().await;
    let council = agency(&db, "Public Safety Council").await;
    let sheriff = agency(&db, "Pine County Sheriff").await;
    let csv = "year,month,agency,value\n2022,1, PINE COUNTY SHERIFF'S OFFICE ,33\n";
    let ingested = ingest_file(
        &db,
        council,
        System::LawEnforcement,
        "arrests.csv",
        csv.as_bytes(),
        CONTRIBUTOR_OF_ALL,
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{:#}", ingested.summary);
    let stored = values(&db, sheriff, "LAW_ENFORCEMENT_ARRESTS").await;
    assert!(
        stored
            .iter()
            .any(|v| v["start"] == "2022-01-01" && v["value"] == 33.0)
    );
    assert!(
        values(&db, council, "LAW_ENFORCEMENT_ARRESTS")
            .await
            .is_empty()
    );
    // Its own metrics: no agency column.
    let ingested = ingest_file(
        &db,
        council,
        System::Superagency,
        "funding.csv",
        b"year,value\n2022,900\n",
        CONTRIBUTOR_OF_ALL,
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{:#}", ingested.summary);
    assert_eq!(
        values(&db, council, "SUPERAGENCY_FUNDING")
            .await
            .iter()
            .filter(|v| v["start"] == "2022-01-01")
            .count(),
        1
    );

    // Supervision split by subsystem: the system column routes rows.
    let corrections = agency(&db, "Community Corrections").await;
    let csv = "year,month,system,value\n2022,1,Parole,40\n2022,1,probation,60\n";
    let ingested = ingest_file(
        &db,
        corrections,
        System::Supervision,
        "population.csv",
        csv.as_bytes(),
        CONTRIBUTOR_OF_ALL,
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{:#}", ingested.summary);
    assert!(
        values(&db, corrections, "PAROLE_POPULATION")
            .await
            .iter()
            .any(|v| v["start"] == "2022-01-01" && v["value"] == 40.0)
    );
    assert!(
        values(&db, corrections, "PROBATION_POPULATION")
            .await
            .iter()
            .any(|v| v["start"] == "2022-01-01" && v["value"] == 60.0)
    );
    // An agency of one subsystem uploads with the same sheet names.
    let pretrial = agency(&db, "Cedar County Pretrial").await;
    let ingested = ingest_file(
        &db,
        pretrial,
        System::PretrialSupervision,
        "population.csv",
        b"year,month,value\n2022,1,12\n",
        CONTRIBUTOR_OF_ALL,
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{:#}", ingested.summary);
    assert!(
        values(&db, pretrial, "PRETRIAL_SUPERVISION_POPULATION")
            .await
            .iter()
            .any(|v| v["start"] == "2022-01-01")
    );
}

/// The reports an upload wrote into are shown to those who may read them now: a child agency
/// linked elsewhere since is no longer the superagency's to see.
#[tokio::test]
async fn an_uploads_reports_are_shown_only_to_those_who_may_read_them_now() {
    let db = TestDb::with_demo().await;
    let council = agency(&db, "Public Safety Council").await;
    let csv = "year,month,agency,value\n2022,1,Pine County Sheriff's Office,33\n";
    let ingested = ingest_file(
        &db,
        council,
        System::LawEnforcement,
        "arrests.csv",
        csv.as_bytes(),
        By::Person("council.admin@example.com"),
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{:#}", ingested.summary);
    let app = crate::support::TestApp::spawn(&db).await;
    let token = app.token_for(&db, "council.admin@example.com").await;
    let query = "query($id: ID!) { upload(id: $id) { reportChanges { report { id } } reports { report { id } } } }";
    let shown = async |token: &str| {
        let answer = app
            .graphql_as(
                Some(token),
                query,
                json!({ "id": ingested.id.0.to_string() }),
            )
            .await;
        assert!(answer["errors"].is_null(), "{answer}");
        let upload = &answer["data"]["upload"];
        (
            upload["reportChanges"][0]["report"].clone(),
            upload["reports"][0]["report"].clone(),
        )
    };
    let (changed, result) = shown(&token).await;
    assert!(
        changed["id"].is_string() && result["id"].is_string(),
        "{changed} {result}"
    );
    execute(
        &db,
        "UPDATE agencies SET super_agency_id = NULL WHERE name = 'Pine County Sheriff''s Office'",
    )
    .await;
    let token = app.token_for(&db, "council.admin@example.com").await;
    assert_eq!(shown(&token).await, (Value::Null, Value::Null));
}

/// A queued upload is applied with its uploader's rights as they are when it is applied:
/// someone removed from the agency in between writes nothing.
#[tokio::test]
async fn an_upload_of_someone_removed_since_is_not_applied() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let before = values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS").await;
    let contributor = user(&db, "harbor.contributor@example.com").await;
    let upload = NewUpload {
        agency: harbor,
        system: System::LawEnforcement,
        file_name: "arrests.csv".into(),
        user: Some(contributor),
        source: ValueSource::BulkUpload,
        dry_run: false,
    };
    let mut conn = db.pool.get().await.expect("connection");
    let id = ingest::create(
        &mut conn,
        &upload,
        &b"year,month,value\n2025,12,5\n"[..],
        Queue::Caller,
    )
    .await
    .expect("stored");
    drop(conn);
    execute(
        &db,
        &format!("DELETE FROM memberships WHERE user_id = {}", contributor.0),
    )
    .await;
    ingest::run(
        &db.pool,
        &db.catalogue,
        id,
        &IngestSettings::default(),
        &ingest::Quiet,
    )
    .await
    .expect("ran");
    let summary = ingest::job::summary(&db.pool, id).await.expect("summary");
    let ingested = Ingested { id, summary };
    assert_eq!(ingested.status(), "ERRORED", "{:#}", ingested.summary);
    assert_eq!(ingested.titles(), ["Uploader Not Allowed"]);
    assert_eq!(values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS").await, before);
    let staged = rows(
        &db,
        &format!(
            "SELECT count(*) AS n FROM spreadsheet_values WHERE spreadsheet_id = {}",
            id.0
        ),
    )
    .await;
    assert_eq!(staged[0]["n"], 0.0, "{staged:?}");
}

#[tokio::test]
async fn a_breakdown_without_a_total_gives_the_total_unless_one_is_stored() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let stored = report_with_arrests(&db, harbor, "PUBLISHED").await;
    let csv = format!(
        "year,month,offense_type,value\n2022,1,Person Offenses,3\n2022,1,drug offense,4.5\n{},{},Person Offenses,1\n",
        stored["year"], stored["month"]
    );
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests_by_type.csv",
        csv.as_bytes(),
        CONTRIBUTOR,
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{:#}", ingested.summary);
    let all = values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS").await;
    let january: Vec<&Value> = all.iter().filter(|v| v["start"] == "2022-01-01").collect();
    assert_eq!(january.len(), 3, "{january:#?}");
    assert_eq!(january[0]["dimension"], Value::Null);
    assert_eq!(january[0]["value"], 7.5);
    // The stored total stays.
    let start = format!("{}-{:02}-01", int(&stored["year"]), int(&stored["month"]));
    let total: Vec<&Value> = all
        .iter()
        .filter(|v| v["start"] == start.as_str() && v["dimension"].is_null())
        .collect();
    assert_eq!(total[0]["value"], stored["value"]);
    // An automated upload's breakdown is complete: members it leaves out are cleared.
    let csv = "year,month,offense_type,value\n2022,1,Person Offenses,3\n";
    ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests_by_type.csv",
        csv.as_bytes(),
        By::Automated,
        false,
    )
    .await;
    let january: Vec<Value> = values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS")
        .await
        .into_iter()
        .filter(|v| v["start"] == "2022-01-01" && v["member"] == "DRUG")
        .collect();
    assert_eq!(january[0]["value"], Value::Null);
}

#[tokio::test]
async fn the_reference_quirks_behave_correctly_here() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    // A capitalised sheet name and a capitalised breakdown category are read, not crashed on.
    let file = workbook(&[
        (
            "Arrests",
            &[&["Year", "Month", "Value"], &["2020", "1", "10"]],
        ),
        (
            "Sheet 1",
            &[
                &[
                    "metric",
                    "year",
                    "month",
                    "breakdown_category",
                    "breakdown",
                    "value",
                ],
                &[
                    "arrests",
                    "2020",
                    "2",
                    "Offense Type",
                    "Person Offenses",
                    "4",
                ],
                // Month is read per row's metric, not the first metric of the sheet.
                &["funding", "2020", "", "", "", "500"],
            ],
        ),
    ]);
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "quirks.xlsx",
        &file,
        CONTRIBUTOR,
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{:#}", ingested.summary);
    let arrests = values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS").await;
    assert!(
        arrests
            .iter()
            .any(|v| v["start"] == "2020-01-01" && v["value"] == 10.0)
    );
    assert!(
        arrests
            .iter()
            .any(|v| v["start"] == "2020-02-01" && v["member"] == "PERSON" && v["value"] == 4.0)
    );
    assert!(
        values(&db, harbor, "LAW_ENFORCEMENT_FUNDING")
            .await
            .iter()
            .any(|v| v["start"] == "2020-01-01" && v["value"] == 500.0)
    );
    // In one sheet, each breakdown is checked against the total on its own.
    let csv = "metric,year,month,breakdown_category,breakdown,value\n\
        arrests,2019,5,,,10\narrests,2019,5,offense_type,Person Offenses,4\n\
        arrests,2019,5,offense_type,Drug Offenses,6\narrests,2019,5,biological_sex,Male Biological Sex,10\n";
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "sums.csv",
        csv.as_bytes(),
        CONTRIBUTOR,
        false,
    )
    .await;
    assert!(ingested.messages().is_empty(), "{:#}", ingested.summary);
    // A single-page template holding only totals has empty breakdown columns: it loads.
    let csv = "metric,year,month,breakdown_category,breakdown,value\narrests,2019,4,,,21\n";
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "single.csv",
        csv.as_bytes(),
        CONTRIBUTOR,
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{:#}", ingested.summary);
    // A folder prefix is dropped before the 31-character cut of a CSV's name.
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "LAW_ENFORCEMENT_UPLOADS_2025/calls_for_service.csv",
        b"year,month,value\n2019,1,3\n",
        CONTRIBUTOR,
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{:#}", ingested.summary);
    // Duplicates are not counted into a breakdown's sum (no false warning), and a period
    // refused for duplicates leaves no empty report behind.
    let reports = rows(
        &db,
        &format!(
            "SELECT count(*) AS n FROM reports WHERE agency_id = {}",
            harbor.0
        ),
    )
    .await;
    let csv = "metric,year,month,breakdown_category,breakdown,value\n\
        arrests,2018,1,,,10\narrests,2018,1,offense_type,Person Offenses,10\narrests,2018,1,offense_type,Person Offenses,10\n";
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "dups.csv",
        csv.as_bytes(),
        CONTRIBUTOR,
        false,
    )
    .await;
    assert_eq!(
        ingested.titles(),
        ["Too Many Rows"],
        "{:#}",
        ingested.summary
    );
    let csv = "year,month,value\n2017,1,5\n2017,1,6\n";
    ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        csv.as_bytes(),
        CONTRIBUTOR,
        false,
    )
    .await;
    let after = rows(
        &db,
        &format!(
            "SELECT count(*) AS n FROM reports WHERE agency_id = {}",
            harbor.0
        ),
    )
    .await;
    // Neither January 2018 (the duplicates drop the sheet's rows of that metric and period,
    // its total included) nor January 2017 left a report behind.
    assert_eq!(int(&after[0]["n"]), int(&reports[0]["n"]));
    // A superagency's child with capitals, breakdown without total: the sum becomes the total.
    let council = agency(&db, "Public Safety Council").await;
    let sheriff = agency(&db, "Pine County Sheriff").await;
    let csv = "year,month,offense_type,agency,value\n2018,3,Person Offenses,Pine County Sheriff's Office,6\n";
    let ingested = ingest_file(
        &db,
        council,
        System::LawEnforcement,
        "arrests_by_type.csv",
        csv.as_bytes(),
        CONTRIBUTOR_OF_ALL,
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{:#}", ingested.summary);
    assert!(
        values(&db, sheriff, "LAW_ENFORCEMENT_ARRESTS")
            .await
            .iter()
            .any(|v| v["start"] == "2018-03-01" && v["dimension"].is_null() && v["value"] == 6.0)
    );
    // The starting month applies without a custom frequency (only a starting month is set).
    let mesa = agency(&db, "Mesa State Department").await;
    let set = rows(&db, &format!("SELECT frequency FROM metric_settings WHERE agency_id = {} AND metric_key = 'PRISONS_EXPENSES'", mesa.0)).await;
    assert_eq!(set, [json!({"frequency": null})]);
    ingest_file(
        &db,
        mesa,
        System::Prisons,
        "expenses.csv",
        b"year,value\n2019,77\n",
        CONTRIBUTOR_OF_ALL,
        false,
    )
    .await;
    assert!(
        values(&db, mesa, "PRISONS_EXPENSES")
            .await
            .iter()
            .any(|v| v["start"] == "2018-07-01" && v["value"] == 77.0)
    );
}

/// Waits until the query's first row's `done` is true.
async fn wait_for(db: &TestDb, query: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let found = rows(db, query).await;
        if <[Value]>::first(&found).is_some_and(|row| row["done"] == true) {
            return found[0].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {query}: {found:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Stops for good after `after` batches, like a process that hangs and is then killed.
struct Stall {
    batches: Arc<std::sync::atomic::AtomicUsize>,
    after: usize,
}

impl ingest::Observer for Stall {
    fn batch_stored(&self, _: i64) -> futures_util::future::BoxFuture<'_, ()> {
        let seen = self
            .batches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if seen >= self.after {
            Box::pin(std::future::pending())
        } else {
            Box::pin(async {})
        }
    }
}

fn workers(
    db: &TestDb,
    observer: Arc<dyn ingest::Observer>,
    batch_rows: usize,
) -> justice_counts::jobs::Workers {
    use std::collections::HashMap;
    let mut handlers: HashMap<String, Arc<dyn justice_counts::jobs::Handler>> = HashMap::new();
    handlers.insert(
        ingest::JOB_KIND.into(),
        Arc::new(ingest::job::IngestHandler {
            pool: db.pool.clone(),
            catalogue: db.catalogue.clone(),
            settings: IngestSettings {
                batch_rows,
                ..IngestSettings::default()
            },
            observer,
        }),
    );
    justice_counts::jobs::Workers::start(
        db.pool.clone(),
        handlers,
        justice_counts::jobs::WorkerSettings {
            workers: 1,
            lease: std::time::Duration::from_secs(1),
            poll: std::time::Duration::from_millis(50),
        },
        Arc::default(),
    )
}

#[tokio::test]
async fn an_ingest_interrupted_half_way_resumes_with_nothing_lost_or_doubled() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let members = [
        "Person Offenses",
        "Property Offenses",
        "Drug Offenses",
        "Public Order Offenses",
        "Other Offenses",
    ];
    let mut csv = String::from("year,month,offense_type,value\n");
    let mut expected = 0.0;
    for year in [2019, 2020] {
        for month in 1..=12 {
            for (index, member) in members.iter().enumerate() {
                let value = (year - 2000) * 100 + month * 10 + index as i32;
                expected += f64::from(value);
                csv.push_str(&format!("{year},{month},{member},{value}\n"));
            }
        }
    }
    let upload = NewUpload {
        agency: harbor,
        system: System::LawEnforcement,
        file_name: "arrests_by_type.csv".into(),
        user: Some(user(&db, "harbor.contributor@example.com").await),
        source: ValueSource::BulkUpload,
        dry_run: false,
    };
    let mut conn = db.pool.get().await.expect("connection");
    let id = ingest::create(
        &mut conn,
        &upload,
        csv.as_bytes(),
        Queue::Job { drop_path: None },
    )
    .await
    .expect("stored");
    drop(conn);

    let batches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let first = workers(
        &db,
        Arc::new(Stall {
            batches: batches.clone(),
            after: 4,
        }),
        10,
    );
    let progress = format!(
        "SELECT rows_read >= 40 AS done, rows_read, status::text AS status \
         FROM spreadsheets WHERE id = {}",
        id.0
    );
    let stalled = wait_for(&db, &progress).await;
    assert_eq!(stalled["rows_read"], 40.0);
    assert_eq!(stalled["status"], "INGESTING");
    let written = format!(
        "SELECT count(*) AS n FROM datapoints d JOIN reports r ON r.id = d.report_id \
         WHERE r.agency_id = {} AND r.date_range_start < '2021-01-01' \
             AND r.date_range_start >= '2019-01-01' AND d.metric_key = 'LAW_ENFORCEMENT_ARRESTS'",
        harbor.0
    );
    assert_eq!(
        rows(&db, &written).await[0]["n"],
        0.0,
        "nothing is applied before the end"
    );
    // The process dies; another takes the job up once its lease has run out.
    first.stop();
    let second = workers(&db, Arc::new(ingest::Quiet), 10);
    // The upload is INGESTED when its transaction commits; the job is marked done just after.
    wait_for(
        &db,
        &format!(
            "SELECT s.status = 'INGESTED' AND j.state = 'SUCCEEDED' AS done
             FROM spreadsheets s, jobs j WHERE s.id = {}",
            id.0
        ),
    )
    .await;
    second.stop();
    let sheet = rows(
        &db,
        &format!(
            "SELECT rows_read, rows_saved FROM spreadsheets WHERE id = {}",
            id.0
        ),
    )
    .await;
    assert_eq!(sheet[0], json!({"rows_read": 120.0, "rows_saved": 120.0}));
    let stored = rows(
        &db,
        &format!(
            "SELECT count(*) AS n, sum(d.value) AS total, count(DISTINCT (d.report_id, d.member)) AS cells \
             FROM datapoints d JOIN reports r ON r.id = d.report_id \
             WHERE r.agency_id = {} AND r.date_range_start BETWEEN '2019-01-01' AND '2020-12-01' \
                 AND d.metric_key = 'LAW_ENFORCEMENT_ARRESTS' AND d.dimension_id IS NOT NULL",
            harbor.0
        ),
    )
    .await;
    assert_eq!(
        stored[0],
        json!({"n": 120.0, "total": expected, "cells": 120.0})
    );
    // 120 members and 24 totals from their sums, each created once: the upload's record
    // holds each of them once, and its reports moved one version on.
    let created = rows(
        &db,
        &format!(
            "SELECT count(*) AS n, count(DISTINCT datapoint_id) AS distinct_values \
             FROM spreadsheet_values WHERE spreadsheet_id = {} AND outcome = 'NEW' \
                 AND datapoint_created",
            id.0
        ),
    )
    .await;
    assert_eq!(created[0], json!({"n": 144.0, "distinct_values": 144.0}));
    let versions = rows(
        &db,
        &format!(
            "SELECT count(*) AS n, min(r.version) AS low, max(r.version) AS high \
             FROM reports r JOIN spreadsheet_report_changes c ON c.report_id = r.id \
             WHERE c.spreadsheet_id = {} AND c.report_version = r.version",
            id.0
        ),
    )
    .await;
    assert_eq!(versions[0], json!({"n": 24.0, "low": 2.0, "high": 2.0}));
    let job = rows(&db, "SELECT state::text AS state, attempts FROM jobs").await;
    assert_eq!(job, [json!({"state": "SUCCEEDED", "attempts": 2.0})]);
}

#[tokio::test]
async fn a_job_that_keeps_failing_ends_as_an_unexpected_error() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let upload = NewUpload {
        agency: harbor,
        system: System::LawEnforcement,
        file_name: "arrests.csv".into(),
        user: None,
        source: ValueSource::AutomatedBulkUpload,
        dry_run: false,
    };
    let mut conn = db.pool.get().await.expect("connection");
    let id = ingest::create(
        &mut conn,
        &upload,
        &b"year,month,value\n2019,1,5\n"[..],
        Queue::Job { drop_path: None },
    )
    .await
    .expect("stored");
    drop(conn);
    execute(&db, "UPDATE jobs SET max_attempts = 2").await;
    // Staging a value fails, whatever the attempt.
    execute(
        &db,
        "CREATE FUNCTION refuse_staging() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'staging is broken'; END $$",
    )
    .await;
    execute(
        &db,
        "CREATE TRIGGER refuse_staging BEFORE INSERT ON spreadsheet_values \
         FOR EACH ROW EXECUTE FUNCTION refuse_staging()",
    )
    .await;
    let running = workers(&db, Arc::new(ingest::Quiet), 10);
    wait_for(
        &db,
        &format!(
            "SELECT status = 'ERRORED' AS done FROM spreadsheets WHERE id = {}",
            id.0
        ),
    )
    .await;
    running.stop();
    let messages = rows(&db, &format!("SELECT title, severity::text AS severity, message AS description FROM spreadsheet_messages WHERE spreadsheet_id = {}", id.0)).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["title"], "Unexpected Error");
    assert_eq!(messages[0]["severity"], "ERROR");
    // What went wrong inside is for the staff (the job's record), not for the uploader.
    let description = messages[0]["description"].as_str().unwrap_or_default();
    assert!(
        description.contains(&format!("(upload {})", id.0)) && !description.contains("worker"),
        "{description}"
    );
    let job = rows(
        &db,
        "SELECT state::text AS state, attempts, last_error FROM jobs",
    )
    .await;
    assert_eq!(job[0]["state"], "FAILED");
    assert_eq!(job[0]["attempts"], 2.0);
    assert!(
        job[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("staging is broken"),
        "{job:?}"
    );
}

#[tokio::test]
async fn giving_up_on_an_upload_leaves_a_finished_or_running_one_alone() {
    use diesel_async::{AnsiTransactionManager, TransactionManager};
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        b"year,month,value\n2022,1,40\n",
        By::Automated,
        false,
    )
    .await;
    let id = ingested.id;
    let status = || async {
        rows(
            &db,
            &format!(
                "SELECT status::text AS status FROM spreadsheets WHERE id = {}",
                id.0
            ),
        )
        .await[0]["status"]
            .clone()
    };
    assert_eq!(status().await, "INGESTED");
    let staged = || async {
        rows(
            &db,
            &format!(
                "SELECT count(*) AS n FROM spreadsheet_values WHERE spreadsheet_id = {}",
                id.0
            ),
        )
        .await[0]["n"]
            .clone()
    };
    let staged_before = staged().await;
    // A job giving up after the upload was applied (say, filing it failed) changes nothing.
    let mut conn = db.pool.get().await.expect("connection");
    ingest::fail(
        &mut conn,
        id,
        "could not file it",
        &IngestSettings::default(),
    )
    .await
    .expect("no-op");
    drop(conn);
    assert_eq!(status().await, "INGESTED");
    assert_eq!(staged().await, staged_before);
    // Nor while a runner holds the upload: it is the runner's to finish.
    execute(
        &db,
        &format!(
            "UPDATE spreadsheets SET status = 'INGESTING' WHERE id = {}",
            id.0
        ),
    )
    .await;
    let mut holder = db.connect().await;
    AnsiTransactionManager::begin_transaction(&mut holder)
        .await
        .expect("begin");
    diesel::sql_query(format!(
        "SELECT pg_advisory_xact_lock({}, {})",
        0x1_9e57, id.0
    ))
    .execute(&mut holder)
    .await
    .expect("lock");
    let mut conn = db.pool.get().await.expect("connection");
    assert!(
        ingest::fail(&mut conn, id, "lease lost", &IngestSettings::default())
            .await
            .is_err()
    );
    drop(conn);
    assert_eq!(status().await, "INGESTING");
    AnsiTransactionManager::rollback_transaction(&mut holder)
        .await
        .expect("rollback");
    let mut conn = db.pool.get().await.expect("connection");
    ingest::fail(&mut conn, id, "gave up", &IngestSettings::default())
        .await
        .expect("failed");
    assert_eq!(status().await, "ERRORED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_dropped_in_the_ingest_directory_are_ingested_and_filed_with_their_result() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let dir = tempfile::tempdir().expect("dir");
    let background = justice_counts::app::Background::start(
        &db.pool,
        &db.catalogue,
        &justice_counts::events::EventBus::new(),
        &justice_counts::config::BackgroundArgs {
            job_poll: std::time::Duration::from_millis(50),
            ingest_dir: Some(dir.path().to_owned()),
            ingest_dir_poll: std::time::Duration::from_millis(50),
            ..Default::default()
        },
    );
    let folder = dir
        .path()
        .join(harbor.0.to_string())
        .join("LAW_ENFORCEMENT");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join("arrests.csv"), "year,month,value\n2016,1,9\n").expect("file");
    let unknown = dir.path().join("harbor").join("LAW_ENFORCEMENT");
    std::fs::create_dir_all(&unknown).expect("folder");
    std::fs::write(unknown.join("arrests.csv"), "year,month,value\n2016,1,9\n").expect("file");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let done = folder.join("done");
    let result = loop {
        let found = std::fs::read_dir(&done)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .find(|p| p.to_string_lossy().ends_with(".result.json"))
            })
            .ok()
            .flatten();
        if let Some(found) = found {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped file was not ingested"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let summary: Value =
        serde_json::from_slice(&std::fs::read(&result).expect("result")).expect("JSON");
    assert_eq!(summary["status"], "INGESTED", "{summary:#}");
    let moved = result
        .to_string_lossy()
        .trim_end_matches(".result.json")
        .to_owned();
    assert!(std::path::Path::new(&moved).exists(), "{moved}");
    assert!(!folder.join("arrests.csv").exists());
    let stored = values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS").await;
    let stored: Vec<&Value> = stored
        .iter()
        .filter(|v| v["start"] == "2016-01-01")
        .collect();
    assert_eq!(stored[0]["source"], "AUTOMATED_BULK_UPLOAD");
    // A folder that names no agency: refused, with the reason beside the file.
    let refused = unknown.join("failed").join("arrests.csv.result.json");
    while !refused.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the misplaced file was not refused"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    background.stop();
}

#[tokio::test]
async fn the_ingest_command_runs_an_automated_upload_and_fails_on_errors() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("arrests.csv");
    std::fs::write(&good, "year,month,value\n2015,1,3\n").expect("file");
    let run = |file: &std::path::Path, dry_run: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_justice-counts"));
        command
            .env("DATABASE_URL", &db.url)
            .env("LOG_LEVEL", "warn")
            .args([
                "ingest",
                &file.to_string_lossy(),
                "--agency",
                &harbor.0.to_string(),
                "--system",
                "law_enforcement",
            ]);
        if dry_run {
            command.arg("--dry-run");
        }
        command.output().expect("ran")
    };
    let output = run(&good, true);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS")
            .await
            .iter()
            .all(|v| v["start"] != "2015-01-01")
    );
    let output = run(&good, false);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("JSON result");
    assert_eq!(summary["status"], "INGESTED");
    assert_eq!(summary["rowsSaved"], 1);
    let stored = values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS").await;
    assert!(
        stored
            .iter()
            .any(|v| v["start"] == "2015-01-01" && v["source"] == "AUTOMATED_BULK_UPLOAD")
    );
    let bad = dir.path().join("arrests_by_type.csv");
    std::fs::write(
        &bad,
        "year,month,offense_type,value\n2015,1,Nothing Like It,3\n",
    )
    .expect("file");
    let output = run(&bad, false);
    assert!(!output.status.success());
    let summary: Value = serde_json::from_slice(&output.stdout).expect("JSON result");
    assert_eq!(
        summary["messages"][0]["title"],
        "Invalid 'offense_type' Column Value"
    );
}

#[tokio::test]
async fn an_upload_waits_for_an_editor_saving_its_period_and_keeps_what_was_saved() {
    use diesel_async::SimpleAsyncConnection;

    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    execute(
        &db,
        &format!(
            "INSERT INTO reports (agency_id, frequency, date_range_start, date_range_end, status) \
             VALUES ({}, 'MONTHLY', '2021-03-01', '2021-04-01', 'DRAFT')",
            harbor.0
        ),
    )
    .await;
    let report = rows(
        &db,
        &format!(
            "SELECT id FROM reports WHERE agency_id = {} AND frequency = 'MONTHLY' \
                 AND date_range_start = '2021-03-01'",
            harbor.0
        ),
    )
    .await;
    let report = int(&report[0]["id"]);
    // An editor's save, under way: the report locked, a total written, not yet committed.
    let mut editor = db.connect().await;
    editor
        .batch_execute(&format!(
            "BEGIN; SELECT id FROM reports WHERE id = {report} FOR UPDATE; \
             INSERT INTO datapoints (report_id, metric_key, value, source) \
             VALUES ({report}, 'LAW_ENFORCEMENT_ARRESTS', 42, 'MANUAL_ENTRY')"
        ))
        .await
        .unwrap();
    // The upload gives a breakdown without a total for the same month.
    let csv = "year,month,offense_type,value\n2021,3,Person Offenses,3\n2021,3,drug offense,4\n";
    let (ingested, ()) = tokio::join!(
        ingest_file(
            &db,
            harbor,
            System::LawEnforcement,
            "arrests_by_type.csv",
            csv.as_bytes(),
            CONTRIBUTOR,
            false,
        ),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            editor.batch_execute("COMMIT").await.unwrap();
        }
    );
    assert_eq!(ingested.status(), "INGESTED", "{:#}", ingested.summary);
    // The upload read the stored values only once the save was in: the saved total is kept,
    // not replaced by the breakdown's sum.
    let march: Vec<Value> = values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS")
        .await
        .into_iter()
        .filter(|v| v["start"] == "2021-03-01")
        .collect();
    assert_eq!(march.len(), 3, "{march:#?}");
    assert_eq!(march[0]["dimension"], Value::Null);
    assert_eq!(march[0]["value"], 42.0, "{march:#?}");
}

#[tokio::test]
async fn removing_an_upload_removes_its_staged_values() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let kept = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        b"year,month,value\n2022,1,40\n",
        CONTRIBUTOR,
        false,
    )
    .await;
    let removed = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        b"year,month,value\n2022,1,41\n2022,2,42\n",
        CONTRIBUTOR,
        false,
    )
    .await;
    let staged = "SELECT spreadsheet_id AS id, count(*) AS n FROM spreadsheet_values \
                  GROUP BY spreadsheet_id ORDER BY spreadsheet_id";
    assert_eq!(
        rows(&db, staged).await,
        [
            json!({"id": kept.id.0 as f64, "n": 1.0}),
            json!({"id": removed.id.0 as f64, "n": 2.0})
        ]
    );
    execute(
        &db,
        &format!("DELETE FROM spreadsheets WHERE id = {}", removed.id.0),
    )
    .await;
    assert_eq!(
        rows(&db, staged).await,
        [json!({"id": kept.id.0 as f64, "n": 1.0})]
    );
}

#[tokio::test]
async fn an_upload_keeps_a_bounded_number_of_messages_about_rows() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let mut csv = String::from("year,month,value\n");
    for row in 0..1_200 {
        csv.push_str(&format!("{},{},lots\n", 2000 + row / 12, row % 12 + 1));
    }
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        csv.as_bytes(),
        By::Automated,
        false,
    )
    .await;
    assert_eq!(ingested.status(), "ERRORED");
    let counts = rows(
        &db,
        &format!(
            "SELECT count(*) FILTER (WHERE row_number IS NOT NULL) AS rows, \
             count(*) FILTER (WHERE title = 'Too Many Problems') AS more \
             FROM spreadsheet_messages WHERE spreadsheet_id = {}",
            ingested.id.0
        ),
    )
    .await;
    assert_eq!(counts[0]["rows"], 1000.0, "{counts:?}");
    assert_eq!(counts[0]["more"], 1.0, "{counts:?}");
}

#[tokio::test]
async fn a_sheet_too_wide_is_refused_whole_and_odd_cells_are_quoted_as_stored() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let before = values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS").await;
    // Far wider than any layout: one message, not one per column.
    let mut wide = String::from("year,month,value");
    for column in 0..100_000 {
        wide.push_str(&format!(",extra{column}"));
    }
    wide.push_str("\n2024,1,5\n");
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        wide.as_bytes(),
        By::Automated,
        false,
    )
    .await;
    assert_eq!(
        ingested.titles(),
        ["Too Many Columns"],
        "{:?}",
        ingested.messages()
    );
    assert_eq!(values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS").await, before);
    // Blank columns at the end (a spreadsheet program's trailing commas) are no columns.
    let commas = ",".repeat(100);
    let trailing = format!("year,month,value{commas}\n2024,4,6{commas}\n");
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        trailing.as_bytes(),
        By::Automated,
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{:?}", ingested.messages());

    // A NUL character, which PostgreSQL cannot store, and a cell of 5,000 characters: each
    // row is refused with its message, and the rest of the file is saved.
    let long = "9".repeat(5_000);
    let csv = format!("year,month,value\n20\u{0}24,1,5\n2024,2,{long}\n2024,3,7\n");
    let ingested = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        csv.as_bytes(),
        By::Automated,
        false,
    )
    .await;
    let quoted: Vec<&str> = ingested
        .messages()
        .iter()
        .filter_map(|message| message["description"].as_str())
        .collect();
    assert!(
        quoted.iter().any(|text| text.contains("\"20\u{FFFD}24\"")),
        "{quoted:?}"
    );
    let cut = format!("\"{}…\"", "9".repeat(1_000));
    assert!(quoted.iter().any(|text| text.contains(&cut)), "{quoted:?}");
    let saved: Vec<Value> = values(&db, harbor, "LAW_ENFORCEMENT_ARRESTS")
        .await
        .into_iter()
        .filter(|value| {
            value["start"]
                .as_str()
                .is_some_and(|start| start.starts_with("2024-0"))
        })
        .filter(|value| value["dimension"].is_null())
        .collect();
    let months: Vec<(&str, f64)> = saved
        .iter()
        .map(|value| {
            (
                value["start"].as_str().unwrap(),
                value["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(months.contains(&("2024-03-01", 7.0)), "{months:?}");
    let february = |values: &[Value]| {
        values
            .iter()
            .find(|value| value["start"] == "2024-02-01" && value["dimension"].is_null())
            .map(|value| value["value"].clone())
    };
    assert_eq!(
        february(&saved),
        february(&before),
        "the refused row changed nothing"
    );
}

#[tokio::test]
async fn a_dry_runs_staged_values_and_old_jobs_are_deleted_after_their_retention() {
    use justice_counts::ingest::retention::{self, Retention};
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let csv = b"year,month,value\n2022,1,40\n2022,2,41\n";
    let dry = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        csv,
        By::Automated,
        true,
    )
    .await;
    let real = ingest_file(
        &db,
        harbor,
        System::LawEnforcement,
        "arrests.csv",
        csv,
        By::Automated,
        false,
    )
    .await;
    let week = std::time::Duration::from_secs(7 * 86_400);
    let retention = Retention {
        dry_runs: week,
        jobs: week * 4,
    };
    let staged = |id| {
        let pool = db.pool.clone();
        async move {
            let mut conn = pool.get().await.expect("connection");
            retention::staged_values(&mut conn, id)
                .await
                .expect("count")
        }
    };
    let (dry_before, real_before) = (staged(dry.id).await, staged(real.id).await);
    assert!(dry_before > 0 && real_before > 0);
    // Recent: nothing goes.
    let mut conn = db.pool.get().await.expect("connection");
    retention::purge(&mut conn, retention)
        .await
        .expect("purged");
    assert_eq!(staged(dry.id).await, dry_before);
    // Finished long ago: the dry run's staged values and the old jobs go, the rest stays.
    execute(
        &db,
        "UPDATE spreadsheets SET finished_at = now() - interval '8 days'",
    )
    .await;
    execute(
        &db,
        "INSERT INTO jobs (kind, payload, state, finished_at) \
         VALUES ('old', '{}', 'SUCCEEDED', now() - interval '31 days'), \
                ('recent', '{}', 'SUCCEEDED', now() - interval '1 day')",
    )
    .await;
    let purged = retention::purge(&mut conn, retention)
        .await
        .expect("purged");
    assert_eq!(purged.staged_values, usize::try_from(dry_before).unwrap());
    assert_eq!(purged.jobs, 1);
    assert_eq!(staged(dry.id).await, 0);
    assert_eq!(staged(real.id).await, real_before);
    let kinds = rows(&db, "SELECT kind FROM jobs WHERE kind IN ('old', 'recent')").await;
    assert_eq!(kinds, [json!({ "kind": "recent" })]);
}

#[tokio::test]
async fn a_file_left_in_processing_by_a_stopped_server_is_filed_as_refused() {
    let db = TestDb::with_demo().await;
    let harbor = agency(&db, "Harbor City Police").await;
    let dir = tempfile::tempdir().expect("dir");
    let folder = dir
        .path()
        .join(harbor.0.to_string())
        .join("LAW_ENFORCEMENT");
    let processing = folder.join("processing");
    std::fs::create_dir_all(&processing).expect("folder");
    // One a server took and stopped with; one whose upload was recorded.
    std::fs::write(processing.join("left.csv"), "year,month,value\n2016,1,9\n").expect("file");
    std::fs::write(
        processing.join("queued.csv"),
        "year,month,value\n2016,1,9\n",
    )
    .expect("file");
    execute(
        &db,
        &format!(
            "INSERT INTO jobs (kind, payload) VALUES ('ingest', jsonb_build_object( \
             'spreadsheet_id', 0, 'drop_path', '{}'))",
            processing.join("queued.csv").display()
        ),
    )
    .await;
    let watcher = ingest::job::DropDirectory {
        dir: dir.path().to_owned(),
        poll: std::time::Duration::from_secs(60),
        pool: db.pool.clone(),
    };
    // Moved there just now: perhaps another server is recording it.
    assert_eq!(
        watcher
            .recover(std::time::Duration::from_secs(600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(watcher.recover(std::time::Duration::ZERO).await.unwrap(), 1);
    assert!(folder.join("failed").join("left.csv").exists());
    let result = std::fs::read_to_string(folder.join("failed").join("left.csv.result.json"))
        .expect("result");
    assert!(result.contains("drop it again"), "{result}");
    assert!(
        processing.join("queued.csv").exists(),
        "a recorded upload's file stays"
    );
}

/// A job handler under which another worker takes the job over (as after a lost lease), then
/// succeeds or fails; it notes whether it was asked to give up.
struct TakenOver {
    pool: justice_counts::db::Pool,
    fail: bool,
    gave_up: Arc<std::sync::atomic::AtomicBool>,
}

impl justice_counts::jobs::Handler for TakenOver {
    fn run<'a>(
        &'a self,
        job: &'a justice_counts::jobs::Job,
    ) -> futures_util::future::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            use diesel_async::RunQueryDsl;
            let state = if self.fail { "'FAILED'" } else { "state" };
            let mut conn = self.pool.get().await?;
            diesel::sql_query(format!(
                "UPDATE jobs SET worker = 'another', attempts = attempts + 1, state = {state} \
                 WHERE id = {}",
                job.id
            ))
            .execute(&mut *conn)
            .await?;
            if self.fail {
                anyhow::bail!("it broke")
            }
            Ok(())
        })
    }

    fn give_up<'a>(
        &'a self,
        _job: &'a justice_counts::jobs::Job,
        _error: &'a str,
    ) -> futures_util::future::BoxFuture<'a, anyhow::Result<()>> {
        self.gave_up
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

/// A job that does nothing: queued after another, its end says the one worker is done with
/// the one before.
struct Marker;

impl justice_counts::jobs::Handler for Marker {
    fn run<'a>(
        &'a self,
        _job: &'a justice_counts::jobs::Job,
    ) -> futures_util::future::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn give_up<'a>(
        &'a self,
        _job: &'a justice_counts::jobs::Job,
        _error: &'a str,
    ) -> futures_util::future::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn a_job_taken_over_by_another_worker_is_that_workers_to_record() {
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;
    for fail in [false, true] {
        let db = TestDb::with_demo().await;
        let gave_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut handlers: HashMap<String, Arc<dyn justice_counts::jobs::Handler>> = HashMap::new();
        handlers.insert(
            "taken-over".into(),
            Arc::new(TakenOver {
                pool: db.pool.clone(),
                fail,
                gave_up: gave_up.clone(),
            }),
        );
        handlers.insert("marker".into(), Arc::new(Marker));
        let mut conn = db.pool.get().await.expect("connection");
        justice_counts::jobs::enqueue(&mut conn, "taken-over", &json!({}))
            .await
            .expect("queued");
        justice_counts::jobs::enqueue(&mut conn, "marker", &json!({}))
            .await
            .expect("queued");
        drop(conn);
        let workers = justice_counts::jobs::Workers::start(
            db.pool.clone(),
            handlers,
            justice_counts::jobs::WorkerSettings {
                workers: 1,
                lease: std::time::Duration::from_secs(30),
                poll: std::time::Duration::from_millis(50),
            },
            Arc::default(),
        );
        // The run ends: the job is the other worker's, as it left it.
        let job = wait_for(
            &db,
            "SELECT worker = 'another' AS done, state::text AS state FROM jobs \
             WHERE kind = 'taken-over'",
        )
        .await;
        // The one worker takes the marker once it is done with the job before it.
        wait_for(
            &db,
            "SELECT state = 'SUCCEEDED' AS done FROM jobs WHERE kind = 'marker'",
        )
        .await;
        workers.stop();
        let now = rows(
            &db,
            "SELECT state::text AS state FROM jobs WHERE kind = 'taken-over'",
        )
        .await;
        if fail {
            // The other worker failed it for good while this one held the work: this one,
            // failing too, gives up on it.
            assert_eq!(now[0]["state"], "FAILED");
            assert!(
                std::sync::atomic::AtomicBool::load(&gave_up, Ordering::SeqCst),
                "given up"
            );
        } else {
            // Its success is not recorded over the other worker's claim.
            assert_eq!(now[0]["state"], "RUNNING", "{job}");
            assert!(!std::sync::atomic::AtomicBool::load(
                &gave_up,
                Ordering::SeqCst
            ));
        }
    }
}
