//! Reports: one agency's values for one period and frequency.

use chrono::{DateTime, Months, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::fixed::fixed;
use crate::db::schema::{report_editors, report_status_changes, reports, users};
use crate::models::enums::{ReportFrequency, ReportStatus};
use crate::models::ids::{AgencyId, ReportId, UserId};
use crate::models::page::{Page, Slice};
use crate::models::user::User;

/// The end (exclusive) of a report period that starts on `start`.
pub fn period_end(start: NaiveDate, frequency: ReportFrequency) -> Option<NaiveDate> {
    let months = match frequency {
        ReportFrequency::Monthly => 1,
        ReportFrequency::Annual => 12,
    };
    start.checked_add_months(Months::new(months))
}

/// What a page of reports brings along from the same statement.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageWith {
    /// The number of reports matching the filter (counted there only on a page without a
    /// cursor).
    pub count: bool,
    /// Each report's editors.
    pub editors: bool,
}

/// A page of reports and what it was asked to bring along.
#[derive(Debug)]
pub struct ReportPage {
    /// The reports.
    pub page: Page<Report>,
    /// How many reports match the filter, when counted with the page.
    pub total: Option<i64>,
    /// The editors of each report read (as [`Report::editors_of`] gives them), when asked.
    pub editors: Option<Vec<(ReportId, Vec<Editor>)>>,
}

/// One editor of a report: the report, when they last edited it, and who they are.
pub type Editor = (ReportId, DateTime<Utc>, User);

/// A report's editors, most recent first, as one JSON array (NULL for none).
const EDITORS_AS_JSON: &str = "(SELECT json_agg(json_build_object('at', e.last_edited_at, \
     'id', u.id, 'name', u.name, 'email', u.email, 'admin', u.is_platform_admin, \
     'created', u.created_at) ORDER BY e.last_edited_at DESC)::text \
     FROM report_editors e JOIN users u ON u.id = e.user_id WHERE e.report_id = reports.id)";

#[derive(serde::Deserialize)]
struct EditorJson {
    at: DateTime<Utc>,
    id: i32,
    name: String,
    email: String,
    admin: bool,
    created: DateTime<Utc>,
}

fn parse_editors(report: ReportId, json: Option<String>) -> QueryResult<Vec<Editor>> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let editors: Vec<EditorJson> = serde_json::from_str(&json)
        .map_err(|error| diesel::result::Error::DeserializationError(Box::new(error)))?;
    Ok(editors
        .into_iter()
        .map(|editor| {
            (
                report,
                editor.at,
                User {
                    id: UserId(editor.id),
                    name: editor.name,
                    email: editor.email,
                    is_platform_admin: editor.admin,
                    created_at: editor.created,
                },
            )
        })
        .collect())
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

/// A report.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = reports, check_for_backend(diesel::pg::Pg))]
pub struct Report {
    /// Its id.
    pub id: ReportId,
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
    /// Moves on every accepted save.
    pub version: i32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub last_modified_at: DateTime<Utc>,
    /// When it was (last) published.
    pub published_at: Option<DateTime<Utc>>,
}

/// Which reports of an agency a listing returns. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    /// Only reports in one of these statuses.
    pub statuses: Vec<ReportStatus>,
    /// Only reports of this frequency.
    pub frequency: Option<ReportFrequency>,
    /// Only reports whose period starts on or after this day.
    pub starts_from: Option<NaiveDate>,
    /// Only reports whose period starts before this day.
    pub starts_before: Option<NaiveDate>,
}

/// A position in the order of an agency's reports: newest period first, then by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportKey {
    /// The period's start.
    pub start: NaiveDate,
    /// The report's id.
    pub id: ReportId,
}

type BoxedReports<'a> = reports::BoxedQuery<'a, diesel::pg::Pg>;

fn filtered(agencies: &[AgencyId], filter: &ReportFilter) -> BoxedReports<'static> {
    let mut query = reports::table
        .filter(reports::agency_id.eq_any(agencies.to_vec()))
        .into_boxed();
    if !filter.statuses.is_empty() {
        query = query.filter(reports::status.eq_any(filter.statuses.clone()));
    }
    if let Some(frequency) = filter.frequency {
        query = query.filter(reports::frequency.eq(frequency));
    }
    if let Some(from) = filter.starts_from {
        query = query.filter(reports::date_range_start.ge(from));
    }
    if let Some(before) = filter.starts_before {
        query = query.filter(reports::date_range_start.lt(before));
    }
    query
}

/// Rows that come after `key` in list order (newest first, then higher id first).
fn after_key(query: BoxedReports<'static>, key: ReportKey) -> BoxedReports<'static> {
    query.filter(
        reports::date_range_start
            .lt(key.start)
            .or(reports::date_range_start
                .eq(key.start)
                .and(reports::id.lt(key.id))),
    )
}

fn before_key(query: BoxedReports<'static>, key: ReportKey) -> BoxedReports<'static> {
    query.filter(
        reports::date_range_start
            .gt(key.start)
            .or(reports::date_range_start
                .eq(key.start)
                .and(reports::id.gt(key.id))),
    )
}

impl Report {
    /// Its position in list order.
    pub fn key(&self) -> ReportKey {
        ReportKey {
            start: self.date_range_start,
            id: self.id,
        }
    }

    /// The reports with these ids.
    pub async fn by_ids(conn: &mut &AsyncPgConnection, ids: &[ReportId]) -> QueryResult<Vec<Self>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        reports::table
            .filter(reports::id.eq_any(ids))
            .select(Self::as_select())
            .load(conn)
            .await
    }

    /// One page of an agency's reports, newest period first.
    pub async fn page(
        conn: &mut AsyncPgConnection,
        agency: AgencyId,
        filter: &ReportFilter,
        slice: Slice<ReportKey>,
        with: PageWith,
    ) -> QueryResult<ReportPage> {
        let mut query = filtered(&[agency], filter);
        // Without a cursor the count over the whole filtered list is the total; with one it
        // would count only the rows past the cursor, so the total is left to a query of its own.
        let count = with.count && slice.after.is_none() && slice.before.is_none();
        if let Some(after) = slice.after {
            query = after_key(query, after);
        }
        if let Some(before) = slice.before {
            query = before_key(query, before);
        }
        query = if slice.backwards {
            query.order((reports::date_range_start.asc(), reports::id.asc()))
        } else {
            query.order((reports::date_range_start.desc(), reports::id.desc()))
        };
        let rows: Vec<(Self, Option<i64>, Option<String>)> = query
            .select((
                Self::as_select(),
                fixed::<Nullable<BigInt>>(if count {
                    "count(*) OVER ()"
                } else {
                    "NULL::int8"
                }),
                fixed::<Nullable<Text>>(if with.editors {
                    EDITORS_AS_JSON
                } else {
                    "NULL::text"
                }),
            ))
            .limit(slice.limit + 1)
            .load(conn)
            .await?;
        let total = count.then(|| <[_]>::first(&rows).and_then(|row| row.1).unwrap_or(0));
        let mut editors = Vec::new();
        let mut reports = Vec::with_capacity(rows.len());
        for (report, _, report_editors) in rows {
            if with.editors {
                editors.push((report.id, parse_editors(report.id, report_editors)?));
            }
            reports.push(report);
        }
        Ok(ReportPage {
            page: Page::from_overfetched(reports, &slice),
            total,
            editors: with.editors.then_some(editors),
        })
    }

    /// How many of an agency's reports match `filter`.
    pub async fn count(
        conn: &mut AsyncPgConnection,
        agency: AgencyId,
        filter: &ReportFilter,
    ) -> QueryResult<i64> {
        filtered(&[agency], filter).count().get_result(conn).await
    }

    /// The latest reports of these agencies: for each agency its latest monthly report, and
    /// its latest annual report for each month reporting years start in. One query.
    pub async fn latest_of(
        conn: &mut &AsyncPgConnection,
        agencies: &[AgencyId],
    ) -> QueryResult<Vec<Self>> {
        if agencies.is_empty() {
            return Ok(Vec::new());
        }
        // Monthly reports form one group; annual ones one group per starting month.
        let group = fixed::<diesel::sql_types::Double>(
            "CASE WHEN reports.frequency = 'MONTHLY' THEN 0 ELSE extract(month FROM reports.date_range_start) END",
        );
        reports::table
            .filter(reports::agency_id.eq_any(agencies))
            .distinct_on((reports::agency_id, reports::frequency, group))
            .order((
                reports::agency_id,
                reports::frequency,
                group,
                reports::date_range_start.desc(),
            ))
            .select(Self::as_select())
            .load(conn)
            .await
    }

    /// Who edited these reports, with the users, most recent first.
    pub async fn editors_of(
        conn: &mut &AsyncPgConnection,
        reports: &[ReportId],
    ) -> QueryResult<Vec<(ReportId, DateTime<Utc>, User)>> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        report_editors::table
            .inner_join(users::table)
            .filter(report_editors::report_id.eq_any(reports))
            .order(report_editors::last_edited_at.desc())
            .select((
                report_editors::report_id,
                report_editors::last_edited_at,
                User::as_select(),
            ))
            .load(conn)
            .await
    }

    /// The status changes of these reports, oldest first.
    pub async fn status_changes_of(
        conn: &mut &AsyncPgConnection,
        reports: &[ReportId],
    ) -> QueryResult<Vec<StatusChange>> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        report_status_changes::table
            .filter(report_status_changes::report_id.eq_any(reports))
            .order((report_status_changes::changed_at, report_status_changes::id))
            .select(StatusChange::as_select())
            .load(conn)
            .await
    }
}

/// A change of a report's status.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = report_status_changes, check_for_backend(diesel::pg::Pg))]
pub struct StatusChange {
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
