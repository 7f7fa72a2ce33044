DROP INDEX datapoint_changes_version_idx;
ALTER TABLE datapoint_changes DROP COLUMN report_version;
