//! Who a proxied call is attributed to: the virtual key's scope, narrowed by what the request
//! says about itself.
//!
//! A key always fixes the user and team. A key that names a project or an agent fixes those
//! too: a request may repeat them but not change them (that would let one team's key book
//! spend to another project). Where the key leaves them open, the request's
//! `x-goodhart-project` / `x-goodhart-agent` headers fill them in. Task and session are free
//! labels: from `x-goodhart-task` / `x-goodhart-session`, else from what real clients already
//! send (Claude Code's `X-Claude-Code-Session-Id` header, or the `session_id` inside the
//! JSON-encoded `metadata.user_id` of its requests).

use serde_json::Value;

use crate::keys::KeyScope;
use crate::usage::{Attribution, FieldError, optional_label};

/// What a request says about itself (already read from headers and body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestLabels {
    pub project: Option<String>,
    pub agent: Option<String>,
    pub task: Option<String>,
    pub session: Option<String>,
    /// The client's own session header: Claude Code's `X-Claude-Code-Session-Id`, Codex's
    /// `session_id` (or `session-id`).
    pub client_session: Option<String>,
    /// The request body's `metadata.user_id`, as sent.
    pub metadata_user_id: Option<String>,
}

/// Why a request's labels were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributionError {
    #[error("this key is limited to {field} `{allowed}`; the request asked for `{asked}`")]
    OutsideKeyScope {
        field: &'static str,
        allowed: String,
        asked: String,
    },
    #[error(transparent)]
    InvalidLabel(#[from] FieldError),
}

/// The attribution of a call made with a key of `scope` and carrying `labels`.
pub fn attribute(scope: &KeyScope, labels: RequestLabels) -> Result<Attribution, AttributionError> {
    let narrowed = |field: &'static str, fixed: &Option<String>, asked: Option<String>| {
        let asked = label(field, asked)?;
        match (fixed, asked) {
            (Some(allowed), Some(asked)) if *allowed != asked => Err(AttributionError::OutsideKeyScope {
                field,
                allowed: allowed.clone(),
                asked,
            }),
            (Some(allowed), _) => Ok(Some(allowed.clone())),
            (None, asked) => Ok(asked),
        }
    };
    let session = match label("x-goodhart-session", labels.session)? {
        Some(session) => Some(session),
        None => label("the client's session header", labels.client_session)?
            .or_else(|| labels.metadata_user_id.as_deref().and_then(session_from_metadata)),
    };
    Ok(Attribution {
        user: scope.user.clone(),
        team: scope.team.clone(),
        project: narrowed("project", &scope.project, labels.project)?,
        agent: narrowed("agent", &scope.agent, labels.agent)?,
        task: label("x-goodhart-task", labels.task)?,
        session,
    })
}

fn label(field: &'static str, value: Option<String>) -> Result<Option<String>, AttributionError> {
    Ok(optional_label(field, value)?)
}

/// The session id inside Claude Code's `metadata.user_id`, a JSON object encoded as a string
/// (`{"device_id":…,"account_uuid":…,"session_id":…}`). Older versions sent
/// `user_<hash>_account_<uuid>_session_<uuid>`; both are understood.
pub fn session_from_metadata(user_id: &str) -> Option<String> {
    let found = if user_id.trim_start().starts_with('{') {
        let parsed: Value = serde_json::from_str(user_id).ok()?;
        parsed.get("session_id")?.as_str()?.to_owned()
    } else {
        user_id.rsplit_once("_session_")?.1.to_owned()
    };
    label("metadata.user_id", Some(found)).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(project: Option<&str>, agent: Option<&str>) -> KeyScope {
        KeyScope {
            user: "alice".into(),
            team: Some("payments".into()),
            project: project.map(Into::into),
            agent: agent.map(Into::into),
        }
    }

    #[test]
    fn an_open_key_takes_the_request_labels() {
        let labels = RequestLabels {
            project: Some("checkout".into()),
            agent: Some("refactor-bot".into()),
            task: Some("PAY-123".into()),
            session: Some("s-42".into()),
            ..Default::default()
        };
        let a = attribute(&scope(None, None), labels).unwrap();
        assert_eq!(a.user, "alice");
        assert_eq!(a.team.as_deref(), Some("payments"));
        assert_eq!(a.project.as_deref(), Some("checkout"));
        assert_eq!(a.agent.as_deref(), Some("refactor-bot"));
        assert_eq!(a.task.as_deref(), Some("PAY-123"));
        assert_eq!(a.session.as_deref(), Some("s-42"));
    }

    #[test]
    fn a_scoped_key_cannot_be_redirected() {
        let scoped = scope(Some("checkout"), Some("bot"));
        let same = RequestLabels {
            project: Some("checkout".into()),
            ..Default::default()
        };
        assert_eq!(attribute(&scoped, same).unwrap().agent.as_deref(), Some("bot"));
        let other = RequestLabels {
            project: Some("billing".into()),
            ..Default::default()
        };
        let err = attribute(&scoped, other).unwrap_err();
        assert_eq!(
            err.to_string(),
            "this key is limited to project `checkout`; the request asked for `billing`"
        );
        let other_agent = RequestLabels {
            agent: Some("farm-7".into()),
            ..Default::default()
        };
        assert!(matches!(
            attribute(&scoped, other_agent),
            Err(AttributionError::OutsideKeyScope { field: "agent", .. })
        ));
    }

    #[test]
    fn claude_code_sessions_are_recognised() {
        let from_body = RequestLabels {
            metadata_user_id: Some(
                r#"{"device_id":"908f","account_uuid":"","session_id":"08fdce2f-1baa-47e6-9012-bdd0ddb26cdc"}"#.into(),
            ),
            ..Default::default()
        };
        let a = attribute(&scope(None, None), from_body.clone()).unwrap();
        assert_eq!(a.session.as_deref(), Some("08fdce2f-1baa-47e6-9012-bdd0ddb26cdc"));
        let header_wins = RequestLabels {
            client_session: Some("from-header".into()),
            ..from_body.clone()
        };
        assert_eq!(
            attribute(&scope(None, None), header_wins).unwrap().session.as_deref(),
            Some("from-header")
        );
        let explicit_wins = RequestLabels {
            session: Some("explicit".into()),
            client_session: Some("from-header".into()),
            ..from_body
        };
        assert_eq!(
            attribute(&scope(None, None), explicit_wins).unwrap().session.as_deref(),
            Some("explicit")
        );
        assert_eq!(
            session_from_metadata("user_abc_account_123_session_9f1c").as_deref(),
            Some("9f1c")
        );
        assert_eq!(session_from_metadata("user-abc"), None);
        assert_eq!(session_from_metadata("{not json"), None);
    }

    #[test]
    fn bad_labels_are_refused_with_the_header_named() {
        let long = RequestLabels {
            task: Some("x".repeat(300)),
            ..Default::default()
        };
        assert_eq!(
            attribute(&scope(None, None), long).unwrap_err().to_string(),
            "x-goodhart-task: is longer than 256 characters"
        );
        let blank = RequestLabels {
            project: Some("  ".into()),
            ..Default::default()
        };
        assert_eq!(attribute(&scope(None, None), blank).unwrap().project, None);
    }
}
