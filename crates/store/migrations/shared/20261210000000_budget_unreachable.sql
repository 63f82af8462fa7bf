-- What a blocking budget does when the shared store cannot be reached to lend a slice of it:
-- `fail_closed` or `fail_open` (with its allowance in percent of the limit); NULL follows the
-- gateway's default.
ALTER TABLE budgets ADD COLUMN when_unreachable TEXT;
ALTER TABLE budgets ADD COLUMN fail_open_percent BIGINT;
