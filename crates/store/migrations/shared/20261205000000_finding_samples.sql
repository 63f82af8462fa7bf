-- A few calls of each finding (time, model, session, agent, tokens, cost; never text), as a
-- JSON array, so a manager can check a finding against the provider's logs. Findings stored
-- before this column existed have none until a pass sees them again.
ALTER TABLE waste_findings ADD COLUMN samples TEXT;
