-- What coding agents' vendors report each person did (Claude Code's usage report, Copilot's
-- usage metrics): activity signals shown beside verified outcomes, never value. A day of one
-- tool and organisation is replaced whole whenever it is imported again (vendors revise recent
-- days); every day imported is listed, empty ones too, to resume from.
CREATE TABLE agent_activity_days (
    tool TEXT NOT NULL,
    org TEXT NOT NULL,
    day BIGINT NOT NULL,
    imported_at BIGINT NOT NULL,
    PRIMARY KEY (tool, org, day)
);

-- One actor's use of the tool on one surface that day; `line` orders a day's lines.
CREATE TABLE agent_activity (
    tool TEXT NOT NULL,
    org TEXT NOT NULL,
    day BIGINT NOT NULL,
    line BIGINT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    surface TEXT NOT NULL,
    sessions BIGINT NOT NULL,
    lines_added BIGINT NOT NULL,
    lines_removed BIGINT NOT NULL,
    commits BIGINT NOT NULL,
    pull_requests BIGINT NOT NULL,
    tool_accepted BIGINT NOT NULL,
    tool_rejected BIGINT NOT NULL,
    interactions BIGINT NOT NULL,
    generations BIGINT NOT NULL,
    acceptances BIGINT NOT NULL,
    lines_suggested_added BIGINT NOT NULL,
    lines_suggested_removed BIGINT NOT NULL,
    PRIMARY KEY (tool, org, day, line)
);
CREATE INDEX agent_activity_day ON agent_activity (day);

-- Tokens of a line by model, and the vendor's estimated cost (NULL when it gives none): the
-- vendor's figures, not Goodhart's prices.
CREATE TABLE agent_activity_models (
    tool TEXT NOT NULL,
    org TEXT NOT NULL,
    day BIGINT NOT NULL,
    line BIGINT NOT NULL,
    model TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    estimated_cost_nanos BIGINT
);
CREATE INDEX agent_activity_models_line ON agent_activity_models (tool, org, day, line);
