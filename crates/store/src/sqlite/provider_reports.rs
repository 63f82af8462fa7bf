//! SQLite: providers' organisation reports.

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::provider_reports::{Bucket, CostLine, ReportKind, ReportPage, UsageLine};
use goodhart_core::reconcile::Metered;
use rusqlite::params;

use crate::error::StoreError;
use crate::provider_reports::{self as sql, ProviderReportStore, stored};

use super::SqliteStore;

#[async_trait]
impl ProviderReportStore for SqliteStore {
    async fn record_report_page(&self, provider: &str, page: ReportPage, now: Micros) -> Result<u64, StoreError> {
        let provider = provider.to_owned();
        self.write(move |w| {
            let tx = w.conn.transaction()?;
            let mut stored_lines = 0;
            for &bucket in page.buckets() {
                let key = params![provider, bucket.start.0, bucket.end.0];
                tx.prepare_cached(sql::UPSERT_BUCKET)?.execute(params![
                    provider,
                    page.kind().as_str(),
                    bucket.start.0,
                    bucket.end.0,
                    now.0
                ])?;
                match &page {
                    ReportPage::Usage(page) => {
                        tx.prepare_cached(sql::DELETE_USAGE)?.execute(key)?;
                        let mut insert = tx.prepare_cached(sql::INSERT_USAGE)?;
                        for l in sql::usage_in(&page.lines, bucket) {
                            let t = &l.tokens;
                            stored_lines += insert.execute(params![
                                provider,
                                bucket.start.0,
                                bucket.end.0,
                                l.model,
                                l.api_key_id,
                                l.workspace,
                                l.service_tier,
                                l.requests.map(stored),
                                stored(t.input),
                                stored(t.output),
                                stored(t.cache_read),
                                stored(t.cache_write_5m),
                                stored(t.cache_write_1h)
                            ])? as u64;
                        }
                    }
                    ReportPage::Cost(page) => {
                        tx.prepare_cached(sql::DELETE_COSTS)?.execute(key)?;
                        let mut insert = tx.prepare_cached(sql::INSERT_COST)?;
                        for l in sql::costs_in(&page.lines, bucket) {
                            stored_lines += insert.execute(params![
                                provider,
                                bucket.start.0,
                                bucket.end.0,
                                l.workspace,
                                l.api_key_id,
                                l.model,
                                l.item,
                                l.amount.0
                            ])? as u64;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(stored_lines)
        })
        .await
    }

    async fn report_imported_until(&self, provider: &str, report: ReportKind) -> Result<Option<Micros>, StoreError> {
        let provider = provider.to_owned();
        self.read(move |conn| {
            let until: Option<i64> = conn
                .prepare_cached(sql::IMPORTED_UNTIL)?
                .query_row(params![provider, report.as_str()], |r| r.get(0))?;
            Ok(until.map(Micros))
        })
        .await
    }

    async fn provider_usage(&self, from: Micros, to: Micros) -> Result<Vec<(String, UsageLine)>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(sql::SELECT_USAGE)?;
            let rows = statement.query_map([from.0, to.0], |r| {
                Ok(sql::usage_line((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    [r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?],
                    r.get(7)?,
                    [r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?],
                )))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn provider_costs(&self, from: Micros, to: Micros) -> Result<Vec<(String, CostLine)>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(sql::SELECT_COSTS)?;
            let rows = statement.query_map([from.0, to.0], |r| {
                Ok(sql::cost_line((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    [r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?],
                    r.get(7)?,
                )))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn report_buckets(
        &self,
        report: ReportKind,
        from: Micros,
        to: Micros,
    ) -> Result<Vec<(String, Bucket)>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(sql::SELECT_BUCKETS)?;
            let rows = statement.query_map(params![report.as_str(), from.0, to.0], |r| {
                Ok(sql::bucket((r.get(0)?, r.get(1)?, r.get(2)?)))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn metered_by_source(&self, from: Micros, to: Micros) -> Result<Vec<Metered>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(sql::METERED_BY_SOURCE)?;
            let mut rows = statement.query([from.0, to.0])?;
            let mut metered = Vec::new();
            while let Some(r) = rows.next()? {
                let counts = [r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?];
                metered.push(sql::metered((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    counts,
                    r.get(10)?,
                ))?);
            }
            Ok(metered)
        })
        .await
    }
}
