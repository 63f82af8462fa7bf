//! Filler over a day: one person's calls that no conversation builds on, each generating far
//! more than it was given, by someone whose outcomes do not keep up with their spend — judged
//! over the whole UTC day rather than per run, so hourly session churn, short-lived agents and
//! spreading the calls over keys or agents do not hide them.
//!
//! Properties of a call, about what was asked and answered:
//!
//! - **independent**: it does not continue a conversation — its context is not the previous
//!   call's context plus (at least half of) the previous answer. Real work builds on answers:
//!   an agent's next turn carries the last one's output and tool results, a chat resends the
//!   history, a cached session's cache reads grow. Filler throws each answer away;
//! - **output-heavy**: it generated at least [`WasteRules::output_multiple`] times what was
//!   sent new (uncached input and cache writes) and at least [`WasteRules::min_heavy_output`]
//!   tokens. Engineering work reads more than it writes: code, diffs, logs, tool results;
//! - **recurring** (corroboration only): its prompt is near-identical (SimHash within
//!   [`WasteRules::similar_bits`]) to at least two other prompts of the person's day, however
//!   reworded or reordered.
//!
//! A call is filler-like when it is independent and output-heavy, by a person whose value per
//! dollar is far below their delivering peers' at several times their spend (`peers`, *behind*)
//! — three signals, never one. A day with at least [`WasteRules::min_filler_calls`] such calls
//! making at least [`WasteRules::filler_day_share`] of the day's calls is judged like a run.
//! Honest work that shares some of this does not get there: a batch job or a CI review agent is
//! independent but reads more than it writes; a technical writer, a translator or a content
//! writer generates from templates in fresh calls, but ships in proportion to what it costs; a
//! one-shot question generates more than it was given but is outweighed by the day's
//! conversational work.

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
    let Some(behind) = behind else {
        return Vec::new();
    };
    let mut days: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, call) in calls.iter().enumerate() {
        days.entry(call.at.0.div_euclid(MICROS_PER_DAY)).or_default().push(i);
    }
    let mut found = Vec::new();
    for members in days.values() {
        let filler: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| !covered[i] && !continued[i] && output_heavy(calls[i], rules))
            .collect();
        if filler.len() < rules.min_filler_calls || permille(filler.len(), members.len()) < rules.filler_day_share {
            continue;
        }
        let (fingerprinted, hashes): (Vec<usize>, Vec<u64>) = members
            .iter()
            .filter_map(|&i| calls[i].prompt_simhash.map(|h| (i, h)))
            .unzip();
        let recurring: Vec<usize> = fingerprinted
            .into_iter()
            .zip(recurring(&hashes, rules.similar_bits))
            .filter_map(|(i, recurs)| recurs.then_some(i))
            .collect();
        // Both lists are in `members`' order, which is ascending.
        let recurring_filler = filler.iter().filter(|i| recurring.binary_search(i).is_ok()).count();
        found.push(FillerDay {
            signals: day_signals(calls, &filler, members.len(), recurring_filler, behind),
            calls: filler,
        });
    }
    found
}

fn day_signals(
    calls: &[&Call],
    filler: &[usize],
    day_calls: usize,
    recurring: usize,
    behind: &str,
) -> Vec<(Detector, String)> {
    let mut signals = Vec::new();
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
    signals.push((Detector::SpendWithoutOutcomes, behind.to_owned()));
    signals
}

fn distinct<T: Ord>(items: impl Iterator<Item = T>) -> usize {
    items.collect::<std::collections::BTreeSet<T>>().len()
}
