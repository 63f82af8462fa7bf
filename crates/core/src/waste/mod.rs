//! Waste ("tokenmaxxing") detection: spend that buys nothing, found from fingerprints and
//! metadata (never from stored prompt text), with evidence a manager can check in a minute.
//!
//! Calls are grouped into **runs** — one person's calls in one session (or agent) without a
//! pause longer than [`WasteRules::run_gap`] — and each long run is checked for signals:
//!
//! - [`Detector::RepeatedPrompts`]: most prompts near-identical (SimHash within
//!   [`WasteRules::similar_bits`], so paraphrases and counters do not escape);
//! - [`Detector::FillerOutput`]: outputs that are filler — most cut off at `max_tokens`, or
//!   highly compressible, or near-identical to each other (the last only for a person whose value
//!   per dollar trails their peers': a test-fixture or record generator's answers share their
//!   structure and look near-identical too);
//! - [`Detector::IndependentCalls`]: calls that build on no earlier answer (the context does
//!   not carry the previous output over);
//! - [`Detector::MetronomicCadence`]: an hour or more at a steady rhythm with no human pause;
//! - [`Detector::OffHours`]: an hour or more mostly at night (22:00–06:00 UTC) or at weekends;
//!
//! per person and UTC day, the calls that are independent, generate far more than they were
//! sent ([`Detector::OutputHeavy`]) and recur, however they are spread over sessions, agents and
//! keys; per person, [`Detector::AgentFanOut`] (many short-lived sessions or agents
//! starting from the same prompt fingerprint) and [`Detector::SpendWithoutOutcomes`] (spend far
//! above the person's delivering peers' with outcomes far below theirs).
//!
//! **No single signal accuses anyone, and behaviour never does.** A finding needs a signal that
//! the spend bought nothing — filler answers, answers generated from next to nothing, outcomes
//! far below the peers' — and one more signal about the calls or the outcomes. Cadence and
//! off hours only raise confidence: a release crunch works nights, a migration script keeps a
//! steady pace. A recurring prompt with calls that carry nothing over is what a batch job and a
//! CI review agent look like, so together they accuse nobody either.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use crate::Micros;
use crate::fingerprint::simhash_similarity;
use crate::money::Nanos;
use crate::outcomes::{Credit, Milli};
use crate::time::{MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_SECOND};

mod day;
mod feedback;
mod model;
mod peers;

pub use feedback::{Decision, FeedbackRules, REPEAT_BONUS, Reviewed, Verdict, review};
use model::permille;
pub use model::{
    Call, CallSample, Detector, Finding, FindingStatus, Ledger, SAMPLES, Spend, SubjectKind, TRUNCATION_REASONS,
    WasteRules, is_truncation,
};

/// What a detection pass over the whole UTC days `[from, to)` reads: the calls from
/// [`Pass::read_from`] (a day before, so that a run that crossed midnight is judged whole and
/// belongs to the day it started) and the value credited from [`Pass::value_from`] (at least the
/// four weeks up to `to`: who ships is judged over weeks, not over the pass's days). It keeps
/// the findings that start in `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub from: Micros,
    pub to: Micros,
    pub read_from: Micros,
    pub value_from: Micros,
}

impl Pass {
    /// Calls read before a pass's days.
    pub const LOOKBACK: i64 = MICROS_PER_DAY;
    /// Value credited this long before a pass's end counts.
    pub const VALUE_PERIOD: i64 = 28 * MICROS_PER_DAY;

    /// The pass over the whole UTC days covering `[from, to)`.
    pub fn over(from: Micros, to: Micros) -> Pass {
        let (from, to) = (from.floor_to(MICROS_PER_DAY), to.ceil_to(MICROS_PER_DAY));
        let read_from = Micros(from.0.saturating_sub(Pass::LOOKBACK));
        Pass {
            from,
            to,
            read_from,
            value_from: Micros(read_from.0.min(to.0.saturating_sub(Pass::VALUE_PERIOD))),
        }
    }

    /// Whether a finding belongs to this pass's days.
    pub fn keeps(&self, finding: &Finding) -> bool {
        finding.from >= self.from && finding.from < self.to
    }

    /// The value credited to each person over the weeks this pass judges them on.
    pub fn value(&self, credits: &[Credit]) -> HashMap<String, Milli> {
        let mut value: HashMap<String, Milli> = HashMap::new();
        for credit in credits.iter().filter(|c| c.at >= self.value_from && c.at < self.to) {
            *value.entry(credit.credited.user.clone()).or_default() += credit.value;
        }
        value
    }
}

/// Waste findings among `calls`; the `ledger` holds what everyone spent and delivered over the
/// weeks they are judged on against their peers (for a detection over whole weeks,
/// [`Ledger::of_calls`]).
pub fn detect(calls: &[Call], ledger: &Ledger, rules: &WasteRules) -> Vec<Finding> {
    let mut by_user: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for call in calls {
        by_user.entry(&call.user).or_default().push(call);
    }
    let standings = peers::standings(ledger, rules);

    let mut findings = Vec::new();
    for (user, mut calls) in by_user {
        calls.sort_by(|a, b| (&a.session, &a.agent, a.at).cmp(&(&b.session, &b.agent, b.at)));
        let shipped = ledger.value_of(user) > 0;
        let standing = standings.get(user);
        let lags = standing.and_then(|s| s.lagging.as_deref());
        let behind = standing.and_then(|s| s.behind.as_deref());
        let trails = standing.is_some();
        let mut covered = vec![false; calls.len()];
        let mut found = |members: Vec<usize>, signals: Vec<(Detector, String)>, covered: &mut [bool], whose: Whose| {
            let run: Vec<&Call> = members.iter().map(|&i| calls[i]).collect();
            if let Some(finding) = judge(user, &run, signals, shipped, whose) {
                members.iter().for_each(|&i| covered[i] = true);
                findings.push(finding);
            }
        };

        let continued = day::continued(&calls, rules);
        let (long, short): (Vec<_>, Vec<_>) = runs(&calls, rules)
            .into_iter()
            .partition(|run| run.len() >= rules.min_run_calls);
        for run in long {
            let mut signals = run_signals(&calls[run.clone()], &continued[run.clone()], trails, rules);
            signals.extend(lags.map(|note| (Detector::SpendWithoutOutcomes, note.to_owned())));
            found(run.collect(), signals, &mut covered, Whose::OneAgent);
        }
        let filler_days = day::filler_days(&calls, &continued, &covered, behind, rules);
        for day in filler_days {
            found(day.calls, day.signals, &mut covered, Whose::OneAgent);
        }
        // Short runs none of whose calls is in a finding yet are judged together, per UTC day of
        // their start.
        let mut short_by_day: BTreeMap<i64, Vec<Range<usize>>> = BTreeMap::new();
        for run in short.into_iter().filter(|run| !run.clone().any(|i| covered[i])) {
            let day = calls[run.start].at.0.div_euclid(MICROS_PER_DAY);
            short_by_day.entry(day).or_default().push(run);
        }
        for short in short_by_day.values() {
            if let Some((members, note)) = fan_out(&calls, short, rules) {
                let fan_calls: Vec<&Call> = members.iter().map(|&i| calls[i]).collect();
                let mut signals = vec![(Detector::AgentFanOut, note)];
                signals.extend(filler(&fan_calls, trails, rules));
                signals.extend(lags.map(|note| (Detector::SpendWithoutOutcomes, note.to_owned())));
                found(members, signals, &mut covered, Whose::User);
            }
        }
    }
    merge_by_day(findings)
}

/// The runs of one person's calls (sorted by session, agent, time), as ranges of them: same
/// session and agent, no pause longer than [`WasteRules::run_gap`].
fn runs(calls: &[&Call], rules: &WasteRules) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=calls.len() {
        let continues = i < calls.len() && {
            let (last, call) = (calls[i - 1], calls[i]);
            last.session == call.session && last.agent == call.agent && call.at.0 - last.at.0 <= rules.run_gap
        };
        if !continues {
            runs.push(start..i);
            start = i;
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

/// The size of the largest group of near-identical fingerprints (greedy, against up to 16
/// group leaders), and how many fingerprints there were.
fn largest_group(hashes: impl Iterator<Item = u64>, similar_bits: u32) -> (usize, usize) {
    let mut leaders: Vec<(u64, usize)> = Vec::new();
    let mut total = 0;
    for hash in hashes {
        total += 1;
        let near = leaders
            .iter()
            .position(|(leader, _)| 64 - simhash_similarity(*leader, hash) <= similar_bits);
        match near {
            Some(i) => leaders[i].1 += 1,
            None if leaders.len() < 16 => leaders.push((hash, 1)),
            None => {}
        }
    }
    (leaders.iter().map(|l| l.1).max().unwrap_or(0), total)
}

fn clock(at: Micros) -> String {
    let minutes = at.0.rem_euclid(MICROS_PER_DAY) / (60 * MICROS_PER_SECOND);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Outputs that are filler, and why; near-identical outputs count only when the person `trails`
/// their peers on value per dollar.
fn filler(calls: &[&Call], trails: bool, rules: &WasteRules) -> Option<(Detector, String)> {
    let truncated = calls.iter().filter(|c| c.truncated).count();
    if permille(truncated, calls.len()) >= rules.filler_share {
        let what = if truncated == calls.len() {
            "every output hit max_tokens".to_owned()
        } else {
            format!("{truncated} of {} outputs hit max_tokens", calls.len())
        };
        return Some((Detector::FillerOutput, what));
    }
    let mut ratios: Vec<u32> = calls.iter().filter_map(|c| c.completion_compress_permille).collect();
    if ratios.len() * 2 >= calls.len() && !ratios.is_empty() {
        ratios.sort_unstable();
        let median = ratios[ratios.len() / 2];
        if median <= rules.filler_compress_permille {
            return Some((
                Detector::FillerOutput,
                format!(
                    "outputs compress to {:.0}% of their size (repetitive filler)",
                    f64::from(median) / 10.0
                ),
            ));
        }
    }
    if !trails {
        return None;
    }
    let (group, total) = largest_group(calls.iter().filter_map(|c| c.completion_simhash), 6);
    (total * 2 >= calls.len() && permille(group, total) >= rules.filler_share).then(|| {
        (
            Detector::FillerOutput,
            format!("{group} of {total} outputs near-identical"),
        )
    })
}

/// The signals one long run shows, each with its evidence; `continued` says which of its
/// calls continue the one before, `trails` whether the person trails their peers.
fn run_signals(run: &[&Call], continued: &[bool], trails: bool, rules: &WasteRules) -> Vec<(Detector, String)> {
    let mut signals = Vec::new();
    let (first, last) = (run[0].at, run[run.len() - 1].at);
    let span = last.0 - first.0;
    let (group, fingerprinted) = largest_group(run.iter().filter_map(|c| c.prompt_simhash), rules.similar_bits);
    if fingerprinted * 2 >= run.len() && permille(group, fingerprinted) >= rules.repeated_share {
        signals.push((
            Detector::RepeatedPrompts,
            format!("{group} of {fingerprinted} prompts near-identical"),
        ));
    }
    signals.extend(filler(run, trails, rules));
    if span >= rules.min_signal_span {
        let mut gaps: Vec<i64> = run.windows(2).map(|w| w[1].at.0 - w[0].at.0).collect();
        gaps.sort_unstable();
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<i64>() as f64 / n;
        let deviation = (gaps.iter().map(|g| (*g as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        let longest = gaps.last().copied().unwrap_or(0);
        if longest < rules.human_pause && deviation <= mean * f64::from(rules.cadence_variation) / 1000.0 {
            let median = gaps[gaps.len() / 2] as f64 / MICROS_PER_SECOND as f64;
            signals.push((
                Detector::MetronomicCadence,
                format!(
                    "median gap {median:.1} s ± {:.1} s, no pause over {} min",
                    deviation / MICROS_PER_SECOND as f64,
                    rules.human_pause / (60 * MICROS_PER_SECOND)
                ),
            ));
        }
        let off = run.iter().filter(|c| off_hours(c.at)).count();
        if permille(off, run.len()) >= rules.off_hours_share {
            signals.push((
                Detector::OffHours,
                format!(
                    "{off} of {} calls at night (22:00–06:00 UTC) or at the weekend",
                    run.len()
                ),
            ));
        }
    }
    let carried = continued.iter().filter(|c| **c).count();
    if permille(carried, run.len()) <= rules.independent_share {
        signals.push((
            Detector::IndependentCalls,
            format!(
                "{} of {} calls build on no earlier answer",
                run.len() - carried,
                run.len()
            ),
        ));
    }
    signals
}

fn off_hours(at: Micros) -> bool {
    let day = at.0.div_euclid(MICROS_PER_DAY);
    // 1970-01-01 was a Thursday: days 2 and 3 of each week (from Thursday) are the weekend.
    let weekend = matches!(day.rem_euclid(7), 2 | 3);
    let hour = at.0.rem_euclid(MICROS_PER_DAY) / MICROS_PER_HOUR;
    weekend || !(6..22).contains(&hour)
}

/// Many short sessions or agents starting from one prompt fingerprint: their calls (indices
/// into `calls`) and the evidence.
fn fan_out(calls: &[&Call], short: &[Range<usize>], rules: &WasteRules) -> Option<(Vec<usize>, String)> {
    let starts: Vec<(usize, u64)> = short
        .iter()
        .enumerate()
        .filter(|(_, run)| calls[run.start].session.is_some() || calls[run.start].agent.is_some())
        .filter_map(|(i, run)| calls[run.clone()].iter().find_map(|c| c.prompt_simhash).map(|h| (i, h)))
        .collect();
    let mut groups: Vec<(u64, Vec<usize>)> = Vec::new();
    for (i, hash) in starts {
        match groups
            .iter_mut()
            .find(|(leader, _)| 64 - simhash_similarity(*leader, hash) <= rules.similar_bits)
        {
            Some((_, members)) => members.push(i),
            None => groups.push((hash, vec![i])),
        }
    }
    let (_, members) = groups.into_iter().max_by_key(|(_, m)| m.len())?;
    if members.len() < rules.fan_out_sessions {
        return None;
    }
    let labels: BTreeSet<&str> = members
        .iter()
        .filter_map(|&i| {
            let first = calls[short[i].start];
            first.agent.as_deref().or(first.session.as_deref())
        })
        .collect();
    let indices: Vec<usize> = members.iter().flat_map(|&i| short[i].clone()).collect();
    let note = format!(
        "{} short-lived sessions ({} distinct agents or sessions, {} calls) starting from one prompt fingerprint",
        members.len(),
        labels.len(),
        indices.len()
    );
    Some((indices, note))
}

/// Who a finding is about.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Whose {
    /// The person (a fan-out's agents are many and short-lived).
    User,
    /// The calls' agent if they all share one, else the person.
    OneAgent,
}

/// Whether the signals make waste, and the finding if so.
fn judge(
    user: &str,
    calls: &[&Call],
    mut signals: Vec<(Detector, String)>,
    shipped: bool,
    whose: Whose,
) -> Option<Finding> {
    let fan_out = signals.first().is_some_and(|s| s.0 == Detector::AgentFanOut);
    signals.sort_by_key(|s| s.0);
    signals.dedup_by_key(|s| s.0);
    // Evidence that nothing was bought, and one more signal about the calls or the outcomes;
    // behaviour never counts towards a finding, only to its confidence.
    let nothing_bought = signals.iter().any(|s| s.0.shows_nothing_bought());
    let evidence = signals.iter().filter(|s| !s.0.is_behaviour()).count();
    if !(nothing_bought && evidence >= 2) {
        return None;
    }
    let (first, last) = (calls.iter().map(|c| c.at).min()?, calls.iter().map(|c| c.at).max()?);
    let one_agent = calls.iter().all(|c| c.agent == calls[0].agent);
    let (subject_kind, subject) = match calls[0].agent.as_deref() {
        Some(agent) if whose == Whose::OneAgent && one_agent => (SubjectKind::Agent, agent.to_owned()),
        _ => (SubjectKind::User, user.to_owned()),
    };
    let detector = if fan_out { Detector::AgentFanOut } else { signals[0].0 };
    let confidence = match signals.len() {
        2 => 700,
        3 => 850,
        _ => 950,
    } - if shipped { 100 } else { 0 };
    let evidence = format!(
        "{} calls between {} and {} ({}): {}",
        calls.len(),
        clock(first),
        clock(last),
        &first.rfc3339()[..10],
        signals.iter().map(|s| s.1.as_str()).collect::<Vec<_>>().join("; ")
    );
    Some(Finding {
        id: String::new(),
        subject_kind,
        subject,
        user: user.to_owned(),
        detector,
        signals: signals.iter().map(|s| s.0).collect(),
        evidence,
        from: first,
        to: last,
        calls: calls.len() as u64,
        wasted_tokens: calls.iter().map(|c| c.tokens()).sum(),
        wasted: calls.iter().fold(Nanos::ZERO, |sum, c| sum.saturating_add(c.cost)),
        confidence,
        samples: CallSample::spread(calls),
    })
}

/// One finding per subject, detector and UTC day (runs of the same day add up; the evidence
/// is the costliest run's), under a stable id.
fn merge_by_day(findings: Vec<Finding>) -> Vec<Finding> {
    type Key = (SubjectKind, String, String, Detector, i64);
    let mut merged: BTreeMap<Key, (Finding, Nanos, u64)> = BTreeMap::new();
    for finding in findings {
        let day = finding.from.0.div_euclid(MICROS_PER_DAY);
        let key = (
            finding.subject_kind,
            finding.subject.clone(),
            finding.user.clone(),
            finding.detector,
            day,
        );
        match merged.get_mut(&key) {
            None => {
                let (wasted, runs) = (finding.wasted, 1);
                merged.insert(key, (finding, wasted, runs));
            }
            Some((kept, costliest, runs)) => {
                *runs += 1;
                if finding.wasted > *costliest {
                    *costliest = finding.wasted;
                    kept.evidence = finding.evidence;
                    kept.samples = finding.samples;
                }
                let (from, to) = (kept.from.min(finding.from), kept.to.max(finding.to));
                let calls = kept.calls + finding.calls;
                let tokens = kept.wasted_tokens + finding.wasted_tokens;
                let wasted = kept.wasted.saturating_add(finding.wasted);
                let confidence = kept.confidence.max(finding.confidence);
                let mut signals: BTreeSet<Detector> = kept.signals.iter().copied().collect();
                signals.extend(finding.signals.iter().copied());
                kept.from = from;
                kept.to = to;
                kept.calls = calls;
                kept.wasted_tokens = tokens;
                kept.wasted = wasted;
                kept.confidence = confidence;
                kept.signals = signals.into_iter().collect();
            }
        }
    }
    merged
        .into_iter()
        .map(|((kind, subject, user, detector, day), (mut finding, _, runs))| {
            let date = Micros(day * MICROS_PER_DAY).rfc3339();
            // Agents' names are shared (`claude-code`): an agent's finding is its user's.
            let whose = if kind == SubjectKind::User {
                subject
            } else {
                format!("{subject}@{user}")
            };
            finding.id = format!("{}:{}:{whose}:{}", detector.as_str(), kind.as_str(), &date[..10]);
            if runs > 1 {
                finding.evidence = format!(
                    "{runs} runs that day, {} calls in all; the costliest: {}",
                    finding.calls, finding.evidence
                );
            }
            finding
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{compress_permille, simhash};
    use crate::outcomes::Milli;
    use std::collections::HashMap;

    /// Monday 2 November 2026, midnight UTC.
    const MONDAY: i64 = 20_759 * MICROS_PER_DAY;
    const WORDS: [&str; 24] = [
        "refactor",
        "the",
        "payment",
        "module",
        "so",
        "that",
        "retries",
        "are",
        "idempotent",
        "and",
        "add",
        "tests",
        "for",
        "the",
        "timeout",
        "path",
        "then",
        "update",
        "docs",
        "explain",
        "why",
        "ledger",
        "entries",
        "balance",
    ];

    fn varied(i: usize) -> String {
        // A different request each time, as the newest turn of real work is.
        (0..12)
            .map(|k| WORDS[(i * 7 + k * k * 3 + i / 5) % WORDS.len()].to_owned() + &"x".repeat((i + k) % 5))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[derive(Clone)]
    struct Run {
        user: &'static str,
        agent: Option<&'static str>,
        session: String,
        start: i64,
        calls: usize,
        gap_secs: fn(usize) -> i64,
        prompt: fn(usize) -> String,
        output: fn(usize) -> String,
        truncated: bool,
        shape: Shape,
        /// A new session every this many calls.
        churn: Option<usize>,
    }

    /// The tokens of a run's calls.
    #[derive(Clone, Copy)]
    enum Shape {
        /// 12,000 tokens in, 8,000 out, nothing cached: independent, not output-heavy.
        Flat,
        /// A conversation: each call's cached context is the last one's plus its answer.
        Conversation,
        /// A few hundred tokens in, thousands out, nothing carried over: generation.
        Generation,
    }

    impl Shape {
        /// (sent new, cache reads, output) of call `i` of a session.
        fn tokens(self, i: usize) -> (u64, u64, u64) {
            let i = i as u64;
            match self {
                Shape::Flat => (12_000, 0, 8_000),
                Shape::Conversation => (400 + i * 37 % 900, 15_000 + i * 1_700, 1_000),
                Shape::Generation => (300 + i * 53 % 250, 0, 2_200 + i * 71 % 1_500),
            }
        }
    }

    impl Run {
        fn calls(&self) -> Vec<Call> {
            let mut at = self.start;
            (0..self.calls)
                .map(|i| {
                    let output = (self.output)(i);
                    let (session, turn) = match self.churn {
                        Some(every) => (format!("{}-{}", self.session, i / every), i % every),
                        None => (self.session.clone(), i),
                    };
                    let (input_tokens, cache_read_tokens, output_tokens) = self.shape.tokens(turn);
                    let call = Call {
                        at: Micros(at),
                        user: self.user.into(),
                        team: None,
                        agent: self.agent.map(Into::into),
                        session: Some(session),
                        model: "claude-sonnet-4-5".into(),
                        cost: Nanos(50_000_000),
                        input_tokens,
                        cache_read_tokens,
                        output_tokens,
                        truncated: self.truncated,
                        prompt_simhash: Some(simhash(&(self.prompt)(i))),
                        completion_simhash: Some(simhash(&output)),
                        completion_compress_permille: Some(compress_permille(&output)),
                    };
                    at += (self.gap_secs)(i) * MICROS_PER_SECOND;
                    call
                })
                .collect()
        }
    }

    /// A request in words of its own (letters only: digits normalise away): no two share a
    /// template.
    fn fresh(i: usize) -> String {
        (0..14)
            .map(|k| {
                let mut n = (i * 7_919 + k * 104_729 + k * k * 31) % 20_011;
                let mut word = String::new();
                while n > 0 || word.is_empty() {
                    word.push(char::from(b'a' + (n % 26) as u8));
                    n /= 26;
                }
                word
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn prose(i: usize) -> String {
        format!("{} {}", varied(i + 3), varied(i + 11))
    }

    fn night_loop(user: &'static str) -> Run {
        Run {
            user,
            agent: Some("loop-agent"),
            session: format!("{user}-loop"),
            start: MONDAY + 22 * MICROS_PER_HOUR + 3 * 60 * MICROS_PER_SECOND,
            calls: 412,
            gap_secs: |_| 30,
            prompt: |i| format!("Keep improving the answer, attempt {i}, be more thorough"),
            output: prose,
            truncated: true,
            shape: Shape::Flat,
            churn: None,
        }
    }

    /// The ledger of four weeks whose calls are `calls` (a test's day or two of them).
    fn weeks(calls: &[Call], value: HashMap<String, Milli>) -> Ledger {
        Ledger {
            days: 28,
            ..Ledger::of_calls(calls, value)
        }
    }

    fn findings(calls: &[Call], shipped: &[&str]) -> Vec<Finding> {
        let value = shipped.iter().map(|u| ((*u).to_owned(), 1_000)).collect();
        detect(calls, &weeks(calls, value), &WasteRules::default())
    }

    const COLLEAGUES: [&str; 6] = ["ann", "bob", "cat", "dan", "eve", "fin"];

    /// Daytime work by the peers everyone is compared with (they deliver when a test says so).
    fn colleagues() -> Vec<Call> {
        (0..6)
            .flat_map(|n| {
                Run {
                    user: COLLEAGUES[n],
                    agent: None,
                    session: format!("day-{n}"),
                    start: MONDAY + 10 * MICROS_PER_HOUR,
                    calls: 20,
                    gap_secs: |i| 40 + (i as i64 * 37) % 200,
                    prompt: varied,
                    output: prose,
                    truncated: false,
                    shape: Shape::Flat,
                    churn: None,
                }
                .calls()
            })
            .collect()
    }

    #[test]
    fn a_night_loop_of_one_prompt_is_waste_with_evidence_and_dollars() {
        let mut calls = colleagues();
        calls.extend(night_loop("zed").calls());
        let found = findings(&calls, &COLLEAGUES);
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(
            (f.subject_kind, f.subject.as_str(), f.user.as_str()),
            (SubjectKind::Agent, "loop-agent", "zed")
        );
        assert_eq!(
            f.signals,
            [
                Detector::RepeatedPrompts,
                Detector::FillerOutput,
                Detector::MetronomicCadence,
                Detector::OffHours,
                Detector::SpendWithoutOutcomes,
                Detector::IndependentCalls
            ]
        );
        assert_eq!(
            (f.calls, f.wasted_tokens, f.wasted),
            (412, 412 * 20_000, Nanos(412 * 50_000_000))
        );
        assert_eq!(f.confidence, 950);
        assert_eq!(f.id, "repeated_prompts:agent:loop-agent@zed:2026-11-02");
        let sampled: Vec<Micros> = f.samples.iter().map(|s| s.at).collect();
        let every = |n: i64| Micros(f.from.0 + n * 30 * MICROS_PER_SECOND);
        assert_eq!(
            sampled,
            [every(0), every(102), every(205), every(308), every(411)],
            "five calls spread over the finding, its first and last included"
        );
        assert_eq!(
            (
                f.samples[0].model.as_str(),
                f.samples[0].output_tokens,
                f.samples[0].cost
            ),
            ("claude-sonnet-4-5", 8_000, Nanos(50_000_000))
        );
        for part in [
            "412 calls between 22:03 and 01:28",
            "412 of 412 prompts near-identical",
            "every output hit max_tokens",
            "median gap 30.0 s ± 0.0 s",
        ] {
            assert!(f.evidence.contains(part), "{part:?} not in {}", f.evidence);
        }
    }

    #[test]
    fn paraphrased_prompts_at_jittered_gaps_in_working_hours_do_not_escape() {
        let run = Run {
            user: "zed",
            agent: None,
            session: "s".into(),
            start: MONDAY + 10 * MICROS_PER_HOUR,
            calls: 150,
            gap_secs: |i| 20 + (i as i64 * 53) % 70,
            prompt: |i| {
                // A quarter of the words swapped for synonyms, differently each time.
                let swaps = [
                    ("improve", "enhance"),
                    ("answer", "response"),
                    ("thorough", "detailed"),
                    ("please", "kindly"),
                ];
                let mut text =
                    "please improve the answer about ledger balances and make it more thorough and complete".to_owned();
                for (k, (from, to)) in swaps.iter().enumerate() {
                    if (i >> k) & 1 == 1 {
                        text = text.replace(from, to);
                    }
                }
                text
            },
            output: |i| format!("{} ", WORDS[i % 3]).repeat(10) + &"the ledger balances. ".repeat(12),
            truncated: false,
            shape: Shape::Flat,
            churn: None,
        };
        let found = findings(&run.calls(), &[]);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(
            found[0].signals[..2],
            [Detector::RepeatedPrompts, Detector::FillerOutput]
        );
        assert!(!found[0].signals.contains(&Detector::MetronomicCadence));
        assert!(!found[0].signals.contains(&Detector::OffHours));
    }

    #[test]
    fn a_productive_overnight_agent_session_before_a_release_is_not_waste() {
        let mut calls = colleagues();
        calls.extend(
            Run {
                user: "kim",
                agent: Some("claude-code"),
                session: "release".into(),
                start: MONDAY + 21 * MICROS_PER_HOUR,
                calls: 300,
                gap_secs: |i| 5 + (i as i64 * 41) % 90,
                prompt: varied,
                output: prose,
                truncated: false,
                shape: Shape::Flat,
                churn: None,
            }
            .calls(),
        );
        for shipped in [&["kim"][..], &[]] {
            let found = findings(&calls, shipped);
            assert!(
                found.is_empty(),
                "off hours alone (and spend) accuse nobody: {found:#?}"
            );
        }
    }

    #[test]
    fn one_weak_signal_alone_accuses_nobody() {
        // Every output cut off at max_tokens, but varied prompts in the daytime by someone who ships.
        let run = Run {
            user: "lee",
            agent: None,
            session: "s".into(),
            start: MONDAY + 9 * MICROS_PER_HOUR,
            calls: 100,
            gap_secs: |i| 30 + (i as i64 * 17) % 120,
            prompt: varied,
            output: prose,
            truncated: true,
            shape: Shape::Conversation,
            churn: None,
        };
        assert!(findings(&run.calls(), &["lee"]).is_empty());
    }

    fn short_agents(user: &'static str, truncated: bool) -> Vec<Call> {
        (0..30)
            .flat_map(|n| {
                Run {
                    user,
                    agent: Some("ci-review"),
                    session: format!("{user}-ci-{n}"),
                    start: MONDAY + 9 * MICROS_PER_HOUR + n as i64 * 15 * 60 * MICROS_PER_SECOND,
                    calls: 4,
                    gap_secs: |_| 12,
                    prompt: |i| format!("Review this diff for bugs and style problems, diff number {i}"),
                    output: prose,
                    truncated,
                    shape: Shape::Flat,
                    churn: None,
                }
                .calls()
            })
            .collect()
    }

    #[test]
    fn short_agents_from_one_prompt_are_waste_only_if_they_ship_nothing_or_write_filler() {
        let mut calls = colleagues();
        calls.extend(short_agents("ci", false));
        assert!(findings(&calls, &["ci"]).is_empty(), "CI agents that ship");
        let mut calls = colleagues();
        calls.extend(short_agents("farm", true));
        for shipped in [&["farm"][..], &[]] {
            let found = findings(&calls, shipped);
            assert_eq!(found.len(), 1, "{found:#?}");
            assert_eq!(
                (found[0].detector, found[0].subject_kind),
                (Detector::AgentFanOut, SubjectKind::User)
            );
            assert_eq!(found[0].calls, 120);
            assert!(
                found[0].evidence.contains("30 short-lived sessions"),
                "{}",
                found[0].evidence
            );
        }
    }

    #[test]
    fn short_agents_are_judged_per_day_not_over_the_window() {
        // The farm's 30 agents, one a day for a month: never eight in a day.
        let calls: Vec<Call> = short_agents("farm", true)
            .into_iter()
            .map(|c| {
                let n: i64 = c
                    .session
                    .as_deref()
                    .unwrap()
                    .rsplit('-')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                Call {
                    at: Micros(c.at.0 + n * MICROS_PER_DAY),
                    ..c
                }
            })
            .collect();
        let mut all = colleagues();
        all.extend(calls);
        assert!(findings(&all, &[]).is_empty(), "one short agent a day is no farm");
    }

    #[test]
    fn runs_of_one_day_make_one_finding_under_a_stable_id() {
        let mut calls = night_loop("zed").calls();
        let mut second = night_loop("zed");
        second.start -= 12 * MICROS_PER_HOUR;
        second.session = "zed-again".into();
        calls.extend(second.calls());
        let found = findings(&calls, &[]);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].calls, 824);
        assert!(
            found[0].evidence.starts_with("2 runs that day, 824 calls in all"),
            "{}",
            found[0].evidence
        );
        calls.reverse();
        assert_eq!(findings(&calls, &[])[0].id, found[0].id, "input order does not matter");
    }

    /// The signals of one run, by detector.
    fn signals_of(run: &Run) -> Vec<Detector> {
        let calls = run.calls();
        let refs: Vec<&Call> = calls.iter().collect();
        let rules = WasteRules::default();
        run_signals(&refs, &day::continued(&refs, &rules), true, &rules)
            .into_iter()
            .map(|s| s.0)
            .collect()
    }

    fn daytime(prompt: fn(usize) -> String, output: fn(usize) -> String, truncated: bool) -> Run {
        Run {
            user: "lee",
            agent: None,
            session: "s".into(),
            start: MONDAY + 9 * MICROS_PER_HOUR,
            calls: 120,
            gap_secs: |i| 20 + (i as i64 * 53) % 160,
            prompt,
            output,
            truncated,
            shape: Shape::Conversation,
            churn: None,
        }
    }

    #[test]
    fn each_content_signal_fires_on_its_pattern_and_not_on_real_work() {
        let work = signals_of(&daytime(varied, prose, false));
        assert!(work.is_empty(), "varied prompts, real answers: {work:?}");

        let counter = signals_of(&daytime(
            |i| format!("Summarise the incident report again, try {i}"),
            prose,
            false,
        ));
        assert_eq!(counter, [Detector::RepeatedPrompts], "a counter does not hide a repeat");

        let cut = signals_of(&daytime(varied, prose, true));
        assert_eq!(cut, [Detector::FillerOutput], "every output at max_tokens");
        let repetitive = signals_of(&daytime(varied, |_| "All good, nothing to report. ".repeat(40), false));
        assert_eq!(repetitive, [Detector::FillerOutput], "outputs that compress to nothing");
        let same_answer = signals_of(&daytime(varied, |i| format!("Done, step {i}: {}", varied(1)), false));
        assert_eq!(same_answer, [Detector::FillerOutput], "the same answer every time");
    }

    #[test]
    fn near_identical_answers_are_filler_only_from_someone_whose_value_per_dollar_trails() {
        // Test fixtures: one schema, 40 rows at a time, answers that share their structure.
        let fixtures = Run {
            user: "fay",
            agent: Some("fixtures"),
            session: "fixtures".into(),
            start: MONDAY + 10 * MICROS_PER_HOUR,
            calls: 40,
            gap_secs: |i| 30 + (i as i64 * 17) % 40,
            prompt: |i| {
                format!(
                    "Rows {} to {} of realistic data for users (id, name, email, plan)",
                    i * 40,
                    i * 40 + 40
                )
            },
            output: |i| {
                (0..12)
                    .map(|r| {
                        format!(
                            r#"{{"id": {}, "name": "user{r}", "email": "u{r}@example.com", "plan": "pro"}}"#,
                            i * 40 + r
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            truncated: false,
            shape: Shape::Generation,
            churn: None,
        };
        assert!(
            signals_of(&fixtures).contains(&Detector::FillerOutput),
            "the answers are near-identical"
        );
        let mut calls = colleagues();
        calls.extend(fixtures.calls());
        let mut delivering = COLLEAGUES.to_vec();
        delivering.push("fay");
        // Twice the peers' spend for the same outcomes: half their value per dollar.
        assert!(
            findings(&calls, &delivering).is_empty(),
            "a fixture generator who ships"
        );
        let found = findings(&calls, &COLLEAGUES);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].signals.contains(&Detector::FillerOutput));
    }

    #[test]
    fn cadence_needs_an_hour_of_steady_rhythm_without_a_human_pause() {
        let steady = |gap_secs: fn(usize) -> i64, calls: usize| {
            signals_of(&Run {
                calls,
                gap_secs,
                ..daytime(varied, prose, false)
            })
        };
        assert_eq!(steady(|_| 45, 120), [Detector::MetronomicCadence]);
        assert_eq!(
            steady(|i| 45 + (i % 3) as i64, 120),
            [Detector::MetronomicCadence],
            "a little jitter is still a machine"
        );
        assert!(steady(|_| 45, 60).is_empty(), "45 minutes is too short to judge");
        assert!(
            steady(|i| if i == 60 { 11 * 60 } else { 45 }, 120).is_empty(),
            "one 11-minute pause is a person"
        );
        assert!(steady(|i| 10 + (i as i64 * 53) % 90, 120).is_empty(), "human gaps");
    }

    #[test]
    fn off_hours_means_most_calls_at_night_or_at_the_weekend() {
        let at = |start: i64| {
            signals_of(&Run {
                start,
                ..daytime(varied, prose, false)
            })
        };
        assert_eq!(at(MONDAY + 23 * MICROS_PER_HOUR), [Detector::OffHours], "Monday night");
        assert_eq!(
            at(MONDAY + 5 * MICROS_PER_DAY + 11 * MICROS_PER_HOUR),
            [Detector::OffHours],
            "Saturday late morning"
        );
        assert!(at(MONDAY + 10 * MICROS_PER_HOUR).is_empty(), "a weekday's office hours");
        assert!(
            at(MONDAY + 19 * MICROS_PER_HOUR).is_empty(),
            "an evening that runs a little past 22:00"
        );
    }

    #[test]
    fn spend_is_a_signal_only_far_above_delivering_peers_with_outcomes_far_below_theirs() {
        let mut calls = colleagues();
        calls.extend(night_loop("zed").calls());
        let signals = |calls: &[Call], value: &[(&str, Milli)]| {
            let value = value.iter().map(|(u, v)| ((*u).to_owned(), *v)).collect();
            let found = detect(calls, &weeks(calls, value), &WasteRules::default());
            found
                .iter()
                .find(|f| f.user == "zed")
                .map(|f| f.signals.contains(&Detector::SpendWithoutOutcomes))
        };
        let peers_deliver: Vec<(&str, Milli)> = COLLEAGUES.iter().map(|u| (*u, 3_000)).collect();
        assert_eq!(
            signals(&calls, &peers_deliver),
            Some(true),
            "20× their spend, nothing shipped"
        );
        let with = |zed: Milli| [&peers_deliver[..], &[("zed", zed)]].concat();
        assert_eq!(signals(&calls, &with(1_000)), Some(true), "a third of their median");
        assert_eq!(signals(&calls, &with(1_001)), Some(false), "just over a third");
        assert_eq!(
            signals(&calls, &COLLEAGUES.iter().map(|u| (*u, 0)).collect::<Vec<_>>()),
            Some(false),
            "peers without outcomes: nobody can be said to lag them"
        );
        let cheap: Vec<Call> = calls
            .iter()
            .map(|c| Call {
                cost: if c.user == "zed" { Nanos(7_000_000) } else { c.cost },
                ..c.clone()
            })
            .collect();
        // zed's 412 calls now cost $2.88, under three times the peers' $1.00.
        assert_eq!(
            signals(&cheap, &peers_deliver),
            Some(false),
            "spend under three times theirs"
        );
    }

    #[test]
    fn peers_are_the_team_and_its_delivering_half_sets_the_bar() {
        // Six colleagues in "web" who deliver; in "infra", zed and three heavy spenders who do
        // not: within infra, zed's spend is ordinary, but the bar is set by those who deliver.
        let team = |calls: Vec<Call>, team: &str| -> Vec<Call> {
            calls
                .into_iter()
                .map(|c| Call {
                    team: Some(team.into()),
                    ..c
                })
                .collect()
        };
        let mut calls = team(colleagues(), "web");
        calls.extend(team(night_loop("zed").calls(), "infra"));
        for (n, user) in ["ivy", "ike", "ida"].into_iter().enumerate() {
            let mut heavy = night_loop(user);
            heavy.prompt = varied;
            heavy.start += n as i64 * MICROS_PER_DAY;
            calls.extend(team(heavy.calls(), "infra"));
        }
        let spend_signal = |value: &[(&str, Milli)]| {
            let value = value.iter().map(|(u, v)| ((*u).to_owned(), *v)).collect();
            detect(&calls, &weeks(&calls, value), &WasteRules::default())
                .iter()
                .find(|f| f.user == "zed")
                .map(|f| f.signals.contains(&Detector::SpendWithoutOutcomes))
        };
        let web: Vec<(&str, Milli)> = COLLEAGUES.iter().map(|u| (*u, 3_000)).collect();
        assert_eq!(spend_signal(&web), Some(false), "infra's peers have no outcomes");
        let infra = [&web[..], &[("ivy", 4_000), ("ike", 4_000)]].concat();
        assert_eq!(
            spend_signal(&infra),
            Some(false),
            "infra's delivering peers spend what zed spends"
        );
    }

    #[test]
    fn a_team_whose_outcomes_are_not_tracked_is_not_judged_on_value() {
        // zed and dee work in design, which GitHub does not see; the colleagues ship.
        let design = |c: Call| Call {
            team: Some("design".into()),
            ..c
        };
        let mut calls = colleagues();
        calls.extend(night_loop("zed").calls().into_iter().map(design));
        let mut dee = colleagues()
            .into_iter()
            .filter(|c| c.user == "ann")
            .map(design)
            .collect::<Vec<_>>();
        dee.iter_mut().for_each(|c| c.user = "dee".into());
        calls.extend(dee);
        let spend_signal = |dee: Milli| {
            let value = COLLEAGUES
                .iter()
                .map(|u| ((*u).to_owned(), 3_000))
                .chain([("dee".to_owned(), dee)]);
            detect(&calls, &weeks(&calls, value.collect()), &WasteRules::default())[0]
                .signals
                .contains(&Detector::SpendWithoutOutcomes)
        };
        assert!(
            !spend_signal(0),
            "nobody in design has an outcome: not judged against the others"
        );
        assert!(
            spend_signal(1_000),
            "dee's outcome shows design's work is tracked: below three peers, the organisation is the bar"
        );
    }

    /// Office-hours filler as people who know the run detectors produce it: a paraphrased
    /// request every minute or so, sessions changed every 30 calls, short prompts, long outputs.
    fn filler_day(user: &'static str) -> Run {
        Run {
            user,
            agent: None,
            session: format!("{user}-filler"),
            start: MONDAY + 9 * MICROS_PER_HOUR,
            calls: 240,
            gap_secs: |i| 40 + (i as i64 * 53) % 60,
            prompt: |i| {
                let base = "write a detailed overview of how the ledger balances entries across the payment \
                            module with examples and tests for the retry path";
                let mut words: Vec<&str> = base.split(' ').collect();
                words.rotate_left(i % 7);
                let swapped = i % words.len();
                words[swapped] = WORDS[i % WORDS.len()];
                format!("{} {}", words.join(" "), WORDS[(i * 5) % WORDS.len()])
            },
            output: prose,
            truncated: false,
            shape: Shape::Generation,
            churn: Some(30),
        }
    }

    #[test]
    fn filler_spread_over_churning_sessions_is_found_over_the_day() {
        let mut calls = colleagues();
        calls.extend(filler_day("zed").calls());
        let found = findings(&calls, &COLLEAGUES);
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(
            (f.subject_kind, f.user.as_str(), f.calls),
            (SubjectKind::User, "zed", 240)
        );
        assert_eq!(
            f.signals,
            [
                Detector::RepeatedPrompts,
                Detector::SpendWithoutOutcomes,
                Detector::IndependentCalls,
                Detector::OutputHeavy
            ]
        );
        for part in [
            "240 of 240 calls that day build on no earlier answer",
            "8 sessions or agents",
            "near-identical to at least two others",
            "median 2",
        ] {
            assert!(f.evidence.contains(part), "{part:?} not in {}", f.evidence);
        }
    }

    #[test]
    fn spend_is_judged_over_the_ledgers_weeks_and_not_before_two_of_them() {
        let mut calls = colleagues();
        calls.extend(filler_day("zed").calls());
        let value: HashMap<String, Milli> = COLLEAGUES.iter().map(|u| ((*u).to_owned(), 1_000)).collect();
        let found = |ledger: Ledger| detect(&calls, &ledger, &WasteRules::default());
        assert_eq!(found(weeks(&calls, value.clone())).len(), 1, "weeks like this day");
        // Over the weeks zed spent what each colleague did: the filler day was a batch day.
        let mut even = weeks(&calls, value.clone());
        even.spend.iter_mut().for_each(|row| row.cost = Nanos(12_000_000_000));
        assert!(found(even).is_empty(), "judged on the weeks' spend, not the day's");
        // In the first 13 days of usage nobody's spend is judged against their outcomes.
        let early = |days| Ledger {
            days,
            ..weeks(&calls, value.clone())
        };
        assert!(found(early(13)).is_empty());
        assert_eq!(found(early(14)).len(), 1);
    }

    #[test]
    fn a_day_of_filler_needs_all_three_properties_of_its_calls() {
        // zed's filler day costs $12, twelve times each colleague's day.
        let found_for = |run: Run, zed: Milli| {
            let mut calls = colleagues();
            calls.extend(run.calls());
            let value = COLLEAGUES
                .iter()
                .map(|u| ((*u).to_owned(), 1_000))
                .chain([("zed".to_owned(), zed)]);
            detect(&calls, &weeks(&calls, value.collect()), &WasteRules::default())
        };
        let found = found_for(filler_day("zed"), 1_000);
        assert_eq!(
            found[0].signals,
            [
                Detector::RepeatedPrompts,
                Detector::SpendWithoutOutcomes,
                Detector::IndependentCalls,
                Detector::OutputHeavy
            ],
            "shipping as much as the peers does not excuse filler that costs twelve times theirs"
        );
        assert!(
            found[0].evidence.contains("value per dollar a third of theirs or less"),
            "{}",
            found[0].evidence
        );
        assert!(
            found_for(filler_day("zed"), 4_001).is_empty(),
            "template generation whose outcomes keep up with its cost (over a third of the peers' value per dollar)"
        );
        assert_eq!(found_for(filler_day("zed"), 4_000).len(), 1, "exactly a third");
        let conversation = Run {
            shape: Shape::Conversation,
            ..filler_day("zed")
        };
        assert!(
            found_for(conversation, 1_000).is_empty(),
            "each call carries the last answer"
        );
        let reading = Run {
            shape: Shape::Flat,
            ..filler_day("zed")
        };
        assert!(
            found_for(reading, 1_000).is_empty(),
            "reads more than it writes: a batch job, a doc generator"
        );
        let varied_prompts = Run {
            prompt: fresh,
            ..filler_day("zed")
        };
        assert_eq!(
            found_for(varied_prompts, 1_000)[0].signals,
            [
                Detector::SpendWithoutOutcomes,
                Detector::IndependentCalls,
                Detector::OutputHeavy
            ],
            "prompts that do not recur: the three properties without the corroboration"
        );
    }

    #[test]
    fn a_day_of_filler_needs_enough_calls_and_a_share_of_the_day() {
        // zed's filler costs $0.20 a call: even 40 calls are eight times a colleague's day.
        let found_for = |calls: Vec<Call>| {
            let mut all = colleagues();
            all.extend(calls.into_iter().map(|c| Call {
                cost: Nanos(200_000_000),
                ..c
            }));
            findings(&all, &[&COLLEAGUES[..], &["zed"]].concat())
        };
        let few = Run {
            calls: 39,
            ..filler_day("zed")
        };
        assert!(found_for(few.calls()).is_empty(), "39 calls: under the 40 a day needs");
        let forty = Run {
            calls: 40,
            ..filler_day("zed")
        };
        assert_eq!(found_for(forty.calls()).len(), 1, "40 calls");
        let mut drowned = forty.calls();
        drowned.extend(
            Run {
                user: "zed",
                agent: None,
                session: "work".into(),
                start: MONDAY + 13 * MICROS_PER_HOUR,
                calls: 121,
                gap_secs: |i| 20 + (i as i64 * 53) % 160,
                prompt: varied,
                output: prose,
                truncated: false,
                shape: Shape::Conversation,
                churn: Some(30),
            }
            .calls(),
        );
        assert!(
            found_for(drowned).is_empty(),
            "40 of 161 calls: under a quarter of a day of real work"
        );
    }

    #[test]
    fn repeated_prompts_with_behaviour_alone_accuse_nobody() {
        // A migration script: one instruction around each record at a steady pace in the
        // evening, short outputs, by someone who ships. Content plus behaviour is not enough.
        let script = Run {
            user: "mia",
            agent: Some("migrate"),
            session: "batch".into(),
            start: MONDAY + 19 * MICROS_PER_HOUR,
            calls: 3_000,
            gap_secs: |_| 2,
            prompt: |i| format!("Convert this record to the new schema: record {i}"),
            output: prose,
            truncated: false,
            shape: Shape::Flat,
            churn: None,
        };
        let signals = signals_of(&script);
        assert_eq!(
            signals,
            [
                Detector::RepeatedPrompts,
                Detector::MetronomicCadence,
                Detector::IndependentCalls
            ]
        );
        let mut calls = colleagues();
        calls.extend(script.calls());
        assert!(findings(&calls, &[&COLLEAGUES[..], &["mia"]].concat()).is_empty());
    }

    #[test]
    fn agents_that_each_make_a_few_calls_are_judged_over_the_day() {
        // 30 agents, 12 calls each, reworded requests, long outputs, nothing carried over.
        let mut calls = colleagues();
        for n in 0..30 {
            calls.extend(
                Run {
                    agent: Some(["helper-a", "helper-b", "helper-c"][n % 3]),
                    session: format!("farm-{n}"),
                    start: MONDAY + 8 * MICROS_PER_HOUR + n as i64 * 20 * 60 * MICROS_PER_SECOND,
                    calls: 12,
                    gap_secs: |i| 10 + (i as i64 * 7) % 12,
                    churn: None,
                    ..filler_day("zed")
                }
                .calls(),
            );
        }
        let found = findings(&calls, &[&COLLEAGUES[..], &["zed"]].concat());
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!((found[0].calls, found[0].subject_kind), (360, SubjectKind::User));
        assert!(
            found[0].evidence.contains("30 sessions or agents"),
            "{}",
            found[0].evidence
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// However an honest person's day is shaped — sessions, length, hours, model sizes,
        /// shipped or not — adding it to an organisation never creates a finding for them.
        #[test]
        fn an_honest_day_never_creates_a_finding(
            sessions in proptest::collection::vec(
                (0i64..24 * 7, 3usize..80, 5i64..400, 200u64..9_000, 50u64..2_500, 0u64..40_000),
                1..8,
            ),
            one_shots in proptest::collection::vec((0i64..24 * 7, 100u64..3_000), 0..12),
            shipped in proptest::bool::ANY,
            seed in 0usize..1_000,
        ) {
            let mut calls = colleagues();
            // zed's filler costs $0.50 a call, far above anyone's honest day here.
            calls.extend(filler_day("zed").calls().into_iter().map(|c| Call {
                cost: Nanos(500_000_000),
                ..c
            }));
            let mut honest = Vec::new();
            for (n, (hour, count, gap, input, output, cached)) in sessions.into_iter().enumerate() {
                // A conversation: each turn's context holds the last turn's context and answer.
                let (mut at, mut context) = (MONDAY + hour * MICROS_PER_HOUR, cached);
                for i in 0..count {
                    let sent = input + (i as u64 * 131) % 700;
                    let out = output + (i as u64 * 97) % 400;
                    let text = varied(seed + n * 1_000 + i);
                    honest.push(Call {
                        at: Micros(at),
                        user: "kim".into(),
                        team: None,
                        agent: Some("claude-code".into()),
                        session: Some(format!("kim-{n}")),
                        model: "claude-sonnet-4-5".into(),
                        cost: Nanos(30_000_000),
                        input_tokens: sent,
                        cache_read_tokens: context,
                        output_tokens: out,
                        truncated: false,
                        prompt_simhash: Some(simhash(&text)),
                        completion_simhash: Some(simhash(&prose(seed + i))),
                        completion_compress_permille: Some(compress_permille(&prose(seed + i))),
                    });
                    context += sent + out;
                    at += (gap + (i as i64 * 37) % gap.max(1)) * MICROS_PER_SECOND;
                }
            }
            // Questions asked on their own: short in, long out, each a new chat.
            for (k, (hour, output)) in one_shots.into_iter().enumerate() {
                let text = varied(seed + 50_000 + k);
                honest.push(Call {
                    at: Micros(MONDAY + hour * MICROS_PER_HOUR),
                    user: "kim".into(),
                    session: Some(format!("kim-chat-{k}")),
                    model: "claude-sonnet-4-5".into(),
                    cost: Nanos(20_000_000),
                    input_tokens: 80,
                    output_tokens: output,
                    prompt_simhash: Some(simhash(&text)),
                    ..Call::default()
                });
            }
            calls.extend(honest);
            let value: Vec<&str> = if shipped { vec!["ann", "bob", "cat", "kim"] } else { vec!["ann", "bob", "cat"] };
            let found = findings(&calls, &value);
            proptest::prop_assert!(found.iter().all(|f| f.user != "kim"), "{:#?}", found.iter().filter(|f| f.user == "kim").collect::<Vec<_>>());
            proptest::prop_assert!(found.iter().any(|f| f.user == "zed"), "the filler beside it is still found");
        }
    }
}
