//! Quantities of the resources limits count: cost, tokens and requests.

use crate::money::Nanos;

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
    pub(super) fn only(self, keep: impl Fn(Resource) -> bool) -> Amount {
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
