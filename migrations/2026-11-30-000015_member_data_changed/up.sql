-- Server processes keep signed-in users' answers in memory until anything those answers read
-- changes. Writes to public data already say so on `public_data_changed`; a write to any other
-- table a signed-in answer reads says so on `member_data_changed` when it commits. Sessions,
-- revoked tokens and jobs are not among them: tokens are checked before an answer is looked
-- up, and no answer reads the job queue.

CREATE FUNCTION notify_member_data_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('member_data_changed', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER users_member_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION notify_member_data_changed();
CREATE TRIGGER memberships_member_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON memberships
    FOR EACH STATEMENT EXECUTE FUNCTION notify_member_data_changed();
CREATE TRIGGER membership_changes_member_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON membership_changes
    FOR EACH STATEMENT EXECUTE FUNCTION notify_member_data_changed();
CREATE TRIGGER report_editors_member_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON report_editors
    FOR EACH STATEMENT EXECUTE FUNCTION notify_member_data_changed();
CREATE TRIGGER datapoint_changes_member_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON datapoint_changes
    FOR EACH STATEMENT EXECUTE FUNCTION notify_member_data_changed();
CREATE TRIGGER deleted_datapoints_member_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON deleted_datapoints
    FOR EACH STATEMENT EXECUTE FUNCTION notify_member_data_changed();
CREATE TRIGGER spreadsheets_member_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON spreadsheets
    FOR EACH STATEMENT EXECUTE FUNCTION notify_member_data_changed();
CREATE TRIGGER spreadsheet_messages_member_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON spreadsheet_messages
    FOR EACH STATEMENT EXECUTE FUNCTION notify_member_data_changed();
CREATE TRIGGER spreadsheet_report_changes_member_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON spreadsheet_report_changes
    FOR EACH STATEMENT EXECUTE FUNCTION notify_member_data_changed();
CREATE TRIGGER spreadsheet_values_member_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON spreadsheet_values
    FOR EACH STATEMENT EXECUTE FUNCTION notify_member_data_changed();
CREATE TRIGGER catalogue_state_member_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON catalogue_state
    FOR EACH STATEMENT EXECUTE FUNCTION notify_member_data_changed();
