-- Hourly and daily rollups by project and agent without user and team (their ids are always 0):
-- reports by project or agent read these instead of the full daily rollup (one row per user as
-- well) and, for the partial days at a window's edges, instead of raw events.
-- Same columns and primary key as the other rollups.
CREATE TABLE usage_hourly_projects (LIKE usage_hourly INCLUDING ALL);
CREATE TABLE usage_daily_projects (LIKE usage_hourly INCLUDING ALL);

-- Backfill: the hourly rows from the events (floored as Micros::floor_to does, also before 1970),
-- the daily rows from the full daily rollup, which already holds every event's day.
INSERT INTO usage_hourly_projects
SELECT ts - ((ts % 3600000000) + 3600000000) % 3600000000, 0, 0, project_id, agent_id, provider, model,
    CAST(COUNT(*) AS BIGINT), CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT),
    CAST(SUM(cache_read_tokens) AS BIGINT), CAST(SUM(cache_write_5m_tokens) AS BIGINT),
    CAST(SUM(cache_write_1h_tokens) AS BIGINT), CAST(SUM(reasoning_tokens) AS BIGINT),
    CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT),
    CAST(SUM(CASE WHEN cost_nanos IS NULL THEN 1 ELSE 0 END) AS BIGINT),
    CAST(SUM(estimated) AS BIGINT)
FROM usage_events
GROUP BY 1, project_id, agent_id, provider, model;

INSERT INTO usage_daily_projects
SELECT bucket, 0, 0, project_id, agent_id, provider, model,
    CAST(SUM(requests) AS BIGINT), CAST(SUM(input_tokens) AS BIGINT),
    CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(cache_read_tokens) AS BIGINT),
    CAST(SUM(cache_write_5m_tokens) AS BIGINT), CAST(SUM(cache_write_1h_tokens) AS BIGINT),
    CAST(SUM(reasoning_tokens) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT),
    CAST(SUM(unpriced_requests) AS BIGINT), CAST(SUM(estimated_requests) AS BIGINT)
FROM usage_daily
GROUP BY bucket, project_id, agent_id, provider, model;
