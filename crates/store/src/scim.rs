//! People and groups provisioned by an identity provider over SCIM 2.0: the provider's
//! record of who is employed and in which groups, kept so that people who never sign in are in
//! the people directory and a deactivation is seen. Only what Goodhart uses is kept (no
//! passwords, phone numbers or addresses). The SQL is shared by both backends.

use async_trait::async_trait;
use goodhart_core::Micros;

use crate::error::StoreError;

/// A SCIM `User`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimUser {
    pub id: String,
    /// Unique ignoring case.
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// The primary (else first) email.
    pub email: Option<String>,
    pub active: bool,
    pub created_at: Micros,
    pub updated_at: Micros,
}

/// A SCIM `Group` with its members (user ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroup {
    pub id: String,
    /// Unique ignoring case.
    pub display_name: String,
    pub external_id: Option<String>,
    /// Its members' user ids, sorted.
    pub members: Vec<String>,
    pub created_at: Micros,
    pub updated_at: Micros,
}

#[async_trait]
pub trait ScimStore: Send + Sync {
    /// Stores a user (replacing the one of the same id).
    async fn put_scim_user(&self, user: &ScimUser) -> Result<(), StoreError>;
    /// Every user, by id.
    async fn scim_users(&self) -> Result<Vec<ScimUser>, StoreError>;
    /// Deletes a user and their memberships; returns whether there was one.
    async fn delete_scim_user(&self, id: &str) -> Result<bool, StoreError>;
    /// Stores a group and its members (replacing the group of the same id and all its members),
    /// in one transaction.
    async fn put_scim_group(&self, group: &ScimGroup) -> Result<(), StoreError>;
    /// Every group with its members, by id.
    async fn scim_groups(&self) -> Result<Vec<ScimGroup>, StoreError>;
    /// Deletes a group and its memberships; returns whether there was one.
    async fn delete_scim_group(&self, id: &str) -> Result<bool, StoreError>;
}

pub(crate) const UPSERT_USER: &str = "INSERT INTO scim_users (id, user_name, external_id, display_name, given_name, \
    family_name, email, active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
    ON CONFLICT (id) DO UPDATE SET user_name = excluded.user_name, external_id = excluded.external_id, \
    display_name = excluded.display_name, given_name = excluded.given_name, family_name = excluded.family_name, \
    email = excluded.email, active = excluded.active, updated_at = excluded.updated_at";
pub(crate) const SELECT_USERS: &str = "SELECT id, user_name, external_id, display_name, given_name, family_name, \
    email, active, created_at, updated_at FROM scim_users ORDER BY id";
pub(crate) const DELETE_USER_MEMBERSHIPS: &str = "DELETE FROM scim_members WHERE user_id = $1";
pub(crate) const DELETE_USER: &str = "DELETE FROM scim_users WHERE id = $1";
pub(crate) const UPSERT_GROUP: &str = "INSERT INTO scim_groups (id, display_name, external_id, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, \
    external_id = excluded.external_id, updated_at = excluded.updated_at";
pub(crate) const DELETE_GROUP_MEMBERSHIPS: &str = "DELETE FROM scim_members WHERE group_id = $1";
pub(crate) const INSERT_MEMBERSHIP: &str =
    "INSERT INTO scim_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
pub(crate) const DELETE_GROUP: &str = "DELETE FROM scim_groups WHERE id = $1";
pub(crate) const SELECT_GROUPS: &str =
    "SELECT id, display_name, external_id, created_at, updated_at FROM scim_groups ORDER BY id";
pub(crate) const SELECT_MEMBERSHIPS: &str = "SELECT group_id, user_id FROM scim_members ORDER BY group_id, user_id";

/// A user row's columns in the order of [`SELECT_USERS`].
pub(crate) type UserRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
    i64,
    i64,
);

pub(crate) fn user(
    (id, user_name, external_id, display_name, given_name, family_name, email, active, created_at, updated_at): UserRow,
) -> ScimUser {
    ScimUser {
        id,
        user_name,
        external_id,
        display_name,
        given_name,
        family_name,
        email,
        active,
        created_at: Micros(created_at),
        updated_at: Micros(updated_at),
    }
}

/// A group row's columns in the order of [`SELECT_GROUPS`].
pub(crate) type GroupRow = (String, String, Option<String>, i64, i64);

/// The groups of `rows` with their members from `memberships` (group id, user id).
pub(crate) fn groups(rows: Vec<GroupRow>, memberships: Vec<(String, String)>) -> Vec<ScimGroup> {
    let mut members: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for (group, user) in memberships {
        members.entry(group).or_default().push(user);
    }
    rows.into_iter()
        .map(|(id, display_name, external_id, created_at, updated_at)| {
            let mut list = members.remove(&id).unwrap_or_default();
            list.sort_unstable();
            ScimGroup {
                id,
                display_name,
                external_id,
                members: list,
                created_at: Micros(created_at),
                updated_at: Micros(updated_at),
            }
        })
        .collect()
}
