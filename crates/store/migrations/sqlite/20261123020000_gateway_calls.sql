-- What the gateway observed about each proxied call (one row per gateway usage event).
CREATE TABLE gateway_calls (
    seq INTEGER PRIMARY KEY,
    key_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    status INTEGER NOT NULL,
    stream INTEGER NOT NULL,
    latency_micros INTEGER NOT NULL,
    ttft_micros INTEGER,
    max_tokens INTEGER,
    upstream_request_id TEXT,
    response_id TEXT,
    client_disconnected INTEGER NOT NULL
);
CREATE INDEX gateway_calls_upstream_request ON gateway_calls (upstream_request_id);
