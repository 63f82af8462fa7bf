//! Budgets and rate limits on the request path: every call is admitted, all at once, against
//! each blocking budget that applies to it and each of its key's per-minute limits, by holding
//! its worst case; the [`Admission`] is settled with the real usage when the call is recorded,
//! and released if the call ends without a record (a dropped admission releases itself).
//!
//! Several instances can share one database, so no instance decides alone how much of a limit
//! is left. Each admits calls only within the slices it has borrowed from the limits' shared
//! pools ([`goodhart_store::leases`]): the ledger ([`goodhart_core::limits`]), in memory behind
//! one lock, checks a call against what this instance holds (well under a microsecond), and
//! only when a slice runs short does the [`Limiter`] borrow more — one transaction per pool,
//! about every twentieth of a limit. What a slice has left is given back when the instance
//! stops, when it goes idle, and when a budget's pool refuses it (so the rest can go to
//! another instance).
//!
//! When the store cannot be reached to lend, a pool fails closed or open ([`WhenUnreachable`]:
//! a budget's own choice, else the gateway's default, which also governs keys' rate limits).
//! Failing closed, the call is refused ([`Denied::Store`]). Failing open, this instance lends
//! itself the shortfall within an allowance — a share of a budget's limit per window, a key's
//! own per-minute limit per minute ([`Ledger::lend_own`]) — and, once the store answers again,
//! reports what it so lent of each budget to the budget's pool ([`Limiter::report_own`]), so
//! that every instance counts it. Together, instances cannot pass a cap by more than the sum of
//! their allowances.
//!
//! Separately, each budget's spend in its window is seeded from the store at every reload
//! (budgets changed, window rolled over, every minute) and grows with every call settled here:
//! that is what the API shows and what threshold alerts and forecasts are measured on.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use goodhart_core::Micros;
use goodhart_core::budgets::{self, Alert, WhenUnreachable};
use goodhart_core::limits::{
    Amount, BudgetWindow, Call, Check, GiveBack, Hold, Idle, Ledger, Pool, Refusal, Shortfall, Shortfalls, Spent,
    Standing,
};
use goodhart_store::leases::{Lent, PoolStore};
use goodhart_store::{Store, StoreError};
use jiff::tz::TimeZone;

/// How many times one call borrows before giving up (each borrow covers at least the call's
/// own shortfall, so only other calls racing for the same slices make a second one needed).
const BORROW_ATTEMPTS: usize = 4;

/// Why a call was not admitted.
#[derive(Debug)]
pub enum Denied {
    Refused(Refusal),
    /// The shared pools could not be reached: the call is refused rather than let past a limit.
    Store(StoreError),
}

/// One instance's share of every budget's and every key's pool.
pub struct Limiter {
    store: Arc<dyn Store>,
    /// This instance, as the pools know it (its slices are kept apart from the others').
    instance: String,
    /// What a pool does when the store is unreachable, unless its budget says otherwise.
    when_unreachable: WhenUnreachable,
    ledger: Mutex<Ledger>,
    /// One borrow from the pools at a time: calls that find a slice short while another
    /// borrows wait for it and usually find room in what it brought.
    borrowing: tokio::sync::Mutex<()>,
    /// Admissions neither settled nor released yet: the calls in flight (a leak shows here).
    live: AtomicI64,
}

/// A call's hold on the pools it was admitted against. Settle it with the call's usage once
/// recorded; dropping it releases the hold (the call ended without a record).
#[must_use = "dropping an admission releases it at once: keep it for the call, then settle it"]
pub struct Admission {
    limiter: Arc<Limiter>,
    /// `None` once settled.
    hold: Option<Hold>,
    /// The pools this instance lent itself part of the call's worst case from, the store
    /// being unreachable (empty for nearly every call).
    lent_own: Vec<Pool>,
}

impl Limiter {
    /// A limiter for the gateway instance `instance`, borrowing from the pools in `store`, whose
    /// pools do `when_unreachable` when the store cannot be reached (unless a budget says).
    pub fn new(store: Arc<dyn Store>, instance: String, when_unreachable: WhenUnreachable) -> Arc<Limiter> {
        Arc::new(Limiter {
            store,
            instance,
            when_unreachable,
            ledger: Mutex::new(Ledger::new()),
            borrowing: tokio::sync::Mutex::new(()),
            live: AtomicI64::new(0),
        })
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // The ledger is consistent between statements: a panic elsewhere cannot leave it torn.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads the budgets and seeds each one's spend in its current window from the store.
    /// Reservations in flight and slices held are carried over to budgets that are still there.
    pub async fn reload(&self, now: Micros) -> Result<(), StoreError> {
        let mut fresh = Vec::new();
        for budget in self.store.budgets().await? {
            let zone = TimeZone::get(&budget.timezone).unwrap_or(TimeZone::UTC);
            let window = budgets::window(budget.period, &zone, now);
            let spend = self
                .store
                .spend(&budget.scope, window.start, window.end.unwrap_or(Micros(i64::MAX)))
                .await?;
            let spent = Amount {
                cost: spend.cost,
                tokens: spend.tokens,
                requests: spend.requests,
            };
            fresh.push(BudgetWindow { budget, window, spent });
        }
        self.ledger().load(fresh);
        Ok(())
    }

    /// Whether budgets were created or deleted since the last reload (by another instance,
    /// say): the caller then reloads.
    pub async fn definitions_changed(&self) -> Result<bool, StoreError> {
        let stored = self.store.budgets().await?;
        let ledger = self.ledger();
        Ok(!stored.iter().map(|b| b.id.as_str()).eq(ledger.budget_ids()))
    }

    /// Whether any budget's window has ended (the caller then reloads).
    pub fn needs_reload(&self, now: Micros) -> bool {
        self.ledger().needs_reload(now)
    }

    /// Each loaded budget with its window and what it has spent in it.
    pub fn snapshot(&self) -> Vec<BudgetWindow> {
        self.ledger().snapshot()
    }

    /// Admissions held by calls in flight (neither settled nor released yet).
    pub fn admissions_in_flight(&self) -> i64 {
        self.live.load(Ordering::Relaxed)
    }

    /// What each loaded budget has spent and has reserved by calls in flight here.
    pub fn standing(&self) -> Vec<Standing> {
        self.ledger().standing()
    }

    /// Admits `call` against every pool that applies to it, borrowing from the shared pools
    /// when this instance's slices are short.
    pub async fn admit(self: &Arc<Self>, call: &Call<'_>, now: Micros) -> Result<Admission, Denied> {
        let mut borrowing = None;
        let mut borrows = 0;
        let mut lent_own = Vec::new();
        loop {
            let checked = self.ledger().check(call, now);
            let short = match checked {
                Check::Admitted(hold) => {
                    self.live.fetch_add(1, Ordering::Relaxed);
                    return Ok(Admission {
                        limiter: Arc::clone(self),
                        hold: Some(hold),
                        lent_own,
                    });
                }
                Check::Refused(refusal) => return Err(Denied::Refused(refusal)),
                Check::Short(short) => short,
            };
            if borrowing.is_none() {
                // Whoever borrows meanwhile may bring room for this call too, or find a pool
                // dry: look again once it is done.
                borrowing = Some(self.borrowing.lock().await);
                continue;
            }
            if borrows == BORROW_ATTEMPTS {
                // Other calls keep taking what is borrowed for this one.
                let refusal = self.ledger().contended(&short);
                return Err(Denied::Refused(refusal));
            }
            borrows += 1;
            self.borrow(&short, now, &mut lent_own).await?;
        }
    }

    /// Borrows each shortfall from its pool; a pool that will not lend refuses the call. When
    /// the store cannot be reached, a pool failing open lends from this instance's allowance
    /// (noted in `lent_own`), and one failing closed refuses.
    async fn borrow(&self, short: &Shortfalls, now: Micros, lent_own: &mut Vec<Pool>) -> Result<(), Denied> {
        for shortfall in short.iter() {
            let (pool, need) = (&shortfall.pool, shortfall.need);
            let lent = match self
                .store
                .borrow(pool, &self.instance, pool.lease_size(), need, now)
                .await
            {
                Ok(lent) => lent,
                Err(e) => {
                    if !self.lend_own(shortfall, now) {
                        return Err(Denied::Store(e));
                    }
                    lent_own.push(pool.clone());
                    continue;
                }
            };
            match lent {
                Lent::Granted(granted) => self.ledger().credit(&pool.id(), granted),
                Lent::Refused { retry_after } => {
                    let refused = self.ledger().refused(shortfall, retry_after, now);
                    if let Some(unused) = refused.give_back {
                        self.give_back(unused, now).await;
                    }
                    return Err(Denied::Refused(refused.refusal));
                }
            }
        }
        Ok(())
    }

    /// What `pool` does when the store is unreachable.
    pub fn when_unreachable(&self, pool: &Pool) -> WhenUnreachable {
        match pool {
            Pool::Budget { budget, .. } => budget.when_unreachable.unwrap_or(self.when_unreachable),
            Pool::Key { .. } => self.when_unreachable,
        }
    }

    /// Lends `shortfall` from this instance's allowance if its pool fails open and the
    /// allowance covers it.
    fn lend_own(&self, shortfall: &Shortfall, now: Micros) -> bool {
        match self.when_unreachable(&shortfall.pool) {
            WhenUnreachable::FailClosed => false,
            WhenUnreachable::FailOpen { percent } => self.ledger().lend_own(shortfall, percent, now),
        }
    }

    /// Reports to each budget's pool what this instance lent itself of it while the store was
    /// unreachable, so that the pool counts it as lent (every second, and before stopping).
    /// What cannot be reported yet stays to report, and is never given back meanwhile.
    pub async fn report_own(&self, now: Micros) {
        let unreported = self.ledger().unreported();
        for (pool, lent) in unreported {
            match self.store.overdraw(&pool, &self.instance, lent, now).await {
                Ok(()) => {
                    self.ledger().reported(&pool.id(), lent);
                    tracing::warn!(pool = ?pool.id(), cost_nanos = lent.cost.0, tokens = lent.tokens,
                        "reported what this instance admitted on its own while the store was unreachable");
                }
                Err(e) => {
                    tracing::debug!(pool = ?pool.id(), "not yet reported what was lent on this instance's own: {e}");
                    return;
                }
            }
        }
    }

    async fn give_back(&self, unused: GiveBack, now: Micros) {
        if let Err(e) = self
            .store
            .give_back(&unused.pool, &self.instance, unused.unused, now)
            .await
        {
            // Kept by the pool as if used: the limit is stricter until its window resets or
            // its bucket refills, never looser.
            tracing::warn!(pool = ?unused.pool.id(), at = now.0, "an unused slice could not be given back: {e}");
        }
    }

    /// Gives back what slices hold unused: those not drawn on lately with [`Idle::Lapsed`]
    /// (every second), all of them with [`Idle::All`] (when the instance stops).
    pub async fn give_back_idle(&self, now: Micros, idle: Idle) {
        let unused = self.ledger().idle(now, idle);
        for slice in unused {
            self.give_back(slice, now).await;
        }
    }
}

impl Admission {
    /// The pools this instance lent itself part of the call's worst case from (the store was
    /// unreachable and they fail open).
    pub fn lent_own(&self) -> &[Pool] {
        &self.lent_own
    }

    /// Replaces the hold by the call's real usage (recorded at `spent.at`), on every pool it
    /// drew on, and adds its cost to every budget it counts against. Returns the threshold
    /// alerts this raised.
    pub fn settle(mut self, spent: &Spent<'_>) -> Vec<Alert> {
        match self.hold.take() {
            Some(hold) => {
                self.limiter.live.fetch_sub(1, Ordering::Relaxed);
                self.limiter.ledger().settle(hold, spent)
            }
            None => Vec::new(),
        }
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("hold", &self.hold)
            .field("lent_own", &self.lent_own)
            .finish()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(hold) = self.hold.take() {
            self.limiter.live.fetch_sub(1, Ordering::Relaxed);
            self.limiter.ledger().release(hold);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goodhart_core::Nanos;
    use goodhart_core::budgets::{Action, Budget, BudgetScope, Period};
    use goodhart_core::keys::RateLimits;
    use goodhart_core::limits::{BUDGET_IDLE_MICROS, BudgetRefusal, Cause, DRY_POOL_MICROS, RateRefusal, Resource};
    use goodhart_core::usage::Attribution;
    use goodhart_store::testing::TestDatabase;

    fn budget(id: &str, scope: BudgetScope, limit: i64, action: Action) -> Budget {
        Budget {
            id: id.into(),
            scope,
            period: Period::Month,
            limit: Nanos(limit),
            token_limit: None,
            action,
            thresholds: vec![50, 80, 100],
            timezone: "UTC".into(),
            created_at: Micros(0),
            when_unreachable: None,
        }
    }

    fn alice() -> Attribution {
        Attribution {
            user: "alice".into(),
            team: Some("payments".into()),
            ..Default::default()
        }
    }

    fn rates(rpm: Option<u64>, tpm: Option<u64>) -> RateLimits {
        RateLimits {
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
        }
    }

    async fn limiter_with(budgets: &[Budget]) -> (Arc<Limiter>, TestDatabase) {
        let db = TestDatabase::sqlite();
        let store = db.open().await.unwrap();
        for b in budgets {
            store.create_budget(b).await.unwrap();
        }
        (instance(&db, "a").await, db)
    }

    /// Another gateway instance on the same database.
    async fn instance(db: &TestDatabase, name: &str) -> Arc<Limiter> {
        let limiter = Limiter::new(db.open().await.unwrap(), name.into(), WhenUnreachable::FailClosed);
        limiter.reload(now()).await.unwrap();
        limiter
    }

    fn now() -> Micros {
        goodhart_store::now_micros()
    }

    /// A call of key `k` by alice, of worst case `cost` (`None`: unpriced) and `tokens`.
    async fn call(
        limiter: &Arc<Limiter>,
        rates: RateLimits,
        who: &Attribution,
        cost: Option<i64>,
        tokens: u64,
        at: Micros,
    ) -> Result<Admission, Refusal> {
        let call = Call {
            key_id: "k",
            rates,
            who,
            cost: cost.map(Nanos),
            tokens,
        };
        limiter.admit(&call, at).await.map_err(|denied| match denied {
            Denied::Refused(refusal) => refusal,
            Denied::Store(e) => panic!("{e}"),
        })
    }

    async fn admit(limiter: &Arc<Limiter>, cost: i64) -> Result<Admission, BudgetRefusal> {
        match call(limiter, RateLimits::default(), &alice(), Some(cost), 0, now()).await {
            Ok(admission) => Ok(admission),
            Err(Refusal::Budget(refusal)) => Err(refusal),
            Err(other) => panic!("{other:?}"),
        }
    }

    async fn rate(limiter: &Arc<Limiter>, rates: RateLimits, tokens: u64, at: i64) -> Result<Admission, RateRefusal> {
        match call(limiter, rates, &alice(), Some(0), tokens, Micros(at)).await {
            Ok(admission) => Ok(admission),
            Err(Refusal::Rate(refusal)) => Err(refusal),
            Err(other) => panic!("{other:?}"),
        }
    }

    fn settle(admission: Admission, at: Micros, cost: i64, tokens: u64) -> Vec<Alert> {
        let who = alice();
        admission.settle(&Spent {
            key_id: "k",
            who: &who,
            at,
            cost: Nanos(cost),
            tokens,
        })
    }

    async fn race(limiters: &[Arc<Limiter>], calls: usize, cost: i64) -> Vec<Admission> {
        let tasks: Vec<_> = (0..calls)
            .map(|i| {
                let limiter = Arc::clone(&limiters[i % limiters.len()]);
                #[expect(clippy::disallowed_methods, reason = "the test awaits every task")]
                let task = tokio::spawn(async move { admit(&limiter, cost).await.ok() });
                task
            })
            .collect();
        let mut held = Vec::new();
        for task in tasks {
            held.extend(task.await.unwrap());
        }
        held
    }

    #[tokio::test]
    async fn concurrent_admissions_never_reserve_past_the_limit() {
        let (limiter, _db) =
            limiter_with(&[budget("b", BudgetScope::Team("payments".into()), 50_000, Action::Block)]).await;
        let held = race(std::slice::from_ref(&limiter), 200, 1_000).await;
        assert_eq!(held.len(), 50, "exactly the 50 calls whose worst case fits");
        assert_eq!(limiter.standing()[0].reserved, Nanos(50_000));
        drop(held);
        assert_eq!(
            limiter.standing()[0].reserved,
            Nanos::ZERO,
            "dropped admissions are released"
        );
    }

    #[tokio::test]
    async fn instances_sharing_a_database_admit_together_what_one_would() {
        let (a, db) = limiter_with(&[budget("b", BudgetScope::Team("payments".into()), 50_000, Action::Block)]).await;
        let b = instance(&db, "b").await;
        let held = race(&[a, b], 200, 1_000).await;
        // A slice's remainder smaller than one call may sit with the instance that was not
        // refused last: at most one call per instance short of the limit, never over it.
        assert!((49..=50).contains(&held.len()), "{} admitted", held.len());
    }

    #[tokio::test]
    async fn settling_swaps_the_reservation_for_the_real_cost_and_reports_thresholds() {
        let (limiter, _db) = limiter_with(&[
            budget("cap", BudgetScope::User("alice".into()), 10_000, Action::Block),
            budget("soft", BudgetScope::Org, 10_000, Action::Alert),
        ])
        .await;
        let admission = admit(&limiter, 9_000).await.unwrap();
        let refused = admit(&limiter, 2_000).await.unwrap_err();
        assert_eq!((refused.budget_id.as_str(), refused.reserved), ("cap", Nanos(9_000)));
        assert_eq!(refused.scope, "user alice");
        let crossed = settle(admission, now(), 6_000, 100);
        let ids: Vec<&str> = crossed.iter().map(|a| a.id.split(':').nth(1).unwrap()).collect();
        assert_eq!(ids, vec!["cap", "soft"]);
        assert!(crossed.iter().all(|a| a.id.ends_with(":50")), "{crossed:?}");
        let standing = limiter.standing();
        assert_eq!(
            standing[0],
            Standing {
                budget_id: "cap".into(),
                spent: Nanos(6_000),
                reserved: Nanos::ZERO
            }
        );
        assert!(admit(&limiter, 4_000).await.is_ok(), "room again after settling");
    }

    #[tokio::test]
    async fn idle_slices_go_back_to_the_pool_for_other_instances() {
        let (a, db) = limiter_with(&[budget("cap", BudgetScope::Org, 10_000, Action::Block)]).await;
        let b = instance(&db, "b").await;
        settle(admit(&a, 1_000).await.unwrap(), now(), 400, 0);
        assert!(
            admit(&b, 9_600).await.is_err(),
            "a still holds the unused $600 of its slice"
        );
        a.give_back_idle(Micros(now().0 + BUDGET_IDLE_MICROS), Idle::Lapsed)
            .await;
        let refused_again = call(&b, RateLimits::default(), &alice(), Some(9_600), 0, now()).await;
        assert!(refused_again.is_err(), "a dry pool is not asked again within a second");
        let later = Micros(now().0 + DRY_POOL_MICROS);
        let lent = call(&b, RateLimits::default(), &alice(), Some(9_600), 0, later).await;
        assert!(lent.is_ok(), "given back, and lent to b");
        assert!(admit(&a, 1).await.is_err(), "the whole limit is spent or reserved");
    }

    #[tokio::test]
    async fn unpriced_models_are_refused_only_where_a_hard_cap_applies() {
        let (limiter, _db) =
            limiter_with(&[budget("cap", BudgetScope::Team("search".into()), 10_000, Action::Block)]).await;
        let none = RateLimits::default();
        assert!(
            call(&limiter, none, &alice(), None, 0, now()).await.is_ok(),
            "no cap applies to payments"
        );
        let bob = Attribution {
            user: "bob".into(),
            team: Some("search".into()),
            ..Default::default()
        };
        match call(&limiter, none, &bob, None, 0, now()).await {
            Err(Refusal::Budget(refusal)) => assert_eq!(refusal.cause, Cause::Unpriced),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn reloading_keeps_reservations_in_flight_and_seeds_spend_from_the_store() {
        let (limiter, _db) = limiter_with(&[budget("cap", BudgetScope::Org, 10_000, Action::Block)]).await;
        let held = admit(&limiter, 4_000).await.unwrap();
        limiter.reload(now()).await.unwrap();
        assert_eq!(limiter.standing()[0].reserved, Nanos(4_000));
        drop(held);
        assert_eq!(limiter.standing()[0].reserved, Nanos::ZERO);
        assert!(admit(&limiter, 10_000).await.is_ok(), "the slice survived the reload");
    }

    #[tokio::test]
    async fn requests_per_minute_refill_continuously() {
        let (limiter, _db) = limiter_with(&[]).await;
        let three = rates(Some(3), None);
        for _ in 0..3 {
            assert!(rate(&limiter, three, 0, 0).await.is_ok());
        }
        let refused = rate(&limiter, three, 0, 0).await.err().unwrap();
        assert_eq!((refused.resource, refused.limit), (Resource::Requests, 3));
        assert_eq!(refused.retry_after, Some(20_000_001), "one request every 20 s");
        assert!(rate(&limiter, three, 0, 20_000_001).await.is_ok());
    }

    #[tokio::test]
    async fn tokens_are_charged_up_front_and_trued_up() {
        let (limiter, _db) = limiter_with(&[]).await;
        let limits = rates(Some(100), Some(1_000));
        let admission = rate(&limiter, limits, 800, 0).await.unwrap();
        let refused = rate(&limiter, limits, 300, 0).await.err().unwrap();
        assert_eq!(refused.resource, Resource::Tokens);
        settle(admission, Micros(0), 0, 100); // used 100 of the 800 taken
        let second = rate(&limiter, limits, 800, 0).await.unwrap();
        drop(second); // ended without a record: everything comes back
        assert!(rate(&limiter, limits, 900, 0).await.is_ok());
        let unlimited = rate(&limiter, rates(None, None), 1 << 40, 0).await.unwrap();
        assert!(
            unlimited.hold.as_ref().is_some_and(|h| h.draws().is_empty()),
            "unlimited keys pass, holding nothing"
        );
    }

    #[tokio::test]
    async fn instances_share_one_bucket_per_key() {
        let db = TestDatabase::sqlite();
        let (a, b) = (instance(&db, "a").await, instance(&db, "b").await);
        let limits = rates(Some(100), None);
        let mut admitted = 0;
        for i in 0..300 {
            let instance = if i % 2 == 0 { &a } else { &b };
            admitted += usize::from(rate(instance, limits, 0, 0).await.is_ok());
        }
        // Each instance takes five requests at a time: whatever one holds unspent when the
        // bucket runs dry is not used by the other, never added to it.
        assert!((95..=100).contains(&admitted), "{admitted} admitted of a limit of 100");
        a.give_back_idle(Micros(0), Idle::All).await;
        b.give_back_idle(Micros(0), Idle::All).await;
        let left = 100 - admitted;
        for _ in 0..left {
            assert!(rate(&b, limits, 0, 0).await.is_ok(), "what a held unspent came back");
        }
        assert!(rate(&a, limits, 0, 0).await.is_err());
    }

    #[tokio::test]
    async fn one_admission_for_budgets_and_rate_limits_takes_nothing_when_either_refuses() {
        let (limiter, _db) = limiter_with(&[budget("cap", BudgetScope::Org, 10_000, Action::Block)]).await;
        let one = rates(Some(1), Some(1_000));
        let over = call(&limiter, one, &alice(), Some(20_000), 10, Micros(0)).await;
        assert!(matches!(over, Err(Refusal::Budget(_))), "{over:?}");
        let fits = call(&limiter, one, &alice(), Some(1_000), 10, Micros(0)).await;
        assert!(
            fits.is_ok(),
            "the refused call used none of the key's one request a minute"
        );
        let over_rate = call(&limiter, one, &alice(), Some(1_000), 10, Micros(0)).await;
        assert!(matches!(over_rate, Err(Refusal::Rate(_))), "{over_rate:?}");
        assert_eq!(
            limiter.standing()[0].reserved,
            Nanos(1_000),
            "nor any of the budget: only the admitted call holds it"
        );
    }

    /// Takes the shared pools' tables away from every store on `db` (the database is as good
    /// as unreachable for borrowing), or puts them back.
    async fn pools_reachable(db: &TestDatabase, reachable: bool) {
        let renames = [
            ("budget_leases", "budget_leases_away"),
            ("rate_buckets", "rate_buckets_away"),
        ];
        let sql: Vec<String> = renames
            .iter()
            .map(|&(table, away)| match reachable {
                true => format!("ALTER TABLE {away} RENAME TO {table}"),
                false => format!("ALTER TABLE {table} RENAME TO {away}"),
            })
            .collect();
        db.execute_batch(&sql.join(";")).await.unwrap();
    }

    async fn try_admit(limiter: &Arc<Limiter>, rates: RateLimits, cost: i64) -> Result<Admission, Denied> {
        let who = alice();
        let call = Call {
            key_id: "k",
            rates,
            who: &who,
            cost: Some(Nanos(cost)),
            tokens: 0,
        };
        limiter.admit(&call, now()).await
    }

    #[tokio::test]
    async fn a_budget_failing_open_admits_its_allowance_while_the_store_is_unreachable_then_reports_it() {
        let open = Budget {
            when_unreachable: Some(WhenUnreachable::FailOpen { percent: 10 }),
            ..budget("open", BudgetScope::Org, 100_000, Action::Block)
        };
        let (a, db) = limiter_with(&[open]).await;
        // A slice of 5 % is held before the outage: its 5,000 admit calls as ever.
        let held = try_admit(&a, RateLimits::default(), 5_000).await.unwrap();
        assert!(held.lent_own().is_empty());
        settle(held, now(), 5_000, 0);
        pools_reachable(&db, false).await;
        // The allowance, 10 % of 100,000: five calls of 2,000, not a sixth.
        for i in 0..5 {
            let admission = try_admit(&a, RateLimits::default(), 2_000).await;
            let admission = admission.unwrap_or_else(|e| panic!("call {i}: {e:?}"));
            assert_eq!(admission.lent_own().len(), 1, "lent on the instance's own authority");
            settle(admission, now(), 2_000, 0);
        }
        let past = try_admit(&a, RateLimits::default(), 2_000).await;
        assert!(
            matches!(past, Err(Denied::Store(_))),
            "past the allowance it fails closed: {past:?}"
        );
        // Nothing reported or given back while the store is away.
        a.report_own(now()).await;
        a.give_back_idle(now(), Idle::All).await;
        pools_reachable(&db, true).await;
        a.report_own(now()).await;
        // Another instance finds the pool counting what `a` admitted: 100,000 − 5,000 − 10,000.
        let b = instance(&db, "b").await;
        let _rest = try_admit(&b, RateLimits::default(), 85_000).await.unwrap();
        let over = try_admit(&b, RateLimits::default(), 1).await;
        assert!(matches!(over, Err(Denied::Refused(Refusal::Budget(_)))), "{over:?}");
    }

    #[tokio::test]
    async fn a_budget_failing_closed_refuses_what_needs_the_store_and_a_key_follows_the_default() {
        // The gateway's default fails open; this budget fails closed all the same.
        let closed = Budget {
            when_unreachable: Some(WhenUnreachable::FailClosed),
            ..budget("closed", BudgetScope::Org, 100_000, Action::Block)
        };
        let db = TestDatabase::sqlite();
        let store = db.open().await.unwrap();
        store.create_budget(&closed).await.unwrap();
        let limiter = Limiter::new(store, "a".into(), WhenUnreachable::FailOpen { percent: 50 });
        limiter.reload(now()).await.unwrap();
        let held = try_admit(&limiter, RateLimits::default(), 100).await.unwrap();
        settle(held, now(), 100, 0);
        pools_reachable(&db, false).await;
        assert!(
            try_admit(&limiter, RateLimits::default(), 100).await.is_ok(),
            "within the slice held, the store is not needed"
        );
        let needs_more = try_admit(&limiter, RateLimits::default(), 10_000).await;
        assert!(matches!(needs_more, Err(Denied::Store(_))), "{needs_more:?}");
        // Keys follow the gateway's default (fail_open): up to their own per-minute limit.
        let three = rates(Some(3), None);
        for _ in 0..3 {
            let admission = try_admit(&limiter, three, 0).await.unwrap();
            assert_eq!(admission.lent_own().len(), 1);
        }
        assert!(matches!(try_admit(&limiter, three, 0).await, Err(Denied::Store(_))));
    }
}
