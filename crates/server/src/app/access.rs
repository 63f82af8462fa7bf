//! Who a request is from, and so what it may do: the admin (everything), a finops token
//! (reads everything; manages budgets and virtual keys), a team's manager (reads the team;
//! decides its people's findings), a read-only viewer (optionally limited to one team), an
//! engineer (their own numbers), a send-only ingest token or an identity provider's SCIM
//! token (provisioning people and groups, nothing else). Which routes each role reaches is the API's route tables
//! ([`crate::api`]), each naming the [`Duty`] it serves.

use goodhart_store::viewers::TokenRole;

use super::tokens::{constant_time_eq, hash_token};
use super::{App, AppError};

/// Who a request is from; API handlers read it as an `Extension<Access>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Admin,
    Viewer {
        id: String,
        name: Option<String>,
        /// The one team it may see; every team when absent.
        team: Option<String>,
    },
    /// An ingest token: may only send usage.
    Ingest {
        id: String,
        /// The team of usage that names none.
        team: Option<String>,
        /// A personal ingest token's person: everything it sends is theirs.
        user: Option<String>,
    },
    /// Finance and platform: every team's numbers, budgets and virtual keys; no finding
    /// decisions, no tokens.
    Finops {
        id: String,
        name: Option<String>,
    },
    /// A team's manager: the team's numbers, and decisions on its people's findings.
    Manager {
        id: String,
        name: Option<String>,
        team: String,
    },
    /// An engineer: their own usage, findings and budgets.
    Engineer {
        id: String,
        name: Option<String>,
        user: String,
    },
    /// An identity provider provisioning people and groups over SCIM: nothing else.
    Scim {
        id: String,
        name: Option<String>,
    },
}

/// What a route does, and so who may call it: each route table of the API serves one duty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    /// Read numbers, findings, budgets and alerts (limited to a team where the caller is).
    Read,
    /// Send usage.
    Ingest,
    /// Create and delete budgets; create, rotate and revoke virtual keys; read the bills.
    Spend,
    /// Confirm or dismiss findings.
    Decide,
    /// Make and revoke one's own virtual keys (a person's: an engineer's).
    OwnKeys,
    /// Provision people and groups over SCIM.
    Provision,
    /// Everything else: tokens, outcomes, logins, detection passes.
    Administer,
}

impl Access {
    /// The team the request is limited to (a viewer's or manager's) or speaks for (an ingest
    /// token's).
    pub fn team(&self) -> Option<&str> {
        match self {
            Access::Viewer { team, .. } | Access::Ingest { team, .. } => team.as_deref(),
            Access::Manager { team, .. } => Some(team),
            Access::Admin | Access::Finops { .. } | Access::Engineer { .. } | Access::Scim { .. } => None,
        }
    }

    /// The one person the request speaks for and is limited to (an engineer's, a personal
    /// ingest token's).
    pub fn user(&self) -> Option<&str> {
        match self {
            Access::Engineer { user, .. } => Some(user),
            Access::Ingest { user, .. } => user.as_deref(),
            _ => None,
        }
    }

    /// The role's name, as `/api/v1/me` and the tokens API say it.
    pub fn role(&self) -> &'static str {
        match self {
            Access::Admin => "admin",
            Access::Viewer { .. } => "viewer",
            Access::Ingest { .. } => "ingest",
            Access::Finops { .. } => "finops",
            Access::Manager { .. } => "manager",
            Access::Engineer { .. } => "engineer",
            Access::Scim { .. } => "scim",
        }
    }

    /// Whether the role may do `duty` at all (what it reaches within it may still be limited to
    /// its team).
    pub fn may(&self, duty: Duty) -> bool {
        match self {
            Access::Admin => true,
            Access::Viewer { .. } => duty == Duty::Read,
            Access::Engineer { .. } => matches!(duty, Duty::Read | Duty::OwnKeys),
            Access::Ingest { .. } => duty == Duty::Ingest,
            Access::Finops { .. } => matches!(duty, Duty::Read | Duty::Spend),
            Access::Manager { .. } => matches!(duty, Duty::Read | Duty::Decide),
            Access::Scim { .. } => duty == Duty::Provision,
        }
    }

    /// The duties the role may do, for `/api/v1/me` (the dashboard shows what they allow).
    pub fn duties(&self) -> Vec<&'static str> {
        [
            (Duty::Read, "read"),
            (Duty::Ingest, "ingest"),
            (Duty::Spend, "spend"),
            (Duty::Decide, "decide"),
            (Duty::OwnKeys, "own_keys"),
            (Duty::Provision, "provision"),
            (Duty::Administer, "administer"),
        ]
        .into_iter()
        .filter(|(duty, _)| self.may(*duty))
        .map(|(_, name)| name)
        .collect()
    }
}

impl App {
    /// Who `token` belongs to: the admin, or a live viewer or ingest token.
    pub async fn authenticate(&self, token: &str) -> Result<Access, AppError> {
        let hash = hash_token(token);
        if self.admin_token.is_some_and(|admin| constant_time_eq(&hash, &admin)) {
            return Ok(Access::Admin);
        }
        let token = self
            .store
            .viewer_by_hash(&hex::encode(hash))
            .await?
            .filter(|t| t.revoked_at.is_none())
            .ok_or(AppError::Unauthorized)?;
        Ok(match token.role {
            TokenRole::Viewer => Access::Viewer {
                id: token.id,
                name: token.name,
                team: token.team,
            },
            TokenRole::Ingest => Access::Ingest {
                id: token.id,
                team: token.team,
                user: token.user,
            },
            TokenRole::Finops => Access::Finops {
                id: token.id,
                name: token.name,
            },
            // A manager token is created with its team, an engineer's with its person; one
            // stored without is refused.
            TokenRole::Manager => Access::Manager {
                id: token.id,
                name: token.name,
                team: token.team.ok_or(AppError::Unauthorized)?,
            },
            TokenRole::Engineer => Access::Engineer {
                id: token.id,
                name: token.name,
                user: token.user.ok_or(AppError::Unauthorized)?,
            },
            TokenRole::Scim => Access::Scim {
                id: token.id,
                name: token.name,
            },
        })
    }
}
