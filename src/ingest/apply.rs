//! Applying a staged upload, set by set: duplicate rows, breakdowns against totals, the
//! comparison with what is stored, and — unless it is a dry run — the writes: reports
//! created, values inserted, or updated with a history row, changed reports back to draft.
//!
//! Every step is one SQL statement over all of the upload's staged values, in the caller's
//! transaction: the upload is applied whole, or not at all.

use chrono::NaiveDate;
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Date, Double, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::parse::{Message, Output};
use super::read::format_number;
use super::stage::Batch;
use crate::models::enums::{MessageSeverity, ValueSource};
use crate::models::ids::{SpreadsheetId, UserId};

/// Whose upload is applied, and how.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// The spreadsheet.
    pub spreadsheet: SpreadsheetId,
    /// Compare only, write nothing.
    pub dry_run: bool,
    /// BULK_UPLOAD (a person) or AUTOMATED_BULK_UPLOAD.
    pub source: ValueSource,
    /// The person, for a person's upload.
    pub user: Option<UserId>,
}

impl Mode {
    fn automated(&self) -> bool {
        self.source == ValueSource::AutomatedBulkUpload
    }

    fn source_name(&self) -> &'static str {
        match self.source {
            ValueSource::ManualEntry => "MANUAL_ENTRY",
            ValueSource::BulkUpload => "BULK_UPLOAD",
            ValueSource::AutomatedBulkUpload => "AUTOMATED_BULK_UPLOAD",
        }
    }
}

#[derive(QueryableByName)]
struct Duplicate {
    #[diesel(sql_type = Integer)]
    sheet_index: i32,
    #[diesel(sql_type = Text)]
    sheet: String,
    #[diesel(sql_type = Integer)]
    agency_id: i32,
    #[diesel(sql_type = Text)]
    metric_key: String,
    #[diesel(sql_type = Text)]
    frequency: String,
    #[diesel(sql_type = Date)]
    start: NaiveDate,
    #[diesel(sql_type = Text)]
    agency: String,
    #[diesel(sql_type = Array<BigInt>)]
    rows: Vec<i64>,
}

#[derive(QueryableByName)]
struct SheetSpan {
    #[diesel(sql_type = Bool)]
    several: bool,
}

#[derive(QueryableByName)]
struct Mismatch {
    #[diesel(sql_type = Text)]
    sheet: String,
    #[diesel(sql_type = Text)]
    metric_key: String,
    #[diesel(sql_type = Text)]
    frequency: String,
    #[diesel(sql_type = Date)]
    start: NaiveDate,
    #[diesel(sql_type = Text)]
    agency: String,
    #[diesel(sql_type = Double)]
    sum: f64,
    #[diesel(sql_type = Double)]
    total: f64,
}

/// The counts an applied upload ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct Applied {
    /// Values read from rows and not dropped.
    #[diesel(sql_type = BigInt)]
    pub rows_saved: i64,
    /// Values stored where there was none.
    #[diesel(sql_type = BigInt)]
    pub new_values: i64,
    /// Values changed.
    #[diesel(sql_type = BigInt)]
    pub updated_values: i64,
    /// Whether any message is an error.
    #[diesel(sql_type = Bool)]
    pub has_errors: bool,
}

fn period_text(frequency: &str, start: NaiveDate) -> String {
    if frequency == "MONTHLY" {
        start.format("%B %Y").to_string()
    } else {
        format!("the year from {}", start.format("%B %Y"))
    }
}

/// The staged rows were just written: the statements of [`apply`] are planned on their real
/// numbers. Run in a short transaction of its own, not the applying one: `ANALYZE` holds a
/// lock that another `ANALYZE` of the table waits for until the transaction ends, and within
/// the applying transaction every other upload's apply would wait for this one's.
pub async fn refresh_statistics(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
    diesel::sql_query("ANALYZE spreadsheet_values")
        .execute(conn)
        .await
        .map(drop)
}

/// Applies the staged upload (inside the caller's transaction). Refresh the staging table's
/// statistics first, outside that transaction ([`refresh_statistics`]).
pub async fn apply(conn: &mut AsyncPgConnection, mode: Mode) -> diesel::QueryResult<Applied> {
    let id = mode.spreadsheet.0;
    let mut messages = Batch::default();

    // Duplicate rows: none of the sheet's values of that metric and period are kept. The
    // groups are found by one hashed pass; only their rows are read again.
    let duplicates: Vec<Duplicate> = diesel::sql_query(
        "WITH groups AS MATERIALIZED ( \
             SELECT sheet_index, agency_id, metric_key, dimension_id, member, frequency, \
                 date_range_start \
             FROM spreadsheet_values WHERE spreadsheet_id = $1 AND NOT derived \
             GROUP BY sheet_index, agency_id, metric_key, dimension_id, member, frequency, \
                 date_range_start \
             HAVING count(*) > 1) \
         SELECT g.sheet_index, min(v.sheet) AS sheet, g.agency_id, g.metric_key, \
             g.frequency::text AS frequency, g.date_range_start AS start, \
             min(a.name) AS agency, array_agg(v.row_number ORDER BY v.row_number) AS rows \
         FROM groups g \
         JOIN spreadsheet_values v ON v.spreadsheet_id = $1 AND NOT v.derived \
             AND v.agency_id = g.agency_id AND v.metric_key = g.metric_key \
             AND v.frequency = g.frequency AND v.date_range_start = g.date_range_start \
             AND v.sheet_index = g.sheet_index \
             AND v.dimension_id IS NOT DISTINCT FROM g.dimension_id \
             AND v.member IS NOT DISTINCT FROM g.member \
         JOIN agencies a ON a.id = g.agency_id \
         GROUP BY g.sheet_index, g.agency_id, g.metric_key, g.dimension_id, g.member, \
             g.frequency, g.date_range_start \
         ORDER BY min(v.row_number)",
    )
    .bind::<Integer, _>(id)
    .load(conn)
    .await?;
    for duplicate in &duplicates {
        let first = <[i64]>::first(&duplicate.rows).copied().unwrap_or_default();
        let again: Vec<String> = duplicate.rows.iter().skip(1).map(i64::to_string).collect();
        messages.push(Output::Message(Message {
            severity: MessageSeverity::Error,
            title: "Too Many Rows".into(),
            description: format!(
                "Row {first}: the same value is given again in row {} for {} ({}): none of this \
                 sheet's values of the metric for that period were saved. Keep one row per value.",
                again.join(", "),
                period_text(&duplicate.frequency, duplicate.start),
                duplicate.agency
            ),
            sheet: Some(duplicate.sheet.clone()),
            row: <[i64]>::first(&duplicate.rows).and_then(|&row| u64::try_from(row).ok()),
            metric_key: Some(duplicate.metric_key.clone()),
            value: None,
            options: Vec::new(),
        }));
    }
    if !duplicates.is_empty() {
        let column = |f: fn(&Duplicate) -> String| duplicates.iter().map(f).collect::<Vec<_>>();
        diesel::sql_query(
            "UPDATE spreadsheet_values v SET outcome = 'DROPPED' \
             FROM unnest($2::int4[], $3::int4[], $4::text[], $5::text[], $6::date[]) \
                 AS d(sheet_index, agency_id, metric_key, frequency, date_range_start) \
             WHERE v.spreadsheet_id = $1 AND v.sheet_index = d.sheet_index \
                 AND v.agency_id = d.agency_id AND v.metric_key = d.metric_key \
                 AND v.frequency = d.frequency::report_frequency \
                 AND v.date_range_start = d.date_range_start",
        )
        .bind::<Integer, _>(id)
        .bind::<Array<Integer>, _>(duplicates.iter().map(|d| d.sheet_index).collect::<Vec<_>>())
        .bind::<Array<Integer>, _>(duplicates.iter().map(|d| d.agency_id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(column(|d| d.metric_key.clone()))
        .bind::<Array<Text>, _>(column(|d| d.frequency.clone()))
        .bind::<Array<Date>, _>(duplicates.iter().map(|d| d.start).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }
    // A value given again by a later sheet replaces the earlier one (only an upload of several
    // sheets can do that).
    let sheets: SheetSpan = diesel::sql_query(
        "SELECT coalesce(min(sheet_index) <> max(sheet_index), false) AS several \
         FROM spreadsheet_values WHERE spreadsheet_id = $1",
    )
    .bind::<Integer, _>(id)
    .get_result(conn)
    .await?;
    if sheets.several {
        diesel::sql_query(
            "UPDATE spreadsheet_values v SET outcome = 'DROPPED' \
             FROM (SELECT id, row_number() OVER (PARTITION BY agency_id, metric_key, \
                       dimension_id, member, frequency, date_range_start \
                       ORDER BY sheet_index DESC, row_number DESC) AS rank \
                   FROM spreadsheet_values WHERE spreadsheet_id = $1 AND outcome IS NULL) r \
             WHERE v.id = r.id AND r.rank > 1",
        )
        .bind::<Integer, _>(id)
        .execute(conn)
        .await?;
    }

    // Reports for the periods that get values (not in a dry run): made before the comparison
    // so that one pass over the staged values finds every report. Totals made from
    // breakdowns and members cleared below belong to these same periods.
    if !mode.dry_run {
        let created = diesel::sql_query(
            "INSERT INTO reports (agency_id, frequency, date_range_start, date_range_end, status) \
             SELECT DISTINCT v.agency_id, v.frequency, v.date_range_start, \
                 (v.date_range_start + CASE v.frequency WHEN 'MONTHLY' THEN interval '1 month' \
                                                        ELSE interval '1 year' END)::date, \
                 'NOT_STARTED'::report_status \
             FROM spreadsheet_values v \
             WHERE v.spreadsheet_id = $1 AND v.outcome IS NULL AND v.value IS NOT NULL \
             ON CONFLICT (agency_id, frequency, date_range_start) DO NOTHING",
        )
        .bind::<Integer, _>(id)
        .execute(conn)
        .await?;
        // Thousands of new reports in a status the statistics call rare would lead the
        // planner of the statements below to nested loops over them.
        if created > 1_000 {
            diesel::sql_query("ANALYZE reports").execute(conn).await?;
        }
        // The upload's reports, locked in id order as every writer locks reports: no other
        // transaction adds or changes their values until this one ends, so what the steps
        // below read of the stored values stays true (the totals already stored, the members
        // to clear, the comparison) and new values can be given their ids. Editors' saves to
        // these reports wait until the upload is applied.
        diesel::sql_query(
            "SELECT r.id FROM reports r \
             WHERE (r.agency_id, r.frequency, r.date_range_start) IN ( \
                 SELECT agency_id, frequency, date_range_start FROM spreadsheet_values \
                 WHERE spreadsheet_id = $1 AND outcome IS NULL) \
             ORDER BY r.id FOR UPDATE OF r",
        )
        .bind::<Integer, _>(id)
        .execute(conn)
        .await?;
    }
    // Breakdowns against totals given in the same upload.
    let mismatches: Vec<Mismatch> = diesel::sql_query(
        "WITH sums AS ( \
             SELECT sheet_index, min(sheet) AS sheet, agency_id, metric_key, dimension_id, \
                 frequency, date_range_start, sum(value) AS sum \
             FROM spreadsheet_values \
             WHERE spreadsheet_id = $1 AND dimension_id IS NOT NULL AND NOT derived \
                 AND outcome IS NULL \
             GROUP BY sheet_index, agency_id, metric_key, dimension_id, frequency, \
                 date_range_start) \
         SELECT s.sheet, s.metric_key, s.frequency::text AS frequency, \
             s.date_range_start AS start, a.name AS agency, s.sum, t.value AS total \
         FROM sums s \
         JOIN spreadsheet_values t ON t.spreadsheet_id = $1 AND t.dimension_id IS NULL \
             AND NOT t.derived AND t.outcome IS NULL AND t.agency_id = s.agency_id \
             AND t.metric_key = s.metric_key AND t.frequency = s.frequency \
             AND t.date_range_start = s.date_range_start \
         JOIN agencies a ON a.id = s.agency_id \
         WHERE abs(s.sum - t.value) > 1 \
         ORDER BY s.sheet_index, s.metric_key, s.date_range_start, s.dimension_id",
    )
    .bind::<Integer, _>(id)
    .load(conn)
    .await?;
    for mismatch in &mismatches {
        messages.push(Output::Message(Message {
            severity: MessageSeverity::Warning,
            title: "Breakdown Total Warning".into(),
            description: format!(
                "The values of sheet {} add up to {} for {} ({}), but the total given is {}. \
                 Both were saved; check that the breakdown is complete.",
                mismatch.sheet,
                format_number(mismatch.sum),
                period_text(&mismatch.frequency, mismatch.start),
                mismatch.agency,
                format_number(mismatch.total)
            ),
            sheet: None,
            row: None,
            metric_key: Some(mismatch.metric_key.clone()),
            value: Some(format_number(mismatch.sum)),
            options: Vec::new(),
        }));
    }
    // Without a total, a breakdown's sum becomes the total — unless one is already stored, or
    // the sum exceeds the largest value there may be.
    diesel::sql_query(
        "INSERT INTO spreadsheet_values (spreadsheet_id, sheet_index, sheet, agency_id, \
             metric_key, frequency, date_range_start, value, derived) \
         SELECT DISTINCT ON (s.agency_id, s.metric_key, s.frequency, s.date_range_start) \
             $1, s.sheet_index, s.sheet, s.agency_id, s.metric_key, s.frequency, \
             s.date_range_start, round(s.sum::numeric, 2)::float8, true \
         FROM (SELECT sheet_index, min(sheet) AS sheet, agency_id, metric_key, dimension_id, \
                   frequency, date_range_start, sum(value) AS sum \
               FROM spreadsheet_values \
               WHERE spreadsheet_id = $1 AND dimension_id IS NOT NULL AND NOT derived \
                   AND outcome IS NULL \
               GROUP BY sheet_index, agency_id, metric_key, dimension_id, frequency, \
                   date_range_start) s \
         WHERE s.sum <= $2 AND NOT EXISTS ( \
                 SELECT 1 FROM spreadsheet_values t \
                 WHERE t.spreadsheet_id = $1 AND t.dimension_id IS NULL AND NOT t.derived \
                     AND t.outcome IS NULL AND t.agency_id = s.agency_id \
                     AND t.metric_key = s.metric_key AND t.frequency = s.frequency \
                     AND t.date_range_start = s.date_range_start) \
             AND NOT EXISTS ( \
                 SELECT 1 FROM reports r \
                 JOIN datapoints d ON d.report_id = r.id AND d.metric_key = s.metric_key \
                     AND d.dimension_id IS NULL AND d.sub_category IS NULL \
                     AND d.value IS NOT NULL \
                 WHERE r.agency_id = s.agency_id AND r.frequency = s.frequency \
                     AND r.date_range_start = s.date_range_start) \
         ORDER BY s.agency_id, s.metric_key, s.frequency, s.date_range_start, s.sheet_index, \
             s.dimension_id",
    )
    .bind::<Integer, _>(id)
    // A total is a value like any other: none past the bound.
    .bind::<diesel::sql_types::Double, _>(crate::limits::MAX_VALUE)
    .execute(conn)
    .await?;
    // An automated upload's breakdown is the whole breakdown: members it leaves out are
    // cleared.
    if mode.automated() {
        diesel::sql_query(
            "INSERT INTO spreadsheet_values (spreadsheet_id, sheet_index, sheet, agency_id, \
                 metric_key, dimension_id, member, frequency, date_range_start, value, derived) \
             SELECT $1, p.sheet_index, p.sheet, p.agency_id, p.metric_key, d.dimension_id, \
                 d.member, p.frequency, p.date_range_start, NULL, true \
             FROM (SELECT min(sheet_index) AS sheet_index, min(sheet) AS sheet, agency_id, \
                       metric_key, dimension_id, frequency, date_range_start \
                   FROM spreadsheet_values \
                   WHERE spreadsheet_id = $1 AND dimension_id IS NOT NULL AND NOT derived \
                       AND outcome IS NULL \
                   GROUP BY agency_id, metric_key, dimension_id, frequency, date_range_start) p \
             JOIN reports r ON r.agency_id = p.agency_id AND r.frequency = p.frequency \
                 AND r.date_range_start = p.date_range_start \
             JOIN datapoints d ON d.report_id = r.id AND d.metric_key = p.metric_key \
                 AND d.dimension_id = p.dimension_id AND d.sub_category IS NULL \
                 AND d.value IS NOT NULL \
             WHERE NOT EXISTS ( \
                 SELECT 1 FROM spreadsheet_values v \
                 WHERE v.spreadsheet_id = $1 AND v.outcome IS NULL \
                     AND v.agency_id = p.agency_id AND v.metric_key = p.metric_key \
                     AND v.dimension_id = d.dimension_id AND v.member = d.member \
                     AND v.frequency = p.frequency AND v.date_range_start = p.date_range_start)",
        )
        .bind::<Integer, _>(id)
        .execute(conn)
        .await?;
    }

    // Compare with what is stored, in one pass over the staged values in the order they lie
    // on disk (each row is looked up in `reports` and `datapoints` by their unique indexes, so
    // the rows are rewritten in place rather than in the random order of a hash join): each
    // value's report (created by this transaction, or not there at all in a dry run, means a
    // new report), the value it replaces, and the outcome. A value with no row yet (not in a
    // dry run) gets its id.
    diesel::sql_query(
        "UPDATE spreadsheet_values v SET \
             (report_id, report_created, datapoint_id, datapoint_created, old_value, outcome) = ( \
                 SELECT r.id, r.id IS NULL OR r.xmin = pg_current_xact_id()::xid, \
                     CASE WHEN $2 AND d.id IS NULL AND v.value IS NOT NULL \
                         THEN nextval('datapoints_id_seq'::regclass) ELSE d.id END, \
                     $2 AND d.id IS NULL AND v.value IS NOT NULL, \
                     d.value, \
                     CASE WHEN v.value IS NOT DISTINCT FROM d.value THEN 'UNCHANGED' \
                          WHEN d.value IS NULL THEN 'NEW' \
                          ELSE 'UPDATED' END::value_outcome \
                 FROM (SELECT) AS one \
                 LEFT JOIN reports r ON r.agency_id = v.agency_id \
                     AND r.frequency = v.frequency AND r.date_range_start = v.date_range_start \
                 LEFT JOIN datapoints d ON d.report_id = r.id AND d.metric_key = v.metric_key \
                     AND d.sub_category IS NULL \
                     AND d.dimension_id IS NOT DISTINCT FROM v.dimension_id \
                     AND d.member IS NOT DISTINCT FROM v.member) \
         WHERE v.spreadsheet_id = $1 AND v.outcome IS NULL",
    )
    .bind::<Integer, _>(id)
    .bind::<Bool, _>(!mode.dry_run)
    .execute(conn)
    .await?;

    if !mode.dry_run {
        write(conn, mode).await?;
    }
    messages.write(conn, mode.spreadsheet).await?;

    diesel::sql_query(
        "SELECT \
             count(*) FILTER (WHERE NOT derived AND outcome <> 'DROPPED') AS rows_saved, \
             count(*) FILTER (WHERE outcome = 'NEW') AS new_values, \
             count(*) FILTER (WHERE outcome = 'UPDATED') AS updated_values, \
             EXISTS (SELECT 1 FROM spreadsheet_messages \
                     WHERE spreadsheet_id = $1 AND severity = 'ERROR') AS has_errors \
         FROM spreadsheet_values WHERE spreadsheet_id = $1",
    )
    .bind::<Integer, _>(id)
    .get_result(conn)
    .await
}

/// The writes of an upload that is not a dry run.
async fn write(conn: &mut AsyncPgConnection, mode: Mode) -> diesel::QueryResult<()> {
    let id = mode.spreadsheet.0;
    let user = mode.user.map(|user| user.0);
    // The values: rows that are there updated, new rows inserted under their reserved ids
    // (plain statements: the reports are locked, so no other writer can add the same cell).
    diesel::sql_query(
        "UPDATE datapoints d SET value = v.value, source = $2::value_source, \
             updated_by = $3, updated_at = now() \
         FROM spreadsheet_values v \
         WHERE v.spreadsheet_id = $1 AND v.outcome IN ('NEW', 'UPDATED') \
             AND NOT v.datapoint_created AND d.id = v.datapoint_id",
    )
    .bind::<Integer, _>(id)
    .bind::<Text, _>(mode.source_name())
    .bind::<Nullable<Integer>, _>(user)
    .execute(conn)
    .await?;
    diesel::sql_query(
        "INSERT INTO datapoints (id, report_id, metric_key, dimension_id, member, value, source, \
             updated_by) \
         SELECT datapoint_id, report_id, metric_key, dimension_id, member, value, \
             $2::value_source, $3 \
         FROM spreadsheet_values \
         WHERE spreadsheet_id = $1 AND datapoint_created",
    )
    .bind::<Integer, _>(id)
    .bind::<Text, _>(mode.source_name())
    .bind::<Nullable<Integer>, _>(user)
    .execute(conn)
    .await?;
    // Changed reports: their status changes recorded, then a new version, back to draft for a
    // person's upload (a new report becomes a draft either way); the history of each stored
    // value that changed, editors, and one event each. Separate statements, so that each is
    // planned on the real numbers of the one before.
    const CHANGED: &str = "SELECT DISTINCT report_id FROM spreadsheet_values \
         WHERE spreadsheet_id = $1 AND outcome IN ('NEW', 'UPDATED')";
    diesel::sql_query(format!(
        "INSERT INTO report_status_changes (report_id, old_status, new_status, changed_by) \
         SELECT id, status, 'DRAFT', $2 FROM reports \
         WHERE id IN ({CHANGED}) AND status <> 'DRAFT' AND ($3 OR status = 'NOT_STARTED')"
    ))
    .bind::<Integer, _>(id)
    .bind::<Nullable<Integer>, _>(user)
    .bind::<Bool, _>(!mode.automated())
    .execute(conn)
    .await?;
    diesel::sql_query(format!(
        "UPDATE reports SET version = version + 1, last_modified_at = now(), \
             status = CASE WHEN $2 OR status = 'NOT_STARTED' THEN 'DRAFT'::report_status \
                           ELSE status END \
         WHERE id IN ({CHANGED})"
    ))
    .bind::<Integer, _>(id)
    .bind::<Bool, _>(!mode.automated())
    .execute(conn)
    .await?;
    // History for values that were there and changed (a value first given by this upload
    // has none: the upload's own record says which values it created, and at which version).
    diesel::sql_query(
        "INSERT INTO datapoint_changes (datapoint_id, changed_by, old_value, new_value, source, \
             report_version) \
         SELECT v.datapoint_id, $3, v.old_value, v.value, $2::value_source, r.version \
         FROM spreadsheet_values v JOIN reports r ON r.id = v.report_id \
         WHERE v.spreadsheet_id = $1 AND v.outcome IN ('NEW', 'UPDATED') \
             AND NOT v.datapoint_created",
    )
    .bind::<Integer, _>(id)
    .bind::<Text, _>(mode.source_name())
    .bind::<Nullable<Integer>, _>(user)
    .execute(conn)
    .await?;
    if let Some(user) = user {
        diesel::sql_query(format!(
            "INSERT INTO report_editors (report_id, user_id) \
             SELECT report_id, $2 FROM ({CHANGED}) changed \
             ON CONFLICT (report_id, user_id) DO UPDATE SET last_edited_at = now()"
        ))
        .bind::<Integer, _>(id)
        .bind::<Integer, _>(user)
        .execute(conn)
        .await?;
    }
    diesel::sql_query(format!(
        "SELECT count(pg_notify('report_events', json_build_object( \
             'agency_id', agency_id, 'report_id', id, 'kind', 'SAVED', \
             'version', version, 'status', status)::text)) AS notified \
         FROM reports WHERE id IN ({CHANGED})"
    ))
    .bind::<Integer, _>(id)
    .execute(conn)
    .await?;
    diesel::sql_query(
        "INSERT INTO spreadsheet_report_changes (spreadsheet_id, report_id, change, \
             report_version) \
         SELECT $1, g.report_id, CASE \
             WHEN g.created THEN 'NEW' WHEN g.changed THEN 'UPDATED' \
             ELSE 'UNCHANGED' END::report_change_kind, \
             CASE WHEN g.changed THEN r.version END \
         FROM (SELECT report_id, bool_or(report_created) AS created, \
                   bool_or(outcome IN ('NEW', 'UPDATED')) AS changed \
               FROM spreadsheet_values \
               WHERE spreadsheet_id = $1 AND report_id IS NOT NULL AND outcome <> 'DROPPED' \
               GROUP BY report_id) g \
         JOIN reports r ON r.id = g.report_id \
         ON CONFLICT DO NOTHING",
    )
    .bind::<Integer, _>(id)
    .execute(conn)
    .await?;
    Ok(())
}
