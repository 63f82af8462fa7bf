//! The people directory ([`goodhart_store::directory`]): recorded at each sign-in from the
//! identity provider's groups, listed for the admin, and applied to usage that names no team —
//! as it is stored (the ingest API, OTLP, imports) and, through the key lookup, to gateway
//! calls with a key made without a team. Attribution is fixed when the usage is stored: a
//! person who moves team keeps their past usage where it was spent.

use std::collections::HashMap;

use goodhart_core::usage::UsageEvent;
use goodhart_store::directory::Member;
use serde::Serialize;

use super::{App, AppError};

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
