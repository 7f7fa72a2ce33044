DROP TABLE spreadsheet_report_changes;
DROP TABLE spreadsheet_messages;
DROP TABLE spreadsheets;
DROP TYPE report_change_kind;
DROP TYPE message_severity;
DROP TYPE spreadsheet_status;
