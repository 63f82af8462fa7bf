//! The people directory: who each person is at their identity provider and the home team it
//! gives them, recorded at every sign-in. It is what attributes usage that names no team (a
//! call through a key made without one, a log an engineer imports) to the team the org chart
//! says, rather than to the team a person happened to spend most with. Beside it, the roles an
//! admin gave people ([`RoleGrant`]), which replace what their groups give. The SQL is shared
//! by both backends but for the batch lookup ([`DirectoryStore::teams_of`]).

use std::collections::HashMap;

use async_trait::async_trait;
use goodhart_core::Micros;

use crate::error::StoreError;

/// One person as their identity provider last described them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The usage `user` they are.
    pub user: String,
    /// Their home team; none when their groups name no team.
    pub team: Option<String>,
    pub email: Option<String>,
    pub issuer: String,
    pub subject: String,
    pub updated_at: Micros,
}

/// A role an admin gave a person (by the usage `user` they are), in place of their groups'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrant {
    pub user: String,
    /// `admin`, `finops`, `viewer`, `manager` or `engineer`.
    pub role: String,
    /// A manager's team, a team viewer's.
    pub team: Option<String>,
    pub granted_at: Micros,
}

#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Records a person (replacing what was known of the same `user`).
    async fn record_member(&self, member: &Member) -> Result<(), StoreError>;
    /// Takes a person out of the directory (offboarded); returns whether they were in it.
    async fn forget_member(&self, user: &str) -> Result<bool, StoreError>;
    /// Everyone, by user.
    async fn members(&self) -> Result<Vec<Member>, StoreError>;
    /// The home teams of those of `users` who have one.
    async fn teams_of(&self, users: &[String]) -> Result<HashMap<String, String>, StoreError>;
    /// Gives `grant.user` the role (replacing a grant they had).
    async fn grant_role(&self, grant: &RoleGrant) -> Result<(), StoreError>;
    /// Takes a person's grant away; returns whether they had one.
    async fn revoke_role_grant(&self, user: &str) -> Result<bool, StoreError>;
    /// Every grant, by user.
    async fn role_grants(&self) -> Result<Vec<RoleGrant>, StoreError>;
    async fn role_grant(&self, user: &str) -> Result<Option<RoleGrant>, StoreError>;
}

pub(crate) const UPSERT_GRANT: &str = "INSERT INTO role_grants (user_name, role, team, granted_at) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (user_name) DO UPDATE SET role = excluded.role, team = excluded.team, \
    granted_at = excluded.granted_at";
pub(crate) const DELETE_GRANT: &str = "DELETE FROM role_grants WHERE user_name = $1";
pub(crate) const SELECT_GRANTS: &str = "SELECT user_name, role, team, granted_at FROM role_grants ORDER BY user_name";
pub(crate) const SELECT_GRANT: &str = "SELECT user_name, role, team, granted_at FROM role_grants WHERE user_name = $1";

pub(crate) type GrantRow = (String, String, Option<String>, i64);

pub(crate) fn grant((user, role, team, granted_at): GrantRow) -> RoleGrant {
    RoleGrant {
        user,
        role,
        team,
        granted_at: Micros(granted_at),
    }
}

pub(crate) const UPSERT: &str = "INSERT INTO directory (user_name, team, email, issuer, subject, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_name) DO UPDATE SET team = excluded.team, \
    email = excluded.email, issuer = excluded.issuer, subject = excluded.subject, updated_at = excluded.updated_at";
pub(crate) const DELETE: &str = "DELETE FROM directory WHERE user_name = $1";
pub(crate) const SELECT_ALL: &str =
    "SELECT user_name, team, email, issuer, subject, updated_at FROM directory ORDER BY user_name";

/// A row's columns in the order of [`SELECT_ALL`].
pub(crate) type Row = (String, Option<String>, Option<String>, String, String, i64);

pub(crate) fn member((user, team, email, issuer, subject, updated_at): Row) -> Member {
    Member {
        user,
        team,
        email,
        issuer,
        subject,
        updated_at: Micros(updated_at),
    }
}
