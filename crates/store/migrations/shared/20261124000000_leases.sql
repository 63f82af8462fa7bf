-- Shared enforcement for several gateway instances on one database.
--
-- A blocking budget's window is a pool: gateway instances borrow slices of it (leases) and
-- admit calls only within what they hold. `base_*` is the gateway spend already stored when
-- the pool opened; spend from other sources is read from usage_events at each lease.
CREATE TABLE budget_pools (
    budget_id TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    window_end BIGINT,
    base_nanos BIGINT NOT NULL,
    base_tokens BIGINT NOT NULL,
    opened_at BIGINT NOT NULL,
    PRIMARY KEY (budget_id, window_start)
);

-- What each instance holds of a pool: every slice it took, less what it gave back.
CREATE TABLE budget_leases (
    budget_id TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    instance_id TEXT NOT NULL,
    granted_nanos BIGINT NOT NULL,
    granted_tokens BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (budget_id, window_start, instance_id)
);

-- Per-key rate limit buckets shared by every instance (level in millionths of a unit).
CREATE TABLE rate_buckets (
    key_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    level_millionths BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (key_id, kind)
);
