//! PostgreSQL: budget pools lent out in slices and per-key rate buckets, each changed under
//! a row lock so that instances take turns.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use goodhart_core::Micros;
use goodhart_core::Nanos;
use goodhart_core::limits::{Amount, TokenBucket};
use tokio_postgres::types::ToSql;

use crate::budgets::Sources;
use crate::error::StoreError;
use crate::leases::{self, LeaseRequest, LeaseStore, RateBucket};

use super::PostgresStore;
use super::budgets::spend_on;

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn lease_budget(&self, request: &LeaseRequest<'_>) -> Result<Option<Amount>, StoreError> {
        let (budget, window) = (request.budget, request.window);
        let (id, start, end) = (&budget.id, window.start.0, leases::window_end(&window));
        let until = end.unwrap_or(i64::MAX);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let lock = format!("{} FOR UPDATE", leases::SELECT_POOL);
        let row = match tx.query_opt(&lock, &[id, &start]).await? {
            Some(row) => row,
            None => {
                let base = spend_on(&tx, &budget.scope, window.start, Micros(until), Sources::Gateway).await?;
                let old = request.now.0.saturating_sub(leases::POOL_RETENTION_MICROS);
                tx.execute(leases::DELETE_OLD_LEASES, &[&old]).await?;
                tx.execute(leases::DELETE_OLD_POOLS, &[&old]).await?;
                let params: [&(dyn ToSql + Sync); 6] =
                    [id, &start, &end, &base.cost.0, &(base.tokens as i64), &request.now.0];
                tx.execute(leases::OPEN_POOL, &params).await?;
                // Another instance may have opened it first: its base stands.
                tx.query_one(&lock, &[id, &start]).await?
            }
        };
        let base = Amount {
            cost: Nanos(row.get(0)),
            tokens: row.get::<_, i64>(1).max(0) as u64,
            requests: 0,
        };
        let leased = tx.query_one(leases::LEASED, &[id, &start]).await?;
        let leased = Amount {
            cost: Nanos(leased.get(0)),
            tokens: leased.get::<_, i64>(1).max(0) as u64,
            requests: 0,
        };
        let others = spend_on(&tx, &budget.scope, window.start, Micros(until), Sources::Others).await?;
        let taken = base.saturating_add(leased).saturating_add(leases::amount(others));
        let granted = leases::lend(request, taken);
        if let Some(g) = granted {
            let params: [&(dyn ToSql + Sync); 6] = [
                id,
                &start,
                &request.instance,
                &g.cost.0,
                &(g.tokens as i64),
                &request.now.0,
            ];
            tx.execute(leases::GRANT, &params).await?;
        }
        tx.commit().await?;
        Ok(granted)
    }

    async fn return_lease(
        &self,
        budget_id: &str,
        window_start: Micros,
        instance: &str,
        unused: Amount,
        now: Micros,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let params: [&(dyn ToSql + Sync); 6] = [
            &unused.cost.0,
            &(unused.tokens as i64),
            &now.0,
            &budget_id,
            &window_start.0,
            &instance,
        ];
        client.execute(leases::GIVE_BACK, &params).await?;
        Ok(())
    }

    async fn take_rate(
        &self,
        bucket: &RateBucket<'_>,
        want: u64,
        need: u64,
        now: Micros,
    ) -> Result<Result<u64, Option<i64>>, StoreError> {
        self.update_bucket(bucket, now, |b| b.take_up_to(want, need, now)).await
    }

    async fn return_rate(&self, bucket: &RateBucket<'_>, unused: u64, now: Micros) -> Result<(), StoreError> {
        self.update_bucket(bucket, now, |b| {
            b.give_back(unused, now);
            Ok::<_, ()>(())
        })
        .await
        .map(|_| ())
    }
}

impl PostgresStore {
    /// Runs `change` on a key's shared bucket under a row lock and saves the result.
    async fn update_bucket<T, E>(
        &self,
        bucket: &RateBucket<'_>,
        now: Micros,
        change: impl FnOnce(&mut TokenBucket) -> Result<T, E>,
    ) -> Result<Result<T, E>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (key, kind) = (&bucket.key_id, &bucket.resource.as_str());
        // A first row for a new bucket, so that the row lock below serialises every instance.
        let full = leases::stored_bucket(&leases::load_bucket(bucket, None, now));
        tx.execute(
            &format!("{} ON CONFLICT (key_id, kind) DO NOTHING", INSERT_BUCKET),
            &[key, kind, &full.0, &full.1],
        )
        .await?;
        let row = tx
            .query_one(&format!("{} FOR UPDATE", leases::SELECT_BUCKET), &[key, kind])
            .await?;
        let mut state = leases::load_bucket(bucket, Some((row.get(0), row.get(1))), now);
        let outcome = change(&mut state);
        let (level, updated) = leases::stored_bucket(&state);
        tx.execute(leases::SAVE_BUCKET, &[key, kind, &level, &updated]).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}

const INSERT_BUCKET: &str =
    "INSERT INTO rate_buckets (key_id, kind, level_millionths, updated_at) VALUES ($1, $2, $3, $4)";
