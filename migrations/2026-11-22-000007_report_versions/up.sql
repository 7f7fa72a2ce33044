-- Which report version each value change produced, so that a stale save can be told exactly
-- what changed since the version it was based on.
ALTER TABLE datapoint_changes ADD COLUMN report_version INTEGER CHECK (report_version > 0);
CREATE INDEX datapoint_changes_version_idx ON datapoint_changes (report_version);
