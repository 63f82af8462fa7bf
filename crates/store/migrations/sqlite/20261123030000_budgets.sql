-- Budgets: a limit on spend in a calendar period, for one scope (key, user, team, project,
-- agent or the whole organisation). Deleting one keeps the row (alerts refer to it).
CREATE TABLE budgets (
    id TEXT PRIMARY KEY,
    scope_kind TEXT NOT NULL,
    scope_name TEXT,
    period TEXT NOT NULL,
    limit_nanos INTEGER NOT NULL,
    limit_tokens INTEGER,
    action TEXT NOT NULL,
    thresholds TEXT NOT NULL,
    timezone TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
);
-- Spend of one key: its gateway calls.
CREATE INDEX gateway_calls_key ON gateway_calls (key_id);
