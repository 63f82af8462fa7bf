//! Budget enforcement on the request path: every call is admitted against every blocking
//! budget that applies to it, all at once, by reserving its worst-case cost; the reservation
//! is settled with the real cost when the call is recorded, and released if the call ends
//! without one (a dropped [`Reservation`] releases itself).
//!
//! The ledger lives in memory behind one lock, so admission is a few hundred nanoseconds and
//! atomic across budgets. Each budget's spend in its current window is seeded from the store
//! (every source, after the spool is flushed) when the ledger loads it — at start, when
//! budgets change, and when a window rolls over — and grows with every call this gateway
//! records. Usage that reaches the store by other paths while a window is open (the ingest
//! API, another instance) is counted at the next seeding.

use std::sync::{Arc, Mutex, MutexGuard};

use goodhart_core::Micros;
use goodhart_core::budgets::{self, Action, Alert, Budget, Limits, Overrun, Usage, Window};
use goodhart_core::money::Nanos;
use goodhart_core::usage::Attribution;
use goodhart_store::{Store, StoreError};
use jiff::tz::TimeZone;

struct Live {
    budget: Budget,
    window: Window,
    usage: Usage,
}

#[derive(Default)]
struct Ledger {
    live: Vec<Live>,
}

/// Why a call was refused: the budget, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub budget_id: String,
    pub scope: String,
    pub limit: Nanos,
    pub spent: Nanos,
    pub reserved: Nanos,
    pub resets_at: Option<Micros>,
    pub tokens: bool,
    /// The model has no price, so its worst case cannot be bounded.
    pub unpriced: bool,
}

pub struct BudgetGuard {
    ledger: Mutex<Ledger>,
}

/// A call's hold on the budgets it was admitted against.
pub struct Reservation {
    guard: Arc<BudgetGuard>,
    /// The budgets held, by id and window start (a reload carries holds over by both).
    held: Vec<(String, Micros)>,
    cost: Nanos,
    tokens: u64,
    settled: bool,
}

impl BudgetGuard {
    pub fn new() -> Arc<BudgetGuard> {
        Arc::new(BudgetGuard {
            ledger: Mutex::new(Ledger::default()),
        })
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads the budgets and seeds each one's spend in its current window from the store.
    /// Reservations in flight are carried over to budgets that are still there.
    pub async fn reload(&self, store: &dyn Store, now: Micros) -> Result<(), StoreError> {
        let mut fresh = Vec::new();
        for budget in store.budgets().await? {
            let zone = TimeZone::get(&budget.timezone).unwrap_or(TimeZone::UTC);
            let window = budgets::window(budget.period, &zone, now);
            let spend = store
                .spend(&budget.scope, window.start, window.end.unwrap_or(Micros(i64::MAX)))
                .await?;
            fresh.push(Live {
                budget,
                window,
                usage: Usage {
                    spent: spend.cost,
                    spent_tokens: spend.tokens,
                    ..Usage::default()
                },
            });
        }
        let mut ledger = self.ledger();
        for live in &mut fresh {
            if let Some(old) = ledger
                .live
                .iter()
                .find(|o| o.budget.id == live.budget.id && o.window == live.window)
            {
                live.usage.reserved = old.usage.reserved;
                live.usage.reserved_tokens = old.usage.reserved_tokens;
            }
        }
        ledger.live = fresh;
        Ok(())
    }

    /// Whether any budget's window has ended (the caller then reloads).
    pub fn needs_reload(&self, now: Micros) -> bool {
        self.ledger()
            .live
            .iter()
            .any(|l| l.window.end.is_some_and(|end| now >= end))
    }

    /// Admits a call of worst case `cost` (`None`: the model has no price) and `tokens`
    /// against every blocking budget that applies to it.
    pub fn admit(
        self: &Arc<Self>,
        key_id: &str,
        who: &Attribution,
        cost: Option<Nanos>,
        tokens: u64,
    ) -> Result<Reservation, Refusal> {
        let mut ledger = self.ledger();
        let applicable: Vec<usize> = ledger
            .live
            .iter()
            .enumerate()
            .filter(|(_, l)| l.budget.action == Action::Block && l.budget.scope.applies(key_id, who))
            .map(|(i, _)| i)
            .collect();
        let refusal = |live: &Live, overrun: Option<Overrun>| Refusal {
            budget_id: live.budget.id.clone(),
            scope: budgets::scope_label(&live.budget.scope),
            limit: live.budget.limit,
            spent: live.usage.spent,
            reserved: live.usage.reserved,
            resets_at: live.window.end,
            tokens: overrun.is_some_and(|o| o.tokens),
            unpriced: overrun.is_none(),
        };
        let Some(cost) = cost else {
            return match applicable.first() {
                Some(&i) => Err(refusal(&ledger.live[i], None)),
                None => Ok(self.reservation(Vec::new(), Nanos::ZERO, 0)),
            };
        };
        let states: Vec<(Limits, Usage)> = applicable
            .iter()
            .map(|&i| {
                let live = &ledger.live[i];
                let limits = Limits {
                    usd: live.budget.limit,
                    tokens: live.budget.token_limit,
                };
                (limits, live.usage)
            })
            .collect();
        if let Err(overrun) = budgets::admit(&states, cost, tokens) {
            return Err(refusal(&ledger.live[applicable[overrun.budget]], Some(overrun)));
        }
        let mut held = Vec::with_capacity(applicable.len());
        for &i in &applicable {
            let live = &mut ledger.live[i];
            live.usage.reserved = live.usage.reserved.saturating_add(cost);
            live.usage.reserved_tokens = live.usage.reserved_tokens.saturating_add(tokens);
            held.push((live.budget.id.clone(), live.window.start));
        }
        Ok(self.reservation(held, cost, tokens))
    }

    fn reservation(self: &Arc<Self>, held: Vec<(String, Micros)>, cost: Nanos, tokens: u64) -> Reservation {
        Reservation {
            guard: Arc::clone(self),
            held,
            cost,
            tokens,
            settled: false,
        }
    }

    /// Adds a recorded call's real cost to every budget it counts against (alert-only ones
    /// too), within their current windows. Returns the (budget, thresholds crossed) pairs.
    fn spend(
        &self,
        ledger: &mut Ledger,
        key_id: &str,
        who: &Attribution,
        at: Micros,
        cost: Nanos,
        tokens: u64,
    ) -> Vec<Alert> {
        let mut crossed = Vec::new();
        for live in ledger.live.iter_mut().filter(|l| l.budget.scope.applies(key_id, who)) {
            let in_window = at >= live.window.start && live.window.end.is_none_or(|end| at < end);
            if !in_window {
                continue;
            }
            let before = live.usage.spent;
            live.usage.spent = before.saturating_add(cost);
            live.usage.spent_tokens = live.usage.spent_tokens.saturating_add(tokens);
            let thresholds =
                budgets::crossed_thresholds(before, live.usage.spent, live.budget.limit, &live.budget.thresholds);
            for percent in thresholds {
                crossed.push(Alert::threshold(
                    &live.budget,
                    live.window,
                    percent,
                    live.usage.spent,
                    at,
                ));
            }
        }
        crossed
    }

    /// Each loaded budget with its window and what it has spent in it.
    pub fn snapshot(&self) -> Vec<(Budget, Window, Nanos)> {
        self.ledger()
            .live
            .iter()
            .map(|l| (l.budget.clone(), l.window, l.usage.spent))
            .collect()
    }

    /// What each budget stands at now: (budget id, spent, reserved).
    pub fn standing(&self) -> Vec<(String, Nanos, Nanos)> {
        self.ledger()
            .live
            .iter()
            .map(|l| (l.budget.id.clone(), l.usage.spent, l.usage.reserved))
            .collect()
    }
}

impl Reservation {
    /// Replaces the reservation by the call's real cost (recorded at `at`), on every budget it
    /// counts against. Returns the threshold alerts this raised.
    pub fn settle(mut self, key_id: &str, who: &Attribution, at: Micros, cost: Nanos, tokens: u64) -> Vec<Alert> {
        self.settled = true;
        let mut ledger = self.guard.ledger();
        self.release_in(&mut ledger);
        self.guard.spend(&mut ledger, key_id, who, at, cost, tokens)
    }

    fn release_in(&self, ledger: &mut Ledger) {
        for live in &mut ledger.live {
            let holds = self
                .held
                .iter()
                .any(|(id, start)| *id == live.budget.id && *start == live.window.start);
            if holds {
                live.usage.reserved = Nanos(live.usage.reserved.0.saturating_sub(self.cost.0).max(0));
                live.usage.reserved_tokens = live.usage.reserved_tokens.saturating_sub(self.tokens);
            }
        }
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("held", &self.held)
            .field("cost", &self.cost)
            .field("tokens", &self.tokens)
            .finish()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            let mut ledger = self.guard.ledger();
            self.release_in(&mut ledger);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goodhart_core::budgets::{BudgetScope, Period};
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
        }
    }

    fn alice() -> Attribution {
        Attribution {
            user: "alice".into(),
            team: Some("payments".into()),
            ..Default::default()
        }
    }

    async fn guard_with(budgets: &[Budget]) -> (Arc<BudgetGuard>, TestDatabase) {
        let db = TestDatabase::sqlite();
        let store = db.open().await.unwrap();
        for b in budgets {
            store.create_budget(b).await.unwrap();
        }
        let guard = BudgetGuard::new();
        guard
            .reload(store.as_ref(), goodhart_store::now_micros())
            .await
            .unwrap();
        (guard, db)
    }

    #[tokio::test]
    async fn concurrent_admissions_never_reserve_past_the_limit() {
        let (guard, _db) =
            guard_with(&[budget("b", BudgetScope::Team("payments".into()), 50_000, Action::Block)]).await;
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let guard = Arc::clone(&guard);
                tokio::spawn(async move { guard.admit("k", &alice(), Some(Nanos(1_000)), 0).ok() })
            })
            .collect();
        let mut held = Vec::new();
        for task in tasks {
            held.extend(task.await.unwrap());
        }
        assert_eq!(held.len(), 50, "exactly the 50 calls whose worst case fits");
        assert_eq!(guard.standing()[0].2, Nanos(50_000));
        drop(held);
        assert_eq!(guard.standing()[0].2, Nanos::ZERO, "dropped reservations are released");
    }

    #[tokio::test]
    async fn settling_swaps_the_reservation_for_the_real_cost_and_reports_thresholds() {
        let (guard, _db) = guard_with(&[
            budget("cap", BudgetScope::User("alice".into()), 10_000, Action::Block),
            budget("soft", BudgetScope::Org, 10_000, Action::Alert),
        ])
        .await;
        let reservation = guard.admit("k", &alice(), Some(Nanos(9_000)), 0).unwrap();
        let refused = guard.admit("k", &alice(), Some(Nanos(2_000)), 0).unwrap_err();
        assert_eq!((refused.budget_id.as_str(), refused.reserved), ("cap", Nanos(9_000)));
        assert_eq!(refused.scope, "user alice");
        let crossed = reservation.settle("k", &alice(), goodhart_store::now_micros(), Nanos(6_000), 100);
        let ids: Vec<&str> = crossed.iter().map(|a| a.id.split(':').nth(1).unwrap()).collect();
        assert_eq!(ids, vec!["cap", "soft"]);
        assert!(crossed.iter().all(|a| a.id.ends_with(":50")), "{crossed:?}");
        let standing = guard.standing();
        assert_eq!(standing[0], ("cap".into(), Nanos(6_000), Nanos::ZERO));
        assert!(
            guard.admit("k", &alice(), Some(Nanos(4_000)), 0).is_ok(),
            "room again after settling"
        );
    }

    #[tokio::test]
    async fn unpriced_models_are_refused_only_where_a_hard_cap_applies() {
        let (guard, _db) =
            guard_with(&[budget("cap", BudgetScope::Team("search".into()), 10_000, Action::Block)]).await;
        assert!(
            guard.admit("k", &alice(), None, 0).is_ok(),
            "no cap applies to payments"
        );
        let bob = Attribution {
            user: "bob".into(),
            team: Some("search".into()),
            ..Default::default()
        };
        assert!(guard.admit("k", &bob, None, 0).unwrap_err().unpriced);
    }

    #[tokio::test]
    async fn reloading_keeps_reservations_in_flight_and_seeds_spend_from_the_store() {
        let (guard, db) = guard_with(&[budget("cap", BudgetScope::Org, 10_000, Action::Block)]).await;
        let held = guard.admit("k", &alice(), Some(Nanos(4_000)), 0).unwrap();
        let store = db.open().await.unwrap();
        guard
            .reload(store.as_ref(), goodhart_store::now_micros())
            .await
            .unwrap();
        assert_eq!(guard.standing()[0].2, Nanos(4_000));
        drop(held);
        assert_eq!(guard.standing()[0].2, Nanos::ZERO);
    }
}
