//! Spend far above a person's peers with outcomes far below theirs — the value side of waste.
//!
//! Peers are the other people of the person's team (the team most of their calls were
//! attributed to) who spent anything in the window; with fewer than [`WasteRules::min_peers`]
//! of them, everyone else in the organisation. Of those, the ones who deliver — value at least
//! the peers' median — set the bar, so a team where many burn tokens does not make burning the
//! norm. A person lags when they spent at least [`WasteRules::spend_multiple`] times the
//! delivering peers' median spend while their credited value is at most
//! 1/[`WasteRules::outcome_fraction`] of those peers' median value. Comparing with
//! peers rather than the whole organisation keeps a platform team's heavy agent users from
//! being judged against a design team's light ones; and where the peers have no outcomes at
//! all (a team whose work is not tracked), nobody can be said to lag them.

use std::collections::{BTreeMap, HashMap};

use super::model::{Call, WasteRules};
use crate::money::Nanos;
use crate::outcomes::Milli;

/// The evidence that each lagging person's outcomes lag their peers', by person.
pub(super) fn lagging<'a>(
    by_user: &BTreeMap<&'a str, Vec<&Call>>,
    value_by_user: &HashMap<String, Milli>,
    rules: &WasteRules,
) -> HashMap<&'a str, String> {
    let spend: BTreeMap<&str, Nanos> = by_user
        .iter()
        .map(|(user, calls)| {
            let spent = calls.iter().fold(Nanos::ZERO, |sum, c| sum.saturating_add(c.cost));
            (*user, spent)
        })
        .collect();
    let mut members: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut team_of: HashMap<&str, &str> = HashMap::new();
    for (user, calls) in by_user {
        let team = home_team(calls);
        team_of.insert(user, team);
        members.entry(team).or_default().push(user);
    }
    let value = |user: &str| value_by_user.get(user).copied().unwrap_or(0);
    let mut lagging = HashMap::new();
    for (user, spent) in &spend {
        let team = team_of[user];
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
        // Measured against the peers who deliver (value at least the peers' median), so that
        // a team where many burn tokens does not make burning the norm.
        let typical_value = median(peers.iter().map(|p| value(p) as i64));
        peers.retain(|p| value(p) as i64 >= typical_value);
        let peer_spend = median(peers.iter().map(|p| spend[p].0));
        let peer_value = median(peers.iter().map(|p| value(p) as i64));
        let far_above = spent.0 > 0 && spent.0 >= peer_spend.saturating_mul(rules.spend_multiple as i64);
        let far_below =
            peer_value > 0 && (value(user) as i64).saturating_mul(rules.outcome_fraction as i64) <= peer_value;
        if far_above && far_below {
            lagging.insert(
                *user,
                format!(
                    "{} spent in the window, {}× the median of the delivering half of {whom} ({}), for outcomes worth {} against their median {}",
                    spent.usd_rounded(2),
                    spent.0 / peer_spend.max(1),
                    Nanos(peer_spend).usd_rounded(2),
                    points(value(user)),
                    points(peer_value as Milli),
                ),
            );
        }
    }
    lagging
}

/// The team most of a person's calls were attributed to ("" when none names one).
fn home_team<'a>(calls: &[&'a Call]) -> &'a str {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for call in calls {
        *counts.entry(call.team.as_deref().unwrap_or("")).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(team, n)| (*n, std::cmp::Reverse(*team)))
        .map_or("", |(team, _)| team)
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
