DROP TRIGGER agencies_credentials_changed ON agencies;
DROP TRIGGER users_credentials_changed ON users;
DROP TRIGGER memberships_credentials_changed ON memberships;
DROP FUNCTION notify_credentials_changed();
