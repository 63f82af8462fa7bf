//! Waste detection's input and output: the calls of a window as detection sees them, and the
//! findings of detection passes with the admin's decision on each (the `findings` migration).
//!
//! A pass over a window replaces that window's findings: findings seen again keep their
//! decision and get the pass's numbers, new ones are added, and undecided ones the pass no
//! longer finds (an outcome arrived, say) are withdrawn. Decided findings are never withdrawn.
//!
//! A pass may record some of its new findings dismissed at once, because an admin dismissed the
//! same pattern earlier ([`goodhart_core::waste::review`]): those are decided
//! [`Decider::Automatic`]ally, only when new (a finding already stored keeps its status), and an
//! admin's later decision on them replaces the automatic one as any decision is revised.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use goodhart_core::waste::{Call, Detector, Finding, FindingStatus, SubjectKind, TRUNCATION_REASONS};
use goodhart_core::{Micros, Nanos};

use crate::error::StoreError;

goodhart_core::named_enum! {
    /// Who decided a finding.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Decider {
        /// An admin, through the API or the CLI.
        Admin = "admin",
        /// The manager of the finding's person's team.
        Manager = "manager",
        /// A detection pass, because an admin had dismissed the same pattern earlier.
        Automatic = "automatic",
    }
}

/// A stored finding and where its review stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFinding {
    pub finding: Finding,
    pub status: FindingStatus,
    /// When a pass first found it.
    pub detected_at: Micros,
    /// When a pass last updated its numbers.
    pub updated_at: Micros,
    pub decided_at: Option<Micros>,
    /// Who decided it, if it is decided.
    pub decided_by: Option<Decider>,
    /// The reason for the decision: the admin's, or the pass's naming the decision it follows.
    pub note: Option<String>,
}

/// What recording a detection pass changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassOutcome {
    /// Findings not stored before, open (the ones an alert may be raised for).
    pub new: Vec<Finding>,
    /// Findings not stored before, recorded dismissed automatically.
    pub auto_dismissed: u64,
    /// Findings stored before, updated with this pass's numbers.
    pub updated: u64,
    /// Undecided findings of the window this pass no longer found: removed.
    pub withdrawn: u64,
}

#[async_trait]
pub trait FindingStore: Send + Sync {
    /// Every usage event in `[from, to)` as a call detection can judge.
    async fn waste_calls(&self, from: Micros, to: Micros) -> Result<Vec<Call>, StoreError>;

    /// Records a detection pass over `[from, to)` (see the module docs), in one transaction.
    /// Only findings that started in the window are the pass's: others are skipped. New
    /// findings whose id is a key of `dismiss` are recorded dismissed automatically at `now`,
    /// with its value as their note.
    async fn record_findings(
        &self,
        from: Micros,
        to: Micros,
        findings: Vec<Finding>,
        dismiss: HashMap<String, String>,
        now: Micros,
    ) -> Result<PassOutcome, StoreError>;

    /// Findings that started in `[from, to)`, most wasteful first.
    async fn findings(&self, from: Micros, to: Micros) -> Result<Vec<StoredFinding>, StoreError>;

    /// One finding by its id.
    async fn finding(&self, id: &str) -> Result<Option<StoredFinding>, StoreError>;

    /// The decided (confirmed or dismissed) findings that started in `[from, to)`, oldest
    /// first: what a pass reviews its new findings against.
    async fn decided_findings(&self, from: Micros, to: Micros) -> Result<Vec<StoredFinding>, StoreError>;

    /// Records a person's decision (`confirmed` or `dismissed`, with an optional reason),
    /// replacing any earlier one; `None` when there is no such finding.
    async fn decide_finding(
        &self,
        id: &str,
        status: FindingStatus,
        note: Option<&str>,
        by: Decider,
        at: Micros,
    ) -> Result<Option<StoredFinding>, StoreError>;
}

/// The calls of a window (same SQL on both backends): `$1`/`$2` the window.
pub(crate) fn calls_sql() -> String {
    let truncation: Vec<String> = TRUNCATION_REASONS.iter().map(|r| format!("'{r}'")).collect();
    format!(
        "SELECT e.ts, COALESCE(u.name, ''), t.name, a.name, e.session, e.model, COALESCE(e.cost_nanos, 0), \
         e.input_tokens + e.cache_write_5m_tokens + e.cache_write_1h_tokens, e.cache_read_tokens, \
         e.output_tokens + e.reasoning_tokens, \
         CAST(CASE WHEN e.finish_reason IN ({}) THEN 1 ELSE 0 END AS BIGINT), \
         e.prompt_simhash, e.completion_simhash, e.completion_compress_permille \
         FROM usage_events e LEFT JOIN users u ON u.id = e.user_id LEFT JOIN teams t ON t.id = e.team_id \
         LEFT JOIN agents a ON a.id = e.agent_id \
         WHERE e.ts >= $1 AND e.ts < $2",
        truncation.join(", ")
    )
}

/// A row of [`calls_sql`], in its column order.
pub(crate) struct CallRow {
    pub at: i64,
    pub user: String,
    pub team: Option<String>,
    pub agent: Option<String>,
    pub session: Option<String>,
    pub model: String,
    pub cost: i64,
    pub input_tokens: i64,
    pub cache_read_tokens: i64,
    pub output_tokens: i64,
    pub truncated: i64,
    pub prompt_simhash: Option<i64>,
    pub completion_simhash: Option<i64>,
    pub completion_compress_permille: Option<i64>,
}

impl From<CallRow> for Call {
    fn from(r: CallRow) -> Call {
        Call {
            at: Micros(r.at),
            user: r.user,
            team: r.team,
            agent: r.agent,
            session: r.session,
            model: r.model,
            cost: Nanos(r.cost),
            input_tokens: u64::try_from(r.input_tokens).unwrap_or(0),
            cache_read_tokens: u64::try_from(r.cache_read_tokens).unwrap_or(0),
            output_tokens: u64::try_from(r.output_tokens).unwrap_or(0),
            truncated: r.truncated != 0,
            // Stored as the signed reinterpretation of the 64 bits.
            prompt_simhash: r.prompt_simhash.map(|h| h as u64),
            completion_simhash: r.completion_simhash.map(|h| h as u64),
            completion_compress_permille: r.completion_compress_permille.and_then(|p| u32::try_from(p).ok()),
        }
    }
}

pub(crate) const UPSERT: &str = "INSERT INTO waste_findings (id, subject_kind, subject, user_name, detector, \
    signals, evidence, from_ts, to_ts, calls, wasted_tokens, wasted_nanos, confidence, detected_at, updated_at, \
    samples) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15) \
    ON CONFLICT (id) DO UPDATE SET subject_kind = excluded.subject_kind, subject = excluded.subject, \
    user_name = excluded.user_name, detector = excluded.detector, signals = excluded.signals, \
    evidence = excluded.evidence, from_ts = excluded.from_ts, to_ts = excluded.to_ts, calls = excluded.calls, \
    wasted_tokens = excluded.wasted_tokens, wasted_nanos = excluded.wasted_nanos, \
    confidence = excluded.confidence, updated_at = excluded.updated_at, samples = excluded.samples";
pub(crate) const IN_WINDOW: &str = "SELECT id, status FROM waste_findings WHERE from_ts >= $1 AND from_ts < $2";
pub(crate) const WITHDRAW: &str = "DELETE FROM waste_findings WHERE id = $1 AND status = 'open'";
const COLUMNS: &str = "SELECT id, subject_kind, subject, user_name, detector, signals, evidence, from_ts, to_ts, \
    calls, wasted_tokens, wasted_nanos, confidence, detected_at, updated_at, status, decided_at, note, decided_by, \
    samples FROM waste_findings";
pub(crate) fn select_window() -> String {
    format!("{COLUMNS} WHERE from_ts >= $1 AND from_ts < $2 ORDER BY wasted_nanos DESC, id")
}
pub(crate) fn select_decided() -> String {
    format!("{COLUMNS} WHERE from_ts >= $1 AND from_ts < $2 AND status <> 'open' ORDER BY from_ts, id")
}
pub(crate) fn select_one() -> String {
    format!("{COLUMNS} WHERE id = $1")
}
pub(crate) const DECIDE: &str =
    "UPDATE waste_findings SET status = $1, decided_at = $2, note = $3, decided_by = $4 WHERE id = $5";
/// `$1` the pass's time, `$2` the note, `$3` the id.
pub(crate) const AUTO_DISMISS: &str = "UPDATE waste_findings SET status = 'dismissed', decided_at = $1, note = $2, \
    decided_by = 'automatic' WHERE id = $3";

/// The parameters of [`UPSERT`] for a finding, in order ($14 is the pass's time).
pub(crate) struct UpsertParams {
    pub subject_kind: &'static str,
    pub detector: &'static str,
    pub signals: String,
    pub numbers: [i64; 6],
    /// The samples as JSON.
    pub samples: String,
}

impl UpsertParams {
    /// `numbers`: from, to, calls, wasted tokens, wasted nanos, confidence.
    pub fn of(finding: &Finding) -> UpsertParams {
        let signals: Vec<&str> = finding.signals.iter().map(|d| d.as_str()).collect();
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        UpsertParams {
            subject_kind: finding.subject_kind.as_str(),
            detector: finding.detector.as_str(),
            signals: signals.join(","),
            samples: serde_json::to_string(&finding.samples).unwrap_or_else(|_| "[]".into()),
            numbers: [
                finding.from.0,
                finding.to.0,
                clamp(finding.calls),
                clamp(finding.wasted_tokens),
                finding.wasted.0,
                i64::from(finding.confidence),
            ],
        }
    }
}

/// What recording a pass does to the stored findings of its window.
pub(crate) struct Reconciled {
    /// New findings to leave open.
    pub new: Vec<Finding>,
    /// New findings to dismiss automatically: `(id, note)`.
    pub auto_dismissed: Vec<(String, String)>,
    /// Stored findings seen again.
    pub updated: u64,
    /// Undecided stored findings no longer found.
    pub withdrawn: Vec<String>,
}

impl Reconciled {
    pub fn outcome(self) -> PassOutcome {
        PassOutcome {
            new: self.new,
            auto_dismissed: self.auto_dismissed.len() as u64,
            updated: self.updated,
            withdrawn: self.withdrawn.len() as u64,
        }
    }
}

/// Which stored findings a pass withdraws, and which of its findings are new (dismissed at once
/// if `dismiss` names them): `existing` holds the window's stored `(id, status)`.
pub(crate) fn reconcile(
    existing: &[(String, String)],
    findings: &[Finding],
    mut dismiss: HashMap<String, String>,
) -> Reconciled {
    let known: HashSet<&str> = existing.iter().map(|(id, _)| id.as_str()).collect();
    let found: HashSet<&str> = findings.iter().map(|f| f.id.as_str()).collect();
    let (mut new, mut auto_dismissed) = (Vec::new(), Vec::new());
    for finding in findings.iter().filter(|f| !known.contains(f.id.as_str())) {
        match dismiss.remove(&finding.id) {
            Some(note) => auto_dismissed.push((finding.id.clone(), note)),
            None => new.push(finding.clone()),
        }
    }
    let updated = (findings.len() - new.len() - auto_dismissed.len()) as u64;
    let withdrawn = existing
        .iter()
        .filter(|(id, status)| status == FindingStatus::Open.as_str() && !found.contains(id.as_str()))
        .map(|(id, _)| id.clone())
        .collect();
    Reconciled {
        new,
        auto_dismissed,
        updated,
        withdrawn,
    }
}

/// A row of [`COLUMNS`], in its order.
pub(crate) struct Row {
    pub id: String,
    pub subject_kind: String,
    pub subject: String,
    pub user: String,
    pub detector: String,
    pub signals: String,
    pub evidence: String,
    pub numbers: [i64; 8],
    pub status: String,
    pub decided_at: Option<i64>,
    pub note: Option<String>,
    pub decided_by: Option<String>,
    pub samples: Option<String>,
}

impl Row {
    /// `numbers`: from, to, calls, wasted tokens, wasted nanos, confidence, detected, updated.
    pub fn into_finding(self) -> Result<StoredFinding, StoreError> {
        let corrupt = |what, value: &str| StoreError::Corrupt {
            what,
            value: value.to_owned(),
        };
        let signals = self
            .signals
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| Detector::parse(s).ok_or_else(|| corrupt("finding signal", s)))
            .collect::<Result<Vec<_>, _>>()?;
        let [from, to, calls, tokens, wasted, confidence, detected_at, updated_at] = self.numbers;
        let samples = match &self.samples {
            Some(json) => serde_json::from_str(json).map_err(|_| corrupt("finding samples", json))?,
            None => Vec::new(),
        };
        let unsigned = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(StoredFinding {
            finding: Finding {
                subject_kind: SubjectKind::parse(&self.subject_kind)
                    .ok_or_else(|| corrupt("finding subject kind", &self.subject_kind))?,
                detector: Detector::parse(&self.detector).ok_or_else(|| corrupt("finding detector", &self.detector))?,
                id: self.id,
                subject: self.subject,
                user: self.user,
                signals,
                evidence: self.evidence,
                from: Micros(from),
                to: Micros(to),
                calls: unsigned(calls),
                wasted_tokens: unsigned(tokens),
                wasted: Nanos(wasted),
                confidence: u32::try_from(confidence).unwrap_or(0),
                samples,
            },
            status: FindingStatus::parse(&self.status).ok_or_else(|| corrupt("finding status", &self.status))?,
            detected_at: Micros(detected_at),
            updated_at: Micros(updated_at),
            decided_at: self.decided_at.map(Micros),
            decided_by: self
                .decided_by
                .map(|d| Decider::parse(&d).ok_or_else(|| corrupt("finding decider", &d)))
                .transpose()?,
            note: self.note,
        })
    }
}
