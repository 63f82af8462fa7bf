//! The ROI report: what AI spend bought in a window, per team and for the organisation.
//!
//! Each row has the spend (and the part of it flagged as waste), the outcomes that earned
//! value — verified by GitHub or self-reported, counted once each — their value in normalised
//! deployments, and the engineer-hours they are estimated to have saved, from which follow
//! the cost per outcome, per normalised deployment and per hour saved.
//!
//! Hours follow value. Each kind of outcome has an estimate per outcome
//! ([`KindRule::minutes_saved`](crate::outcomes::KindRule)); a pull request counted at a
//! quarter (a tiny change) saves a quarter of it; a deployment's hours are shared among the
//! pull requests it shipped in proportion to their credit; a self-reported outcome's hours are
//! scaled like its value (the reporter's weight, the discount, the weekly cap). Outcomes that
//! earned nothing (unverified, reverted, re-deployed) save nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::Micros;
use crate::budgets::{Window, forecast};
use crate::money::Nanos;
use crate::outcomes::{Credit, Milli, Note, OutcomeKind, ValueRules};
use crate::value::{Activity, HomeTeams};
use crate::waste::Finding;

/// One row of the report: a team (`team: None` for people without one) or the organisation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoiRow {
    pub team: Option<String>,
    /// People with usage or outcomes in the window.
    pub people: u64,
    pub cost: Nanos,
    /// Spend flagged as waste (part of `cost`).
    pub waste: Nanos,
    /// Outcomes that earned value, by kind: verified by GitHub, and self-reported.
    pub verified: BTreeMap<OutcomeKind, u64>,
    pub self_reported: BTreeMap<OutcomeKind, u64>,
    /// Value in thousandths of a normalised deployment.
    pub value: Milli,
    pub minutes_saved: u64,
}

impl RoiRow {
    pub fn outcomes(&self) -> u64 {
        self.verified.values().chain(self.self_reported.values()).sum()
    }

    pub fn cost_per_outcome(&self) -> Option<Nanos> {
        per(self.cost, self.outcomes(), 1)
    }

    pub fn cost_per_normalised_deployment(&self) -> Option<Nanos> {
        per(self.cost, self.value, 1_000)
    }

    pub fn cost_per_hour_saved(&self) -> Option<Nanos> {
        per(self.cost, self.minutes_saved, 60)
    }
}

/// `cost` per `count / unit` of something, rounded to the nearest nano-dollar; `None` for none.
fn per(cost: Nanos, count: u64, unit: u64) -> Option<Nanos> {
    (count > 0).then(|| {
        let scaled = i128::from(cost.0) * i128::from(unit);
        let count = i128::from(count);
        Nanos(((scaled + count / 2) / count).clamp(0, i128::from(i64::MAX)) as i64)
    })
}

/// The report: the organisation, then each team by spend (largest first, ties by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roi {
    pub from: Micros,
    pub to: Micros,
    pub org: RoiRow,
    pub teams: Vec<RoiRow>,
    /// The organisation's spend projected to `to`, for a window that has not ended at `now`.
    pub forecast: Option<Nanos>,
}

#[derive(Default)]
struct Tally {
    people: BTreeSet<String>,
    cost: Nanos,
    waste: Nanos,
    outcomes: BTreeSet<(OutcomeKind, bool, String)>,
    value: Milli,
    /// Thousandths of a minute, so shares of a deployment add up exactly.
    milli_minutes: u64,
}

impl Tally {
    fn row(self, team: Option<String>) -> RoiRow {
        let mut row = RoiRow {
            team,
            people: self.people.len() as u64,
            cost: self.cost,
            waste: self.waste,
            value: self.value,
            minutes_saved: self.milli_minutes / 1_000,
            ..RoiRow::default()
        };
        for (kind, self_reported, _) in self.outcomes {
            let counts = if self_reported {
                &mut row.self_reported
            } else {
                &mut row.verified
            };
            *counts.entry(kind).or_default() += 1;
        }
        row
    }
}

/// The engineer-minutes a credit is estimated to save, in thousandths: its kind's estimate
/// times the share of one whole outcome of that kind the credit stands for.
fn milli_minutes_saved(credit: &Credit, rules: &ValueRules, deployment_value: &HashMap<&str, Milli>) -> u64 {
    let whole = if credit.notes.contains(&Note::SelfReported) {
        rules.kind(credit.kind).weight
    } else {
        match credit.kind {
            OutcomeKind::PrMerged => rules.merge,
            OutcomeKind::Deployment => deployment_value.get(credit.fact_id.as_str()).copied().unwrap_or(0),
            _ => 0,
        }
    };
    if whole == 0 {
        return 0;
    }
    let minutes = u128::from(rules.kind(credit.kind).minutes_saved);
    (u128::from(credit.value) * minutes * 1_000 / u128::from(whole)).min(u128::from(u64::MAX)) as u64
}

/// The ROI of `[from, to)`: `activity` is usage by person and day, `credits` every credit
/// (those outside the window are skipped), `waste` the findings that count as waste (each in
/// the window it started in).
pub fn roi(
    from: Micros,
    to: Micros,
    now: Micros,
    activity: &[Activity],
    credits: &[Credit],
    rules: &ValueRules,
    waste: &[Finding],
) -> Roi {
    let activity: Vec<&Activity> = activity.iter().filter(|a| a.day >= from && a.day < to).collect();
    let credits: Vec<&Credit> = credits
        .iter()
        .filter(|c| c.at >= from && c.at < to && c.value > 0)
        .collect();
    let home_teams = HomeTeams::new(activity.iter().copied());
    let mut deployment_value: HashMap<&str, Milli> = HashMap::new();
    for c in credits.iter().filter(|c| c.kind == OutcomeKind::Deployment) {
        *deployment_value.entry(c.fact_id.as_str()).or_default() += c.value;
    }

    let mut org = Tally::default();
    let mut teams: BTreeMap<Option<String>, Tally> = BTreeMap::new();
    for a in &activity {
        let team = home_teams.team_of(&a.user, a.team.as_ref());
        for tally in [&mut org, teams.entry(team).or_default()] {
            tally.people.insert(a.user.clone());
            tally.cost = tally.cost.saturating_add(a.cost);
        }
    }
    for finding in waste.iter().filter(|f| f.from >= from && f.from < to) {
        let team = home_teams.team_of(&finding.user, None);
        for tally in [&mut org, teams.entry(team).or_default()] {
            tally.waste = tally.waste.saturating_add(finding.wasted);
        }
    }
    for c in credits {
        let who = &c.credited;
        let team = home_teams.team_of(&who.user, who.team.as_ref());
        let outcome = (c.kind, c.notes.contains(&Note::SelfReported), c.fact_id.clone());
        let milli_minutes = milli_minutes_saved(c, rules, &deployment_value);
        for tally in [&mut org, teams.entry(team).or_default()] {
            tally.people.insert(who.user.clone());
            tally.outcomes.insert(outcome.clone());
            tally.value = tally.value.saturating_add(c.value);
            tally.milli_minutes = tally.milli_minutes.saturating_add(milli_minutes);
        }
    }

    let mut teams: Vec<RoiRow> = teams.into_iter().map(|(team, tally)| tally.row(team)).collect();
    teams.sort_by(|a, b| b.cost.cmp(&a.cost).then_with(|| a.team.cmp(&b.team)));
    let org = org.row(None);
    let forecast = (now < to)
        .then(|| {
            forecast(
                org.cost,
                Window {
                    start: from,
                    end: Some(to),
                },
                now,
            )
        })
        .flatten();
    Roi {
        from,
        to,
        org,
        teams,
        forecast,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcomes::{Approval, Credited, Deployment, Fact, PullRequest, Reported, credits};
    use crate::time::MICROS_PER_DAY;

    const START: i64 = 20_000 * MICROS_PER_DAY;

    fn at(day: i64) -> Micros {
        Micros(START + day * MICROS_PER_DAY + 1)
    }

    fn usage(user: &str, team: Option<&str>, day: i64, dollars: i64) -> Activity {
        Activity {
            user: user.into(),
            team: team.map(Into::into),
            agent: None,
            day: Micros(START + day * MICROS_PER_DAY),
            cost: Nanos(dollars * 1_000_000_000),
            tokens: 1_000,
        }
    }

    fn who(user: &str) -> Credited {
        Credited {
            user: user.into(),
            ..Credited::default()
        }
    }

    fn merged(number: u64, author: &str, lines: u64, day: i64) -> Vec<(String, Fact)> {
        vec![
            (
                format!("review:{number}"),
                Fact::Approval(Approval {
                    repo: "acme/shop".into(),
                    number,
                    reviewer: "reviewer".into(),
                    at: at(day),
                }),
            ),
            (
                format!("pr:{number}"),
                Fact::PullRequest(PullRequest {
                    repo: "acme/shop".into(),
                    number,
                    author: author.into(),
                    merged_at: Micros(at(day).0 + 1),
                    merge_sha: Some(format!("sha{number}")),
                    changed_lines: lines,
                    reverts: None,
                    credited: who(author),
                }),
            ),
        ]
    }

    fn deployed(id: &str, sha: &str, day: i64) -> (String, Fact) {
        (
            id.into(),
            Fact::Deployment(Deployment {
                repo: "acme/shop".into(),
                sha: sha.into(),
                environment: "production".into(),
                at: Micros(at(day).0 + 2),
                credited: who("releaser"),
            }),
        )
    }

    fn report(facts: Vec<(String, Fact)>, activity: &[Activity], waste: &[Finding]) -> Roi {
        let rules = ValueRules::default();
        roi(
            Micros(START),
            Micros(START + 28 * MICROS_PER_DAY),
            Micros(START + 40 * MICROS_PER_DAY),
            activity,
            &credits(&facts, &rules),
            &rules,
            waste,
        )
    }

    #[test]
    fn teams_get_their_spend_outcomes_and_hours() {
        let mut facts = merged(1, "ann", 200, 1);
        facts.extend(merged(2, "bob", 20, 2));
        facts.push(deployed("deploy:1", "sha2", 3));
        facts.push((
            "ticket:1".into(),
            Fact::Reported(Reported {
                kind: OutcomeKind::TicketResolved,
                at: at(4),
                weight: 1_000,
                reference: Some("PAY-1".into()),
                credited: who("cat"),
            }),
        ));
        let activity = [
            usage("ann", Some("payments"), 1, 30),
            usage("bob", Some("payments"), 2, 10),
            usage("cat", Some("search"), 2, 5),
            usage("dan", Some("search"), 3, 55),
        ];
        let roi = report(
            facts,
            &activity,
            &[
                Finding::sample("dan", None, at(5), Nanos(50_000_000_000)),
                Finding::sample("dan", None, Micros(START - 1), Nanos(1_000_000_000)),
            ],
        );

        let payments = &roi.teams[1];
        assert_eq!(payments.team.as_deref(), Some("payments"));
        assert_eq!(payments.cost, Nanos(40_000_000_000));
        assert_eq!(payments.verified[&OutcomeKind::PrMerged], 2);
        assert_eq!(
            payments.verified[&OutcomeKind::Deployment],
            1,
            "one deployment, shipping both"
        );
        // ann: a whole merge (180 min) + her 2/3 of the deployment's value (40 of 60 min);
        // bob: a half-size merge (90 min) + 1/3 of the deployment (20 min).
        assert_eq!(payments.minutes_saved, 180 + 40 + 90 + 20);
        assert_eq!(payments.value, 500 + 500 + 250 + 250);
        assert_eq!(payments.cost_per_outcome(), Some(Nanos(13_333_333_333)));
        assert_eq!(
            payments.cost_per_hour_saved(),
            Some(Nanos(7_272_727_273)),
            "rounded to the nearest nano-dollar"
        );

        let search = &roi.teams[0];
        assert_eq!(search.team.as_deref(), Some("search"), "largest spend first");
        assert!(search.verified.is_empty());
        assert_eq!(search.self_reported[&OutcomeKind::TicketResolved], 1);
        // A ticket's 120 minutes at the self-report discount (½).
        assert_eq!(search.minutes_saved, 60);
        assert_eq!(search.waste, Nanos(50_000_000_000));

        assert_eq!(roi.org.cost, Nanos(100_000_000_000));
        assert_eq!(roi.org.outcomes(), 4);
        assert_eq!(roi.org.people, 4);
        assert_eq!(roi.org.minutes_saved, 330 + 60);
        assert_eq!(roi.org.value, payments.value + search.value);
        assert_eq!(roi.forecast, None, "the window has ended");
    }

    #[test]
    fn outcomes_that_earn_nothing_save_nothing() {
        let mut facts = merged(1, "ann", 200, 1);
        facts.retain(|(id, _)| !id.starts_with("review"));
        facts.push(deployed("deploy:1", "sha1", 2));
        facts.push(deployed("deploy:2", "sha1", 3));
        let roi = report(facts, &[usage("ann", Some("payments"), 1, 10)], &[]);
        assert_eq!(roi.org.outcomes(), 0);
        assert_eq!(roi.org.minutes_saved, 0);
        assert_eq!(roi.org.cost_per_outcome(), None);
        assert_eq!(roi.org.cost_per_hour_saved(), None);
    }

    #[test]
    fn an_open_window_is_forecast() {
        let rules = ValueRules::default();
        let activity = [usage("ann", None, 1, 70)];
        let roi = roi(
            Micros(START),
            Micros(START + 28 * MICROS_PER_DAY),
            Micros(START + 7 * MICROS_PER_DAY),
            &activity,
            &[],
            &rules,
            &[],
        );
        assert_eq!(roi.forecast, Some(Nanos(280_000_000_000)));
        assert_eq!(roi.teams.len(), 1);
        assert_eq!(roi.teams[0].team, None, "people without a team are a row of their own");
    }

    proptest::proptest! {
        #[test]
        fn the_organisation_is_the_sum_of_its_teams(
            prs in proptest::collection::vec((0usize..4, 1u64..400, 0i64..27, proptest::bool::ANY), 0..12),
            deploys in proptest::collection::vec((0u64..12, 0i64..27), 0..6),
            spend in proptest::collection::vec((0usize..4, 0i64..27, 0i64..100), 0..20),
        ) {
            const PEOPLE: [(&str, Option<&str>); 4] =
                [("ann", Some("payments")), ("bob", Some("payments")), ("cat", Some("search")), ("dan", None)];
            let mut facts = Vec::new();
            for (n, (who, lines, day, reviewed)) in prs.into_iter().enumerate() {
                let mut pr = merged(n as u64, PEOPLE[who].0, lines, day);
                if !reviewed {
                    pr.remove(0);
                }
                facts.extend(pr);
            }
            for (i, (sha, day)) in deploys.into_iter().enumerate() {
                facts.push(deployed(&format!("deploy:{i}"), &format!("sha{sha}"), day));
            }
            let activity: Vec<Activity> =
                spend.into_iter().map(|(who, day, dollars)| usage(PEOPLE[who].0, PEOPLE[who].1, day, dollars)).collect();
            let roi = report(facts.clone(), &activity, &[]);
            let sum = |f: fn(&RoiRow) -> u64| roi.teams.iter().map(f).sum::<u64>();
            proptest::prop_assert_eq!(roi.org.cost.0, roi.teams.iter().map(|t| t.cost.0).sum::<i64>());
            proptest::prop_assert_eq!(roi.org.value, sum(|t| t.value));
            let team_minutes = sum(|t| t.minutes_saved);
            proptest::prop_assert!(roi.org.minutes_saved >= team_minutes);
            proptest::prop_assert!(roi.org.minutes_saved <= team_minutes + roi.teams.len() as u64);
            proptest::prop_assert!(roi.org.outcomes() <= sum(RoiRow::outcomes));
            // Every outcome saves at most its kind's whole estimate.
            let most = roi.org.verified.get(&OutcomeKind::PrMerged).copied().unwrap_or(0) * 180
                + roi.org.verified.get(&OutcomeKind::Deployment).copied().unwrap_or(0) * 60;
            proptest::prop_assert!(roi.org.minutes_saved <= most);
            // Repeating every fact changes nothing.
            let mut twice = facts.clone();
            twice.extend(facts);
            proptest::prop_assert_eq!(report(twice, &activity, &[]), roi);
        }
    }
}
