-- What providers report they served and billed (their organisation usage and cost reports),
-- to reconcile with what was metered. A bucket's lines are replaced whenever it is imported
-- again (providers revise recent buckets); every bucket imported is listed, empty ones too.
CREATE TABLE provider_report_buckets (
    provider TEXT NOT NULL,
    report TEXT NOT NULL,
    bucket_start BIGINT NOT NULL,
    bucket_end BIGINT NOT NULL,
    imported_at BIGINT NOT NULL,
    PRIMARY KEY (provider, report, bucket_start, bucket_end)
);

CREATE TABLE provider_usage_lines (
    provider TEXT NOT NULL,
    bucket_start BIGINT NOT NULL,
    bucket_end BIGINT NOT NULL,
    model TEXT,
    api_key_id TEXT,
    workspace TEXT,
    service_tier TEXT,
    requests BIGINT,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_5m_tokens BIGINT NOT NULL,
    cache_write_1h_tokens BIGINT NOT NULL
);
CREATE INDEX provider_usage_lines_bucket ON provider_usage_lines (provider, bucket_start, bucket_end);

CREATE TABLE provider_cost_lines (
    provider TEXT NOT NULL,
    bucket_start BIGINT NOT NULL,
    bucket_end BIGINT NOT NULL,
    workspace TEXT,
    api_key_id TEXT,
    model TEXT,
    item TEXT,
    amount_nanos BIGINT NOT NULL
);
CREATE INDEX provider_cost_lines_bucket ON provider_cost_lines (provider, bucket_start, bucket_end);
