-- Waste findings from detection passes, with an admin's decision on each. A pass updates the
-- numbers of the findings it sees again and keeps their decision; `from_ts` (the first
-- wasted call) places a finding in a window.
CREATE TABLE waste_findings (
    id TEXT PRIMARY KEY,
    subject_kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_name TEXT NOT NULL,
    detector TEXT NOT NULL,
    signals TEXT NOT NULL,
    evidence TEXT NOT NULL,
    from_ts BIGINT NOT NULL,
    to_ts BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    wasted_tokens BIGINT NOT NULL,
    wasted_nanos BIGINT NOT NULL,
    confidence BIGINT NOT NULL,
    detected_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    decided_at BIGINT,
    note TEXT
);
CREATE INDEX waste_findings_from ON waste_findings (from_ts);
