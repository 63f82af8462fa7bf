//! The ledger of one instance's slices: admission all or nothing, settlement, release, giving
//! back, and each loaded budget's spend (see [`crate::limits`]).

use std::collections::HashMap;

use crate::Micros;
use crate::budgets::{self, Action, Alert, Budget, Window};
use crate::keys::RateLimits;
use crate::money::Nanos;
use crate::usage::Attribution;

use super::amount::{Amount, Resource};
use super::pool::{Pool, PoolId};

/// A budget slice not drawn on for this long is given back to its pool.
pub const BUDGET_IDLE_MICROS: i64 = 10_000_000;

/// Units of a key's bucket held and not drawn on for this long go back to the shared bucket
/// (sooner than budgets: a minute's allowance is small, and another instance may be waiting).
pub const KEY_IDLE_MICROS: i64 = 2_000_000;

/// After a budget's pool refuses, calls that need as much are refused from memory for this
/// long instead of each asking the store again (a capped agent retrying in a loop costs no
/// queries). Key buckets are not remembered so: they refill continuously and say themselves
/// when to retry.
pub const DRY_POOL_MICROS: i64 = 1_000_000;

/// When to retry a call refused because other calls kept taking what was borrowed for it.
pub const CONTENDED_RETRY_MICROS: i64 = 1_000_000;

/// A call asking to be admitted: who makes it, and its worst case.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub key_id: &'a str,
    /// The key's own rate limits.
    pub rates: RateLimits,
    pub who: &'a Attribution,
    /// The most the call can cost; `None` when its model has no price, so that its cost
    /// cannot be bounded (refused wherever a hard cap applies).
    pub cost: Option<Nanos>,
    /// The most tokens (of every kind) it can use.
    pub tokens: u64,
}

/// A finished call's real usage, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct Spent<'a> {
    pub key_id: &'a str,
    pub who: &'a Attribution,
    /// When the call was made (the budget windows it counts in).
    pub at: Micros,
    pub cost: Nanos,
    pub tokens: u64,
}

/// What a look at the ledger found for a call.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// Room in every slice: the call holds it now.
    Admitted(Hold),
    /// Refused without asking the store (a budget's pool known dry, or a model without price
    /// under a hard cap).
    Refused(Refusal),
    /// These pools must lend this instance more before the call fits.
    Short(Shortfalls),
}

/// The pools a call is short of — at least one — in the order to borrow from them: a key's
/// buckets first, so that a call over its key's rate limit is refused as such even where a
/// budget would refuse it too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfalls {
    first: Shortfall,
    rest: Vec<Shortfall>,
}

impl Shortfalls {
    fn of(all: Vec<Shortfall>) -> Option<Shortfalls> {
        let mut all = all.into_iter();
        Some(Shortfalls {
            first: all.next()?,
            rest: all.collect(),
        })
    }

    pub fn first(&self) -> &Shortfall {
        &self.first
    }

    pub fn iter(&self) -> impl Iterator<Item = &Shortfall> {
        std::iter::once(&self.first).chain(&self.rest)
    }
}

/// A pool whose slice is too short for a call, and by how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    pub pool: Pool,
    pub need: Amount,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Budget(BudgetRefusal),
    Rate(RateRefusal),
}

/// What a budget refused a call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The call's worst case would take this resource past the budget's limit.
    Limit(Resource),
    /// The model has no price, so the call's worst case cannot be bounded.
    Unpriced,
}

/// Why a budget refused a call: the budget, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRefusal {
    pub budget_id: String,
    pub scope: String,
    pub limit: Nanos,
    pub spent: Nanos,
    /// What calls in flight through this instance hold of it.
    pub reserved: Nanos,
    pub window_start: Micros,
    pub resets_at: Option<Micros>,
    pub cause: Cause,
}

/// Why a key's rate limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateRefusal {
    pub resource: Resource,
    /// The per-minute limit.
    pub limit: u64,
    /// When the call could go through, if it ever can (microseconds).
    pub retry_after: Option<i64>,
}

/// A call's hold on the pools it was admitted against: settle it or release it, exactly once.
#[must_use = "a hold keeps room in its pools until it is settled or released"]
#[derive(Debug, PartialEq, Eq)]
pub struct Hold {
    draws: Vec<Draw>,
}

/// What a hold reserves of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draw {
    pub pool: PoolId,
    pub reserved: Amount,
}

impl Hold {
    pub fn draws(&self) -> &[Draw] {
        &self.draws
    }
}

/// A pool refused to lend: why the call is refused, and what this instance gives back of
/// its slice (so that another instance's call may fit in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub refusal: Refusal,
    pub give_back: Option<GiveBack>,
}

/// Part of a slice this instance returns to its pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiveBack {
    pub pool: Pool,
    pub unused: Amount,
}

/// Which slices [`Ledger::idle`] gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Those not drawn on for their kind's idle time ([`BUDGET_IDLE_MICROS`],
    /// [`KEY_IDLE_MICROS`]).
    Lapsed,
    /// All of them (the instance stops).
    All,
}

/// A loaded budget, its current window and what it has spent in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetWindow {
    pub budget: Budget,
    pub window: Window,
    pub spent: Amount,
}

/// Where a loaded budget stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub budget_id: String,
    pub spent: Nanos,
    /// What calls in flight through this instance hold of it.
    pub reserved: Nanos,
}

/// This instance's share of one pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slice {
    /// Borrowed from the pool and not given back.
    held: Amount,
    /// What calls admitted against it used (settled calls, and requests made).
    used: Amount,
    /// The worst cases of admitted calls in flight.
    reserved: Amount,
    /// The part of `held` this instance lent itself while the store was unreachable (see
    /// [`Ledger::lend_own`]) and has not yet reported to the pool: never given back.
    own: Amount,
    last_drawn: Micros,
    dry: Option<Dry>,
}

/// The pool refused `need` and is taken to be dry for as much until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dry {
    until: Micros,
    need: Amount,
}

impl Slice {
    fn committed(&self) -> Amount {
        self.used.saturating_add(self.reserved)
    }

    /// What the slice holds that no call uses or reserves.
    fn spare(&self) -> Amount {
        self.held.saturating_sub(self.committed())
    }

    /// What must be borrowed before `draw` fits (zero if it fits).
    fn shortfall(&self, draw: Amount) -> Amount {
        self.committed().saturating_add(draw).saturating_sub(self.held)
    }

    fn known_dry(&self, need: Amount, now: Micros) -> bool {
        self.dry.is_some_and(|dry| now < dry.until && need.covers(dry.need))
    }

    /// Takes `draw` out of the slice: a request is used by being made; the rest is reserved.
    fn draw(&mut self, draw: Amount, now: Micros) -> Amount {
        let made = draw.only(|r| r == Resource::Requests);
        let reserved = draw.saturating_sub(made);
        self.used = self.used.saturating_add(made);
        self.reserved = self.reserved.saturating_add(reserved);
        self.last_drawn = now;
        reserved
    }

    /// Takes the spare part off the slice, to give it back: all of it but what this instance
    /// lent itself, which the pool never lent.
    fn take_spare(&mut self) -> Amount {
        let spare = self.spare().saturating_sub(self.own);
        self.held = self.held.saturating_sub(spare);
        spare
    }

    /// Drops the spare part of what this instance lent itself (a key's: its bucket is not told,
    /// and takes nothing back).
    fn drop_own(&mut self) {
        let dropped = self.spare().min(self.own);
        self.held = self.held.saturating_sub(dropped);
        self.own = Amount::ZERO;
    }

    fn lapsed(&self, now: Micros, idle: Idle, after: i64) -> bool {
        match idle {
            Idle::All => true,
            Idle::Lapsed => now.0.saturating_sub(self.last_drawn.0) >= after,
        }
    }
}

#[derive(Debug, Clone)]
struct LiveBudget {
    budget: Budget,
    window: Window,
    /// Spend in the window as seeded from the store plus what was settled here since.
    spent: Amount,
    /// Kept for blocking budgets only (the others admit everything).
    slice: Slice,
}

impl LiveBudget {
    fn is(&self, pool: &PoolId) -> bool {
        matches!(pool, PoolId::Budget { id, window_start } if *id == self.budget.id && *window_start == self.window.start)
    }

    fn blocks(&self, key_id: &str, who: &Attribution) -> bool {
        self.budget.action == Action::Block && self.budget.scope.applies(key_id, who)
    }

    /// The part of `amount` the budget counts: cost, and tokens if it limits them.
    fn counted(&self, amount: Amount) -> Amount {
        let tokens = self.budget.token_limit.is_some();
        amount.only(|r| r == Resource::Cost || (r == Resource::Tokens && tokens))
    }

    fn pool(&self) -> Pool {
        Pool::Budget {
            budget: self.budget.clone(),
            window: self.window,
        }
    }

    fn id(&self) -> PoolId {
        PoolId::Budget {
            id: self.budget.id.clone(),
            window_start: self.window.start,
        }
    }

    fn refusal(&self, cause: Cause) -> BudgetRefusal {
        BudgetRefusal {
            budget_id: self.budget.id.clone(),
            scope: budgets::scope_label(&self.budget.scope),
            limit: self.budget.limit,
            spent: self.spent.cost,
            reserved: self.slice.reserved.cost,
            window_start: self.window.start,
            resets_at: self.window.end,
            cause,
        }
    }
}

/// This instance's share of one of a key's buckets.
#[derive(Debug, Clone, Copy)]
struct KeyPool {
    resource: Resource,
    /// The limit when last seen, to give back to the right bucket.
    per_minute: u64,
    slice: Slice,
}

/// What one instance holds of every pool, and each loaded budget's spend.
#[derive(Debug, Default)]
pub struct Ledger {
    budgets: Vec<LiveBudget>,
    /// By key id.
    keys: HashMap<String, Vec<KeyPool>>,
    /// What this instance lent itself of each pool while the store was unreachable, in the
    /// pool's current period (a budget's window, or a key's minute) starting then.
    lent_own: HashMap<PoolId, (Micros, Amount)>,
}

/// What a call draws on each of its key's buckets (with the bucket's per-minute limit): one
/// request, and its worst-case tokens — or the whole minute's allowance for a call bigger than
/// that, which would otherwise never fit (it is charged the allowance instead of being refused
/// forever).
fn key_draws(call: &Call<'_>) -> impl Iterator<Item = (Resource, u64, Amount)> {
    let rates = call.rates;
    [
        rates
            .requests_per_minute
            .map(|rpm| (Resource::Requests, rpm, Amount::of(Resource::Requests, 1))),
        rates.tokens_per_minute.map(|tpm| {
            (
                Resource::Tokens,
                tpm,
                Amount::of(Resource::Tokens, call.tokens.min(tpm)),
            )
        }),
    ]
    .into_iter()
    .flatten()
}

/// What the budgets that apply to a call make of it.
enum BudgetVerdict {
    Fits(Vec<usize>),
    Short(Vec<Shortfall>),
    Refused(BudgetRefusal),
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Replaces the loaded budgets (budgets changed, a window rolled over, spend re-seeded).
    /// What is held and reserved of a budget's window is carried over while the budget and
    /// its window stay; slices of budgets gone or windows ended are dropped with them.
    pub fn load(&mut self, budgets: Vec<BudgetWindow>) {
        let mut fresh: Vec<LiveBudget> = budgets
            .into_iter()
            .map(|b| LiveBudget {
                budget: b.budget,
                window: b.window,
                spent: b.spent,
                slice: Slice::default(),
            })
            .collect();
        for live in &mut fresh {
            if let Some(old) = self
                .budgets
                .iter()
                .find(|o| o.budget.id == live.budget.id && o.window == live.window)
            {
                live.slice = old.slice;
            }
        }
        self.budgets = fresh;
    }

    /// The ids of the loaded budgets, in the order they were loaded.
    pub fn budget_ids(&self) -> impl Iterator<Item = &str> {
        self.budgets.iter().map(|b| b.budget.id.as_str())
    }

    /// Whether any loaded budget's window has ended by `now` (then budgets are reloaded).
    pub fn needs_reload(&self, now: Micros) -> bool {
        self.budgets.iter().any(|b| b.window.end.is_some_and(|end| now >= end))
    }

    /// Each loaded budget with its window and what it has spent in it.
    pub fn snapshot(&self) -> Vec<BudgetWindow> {
        self.budgets
            .iter()
            .map(|b| BudgetWindow {
                budget: b.budget.clone(),
                window: b.window,
                spent: b.spent,
            })
            .collect()
    }

    /// What each loaded budget has spent and has reserved by calls in flight.
    pub fn standing(&self) -> Vec<Standing> {
        self.budgets
            .iter()
            .map(|b| Standing {
                budget_id: b.budget.id.clone(),
                spent: b.spent.cost,
                reserved: b.slice.reserved.cost,
            })
            .collect()
    }

    /// Admits `call` against every pool that applies to it if each slice has room for it,
    /// all or nothing (see [`Check`]).
    pub fn check(&mut self, call: &Call<'_>, now: Micros) -> Check {
        let keys_short = self.key_shortfalls(call);
        let (short, applicable) = match self.budget_verdict(call, now) {
            BudgetVerdict::Fits(applicable) => (keys_short, applicable),
            BudgetVerdict::Short(budgets_short) => ([keys_short, budgets_short].concat(), Vec::new()),
            // The key's own limits are settled first: a budget's refusal waits on them.
            BudgetVerdict::Refused(refusal) if keys_short.is_empty() => {
                return Check::Refused(Refusal::Budget(refusal));
            }
            BudgetVerdict::Refused(_) => (keys_short, Vec::new()),
        };
        if let Some(short) = Shortfalls::of(short) {
            return Check::Short(short);
        }
        let mut draws = Vec::with_capacity(applicable.len() + 1);
        if let Some(pools) = self.keys.get_mut(call.key_id) {
            for (resource, _, draw) in key_draws(call) {
                let Some(pool) = pools.iter_mut().find(|p| p.resource == resource) else {
                    continue;
                };
                let reserved = pool.slice.draw(draw, now);
                if !reserved.is_zero() {
                    draws.push(Draw {
                        pool: PoolId::Key {
                            key_id: call.key_id.to_owned(),
                            resource,
                        },
                        reserved,
                    });
                }
            }
        }
        let worst = Amount {
            cost: call.cost.unwrap_or(Nanos::ZERO),
            tokens: call.tokens,
            requests: 0,
        };
        for index in applicable {
            let live = &mut self.budgets[index];
            let reserved = live.slice.draw(live.counted(worst), now);
            draws.push(Draw {
                pool: live.id(),
                reserved,
            });
        }
        Check::Admitted(Hold { draws })
    }

    /// The key's buckets whose slices are short for the call (noting the key's limits).
    fn key_shortfalls(&mut self, call: &Call<'_>) -> Vec<Shortfall> {
        let mut short = Vec::new();
        if call.rates.requests_per_minute.is_none() && call.rates.tokens_per_minute.is_none() {
            return short;
        }
        // Looked up before inserting: most calls find their key, and need not copy its id.
        if !self.keys.contains_key(call.key_id) {
            self.keys.insert(call.key_id.to_owned(), Vec::new());
        }
        let Some(pools) = self.keys.get_mut(call.key_id) else {
            return short;
        };
        for (resource, per_minute, draw) in key_draws(call) {
            let index = match pools.iter().position(|p| p.resource == resource) {
                Some(index) => index,
                None => {
                    pools.push(KeyPool {
                        resource,
                        per_minute,
                        slice: Slice::default(),
                    });
                    pools.len() - 1
                }
            };
            let pool = &mut pools[index];
            pool.per_minute = per_minute;
            let need = pool.slice.shortfall(draw);
            if !need.is_zero() {
                short.push(Shortfall {
                    pool: Pool::Key {
                        key_id: call.key_id.to_owned(),
                        resource,
                        per_minute,
                    },
                    need,
                });
            }
        }
        short
    }

    fn budget_verdict(&self, call: &Call<'_>, now: Micros) -> BudgetVerdict {
        let applicable: Vec<usize> = (0..self.budgets.len())
            .filter(|&i| self.budgets[i].blocks(call.key_id, call.who))
            .collect();
        let Some(cost) = call.cost else {
            return match applicable.first() {
                Some(&i) => BudgetVerdict::Refused(self.budgets[i].refusal(Cause::Unpriced)),
                None => BudgetVerdict::Fits(applicable),
            };
        };
        let worst = Amount {
            cost,
            tokens: call.tokens,
            requests: 0,
        };
        let mut short = Vec::new();
        for &i in &applicable {
            let live = &self.budgets[i];
            let need = live.slice.shortfall(live.counted(worst));
            let Some(resource) = need.first() else {
                continue;
            };
            if live.slice.known_dry(need, now) {
                return BudgetVerdict::Refused(live.refusal(Cause::Limit(resource)));
            }
            short.push(Shortfall {
                pool: live.pool(),
                need,
            });
        }
        if short.is_empty() {
            BudgetVerdict::Fits(applicable)
        } else {
            BudgetVerdict::Short(short)
        }
    }

    /// Adds what a pool lent to this instance's slice of it.
    pub fn credit(&mut self, pool: &PoolId, granted: Amount) {
        if let Some(slice) = self.slice_mut(pool) {
            slice.held = slice.held.saturating_add(granted);
        }
    }

    /// The store could not be reached to lend `shortfall`, and its pool fails open with
    /// `percent`: lends the need on this instance's own authority if all it has so lent of
    /// the pool stays within the allowance — `percent` of a budget's limits in each of its
    /// windows, or a key's whole per-minute limit in each minute. Returns whether it did.
    ///
    /// What an instance lends itself is never given back (the pool did not lend it); a
    /// budget's is to be [reported](Ledger::unreported) to its pool once the store is back,
    /// so that the pool counts it as lent; a key's is dropped when idle slices are given back.
    pub fn lend_own(&mut self, shortfall: &Shortfall, percent: u32, now: Micros) -> bool {
        let (allowance, period) = match &shortfall.pool {
            Pool::Budget { budget, window } => (fail_open_allowance(budget, percent), window.start),
            Pool::Key {
                resource, per_minute, ..
            } => (
                Amount::of(*resource, *per_minute),
                now.floor_to(crate::time::MICROS_PER_MINUTE),
            ),
        };
        let id = shortfall.pool.id();
        let lent = match self.lent_own.get(&id) {
            Some(&(since, lent)) if since == period => lent,
            _ => Amount::ZERO,
        };
        let lent = lent.saturating_add(shortfall.need);
        if !allowance.covers(lent) {
            return false;
        }
        let Some(slice) = self.slice_mut(&id) else {
            return false;
        };
        slice.held = slice.held.saturating_add(shortfall.need);
        slice.own = slice.own.saturating_add(shortfall.need);
        self.lent_own.insert(id, (period, lent));
        true
    }

    /// What this instance lent itself of loaded budgets' pools and has not reported yet.
    pub fn unreported(&self) -> Vec<(Pool, Amount)> {
        self.budgets
            .iter()
            .filter(|live| !live.slice.own.is_zero())
            .map(|live| (live.pool(), live.slice.own))
            .collect()
    }

    /// The pool now counts `amount` of what this instance lent itself as lent to it.
    pub fn reported(&mut self, pool: &PoolId, amount: Amount) {
        if let Some(slice) = self.slice_mut(pool) {
            slice.own = slice.own.saturating_sub(amount);
        }
    }

    /// The store would not lend `shortfall`: the call's refusal, and (for a budget) what is
    /// left of this instance's slice to give back, the pool being taken as dry for a while.
    /// `retry_after` is what a key's bucket said about when it will hold the need.
    pub fn refused(&mut self, shortfall: &Shortfall, retry_after: Option<i64>, now: Micros) -> Refused {
        match &shortfall.pool {
            Pool::Key {
                resource, per_minute, ..
            } => Refused {
                refusal: Refusal::Rate(RateRefusal {
                    resource: *resource,
                    limit: *per_minute,
                    retry_after,
                }),
                give_back: None,
            },
            Pool::Budget { budget, window } => {
                let cause = Cause::Limit(shortfall.need.first().unwrap_or(Resource::Cost));
                let id = shortfall.pool.id();
                let Some(live) = self.budgets.iter_mut().find(|b| b.is(&id)) else {
                    return Refused {
                        refusal: Refusal::Budget(forgotten(budget, *window, cause)),
                        give_back: None,
                    };
                };
                let spare = live.slice.take_spare();
                live.slice.dry = Some(Dry {
                    until: Micros(now.0.saturating_add(DRY_POOL_MICROS)),
                    need: shortfall.need,
                });
                Refused {
                    refusal: Refusal::Budget(live.refusal(cause)),
                    give_back: (!spare.is_zero()).then(|| GiveBack {
                        pool: live.pool(),
                        unused: spare,
                    }),
                }
            }
        }
    }

    /// The refusal of a call still short after every borrow it was allowed: other calls kept
    /// taking what was borrowed. It reports where the budget really stands.
    pub fn contended(&self, short: &Shortfalls) -> Refusal {
        let shortfall = short.first();
        match &shortfall.pool {
            Pool::Key {
                resource, per_minute, ..
            } => Refusal::Rate(RateRefusal {
                resource: *resource,
                limit: *per_minute,
                retry_after: Some(CONTENDED_RETRY_MICROS),
            }),
            Pool::Budget { budget, window } => {
                let cause = Cause::Limit(shortfall.need.first().unwrap_or(Resource::Cost));
                let id = shortfall.pool.id();
                Refusal::Budget(match self.budgets.iter().find(|b| b.is(&id)) {
                    Some(live) => live.refusal(cause),
                    None => forgotten(budget, *window, cause),
                })
            }
        }
    }

    /// Replaces the hold's reservations by what the call really used, and adds its cost to
    /// every budget it counts against (alert-only ones too) within their current windows.
    /// Returns the threshold alerts this raised.
    ///
    /// A budget's slice is charged what the call cost, beyond its worst case too (the pool
    /// counts the slices it lent as spent, so they must cover real spend); a key's bucket at
    /// most what the call was admitted for (a call is never refused after the fact, and one
    /// bigger than the allowance was charged the allowance).
    pub fn settle(&mut self, hold: Hold, spent: &Spent<'_>) -> Vec<Alert> {
        let actual = Amount {
            cost: spent.cost,
            tokens: spent.tokens,
            requests: 0,
        };
        for draw in hold.draws {
            match &draw.pool {
                PoolId::Budget { .. } => {
                    if let Some(live) = self.budgets.iter_mut().find(|b| b.is(&draw.pool)) {
                        let used = live.counted(actual);
                        live.slice.reserved = live.slice.reserved.saturating_sub(draw.reserved);
                        live.slice.used = live.slice.used.saturating_add(used);
                    }
                }
                PoolId::Key { .. } => {
                    if let Some(slice) = self.slice_mut(&draw.pool) {
                        slice.reserved = slice.reserved.saturating_sub(draw.reserved);
                        slice.used = slice.used.saturating_add(actual.min(draw.reserved));
                    }
                }
            }
        }
        let mut crossed = Vec::new();
        for live in self.budgets.iter_mut() {
            let in_window = spent.at >= live.window.start && live.window.end.is_none_or(|end| spent.at < end);
            if !in_window || !live.budget.scope.applies(spent.key_id, spent.who) {
                continue;
            }
            let before = live.spent.cost;
            live.spent = live.spent.saturating_add(Amount { requests: 1, ..actual });
            let thresholds =
                budgets::crossed_thresholds(before, live.spent.cost, live.budget.limit, &live.budget.thresholds);
            for percent in thresholds {
                crossed.push(Alert::threshold(
                    &live.budget,
                    live.window,
                    percent,
                    live.spent.cost,
                    spent.at,
                ));
            }
        }
        crossed
    }

    /// Takes the hold's reservations off its pools: the call ended without a record.
    pub fn release(&mut self, hold: Hold) {
        for draw in hold.draws {
            if let Some(slice) = self.slice_mut(&draw.pool) {
                slice.reserved = slice.reserved.saturating_sub(draw.reserved);
            }
        }
    }

    /// Takes what slices hold and no call uses off them, to give back to their pools: the
    /// slices `idle` names.
    pub fn idle(&mut self, now: Micros, idle: Idle) -> Vec<GiveBack> {
        let mut unused = Vec::new();
        for live in &mut self.budgets {
            if live.slice.lapsed(now, idle, BUDGET_IDLE_MICROS) {
                let spare = live.slice.take_spare();
                if !spare.is_zero() {
                    unused.push(GiveBack {
                        pool: live.pool(),
                        unused: spare,
                    });
                }
            }
        }
        for (key_id, pools) in &mut self.keys {
            for pool in pools.iter_mut() {
                pool.slice.drop_own();
                if pool.slice.lapsed(now, idle, KEY_IDLE_MICROS) {
                    let spare = pool.slice.take_spare();
                    if !spare.is_zero() {
                        unused.push(GiveBack {
                            pool: Pool::Key {
                                key_id: key_id.clone(),
                                resource: pool.resource,
                                per_minute: pool.per_minute,
                            },
                            unused: spare,
                        });
                    }
                }
            }
            // Nothing held for a call in flight or spare: the key is forgotten until it calls again.
            pools.retain(|p| !p.slice.reserved.is_zero() || !p.slice.spare().is_zero());
        }
        self.keys.retain(|_, pools| !pools.is_empty());
        let minute = now.floor_to(crate::time::MICROS_PER_MINUTE);
        let budgets = &self.budgets;
        self.lent_own.retain(|pool, (since, _)| match pool {
            PoolId::Budget { .. } => budgets.iter().any(|live| live.is(pool)),
            PoolId::Key { .. } => *since == minute,
        });
        unused
    }

    fn slice_mut(&mut self, pool: &PoolId) -> Option<&mut Slice> {
        match pool {
            PoolId::Budget { .. } => self.budgets.iter_mut().find(|b| b.is(pool)).map(|b| &mut b.slice),
            PoolId::Key { key_id, resource } => self
                .keys
                .get_mut(key_id)?
                .iter_mut()
                .find(|p| p.resource == *resource)
                .map(|p| &mut p.slice),
        }
    }
}

/// What an instance may lend itself of a budget's window failing open with `percent`:
/// `percent` of its cost limit, and of its token limit if it has one.
fn fail_open_allowance(budget: &Budget, percent: u32) -> Amount {
    let share = |limit: i128| limit * i128::from(percent) / 100;
    Amount {
        cost: Nanos(i64::try_from(share(i128::from(budget.limit.0))).unwrap_or(i64::MAX)),
        tokens: budget
            .token_limit
            .map_or(0, |t| u64::try_from(share(i128::from(t))).unwrap_or(u64::MAX)),
        requests: 0,
    }
}

/// The refusal of a budget reloaded away meanwhile (deleted, or its window ended): nothing is
/// known of its spend any more.
fn forgotten(budget: &Budget, window: Window, cause: Cause) -> BudgetRefusal {
    BudgetRefusal {
        budget_id: budget.id.clone(),
        scope: budgets::scope_label(&budget.scope),
        limit: budget.limit,
        spent: Nanos::ZERO,
        reserved: Nanos::ZERO,
        window_start: window.start,
        resets_at: window.end,
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budgets::{BudgetScope, Period};
    use crate::limits::{PoolLimits, TokenBucket, budget_limits, grant_lease};
    use proptest::prelude::*;

    const KEY: &str = "k";

    fn budget(id: &str, scope: BudgetScope, limit: i64, token_limit: Option<u64>, action: Action) -> Budget {
        Budget {
            id: id.into(),
            scope,
            period: Period::Total,
            limit: Nanos(limit),
            token_limit,
            action,
            thresholds: vec![50, 80, 100],
            timezone: "UTC".into(),
            created_at: Micros(0),
            when_unreachable: None,
        }
    }

    const FOREVER: Window = Window {
        start: Micros(0),
        end: None,
    };

    fn loaded(budgets: Vec<Budget>) -> Ledger {
        let mut ledger = Ledger::new();
        ledger.load(
            budgets
                .into_iter()
                .map(|budget| BudgetWindow {
                    budget,
                    window: FOREVER,
                    spent: Amount::ZERO,
                })
                .collect(),
        );
        ledger
    }

    fn alice() -> Attribution {
        Attribution {
            user: "alice".into(),
            team: Some("payments".into()),
            ..Default::default()
        }
    }

    fn call<'a>(who: &'a Attribution, rates: RateLimits, cost: Option<i64>, tokens: u64) -> Call<'a> {
        Call {
            key_id: KEY,
            rates,
            who,
            cost: cost.map(Nanos),
            tokens,
        }
    }

    fn budget_pool(id: &str) -> PoolId {
        PoolId::Budget {
            id: id.into(),
            window_start: FOREVER.start,
        }
    }

    fn key_pool(resource: Resource) -> PoolId {
        PoolId::Key {
            key_id: KEY.into(),
            resource,
        }
    }

    fn dollars(n: i64) -> Amount {
        Amount {
            cost: Nanos(n),
            ..Amount::ZERO
        }
    }

    /// Every slice the ledger keeps, by pool.
    fn slices(ledger: &Ledger) -> Vec<(PoolId, Slice)> {
        let mut all: Vec<(PoolId, Slice)> = ledger.budgets.iter().map(|b| (b.id(), b.slice)).collect();
        for (key_id, pools) in &ledger.keys {
            for pool in pools {
                let id = PoolId::Key {
                    key_id: key_id.clone(),
                    resource: pool.resource,
                };
                all.push((id, pool.slice));
            }
        }
        all.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
        all
    }

    fn admitted(check: Check) -> Hold {
        match check {
            Check::Admitted(hold) => hold,
            other => panic!("{other:?}"),
        }
    }

    fn shortfalls(check: Check) -> Vec<(PoolId, Amount)> {
        match check {
            Check::Short(short) => short.iter().map(|s| (s.pool.id(), s.need)).collect(),
            other => panic!("{other:?}"),
        }
    }

    /// Lends `call` itself, as the limiter does when the store is unreachable and the pools
    /// fail open with `percent`: every shortfall, or none admitted.
    fn check_failing_open(ledger: &mut Ledger, call: &Call<'_>, percent: u32, now: Micros) -> Option<Hold> {
        match ledger.check(call, now) {
            Check::Admitted(hold) => Some(hold),
            Check::Refused(_) => None,
            Check::Short(short) => {
                for shortfall in short.iter() {
                    if !ledger.lend_own(shortfall, percent, now) {
                        return None;
                    }
                }
                Some(admitted(ledger.check(call, now)))
            }
        }
    }

    #[test]
    fn failing_open_a_budget_lends_at_most_its_percent_per_window_and_keeps_it_until_reported() {
        let who = alice();
        let mut ledger = loaded(vec![budget(
            "team",
            BudgetScope::Team("payments".into()),
            1_000,
            Some(1_000),
            Action::Block,
        )]);
        let rates = RateLimits::default();
        // 10 % of 1,000 nanodollars and of 1,000 tokens: three calls of 30 and 20 tokens fit, a fourth does not.
        let mut holds = Vec::new();
        for _ in 0..3 {
            let hold = check_failing_open(&mut ledger, &call(&who, rates, Some(30), 20), 10, Micros(1));
            holds.push(hold.expect("within the allowance"));
        }
        assert!(check_failing_open(&mut ledger, &call(&who, rates, Some(30), 20), 10, Micros(1)).is_none());
        let pool = budget_pool("team");
        let spent = |ledger: &Ledger| {
            ledger
                .unreported()
                .iter()
                .map(|(p, a)| (p.id(), *a))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            spent(&ledger),
            vec![(
                pool.clone(),
                Amount {
                    tokens: 60,
                    ..dollars(90)
                }
            )]
        );
        // Settled below the worst case: the spare is the instance's own and is not given back.
        for hold in holds {
            let _ = ledger.settle(
                hold,
                &Spent {
                    key_id: KEY,
                    who: &who,
                    at: Micros(2),
                    cost: Nanos(10),
                    tokens: 5,
                },
            );
        }
        assert!(
            ledger.idle(Micros(i64::MAX / 2), Idle::All).is_empty(),
            "nothing the pool did not lend goes back"
        );
        // Once the pool counts it as lent, the spare goes back like any other.
        ledger.reported(
            &pool,
            Amount {
                tokens: 60,
                ..dollars(90)
            },
        );
        assert!(ledger.unreported().is_empty());
        let back = ledger.idle(Micros(i64::MAX / 2), Idle::All);
        assert_eq!(back.len(), 1);
        assert_eq!(
            back[0].unused,
            Amount {
                tokens: 45,
                ..dollars(60)
            }
        );
        // The allowance is per window: this one's is spent even after reporting.
        assert!(check_failing_open(&mut ledger, &call(&who, rates, Some(30), 20), 10, Micros(3)).is_none());
    }

    #[test]
    fn failing_open_a_key_lends_its_per_minute_limit_per_minute_and_never_gives_it_back() {
        let who = alice();
        let mut ledger = loaded(vec![]);
        let rates = RateLimits {
            requests_per_minute: Some(3),
            tokens_per_minute: None,
        };
        let minute = crate::time::MICROS_PER_MINUTE;
        for _ in 0..3 {
            let hold = check_failing_open(&mut ledger, &call(&who, rates, Some(0), 10), 5, Micros(minute + 1));
            ledger.release(hold.expect("within the key's own limit"));
        }
        assert!(check_failing_open(&mut ledger, &call(&who, rates, Some(0), 10), 5, Micros(minute + 2)).is_none());
        assert!(
            ledger.idle(Micros(minute + 3), Idle::All).is_empty(),
            "the bucket is never told"
        );
        assert!(ledger.unreported().is_empty(), "a key's bucket has nothing to be told");
        // The next minute brings the limit again.
        let next = Micros(2 * minute);
        assert!(check_failing_open(&mut ledger, &call(&who, rates, Some(0), 10), 5, next).is_some());
    }

    #[test]
    fn a_call_is_admitted_against_every_pool_at_once_or_against_none() {
        let who = alice();
        let mut ledger = loaded(vec![
            budget("team", BudgetScope::Team("payments".into()), 1_000, None, Action::Block),
            budget("org", BudgetScope::Org, 1_000, Some(100), Action::Block),
            budget("soft", BudgetScope::Org, 10, None, Action::Alert),
            budget("search", BudgetScope::Team("search".into()), 1, None, Action::Block),
        ]);
        let rates = RateLimits {
            requests_per_minute: Some(60),
            tokens_per_minute: Some(1_000),
        };
        // Nothing held yet: the key's buckets are asked first, the budgets with them.
        let short = shortfalls(ledger.check(&call(&who, rates, Some(300), 40), Micros(1)));
        assert_eq!(
            short,
            vec![
                (key_pool(Resource::Requests), Amount::of(Resource::Requests, 1)),
                (key_pool(Resource::Tokens), Amount::of(Resource::Tokens, 40)),
                (budget_pool("team"), dollars(300)),
                (
                    budget_pool("org"),
                    Amount {
                        tokens: 40,
                        ..dollars(300)
                    }
                ),
            ],
            "alert-only budgets and others' caps hold nothing back"
        );
        for (pool, need) in &short {
            ledger.credit(pool, *need);
        }
        let before = slices(&ledger);
        let hold = admitted(ledger.check(&call(&who, rates, Some(300), 40), Micros(1)));
        let held: Vec<&PoolId> = hold.draws().iter().map(|d| &d.pool).collect();
        assert_eq!(
            held,
            vec![&key_pool(Resource::Tokens), &budget_pool("team"), &budget_pool("org")],
            "the request was used by being made: nothing of it is held"
        );
        // Now everything is used or reserved: the next call is short everywhere, and is not
        // admitted anywhere.
        let after_first = slices(&ledger);
        assert_ne!(before, after_first);
        assert_eq!(
            shortfalls(ledger.check(&call(&who, rates, Some(1), 1), Micros(2))).len(),
            4
        );
        assert_eq!(slices(&ledger), after_first, "a call that does not fit takes nothing");
        ledger.release(hold);
        let released = slices(&ledger);
        for ((pool, old), (_, new)) in before.iter().zip(&released) {
            assert_eq!(old.reserved, new.reserved, "{pool:?}");
            assert_eq!(old.held, new.held, "{pool:?}");
        }
    }

    #[test]
    fn a_dry_pool_refuses_from_memory_for_a_second_then_is_asked_again() {
        let who = alice();
        let mut ledger = loaded(vec![budget(
            "cap",
            BudgetScope::User("alice".into()),
            10_000,
            None,
            Action::Block,
        )]);
        let none = RateLimits::default();
        ledger.credit(&budget_pool("cap"), dollars(1_000));
        let hold = admitted(ledger.check(&call(&who, none, Some(400), 0), Micros(0)));
        let short = match ledger.check(&call(&who, none, Some(900), 0), Micros(0)) {
            Check::Short(short) => short,
            other => panic!("{other:?}"),
        };
        assert_eq!(short.first().need, dollars(300));
        let refused = ledger.refused(short.first(), None, Micros(0));
        assert_eq!(
            refused.give_back.map(|g| g.unused),
            Some(dollars(600)),
            "what the slice has left goes back"
        );
        let Refusal::Budget(refusal) = refused.refusal else {
            panic!("{:?}", refused.refusal)
        };
        assert_eq!(
            (refusal.reserved, refusal.cause),
            (Nanos(400), Cause::Limit(Resource::Cost))
        );
        match ledger.check(&call(&who, none, Some(900), 0), Micros(DRY_POOL_MICROS - 1)) {
            Check::Refused(Refusal::Budget(r)) => assert_eq!(r.budget_id, "cap"),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(
                ledger.check(&call(&who, none, Some(100), 0), Micros(1)),
                Check::Short(_)
            ),
            "a smaller need asks again"
        );
        assert!(matches!(
            ledger.check(&call(&who, none, Some(900), 0), Micros(DRY_POOL_MICROS)),
            Check::Short(_)
        ));
        let crossed = ledger.settle(
            hold,
            &Spent {
                key_id: KEY,
                who: &who,
                at: Micros(5),
                cost: Nanos(5_000),
                tokens: 0,
            },
        );
        assert_eq!(crossed.len(), 1, "50 % of $10,000 nanos: {crossed:?}");
        assert_eq!(
            ledger.standing(),
            vec![Standing {
                budget_id: "cap".into(),
                spent: Nanos(5_000),
                reserved: Nanos::ZERO
            }]
        );
    }

    #[test]
    fn unpriced_models_are_refused_only_where_a_hard_cap_applies() {
        let who = alice();
        let mut ledger = loaded(vec![budget(
            "cap",
            BudgetScope::Team("search".into()),
            10_000,
            None,
            Action::Block,
        )]);
        assert!(matches!(
            ledger.check(&call(&who, RateLimits::default(), None, 10), Micros(0)),
            Check::Admitted(_)
        ));
        let bob = Attribution {
            user: "bob".into(),
            team: Some("search".into()),
            ..Default::default()
        };
        match ledger.check(&call(&bob, RateLimits::default(), None, 10), Micros(0)) {
            Check::Refused(Refusal::Budget(r)) => assert_eq!(r.cause, Cause::Unpriced),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refusal_after_contention_reports_where_the_budget_stands() {
        let who = alice();
        let mut ledger = loaded(vec![budget("cap", BudgetScope::Org, 10_000, Some(50), Action::Block)]);
        ledger.budgets[0].spent = Amount {
            cost: Nanos(7_000),
            tokens: 20,
            requests: 0,
        };
        ledger.credit(
            &budget_pool("cap"),
            Amount {
                cost: Nanos(1_000),
                tokens: 10,
                requests: 0,
            },
        );
        let _hold = admitted(ledger.check(&call(&who, RateLimits::default(), Some(800), 5), Micros(0)));
        let short = match ledger.check(&call(&who, RateLimits::default(), Some(100), 6), Micros(0)) {
            Check::Short(short) => short,
            other => panic!("{other:?}"),
        };
        let Refusal::Budget(refusal) = ledger.contended(&short) else {
            panic!()
        };
        assert_eq!(
            (refusal.spent, refusal.reserved, refusal.cause),
            (Nanos(7_000), Nanos(800), Cause::Limit(Resource::Tokens)),
            "the real figures, and the resource that ran short"
        );
    }

    #[test]
    fn idle_slices_are_given_back_by_their_kind_s_idle_time() {
        let who = alice();
        let mut ledger = loaded(vec![budget("cap", BudgetScope::Org, 10_000, None, Action::Block)]);
        let rates = RateLimits {
            requests_per_minute: Some(100),
            tokens_per_minute: None,
        };
        ledger.credit(&budget_pool("cap"), dollars(1_000));
        let short = shortfalls(ledger.check(&call(&who, rates, Some(100), 0), Micros(0)));
        ledger.credit(&short[0].0, Amount::of(Resource::Requests, 5));
        let hold = admitted(ledger.check(&call(&who, rates, Some(100), 0), Micros(0)));
        assert!(ledger.idle(Micros(KEY_IDLE_MICROS - 1), Idle::Lapsed).is_empty());
        let keys = ledger.idle(Micros(KEY_IDLE_MICROS), Idle::Lapsed);
        assert_eq!(keys.len(), 1);
        assert_eq!(
            (keys[0].pool.id(), keys[0].unused),
            (key_pool(Resource::Requests), Amount::of(Resource::Requests, 4))
        );
        let budgets = ledger.idle(Micros(BUDGET_IDLE_MICROS), Idle::Lapsed);
        assert_eq!(
            budgets[0].unused,
            dollars(900),
            "the call in flight keeps its reservation"
        );
        ledger.release(hold);
        let all = ledger.idle(Micros(BUDGET_IDLE_MICROS), Idle::All);
        assert_eq!(all[0].unused, dollars(100), "stopping gives back everything unused");
        assert!(ledger.keys.is_empty(), "a key with nothing held is forgotten");
    }

    #[test]
    fn reloading_keeps_slices_and_reservations_while_the_window_stays() {
        let who = alice();
        let cap = budget("cap", BudgetScope::Org, 10_000, None, Action::Block);
        let mut ledger = loaded(vec![cap.clone()]);
        ledger.credit(&budget_pool("cap"), dollars(5_000));
        let hold = admitted(ledger.check(&call(&who, RateLimits::default(), Some(4_000), 0), Micros(0)));
        ledger.load(vec![BudgetWindow {
            budget: cap.clone(),
            window: FOREVER,
            spent: dollars(100),
        }]);
        assert_eq!(ledger.standing()[0].reserved, Nanos(4_000));
        ledger.release(hold);
        assert!(matches!(
            ledger.check(&call(&who, RateLimits::default(), Some(5_000), 0), Micros(0)),
            Check::Admitted(_)
        ));
        let next = Window {
            start: Micros(1),
            end: None,
        };
        ledger.load(vec![BudgetWindow {
            budget: cap,
            window: next,
            spent: Amount::ZERO,
        }]);
        assert_eq!(ledger.budgets[0].slice, Slice::default(), "a new window starts empty");
    }

    /// One operation of an instance in the simulation below.
    #[derive(Debug, Clone)]
    enum Step {
        /// A call of this worst case (cost, tokens) through instance `.0`.
        Call(usize, i64, u64),
        /// The `.1`-th call in flight on instance `.0` ends, having used `.2` percent of its
        /// worst case (or no record: released).
        End(usize, usize, Option<u8>),
        Idle(usize, bool),
        /// Time passes (microseconds).
        Wait(i64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0usize..3, 0i64..3_000, 0u64..300).prop_map(|(i, c, t)| Step::Call(i, c, t)),
            3 => (0usize..3, 0usize..8, proptest::option::of(0u8..=100)).prop_map(|(i, n, p)| Step::End(i, n, p)),
            1 => (0usize..3, any::<bool>()).prop_map(|(i, all)| Step::Idle(i, all)),
            1 => (0i64..5_000_000).prop_map(Step::Wait),
        ]
    }

    /// The shared store of the simulation: one budget pool, one key's request bucket.
    struct Shared {
        limits: PoolLimits,
        lent: [Amount; 3],
        requests: TokenBucket,
    }

    impl Shared {
        fn borrow(&mut self, instance: usize, shortfall: &Shortfall, now: Micros) -> Result<Amount, Option<i64>> {
            let want = shortfall.pool.lease_size();
            match &shortfall.pool {
                Pool::Budget { .. } => {
                    let taken = self.lent.iter().fold(Amount::ZERO, |a, b| a.saturating_add(*b));
                    let granted = grant_lease(&self.limits, taken, want, shortfall.need).ok_or(None)?;
                    self.lent[instance] = self.lent[instance].saturating_add(granted);
                    Ok(granted)
                }
                Pool::Key { resource, .. } => self
                    .requests
                    .take_up_to(want.units(*resource), shortfall.need.units(*resource), now)
                    .map(|units| Amount::of(*resource, units)),
            }
        }

        fn give_back(&mut self, instance: usize, give_back: &GiveBack, now: Micros) {
            match &give_back.pool {
                Pool::Budget { .. } => self.lent[instance] = self.lent[instance].saturating_sub(give_back.unused),
                Pool::Key { .. } => self.requests.give_back(give_back.unused.requests, now),
            }
        }
    }

    /// The gateway's borrow loop, without IO.
    fn admit(ledger: &mut Ledger, shared: &mut Shared, instance: usize, call: &Call<'_>, now: Micros) -> Option<Hold> {
        for _ in 0..4 {
            let short = match ledger.check(call, now) {
                Check::Admitted(hold) => return Some(hold),
                Check::Refused(_) => return None,
                Check::Short(short) => short,
            };
            for shortfall in short.iter() {
                match shared.borrow(instance, shortfall, now) {
                    Ok(granted) => ledger.credit(&shortfall.pool.id(), granted),
                    Err(wait) => {
                        let refused = ledger.refused(shortfall, wait, now);
                        if let Some(give_back) = &refused.give_back {
                            shared.give_back(instance, give_back, now);
                        }
                        return None;
                    }
                }
            }
        }
        None
    }

    proptest! {
        /// However calls come and settle, what an instance admits of a budget failing open is
        /// what the pool lent it plus at most `percent` of the limit.
        #[test]
        fn failing_open_never_admits_past_the_lent_slices_plus_the_allowance(
            limit in 1i64..1_000_000,
            lent in 0i64..1_000_000,
            percent in 1u32..=100,
            calls in proptest::collection::vec((1i64..50_000, 0i64..60_000, any::<bool>()), 1..60),
        ) {
            let who = alice();
            let mut ledger = loaded(vec![budget("b", BudgetScope::Org, limit, None, Action::Block)]);
            let pool = budget_pool("b");
            ledger.credit(&pool, dollars(lent));
            let mut admitted_worst = 0i64;
            let mut holds = Vec::new();
            for (worst, used, settle) in calls {
                if let Some(hold) = check_failing_open(&mut ledger, &call(&who, RateLimits::default(), Some(worst), 0), percent, Micros(1)) {
                    admitted_worst += worst;
                    if settle {
                        let _ = ledger.settle(hold, &Spent { key_id: KEY, who: &who, at: Micros(1), cost: Nanos(used.min(worst)), tokens: 0 });
                    } else {
                        holds.push(hold);
                    }
                }
            }
            let own: i64 = ledger.unreported().iter().map(|(_, a)| a.cost.0).sum();
            prop_assert!(own <= i64::try_from(i128::from(limit) * i128::from(percent) / 100).unwrap());
            let slice = slices(&ledger)[0].1;
            prop_assert!(slice.committed().cost.0 <= lent + own, "{:?}", slice);
            prop_assert!(admitted_worst >= 0);
            holds.into_iter().for_each(|hold| ledger.release(hold));
            let back: i64 = ledger.idle(Micros(i64::MAX / 2), Idle::All).iter().map(|g| g.unused.cost.0).sum();
            prop_assert!(back <= lent, "gave back {back} of {lent} lent");
        }

        #[test]
        fn concurrent_borrowers_never_exceed_the_pool(
            limit in 0i64..20_000, token_limit in proptest::option::of(0u64..2_000), rpm in 1u64..40,
            steps in proptest::collection::vec(step(), 1..120),
        ) {
            let who = alice();
            let cap = budget("cap", BudgetScope::Org, limit, token_limit, Action::Block);
            let mut ledgers: Vec<Ledger> = (0..3).map(|_| loaded(vec![cap.clone()])).collect();
            let mut in_flight: Vec<Vec<(Hold, Amount)>> = vec![Vec::new(), Vec::new(), Vec::new()];
            let mut shared = Shared {
                limits: budget_limits(&cap),
                lent: [Amount::ZERO; 3],
                requests: TokenBucket::full(rpm, rpm, Micros(0)),
            };
            let rates = RateLimits { requests_per_minute: Some(rpm), tokens_per_minute: None };
            let (mut now, mut requests_made) = (0i64, 0u64);
            for step in steps {
                match step {
                    Step::Call(i, cost, tokens) => {
                        let call = call(&who, rates, Some(cost), tokens);
                        if let Some(hold) = admit(&mut ledgers[i], &mut shared, i, &call, Micros(now)) {
                            requests_made += 1;
                            in_flight[i].push((hold, Amount { cost: Nanos(cost), tokens, requests: 0 }));
                        }
                    }
                    Step::End(i, n, used) if !in_flight[i].is_empty() => {
                        let at = n % in_flight[i].len();
                        let (hold, worst) = in_flight[i].remove(at);
                        match used {
                            None => ledgers[i].release(hold),
                            Some(percent) => {
                                let spent = Spent {
                                    key_id: KEY,
                                    who: &who,
                                    at: Micros(now),
                                    cost: Nanos(worst.cost.0 * i64::from(percent) / 100),
                                    tokens: worst.tokens * u64::from(percent) / 100,
                                };
                                ledgers[i].settle(hold, &spent);
                            }
                        }
                    }
                    Step::End(..) => {}
                    Step::Idle(i, all) => {
                        let idle = if all { Idle::All } else { Idle::Lapsed };
                        for give_back in ledgers[i].idle(Micros(now), idle) {
                            shared.give_back(i, &give_back, Micros(now));
                        }
                    }
                    Step::Wait(micros) => now += micros,
                }
                // The pool lends no more than its limit, each instance admits no more than it
                // was lent, so all of them together never admit past the limit.
                let mut committed = Amount::ZERO;
                for (i, ledger) in ledgers.iter().enumerate() {
                    let slice = ledger.budgets[0].slice;
                    prop_assert!(slice.held.covers(slice.committed()), "instance {i}: {slice:?}");
                    prop_assert_eq!(slice.held, shared.lent[i]);
                    committed = committed.saturating_add(slice.committed());
                }
                prop_assert!(committed.cost.0 <= limit, "{committed:?} > {limit}");
                if let Some(t) = token_limit {
                    prop_assert!(committed.tokens <= t, "{committed:?} > {t} tokens");
                }
                let refilled = u64::try_from(i128::from(now) * i128::from(rpm) / 60_000_000).unwrap_or(u64::MAX);
                prop_assert!(requests_made <= rpm.saturating_add(refilled), "{requests_made} requests");
            }
        }

        #[test]
        fn admission_never_takes_a_slice_past_what_it_holds_in_any_resource(
            held in proptest::collection::vec((0i64..5_000, 0u64..500, 0u64..5), 4),
            room in proptest::collection::vec((0i64..300, 0u64..300, 0u64..2), 4),
            token_limit in any::<bool>(), rpm in proptest::option::of(1u64..100), tpm in proptest::option::of(1u64..1_000),
            cost in 0i64..300, tokens in 0u64..300,
        ) {
            let who = alice();
            let mut ledger = loaded(vec![
                budget("user", BudgetScope::User("alice".into()), 10_000, token_limit.then_some(1_000), Action::Block),
                budget("org", BudgetScope::Org, 10_000, None, Action::Block),
            ]);
            let rates = RateLimits { requests_per_minute: rpm, tokens_per_minute: tpm };
            let first = call(&who, rates, Some(0), 0);
            let _ = ledger.check(&first, Micros(0)); // notes the key's buckets
            let pools = [budget_pool("user"), budget_pool("org"), key_pool(Resource::Requests), key_pool(Resource::Tokens)];
            for (i, pool) in pools.iter().enumerate() {
                // Slices anywhere between full and empty, overdrawn by a settled overrun too.
                let (c, t, r) = held[i];
                let (room_c, room_t, room_r) = room[i];
                let amount = |c: i64, t: u64, r: u64| match pool {
                    PoolId::Budget { .. } => Amount { cost: Nanos(c), tokens: if i == 0 && token_limit { t } else { 0 }, requests: 0 },
                    PoolId::Key { resource, .. } => Amount::of(*resource, if *resource == Resource::Requests { r } else { t }),
                };
                if let Some(slice) = ledger.slice_mut(pool) {
                    slice.held = amount(c, t, r);
                    slice.used = amount(c - room_c + 50, (t + 50).saturating_sub(room_t), (r + 1).saturating_sub(room_r));
                    slice.reserved = Amount::ZERO;
                }
            }
            let before = slices(&ledger);
            let this = call(&who, rates, Some(cost), tokens);
            let draws: Vec<(PoolId, Amount)> = {
                let mut d = Vec::new();
                if let Some(rpm) = rpm { d.push((key_pool(Resource::Requests), Amount::of(Resource::Requests, 1.min(rpm)))); }
                if let Some(tpm) = tpm { d.push((key_pool(Resource::Tokens), Amount::of(Resource::Tokens, tokens.min(tpm)))); }
                d.push((budget_pool("user"), Amount { cost: Nanos(cost), tokens: if token_limit { tokens } else { 0 }, requests: 0 }));
                d.push((budget_pool("org"), dollars(cost)));
                d
            };
            let fits = draws.iter().all(|(pool, draw)| {
                let slice = before.iter().find(|(p, _)| p == pool).map(|(_, s)| *s).unwrap_or_default();
                slice.held.covers(slice.committed().saturating_add(*draw))
            });
            match ledger.check(&this, Micros(1)) {
                Check::Admitted(hold) => {
                    prop_assert!(fits);
                    for (pool, slice) in slices(&ledger) {
                        prop_assert!(slice.held.covers(slice.committed()), "{pool:?}: {slice:?}");
                    }
                    prop_assert_eq!(hold.draws().iter().map(|d| d.reserved).fold(Amount::ZERO, Amount::saturating_add).cost, Nanos(2 * cost));
                }
                Check::Short(_) => {
                    prop_assert!(!fits);
                    prop_assert_eq!(slices(&ledger), before, "a call that does not fit takes nothing");
                }
                Check::Refused(refusal) => prop_assert!(false, "nothing is dry: {refusal:?}"),
            }
        }

        #[test]
        fn release_returns_exactly_what_was_held_and_settling_charges_what_was_used(
            credit in (0i64..10_000, 0u64..1_000, 0u64..10),
            cost in 0i64..3_000, tokens in 0u64..1_000, used_cost in 0i64..6_000, used_tokens in 0u64..2_000,
            settle in any::<bool>(),
        ) {
            let who = alice();
            let mut ledger = loaded(vec![budget("cap", BudgetScope::Org, 10_000, Some(1_000), Action::Block)]);
            let rates = RateLimits { requests_per_minute: Some(10), tokens_per_minute: Some(500) };
            let this = call(&who, rates, Some(cost), tokens);
            let _ = ledger.check(&this, Micros(0));
            let (c, t, r) = credit;
            ledger.credit(&budget_pool("cap"), Amount { cost: Nanos(c), tokens: t, requests: 0 });
            ledger.credit(&key_pool(Resource::Requests), Amount::of(Resource::Requests, r));
            ledger.credit(&key_pool(Resource::Tokens), Amount::of(Resource::Tokens, t));
            let before = slices(&ledger);
            let Check::Admitted(hold) = ledger.check(&this, Micros(1)) else {
                return Ok(());
            };
            let held: Vec<Draw> = hold.draws().to_vec();
            if settle {
                ledger.settle(hold, &Spent { key_id: KEY, who: &who, at: Micros(2), cost: Nanos(used_cost), tokens: used_tokens });
            } else {
                ledger.release(hold);
            }
            for ((pool, old), (_, new)) in before.iter().zip(&slices(&ledger)) {
                prop_assert_eq!(old.held, new.held);
                prop_assert_eq!(old.reserved, new.reserved, "{:?}: every reservation came off", pool);
                let reserved = held.iter().find(|d| d.pool == *pool).map_or(Amount::ZERO, |d| d.reserved);
                let used = new.used.saturating_sub(old.used);
                let expected = match (pool, settle) {
                    (PoolId::Key { resource: Resource::Requests, .. }, _) => Amount::of(Resource::Requests, 1),
                    (_, false) => Amount::ZERO,
                    (PoolId::Budget { .. }, true) => Amount { cost: Nanos(used_cost), tokens: used_tokens, requests: 0 },
                    (PoolId::Key { .. }, true) => Amount::of(Resource::Tokens, used_tokens).min(reserved),
                };
                prop_assert_eq!(used, expected, "{:?}", pool);
            }
            let spent = ledger.standing()[0].spent;
            prop_assert_eq!(spent, if settle { Nanos(used_cost) } else { Nanos::ZERO });
        }

    }
}
