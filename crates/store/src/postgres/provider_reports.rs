//! PostgreSQL: providers' organisation reports.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use goodhart_core::Micros;
use goodhart_core::provider_reports::{Bucket, CostLine, ReportKind, ReportPage, UsageLine};
use goodhart_core::reconcile::Metered;

use crate::error::StoreError;
use crate::provider_reports::{self as sql, ProviderReportStore, stored};

use super::PostgresStore;

#[async_trait]
impl ProviderReportStore for PostgresStore {
    async fn record_report_page(&self, provider: &str, page: ReportPage, now: Micros) -> Result<u64, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let upsert = tx.prepare_cached(sql::UPSERT_BUCKET).await?;
        let mut stored_lines = 0;
        for &bucket in page.buckets() {
            let (start, end) = (bucket.start.0, bucket.end.0);
            tx.execute(&upsert, &[&provider, &page.kind().as_str(), &start, &end, &now.0])
                .await?;
            match &page {
                ReportPage::Usage(page) => {
                    tx.execute(sql::DELETE_USAGE, &[&provider, &start, &end]).await?;
                    let insert = tx.prepare_cached(sql::INSERT_USAGE).await?;
                    for l in sql::usage_in(&page.lines, bucket) {
                        let t = &l.tokens;
                        let requests = l.requests.map(stored);
                        let counts = [t.input, t.output, t.cache_read, t.cache_write_5m, t.cache_write_1h].map(stored);
                        stored_lines += tx
                            .execute(
                                &insert,
                                &[
                                    &provider,
                                    &start,
                                    &end,
                                    &l.model,
                                    &l.api_key_id,
                                    &l.workspace,
                                    &l.service_tier,
                                    &requests,
                                    &counts[0],
                                    &counts[1],
                                    &counts[2],
                                    &counts[3],
                                    &counts[4],
                                ],
                            )
                            .await?;
                    }
                }
                ReportPage::Cost(page) => {
                    tx.execute(sql::DELETE_COSTS, &[&provider, &start, &end]).await?;
                    let insert = tx.prepare_cached(sql::INSERT_COST).await?;
                    for l in sql::costs_in(&page.lines, bucket) {
                        stored_lines += tx
                            .execute(
                                &insert,
                                &[
                                    &provider,
                                    &start,
                                    &end,
                                    &l.workspace,
                                    &l.api_key_id,
                                    &l.model,
                                    &l.item,
                                    &l.amount.0,
                                ],
                            )
                            .await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(stored_lines)
    }

    async fn report_imported_until(&self, provider: &str, report: ReportKind) -> Result<Option<Micros>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(sql::IMPORTED_UNTIL, &[&provider, &report.as_str()])
            .await?;
        Ok(row.get::<_, Option<i64>>(0).map(Micros))
    }

    async fn provider_usage(&self, from: Micros, to: Micros) -> Result<Vec<(String, UsageLine)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(sql::SELECT_USAGE, &[&from.0, &to.0]).await?;
        Ok(rows
            .iter()
            .map(|r| {
                sql::usage_line((
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    [r.get(3), r.get(4), r.get(5), r.get(6)],
                    r.get(7),
                    std::array::from_fn(|i| r.get(i + 8)),
                ))
            })
            .collect())
    }

    async fn provider_costs(&self, from: Micros, to: Micros) -> Result<Vec<(String, CostLine)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(sql::SELECT_COSTS, &[&from.0, &to.0]).await?;
        Ok(rows
            .iter()
            .map(|r| {
                sql::cost_line((
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    [r.get(3), r.get(4), r.get(5), r.get(6)],
                    r.get(7),
                ))
            })
            .collect())
    }

    async fn report_buckets(
        &self,
        report: ReportKind,
        from: Micros,
        to: Micros,
    ) -> Result<Vec<(String, Bucket)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(sql::SELECT_BUCKETS, &[&report.as_str(), &from.0, &to.0])
            .await?;
        Ok(rows
            .iter()
            .map(|r| sql::bucket((r.get(0), r.get(1), r.get(2))))
            .collect())
    }

    async fn metered_by_source(&self, from: Micros, to: Micros) -> Result<Vec<Metered>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(sql::METERED_BY_SOURCE, &[&from.0, &to.0]).await?;
        rows.iter()
            .map(|r| {
                sql::metered((
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    std::array::from_fn(|i| r.get(i + 4)),
                    r.get(10),
                ))
            })
            .collect()
    }
}
