-- Per-key rate limits: requests and tokens per minute (NULL: unlimited).
ALTER TABLE virtual_keys ADD COLUMN requests_per_minute BIGINT;
ALTER TABLE virtual_keys ADD COLUMN tokens_per_minute BIGINT;
