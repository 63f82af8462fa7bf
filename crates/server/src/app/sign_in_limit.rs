//! The bound on sign-in attempts (`[auth.oidc] max_sign_ins_per_minute`): each client address
//! may start `/auth/login` and complete `/auth/callback` at most that many times a minute at
//! one instance, counted apart per route; past it the route answers 429 with `Retry-After`.
//! Each starts a discovery or a code exchange with the provider and writes the store, so an
//! unbounded stream of them from one address would load both.
//!
//! Counting is the generic cell rate algorithm: an address may spend the whole minute's
//! allowance at once, then one more attempt every `60 s / bound`; nothing resets at a clock
//! boundary. Memory is bounded: at most [`ADDRESSES_TRACKED`] addresses are counted apart
//! (an address whose allowance is whole again is forgotten when room is needed); past that,
//! the other addresses share one allowance, so a flood from many addresses slows sign-ins of
//! newcomers but never grows the table. Pure counting, with the time passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Addresses (per route) counted apart; the rest share one allowance.
pub const ADDRESSES_TRACKED: usize = 10_000;
/// A full table is swept for forgettable addresses at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

/// Which sign-in route is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignInStep {
    Login,
    Callback,
}

/// Attempts per client address and route.
#[derive(Debug)]
pub struct SignInLimit {
    /// The time one attempt takes to be allowed again (`60 s / bound`).
    interval: Duration,
    /// How far ahead of now an address may have spent (the minute, less one interval).
    tolerance: Duration,
    /// When each address's allowance is whole again (its "theoretical arrival time"); `None`
    /// stands for the addresses past [`ADDRESSES_TRACKED`] and those without one.
    whole_at: HashMap<(SignInStep, Option<IpAddr>), Instant>,
    swept: Option<Instant>,
    capacity: usize,
}

impl SignInLimit {
    /// A bound of `per_minute` (at least 1) attempts per address and route.
    pub fn new(per_minute: u32) -> SignInLimit {
        SignInLimit::with_capacity(per_minute, ADDRESSES_TRACKED)
    }

    fn with_capacity(per_minute: u32, capacity: usize) -> SignInLimit {
        let interval = MINUTE / per_minute.max(1);
        SignInLimit {
            interval,
            tolerance: MINUTE.saturating_sub(interval),
            whole_at: HashMap::new(),
            swept: None,
            capacity,
        }
    }

    /// Counts an attempt at `step` from `address` at `now`: `Ok` when allowed, else how long
    /// until the next one is (at least a second, as `Retry-After` says it).
    pub fn admit(&mut self, step: SignInStep, address: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let key = self.key(step, address, now);
        let whole_at = self.whole_at.get(&key).copied().filter(|at| *at > now).unwrap_or(now);
        let ahead = whole_at - now;
        if ahead > self.tolerance {
            let wait = ahead - self.tolerance;
            return Err(
                Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(Duration::from_secs(1))
            );
        }
        self.whole_at.insert(key, whole_at + self.interval);
        Ok(())
    }

    /// The key `address` is counted under: its own, unless the table is full (after
    /// forgetting the addresses whose allowance is whole again).
    fn key(&mut self, step: SignInStep, address: Option<IpAddr>, now: Instant) -> (SignInStep, Option<IpAddr>) {
        let own = (step, address);
        if self.whole_at.len() < self.capacity || self.whole_at.contains_key(&own) {
            return own;
        }
        if self.swept.is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY) {
            self.swept = Some(now);
            self.whole_at.retain(|_, at| *at > now);
        }
        if self.whole_at.len() < self.capacity {
            own
        } else {
            (step, None)
        }
    }

    /// How many allowances are kept (for tests of the bound on memory).
    pub fn tracked(&self) -> usize {
        self.whole_at.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(n: u32) -> Option<IpAddr> {
        Some(IpAddr::from(n.to_be_bytes()))
    }

    #[test]
    fn an_address_spends_its_minute_then_waits_for_each_attempt() {
        let mut limit = SignInLimit::new(3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limit.admit(SignInStep::Login, address(1), start), Ok(()));
        }
        assert_eq!(
            limit.admit(SignInStep::Login, address(1), start),
            Err(Duration::from_secs(20))
        );
        // Another address, and the other route, have their own allowance.
        assert_eq!(limit.admit(SignInStep::Login, address(2), start), Ok(()));
        assert_eq!(limit.admit(SignInStep::Callback, address(1), start), Ok(()));
        // One attempt comes back every 20 s; the refusal counted nothing.
        let later = start + Duration::from_secs(19);
        assert_eq!(
            limit.admit(SignInStep::Login, address(1), later),
            Err(Duration::from_secs(1))
        );
        let later = start + Duration::from_secs(20);
        assert_eq!(limit.admit(SignInStep::Login, address(1), later), Ok(()));
        assert!(limit.admit(SignInStep::Login, address(1), later).is_err());
        // After a minute of quiet, the whole allowance again.
        let quiet = later + MINUTE;
        for _ in 0..3 {
            assert_eq!(limit.admit(SignInStep::Login, address(1), quiet), Ok(()));
        }
        assert!(limit.admit(SignInStep::Login, address(1), quiet).is_err());
    }

    #[test]
    fn memory_is_bounded_and_the_addresses_past_it_share_one_allowance() {
        let mut limit = SignInLimit::with_capacity(2, 4);
        let start = Instant::now();
        for n in 0..4 {
            assert_eq!(limit.admit(SignInStep::Login, address(n), start), Ok(()));
        }
        // The table is full of addresses still counting: the rest share one allowance.
        for n in 4..6 {
            assert_eq!(limit.admit(SignInStep::Login, address(n), start), Ok(()));
        }
        assert!(limit.admit(SignInStep::Login, address(99), start).is_err());
        assert_eq!(limit.tracked(), 5, "four addresses and the shared allowance");
        // Once their allowance is whole again, the counted addresses make room.
        let later = start + MINUTE;
        assert_eq!(limit.admit(SignInStep::Login, address(7), later), Ok(()));
        assert!(limit.tracked() <= 5, "{}", limit.tracked());
        for n in 100..10_000 {
            let _ = limit.admit(SignInStep::Login, address(n), later);
        }
        assert!(limit.tracked() <= 5, "never grows past the bound: {}", limit.tracked());
    }
}
