//! Enforcement shared by several gateway instances on one database: budget pools lent out in
//! slices, and per-key rate buckets (tables from the `leases` migration).
//!
//! A blocking budget's current window is a pool. An instance admits calls only within the
//! slices it has borrowed from the pool, so however many instances there are, what they admit
//! together stays within what the pool lent — and the pool lends only what the limit leaves
//! after the spend it knows: the gateway spend stored when the pool opened, every slice lent
//! since, and the spend of other sources (ingest API, imports) read at each lease. A rate
//! bucket works the same way: instances take batches of it and spend them locally.
//!
//! The gateway borrows from both kinds through one [`PoolStore`]; the rules by which a pool
//! lends are pure, in [`goodhart_core::limits`].

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::budgets::{Budget, Window};
use goodhart_core::limits::{self, Amount, Pool, Resource, TokenBucket};

use crate::budgets::Spend;
use crate::error::StoreError;

/// An instance asking a budget's pool for a slice of its current window.
#[derive(Debug, Clone, Copy)]
pub struct LeaseRequest<'a> {
    pub budget: &'a Budget,
    pub window: Window,
    /// The asking instance (its leases are kept apart from the others').
    pub instance: &'a str,
    /// What it would like to hold ([`goodhart_core::limits::lease_size`]).
    pub want: Amount,
    /// What it must get to admit the call it is holding.
    pub need: Amount,
    pub now: Micros,
    /// Lend `need` whatever the limit leaves: what the instance admitted on its own authority
    /// while the store was unreachable, reported once it is back so the pool counts it.
    pub overdraw: bool,
}

/// A key's rate bucket, as every instance sees it.
#[derive(Debug, Clone, Copy)]
pub struct RateBucket<'a> {
    pub key_id: &'a str,
    /// What it counts (stored as the bucket's `kind`).
    pub resource: Resource,
    pub capacity: u64,
    pub per_minute: u64,
}

#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Lends the instance a slice of the budget's window: `want` where the limit leaves room,
    /// else what is left if that covers `need`, else nothing (`None`). Atomic across instances.
    async fn lease_budget(&self, request: &LeaseRequest<'_>) -> Result<Option<Amount>, StoreError>;

    /// Gives back, at `now`, an unused part of what the instance borrowed from a budget's window.
    async fn return_lease(
        &self,
        budget_id: &str,
        window_start: Micros,
        instance: &str,
        unused: Amount,
        now: Micros,
    ) -> Result<(), StoreError>;

    /// Takes up to `want` units (at least `need`) from the shared bucket, or says how many
    /// microseconds until `need` will be there (`None`: never, it exceeds the capacity).
    async fn take_rate(
        &self,
        bucket: &RateBucket<'_>,
        want: u64,
        need: u64,
        now: Micros,
    ) -> Result<Result<u64, Option<i64>>, StoreError>;

    /// Puts units taken but not used back into the shared bucket (up to its capacity).
    async fn return_rate(&self, bucket: &RateBucket<'_>, unused: u64, now: Micros) -> Result<(), StoreError>;
}

/// What a pool answered an instance that asked to borrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lent {
    Granted(Amount),
    /// Nothing: the pool cannot cover the need. A key's bucket says in how many microseconds
    /// it will (`None`: never, or — for a budget — not before its window resets).
    Refused {
        retry_after: Option<i64>,
    },
}

/// Borrowing from and giving back to the shared pools of both kinds, one way.
#[async_trait]
pub trait PoolStore: Send + Sync {
    /// Lends `instance` up to `want` of the pool (at least `need`), or nothing.
    async fn borrow(
        &self,
        pool: &Pool,
        instance: &str,
        want: Amount,
        need: Amount,
        now: Micros,
    ) -> Result<Lent, StoreError>;

    /// Takes back what `instance` borrowed of the pool and did not use.
    async fn give_back(&self, pool: &Pool, instance: &str, unused: Amount, now: Micros) -> Result<(), StoreError>;

    /// Counts `lent` as lent to `instance` whatever the limit leaves: what it lent itself of a
    /// budget's pool while the store was unreachable. (A key's bucket is not told: nothing of it
    /// is given back.)
    async fn overdraw(&self, pool: &Pool, instance: &str, lent: Amount, now: Micros) -> Result<(), StoreError>;
}

#[async_trait]
impl<S: LeaseStore + ?Sized> PoolStore for S {
    async fn borrow(
        &self,
        pool: &Pool,
        instance: &str,
        want: Amount,
        need: Amount,
        now: Micros,
    ) -> Result<Lent, StoreError> {
        Ok(match pool {
            Pool::Budget { budget, window } => {
                let request = LeaseRequest {
                    budget,
                    window: *window,
                    instance,
                    want,
                    need,
                    now,
                    overdraw: false,
                };
                match self.lease_budget(&request).await? {
                    Some(granted) => Lent::Granted(granted),
                    None => Lent::Refused { retry_after: None },
                }
            }
            Pool::Key {
                key_id,
                resource,
                per_minute,
            } => {
                let bucket = rate_bucket(key_id, *resource, *per_minute);
                let (want, need) = (want.units(*resource), need.units(*resource));
                match self.take_rate(&bucket, want, need, now).await? {
                    Ok(taken) => Lent::Granted(Amount::of(*resource, taken)),
                    Err(retry_after) => Lent::Refused { retry_after },
                }
            }
        })
    }

    async fn give_back(&self, pool: &Pool, instance: &str, unused: Amount, now: Micros) -> Result<(), StoreError> {
        match pool {
            Pool::Budget { budget, window } => self.return_lease(&budget.id, window.start, instance, unused, now).await,
            Pool::Key {
                key_id,
                resource,
                per_minute,
            } => {
                let bucket = rate_bucket(key_id, *resource, *per_minute);
                self.return_rate(&bucket, unused.units(*resource), now).await
            }
        }
    }

    async fn overdraw(&self, pool: &Pool, instance: &str, lent: Amount, now: Micros) -> Result<(), StoreError> {
        let Pool::Budget { budget, window } = pool else {
            return Ok(());
        };
        let request = LeaseRequest {
            budget,
            window: *window,
            instance,
            want: lent,
            need: lent,
            now,
            overdraw: true,
        };
        self.lease_budget(&request).await.map(|_| ())
    }
}

/// What a pool lends for `request` when `taken` of it is committed (see [`LeaseRequest::overdraw`]).
pub(crate) fn lend(request: &LeaseRequest<'_>, taken: Amount) -> Option<Amount> {
    if request.overdraw {
        return Some(request.need);
    }
    limits::grant_lease(
        &limits::budget_limits(request.budget),
        taken,
        request.want,
        request.need,
    )
}

/// A key's bucket holds a minute's worth, so a key may burst up to its per-minute limit, then
/// proceeds at the rate.
fn rate_bucket(key_id: &str, resource: Resource, per_minute: u64) -> RateBucket<'_> {
    RateBucket {
        key_id,
        resource,
        capacity: per_minute,
        per_minute,
    }
}

/// Pools of windows that ended this long ago are deleted when another pool opens.
pub(crate) const POOL_RETENTION_MICROS: i64 = 7 * 24 * 3_600 * 1_000_000;

pub(crate) const SELECT_POOL: &str =
    "SELECT base_nanos, base_tokens FROM budget_pools WHERE budget_id = $1 AND window_start = $2";
pub(crate) const OPEN_POOL: &str = "INSERT INTO budget_pools (budget_id, window_start, window_end, base_nanos, \
    base_tokens, opened_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (budget_id, window_start) DO NOTHING";
pub(crate) const DELETE_OLD_LEASES: &str = "DELETE FROM budget_leases WHERE EXISTS (SELECT 1 FROM budget_pools p \
    WHERE p.budget_id = budget_leases.budget_id AND p.window_start = budget_leases.window_start \
    AND p.window_end < $1)";
pub(crate) const DELETE_OLD_POOLS: &str = "DELETE FROM budget_pools WHERE window_end < $1";
pub(crate) const LEASED: &str = "SELECT CAST(COALESCE(SUM(granted_nanos), 0) AS BIGINT), \
    CAST(COALESCE(SUM(granted_tokens), 0) AS BIGINT) FROM budget_leases WHERE budget_id = $1 AND window_start = $2";
pub(crate) const GRANT: &str = "INSERT INTO budget_leases (budget_id, window_start, instance_id, granted_nanos, \
    granted_tokens, updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (budget_id, window_start, instance_id) \
    DO UPDATE SET granted_nanos = budget_leases.granted_nanos + excluded.granted_nanos, \
    granted_tokens = budget_leases.granted_tokens + excluded.granted_tokens, updated_at = excluded.updated_at";
/// Parameters number in order of first use: SQLite binds `$n` by first appearance.
pub(crate) const GIVE_BACK: &str = "UPDATE budget_leases SET \
    granted_nanos = CASE WHEN granted_nanos > $1 THEN granted_nanos - $1 ELSE 0 END, \
    granted_tokens = CASE WHEN granted_tokens > $2 THEN granted_tokens - $2 ELSE 0 END, updated_at = $3 \
    WHERE budget_id = $4 AND window_start = $5 AND instance_id = $6";

pub(crate) const SELECT_BUCKET: &str =
    "SELECT level_millionths, updated_at FROM rate_buckets WHERE key_id = $1 AND kind = $2";
pub(crate) const SAVE_BUCKET: &str = "INSERT INTO rate_buckets (key_id, kind, level_millionths, updated_at) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (key_id, kind) DO UPDATE SET level_millionths = excluded.level_millionths, \
    updated_at = excluded.updated_at";

pub(crate) fn amount(spend: Spend) -> Amount {
    Amount {
        cost: spend.cost,
        tokens: spend.tokens,
        requests: spend.requests,
    }
}

/// The end of a window as stored (`None` for budgets without an end).
pub(crate) fn window_end(window: &Window) -> Option<i64> {
    window.end.map(|end| end.0)
}

/// A stored bucket (or a full one, never stored yet), brought up to `now`. Instances' clocks
/// differ a little: a bucket last updated "in the future" is simply not refilled yet.
pub(crate) fn load_bucket(bucket: &RateBucket<'_>, stored: Option<(i64, i64)>, now: Micros) -> TokenBucket {
    match stored {
        None => TokenBucket::full(bucket.capacity, bucket.per_minute, now),
        Some((level, updated)) => TokenBucket::from_stored(
            bucket.capacity,
            bucket.per_minute,
            u128::try_from(level).unwrap_or(0),
            Micros(updated.min(now.0)),
        ),
    }
}

/// A bucket's level and update time, as stored.
pub(crate) fn stored_bucket(bucket: &TokenBucket) -> (i64, i64) {
    let (level, updated) = bucket.stored();
    (i64::try_from(level).unwrap_or(i64::MAX), updated.0)
}
