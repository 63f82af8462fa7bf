-- What the gateway observed about each proxied call (one row per gateway usage event).
CREATE TABLE gateway_calls (
    seq BIGINT PRIMARY KEY,
    key_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    status BIGINT NOT NULL,
    stream BIGINT NOT NULL,
    latency_micros BIGINT NOT NULL,
    ttft_micros BIGINT,
    max_tokens BIGINT,
    upstream_request_id TEXT,
    response_id TEXT,
    client_disconnected BIGINT NOT NULL
);
CREATE INDEX gateway_calls_upstream_request ON gateway_calls (upstream_request_id);
