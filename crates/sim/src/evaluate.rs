//! Scoring Goodhart's judgements against a simulated organisation's ground truth.
//!
//! The organisation's usage, GitHub deliveries and self-reported outcomes go through the same
//! public parsers and pure functions the server uses (usage validation and pricing, GitHub
//! payload reading, outcome validation, credits, the board), so what is scored is what a
//! user would see.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use goodhart_core::Nanos;
use goodhart_core::github::{self, Reading};
use goodhart_core::outcomes::{Credit, Fact, Milli, ValueRules, credits};
use goodhart_core::pricing::{CostBreakdown, PriceTable};
use goodhart_core::usage::{IngestPolicy, Source, UsageEvent};
use goodhart_core::value::{Activity, BoardQuery, By, Metric, Row, board};
use goodhart_core::waste::{Call, Detector, Finding, Ledger, WasteRules, detect};

use crate::org::{Org, Persona};

/// What the boards are computed from.
pub struct BoardInputs {
    pub activity: Vec<Activity>,
    pub credits: Vec<Credit>,
}

/// The organisation's usage validated (and so fingerprinted) and priced as the server would.
pub fn priced_usage(org: &Org) -> Vec<(UsageEvent, Nanos)> {
    validated_usage(org)
        .map(|(event, cost)| (event, cost.total()))
        .collect()
}

/// Each usage event validated and priced, with the price's breakdown (what the store keeps).
pub fn validated_usage(org: &Org) -> impl Iterator<Item = (UsageEvent, CostBreakdown)> + '_ {
    let prices = PriceTable::builtin();
    let policy = IngestPolicy {
        store_content: false,
        source: Source::Api,
    };
    #[expect(
        clippy::expect_used,
        reason = "the simulator generates valid, priced usage; a panic is its bug"
    )]
    org.usage.iter().map(move |input| {
        let event = input.clone().validate(policy).expect("simulated usage is valid");
        let cost = prices
            .cost_of(event.provider.as_deref(), &event.model, &event.tokens)
            .expect("simulated models are priced");
        (event, cost)
    })
}

/// Reads the organisation's records as the server would; `usage` is its [`priced_usage`].
pub fn board_inputs(org: &Org, usage: &[(UsageEvent, Nanos)], rules: &ValueRules) -> BoardInputs {
    // (user, team, agent, day) → (cost, tokens), as the store's summary groups it.
    type Key = (String, Option<String>, Option<String>, i64);
    let mut by_day: BTreeMap<Key, (Nanos, u64)> = BTreeMap::new();
    for (event, cost) in usage {
        let a = &event.attribution;
        let day = event.timestamp.floor_to(goodhart_core::time::MICROS_PER_DAY).0;
        let entry = by_day
            .entry((a.user.clone(), a.team.clone(), a.agent.clone(), day))
            .or_default();
        entry.0 = entry.0.saturating_add(*cost);
        entry.1 += event.tokens.total();
    }
    let activity = by_day
        .into_iter()
        .map(|((user, team, agent, day), (cost, tokens))| Activity {
            user,
            team,
            agent,
            day: goodhart_core::Micros(day),
            cost,
            tokens,
        })
        .collect();
    BoardInputs {
        activity,
        credits: credits(&facts(org), rules),
    }
}

/// The organisation's GitHub deliveries and self-reported outcomes read as the server would.
pub fn facts(org: &Org) -> Vec<(String, Fact)> {
    let production = ["production".to_owned()];
    let mut facts: Vec<(String, Fact)> = Vec::new();
    for delivery in &org.deliveries {
        match github::read(delivery.event, &delivery.payload, &production) {
            Ok(Reading::Facts(read)) => facts.extend(read),
            Ok(Reading::Ignored(why)) => panic!("a simulated delivery was ignored: {why}"),
            Err(e) => panic!("a simulated delivery is unreadable: {e}"),
        }
    }
    for outcome in &org.reported {
        #[expect(
            clippy::expect_used,
            reason = "the simulator generates valid outcomes; a panic is its bug"
        )]
        facts.push(outcome.clone().validate().expect("simulated outcomes are valid"));
    }
    facts
}

/// How the value and volume boards fare against the truth on one organisation.
#[derive(Debug, Clone)]
pub struct ValueScore {
    pub seed: u64,
    pub people: usize,
    /// Spearman rank correlation of the value board (value per person-week) with each
    /// person's true value; and of the volume board (tokens) with it.
    pub value_correlation: f64,
    pub volume_correlation: f64,
    /// Board ranks (1 = top) of each persona's people, worst-case order.
    pub value_ranks: BTreeMap<Persona, Vec<usize>>,
    pub volume_ranks: BTreeMap<Persona, Vec<usize>>,
    /// Ranks by true value.
    pub true_ranks: BTreeMap<Persona, Vec<usize>>,
}

fn ranks_by_persona(org: &Org, rows: &[Row]) -> BTreeMap<Persona, Vec<usize>> {
    let mut ranks: BTreeMap<Persona, Vec<usize>> = BTreeMap::new();
    for row in rows {
        if let Some(person) = org.person(&row.subject) {
            ranks.entry(person.persona).or_default().push(row.rank);
        }
    }
    ranks
}

/// Scores the user boards of `[start, end of the simulation)` against the truth.
pub fn score_value(org: &Org, rules: &ValueRules) -> ValueScore {
    let inputs = board_inputs(org, &priced_usage(org), rules);
    let query = |metric| BoardQuery {
        from: org.spec.start,
        to: goodhart_core::Micros(
            org.spec.start.0 + i64::from(org.spec.weeks) * 7 * goodhart_core::time::MICROS_PER_DAY,
        ),
        by: By::User,
        metric,
        min_team_members: 1,
    };
    let value = board(&query(Metric::Value), &inputs.activity, &inputs.credits, &[]);
    let volume = board(&query(Metric::Volume), &inputs.activity, &inputs.credits, &[]);

    let names: Vec<&String> = org.true_value.keys().collect();
    let truth: Vec<f64> = names.iter().map(|n| org.true_value[*n]).collect();
    let column = |rows: &[Row], metric: fn(&Row) -> f64| -> Vec<f64> {
        names
            .iter()
            .map(|n| rows.iter().find(|r| &&r.subject == n).map_or(0.0, metric))
            .collect()
    };
    let mut by_truth: Vec<(f64, &String)> = truth.iter().copied().zip(names.iter().copied()).collect();
    by_truth.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    let mut true_ranks: BTreeMap<Persona, Vec<usize>> = BTreeMap::new();
    for (i, (_, name)) in by_truth.iter().enumerate() {
        if let Some(person) = org.person(name) {
            true_ranks.entry(person.persona).or_default().push(i + 1);
        }
    }
    ValueScore {
        seed: org.spec.seed,
        people: org.people.len(),
        value_correlation: spearman(&column(&value, |r| r.value as f64), &truth),
        volume_correlation: spearman(&column(&volume, |r| r.tokens as f64), &truth),
        value_ranks: ranks_by_persona(org, &value),
        volume_ranks: ranks_by_persona(org, &volume),
        true_ranks,
    }
}

/// Precision and recall of waste findings at the subject (person) level.
#[derive(Debug, Clone, Default)]
pub struct Detection {
    pub flagged: usize,
    pub true_positives: usize,
    pub wasteful: usize,
}

impl Detection {
    pub fn precision(&self) -> f64 {
        if self.flagged == 0 {
            1.0
        } else {
            self.true_positives as f64 / self.flagged as f64
        }
    }

    pub fn recall(&self) -> f64 {
        if self.wasteful == 0 {
            1.0
        } else {
            self.true_positives as f64 / self.wasteful as f64
        }
    }
}

/// How waste detection fares against the truth on one organisation.
#[derive(Debug, Clone)]
pub struct WasteScore {
    pub seed: u64,
    pub people: usize,
    pub calls: usize,
    pub overall: Detection,
    /// Per detector: the people with a finding that detector contributed to.
    pub by_detector: BTreeMap<Detector, Detection>,
    /// People flagged who are not wasteful, with their persona.
    pub false_positives: Vec<(String, Persona)>,
    /// Wasteful people not flagged.
    pub missed: Vec<(String, Persona)>,
    pub findings: Vec<Finding>,
    /// The detection pass alone (parsing and fingerprinting excluded).
    pub detection_time: std::time::Duration,
}

/// What detection sees of each priced event.
pub fn calls(usage: &[(UsageEvent, Nanos)]) -> Vec<Call> {
    usage
        .iter()
        .map(|(event, cost)| Call {
            at: event.timestamp,
            user: event.attribution.user.clone(),
            team: event.attribution.team.clone(),
            agent: event.attribution.agent.clone(),
            session: event.attribution.session.clone(),
            model: event.model.clone(),
            cost: *cost,
            input_tokens: event.tokens.input + event.tokens.cache_write_5m + event.tokens.cache_write_1h,
            cache_read_tokens: event.tokens.cache_read,
            output_tokens: event.tokens.output + event.tokens.reasoning,
            truncated: event
                .finish_reason
                .as_deref()
                .is_some_and(goodhart_core::waste::is_truncation),
            prompt_simhash: event.fingerprints.prompt_simhash,
            completion_simhash: event.fingerprints.completion_simhash,
            completion_compress_permille: event.fingerprints.completion_compress_permille,
        })
        .collect()
}

/// Runs waste detection over the whole simulation and scores it against the personas.
pub fn score_waste(org: &Org, value_rules: &ValueRules, rules: &WasteRules) -> WasteScore {
    let usage = priced_usage(org);
    let inputs = board_inputs(org, &usage, value_rules);
    let mut value_by_user: HashMap<String, Milli> = HashMap::new();
    for credit in &inputs.credits {
        *value_by_user.entry(credit.credited.user.clone()).or_default() += credit.value;
    }
    let calls = calls(&usage);
    let started = std::time::Instant::now();
    let findings = detect(&calls, &Ledger::of_calls(&calls, value_by_user), rules);
    let detection_time = started.elapsed();
    score_findings(org, calls.len(), findings, detection_time)
}

/// Scores findings over the organisation's `calls` calls against the personas.
pub fn score_findings(
    org: &Org,
    calls: usize,
    findings: Vec<Finding>,
    detection_time: std::time::Duration,
) -> WasteScore {
    let wasteful: BTreeSet<&str> = org
        .people
        .iter()
        .filter(|p| p.persona.wasteful())
        .map(|p| p.name.as_str())
        .collect();
    let tally = |flagged: BTreeSet<&str>| Detection {
        flagged: flagged.len(),
        true_positives: flagged.intersection(&wasteful).count(),
        wasteful: wasteful.len(),
    };
    let flagged: BTreeSet<&str> = findings.iter().map(|f| f.user.as_str()).collect();
    let mut by_detector = BTreeMap::new();
    for detector in Detector::ALL {
        let with: BTreeSet<&str> = findings
            .iter()
            .filter(|f| f.signals.contains(&detector))
            .map(|f| f.user.as_str())
            .collect();
        by_detector.insert(detector, tally(with));
    }
    #[expect(clippy::expect_used, reason = "findings name only people the simulator made")]
    let persona = |name: &str| org.person(name).map(|p| p.persona).expect("a simulated person");
    WasteScore {
        seed: org.spec.seed,
        people: org.people.len(),
        calls,
        false_positives: flagged
            .difference(&wasteful)
            .map(|n| ((*n).to_owned(), persona(n)))
            .collect(),
        missed: wasteful
            .difference(&flagged)
            .map(|n| ((*n).to_owned(), persona(n)))
            .collect(),
        overall: tally(flagged.clone()),
        by_detector,
        findings,
        detection_time,
    }
}

/// Ranks with ties given their average rank (1-based).
fn fractional_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = average;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rank correlation (Pearson's over fractional ranks); 0 when either side is flat.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (fractional_ranks(a), fractional_ranks(b));
    let n = ra.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_known_orders() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
        assert_eq!(fractional_ranks(&[5.0, 1.0, 5.0]), vec![2.5, 1.0, 2.5]);
    }
}
