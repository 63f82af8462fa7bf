-- Dashboard sessions of people signed in through OpenID Connect. Only a SHA-256 of the
-- session's secret (what the cookie carries) is stored; `id` is the public handle an admin
-- lists and revokes by. Groups are the IdP's, as a JSON array, mapped to a role per request.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    email TEXT,
    name TEXT,
    groups_json TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
-- The `state` of each completed sign-in (its SHA-256), so that a callback is used once across
-- every instance; forgotten once its login would have expired anyway.
CREATE TABLE used_login_states (
    state_hash TEXT PRIMARY KEY,
    used_at BIGINT NOT NULL
);
CREATE INDEX used_login_states_by_time ON used_login_states (used_at);
