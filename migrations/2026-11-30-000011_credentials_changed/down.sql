DROP TRIGGER agencies_child_removed_credentials_changed ON agencies;
DROP TRIGGER agencies_child_moved_credentials_changed ON agencies;
DROP TRIGGER agencies_child_added_credentials_changed ON agencies;
DROP TRIGGER users_credentials_changed ON users;
DROP TRIGGER memberships_credentials_changed ON memberships;
DROP FUNCTION notify_credentials_changed();
