-- SQLite drops its partial index of events keyed by message id in this version; PostgreSQL
-- keeps it (nothing to change here).
SELECT 1;
