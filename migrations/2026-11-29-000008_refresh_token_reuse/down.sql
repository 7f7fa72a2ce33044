DROP TABLE spent_refresh_tokens;
