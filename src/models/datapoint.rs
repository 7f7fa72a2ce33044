//! Datapoints: single values of a metric on a report, and their change history.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::db::schema::{datapoint_changes, datapoints, report_contexts};
use crate::models::enums::ValueSource;
use crate::models::ids::{DatapointId, ReportId, UserId};

/// A new datapoint. `dimension_id` and `member` are both set for a breakdown value and both
/// empty for the metric's aggregate value.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = datapoints)]
pub struct NewDatapoint {
    /// The report.
    pub report_id: ReportId,
    /// The metric.
    pub metric_key: String,
    /// The breakdown, for a breakdown value.
    pub dimension_id: Option<String>,
    /// The breakdown member, for a breakdown value.
    pub member: Option<String>,
    /// A free-text sub-category under the member.
    pub sub_category: Option<String>,
    /// The value; none means "not reported".
    pub value: Option<f64>,
    /// How the value got here.
    pub source: ValueSource,
    /// Who entered it.
    pub updated_by: Option<UserId>,
}

/// A change of a datapoint's value, kept forever.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = datapoint_changes)]
pub struct NewDatapointChange {
    /// The datapoint.
    pub datapoint_id: DatapointId,
    /// Who changed it.
    pub changed_by: Option<UserId>,
    /// When.
    pub changed_at: DateTime<Utc>,
    /// The value before.
    pub old_value: Option<f64>,
    /// The value after.
    pub new_value: Option<f64>,
    /// How the new value got here.
    pub source: ValueSource,
}

/// Context an agency gives with one metric of one report.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = report_contexts)]
pub struct NewReportContext {
    /// The report.
    pub report_id: ReportId,
    /// The metric.
    pub metric_key: String,
    /// The text.
    pub value: String,
    /// Who wrote it.
    pub updated_by: Option<UserId>,
}
