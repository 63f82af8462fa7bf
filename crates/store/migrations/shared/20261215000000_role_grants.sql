-- Roles an admin gave people who sign in: each replaces the role the person's groups give.
-- Keyed by the usage `user` a sign-in names; a person may have a grant before their first
-- sign-in.
CREATE TABLE role_grants (
    user_name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    team TEXT,
    granted_at BIGINT NOT NULL
);
