//! Datapoints: single values of a metric on a report, and their change history.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::{datapoint_changes, datapoints, report_contexts, reports};
use crate::models::enums::{ReportFrequency, ReportStatus, ValueSource};
use crate::models::ids::{AgencyId, DatapointId, ReportId, UserId};

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
    /// The report version the change produced.
    pub report_version: Option<i32>,
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

/// A stored value.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = datapoints, check_for_backend(diesel::pg::Pg))]
pub struct Datapoint {
    /// Its id.
    pub id: DatapointId,
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
    /// When it was first entered.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
    /// Who last changed it.
    pub updated_by: Option<UserId>,
}

impl Datapoint {
    /// Every value on these reports.
    pub async fn of_reports(
        conn: &mut &AsyncPgConnection,
        reports: &[ReportId],
    ) -> QueryResult<Vec<Self>> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        datapoints::table
            .filter(datapoints::report_id.eq_any(reports))
            .order((
                datapoints::metric_key,
                datapoints::dimension_id.asc().nulls_first(),
                datapoints::id,
            ))
            .select(Self::as_select())
            .load(conn)
            .await
    }
}

/// A recorded change of a value, with the cell it changed.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = datapoint_changes, check_for_backend(diesel::pg::Pg))]
pub struct DatapointChange {
    /// Its id.
    pub id: i64,
    /// The value changed.
    pub datapoint_id: DatapointId,
    /// Who changed it.
    pub changed_by: Option<UserId>,
    /// When.
    pub changed_at: DateTime<Utc>,
    /// The value before.
    pub old_value: Option<f64>,
    /// The value after.
    pub new_value: Option<f64>,
    /// How the new value got there.
    pub source: ValueSource,
    /// The report version the change produced (none for changes recorded before versions).
    pub report_version: Option<i32>,
}

/// Which value a change concerns.
#[derive(Debug, Clone, Queryable)]
pub struct Cell {
    /// The report.
    pub report_id: ReportId,
    /// The metric.
    pub metric_key: String,
    /// The breakdown, for a breakdown value.
    pub dimension_id: Option<String>,
    /// The member, for a breakdown value.
    pub member: Option<String>,
    /// The sub-category, if any.
    pub sub_category: Option<String>,
}

impl DatapointChange {
    /// The changes of values on these reports, oldest first.
    pub async fn of_reports(
        conn: &mut &AsyncPgConnection,
        reports: &[ReportId],
    ) -> QueryResult<Vec<(Self, Cell)>> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        datapoint_changes::table
            .inner_join(datapoints::table)
            .filter(datapoints::report_id.eq_any(reports))
            .order((datapoint_changes::changed_at, datapoint_changes::id))
            .select((
                Self::as_select(),
                (
                    datapoints::report_id,
                    datapoints::metric_key,
                    datapoints::dimension_id,
                    datapoints::member,
                    datapoints::sub_category,
                ),
            ))
            .load(conn)
            .await
    }
}

/// Context given with one metric of one report.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = report_contexts, check_for_backend(diesel::pg::Pg))]
pub struct ReportContext {
    /// The report.
    pub report_id: ReportId,
    /// The metric.
    pub metric_key: String,
    /// The text.
    pub value: String,
    /// When it was written.
    pub updated_at: DateTime<Utc>,
    /// Who wrote it.
    pub updated_by: Option<UserId>,
}

impl ReportContext {
    /// The contexts of these reports.
    pub async fn of_reports(
        conn: &mut &AsyncPgConnection,
        reports: &[ReportId],
    ) -> QueryResult<Vec<Self>> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        report_contexts::table
            .filter(report_contexts::report_id.eq_any(reports))
            .select(Self::as_select())
            .load(conn)
            .await
    }
}

/// One value for a time series: the period of its report and its breakdown member.
#[derive(Debug, Clone, Queryable)]
pub struct SeriesValue {
    /// The agency.
    pub agency_id: AgencyId,
    /// The metric.
    pub metric_key: String,
    /// The report's frequency.
    pub frequency: ReportFrequency,
    /// The report period's first day.
    pub start: NaiveDate,
    /// The breakdown, or none for the aggregate.
    pub dimension_id: Option<String>,
    /// The member, or none for the aggregate.
    pub member: Option<String>,
    /// The value; none means "not reported".
    pub value: Option<f64>,
}

/// What values a batch of time series needs.
#[derive(Debug, Clone, Default)]
pub struct SeriesQuery {
    /// The agencies.
    pub agencies: Vec<AgencyId>,
    /// The metrics.
    pub metrics: Vec<String>,
    /// Reports whose period starts on or after this day.
    pub from: Option<NaiveDate>,
    /// Reports whose period starts before this day.
    pub to: Option<NaiveDate>,
    /// Only published reports (public series).
    pub published_only: bool,
}

impl SeriesValue {
    /// The aggregate and breakdown values (not sub-categories) the batch needs, in period
    /// order.
    pub async fn load(
        conn: &mut &AsyncPgConnection,
        query: &SeriesQuery,
    ) -> QueryResult<Vec<Self>> {
        if query.agencies.is_empty() || query.metrics.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = datapoints::table
            .inner_join(reports::table)
            .filter(reports::agency_id.eq_any(query.agencies.clone()))
            .filter(datapoints::metric_key.eq_any(query.metrics.clone()))
            .filter(datapoints::sub_category.is_null())
            .into_boxed();
        if let Some(from) = query.from {
            rows = rows.filter(reports::date_range_start.ge(from));
        }
        if let Some(to) = query.to {
            rows = rows.filter(reports::date_range_start.lt(to));
        }
        if query.published_only {
            rows = rows.filter(reports::status.eq(ReportStatus::Published));
        }
        rows.order((reports::date_range_start, datapoints::id))
            .select((
                reports::agency_id,
                datapoints::metric_key,
                reports::frequency,
                reports::date_range_start,
                datapoints::dimension_id,
                datapoints::member,
                datapoints::value,
            ))
            .load(conn)
            .await
    }
}
