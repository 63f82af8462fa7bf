-- Usage events, the names they are attributed to, and hourly/daily rollups.
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE users (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL);
CREATE TABLE teams (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL);
CREATE TABLE projects (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL);
CREATE TABLE agents (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL);
CREATE TABLE price_versions (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, version TEXT NOT NULL UNIQUE);

CREATE TABLE usage_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    ts BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    team_id BIGINT NOT NULL,
    project_id BIGINT NOT NULL,
    agent_id BIGINT NOT NULL,
    task TEXT,
    session TEXT,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_5m_tokens BIGINT NOT NULL,
    cache_write_1h_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost_nanos BIGINT,
    long_context BIGINT NOT NULL,
    price_version_id BIGINT NOT NULL,
    source TEXT NOT NULL,
    estimated BIGINT NOT NULL,
    finish_reason TEXT,
    prompt_simhash BIGINT,
    completion_simhash BIGINT,
    completion_compress_permille BIGINT,
    prompt_chars BIGINT,
    completion_chars BIGINT,
    received_at BIGINT NOT NULL
);
CREATE INDEX usage_events_ts ON usage_events (ts);
CREATE INDEX usage_events_unpriced ON usage_events (seq) WHERE cost_nanos IS NULL;

CREATE TABLE usage_content (seq BIGINT PRIMARY KEY, prompt TEXT, completion TEXT);

-- Hourly rollup without project and agent (their ids are always 0).
CREATE TABLE usage_hourly (
    bucket BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    team_id BIGINT NOT NULL,
    project_id BIGINT NOT NULL,
    agent_id BIGINT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    requests BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_5m_tokens BIGINT NOT NULL,
    cache_write_1h_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost_nanos BIGINT NOT NULL,
    unpriced_requests BIGINT NOT NULL,
    estimated_requests BIGINT NOT NULL,
    PRIMARY KEY (bucket, user_id, team_id, project_id, agent_id, provider, model)
)
-- Rollup rows are updated in place by every batch: leave room for HOT updates and vacuum
-- them eagerly, or dead versions pile up and slow every report.
WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

CREATE TABLE usage_daily (
    bucket BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    team_id BIGINT NOT NULL,
    project_id BIGINT NOT NULL,
    agent_id BIGINT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    requests BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_5m_tokens BIGINT NOT NULL,
    cache_write_1h_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost_nanos BIGINT NOT NULL,
    unpriced_requests BIGINT NOT NULL,
    estimated_requests BIGINT NOT NULL,
    PRIMARY KEY (bucket, user_id, team_id, project_id, agent_id, provider, model)
)
-- Rollup rows are updated in place by every batch: leave room for HOT updates and vacuum
-- them eagerly, or dead versions pile up and slow every report.
WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

-- The daily rollup without project and agent (their ids are always 0): most reports do not
-- group by them, and this table is an order of magnitude smaller.
CREATE TABLE usage_daily_lean (
    bucket BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    team_id BIGINT NOT NULL,
    project_id BIGINT NOT NULL,
    agent_id BIGINT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    requests BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_5m_tokens BIGINT NOT NULL,
    cache_write_1h_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost_nanos BIGINT NOT NULL,
    unpriced_requests BIGINT NOT NULL,
    estimated_requests BIGINT NOT NULL,
    PRIMARY KEY (bucket, user_id, team_id, project_id, agent_id, provider, model)
)
-- Rollup rows are updated in place by every batch: leave room for HOT updates and vacuum
-- them eagerly, or dead versions pile up and slow every report.
WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
