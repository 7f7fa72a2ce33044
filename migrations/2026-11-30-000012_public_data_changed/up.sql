-- Server processes keep anonymous answers in memory until public data changes: a write to
-- any table an anonymous answer reads tells every process on `public_data_changed` when it
-- commits (one notification per transaction: PostgreSQL folds identical ones).

CREATE FUNCTION notify_public_data_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('public_data_changed', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER metric_definitions_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON metric_definitions
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
CREATE TRIGGER metric_breakdowns_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON metric_breakdowns
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
CREATE TRIGGER breakdown_members_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON breakdown_members
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
CREATE TRIGGER includes_excludes_items_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON includes_excludes_items
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
CREATE TRIGGER agencies_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON agencies
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
CREATE TRIGGER agency_settings_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON agency_settings
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
CREATE TRIGGER agency_jurisdictions_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON agency_jurisdictions
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
CREATE TRIGGER metric_settings_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON metric_settings
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
CREATE TRIGGER metric_setting_members_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON metric_setting_members
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
CREATE TRIGGER metric_setting_answers_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON metric_setting_answers
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
CREATE TRIGGER metric_setting_changes_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON metric_setting_changes
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
CREATE TRIGGER reports_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON reports
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
CREATE TRIGGER report_status_changes_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON report_status_changes
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
CREATE TRIGGER report_contexts_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON report_contexts
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
CREATE TRIGGER datapoints_public_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON datapoints
    FOR EACH STATEMENT EXECUTE FUNCTION notify_public_data_changed();
