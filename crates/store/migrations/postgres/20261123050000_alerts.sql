-- Alerts: one row per distinct event (the id names it), with its delivery state.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    budget_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX alerts_created ON alerts (created_at);
