//! Which pool a slice belongs to, and what the shared store needs to know of it to lend.

use crate::Micros;
use crate::budgets::{Budget, Window};

use super::amount::{Amount, Resource};
use super::lending::{budget_limits, lease_size};

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
