//! Goodhart's meter against the provider's bill: per UTC day, provider and model, what Goodhart
//! metered, what the provider reports serving ([`UsageLine`]) and what it billed
//! ([`CostLine`]), side by side, with the differences.
//!
//! Models are matched on their name without a release date: providers report dated ids
//! (`claude-sonnet-4-5-20250929`, `gpt-4o-2024-08-06`) where clients often send the alias.
//! A cost line that names no model (OpenAI's line items do in their text: `gpt-4o, input`) or a
//! non-token charge (web search, code execution) is kept under [`OTHER`]. Provider spend with no
//! metered counterpart is a row whose metered side is zero: usage that bypassed Goodhart.

use std::collections::BTreeMap;

use crate::Micros;
use crate::money::Nanos;
use crate::provider_reports::{CostLine, UsageLine};
use crate::time::MICROS_PER_DAY;
use crate::usage::TokenCounts;

/// The model of charges that name none.
pub const OTHER: &str = "(other)";

/// What Goodhart metered of one model on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metered {
    /// The day's start (UTC midnight).
    pub day: Micros,
    pub provider: String,
    pub model: String,
    pub tokens: TokenCounts,
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
        let r = row(&mut rows, m.day, &m.provider, model_key(&m.model));
        r.metered.add(&m.tokens);
        r.metered_cost = r.metered_cost.saturating_add(m.cost);
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
            tokens: tokens(input, 100),
            cost: Nanos(cost),
        }
    }

    fn reported(model: &str, input: u64) -> (String, UsageLine) {
        let line = UsageLine {
            bucket: monday(),
            model: Some(model.into()),
            api_key_id: None,
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
}
