ALTER TABLE spreadsheet_values DROP COLUMN datapoint_created;
