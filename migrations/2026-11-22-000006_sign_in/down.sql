ALTER TABLE memberships
    DROP CONSTRAINT memberships_code_only_while_pending,
    DROP CONSTRAINT memberships_invitation_code_hash_key,
    DROP COLUMN invited_by,
    DROP COLUMN invitation_code_hash;
DROP TABLE revoked_tokens;
DROP TABLE sessions;
