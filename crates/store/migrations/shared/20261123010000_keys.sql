-- Virtual keys: clients authenticate with them; only a SHA-256 of the secret is stored.
CREATE TABLE virtual_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    name TEXT,
    user_name TEXT NOT NULL,
    team TEXT,
    project TEXT,
    agent TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    replaced_by TEXT
);
