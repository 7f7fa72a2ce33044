//! Saving a report's values: one transaction, all values or none.
//!
//! The report row is locked for the duration, so saves of one report run one after the
//! other. A save names the version it was based on; if the report moved on since, the save is
//! refused with CONFLICT, the current version and the values that changed since, and nothing
//! is written. Each accepted save moves the version on and records every changed value in the
//! history, with the version it produced.

use std::collections::HashMap;

use chrono::Utc;
use diesel::prelude::*;
use diesel::upsert::on_constraint;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;

use super::validation::{ContextInput, ValueInput};
use crate::db::schema::{datapoint_changes, datapoints, report_contexts, report_editors, reports};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::events::{self, ReportEvent, ReportEventKind};
use crate::models::datapoint::{Datapoint, NewDatapoint, NewDatapointChange};
use crate::models::enums::{ReportStatus, ValueSource};
use crate::models::ids::{DatapointId, ReportId, UserId};
use crate::models::report::{NewReportStatusChange, Report};

/// A save of values and contexts, already validated.
#[derive(Debug, Clone)]
pub struct Save {
    /// The report.
    pub report_id: ReportId,
    /// The version the values were based on.
    pub based_on: i32,
    /// The values.
    pub values: Vec<ValueInput>,
    /// The contexts.
    pub contexts: Vec<ContextInput>,
    /// How the values got here.
    pub source: ValueSource,
    /// Who saves.
    pub editor: UserId,
}

/// What a save did.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The report after the save.
    pub report: Report,
    /// How many values changed.
    pub changed_values: usize,
}

type CellKey = (String, Option<String>, Option<String>, Option<String>);

/// A stored value's id and cell, as the upsert returns them.
type StoredCell = (
    DatapointId,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A value change since some version: version, cell, old and new value, author.
type ChangeSince = (
    Option<i32>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<f64>,
    Option<f64>,
    Option<UserId>,
);

/// A value an upload created, as its record keeps it.
#[derive(QueryableByName)]
struct CreatedByUpload {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    version: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    metric_key: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    dimension_id: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    member: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    value: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    uploaded_by: Option<i32>,
}

fn key_of(
    metric: &str,
    dimension: &Option<String>,
    member: &Option<String>,
    sub: &Option<String>,
) -> CellKey {
    (
        metric.to_owned(),
        dimension.clone(),
        member.clone(),
        sub.as_ref().map(|s| s.trim().to_owned()),
    )
}

/// Saves, or refuses a stale save with CONFLICT.
pub async fn save(conn: &mut AsyncPgConnection, save: &Save) -> AppResult<Saved> {
    conn.transaction(async |conn| save_in_transaction(conn, save).await)
        .await
}

async fn save_in_transaction(conn: &mut AsyncPgConnection, save: &Save) -> AppResult<Saved> {
    let report: Report = reports::table
        .find(save.report_id)
        .select(Report::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| AppError::NotFound(format!("no report has id {}", save.report_id)))?;
    if report.version != save.based_on {
        return Err(stale(conn, &report, save.based_on).await?);
    }
    let version = report.version + 1;

    let existing: HashMap<CellKey, Datapoint> = Datapoint::of_reports(&mut &*conn, &[report.id])
        .await?
        .into_iter()
        .map(|d| {
            (
                key_of(&d.metric_key, &d.dimension_id, &d.member, &d.sub_category),
                d,
            )
        })
        .collect();
    let mut changed: Vec<(CellKey, Option<f64>, Option<f64>)> = Vec::new();
    for input in &save.values {
        let key = key_of(
            &input.metric_key,
            &input.dimension_id,
            &input.member,
            &input.sub_category,
        );
        let old = existing.get(&key);
        if old.is_some_and(|old| old.value == input.value) {
            continue;
        }
        changed.push((key, old.and_then(|old| old.value), input.value));
    }

    if !changed.is_empty() {
        let rows: Vec<NewDatapoint> = changed
            .iter()
            .map(
                |((metric, dimension, member, sub), _, value)| NewDatapoint {
                    report_id: report.id,
                    metric_key: metric.clone(),
                    dimension_id: dimension.clone(),
                    member: member.clone(),
                    sub_category: sub.clone(),
                    value: *value,
                    source: save.source,
                    updated_by: Some(save.editor),
                },
            )
            .collect();
        // The upsert keeps one row per cell even against writers that do not lock the report.
        let ids: Vec<StoredCell> = diesel::insert_into(datapoints::table)
            .values(&rows)
            .on_conflict(on_constraint("datapoints_one_per_cell"))
            .do_update()
            .set((
                datapoints::value.eq(diesel::upsert::excluded(datapoints::value)),
                datapoints::source.eq(diesel::upsert::excluded(datapoints::source)),
                datapoints::updated_by.eq(diesel::upsert::excluded(datapoints::updated_by)),
                datapoints::updated_at.eq(diesel::dsl::now),
            ))
            .returning((
                datapoints::id,
                datapoints::metric_key,
                datapoints::dimension_id,
                datapoints::member,
                datapoints::sub_category,
            ))
            .get_results(conn)
            .await?;
        let ids: HashMap<CellKey, DatapointId> = ids
            .into_iter()
            .map(|(id, m, d, mem, s)| (key_of(&m, &d, &mem, &s), id))
            .collect();
        let now = Utc::now();
        let history: Vec<NewDatapointChange> = changed
            .iter()
            .filter_map(|(key, old, new)| {
                Some(NewDatapointChange {
                    datapoint_id: *ids.get(key)?,
                    changed_by: Some(save.editor),
                    changed_at: now,
                    old_value: *old,
                    new_value: *new,
                    source: save.source,
                    report_version: Some(version),
                })
            })
            .collect();
        diesel::insert_into(datapoint_changes::table)
            .values(&history)
            .execute(conn)
            .await?;
    }

    for context in &save.contexts {
        match &context.text {
            Some(text) => {
                diesel::insert_into(report_contexts::table)
                    .values((
                        report_contexts::report_id.eq(report.id),
                        report_contexts::metric_key.eq(&context.metric_key),
                        report_contexts::value.eq(text),
                        report_contexts::updated_by.eq(save.editor),
                    ))
                    .on_conflict((report_contexts::report_id, report_contexts::metric_key))
                    .do_update()
                    .set((
                        report_contexts::value.eq(text),
                        report_contexts::updated_by.eq(save.editor),
                        report_contexts::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(conn)
                    .await?;
            }
            None => {
                diesel::delete(
                    report_contexts::table
                        .filter(report_contexts::report_id.eq(report.id))
                        .filter(report_contexts::metric_key.eq(&context.metric_key)),
                )
                .execute(conn)
                .await?;
            }
        }
    }

    let status = if report.status == ReportStatus::NotStarted {
        ReportStatus::Draft
    } else {
        report.status
    };
    if status != report.status {
        diesel::insert_into(crate::db::schema::report_status_changes::table)
            .values(NewReportStatusChange {
                report_id: report.id,
                old_status: report.status,
                new_status: status,
                changed_by: Some(save.editor),
                changed_at: Utc::now(),
            })
            .execute(conn)
            .await?;
    }
    let updated: Report = diesel::update(reports::table.find(report.id))
        .set((
            reports::version.eq(version),
            reports::status.eq(status),
            reports::last_modified_at.eq(diesel::dsl::now),
        ))
        .returning(Report::as_returning())
        .get_result(conn)
        .await?;
    diesel::insert_into(report_editors::table)
        .values((
            report_editors::report_id.eq(report.id),
            report_editors::user_id.eq(save.editor),
        ))
        .on_conflict((report_editors::report_id, report_editors::user_id))
        .do_update()
        .set(report_editors::last_edited_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    events::notify(
        conn,
        &ReportEvent::new(
            updated.agency_id,
            updated.id,
            ReportEventKind::Saved,
            updated.version,
            Some(updated.status),
        ),
    )
    .await?;
    Ok(Saved {
        report: updated,
        changed_values: changed.len(),
    })
}

/// The CONFLICT for a save based on `based_on` when the report is at a later version: the
/// current version and every value changed since.
async fn stale(
    conn: &mut AsyncPgConnection,
    report: &Report,
    based_on: i32,
) -> AppResult<AppError> {
    let changes: Vec<ChangeSince> = datapoint_changes::table
        .inner_join(datapoints::table)
        .filter(datapoints::report_id.eq(report.id))
        .filter(datapoint_changes::report_version.gt(based_on))
        .order(datapoint_changes::id)
        .select((
            datapoint_changes::report_version,
            datapoints::metric_key,
            datapoints::dimension_id,
            datapoints::member,
            datapoints::sub_category,
            datapoint_changes::old_value,
            datapoint_changes::new_value,
            datapoint_changes::changed_by,
        ))
        .load(conn)
        .await?;
    // Values an upload created since: an upload keeps no history row for a value it is the
    // first to give, its own record says which ones and at which version of the report.
    let created: Vec<CreatedByUpload> = diesel::sql_query(
        "SELECT c.report_version AS version, v.metric_key, v.dimension_id, v.member, v.value, \
             s.uploaded_by \
         FROM spreadsheet_report_changes c \
         JOIN spreadsheets s ON s.id = c.spreadsheet_id \
         JOIN spreadsheet_values v ON v.spreadsheet_id = c.spreadsheet_id \
             AND v.report_id = c.report_id AND v.datapoint_created \
         WHERE c.report_id = $1 AND c.report_version > $2 \
         ORDER BY v.id",
    )
    .bind::<diesel::sql_types::Integer, _>(report.id.0)
    .bind::<diesel::sql_types::Integer, _>(based_on)
    .load(conn)
    .await?;
    let mut changes = changes;
    changes.extend(created.into_iter().map(|c| {
        (
            Some(c.version),
            c.metric_key,
            c.dimension_id,
            c.member,
            None,
            None,
            c.value,
            c.uploaded_by.map(UserId),
        )
    }));
    // In the order the versions were made (a sort that keeps each version's own order).
    changes.sort_by_key(|change| change.0);
    let changes: Vec<serde_json::Value> = changes
        .into_iter()
        .map(|(version, metric, dimension, member, sub, old, new, by)| {
            json!({
                "version": version,
                "metricKey": metric,
                "dimensionId": dimension,
                "member": member,
                "subCategory": sub,
                "oldValue": old,
                "newValue": new,
                "changedBy": by.map(|id| id.to_string()),
            })
        })
        .collect();
    Ok(AppError::Detailed {
        code: ErrorCode::Conflict,
        message: format!(
            "the report changed since version {based_on} (it is at version {}, {} value{} changed): \
             reload it and save again; nothing was saved",
            report.version,
            changes.len(),
            if changes.len() == 1 { "" } else { "s" }
        ),
        details: json!({ "currentVersion": report.version, "changedSince": changes }),
    })
}
