//! The bound on how many refused requests (401, 403) the audit log takes: at most
//! [`FAILURES_PER_ADDRESS`] per client address and [`FAILURES_PER_MINUTE`] in all per clock
//! minute; the rest are counted per address (addresses past the first [`ADDRESSES_TRACKED`] of
//! a minute together) and summed up once the minute is over ([`Suppressed`]). Pure counting:
//! the audit log ([`super::audit`]) writes what it says.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use goodhart_core::Micros;

/// Refusals written per client address per minute; the rest go into its summary.
pub const FAILURES_PER_ADDRESS: u32 = 20;
/// Refusals written per minute from every address together.
pub const FAILURES_PER_MINUTE: u32 = 1_000;
/// Addresses counted apart per minute; the rest share one summary without an address.
pub const ADDRESSES_TRACKED: usize = 1_000;
pub const MINUTE: i64 = 60_000_000;

/// The refusals of one address (or of the addresses past [`ADDRESSES_TRACKED`]) in the minute
/// `[from, to)` that were counted, not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub address: Option<IpAddr>,
    pub from: Micros,
    pub to: Micros,
    /// 401s.
    pub failures: u64,
    /// 403s.
    pub denials: u64,
}

/// Refusals of the current minute, per client address.
#[derive(Debug, Default)]
pub struct FailureBound {
    minute: i64,
    written: u32,
    addresses: HashMap<Option<IpAddr>, Tally>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    written: u32,
    failures: u64,
    denials: u64,
}

impl Tally {
    fn suppressed(&self) -> u64 {
        self.failures + self.denials
    }
}

impl FailureBound {
    /// Counts one refusal from `address` at `now`: whether to write it, and the summaries of
    /// a minute that is over (to write first).
    pub fn admit(&mut self, now: Micros, address: Option<IpAddr>, denied: bool) -> (bool, Vec<Suppressed>) {
        let summaries = self.roll(now);
        let key = if self.addresses.len() >= ADDRESSES_TRACKED && !self.addresses.contains_key(&address) {
            None
        } else {
            address
        };
        let overall = self.written < FAILURES_PER_MINUTE;
        let tally = self.addresses.entry(key).or_default();
        if overall && key == address && tally.written < FAILURES_PER_ADDRESS {
            tally.written += 1;
            self.written += 1;
            return (true, summaries);
        }
        if denied {
            tally.denials += 1;
        } else {
            tally.failures += 1;
        }
        (false, summaries)
    }

    /// Starts the minute of `now` if the current one is over; the summaries of the one that
    /// ended.
    pub fn roll(&mut self, now: Micros) -> Vec<Suppressed> {
        let minute = now.0.div_euclid(MINUTE);
        if minute == self.minute {
            return Vec::new();
        }
        let from = Micros(self.minute * MINUTE);
        let to = Micros((self.minute + 1) * MINUTE);
        self.minute = minute;
        self.written = 0;
        let mut summaries: Vec<Suppressed> = self
            .addresses
            .drain()
            .filter(|(_, tally)| tally.suppressed() > 0)
            .map(|(address, tally)| Suppressed {
                address,
                from,
                to,
                failures: tally.failures,
                denials: tally.denials,
            })
            .collect();
        summaries.sort_by_key(|s| s.address);
        summaries
    }
}

/// The refusal bound, shared by the clones of an [`App`](super::App).
pub type SharedBound = Arc<Mutex<FailureBound>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn refusals_past_the_bound_are_counted_into_one_summary_per_address() {
        let mut bound = FailureBound::default();
        let t0 = Micros(1_800_000_000 * 1_000_000);
        bound.roll(t0);
        let written = (0..50)
            .filter(|i| bound.admit(Micros(t0.0 + i), ip(1), false).0)
            .count();
        assert_eq!(written, FAILURES_PER_ADDRESS as usize);
        assert!(
            bound.admit(Micros(t0.0 + 60), ip(2), true).0,
            "another address has its own share"
        );
        let (write, summaries) = bound.admit(Micros(t0.0 + MINUTE), ip(1), false);
        assert!(write, "a new minute");
        assert_eq!(summaries.len(), 1);
        assert_eq!((summaries[0].failures, summaries[0].denials), (30, 0));
        assert_eq!(summaries[0].address, ip(1));
    }

    #[test]
    fn the_whole_minute_is_bounded_across_addresses() {
        let mut bound = FailureBound::default();
        let t0 = Micros(1_800_000_000 * 1_000_000);
        bound.roll(t0);
        let mut written = 0;
        for i in 0..20_000u32 {
            let address = Some(IpAddr::from(i.to_be_bytes()));
            written += usize::from(bound.admit(t0, address, false).0);
        }
        assert_eq!(written, FAILURES_PER_MINUTE as usize);
        assert!(bound.addresses.len() <= ADDRESSES_TRACKED + 1);
        let summaries = bound.roll(Micros(t0.0 + MINUTE));
        let total: u64 = summaries.iter().map(|s| s.failures + s.denials).sum();
        assert_eq!(total, 19_000);
        assert!(summaries.len() <= ADDRESSES_TRACKED + 1, "summaries are bounded too");
    }
}
