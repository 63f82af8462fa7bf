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
//! A second wave ([`Wave::Second`], its own organisation so the first wave's results stay as
//! they were) casts people who have read the README's "Waste findings" — its signals, "A day of
//! filler" and the rule that a finding needs a sign that nothing was bought — and adapt to it
//! ([`Strategy::SECOND_WAVE`]), next to honest people whose work looks like those signals
//! ([`HardNegative::SECOND_WAVE`]). Written from the README alone. Its new text is
//! words on a topic of their own, as varied under SimHash as real prose; its token shapes carry cache
//! writes where a real client writes its cache.
//!
//! [`score`] also replays an admin's first week of review ([`FeedbackScore`]): the decisions
//! come from the ground truth (each person's role), never from anything the people do, so the
//! simulation stays independent of the detectors and of the feedback rules alike.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use goodhart_core::attribution::{RequestLabels, attribute};
use goodhart_core::calls::{CallFacts, CallResult, gateway_event};
use goodhart_core::keys::KeyScope;
use goodhart_core::outcomes::{Credit, Milli, ValueRules, credits};
use goodhart_core::pricing::PriceTable;
use goodhart_core::providers::ReportedUsage;
use goodhart_core::requests::{Endpoint, prompt_text, request_facts};
use goodhart_core::time::{MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_SECOND};
use goodhart_core::usage::{IngestPolicy, Source, TokenCounts, UsageEvent, UsageEventInput};
use goodhart_core::waste::{
    Call, Decision, FeedbackRules, Finding, FindingStatus, Ledger, Pass, Verdict, WasteRules, detect, review,
};
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
    // The second wave ([`Wave::Second`]): people who have read the README's "Waste findings".
    /// Work-hours filler, each ask pasted after a large document (a different excerpt every
    /// time), so that the answer is no longer several times what was sent.
    PaddedPrompts,
    /// Work-hours filler in a chat that resends (and caches) the whole conversation, so every
    /// call's context grows by the previous answer.
    FakeContinuity,
    /// Two agents talking to each other through the gateway, each answer the other's next
    /// prompt, the conversation cached and growing.
    SelfTalk,
    /// A ring of colleagues each burning 30–39 filler calls a day on their own key (under
    /// the day's 40), next to a little real work.
    Collusion,
    /// A heavy Claude Code user who ships, adding filler worth a little under a quarter of each
    /// day's calls.
    QuarterOfHeavyDay,
    /// Filler whose prompts a model writes (no template: every ask differs) and whose answers
    /// vary, by someone who ships just over a third of the delivering peers' median value.
    VariedShipsThird,
    /// Varied filler by someone who moved into the team whose shippers spend the most, keeping
    /// their spend at 2.3× its delivering half's median; ships little.
    HeavyTeam,
    /// Work-hours filler run in Claude Code, imported from its logs (no text), by someone who
    /// ships just over a third of the delivering peers' median value.
    ImportShipsThird,
    /// Paraphrased filler whose answers stay under 500 tokens, at a quicker pace; ships little.
    ShortAnswers,
    /// Everything the README teaches at once: model-written asks, varied answers, in a cached
    /// chat that carries every answer forward, by someone who ships just over a third of the
    /// delivering peers' median value.
    ContinuityShipsThird,
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

    /// The second wave's strategies ([`Wave::Second`]): evasions of the documented signals.
    pub const SECOND_WAVE: [Strategy; 10] = [
        Strategy::PaddedPrompts,
        Strategy::FakeContinuity,
        Strategy::SelfTalk,
        Strategy::Collusion,
        Strategy::QuarterOfHeavyDay,
        Strategy::VariedShipsThird,
        Strategy::HeavyTeam,
        Strategy::ImportShipsThird,
        Strategy::ShortAnswers,
        Strategy::ContinuityShipsThird,
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
            Strategy::PaddedPrompts => "padded_prompts",
            Strategy::FakeContinuity => "fake_continuity",
            Strategy::SelfTalk => "self_talk",
            Strategy::Collusion => "collusion_under_40",
            Strategy::QuarterOfHeavyDay => "quarter_of_heavy_day",
            Strategy::VariedShipsThird => "varied_ships_third",
            Strategy::HeavyTeam => "heavy_team",
            Strategy::ImportShipsThird => "import_ships_third",
            Strategy::ShortAnswers => "short_answers",
            Strategy::ContinuityShipsThird => "continuity_ships_third",
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
    // The second wave ([`Wave::Second`]): honest work that looks like the documented signals.
    /// A marketing writer generating product descriptions from short briefs through one
    /// template, each a fresh call; the copy ships through the CMS, so no outcome is tracked.
    ContentWriter,
    /// An engineer generating test fixtures: a short "rows of realistic data for this schema"
    /// prompt, long JSON answers, batches on two or three days a week; the PRs ship.
    FixtureGenerator,
    /// A localisation engineer running string files through one instruction (glossary
    /// cached) into four or five locales at once; the i18n PRs ship.
    Translator,
    /// An engineer who asks one-shot questions in fresh chats all day (through the gateway);
    /// ships as an engineer does.
    OneShotQuestions,
    /// An analytics team of four (twice the usual two people a seed, all in team `analytics`)
    /// whose outcomes are dashboards and reports, not GitHub: long notebook-agent sessions and
    /// one-off report drafts.
    UntrackedTeam,
    /// The same work by a team of two (team `research`): fewer than three peers, so the
    /// README's spend rule compares them with the whole organisation.
    UntrackedPair,
}

impl HardNegative {
    pub const ALL: [HardNegative; 5] = [
        HardNegative::DocWriter,
        HardNegative::ReleaseCrunch,
        HardNegative::CiReviewAgent,
        HardNegative::NewHire,
        HardNegative::DataMigration,
    ];

    /// The second wave's hard negatives ([`Wave::Second`]).
    pub const SECOND_WAVE: [HardNegative; 6] = [
        HardNegative::ContentWriter,
        HardNegative::FixtureGenerator,
        HardNegative::Translator,
        HardNegative::OneShotQuestions,
        HardNegative::UntrackedTeam,
        HardNegative::UntrackedPair,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HardNegative::DocWriter => "doc_writer",
            HardNegative::ReleaseCrunch => "release_crunch",
            HardNegative::CiReviewAgent => "ci_review_agent",
            HardNegative::NewHire => "new_hire",
            HardNegative::DataMigration => "data_migration",
            HardNegative::ContentWriter => "content_writer",
            HardNegative::FixtureGenerator => "fixture_generator",
            HardNegative::Translator => "translator",
            HardNegative::OneShotQuestions => "one_shot_questions",
            HardNegative::UntrackedTeam => "untracked_team",
            HardNegative::UntrackedPair => "untracked_pair",
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

/// Which cast to simulate: each wave is its own organisation, so adding the second wave
/// changes nothing of the first's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wave {
    /// [`Strategy::ALL`] and [`HardNegative::ALL`]: issue 19's adapted behaviours, written
    /// before the README documented the signals.
    #[default]
    First,
    /// [`Strategy::SECOND_WAVE`] and [`HardNegative::SECOND_WAVE`]: people who read the
    /// README's "Waste findings" and adapt to the signals it documents, and honest people whose
    /// work looks like those signals. Written from the README alone, not the detectors.
    Second,
}

/// The adversarial organisation to simulate.
#[derive(Debug, Clone)]
pub struct AdversarySpec {
    pub seed: u64,
    pub wave: Wave,
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
            wave: Wave::First,
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

impl AdversarySpec {
    /// The second wave's organisation: the same background, two people per second-wave
    /// strategy and hard negative.
    pub fn second_wave(seed: u64) -> AdversarySpec {
        AdversarySpec {
            wave: Wave::Second,
            ..AdversarySpec::new(seed)
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
    /// A copywriter's template with a product's brief filled in (name, features, audience).
    Brief,
    /// "Generate rows of realistic data for this schema", the batch's rows numbered.
    Schema,
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
    /// A JSON array of a dozen-odd records of fixed keys (test fixtures).
    Records,
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
    /// How each call's context is made.
    flow: Flow,
}

/// How a run's calls carry context (the second wave's tricks; the first wave's runs are all
/// `Plain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// The cached context of `Size::cache`, nothing else.
    Plain,
    /// Each ask after a pasted document of this many tokens (uncached input).
    Padded { tokens: (u64, u64) },
    /// A chat resending the whole conversation, cached: each call reads the cache so far and
    /// writes the previous turn (its ask and answer) to it; a new conversation over 150k.
    Conversation,
    /// A conversation between two agents (`agent` and its critic), each prompt the other's
    /// last answer.
    SelfTalk,
    /// Claude Code's shape: the system prompt read from the cache, the new turn written to
    /// it, a handful of uncached tokens.
    ClaudeCode,
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

    /// `count` words of text on a topic of its own, as the second wave writes: function words
    /// (the commonest 150) about 45 % of the time, else content words from a topic (a few
    /// hundred of the rest, Zipf-like within it). Unrelated texts differ as much under SimHash as
    /// real English paragraphs of the same length do (median 31 bits at 10–40 words, 27 at
    /// 40–120, 25 over 120: the README's paragraphs), where [`Lexicon::words`]' single Zipf
    /// makes long texts nearly identical.
    fn topical(&self, rng: &mut StdRng, count: usize, out: &mut String) {
        const FUNCTION: usize = 150;
        const TOPIC: usize = 400;
        let start = rng.random_range(FUNCTION..self.words.len() - TOPIC);
        for _ in 0..count {
            let i = if rng.random_bool(0.45) {
                let total = self.cumulative[FUNCTION - 1];
                self.cumulative.partition_point(|&c| c < rng.random_range(0.0..total))
            } else {
                // Zipf-like within the topic.
                let r: f64 = rng.random_range(0.0f64..1.0);
                start + ((TOPIC as f64).powf(r) as usize).min(TOPIC - 1)
            };
            out.push_str(&self.words[i.min(self.words.len() - 1)]);
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
    plan: Plan,
}

/// What a second-wave adversary decided after reading the boards.
#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    /// Spend at most this much on filler a working day.
    daily_budget: Option<Nanos>,
    /// Ship this many normal-size pull requests over the simulation.
    pull_requests: Option<u32>,
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
    prices: PriceTable,
    /// Whether new text is [`Lexicon::topical`] (the second wave) or [`Lexicon::words`] (the
    /// first, kept as it was so that its results stay comparable).
    topical: bool,
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
        prices: PriceTable::builtin(),
        topical: spec.wave == Wave::Second,
    };
    let (strategies, hard_negatives): (&[Strategy], &[HardNegative]) = match spec.wave {
        Wave::First => (&Strategy::ALL, &HardNegative::ALL),
        Wave::Second => (&Strategy::SECOND_WAVE, &HardNegative::SECOND_WAVE),
    };
    let mut cast: Vec<Role> = Vec::new();
    for &strategy in strategies {
        cast.extend(std::iter::repeat_n(Role::Evasion(strategy), spec.per_strategy));
    }
    for &hard in hard_negatives {
        let people = if hard == HardNegative::UntrackedTeam {
            2 * spec.per_hard_negative
        } else {
            spec.per_hard_negative
        };
        cast.extend(std::iter::repeat_n(Role::Hard(hard), people));
    }
    let teams: Vec<String> = {
        let mut teams: Vec<String> = org.people.iter().map(|p| p.team.clone()).collect();
        teams.sort();
        teams.dedup();
        teams
    };
    let policy = IngestPolicy {
        store_content: false,
        source: Source::Api,
    };
    let background_usage: Vec<UsageEvent> = std::mem::take(&mut org.usage)
        .into_iter()
        .map(|input| {
            #[expect(clippy::expect_used, reason = "the background simulator generates valid usage")]
            input.validate(policy).expect("simulated usage is valid")
        })
        .collect();
    let board = (spec.wave == Wave::Second).then(|| TeamBoard::of(&org, &background_usage, &generator.prices));
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
        let mut team = teams
            .get(i % teams.len().max(1))
            .cloned()
            .unwrap_or_else(|| "platform".into());
        let mut plan = Plan::default();
        if let Some(board) = &board {
            match role {
                // What the volume view shows: the team whose shippers spend the most.
                Role::Evasion(Strategy::HeavyTeam) => {
                    team = board.heaviest.clone();
                    plan.daily_budget = Some(Nanos(
                        (board.delivering_spend[&team].0 as f64 * 2.3 / board.working_days as f64) as i64,
                    ));
                }
                Role::Evasion(
                    Strategy::VariedShipsThird | Strategy::ImportShipsThird | Strategy::ContinuityShipsThird,
                ) => {
                    // Just over a third of what the team's delivering half ships (one
                    // normal-size reviewed and deployed pull request is worth 1.0).
                    let target = board.delivering_value.get(&team).copied().unwrap_or(0) as f64 * 0.4 / 1_000.0;
                    plan.pull_requests = Some(target.ceil().max(1.0) as u32);
                }
                Role::Hard(HardNegative::UntrackedTeam) => team = "analytics".into(),
                Role::Hard(HardNegative::UntrackedPair) => team = "research".into(),
                _ => {}
            }
        }
        let mut actor = generator.actor(name, team, role);
        actor.plan = plan;
        generator.live(&mut actor);
        usage.extend(generator.deliver(&actor));
        roles.insert(actor.name.clone(), role);
    }
    usage.extend(background_usage);
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

/// What a second-wave adversary reads off the boards before adapting: per team, the median
/// value and the median spend of its delivering half (background people whose value is at
/// least the team's median), over the whole simulation.
struct TeamBoard {
    delivering_value: HashMap<String, Milli>,
    delivering_spend: HashMap<String, Nanos>,
    /// The team whose delivering half spends the most.
    heaviest: String,
    working_days: usize,
}

impl TeamBoard {
    fn of(org: &Org, usage: &[UsageEvent], prices: &PriceTable) -> TeamBoard {
        let mut value: HashMap<&str, Milli> = HashMap::new();
        for credit in credits(&facts(org), &ValueRules::default()) {
            if let Some(person) = org.people.iter().find(|p| p.name == credit.credited.user) {
                *value.entry(person.name.as_str()).or_default() += credit.value;
            }
        }
        let mut spend: HashMap<&str, i64> = HashMap::new();
        for event in usage {
            if let Some(cost) = prices.cost_of(event.provider.as_deref(), &event.model, &event.tokens) {
                *spend.entry(event.attribution.user.as_str()).or_default() += cost.total().0;
            }
        }
        let median = |mut v: Vec<i64>| {
            v.sort_unstable();
            if v.is_empty() { 0 } else { v[v.len() / 2] }
        };
        let mut teams: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for p in &org.people {
            teams.entry(p.team.as_str()).or_default().push(p.name.as_str());
        }
        let (mut delivering_value, mut delivering_spend) = (HashMap::new(), HashMap::new());
        for (team, people) in &teams {
            let team_median = median(
                people
                    .iter()
                    .map(|p| value.get(p).copied().unwrap_or(0) as i64)
                    .collect(),
            );
            let delivering: Vec<&str> = people
                .iter()
                .copied()
                .filter(|p| value.get(p).copied().unwrap_or(0) as i64 >= team_median)
                .collect();
            delivering_value.insert(
                (*team).to_owned(),
                median(
                    delivering
                        .iter()
                        .map(|p| value.get(p).copied().unwrap_or(0) as i64)
                        .collect(),
                ) as Milli,
            );
            delivering_spend.insert(
                (*team).to_owned(),
                Nanos(median(
                    delivering.iter().map(|p| spend.get(p).copied().unwrap_or(0)).collect(),
                )),
            );
        }
        let heaviest = delivering_spend
            .iter()
            .max_by_key(|(team, spend)| (spend.0, std::cmp::Reverse((*team).clone())))
            .map(|(team, _)| team.clone())
            .unwrap_or_default();
        let days = org.spec.weeks as usize * 7;
        TeamBoard {
            delivering_value,
            delivering_spend,
            heaviest,
            working_days: days * 5 / 7,
        }
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
            Role::Evasion(Strategy::ViaImport | Strategy::ImportShipsThird) | Role::Hard(HardNegative::NewHire) => {
                Path::Import
            }
            Role::Evasion(Strategy::SelfTalk) | Role::Hard(HardNegative::OneShotQuestions) => {
                Path::Gateway(vec![scope(None, format!("{team}-app"))])
            }
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
            plan: Plan::default(),
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
                } else if strategy == Strategy::QuarterOfHeavyDay {
                    // Their real work is a heavy user's (in `burn`), and it ships.
                    self.ship_weekly(a, 4.0);
                } else {
                    // Their own real work goes on, a little of it: outcomes that do not move
                    // (or, for those who read the rule, just enough of them).
                    for day in self.working_days() {
                        if self.rng.random_bool(0.5) {
                            self.ordinary_day(a, day, (1, 1));
                        }
                    }
                    match a.plan.pull_requests {
                        Some(count) => self.ship_evenly(a, count),
                        None => self.ship_weekly(a, 0.4),
                    }
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
            flow: Flow::Plain,
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
            flow: Flow::Plain,
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
            flow: Flow::Plain,
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
            s if self.weekday(day) && Strategy::SECOND_WAVE.contains(&s) => self.burn_adapted(a, s, day),
            _ => {}
        }
    }

    fn honest(&mut self, a: &mut Actor, hard: HardNegative) {
        let days = self.days();
        match hard {
            HardNegative::ContentWriter
            | HardNegative::FixtureGenerator
            | HardNegative::Translator
            | HardNegative::OneShotQuestions
            | HardNegative::UntrackedTeam
            | HardNegative::UntrackedPair => self.honest_adapted(a, hard),
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
                        flow: Flow::Plain,
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
        // A conversation's cached history, the turn to write to it next, the last answer.
        let (mut history, mut pending, mut said) = (0u64, run.size.cache.0, None::<String>);
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
                (history, pending, said) = (0, run.size.cache.0, None);
            }
            if matches!(run.flow, Flow::Conversation | Flow::SelfTalk) && history > 150_000 {
                // Too long: a new chat.
                session = self.id("s");
                (history, pending, said) = (0, run.size.cache.0, None);
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
            let mut planned = Planned {
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
            };
            match run.flow {
                Flow::Plain => {}
                Flow::Padded { tokens } => {
                    let pasted = self.rng.random_range(tokens.0..=tokens.1);
                    // The document's first few hundred words stand for all of it (the
                    // fingerprint is the document's either way; full text would only be slow).
                    let mut text = String::with_capacity(4_000);
                    let words = (pasted as usize * 3 / 4).min(400);
                    self.text(words, &mut text);
                    text.push_str("\n\n");
                    text.push_str(&planned.prompt);
                    planned.prompt = text;
                    planned.tokens.input += pasted;
                }
                Flow::Conversation | Flow::SelfTalk => {
                    planned.tokens.cache_read = history;
                    planned.tokens.cache_write_5m = pending;
                    history += pending;
                    pending = planned.tokens.input + planned.tokens.output;
                    if run.flow == Flow::SelfTalk {
                        if let Some(previous) = said.replace(planned.completion.clone()) {
                            planned.prompt = previous;
                        }
                        if n % 2 == 1 {
                            planned.agent = run.agent.as_ref().map(|agent| format!("{agent}-critic"));
                        }
                    }
                }
                Flow::ClaudeCode => {
                    planned.tokens.cache_write_5m = planned.tokens.input;
                    planned.tokens.input = self.rng.random_range(3..=12);
                }
            }
            a.planned.push(planned);
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

    /// `count` words of new text, in this wave's way.
    fn text(&mut self, count: usize, out: &mut String) {
        if self.topical {
            self.lexicon.topical(&mut self.rng, count, out);
        } else {
            self.lexicon.words(&mut self.rng, count, out);
        }
    }

    /// A sentence of new text, in this wave's way.
    fn sentence(&mut self) -> String {
        if self.topical {
            let mut s = String::new();
            let count = self.rng.random_range(6..20);
            self.lexicon.topical(&mut self.rng, count, &mut s);
            s.pop();
            s.push_str(". ");
            s
        } else {
            self.lexicon.sentence(&mut self.rng)
        }
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
                    self.text(extra, &mut text);
                }
            }
            Ask::Fresh => {
                let count = self.rng.random_range(20..120);
                self.text(count, &mut text);
            }
            Ask::Wrapped => {
                self.template(voice, 20, &mut text);
                let count = self.rng.random_range(40..200);
                self.text(count, &mut text);
            }
            Ask::Brief => {
                self.template(voice, 28, &mut text);
                for (label, words) in [("product:", (3, 10)), ("features:", (8, 30)), ("audience:", (2, 6))] {
                    text.push_str(label);
                    text.push(' ');
                    let count = self.rng.random_range(words.0..words.1);
                    self.text(count, &mut text);
                }
                text.push_str("tone: friendly, concrete; 150-250 words");
            }
            Ask::Schema => {
                self.template(voice, 20, &mut text);
                for key in voice.keys.iter().take(8 + (n as usize / 40) % 8) {
                    text.push_str(key);
                    text.push(' ');
                }
                text.push_str(&format!("rows {} to {}", n * 40, n * 40 + 40));
            }
            Ask::Explore => {
                self.template(voice, 8, &mut text);
                let count = self.rng.random_range(2..6);
                self.text(count, &mut text);
                if self.rng.random_bool(0.5) {
                    let count = self.rng.random_range(20..80);
                    self.text(count, &mut text);
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
                        let s = self.sentence();
                        text.push_str(&s);
                    }
                }
            }
            Answer::Records => {
                text.push('[');
                for _ in 0..self.rng.random_range(8..16) {
                    let record = self.completion(voice, Answer::Record);
                    text.push_str(&record);
                    text.push_str(", ");
                }
                text.push(']');
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

    /// `count` normal-size pull requests spread evenly over the working days.
    fn ship_evenly(&mut self, a: &mut Actor, count: u32) {
        let days = self.working_days();
        for k in 0..count as usize {
            let day = days[(k * days.len() / count.max(1) as usize + 1).min(days.len() - 1)];
            let lines = self.rng.random_range(80..400);
            self.ship(a, day, lines);
        }
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
            cache_write_tokens: p.tokens.cache_write_5m,
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
            unanswered: false,
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
                            "cache_creation_input_tokens": p.tokens.cache_write_5m,
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

/// The second wave ([`Wave::Second`]).
impl Generator {
    /// One weekday of a second-wave strategy's filler (and, for the heavy user, real work).
    fn burn_adapted(&mut self, a: &mut Actor, strategy: Strategy, day: u32) {
        let before = a.planned.len();
        match strategy {
            Strategy::Collusion => {
                // One sitting a day, under the day's 40.
                let start = self.at(day, 9.5, 16.0);
                let run = Run {
                    calls: self.rng.random_range(30..40),
                    churn: None,
                    ..self.filler_run(start, Micros(start.0 + 4 * MICROS_PER_HOUR))
                };
                self.run(a, run);
            }
            Strategy::QuarterOfHeavyDay => {
                for _ in 0..self.rng.random_range(4..=6) {
                    let start = self.at(day, 8.0, 17.0);
                    let calls = self.rng.random_range(40..90);
                    let run = Run {
                        gap: Gap::Human {
                            median: 20.0,
                            sigma: 0.8,
                            pause: 0.03,
                        },
                        size: Size {
                            cache: (40_000, 1_500),
                            ..WORK
                        },
                        ..self.work_run(start, calls)
                    };
                    self.run(a, run);
                }
                // Filler worth 30 % of the real calls: 23 % of the day, under a quarter.
                let real = (a.planned.len() - before) as u32;
                let filler = real * 3 / 10;
                for (i, (start, until)) in self.office_blocks(day).into_iter().enumerate() {
                    let run = Run {
                        calls: if i == 0 { filler / 2 } else { filler - filler / 2 },
                        ..self.filler_run(start, until)
                    };
                    self.run(a, run);
                }
            }
            _ => {
                for (start, until) in self.office_blocks(day) {
                    let filler = self.filler_run(start, until);
                    let run = match strategy {
                        Strategy::PaddedPrompts => Run {
                            flow: Flow::Padded { tokens: (2_500, 9_000) },
                            ..filler
                        },
                        Strategy::FakeContinuity => Run {
                            flow: Flow::Conversation,
                            size: Size {
                                cache: (2_000, 0),
                                ..FILLER
                            },
                            ..filler
                        },
                        Strategy::SelfTalk => Run {
                            agent: Some("writer".into()),
                            flow: Flow::SelfTalk,
                            gap: Gap::Human {
                                median: 25.0,
                                sigma: 0.6,
                                pause: 0.02,
                            },
                            size: Size {
                                cache: (2_000, 0),
                                ..FILLER
                            },
                            ..filler
                        },
                        Strategy::ContinuityShipsThird => Run {
                            ask: Ask::Fresh,
                            answer: Answer::Specific,
                            flow: Flow::Conversation,
                            size: Size {
                                cache: (2_000, 0),
                                ..FILLER
                            },
                            ..filler
                        },
                        Strategy::VariedShipsThird | Strategy::HeavyTeam => Run {
                            ask: Ask::Fresh,
                            answer: Answer::Specific,
                            ..filler
                        },
                        Strategy::ImportShipsThird => Run {
                            agent: Some("claude-code".into()),
                            flow: Flow::ClaudeCode,
                            size: Size {
                                cache: (14_000, 0),
                                ..FILLER
                            },
                            ..filler
                        },
                        Strategy::ShortAnswers => Run {
                            gap: Gap::Human {
                                median: 25.0,
                                sigma: 0.6,
                                pause: 0.03,
                            },
                            size: Size {
                                output: (380, 495),
                                ..FILLER
                            },
                            ..filler
                        },
                        _ => filler,
                    };
                    self.run(a, run);
                }
            }
        }
        if let Some(budget) = a.plan.daily_budget {
            // Stop for the day at the budget.
            let mut spent = 0i64;
            let mut keep = a.planned.len();
            for (i, p) in a.planned.iter().enumerate().skip(before) {
                spent += self
                    .prices
                    .cost_of(Some("anthropic"), p.model, &p.tokens)
                    .map_or(0, |c| c.total().0);
                if spent > budget.0 {
                    keep = i;
                    break;
                }
            }
            a.planned.truncate(keep);
        }
    }

    /// Four weeks of a second-wave hard negative's work.
    fn honest_adapted(&mut self, a: &mut Actor, hard: HardNegative) {
        match hard {
            HardNegative::ContentWriter => {
                for day in self.working_days() {
                    for _ in 0..self.rng.random_range(3..6) {
                        let start = self.at(day, 9.0, 17.0);
                        let calls = self.rng.random_range(15..50);
                        // One fresh call per brief, from a small script or a saved prompt.
                        let run = Run {
                            agent: None,
                            ask: Ask::Brief,
                            answer: Answer::Specific,
                            gap: Gap::Human {
                                median: 60.0,
                                sigma: 0.8,
                                pause: 0.06,
                            },
                            size: Size {
                                input: (120, 300),
                                output: (500, 950),
                                max_tokens: 2_048,
                                cache: (0, 0),
                                truncated: 0.0,
                            },
                            ..self.work_run(start, calls)
                        };
                        self.run(a, run);
                    }
                }
                // The copy ships through the CMS: nothing on GitHub.
            }
            HardNegative::FixtureGenerator => {
                for day in self.working_days() {
                    self.ordinary_day(a, day, (2, 3));
                    if self.rng.random_bool(0.5) {
                        for _ in 0..self.rng.random_range(1..4) {
                            let start = self.at(day, 9.0, 17.0);
                            let calls = self.rng.random_range(20..60);
                            let run = Run {
                                agent: Some("fixtures".into()),
                                ask: Ask::Schema,
                                answer: Answer::Records,
                                gap: Gap::Human {
                                    median: 35.0,
                                    sigma: 0.6,
                                    pause: 0.03,
                                },
                                size: Size {
                                    input: (150, 400),
                                    output: (2_000, 4_096),
                                    max_tokens: 4_096,
                                    cache: (0, 0),
                                    truncated: 0.2,
                                },
                                ..self.work_run(start, calls)
                            };
                            self.run(a, run);
                        }
                    }
                }
                self.ship_weekly(a, 3.0);
            }
            HardNegative::Translator => {
                for day in self.working_days() {
                    for _ in 0..self.rng.random_range(2..5) {
                        let start = self.at(day, 9.0, 17.0);
                        let calls = self.rng.random_range(20..70);
                        // The instruction and glossary cached; string files, into 4–5 locales.
                        let run = Run {
                            agent: None,
                            ask: Ask::Wrapped,
                            answer: Answer::Specific,
                            gap: Gap::Human {
                                median: 40.0,
                                sigma: 0.7,
                                pause: 0.05,
                            },
                            size: Size {
                                input: (60, 350),
                                output: (300, 1_600),
                                max_tokens: 4_096,
                                cache: (3_000, 0),
                                truncated: 0.0,
                            },
                            ..self.work_run(start, calls)
                        };
                        self.run(a, run);
                    }
                    if self.rng.random_bool(0.3) {
                        self.ordinary_day(a, day, (1, 1));
                    }
                }
                self.ship_weekly(a, 2.0);
            }
            HardNegative::OneShotQuestions => {
                for day in self.working_days() {
                    for _ in 0..self.rng.random_range(25..60) {
                        let start = self.at(day, 8.5, 18.0);
                        // A fresh chat per question, now and then a follow-up.
                        let calls = if self.rng.random_bool(0.2) { 2 } else { 1 };
                        let run = Run {
                            agent: None,
                            ask: Ask::Fresh,
                            answer: Answer::Specific,
                            size: Size {
                                input: (30, 600),
                                output: (300, 1_500),
                                max_tokens: 4_096,
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
            HardNegative::UntrackedTeam | HardNegative::UntrackedPair => {
                for day in self.working_days() {
                    for _ in 0..self.rng.random_range(2..5) {
                        let start = self.at(day, 9.0, 16.0);
                        let calls = self.rng.random_range(15..50);
                        let run = Run {
                            agent: Some("notebook-agent".into()),
                            size: Size {
                                cache: (40_000, 2_000),
                                ..WORK
                            },
                            ..self.work_run(start, calls)
                        };
                        self.run(a, run);
                    }
                    // Report drafts from notes, each in a fresh chat.
                    for _ in 0..self.rng.random_range(15..45) {
                        let start = self.at(day, 9.0, 18.0);
                        let run = Run {
                            agent: None,
                            size: Size {
                                input: (150, 700),
                                output: (900, 2_200),
                                max_tokens: 4_096,
                                cache: (0, 0),
                                truncated: 0.01,
                            },
                            ..self.work_run(start, 1)
                        };
                        self.run(a, run);
                    }
                }
                // Dashboards and reports: nothing on GitHub.
            }
            _ => {}
        }
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
    /// Per strategy: what the people it hid spent in the window (the damage of an evasion).
    pub missed_spend: BTreeMap<Strategy, Nanos>,
    /// What the median ordinary background person spent in the window (the scale for
    /// `missed_spend`).
    pub background_median_spend: Nanos,
    pub findings: Vec<Finding>,
    /// The detection pass alone.
    pub detection_time: std::time::Duration,
    /// One per review period of [`REVIEWED_DAYS`].
    pub feedback: Vec<FeedbackScore>,
}

/// How detection is run over the simulated weeks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passes {
    /// One pass over the whole window, with the value credited in it.
    Window,
    /// As the server runs it: one [`Pass`] per UTC day (that day's calls and the day before,
    /// the value credited over the four weeks up to the day's end), each keeping the findings
    /// that start on its day.
    Daily,
}

/// Detection as the server runs it ([`Passes::Daily`]); `calls` are in time order.
fn daily_passes(calls: &[Call], credits: &[Credit], rules: &WasteRules) -> Vec<Finding> {
    let (Some(first), Some(last)) = (calls.first(), calls.last()) else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    let mut day = first.at.floor_to(MICROS_PER_DAY);
    while day <= last.at {
        let pass = Pass::over(day, Micros(day.0 + 1));
        let start = |from: Micros| calls.partition_point(|c| c.at < from);
        let (read, weeks, end) = (start(pass.read_from), start(pass.value_from), start(pass.to));
        let ledger = Ledger::of_calls(&calls[weeks..end], pass.value(credits));
        findings.extend(
            detect(&calls[read..end], &ledger, rules)
                .into_iter()
                .filter(|f| pass.keeps(f)),
        );
        day = pass.to;
    }
    findings
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
/// usage, value credited from its GitHub deliveries; in daily passes or over the whole window,
/// see [`Passes`]) and scores it per strategy and per hard negative, then replays an admin's
/// first week of review ([`FeedbackScore`]).
pub fn score(adv: &Adversarial, value_rules: &ValueRules, rules: &WasteRules, passes: Passes) -> AdversarialScore {
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
    let credits = credits(&facts(&adv.org), value_rules);
    let calls = calls(&usage);
    let started = std::time::Instant::now();
    let findings = match passes {
        Passes::Window => {
            let mut value_by_user: HashMap<String, Milli> = HashMap::new();
            for credit in &credits {
                *value_by_user.entry(credit.credited.user.clone()).or_default() += credit.value;
            }
            detect(&calls, &Ledger::of_calls(&calls, value_by_user), rules)
        }
        Passes::Daily => daily_passes(&calls, &credits, rules),
    };
    let detection_time = started.elapsed();
    let flagged: std::collections::BTreeSet<&str> = findings.iter().map(|f| f.user.as_str()).collect();
    let mut spend: HashMap<&str, Nanos> = HashMap::new();
    for call in &calls {
        let spent = spend.entry(call.user.as_str()).or_insert(Nanos::ZERO);
        *spent = spent.saturating_add(call.cost);
    }
    let spent = |name: &str| spend.get(name).copied().unwrap_or(Nanos::ZERO);
    let mut missed_spend: BTreeMap<Strategy, Nanos> = BTreeMap::new();
    let mut background_spend = Vec::new();
    let mut strategies: BTreeMap<Strategy, Tally> = BTreeMap::new();
    let mut hard_negatives: BTreeMap<HardNegative, Tally> = BTreeMap::new();
    let mut background_accused = Vec::new();
    let mut background = 0;
    for (name, role) in &adv.roles {
        let hit = flagged.contains(name.as_str());
        let tally = match role {
            Role::Evasion(s) => {
                let missed = missed_spend.entry(*s).or_insert(Nanos::ZERO);
                if !hit {
                    *missed = missed.saturating_add(spent(name));
                }
                strategies.entry(*s).or_default()
            }
            Role::Hard(h) => hard_negatives.entry(*h).or_default(),
            Role::Background(_) => {
                background += 1;
                background_spend.push(spent(name));
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
        missed_spend,
        background_median_spend: {
            background_spend.sort_unstable();
            background_spend
                .get(background_spend.len() / 2)
                .copied()
                .unwrap_or(Nanos::ZERO)
        },
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
            std::sync::LazyLock::new(|| score(shared(), &ValueRules::default(), &WasteRules::default(), Passes::Daily));
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

    /// The second wave's small organisation of seed 7 (two weeks), simulated once.
    fn second() -> &'static Adversarial {
        static SECOND: std::sync::LazyLock<Adversarial> = std::sync::LazyLock::new(|| {
            // Two weeks: enough for every trick and every board, at half the test's time.
            let small = small(7);
            simulate(&AdversarySpec {
                wave: Wave::Second,
                background: OrgSpec {
                    weeks: 2,
                    ..small.background.clone()
                },
                ..small
            })
        });
        &SECOND
    }

    fn value_of(adv: &Adversarial) -> HashMap<String, Milli> {
        let mut value: HashMap<String, Milli> = HashMap::new();
        for credit in credits(&facts(&adv.org), &ValueRules::default()) {
            *value.entry(credit.credited.user.clone()).or_default() += credit.value;
        }
        value
    }

    #[test]
    fn each_wave_casts_only_its_own_roles() {
        let (first, second) = (shared(), second());
        for strategy in Strategy::SECOND_WAVE {
            assert!(first.people_of(Role::Evasion(strategy)).is_empty(), "{strategy:?}");
            assert_eq!(second.people_of(Role::Evasion(strategy)).len(), 1, "{strategy:?}");
            assert!(!Strategy::ALL.contains(&strategy));
        }
        for hard in HardNegative::SECOND_WAVE {
            assert!(first.people_of(Role::Hard(hard)).is_empty(), "{hard:?}");
            let people = if hard == HardNegative::UntrackedTeam { 2 } else { 1 };
            assert_eq!(second.people_of(Role::Hard(hard)).len(), people, "{hard:?}");
        }
        for strategy in Strategy::ALL {
            assert!(second.people_of(Role::Evasion(strategy)).is_empty(), "{strategy:?}");
        }
        for (name, role) in &second.roles {
            if !matches!(role, Role::Background(_)) {
                assert!(
                    second.usage.iter().any(|e| &e.attribution.user == name),
                    "{name} made no calls"
                );
            }
        }
    }

    /// The second wave's token shapes are what each trick needs, and each path is taken.
    #[test]
    fn second_wave_calls_have_the_shapes_of_their_tricks() {
        let adv = second();
        let calls_of = |role: Role| {
            let name = adv.people_of(role)[0];
            adv.usage
                .iter()
                .filter(move |e| e.attribution.user == name)
                .collect::<Vec<_>>()
        };
        // Padding: the answer is under three times what was sent.
        let padded = calls_of(Role::Evasion(Strategy::PaddedPrompts));
        let heavy = padded.iter().filter(|e| e.tokens.output >= 3 * e.tokens.input).count();
        assert!(heavy * 10 < padded.len(), "{heavy} of {}", padded.len());
        // A cached conversation: the prompt grows by the previous answer (written to the cache,
        // read from it a call later).
        let chat: Vec<_> = calls_of(Role::Evasion(Strategy::FakeContinuity))
            .into_iter()
            .filter(|e| e.attribution.agent.is_none())
            .collect();
        let grows = chat
            .windows(2)
            .filter(|w| w[0].attribution.session == w[1].attribution.session)
            .filter(|w| w[1].tokens.prompt_total() >= w[0].tokens.prompt_total() + w[0].tokens.output)
            .count();
        assert!(grows * 10 > chat.len() * 8, "{grows} of {}", chat.len());
        assert!(chat.iter().all(|e| e.tokens.cache_write_5m > 0));
        // Through the gateway, two agents.
        let talk = calls_of(Role::Evasion(Strategy::SelfTalk));
        assert!(talk.iter().all(|e| e.source == Source::Gateway));
        let agents: BTreeSet<_> = talk.iter().filter_map(|e| e.attribution.agent.clone()).collect();
        assert!(
            agents.contains("writer") && agents.contains("writer-critic"),
            "{agents:?}"
        );
        // Imported: no text.
        let imported = calls_of(Role::Evasion(Strategy::ImportShipsThird));
        assert!(
            imported
                .iter()
                .all(|e| e.source == Source::Import && e.fingerprints.prompt_simhash.is_none())
        );
        // Short answers stay under 500 tokens.
        let short = calls_of(Role::Evasion(Strategy::ShortAnswers));
        let long = short.iter().filter(|e| e.tokens.output >= 500).count();
        assert!(long * 4 < short.len(), "{long} of {}", short.len());
        // The colluder keeps the filler under 40 a day (with a little real work next to it).
        let ring = calls_of(Role::Evasion(Strategy::Collusion));
        let mut per_day: BTreeMap<i64, usize> = BTreeMap::new();
        for e in &ring {
            if e.attribution.agent.is_none() {
                *per_day.entry(e.timestamp.0.div_euclid(MICROS_PER_DAY)).or_default() += 1;
            }
        }
        assert!(per_day.values().all(|&n| n < 40), "{per_day:?}");
        assert!(
            calls_of(Role::Hard(HardNegative::OneShotQuestions))
                .iter()
                .all(|e| e.source == Source::Gateway)
        );
    }

    /// Those who read the spend rule ship just over a third of their team's delivering half's
    /// median; the heavy-team burner sits in the team whose shippers spend most; the untracked
    /// team and the content writer have no GitHub outcome, the other hard negatives ship.
    #[test]
    fn second_wave_people_read_the_boards() {
        let adv = second();
        let value = value_of(adv);
        // Only the background's people are on the board (everyone's usage and deliveries may go in).
        let board = TeamBoard::of(&adv.org, &adv.usage, &PriceTable::builtin());
        for strategy in [
            Strategy::VariedShipsThird,
            Strategy::ImportShipsThird,
            Strategy::ContinuityShipsThird,
        ] {
            let name = adv.people_of(Role::Evasion(strategy))[0];
            let team = &adv
                .usage
                .iter()
                .find(|e| e.attribution.user == name)
                .and_then(|e| e.attribution.team.clone());
            let bar = board.delivering_value[team.as_deref().unwrap_or_default()];
            let mine = value.get(name).copied().unwrap_or(0);
            assert!(
                3 * mine > bar && mine <= bar / 2 + 1_000,
                "{strategy:?}: {mine} against {bar}"
            );
        }
        let heavy = adv.people_of(Role::Evasion(Strategy::HeavyTeam))[0];
        assert!(
            adv.usage
                .iter()
                .filter(|e| e.attribution.user == heavy)
                .all(|e| e.attribution.team.as_deref() == Some(board.heaviest.as_str()))
        );
        for hard in HardNegative::SECOND_WAVE {
            let name = adv.people_of(Role::Hard(hard))[0];
            let shipped = value.get(name).copied().unwrap_or(0) > 0;
            let tracked = !matches!(
                hard,
                HardNegative::ContentWriter | HardNegative::UntrackedTeam | HardNegative::UntrackedPair
            );
            assert_eq!(shipped, tracked, "{name}");
        }
    }

    /// The second wave's text is as varied as real prose: unrelated texts are as far apart under
    /// the ingest's SimHash as the README's own paragraphs (median 31 bits at 10–40 words, 27 at
    /// 40–120, 25 over 120; 0 %, 8 % and 19 % of pairs within 20 bits), where one Zipf over the
    /// whole lexicon (the first wave's) makes any two long texts near-identical.
    #[test]
    fn topical_text_is_as_varied_as_real_prose() {
        let simhash = |text: &str| {
            let input = UsageEventInput {
                timestamp: "2026-11-02T09:14:03Z".into(),
                user: "x".into(),
                model: SONNET.into(),
                input_tokens: 1,
                output_tokens: 1,
                prompt: Some(text.to_owned()),
                ..UsageEventInput::default()
            };
            let policy = IngestPolicy {
                store_content: false,
                source: Source::Api,
            };
            input.validate(policy).ok().and_then(|e| e.fingerprints.prompt_simhash)
        };
        let mut rng = StdRng::seed_from_u64(1);
        let lexicon = Lexicon::new(&mut rng, 8_000);
        // (words, near-identical share of pairs: at most for topical, at least for one Zipf)
        for (words, topical_at_most, zipf_at_least) in
            [(20..40, 0.05, 0.0), (40..120, 0.10, 0.3), (120..400, 0.20, 0.9)]
        {
            let near = |topical: bool, rng: &mut StdRng| {
                let hashes: Vec<u64> = (0..60)
                    .filter_map(|_| {
                        let mut text = String::new();
                        let count = rng.random_range(words.clone());
                        if topical {
                            lexicon.topical(rng, count, &mut text);
                        } else {
                            lexicon.words(rng, count, &mut text);
                        }
                        simhash(&text)
                    })
                    .collect();
                let (mut near, mut pairs) = (0, 0);
                for (i, a) in hashes.iter().enumerate() {
                    for b in &hashes[i + 1..] {
                        pairs += 1;
                        near += usize::from((a ^ b).count_ones() <= 20);
                    }
                }
                near as f64 / pairs as f64
            };
            let (topical, zipf) = (near(true, &mut rng), near(false, &mut rng));
            assert!(topical <= topical_at_most, "{words:?}: {topical}");
            assert!(zipf >= zipf_at_least, "{words:?}: {zipf}");
        }
    }
}
