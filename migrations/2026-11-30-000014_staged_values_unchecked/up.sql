-- A staged value's upload is not checked row by row: a foreign key fires a check per row, and
-- for a file of a million values those checks cost as much as writing the values. Only the
-- ingest writes staged values, for the upload it holds (by its row and an advisory lock), so
-- the check never fails; what the key also did, removing a deleted upload's values, is done
-- once per statement by a trigger.
ALTER TABLE spreadsheet_values DROP CONSTRAINT spreadsheet_values_spreadsheet_id_fkey;

CREATE FUNCTION spreadsheet_values_of_deleted_uploads() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM spreadsheet_values v USING deleted d WHERE v.spreadsheet_id = d.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER spreadsheets_deleted_values
    AFTER DELETE ON spreadsheets
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION spreadsheet_values_of_deleted_uploads();

-- The version an upload left each report it changed at, so that a save based on an earlier
-- version can be told which values the upload created (an upload keeps a history row only
-- for a value that was there before, as a person's change of a stored value does).
ALTER TABLE spreadsheet_report_changes ADD COLUMN report_version INTEGER
    CHECK (report_version > 0);
CREATE INDEX spreadsheet_report_changes_report_idx
    ON spreadsheet_report_changes (report_id, report_version);

-- An upload's values are read in pages in the order they were read (`id > $after ORDER BY
-- id` within one upload): keyed by upload first, a page is found directly whatever the plan.
ALTER TABLE spreadsheet_values DROP CONSTRAINT spreadsheet_values_pkey,
    ADD PRIMARY KEY (spreadsheet_id, id);
