-- The people directory: each person's home team as their identity provider last said it
-- (at their last sign-in), keyed by the usage `user` they are. Usage that names no team is
-- attributed to the person's team here; one row per person, so a person is in one team.
CREATE TABLE directory (
    user_name TEXT PRIMARY KEY,
    team TEXT,
    email TEXT,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX directory_by_team ON directory (team);
