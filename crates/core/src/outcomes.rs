//! Outcomes — delivered work — and the value they earn, in "normalised deployments".
//!
//! Facts come from signed GitHub webhooks (pull requests, reviews, deployments) or are
//! reported through the API. [`credits`] turns the whole set of facts into value credited to
//! people (and their agents and tasks), applying the anti-gaming rules, each of which is a
//! plain rule over the facts:
//!
//! - a merged pull request is **verified** only if someone other than its author approved it
//!   before it merged; an unverified one earns nothing;
//! - **tiny changes are down-weighted**: under [`ValueRules::tiny_lines`] changed lines a
//!   tenth, under [`ValueRules::small_lines`] a half;
//! - a **successful production deployment** of a commit not deployed before credits the
//!   verified pull requests merged into its repository since the previous production
//!   deployment; **re-deploying** a commit already deployed earns nothing, and neither does a
//!   deployment that ships no verified pull request (distinct but empty commits would
//!   otherwise be a way to mint value);
//! - a pull request that is **reverted** (a merged revert naming it) loses all its credit, and
//!   the revert earns nothing;
//! - **self-reported** outcomes (API) earn their kind's weight times [`ValueRules::reported_discount`],
//!   capped at [`ValueRules::reported_cap_per_week`] per person per week;
//! - **duplicates** (the same fact id twice) count once.
//!
//! One normalised deployment (1000 milli-units) is a verified, normal-size pull request that
//! reached production: half for the merge, half for the deployment.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::Micros;
use crate::time::{MICROS_PER_DAY, parse_rfc3339};
use crate::usage::{FieldError, optional_label, required_label};

/// Value in thousandths of a normalised deployment (integers: sums are exact and ranking is
/// deterministic).
pub type Milli = u64;

crate::named_enum! {
    /// What kind of delivered work an outcome is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum OutcomeKind {
        Deployment = "deployment",
        PrMerged = "pr_merged",
        TicketResolved = "ticket_resolved",
        Incident = "incident",
        Custom = "custom",
    }
}

/// Who and what a piece of work is attributed to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credited {
    pub user: String,
    pub team: Option<String>,
    pub project: Option<String>,
    pub agent: Option<String>,
    pub task: Option<String>,
}

/// A merged pull request, as GitHub reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub repo: String,
    pub number: u64,
    /// The author's GitHub login.
    pub author: String,
    pub merged_at: Micros,
    pub merge_sha: Option<String>,
    pub changed_lines: u64,
    /// The pull request this one reverts, if it is a revert.
    pub reverts: Option<u64>,
    /// The author as a Goodhart user, with agent and task found in the branch, title or body.
    pub credited: Credited,
}

/// An approving review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub repo: String,
    pub number: u64,
    pub reviewer: String,
    pub at: Micros,
}

/// A successful deployment to a production environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub repo: String,
    pub sha: String,
    pub environment: String,
    pub at: Micros,
    /// Who created it, as a Goodhart user.
    pub credited: Credited,
}

/// An outcome reported through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    pub kind: OutcomeKind,
    pub at: Micros,
    /// The reporter's multiplier, in thousandths (1000 = one outcome of its kind).
    pub weight: Milli,
    pub reference: Option<String>,
    pub credited: Credited,
}

/// Agent and task named by a pushed commit's trailers (`Co-authored-by:` an agent,
/// `Goodhart-Task:`), for the pull request or deployment of that commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitLink {
    pub repo: String,
    pub sha: String,
    pub at: Micros,
    pub agent: Option<String>,
    pub task: Option<String>,
}

/// One fact about delivered work, under an id unique to it (a repeat is the same fact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    PullRequest(PullRequest),
    Approval(Approval),
    Deployment(Deployment),
    Reported(Reported),
    CommitLink(CommitLink),
}

impl Fact {
    /// When it happened.
    pub fn at(&self) -> Micros {
        match self {
            Fact::PullRequest(pr) => pr.merged_at,
            Fact::Approval(a) => a.at,
            Fact::Deployment(d) => d.at,
            Fact::Reported(r) => r.at,
            Fact::CommitLink(c) => c.at,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Fact::PullRequest(_) => "pull_request",
            Fact::Approval(_) => "approval",
            Fact::Deployment(_) => "deployment",
            Fact::Reported(_) => "reported",
            Fact::CommitLink(_) => "commit_link",
        }
    }
}

/// One self-reported outcome, as `POST /api/v1/outcomes` takes it (the public contract).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeInput {
    pub id: String,
    pub timestamp: String,
    pub kind: String,
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// How many outcomes of its kind this one is worth (default 1, at most 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl OutcomeInput {
    /// Checks every field and builds the fact, under the id `api:<id>`.
    pub fn validate(self) -> Result<(String, Fact), FieldError> {
        // The same rules as usage's labels: outcomes are credited to the same names.
        let id = required_label("id", self.id)?;
        let user = required_label("user", self.user)?;
        let (team, project, agent, task) = (
            optional_label("team", self.team)?,
            optional_label("project", self.project)?,
            optional_label("agent", self.agent)?,
            optional_label("task", self.task)?,
        );
        let at = parse_rfc3339(&self.timestamp).map_err(|e| FieldError::new("timestamp", e))?;
        let kind = OutcomeKind::parse(&self.kind).ok_or_else(|| {
            FieldError::new(
                "kind",
                "must be one of deployment, pr_merged, ticket_resolved, incident, custom",
            )
        })?;
        let weight = self.weight.unwrap_or(1.0);
        // Kept in thousandths: a smaller weight would be stored as nothing.
        if !(0.001..=100.0).contains(&weight) {
            return Err(FieldError::new("weight", "must be at least 0.001 and at most 100"));
        }
        // Weights are a reporter's rough multiplier: thousandths are plenty of precision.
        let weight = (weight * 1_000.0).round() as Milli;
        let credited = Credited {
            user,
            team,
            project,
            agent,
            task,
        };
        Ok((
            format!("api:{id}"),
            Fact::Reported(Reported {
                kind,
                at,
                weight,
                reference: self.reference,
                credited,
            }),
        ))
    }
}

/// The weights and limits of value (configurable; the defaults are documented in the README).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueRules {
    /// What a verified merge of a normal-size pull request earns.
    pub merge: Milli,
    /// What reaching production adds to each pull request shipped.
    pub deployment: Milli,
    pub tiny_lines: u64,
    pub small_lines: u64,
    /// Per kind: what one self-reported outcome earns before the discount, and the hours one
    /// outcome is estimated to save (for the ROI report).
    pub kinds: BTreeMap<OutcomeKind, KindRule>,
    /// The share of a self-reported outcome's value that counts, in thousandths.
    pub reported_discount: Milli,
    pub reported_cap_per_week: Milli,
}

impl Default for ValueRules {
    fn default() -> ValueRules {
        ValueRules {
            merge: 500,
            deployment: 500,
            tiny_lines: 10,
            small_lines: 50,
            kinds: BTreeMap::from([
                (OutcomeKind::Deployment, KindRule::new(1_000, 60)),
                (OutcomeKind::PrMerged, KindRule::new(500, 180)),
                (OutcomeKind::TicketResolved, KindRule::new(500, 120)),
                (OutcomeKind::Incident, KindRule::new(1_000, 240)),
                (OutcomeKind::Custom, KindRule::new(250, 60)),
            ]),
            reported_discount: 500,
            reported_cap_per_week: 500,
        }
    }
}

impl ValueRules {
    pub fn kind(&self, kind: OutcomeKind) -> KindRule {
        self.kinds.get(&kind).copied().unwrap_or(KindRule::new(0, 0))
    }
}

/// How one kind of outcome is valued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindRule {
    /// What one self-reported outcome of the kind earns, before the discount. (GitHub-verified
    /// merges and deployments are the unit itself: [`ValueRules::merge`] and
    /// [`ValueRules::deployment`].)
    pub weight: Milli,
    /// Engineer-minutes one outcome of the kind is estimated to save.
    pub minutes_saved: u64,
}

impl KindRule {
    pub const fn new(weight: Milli, minutes_saved: u64) -> KindRule {
        KindRule { weight, minutes_saved }
    }
}

/// Why a credit earned what it did (shown with the outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Note {
    /// Verified by GitHub facts (approval by another person, production deployment).
    Verified,
    /// Merged without an approval from someone other than its author: earns nothing.
    Unverified,
    /// Reverted by a later merged pull request: earns nothing.
    Reverted,
    /// A revert: earns nothing.
    Revert,
    /// Under the small- or tiny-change threshold: down-weighted.
    SmallChange,
    /// A commit that was already deployed: earns nothing.
    Redeploy,
    /// A deployment that shipped no verified pull request: earns nothing.
    NothingShipped,
    /// Self-reported through the API: discounted.
    SelfReported,
    /// Self-reported beyond the weekly cap: earns nothing more.
    OverCap,
}

/// Value credited to someone for one outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credit {
    /// The fact it comes from.
    pub fact_id: String,
    pub at: Micros,
    pub kind: OutcomeKind,
    pub credited: Credited,
    pub value: Milli,
    pub notes: Vec<Note>,
    /// `repo#number`, `repo@sha` or the reporter's reference.
    pub reference: String,
    /// The repository and pull request the credit is for, where it is for one.
    pub pull_request: Option<(String, u64)>,
}

/// The UTC week (Monday to Sunday) an instant falls in, numbered from the epoch's week.
pub fn week_of(at: Micros) -> i64 {
    // 1970-01-01 was a Thursday: shift by three days so weeks start on Mondays.
    (at.0 + 3 * MICROS_PER_DAY).div_euclid(7 * MICROS_PER_DAY)
}

fn scaled(value: Milli, factor: Milli) -> Milli {
    value.saturating_mul(factor) / 1_000
}

/// The size factor of a change, in thousandths.
fn size_factor(rules: &ValueRules, changed_lines: u64) -> (Milli, bool) {
    if changed_lines < rules.tiny_lines {
        (100, true)
    } else if changed_lines < rules.small_lines {
        (500, true)
    } else {
        (1_000, false)
    }
}

/// Every credit the facts earn, in time order (ties by fact id), under `rules`.
pub fn credits(facts: &[(String, Fact)], rules: &ValueRules) -> Vec<Credit> {
    let mut seen = HashSet::new();
    let mut facts: Vec<&(String, Fact)> = facts.iter().filter(|(id, _)| seen.insert(id.as_str())).collect();
    facts.sort_by(|a, b| (a.1.at(), &a.0).cmp(&(b.1.at(), &b.0)));

    let mut approvals: HashMap<(&str, u64), Vec<&Approval>> = HashMap::new();
    let mut reverted: HashSet<(&str, u64)> = HashSet::new();
    let mut links: HashMap<(&str, &str), &CommitLink> = HashMap::new();
    for (_, fact) in &facts {
        match fact {
            Fact::CommitLink(link) => {
                links.insert((link.repo.as_str(), link.sha.as_str()), link);
            }
            Fact::Approval(a) => approvals.entry((a.repo.as_str(), a.number)).or_default().push(a),
            Fact::PullRequest(pr) => {
                if let Some(original) = pr.reverts {
                    reverted.insert((pr.repo.as_str(), original));
                }
            }
            _ => {}
        }
    }
    let verified = |pr: &PullRequest| {
        approvals
            .get(&(pr.repo.as_str(), pr.number))
            .is_some_and(|list| list.iter().any(|a| a.reviewer != pr.author && a.at <= pr.merged_at))
    };

    let mut out = Vec::new();
    // Per repository: merged pull requests not yet shipped, and the commits deployed.
    let mut unshipped: HashMap<&str, Vec<(&PullRequest, Credited)>> = HashMap::new();
    let mut deployed: HashSet<(&str, &str)> = HashSet::new();
    let mut reported_this_week: HashMap<(&str, i64), Milli> = HashMap::new();
    for (id, fact) in facts {
        match fact {
            Fact::Approval(_) | Fact::CommitLink(_) => {}
            Fact::PullRequest(pr) => {
                let reference = format!("{}#{}", pr.repo, pr.number);
                let mut credited = pr.credited.clone();
                if let Some(link) = pr
                    .merge_sha
                    .as_deref()
                    .and_then(|sha| links.get(&(pr.repo.as_str(), sha)))
                {
                    credited.agent = credited.agent.or_else(|| link.agent.clone());
                    credited.task = credited.task.or_else(|| link.task.clone());
                }
                let (factor, small) = size_factor(rules, pr.changed_lines);
                let mut notes = Vec::new();
                let value = if pr.reverts.is_some() {
                    notes.push(Note::Revert);
                    0
                } else if reverted.contains(&(pr.repo.as_str(), pr.number)) {
                    notes.push(Note::Reverted);
                    0
                } else if !verified(pr) {
                    notes.push(Note::Unverified);
                    0
                } else {
                    notes.push(Note::Verified);
                    if small {
                        notes.push(Note::SmallChange);
                    }
                    unshipped
                        .entry(pr.repo.as_str())
                        .or_default()
                        .push((pr, credited.clone()));
                    scaled(rules.merge, factor)
                };
                out.push(Credit {
                    fact_id: id.clone(),
                    at: pr.merged_at,
                    kind: OutcomeKind::PrMerged,
                    credited,
                    value,
                    notes,
                    reference,
                    pull_request: Some((pr.repo.clone(), pr.number)),
                });
            }
            Fact::Deployment(d) => {
                let reference = format!("{}@{}", d.repo, d.sha);
                let first = deployed.insert((d.repo.as_str(), d.sha.as_str()));
                let shipped = if first {
                    unshipped.remove(d.repo.as_str()).unwrap_or_default()
                } else {
                    Vec::new()
                };
                if shipped.is_empty() {
                    out.push(Credit {
                        fact_id: id.clone(),
                        at: d.at,
                        kind: OutcomeKind::Deployment,
                        credited: d.credited.clone(),
                        value: 0,
                        notes: vec![if first { Note::NothingShipped } else { Note::Redeploy }],
                        reference: reference.clone(),
                        pull_request: None,
                    });
                }
                for (pr, credited) in shipped {
                    let (factor, small) = size_factor(rules, pr.changed_lines);
                    let mut notes = vec![Note::Verified];
                    if small {
                        notes.push(Note::SmallChange);
                    }
                    out.push(Credit {
                        fact_id: id.clone(),
                        at: d.at,
                        kind: OutcomeKind::Deployment,
                        credited,
                        value: scaled(rules.deployment, factor),
                        notes,
                        reference: format!("{reference} ships #{}", pr.number),
                        pull_request: Some((pr.repo.clone(), pr.number)),
                    });
                }
            }
            Fact::Reported(r) => {
                let base = rules.kind(r.kind).weight;
                let earned = scaled(scaled(base, r.weight), rules.reported_discount);
                let used = reported_this_week
                    .entry((r.credited.user.as_str(), week_of(r.at)))
                    .or_default();
                let value = earned.min(rules.reported_cap_per_week.saturating_sub(*used));
                *used += value;
                let mut notes = vec![Note::SelfReported];
                if value < earned {
                    notes.push(Note::OverCap);
                }
                out.push(Credit {
                    fact_id: id.clone(),
                    at: r.at,
                    kind: r.kind,
                    credited: r.credited.clone(),
                    value,
                    notes,
                    reference: r.reference.clone().unwrap_or_else(|| id.clone()),
                    pull_request: None,
                });
            }
        }
    }
    // A revert merged after the deployment that shipped the original takes that credit too.
    for credit in &mut out {
        let shipped_reverted = credit
            .pull_request
            .as_ref()
            .is_some_and(|(repo, number)| reverted.contains(&(repo.as_str(), *number)));
        if credit.kind == OutcomeKind::Deployment && shipped_reverted {
            credit.value = 0;
            credit.notes = vec![Note::Reverted];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn at(text: &str) -> Micros {
        parse_rfc3339(text).unwrap()
    }

    fn user(name: &str) -> Credited {
        Credited {
            user: name.into(),
            ..Credited::default()
        }
    }

    fn pr(number: u64, author: &str, merged: &str, lines: u64) -> (String, Fact) {
        (
            format!("pr:acme/shop#{number}"),
            Fact::PullRequest(PullRequest {
                repo: "acme/shop".into(),
                number,
                author: author.into(),
                merged_at: at(merged),
                merge_sha: Some(format!("sha{number}")),
                changed_lines: lines,
                reverts: None,
                credited: user(author),
            }),
        )
    }

    fn approval(number: u64, reviewer: &str, when: &str) -> (String, Fact) {
        (
            format!("review:{number}:{reviewer}"),
            Fact::Approval(Approval {
                repo: "acme/shop".into(),
                number,
                reviewer: reviewer.into(),
                at: at(when),
            }),
        )
    }

    fn deploy(id: &str, sha: &str, when: &str) -> (String, Fact) {
        (
            id.into(),
            Fact::Deployment(Deployment {
                repo: "acme/shop".into(),
                sha: sha.into(),
                environment: "production".into(),
                at: at(when),
                credited: user("deploy-bot"),
            }),
        )
    }

    fn value_of(credits: &[Credit], who: &str) -> Milli {
        credits.iter().filter(|c| c.credited.user == who).map(|c| c.value).sum()
    }

    #[test]
    fn a_reviewed_pull_request_that_ships_is_one_normalised_deployment() {
        let facts = vec![
            approval(1, "bob", "2026-11-02T10:00:00Z"),
            pr(1, "alice", "2026-11-02T11:00:00Z", 120),
            deploy("d1", "sha1", "2026-11-02T12:00:00Z"),
        ];
        let credits = credits(&facts, &ValueRules::default());
        assert_eq!(value_of(&credits, "alice"), 1_000);
        assert_eq!(
            value_of(&credits, "deploy-bot"),
            0,
            "shipping others' work is not the deployer's"
        );
    }

    #[test]
    fn self_merged_tiny_reverted_and_redeployed_work_earns_what_the_rules_say() {
        let facts = vec![
            pr(1, "alice", "2026-11-02T11:00:00Z", 120),  // no approval at all
            approval(2, "alice", "2026-11-02T10:00:00Z"), // approved by its own author
            pr(2, "alice", "2026-11-02T11:30:00Z", 120),
            approval(3, "bob", "2026-11-02T10:00:00Z"),
            pr(3, "carol", "2026-11-02T11:40:00Z", 3),  // tiny
            approval(4, "bob", "2026-11-02T12:00:00Z"), // approved after it merged
            pr(4, "dave", "2026-11-02T11:50:00Z", 500),
            deploy("d1", "sha3", "2026-11-02T13:00:00Z"),
            deploy("d2", "sha3", "2026-11-03T13:00:00Z"), // the same commit again
        ];
        let credits = credits(&facts, &ValueRules::default());
        assert_eq!(value_of(&credits, "alice"), 0, "self-merged");
        assert_eq!(value_of(&credits, "carol"), 100, "a tenth of merge and deployment");
        assert_eq!(value_of(&credits, "dave"), 0, "approval came after the merge");
        let redeploy = credits.iter().find(|c| c.fact_id == "d2").unwrap();
        assert_eq!((redeploy.value, redeploy.notes.as_slice()), (0, &[Note::Redeploy][..]));
    }

    #[test]
    fn a_revert_takes_back_the_merge_and_the_deployment() {
        let mut revert = pr(9, "erin", "2026-11-04T09:00:00Z", 120);
        if let Fact::PullRequest(p) = &mut revert.1 {
            p.reverts = Some(1);
        }
        let facts = vec![
            approval(1, "bob", "2026-11-02T10:00:00Z"),
            pr(1, "alice", "2026-11-02T11:00:00Z", 120),
            deploy("d1", "sha1", "2026-11-02T12:00:00Z"),
            approval(9, "bob", "2026-11-04T08:00:00Z"),
            revert,
        ];
        let credits = credits(&facts, &ValueRules::default());
        assert_eq!(value_of(&credits, "alice"), 0);
        assert_eq!(value_of(&credits, "erin"), 0, "reverting earns nothing either");
    }

    #[test]
    fn self_reported_outcomes_are_discounted_and_capped_per_week() {
        let reported = |id: &str, when: &str| {
            (
                id.to_owned(),
                Fact::Reported(Reported {
                    kind: OutcomeKind::Incident,
                    at: at(when),
                    weight: 1_000,
                    reference: None,
                    credited: user("alice"),
                }),
            )
        };
        let facts: Vec<_> = (0..10)
            .map(|i| reported(&format!("r{i}"), "2026-11-03T10:00:00Z"))
            .chain([reported("next-week", "2026-11-10T10:00:00Z")])
            .chain([reported("r0", "2026-11-03T10:00:00Z")])
            .collect();
        let credits = credits(&facts, &ValueRules::default());
        assert_eq!(credits.len(), 11, "the repeated id counts once");
        assert_eq!(
            value_of(&credits, "alice"),
            500 + 500,
            "capped at ½ in the first week, ½ earned the next"
        );
    }

    #[test]
    fn commit_trailers_name_the_agent_and_task_of_the_work_they_merge() {
        let facts = vec![
            (
                "push:sha1".to_owned(),
                Fact::CommitLink(CommitLink {
                    repo: "acme/shop".into(),
                    sha: "sha1".into(),
                    at: at("2026-11-02T09:00:00Z"),
                    agent: Some("claude".into()),
                    task: Some("PAY-123".into()),
                }),
            ),
            approval(1, "bob", "2026-11-02T10:00:00Z"),
            pr(1, "alice", "2026-11-02T11:00:00Z", 120),
            deploy("d1", "sha9", "2026-11-02T12:00:00Z"),
        ];
        let credits = credits(&facts, &ValueRules::default());
        assert_eq!(credits.len(), 2);
        for credit in credits {
            assert_eq!(
                (credit.credited.agent.as_deref(), credit.credited.task.as_deref()),
                (Some("claude"), Some("PAY-123"))
            );
        }
    }

    #[test]
    fn weeks_start_on_monday_utc() {
        assert_eq!(week_of(at("2026-11-02T00:00:00Z")), week_of(at("2026-11-08T23:59:59Z")));
        assert_ne!(week_of(at("2026-11-01T23:59:59Z")), week_of(at("2026-11-02T00:00:00Z")));
    }
}
