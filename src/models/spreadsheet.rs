//! Uploaded spreadsheets and what their ingest did.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Date, Double, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::{spreadsheet_messages, spreadsheet_report_changes, spreadsheets};
use crate::models::enums::{
    MessageSeverity, ReportChangeKind, ReportFrequency, SpreadsheetStatus, System, ValueOutcome,
    ValueSource,
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
    /// The kind of problem.
    pub title: String,
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
    /// The kind of problem.
    pub title: String,
    /// The offending value.
    pub value: Option<String>,
    /// The values that would have been accepted.
    pub options: Vec<String>,
}

impl SpreadsheetMessage {
    /// The messages of these spreadsheets, in the order raised.
    pub async fn of(
        conn: &mut &AsyncPgConnection,
        ids: &[SpreadsheetId],
    ) -> QueryResult<Vec<Self>> {
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
    pub async fn of(
        conn: &mut &AsyncPgConnection,
        ids: &[SpreadsheetId],
    ) -> QueryResult<Vec<Self>> {
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

/// One value an upload read, and what applying it did (or, in a dry run, would do).
#[derive(Debug, Clone, QueryableByName)]
pub struct UploadValue {
    /// Its position in the upload's values.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// The sheet it came from.
    #[diesel(sql_type = Text)]
    pub sheet: String,
    /// Its row (none for a total made from a breakdown's sum, or a cleared member).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub row_number: Option<i64>,
    /// The agency it is for.
    #[diesel(sql_type = Integer)]
    pub agency_id: AgencyId,
    /// The metric.
    #[diesel(sql_type = Text)]
    pub metric_key: String,
    /// The breakdown.
    #[diesel(sql_type = Nullable<Text>)]
    pub dimension_id: Option<String>,
    /// The breakdown member.
    #[diesel(sql_type = Nullable<Text>)]
    pub member: Option<String>,
    /// The report's frequency.
    #[diesel(sql_type = crate::db::schema::sql_types::ReportFrequency)]
    pub frequency: ReportFrequency,
    /// The report period's first day.
    #[diesel(sql_type = Date)]
    pub date_range_start: NaiveDate,
    /// The value (none: a member cleared by an automated upload).
    #[diesel(sql_type = Nullable<Double>)]
    pub value: Option<f64>,
    /// The value stored before.
    #[diesel(sql_type = Nullable<Double>)]
    pub old_value: Option<f64>,
    /// Whether the upload computed it (a breakdown's sum as total, a cleared member).
    #[diesel(sql_type = Bool)]
    pub derived: bool,
    /// What applying it did.
    #[diesel(sql_type = Nullable<crate::db::schema::sql_types::ValueOutcome>)]
    pub outcome: Option<ValueOutcome>,
    /// The report (none in a dry run for a report that does not exist yet).
    #[diesel(sql_type = Nullable<Integer>)]
    pub report_id: Option<ReportId>,
}

impl UploadValue {
    /// Up to `limit` + 1 values of an upload after position `after`, in reading order;
    /// only those that changed something when `changed_only`.
    pub async fn page(
        conn: &mut AsyncPgConnection,
        spreadsheet: SpreadsheetId,
        after: Option<i64>,
        limit: i64,
        changed_only: bool,
    ) -> QueryResult<Vec<Self>> {
        diesel::sql_query(
            "SELECT id, sheet, row_number, agency_id, metric_key, dimension_id, member, \
                 frequency, date_range_start, value, old_value, derived, outcome, report_id \
             FROM spreadsheet_values \
             WHERE spreadsheet_id = $1 AND id > $2 \
                 AND (NOT $3 OR outcome IN ('NEW', 'UPDATED')) \
             ORDER BY id LIMIT $4",
        )
        .bind::<Integer, _>(spreadsheet.0)
        .bind::<BigInt, _>(after.unwrap_or(0))
        .bind::<Bool, _>(changed_only)
        .bind::<BigInt, _>(limit + 1)
        .load(conn)
        .await
    }

    /// How many values an upload read (only those that changed something when
    /// `changed_only`).
    pub async fn count(
        conn: &mut AsyncPgConnection,
        spreadsheet: SpreadsheetId,
        changed_only: bool,
    ) -> QueryResult<i64> {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            count: i64,
        }
        let count: Count = diesel::sql_query(
            "SELECT count(*) AS count FROM spreadsheet_values \
             WHERE spreadsheet_id = $1 AND (NOT $2 OR outcome IN ('NEW', 'UPDATED'))",
        )
        .bind::<Integer, _>(spreadsheet.0)
        .bind::<Bool, _>(changed_only)
        .get_result(conn)
        .await?;
        Ok(count.count)
    }
}

/// What an upload did (or, in a dry run, would do) to one report period.
#[derive(Debug, Clone, QueryableByName)]
pub struct UploadReport {
    /// The agency.
    #[diesel(sql_type = Integer)]
    pub agency_id: AgencyId,
    /// The frequency.
    #[diesel(sql_type = crate::db::schema::sql_types::ReportFrequency)]
    pub frequency: ReportFrequency,
    /// The period's first day.
    #[diesel(sql_type = Date)]
    pub date_range_start: NaiveDate,
    /// The report (none in a dry run for a report to be created).
    #[diesel(sql_type = Nullable<Integer>)]
    pub report_id: Option<ReportId>,
    /// New, updated or unchanged.
    #[diesel(sql_type = crate::db::schema::sql_types::ReportChangeKind)]
    pub change: ReportChangeKind,
}

impl UploadReport {
    /// The report periods an upload touched, in period order.
    pub async fn of(
        conn: &mut AsyncPgConnection,
        spreadsheet: SpreadsheetId,
    ) -> QueryResult<Vec<Self>> {
        diesel::sql_query(
            "SELECT agency_id, frequency, date_range_start, max(report_id) AS report_id, \
                 CASE WHEN bool_or(report_created) THEN 'NEW' \
                      WHEN bool_or(outcome IN ('NEW', 'UPDATED')) THEN 'UPDATED' \
                      ELSE 'UNCHANGED' END::report_change_kind AS change \
             FROM spreadsheet_values \
             WHERE spreadsheet_id = $1 AND outcome IS NOT NULL AND outcome <> 'DROPPED' \
             GROUP BY agency_id, frequency, date_range_start \
             ORDER BY agency_id, date_range_start, frequency",
        )
        .bind::<Integer, _>(spreadsheet.0)
        .load(conn)
        .await
    }
}

/// An upload by id.
pub async fn find(
    conn: &mut AsyncPgConnection,
    id: SpreadsheetId,
) -> QueryResult<Option<Spreadsheet>> {
    spreadsheets::table
        .find(id)
        .select(Spreadsheet::as_select())
        .first(conn)
        .await
        .optional()
}
