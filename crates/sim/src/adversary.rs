//! An adversarial organisation: people who burn tokens **and try not to be caught**, each
//! following one named [`Strategy`], next to honest people whose work looks like waste, each
//! one named [`HardNegative`], mixed into a background organisation of ordinary engineers
//! ([`crate::org`]). It answers "which ways of gaming the detectors work today?" rather than
//! "do the detectors catch what we had in mind when we wrote them?".
//!
//! The strategies were written from how people who adapted behaved in an independent
//! organisation (issue 19) and from how a tokenmaxxer would hide, **not** from the detectors'
//! code or thresholds: the module never reads `WasteRules`' values. The naive overnight loop is
//! the control that today's detection should catch.
//!
//! Usage reaches Goodhart by the path each person would use: the ingest API (the event's text
//! fingerprinted on validation), the gateway (an Anthropic Messages request read by the same
//! public functions the gateway uses — attribution from a virtual key's scope, the newest turn
//! fingerprinted, the provider's usage and stop reason), or imported Claude Code logs (log lines
//! read by the public parser, turned into events as `goodhart import claude-code` does: no text,
//! so no fingerprints). Outcomes are GitHub deliveries: pull requests approved by a teammate,
//! merged and deployed to production. Deterministic for a seed.
//!
//! [`score`] also replays an admin's first week of review ([`FeedbackScore`]): the decisions
//! come from the ground truth (each person's role), never from anything the people do, so the
//! simulation stays independent of the detectors and of the feedback rules alike.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use goodhart_core::attribution::{RequestLabels, attribute};
use goodhart_core::calls::{CallFacts, CallResult, gateway_event};
use goodhart_core::keys::KeyScope;
use goodhart_core::outcomes::{Milli, ValueRules, credits};
use goodhart_core::pricing::PriceTable;
use goodhart_core::providers::ReportedUsage;
use goodhart_core::requests::{Endpoint, prompt_text, request_facts};
use goodhart_core::time::{MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_SECOND};
use goodhart_core::usage::{IngestPolicy, Source, TokenCounts, UsageEvent, UsageEventInput};
use goodhart_core::waste::{Decision, FeedbackRules, Finding, FindingStatus, Verdict, WasteRules, detect, review};
use goodhart_core::{Micros, Nanos};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::evaluate::{Detection, calls, facts};
use crate::org::{Delivery, Org, OrgSpec, Persona, simulate as simulate_org};

/// A way of burning tokens while trying to look like work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// The control: an unattended overnight loop re-sending one prompt with a counter every
    /// 30 s, outputs cut off at `max_tokens`, weekends too.
    NaiveLoop,
    /// The naive loop, each prompt reworded (synonyms, clauses moved, variations appended).
    Paraphrase,
    /// The naive loop with human-looking gaps (log-normal, with coffee breaks).
    Jitter,
    /// The naive loop, moved into office hours on weekdays.
    OfficeHours,
    /// The naive loop asking for long generic text that ends on its own (never `max_tokens`).
    GenericOutputs,
    /// The naive loop under a new session id every 40–80 minutes.
    SessionChurn,
    /// The naive loop stopped after a few dozen calls and restarted after a pause.
    ShortRuns,
    /// A dozen fresh agents a night, in parallel, each a hundred-odd calls.
    ManyAgents,
    /// Issue 19's adapted burner: office hours, paraphrased short prompts, jittered gaps,
    /// hourly session churn, no cache, long generic outputs that end on their own.
    WorkHoursFiller,
    /// Issue 19's farm: dozens of fresh agents a day, each a few dozen near-identical calls.
    AgentFarm,
    /// Work-hours filler interleaved into the person's real sessions; the person ships as an
    /// ordinary engineer does.
    MixedWithWork,
    /// Work-hours filler spread over four gateway keys, each scoped to another agent and project.
    SpreadKeys,
    /// Work-hours filler sent through the gateway (Anthropic Messages, Claude Code's metadata).
    ViaGateway,
    /// Work-hours filler run in Claude Code and imported from its logs (no fingerprints).
    ViaImport,
}

impl Strategy {
    pub const ALL: [Strategy; 14] = [
        Strategy::NaiveLoop,
        Strategy::Paraphrase,
        Strategy::Jitter,
        Strategy::OfficeHours,
        Strategy::GenericOutputs,
        Strategy::SessionChurn,
        Strategy::ShortRuns,
        Strategy::ManyAgents,
        Strategy::WorkHoursFiller,
        Strategy::AgentFarm,
        Strategy::MixedWithWork,
        Strategy::SpreadKeys,
        Strategy::ViaGateway,
        Strategy::ViaImport,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::NaiveLoop => "naive_loop (control)",
            Strategy::Paraphrase => "paraphrase",
            Strategy::Jitter => "jitter",
            Strategy::OfficeHours => "office_hours",
            Strategy::GenericOutputs => "generic_outputs",
            Strategy::SessionChurn => "session_churn",
            Strategy::ShortRuns => "short_runs",
            Strategy::ManyAgents => "many_agents",
            Strategy::WorkHoursFiller => "work_hours_filler",
            Strategy::AgentFarm => "agent_farm",
            Strategy::MixedWithWork => "mixed_with_work",
            Strategy::SpreadKeys => "spread_keys",
            Strategy::ViaGateway => "via_gateway",
            Strategy::ViaImport => "via_import",
        }
    }
}

/// Honest work that looks like waste.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HardNegative {
    /// A technical writer generating reference docs from one instruction, long outputs often
    /// cut off and continued; ships docs every week.
    DocWriter,
    /// A heavy Claude Code user (through the gateway) in release week: sessions of hundreds of
    /// fast agent turns into the night and over the weekend; ships a lot.
    ReleaseCrunch,
    /// An engineer who owns the CI review agent: a fresh short session per pull request, one
    /// instruction around each diff, at all hours; ships as an engineer does.
    CiReviewAgent,
    /// A new hire exploring with Claude Code (imported logs): many short sessions asking what
    /// things do, the same question to several models; first changes ship in week two.
    NewHire,
    /// An engineer whose migration script sends thousands of records through one instruction,
    /// at a rate-limited steady pace, overnight; the migration ships.
    DataMigration,
}

impl HardNegative {
    pub const ALL: [HardNegative; 5] = [
        HardNegative::DocWriter,
        HardNegative::ReleaseCrunch,
        HardNegative::CiReviewAgent,
        HardNegative::NewHire,
        HardNegative::DataMigration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HardNegative::DocWriter => "doc_writer",
            HardNegative::ReleaseCrunch => "release_crunch",
            HardNegative::CiReviewAgent => "ci_review_agent",
            HardNegative::NewHire => "new_hire",
            HardNegative::DataMigration => "data_migration",
        }
    }
}

/// What a person in the adversarial organisation is (the ground truth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// An ordinary member of the background organisation.
    Background(Persona),
    Evasion(Strategy),
    Hard(HardNegative),
}

impl Role {
    /// Whether this person's AI spend is (partly) waste that detection should flag.
    pub fn wasteful(self) -> bool {
        match self {
            Role::Background(persona) => persona.wasteful(),
            Role::Evasion(_) => true,
            Role::Hard(_) => false,
        }
    }
}

/// The adversarial organisation to simulate.
#[derive(Debug, Clone)]
pub struct AdversarySpec {
    pub seed: u64,
    /// People following each strategy.
    pub per_strategy: usize,
    /// People of each hard negative.
    pub per_hard_negative: usize,
    /// The ordinary organisation they work in (its weeks and start are theirs too).
    pub background: OrgSpec,
}

impl AdversarySpec {
    /// Two people per strategy and per hard negative in an organisation of 34 ordinary people.
    pub fn new(seed: u64) -> AdversarySpec {
        AdversarySpec {
            seed,
            per_strategy: 2,
            per_hard_negative: 2,
            background: OrgSpec {
                seed,
                engineers: 20,
                heavy_shippers: 5,
                light: 9,
                burners: 0,
                outcome_gamers: 0,
                ..OrgSpec::default()
            },
        }
    }
}

/// The simulated adversarial organisation.
#[derive(Debug, Clone)]
pub struct Adversarial {
    pub spec: AdversarySpec,
    /// The background organisation, with everyone's GitHub deliveries (theirs and the
    /// adversarial people's).
    pub org: Org,
    /// Everyone's role, by name.
    pub roles: BTreeMap<String, Role>,
    /// Everyone's usage as the server stores it (validated, fingerprinted), in time order.
    pub usage: Vec<UsageEvent>,
}

impl Adversarial {
    pub fn people_of(&self, role: Role) -> Vec<&str> {
        self.roles
            .iter()
            .filter(|(_, r)| **r == role)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;

/// How a person's calls reach Goodhart.
#[derive(Debug, Clone)]
enum Path {
    Api,
    /// Through the gateway with these keys (a call uses `Planned::key`).
    Gateway(Vec<KeyScope>),
    /// Claude Code's logs, imported.
    Import,
}

/// One call as the person made it, before it reaches Goodhart by their path.
#[derive(Debug, Clone)]
struct Planned {
    at: Micros,
    session: String,
    agent: Option<String>,
    model: &'static str,
    key: usize,
    tokens: TokenCounts,
    max_tokens: u64,
    prompt: String,
    completion: String,
    truncated: bool,
}

/// What a person asks in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// Their template and a counter.
    Template,
    /// Their template reworded.
    Paraphrase,
    /// A new request (an agent's tool result or a human's next instruction).
    Fresh,
    /// A fixed instruction around new material (a diff, a module, a record).
    Wrapped,
    /// "What does this do?", in the new hire's words, about some code.
    Explore,
}

/// What they get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Generic text on the person's topic (filler).
    Generic,
    /// Real, specific prose or code.
    Specific,
    /// A JSON record of fixed keys.
    Record,
}

/// When the next call of a run starts.
#[derive(Debug, Clone, Copy)]
enum Gap {
    /// A steady rhythm: `seconds`, give or take `spread_ms` milliseconds.
    Steady { seconds: i64, spread_ms: i64 },
    /// Human: log-normal around `median` seconds, and now and then a pause of minutes.
    Human { median: f64, sigma: f64, pause: f64 },
}

/// Tokens of each call of a run.
#[derive(Debug, Clone, Copy)]
struct Size {
    input: (u64, u64),
    output: (u64, u64),
    max_tokens: u64,
    /// Cached context: starting size and growth per call (0, 0 for none).
    cache: (u64, u64),
    /// Share of outputs cut off at `max_tokens`.
    truncated: f64,
}

/// One run of calls: a session (churned every `churn` if set), an agent, until `calls` calls
/// or `until`.
#[derive(Debug, Clone)]
struct Run {
    start: Micros,
    until: Micros,
    calls: u32,
    gap: Gap,
    agent: Option<String>,
    model: &'static str,
    key: usize,
    ask: Ask,
    answer: Answer,
    size: Size,
    churn: Option<(i64, i64)>,
    /// Share of the calls that are real work (the rest `ask` and `answer`), for mixing.
    real_share: f64,
}

/// A word list with Zipf-like frequencies (a few words common, most rare), as text has.
struct Lexicon {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Lexicon {
    fn new(rng: &mut StdRng, size: usize) -> Lexicon {
        let words = (0..size)
            .map(|_| {
                let length = rng.random_range(2..11);
                (0..length).map(|_| rng.random_range(b'a'..=b'z') as char).collect()
            })
            .collect();
        let mut total = 0.0;
        let cumulative = (1..=size)
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(1.05);
                total
            })
            .collect();
        Lexicon { words, cumulative }
    }

    fn word(&self, rng: &mut StdRng) -> &str {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let pick = rng.random_range(0.0..total);
        let i = self.cumulative.partition_point(|&c| c < pick);
        &self.words[i.min(self.words.len() - 1)]
    }

    fn words(&self, rng: &mut StdRng, count: usize, out: &mut String) {
        for _ in 0..count {
            out.push_str(self.word(rng));
            out.push(' ');
        }
    }

    fn sentence(&self, rng: &mut StdRng) -> String {
        let mut s = String::new();
        let count = rng.random_range(6..20);
        self.words(rng, count, &mut s);
        s.pop();
        s.push_str(". ");
        s
    }
}

/// What makes one adversarial person's text their own.
struct Voice {
    /// The request they repeat (filler topic, instruction, question), as words.
    template: Vec<String>,
    /// Three rewordings of each template word.
    synonyms: Vec<[String; 3]>,
    /// Sentences their generic outputs keep coming back to.
    stock: Vec<String>,
    /// Keys of the records their script writes.
    keys: Vec<String>,
}

struct Actor {
    name: String,
    team: String,
    role: Role,
    path: Path,
    voice: Voice,
    repo: String,
    next_pr: u64,
    planned: Vec<Planned>,
}

struct Generator {
    rng: StdRng,
    lexicon: Lexicon,
    start: Micros,
    weeks: u32,
    seed: u64,
    next_id: u64,
    /// Phrases every model answer is full of ("Here is…", "Let me…").
    boilerplate: Vec<String>,
    /// Background people, to review adversarial people's pull requests.
    reviewers: Vec<String>,
    deliveries: Vec<Delivery>,
}

/// Simulates `spec`'s adversarial organisation.
pub fn simulate(spec: &AdversarySpec) -> Adversarial {
    let background = OrgSpec {
        seed: spec.seed,
        ..spec.background.clone()
    };
    let mut org = simulate_org(&background);
    let mut roles: BTreeMap<String, Role> = org
        .people
        .iter()
        .map(|p| (p.name.clone(), Role::Background(p.persona)))
        .collect();
    let mut rng = StdRng::seed_from_u64(spec.seed ^ 0xad5e_5a11);
    let lexicon = Lexicon::new(&mut rng, 8_000);
    let boilerplate = (0..60).map(|_| lexicon.sentence(&mut rng)).collect();
    let mut generator = Generator {
        rng,
        lexicon,
        start: org.spec.start,
        weeks: org.spec.weeks,
        seed: spec.seed,
        next_id: 0,
        boilerplate,
        reviewers: org.people.iter().map(|p| p.name.clone()).collect(),
        deliveries: Vec::new(),
    };
    let mut cast: Vec<Role> = Vec::new();
    for strategy in Strategy::ALL {
        cast.extend(std::iter::repeat_n(Role::Evasion(strategy), spec.per_strategy));
    }
    for hard in HardNegative::ALL {
        cast.extend(std::iter::repeat_n(Role::Hard(hard), spec.per_hard_negative));
    }
    let teams: Vec<String> = {
        let mut teams: Vec<String> = org.people.iter().map(|p| p.team.clone()).collect();
        teams.sort();
        teams.dedup();
        teams
    };
    let mut usage: Vec<UsageEvent> = Vec::new();
    let mut cast_counts: HashMap<&'static str, usize> = HashMap::new();
    for (i, role) in cast.into_iter().enumerate() {
        let kind = match role {
            Role::Evasion(s) => s.as_str().split(' ').next().unwrap_or("x"),
            Role::Hard(h) => h.as_str(),
            Role::Background(p) => p.as_str(),
        };
        let n = cast_counts.entry(kind).or_default();
        *n += 1;
        let name = format!("{}-{}", kind.replace('_', "-"), n);
        let team = teams
            .get(i % teams.len().max(1))
            .cloned()
            .unwrap_or_else(|| "platform".into());
        let mut actor = generator.actor(name, team, role);
        generator.live(&mut actor);
        usage.extend(generator.deliver(&actor));
        roles.insert(actor.name.clone(), role);
    }
    let policy = IngestPolicy {
        store_content: false,
        source: Source::Api,
    };
    for input in std::mem::take(&mut org.usage) {
        #[expect(clippy::expect_used, reason = "the background simulator generates valid usage")]
        usage.push(input.validate(policy).expect("simulated usage is valid"));
    }
    usage.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then_with(|| a.id.cmp(&b.id)));
    org.deliveries.append(&mut generator.deliveries);
    org.deliveries.sort_by_key(|d| d.at);
    Adversarial {
        spec: spec.clone(),
        org,
        roles,
        usage,
    }
}

/// A log-normal draw: `median` × e^(σ·N(0,1)).
fn log_normal(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
    let (u1, u2): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random_range(0.0..1.0));
    let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median * (sigma * normal).exp()
}

const SONNET: &str = "claude-sonnet-4-5";
const OPUS: &str = "claude-opus-4-8";
const HAIKU: &str = "claude-haiku-4-5";

/// Filler's size: short prompts, no cache, long outputs that end on their own.
const FILLER: Size = Size {
    input: (150, 600),
    output: (1_500, 3_800),
    max_tokens: 4_096,
    cache: (0, 0),
    truncated: 0.0,
};

/// The naive loop's: a growing cached context, every output cut off.
const LOOP: Size = Size {
    input: (2_000, 6_000),
    output: (4_096, 4_096),
    max_tokens: 4_096,
    cache: (20_000, 400),
    truncated: 1.0,
};

/// An engineer's agentic work: cached context growing with the session.
const WORK: Size = Size {
    input: (500, 6_000),
    output: (150, 2_000),
    max_tokens: 8_192,
    cache: (15_000, 1_500),
    truncated: 0.02,
};

impl Generator {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("adv{}-{prefix}{}", self.seed, self.next_id)
    }

    fn day(&self, day: u32) -> Micros {
        Micros(self.start.0 + i64::from(day) * MICROS_PER_DAY)
    }

    fn at(&mut self, day: u32, from_hour: f64, to_hour: f64) -> Micros {
        let from = (from_hour * MICROS_PER_HOUR as f64) as i64;
        let to = (to_hour * MICROS_PER_HOUR as f64) as i64;
        Micros(self.day(day).0 + self.rng.random_range(from..to.max(from + 1)))
    }

    /// Monday 0 … Sunday 6 of `day` (from the calendar: the background's start is not always
    /// a Monday).
    fn day_of_week(&self, day: u32) -> i64 {
        // 1 January 1970 was a Thursday.
        (self.day(day).0.div_euclid(MICROS_PER_DAY) + 3).rem_euclid(7)
    }

    fn weekday(&self, day: u32) -> bool {
        self.day_of_week(day) < 5
    }

    fn days(&self) -> u32 {
        self.weeks * 7
    }

    fn actor(&mut self, name: String, team: String, role: Role) -> Actor {
        let template: Vec<String> = (0..28).map(|_| self.lexicon.word(&mut self.rng).to_owned()).collect();
        let synonyms = template
            .iter()
            .map(|_| std::array::from_fn(|_| self.lexicon.word(&mut self.rng).to_owned()))
            .collect();
        let stock = (0..40).map(|_| self.lexicon.sentence(&mut self.rng)).collect();
        let keys = (0..18)
            .map(|_| {
                format!(
                    "{}_{}",
                    self.lexicon.word(&mut self.rng),
                    self.lexicon.word(&mut self.rng)
                )
            })
            .collect();
        let scope = |agent: Option<&str>, project: String| KeyScope {
            user: name.clone(),
            team: Some(team.clone()),
            project: Some(project),
            agent: agent.map(str::to_owned),
        };
        let path = match role {
            Role::Evasion(Strategy::ViaGateway) | Role::Hard(HardNegative::ReleaseCrunch) => {
                Path::Gateway(vec![scope(None, format!("{team}-app"))])
            }
            Role::Evasion(Strategy::SpreadKeys) => Path::Gateway(
                ["docs-bot", "test-gen", "refactor", "summariser"]
                    .iter()
                    .map(|agent| scope(Some(agent), format!("{team}-{agent}")))
                    .collect(),
            ),
            Role::Hard(HardNegative::CiReviewAgent) => Path::Gateway(vec![
                scope(None, format!("{team}-app")),
                scope(Some("ci-review"), format!("{team}-ci")),
            ]),
            Role::Evasion(Strategy::ViaImport) | Role::Hard(HardNegative::NewHire) => Path::Import,
            _ => Path::Api,
        };
        Actor {
            repo: format!("svc-{name}"),
            name,
            team,
            role,
            path,
            voice: Voice {
                template,
                synonyms,
                stock,
                keys,
            },
            next_pr: 1,
            planned: Vec::new(),
        }
    }

    /// Four weeks of one person's work and waste.
    fn live(&mut self, a: &mut Actor) {
        let days = self.days();
        match a.role {
            Role::Evasion(strategy) => {
                for day in 0..days {
                    self.burn(a, strategy, day);
                }
                if strategy == Strategy::MixedWithWork {
                    for day in self.working_days() {
                        self.ordinary_day(a, day, (2, 4));
                    }
                    self.ship_weekly(a, 3.0);
                } else {
                    // Their own real work goes on, a little of it: outcomes that do not move.
                    for day in self.working_days() {
                        if self.rng.random_bool(0.5) {
                            self.ordinary_day(a, day, (1, 1));
                        }
                    }
                    self.ship_weekly(a, 0.4);
                }
            }
            Role::Hard(hard) => self.honest(a, hard),
            Role::Background(_) => {}
        }
    }

    /// A plain day of work: a few agentic sessions of varied turns.
    fn ordinary_day(&mut self, a: &mut Actor, day: u32, sessions: (u32, u32)) {
        for _ in 0..self.rng.random_range(sessions.0..=sessions.1) {
            let start = self.at(day, 9.0, 17.0);
            let calls = self.rng.random_range(8..30);
            self.run(
                a,
                Run {
                    until: Micros(start.0 + 3 * MICROS_PER_HOUR),
                    ..self.work_run(start, calls)
                },
            );
        }
    }

    fn work_run(&self, start: Micros, calls: u32) -> Run {
        Run {
            start,
            until: Micros(start.0 + 6 * MICROS_PER_HOUR),
            calls,
            gap: Gap::Human {
                median: 40.0,
                sigma: 0.9,
                pause: 0.05,
            },
            agent: Some("claude-code".into()),
            model: SONNET,
            key: 0,
            ask: Ask::Fresh,
            answer: Answer::Specific,
            size: WORK,
            churn: None,
            real_share: 0.0,
        }
    }

    fn loop_run(&self, start: Micros, calls: u32) -> Run {
        Run {
            start,
            until: Micros(start.0 + 12 * MICROS_PER_HOUR),
            calls,
            gap: Gap::Steady {
                seconds: 30,
                spread_ms: 800,
            },
            agent: Some("loop-agent".into()),
            model: SONNET,
            key: 0,
            ask: Ask::Template,
            answer: Answer::Generic,
            size: LOOP,
            churn: None,
            real_share: 0.0,
        }
    }

    /// Work-hours filler as issue 19 describes it, from `start` to `until`.
    fn filler_run(&self, start: Micros, until: Micros) -> Run {
        Run {
            start,
            until,
            calls: u32::MAX,
            gap: Gap::Human {
                median: 55.0,
                sigma: 0.7,
                pause: 0.04,
            },
            agent: None,
            model: SONNET,
            key: 0,
            ask: Ask::Paraphrase,
            answer: Answer::Generic,
            size: FILLER,
            churn: Some((40 * MICROS_PER_MINUTE, 80 * MICROS_PER_MINUTE)),
            real_share: 0.0,
        }
    }

    /// Office hours of `day` as two blocks around lunch.
    fn office_blocks(&mut self, day: u32) -> [(Micros, Micros); 2] {
        [
            (self.at(day, 9.0, 9.75), self.at(day, 12.0, 12.75)),
            (self.at(day, 13.25, 14.0), self.at(day, 17.25, 18.25)),
        ]
    }

    fn burn(&mut self, a: &mut Actor, strategy: Strategy, day: u32) {
        let night = |g: &mut Generator| g.at(day, 20.0, 23.0);
        match strategy {
            Strategy::NaiveLoop => {
                let (start, calls) = (night(self), self.rng.random_range(400..700));
                self.run(a, self.loop_run(start, calls));
            }
            Strategy::Paraphrase => {
                let (start, calls) = (night(self), self.rng.random_range(400..700));
                let run = Run {
                    ask: Ask::Paraphrase,
                    ..self.loop_run(start, calls)
                };
                self.run(a, run);
            }
            Strategy::Jitter => {
                let (start, calls) = (night(self), self.rng.random_range(300..500));
                let run = Run {
                    gap: Gap::Human {
                        median: 45.0,
                        sigma: 0.8,
                        pause: 0.05,
                    },
                    ..self.loop_run(start, calls)
                };
                self.run(a, run);
            }
            Strategy::OfficeHours if self.weekday(day) => {
                for (start, until) in self.office_blocks(day) {
                    let run = Run {
                        until,
                        ..self.loop_run(start, u32::MAX)
                    };
                    self.run(a, run);
                }
            }
            Strategy::GenericOutputs => {
                let (start, calls) = (night(self), self.rng.random_range(400..700));
                let run = Run {
                    size: Size {
                        output: (1_500, 3_800),
                        truncated: 0.0,
                        ..LOOP
                    },
                    ..self.loop_run(start, calls)
                };
                self.run(a, run);
            }
            Strategy::SessionChurn => {
                let (start, calls) = (night(self), self.rng.random_range(400..700));
                let run = Run {
                    churn: Some((40 * MICROS_PER_MINUTE, 80 * MICROS_PER_MINUTE)),
                    ..self.loop_run(start, calls)
                };
                self.run(a, run);
            }
            Strategy::ShortRuns => {
                // Restarted by hand (or cron) after a pause: a new process, a new session.
                let mut start = night(self);
                let end = Micros(start.0 + 9 * MICROS_PER_HOUR);
                while start < end {
                    let calls = self.rng.random_range(10..36);
                    let run = self.loop_run(start, calls);
                    let last = self.run(a, run);
                    start = Micros(last.0 + self.rng.random_range(20..90) * MICROS_PER_MINUTE);
                }
            }
            Strategy::ManyAgents => {
                for _ in 0..self.rng.random_range(8..16) {
                    let start = night(self);
                    let calls = self.rng.random_range(60..140);
                    let agent = self.id("agent");
                    let run = Run {
                        agent: Some(format!("worker-{agent}")),
                        gap: Gap::Steady {
                            seconds: 60,
                            spread_ms: 3_000,
                        },
                        ..self.loop_run(start, calls)
                    };
                    self.run(a, run);
                }
            }
            Strategy::WorkHoursFiller
            | Strategy::SpreadKeys
            | Strategy::ViaGateway
            | Strategy::ViaImport
            | Strategy::MixedWithWork
                if self.weekday(day) =>
            {
                let keys = if let Path::Gateway(keys) = &a.path {
                    keys.len()
                } else {
                    1
                };
                for (start, until) in self.office_blocks(day) {
                    let mut run = self.filler_run(start, until);
                    run.key = self.rng.random_range(0..keys);
                    if let Path::Gateway(scopes) = &a.path {
                        run.agent = scopes[run.key].agent.clone();
                    }
                    match strategy {
                        Strategy::ViaImport => {
                            // Claude Code always sends its system prompt from the cache.
                            run.agent = Some("claude-code".into());
                            run.size.cache = (14_000, 0);
                        }
                        Strategy::ViaGateway => run.agent = Some("claude-code".into()),
                        Strategy::MixedWithWork => {
                            // The filler goes into the same Claude Code sessions as real work.
                            run.agent = Some("claude-code".into());
                            run.real_share = 0.35;
                            run.churn = Some((60 * MICROS_PER_MINUTE, 150 * MICROS_PER_MINUTE));
                        }
                        _ => {}
                    }
                    self.run(a, run);
                }
            }
            Strategy::AgentFarm if self.weekday(day) => {
                for _ in 0..self.rng.random_range(24..60) {
                    let start = self.at(day, 8.0, 20.0);
                    let calls = self.rng.random_range(12..39);
                    let agent = self.id("farm");
                    let run = Run {
                        start,
                        until: Micros(start.0 + 3 * MICROS_PER_HOUR),
                        calls,
                        agent: Some(format!("helper-{agent}")),
                        gap: Gap::Human {
                            median: 15.0,
                            sigma: 0.6,
                            pause: 0.0,
                        },
                        size: Size {
                            output: (800, 2_400),
                            ..FILLER
                        },
                        churn: None,
                        ..self.filler_run(start, start)
                    };
                    self.run(a, run);
                }
            }
            _ => {}
        }
    }

    fn honest(&mut self, a: &mut Actor, hard: HardNegative) {
        let days = self.days();
        match hard {
            HardNegative::DocWriter => {
                for day in self.working_days() {
                    for _ in 0..self.rng.random_range(3..6) {
                        let start = self.at(day, 9.0, 17.0);
                        let calls = self.rng.random_range(20..60);
                        let run = Run {
                            agent: None,
                            ask: Ask::Wrapped,
                            answer: Answer::Generic,
                            gap: Gap::Human {
                                median: 70.0,
                                sigma: 0.8,
                                pause: 0.08,
                            },
                            size: Size {
                                input: (800, 4_000),
                                output: (1_500, 4_096),
                                max_tokens: 4_096,
                                cache: (0, 0),
                                truncated: 0.25,
                            },
                            ..self.work_run(start, calls)
                        };
                        self.run(a, run);
                    }
                }
                self.ship_weekly(a, 5.0);
            }
            HardNegative::ReleaseCrunch => {
                // The release is on the last Friday.
                let release = (0..days).rev().find(|&d| self.day_of_week(d) == 4).unwrap_or(days - 1);
                for day in 0..days {
                    let crunch = day + 10 >= release && day <= release;
                    if !self.weekday(day) && !crunch {
                        continue;
                    }
                    let sessions = if crunch { (4, 6) } else { (3, 5) };
                    for s in 0..self.rng.random_range(sessions.0..=sessions.1) {
                        let start = if crunch && s == 0 {
                            self.at(day, 19.0, 22.0)
                        } else {
                            self.at(day, 8.0, 17.0)
                        };
                        let calls = if crunch {
                            self.rng.random_range(120..320)
                        } else {
                            self.rng.random_range(30..90)
                        };
                        let run = Run {
                            model: if s % 2 == 0 { OPUS } else { SONNET },
                            gap: Gap::Human {
                                median: 9.0,
                                sigma: 0.35,
                                pause: 0.01,
                            },
                            size: Size {
                                cache: (30_000, 1_200),
                                truncated: 0.04,
                                ..WORK
                            },
                            real_share: if crunch { 0.85 } else { 0.0 },
                            ask: Ask::Fresh,
                            ..self.work_run(start, calls)
                        };
                        // In the crunch, "run the tests again" and "continue" between tool turns.
                        let run = if crunch {
                            Run {
                                ask: Ask::Template,
                                answer: Answer::Specific,
                                ..run
                            }
                        } else {
                            run
                        };
                        self.run(a, run);
                    }
                }
                self.ship_weekly(a, 6.0);
                for _ in 0..4 {
                    let day = release - self.rng.random_range(0..4);
                    self.ship(a, day, 250);
                }
            }
            HardNegative::CiReviewAgent => {
                for day in 0..days {
                    if self.weekday(day) {
                        self.ordinary_day(a, day, (2, 3));
                    }
                    let reviews = if self.weekday(day) {
                        self.rng.random_range(15..35)
                    } else {
                        self.rng.random_range(0..5)
                    };
                    for _ in 0..reviews {
                        // Pull requests come from three time zones.
                        let start = self.at(day, 1.0, 23.0);
                        let calls = self.rng.random_range(3..9);
                        let run = Run {
                            agent: Some("ci-review".into()),
                            key: 1,
                            model: HAIKU,
                            ask: Ask::Wrapped,
                            answer: Answer::Specific,
                            gap: Gap::Human {
                                median: 6.0,
                                sigma: 0.4,
                                pause: 0.0,
                            },
                            size: Size {
                                input: (3_000, 15_000),
                                output: (200, 900),
                                max_tokens: 2_048,
                                cache: (0, 0),
                                truncated: 0.01,
                            },
                            ..self.work_run(start, calls)
                        };
                        self.run(a, run);
                    }
                }
                self.ship_weekly(a, 3.0);
            }
            HardNegative::NewHire => {
                for day in self.working_days() {
                    if day < 14 {
                        for _ in 0..self.rng.random_range(5..11) {
                            let start = self.at(day, 9.0, 18.0);
                            let calls = self.rng.random_range(3..16);
                            let model = [SONNET, OPUS, HAIKU][self.rng.random_range(0..3)];
                            let run = Run {
                                model,
                                ask: Ask::Explore,
                                gap: Gap::Human {
                                    median: 90.0,
                                    sigma: 1.0,
                                    pause: 0.1,
                                },
                                size: Size {
                                    max_tokens: 1_024,
                                    output: (300, 1_024),
                                    truncated: 0.3,
                                    ..WORK
                                },
                                ..self.work_run(start, calls)
                            };
                            self.run(a, run);
                        }
                    } else {
                        self.ordinary_day(a, day, (2, 4));
                    }
                }
                let first = self.rng.random_range(8..12);
                self.ship(a, first, 40);
                for week in 2..self.weeks {
                    for _ in 0..2 {
                        let day = self.working_day(week);
                        let lines = self.lines();
                        self.ship(a, day, lines);
                    }
                }
            }
            HardNegative::DataMigration => {
                for day in self.working_days() {
                    self.ordinary_day(a, day, (2, 4));
                }
                // Batches on four evenings of weeks two and three.
                let mut nights: Vec<u32> = (7..19).filter(|&d| self.weekday(d)).collect();
                while nights.len() > 4 {
                    let i = self.rng.random_range(0..nights.len());
                    nights.remove(i);
                }
                for day in nights {
                    let start = self.at(day, 18.0, 20.0);
                    let calls = self.rng.random_range(1_500..4_000);
                    let run = Run {
                        start,
                        until: Micros(start.0 + 14 * MICROS_PER_HOUR),
                        calls,
                        agent: Some("migrate-records".into()),
                        model: HAIKU,
                        ask: Ask::Wrapped,
                        answer: Answer::Record,
                        gap: Gap::Steady {
                            seconds: 2,
                            spread_ms: 250,
                        },
                        size: Size {
                            input: (600, 1_200),
                            output: (150, 400),
                            max_tokens: 1_024,
                            cache: (0, 0),
                            truncated: 0.0,
                        },
                        churn: None,
                        real_share: 0.0,
                        key: 0,
                    };
                    self.run(a, run);
                }
                self.ship_weekly(a, 3.0);
                let last = self.rng.random_range(17..19);
                self.ship(a, last, 900);
            }
        }
    }

    /// Plays `run` into `a`'s calls; returns when its last call started.
    fn run(&mut self, a: &mut Actor, run: Run) -> Micros {
        let mut at = run.start;
        let mut session = self.id("s");
        let mut churn_at = run.churn.map(|(lo, hi)| at.0 + self.rng.random_range(lo..hi));
        let mut context = run.size.cache.0;
        let mut last = at;
        let mut previous_truncated = false;
        for n in 0..run.calls {
            if at >= run.until || at.0 >= self.start.0 + i64::from(self.days()) * MICROS_PER_DAY {
                break;
            }
            if let (Some(when), Some((lo, hi))) = (churn_at, run.churn)
                && at.0 >= when
            {
                session = self.id("s");
                context = run.size.cache.0;
                churn_at = Some(at.0 + self.rng.random_range(lo..hi));
            }
            let real = run.real_share > 0.0 && self.rng.random_bool(run.real_share);
            let (ask, answer, size) = if real {
                (Ask::Fresh, Answer::Specific, WORK)
            } else {
                (run.ask, run.answer, run.size)
            };
            let prompt = if previous_truncated && ask == Ask::Wrapped && self.rng.random_bool(0.7) {
                // Cut off: "continue".
                "continue from where you stopped".to_owned()
            } else {
                self.prompt(&a.voice, ask, n)
            };
            let truncated = size.truncated > 0.0 && self.rng.random_bool(size.truncated.min(1.0));
            previous_truncated = truncated;
            let output = if truncated {
                size.max_tokens
            } else {
                self.rng.random_range(
                    size.output.0..=size.output.1.min(size.max_tokens.saturating_sub(1)).max(size.output.0),
                )
            };
            let completion = self.completion(&a.voice, answer);
            a.planned.push(Planned {
                at,
                session: session.clone(),
                agent: run.agent.clone(),
                model: run.model,
                key: run.key,
                tokens: TokenCounts {
                    input: self.rng.random_range(size.input.0..=size.input.1),
                    output,
                    cache_read: context,
                    ..TokenCounts::default()
                },
                max_tokens: size.max_tokens,
                prompt,
                completion,
                truncated,
            });
            context = (context + size.cache.1).min(190_000);
            last = at;
            let gap = match run.gap {
                Gap::Steady { seconds, spread_ms } => {
                    seconds * MICROS_PER_SECOND + self.rng.random_range(-spread_ms..=spread_ms) * 1_000
                }
                Gap::Human { median, sigma, pause } => {
                    let mut seconds = log_normal(&mut self.rng, median, sigma).clamp(2.0, 900.0);
                    if pause > 0.0 && self.rng.random_bool(pause) {
                        seconds += self.rng.random_range(180.0..1_200.0);
                    }
                    (seconds * MICROS_PER_SECOND as f64) as i64
                }
            };
            at = Micros(at.0 + gap.max(MICROS_PER_SECOND));
        }
        last
    }

    fn template(&self, voice: &Voice, words: usize, out: &mut String) {
        for w in voice.template.iter().take(words) {
            out.push_str(w);
            out.push(' ');
        }
    }

    fn prompt(&mut self, voice: &Voice, ask: Ask, n: u32) -> String {
        let mut text = String::with_capacity(400);
        match ask {
            Ask::Template => {
                self.template(voice, 28, &mut text);
                text.push_str(&format!("iteration {n}"));
            }
            Ask::Paraphrase => {
                let mut words: Vec<&str> = voice
                    .template
                    .iter()
                    .zip(&voice.synonyms)
                    .map(|(w, alternatives)| {
                        if self.rng.random_bool(0.3) {
                            alternatives[self.rng.random_range(0..3)].as_str()
                        } else {
                            w.as_str()
                        }
                    })
                    .collect();
                // Clauses moved around, a few words dropped.
                if self.rng.random_bool(0.4) {
                    let split = self.rng.random_range(5..words.len() - 5);
                    words.rotate_left(split);
                }
                words.retain(|_| self.rng.random_bool(0.9));
                for w in words {
                    text.push_str(w);
                    text.push(' ');
                }
                if self.rng.random_bool(0.7) {
                    let extra = self.rng.random_range(3..12);
                    self.lexicon.words(&mut self.rng, extra, &mut text);
                }
            }
            Ask::Fresh => {
                let count = self.rng.random_range(20..120);
                self.lexicon.words(&mut self.rng, count, &mut text);
            }
            Ask::Wrapped => {
                self.template(voice, 20, &mut text);
                let count = self.rng.random_range(40..200);
                self.lexicon.words(&mut self.rng, count, &mut text);
            }
            Ask::Explore => {
                self.template(voice, 8, &mut text);
                let count = self.rng.random_range(2..6);
                self.lexicon.words(&mut self.rng, count, &mut text);
                if self.rng.random_bool(0.5) {
                    let count = self.rng.random_range(20..80);
                    self.lexicon.words(&mut self.rng, count, &mut text);
                }
            }
        }
        text
    }

    fn completion(&mut self, voice: &Voice, answer: Answer) -> String {
        let mut text = String::with_capacity(1_200);
        match answer {
            Answer::Generic | Answer::Specific => {
                let (stock, boiler) = if answer == Answer::Generic {
                    (0.45, 0.1)
                } else {
                    (0.0, 0.08)
                };
                for _ in 0..self.rng.random_range(6..16) {
                    let p: f64 = self.rng.random_range(0.0..1.0);
                    if p < stock {
                        text.push_str(&voice.stock[self.rng.random_range(0..voice.stock.len())]);
                    } else if p < stock + boiler {
                        text.push_str(&self.boilerplate[self.rng.random_range(0..self.boilerplate.len())]);
                    } else {
                        let s = self.lexicon.sentence(&mut self.rng);
                        text.push_str(&s);
                    }
                }
            }
            Answer::Record => {
                text.push('{');
                for key in &voice.keys {
                    let value = if self.rng.random_bool(0.5) {
                        self.rng.random_range(0..1_000_000u32).to_string()
                    } else {
                        self.lexicon.word(&mut self.rng).to_owned()
                    };
                    text.push_str(&format!("\"{key}\": \"{value}\", "));
                }
                text.push('}');
            }
        }
        text
    }

    fn working_days(&self) -> Vec<u32> {
        (0..self.days()).filter(|&d| self.weekday(d)).collect()
    }

    /// A random working day of `week`.
    fn working_day(&mut self, week: u32) -> u32 {
        let days: Vec<u32> = (week * 7..week * 7 + 7).filter(|&d| self.weekday(d)).collect();
        days[self.rng.random_range(0..days.len())]
    }

    /// Changed lines of an honest change.
    fn lines(&mut self) -> u64 {
        (self.rng.random_range(3.5f64..6.5)).exp() as u64
    }

    fn ship_weekly(&mut self, a: &mut Actor, per_week: f64) {
        for week in 0..self.weeks {
            let p = (per_week / 10.0).clamp(0.0, 1.0);
            let count = (0..10).filter(|_| self.rng.random_bool(p)).count();
            for _ in 0..count {
                let day = self.working_day(week);
                let lines = self.lines();
                self.ship(a, day, lines);
            }
        }
    }

    /// A pull request of `lines` by `a`, approved by a colleague, merged on `day` and deployed
    /// to production the next working day.
    fn ship(&mut self, a: &mut Actor, day: u32, lines: u64) {
        let number = a.next_pr;
        a.next_pr += 1;
        let merged_at = self.at(day.min(self.days() - 1), 10.0, 17.0);
        let reviewer = self.reviewers[self.rng.random_range(0..self.reviewers.len())].clone();
        let repo = json!({
            "name": a.repo,
            "full_name": format!("acme/{}", a.repo),
            "private": true,
            "owner": {"login": "acme", "type": "Organization"},
        });
        let sha = format!("{:016x}{:024x}", self.seed, self.next_id * 1_000 + number);
        let reviewed_at = Micros(merged_at.0 - self.rng.random_range(MICROS_PER_HOUR / 4..3 * MICROS_PER_HOUR));
        let id = self.id("r");
        let review_id = self.next_id;
        self.deliveries.push(Delivery {
            event: "pull_request_review",
            id,
            at: reviewed_at,
            payload: json!({
                "action": "submitted",
                "review": {
                    "id": review_id,
                    "state": "approved",
                    "user": {"login": reviewer, "type": "User"},
                    "submitted_at": reviewed_at.rfc3339(),
                },
                "pull_request": {"number": number, "user": {"login": a.name}},
                "repository": repo,
                "sender": {"login": reviewer},
            }),
        });
        let id = self.id("p");
        self.deliveries.push(Delivery {
            event: "pull_request",
            id,
            at: merged_at,
            payload: json!({
                "action": "closed",
                "number": number,
                "pull_request": {
                    "number": number,
                    "state": "closed",
                    "title": format!("Change {number}"),
                    "body": "",
                    "user": {"login": a.name, "type": "User"},
                    "head": {"ref": format!("{}/change-{number}", a.name)},
                    "base": {"ref": "main"},
                    "merged": true,
                    "merged_at": merged_at.rfc3339(),
                    "merged_by": {"login": a.name},
                    "merge_commit_sha": sha,
                    "additions": lines * 2 / 3,
                    "deletions": lines - lines * 2 / 3,
                },
                "repository": repo,
                "sender": {"login": a.name},
            }),
        });
        let deployed_at = Micros(merged_at.0 + MICROS_PER_DAY);
        let id = self.id("d");
        let deployment_id = self.next_id;
        self.deliveries.push(Delivery {
            event: "deployment_status",
            id,
            at: deployed_at,
            payload: json!({
                "action": "created",
                "deployment_status": {
                    "id": deployment_id * 10,
                    "state": "success",
                    "environment": "production",
                    "created_at": deployed_at.rfc3339(),
                    "creator": {"login": "deploy-bot[bot]", "type": "Bot"},
                },
                "deployment": {
                    "id": deployment_id,
                    "sha": sha,
                    "ref": "main",
                    "environment": "production",
                    "created_at": deployed_at.rfc3339(),
                    "creator": {"login": a.name, "type": "User"},
                },
                "repository": repo,
                "sender": {"login": "deploy-bot[bot]", "type": "Bot"},
            }),
        });
    }

    /// `a`'s calls as Goodhart stores them, by the person's path.
    fn deliver(&mut self, a: &Actor) -> Vec<UsageEvent> {
        match &a.path {
            Path::Api => a.planned.iter().map(|p| self.via_api(a, p)).collect(),
            Path::Gateway(scopes) => a.planned.iter().map(|p| self.via_gateway(scopes, p)).collect(),
            Path::Import => self.via_import(a),
        }
    }

    fn via_api(&mut self, a: &Actor, p: &Planned) -> UsageEvent {
        let input = UsageEventInput {
            id: Some(self.id("u")),
            timestamp: p.at.rfc3339(),
            user: a.name.clone(),
            team: Some(a.team.clone()),
            project: Some(format!("{}-app", a.team)),
            agent: p.agent.clone(),
            session: Some(p.session.clone()),
            provider: Some("anthropic".into()),
            model: p.model.to_owned(),
            input_tokens: p.tokens.input,
            output_tokens: p.tokens.output,
            cache_read_tokens: p.tokens.cache_read,
            prompt: Some(p.prompt.clone()),
            completion: Some(p.completion.clone()),
            finish_reason: Some(if p.truncated { "length" } else { "stop" }.to_owned()),
            ..UsageEventInput::default()
        };
        let policy = IngestPolicy {
            store_content: false,
            source: Source::Api,
        };
        #[expect(
            clippy::expect_used,
            reason = "the simulator generates valid usage; a panic is its bug"
        )]
        input.validate(policy).expect("simulated usage is valid")
    }

    /// The call as the gateway records it: the request body read by the gateway's own
    /// functions, attributed by the key's scope, fingerprinted from the newest turn.
    fn via_gateway(&mut self, scopes: &[KeyScope], p: &Planned) -> UsageEvent {
        let metadata = json!({"device_id": "d1", "account_uuid": "a1", "session_id": p.session}).to_string();
        let body: Value = json!({
            "model": p.model,
            "max_tokens": p.max_tokens,
            "stream": true,
            "system": "You are a helpful assistant.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": p.prompt}]}],
            "metadata": {"user_id": metadata},
        });
        let request = request_facts(&body);
        let scope = &scopes[p.key.min(scopes.len() - 1)];
        let labels = RequestLabels {
            agent: if scope.agent.is_none() { p.agent.clone() } else { None },
            metadata_user_id: request.metadata_user_id.clone(),
            ..RequestLabels::default()
        };
        #[expect(clippy::expect_used, reason = "the simulator's labels are within its keys' scopes")]
        let attribution = attribute(scope, labels).expect("simulated labels are allowed");
        let id = self.id("g");
        let facts = CallFacts {
            id: format!("req:{id}"),
            key_id: format!("key-{}-{}", scope.user, p.key),
            attribution,
            provider: "anthropic".into(),
            endpoint: Endpoint::Messages,
            model: p.model.to_owned(),
            started_at: p.at,
            max_tokens: request.max_tokens,
            stream: request.stream,
            prompt: prompt_text(Endpoint::Messages, &body),
            store_content: false,
        };
        let result = CallResult {
            status: 200,
            reported: Some(ReportedUsage {
                tokens: p.tokens,
                model: Some(p.model.to_owned()),
                finish_reason: Some(if p.truncated { "max_tokens" } else { "end_turn" }.to_owned()),
            }),
            response_id: Some(format!("msg_{id}")),
            output_text: p.completion.clone(),
            latency_micros: 20_000_000,
            ttft_micros: Some(800_000),
            upstream_request_id: Some(id),
            complete: true,
            client_disconnected: false,
        };
        gateway_event(&facts, result, |text| text.split_whitespace().count() as u64)
    }

    /// The calls as Claude Code logs them (two lines per response, as it writes one per content
    /// block), read back by the public parser and made events as `goodhart import` makes them.
    fn via_import(&mut self, a: &Actor) -> Vec<UsageEvent> {
        let mut calls = goodhart_core::agent_logs::Calls::default();
        for p in &a.planned {
            let message = self.id("msg");
            for output in [1, p.tokens.output] {
                let line = json!({
                    "type": "assistant",
                    "timestamp": p.at.rfc3339(),
                    "requestId": format!("req_{message}"),
                    "sessionId": p.session,
                    "cwd": format!("/home/{}/src/{}-app", a.name, a.team),
                    "message": {
                        "id": message,
                        "model": p.model,
                        "stop_reason": if p.truncated { "max_tokens" } else { "end_turn" },
                        "usage": {
                            "input_tokens": p.tokens.input,
                            "output_tokens": output,
                            "cache_read_input_tokens": p.tokens.cache_read,
                            "cache_creation_input_tokens": 0,
                        },
                    },
                })
                .to_string();
                #[expect(clippy::expect_used, reason = "the simulator writes Claude Code's log shape")]
                let call = goodhart_core::agent_logs::parse_claude_line(&line)
                    .expect("a simulated log line is readable")
                    .expect("a simulated log line is a call");
                calls.add(call);
            }
        }
        let policy = IngestPolicy {
            store_content: false,
            source: Source::Import,
        };
        calls
            .into_sorted()
            .into_iter()
            .map(|call| {
                let t = call.tokens;
                let input = UsageEventInput {
                    id: Some(call.id.clone()),
                    timestamp: call.timestamp.rfc3339(),
                    user: a.name.clone(),
                    team: Some(a.team.clone()),
                    project: call
                        .cwd
                        .as_deref()
                        .and_then(|cwd| cwd.rsplit('/').next())
                        .map(str::to_owned),
                    agent: Some(call.agent.into()),
                    session: call.session.clone(),
                    provider: Some(call.provider.into()),
                    model: call.model.clone(),
                    input_tokens: t.input,
                    output_tokens: t.output,
                    cache_read_tokens: t.cache_read,
                    cache_write_tokens: t.cache_write_5m,
                    cache_write_1h_tokens: t.cache_write_1h,
                    reasoning_tokens: t.reasoning,
                    prompt: None,
                    completion: None,
                    finish_reason: call.stop_reason.clone(),
                    task: None,
                };
                #[expect(clippy::expect_used, reason = "imported simulated usage is valid")]
                input.validate(policy).expect("simulated usage is valid")
            })
            .collect()
    }
}

/// Caught people of one strategy, or accused people of one hard negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub flagged: usize,
    pub total: usize,
}

/// How detection fares on one adversarial organisation.
#[derive(Debug, Clone)]
pub struct AdversarialScore {
    pub seed: u64,
    pub people: usize,
    pub calls: usize,
    /// Per strategy: people flagged of those following it (recall).
    pub strategies: BTreeMap<Strategy, Tally>,
    /// Per hard negative: people flagged of those who are it (false accusations).
    pub hard_negatives: BTreeMap<HardNegative, Tally>,
    /// Ordinary background people flagged (false accusations too).
    pub background_accused: Vec<String>,
    pub background: usize,
    pub findings: Vec<Finding>,
    /// The detection pass alone.
    pub detection_time: std::time::Duration,
    /// One per review period of [`REVIEWED_DAYS`].
    pub feedback: Vec<FeedbackScore>,
}

/// How many first days of findings the simulated admin reviews before the rest are judged:
/// a week as the issue asks, and two and three weeks because the organisation's hard
/// negatives that get accused (data migrations in weeks two and three, the release crunch in
/// the last ten days) are not yet at work in the first week.
pub const REVIEWED_DAYS: [i64; 3] = [7, 14, 21];

/// Detection on the days after the first `reviewed_days`, before and after an admin reviews
/// the first days' findings — dismissing each on a person who is not a waster, confirming each
/// on a waster — and later findings are reviewed against those decisions as a pass would.
#[derive(Debug, Clone, Default)]
pub struct FeedbackScore {
    pub reviewed_days: i64,
    pub confirmed: usize,
    pub dismissed: usize,
    /// People flagged by the later days' findings as detected (recall out of every waster).
    pub before: Detection,
    /// The same, without the later findings the dismissals cover.
    pub after: Detection,
    /// Later findings the dismissals cover (recorded dismissed automatically by a server).
    pub auto_dismissed: usize,
    /// Per hard negative: people accused on the later days, before and after.
    pub hard_negatives: BTreeMap<HardNegative, (Tally, Tally)>,
}

/// Replays an admin's review of the first `reviewed_days`' `findings` (see [`FeedbackScore`]).
fn feedback(adv: &Adversarial, findings: &[Finding], reviewed_days: i64) -> FeedbackScore {
    let cutoff = Micros(adv.spec.background.start.floor_to(MICROS_PER_DAY).0 + reviewed_days * MICROS_PER_DAY);
    let wasteful = |user: &str| adv.roles.get(user).is_some_and(|r| r.wasteful());
    let (reviewed, later): (Vec<&Finding>, Vec<&Finding>) = findings.iter().partition(|f| f.from < cutoff);
    let decisions: Vec<Decision<'_>> = reviewed
        .iter()
        .map(|finding| Decision {
            finding,
            status: if wasteful(&finding.user) {
                FindingStatus::Confirmed
            } else {
                FindingStatus::Dismissed
            },
            decided_at: cutoff,
            note: None,
        })
        .collect();
    let later = review(
        later.into_iter().cloned().collect(),
        &decisions,
        &FeedbackRules::default(),
    );
    let before: BTreeSet<&str> = later.iter().map(|r| r.finding.user.as_str()).collect();
    let after: BTreeSet<&str> = later
        .iter()
        .filter(|r| !matches!(r.verdict, Verdict::Covered { .. }))
        .map(|r| r.finding.user.as_str())
        .collect();
    let wasters = adv.roles.values().filter(|r| r.wasteful()).count();
    let detection = |flagged: &BTreeSet<&str>| Detection {
        flagged: flagged.len(),
        true_positives: flagged.iter().filter(|u| wasteful(u)).count(),
        wasteful: wasters,
    };
    let mut hard_negatives: BTreeMap<HardNegative, (Tally, Tally)> = BTreeMap::new();
    for (name, role) in &adv.roles {
        if let Role::Hard(hard) = role {
            let (was, is) = hard_negatives.entry(*hard).or_default();
            was.total += 1;
            is.total += 1;
            was.flagged += usize::from(before.contains(name.as_str()));
            is.flagged += usize::from(after.contains(name.as_str()));
        }
    }
    let confirmed = decisions
        .iter()
        .filter(|d| d.status == FindingStatus::Confirmed)
        .count();
    FeedbackScore {
        reviewed_days,
        confirmed,
        dismissed: decisions.len() - confirmed,
        before: detection(&before),
        after: detection(&after),
        auto_dismissed: later
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Covered { .. }))
            .count(),
        hard_negatives,
    }
}

/// Runs waste detection over the adversarial organisation as the server would (priced
/// usage, value credited from its GitHub deliveries) and scores it per strategy and per hard
/// negative, then replays an admin's first week of review ([`FeedbackScore`]).
pub fn score(adv: &Adversarial, value_rules: &ValueRules, rules: &WasteRules) -> AdversarialScore {
    let prices = PriceTable::builtin();
    let usage: Vec<(UsageEvent, Nanos)> = adv
        .usage
        .iter()
        .map(|event| {
            #[expect(clippy::expect_used, reason = "simulated models are priced")]
            let cost = prices
                .cost_of(event.provider.as_deref(), &event.model, &event.tokens)
                .expect("simulated models are priced");
            (event.clone(), cost.total())
        })
        .collect();
    let mut value_by_user: HashMap<String, Milli> = HashMap::new();
    for credit in credits(&facts(&adv.org), value_rules) {
        *value_by_user.entry(credit.credited.user.clone()).or_default() += credit.value;
    }
    let calls = calls(&usage);
    let started = std::time::Instant::now();
    let findings = detect(&calls, &value_by_user, rules);
    let detection_time = started.elapsed();
    let flagged: std::collections::BTreeSet<&str> = findings.iter().map(|f| f.user.as_str()).collect();
    let mut strategies: BTreeMap<Strategy, Tally> = BTreeMap::new();
    let mut hard_negatives: BTreeMap<HardNegative, Tally> = BTreeMap::new();
    let mut background_accused = Vec::new();
    let mut background = 0;
    for (name, role) in &adv.roles {
        let hit = flagged.contains(name.as_str());
        let tally = match role {
            Role::Evasion(s) => strategies.entry(*s).or_default(),
            Role::Hard(h) => hard_negatives.entry(*h).or_default(),
            Role::Background(_) => {
                background += 1;
                if hit {
                    background_accused.push(name.clone());
                }
                continue;
            }
        };
        tally.total += 1;
        tally.flagged += usize::from(hit);
    }
    AdversarialScore {
        seed: adv.spec.seed,
        people: adv.roles.len(),
        calls: calls.len(),
        strategies,
        hard_negatives,
        background_accused,
        background,
        feedback: REVIEWED_DAYS
            .iter()
            .map(|&days| feedback(adv, &findings, days))
            .collect(),
        findings,
        detection_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The small organisation of seed 7, simulated once for the tests that only read it.
    fn shared() -> &'static Adversarial {
        static SHARED: std::sync::LazyLock<Adversarial> = std::sync::LazyLock::new(|| simulate(&small(7)));
        &SHARED
    }

    /// One person per role in a small organisation (what the unit tests need, at a fraction
    /// of the evaluation's size).
    fn small(seed: u64) -> AdversarySpec {
        let full = AdversarySpec::new(seed);
        AdversarySpec {
            per_strategy: 1,
            per_hard_negative: 1,
            background: OrgSpec {
                engineers: 3,
                heavy_shippers: 1,
                light: 1,
                ..full.background.clone()
            },
            ..full
        }
    }

    #[test]
    fn the_generator_is_deterministic_per_seed() {
        let (a, b) = (shared(), &simulate(&small(7)));
        assert_eq!(a.usage, b.usage);
        assert_eq!(a.roles, b.roles);
        assert_eq!(a.org.deliveries, b.org.deliveries);
        assert_ne!(simulate(&small(8)).usage, a.usage);
    }

    #[test]
    fn every_strategy_and_hard_negative_has_labelled_people_who_use_ai() {
        let adv = shared();
        for strategy in Strategy::ALL {
            let people = adv.people_of(Role::Evasion(strategy));
            assert_eq!(people.len(), 1, "{strategy:?}");
            assert!(Role::Evasion(strategy).wasteful());
            for name in people {
                assert!(
                    adv.usage.iter().any(|e| e.attribution.user == name),
                    "{name} made no calls"
                );
            }
        }
        for hard in HardNegative::ALL {
            assert!(!Role::Hard(hard).wasteful());
            assert_eq!(adv.people_of(Role::Hard(hard)).len(), 1, "{hard:?}");
        }
        // Each path is taken.
        for source in [Source::Api, Source::Gateway, Source::Import] {
            assert!(adv.usage.iter().any(|e| e.source == source), "{source:?}");
        }
        let imported = adv.usage.iter().filter(|e| e.source == Source::Import);
        assert!(imported.clone().all(|e| e.fingerprints.prompt_simhash.is_none()));
    }

    #[test]
    fn hard_negatives_ship_and_wasters_outcomes_stay_small() {
        let adv = shared();
        let mut value: HashMap<String, Milli> = HashMap::new();
        for credit in credits(&facts(&adv.org), &ValueRules::default()) {
            *value.entry(credit.credited.user.clone()).or_default() += credit.value;
        }
        for hard in HardNegative::ALL {
            for name in adv.people_of(Role::Hard(hard)) {
                assert!(value.get(name).copied().unwrap_or(0) > 1_000, "{name} shipped nothing");
            }
        }
        let mixer = adv.people_of(Role::Evasion(Strategy::MixedWithWork))[0];
        let naive = adv.people_of(Role::Evasion(Strategy::NaiveLoop))[0];
        assert!(value.get(mixer).copied().unwrap_or(0) > value.get(naive).copied().unwrap_or(0));
    }

    /// The shared organisation scored once, for the tests that only read the score.
    fn shared_score() -> &'static AdversarialScore {
        static SCORE: std::sync::LazyLock<AdversarialScore> =
            std::sync::LazyLock::new(|| score(shared(), &ValueRules::default(), &WasteRules::default()));
        &SCORE
    }

    /// The harness's wiring: today's detectors catch the naive overnight loop. (Were this to
    /// fail, the harness or the detectors are broken: report it, do not tune it away.)
    #[test]
    fn the_naive_control_is_caught() {
        let score = shared_score();
        assert_eq!(score.strategies[&Strategy::NaiveLoop], Tally { flagged: 1, total: 1 });
    }

    /// The review dismisses only findings on people who are not wasters, so it can only take
    /// away false accusations, never a waster caught.
    #[test]
    fn an_admins_review_never_costs_recall() {
        let score = shared_score();
        for f in &score.feedback {
            assert!(f.confirmed + f.dismissed > 0, "nothing reviewed: {f:?}");
            assert_eq!(f.after.true_positives, f.before.true_positives, "{f:?}");
            assert!(f.after.flagged <= f.before.flagged, "{f:?}");
            for (hard, (before, after)) in &f.hard_negatives {
                assert!(after.flagged <= before.flagged, "{hard:?}");
            }
        }
    }
}
