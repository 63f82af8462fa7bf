-- Read-only tokens for the dashboard and the read API, optionally limited to one team; only a
-- SHA-256 of the secret is stored.
CREATE TABLE viewer_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT,
    team TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
