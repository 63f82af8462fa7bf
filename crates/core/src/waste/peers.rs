//! A person's spend against their peers' and their outcomes against their peers' — the value
//! side of waste.
//!
//! Peers are the other people of the person's team (the team most of their calls were
//! attributed to) who spent anything in the window; with fewer than [`WasteRules::min_peers`]
//! of them, everyone else in the organisation. The half of them who deliver most set the bar,
//! so that a team where many burn tokens does not make burning the norm. Against that bar, a
//! person **trails** when their value per dollar is at most 1/[`WasteRules::outcome_fraction`]
//! of its median value over its median spend (everyone with a [`Standing`] trails: it is what
//! near-identical outputs need to count as filler, since templated structured output — test
//! fixtures, records — is near-identical too). One who trails and spent at least
//! [`WasteRules::spend_multiple`] times its median spend is
//!
//! - **behind**: their outcomes do not keep up with their spend (what a day of filler needs,
//!   see `day`). Someone who ships as much as the peers while spending twelve times as much is
//!   behind but not lagging;
//! - **lagging** when, besides, their credited value is at most
//!   1/[`WasteRules::outcome_fraction`] of its median value (the `spend_without_outcomes` signal
//!   of runs and fan-outs).
//!
//! Comparing with peers rather than the whole organisation keeps a platform team's heavy agent
//! users from being judged against a design team's light ones. A named team none of whose
//! people has an outcome is a team whose work is not tracked: nobody in it is judged on value.

use std::collections::{BTreeMap, HashMap};

use super::model::{Ledger, WasteRules};
use crate::money::Nanos;
use crate::outcomes::Milli;

/// Where a person stands against their delivering peers, with the evidence.
#[derive(Debug, Default)]
pub(super) struct Standing {
    /// Spend far above theirs, outcomes far below theirs.
    pub lagging: Option<String>,
    /// Spend far above theirs, with value per dollar at most 1/[`WasteRules::outcome_fraction`]
    /// of theirs (implied by `lagging`).
    pub behind: Option<String>,
}

/// Where each person whose value per dollar trails their delivering peers' stands against them,
/// over the weeks of the `ledger`.
pub(super) fn standings<'a>(ledger: &'a Ledger, rules: &WasteRules) -> HashMap<&'a str, Standing> {
    if ledger.days < rules.min_ledger_days {
        return HashMap::new();
    }
    let mut spend: BTreeMap<&str, Nanos> = BTreeMap::new();
    let mut calls_by_team: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for row in &ledger.spend {
        let spent = spend.entry(&row.user).or_insert(Nanos::ZERO);
        *spent = spent.saturating_add(row.cost);
        *calls_by_team
            .entry(&row.user)
            .or_default()
            .entry(row.team.as_deref().unwrap_or(""))
            .or_default() += row.calls;
    }
    let mut members: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut team_of: HashMap<&str, &str> = HashMap::new();
    for (user, teams) in &calls_by_team {
        let team = home_team(teams);
        team_of.insert(user, team);
        members.entry(team).or_default().push(user);
    }
    let value = |user: &str| ledger.value_of(user);
    let mut standings = HashMap::new();
    for (user, spent) in &spend {
        let team = team_of[user];
        // A named team none of whose people has an outcome is a team whose work is not
        // tracked: nobody in it can be said to lag (not even against the organisation).
        if !team.is_empty() && members[team].iter().all(|p| value(p) == 0) {
            continue;
        }
        let is_peer = |p: &&&str| **p != *user && spend[**p] > Nanos::ZERO;
        let mut peers: Vec<&str> = members[team].iter().filter(is_peer).copied().collect();
        let whom = if peers.len() >= rules.min_peers && !team.is_empty() {
            format!("{} peers in team {team}", peers.len())
        } else {
            peers = spend.keys().filter(is_peer).copied().collect();
            format!("{} people of the organisation", peers.len())
        };
        if peers.len() < rules.min_peers {
            continue;
        }
        // Measured against the half of the peers who deliver most, so that a team where many
        // burn tokens does not make burning the norm.
        peers.sort_by_key(|p| (std::cmp::Reverse(value(p)), *p));
        peers.truncate(peers.len().div_ceil(2));
        let peer_spend = median(peers.iter().map(|p| spend[p].0));
        let peer_value = median(peers.iter().map(|p| value(p) as i64));
        if spent.0 <= 0 || peer_value == 0 {
            continue;
        }
        let (mine, theirs) = (value(user) as i64, peer_value);
        // Value per dollar at most a fraction of theirs: mine / spent ≤ theirs / (peer_spend × k).
        let keeps_up = i128::from(mine) * i128::from(peer_spend) * i128::from(rules.outcome_fraction)
            > i128::from(theirs) * i128::from(spent.0);
        if keeps_up {
            continue;
        }
        let far_above = spent.0 >= peer_spend.saturating_mul(rules.spend_multiple as i64);
        let far_below = mine.saturating_mul(rules.outcome_fraction as i64) <= theirs;
        let spent_note = format!(
            "{} spent in the window, {}× the median of the delivering half of {whom} ({})",
            spent.usd_rounded(2),
            Ratio(spent.0, peer_spend),
            Nanos(peer_spend).usd_rounded(2),
        );
        let outcomes_note = format!(
            "for outcomes worth {} against their median {}",
            points(value(user)),
            points(peer_value as Milli),
        );
        standings.insert(
            *user,
            Standing {
                lagging: (far_above && far_below).then(|| format!("{spent_note}, {outcomes_note}")),
                behind: far_above
                    .then(|| format!("{spent_note}, {outcomes_note}: value per dollar a third of theirs or less")),
            },
        );
    }
    standings
}

/// The team most of a person's calls were attributed to ("" when none names one), from their
/// calls per team.
fn home_team<'a>(calls_by_team: &BTreeMap<&'a str, u64>) -> &'a str {
    calls_by_team
        .iter()
        .max_by_key(|(team, n)| (**n, std::cmp::Reverse(**team)))
        .map_or("", |(team, _)| team)
}

/// A spend multiple to one decimal ("2.8"), from two amounts.
struct Ratio(i64, i64);

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenths = i128::from(self.0) * 10 / i128::from(self.1.max(1));
        write!(f, "{}.{}", tenths / 10, tenths % 10)
    }
}

fn median(values: impl Iterator<Item = i64>) -> i64 {
    let mut values: Vec<i64> = values.collect();
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// Value points, from thousandths.
fn points(value: Milli) -> String {
    format!("{}.{}", value / 1_000, value % 1_000 / 100)
}
