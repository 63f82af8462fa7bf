//! GitHub webhook payloads read into outcome facts (signature checking is the server's).
//!
//! Handled: `pull_request` closed with `merged: true`; `pull_request_review` submitted with
//! state `approved`; `deployment_status` with state `success` in a production environment;
//! `push` (commit trailers naming an agent or task). Logins are left as they are: the caller
//! maps them to Goodhart users.

use serde_json::Value;

use crate::Micros;
use crate::outcomes::{Approval, CommitLink, Credited, Deployment, Fact, PullRequest};
use crate::time::parse_rfc3339;
use crate::usage::required_label;

/// What a delivery was.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// Facts to store (possibly none: e.g. a push without trailers).
    Facts(Vec<(String, Fact)>),
    /// An event or action that carries no outcome (a PR closed unmerged, a comment review, a
    /// ping): acknowledged and ignored, with why.
    Ignored(String),
}

fn field<'a>(value: &'a Value, path: &str) -> Result<&'a Value, String> {
    path.split('.')
        .try_fold(value, |v, key| v.get(key))
        .filter(|v| !v.is_null())
        .ok_or_else(|| format!("`{path}` is missing"))
}

fn text<'a>(value: &'a Value, path: &str) -> Result<&'a str, String> {
    field(value, path)?
        .as_str()
        .ok_or_else(|| format!("`{path}` must be a string"))
}

fn number(value: &Value, path: &str) -> Result<u64, String> {
    field(value, path)?
        .as_u64()
        .ok_or_else(|| format!("`{path}` must be a non-negative integer"))
}

/// A count GitHub may leave out (then 0), but when it sends one, a non-negative integer.
fn count(value: &Value, path: &str) -> Result<u64, String> {
    match field(value, path) {
        Ok(_) => number(value, path),
        Err(_) => Ok(0),
    }
}

/// A login, held to the rules of every name Goodhart credits.
fn login(value: &Value, path: &str) -> Result<String, String> {
    required_label("login", text(value, path)?.to_owned()).map_err(|e| format!("`{path}` {}", e.reason))
}

fn time(value: &Value, path: &str) -> Result<Micros, String> {
    parse_rfc3339(text(value, path)?).map_err(|e| format!("`{path}`: {e}"))
}

/// Reads one delivery of `event`. `production` lists the environment names that count as
/// production (compared without case).
pub fn read(event: &str, payload: &Value, production: &[String]) -> Result<Reading, String> {
    if !payload.is_object() {
        return Err("the payload must be a JSON object".into());
    }
    match event {
        "pull_request" => pull_request(payload),
        "pull_request_review" => review(payload),
        "deployment_status" => deployment_status(payload, production),
        "push" => push(payload),
        "ping" => Ok(Reading::Ignored("ping".into())),
        other => Ok(Reading::Ignored(format!("event `{other}` carries no outcome"))),
    }
}

fn pull_request(payload: &Value) -> Result<Reading, String> {
    let action = text(payload, "action")?;
    let merged = field(payload, "pull_request.merged").ok().and_then(Value::as_bool) == Some(true);
    if action != "closed" || !merged {
        return Ok(Reading::Ignored(format!("pull request {action}, not merged")));
    }
    let repo = text(payload, "repository.full_name")?.to_owned();
    let pr_number = number(payload, "pull_request.number")?;
    let author = login(payload, "pull_request.user.login")?;
    let title = text(payload, "pull_request.title").unwrap_or_default();
    let body = text(payload, "pull_request.body").unwrap_or_default();
    let branch = text(payload, "pull_request.head.ref").unwrap_or_default();
    let changed_lines =
        count(payload, "pull_request.additions")?.saturating_add(count(payload, "pull_request.deletions")?);
    let reverts = title.starts_with("Revert \"").then(|| reverted_number(body)).flatten();
    let fact = PullRequest {
        number: pr_number,
        merged_at: time(payload, "pull_request.merged_at")?,
        merge_sha: text(payload, "pull_request.merge_commit_sha").ok().map(str::to_owned),
        changed_lines,
        reverts,
        credited: Credited {
            user: author.clone(),
            agent: agent_in(body),
            task: task_in(body).or_else(|| task_in(branch)).or_else(|| task_in(title)),
            ..Credited::default()
        },
        author,
        repo,
    };
    let id = format!("gh:pr:{}#{}", fact.repo, fact.number);
    Ok(Reading::Facts(vec![(id, Fact::PullRequest(fact))]))
}

fn review(payload: &Value) -> Result<Reading, String> {
    let action = text(payload, "action")?;
    let state = text(payload, "review.state")?;
    if action != "submitted" || !state.eq_ignore_ascii_case("approved") {
        return Ok(Reading::Ignored(format!("review {action} as {state}, not an approval")));
    }
    let fact = Approval {
        repo: text(payload, "repository.full_name")?.to_owned(),
        number: number(payload, "pull_request.number")?,
        reviewer: login(payload, "review.user.login")?,
        at: time(payload, "review.submitted_at")?,
    };
    let id = format!("gh:review:{}", number(payload, "review.id")?);
    Ok(Reading::Facts(vec![(id, Fact::Approval(fact))]))
}

fn deployment_status(payload: &Value, production: &[String]) -> Result<Reading, String> {
    let state = text(payload, "deployment_status.state")?;
    let environment = text(payload, "deployment_status.environment")
        .or_else(|_| text(payload, "deployment.environment"))?
        .to_owned();
    if state != "success" {
        return Ok(Reading::Ignored(format!("deployment {state}, not a success")));
    }
    if !production.iter().any(|p| p.eq_ignore_ascii_case(&environment)) {
        return Ok(Reading::Ignored(format!(
            "environment `{environment}` is not production"
        )));
    }
    let fact = Deployment {
        repo: text(payload, "repository.full_name")?.to_owned(),
        sha: text(payload, "deployment.sha")?.to_owned(),
        at: time(payload, "deployment_status.created_at")?,
        credited: Credited {
            user: login(payload, "deployment.creator.login")?,
            ..Credited::default()
        },
        environment,
    };
    let id = format!("gh:deployment:{}", number(payload, "deployment.id")?);
    Ok(Reading::Facts(vec![(id, Fact::Deployment(fact))]))
}

fn push(payload: &Value) -> Result<Reading, String> {
    let repo = text(payload, "repository.full_name")?;
    let commits = field(payload, "commits")?
        .as_array()
        .ok_or("`commits` must be an array")?;
    let mut facts = Vec::new();
    for (i, commit) in commits.iter().enumerate() {
        let message = text(commit, "message").map_err(|e| format!("commits[{i}]: {e}"))?;
        let (agent, task) = (agent_in(message), trailer(message, "Goodhart-Task"));
        if agent.is_none() && task.is_none() {
            continue;
        }
        let sha = text(commit, "id").map_err(|e| format!("commits[{i}]: {e}"))?.to_owned();
        let at = time(commit, "timestamp").map_err(|e| format!("commits[{i}]: {e}"))?;
        facts.push((
            format!("gh:commit:{repo}@{sha}"),
            Fact::CommitLink(CommitLink {
                repo: repo.to_owned(),
                sha,
                at,
                agent,
                task,
            }),
        ));
    }
    Ok(Reading::Facts(facts))
}

/// The payload field a fact's time was read from, for errors about it.
pub fn time_field(fact: &Fact) -> &'static str {
    match fact {
        Fact::PullRequest(_) => "pull_request.merged_at",
        Fact::Approval(_) => "review.submitted_at",
        Fact::Deployment(_) => "deployment_status.created_at",
        Fact::CommitLink(_) => "commits[].timestamp",
        Fact::Reported(_) => "timestamp",
    }
}

/// GitHub's revert button writes `Reverts owner/repo#123` in the body.
fn reverted_number(body: &str) -> Option<u64> {
    let after = &body[body.find("Reverts ")? + "Reverts ".len()..];
    let digits: String = after
        .split_once('#')?
        .1
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn trailer(message: &str, name: &str) -> Option<String> {
    message.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim().eq_ignore_ascii_case(name) && !value.trim().is_empty()).then(|| value.trim().to_owned())
    })
}

/// Coding agents that sign their commits as co-authors.
const AGENT_MARKERS: [&str; 7] = ["claude", "codex", "copilot", "devin", "cursor", "aider", "[bot]"];

/// The agent named by a `Goodhart-Agent:` trailer, or by a `Co-authored-by:` trailer whose
/// name or address is a coding agent's (`Claude <noreply@anthropic.com>` → `claude`).
pub fn agent_in(message: &str) -> Option<String> {
    if let Some(agent) = trailer(message, "Goodhart-Agent") {
        return Some(agent);
    }
    message.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if !key.trim().eq_ignore_ascii_case("Co-authored-by") {
            return None;
        }
        let lower = value.to_ascii_lowercase();
        AGENT_MARKERS.iter().any(|m| lower.contains(m)).then(|| {
            let name = value.split('<').next().unwrap_or(value).trim();
            name.to_ascii_lowercase().replace(' ', "-")
        })
    })
}

/// The first ticket-like id (`PAY-123`: capitals and digits, a dash, digits) in a text, or a
/// `Goodhart-Task:` trailer.
pub fn task_in(text: &str) -> Option<String> {
    if let Some(task) = trailer(text, "Goodhart-Task") {
        return Some(task);
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if starts_word && bytes[i].is_ascii_uppercase() {
            let mut j = i;
            while j < bytes.len() && (bytes[j].is_ascii_uppercase() || bytes[j].is_ascii_digit()) {
                j += 1;
            }
            let mut k = j + 1;
            while k < bytes.len() && bytes[k].is_ascii_digit() {
                k += 1;
            }
            let ends_word = k >= bytes.len() || !bytes[k].is_ascii_alphanumeric();
            if j - i >= 2 && j < bytes.len() && bytes[j] == b'-' && k > j + 1 && ends_word {
                return Some(text[i..k].to_owned());
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tasks_and_agents_are_found_where_people_write_them() {
        assert_eq!(task_in("feature/PAY-123-refunds").as_deref(), Some("PAY-123"));
        assert_eq!(task_in("Fix refunds (SHOP2-7)").as_deref(), Some("SHOP2-7"));
        assert_eq!(
            task_in("fix pay-123 and a-1").as_deref(),
            None,
            "ticket keys are capitals"
        );
        assert_eq!(task_in("see X-1 and HTTP-2xx").as_deref(), None);
        assert_eq!(
            task_in("body\n\nGoodhart-Task: onboarding").as_deref(),
            Some("onboarding")
        );
        let message = "Fix it\n\nCo-authored-by: Claude <noreply@anthropic.com>";
        assert_eq!(agent_in(message).as_deref(), Some("claude"));
        assert_eq!(
            agent_in("x\n\nCo-authored-by: Bob Smith <bob@acme.com>"),
            None,
            "a colleague is not an agent"
        );
        assert_eq!(
            agent_in("x\nGoodhart-Agent: refactor-bot").as_deref(),
            Some("refactor-bot")
        );
        assert_eq!(reverted_number("Reverts acme/shop#42\n\nbecause"), Some(42));
    }

    fn merged_pr(additions: Value, login: &str) -> Value {
        serde_json::json!({
            "action": "closed",
            "repository": {"full_name": "acme/shop"},
            "pull_request": {"merged": true, "number": 7, "user": {"login": login}, "title": "t",
                             "merged_at": "2026-11-02T09:14:03Z", "additions": additions, "deletions": 1}
        })
    }

    /// A signed delivery with `additions` at `u64::MAX` panicked (overflow adding the
    /// deletions) and dropped the connection; one with a negative or non-numeric count was
    /// read as a change of no lines.
    #[test]
    fn regression_pull_request_line_counts_out_of_range() {
        let read = |payload: &Value| read("pull_request", payload, &[]);
        match read(&merged_pr(serde_json::json!(u64::MAX), "alice")) {
            Ok(Reading::Facts(facts)) => match &facts[0].1 {
                Fact::PullRequest(pr) => assert_eq!(pr.changed_lines, u64::MAX),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        for bad in [
            serde_json::json!(-1),
            serde_json::json!(0.5),
            serde_json::json!("12"),
            serde_json::json!(true),
        ] {
            let error = read(&merged_pr(bad, "alice")).unwrap_err();
            assert!(error.contains("pull_request.additions"), "{error}");
        }
        let error = read(&merged_pr(serde_json::json!(1), "al\u{0}ice")).unwrap_err();
        assert!(error.contains("pull_request.user.login"), "{error}");
        let error = read(&merged_pr(serde_json::json!(1), &"a".repeat(300))).unwrap_err();
        assert!(error.contains("pull_request.user.login"), "{error}");
    }

    proptest! {
        #[test]
        fn no_text_makes_the_scanners_panic(text in "\\PC*") {
            let _ = task_in(&text);
            let _ = agent_in(&text);
            let _ = reverted_number(&text);
        }

        #[test]
        fn no_payload_makes_the_reader_panic(event in "pull_request|pull_request_review|deployment_status|push|x", json in "\\PC*") {
            if let Ok(value) = serde_json::from_str::<Value>(&json) {
                let _ = read(&event, &value, &["production".into()]);
            }
        }
    }
}
