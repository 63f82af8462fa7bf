//! Who a request is from: the admin, a read-only viewer (optionally limited to one team) or a
//! send-only ingest token. What each may reach is the API's route table
//! ([`crate::api`]); this module only says who presented a token.

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
    },
}

impl Access {
    /// The team the request is limited to (a viewer's) or speaks for (an ingest token's).
    pub fn team(&self) -> Option<&str> {
        match self {
            Access::Viewer { team, .. } | Access::Ingest { team, .. } => team.as_deref(),
            Access::Admin => None,
        }
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
            },
        })
    }
}
