//! How the shared pools lend: a budget's window lends slices of what its limit leaves
//! ([`grant_lease`]), a key's per-minute limit is a [`TokenBucket`]. The store applies these
//! inside the transaction that lends; instances borrow through it.

use crate::Micros;
use crate::budgets::Budget;
use crate::money::Nanos;

use super::amount::Amount;

/// A budget's limits, as its pool lends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    pub cost: Nanos,
    /// Without a token limit no tokens are lent (none are counted).
    pub tokens: Option<u64>,
}

pub fn budget_limits(budget: &Budget) -> PoolLimits {
    PoolLimits {
        cost: budget.limit,
        tokens: budget.token_limit,
    }
}

/// The slice of a budget's pool an instance borrows when it has none left (see
/// [`Pool::lease_size`](crate::limits::Pool::lease_size)).
pub fn lease_size(limits: &PoolLimits) -> Amount {
    Amount {
        cost: Nanos((limits.cost.0 / 20).max(1)),
        tokens: limits.tokens.map_or(0, |t| (t / 20).max(1)),
        requests: 0,
    }
}

/// What a budget's shared pool lends an instance that asks for `want` and cannot admit its
/// call with less than `need`, when `taken` is already committed (spend and other leases):
/// `want` (at least `need`) where it fits, else all that is left if that covers `need`, else
/// nothing — also when `need` is nothing but the pool is already past its limit. Without a token
/// limit no tokens are lent (none are counted); requests are never lent by a budget.
pub fn grant_lease(limits: &PoolLimits, taken: Amount, want: Amount, need: Amount) -> Option<Amount> {
    // Negative when the pool is already past its limit: then not even a zero need fits.
    let room_cost = limits.cost.0.saturating_sub(taken.cost.0);
    if need.cost.0 > room_cost {
        return None;
    }
    let cost = Nanos(want.cost.0.max(need.cost.0).min(room_cost));
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
    Some(Amount {
        cost,
        tokens,
        requests: 0,
    })
}

/// A token bucket: `capacity` units, refilled continuously at `per_minute` units a minute —
/// a key's shared bucket of requests or tokens. The level is kept in millionths of a unit so
/// refills of a few microseconds are not lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    pub capacity: u64,
    pub per_minute: u64,
    level_millionths: u128,
    updated: Micros,
}

const MICROS_PER_MINUTE: u128 = crate::time::MICROS_PER_MINUTE as u128;

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
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pools_never_lend_past_the_limit_and_lend_what_is_needed_when_it_is_there(
            limit in 0i64..1_000_000, taken in 0i64..1_200_000, want in 0i64..100_000, need in 0i64..100_000,
            token_limit in proptest::option::of(0u64..10_000), taken_tokens in 0u64..12_000, need_tokens in 0u64..1_000,
        ) {
            let limits = PoolLimits { cost: Nanos(limit), tokens: token_limit };
            let taken = Amount { cost: Nanos(taken), tokens: taken_tokens, requests: 0 };
            let need = Amount { cost: Nanos(need), tokens: if token_limit.is_some() { need_tokens } else { 0 }, requests: 0 };
            let want = Amount { cost: Nanos(want), tokens: lease_size(&limits).tokens, requests: 0 };
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

    /// Found by the lending property (its case is kept in `proptest-regressions/limits.txt`).
    #[test]
    fn a_pool_already_past_its_token_limit_lends_nothing_even_to_a_call_that_needs_nothing() {
        let limits = PoolLimits {
            cost: Nanos(507_552),
            tokens: Some(0),
        };
        let taken = Amount {
            tokens: 1,
            ..Amount::ZERO
        };
        assert_eq!(grant_lease(&limits, taken, Amount::ZERO, Amount::ZERO), None);
    }
}
