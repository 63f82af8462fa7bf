//! SQLite: budget pools lent out in slices and per-key rate buckets, each changed in one
//! immediate write transaction.

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::Nanos;
use goodhart_core::limits::{Amount, TokenBucket};
use rusqlite::{OptionalExtension, params};

use crate::budgets::Sources;
use crate::error::StoreError;
use crate::leases::{self, LeaseRequest, LeaseStore, RateBucket};

use super::SqliteStore;
use super::budgets::spend_on;

fn read_amount(r: &rusqlite::Row<'_>) -> rusqlite::Result<Amount> {
    Ok(Amount {
        cost: Nanos(r.get(0)?),
        tokens: r.get::<_, i64>(1)?.max(0) as u64,
        requests: 0,
    })
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn lease_budget(&self, request: &LeaseRequest<'_>) -> Result<Option<Amount>, StoreError> {
        let (budget, window, instance) = (request.budget.clone(), request.window, request.instance.to_owned());
        let (want, need, now, overdraw) = (request.want, request.need, request.now, request.overdraw);
        self.write(move |w| {
            let tx = w
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let (id, start, end) = (&budget.id, window.start.0, leases::window_end(&window));
            let until = Micros(end.unwrap_or(i64::MAX));
            let pool = tx
                .query_row(leases::SELECT_POOL, params![id, start], read_amount)
                .optional()?;
            let base = match pool {
                Some(base) => base,
                None => {
                    let base = leases::amount(spend_on(&tx, &budget.scope, window.start, until, Sources::Gateway)?);
                    let old = now.0.saturating_sub(leases::POOL_RETENTION_MICROS);
                    tx.execute(leases::DELETE_OLD_LEASES, params![old])?;
                    tx.execute(leases::DELETE_OLD_POOLS, params![old])?;
                    tx.execute(
                        leases::OPEN_POOL,
                        params![id, start, end, base.cost.0, base.tokens as i64, now.0],
                    )?;
                    base
                }
            };
            let leased = tx.query_row(leases::LEASED, params![id, start], read_amount)?;
            let others = leases::amount(spend_on(&tx, &budget.scope, window.start, until, Sources::Others)?);
            let taken = base.saturating_add(leased).saturating_add(others);
            let request = LeaseRequest {
                budget: &budget,
                window,
                instance: &instance,
                want,
                need,
                now,
                overdraw,
            };
            let granted = leases::lend(&request, taken);
            if let Some(g) = granted {
                tx.execute(
                    leases::GRANT,
                    params![id, start, instance, g.cost.0, g.tokens as i64, now.0],
                )?;
            }
            tx.commit()?;
            Ok(granted)
        })
        .await
    }

    async fn return_lease(
        &self,
        budget_id: &str,
        window_start: Micros,
        instance: &str,
        unused: Amount,
        now: Micros,
    ) -> Result<(), StoreError> {
        let (budget_id, instance) = (budget_id.to_owned(), instance.to_owned());
        self.write(move |w| {
            w.conn.execute(
                leases::GIVE_BACK,
                params![
                    unused.cost.0,
                    unused.tokens as i64,
                    now.0,
                    budget_id,
                    window_start.0,
                    instance
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn take_rate(
        &self,
        bucket: &RateBucket<'_>,
        want: u64,
        need: u64,
        now: Micros,
    ) -> Result<Result<u64, Option<i64>>, StoreError> {
        self.update_bucket(bucket, now, move |b| b.take_up_to(want, need, now))
            .await
    }

    async fn return_rate(&self, bucket: &RateBucket<'_>, unused: u64, now: Micros) -> Result<(), StoreError> {
        self.update_bucket(bucket, now, move |b| {
            b.give_back(unused, now);
            Ok::<_, ()>(())
        })
        .await
        .map(|_| ())
    }
}

impl SqliteStore {
    /// Runs `change` on a key's shared bucket in one write transaction and saves the result.
    async fn update_bucket<T: Send + 'static, E: Send + 'static>(
        &self,
        bucket: &RateBucket<'_>,
        now: Micros,
        change: impl FnOnce(&mut TokenBucket) -> Result<T, E> + Send + 'static,
    ) -> Result<Result<T, E>, StoreError> {
        let (key, resource, capacity, per_minute) = (
            bucket.key_id.to_owned(),
            bucket.resource,
            bucket.capacity,
            bucket.per_minute,
        );
        let kind = resource.as_str();
        self.write(move |w| {
            let bucket = RateBucket {
                key_id: &key,
                resource,
                capacity,
                per_minute,
            };
            let tx = w
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let stored = tx
                .query_row(leases::SELECT_BUCKET, params![key, kind], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let mut state = leases::load_bucket(&bucket, stored, now);
            let outcome = change(&mut state);
            let (level, updated) = leases::stored_bucket(&state);
            tx.execute(leases::SAVE_BUCKET, params![key, kind, level, updated])?;
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }
}
