//! The feeds' statements. `COPY` takes no bound parameters, so every input reaches the
//! statement through transaction-local settings (`set_config('jc.…', $1, true)`) that the
//! statement reads with `current_setting`: the text of a statement never holds a value from
//! outside.

use super::Audience;

/// The settings a feed statement reads, in the order [`set_config`] binds them.
pub const SETTINGS: [&str; 7] = [
    "jc.agencies",
    "jc.metric",
    "jc.system",
    "jc.from",
    "jc.to",
    "jc.since",
    "jc.scope",
];

/// The statement that sets the feed's inputs for the rest of the transaction: one text
/// parameter per entry of [`SETTINGS`].
pub fn set_config() -> String {
    let calls: Vec<String> = SETTINGS
        .iter()
        .enumerate()
        .map(|(index, name)| format!("set_config('{name}', ${}, true)", index + 1))
        .collect();
    format!("SELECT {}", calls.join(", "))
}

const SINCE: &str = "(SELECT current_setting('jc.since')::pg_snapshot)";
/// The agencies. Settings are read in scalar subqueries, so that PostgreSQL reads each once
/// per statement (an InitPlan) rather than once per row; the outer cast keeps `ANY` reading
/// an array, not the rows of a subquery.
const AGENCIES: &str = "(SELECT current_setting('jc.agencies')::integer[])::integer[]";

/// Whether a transaction id is one the reader has not seen.
fn unseen(xid: &str) -> String {
    format!("NOT pg_visible_in_snapshot({xid}, {SINCE})")
}

/// Which filters of the query string a statement applies: the statement holds only those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Filtered {
    /// `jc.metric` is set.
    pub metric: bool,
    /// `jc.system` is set.
    pub system: bool,
    /// `jc.from` is set.
    pub from: bool,
    /// `jc.to` is set.
    pub to: bool,
}

/// The filters of the query string, on one row source.
fn filters(filtered: Filtered, metric: &str, system: &str, start: &str) -> String {
    let mut conditions = vec!["TRUE".to_owned()];
    if filtered.metric {
        conditions.push(format!("{metric} = (SELECT current_setting('jc.metric'))"));
    }
    if filtered.system {
        conditions.push(format!(
            "{system}::text = (SELECT current_setting('jc.system'))"
        ));
    }
    if filtered.from {
        conditions.push(format!(
            "{start} >= (SELECT current_setting('jc.from')::date)"
        ));
    }
    if filtered.to {
        conditions.push(format!("{start} < (SELECT current_setting('jc.to')::date)"));
    }
    conditions.join(" AND ")
}

/// Whether a value of this shape is public under the scope in `jc.scope`
/// ([`crate::reports::published::PublishedScope`]).
fn in_scope(
    agency: &str,
    metric: &str,
    frequency: &str,
    dimension: &str,
    member: &str,
    sub_category: &str,
) -> String {
    format!(
        "{sub_category} IS NULL \
         AND EXISTS (SELECT 1 FROM scope s WHERE s.agency_id = {agency} \
             AND s.metric_key = {metric} AND s.frequency = {frequency}) \
         AND NOT EXISTS (SELECT 1 FROM hidden h WHERE h.agency_id = {agency} \
             AND h.metric_key = {metric} AND h.dimension_id = {dimension} AND h.member = {member})"
    )
}

const SCOPE: &str = "scope AS MATERIALIZED (
        SELECT * FROM jsonb_to_recordset(current_setting('jc.scope')::jsonb -> 'metrics')
            AS s (agency_id integer, metric_key text, frequency report_frequency)
    ),
    hidden AS MATERIALIZED (
        SELECT * FROM jsonb_to_recordset(current_setting('jc.scope')::jsonb -> 'hidden_members')
            AS h (agency_id integer, metric_key text, dimension_id text, member text)
    )";

/// Agencies whose public feed changed shape since the cursor (name, systems, dashboard,
/// metric or member settings): their feed is sent again in full.
fn reset() -> String {
    format!(
        "reset AS MATERIALIZED (
        SELECT a.id FROM agencies a
        WHERE a.id = ANY ({AGENCIES})
          AND ({agency}
            OR EXISTS (SELECT 1 FROM metric_settings ms WHERE ms.agency_id = a.id AND {setting})
            OR EXISTS (SELECT 1 FROM metric_setting_members mm
                       WHERE mm.agency_id = a.id AND {member}))
    )",
        agency = unseen("a.changed_xid"),
        setting = unseen("ms.changed_xid"),
        member = unseen("mm.changed_xid"),
    )
}

/// Stored values with their report, agency and metric: `part`, `change` and the conditions
/// are the caller's.
fn values(filtered: Filtered, part: i32, change: &str, condition: &str) -> String {
    format!(
        "SELECT {part} AS part, d.id AS row_id, '{change}'::text AS change,
            r.agency_id, a.name AS agency_name, m.system::text AS system, d.metric_key,
            m.display_name AS metric_name, r.date_range_start AS period_start,
            r.date_range_end AS period_end, r.frequency::text AS frequency,
            d.dimension_id AS breakdown, d.member, d.sub_category,
            {value} AS value, m.unit, {status} AS report_status,
            {published_at} AS published_at, {updated_at} AS updated_at
        FROM reports r
        JOIN agencies a ON a.id = r.agency_id
        JOIN datapoints d ON d.report_id = r.id
        JOIN metric_definitions m ON m.key = d.metric_key
        WHERE r.agency_id = ANY ({AGENCIES})
          AND {filters}
          AND {condition}",
        value = if change == "delete" {
            "NULL::double precision"
        } else {
            "d.value"
        },
        status = if change == "delete" {
            "NULL::text"
        } else {
            "r.status::text"
        },
        published_at = if change == "delete" {
            "NULL::text"
        } else {
            "to_json(r.published_at) #>> '{}'"
        },
        updated_at = if change == "delete" {
            "NULL::text"
        } else {
            "to_json(d.updated_at) #>> '{}'"
        },
        filters = filters(filtered, "d.metric_key", "m.system", "r.date_range_start"),
    )
}

/// Values removed with their report since the cursor.
fn deleted(filtered: Filtered, condition: &str) -> String {
    format!(
        "SELECT 0 AS part, dd.id AS row_id, 'delete'::text AS change,
            dd.agency_id, a.name AS agency_name, m.system::text AS system, dd.metric_key,
            m.display_name AS metric_name, dd.date_range_start AS period_start,
            dd.date_range_end AS period_end, dd.frequency::text AS frequency,
            dd.dimension_id AS breakdown, dd.member, dd.sub_category,
            NULL::double precision AS value, m.unit, NULL::text AS report_status,
            NULL::text AS published_at, to_json(dd.deleted_at) #>> '{{}}' AS updated_at
        FROM deleted_datapoints dd
        LEFT JOIN agencies a ON a.id = dd.agency_id
        LEFT JOIN metric_definitions m ON m.key = dd.metric_key
        WHERE dd.agency_id = ANY ({AGENCIES})
          AND {filters}
          AND {unseen}
          AND {condition}",
        filters = filters(filtered, "dd.metric_key", "m.system", "dd.date_range_start"),
        unseen = unseen("dd.deleted_xid"),
    )
}

/// Every row of a feed — or with `since`, every change after the cursor, removals first —
/// with the columns `part`, `row_id` (a row's position in the change stream), `change`
/// (`upsert` or `delete`) and the feed's own.
pub fn rows(audience: Audience, since: bool, filtered: Filtered) -> String {
    let published = "r.status = 'PUBLISHED'";
    let value_scope = in_scope(
        "r.agency_id",
        "d.metric_key",
        "r.frequency",
        "d.dimension_id",
        "d.member",
        "d.sub_category",
    );
    match (audience, since) {
        (Audience::Members, false) => values(filtered, 3, "upsert", "TRUE"),
        (Audience::Members, true) => format!(
            "{}\nUNION ALL\n{}",
            deleted(filtered, "TRUE"),
            values(
                filtered,
                3,
                "upsert",
                &format!(
                    "({} OR {} OR {})",
                    unseen("d.changed_xid"),
                    unseen("r.status_xid"),
                    unseen("a.changed_xid")
                )
            )
        ),
        (Audience::Public, false) => format!(
            "WITH {SCOPE}\n{}",
            values(
                filtered,
                3,
                "upsert",
                &format!("{published} AND {value_scope}")
            )
        ),
        (Audience::Public, true) => {
            let reset_agency = |column: &str| format!("{column} IN (SELECT id FROM reset)");
            let deleted_scope = in_scope(
                "dd.agency_id",
                "dd.metric_key",
                "dd.frequency",
                "dd.dimension_id",
                "dd.member",
                "dd.sub_category",
            );
            // Removed with their report: values that were public then, or whose report left
            // PUBLISHED after the cursor.
            let removed = format!(
                "dd.sub_category IS NULL \
                 AND (dd.was_published OR (dd.unpublished_xid IS NOT NULL AND {})) \
                 AND ({deleted_scope} OR {})",
                unseen("dd.unpublished_xid"),
                reset_agency("dd.agency_id"),
            );
            // Taken back to draft after the cursor.
            let unpublished = format!(
                "r.status <> 'PUBLISHED' AND r.unpublished_xid IS NOT NULL AND {} \
                 AND d.sub_category IS NULL AND ({value_scope} OR {})",
                unseen("r.unpublished_xid"),
                reset_agency("r.agency_id"),
            );
            // No longer shown after a settings change.
            let hidden = format!(
                "{published} AND d.sub_category IS NULL AND {} AND NOT ({value_scope})",
                reset_agency("r.agency_id"),
            );
            let current = format!(
                "{published} AND {value_scope} AND ({} OR {} OR {})",
                unseen("d.changed_xid"),
                unseen("r.status_xid"),
                reset_agency("r.agency_id"),
            );
            format!(
                "WITH {SCOPE},\n{}\n{}\nUNION ALL\n{}\nUNION ALL\n{}\nUNION ALL\n{}",
                reset(),
                deleted(filtered, &removed),
                values(filtered, 1, "delete", &unpublished),
                values(filtered, 2, "delete", &hidden),
                values(filtered, 3, "upsert", &current),
            )
        }
    }
}

/// The columns of a feed, in order.
pub fn columns(audience: Audience, since: bool) -> Vec<&'static str> {
    let mut columns = Vec::new();
    if since {
        columns.push("change");
    }
    columns.extend([
        "agency_id",
        "agency_name",
        "system",
        "metric_key",
        "metric_name",
        "period_start",
        "period_end",
        "frequency",
        "breakdown",
        "member",
    ]);
    match audience {
        Audience::Public => columns.extend(["value", "unit", "published_at"]),
        Audience::Members => columns.extend([
            "sub_category",
            "value",
            "unit",
            "report_status",
            "published_at",
            "updated_at",
        ]),
    }
    columns
}

/// The feed's rows as `COPY … TO STDOUT`: CSV with a header, or JSON Lines.
pub fn copy(audience: Audience, since: bool, filtered: Filtered, json_lines: bool) -> String {
    let columns = columns(audience, since).join(", ");
    let rows = rows(audience, since, filtered);
    if json_lines {
        // One JSON document per line. CSV with quote and delimiter characters JSON never
        // holds unescaped leaves the documents as they are (text format would double every
        // backslash).
        format!(
            "COPY (SELECT row_to_json(f)::text FROM (SELECT {columns} FROM ({rows}) rows) f) \
             TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
        )
    } else {
        format!(
            "COPY (SELECT {columns} FROM ({rows}) rows) TO STDOUT WITH (FORMAT csv, HEADER true)"
        )
    }
}

/// A page of the change stream, after position (`$1`, `$2`), at most `$3` rows.
pub fn page(audience: Audience, since: bool, filtered: Filtered) -> String {
    format!(
        "SELECT * FROM ({}) rows WHERE (part, row_id) > ($1, $2) ORDER BY part, row_id LIMIT $3",
        rows(audience, since, filtered)
    )
}
