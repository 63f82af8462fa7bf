-- Budgets: a limit on spend in a calendar period, for one scope (key, user, team, project,
-- agent or the whole organisation). Deleting one keeps the row (alerts refer to it).
CREATE TABLE budgets (
    id TEXT PRIMARY KEY,
    scope_kind TEXT NOT NULL,
    scope_name TEXT,
    period TEXT NOT NULL,
    limit_nanos BIGINT NOT NULL,
    limit_tokens BIGINT,
    action TEXT NOT NULL,
    thresholds TEXT NOT NULL,
    timezone TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
-- Spend of one key: its gateway calls.
CREATE INDEX gateway_calls_key ON gateway_calls (key_id);
