-- Refresh tokens already exchanged, kept until their session ends: presenting one again means
-- it was copied, and the whole session is revoked (rotation with reuse detection).
CREATE TABLE spent_refresh_tokens (
    refresh_token_hash TEXT PRIMARY KEY,
    session_id         BIGINT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    spent_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX spent_refresh_tokens_session_id_idx ON spent_refresh_tokens (session_id);
