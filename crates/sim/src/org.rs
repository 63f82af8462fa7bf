//! A simulated organisation: people in teams, each with a way of working ([`Persona`]), their
//! AI usage call by call and what they deliver — merged pull requests, reviews, production
//! deployments, self-reported outcomes — over some weeks, with the **ground truth**: the value
//! each person really delivered, and whose spend is waste. Boards and detectors are scored
//! against that truth; the demo loads the same organisation through the public API.
//!
//! Everything comes out in the public wire formats: usage as `POST /api/v1/usage` items,
//! outcomes as `POST /api/v1/outcomes` items, and GitHub deliveries in GitHub's webhook shapes.
//! Deterministic for a seed.

use std::collections::BTreeMap;

use goodhart_core::Micros;
use goodhart_core::outcomes::OutcomeInput;
use goodhart_core::time::{MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_SECOND};
use goodhart_core::usage::UsageEventInput;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// How a simulated person works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Persona {
    /// Moderate AI use, ships steadily.
    Engineer,
    /// Heavy AI use — long agentic sessions over big cached contexts — and ships a lot.
    HeavyShipper,
    /// Little AI use; ships a little.
    Light,
    /// Burns tokens in unattended loops (often at night, every output hitting `max_tokens`);
    /// rarely ships. Their spend is the waste to find.
    Burner,
    /// Moderate AI use and little real work, dressed up: self-merged pull requests, tiny
    /// rubber-stamped ones, re-deploys, and a stream of self-reported tickets.
    OutcomeGamer,
    /// A burner who hides: paraphrased prompts, jittered gaps, working hours only, outputs
    /// not always cut off but repetitive.
    EvasiveBurner,
    /// Runs a farm of short-lived agents, each started from the same prompt; ships nothing.
    AgentFarm,
    /// Runs many short CI review agents from one prompt template — and ships a lot (the hard
    /// negative for fan-out).
    CiShipper,
}

impl Persona {
    pub fn as_str(self) -> &'static str {
        match self {
            Persona::Engineer => "engineer",
            Persona::HeavyShipper => "heavy_shipper",
            Persona::Light => "light",
            Persona::Burner => "burner",
            Persona::OutcomeGamer => "outcome_gamer",
            Persona::EvasiveBurner => "evasive_burner",
            Persona::AgentFarm => "agent_farm",
            Persona::CiShipper => "ci_shipper",
        }
    }

    /// Whether this person's AI spend buys nothing (what waste detection should flag).
    pub fn wasteful(self) -> bool {
        matches!(self, Persona::Burner | Persona::EvasiveBurner | Persona::AgentFarm)
    }

    fn profile(self) -> Profile {
        match self {
            Persona::Engineer => Profile {
                sessions_per_day: (2, 4),
                calls_per_session: (8, 25),
                gap_seconds: (20, 300),
                input: (500, 6_000),
                cache_read: (5_000, 60_000),
                output: (200, 1_500),
                models: &[("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-5-mini")],
                agent: None,
                pull_requests_per_week: 3.0,
                tickets_per_week: 0.5,
                style: Style::HUMAN,
            },
            Persona::HeavyShipper => Profile {
                sessions_per_day: (4, 7),
                calls_per_session: (30, 80),
                gap_seconds: (10, 120),
                input: (1_000, 8_000),
                cache_read: (50_000, 180_000),
                output: (300, 3_000),
                models: &[("anthropic", "claude-opus-4-8"), ("anthropic", "claude-sonnet-4-5")],
                agent: Some("claude-code"),
                pull_requests_per_week: 6.0,
                tickets_per_week: 0.5,
                style: Style {
                    night_sessions: 0.1,
                    ..Style::HUMAN
                },
            },
            Persona::Light => Profile {
                sessions_per_day: (0, 1),
                calls_per_session: (2, 10),
                gap_seconds: (30, 600),
                input: (200, 3_000),
                cache_read: (0, 5_000),
                output: (100, 800),
                models: &[("anthropic", "claude-haiku-4-5"), ("openai", "gpt-4o-mini")],
                agent: None,
                pull_requests_per_week: 1.5,
                tickets_per_week: 0.5,
                style: Style::HUMAN,
            },
            Persona::Burner => Profile {
                sessions_per_day: (2, 3),
                calls_per_session: (150, 400),
                gap_seconds: (29, 31),
                input: (30_000, 60_000),
                cache_read: (60_000, 120_000),
                output: (4_096, 4_096),
                models: &[("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-opus-4-8")],
                agent: Some("loop-agent"),
                pull_requests_per_week: 0.3,
                tickets_per_week: 0.0,
                style: Style {
                    prompts: Prompts::Template,
                    outputs: Outputs::Truncated,
                    night_sessions: 0.6,
                    weekends: true,
                    agent_per_session: false,
                },
            },
            Persona::OutcomeGamer => Profile {
                sessions_per_day: (2, 3),
                calls_per_session: (8, 25),
                gap_seconds: (20, 300),
                input: (500, 6_000),
                cache_read: (5_000, 60_000),
                output: (200, 1_500),
                models: &[("anthropic", "claude-sonnet-4-5")],
                agent: None,
                pull_requests_per_week: 0.75,
                tickets_per_week: 0.0,
                style: Style::HUMAN,
            },
            Persona::EvasiveBurner => Profile {
                sessions_per_day: (2, 3),
                calls_per_session: (120, 300),
                gap_seconds: (20, 90),
                input: (20_000, 50_000),
                cache_read: (40_000, 100_000),
                output: (2_000, 4_096),
                models: &[("anthropic", "claude-sonnet-4-5")],
                agent: None,
                pull_requests_per_week: 0.3,
                tickets_per_week: 0.0,
                style: Style {
                    prompts: Prompts::Paraphrased,
                    outputs: Outputs::Repetitive,
                    ..Style::HUMAN
                },
            },
            Persona::AgentFarm => Profile {
                sessions_per_day: (20, 40),
                calls_per_session: (3, 12),
                gap_seconds: (5, 20),
                input: (5_000, 20_000),
                cache_read: (0, 20_000),
                output: (2_048, 2_048),
                models: &[("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-5")],
                agent: Some("farm-agent"),
                pull_requests_per_week: 0.0,
                tickets_per_week: 0.0,
                style: Style {
                    prompts: Prompts::Paraphrased,
                    outputs: Outputs::Truncated,
                    night_sessions: 0.5,
                    weekends: true,
                    agent_per_session: true,
                },
            },
            Persona::CiShipper => Profile {
                sessions_per_day: (20, 30),
                calls_per_session: (2, 6),
                gap_seconds: (5, 40),
                input: (2_000, 10_000),
                cache_read: (0, 10_000),
                output: (300, 1_500),
                models: &[("anthropic", "claude-haiku-4-5"), ("anthropic", "claude-sonnet-4-5")],
                agent: Some("ci-review"),
                pull_requests_per_week: 5.0,
                tickets_per_week: 0.0,
                style: Style {
                    prompts: Prompts::Templated,
                    agent_per_session: true,
                    ..Style::HUMAN
                },
            },
        }
    }
}

/// What a person's prompts look like.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prompts {
    /// A different request every time (the newest turn of real work).
    Varied,
    /// One prompt over and over, with a counter.
    Template,
    /// One prompt reworded each time (a quarter of its words swapped for synonyms).
    Paraphrased,
    /// A fixed instruction around varying material (a CI review of each diff).
    Templated,
}

/// What a person's outputs look like.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outputs {
    Prose,
    /// Cut off at `max_tokens`, every time.
    Truncated,
    /// The same few sentences over and over; sometimes cut off.
    Repetitive,
}

#[derive(Clone, Copy)]
struct Style {
    prompts: Prompts,
    outputs: Outputs,
    /// Share of sessions started in the evening and running into the night.
    night_sessions: f64,
    /// Works weekends as on weekdays.
    weekends: bool,
    /// Each session is a new agent (`<agent>-<n>`).
    agent_per_session: bool,
}

impl Style {
    const HUMAN: Style = Style {
        prompts: Prompts::Varied,
        outputs: Outputs::Prose,
        night_sessions: 0.0,
        weekends: false,
        agent_per_session: false,
    };
}

struct Profile {
    sessions_per_day: (u32, u32),
    calls_per_session: (u32, u32),
    gap_seconds: (u32, u32),
    input: (u64, u64),
    cache_read: (u64, u64),
    output: (u64, u64),
    models: &'static [(&'static str, &'static str)],
    agent: Option<&'static str>,
    pull_requests_per_week: f64,
    tickets_per_week: f64,
    style: Style,
}

/// One simulated person (also their GitHub login).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub team: String,
    pub persona: Persona,
}

/// The organisation to simulate.
#[derive(Debug, Clone)]
pub struct OrgSpec {
    pub seed: u64,
    /// The first day (taken from its UTC midnight).
    pub start: Micros,
    pub weeks: u32,
    pub teams: usize,
    pub engineers: usize,
    pub heavy_shippers: usize,
    pub light: usize,
    pub burners: usize,
    pub outcome_gamers: usize,
    pub evasive_burners: usize,
    pub agent_farms: usize,
    pub ci_shippers: usize,
}

impl Default for OrgSpec {
    fn default() -> OrgSpec {
        OrgSpec {
            seed: 1,
            // Monday 5 October 2026.
            start: Micros(20_366 * MICROS_PER_DAY),
            weeks: 4,
            teams: 4,
            engineers: 14,
            heavy_shippers: 4,
            light: 8,
            burners: 4,
            outcome_gamers: 2,
            evasive_burners: 0,
            agent_farms: 0,
            ci_shippers: 0,
        }
    }
}

impl OrgSpec {
    /// The organisation waste detection is scored on: every kind of waste, evasive ones
    /// included, next to the hard negatives (heavy users with overnight sessions, CI agents
    /// that ship).
    pub fn waste_evaluation(seed: u64) -> OrgSpec {
        OrgSpec {
            seed,
            light: 6,
            burners: 2,
            evasive_burners: 3,
            agent_farms: 2,
            ci_shippers: 2,
            ..OrgSpec::default()
        }
    }
}

/// A GitHub webhook delivery: `X-GitHub-Event`, `X-GitHub-Delivery` and the JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub event: &'static str,
    pub id: String,
    pub payload: Value,
    /// When GitHub would send it.
    pub at: Micros,
}

/// The simulated organisation and what it did.
#[derive(Debug, Clone)]
pub struct Org {
    pub spec: OrgSpec,
    pub people: Vec<Person>,
    /// Usage events in time order.
    pub usage: Vec<UsageEventInput>,
    /// GitHub deliveries in time order.
    pub deliveries: Vec<Delivery>,
    /// Self-reported outcomes in time order.
    pub reported: Vec<OutcomeInput>,
    /// What each person really delivered, in normalised deployments: the truth a value board
    /// should agree with (gamed outcomes are worth nothing, reverted work nothing, work not
    /// yet in production half).
    pub true_value: BTreeMap<String, f64>,
}

const TEAMS: [&str; 8] = [
    "payments", "search", "platform", "mobile", "growth", "data", "identity", "billing",
];
const NAMES: [&str; 40] = [
    "ada", "ben", "cleo", "dev", "eli", "fay", "gus", "hana", "ivo", "jun", "kai", "lea", "max", "nia", "omar", "pia",
    "quin", "rae", "sol", "tess", "uma", "vic", "wes", "xia", "yuri", "zoe", "alba", "bo", "cyd", "dana", "emil",
    "flo", "gil", "hugo", "iris", "jade", "kit", "lou", "mona", "ned",
];

/// A merged pull request, before it becomes deliveries.
struct Merge {
    repo: usize,
    number: u64,
    author: usize,
    reviewer: Option<usize>,
    merged_at: Micros,
    sha: String,
    lines: u64,
    title: String,
    body: String,
    branch: String,
    /// Its real worth when shipped (0 for gamed changes).
    worth: f64,
    reverts: Option<u64>,
}

struct Simulation {
    rng: StdRng,
    spec: OrgSpec,
    people: Vec<Person>,
    usage: Vec<UsageEventInput>,
    deliveries: Vec<Delivery>,
    reported: Vec<OutcomeInput>,
    merges: Vec<Merge>,
    next_number: Vec<u64>,
    next_id: u64,
    /// Made-up words that prompts and outputs are written in.
    vocabulary: Vec<String>,
    /// Each person's habitual prompt, as word indices.
    templates: Vec<Vec<usize>>,
}

/// The `variant`th synonym of word `word` (another word of the vocabulary, always the same).
fn synonym(word: usize, variant: usize, words: usize) -> usize {
    (word * 7 + variant * 131 + 17) % words
}

/// Simulates `spec`'s organisation.
pub fn simulate(spec: &OrgSpec) -> Org {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let teams = spec.teams.clamp(1, TEAMS.len());
    let mut personas: Vec<Persona> = [
        (Persona::Engineer, spec.engineers),
        (Persona::HeavyShipper, spec.heavy_shippers),
        (Persona::Light, spec.light),
        (Persona::Burner, spec.burners),
        (Persona::OutcomeGamer, spec.outcome_gamers),
        (Persona::EvasiveBurner, spec.evasive_burners),
        (Persona::AgentFarm, spec.agent_farms),
        (Persona::CiShipper, spec.ci_shippers),
    ]
    .into_iter()
    .flat_map(|(persona, count)| std::iter::repeat_n(persona, count))
    .collect();
    personas.shuffle(&mut rng);
    let people = personas
        .into_iter()
        .enumerate()
        .map(|(i, persona)| Person {
            name: match i / NAMES.len() {
                0 => NAMES[i].to_owned(),
                round => format!("{}{}", NAMES[i % NAMES.len()], round + 1),
            },
            team: TEAMS[i % teams].to_owned(),
            persona,
        })
        .collect();
    let mut sim = Simulation {
        rng,
        spec: OrgSpec {
            teams,
            start: Micros(spec.start.0.div_euclid(MICROS_PER_DAY) * MICROS_PER_DAY),
            ..spec.clone()
        },
        people,
        usage: Vec::new(),
        deliveries: Vec::new(),
        reported: Vec::new(),
        merges: Vec::new(),
        next_number: vec![100; teams],
        next_id: 0,
        vocabulary: Vec::new(),
        templates: Vec::new(),
    };
    sim.vocabulary = (0..2_000)
        .map(|_| {
            let length = sim.rng.random_range(3..10);
            (0..length).map(|_| sim.rng.random_range(b'a'..=b'z') as char).collect()
        })
        .collect();
    sim.templates = (0..sim.people.len())
        .map(|_| (0..30).map(|_| sim.rng.random_range(0..2_000)).collect())
        .collect();
    sim.run()
}

impl Simulation {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("sim{}-{prefix}{}", self.spec.seed, self.next_id)
    }

    fn day(&self, day: u32) -> Micros {
        Micros(self.spec.start.0 + i64::from(day) * MICROS_PER_DAY)
    }

    /// A time in `day`'s working hours (09:00–18:00 UTC).
    fn work_time(&mut self, day: u32) -> Micros {
        Micros(self.day(day).0 + 9 * MICROS_PER_HOUR + self.rng.random_range(0..9 * MICROS_PER_HOUR))
    }

    /// A count with mean `mean` (a binomial over ten draws).
    fn count(&mut self, mean: f64) -> u32 {
        let p = (mean / 10.0).clamp(0.0, 1.0);
        (0..10).filter(|_| self.rng.random_bool(p)).count() as u32
    }

    fn teammate(&mut self, person: usize) -> usize {
        let team = &self.people[person].team;
        let mates: Vec<usize> = (0..self.people.len())
            .filter(|&i| i != person && &self.people[i].team == team)
            .collect();
        if mates.is_empty() {
            (person + 1) % self.people.len()
        } else {
            mates[self.rng.random_range(0..mates.len())]
        }
    }

    fn repo_of(&self, person: usize) -> usize {
        TEAMS.iter().position(|t| *t == self.people[person].team).unwrap_or(0)
    }

    fn run(mut self) -> Org {
        for person in 0..self.people.len() {
            for day in 0..self.spec.weeks * 7 {
                self.usage_on(person, day);
            }
            for week in 0..self.spec.weeks {
                self.work_of(person, week);
            }
        }
        let shipped = self.deploy();
        let mut true_value: BTreeMap<String, f64> = self.people.iter().map(|p| (p.name.clone(), 0.0)).collect();
        let reverted: Vec<(usize, u64)> = self
            .merges
            .iter()
            .filter_map(|m| m.reverts.map(|n| (m.repo, n)))
            .collect();
        for merge in &self.merges {
            if reverted.contains(&(merge.repo, merge.number)) {
                continue;
            }
            let share = if shipped.contains(&(merge.repo, merge.number)) {
                1.0
            } else {
                0.5
            };
            *true_value.entry(self.people[merge.author].name.clone()).or_default() += merge.worth * share;
        }
        for merge in std::mem::take(&mut self.merges) {
            self.merge_deliveries(merge);
        }
        for outcome in &self.reported {
            // Honest reports are worth what a ticket is; gamers' are recorded with weight 1
            // but are worth nothing (see `work_of`).
            if outcome.reference.as_deref().is_some_and(|r| r.starts_with("TICKET-")) {
                *true_value.entry(outcome.user.clone()).or_default() += 0.25;
            }
        }
        self.usage.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        self.deliveries.sort_by_key(|d| d.at);
        self.reported.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        Org {
            spec: self.spec,
            people: self.people,
            usage: self.usage,
            deliveries: self.deliveries,
            reported: self.reported,
            true_value,
        }
    }

    fn usage_on(&mut self, person: usize, day: u32) {
        let persona = self.people[person].persona;
        let profile = persona.profile();
        let style = profile.style;
        let weekend = day % 7 >= 5;
        if weekend && !style.weekends && !self.rng.random_bool(0.1) {
            return;
        }
        let sessions = self
            .rng
            .random_range(profile.sessions_per_day.0..=profile.sessions_per_day.1);
        for _ in 0..sessions {
            let mut at = if self.rng.random_bool(style.night_sessions) {
                // Started in the evening, running into the night.
                Micros(self.day(day).0 + 20 * MICROS_PER_HOUR + self.rng.random_range(0..4 * MICROS_PER_HOUR))
            } else if style.weekends && persona == Persona::AgentFarm {
                Micros(self.day(day).0 + self.rng.random_range(0..MICROS_PER_DAY))
            } else {
                self.work_time(day)
            };
            let session = self.id("s");
            let agent = match (profile.agent, style.agent_per_session) {
                (Some(agent), true) => Some(format!("{agent}-{}", self.next_id)),
                (agent, _) => agent.map(str::to_owned),
            };
            let (provider, model) = profile.models[self.rng.random_range(0..profile.models.len())];
            let calls = self
                .rng
                .random_range(profile.calls_per_session.0..=profile.calls_per_session.1);
            for attempt in 0..calls {
                let output = self.rng.random_range(profile.output.0..=profile.output.1);
                let prompt = self.prompt(person, style.prompts, attempt);
                let (completion, truncated) = self.completion(person, style.outputs);
                let event = UsageEventInput {
                    id: Some(self.id("u")),
                    timestamp: at.rfc3339(),
                    user: self.people[person].name.clone(),
                    team: Some(self.people[person].team.clone()),
                    project: Some(format!("{}-app", self.people[person].team)),
                    agent: agent.clone(),
                    session: Some(session.clone()),
                    provider: Some(provider.to_owned()),
                    model: model.to_owned(),
                    input_tokens: self.rng.random_range(profile.input.0..=profile.input.1),
                    output_tokens: output,
                    cache_read_tokens: self.rng.random_range(profile.cache_read.0..=profile.cache_read.1),
                    prompt: Some(prompt),
                    completion: Some(completion),
                    finish_reason: Some(if truncated { "length" } else { "stop" }.to_owned()),
                    ..UsageEventInput::default()
                };
                self.usage.push(event);
                let gap = self.rng.random_range(profile.gap_seconds.0..=profile.gap_seconds.1);
                at = Micros(at.0 + i64::from(gap) * MICROS_PER_SECOND + self.rng.random_range(0..MICROS_PER_SECOND));
            }
        }
    }

    fn words(&mut self, count: usize, out: &mut String) {
        for _ in 0..count {
            let word = &self.vocabulary[self.rng.random_range(0..self.vocabulary.len())];
            out.push_str(word);
            out.push(' ');
        }
    }

    /// The newest turn of a prompt, in `style`.
    fn prompt(&mut self, person: usize, style: Prompts, attempt: u32) -> String {
        let mut text = String::with_capacity(256);
        match style {
            Prompts::Varied => {
                let count = self.rng.random_range(12..30);
                self.words(count, &mut text);
            }
            Prompts::Template => {
                for &w in &self.templates[person] {
                    text.push_str(&self.vocabulary[w]);
                    text.push(' ');
                }
                text.push_str(&format!("attempt {attempt}"));
            }
            Prompts::Paraphrased => {
                for i in 0..self.templates[person].len() {
                    let w = self.templates[person][i];
                    let word = if self.rng.random_bool(0.25) {
                        synonym(w, self.rng.random_range(1..4), self.vocabulary.len())
                    } else {
                        w
                    };
                    text.push_str(&self.vocabulary[word]);
                    text.push(' ');
                }
            }
            Prompts::Templated => {
                for i in 0..12 {
                    let w = self.templates[person][i];
                    text.push_str(&self.vocabulary[w]);
                    text.push(' ');
                }
                let count = self.rng.random_range(12..20);
                self.words(count, &mut text);
            }
        }
        text
    }

    /// An output in `style`, and whether it was cut off at `max_tokens`.
    fn completion(&mut self, person: usize, style: Outputs) -> (String, bool) {
        let mut text = String::with_capacity(512);
        match style {
            Outputs::Prose | Outputs::Truncated => {
                let count = self.rng.random_range(30..80);
                self.words(count, &mut text);
                (text, style == Outputs::Truncated)
            }
            Outputs::Repetitive => {
                for _ in 0..self.rng.random_range(6..12) {
                    let template = &self.templates[person];
                    for &w in &template[template.len() - 10..] {
                        text.push_str(&self.vocabulary[w]);
                        text.push(' ');
                    }
                    let w = self.rng.random_range(0..self.vocabulary.len());
                    text.push_str(&self.vocabulary[w]);
                    text.push_str(". ");
                }
                (text, self.rng.random_bool(0.4))
            }
        }
    }

    /// A week of delivered work (and, for gamers, of dressed-up non-work).
    fn work_of(&mut self, person: usize, week: u32) {
        let persona = self.people[person].persona;
        let profile = persona.profile();
        let weekday = |rng: &mut StdRng| week * 7 + rng.random_range(0..5);
        for _ in 0..self.count(profile.pull_requests_per_week) {
            let day = weekday(&mut self.rng);
            let lines = self.lines();
            // Hotfixes merged without review happen to honest people too (and earn nothing).
            let reviewed = self.rng.random_bool(0.95);
            let worth = (lines as f64 / 120.0).clamp(0.15, 1.5) * self.rng.random_range(0.7..1.3);
            let merged = self.pull_request(person, day, lines, reviewed, worth, profile.agent);
            // A few changes break something and are reverted a day or two later.
            if self.rng.random_bool(0.03) {
                let later = day + self.rng.random_range(1..3);
                let revert = self.pull_request(person, later, lines, true, 0.0, None);
                let (repo, number) = (self.merges[merged].repo, self.merges[merged].number);
                let title = format!("Revert \"{}\"", self.merges[merged].title);
                let revert = &mut self.merges[revert];
                revert.title = title;
                revert.body = format!("Reverts acme/{}#{number}", TEAMS[repo]);
                revert.reverts = Some(number);
            }
        }
        for _ in 0..self.count(profile.tickets_per_week) {
            let day = weekday(&mut self.rng);
            let at = self.work_time(day);
            let id = self.id("t");
            self.reported.push(OutcomeInput {
                reference: Some(format!("TICKET-{}", self.next_id)),
                ..self.reported_outcome(person, id, at, "ticket_resolved")
            });
        }
        if persona == Persona::OutcomeGamer {
            // Self-merged changes that look like work, tiny ones a friend approves, and a
            // stream of "resolved" tickets that nobody asked for.
            for _ in 0..4 {
                let day = weekday(&mut self.rng);
                let lines = self.rng.random_range(100..400);
                self.pull_request(person, day, lines, false, 0.0, None);
            }
            for _ in 0..3 {
                let day = weekday(&mut self.rng);
                let lines = self.rng.random_range(2..9);
                self.pull_request(person, day, lines, true, 0.0, None);
            }
            for _ in 0..10 {
                let day = weekday(&mut self.rng);
                let at = self.work_time(day);
                let id = self.id("g");
                self.reported.push(OutcomeInput {
                    reference: Some(format!("CLAIM-{}", self.next_id)),
                    ..self.reported_outcome(person, id, at, "ticket_resolved")
                });
            }
        }
    }

    fn reported_outcome(&self, person: usize, id: String, at: Micros, kind: &str) -> OutcomeInput {
        OutcomeInput {
            id,
            timestamp: at.rfc3339(),
            kind: kind.to_owned(),
            user: self.people[person].name.clone(),
            team: Some(self.people[person].team.clone()),
            ..OutcomeInput::default()
        }
    }

    /// Changed lines of an honest change: mostly normal, some small, a few tiny.
    fn lines(&mut self) -> u64 {
        match self.rng.random_range(0..100) {
            0..5 => self.rng.random_range(1..10),
            5..20 => self.rng.random_range(10..50),
            _ => (self.rng.random_range(3.9f64..6.7)).exp() as u64,
        }
    }

    fn pull_request(
        &mut self,
        author: usize,
        day: u32,
        lines: u64,
        reviewed: bool,
        worth: f64,
        agent: Option<&str>,
    ) -> usize {
        let repo = self.repo_of(author);
        self.next_number[repo] += 1;
        let number = self.next_number[repo];
        let merged_at = self.work_time(day.min(self.spec.weeks * 7 - 1));
        let reviewer = reviewed.then(|| self.teammate(author));
        let task = format!("{}-{}", TEAMS[repo][..3].to_ascii_uppercase(), number);
        let mut body = format!("Implements {task}.");
        if let Some(agent) = agent {
            body.push_str(&format!("\n\nCo-authored-by: {agent} <agent@example.com>"));
        }
        let sha = format!("{:040x}", (self.spec.seed << 40) ^ ((repo as u64) << 32) ^ number);
        self.merges.push(Merge {
            repo,
            number,
            author,
            reviewer,
            merged_at,
            sha,
            lines,
            title: format!("{task}: change {number}"),
            body,
            branch: format!("{}/{task}", self.people[author].name),
            worth,
            reverts: None,
        });
        self.merges.len() - 1
    }

    /// Production deployments: each team ships on Tuesdays and Thursdays at 16:00 whatever
    /// merged since its last deployment; gamers re-deploy an already shipped commit now and
    /// then. Returns the pull requests that reached production.
    fn deploy(&mut self) -> Vec<(usize, u64)> {
        let mut shipped = Vec::new();
        for (repo, team) in TEAMS.iter().enumerate().take(self.spec.teams) {
            let mut last_deploy = Micros(i64::MIN);
            let mut last_sha: Option<String> = None;
            for day in (0..self.spec.weeks * 7).filter(|d| d % 7 == 1 || d % 7 == 3) {
                let at = Micros(self.day(day).0 + 16 * MICROS_PER_HOUR);
                let mut new: Vec<&Merge> = self
                    .merges
                    .iter()
                    .filter(|m| m.repo == repo && m.merged_at >= last_deploy && m.merged_at < at)
                    .collect();
                if new.is_empty() {
                    continue;
                }
                new.sort_by_key(|m| m.merged_at);
                shipped.extend(new.iter().map(|m| (repo, m.number)));
                let Some(sha) = new.last().map(|m| m.sha.clone()) else {
                    continue;
                };
                let deployer = self.people.iter().position(|p| p.team == *team).unwrap_or(0);
                self.deployment(repo, &sha, at, deployer);
                last_deploy = at;
                last_sha = Some(sha);
            }
            let gamers: Vec<usize> = (0..self.people.len())
                .filter(|&p| self.people[p].persona == Persona::OutcomeGamer && self.repo_of(p) == repo)
                .collect();
            for gamer in gamers {
                for week in 0..self.spec.weeks {
                    if let Some(sha) = last_sha.clone() {
                        for _ in 0..3 {
                            let day = week * 7 + self.rng.random_range(0..5);
                            let at = self.work_time(day);
                            self.deployment(repo, &sha, at, gamer);
                        }
                    }
                }
            }
        }
        shipped
    }

    fn deployment(&mut self, repo: usize, sha: &str, at: Micros, creator: usize) {
        let id = self.id("d");
        let deployment_id = self.next_id;
        self.deliveries.push(Delivery {
            event: "deployment_status",
            id,
            at,
            payload: json!({
                "action": "created",
                "deployment_status": {
                    "id": deployment_id * 10,
                    "state": "success",
                    "environment": "production",
                    "created_at": at.rfc3339(),
                    "creator": {"login": "deploy-bot[bot]", "type": "Bot"},
                },
                "deployment": {
                    "id": deployment_id,
                    "sha": sha,
                    "ref": "main",
                    "environment": "production",
                    "created_at": at.rfc3339(),
                    "creator": {"login": self.people[creator].name, "type": "User"},
                },
                "repository": repository(repo),
                "sender": {"login": "deploy-bot[bot]", "type": "Bot"},
            }),
        });
    }

    fn merge_deliveries(&mut self, merge: Merge) {
        let repo = repository(merge.repo);
        if let Some(reviewer) = merge.reviewer {
            let at = Micros(merge.merged_at.0 - self.rng.random_range(MICROS_PER_HOUR / 4..4 * MICROS_PER_HOUR));
            let id = self.id("r");
            let review_id = self.next_id;
            self.deliveries.push(Delivery {
                event: "pull_request_review",
                id,
                at,
                payload: json!({
                    "action": "submitted",
                    "review": {
                        "id": review_id,
                        "state": "approved",
                        "user": {"login": self.people[reviewer].name, "type": "User"},
                        "submitted_at": at.rfc3339(),
                    },
                    "pull_request": {"number": merge.number, "user": {"login": self.people[merge.author].name}},
                    "repository": repo,
                    "sender": {"login": self.people[reviewer].name},
                }),
            });
        }
        let id = self.id("p");
        let author = &self.people[merge.author].name;
        self.deliveries.push(Delivery {
            event: "pull_request",
            id,
            at: merge.merged_at,
            payload: json!({
                "action": "closed",
                "number": merge.number,
                "pull_request": {
                    "number": merge.number,
                    "state": "closed",
                    "title": merge.title,
                    "body": merge.body,
                    "user": {"login": author, "type": "User"},
                    "head": {"ref": merge.branch},
                    "base": {"ref": "main"},
                    "merged": true,
                    "merged_at": merge.merged_at.rfc3339(),
                    "merged_by": {"login": author},
                    "merge_commit_sha": merge.sha,
                    "additions": merge.lines * 2 / 3,
                    "deletions": merge.lines - merge.lines * 2 / 3,
                },
                "repository": repo,
                "sender": {"login": author},
            }),
        });
    }
}

fn repository(repo: usize) -> Value {
    json!({
        "name": TEAMS[repo],
        "full_name": format!("acme/{}", TEAMS[repo]),
        "private": true,
        "owner": {"login": "acme", "type": "Organization"},
    })
}

/// Usage events as an NDJSON body for `POST /api/v1/usage`.
#[expect(
    clippy::expect_used,
    reason = "plain structs of strings and numbers always serialise"
)]
pub fn usage_ndjson(events: &[UsageEventInput]) -> String {
    let mut body = String::with_capacity(events.len() * 360);
    for event in events {
        body.push_str(&serde_json::to_string(event).expect("usage serialises"));
        body.push('\n');
    }
    body
}

impl Org {
    pub fn person(&self, name: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.name == name)
    }
}
