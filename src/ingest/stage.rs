//! Writing what the parser read: values into the staging table and messages beside them,
//! each batch in one statement per table, in the same transaction as the reading position.

use diesel::sql_types::{Array, BigInt, Date, Double, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::parse::{Message, Output, Value};
use crate::models::enums::MessageSeverity;
use crate::models::ids::SpreadsheetId;

/// Messages about single rows kept for one upload: enough to fix a file by, and a bounded
/// amount to store and to show. Messages about the file or its sheets have the same cap.
pub const MAX_ROW_MESSAGES: usize = 1_000;

/// Title of the message that says more rows had problems than were kept.
pub const TOO_MANY_MESSAGES: &str = "Too Many Problems";

/// Messages and values of one batch, column by column.
#[derive(Debug, Default)]
pub struct Batch {
    values: ValueColumns,
    messages: MessageColumns,
    forget: Vec<(String, String)>,
    /// Rows read in this batch.
    pub rows_read: i64,
}

#[derive(Debug, Default)]
struct ValueColumns {
    sheet_index: Vec<i32>,
    sheet: Vec<String>,
    row: Vec<i64>,
    agency: Vec<i32>,
    metric: Vec<String>,
    dimension: Vec<Option<String>>,
    member: Vec<Option<String>>,
    frequency: Vec<String>,
    start: Vec<chrono::NaiveDate>,
    value: Vec<f64>,
}

#[derive(Debug, Default)]
struct MessageColumns {
    severity: Vec<String>,
    title: Vec<String>,
    description: Vec<String>,
    sheet: Vec<Option<String>>,
    row: Vec<Option<i32>>,
    metric: Vec<Option<String>>,
    value: Vec<Option<String>>,
    options: Vec<String>,
}

impl Batch {
    /// Adds one output of the parser.
    pub fn push(&mut self, output: Output) {
        match output {
            Output::Value(value) => self.push_value(value),
            Output::Message(message) => self.push_message(message),
            Output::ForgetRowMessages { sheet, title } => {
                // A message of this batch may be among them.
                self.forget.push((sheet, title));
            }
        }
    }

    fn push_value(&mut self, value: Value) {
        let columns = &mut self.values;
        columns
            .sheet_index
            .push(i32::try_from(value.sheet_index).unwrap_or(i32::MAX));
        columns.sheet.push(value.sheet);
        columns
            .row
            .push(i64::try_from(value.row).unwrap_or(i64::MAX));
        columns.agency.push(value.agency_id.0);
        columns.metric.push(value.metric_key);
        let (dimension, member) = value.member.unzip();
        columns.dimension.push(dimension);
        columns.member.push(member);
        columns.frequency.push(value.frequency.key().to_owned());
        columns.start.push(value.start);
        columns.value.push(value.value);
    }

    fn push_message(&mut self, message: Message) {
        let columns = &mut self.messages;
        columns.severity.push(
            match message.severity {
                MessageSeverity::Error => "ERROR",
                MessageSeverity::Warning => "WARNING",
            }
            .to_owned(),
        );
        columns.title.push(message.title);
        columns.description.push(message.description);
        columns.sheet.push(message.sheet);
        columns
            .row
            .push(message.row.and_then(|row| i32::try_from(row).ok()));
        columns.metric.push(message.metric_key);
        columns.value.push(message.value);
        columns
            .options
            .push(serde_json::to_string(&message.options).unwrap_or_else(|_| "[]".into()));
    }

    /// Values in the batch.
    pub fn value_count(&self) -> usize {
        self.values.value.len()
    }

    /// Whether the batch holds anything to write.
    pub fn is_empty(&self) -> bool {
        self.values.value.is_empty() && self.messages.title.is_empty() && self.forget.is_empty()
    }

    /// Writes the batch (inside the caller's transaction). Of the messages about single rows,
    /// an upload keeps the first [`MAX_ROW_MESSAGES`], and then one that says there were more.
    pub async fn write(
        self,
        conn: &mut AsyncPgConnection,
        spreadsheet: SpreadsheetId,
    ) -> diesel::QueryResult<()> {
        let Self {
            values: v,
            messages: m,
            forget,
            ..
        } = self;
        if !v.value.is_empty() {
            diesel::sql_query(
                "INSERT INTO spreadsheet_values (spreadsheet_id, sheet_index, sheet, row_number, \
                     agency_id, metric_key, dimension_id, member, frequency, date_range_start, value) \
                 SELECT $1, t.sheet_index, t.sheet, t.row_number, t.agency_id, t.metric_key, \
                     t.dimension_id, t.member, t.frequency::report_frequency, t.start, t.value \
                 FROM unnest($2::int4[], $3::text[], $4::int8[], $5::int4[], $6::text[], \
                     $7::text[], $8::text[], $9::text[], $10::date[], $11::float8[]) \
                     AS t(sheet_index, sheet, row_number, agency_id, metric_key, dimension_id, \
                          member, frequency, start, value)",
            )
            .bind::<Integer, _>(spreadsheet.0)
            .bind::<Array<Integer>, _>(v.sheet_index)
            .bind::<Array<Text>, _>(v.sheet)
            .bind::<Array<BigInt>, _>(v.row)
            .bind::<Array<Integer>, _>(v.agency)
            .bind::<Array<Text>, _>(v.metric)
            .bind::<Array<Nullable<Text>>, _>(v.dimension)
            .bind::<Array<Nullable<Text>>, _>(v.member)
            .bind::<Array<Text>, _>(v.frequency)
            .bind::<Array<Date>, _>(v.start)
            .bind::<Array<Double>, _>(v.value)
            .execute(conn)
            .await?;
        }
        if !m.title.is_empty() {
            let given = m.title.len();
            // Messages about rows up to the cap, and messages about the file or its sheets up
            // to the same cap of their own.
            let stored = diesel::sql_query(
                "INSERT INTO spreadsheet_messages (spreadsheet_id, severity, title, message, sheet, \
                     row_number, metric_key, value, options) \
                 SELECT $1, t.severity::message_severity, t.title, t.description, t.sheet, t.row, \
                     t.metric, t.value, ARRAY(SELECT jsonb_array_elements_text(t.options::jsonb)) \
                 FROM (SELECT u.*, row_number() OVER (PARTITION BY u.row IS NULL ORDER BY u.n) AS k \
                     FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int4[], \
                         $7::text[], $8::text[], $9::text[]) WITH ORDINALITY \
                         AS u(severity, title, description, sheet, row, metric, value, options, n)) t \
                 WHERE t.k <= $10 - CASE WHEN t.row IS NULL \
                     THEN (SELECT count(*) FROM spreadsheet_messages \
                         WHERE spreadsheet_id = $1 AND row_number IS NULL) \
                     ELSE (SELECT count(*) FROM spreadsheet_messages \
                         WHERE spreadsheet_id = $1 AND row_number IS NOT NULL) END \
                 ORDER BY t.n",
            )
            .bind::<Integer, _>(spreadsheet.0)
            .bind::<Array<Text>, _>(m.severity)
            .bind::<Array<Text>, _>(m.title)
            .bind::<Array<Text>, _>(m.description)
            .bind::<Array<Nullable<Text>>, _>(m.sheet)
            .bind::<Array<Nullable<Integer>>, _>(m.row)
            .bind::<Array<Nullable<Text>>, _>(m.metric)
            .bind::<Array<Nullable<Text>>, _>(m.value)
            .bind::<Array<Text>, _>(m.options)
            .bind::<BigInt, _>(i64::try_from(MAX_ROW_MESSAGES).unwrap_or(i64::MAX))
            .execute(conn)
            .await?;
            if stored < given {
                diesel::sql_query(
                    "INSERT INTO spreadsheet_messages (spreadsheet_id, severity, title, message) \
                     SELECT $1, 'ERROR', $2, $3 WHERE NOT EXISTS (SELECT 1 FROM spreadsheet_messages \
                         WHERE spreadsheet_id = $1 AND title = $2 AND row_number IS NULL)",
                )
                .bind::<Integer, _>(spreadsheet.0)
                .bind::<Text, _>(TOO_MANY_MESSAGES)
                .bind::<Text, _>(format!(
                    "The file has more problems than the {MAX_ROW_MESSAGES} listed here; fix \
                     these and upload the file again to see the rest."
                ))
                .execute(conn)
                .await?;
            }
        }
        for (sheet, title) in forget {
            diesel::sql_query(
                "DELETE FROM spreadsheet_messages \
                 WHERE spreadsheet_id = $1 AND sheet = $2 AND title = $3 AND row_number IS NOT NULL",
            )
            .bind::<Integer, _>(spreadsheet.0)
            .bind::<Text, _>(sheet)
            .bind::<Text, _>(title)
            .execute(conn)
            .await?;
        }
        Ok(())
    }
}
