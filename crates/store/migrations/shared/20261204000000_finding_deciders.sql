-- Who decided a finding: `admin` (through the API or the CLI) or `automatic` (a detection
-- pass, because an admin had dismissed the same pattern earlier). Only admins' decisions
-- speak for later findings, so that an automatic dismissal never renews itself. Decisions
-- made before this column existed were all admins'.
ALTER TABLE waste_findings ADD COLUMN decided_by TEXT;
UPDATE waste_findings SET decided_by = 'admin' WHERE status <> 'open';
