//! Uploaded spreadsheets: their status, errors and what their ingest changed (the uploads
//! screen).

use async_graphql::{Context, ID, Object, SimpleObject};

use super::loaders::{DbLoader, MessagesOf, ReportChangesOf};
use super::pagination::{CursorKey, cursor, decode_cursor};
use super::report::{Person, Report};
use super::scalars::{Date, Timestamp};
use super::{Gql, connection};
use crate::error::AppError;
use crate::events::UploadProgress as Progress;
use crate::models::enums::{
    MessageSeverity, ReportChangeKind, ReportFrequency, SpreadsheetStatus, System, ValueOutcome,
    ValueSource,
};
use crate::models::spreadsheet::{ReportChange, Spreadsheet, UploadReport, UploadValue};

/// The GraphQL view of an upload; only made after the viewer may read its agency.
pub struct Upload(pub Spreadsheet);

/// A CSV or XLSX file an agency uploaded, and what reading it did.
#[Object]
impl Upload {
    /// Stable identifier of the upload.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The file's name.
    async fn file_name(&self) -> &str {
        &self.0.file_name
    }

    /// The system the file reports for.
    async fn system(&self) -> System {
        self.0.system
    }

    /// Where the ingest stands.
    async fn status(&self) -> SpreadsheetStatus {
        self.0.status
    }

    /// When the file was uploaded.
    async fn uploaded_at(&self) -> Timestamp {
        Timestamp(self.0.uploaded_at)
    }

    /// Who uploaded it.
    async fn uploaded_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Person>> {
        Person::load(ctx, self.0.uploaded_by).await
    }

    /// When its values were stored.
    async fn ingested_at(&self) -> Option<Timestamp> {
        self.0.ingested_at.map(Timestamp)
    }

    /// How many values the ingest created.
    async fn new_datapoint_count(&self) -> i32 {
        self.0.new_datapoint_count
    }

    /// Whether this upload only compared the file with the stored data, writing nothing.
    async fn dry_run(&self) -> bool {
        self.0.dry_run
    }

    /// Whether a person uploaded it (BULK_UPLOAD) or an automated feed (AUTOMATED_BULK_UPLOAD).
    async fn source(&self) -> ValueSource {
        self.0.source
    }

    /// The file's size in bytes.
    async fn file_size(&self) -> i64 {
        self.0.file_size
    }

    /// Where members of the agency can download the file again.
    async fn file_url(&self) -> String {
        format!("/uploads/{}/file", self.0.id)
    }

    /// When the ingest ended (applied, compared, failed or cancelled).
    async fn finished_at(&self) -> Option<Timestamp> {
        self.0.finished_at.map(Timestamp)
    }

    /// How far the ingest got: rows read and saved, messages so far (read afresh).
    async fn progress(&self, ctx: &Context<'_>) -> async_graphql::Result<UploadProgress> {
        let mut conn = connection(ctx).await.gql()?;
        let progress = crate::ingest::progress(&mut conn, self.0.id)
            .await
            .gql()?
            .ok_or_else(|| {
                AppError::NotFound(format!("no upload has id {}", self.0.id)).into_gql()
            })?;
        Ok(UploadProgress(progress))
    }

    /// The report periods the upload touched — or, in a dry run, would touch — with what it
    /// did to each: NEW (no report existed), UPDATED or UNCHANGED. A dry run keeps these for
    /// a while only (`DRY_RUN_RETENTION`, 7 days by default): empty after that.
    async fn reports(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<UploadReportResult>> {
        let mut conn = connection(ctx).await.gql()?;
        let reports = UploadReport::of(&mut conn, self.0.id).await.gql()?;
        Ok(reports.into_iter().map(UploadReportResult).collect())
    }

    /// Every value the upload read, in reading order, with the value stored before and what
    /// applying it did (or, in a dry run, would do). A dry run keeps them for a while only
    /// (`DRY_RUN_RETENTION`, 7 days by default): empty after that.
    async fn values(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Return the first N values (at most 1000; 100 by default).")]
        first: Option<i32>,
        #[graphql(desc = "Return values after this cursor.")] after: Option<String>,
        #[graphql(desc = "Only values that are new or changed.", default = false)]
        changed_only: bool,
    ) -> async_graphql::Result<UploadValuePage> {
        let limit = i64::from(first.unwrap_or(100));
        if !(0..=1000).contains(&limit) {
            return Err(
                AppError::BadUserInput("`first` must be between 0 and 1000".into()).into_gql(),
            );
        }
        let after = after
            .map(|cursor| decode_cursor::<UploadValueKey>(&cursor).map(|key| key.0))
            .transpose()
            .gql()?;
        let mut conn = connection(ctx).await.gql()?;
        let mut rows = UploadValue::page(&mut conn, self.0.id, after, limit, changed_only)
            .await
            .gql()?;
        let has_next_page = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let total_count = UploadValue::count(&mut conn, self.0.id, changed_only)
            .await
            .gql()?;
        Ok(UploadValuePage {
            end_cursor: rows.last().map(|row| cursor(&UploadValueKey(row.id))),
            has_next_page,
            total_count,
            nodes: rows.into_iter().map(UploadValueResult).collect(),
        })
    }

    /// Errors and warnings the ingest raised, in order.
    async fn messages(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<UploadMessage>> {
        let messages = ctx
            .data_unchecked::<DbLoader>()
            .load_one(MessagesOf(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(messages
            .into_iter()
            .map(|m| UploadMessage {
                severity: m.severity,
                title: m.title,
                sheet: m.sheet,
                row: m.row_number,
                metric_key: m.metric_key,
                message: m.message,
                value: m.value,
                options: m.options,
            })
            .collect())
    }

    /// What applying the upload did to each report it touched: empty for a dry run, which
    /// applies nothing (`reports` says what it would do).
    async fn report_changes(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<UploadReportChange>> {
        let changes = ctx
            .data_unchecked::<DbLoader>()
            .load_one(ReportChangesOf(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(changes.into_iter().map(UploadReportChange).collect())
    }
}

/// An error or warning raised while reading an upload.
#[derive(SimpleObject)]
pub struct UploadMessage {
    /// Error (something was not stored) or warning.
    pub severity: MessageSeverity,
    /// The kind of problem, stable for a given cause (`Invalid 'year' Column Value`,
    /// `Too Many Rows`, `Breakdown Total Warning`, ...).
    pub title: String,
    /// The sheet concerned.
    pub sheet: Option<String>,
    /// The row concerned (1-based).
    pub row: Option<i32>,
    /// The metric concerned.
    pub metric_key: Option<String>,
    /// What is wrong, and how to fix it.
    pub message: String,
    /// The offending value, as written in the file.
    pub value: Option<String>,
    /// The values that would have been accepted.
    pub options: Vec<String>,
}

/// The GraphQL view of what an ingest did to a report.
pub struct UploadReportChange(ReportChange);

/// What an ingest did to one report.
#[Object]
impl UploadReportChange {
    /// New, updated or unchanged.
    async fn change(&self) -> ReportChangeKind {
        self.0.change
    }

    /// The report; none when the viewer may no longer read its agency (a child agency
    /// linked to another superagency since).
    async fn report(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Report>> {
        Report::readable(ctx, self.0.report_id).await
    }
}

/// Where an upload's ingest stands.
pub struct UploadProgress(pub Progress);

/// How far an upload's ingest got.
#[Object]
impl UploadProgress {
    /// The upload.
    async fn upload_id(&self) -> ID {
        ID(self.0.spreadsheet_id.to_string())
    }

    /// Where the ingest stands.
    async fn status(&self) -> SpreadsheetStatus {
        self.0.status
    }

    /// Rows read so far.
    async fn rows_read(&self) -> i64 {
        self.0.rows_read
    }

    /// Rows read so far whose values were accepted (they are saved when the file has been
    /// read to the end).
    async fn rows_accepted(&self) -> i64 {
        self.0.rows_accepted
    }

    /// Rows whose values were saved (or, in a dry run, compared), once applied.
    async fn rows_saved(&self) -> i64 {
        self.0.rows_saved
    }

    /// Errors and warnings so far.
    async fn message_count(&self) -> i64 {
        self.0.messages
    }

    /// Whether someone asked to cancel the ingest.
    async fn cancel_requested(&self) -> bool {
        self.0.cancel_requested
    }
}

/// What an upload did to one report period.
pub struct UploadReportResult(UploadReport);

/// What an upload did (or, in a dry run, would do) to one report period.
#[Object]
impl UploadReportResult {
    /// NEW (the report did not exist), UPDATED (values new or changed) or UNCHANGED.
    async fn change(&self) -> ReportChangeKind {
        self.0.change
    }

    /// The agency (a superagency's upload reaches its child agencies).
    async fn agency_id(&self) -> ID {
        ID(self.0.agency_id.to_string())
    }

    /// Monthly or annual.
    async fn frequency(&self) -> ReportFrequency {
        self.0.frequency
    }

    /// The period's first day.
    async fn date_range_start(&self) -> Date {
        Date(self.0.date_range_start)
    }

    /// The report; none in a dry run for a report the upload would create, and none when the
    /// viewer may no longer read its agency (a child agency linked to another superagency
    /// since).
    async fn report(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Report>> {
        let Some(id) = self.0.report_id else {
            return Ok(None);
        };
        Report::readable(ctx, id).await
    }
}

/// One value an upload read.
pub struct UploadValueResult(UploadValue);

/// One value an upload read, and what applying it did (or, in a dry run, would do).
#[Object]
impl UploadValueResult {
    /// The sheet it came from.
    async fn sheet(&self) -> &str {
        &self.0.sheet
    }

    /// Its row in the sheet (the header is row 1); none for a total the upload computed
    /// from a breakdown's sum, or a member an automated upload cleared.
    async fn row(&self) -> Option<i64> {
        self.0.row_number
    }

    /// The agency it is for.
    async fn agency_id(&self) -> ID {
        ID(self.0.agency_id.to_string())
    }

    /// The metric's key.
    async fn metric_key(&self) -> &str {
        &self.0.metric_key
    }

    /// The breakdown's dimension id; none for the total.
    async fn dimension_id(&self) -> Option<&str> {
        self.0.dimension_id.as_deref()
    }

    /// The breakdown member; none for the total.
    async fn member(&self) -> Option<&str> {
        self.0.member.as_deref()
    }

    /// Monthly or annual.
    async fn frequency(&self) -> ReportFrequency {
        self.0.frequency
    }

    /// The period's first day.
    async fn date_range_start(&self) -> Date {
        Date(self.0.date_range_start)
    }

    /// The value read; none for a member cleared by an automated upload.
    async fn value(&self) -> Option<f64> {
        self.0.value
    }

    /// The value stored before the upload.
    async fn old_value(&self) -> Option<f64> {
        self.0.old_value
    }

    /// Whether the upload computed it rather than read it.
    async fn derived(&self) -> bool {
        self.0.derived
    }

    /// NEW, UPDATED, UNCHANGED or DROPPED (a duplicate, or replaced by a later row); none
    /// while the file is still being read.
    async fn outcome(&self) -> Option<ValueOutcome> {
        self.0.outcome
    }

    /// The report; none in a dry run for a report the upload would create.
    async fn report_id(&self) -> Option<ID> {
        self.0.report_id.map(|id| ID(id.to_string()))
    }
}

/// A page of an upload's values.
#[derive(SimpleObject)]
pub struct UploadValuePage {
    /// The values.
    pub nodes: Vec<UploadValueResult>,
    /// Pass as `after` for the next page.
    pub end_cursor: Option<String>,
    /// Whether there are more values.
    pub has_next_page: bool,
    /// How many values there are in all.
    pub total_count: i64,
}

/// A position in an upload's values.
#[derive(Debug, Clone, Copy)]
struct UploadValueKey(i64);

impl CursorKey for UploadValueKey {
    const TAG: &'static str = "upload-value";

    fn encode(&self) -> String {
        self.0.to_string()
    }

    fn decode(text: &str) -> Option<Self> {
        text.parse().ok().map(Self)
    }
}
