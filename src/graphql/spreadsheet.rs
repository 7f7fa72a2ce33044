//! Uploaded spreadsheets: their status, errors and what their ingest changed (the uploads
//! screen).

use async_graphql::{Context, ID, Object, SimpleObject};

use super::loaders::{DbLoader, MessagesOf, ReportChangesOf};
use super::report::{Person, Report};
use super::scalars::Timestamp;
use crate::models::enums::{MessageSeverity, ReportChangeKind, SpreadsheetStatus, System};
use crate::models::spreadsheet::{ReportChange, Spreadsheet};

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
                sheet: m.sheet,
                row: m.row_number,
                metric_key: m.metric_key,
                message: m.message,
            })
            .collect())
    }

    /// What the ingest did to each report it touched.
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
    /// Error (the row was not stored) or warning.
    pub severity: MessageSeverity,
    /// The sheet concerned.
    pub sheet: Option<String>,
    /// The row concerned (1-based).
    pub row: Option<i32>,
    /// The metric concerned.
    pub metric_key: Option<String>,
    /// What is wrong.
    pub message: String,
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

    /// The report.
    async fn report(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Report>> {
        Ok(ctx
            .data_unchecked::<DbLoader>()
            .load_one(self.0.report_id)
            .await?
            .map(Report))
    }
}
