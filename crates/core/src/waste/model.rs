//! What waste detection reads and writes: the calls it judges, its signals and thresholds, and
//! the findings it makes — apart from the detectors, so that they and the module that runs them
//! share one vocabulary without importing each other.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::Micros;
use crate::budgets::{Alert, AlertKind};
use crate::money::Nanos;
use crate::outcomes::Milli;
use crate::time::{MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_SECOND};

/// One model call, as detection sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Call {
    pub at: Micros,
    pub user: String,
    /// The team the call was attributed to (peers are compared within a team).
    pub team: Option<String>,
    pub agent: Option<String>,
    pub session: Option<String>,
    pub model: String,
    pub cost: Nanos,
    /// Tokens sent new with the call: uncached input and cache writes.
    pub input_tokens: u64,
    /// Context the provider read from its prompt cache.
    pub cache_read_tokens: u64,
    /// Tokens generated: output and reasoning.
    pub output_tokens: u64,
    /// The output stopped at the length limit (`finish_reason` `length` / `max_tokens`).
    pub truncated: bool,
    pub prompt_simhash: Option<u64>,
    pub completion_simhash: Option<u64>,
    pub completion_compress_permille: Option<u32>,
}

impl Call {
    /// Every token the call was billed for.
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_tokens + self.output_tokens
    }

    /// The context the model was given: what was sent new and what was read from the cache.
    pub fn context_tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_tokens
    }
}

/// What one person spent in one team over the weeks a detection judges them on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    pub user: String,
    pub team: Option<String>,
    pub calls: u64,
    pub cost: Nanos,
}

/// The weeks people are judged on against their peers: what each spent (by team) and the value
/// credited to each, over the same weeks. A detection pass over a day or two judges spend and
/// outcomes over the four weeks up to its end, not over its own days: a day's spend swings too
/// much (a batch day, a quiet day) to compare with the peers' without accusing anyone whose
/// work comes in bursts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    pub spend: Vec<Spend>,
    /// Value credited per person (people absent from it delivered nothing).
    pub value: HashMap<String, Milli>,
    /// The UTC days of usage the ledger covers: from the first day anyone used anything in its
    /// weeks to their end.
    pub days: i64,
}

impl Ledger {
    /// The ledger of `calls` themselves, for a detection over the whole weeks they cover.
    pub fn of_calls(calls: &[Call], value: HashMap<String, Milli>) -> Ledger {
        let day = |at: Micros| at.0.div_euclid(MICROS_PER_DAY);
        let first = calls.iter().map(|c| day(c.at)).min();
        let last = calls.iter().map(|c| day(c.at)).max();
        let mut spend: BTreeMap<(&str, Option<&str>), (u64, Nanos)> = BTreeMap::new();
        for call in calls {
            let entry = spend
                .entry((call.user.as_str(), call.team.as_deref()))
                .or_insert((0, Nanos::ZERO));
            *entry = (entry.0 + 1, entry.1.saturating_add(call.cost));
        }
        Ledger {
            spend: spend
                .into_iter()
                .map(|((user, team), (calls, cost))| Spend {
                    user: user.to_owned(),
                    team: team.map(str::to_owned),
                    calls,
                    cost,
                })
                .collect(),
            value,
            days: first.zip(last).map_or(0, |(first, last)| last - first + 1),
        }
    }

    /// The value credited to `user`.
    pub fn value_of(&self, user: &str) -> Milli {
        self.value.get(user).copied().unwrap_or(0)
    }
}

crate::named_enum! {
    /// What raised a finding.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Detector {
        RepeatedPrompts = "repeated_prompts",
        FillerOutput = "filler_output",
        AgentFanOut = "agent_fan_out",
        MetronomicCadence = "metronomic_cadence",
        OffHours = "off_hours",
        SpendWithoutOutcomes = "spend_without_outcomes",
        IndependentCalls = "independent_calls",
        OutputHeavy = "output_heavy",
    }
}

impl Detector {
    /// Signals about when and how fast calls were made: they add confidence to a finding but
    /// never make one (a release crunch works nights; a migration script keeps a steady pace).
    pub(super) fn is_behaviour(self) -> bool {
        matches!(self, Detector::MetronomicCadence | Detector::OffHours)
    }

    /// Signals that the spend bought nothing: answers that are filler or generated from next to
    /// nothing, or outcomes far below the person's peers'. The others (a prompt that recurs,
    /// calls that carry nothing over, many short agents) describe batch jobs and CI agents as
    /// well as waste, so they only corroborate.
    pub(super) fn shows_nothing_bought(self) -> bool {
        matches!(
            self,
            Detector::FillerOutput | Detector::OutputHeavy | Detector::SpendWithoutOutcomes
        )
    }
}

crate::named_enum! {
    /// What a finding is about.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum SubjectKind {
        User = "user",
        Agent = "agent",
        Key = "key",
        Session = "session",
    }
}

crate::named_enum! {
    /// Where an admin's review of a finding stands. A dismissed finding stops counting as waste;
    /// the decision survives later detection passes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum FindingStatus {
        Open = "open",
        Confirmed = "confirmed",
        Dismissed = "dismissed",
    }
}

impl FindingStatus {
    /// Whether a finding in this state counts as waste in the leaderboard and reports.
    pub fn counts_as_waste(self) -> bool {
        self != FindingStatus::Dismissed
    }
}

/// The finish reasons that mean an output was cut off at its length limit (OpenAI Chat
/// `length`, Anthropic `max_tokens`, OpenAI Responses `max_output_tokens`).
pub const TRUNCATION_REASONS: [&str; 3] = ["length", "max_tokens", "max_output_tokens"];

pub fn is_truncation(finish_reason: &str) -> bool {
    TRUNCATION_REASONS.contains(&finish_reason)
}

/// One call of a finding as a manager checks it against the provider's logs: when, which
/// model, the tokens and the cost — never its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSample {
    pub at: Micros,
    pub model: String,
    pub session: Option<String>,
    pub agent: Option<String>,
    pub input_tokens: u64,
    pub cache_read_tokens: u64,
    pub output_tokens: u64,
    pub cost: Nanos,
}

/// How many calls a finding keeps as samples.
pub const SAMPLES: usize = 5;

impl CallSample {
    /// Up to [`SAMPLES`] of `calls`, spread evenly over them in time (the first and the last
    /// included).
    pub(super) fn spread(calls: &[&Call]) -> Vec<CallSample> {
        let mut by_time: Vec<&Call> = calls.to_vec();
        by_time.sort_by_key(|c| c.at);
        let picks: BTreeSet<usize> = match by_time.len() {
            0 => BTreeSet::new(),
            n if n <= SAMPLES => (0..n).collect(),
            n => (0..SAMPLES).map(|k| k * (n - 1) / (SAMPLES - 1)).collect(),
        };
        picks
            .into_iter()
            .map(|i| {
                let c = by_time[i];
                CallSample {
                    at: c.at,
                    model: c.model.clone(),
                    session: c.session.clone(),
                    agent: c.agent.clone(),
                    input_tokens: c.input_tokens,
                    cache_read_tokens: c.cache_read_tokens,
                    output_tokens: c.output_tokens,
                    cost: c.cost,
                }
            })
            .collect()
    }
}

/// Spend found to buy nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable across detection passes: the detector, subject and UTC day.
    pub id: String,
    pub subject_kind: SubjectKind,
    pub subject: String,
    /// The person whose spend it is.
    pub user: String,
    /// The strongest signal; `signals` lists every one that fired.
    pub detector: Detector,
    pub signals: Vec<Detector>,
    pub evidence: String,
    pub from: Micros,
    pub to: Micros,
    pub calls: u64,
    pub wasted_tokens: u64,
    pub wasted: Nanos,
    /// In thousandths.
    pub confidence: u32,
    /// A few of its calls, spread over it (of the costliest run, when runs of a day add up).
    pub samples: Vec<CallSample>,
}

impl Finding {
    /// Who the finding is about, for people: `agent loop-agent (bob)`, `user bob`.
    pub fn subject_label(&self) -> String {
        match self.subject_kind {
            SubjectKind::User => format!("user {}", self.subject),
            kind => format!("{} {} ({})", kind.as_str(), self.subject, self.user),
        }
    }

    /// The alert a new finding raises (its id names the finding, so it is raised once).
    pub fn alert(&self, now: Micros) -> Alert {
        Alert {
            id: format!("waste:{}", self.id),
            kind: AlertKind::Waste,
            budget_id: String::new(),
            scope: self.subject_label(),
            message: format!(
                "{} wasted {} ({} tokens, {} % confidence, {}): {}",
                self.subject_label(),
                self.wasted.usd_rounded(2),
                self.wasted_tokens,
                self.confidence / 10,
                self.detector.as_str(),
                self.evidence
            ),
            created_at: now,
        }
    }
}

#[cfg(test)]
impl Finding {
    /// A finding of `wasted` by `user` (through `agent`, if any) at `at`, for other modules' tests.
    pub(crate) fn sample(user: &str, agent: Option<&str>, at: Micros, wasted: Nanos) -> Finding {
        let (subject_kind, subject) = match agent {
            Some(agent) => (SubjectKind::Agent, agent.to_owned()),
            None => (SubjectKind::User, user.to_owned()),
        };
        Finding {
            id: format!("repeated_prompts:{}:{subject}:{}", subject_kind.as_str(), at.0),
            subject_kind,
            subject,
            user: user.to_owned(),
            detector: Detector::RepeatedPrompts,
            signals: vec![Detector::RepeatedPrompts, Detector::FillerOutput],
            evidence: "sample".into(),
            from: at,
            to: at,
            calls: 1,
            wasted_tokens: 1,
            wasted,
            confidence: 850,
            samples: Vec::new(),
        }
    }
}

/// Thresholds of the detectors (the defaults are documented in the README).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasteRules {
    /// A pause longer than this ends a run.
    pub run_gap: i64,
    /// Runs shorter than this are not judged on their own (fan-out looks at them together).
    pub min_run_calls: usize,
    /// Prompts whose SimHashes differ in at most this many of 64 bits are near-identical.
    pub similar_bits: u32,
    /// Share of a run's prompts in its largest near-identical group, in thousandths.
    pub repeated_share: u32,
    /// Share of outputs cut off at `max_tokens`, or near-identical, that makes them filler.
    pub filler_share: u32,
    /// Median compressed size (permille of the original) at or under which outputs are filler.
    pub filler_compress_permille: u32,
    /// A steady rhythm: gaps' standard deviation at most this share of their mean (permille).
    pub cadence_variation: u32,
    /// A human pause: any gap at least this long clears a run of metronomic cadence.
    pub human_pause: i64,
    /// Behavioural signals need runs at least this long.
    pub min_signal_span: i64,
    /// Share of a run's calls at night or at weekends, in thousandths.
    pub off_hours_share: u32,
    /// Short sessions starting from one prompt fingerprint that make a fan-out.
    pub fan_out_sessions: usize,
    /// Spend at least this many times the peers' median…
    pub spend_multiple: u64,
    /// …with value at most their median divided by this, is a signal.
    pub outcome_fraction: u64,
    /// Spend is judged against outcomes only once the ledger covers this many days of usage:
    /// in the first days after Goodhart is installed, or after a bulk import, few people have
    /// shipped yet and the weeks of outcomes the comparison needs are not there.
    pub min_ledger_days: i64,
    /// Fewer peers in a person's team than this, and the whole organisation is the peer group.
    pub min_peers: usize,
    /// A call is output-heavy when it generated at least this many times what it was sent new…
    pub output_multiple: u64,
    /// …and at least this many tokens.
    pub min_heavy_output: u64,
    /// A run whose calls continue the previous one's conversation at most this often (in
    /// thousandths) is a run of independent calls.
    pub independent_share: u32,
    /// Filler-like calls of one person in one day that make a finding…
    pub min_filler_calls: usize,
    /// …if they are at least this share of the person's calls that day, in thousandths.
    pub filler_day_share: u32,
}

impl Default for WasteRules {
    fn default() -> WasteRules {
        WasteRules {
            run_gap: 30 * 60 * MICROS_PER_SECOND,
            min_run_calls: 40,
            similar_bits: 20,
            repeated_share: 600,
            filler_share: 800,
            filler_compress_permille: 150,
            cadence_variation: 150,
            human_pause: 10 * 60 * MICROS_PER_SECOND,
            min_signal_span: MICROS_PER_HOUR,
            off_hours_share: 800,
            fan_out_sessions: 8,
            spend_multiple: 3,
            outcome_fraction: 3,
            min_ledger_days: 14,
            min_peers: 3,
            output_multiple: 3,
            min_heavy_output: 500,
            independent_share: 200,
            min_filler_calls: 40,
            filler_day_share: 250,
        }
    }
}

/// `part` of `whole` in thousandths (0 of nothing).
pub(super) fn permille(part: usize, whole: usize) -> u32 {
    (part * 1000).checked_div(whole).unwrap_or(0) as u32
}
