//! Uploaded spreadsheets and what their ingest did.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::{spreadsheet_messages, spreadsheet_report_changes, spreadsheets};
use crate::models::enums::{
    MessageSeverity, ReportChangeKind, SpreadsheetStatus, System, ValueSource,
};
use crate::models::ids::{AgencyId, ReportId, SpreadsheetId, UserId};
use crate::models::page::{Page, Slice};

/// A new uploaded spreadsheet.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = spreadsheets)]
pub struct NewSpreadsheet {
    /// The agency.
    pub agency_id: AgencyId,
    /// The system the file reports for.
    pub system: System,
    /// The file's name (`.csv` or `.xlsx`).
    pub file_name: String,
    /// Who uploaded it.
    pub uploaded_by: Option<UserId>,
    /// When.
    pub uploaded_at: DateTime<Utc>,
    /// Where its ingest stands.
    pub status: SpreadsheetStatus,
    /// When it was ingested.
    pub ingested_at: Option<DateTime<Utc>>,
    /// How many datapoints the ingest created.
    pub new_datapoint_count: i32,
}

/// An error or warning raised while ingesting a spreadsheet.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = spreadsheet_messages)]
pub struct NewSpreadsheetMessage {
    /// The spreadsheet.
    pub spreadsheet_id: SpreadsheetId,
    /// Error or warning.
    pub severity: MessageSeverity,
    /// The sheet it concerns.
    pub sheet: Option<String>,
    /// The row it concerns (1-based).
    pub row_number: Option<i32>,
    /// The metric it concerns.
    pub metric_key: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// What an ingest did to one report.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = spreadsheet_report_changes)]
pub struct NewSpreadsheetReportChange {
    /// The spreadsheet.
    pub spreadsheet_id: SpreadsheetId,
    /// The report.
    pub report_id: ReportId,
    /// New, updated or unchanged.
    pub change: ReportChangeKind,
}

/// An uploaded spreadsheet.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = spreadsheets, check_for_backend(diesel::pg::Pg))]
pub struct Spreadsheet {
    /// Its id.
    pub id: SpreadsheetId,
    /// The agency.
    pub agency_id: AgencyId,
    /// The system the file reports for.
    pub system: System,
    /// The file's name.
    pub file_name: String,
    /// Who uploaded it.
    pub uploaded_by: Option<UserId>,
    /// When.
    pub uploaded_at: DateTime<Utc>,
    /// Where its ingest stands.
    pub status: SpreadsheetStatus,
    /// When it was ingested.
    pub ingested_at: Option<DateTime<Utc>>,
    /// How many datapoints the ingest created.
    pub new_datapoint_count: i32,
    /// Whether the upload only compares, writing nothing.
    pub dry_run: bool,
    /// A person's upload or an automated one.
    pub source: ValueSource,
    /// The file's size in bytes.
    pub file_size: i64,
    /// Rows read so far.
    pub rows_read: i64,
    /// Rows whose values were saved (once applied).
    pub rows_saved: i64,
    /// When a cancel was asked for.
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// When the ingest ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A position in the order of an agency's uploads: newest first, then by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpreadsheetKey {
    /// When the file was uploaded.
    pub uploaded_at: DateTime<Utc>,
    /// Its id.
    pub id: SpreadsheetId,
}

impl Spreadsheet {
    /// Its position in list order.
    pub fn key(&self) -> SpreadsheetKey {
        SpreadsheetKey {
            uploaded_at: self.uploaded_at,
            id: self.id,
        }
    }

    /// One page of an agency's uploads, newest first.
    pub async fn page(
        conn: &mut AsyncPgConnection,
        agency: AgencyId,
        slice: Slice<SpreadsheetKey>,
    ) -> QueryResult<Page<Self>> {
        let mut query = spreadsheets::table
            .filter(spreadsheets::agency_id.eq(agency))
            .into_boxed();
        if let Some(after) = slice.after {
            query = query.filter(
                spreadsheets::uploaded_at
                    .lt(after.uploaded_at)
                    .or(spreadsheets::uploaded_at
                        .eq(after.uploaded_at)
                        .and(spreadsheets::id.lt(after.id))),
            );
        }
        if let Some(before) = slice.before {
            query = query.filter(
                spreadsheets::uploaded_at
                    .gt(before.uploaded_at)
                    .or(spreadsheets::uploaded_at
                        .eq(before.uploaded_at)
                        .and(spreadsheets::id.gt(before.id))),
            );
        }
        query = if slice.backwards {
            query.order((spreadsheets::uploaded_at.asc(), spreadsheets::id.asc()))
        } else {
            query.order((spreadsheets::uploaded_at.desc(), spreadsheets::id.desc()))
        };
        let rows: Vec<Self> = query
            .limit(slice.limit + 1)
            .select(Self::as_select())
            .load(conn)
            .await?;
        Ok(Page::from_overfetched(rows, &slice))
    }

    /// How many files an agency has uploaded.
    pub async fn count(conn: &mut AsyncPgConnection, agency: AgencyId) -> QueryResult<i64> {
        spreadsheets::table
            .filter(spreadsheets::agency_id.eq(agency))
            .count()
            .get_result(conn)
            .await
    }
}

/// An error or warning of an ingest.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = spreadsheet_messages, check_for_backend(diesel::pg::Pg))]
pub struct SpreadsheetMessage {
    /// The spreadsheet.
    pub spreadsheet_id: SpreadsheetId,
    /// Error or warning.
    pub severity: MessageSeverity,
    /// The sheet it concerns.
    pub sheet: Option<String>,
    /// The row it concerns.
    pub row_number: Option<i32>,
    /// The metric it concerns.
    pub metric_key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl SpreadsheetMessage {
    /// The messages of these spreadsheets, in the order raised.
    pub async fn of(conn: &mut AsyncPgConnection, ids: &[SpreadsheetId]) -> QueryResult<Vec<Self>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        spreadsheet_messages::table
            .filter(spreadsheet_messages::spreadsheet_id.eq_any(ids))
            .order(spreadsheet_messages::id)
            .select(Self::as_select())
            .load(conn)
            .await
    }
}

/// What an ingest did to one report, with the report's period.
#[derive(Debug, Clone, Queryable)]
pub struct ReportChange {
    /// The spreadsheet.
    pub spreadsheet_id: SpreadsheetId,
    /// The report.
    pub report_id: ReportId,
    /// New, updated or unchanged.
    pub change: ReportChangeKind,
}

impl ReportChange {
    /// What these spreadsheets did to reports.
    pub async fn of(conn: &mut AsyncPgConnection, ids: &[SpreadsheetId]) -> QueryResult<Vec<Self>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        spreadsheet_report_changes::table
            .filter(spreadsheet_report_changes::spreadsheet_id.eq_any(ids))
            .order(spreadsheet_report_changes::report_id)
            .select((
                spreadsheet_report_changes::spreadsheet_id,
                spreadsheet_report_changes::report_id,
                spreadsheet_report_changes::change,
            ))
            .load(conn)
            .await
    }
}
