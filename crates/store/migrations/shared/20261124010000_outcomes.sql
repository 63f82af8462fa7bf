-- Delivered work: facts from signed GitHub deliveries and the outcome API, kept as they came
-- (JSON of `goodhart_core::outcomes::Fact`); value is computed from them at query time.
CREATE TABLE outcome_facts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    at BIGINT NOT NULL,
    payload TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX outcome_facts_at ON outcome_facts (at);

-- GitHub delivery ids already processed: a replayed delivery changes nothing.
CREATE TABLE github_deliveries (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

-- GitHub logins whose Goodhart user has another name (by default the same name).
CREATE TABLE github_logins (
    login TEXT PRIMARY KEY,
    user_name TEXT NOT NULL
);
