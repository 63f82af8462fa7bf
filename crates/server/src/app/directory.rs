//! The people directory ([`goodhart_store::directory`]): recorded at each sign-in from the
//! identity provider's groups, listed for the admin, and applied to usage that names no team —
//! as it is stored (the ingest API, OTLP, imports) and, through the key lookup, to gateway
//! calls with a key made without a team. Attribution is fixed when the usage is stored: a
//! person who moves team keeps their past usage where it was spent.
//!
//! And the roles an admin gives people who sign in: a grant replaces the role their groups
//! give (raising or lowering it), from their next request on.

use std::collections::HashMap;

use goodhart_core::usage::UsageEvent;
use goodhart_store::directory::{Member, RoleGrant};
use serde::{Deserialize, Serialize};

use super::audit::{Event, Origin};
use super::keys::label;
use super::sessions::Identity;
use super::{App, AppError};
use crate::oidc::{OidcSettings, Role};

/// `PUT /api/v1/people/{user}/role`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// `admin`, `finops`, `viewer`, `manager` or `engineer`.
    pub role: String,
    /// A manager's team (required), a viewer's (optional: every team without).
    pub team: Option<String>,
}

/// A grant as the API shows it.
#[derive(Debug, Serialize)]
pub struct GrantView {
    pub user: String,
    pub role: String,
    pub team: Option<String>,
    pub granted_at: String,
}

impl GrantView {
    pub fn of(grant: &RoleGrant) -> GrantView {
        GrantView {
            user: grant.user.clone(),
            role: grant.role.clone(),
            team: grant.team.clone(),
            granted_at: grant.granted_at.rfc3339(),
        }
    }
}

fn grant_event(action: &'static str, grant: &RoleGrant) -> Event {
    Event::new(action)
        .on("person", grant.user.clone())
        .with(serde_json::json!({ "role": grant.role, "team": grant.team }))
}

/// A person of the directory as `GET /api/v1/people` shows them.
#[derive(Debug, Serialize)]
pub struct MemberView {
    pub user: String,
    pub team: Option<String>,
    pub email: Option<String>,
    pub issuer: String,
    pub subject: String,
    pub updated_at: String,
}

impl MemberView {
    pub fn of(member: &Member) -> MemberView {
        MemberView {
            user: member.user.clone(),
            team: member.team.clone(),
            email: member.email.clone(),
            issuer: member.issuer.clone(),
            subject: member.subject.clone(),
            updated_at: member.updated_at.rfc3339(),
        }
    }
}

impl App {
    /// Records who a person is and their home team (at sign-in).
    pub async fn record_member(&self, member: &Member) -> Result<(), AppError> {
        Ok(self.store().record_member(member).await?)
    }

    pub async fn directory(&self) -> Result<Vec<Member>, AppError> {
        Ok(self.store().members().await?)
    }

    /// Gives `user` a role in place of their groups' (replacing a grant they had).
    pub async fn grant_role(&self, origin: &Origin, user: &str, request: NewGrant) -> Result<RoleGrant, AppError> {
        let user = label("user", Some(user.to_owned()), true)?.unwrap_or_default();
        let team = label("team", request.team, false)?;
        let role =
            Role::parse(request.role.trim(), team).map_err(|(field, message)| AppError::field(field, message))?;
        let grant = RoleGrant {
            user,
            role: role.name().to_owned(),
            team: role.team().map(str::to_owned),
            granted_at: self.now(),
        };
        self.store().grant_role(&grant).await?;
        self.audit(origin, grant_event("role.grant", &grant)).await?;
        Ok(grant)
    }

    /// Takes `user`'s grant away: their groups decide again.
    pub async fn revoke_role_grant(&self, origin: &Origin, user: &str) -> Result<RoleGrant, AppError> {
        let grant = self
            .store()
            .role_grant(user)
            .await?
            .ok_or_else(|| AppError::not_found(format!("role granted to {user}")))?;
        if !self.store().revoke_role_grant(user).await? {
            return Err(AppError::not_found(format!("role granted to {user}")));
        }
        self.audit(origin, grant_event("role.revoke", &grant)).await?;
        Ok(grant)
    }

    pub async fn role_grants(&self) -> Result<Vec<RoleGrant>, AppError> {
        Ok(self.store().role_grants().await?)
    }

    /// What a signed-in person may do: the role an admin gave them, else the one their groups
    /// give (none: refused).
    pub async fn person_role(&self, sso: &OidcSettings, identity: &Identity) -> Result<Option<Role>, AppError> {
        let user = sso.usage_user(identity.email.as_deref(), &identity.subject);
        match self.store().role_grant(&user).await? {
            // Only `grant_role` writes grants, with a role it parsed.
            Some(grant) => Ok(Role::parse(&grant.role, grant.team).ok()),
            None => Ok(sso.roles.role(&identity.groups)),
        }
    }

    /// Gives each event that names no team its person's home team, where the directory has
    /// one.
    pub(crate) async fn attribute_to_home_teams(&self, events: &mut [UsageEvent]) -> Result<(), AppError> {
        let mut teamless: Vec<String> = events
            .iter()
            .filter(|e| e.attribution.team.is_none())
            .map(|e| e.attribution.user.clone())
            .collect();
        teamless.sort_unstable();
        teamless.dedup();
        if teamless.is_empty() {
            return Ok(());
        }
        let homes: HashMap<String, String> = self.store().teams_of(&teamless).await?;
        for event in events.iter_mut().filter(|e| e.attribution.team.is_none()) {
            event.attribution.team = homes.get(&event.attribution.user).cloned();
        }
        Ok(())
    }
}
