//! Goodhart's meter against the provider's bill: per UTC day, provider and model, what Goodhart
//! metered (from each source), what the provider reports serving ([`UsageLine`]) and what it
//! billed ([`CostLine`]), side by side, with the differences ([`reconcile`]); the provider's usage
//! per API key, workspace or project, with what passed the gateway told from what bypassed it
//! ([`accounts`]); and the days whose drift is past the configured threshold ([`drift_alerts`]).
//!
//! Models are matched on their name without a release date: providers report dated ids
//! (`claude-sonnet-4-5-20250929`, `gpt-4o-2024-08-06`) where clients often send the alias.
//! A cost line that names no model (OpenAI's line items do in their text: `gpt-4o, input`) or a
//! non-token charge (web search, code execution) is kept under [`OTHER`]. Provider spend with no
//! metered counterpart is a row whose metered side is zero: usage that bypassed Goodhart.

use std::collections::{BTreeMap, BTreeSet};

use crate::Micros;
use crate::budgets::{Alert, AlertKind};
use crate::money::Nanos;
use crate::pricing::{PriceTable, base_cost};
use crate::provider_reports::{CostLine, UsageLine};
use crate::time::MICROS_PER_DAY;
use crate::usage::{Source, TokenCounts};

/// The model of charges that name none.
pub const OTHER: &str = "(other)";

/// What Goodhart metered of one model on one UTC day from one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metered {
    /// The day's start (UTC midnight).
    pub day: Micros,
    pub provider: String,
    pub model: String,
    pub source: Source,
    pub tokens: TokenCounts,
    pub cost: Nanos,
}

/// What one source metered of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceTotal {
    pub source: Source,
    pub tokens: u64,
    pub cost: Nanos,
}

/// One day, provider and model: metered against reported and billed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub day: Micros,
    pub provider: String,
    /// The model without its release date.
    pub model: String,
    pub metered: TokenCounts,
    /// The metered side by source, in [`Source::ALL`] order, sources with nothing left out.
    pub by_source: Vec<SourceTotal>,
    pub reported: TokenCounts,
    pub metered_cost: Nanos,
    pub billed: Nanos,
}

impl Reconciled {
    /// Tokens the provider reported beyond what was metered (negative: metered more).
    pub fn token_drift(&self) -> i128 {
        i128::from(self.reported.total()) - i128::from(self.metered.total())
    }

    /// Dollars billed beyond what was metered, in nano-dollars.
    pub fn cost_drift(&self) -> Nanos {
        Nanos(self.billed.0.saturating_sub(self.metered_cost.0))
    }

    /// Nothing of it was metered: spend that never passed Goodhart, or usage not imported.
    pub fn unmetered(&self) -> bool {
        self.metered.total() == 0 && self.metered_cost == Nanos::ZERO
    }

    fn add_metered(&mut self, source: Source, tokens: &TokenCounts, cost: Nanos) {
        self.metered.add(tokens);
        self.metered_cost = self.metered_cost.saturating_add(cost);
        let at = self.by_source.partition_point(|s| rank(s.source) < rank(source));
        match self.by_source.get_mut(at).filter(|s| s.source == source) {
            Some(total) => {
                total.tokens = total.tokens.saturating_add(tokens.total());
                total.cost = total.cost.saturating_add(cost);
            }
            None => self.by_source.insert(
                at,
                SourceTotal {
                    source,
                    tokens: tokens.total(),
                    cost,
                },
            ),
        }
    }
}

fn rank(source: Source) -> usize {
    Source::ALL.iter().position(|s| *s == source).unwrap_or(usize::MAX)
}

/// The name of a model without a trailing release date (`-20250929`, `-2024-08-06`), lowercased.
pub fn model_key(model: &str) -> String {
    let model = model.trim().to_ascii_lowercase();
    let compact = |date: &str| date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit());
    let dashed = |date: &str| date.len() == 10 && date.parse::<jiff::civil::Date>().is_ok();
    let undated = match model.rsplit_once('-') {
        Some((name, date)) if compact(date) => Some(name),
        _ => model
            .len()
            .checked_sub(11)
            .filter(|&dash| {
                model.is_char_boundary(dash) && model[dash..].starts_with('-') && dashed(&model[dash + 1..])
            })
            .map(|dash| &model[..dash]),
    };
    undated.map_or_else(|| model.clone(), str::to_owned)
}

/// The model a cost line is for: its `model`, else the model an OpenAI line item names before
/// its comma, else [`OTHER`].
fn cost_model(line: &CostLine) -> String {
    match (&line.model, &line.item) {
        (Some(model), _) => model_key(model),
        (None, Some(item)) if item.contains(", ") => model_key(item.split(", ").next().unwrap_or(item)),
        _ => OTHER.to_owned(),
    }
}

fn day_of(at: Micros) -> Micros {
    at.floor_to(MICROS_PER_DAY)
}

type Rows = BTreeMap<(Micros, String, String), Reconciled>;

/// The row of a day (any instant in it), provider and model.
fn row<'a>(rows: &'a mut Rows, at: Micros, provider: &str, model: String) -> &'a mut Reconciled {
    let day = day_of(at);
    rows.entry((day, provider.to_owned(), model.clone()))
        .or_insert_with(|| Reconciled {
            day,
            provider: provider.to_owned(),
            model,
            ..Reconciled::default()
        })
}

/// Metered usage, reported usage and billed cost side by side per day, provider and model, in
/// that order.
pub fn reconcile(metered: &[Metered], usage: &[(String, UsageLine)], costs: &[(String, CostLine)]) -> Vec<Reconciled> {
    let mut rows = Rows::new();
    for m in metered {
        row(&mut rows, m.day, &m.provider, model_key(&m.model)).add_metered(m.source, &m.tokens, m.cost);
    }
    for (provider, line) in usage {
        let model = line.model.as_deref().map_or_else(|| OTHER.to_owned(), model_key);
        row(&mut rows, line.bucket.start, provider, model)
            .reported
            .add(&line.tokens);
    }
    for (provider, line) in costs {
        let r = row(&mut rows, line.bucket.start, provider, cost_model(line));
        r.billed = r.billed.saturating_add(line.amount);
    }
    rows.into_values().collect()
}

/// What is known of the provider accounts (API keys, workspaces, projects) usage is made with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountRules {
    /// The ids, as the providers' reports show them, of the provider keys the gateway itself
    /// sends upstream. When any is given, every other key is bypassing the gateway.
    pub gateway_keys: BTreeSet<String>,
    /// The team owning a provider key, workspace or project, by its id.
    pub owners: BTreeMap<String, String>,
}

/// Whether an account's usage passed the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// One of the gateway's own upstream keys.
    Gateway,
    /// Another key: used straight against the provider.
    Bypassing,
    /// No gateway keys are configured, or the report names no key (console use, or the
    /// report was not grouped by key).
    Unknown,
}

/// The usage a provider reported for one API key and workspace (or project) over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub provider: String,
    pub api_key_id: Option<String>,
    /// Anthropic's workspace, or OpenAI's project.
    pub workspace: Option<String>,
    pub route: Route,
    /// The team owning the key, else the workspace or project, when configured.
    pub owner: Option<String>,
    pub requests: u64,
    pub tokens: TokenCounts,
    /// The reported tokens at Goodhart's list prices, base (not long-context) rates: the
    /// providers bill no key apart.
    pub list_cost: Nanos,
    /// Tokens of models Goodhart has no price for, left out of `list_cost`.
    pub unpriced_tokens: u64,
}

/// The providers' usage per API key and workspace (or project), each told as through the
/// gateway, bypassing it or unknown, priced at `prices`; the most expensive first.
pub fn accounts(usage: &[(String, UsageLine)], rules: &AccountRules, prices: &PriceTable) -> Vec<Account> {
    let mut by_account: BTreeMap<(String, Option<String>, Option<String>), Account> = BTreeMap::new();
    for (provider, line) in usage {
        let key = (provider.clone(), line.api_key_id.clone(), line.workspace.clone());
        let account = by_account.entry(key).or_insert_with(|| Account {
            provider: provider.clone(),
            api_key_id: line.api_key_id.clone(),
            workspace: line.workspace.clone(),
            route: match &line.api_key_id {
                _ if rules.gateway_keys.is_empty() => Route::Unknown,
                None => Route::Unknown,
                Some(id) if rules.gateway_keys.contains(id) => Route::Gateway,
                Some(_) => Route::Bypassing,
            },
            owner: [&line.api_key_id, &line.workspace]
                .into_iter()
                .flatten()
                .find_map(|id| rules.owners.get(id).cloned()),
            requests: 0,
            tokens: TokenCounts::default(),
            list_cost: Nanos::ZERO,
            unpriced_tokens: 0,
        });
        account.requests = account.requests.saturating_add(line.requests.unwrap_or(0));
        account.tokens.add(&line.tokens);
        // A line sums many calls: price it at base rates, whatever its total prompt.
        let priced = line
            .model
            .as_deref()
            .and_then(|model| prices.resolve(Some(provider), model))
            .map(|price| base_cost(price, &line.tokens));
        match priced {
            Some(cost) => account.list_cost = account.list_cost.saturating_add(cost.total()),
            None => account.unpriced_tokens = account.unpriced_tokens.saturating_add(line.tokens.total()),
        }
    }
    let mut accounts: Vec<Account> = by_account.into_values().collect();
    accounts.sort_by_key(|a| std::cmp::Reverse(a.list_cost));
    accounts
}

/// When a day's drift is worth an alert: past both bounds, either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriftRule {
    /// Tenths of a percent of what was billed (50 = 5 %).
    pub permille: u32,
    /// And at least this much.
    pub min: Nanos,
}

impl Default for DriftRule {
    fn default() -> DriftRule {
        DriftRule {
            permille: 50,
            min: Nanos(1_000_000_000),
        }
    }
}

impl DriftRule {
    /// Whether `billed` and `metered` differ past both bounds.
    pub fn exceeded(&self, metered: Nanos, billed: Nanos) -> bool {
        let drift = (i128::from(billed.0) - i128::from(metered.0)).abs();
        drift >= i128::from(self.min.0) && drift * 1000 > i128::from(self.permille) * i128::from(billed.0)
    }
}

/// One provider's day: its rows and their totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day<'a> {
    pub day: Micros,
    pub provider: &'a str,
    pub metered: Nanos,
    pub billed: Nanos,
    pub rows: Vec<&'a Reconciled>,
}

impl Day<'_> {
    pub fn drift(&self) -> Nanos {
        Nanos(self.billed.0.saturating_sub(self.metered.0))
    }
}

/// `rows` per provider and day, oldest first.
pub fn days(rows: &[Reconciled]) -> Vec<Day<'_>> {
    let mut by_day: BTreeMap<(Micros, &str), Day<'_>> = BTreeMap::new();
    for r in rows {
        let day = by_day.entry((r.day, &r.provider)).or_insert_with(|| Day {
            day: r.day,
            provider: &r.provider,
            metered: Nanos::ZERO,
            billed: Nanos::ZERO,
            rows: Vec::new(),
        });
        day.metered = day.metered.saturating_add(r.metered_cost);
        day.billed = day.billed.saturating_add(r.billed);
        day.rows.push(r);
    }
    by_day.into_values().collect()
}

/// One alert per provider and UTC day among `judged` (days the provider's cost report covers
/// and old enough for both sides to be complete) whose billed and metered totals differ past
/// `rule`. The id names the provider and day, so raising it again is one alert.
pub fn drift_alerts(
    rows: &[Reconciled],
    judged: &BTreeSet<(String, Micros)>,
    rule: DriftRule,
    now: Micros,
) -> Vec<Alert> {
    days(rows)
        .into_iter()
        .filter(|d| judged.contains(&(d.provider.to_owned(), d.day)) && rule.exceeded(d.metered, d.billed))
        .filter_map(|d| {
            let worst = d.rows.iter().max_by_key(|r| r.cost_drift().0.unsigned_abs())?;
            let unmetered = if worst.unmetered() { ", none of it metered" } else { "" };
            let (provider, date) = (d.provider, d.day.utc_day());
            let drift = d.drift();
            Some(Alert {
                id: format!("reconciliation:{provider}:{date}"),
                kind: AlertKind::Reconciliation,
                budget_id: String::new(),
                scope: format!("provider {provider}"),
                message: format!(
                    "{provider} billed {billed} on {date} where Goodhart metered {metered} ({sign}{drift}); \
                     the most on {model}: billed {worst_billed}, metered {worst_metered}{unmetered}",
                    billed = d.billed,
                    metered = d.metered,
                    sign = if drift.0 < 0 { "-" } else { "+" },
                    drift = Nanos(drift.0.saturating_abs()),
                    model = worst.model,
                    worst_billed = worst.billed,
                    worst_metered = worst.metered_cost,
                ),
                created_at: now,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_reports::Bucket;
    use crate::time::parse_rfc3339;

    fn monday() -> Bucket {
        let start = parse_rfc3339("2026-11-02T00:00:00Z").unwrap();
        Bucket {
            start,
            end: Micros(start.0 + MICROS_PER_DAY),
        }
    }

    fn tokens(input: u64, output: u64) -> TokenCounts {
        TokenCounts {
            input,
            output,
            cache_read: 3 * input,
            ..TokenCounts::default()
        }
    }

    fn metered(model: &str, input: u64, cost: i64) -> Metered {
        Metered {
            day: Micros(monday().start.0 + 9 * 3_600_000_000),
            provider: "anthropic".into(),
            model: model.into(),
            source: Source::Gateway,
            tokens: tokens(input, 100),
            cost: Nanos(cost),
        }
    }

    fn reported(model: &str, input: u64) -> (String, UsageLine) {
        reported_by(model, input, None)
    }

    fn reported_by(model: &str, input: u64, key: Option<&str>) -> (String, UsageLine) {
        let line = UsageLine {
            bucket: monday(),
            model: Some(model.into()),
            api_key_id: key.map(Into::into),
            workspace: None,
            service_tier: None,
            requests: None,
            tokens: tokens(input, 100),
        };
        ("anthropic".into(), line)
    }

    fn billed(model: Option<&str>, item: &str, nanos: i64) -> (String, CostLine) {
        let line = CostLine {
            bucket: monday(),
            amount: Nanos(nanos),
            workspace: None,
            api_key_id: None,
            model: model.map(Into::into),
            item: Some(item.into()),
        };
        ("anthropic".into(), line)
    }

    #[test]
    fn release_dates_are_not_part_of_a_models_name() {
        assert_eq!(model_key("claude-sonnet-4-5-20250929"), "claude-sonnet-4-5");
        assert_eq!(model_key("gpt-4o-2024-08-06"), "gpt-4o");
        assert_eq!(model_key("Claude-Haiku-4-5"), "claude-haiku-4-5");
        for kept in ["gpt-5", "o3-mini", "claude-opus-4-8", "model-2024", "x-12345678y"] {
            assert_eq!(model_key(kept), kept);
        }
    }

    #[test]
    fn identical_data_reconciles_to_nothing() {
        let rows = reconcile(
            &[metered("claude-sonnet-4-5", 1_000, 4_500_000)],
            &[reported("claude-sonnet-4-5-20250929", 1_000)],
            &[billed(
                Some("claude-sonnet-4-5-20250929"),
                "Claude Sonnet 4.5 Usage - Input Tokens",
                4_500_000,
            )],
        );
        let [row] = &rows[..] else { panic!("{rows:?}") };
        assert_eq!((row.day, row.model.as_str()), (monday().start, "claude-sonnet-4-5"));
        assert_eq!((row.token_drift(), row.cost_drift()), (0, Nanos::ZERO));
    }

    #[test]
    fn a_bypassing_key_and_a_price_error_show_up_exactly() {
        let rows = reconcile(
            // Metered at a price 10 % too low.
            &[metered("claude-sonnet-4-5", 1_000, 4_050_000)],
            &[
                reported("claude-sonnet-4-5-20250929", 1_000),
                // Nobody metered Haiku: a key used straight against the provider.
                reported("claude-haiku-4-5-20251001", 2_000),
            ],
            &[
                billed(
                    Some("claude-sonnet-4-5-20250929"),
                    "Claude Sonnet 4.5 Usage - Input Tokens",
                    4_500_000,
                ),
                billed(
                    Some("claude-haiku-4-5-20251001"),
                    "Claude Haiku 4.5 Usage - Input Tokens",
                    900_000,
                ),
                billed(None, "Web Search Usage", 10_000_000),
                billed(None, "gpt-4o-2024-08-06, input", 1_000),
            ],
        );
        let of = |model: &str| rows.iter().find(|r| r.model == model).unwrap();
        let sonnet = of("claude-sonnet-4-5");
        assert_eq!((sonnet.token_drift(), sonnet.cost_drift()), (0, Nanos(450_000)));
        let haiku = of("claude-haiku-4-5");
        assert_eq!(haiku.metered, TokenCounts::default());
        assert_eq!((haiku.token_drift(), haiku.cost_drift()), (8_100, Nanos(900_000)));
        assert_eq!(
            of(OTHER).cost_drift(),
            Nanos(10_000_000),
            "non-token charges kept apart"
        );
        assert_eq!(of("gpt-4o").billed, Nanos(1_000), "a line item names its model");
        assert_eq!(rows.len(), 4);
    }

    #[test]
    fn the_metered_side_is_told_by_source() {
        let imported = Metered {
            source: Source::Import,
            ..metered("claude-sonnet-4-5-20250929", 500, 2_000_000)
        };
        let rows = reconcile(
            &[
                metered("claude-sonnet-4-5", 1_000, 4_000_000),
                imported,
                metered("claude-sonnet-4-5", 1_000, 4_000_000),
            ],
            &[],
            &[],
        );
        let [row] = &rows[..] else { panic!("{rows:?}") };
        let sources: Vec<_> = row.by_source.iter().map(|s| (s.source, s.cost)).collect();
        assert_eq!(
            sources,
            [(Source::Gateway, Nanos(8_000_000)), (Source::Import, Nanos(2_000_000))]
        );
        assert_eq!(row.metered_cost, Nanos(10_000_000));
        assert_eq!(row.by_source.iter().map(|s| s.tokens).sum::<u64>(), row.metered.total());
    }

    #[test]
    fn a_key_that_is_not_the_gateways_is_bypassing_and_goes_to_its_owner() {
        let usage = [
            reported_by("claude-sonnet-4-5-20250929", 1_000_000, Some("apikey_gateway")),
            reported_by("claude-sonnet-4-5-20250929", 2_000_000, Some("apikey_notebook")),
            reported_by("claude-sonnet-4-5-20250929", 10, None),
        ];
        let prices = PriceTable::builtin();
        let unknown = accounts(&usage, &AccountRules::default(), &prices);
        assert!(
            unknown.iter().all(|a| a.route == Route::Unknown),
            "no gateway keys configured"
        );
        let rules = AccountRules {
            gateway_keys: ["apikey_gateway".to_owned()].into(),
            owners: [("apikey_notebook".to_owned(), "research".to_owned())].into(),
        };
        let found = accounts(&usage, &rules, &prices);
        let [notebook, gateway, console] = &found[..] else {
            panic!("{found:?}")
        };
        assert_eq!(
            (
                notebook.api_key_id.as_deref(),
                notebook.route,
                notebook.owner.as_deref()
            ),
            (Some("apikey_notebook"), Route::Bypassing, Some("research"))
        );
        assert_eq!((gateway.route, console.route), (Route::Gateway, Route::Unknown));
        // 2M input at $3/M, 6M cache reads at $0.30/M, 100 output at $15/M.
        assert_eq!(notebook.list_cost, Nanos(6_000_000_000 + 1_800_000_000 + 1_500_000));
        assert_eq!(notebook.list_cost.0, 2 * gateway.list_cost.0 - 1_500_000);
    }

    #[test]
    fn a_day_past_the_threshold_raises_one_alert_and_a_small_drift_none() {
        let day = monday().start;
        let covered: BTreeSet<_> = [("anthropic".to_owned(), day)].into();
        let rule = DriftRule::default();
        let row = |metered: i64, billed: i64| Reconciled {
            day,
            provider: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
            metered_cost: Nanos(metered),
            billed: Nanos(billed),
            ..Reconciled::default()
        };
        let dollars = 1_000_000_000;
        // 4 % off: under 5 %.
        assert!(drift_alerts(&[row(96 * dollars, 100 * dollars)], &covered, rule, day).is_empty());
        // 10 % off but 50 cents: under a dollar.
        assert!(drift_alerts(&[row(dollars * 9 / 2, dollars * 5)], &covered, rule, day).is_empty());
        // Metered more than billed counts too.
        let [alert] = &drift_alerts(&[row(110 * dollars, 100 * dollars)], &covered, rule, day)[..] else {
            panic!("one alert")
        };
        assert_eq!(alert.id, "reconciliation:anthropic:2026-11-02");
        assert_eq!(alert.kind, AlertKind::Reconciliation);
        assert!(alert.message.contains("(-$10.00)"), "{}", alert.message);
        // A day the cost report does not cover is not judged.
        let uncovered = BTreeSet::new();
        assert!(drift_alerts(&[row(0, 100 * dollars)], &uncovered, rule, day).is_empty());
        // Two models on one day are one alert.
        let mut haiku = row(0, 30 * dollars);
        haiku.model = "claude-haiku-4-5".into();
        let alerts = drift_alerts(&[row(100 * dollars, 100 * dollars), haiku], &covered, rule, day);
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].message.contains("claude-haiku-4-5"), "{}", alerts[0].message);
        assert!(
            alerts[0].message.contains("none of it metered"),
            "{}",
            alerts[0].message
        );
    }
}
