//! Creating, publishing, unpublishing and deleting reports.

use chrono::{Datelike, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::catalogue::Catalogue;
use crate::db::schema::{report_status_changes, reports};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::events::{self, ReportEvent, ReportEventKind};
use crate::models::agency::Agency;
use crate::models::enums::{ReportFrequency, ReportStatus};
use crate::models::ids::{ReportId, UserId};
use crate::models::metric_setting::AgencyMetricSettings;
use crate::models::report::{NewReport, NewReportStatusChange, Report, period_end};

/// Creates the report of `agency` for the period starting on `start`: a calendar month, or
/// for annual reports a reporting year starting in a month one of the agency's annual metrics
/// starts its year in. CONFLICT when the report exists.
pub async fn create(
    conn: &mut AsyncPgConnection,
    catalogue: &Catalogue,
    agency: &Agency,
    settings: &AgencyMetricSettings,
    frequency: ReportFrequency,
    start: NaiveDate,
) -> AppResult<Report> {
    if start.day() != 1 {
        return Err(AppError::BadUserInput(format!(
            "a report period starts on the first of a month, not {start}"
        )));
    }
    if frequency == ReportFrequency::Annual {
        let systems = agency.systems();
        let months: Vec<u32> = catalogue
            .metrics()
            .iter()
            .filter_map(|metric| settings.effective(metric, &systems))
            .filter(|effective| effective.is_enabled)
            .filter_map(|effective| effective.starting_month)
            .collect();
        if !months.contains(&start.month()) {
            return Err(AppError::BadUserInput(format!(
                "none of the agency's annual metrics starts its reporting year in month {}",
                start.month()
            )));
        }
    }
    let end = period_end(start, frequency)
        .ok_or_else(|| AppError::BadUserInput("the period is out of range".into()))?;
    conn.transaction(async |conn| {
        let report: Report = diesel::insert_into(reports::table)
            .values(NewReport {
                agency_id: agency.id,
                frequency,
                date_range_start: start,
                date_range_end: end,
                status: ReportStatus::NotStarted,
                published_at: None,
                last_modified_at: Utc::now(),
            })
            .returning(Report::as_returning())
            .get_result(conn)
            .await?;
        let event = ReportEvent::new(
            report.agency_id,
            report.id,
            ReportEventKind::Created,
            report.version,
            Some(report.status),
        );
        events::notify(conn, &event).await?;
        Ok(report)
    })
    .await
}

/// Locks the reports with these ids; NOT_FOUND naming the first missing one.
async fn lock(conn: &mut AsyncPgConnection, ids: &[ReportId]) -> AppResult<Vec<Report>> {
    let found: Vec<Report> = reports::table
        .filter(reports::id.eq_any(ids))
        .order(reports::id)
        .select(Report::as_select())
        .for_update()
        .load(conn)
        .await?;
    if let Some(missing) = ids.iter().find(|id| !found.iter().any(|r| r.id == **id)) {
        return Err(AppError::NotFound(format!("no report has id {missing}")));
    }
    Ok(found)
}

/// Publishes (or takes back to draft) the reports, all or none. Reports already in the
/// wanted status are left as they are; a report with nothing entered cannot be published.
/// With `seen`, the version of each report (in the order of `ids`) the caller reviewed: a
/// report now at another version is a CONFLICT naming the current versions, and nothing
/// changes.
pub async fn set_published(
    conn: &mut AsyncPgConnection,
    ids: &[ReportId],
    seen: Option<&[i32]>,
    publish: bool,
    by: UserId,
) -> AppResult<Vec<Report>> {
    if seen.is_some_and(|seen| seen.len() != ids.len()) {
        return Err(AppError::BadUserInput(
            "give one version per report, in the order of the reports".into(),
        ));
    }
    conn.transaction(async |conn| {
        let locked = lock(conn, ids).await?;
        if let Some(seen) = seen {
            check_seen(&locked, ids, seen)?;
        }
        let mut updated = Vec::new();
        for report in locked {
            let target = if publish {
                ReportStatus::Published
            } else {
                ReportStatus::Draft
            };
            if report.status == target || (!publish && report.status == ReportStatus::NotStarted) {
                updated.push(report);
                continue;
            }
            if publish && report.status == ReportStatus::NotStarted {
                return Err(AppError::BadUserInput(format!(
                    "report {} has no data yet: enter values before publishing it",
                    report.id
                )));
            }
            diesel::insert_into(report_status_changes::table)
                .values(NewReportStatusChange {
                    report_id: report.id,
                    old_status: report.status,
                    new_status: target,
                    changed_by: Some(by),
                    changed_at: Utc::now(),
                })
                .execute(conn)
                .await?;
            let changed: Report = diesel::update(reports::table.find(report.id))
                .set((
                    reports::status.eq(target),
                    reports::version.eq(report.version + 1),
                    reports::last_modified_at.eq(diesel::dsl::now),
                    reports::published_at.eq(if publish {
                        Some(Utc::now())
                    } else {
                        report.published_at
                    }),
                ))
                .returning(Report::as_returning())
                .get_result(conn)
                .await?;
            let kind = if publish {
                ReportEventKind::Published
            } else {
                ReportEventKind::Unpublished
            };
            events::notify(
                conn,
                &ReportEvent::new(
                    changed.agency_id,
                    changed.id,
                    kind,
                    changed.version,
                    Some(changed.status),
                ),
            )
            .await?;
            updated.push(changed);
        }
        Ok(updated)
    })
    .await
}

/// CONFLICT when a locked report is no longer at the version the caller saw.
fn check_seen(locked: &[Report], ids: &[ReportId], seen: &[i32]) -> AppResult<()> {
    let changed: Vec<&Report> = locked
        .iter()
        .filter(|report| {
            ids.iter()
                .zip(seen)
                .any(|(id, version)| *id == report.id && *version != report.version)
        })
        .collect();
    let Some(first) = <[&Report]>::first(&changed) else {
        return Ok(());
    };
    Err(AppError::Detailed {
        code: ErrorCode::Conflict,
        message: format!(
            "report {} changed since it was reviewed (it is at version {}){}: reload and \
             review again; nothing was changed",
            first.id,
            first.version,
            match changed.len() {
                1 => String::new(),
                n => format!(
                    ", and {} other report{}",
                    n - 1,
                    if n == 2 { "" } else { "s" }
                ),
            }
        ),
        details: serde_json::json!({
            "currentVersions": changed
                .iter()
                .map(|r| serde_json::json!({ "reportId": r.id.to_string(), "version": r.version }))
                .collect::<Vec<_>>(),
        }),
    })
}

/// Deletes the reports with their values and history, all or none.
pub async fn delete(conn: &mut AsyncPgConnection, ids: &[ReportId]) -> AppResult<Vec<ReportId>> {
    conn.transaction(async |conn| {
        let found = lock(conn, ids).await?;
        diesel::delete(reports::table.filter(reports::id.eq_any(ids)))
            .execute(conn)
            .await?;
        for report in &found {
            let event = ReportEvent::new(
                report.agency_id,
                report.id,
                ReportEventKind::Deleted,
                report.version,
                None,
            );
            events::notify(conn, &event).await?;
        }
        Ok(found.into_iter().map(|report| report.id).collect())
    })
    .await
}
