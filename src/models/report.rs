//! Reports: one agency's values for one period and frequency.

use chrono::{DateTime, Months, NaiveDate, Utc};
use diesel::prelude::*;

use crate::db::schema::{report_editors, report_status_changes, reports};
use crate::models::enums::{ReportFrequency, ReportStatus};
use crate::models::ids::{AgencyId, ReportId, UserId};

/// The end (exclusive) of a report period that starts on `start`.
pub fn period_end(start: NaiveDate, frequency: ReportFrequency) -> Option<NaiveDate> {
    let months = match frequency {
        ReportFrequency::Monthly => 1,
        ReportFrequency::Annual => 12,
    };
    start.checked_add_months(Months::new(months))
}

/// A new report.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = reports)]
pub struct NewReport {
    /// The agency.
    pub agency_id: AgencyId,
    /// Monthly or annual.
    pub frequency: ReportFrequency,
    /// First day of the period.
    pub date_range_start: NaiveDate,
    /// Day after the last day of the period.
    pub date_range_end: NaiveDate,
    /// Where the report stands.
    pub status: ReportStatus,
    /// When it was published, for published reports.
    pub published_at: Option<DateTime<Utc>>,
    /// When it was last changed.
    pub last_modified_at: DateTime<Utc>,
}

/// Who edited a report, and when last.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = report_editors)]
pub struct NewReportEditor {
    /// The report.
    pub report_id: ReportId,
    /// The editor.
    pub user_id: UserId,
    /// When the editor last saved it.
    pub last_edited_at: DateTime<Utc>,
}

/// A change of a report's status, kept forever.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = report_status_changes)]
pub struct NewReportStatusChange {
    /// The report.
    pub report_id: ReportId,
    /// The status before.
    pub old_status: ReportStatus,
    /// The status after.
    pub new_status: ReportStatus,
    /// Who changed it.
    pub changed_by: Option<UserId>,
    /// When.
    pub changed_at: DateTime<Utc>,
}
