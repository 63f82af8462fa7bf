//! Budgets as pure decisions: which budgets apply to a call, the calendar window a budget's
//! period covers in its time zone, a call's worst-case cost, thresholds crossed, period-end
//! forecasts and runaways, and the alerts they raise. Callers hold the state and pass `now`;
//! nothing here reads a clock.
//!
//! Admission reserves a call's worst case — its input estimated from the request, plus the
//! `max_tokens` it asks for (or a default), priced at the model's dearest applicable rates —
//! so concurrent calls cannot together spend past a hard cap: a call is admitted only if its
//! worst case fits on every blocking budget at once ([`crate::limits`], which does the same
//! for keys' rate limits). Spend can exceed the limit only by what calls cost beyond their
//! reservation (an input estimate that was too low, or output beyond the default cap of a call
//! that named none).

use jiff::tz::TimeZone;
use jiff::{ToSpan, Zoned};
use serde::{Deserialize, Serialize};

use crate::Micros;
use crate::money::Nanos;
use crate::pricing::ModelPrice;
use crate::usage::Attribution;

/// What a budget is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum BudgetScope {
    Key(String),
    User(String),
    Team(String),
    Project(String),
    Agent(String),
    /// Every call.
    Org,
}

impl BudgetScope {
    /// The scope's kind as stored and shown: `key`, `user`, `team`, `project`, `agent`, `org`.
    pub fn kind(&self) -> &'static str {
        match self {
            BudgetScope::Key(_) => "key",
            BudgetScope::User(_) => "user",
            BudgetScope::Team(_) => "team",
            BudgetScope::Project(_) => "project",
            BudgetScope::Agent(_) => "agent",
            BudgetScope::Org => "org",
        }
    }

    /// The key id or name the scope is about (`None` for the organisation).
    pub fn name(&self) -> Option<&str> {
        match self {
            BudgetScope::Key(n)
            | BudgetScope::User(n)
            | BudgetScope::Team(n)
            | BudgetScope::Project(n)
            | BudgetScope::Agent(n) => Some(n),
            BudgetScope::Org => None,
        }
    }

    /// The scope from its stored kind and name.
    pub fn from_parts(kind: &str, name: Option<String>) -> Option<BudgetScope> {
        Some(match (kind, name) {
            ("org", None) => BudgetScope::Org,
            ("key", Some(n)) => BudgetScope::Key(n),
            ("user", Some(n)) => BudgetScope::User(n),
            ("team", Some(n)) => BudgetScope::Team(n),
            ("project", Some(n)) => BudgetScope::Project(n),
            ("agent", Some(n)) => BudgetScope::Agent(n),
            _ => return None,
        })
    }

    /// Whether a call made with key `key_id` and attributed as `who` counts against this scope.
    pub fn applies(&self, key_id: &str, who: &Attribution) -> bool {
        match self {
            BudgetScope::Key(id) => id == key_id,
            BudgetScope::User(name) => *name == who.user,
            BudgetScope::Team(name) => who.team.as_deref() == Some(name),
            BudgetScope::Project(name) => who.project.as_deref() == Some(name),
            BudgetScope::Agent(name) => who.agent.as_deref() == Some(name),
            BudgetScope::Org => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    /// ISO weeks: Monday to Monday.
    Week,
    Month,
    /// Never resets.
    Total,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Total => "total",
        }
    }

    pub fn parse(text: &str) -> Option<Period> {
        [Period::Day, Period::Week, Period::Month, Period::Total]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

/// What happens when a budget is exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Alerts only (a soft budget).
    Alert,
    /// Refuses calls that could overrun it (a hard cap).
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::Block => "block",
        }
    }

    pub fn parse(text: &str) -> Option<Action> {
        [Action::Alert, Action::Block].into_iter().find(|a| a.as_str() == text)
    }
}

/// What a blocking budget does when the shared store cannot be reached to borrow a slice of
/// it (the database is down, or unreachable from this instance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum WhenUnreachable {
    /// Refuse the calls that need a new slice (503 with a retry time): the cap holds, and
    /// agents stop until the store is back.
    FailClosed,
    /// Admit them on this instance's own authority up to `percent` of the budget's limit in
    /// each window, then refuse; what was admitted so is charged to the budget's pool once
    /// the store is back. The cap can be passed by at most `percent` of it per instance.
    FailOpen { percent: u32 },
}

impl WhenUnreachable {
    /// The most a fail-open allowance may be: the whole limit again, per instance.
    pub const MAX_PERCENT: u32 = 100;
    /// The allowance when none is named: what an instance borrows at a time anyway (a
    /// twentieth of the limit).
    pub const DEFAULT_PERCENT: u32 = 5;

    pub fn as_str(self) -> &'static str {
        match self {
            WhenUnreachable::FailClosed => "fail_closed",
            WhenUnreachable::FailOpen { .. } => "fail_open",
        }
    }

    /// The policy from its name and, for `fail_open`, its allowance in percent of the limit
    /// (1 to [`MAX_PERCENT`](Self::MAX_PERCENT)); `None` for an unknown name or a percent
    /// out of range.
    pub fn from_parts(name: &str, percent: Option<u32>) -> Option<WhenUnreachable> {
        match (name, percent) {
            ("fail_closed", None) => Some(WhenUnreachable::FailClosed),
            ("fail_open", Some(percent)) if (1..=Self::MAX_PERCENT).contains(&percent) => {
                Some(WhenUnreachable::FailOpen { percent })
            }
            _ => None,
        }
    }

    /// The fail-open allowance in percent (`None` when failing closed).
    pub fn percent(self) -> Option<u32> {
        match self {
            WhenUnreachable::FailClosed => None,
            WhenUnreachable::FailOpen { percent } => Some(percent),
        }
    }
}

/// The alert thresholds used when a budget names none (percent of the limit).
pub const DEFAULT_THRESHOLDS: [u32; 3] = [50, 80, 100];

/// A budget as defined by an admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub id: String,
    pub scope: BudgetScope,
    pub period: Period,
    pub limit: Nanos,
    /// An optional second limit in tokens (every kind counted).
    pub token_limit: Option<u64>,
    pub action: Action,
    /// Percent of the limit at which an alert is raised, ascending.
    pub thresholds: Vec<u32>,
    /// The IANA time zone whose calendar the period follows (e.g. `Europe/Paris`).
    pub timezone: String,
    pub created_at: Micros,
    /// What to do when the shared store is unreachable (`None`: the gateway's default).
    pub when_unreachable: Option<WhenUnreachable>,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A budget's spend crossed one of its thresholds.
    Threshold,
    /// A scope's recent spend rate is far above its own baseline.
    Runaway,
    /// A budget's projected period-end spend is above its limit.
    Forecast,
    /// A waste detection pass found new, high-confidence waste.
    Waste,
    /// A blocking budget refused a call: its hard cap is reached.
    Blocked,
    /// A provider billed a day differently from what Goodhart metered, past the threshold.
    Reconciliation,
    /// The database was unreachable, and a blocking budget failing open admitted calls on a
    /// gateway's own authority: its cap may be passed by up to the allowance.
    FailOpen,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Threshold => "threshold",
            AlertKind::Runaway => "runaway",
            AlertKind::Forecast => "forecast",
            AlertKind::Waste => "waste",
            AlertKind::Blocked => "blocked",
            AlertKind::Reconciliation => "reconciliation",
            AlertKind::FailOpen => "fail_open",
        }
    }

    pub fn parse(text: &str) -> Option<AlertKind> {
        [
            AlertKind::Threshold,
            AlertKind::Runaway,
            AlertKind::Forecast,
            AlertKind::Waste,
            AlertKind::Blocked,
            AlertKind::Reconciliation,
            AlertKind::FailOpen,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// One alert. Its id says what it is about, so the same event raised twice (by two
/// instances, or after a restart) is one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub kind: AlertKind,
    /// The budget it is about; empty for alerts about no budget (waste).
    pub budget_id: String,
    /// e.g. `team payments`.
    pub scope: String,
    pub message: String,
    pub created_at: Micros,
}

impl Alert {
    /// The budget the alert is about, if any.
    pub fn budget(&self) -> Option<&str> {
        Some(self.budget_id.as_str()).filter(|id| !id.is_empty())
    }

    fn about(budget: &Budget, kind: AlertKind, id: String, message: String, now: Micros) -> Alert {
        Alert {
            id,
            kind,
            budget_id: budget.id.clone(),
            scope: scope_label(&budget.scope),
            message,
            created_at: now,
        }
    }

    /// A threshold alert: once per budget, window and threshold.
    pub fn threshold(budget: &Budget, window: Window, percent: u32, spent: Nanos, now: Micros) -> Alert {
        let message = format!(
            "{} reached {percent} % of its {} {} budget: {} of {}",
            scope_label(&budget.scope),
            budget.period.as_str(),
            budget.action.as_str(),
            spent.usd_rounded(2),
            budget.limit.usd_rounded(2),
        );
        let id = format!("threshold:{}:{}:{percent}", budget.id, window.start.0);
        Alert::about(budget, AlertKind::Threshold, id, message, now)
    }

    /// A hard-cap alert: the first refused call of a budget's window (once per window).
    pub fn blocked(
        budget_id: &str,
        scope: &str,
        window_start: Micros,
        limit: Nanos,
        resets_at: Option<Micros>,
        now: Micros,
    ) -> Alert {
        let until = resets_at.map_or_else(|| "the budget is raised".to_owned(), Micros::rfc3339);
        Alert {
            id: format!("blocked:{budget_id}:{}", window_start.0),
            kind: AlertKind::Blocked,
            budget_id: budget_id.to_owned(),
            scope: scope.to_owned(),
            message: format!(
                "{scope} hit its hard cap of {}: its calls are refused until {until}",
                limit.usd_rounded(2)
            ),
            created_at: now,
        }
    }

    /// A fail-open alert: a gateway instance admitted calls on `budget` on its own authority,
    /// the store being unreachable (once per budget and window).
    pub fn fail_open(budget: &Budget, window: Window, percent: u32, now: Micros) -> Alert {
        let message = format!(
            "the database was unreachable: calls under the {} cap of {} on {} were admitted on a gateway's \
             own authority (fail_open), so the cap may be passed by up to {percent} % per gateway instance",
            budget.period.as_str(),
            budget.limit.usd_rounded(2),
            scope_label(&budget.scope),
        );
        let id = format!("fail_open:{}:{}", budget.id, window.start.0);
        Alert::about(budget, AlertKind::FailOpen, id, message, now)
    }

    /// A forecast alert: once per budget and window.
    pub fn forecast(budget: &Budget, window: Window, projected: Nanos, now: Micros) -> Alert {
        let message = format!(
            "{} is on course to spend {} this {}, over its {} budget",
            scope_label(&budget.scope),
            projected.usd_rounded(2),
            budget.period.as_str(),
            budget.limit.usd_rounded(2),
        );
        let id = format!("forecast:{}:{}", budget.id, window.start.0);
        Alert::about(budget, AlertKind::Forecast, id, message, now)
    }

    /// A runaway alert: at most once per budget and hour.
    pub fn runaway(budget: &Budget, recent_per_hour: Nanos, baseline_per_hour: Nanos, now: Micros) -> Alert {
        let message = format!(
            "{} is spending {}/hour, against a usual {}/hour",
            scope_label(&budget.scope),
            recent_per_hour.usd_rounded(2),
            baseline_per_hour.usd_rounded(2),
        );
        let id = format!("runaway:{}:{}", budget.id, now.floor_to(crate::time::MICROS_PER_HOUR).0);
        Alert::about(budget, AlertKind::Runaway, id, message, now)
    }
}

/// How a scope is named to people: `team payments`, `organisation`.
pub fn scope_label(scope: &BudgetScope) -> String {
    match scope.name() {
        Some(name) => format!("{} {name}", scope.kind()),
        None => "organisation".into(),
    }
}

/// The half-open window `[start, end)` a period covers at some instant; `end` is `None` for
/// [`Period::Total`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Micros,
    pub end: Option<Micros>,
}

/// The window of `period` containing `now`, on calendar boundaries in `tz` (a day that starts
/// at 01:00 because of a DST change starts then; months have their real lengths, leap days
/// included).
pub fn window(period: Period, tz: &TimeZone, now: Micros) -> Window {
    let here = now.to_timestamp().to_zoned(tz.clone());
    let (start, next): (Option<Zoned>, Option<Zoned>) = match period {
        Period::Total => (None, None),
        Period::Day => {
            let start = here.start_of_day().ok();
            let next = start
                .as_ref()
                .and_then(|s| s.date().tomorrow().ok())
                .and_then(|d| d.to_zoned(tz.clone()).ok());
            (start, next)
        }
        Period::Week => {
            let back = i64::from(here.weekday().to_monday_zero_offset());
            let monday = here.date().checked_sub(back.days()).ok();
            let start = monday.and_then(|d| d.to_zoned(tz.clone()).ok());
            let next = monday
                .and_then(|d| d.checked_add(7.days()).ok())
                .and_then(|d| d.to_zoned(tz.clone()).ok());
            (start, next)
        }
        Period::Month => {
            let first = here.date().first_of_month();
            let start = first.to_zoned(tz.clone()).ok();
            let next = first
                .checked_add(1.month())
                .ok()
                .and_then(|d| d.to_zoned(tz.clone()).ok());
            (start, next)
        }
    };
    Window {
        start: start.map_or(Micros(i64::MIN), |z| Micros::from_timestamp(z.timestamp())),
        end: next.map(|z| Micros::from_timestamp(z.timestamp())),
    }
}

/// The most a call can cost: `input_tokens` of uncached input and `max_output_tokens` of
/// output, each at the dearest rate that could apply to it (the long-context tier when the
/// input alone crosses its threshold; reasoning billed above output where it is).
pub fn worst_case_cost(price: &ModelPrice, input_tokens: u64, max_output_tokens: u64) -> Nanos {
    let rates = match &price.long_context {
        Some(tier) if input_tokens > tier.threshold_tokens => &tier.rates,
        _ => &price.rates,
    };
    let output_rate = rates.output.0.max(rates.reasoning.0);
    let input_rate = rates.input.0.max(rates.cache_write_1h.0).max(rates.cache_write_5m.0);
    let picos =
        u128::from(input_tokens) * u128::from(input_rate) + u128::from(max_output_tokens) * u128::from(output_rate);
    // Rounded up (499 + the rounding's 500 = 999): a reservation is never below its cost.
    Nanos::from_picos_rounded(picos + 499)
}

/// A conservative input-token estimate from request text, without a tokenizer on the hot
/// path: one token per three characters (English prose averages about four, code about three).
pub fn estimate_input_tokens(chars: u64) -> u64 {
    chars.div_ceil(3)
}

/// The alert thresholds (percent of the limit) that spend crossed going from `before` to
/// `after`, lowest first.
pub fn crossed_thresholds(before: Nanos, after: Nanos, limit: Nanos, thresholds: &[u32]) -> Vec<u32> {
    if limit.0 <= 0 {
        return Vec::new();
    }
    let level = |pct: u32| i128::from(limit.0) * i128::from(pct) / 100;
    let mut crossed: Vec<u32> = thresholds
        .iter()
        .copied()
        .filter(|&pct| i128::from(before.0) < level(pct) && i128::from(after.0) >= level(pct))
        .collect();
    crossed.sort_unstable();
    crossed.dedup();
    crossed
}

/// Projected spend at the end of `window`: what was spent so far, plus the spend rate so far
/// carried over the rest of the window. Early in a window the rate is taken over at least a
/// twentieth of it (an hour and a half of a day, a day and a half of a month), so the first
/// call of a period does not project a wild total. `None` for windows without an end.
pub fn forecast(spent: Nanos, window: Window, now: Micros) -> Option<Nanos> {
    let end = window.end?;
    let length = i128::from(end.0) - i128::from(window.start.0);
    if length <= 0 || now >= end {
        return Some(spent);
    }
    let elapsed = (i128::from(now.0) - i128::from(window.start.0)).max(length / 20).max(1);
    let projected = i128::from(spent.0) * length / elapsed;
    Some(Nanos(i64::try_from(projected).unwrap_or(i64::MAX).max(spent.0)))
}

/// Whether a scope's recent spend rate is a runaway: far above its own baseline rate (and
/// above a floor, so a scope that usually spends nothing does not alert on its first cent).
/// Rates are nano-dollars per hour.
pub fn is_runaway(recent_per_hour: Nanos, baseline_per_hour: Nanos, factor: u32, floor_per_hour: Nanos) -> bool {
    recent_per_hour > floor_per_hour
        && i128::from(recent_per_hour.0) > i128::from(baseline_per_hour.0) * i128::from(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::PriceTable;
    use proptest::prelude::*;

    fn at(text: &str) -> Micros {
        crate::time::parse_rfc3339(text).unwrap()
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    #[test]
    fn months_end_on_their_real_last_day_in_the_budget_zone() {
        let paris = tz("Europe/Paris");
        let w = window(Period::Month, &paris, at("2028-02-29T23:30:00Z"));
        // 23:30 UTC on the 29th is already 1 March in Paris.
        assert_eq!(w.start, at("2028-02-29T23:00:00Z"));
        assert_eq!(
            w.end,
            Some(at("2028-03-31T22:00:00Z")),
            "DST starts on 26 March: the month ends at UTC+2"
        );
        let leap = window(Period::Month, &TimeZone::UTC, at("2028-02-15T00:00:00Z"));
        assert_eq!(
            (leap.start, leap.end),
            (at("2028-02-01T00:00:00Z"), Some(at("2028-03-01T00:00:00Z")))
        );
        let december = window(Period::Month, &TimeZone::UTC, at("2026-12-31T23:59:59Z"));
        assert_eq!(december.end, Some(at("2027-01-01T00:00:00Z")));
    }

    #[test]
    fn days_follow_dst_and_weeks_start_on_monday() {
        let new_york = tz("America/New_York");
        // 2026-03-08 is 23 hours long in New York.
        let short = window(Period::Day, &new_york, at("2026-03-08T12:00:00Z"));
        assert_eq!(short.start, at("2026-03-08T05:00:00Z"));
        assert_eq!(short.end, Some(at("2026-03-09T04:00:00Z")));
        let week = window(Period::Week, &TimeZone::UTC, at("2026-11-22T23:59:59Z")); // a Sunday
        assert_eq!(
            (week.start, week.end),
            (at("2026-11-16T00:00:00Z"), Some(at("2026-11-23T00:00:00Z")))
        );
        let total = window(Period::Total, &new_york, at("2026-11-22T00:00:00Z"));
        assert_eq!(total.end, None);
    }

    proptest! {
        #[test]
        fn every_instant_lies_in_its_window_and_windows_tile(secs in 0i64..4_102_444_800, zone in 0usize..4, period in 0usize..3) {
            let zones = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe"];
            let periods = [Period::Day, Period::Week, Period::Month];
            let (tz, period) = (tz(zones[zone]), periods[period]);
            let now = Micros(secs * 1_000_000);
            let w = window(period, &tz, now);
            let end = w.end.unwrap();
            prop_assert!(w.start <= now && now < end);
            // The next window starts exactly where this one ends.
            prop_assert_eq!(window(period, &tz, end).start, end);
            prop_assert_eq!(window(period, &tz, Micros(end.0 - 1)).start, w.start);
        }
    }

    #[test]
    fn worst_case_covers_every_real_cost_of_the_call() {
        let prices = PriceTable::builtin();
        let sonnet = prices.resolve(None, "claude-sonnet-4-5").unwrap();
        let worst = worst_case_cost(sonnet, 1_000, 500);
        for (input, cache_write, output) in [(1_000, 0, 500), (0, 1_000, 500), (400, 600, 0), (1_000, 0, 499)] {
            let tokens = crate::usage::TokenCounts {
                input,
                cache_write_5m: cache_write,
                output,
                ..Default::default()
            };
            assert!(crate::pricing::cost(sonnet, &tokens).total() <= worst, "{tokens:?}");
        }
    }

    #[test]
    fn thresholds_fire_once_each_when_crossed() {
        let limit = Nanos(1_000);
        assert_eq!(
            crossed_thresholds(Nanos(400), Nanos(850), limit, &[50, 80, 100]),
            vec![50, 80]
        );
        assert_eq!(
            crossed_thresholds(Nanos(850), Nanos(900), limit, &[50, 80, 100]),
            Vec::<u32>::new()
        );
        assert_eq!(
            crossed_thresholds(Nanos(900), Nanos(1_000), limit, &[50, 80, 100]),
            vec![100]
        );
    }

    #[test]
    fn forecasts_extrapolate_without_wild_early_guesses() {
        let w = Window {
            start: at("2026-11-01T00:00:00Z"),
            end: Some(at("2026-12-01T00:00:00Z")),
        };
        // $100 in the first 10 of 30 days -> $300.
        assert_eq!(
            forecast(Nanos(100_000_000_000), w, at("2026-11-11T00:00:00Z")),
            Some(Nanos(300_000_000_000))
        );
        // One minute in, $1 spent: the rate is taken over 1.5 days, not one minute.
        assert_eq!(
            forecast(Nanos(1_000_000_000), w, at("2026-11-01T00:01:00Z")),
            Some(Nanos(20_000_000_000))
        );
        assert_eq!(
            forecast(
                Nanos(5),
                Window {
                    start: Micros(0),
                    end: None
                },
                Micros(10)
            ),
            None
        );
    }

    #[test]
    fn a_loop_at_3am_is_a_runaway_and_a_steady_heavy_user_is_not() {
        let dollars = |d: i64| Nanos(d * 1_000_000_000);
        assert!(is_runaway(dollars(40), dollars(2), 5, dollars(1)));
        assert!(
            !is_runaway(dollars(40), dollars(30), 5, dollars(1)),
            "heavy but as usual"
        );
        assert!(
            !is_runaway(Nanos(500_000_000), Nanos(0), 5, dollars(1)),
            "below the floor"
        );
    }

    #[test]
    fn scopes_match_what_the_call_is_attributed_to() {
        let who = Attribution {
            user: "alice".into(),
            team: Some("payments".into()),
            agent: Some("bot".into()),
            ..Default::default()
        };
        assert!(BudgetScope::Team("payments".into()).applies("k1", &who));
        assert!(BudgetScope::Key("k1".into()).applies("k1", &who));
        assert!(!BudgetScope::Project("checkout".into()).applies("k1", &who));
        assert!(BudgetScope::Org.applies("k2", &who));
    }
}
