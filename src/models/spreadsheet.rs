//! Uploaded spreadsheets and what their ingest did.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::db::schema::{spreadsheet_messages, spreadsheet_report_changes, spreadsheets};
use crate::models::enums::{MessageSeverity, ReportChangeKind, SpreadsheetStatus, System};
use crate::models::ids::{AgencyId, ReportId, SpreadsheetId, UserId};

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
