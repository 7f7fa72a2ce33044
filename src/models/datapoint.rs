//! Datapoints: single values of a metric on a report, and their change history.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, SmallInt, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::fixed::fixed_query;
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

/// A value or a context of a report, as [`ReportValue::of_reports`] reads them together.
#[derive(Debug, Clone)]
pub enum ReportValue {
    /// A stored value.
    Datapoint(Datapoint),
    /// The context of one metric.
    Context(ReportContext),
}

/// A row of either table: `kind` 0 is a value, 1 a context (its text in `text`).
#[derive(QueryableByName)]
struct ValueRow {
    #[diesel(sql_type = SmallInt)]
    kind: i16,
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
    #[diesel(sql_type = Integer)]
    report_id: i32,
    #[diesel(sql_type = Text)]
    metric_key: String,
    #[diesel(sql_type = Nullable<Text>)]
    dimension_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    member: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    sub_category: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    value: Option<f64>,
    #[diesel(sql_type = Nullable<Text>)]
    text: Option<String>,
    #[diesel(sql_type = Nullable<crate::db::schema::sql_types::ValueSource>)]
    source: Option<ValueSource>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    created_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Integer>)]
    updated_by: Option<i32>,
}

impl ReportValue {
    /// The report it belongs to.
    pub fn report_id(&self) -> ReportId {
        match self {
            Self::Datapoint(datapoint) => datapoint.report_id,
            Self::Context(context) => context.report_id,
        }
    }

    /// The values (in metric, then breakdown order) and the contexts of these reports, in one
    /// statement.
    pub async fn of_reports(
        conn: &mut &AsyncPgConnection,
        reports: &[ReportId],
    ) -> QueryResult<Vec<Self>> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<ValueRow> = fixed_query::<Array<Integer>, _>(
            "SELECT 0::int2 AS kind, id, report_id, metric_key, dimension_id, member, \
                 sub_category, value, NULL::text AS text, source, created_at, updated_at, \
                 updated_by \
             FROM datapoints WHERE report_id = ANY($1) \
             UNION ALL \
             SELECT 1::int2, NULL, report_id, metric_key, NULL, NULL, NULL, NULL, value, NULL, \
                 NULL, updated_at, updated_by \
             FROM report_contexts WHERE report_id = ANY($1) \
             ORDER BY kind, metric_key, dimension_id NULLS FIRST, id",
            reports.iter().map(|report| report.0).collect::<Vec<_>>(),
        )
        .load(conn)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(
                |row| match (row.kind, row.id, row.source, row.created_at, row.text) {
                    (0, Some(id), Some(source), Some(created_at), _) => {
                        Some(Self::Datapoint(Datapoint {
                            id: DatapointId(id),
                            report_id: ReportId(row.report_id),
                            metric_key: row.metric_key,
                            dimension_id: row.dimension_id,
                            member: row.member,
                            sub_category: row.sub_category,
                            value: row.value,
                            source,
                            created_at,
                            updated_at: row.updated_at,
                            updated_by: row.updated_by.map(UserId),
                        }))
                    }
                    (1, _, _, _, Some(text)) => Some(Self::Context(ReportContext {
                        report_id: ReportId(row.report_id),
                        metric_key: row.metric_key,
                        value: text,
                        updated_at: row.updated_at,
                        updated_by: row.updated_by.map(UserId),
                    })),
                    _ => None,
                },
            )
            .collect())
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
