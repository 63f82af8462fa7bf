//! The value leaderboard: outcomes per active person-week and per dollar, never volume.
//!
//! A subject's **value** is the value of the outcomes credited to it in the window
//! ([`crate::outcomes::credits`]) divided by its active person-weeks — the (person, week)
//! pairs in which it used AI or delivered something (for agents, agent-weeks). Its
//! **efficiency** is that value per dollar spent (spend below $1 counts as $1, so that a
//! few cents do not make anyone infinitely efficient). Spending more without delivering can
//! therefore only lower a subject's value and efficiency. The **volume** metric is the old
//! token ranking, kept only to show side by side why it misleads.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::Micros;
use crate::money::Nanos;
use crate::outcomes::{Credit, Milli, week_of};
use crate::waste::{Finding, SubjectKind};

crate::named_enum! {
    /// What a board ranks.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum By {
        User = "user",
        Team = "team",
        Agent = "agent",
    }
}

crate::named_enum! {
    /// What a board ranks by.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Metric {
        Value = "value",
        Efficiency = "efficiency",
        Volume = "volume",
    }
}

crate::named_enum! {
    /// Why a reader of a board row should look twice.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Flag {
        /// Spend without any outcome.
        NoOutcomes = "no_outcomes",
        /// Outcomes that earned nothing.
        UnverifiedOutcomes = "unverified_outcomes",
        /// Self-reported outcomes among those that earned value.
        SelfReported = "self_reported",
    }
}

impl PartialEq<&str> for Flag {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Metric {
    /// What the metric measures, as shown with every board.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Value => "value: verified outcomes per active person-week (normalised deployments)",
            Metric::Efficiency => "efficiency: verified outcomes per dollar spent",
            Metric::Volume => "volume: tokens consumed — this measures consumption, not value",
        }
    }
}

/// Usage of one person (with one team and agent) on one day, as the store sums it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub user: String,
    pub team: Option<String>,
    pub agent: Option<String>,
    pub day: Micros,
    pub cost: Nanos,
    pub tokens: u64,
}

/// A board's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardQuery {
    pub from: Micros,
    pub to: Micros,
    pub by: By,
    pub metric: Metric,
    /// Teams with fewer members active in the window are left out of team boards.
    pub min_team_members: usize,
}

/// One ranked subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub subject: String,
    pub rank: usize,
    /// Value per active person-week, in thousandths of a normalised deployment.
    pub value: Milli,
    /// Value in the window, in thousandths.
    pub value_total: Milli,
    pub person_weeks: u64,
    /// Value per dollar, in thousandths.
    pub efficiency: Milli,
    pub cost: Nanos,
    pub tokens: u64,
    /// Outcomes that earned value.
    pub outcomes: u64,
    pub waste: Nanos,
    /// Why a reader should look twice.
    pub flags: Vec<Flag>,
}

#[derive(Default)]
struct Tally {
    weeks: BTreeSet<(String, i64)>,
    members: BTreeSet<String>,
    cost: Nanos,
    tokens: u64,
    value: Milli,
    outcomes: u64,
    zero_outcomes: u64,
    self_reported: u64,
}

/// Each person's home team — the team they spent most with — for records that name none.
pub struct HomeTeams<'a>(HashMap<&'a str, BTreeMap<&'a str, Nanos>>);

impl<'a> HomeTeams<'a> {
    pub fn new(activity: impl Iterator<Item = &'a Activity>) -> HomeTeams<'a> {
        let mut spend: HashMap<&str, BTreeMap<&str, Nanos>> = HashMap::new();
        for a in activity {
            if let Some(team) = &a.team {
                let spent = spend.entry(&a.user).or_default().entry(team).or_default();
                *spent = spent.saturating_add(a.cost);
            }
        }
        HomeTeams(spend)
    }

    /// `named` if a record names a team, else `user`'s home team (ties to the first by name).
    pub fn team_of(&self, user: &str, named: Option<&String>) -> Option<String> {
        named.cloned().or_else(|| {
            self.0.get(user).and_then(|teams| {
                teams
                    .iter()
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(team, _)| (*team).to_owned())
            })
        })
    }
}

/// The ranked board: rows for every subject with usage or outcomes in the window.
/// `waste` is the findings that count as waste (their spend is in the cost and earns nothing);
/// each counts in the window it started in.
pub fn board(query: &BoardQuery, activity: &[Activity], credits: &[Credit], waste: &[Finding]) -> Vec<Row> {
    let in_window = |at: Micros| at >= query.from && at < query.to;
    let home_teams = HomeTeams::new(activity.iter().filter(|a| in_window(a.day)));
    let subject_of = |user: &str, team: Option<&String>, agent: Option<&String>| -> Option<String> {
        match query.by {
            By::User => Some(user.to_owned()),
            By::Team => home_teams.team_of(user, team),
            By::Agent => agent.cloned(),
        }
    };
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for a in activity.iter().filter(|a| in_window(a.day)) {
        let Some(subject) = subject_of(&a.user, a.team.as_ref(), a.agent.as_ref()) else {
            continue;
        };
        let tally = tallies.entry(subject).or_default();
        let who = if query.by == By::Agent {
            a.agent.clone()
        } else {
            Some(a.user.clone())
        };
        tally.weeks.insert((who.unwrap_or_default(), week_of(a.day)));
        tally.members.insert(a.user.clone());
        tally.cost = tally.cost.saturating_add(a.cost);
        tally.tokens = tally.tokens.saturating_add(a.tokens);
    }
    for c in credits.iter().filter(|c| in_window(c.at)) {
        let who = &c.credited;
        let Some(subject) = subject_of(&who.user, who.team.as_ref(), who.agent.as_ref()) else {
            continue;
        };
        let tally = tallies.entry(subject).or_default();
        let person = if query.by == By::Agent {
            who.agent.clone()
        } else {
            Some(who.user.clone())
        };
        tally.weeks.insert((person.unwrap_or_default(), week_of(c.at)));
        tally.members.insert(who.user.clone());
        tally.value = tally.value.saturating_add(c.value);
        if c.value > 0 {
            tally.outcomes += 1;
        } else {
            tally.zero_outcomes += 1;
        }
        if c.notes.contains(&crate::outcomes::Note::SelfReported) {
            tally.self_reported += 1;
        }
    }
    let mut wasted: HashMap<String, Nanos> = HashMap::new();
    for finding in waste.iter().filter(|f| in_window(f.from)) {
        let subject = match query.by {
            By::User => Some(finding.user.clone()),
            By::Team => home_teams.team_of(&finding.user, None),
            By::Agent => (finding.subject_kind == SubjectKind::Agent).then(|| finding.subject.clone()),
        };
        if let Some(subject) = subject {
            let sum = wasted.entry(subject).or_default();
            *sum = sum.saturating_add(finding.wasted);
        }
    }
    let mut rows: Vec<Row> = tallies
        .into_iter()
        .filter(|(_, t)| query.by != By::Team || t.members.len() >= query.min_team_members)
        .map(|(subject, t)| {
            let person_weeks = t.weeks.len().max(1) as u64;
            let dollars_floor = Nanos(1_000_000_000).max(t.cost);
            let efficiency = (u128::from(t.value) * 1_000_000_000 / dollars_floor.0.max(1) as u128) as Milli;
            let mut flags = Vec::new();
            if t.outcomes == 0 && t.cost > Nanos::ZERO {
                flags.push(Flag::NoOutcomes);
            }
            if t.zero_outcomes > 0 {
                flags.push(Flag::UnverifiedOutcomes);
            }
            if t.self_reported > 0 {
                flags.push(Flag::SelfReported);
            }
            Row {
                waste: wasted.get(&subject).copied().unwrap_or(Nanos::ZERO),
                subject,
                rank: 0,
                value: t.value / person_weeks,
                value_total: t.value,
                person_weeks,
                efficiency,
                cost: t.cost,
                tokens: t.tokens,
                outcomes: t.outcomes,
                flags,
            }
        })
        .collect();
    let key = |row: &Row| match query.metric {
        Metric::Value => (row.value, row.efficiency),
        Metric::Efficiency => (row.efficiency, row.value),
        Metric::Volume => (row.tokens, 0),
    };
    rows.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| a.subject.cmp(&b.subject)));
    for (i, row) in rows.iter_mut().enumerate() {
        row.rank = i + 1;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcomes::{
        Approval, Credited, Deployment, Fact, OutcomeKind, PullRequest, Reported, ValueRules, credits,
    };
    use crate::time::MICROS_PER_DAY;
    use proptest::prelude::*;

    const USERS: [&str; 4] = ["ann", "bob", "cat", "dan"];
    const TEAMS: [&str; 2] = ["payments", "search"];
    const START: i64 = 20_000 * MICROS_PER_DAY;

    fn day(d: u8) -> Micros {
        Micros(START + i64::from(d) * MICROS_PER_DAY + 3_600_000_000)
    }

    fn query(by: By, metric: Metric) -> BoardQuery {
        BoardQuery {
            from: Micros(START),
            to: Micros(START + 28 * MICROS_PER_DAY),
            by,
            metric,
            min_team_members: 1,
        }
    }

    fn activity() -> impl Strategy<Value = Vec<Activity>> {
        proptest::collection::vec(
            (
                0usize..4,
                0usize..2,
                0usize..3,
                0u8..28,
                0i64..5_000_000_000,
                0u64..1_000_000,
            ),
            0..25,
        )
        .prop_map(|rows| {
            rows.into_iter()
                .map(|(u, t, a, d, cost, tokens)| Activity {
                    user: USERS[u].into(),
                    team: Some(TEAMS[t].into()),
                    agent: (a > 0).then(|| format!("agent-{a}")),
                    day: day(d),
                    cost: Nanos(cost),
                    tokens,
                })
                .collect()
        })
    }

    fn pr_fact(n: u64, author: usize, reviewer: usize, d: u8, lines: u64) -> Vec<(String, Fact)> {
        vec![
            (
                format!("review:{n}"),
                Fact::Approval(Approval {
                    repo: "acme/shop".into(),
                    number: n,
                    reviewer: USERS[reviewer].into(),
                    at: day(d),
                }),
            ),
            (
                format!("pr:{n}"),
                Fact::PullRequest(PullRequest {
                    repo: "acme/shop".into(),
                    number: n,
                    author: USERS[author].into(),
                    merged_at: Micros(day(d).0 + 1),
                    merge_sha: Some(format!("sha{n}")),
                    changed_lines: lines,
                    reverts: None,
                    credited: Credited {
                        user: USERS[author].into(),
                        ..Credited::default()
                    },
                }),
            ),
        ]
    }

    fn deploy_fact(id: &str, sha: &str, d: u8) -> (String, Fact) {
        (
            id.into(),
            Fact::Deployment(Deployment {
                repo: "acme/shop".into(),
                sha: sha.into(),
                environment: "production".into(),
                at: Micros(day(d).0 + 2),
                credited: Credited {
                    user: "ann".into(),
                    ..Credited::default()
                },
            }),
        )
    }

    fn facts() -> impl Strategy<Value = Vec<(String, Fact)>> {
        proptest::collection::vec((0usize..4, 0usize..4, 0u8..28, 0u64..400, any::<bool>()), 0..15).prop_map(|prs| {
            let mut facts = Vec::new();
            for (i, (author, reviewer, d, lines, deploy)) in prs.into_iter().enumerate() {
                facts.extend(pr_fact(i as u64, author, reviewer, d, lines));
                if deploy {
                    facts.push(deploy_fact(&format!("deploy:{i}"), &format!("sha{i}"), d));
                }
            }
            facts
        })
    }

    fn rank_of(rows: &[Row], subject: &str) -> Option<usize> {
        rows.iter().find(|r| r.subject == subject).map(|r| r.rank)
    }

    proptest! {
        #[test]
        fn usage_that_earns_nothing_never_lifts_its_subject(
            activity in activity(), facts in facts(), who in 0usize..4, d in 0u8..28, cost in 0i64..10_000_000_000,
        ) {
            let credits = credits(&facts, &ValueRules::default());
            let mut more = activity.clone();
            more.push(Activity { user: USERS[who].into(), team: Some("payments".into()), agent: None, day: day(d), cost: Nanos(cost), tokens: 1_000_000 });
            for metric in [Metric::Value, Metric::Efficiency] {
                let before = board(&query(By::User, metric), &activity, &credits, &[]);
                let after = board(&query(By::User, metric), &more, &credits, &[]);
                let (b, a) = (before.iter().find(|r| r.subject == USERS[who]), after.iter().find(|r| r.subject == USERS[who]).unwrap());
                if let Some(b) = b {
                    prop_assert!(a.rank >= b.rank, "{metric:?}: rank {} → {}", b.rank, a.rank);
                    prop_assert!(a.value <= b.value && a.efficiency <= b.efficiency);
                } else {
                    prop_assert_eq!(a.value_total, 0);
                }
            }
        }

        #[test]
        fn repeated_facts_change_nothing(activity in activity(), facts in facts(), repeat in proptest::collection::vec(any::<prop::sample::Index>(), 0..10)) {
            let mut replayed = facts.clone();
            if !facts.is_empty() {
                replayed.extend(repeat.iter().map(|i| facts[i.index(facts.len())].clone()));
            }
            let q = query(By::User, Metric::Value);
            prop_assert_eq!(
                board(&q, &activity, &credits(&facts, &ValueRules::default()), &[]),
                board(&q, &activity, &credits(&replayed, &ValueRules::default()), &[])
            );
        }

        #[test]
        fn splitting_the_same_work_across_more_agents_or_keys_changes_no_person_or_team(activity in activity(), facts in facts()) {
            let credits = credits(&facts, &ValueRules::default());
            let split: Vec<Activity> = activity.iter().flat_map(|a| {
                let half = Nanos(a.cost.0 / 2);
                [
                    Activity { agent: Some("fan-out-1".into()), cost: half, tokens: a.tokens / 2, ..a.clone() },
                    Activity { agent: Some("fan-out-2".into()), cost: Nanos(a.cost.0 - half.0), tokens: a.tokens - a.tokens / 2, ..a.clone() },
                ]
            }).collect();
            for by in [By::User, By::Team] {
                for metric in [Metric::Value, Metric::Efficiency] {
                    let q = query(by, metric);
                    prop_assert_eq!(board(&q, &activity, &credits, &[]), board(&q, &split, &credits, &[]));
                }
            }
        }

        #[test]
        fn self_merges_and_redeploys_gain_nothing_and_self_reports_at_most_the_cap(
            activity in activity(), facts in facts(), who in 0usize..4, gaming in proptest::collection::vec((0u8..28, 0u64..400), 1..10),
        ) {
            let rules = ValueRules::default();
            let q = query(By::User, Metric::Value);
            let honest = board(&q, &activity, &credits(&facts, &rules), &[]);
            let mut gamed = facts.clone();
            let mut weeks = BTreeSet::new();
            for (i, (d, lines)) in gaming.iter().enumerate() {
                let n = 1_000 + i as u64;
                gamed.extend(pr_fact(n, who, who, *d, *lines)); // approved by its own author
                for (j, (id, fact)) in facts.iter().enumerate() {
                    if let Fact::Deployment(dep) = fact {
                        gamed.push((format!("redeploy:{i}:{j}:{id}"), deploy_fact("x", &dep.sha, *d).1));
                    }
                }
                gamed.push((format!("reported:{i}"), Fact::Reported(Reported {
                    kind: OutcomeKind::Incident, at: day(*d), weight: 10_000, reference: None,
                    credited: Credited { user: USERS[who].into(), ..Credited::default() },
                })));
                weeks.insert(week_of(day(*d)));
            }
            let after = board(&q, &activity, &credits(&gamed, &rules), &[]);
            let total = |rows: &[Row]| rows.iter().find(|r| r.subject == USERS[who]).map_or(0, |r| r.value_total);
            prop_assert!(total(&after) <= total(&honest) + rules.reported_cap_per_week * weeks.len() as u64);
            // Nor does anyone else gain by it (a fake early deployment may cost others theirs).
            for other in USERS.iter().filter(|u| **u != USERS[who]) {
                let value = |rows: &[Row]| rows.iter().find(|r| r.subject == *other).map_or(0, |r| r.value_total);
                prop_assert!(value(&after) <= value(&honest), "{} gained", other);
            }
        }

        #[test]
        fn ranking_does_not_depend_on_input_order(activity in activity(), facts in facts()) {
            let (mut activity_rev, mut facts_rev) = (activity.clone(), facts.clone());
            activity_rev.reverse();
            facts_rev.reverse();
            for by in [By::User, By::Team, By::Agent] {
                for metric in [Metric::Value, Metric::Efficiency, Metric::Volume] {
                    let q = query(by, metric);
                    let rules = ValueRules::default();
                    prop_assert_eq!(
                        board(&q, &activity, &credits(&facts, &rules), &[]),
                        board(&q, &activity_rev, &credits(&facts_rev, &rules), &[])
                    );
                }
            }
        }
    }

    #[test]
    fn the_volume_board_rewards_the_burner_and_the_value_board_does_not() {
        let burner = Activity {
            user: "bob".into(),
            team: Some("payments".into()),
            agent: None,
            day: day(1),
            cost: Nanos(900_000_000_000),
            tokens: 90_000_000,
        };
        let shipper = Activity {
            user: "ann".into(),
            cost: Nanos(40_000_000_000),
            tokens: 4_000_000,
            ..burner.clone()
        };
        let mut facts = pr_fact(1, 0, 1, 1, 200);
        facts.push(deploy_fact("d1", "sha1", 1));
        let credits = credits(&facts, &ValueRules::default());
        let activity = [burner, shipper];
        let volume = board(&query(By::User, Metric::Volume), &activity, &credits, &[]);
        let value = board(&query(By::User, Metric::Value), &activity, &credits, &[]);
        assert_eq!(rank_of(&volume, "bob"), Some(1));
        assert_eq!(rank_of(&value, "ann"), Some(1));
        assert_eq!(value[0].value, 1_000, "one shipped PR in one active week");
        assert_eq!(value[1].flags, vec!["no_outcomes"]);
        let teams = board(
            &BoardQuery {
                min_team_members: 5,
                ..query(By::Team, Metric::Value)
            },
            &activity,
            &credits,
            &[],
        );
        assert!(
            teams.is_empty(),
            "a two-person team is not ranked against a minimum of five"
        );
    }

    #[test]
    fn waste_lands_on_the_person_their_team_and_the_agent_that_spent_it() {
        let looping = Activity {
            user: "bob".into(),
            team: Some("payments".into()),
            agent: Some("loop-agent".into()),
            day: day(1),
            cost: Nanos(90_000_000_000),
            tokens: 9_000_000,
        };
        let findings = [
            Finding::sample("bob", Some("loop-agent"), day(1), Nanos(60_000_000_000)),
            Finding::sample("bob", None, day(2), Nanos(5_000_000_000)),
            Finding::sample("bob", None, day(40), Nanos(7_000_000_000)),
        ];
        let waste_of = |by: By| {
            let q = BoardQuery {
                min_team_members: 1,
                ..query(by, Metric::Value)
            };
            board(&q, std::slice::from_ref(&looping), &[], &findings)[0].waste
        };
        assert_eq!(
            waste_of(By::User),
            Nanos(65_000_000_000),
            "outside the window: not counted"
        );
        assert_eq!(waste_of(By::Team), Nanos(65_000_000_000), "the person's home team");
        assert_eq!(
            waste_of(By::Agent),
            Nanos(60_000_000_000),
            "only the agent's own findings"
        );
    }
}
