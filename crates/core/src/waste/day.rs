//! Filler over a day: one person's calls that no conversation builds on, each generating far
//! more than it was given, from a prompt that keeps coming back — judged over the whole UTC day
//! rather than per run, so hourly session churn, short-lived agents and spreading the calls
//! over keys or agents do not hide them.
//!
//! Three properties of a call, each about what was asked and answered:
//!
//! - **independent**: it does not continue a conversation — its context is not the previous
//!   call's context plus (at least half of) the previous answer. Real work builds on answers:
//!   an agent's next turn carries the last one's output and tool results, a chat resends the
//!   history, a cached session's cache reads grow. Filler throws each answer away;
//! - **output-heavy**: it generated at least [`WasteRules::output_multiple`] times what was
//!   sent new (uncached input and cache writes) and at least [`WasteRules::min_heavy_output`]
//!   tokens. Engineering work reads more than it writes: code, diffs, logs, tool results;
//! - **recurring**: its prompt is near-identical (SimHash within [`WasteRules::similar_bits`])
//!   to at least two other prompts of the person's day, however reworded or reordered.
//!
//! A call is filler-like when it is independent, output-heavy, and either recurring or by a
//! person whose outcomes lag their peers' ([`super::peers`]) — three signals, never one. A day
//! with at least [`WasteRules::min_filler_calls`] such calls making at least
//! [`WasteRules::filler_day_share`] of the day's calls is judged like a run. Honest work that
//! shares one or two of the properties does not get there: a batch job or a CI review agent is
//! independent and recurring but reads more than it writes; a technical writer's doc generation
//! is independent and recurring but its outputs are about the size of the code it documents; a
//! one-shot question generates more than it was given but does not recur and is outweighed by
//! the day's conversational work.

use std::collections::BTreeMap;

use super::model::{Call, Detector, WasteRules, permille};
use crate::fingerprint::simhash_similarity;
use crate::time::MICROS_PER_DAY;

/// At most this many of a day's prompts are compared with each prompt (evenly spread), which
/// bounds a day's cost for people making thousands of calls.
const TEMPLATE_SAMPLE: usize = 128;

/// Whether each call (sorted by session, agent, time) continues the call before it: same
/// session and agent, within a run's gap, and a context that grew by at least half of the
/// previous answer.
pub(super) fn continued(calls: &[&Call], rules: &WasteRules) -> Vec<bool> {
    let mut continued = vec![false; calls.len()];
    for i in 1..calls.len() {
        let (previous, call) = (calls[i - 1], calls[i]);
        continued[i] = previous.session == call.session
            && previous.agent == call.agent
            && call.at.0 - previous.at.0 <= rules.run_gap
            && call.context_tokens() > previous.context_tokens()
            && call.context_tokens() - previous.context_tokens() >= previous.output_tokens / 2;
    }
    continued
}

/// Whether a call generated far more than it was sent.
pub(super) fn output_heavy(call: &Call, rules: &WasteRules) -> bool {
    call.output_tokens >= rules.min_heavy_output
        && call.output_tokens >= call.input_tokens.saturating_mul(rules.output_multiple)
}

/// Whether each of `hashes` has at least two near-identical others among them.
fn recurring(hashes: &[u64], similar_bits: u32) -> Vec<bool> {
    let step = hashes.len().div_ceil(TEMPLATE_SAMPLE).max(1);
    hashes
        .iter()
        .enumerate()
        .map(|(i, hash)| {
            hashes
                .iter()
                .enumerate()
                .step_by(step)
                .filter(|(j, other)| *j != i && 64 - simhash_similarity(*hash, **other) <= similar_bits)
                .take(2)
                .count()
                == 2
        })
        .collect()
}

/// A day of filler-like calls: which calls, and the signals they show.
pub(super) struct FillerDay {
    pub calls: Vec<usize>,
    pub signals: Vec<(Detector, String)>,
}

/// The person's days with enough filler-like calls. `calls` are one person's, sorted by
/// session, agent and time; calls already in a finding (`covered`) are not counted again;
/// `behind` is the evidence that the person's outcomes do not keep up with their spend, if so.
pub(super) fn filler_days(
    calls: &[&Call],
    continued: &[bool],
    covered: &[bool],
    behind: Option<&str>,
    rules: &WasteRules,
) -> Vec<FillerDay> {
    let mut days: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, call) in calls.iter().enumerate() {
        days.entry(call.at.0.div_euclid(MICROS_PER_DAY)).or_default().push(i);
    }
    let mut found = Vec::new();
    for members in days.values() {
        if members.len() < rules.min_filler_calls {
            continue;
        }
        let fingerprinted: Vec<(usize, u64)> = members
            .iter()
            .filter_map(|&i| calls[i].prompt_simhash.map(|h| (i, h)))
            .collect();
        let hashes: Vec<u64> = fingerprinted.iter().map(|(_, h)| *h).collect();
        let mut is_recurring = vec![false; calls.len()];
        for ((i, _), recurs) in fingerprinted.iter().zip(recurring(&hashes, rules.similar_bits)) {
            is_recurring[*i] = recurs;
        }
        let filler: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| !covered[i] && !continued[i] && output_heavy(calls[i], rules) && behind.is_some())
            .collect();
        if filler.len() < rules.min_filler_calls || permille(filler.len(), members.len()) < rules.filler_day_share {
            continue;
        }
        found.push(FillerDay {
            signals: day_signals(calls, &filler, members.len(), &is_recurring, behind),
            calls: filler,
        });
    }
    found
}

fn day_signals(
    calls: &[&Call],
    filler: &[usize],
    day_calls: usize,
    is_recurring: &[bool],
    behind: Option<&str>,
) -> Vec<(Detector, String)> {
    let mut signals = Vec::new();
    let recurring = filler.iter().filter(|&&i| is_recurring[i]).count();
    if recurring * 2 >= filler.len() {
        signals.push((
            Detector::RepeatedPrompts,
            format!(
                "{recurring} of those prompts near-identical to at least two others of the day (reworded or reordered)"
            ),
        ));
    }
    let sessions = distinct(filler.iter().map(|&i| (&calls[i].session, &calls[i].agent)));
    signals.push((
        Detector::IndependentCalls,
        format!(
            "{} of {day_calls} calls that day build on no earlier answer (no context carried over; {sessions} sessions or agents)",
            filler.len()
        ),
    ));
    let median = |tokens: fn(&Call) -> u64| {
        let mut values: Vec<u64> = filler.iter().map(|&i| tokens(calls[i])).collect();
        values.sort_unstable();
        values[values.len() / 2]
    };
    signals.push((
        Detector::OutputHeavy,
        format!(
            "each generated far more than it was sent (median {} tokens out for {} sent new)",
            median(|c| c.output_tokens),
            median(|c| c.input_tokens)
        ),
    ));
    if let Some(note) = behind {
        signals.push((Detector::SpendWithoutOutcomes, note.to_owned()));
    }
    signals
}

fn distinct<T: Ord>(items: impl Iterator<Item = T>) -> usize {
    items.collect::<std::collections::BTreeSet<T>>().len()
}
