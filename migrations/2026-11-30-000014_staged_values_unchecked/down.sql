ALTER TABLE spreadsheet_values DROP CONSTRAINT spreadsheet_values_pkey,
    ADD PRIMARY KEY (id);
DROP INDEX spreadsheet_report_changes_report_idx;
ALTER TABLE spreadsheet_report_changes DROP COLUMN report_version;
DROP TRIGGER spreadsheets_deleted_values ON spreadsheets;
DROP FUNCTION spreadsheet_values_of_deleted_uploads();
DELETE FROM spreadsheet_values v
WHERE NOT EXISTS (SELECT 1 FROM spreadsheets s WHERE s.id = v.spreadsheet_id);
ALTER TABLE spreadsheet_values
    ADD CONSTRAINT spreadsheet_values_spreadsheet_id_fkey
    FOREIGN KEY (spreadsheet_id) REFERENCES spreadsheets (id) ON DELETE CASCADE;
