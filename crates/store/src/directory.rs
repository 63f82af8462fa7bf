//! The people directory: who each person is at their identity provider and the home team it
//! gives them, recorded at every sign-in. It is what attributes usage that names no team (a
//! call through a key made without one, a log an engineer imports) to the team the org chart
//! says, rather than to the team a person happened to spend most with. The SQL is shared by
//! both backends but for the batch lookup ([`DirectoryStore::teams_of`]).

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

#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Records a person (replacing what was known of the same `user`).
    async fn record_member(&self, member: &Member) -> Result<(), StoreError>;
    /// Everyone, by user.
    async fn members(&self) -> Result<Vec<Member>, StoreError>;
    /// The home teams of those of `users` who have one.
    async fn teams_of(&self, users: &[String]) -> Result<HashMap<String, String>, StoreError>;
}

pub(crate) const UPSERT: &str = "INSERT INTO directory (user_name, team, email, issuer, subject, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_name) DO UPDATE SET team = excluded.team, \
    email = excluded.email, issuer = excluded.issuer, subject = excluded.subject, updated_at = excluded.updated_at";
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
