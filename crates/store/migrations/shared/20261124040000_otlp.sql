-- Tokens that may only send usage (OTLP exports, the ingest API) live beside the viewer tokens.
ALTER TABLE viewer_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'viewer';

-- Agents' own usage counters (delta points), kept to reconcile against the usage events.
CREATE TABLE telemetry_points (
    id TEXT PRIMARY KEY,
    ts BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    session TEXT,
    agent TEXT NOT NULL,
    model TEXT,
    kind TEXT NOT NULL,
    amount BIGINT NOT NULL
);
CREATE INDEX telemetry_points_ts ON telemetry_points (ts);

-- A call that telemetry or a log knows only by its message id is matched to the gateway's record:
-- by the response id the gateway saw, and (so that the gateway's writes need not look when
-- there are none) among the few events keyed by message id.
CREATE INDEX gateway_calls_response ON gateway_calls (response_id);
CREATE INDEX usage_events_by_message ON usage_events (event_id) WHERE event_id LIKE 'msg:%';
