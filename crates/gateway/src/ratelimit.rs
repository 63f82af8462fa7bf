//! Per-key rate limits: requests per minute and tokens per minute, as token buckets holding a
//! minute's worth (so a key may burst up to its per-minute limit, then proceeds at the rate).
//!
//! A call takes one request and its worst-case tokens up front; when it is recorded the
//! unused tokens are given back, and a call that ends without a record gives all of them
//! back. The buckets live in the database, shared by every instance: an instance takes a
//! batch (a twentieth of the limit, or what the call needs) in one transaction and spends it
//! locally, giving back what it has not spent after a couple of idle seconds and when it
//! stops. Across instances a key can thus get ahead of its limit by at most one batch per
//! instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use goodhart_core::Micros;
use goodhart_core::keys::VirtualKey;
use goodhart_store::leases::RateBucket;
use goodhart_store::{Store, StoreError};

/// Units held locally and not drawn on for this long go back to the shared bucket.
const IDLE_HOLD_MICROS: i64 = 2_000_000;

const REQUESTS: &str = "requests";
const TOKENS: &str = "tokens";

/// Units of one of a key's buckets that this instance took and has not spent.
#[derive(Debug, Clone, Copy, Default)]
struct Holding {
    units: u64,
    last_drawn: Micros,
}

#[derive(Default)]
struct KeyHoldings {
    requests: Holding,
    tokens: Holding,
    /// The key's limits when last seen, to give back to the right bucket.
    requests_per_minute: Option<u64>,
    tokens_per_minute: Option<u64>,
}

pub struct RateLimiter {
    store: Arc<dyn Store>,
    holdings: Mutex<HashMap<String, KeyHoldings>>,
    /// One batch taken from the shared buckets at a time (calls waiting on it usually find
    /// room in what it brought).
    taking: tokio::sync::Mutex<()>,
}

/// Why a call was refused.
#[derive(Debug)]
pub enum RateDenied {
    Refused(RateRefusal),
    /// The shared buckets could not be reached.
    Store(StoreError),
}

/// Why a call was refused by its key's rate limit.
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

fn bucket<'a>(key_id: &'a str, kind: &'static str, per_minute: u64) -> RateBucket<'a> {
    RateBucket {
        key_id,
        kind,
        capacity: per_minute,
        per_minute,
    }
}

impl RateLimiter {
    pub fn new(store: Arc<dyn Store>) -> Arc<RateLimiter> {
        Arc::new(RateLimiter {
            store,
            holdings: Mutex::new(HashMap::new()),
            taking: tokio::sync::Mutex::new(()),
        })
    }

    fn holdings(&self) -> MutexGuard<'_, HashMap<String, KeyHoldings>> {
        self.holdings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one request and `tokens` from the key's buckets, or refuses without taking
    /// anything.
    pub async fn check(
        self: &Arc<Self>,
        key: &VirtualKey,
        tokens: u64,
        now: Micros,
    ) -> Result<Option<TokenGrant>, RateDenied> {
        let limits = key.limits;
        if limits.requests_per_minute.is_none() && limits.tokens_per_minute.is_none() {
            return Ok(None);
        }
        // A call bigger than the whole minute's allowance would never fit: charge it the
        // allowance instead of refusing it forever.
        let needs = [
            limits.requests_per_minute.map(|rpm| (REQUESTS, rpm, 1)),
            limits.tokens_per_minute.map(|tpm| (TOKENS, tpm, tokens.min(tpm))),
        ];
        if let Some(grant) = self.draw(key, &needs, now) {
            return Ok(grant);
        }
        let _taking = self.taking.lock().await;
        if let Some(grant) = self.draw(key, &needs, now) {
            return Ok(grant);
        }
        // Calls drawing on what is held meanwhile may leave this one short again: take again,
        // a bounded number of times.
        for _ in 0..4 {
            for &(kind, per_minute, need) in needs.iter().flatten() {
                let held = {
                    let holdings = self.holdings();
                    holdings.get(&key.id).map_or(0, |h| h.holding(kind).units)
                };
                if held >= need {
                    continue;
                }
                let missing = need - held;
                let taken = self
                    .store
                    .take_rate(
                        &bucket(&key.id, kind, per_minute),
                        (per_minute / 20).max(missing),
                        missing,
                        now,
                    )
                    .await
                    .map_err(RateDenied::Store)?
                    .map_err(|wait| {
                        RateDenied::Refused(RateRefusal {
                            what: kind,
                            limit: per_minute,
                            retry_after: wait,
                        })
                    })?;
                let mut holdings = self.holdings();
                holdings.entry(key.id.clone()).or_default().holding_mut(kind).units += taken;
            }
            if let Some(grant) = self.draw(key, &needs, now) {
                return Ok(grant);
            }
        }
        let (what, limit, _) = needs.iter().flatten().next().copied().expect("some limit is set");
        Err(RateDenied::Refused(RateRefusal {
            what,
            limit,
            retry_after: Some(1_000_000),
        }))
    }

    /// Draws what the call needs from what this instance holds for the key, all of it or
    /// nothing (`None`).
    fn draw(
        self: &Arc<Self>,
        key: &VirtualKey,
        needs: &[Option<(&'static str, u64, u64)>; 2],
        now: Micros,
    ) -> Option<Option<TokenGrant>> {
        let mut all = self.holdings();
        let holdings = all.entry(key.id.clone()).or_default();
        holdings.requests_per_minute = key.limits.requests_per_minute;
        holdings.tokens_per_minute = key.limits.tokens_per_minute;
        let fits = needs
            .iter()
            .flatten()
            .all(|&(kind, _, need)| holdings.holding(kind).units >= need);
        if !fits {
            return None;
        }
        let mut grant = None;
        for &(kind, _, need) in needs.iter().flatten() {
            let holding = holdings.holding_mut(kind);
            holding.units -= need;
            holding.last_drawn = now;
            if kind == TOKENS {
                grant = Some(TokenGrant {
                    limiter: Arc::clone(self),
                    key_id: key.id.clone(),
                    taken: need,
                    settled: false,
                });
            }
        }
        Some(grant)
    }

    fn give_back(&self, key_id: &str, tokens: u64) {
        if let Some(holdings) = self.holdings().get_mut(key_id) {
            holdings.tokens.units = holdings.tokens.units.saturating_add(tokens);
        }
    }

    /// Gives back to the shared buckets what this instance holds and has not drawn on lately
    /// (everything, with `idle` 0, when the instance stops).
    pub async fn return_idle(&self, now: Micros, idle_micros: Option<i64>) {
        let idle_micros = idle_micros.unwrap_or(IDLE_HOLD_MICROS);
        let mut unused: Vec<(String, &'static str, u64, u64)> = Vec::new();
        {
            let mut all = self.holdings();
            for (key_id, holdings) in all.iter_mut() {
                let limits = [
                    (REQUESTS, holdings.requests_per_minute),
                    (TOKENS, holdings.tokens_per_minute),
                ];
                for (kind, per_minute) in limits {
                    let holding = holdings.holding_mut(kind);
                    if holding.units > 0 && now.0.saturating_sub(holding.last_drawn.0) >= idle_micros {
                        if let Some(per_minute) = per_minute {
                            unused.push((key_id.clone(), kind, per_minute, holding.units));
                        }
                        holding.units = 0;
                    }
                }
            }
            all.retain(|_, h| h.requests.units > 0 || h.tokens.units > 0);
        }
        for (key_id, kind, per_minute, units) in unused {
            if let Err(e) = self
                .store
                .return_rate(&bucket(&key_id, kind, per_minute), units, now)
                .await
            {
                tracing::warn!(key = %key_id, "unused rate-limit units could not be given back: {e}");
            }
        }
    }
}

impl KeyHoldings {
    fn holding(&self, kind: &str) -> &Holding {
        if kind == REQUESTS { &self.requests } else { &self.tokens }
    }

    fn holding_mut(&mut self, kind: &str) -> &mut Holding {
        if kind == REQUESTS {
            &mut self.requests
        } else {
            &mut self.tokens
        }
    }
}

impl TokenGrant {
    /// Gives back what the call did not use of what it took.
    pub fn settle(mut self, used: u64) {
        self.settled = true;
        if used < self.taken {
            self.limiter.give_back(&self.key_id, self.taken - used);
        }
    }
}

impl Drop for TokenGrant {
    fn drop(&mut self) {
        if !self.settled {
            self.limiter.give_back(&self.key_id, self.taken);
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

    async fn limiter(db: &goodhart_store::testing::TestDatabase) -> Arc<RateLimiter> {
        RateLimiter::new(db.open().await.unwrap())
    }

    async fn check(
        limiter: &Arc<RateLimiter>,
        k: &VirtualKey,
        tokens: u64,
        at: i64,
    ) -> Result<Option<TokenGrant>, RateRefusal> {
        limiter
            .check(k, tokens, Micros(at))
            .await
            .map_err(|denied| match denied {
                RateDenied::Refused(refusal) => refusal,
                RateDenied::Store(e) => panic!("{e}"),
            })
    }

    #[tokio::test]
    async fn requests_per_minute_refill_continuously() {
        let db = goodhart_store::testing::TestDatabase::sqlite();
        let limiter = limiter(&db).await;
        let k = key(Some(3), None);
        for _ in 0..3 {
            assert!(check(&limiter, &k, 0, 0).await.is_ok());
        }
        let refused = check(&limiter, &k, 0, 0).await.err().unwrap();
        assert_eq!((refused.what, refused.limit), ("requests", 3));
        assert_eq!(refused.retry_after, Some(20_000_001), "one request every 20 s");
        assert!(check(&limiter, &k, 0, 20_000_001).await.is_ok());
    }

    #[tokio::test]
    async fn tokens_are_charged_up_front_and_trued_up() {
        let db = goodhart_store::testing::TestDatabase::sqlite();
        let limiter = limiter(&db).await;
        let k = key(Some(100), Some(1_000));
        let grant = check(&limiter, &k, 800, 0).await.unwrap().unwrap();
        let refused = check(&limiter, &k, 300, 0).await.err().unwrap();
        assert_eq!(refused.what, "tokens");
        grant.settle(100); // used 100 of the 800 taken
        let second = check(&limiter, &k, 800, 0).await.unwrap().unwrap();
        drop(second); // ended without a record: everything comes back
        assert!(check(&limiter, &k, 900, 0).await.is_ok());
        assert!(
            check(&limiter, &key(None, None), 1 << 40, 0).await.unwrap().is_none(),
            "unlimited keys pass"
        );
    }

    #[tokio::test]
    async fn instances_share_one_bucket_per_key() {
        let db = goodhart_store::testing::TestDatabase::sqlite();
        let (a, b) = (limiter(&db).await, limiter(&db).await);
        let k = key(Some(100), None);
        let mut admitted = 0;
        for i in 0..300 {
            let instance = if i % 2 == 0 { &a } else { &b };
            admitted += usize::from(check(instance, &k, 0, 0).await.is_ok());
        }
        // Each instance takes five requests at a time: whatever one holds unspent when the
        // bucket runs dry is not used by the other, never added to it.
        assert!((95..=100).contains(&admitted), "{admitted} admitted of a limit of 100");
        a.return_idle(Micros(0), Some(0)).await;
        b.return_idle(Micros(0), Some(0)).await;
        let left = 100 - admitted;
        for _ in 0..left {
            assert!(check(&b, &k, 0, 0).await.is_ok(), "what a held unspent came back");
        }
        assert!(check(&a, &k, 0, 0).await.is_err());
    }
}
