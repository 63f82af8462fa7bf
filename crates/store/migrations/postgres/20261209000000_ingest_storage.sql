-- The project rollups get the storage parameters of the other rollups, which `LIKE … INCLUDING ALL`
-- does not copy: their rows are updated in place by every batch, so leave room on each page for
-- HOT updates (without it nine in ten updates of usage_daily_projects added index entries) and
-- vacuum them eagerly. Pages written from now on keep the room; existing ones fill as they are.
ALTER TABLE usage_hourly_projects
    SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE usage_daily_projects
    SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

-- Event ids compare byte by byte, as SQLite compares them: every batch checks each new id
-- against the unique index twice, and under the database's default collation (even C.UTF-8)
-- each comparison goes through strcoll. Equality, and so uniqueness, is unchanged; the two
-- indexes on event_id are rebuilt (about a second per million events).
ALTER TABLE usage_events ALTER COLUMN event_id TYPE TEXT COLLATE "C";
