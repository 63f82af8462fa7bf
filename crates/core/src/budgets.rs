//! Budgets and rate limits as pure decisions: which budgets apply to a call, the calendar
//! window a budget's period covers in its time zone, a call's worst-case cost, all-or-nothing
//! admission against every applicable budget, thresholds crossed, period-end forecasts, and
//! token buckets. Callers hold the state and pass `now`; nothing here reads a clock.
//!
//! Admission reserves a call's worst case — its input estimated from the request, plus the
//! `max_tokens` it asks for (or a default), priced at the model's dearest applicable rates —
//! so concurrent calls cannot together spend past a hard cap: a call is admitted only if
//! `spent + reserved + worst_case ≤ limit` on every blocking budget at once. Spend can exceed
//! the limit only by what calls cost beyond their reservation (an input estimate that was too
//! low, or output beyond the default cap of a call that named none).

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
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Threshold => "threshold",
            AlertKind::Runaway => "runaway",
            AlertKind::Forecast => "forecast",
            AlertKind::Waste => "waste",
            AlertKind::Blocked => "blocked",
        }
    }

    pub fn parse(text: &str) -> Option<AlertKind> {
        [
            AlertKind::Threshold,
            AlertKind::Runaway,
            AlertKind::Forecast,
            AlertKind::Waste,
            AlertKind::Blocked,
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

/// What a blocking budget has used of its current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub spent: Nanos,
    /// Worst cases of admitted calls that have not finished.
    pub reserved: Nanos,
    pub spent_tokens: u64,
    pub reserved_tokens: u64,
}

/// A budget's limits, as admission sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub usd: Nanos,
    pub tokens: Option<u64>,
}

/// Why a call was refused: the first budget it would have overrun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun {
    /// Index into the budgets passed to [`admit`].
    pub budget: usize,
    pub limit: Nanos,
    pub spent: Nanos,
    pub reserved: Nanos,
    /// The limit that was hit is the token limit, not the USD one.
    pub tokens: bool,
}

/// Admits a call of worst case `cost` (and `tokens`) against every blocking budget that
/// applies, all or nothing: `Ok` means the caller must now add the reservation to each of
/// them; `Err` names the first budget that has no room.
pub fn admit(budgets: &[(Limits, Usage)], cost: Nanos, tokens: u64) -> Result<(), Overrun> {
    for (index, (limits, usage)) in budgets.iter().enumerate() {
        let committed = usage.spent.saturating_add(usage.reserved);
        let refused = |tokens_hit: bool| Overrun {
            budget: index,
            limit: limits.usd,
            spent: usage.spent,
            reserved: usage.reserved,
            tokens: tokens_hit,
        };
        if committed.saturating_add(cost) > limits.usd {
            return Err(refused(false));
        }
        if let Some(token_limit) = limits.tokens
            && usage
                .spent_tokens
                .saturating_add(usage.reserved_tokens)
                .saturating_add(tokens)
                > token_limit
        {
            return Err(refused(true));
        }
    }
    Ok(())
}

/// An amount of a budget: dollars and tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Amount {
    pub cost: Nanos,
    pub tokens: u64,
}

impl Amount {
    pub fn saturating_add(self, other: Amount) -> Amount {
        Amount {
            cost: self.cost.saturating_add(other.cost),
            tokens: self.tokens.saturating_add(other.tokens),
        }
    }

    /// `self - other`, each part floored at zero.
    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount {
            cost: Nanos(self.cost.0.saturating_sub(other.cost.0).max(0)),
            tokens: self.tokens.saturating_sub(other.tokens),
        }
    }
}

/// The slice of a blocking budget a gateway instance borrows from the pool all instances
/// share, when it has none left: a twentieth (5 %) of each limit, so a handful of refills
/// covers a busy window and an instance never sits on much that others could use.
pub fn lease_size(limits: &Limits) -> Amount {
    Amount {
        cost: Nanos((limits.usd.0 / 20).max(1)),
        tokens: limits.tokens.map_or(0, |t| (t / 20).max(1)),
    }
}

/// What a budget's shared pool lends an instance that asks for `want` and cannot admit its
/// call with less than `need`, when `taken` is already committed (spend and other leases):
/// `want` (at least `need`) where it fits, else all that is left if that covers `need`, else
/// nothing — also when `need` is nothing but the pool is already past its limit. Without a token
/// limit no tokens are lent (none are counted).
pub fn grant_lease(limits: &Limits, taken: Amount, want: Amount, need: Amount) -> Option<Amount> {
    // Negative when the pool is already past its limit: then not even a zero need fits.
    let room_usd = limits.usd.0.saturating_sub(taken.cost.0);
    if need.cost.0 > room_usd {
        return None;
    }
    let cost = Nanos(want.cost.0.max(need.cost.0).min(room_usd));
    let tokens = match limits.tokens {
        None => 0,
        Some(limit) => {
            let room = limit.checked_sub(taken.tokens)?;
            if need.tokens > room {
                return None;
            }
            want.tokens.max(need.tokens).min(room)
        }
    };
    Some(Amount { cost, tokens })
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

/// A token bucket: `capacity` units, refilled continuously at `per_minute` units a minute.
/// The level is kept in millionths of a unit so refills of a few microseconds are not lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    pub capacity: u64,
    pub per_minute: u64,
    level_millionths: u128,
    updated: Micros,
}

const MICROS_PER_MINUTE: u128 = 60_000_000;

impl TokenBucket {
    /// A full bucket.
    pub fn full(capacity: u64, per_minute: u64, now: Micros) -> TokenBucket {
        TokenBucket {
            capacity,
            per_minute,
            level_millionths: u128::from(capacity) * 1_000_000,
            updated: now,
        }
    }

    fn refill(&mut self, now: Micros) {
        if now > self.updated {
            let elapsed = (i128::from(now.0) - i128::from(self.updated.0)) as u128;
            let added = elapsed * u128::from(self.per_minute) * 1_000_000 / MICROS_PER_MINUTE;
            self.level_millionths = (self.level_millionths + added).min(u128::from(self.capacity) * 1_000_000);
            self.updated = now;
        }
    }

    /// Takes `amount` units if the bucket holds them; otherwise says how long until it will
    /// (in microseconds; `None` if it never can, the amount exceeding the capacity).
    pub fn try_take(&mut self, amount: u64, now: Micros) -> Result<(), Option<i64>> {
        self.refill(now);
        let wanted = u128::from(amount) * 1_000_000;
        if wanted <= self.level_millionths {
            self.level_millionths -= wanted;
            return Ok(());
        }
        if amount > self.capacity || self.per_minute == 0 {
            return Err(None);
        }
        let missing = wanted - self.level_millionths;
        let wait = missing * MICROS_PER_MINUTE / (u128::from(self.per_minute) * 1_000_000);
        Err(Some(i64::try_from(wait + 1).unwrap_or(i64::MAX)))
    }

    /// A bucket as stored: its level in millionths of a unit, as of `updated`.
    pub fn from_stored(capacity: u64, per_minute: u64, level_millionths: u128, updated: Micros) -> TokenBucket {
        TokenBucket {
            capacity,
            per_minute,
            level_millionths: level_millionths.min(u128::from(capacity) * 1_000_000),
            updated,
        }
    }

    /// The level in millionths of a unit and when it was last brought up to date.
    pub fn stored(&self) -> (u128, Micros) {
        (self.level_millionths, self.updated)
    }

    /// Takes as much as it holds up to `want` (at least `need`), or, holding less than `need`,
    /// nothing, saying how long until it would hold `need`.
    pub fn take_up_to(&mut self, want: u64, need: u64, now: Micros) -> Result<u64, Option<i64>> {
        let available = self.available(now);
        if available < need {
            return self.try_take(need, now).map(|()| need);
        }
        let taken = want.max(need).min(available);
        self.try_take(taken, now).map(|()| taken)
    }

    /// Puts back units taken for a call that turned out to use fewer.
    pub fn give_back(&mut self, amount: u64, now: Micros) {
        self.refill(now);
        self.level_millionths =
            (self.level_millionths + u128::from(amount) * 1_000_000).min(u128::from(self.capacity) * 1_000_000);
    }

    /// Whole units available now.
    pub fn available(&mut self, now: Micros) -> u64 {
        self.refill(now);
        u64::try_from(self.level_millionths / 1_000_000).unwrap_or(u64::MAX)
    }
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

        #[test]
        fn admission_never_lets_committed_spend_pass_the_limit(
            limit in 0i64..1_000_000_000, spent in 0i64..1_000_000_000, reserved in 0i64..1_000_000_000,
            cost in 0i64..1_000_000_000,
        ) {
            let budgets = [(Limits { usd: Nanos(limit), tokens: None }, Usage { spent: Nanos(spent), reserved: Nanos(reserved), ..Default::default() })];
            let admitted = admit(&budgets, Nanos(cost), 0).is_ok();
            prop_assert_eq!(admitted, spent + reserved + cost <= limit);
        }

        #[test]
        fn pools_never_lend_past_the_limit_and_lend_what_is_needed_when_it_is_there(
            limit in 0i64..1_000_000, taken in 0i64..1_200_000, want in 0i64..100_000, need in 0i64..100_000,
            token_limit in proptest::option::of(0u64..10_000), taken_tokens in 0u64..12_000, need_tokens in 0u64..1_000,
        ) {
            let limits = Limits { usd: Nanos(limit), tokens: token_limit };
            let taken = Amount { cost: Nanos(taken), tokens: taken_tokens };
            let need = Amount { cost: Nanos(need), tokens: if token_limit.is_some() { need_tokens } else { 0 } };
            let want = Amount { cost: Nanos(want), tokens: lease_size(&limits).tokens };
            let fits = taken.cost.0 + need.cost.0 <= limit
                && token_limit.is_none_or(|t| taken_tokens + need.tokens <= t);
            match grant_lease(&limits, taken, want, need) {
                None => prop_assert!(!fits),
                Some(granted) => {
                    prop_assert!(fits);
                    prop_assert!(granted.cost >= need.cost && granted.tokens >= need.tokens);
                    // Whatever was committed before, lending never takes the total past the limit
                    // (a pool already over it lends nothing more).
                    prop_assert!(taken.cost.0 + granted.cost.0 <= limit.max(taken.cost.0 + need.cost.0));
                    prop_assert!(granted.cost.0 == 0 || taken.cost.0 + granted.cost.0 <= limit);
                    if let Some(t) = token_limit {
                        prop_assert!(granted.tokens == 0 || taken_tokens + granted.tokens <= t);
                    } else {
                        prop_assert_eq!(granted.tokens, 0);
                    }
                }
            }
        }

        #[test]
        fn taking_up_to_a_want_never_takes_more_than_the_bucket_holds(
            capacity in 1u64..10_000, level in 0u64..10_000, want in 0u64..20_000, need in 0u64..20_000,
        ) {
            let stored = u128::from(level.min(capacity)) * 1_000_000;
            let mut bucket = TokenBucket::from_stored(capacity, 60, stored, Micros(0));
            let held = level.min(capacity);
            match bucket.take_up_to(want, need, Micros(0)) {
                Ok(taken) => {
                    prop_assert!(taken >= need && taken <= held && (taken >= want.min(held)));
                    prop_assert_eq!(bucket.available(Micros(0)), held - taken);
                }
                Err(_) => {
                    prop_assert!(need > held);
                    prop_assert_eq!(bucket.available(Micros(0)), held, "a refusal takes nothing");
                }
            }
        }

        #[test]
        fn buckets_never_exceed_capacity_nor_go_negative(
            capacity in 1u64..10_000, per_minute in 0u64..100_000, steps in proptest::collection::vec((0i64..10_000_000, 0u64..2_000), 1..50),
        ) {
            let mut bucket = TokenBucket::full(capacity, per_minute, Micros(0));
            let (mut now, mut taken_total, mut start_level) = (0i64, 0u128, capacity as u128);
            for (advance, amount) in steps {
                now += advance;
                if bucket.try_take(amount, Micros(now)).is_ok() {
                    taken_total += u128::from(amount);
                }
                prop_assert!(bucket.available(Micros(now)) <= capacity);
            }
            // Nothing can be taken beyond the start level plus what refilled.
            start_level += (now as u128) * u128::from(per_minute) / 60_000_000;
            prop_assert!(taken_total <= start_level);
        }
    }

    #[test]
    fn admission_is_all_or_nothing_and_names_the_budget() {
        let roomy = (
            Limits {
                usd: Nanos(1_000),
                tokens: None,
            },
            Usage::default(),
        );
        let tight = (
            Limits {
                usd: Nanos(1_000),
                tokens: None,
            },
            Usage {
                spent: Nanos(900),
                reserved: Nanos(50),
                ..Default::default()
            },
        );
        let refused = admit(&[roomy, tight], Nanos(100), 0).unwrap_err();
        assert_eq!(
            (refused.budget, refused.spent, refused.reserved),
            (1, Nanos(900), Nanos(50))
        );
        assert!(admit(&[roomy, tight], Nanos(50), 0).is_ok());
        let tokens = (
            Limits {
                usd: Nanos(1_000_000),
                tokens: Some(1_000),
            },
            Usage {
                spent_tokens: 900,
                ..Default::default()
            },
        );
        assert!(admit(&[tokens], Nanos(1), 101).unwrap_err().tokens);
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
