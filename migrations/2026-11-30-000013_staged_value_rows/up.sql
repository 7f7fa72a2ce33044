-- Whether applying a staged value inserts its row into `datapoints` (under the id reserved
-- in `datapoint_id`) rather than updating the row that is there.
ALTER TABLE spreadsheet_values ADD COLUMN datapoint_created BOOLEAN NOT NULL DEFAULT false;
