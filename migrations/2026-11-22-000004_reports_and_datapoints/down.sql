DROP TABLE datapoint_changes;
DROP TABLE datapoints;
DROP TABLE report_contexts;
DROP TABLE report_status_changes;
DROP TABLE report_editors;
DROP TABLE reports;
DROP TYPE value_source;
DROP TYPE report_status;
