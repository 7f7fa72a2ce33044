DROP TABLE spreadsheet_values;
DROP TYPE value_outcome;
ALTER TABLE spreadsheet_messages DROP COLUMN title, DROP COLUMN value, DROP COLUMN options;
DROP TABLE spreadsheet_file_parts;
ALTER TABLE spreadsheets DROP COLUMN dry_run, DROP COLUMN source, DROP COLUMN file_size,
    DROP COLUMN file_sha256, DROP COLUMN rows_read, DROP COLUMN rows_accepted,
    DROP COLUMN rows_saved, DROP COLUMN read_sheet, DROP COLUMN read_row, DROP COLUMN read_done,
    DROP COLUMN cancel_requested_at, DROP COLUMN finished_at;
-- Enum values cannot be dropped: spreadsheets in the new states become ERRORED.
UPDATE spreadsheets SET status = 'ERRORED' WHERE status::text IN ('INGESTING', 'CANCELLED');
DROP TABLE jobs;
DROP TYPE job_state;
