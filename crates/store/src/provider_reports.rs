//! Providers' organisation reports (usage and cost), kept to reconcile with what was metered.
//! A page is stored in one transaction, and each of its buckets replaces what was stored for
//! that bucket: providers revise their recent buckets, so importing a bucket again must neither
//! add to it nor keep lines it no longer has. The SQL is shared by both backends.

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::money::Nanos;
use goodhart_core::provider_reports::{Bucket, CostLine, ReportKind, ReportPage, UsageLine};
use goodhart_core::reconcile::Metered;
use goodhart_core::usage::{Source, TokenCounts};

use crate::error::StoreError;

#[async_trait]
pub trait ProviderReportStore: Send + Sync {
    /// Stores a page of `provider`'s report: its buckets (recorded as imported at `now`, empty
    /// ones too) and their lines, replacing those buckets' earlier lines. Returns the lines
    /// stored.
    async fn record_report_page(&self, provider: &str, page: ReportPage, now: Micros) -> Result<u64, StoreError>;
    /// The end of the latest bucket of `provider`'s `report` imported so far.
    async fn report_imported_until(&self, provider: &str, report: ReportKind) -> Result<Option<Micros>, StoreError>;
    /// Usage lines of every provider whose bucket starts in `[from, to)`, by provider.
    async fn provider_usage(&self, from: Micros, to: Micros) -> Result<Vec<(String, UsageLine)>, StoreError>;
    /// Cost lines of every provider whose bucket starts in `[from, to)`, by provider.
    async fn provider_costs(&self, from: Micros, to: Micros) -> Result<Vec<(String, CostLine)>, StoreError>;
    /// The buckets of every provider's `report` imported so far that start in `[from, to)`.
    async fn report_buckets(
        &self,
        report: ReportKind,
        from: Micros,
        to: Micros,
    ) -> Result<Vec<(String, Bucket)>, StoreError>;
    /// What was metered of the events in `[from, to)` per UTC day, provider, model and source.
    async fn metered_by_source(&self, from: Micros, to: Micros) -> Result<Vec<Metered>, StoreError>;
}

pub(crate) const UPSERT_BUCKET: &str = "INSERT INTO provider_report_buckets \
     (provider, report, bucket_start, bucket_end, imported_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (provider, report, bucket_start, bucket_end) DO UPDATE SET imported_at = excluded.imported_at";
pub(crate) const DELETE_USAGE: &str =
    "DELETE FROM provider_usage_lines WHERE provider = $1 AND bucket_start = $2 AND bucket_end = $3";
pub(crate) const DELETE_COSTS: &str =
    "DELETE FROM provider_cost_lines WHERE provider = $1 AND bucket_start = $2 AND bucket_end = $3";
pub(crate) const INSERT_USAGE: &str = "INSERT INTO provider_usage_lines (provider, bucket_start, bucket_end, \
     model, api_key_id, workspace, service_tier, requests, input_tokens, output_tokens, cache_read_tokens, \
     cache_write_5m_tokens, cache_write_1h_tokens) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
pub(crate) const INSERT_COST: &str = "INSERT INTO provider_cost_lines (provider, bucket_start, bucket_end, \
     workspace, api_key_id, model, item, amount_nanos) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(crate) const IMPORTED_UNTIL: &str =
    "SELECT MAX(bucket_end) FROM provider_report_buckets WHERE provider = $1 AND report = $2";
pub(crate) const SELECT_USAGE: &str = "SELECT provider, bucket_start, bucket_end, model, api_key_id, workspace, \
     service_tier, requests, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, \
     cache_write_1h_tokens FROM provider_usage_lines WHERE bucket_start >= $1 AND bucket_start < $2 \
     ORDER BY provider, bucket_start, model, api_key_id, workspace, service_tier";
pub(crate) const SELECT_COSTS: &str = "SELECT provider, bucket_start, bucket_end, workspace, api_key_id, model, \
     item, amount_nanos FROM provider_cost_lines WHERE bucket_start >= $1 AND bucket_start < $2 \
     ORDER BY provider, bucket_start, workspace, api_key_id, model, item";

pub(crate) const SELECT_BUCKETS: &str = "SELECT provider, bucket_start, bucket_end FROM provider_report_buckets \
     WHERE report = $1 AND bucket_start >= $2 AND bucket_start < $3 ORDER BY provider, bucket_start";
pub(crate) const METERED_BY_SOURCE: &str = "SELECT CAST((ts / 86400000000) * 86400000000 AS BIGINT), provider, \
     model, source, CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), \
     CAST(SUM(cache_read_tokens) AS BIGINT), CAST(SUM(cache_write_5m_tokens) AS BIGINT), \
     CAST(SUM(cache_write_1h_tokens) AS BIGINT), CAST(SUM(reasoning_tokens) AS BIGINT), \
     CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM usage_events WHERE ts >= $1 AND ts < $2 \
     GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4";

/// Token counts as stored (BIGINT), in [`TokenCounts::as_array`] order.
fn stored_tokens(n: [i64; 6]) -> TokenCounts {
    TokenCounts::from_array(n.map(|count| count.max(0) as u64))
}

/// A token count as stored (BIGINT); counts beyond i64 are clamped.
pub(crate) fn stored(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Those of `lines` in `bucket`.
pub(crate) fn usage_in(lines: &[UsageLine], bucket: Bucket) -> impl Iterator<Item = &UsageLine> {
    lines.iter().filter(move |l| l.bucket == bucket)
}

/// Those of `lines` in `bucket`.
pub(crate) fn costs_in(lines: &[CostLine], bucket: Bucket) -> impl Iterator<Item = &CostLine> {
    lines.iter().filter(move |l| l.bucket == bucket)
}

/// A usage line's columns in the order of [`SELECT_USAGE`]: the provider, the bucket, four
/// dimensions, requests and five token counts.
pub(crate) type UsageRow = (String, i64, i64, [Option<String>; 4], Option<i64>, [i64; 5]);

pub(crate) fn usage_line(
    (provider, start, end, [model, api_key_id, workspace, service_tier], requests, n): UsageRow,
) -> (String, UsageLine) {
    let line = UsageLine {
        bucket: Bucket {
            start: Micros(start),
            end: Micros(end),
        },
        model,
        api_key_id,
        workspace,
        service_tier,
        requests: requests.map(|r| r.max(0) as u64),
        tokens: stored_tokens([n[0], n[1], n[2], n[3], n[4], 0]),
    };
    (provider, line)
}

/// A row of [`METERED_BY_SOURCE`]: the day, provider, model, source, six token counts (in
/// [`TokenCounts::as_array`] order) and the cost.
pub(crate) type MeteredRow = (i64, String, String, String, [i64; 6], i64);

pub(crate) fn metered((day, provider, model, source, n, cost): MeteredRow) -> Result<Metered, StoreError> {
    Ok(Metered {
        day: Micros(day),
        provider,
        model,
        source: Source::parse(&source).ok_or(StoreError::Corrupt {
            what: "usage source",
            value: source,
        })?,
        tokens: stored_tokens(n),
        cost: Nanos(cost),
    })
}

pub(crate) fn bucket((provider, start, end): (String, i64, i64)) -> (String, Bucket) {
    let bucket = Bucket {
        start: Micros(start),
        end: Micros(end),
    };
    (provider, bucket)
}

/// A cost line's columns in the order of [`SELECT_COSTS`].
pub(crate) type CostRow = (String, i64, i64, [Option<String>; 4], i64);

pub(crate) fn cost_line(
    (provider, start, end, [workspace, api_key_id, model, item], amount): CostRow,
) -> (String, CostLine) {
    let line = CostLine {
        bucket: Bucket {
            start: Micros(start),
            end: Micros(end),
        },
        amount: Nanos(amount),
        workspace,
        api_key_id,
        model,
        item,
    };
    (provider, line)
}
