//! Forecast and runaway alerts, evaluated over the budgets' current windows: a window whose
//! spend so far projects past its limit, and a scope whose last 15 minutes' hourly rate is far
//! above its rate over the week before (see [`RunawayRule`]).

use goodhart_core::Micros;
use goodhart_core::budgets::{self, Alert};
use goodhart_core::limits::BudgetWindow;
use goodhart_core::money::Nanos;
use goodhart_core::time::MICROS_PER_HOUR;
use goodhart_store::{Store, StoreError};

use super::config::RunawayRule;

/// The recent window and the baseline a runaway is judged on.
const RECENT: i64 = MICROS_PER_HOUR / 4;
const BASELINE: i64 = 7 * 24 * MICROS_PER_HOUR;

/// Forecast and runaway alerts for the budgets in `snapshot` at `now`.
pub async fn evaluate(
    store: &dyn Store,
    snapshot: &[BudgetWindow],
    rule: RunawayRule,
    now: Micros,
) -> Result<Vec<Alert>, StoreError> {
    let mut raised = Vec::new();
    for BudgetWindow { budget, window, spent } in snapshot {
        if let Some(projected) = budgets::forecast(spent.cost, *window, now)
            && projected > budget.limit
        {
            raised.push(Alert::forecast(budget, *window, projected, now));
        }
        let recent = store.spend(&budget.scope, Micros(now.0 - RECENT), now).await?.cost;
        let before = store
            .spend(&budget.scope, Micros(now.0 - RECENT - BASELINE), Micros(now.0 - RECENT))
            .await?
            .cost;
        let per_hour = |cost: Nanos, span: i64| {
            Nanos((i128::from(cost.0) * i128::from(MICROS_PER_HOUR) / i128::from(span)) as i64)
        };
        let (recent_rate, baseline_rate) = (per_hour(recent, RECENT), per_hour(before, BASELINE));
        if budgets::is_runaway(recent_rate, baseline_rate, rule.factor, rule.floor_per_hour) {
            raised.push(Alert::runaway(budget, recent_rate, baseline_rate, now));
        }
    }
    Ok(raised)
}

#[cfg(test)]
mod tests {
    use super::*;
    use goodhart_core::budgets::{Action, Budget, BudgetScope, Period};
    use goodhart_core::limits::Amount;
    use goodhart_core::pricing::PriceTable;
    use goodhart_core::usage::{Attribution, Source, TokenCounts, UsageEvent};
    use goodhart_store::PricedEvent;
    use goodhart_store::testing::TestDatabase;

    fn budget(agent: &str) -> Budget {
        Budget {
            id: agent.into(),
            scope: BudgetScope::Agent(agent.into()),
            period: Period::Month,
            limit: Nanos(10_000 * 1_000_000_000),
            token_limit: None,
            action: Action::Alert,
            thresholds: vec![50, 80, 100],
            timezone: "UTC".into(),
            created_at: Micros(0),
            when_unreachable: None,
        }
    }

    /// Calls of `dollars` each (Sonnet input at $3/Mtok), every `every` minutes from `from` to `to`.
    fn calls(agent: &str, from: Micros, to: Micros, every: i64, dollars: u64) -> Vec<PricedEvent> {
        let prices = PriceTable::builtin();
        let mut out = Vec::new();
        let mut at = from;
        while at < to {
            let tokens = TokenCounts {
                input: dollars * 1_000_000 / 3,
                ..Default::default()
            };
            let event = UsageEvent {
                id: format!("{agent}-{}", at.0),
                timestamp: at,
                attribution: Attribution {
                    user: "u".into(),
                    agent: Some(agent.into()),
                    ..Default::default()
                },
                provider: None,
                model: "claude-sonnet-4-5".into(),
                tokens,
                finish_reason: None,
                fingerprints: Default::default(),
                content: None,
                source: Source::Api,
                estimated: false,
                call: None,
            };
            let cost = prices.cost_of(None, "claude-sonnet-4-5", &tokens);
            out.push(PricedEvent { event, cost });
            at = Micros(at.0 + every * 60_000_000);
        }
        out
    }

    #[tokio::test]
    async fn a_3am_loop_is_a_runaway_and_a_steady_heavy_agent_is_not() {
        let db = TestDatabase::sqlite();
        let store = db.open().await.unwrap();
        let now = goodhart_core::time::parse_rfc3339("2026-11-20T03:10:00Z").unwrap();
        let week_ago = Micros(now.0 - BASELINE - RECENT);
        let recent = Micros(now.0 - RECENT);
        let mut events = calls("looper", week_ago, recent, 60, 1); // $1 an hour, all week
        events.extend(calls("looper", recent, now, 1, 1)); // then $1 a minute at 3 a.m.
        events.extend(calls("heavy", week_ago, now, 1, 1)); // $1 a minute, all week long
        store.insert_usage(events, "test").await.unwrap();
        let window = budgets::window(Period::Month, &jiff::tz::TimeZone::UTC, now);
        let snapshot = vec![
            BudgetWindow {
                budget: budget("looper"),
                window,
                spent: Amount::ZERO,
            },
            BudgetWindow {
                budget: budget("heavy"),
                window,
                spent: Amount::ZERO,
            },
        ];
        let alerts = evaluate(store.as_ref(), &snapshot, RunawayRule::default(), now)
            .await
            .unwrap();
        let runaways: Vec<&str> = alerts
            .iter()
            .filter(|a| a.kind == budgets::AlertKind::Runaway)
            .map(|a| a.budget_id.as_str())
            .collect();
        assert_eq!(runaways, vec!["looper"], "{alerts:?}");
        assert!(alerts[0].message.contains("/hour"), "{}", alerts[0].message);
    }

    #[tokio::test]
    async fn forecasts_over_the_limit_raise_one_alert_per_window() {
        let db = TestDatabase::sqlite();
        let store = db.open().await.unwrap();
        let now = goodhart_core::time::parse_rfc3339("2026-11-16T00:00:00Z").unwrap();
        let window = budgets::window(Period::Month, &jiff::tz::TimeZone::UTC, now);
        let half_spent = Nanos(6_000 * 1_000_000_000); // $6,000 of $10,000 by mid-month
        let alerts = evaluate(
            store.as_ref(),
            &[BudgetWindow {
                budget: budget("a"),
                window,
                spent: Amount {
                    cost: half_spent,
                    ..Amount::ZERO
                },
            }],
            RunawayRule::default(),
            now,
        )
        .await
        .unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].id, format!("forecast:a:{}", window.start.0));
        assert!(
            alerts[0].message.contains("$12,000.00") || alerts[0].message.contains("$12000.00"),
            "{}",
            alerts[0].message
        );
    }
}
