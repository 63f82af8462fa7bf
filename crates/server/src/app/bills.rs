//! The providers' bills against Goodhart's meter: the reconciliation report
//! (`GET /api/v1/reports/reconciliation`, `goodhart report reconcile`), the scheduled import of
//! the providers' usage and cost reports (and of the coding agents' analytics, on the same
//! schedule), and the `reconciliation` alerts raised for days whose drift is past the
//! configured threshold.

use std::collections::{BTreeMap, BTreeSet};

use goodhart_core::Micros;
use goodhart_core::budgets::Alert;
use goodhart_core::money::Nanos;
use goodhart_core::provider_reports::{Bucket, ReportKind, UsageLine};
use goodhart_core::reconcile::{Account, Reconciled, Route, accounts, days, drift_alerts, reconcile};
use goodhart_core::report::Dimension;
use goodhart_core::time::{MICROS_PER_DAY, MICROS_PER_HOUR};
use goodhart_gateway::upstream::UpstreamClient;
use goodhart_store::SummaryQuery;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::json::usd_number;
use super::query::Window;
use super::{App, AppError};
use crate::agent_import::{ActivityImport, import_claude_code, import_copilot};
use crate::provider_import::{ImportError, ReportSource, import_reports};

/// How long after a day ends it is judged: the providers' reports trail by minutes to hours.
pub const SETTLE: i64 = 6 * MICROS_PER_HOUR;
/// How far back scheduled checks raise alerts; older drift is in the report, not announced.
pub const ALERT_LOOKBACK: i64 = 7 * MICROS_PER_DAY;

/// The providers' reports beside what Goodhart metered (`GET /api/v1/reports/reconciliation`).
#[derive(Debug, Serialize)]
pub struct BillDocument {
    pub from: String,
    pub to: String,
    /// When a day's drift raises a `reconciliation` alert.
    pub threshold: Threshold,
    /// Per provider and UTC day the providers' cost reports cover, oldest first: the chart of
    /// metered against billed.
    pub days: Vec<BillDay>,
    /// Per UTC day, provider and model: those a cost report covers, the largest cost drift
    /// (either way) first, then those none covers (`covered: false`), the most metered first.
    pub rows: Vec<BillRow>,
    /// The providers' usage per API key and workspace (or project), most expensive first.
    pub accounts: Vec<AccountJson>,
    /// Metered and billed on the days and providers a cost report covers.
    pub metered_usd: Box<RawValue>,
    pub billed_usd: Box<RawValue>,
    /// Billed beyond metered: positive when the provider billed more than passed Goodhart.
    pub drift_usd: Box<RawValue>,
    /// Billed for models of which nothing was metered.
    pub unmetered_usd: Box<RawValue>,
    /// Metered on days or for providers no cost report covers (not imported yet, or a
    /// provider without an admin key): left out of the totals above.
    pub not_covered_usd: Box<RawValue>,
    /// The usage of keys bypassing the gateway, at list prices; `null` until the gateway's
    /// own keys are configured (`reconciliation.gateway_keys`).
    pub bypassing_usd: Option<Box<RawValue>>,
    /// The bypassing usage per owning team (`null`: no owner configured), at list prices.
    pub bypassing_by_team: Vec<TeamSpend>,
}

#[derive(Debug, Serialize)]
pub struct Threshold {
    pub percent: f64,
    pub min_usd: Box<RawValue>,
}

#[derive(Debug, Serialize)]
pub struct BillDay {
    pub day: String,
    pub provider: String,
    pub metered_usd: Box<RawValue>,
    pub billed_usd: Box<RawValue>,
    pub drift_usd: Box<RawValue>,
    pub drift_percent: Option<f64>,
    /// The provider's cost report covers the day, it ended long enough ago and Goodhart was
    /// metering by then: its drift is judged.
    pub judged: bool,
    /// Judged, and past the threshold: it raises (or raised) an alert.
    pub alert: bool,
}

#[derive(Debug, Serialize)]
pub struct BillRow {
    /// A cost report of the provider covers the day; if not, nothing billed is known.
    pub covered: bool,
    pub day: String,
    pub provider: String,
    /// The model without its release date (dated ids and aliases meet).
    pub model: String,
    pub metered_tokens: u64,
    pub reported_tokens: u64,
    /// Reported beyond metered.
    pub token_drift: i64,
    pub metered_usd: Box<RawValue>,
    pub billed_usd: Box<RawValue>,
    pub drift_usd: Box<RawValue>,
    /// The cost drift as a share of what was billed, in percent to one decimal (`null` when
    /// nothing was billed).
    pub drift_percent: Option<f64>,
    /// What each source (`gateway`, `import`, `otlp`, `api`) metered of the row.
    pub by_source: BTreeMap<&'static str, SourceJson>,
    /// Nothing was metered: spend that never passed Goodhart (a key used straight against the
    /// provider), or usage Goodhart has not imported.
    pub unmetered: bool,
}

#[derive(Debug, Serialize)]
pub struct SourceJson {
    pub tokens: u64,
    pub usd: Box<RawValue>,
}

#[derive(Debug, Serialize)]
pub struct AccountJson {
    pub provider: String,
    pub api_key_id: Option<String>,
    /// Anthropic's workspace or OpenAI's project.
    pub workspace: Option<String>,
    /// `gateway`, `bypassing` or `unknown`.
    pub route: &'static str,
    pub team: Option<String>,
    pub requests: u64,
    pub tokens: u64,
    /// The reported tokens at Goodhart's list prices (base rates).
    pub list_usd: Box<RawValue>,
    /// Tokens of models without a price, not in `list_usd`.
    pub unpriced_tokens: u64,
}

#[derive(Debug, Serialize)]
pub struct TeamSpend {
    pub team: Option<String>,
    pub usd: Box<RawValue>,
}

/// `part` as a percent of `whole` to one decimal, exactly; a float only to be shown.
fn percent(part: Nanos, whole: Nanos) -> Option<f64> {
    (whole.0 != 0).then(|| (i128::from(part.0) * 1000 / i128::from(whole.0)) as f64 / 10.0)
}

fn route_name(route: Route) -> &'static str {
    match route {
        Route::Gateway => "gateway",
        Route::Bypassing => "bypassing",
        Route::Unknown => "unknown",
    }
}

/// The reconciliation of a window, before it is shown.
struct Reconciliation {
    rows: Vec<Reconciled>,
    /// The providers' usage lines of the window (for [`accounts`]).
    usage: Vec<(String, UsageLine)>,
    /// The provider days the providers' cost reports cover: without one, what was billed is
    /// unknown, not zero.
    covered: BTreeSet<(String, Micros)>,
    /// Those whose drift is judged.
    judged: BTreeSet<(String, Micros)>,
}

impl App {
    /// The providers' reports (imported with `goodhart import anthropic-admin|openai-admin`, or
    /// on `serve`'s schedule) beside what Goodhart metered from every source, per UTC day,
    /// provider and model, and the providers' usage per key and workspace.
    pub async fn bill_reconciliation(&self, window: Window) -> Result<BillDocument, AppError> {
        let Reconciliation {
            rows,
            usage,
            covered,
            judged,
        } = self.reconciliation_of(window).await?;
        let accounts = accounts(&usage, &self.settings().reconciliation.accounts, self.prices());
        let rule = self.settings().reconciliation.drift;
        let (mut billed_rows, mut other_rows): (Vec<Reconciled>, Vec<Reconciled>) = rows
            .into_iter()
            .partition(|r| covered.contains(&(r.provider.clone(), r.day)));
        let sum = |f: fn(&Reconciled) -> Nanos| billed_rows.iter().map(f).sum::<Nanos>();
        let (metered, billed) = (sum(|r| r.metered_cost), sum(|r| r.billed));
        let unmetered = billed_rows
            .iter()
            .filter(|r| r.unmetered())
            .map(|r| r.billed)
            .sum::<Nanos>();
        let not_covered = other_rows.iter().map(|r| r.metered_cost).sum::<Nanos>();
        let days = days(&billed_rows)
            .into_iter()
            .map(|d| {
                let is_judged = judged.contains(&(d.provider.to_owned(), d.day));
                BillDay {
                    day: d.day.utc_day(),
                    provider: d.provider.to_owned(),
                    metered_usd: usd_number(d.metered),
                    billed_usd: usd_number(d.billed),
                    drift_usd: usd_number(d.drift()),
                    drift_percent: percent(d.drift(), d.billed),
                    judged: is_judged,
                    alert: is_judged && rule.exceeded(d.metered, d.billed),
                }
            })
            .collect();
        let bypassing: Vec<&Account> = accounts.iter().filter(|a| a.route == Route::Bypassing).collect();
        let mut by_team: BTreeMap<Option<&str>, Nanos> = BTreeMap::new();
        for account in &bypassing {
            let spent = by_team.entry(account.owner.as_deref()).or_default();
            *spent = spent.saturating_add(account.list_cost);
        }
        let gateway_keys_known = !self.settings().reconciliation.accounts.gateway_keys.is_empty();
        billed_rows.sort_by_key(|r| std::cmp::Reverse(r.cost_drift().0.unsigned_abs()));
        other_rows.sort_by_key(|r| std::cmp::Reverse(r.metered_cost));
        Ok(BillDocument {
            from: window.from.rfc3339(),
            to: window.to.rfc3339(),
            threshold: Threshold {
                percent: f64::from(rule.permille) / 10.0,
                min_usd: usd_number(rule.min),
            },
            days,
            metered_usd: usd_number(metered),
            billed_usd: usd_number(billed),
            drift_usd: usd_number(Nanos(billed.0.saturating_sub(metered.0))),
            unmetered_usd: usd_number(unmetered),
            not_covered_usd: usd_number(not_covered),
            bypassing_usd: gateway_keys_known.then(|| usd_number(bypassing.iter().map(|a| a.list_cost).sum())),
            bypassing_by_team: by_team
                .into_iter()
                .map(|(team, spent)| TeamSpend {
                    team: team.map(str::to_owned),
                    usd: usd_number(spent),
                })
                .collect(),
            rows: billed_rows
                .iter()
                .map(|r| bill_row(r, true))
                .chain(other_rows.iter().map(|r| bill_row(r, false)))
                .collect(),
            accounts: accounts
                .into_iter()
                .map(|a| AccountJson {
                    route: route_name(a.route),
                    tokens: a.tokens.total(),
                    list_usd: usd_number(a.list_cost),
                    provider: a.provider,
                    api_key_id: a.api_key_id,
                    workspace: a.workspace,
                    team: a.owner,
                    requests: a.requests,
                    unpriced_tokens: a.unpriced_tokens,
                })
                .collect(),
        })
    }

    /// The `reconciliation` alerts of the judged days of the last [`ALERT_LOOKBACK`] whose
    /// drift is past the configured threshold.
    pub async fn drift_alerts(&self) -> Result<Vec<Alert>, AppError> {
        let now = self.now();
        let window = Window {
            from: Micros(now.0 - ALERT_LOOKBACK).floor_to(MICROS_PER_DAY),
            to: now,
        };
        let reconciliation = self.reconciliation_of(window).await?;
        let rule = self.settings().reconciliation.drift;
        Ok(drift_alerts(&reconciliation.rows, &reconciliation.judged, rule, now))
    }

    /// Starts the scheduled import of the configured providers' reports, each followed by the
    /// drift check, and of the coding agents' analytics, until `cancel`. Nothing starts without
    /// a key or with the schedule off.
    pub fn spawn_bill_imports(&self, tracker: &TaskTracker, cancel: CancellationToken) {
        let settings = &self.settings().reconciliation;
        let configured = !settings.sources.is_empty() || settings.copilot.is_some();
        let Some(every) = settings.import_every.filter(|_| configured) else {
            return;
        };
        let app = self.clone();
        tracker.spawn(async move {
            let client = goodhart_gateway::upstream::client();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = cancel.cancelled() => break,
                }
                let sources = &app.settings().reconciliation.sources;
                tokio::select! {
                    _ = app.import_bills(&client, sources) => {}
                    () = cancel.cancelled() => break,
                }
                tokio::select! {
                    () = app.import_activity(&client) => {}
                    () = cancel.cancelled() => break,
                }
            }
        });
    }

    /// Imports `sources`' reports up to now (a failure is logged, and the others still
    /// imported), then raises the drift alerts, where this process dispatches alerts and
    /// drift alerts are on; returns them.
    pub async fn import_bills(&self, client: &UpstreamClient, sources: &[ReportSource]) -> Vec<Alert> {
        for source in sources {
            let now = self.now();
            match import_reports(self.store(), client, source, None, now, now).await {
                Ok(done) => tracing::info!(
                    provider = source.provider,
                    usage_lines = done.usage.lines,
                    cost_lines = done.cost.lines,
                    "provider reports imported"
                ),
                Err(e) => tracing::warn!(provider = source.provider, "provider report import failed: {e}"),
            }
        }
        let Some(sink) = self.alert_sink().filter(|_| self.settings().reconciliation.alerts) else {
            return Vec::new();
        };
        match self.drift_alerts().await {
            Ok(alerts) => {
                alerts.iter().for_each(|a| sink.raise(a.clone()));
                alerts
            }
            Err(e) => {
                tracing::warn!("reconciliation check failed: {e}");
                Vec::new()
            }
        }
    }

    /// Imports the configured coding agents' analytics (Claude Code's with the Anthropic admin
    /// key, Copilot's with a GitHub token) up to now; a failure is logged.
    pub async fn import_activity(&self, client: &UpstreamClient) {
        let settings = &self.settings().reconciliation;
        let now = self.now();
        if let Some(source) = &settings.claude_code {
            let imported = import_claude_code(self.store(), client, source, None, now, now).await;
            log_activity_import("claude_code", imported);
        }
        if let Some(source) = &settings.copilot {
            let imported = import_copilot(self.store(), client, source, None, now, now).await;
            log_activity_import("copilot", imported);
        }
    }

    async fn reconciliation_of(&self, window: Window) -> Result<Reconciliation, AppError> {
        let Window { from, to } = window;
        let store = self.store();
        let settings = &self.settings().reconciliation;
        let mut metered = store.metered_by_source(from, to).await?;
        for m in &mut metered {
            if let Some(billed_by) = settings.billed_as.get(&m.provider) {
                m.provider.clone_from(billed_by);
            }
        }
        let usage = store.provider_usage(from, to).await?;
        let costs = store.provider_costs(from, to).await?;
        let rows = reconcile(&metered, &usage, &costs);
        // A day is judged once both sides are complete: after the first (partial) day Goodhart
        // metered anything, covered by the provider's cost report, and ended a while ago.
        let first_metered = store
            .usage_summary(&SummaryQuery {
                from: Micros(0),
                to,
                group_by: vec![Dimension::Day],
            })
            .await?
            .into_iter()
            .filter_map(|row| goodhart_core::time::parse_date(row.key.first()?.as_deref()?).ok())
            .min();
        let settled = Micros(self.now().0 - SETTLE);
        let buckets = store.report_buckets(ReportKind::Cost, from, to).await?;
        let day = |(provider, bucket): &(String, Bucket)| (provider.clone(), bucket.start.floor_to(MICROS_PER_DAY));
        let covered = buckets.iter().map(day).collect();
        let judged = buckets
            .iter()
            .filter(|(_, bucket)| bucket.end <= settled && first_metered.is_some_and(|first| bucket.start > first))
            .map(day)
            .collect();
        Ok(Reconciliation {
            rows,
            usage,
            covered,
            judged,
        })
    }
}

fn log_activity_import(tool: &str, imported: Result<ActivityImport, ImportError>) {
    match imported {
        Ok(done) => tracing::info!(
            tool,
            days = done.days,
            lines = done.lines,
            unmatched = done.unmatched.len(),
            "coding agent analytics imported"
        ),
        Err(e) => tracing::warn!(tool, "coding agent analytics import failed: {e}"),
    }
}

fn bill_row(r: &Reconciled, covered: bool) -> BillRow {
    BillRow {
        covered,
        day: r.day.utc_day(),
        provider: r.provider.clone(),
        model: r.model.clone(),
        metered_tokens: r.metered.total(),
        reported_tokens: r.reported.total(),
        token_drift: i64::try_from(r.token_drift()).unwrap_or(i64::MAX),
        metered_usd: usd_number(r.metered_cost),
        billed_usd: usd_number(r.billed),
        drift_usd: usd_number(r.cost_drift()),
        drift_percent: percent(r.cost_drift(), r.billed),
        by_source: r
            .by_source
            .iter()
            .map(|s| {
                let json = SourceJson {
                    tokens: s.tokens,
                    usd: usd_number(s.cost),
                };
                (s.source.as_str(), json)
            })
            .collect(),
        unmetered: r.unmetered(),
    }
}
