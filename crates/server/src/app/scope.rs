//! What a caller limited to one team (a team's viewer or manager) or to one person (an
//! engineer) may see, applied by every read use case.
//!
//! A team's people are those whose home team it is: the team the people directory (their
//! identity provider's groups) gives them, else the team they spent most with over the last
//! year; its agents are those that spent most with it. A team's view holds usage attributed to the team, the
//! team's people on the value board and in the ROI report (as if the organisation were just
//! them), their findings, and the budgets and alerts about the team, its people, agents and
//! keys. A person's view holds the usage attributed to them, their own row on the board,
//! their findings, and the budgets and alerts about them and their keys. Anything else answers
//! as if it did not exist.

use std::collections::{HashMap, HashSet};

use goodhart_core::Micros;
use goodhart_core::budgets::BudgetScope;
use goodhart_core::outcomes::Credit;
use goodhart_core::report::{Dimension, SummaryRow};
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_core::value::{Activity, By, HomeTeams};
use goodhart_core::waste::Finding;
use goodhart_store::{Store, StoredAlert, SummaryQuery};

use super::access::Access;
use super::{App, AppError};

/// Membership is judged over this long before now.
pub const MEMBERSHIP_WINDOW_MICROS: i64 = 365 * MICROS_PER_DAY;

/// Whose view it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    Team(String),
    Person(String),
}

/// One team's (or one person's) people, agents and keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub of: Viewer,
    members: HashSet<String>,
    agents: HashSet<String>,
    keys: HashSet<String>,
}

impl View {
    pub async fn of(store: &dyn Store, team: &str, now: Micros) -> Result<View, AppError> {
        let from = Micros(now.0.saturating_sub(MEMBERSHIP_WINDOW_MICROS));
        // The directory (the identity provider's teams) decides for the people it knows;
        // where they spent most decides for the rest.
        let directory: HashMap<String, Option<String>> =
            store.members().await?.into_iter().map(|m| (m.user, m.team)).collect();
        let mut members = homed_in(store, Dimension::User, team, from, now).await?;
        members.retain(|user| match directory.get(user) {
            Some(Some(home)) => home == team,
            _ => true,
        });
        members.extend(
            directory
                .iter()
                .filter(|(_, home)| home.as_deref() == Some(team))
                .map(|(user, _)| user.clone()),
        );
        Ok(View {
            of: Viewer::Team(team.to_owned()),
            members,
            agents: homed_in(store, Dimension::Agent, team, from, now).await?,
            keys: store
                .keys()
                .await?
                .into_iter()
                .filter(|k| k.scope.team.as_deref() == Some(team))
                .map(|k| k.id)
                .collect(),
        })
    }

    /// One person's view: themselves and the keys made for them (no agents: an agent's page
    /// shows everyone's use of it).
    pub async fn of_person(store: &dyn Store, user: &str) -> Result<View, AppError> {
        Ok(View {
            of: Viewer::Person(user.to_owned()),
            members: HashSet::from([user.to_owned()]),
            agents: HashSet::new(),
            keys: store
                .keys()
                .await?
                .into_iter()
                .filter(|k| k.scope.user == user)
                .map(|k| k.id)
                .collect(),
        })
    }

    /// Whether the view is `team`'s own.
    pub fn is_team(&self, team: &str) -> bool {
        matches!(&self.of, Viewer::Team(own) if own == team)
    }

    pub fn sees_user(&self, user: &str) -> bool {
        self.members.contains(user)
    }

    pub fn sees_subject(&self, by: By, name: &str) -> bool {
        match by {
            By::User => self.members.contains(name),
            By::Team => self.is_team(name),
            By::Agent => self.agents.contains(name),
        }
    }

    pub fn sees_budget(&self, scope: &BudgetScope) -> bool {
        match scope {
            BudgetScope::Key(id) => self.keys.contains(id),
            BudgetScope::User(user) => self.members.contains(user),
            BudgetScope::Team(team) => self.is_team(team),
            BudgetScope::Agent(agent) => self.agents.contains(agent),
            BudgetScope::Project(_) | BudgetScope::Org => false,
        }
    }

    /// Keeps what the value board and the ROI report are computed from to the team's people.
    pub fn limit_inputs(&self, activity: &mut Vec<Activity>, credits: &mut Vec<Credit>, waste: &mut Vec<Finding>) {
        activity.retain(|a| self.sees_user(&a.user));
        credits.retain(|c| self.sees_user(&c.credited.user));
        waste.retain(|f| self.sees_user(&f.user));
    }

    /// Keeps the alerts about what the team sees: budgets by their scope, waste by the
    /// finding's person (`findings` maps finding ids to people).
    pub fn limit_alerts(
        &self,
        alerts: &mut Vec<StoredAlert>,
        budgets: &HashMap<String, BudgetScope>,
        findings: &HashMap<String, String>,
    ) {
        alerts.retain(|stored| {
            let alert = &stored.alert;
            match alert.budget() {
                Some(id) => budgets.get(id).is_some_and(|scope| self.sees_budget(scope)),
                None => alert
                    .id
                    .strip_prefix("waste:")
                    .and_then(|finding| findings.get(finding))
                    .is_some_and(|user| self.sees_user(user)),
            }
        });
    }
}

/// The subjects of `dimension` (people or agents) whose home team is `team` in `[from, to)`.
async fn homed_in(
    store: &dyn Store,
    dimension: Dimension,
    team: &str,
    from: Micros,
    to: Micros,
) -> Result<HashSet<String>, AppError> {
    let query = SummaryQuery {
        from,
        to,
        group_by: vec![dimension, Dimension::Team],
    };
    let spend: Vec<Activity> = store
        .usage_summary(&query)
        .await?
        .into_iter()
        .filter_map(|row| {
            let mut key = row.key.into_iter();
            Some(Activity {
                user: key.next()??,
                team: key.next()?,
                agent: None,
                day: from,
                cost: row.totals.cost,
                tokens: row.totals.tokens.total(),
            })
        })
        .collect();
    let homes = HomeTeams::new(spend.iter());
    Ok(spend
        .iter()
        .filter(|a| homes.team_of(&a.user, None).as_deref() == Some(team))
        .map(|a| a.user.clone())
        .collect())
}

impl App {
    /// The view a request is limited to: an engineer's own, a team's for its viewers and
    /// manager, none for the admin, finops and viewers of every team.
    pub async fn view_for(&self, access: &Access) -> Result<Option<View>, AppError> {
        if let Some(user) = access.user() {
            return Ok(Some(View::of_person(self.store(), user).await?));
        }
        match access.team() {
            None => Ok(None),
            Some(team) => Ok(Some(View::of(self.store(), team, self.now()).await?)),
        }
    }
}

/// A usage summary, limited to the usage attributed to the view's team or person.
pub async fn usage_summary(
    store: &dyn Store,
    query: &SummaryQuery,
    view: Option<&View>,
) -> Result<Vec<SummaryRow>, AppError> {
    let Some(view) = view else {
        return Ok(store.usage_summary(query).await?);
    };
    let (dimension, name) = match &view.of {
        Viewer::Team(team) => (Dimension::Team, team),
        Viewer::Person(user) => (Dimension::User, user),
    };
    let mut scoped = query.clone();
    let at = match query.group_by.iter().position(|d| *d == dimension) {
        Some(at) => at,
        None => {
            scoped.group_by.push(dimension);
            scoped.group_by.len() - 1
        }
    };
    let added = scoped.group_by.len() > query.group_by.len();
    let mut rows = store.usage_summary(&scoped).await?;
    rows.retain(|row| row.key[at].as_deref() == Some(name.as_str()));
    if added {
        // One team (or person) is left, so the rows stay distinct without its key.
        for row in &mut rows {
            row.key.truncate(at);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use goodhart_core::Nanos;

    fn view() -> View {
        View {
            of: Viewer::Team("payments".into()),
            members: HashSet::from(["ana".to_owned()]),
            agents: HashSet::from(["reviewer".to_owned()]),
            keys: HashSet::from(["gk_1".to_owned()]),
        }
    }

    #[test]
    fn budgets_are_seen_by_what_they_are_about() {
        let view = view();
        assert!(view.sees_budget(&BudgetScope::Team("payments".into())));
        assert!(view.sees_budget(&BudgetScope::User("ana".into())));
        assert!(view.sees_budget(&BudgetScope::Agent("reviewer".into())));
        assert!(view.sees_budget(&BudgetScope::Key("gk_1".into())));
        assert!(!view.sees_budget(&BudgetScope::Team("search".into())));
        assert!(!view.sees_budget(&BudgetScope::User("bo".into())));
        assert!(
            !view.sees_budget(&BudgetScope::Org),
            "the organisation's total is not the team's"
        );
        assert!(!view.sees_budget(&BudgetScope::Project("checkout".into())));
    }

    #[test]
    fn alerts_are_seen_by_their_budget_or_finding() {
        use goodhart_core::budgets::{Alert, AlertKind};
        let alert = |id: &str, kind: AlertKind, budget: &str| StoredAlert {
            alert: Alert {
                id: id.into(),
                kind,
                budget_id: budget.into(),
                scope: String::new(),
                message: String::new(),
                created_at: Micros(0),
            },
            delivered_at: None,
            attempts: 0,
            last_error: None,
        };
        let mut alerts = vec![
            alert("threshold:b1:0:80", AlertKind::Threshold, "b1"),
            alert("blocked:b2:0", AlertKind::Blocked, "b2"),
            alert("threshold:gone:0:80", AlertKind::Threshold, "gone"),
            alert("waste:f1", AlertKind::Waste, ""),
            alert("waste:f2", AlertKind::Waste, ""),
        ];
        let budgets = HashMap::from([
            ("b1".to_owned(), BudgetScope::Team("payments".into())),
            ("b2".to_owned(), BudgetScope::Org),
        ]);
        let findings = HashMap::from([("f1".to_owned(), "ana".to_owned()), ("f2".to_owned(), "bo".to_owned())]);
        view().limit_alerts(&mut alerts, &budgets, &findings);
        let kept: Vec<&str> = alerts.iter().map(|a| a.alert.id.as_str()).collect();
        assert_eq!(kept, ["threshold:b1:0:80", "waste:f1"]);
    }

    #[test]
    fn board_inputs_keep_only_the_teams_people() {
        let activity = |user: &str| Activity {
            user: user.into(),
            team: Some("search".into()),
            agent: None,
            day: Micros(0),
            cost: Nanos(1),
            tokens: 1,
        };
        let mut usage = vec![activity("ana"), activity("bo")];
        view().limit_inputs(&mut usage, &mut Vec::new(), &mut Vec::new());
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].user, "ana", "a member's work for another team is still hers");
    }
}
