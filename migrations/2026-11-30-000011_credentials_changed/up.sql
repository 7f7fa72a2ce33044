-- Server processes keep verified tokens and their users' credentials in memory; whatever
-- changes a user's credentials — roles, platform staff, superagency links — tells every
-- process on `credentials_changed` when it commits: `{"user_id": N}`, or `{}` for everyone.

CREATE FUNCTION notify_credentials_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload text := '{}';
BEGIN
    IF TG_TABLE_NAME = 'memberships' THEN
        payload := json_build_object('user_id', CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id
                                                     ELSE NEW.user_id END)::text;
        IF TG_OP = 'UPDATE' AND OLD.user_id <> NEW.user_id THEN
            PERFORM pg_notify('credentials_changed',
                              json_build_object('user_id', OLD.user_id)::text);
        END IF;
    ELSIF TG_TABLE_NAME = 'users' THEN
        payload := json_build_object('user_id', OLD.id)::text;
    END IF;
    PERFORM pg_notify('credentials_changed', payload);
    RETURN NULL;
END
$$;

CREATE TRIGGER memberships_credentials_changed
    AFTER INSERT OR UPDATE OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION notify_credentials_changed();
CREATE TRIGGER users_credentials_changed
    AFTER UPDATE OF is_platform_admin OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION notify_credentials_changed();
-- A superagency's roles reach its children: a new, moved or removed child changes them.
CREATE TRIGGER agencies_child_added_credentials_changed
    AFTER INSERT ON agencies
    FOR EACH ROW WHEN (NEW.super_agency_id IS NOT NULL)
    EXECUTE FUNCTION notify_credentials_changed();
CREATE TRIGGER agencies_child_moved_credentials_changed
    AFTER UPDATE OF super_agency_id ON agencies
    FOR EACH ROW WHEN (OLD.super_agency_id IS DISTINCT FROM NEW.super_agency_id)
    EXECUTE FUNCTION notify_credentials_changed();
CREATE TRIGGER agencies_child_removed_credentials_changed
    AFTER DELETE ON agencies
    FOR EACH ROW WHEN (OLD.super_agency_id IS NOT NULL)
    EXECUTE FUNCTION notify_credentials_changed();
