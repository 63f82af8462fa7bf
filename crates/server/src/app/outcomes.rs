//! Outcomes in: GitHub deliveries (already verified by their signature), self-reported
//! outcomes, and the GitHub login ↔ user mapping that credits them to people.

use goodhart_core::github;
use goodhart_core::outcomes::Fact;
use serde::Serialize;
use serde_json::Value;

use super::audit::{Event, Origin};
use super::usage::MAX_FUTURE_SKEW_MICROS;
use super::{App, AppError};

#[derive(Debug, Serialize)]
pub struct DeliveryResponse {
    pub delivery: String,
    pub event: String,
    /// Facts stored from this delivery.
    pub stored: u64,
    /// Facts already known (from another delivery of the same thing).
    pub duplicates: u64,
    /// This delivery id was processed before: nothing was done.
    pub replay: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OutcomesResponse {
    pub accepted: u64,
    pub duplicates: u64,
}

/// A GitHub login and the user it is credited to.
#[derive(Debug, Clone, Serialize)]
pub struct LoginMapping {
    pub login: String,
    pub user: String,
}

impl App {
    /// Stores the facts of one GitHub delivery (`event` with its JSON `payload`), crediting
    /// mapped logins to their users; a delivery id seen before changes nothing.
    pub async fn record_delivery(
        &self,
        delivery: String,
        event: String,
        payload: &Value,
    ) -> Result<DeliveryResponse, AppError> {
        let reading = github::read(&event, payload, &self.settings().outcomes.production_environments)
            .map_err(|message| AppError::Rejected(format!("{event} payload: {message}")))?;
        let (mut facts, ignored) = match reading {
            github::Reading::Facts(facts) => (facts, None),
            github::Reading::Ignored(why) => (Vec::new(), Some(why)),
        };
        // The bounds every other source of outcomes and usage is held to.
        let now = self.now();
        if let Some((_, fact)) = facts
            .iter()
            .find(|(_, fact)| fact.at().0 < 0 || fact.at().0 > now.0 + MAX_FUTURE_SKEW_MICROS)
        {
            return Err(AppError::Rejected(format!(
                "{event} payload: `{}` ({}) is before 1970 or more than a day in the future",
                github::time_field(fact),
                fact.at().rfc3339()
            )));
        }
        for (_, fact) in &mut facts {
            let credited = match fact {
                Fact::PullRequest(pr) => &mut pr.credited,
                Fact::Deployment(d) => &mut d.credited,
                _ => continue,
            };
            if let Some(user) = self.store().github_user(&credited.user).await? {
                credited.user = user;
            }
        }
        let stored = self.store().insert_delivery(&delivery, &event, facts).await?;
        Ok(DeliveryResponse {
            replay: stored.is_none(),
            stored: stored.map_or(0, |s| s.inserted),
            duplicates: stored.map_or(0, |s| s.duplicates),
            delivery,
            event,
            ignored,
        })
    }

    /// Stores validated outcomes (idempotent by id).
    pub async fn record_outcomes(
        &self,
        origin: &Origin,
        facts: Vec<(String, Fact)>,
    ) -> Result<OutcomesResponse, AppError> {
        let stored = self.store().insert_facts(facts).await?;
        let event = Event::new("outcome.record").with(serde_json::json!({
            "accepted": stored.inserted,
            "duplicates": stored.duplicates,
        }));
        self.audit(origin, event).await?;
        Ok(OutcomesResponse {
            accepted: stored.inserted,
            duplicates: stored.duplicates,
        })
    }

    /// Credits GitHub `login`'s outcomes to `user` from now on.
    pub async fn map_login(&self, origin: &Origin, login: &str, user: &str) -> Result<LoginMapping, AppError> {
        for (field, value) in [("login", login), ("user", user)] {
            if value.trim() != value || value.is_empty() || value.len() > 200 || value.chars().any(char::is_control) {
                return Err(AppError::field(
                    field,
                    format!("`{field}` must be 1 to 200 characters, without surrounding spaces or control characters"),
                ));
            }
        }
        self.store().map_github_login(login, user).await?;
        let event = Event::new("login_mapping.set")
            .on("github_login", login)
            .with(serde_json::json!({ "user": user }));
        self.audit(origin, event).await?;
        Ok(LoginMapping {
            login: login.to_owned(),
            user: user.to_owned(),
        })
    }

    pub async fn logins(&self) -> Result<Vec<LoginMapping>, AppError> {
        Ok(self
            .store()
            .github_logins()
            .await?
            .into_iter()
            .map(|(login, user)| LoginMapping { login, user })
            .collect())
    }
}
