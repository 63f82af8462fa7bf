-- Usage events, the names they are attributed to, and hourly/daily rollups.
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);
CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);
CREATE TABLE projects (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);
CREATE TABLE agents (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);
CREATE TABLE price_versions (id INTEGER PRIMARY KEY, version TEXT NOT NULL UNIQUE);

CREATE TABLE usage_events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    ts INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    team_id INTEGER NOT NULL,
    project_id INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    task TEXT,
    session TEXT,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_5m_tokens INTEGER NOT NULL,
    cache_write_1h_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_nanos INTEGER,
    long_context INTEGER NOT NULL,
    price_version_id INTEGER NOT NULL,
    source TEXT NOT NULL,
    estimated INTEGER NOT NULL,
    finish_reason TEXT,
    prompt_simhash INTEGER,
    completion_simhash INTEGER,
    completion_compress_permille INTEGER,
    prompt_chars INTEGER,
    completion_chars INTEGER,
    received_at INTEGER NOT NULL
);
CREATE INDEX usage_events_ts ON usage_events (ts);
CREATE INDEX usage_events_unpriced ON usage_events (seq) WHERE cost_nanos IS NULL;

CREATE TABLE usage_content (seq INTEGER PRIMARY KEY, prompt TEXT, completion TEXT);

-- Hourly rollup without project and agent (their ids are always 0).
CREATE TABLE usage_hourly (
    bucket INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    team_id INTEGER NOT NULL,
    project_id INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_5m_tokens INTEGER NOT NULL,
    cache_write_1h_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_nanos INTEGER NOT NULL,
    unpriced_requests INTEGER NOT NULL,
    estimated_requests INTEGER NOT NULL,
    PRIMARY KEY (bucket, user_id, team_id, project_id, agent_id, provider, model)
) WITHOUT ROWID;

CREATE TABLE usage_daily (
    bucket INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    team_id INTEGER NOT NULL,
    project_id INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_5m_tokens INTEGER NOT NULL,
    cache_write_1h_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_nanos INTEGER NOT NULL,
    unpriced_requests INTEGER NOT NULL,
    estimated_requests INTEGER NOT NULL,
    PRIMARY KEY (bucket, user_id, team_id, project_id, agent_id, provider, model)
) WITHOUT ROWID;

-- The daily rollup without project and agent (their ids are always 0): most reports do not
-- group by them, and this table is an order of magnitude smaller.
CREATE TABLE usage_daily_lean (
    bucket INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    team_id INTEGER NOT NULL,
    project_id INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_5m_tokens INTEGER NOT NULL,
    cache_write_1h_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_nanos INTEGER NOT NULL,
    unpriced_requests INTEGER NOT NULL,
    estimated_requests INTEGER NOT NULL,
    PRIMARY KEY (bucket, user_id, team_id, project_id, agent_id, provider, model)
) WITHOUT ROWID;
