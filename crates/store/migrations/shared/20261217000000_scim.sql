-- People and groups an identity provider provisions over SCIM 2.0 (RFC 7643/7644): who is
-- employed (active) even if they never sign in, and the groups that give their home team.
-- `user_name` is unique ignoring case (SCIM's userName is not case-exact), as is a group's
-- display name. A membership goes with its group or user (the store deletes it with them).
CREATE TABLE scim_users (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    external_id TEXT,
    display_name TEXT,
    given_name TEXT,
    family_name TEXT,
    email TEXT,
    active BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX scim_users_by_name ON scim_users (lower(user_name));

CREATE TABLE scim_groups (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    external_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX scim_groups_by_name ON scim_groups (lower(display_name));

CREATE TABLE scim_members (
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX scim_members_by_user ON scim_members (user_id);
