//! Budgets and rate limits as one mechanism: every limit is a shared pool, each gateway
//! instance admits calls against the slices it has borrowed from the pools, and this module
//! is the ledger of those slices — pure bookkeeping, with time passed in.
//!
//! A *pool* is a blocking budget's current window (cost, and tokens if it has a token limit)
//! or one of a key's per-minute buckets (requests, or tokens). The pools live in the shared
//! store, which lends them out by the slice ([`grant_lease`] for budgets, [`TokenBucket`] for
//! keys); how much an instance holds of each is this [`Ledger`]'s business:
//!
//! - [`Ledger::check`] admits a call against every pool that applies to it, all or nothing:
//!   either each slice has room for the call's worst case and the call gets a [`Hold`] on all
//!   of them, or nothing is taken and the ledger says why — a refusal, or the pools this
//!   instance must borrow more of first ([`Shortfall`]s, which the caller asks the store for
//!   and [`Ledger::credit`]s).
//! - A hold is [settled](Ledger::settle) with what the call really used once it is recorded,
//!   or [released](Ledger::release) untouched if the call ends without a record.
//! - A request is used by being made: it is counted when the call is admitted and never given
//!   back. Cost and tokens are reserved at their worst case and trued up at settlement.
//! - Slices not drawn on lately, and what is left of a slice whose pool refused to lend, are
//!   [given back](Ledger::idle) so that other instances can use them.
//!
//! Because a call is admitted only within what this instance holds, and the store lends only
//! what a limit leaves, instances sharing a store together never admit past a limit: spend can
//! exceed a budget only by what calls cost beyond their worst case.
//!
//! The ledger also keeps each loaded budget's spend in its window (seeded from the store,
//! grown by every call settled here): what threshold alerts, forecasts and the API's
//! `spent_usd` are measured on, and what a refusal reports.

use crate::Micros;
use crate::budgets::{Budget, Window};
use crate::money::Nanos;

mod ledger;
mod lending;

pub use ledger::{
    BudgetRefusal, BudgetWindow, Call, Cause, Check, Draw, GiveBack, Hold, Idle, Ledger, RateRefusal, Refusal, Refused,
    Shortfall, Shortfalls, Spent, Standing,
};
pub use lending::{PoolLimits, TokenBucket, budget_limits, grant_lease, lease_size};

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

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// Nano-dollars.
    Cost,
    /// Tokens of every kind.
    Tokens,
    /// Calls.
    Requests,
}

impl Resource {
    pub const ALL: [Resource; 3] = [Resource::Cost, Resource::Tokens, Resource::Requests];

    /// The name stored and shown (`cost`, `tokens`, `requests`).
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Cost => "cost",
            Resource::Tokens => "tokens",
            Resource::Requests => "requests",
        }
    }
}

/// An amount of every resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Amount {
    pub cost: Nanos,
    pub tokens: u64,
    pub requests: u64,
}

impl Amount {
    pub const ZERO: Amount = Amount {
        cost: Nanos::ZERO,
        tokens: 0,
        requests: 0,
    };

    /// `units` of one resource (nano-dollars for [`Resource::Cost`]).
    pub fn of(resource: Resource, units: u64) -> Amount {
        match resource {
            Resource::Cost => Amount {
                cost: Nanos(i64::try_from(units).unwrap_or(i64::MAX)),
                ..Amount::ZERO
            },
            Resource::Tokens => Amount {
                tokens: units,
                ..Amount::ZERO
            },
            Resource::Requests => Amount {
                requests: units,
                ..Amount::ZERO
            },
        }
    }

    /// How much of one resource this is (nano-dollars for [`Resource::Cost`], never negative).
    pub fn units(self, resource: Resource) -> u64 {
        match resource {
            Resource::Cost => u64::try_from(self.cost.0).unwrap_or(0),
            Resource::Tokens => self.tokens,
            Resource::Requests => self.requests,
        }
    }

    /// Only the resources `keep` says to keep; the others zero.
    fn only(self, keep: impl Fn(Resource) -> bool) -> Amount {
        Amount {
            cost: if keep(Resource::Cost) { self.cost } else { Nanos::ZERO },
            tokens: if keep(Resource::Tokens) { self.tokens } else { 0 },
            requests: if keep(Resource::Requests) { self.requests } else { 0 },
        }
    }

    pub fn saturating_add(self, other: Amount) -> Amount {
        Amount {
            cost: self.cost.saturating_add(other.cost),
            tokens: self.tokens.saturating_add(other.tokens),
            requests: self.requests.saturating_add(other.requests),
        }
    }

    /// `self - other`, each part floored at zero.
    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount {
            cost: Nanos(self.cost.0.saturating_sub(other.cost.0).max(0)),
            tokens: self.tokens.saturating_sub(other.tokens),
            requests: self.requests.saturating_sub(other.requests),
        }
    }

    /// Each part the smaller of the two.
    pub fn min(self, other: Amount) -> Amount {
        Amount {
            cost: self.cost.min(other.cost),
            tokens: self.tokens.min(other.tokens),
            requests: self.requests.min(other.requests),
        }
    }

    pub fn is_zero(self) -> bool {
        self.cost.0 <= 0 && self.tokens == 0 && self.requests == 0
    }

    /// Whether every part is at least `other`'s.
    pub fn covers(self, other: Amount) -> bool {
        self.cost >= other.cost && self.tokens >= other.tokens && self.requests >= other.requests
    }

    /// The first resource (cost, then tokens, then requests) of which this is more than none.
    pub fn first(self) -> Option<Resource> {
        Resource::ALL.into_iter().find(|&r| self.units(r) > 0)
    }
}

/// Which pool: a blocking budget's window, or one of a key's buckets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PoolId {
    Budget { id: String, window_start: Micros },
    Key { key_id: String, resource: Resource },
}

/// A pool as the shared store knows it: enough to borrow from it and give back to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pool {
    Budget {
        budget: Budget,
        window: Window,
    },
    Key {
        key_id: String,
        resource: Resource,
        per_minute: u64,
    },
}

impl Pool {
    pub fn id(&self) -> PoolId {
        match self {
            Pool::Budget { budget, window } => PoolId::Budget {
                id: budget.id.clone(),
                window_start: window.start,
            },
            Pool::Key { key_id, resource, .. } => PoolId::Key {
                key_id: key_id.clone(),
                resource: *resource,
            },
        }
    }

    /// What an instance asks for when its slice runs short: a twentieth (5 %) of each limit,
    /// so a handful of borrows covers a busy window and an instance never sits on much that
    /// others could use. (The store lends at least the shortfall, if it can.)
    pub fn lease_size(&self) -> Amount {
        match self {
            Pool::Budget { budget, .. } => lease_size(&budget_limits(budget)),
            Pool::Key {
                resource, per_minute, ..
            } => Amount::of(*resource, (per_minute / 20).max(1)),
        }
    }
}
