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

mod amount;
mod ledger;
mod lending;
mod pool;

pub use amount::{Amount, Resource};
pub use ledger::{
    BUDGET_IDLE_MICROS, BudgetRefusal, BudgetWindow, CONTENDED_RETRY_MICROS, Call, Cause, Check, DRY_POOL_MICROS, Draw,
    GiveBack, Hold, Idle, KEY_IDLE_MICROS, Ledger, RateRefusal, Refusal, Refused, Shortfall, Shortfalls, Spent,
    Standing,
};
pub use lending::{PoolLimits, TokenBucket, budget_limits, grant_lease, lease_size};
pub use pool::{Pool, PoolId};
