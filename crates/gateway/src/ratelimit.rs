//! Per-key rate limits: requests per minute and tokens per minute, as token buckets holding a
//! minute's worth (so a key may burst up to its per-minute limit, then proceeds at the rate).
//!
//! A call takes one request and its worst-case tokens up front; when it is recorded the
//! unused tokens are given back, and a call that ends without a record gives all of them
//! back. Buckets live in this process: with several instances each enforces the limit on its
//! own share of the traffic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use goodhart_core::Micros;
use goodhart_core::budgets::TokenBucket;
use goodhart_core::keys::VirtualKey;

#[derive(Default)]
struct KeyBuckets {
    requests: Option<TokenBucket>,
    tokens: Option<TokenBucket>,
}

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, KeyBuckets>>,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateRefusal {
    /// `requests` or `tokens`.
    pub what: &'static str,
    /// The per-minute limit.
    pub limit: u64,
    /// When the call could go through, if it ever can (microseconds).
    pub retry_after: Option<i64>,
}

/// Tokens a call took from its key's bucket, to be trued up when it ends.
pub struct TokenGrant {
    limiter: Arc<RateLimiter>,
    key_id: String,
    taken: u64,
    settled: bool,
}

impl RateLimiter {
    pub fn new() -> Arc<RateLimiter> {
        Arc::new(RateLimiter::default())
    }

    /// Takes one request and `tokens` from the key's buckets, or refuses without taking
    /// anything.
    pub fn check(
        self: &Arc<Self>,
        key: &VirtualKey,
        tokens: u64,
        now: Micros,
    ) -> Result<Option<TokenGrant>, RateRefusal> {
        let limits = key.limits;
        if limits.requests_per_minute.is_none() && limits.tokens_per_minute.is_none() {
            return Ok(None);
        }
        let mut all = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let buckets = all.entry(key.id.clone()).or_default();
        if let Some(rpm) = limits.requests_per_minute {
            let bucket = buckets.requests.get_or_insert_with(|| TokenBucket::full(rpm, rpm, now));
            bucket.try_take(1, now).map_err(|wait| RateRefusal {
                what: "requests",
                limit: rpm,
                retry_after: wait,
            })?;
        }
        if let Some(tpm) = limits.tokens_per_minute {
            let bucket = buckets.tokens.get_or_insert_with(|| TokenBucket::full(tpm, tpm, now));
            // A call bigger than the whole minute's allowance would never fit: charge it the
            // allowance instead of refusing it forever.
            let charged = tokens.min(tpm);
            if let Err(wait) = bucket.try_take(charged, now) {
                if let Some(requests) = buckets.requests.as_mut() {
                    requests.give_back(1, now);
                }
                return Err(RateRefusal {
                    what: "tokens",
                    limit: tpm,
                    retry_after: wait,
                });
            }
            return Ok(Some(TokenGrant {
                limiter: Arc::clone(self),
                key_id: key.id.clone(),
                taken: charged,
                settled: false,
            }));
        }
        Ok(None)
    }

    fn give_back(&self, key_id: &str, tokens: u64, now: Micros) {
        let mut all = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = all.get_mut(key_id).and_then(|b| b.tokens.as_mut()) {
            bucket.give_back(tokens, now);
        }
    }
}

impl TokenGrant {
    /// Gives back what the call did not use of what it took.
    pub fn settle(mut self, used: u64, now: Micros) {
        self.settled = true;
        if used < self.taken {
            self.limiter.give_back(&self.key_id, self.taken - used, now);
        }
    }
}

impl Drop for TokenGrant {
    fn drop(&mut self) {
        if !self.settled {
            self.limiter
                .give_back(&self.key_id, self.taken, goodhart_store::now_micros());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goodhart_core::keys::{KeyScope, RateLimits};

    fn key(rpm: Option<u64>, tpm: Option<u64>) -> VirtualKey {
        VirtualKey {
            id: "k".into(),
            name: None,
            scope: KeyScope::default(),
            created_at: Micros(0),
            expires_at: None,
            revoked_at: None,
            replaced_by: None,
            limits: RateLimits {
                requests_per_minute: rpm,
                tokens_per_minute: tpm,
            },
        }
    }

    #[test]
    fn requests_per_minute_refill_continuously() {
        let limiter = RateLimiter::new();
        let k = key(Some(3), None);
        for _ in 0..3 {
            assert!(limiter.check(&k, 0, Micros(0)).is_ok());
        }
        let refused = limiter.check(&k, 0, Micros(0)).err().unwrap();
        assert_eq!((refused.what, refused.limit), ("requests", 3));
        assert_eq!(refused.retry_after, Some(20_000_001), "one request every 20 s");
        assert!(limiter.check(&k, 0, Micros(20_000_001)).is_ok());
    }

    #[test]
    fn tokens_are_charged_up_front_and_trued_up() {
        let limiter = RateLimiter::new();
        let k = key(Some(100), Some(1_000));
        let grant = limiter.check(&k, 800, Micros(0)).unwrap().unwrap();
        let refused = limiter.check(&k, 300, Micros(0)).err().unwrap();
        assert_eq!(refused.what, "tokens");
        grant.settle(100, Micros(0)); // used 100 of the 800 taken
        let second = limiter.check(&k, 800, Micros(0)).unwrap().unwrap();
        drop(second); // ended without a record: everything comes back
        assert!(limiter.check(&k, 900, Micros(0)).is_ok());
        assert!(
            limiter.check(&key(None, None), 1 << 40, Micros(0)).unwrap().is_none(),
            "unlimited keys pass"
        );
    }
}
