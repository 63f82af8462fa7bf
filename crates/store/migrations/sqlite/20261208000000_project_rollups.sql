-- Hourly and daily rollups by project and agent without user and team (their ids are always 0):
-- reports by project or agent read these instead of the full daily rollup (one row per user as
-- well) and, for the partial days at a window's edges, instead of raw events.
CREATE TABLE usage_hourly_projects (
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

CREATE TABLE usage_daily_projects (
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

-- Backfill: the hourly rows from the events (floored as Micros::floor_to does, also before 1970),
-- the daily rows from the full daily rollup, which already holds every event's day.
INSERT INTO usage_hourly_projects
SELECT ts - ((ts % 3600000000) + 3600000000) % 3600000000, 0, 0, project_id, agent_id, provider, model,
    COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens),
    SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(reasoning_tokens),
    COALESCE(SUM(cost_nanos), 0), SUM(CASE WHEN cost_nanos IS NULL THEN 1 ELSE 0 END),
    SUM(estimated)
FROM usage_events
GROUP BY 1, project_id, agent_id, provider, model;

INSERT INTO usage_daily_projects
SELECT bucket, 0, 0, project_id, agent_id, provider, model,
    SUM(requests), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens),
    SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(reasoning_tokens), SUM(cost_nanos),
    SUM(unpriced_requests), SUM(estimated_requests)
FROM usage_daily
GROUP BY bucket, project_id, agent_id, provider, model;
