//! The price table and exact cost arithmetic.
//!
//! The table ships in the repository (`prices/prices.toml`), carries a version that every
//! priced event records, and can be extended or overridden by configuration. Prices are read
//! from decimal text into integer pico-dollars per token, so no float ever touches money.
//!
//! A model is found by its name after normalisation: dated snapshots (`-20250929`,
//! `-2024-08-06`), Bedrock ids (`us.anthropic.claude-…-v1:0`), Vertex ids (`claude-…@20250929`),
//! provider prefixes (`anthropic/`, `models/`) and Claude Code's context marker (`[1m]`) all
//! resolve to the listed model. An unknown model is never priced at $0: it yields no cost and
//! the event is flagged unpriced.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::money::{Nanos, PicoPerToken};
use crate::usage::TokenCounts;

/// The table shipped with this build.
pub const BUILTIN_PRICES_TOML: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../prices/prices.toml"));

/// A price as written in TOML: a decimal string (`"3.75"`) or a number (`3.75`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawDecimal {
    Text(String),
    Integer(u64),
    Float(f64),
}

impl RawDecimal {
    /// The decimal as written, or why a number is not a non-negative decimal.
    pub fn text(&self) -> Result<String, String> {
        Ok(match self {
            RawDecimal::Text(text) => text.clone(),
            RawDecimal::Integer(n) => n.to_string(),
            // Rust prints the shortest decimal that reads back as the same float, which is the
            // decimal a person wrote for any number with fewer than 16 significant digits.
            RawDecimal::Float(f) if f.is_finite() && *f >= 0.0 => format!("{f}"),
            RawDecimal::Float(f) => return Err(format!("{f} is not a non-negative number")),
        })
    }

    fn to_price(&self) -> Result<PicoPerToken, String> {
        PicoPerToken::from_usd_per_mtok(&self.text()?).map_err(|e| e.to_string())
    }
}

/// Per-token-kind prices as written (USD per million tokens).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRates {
    pub input: RawDecimal,
    pub output: RawDecimal,
    pub cache_read: Option<RawDecimal>,
    pub cache_write_5m: Option<RawDecimal>,
    pub cache_write_1h: Option<RawDecimal>,
    pub reasoning: Option<RawDecimal>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLongContext {
    pub threshold_tokens: u64,
    pub input: RawDecimal,
    pub output: RawDecimal,
    pub cache_read: Option<RawDecimal>,
    pub cache_write_5m: Option<RawDecimal>,
    pub cache_write_1h: Option<RawDecimal>,
    pub reasoning: Option<RawDecimal>,
}

/// One model's entry as written in the table or in a config override.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawModelPrice {
    pub provider: String,
    pub model: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub input: RawDecimal,
    pub output: RawDecimal,
    pub cache_read: Option<RawDecimal>,
    pub cache_write_5m: Option<RawDecimal>,
    pub cache_write_1h: Option<RawDecimal>,
    pub reasoning: Option<RawDecimal>,
    pub source: Option<String>,
    pub long_context: Option<RawLongContext>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPriceTable {
    version: String,
    #[serde(rename = "model", default)]
    models: Vec<RawModelPrice>,
}

/// Prices for each token kind, in pico-dollars per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rates {
    pub input: PicoPerToken,
    pub output: PicoPerToken,
    pub cache_read: PicoPerToken,
    pub cache_write_5m: PicoPerToken,
    pub cache_write_1h: PicoPerToken,
    pub reasoning: PicoPerToken,
}

/// A higher rate for the whole request once its prompt exceeds a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LongContext {
    pub threshold_tokens: u64,
    pub rates: Rates,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelPrice {
    pub provider: String,
    pub model: String,
    pub aliases: Vec<String>,
    pub rates: Rates,
    pub long_context: Option<LongContext>,
    pub source: Option<String>,
}

/// A table entry that is not acceptable, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("price table: {key}: {reason}")]
pub struct PriceError {
    pub key: String,
    pub reason: String,
}

/// The cost of one call, by token kind; the parts always sum to [`CostBreakdown::total`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CostBreakdown {
    pub input: Nanos,
    pub output: Nanos,
    pub cache_read: Nanos,
    pub cache_write_5m: Nanos,
    pub cache_write_1h: Nanos,
    pub reasoning: Nanos,
    /// The long-context tier applied.
    pub long_context: bool,
}

impl CostBreakdown {
    pub fn total(&self) -> Nanos {
        [
            self.input,
            self.output,
            self.cache_read,
            self.cache_write_5m,
            self.cache_write_1h,
            self.reasoning,
        ]
        .into_iter()
        .sum()
    }
}

/// The cost of `tokens` at `price`, choosing the long-context tier when the prompt exceeds it.
pub fn cost(price: &ModelPrice, tokens: &TokenCounts) -> CostBreakdown {
    match &price.long_context {
        Some(tier) if tokens.prompt_total() > tier.threshold_tokens => priced(&tier.rates, tokens, true),
        _ => base_cost(price, tokens),
    }
}

/// The cost of `tokens` at `price`'s base rates: for totals over many calls, whose sum says
/// nothing of any one prompt's length.
pub fn base_cost(price: &ModelPrice, tokens: &TokenCounts) -> CostBreakdown {
    priced(&price.rates, tokens, false)
}

fn priced(rates: &Rates, tokens: &TokenCounts, long_context: bool) -> CostBreakdown {
    let part = |count: u64, rate: PicoPerToken| Nanos::from_picos_rounded(u128::from(count) * u128::from(rate.0));
    CostBreakdown {
        input: part(tokens.input, rates.input),
        output: part(tokens.output, rates.output),
        cache_read: part(tokens.cache_read, rates.cache_read),
        cache_write_5m: part(tokens.cache_write_5m, rates.cache_write_5m),
        cache_write_1h: part(tokens.cache_write_1h, rates.cache_write_1h),
        reasoning: part(tokens.reasoning, rates.reasoning),
        long_context,
    }
}

/// A versioned set of model prices with name resolution.
#[derive(Debug, Clone)]
pub struct PriceTable {
    version: String,
    models: Vec<ModelPrice>,
    by_name: HashMap<String, Vec<usize>>,
}

impl PriceTable {
    /// The table shipped with this build.
    #[expect(
        clippy::expect_used,
        reason = "the shipped table is a constant, and a test parses it"
    )]
    pub fn builtin() -> PriceTable {
        PriceTable::parse(BUILTIN_PRICES_TOML).expect("the shipped price table is valid (checked by a test)")
    }

    /// Reads and validates a table (`version = "…"` and `[[model]]` entries).
    pub fn parse(toml_text: &str) -> Result<PriceTable, PriceError> {
        let raw: RawPriceTable = toml::from_str(toml_text).map_err(|e| PriceError {
            key: "(file)".into(),
            reason: e.to_string(),
        })?;
        if raw.version.trim().is_empty() {
            return Err(PriceError {
                key: "version".into(),
                reason: "must not be empty".into(),
            });
        }
        let mut table = PriceTable {
            version: raw.version,
            models: Vec::new(),
            by_name: HashMap::new(),
        };
        for (index, model) in raw.models.iter().enumerate() {
            table.upsert(validate_model(model, &format!("model[{index}]"))?, false)?;
        }
        Ok(table)
    }

    /// Adds or replaces entries from configuration. The version becomes
    /// `<shipped version>+local.<digest of the overrides>`, so events priced with overrides are
    /// told apart from events priced with the shipped table.
    pub fn with_overrides(mut self, overrides: &[RawModelPrice]) -> Result<PriceTable, PriceError> {
        if overrides.is_empty() {
            return Ok(self);
        }
        for (index, model) in overrides.iter().enumerate() {
            self.upsert(validate_model(model, &format!("prices.model[{index}]"))?, true)?;
        }
        let digest = Sha256::digest(serde_json::to_vec(overrides).unwrap_or_default());
        self.version = format!("{}+local.{}", self.version, hex::encode(&digest[..4]));
        Ok(self)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn models(&self) -> &[ModelPrice] {
        &self.models
    }

    /// Finds the price of `model`, using `provider` only to choose between entries of the same
    /// name. Returns `None` for an unknown model: it must then be stored unpriced, never as $0.
    pub fn resolve(&self, provider: Option<&str>, model: &str) -> Option<&ModelPrice> {
        let pick = |entries: &Vec<usize>| {
            let chosen = entries
                .iter()
                .find(|&&i| provider.is_some_and(|p| self.models[i].provider.eq_ignore_ascii_case(p)))
                .or_else(|| entries.first())?;
            Some(&self.models[*chosen])
        };
        // Most events name a model exactly as listed: look that up without allocating.
        if let Some(entries) = self.by_name.get(model) {
            return pick(entries);
        }
        name_candidates(model)
            .into_iter()
            .find_map(|name| pick(self.by_name.get(&name)?))
    }

    /// The cost of a call, or `None` when the model has no price.
    pub fn cost_of(&self, provider: Option<&str>, model: &str, tokens: &TokenCounts) -> Option<CostBreakdown> {
        self.resolve(provider, model).map(|price| cost(price, tokens))
    }

    fn upsert(&mut self, model: ModelPrice, replace: bool) -> Result<(), PriceError> {
        let existing = self
            .models
            .iter()
            .position(|m| m.provider == model.provider && m.model == model.model);
        let index = match existing {
            Some(_) if !replace => {
                return Err(PriceError {
                    key: format!("{}/{}", model.provider, model.model),
                    reason: "is listed twice".into(),
                });
            }
            Some(i) => {
                self.models[i] = model;
                i
            }
            None => {
                self.models.push(model);
                self.models.len() - 1
            }
        };
        let entry = &self.models[index];
        for name in std::iter::once(&entry.model).chain(&entry.aliases) {
            let slots = self.by_name.entry(name.to_ascii_lowercase()).or_default();
            if !slots.contains(&index) {
                slots.push(index);
            }
        }
        Ok(())
    }
}

fn validate_model(raw: &RawModelPrice, key: &str) -> Result<ModelPrice, PriceError> {
    let error = |field: &str, reason: String| PriceError {
        key: format!("{key}.{field}"),
        reason,
    };
    if raw.provider.trim().is_empty() {
        return Err(error("provider", "must not be empty".into()));
    }
    if raw.model.trim().is_empty() {
        return Err(error("model", "must not be empty".into()));
    }
    let key = format!("{key} ({}/{})", raw.provider, raw.model);
    let error = |field: &str, reason: String| PriceError {
        key: format!("{key}.{field}"),
        reason,
    };
    let rates = validate_rates(
        &RawRates {
            input: raw.input.clone(),
            output: raw.output.clone(),
            cache_read: raw.cache_read.clone(),
            cache_write_5m: raw.cache_write_5m.clone(),
            cache_write_1h: raw.cache_write_1h.clone(),
            reasoning: raw.reasoning.clone(),
        },
        &error,
        "",
    )?;
    let long_context = match &raw.long_context {
        None => None,
        Some(tier) => {
            if tier.threshold_tokens == 0 {
                return Err(error("long_context.threshold_tokens", "must be positive".into()));
            }
            Some(LongContext {
                threshold_tokens: tier.threshold_tokens,
                rates: validate_rates(
                    &RawRates {
                        input: tier.input.clone(),
                        output: tier.output.clone(),
                        cache_read: tier.cache_read.clone(),
                        cache_write_5m: tier.cache_write_5m.clone(),
                        cache_write_1h: tier.cache_write_1h.clone(),
                        reasoning: tier.reasoning.clone(),
                    },
                    &error,
                    "long_context.",
                )?,
            })
        }
    };
    Ok(ModelPrice {
        provider: raw.provider.trim().to_ascii_lowercase(),
        model: raw.model.trim().to_owned(),
        aliases: raw.aliases.iter().map(|a| a.trim().to_owned()).collect(),
        rates,
        long_context,
        source: raw.source.clone(),
    })
}

fn validate_rates(
    raw: &RawRates,
    error: &dyn Fn(&str, String) -> PriceError,
    prefix: &str,
) -> Result<Rates, PriceError> {
    let read = |field: &str, value: &RawDecimal| {
        value
            .to_price()
            .map_err(|reason| error(&format!("{prefix}{field}"), reason))
    };
    let optional = |field: &str, value: &Option<RawDecimal>, default: PicoPerToken| match value {
        Some(v) => read(field, v),
        None => Ok(default),
    };
    let input = read("input", &raw.input)?;
    let output = read("output", &raw.output)?;
    let cache_write_5m = optional("cache_write_5m", &raw.cache_write_5m, input)?;
    Ok(Rates {
        input,
        output,
        cache_read: optional("cache_read", &raw.cache_read, input)?,
        cache_write_5m,
        cache_write_1h: optional("cache_write_1h", &raw.cache_write_1h, cache_write_5m)?,
        reasoning: optional("reasoning", &raw.reasoning, output)?,
    })
}

/// The names under which a model may be listed, most specific first.
pub fn name_candidates(model: &str) -> Vec<String> {
    let mut candidates = Vec::with_capacity(4);
    let mut push = |name: &str| {
        if !name.is_empty() && !candidates.iter().any(|c| c == name) {
            candidates.push(name.to_owned());
        }
    };
    let lower = model.trim().to_ascii_lowercase();
    push(&lower);

    let mut name = lower.as_str();
    if let Some(open) = name.rfind('[')
        && name.ends_with(']')
    {
        name = &name[..open]; // Claude Code's context-window marker, e.g. "[1m]"
    }
    if let Some((_, rest)) = name.rsplit_once('/') {
        name = rest; // "anthropic/claude-…", "models/gemini-…", "openai/gpt-…"
    }
    if let Some((head, _)) = name.split_once('@') {
        name = head; // Vertex AI: "claude-sonnet-4-5@20250929"
    }
    // Bedrock: optional cross-region prefix, then the vendor, then a version suffix.
    if let Some(pos) = name.find("anthropic.") {
        let before = &name[..pos];
        if before.is_empty() || (before.ends_with('.') && !before[..before.len() - 1].contains('.')) {
            name = &name[pos + "anthropic.".len()..];
            if let Some(v) = name.rfind("-v") {
                let version = &name[v + 2..];
                if !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == ':') {
                    name = &name[..v];
                }
            }
        }
    }
    push(name);
    push(strip_date_suffix(name));
    candidates
}

/// Removes a trailing snapshot date: `-20250929` or `-2024-08-06`.
fn strip_date_suffix(name: &str) -> &str {
    let bytes = name.as_bytes();
    let matches = |shape: &[u8]| {
        bytes.len() > shape.len()
            && bytes[bytes.len() - shape.len()..]
                .iter()
                .zip(shape)
                .all(|(b, s)| if *s == b'9' { b.is_ascii_digit() } else { b == s })
    };
    // The shapes are ASCII, so cutting where they start is always on a character boundary.
    for shape in [&b"-99999999"[..], &b"-9999-99-99"[..]] {
        if matches(shape) {
            return &name[..name.len() - shape.len()];
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TABLE: &str = r#"
        version = "test.1"

        [[model]]
        provider = "anthropic"
        model = "claude-sonnet-4-5"
        aliases = ["claude-sonnet-4-5-latest"]
        input = "3"
        output = "15"
        cache_read = "0.30"
        cache_write_5m = "3.75"
        cache_write_1h = "6"
        [model.long_context]
        threshold_tokens = 200000
        input = "6"
        output = "22.50"
        cache_read = "0.60"
        cache_write_5m = "7.50"
        cache_write_1h = "12"

        [[model]]
        provider = "anthropic"
        model = "claude-opus-4-8"
        input = 5
        output = 25.0
        cache_read = "0.5"
        cache_write_5m = "6.25"

        [[model]]
        provider = "openai"
        model = "gpt-4o-mini"
        input = "0.15"
        output = "0.60"
        cache_read = "0.075"
    "#;

    fn table() -> PriceTable {
        PriceTable::parse(TABLE).unwrap()
    }

    #[test]
    fn shipped_table_is_valid_and_covers_the_fixture_models() {
        let table = PriceTable::builtin();
        for model in ["claude-sonnet-4-5", "claude-opus-4-8", "gpt-4o-mini", "gpt-5-codex"] {
            assert!(table.resolve(None, model).is_some(), "{model} has no price");
        }
    }

    #[test]
    fn claude_code_cost_matches_what_claude_code_computed() {
        // ../shared/fixtures/claude-code/claude_code.stdout.json: total_cost_usd 0.09738725
        let tokens = TokenCounts {
            input: 19448,
            output: 5,
            cache_read: 7,
            cache_write_5m: 3,
            ..Default::default()
        };
        let cost = table()
            .cost_of(Some("anthropic"), "claude-opus-4-8[1m]", &tokens)
            .unwrap();
        assert_eq!(cost.total().usd_string(), "0.09738725");
    }

    #[test]
    fn defaults_fill_missing_rates() {
        let t = table();
        let mini = t.resolve(None, "gpt-4o-mini").unwrap();
        assert_eq!(mini.rates.cache_write_5m, mini.rates.input);
        assert_eq!(mini.rates.reasoning, mini.rates.output);
        let opus = t.resolve(None, "claude-opus-4-8").unwrap();
        assert_eq!(opus.rates.cache_write_1h, opus.rates.cache_write_5m);
    }

    #[test]
    fn long_context_tier_applies_to_the_whole_request_above_the_threshold() {
        let t = table();
        let price = t.resolve(None, "claude-sonnet-4-5").unwrap();
        let at = TokenCounts {
            input: 150_000,
            cache_read: 50_000,
            output: 1_000,
            ..Default::default()
        };
        let above = TokenCounts { input: 150_001, ..at };
        let normal = cost(price, &at);
        let long = cost(price, &above);
        assert!(!normal.long_context);
        assert!(long.long_context);
        assert_eq!(normal.output, Nanos(15_000_000));
        assert_eq!(long.output, Nanos(22_500_000));
        assert_eq!(long.cache_read, Nanos(30_000_000));
    }

    #[test]
    fn provider_specific_names_resolve() {
        let t = table();
        for name in [
            "claude-sonnet-4-5-20250929",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "claude-sonnet-4-5@20250929",
            "anthropic/claude-sonnet-4-5",
            "Claude-Sonnet-4-5",
            "claude-sonnet-4-5-latest",
            "claude-sonnet-4-5[1m]",
        ] {
            assert_eq!(
                t.resolve(None, name).map(|m| m.model.as_str()),
                Some("claude-sonnet-4-5"),
                "{name}"
            );
        }
        assert_eq!(t.resolve(None, "gpt-4o-mini-2024-07-18").unwrap().model, "gpt-4o-mini");
        assert!(t.resolve(None, "gpt-4o").is_none(), "a prefix is not a match");
        assert!(t.resolve(None, "mystery-model").is_none());
    }

    #[test]
    fn invalid_entries_name_their_key() {
        let err = PriceTable::parse(
            "version = \"v\"\n[[model]]\nprovider = \"x\"\nmodel = \"m\"\ninput = \"abc\"\noutput = \"1\"\n",
        )
        .unwrap_err();
        assert_eq!(err.key, "model[0] (x/m).input");
        let err = PriceTable::parse("version = \"v\"\n[[model]]\nprovider = \"x\"\nmodel = \"m\"\ninput = \"1\"\noutput = \"1\"\ncached = \"1\"\n").unwrap_err();
        assert!(err.reason.contains("unknown field `cached`"), "{err}");
        let twice = format!(
            "{TABLE}\n[[model]]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\ninput = \"1\"\noutput = \"1\"\n"
        );
        assert_eq!(PriceTable::parse(&twice).unwrap_err().reason, "is listed twice");
    }

    #[test]
    fn overrides_replace_and_add_and_change_the_version() {
        let raw: RawPriceTable = toml::from_str(
            "version = \"ignored\"\n[[model]]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\ninput = \"1\"\noutput = \"2\"\n\
             [[model]]\nprovider = \"internal\"\nmodel = \"llama-local\"\ninput = \"0.01\"\noutput = \"0.02\"\n",
        )
        .unwrap();
        let t = table().with_overrides(&raw.models).unwrap();
        assert!(t.version().starts_with("test.1+local."));
        assert_eq!(
            t.resolve(None, "gpt-4o-mini").unwrap().rates.input,
            PicoPerToken(1_000_000)
        );
        assert!(t.resolve(Some("internal"), "llama-local").is_some());
        assert_eq!(table().with_overrides(&[]).unwrap().version(), "test.1");
    }

    fn any_tokens() -> impl Strategy<Value = TokenCounts> {
        let count = 0u64..=crate::usage::MAX_TOKENS_PER_EVENT;
        (
            count.clone(),
            count.clone(),
            count.clone(),
            count.clone(),
            count.clone(),
            count,
        )
            .prop_map(
                |(input, output, cache_read, cache_write_5m, cache_write_1h, reasoning)| TokenCounts {
                    input,
                    output,
                    cache_read,
                    cache_write_5m,
                    cache_write_1h,
                    reasoning,
                },
            )
    }

    proptest! {
        #[test]
        fn parts_sum_to_total_and_stay_within_rounding_of_exact(tokens in any_tokens(), model in 0usize..3) {
            let t = table();
            let price = &t.models()[model];
            let breakdown = cost(price, &tokens);
            let parts = [breakdown.input, breakdown.output, breakdown.cache_read, breakdown.cache_write_5m, breakdown.cache_write_1h, breakdown.reasoning];
            prop_assert_eq!(parts.iter().map(|n| i128::from(n.0)).sum::<i128>(), i128::from(breakdown.total().0));
            let rates = if breakdown.long_context { price.long_context.unwrap().rates } else { price.rates };
            let exact_picos: u128 = [
                (tokens.input, rates.input), (tokens.output, rates.output), (tokens.cache_read, rates.cache_read),
                (tokens.cache_write_5m, rates.cache_write_5m), (tokens.cache_write_1h, rates.cache_write_1h),
                (tokens.reasoning, rates.reasoning),
            ].iter().map(|(n, r)| u128::from(*n) * u128::from(r.0)).sum();
            let total_picos = i128::from(breakdown.total().0) * 1000;
            prop_assert!((total_picos - exact_picos as i128).abs() <= 6 * 500, "rounding error above half a nano per part");
        }

        #[test]
        fn cost_is_monotonic_in_every_token_kind(tokens in any_tokens(), extra in 0u64..1_000_000, kind in 0usize..6) {
            let t = table();
            let price = t.resolve(None, "gpt-4o-mini").unwrap();
            let mut more = tokens;
            let slot = [&mut more.input, &mut more.output, &mut more.cache_read, &mut more.cache_write_5m, &mut more.cache_write_1h, &mut more.reasoning];
            let target = slot.into_iter().nth(kind).unwrap();
            *target = target.saturating_add(extra);
            prop_assert!(cost(price, &more).total() >= cost(price, &tokens).total());
        }

        #[test]
        fn long_context_never_makes_a_bigger_prompt_cheaper(input in 0u64..400_000, output in 0u64..100_000) {
            let t = table();
            let price = t.resolve(None, "claude-sonnet-4-5").unwrap();
            let a = TokenCounts { input, output, ..Default::default() };
            let b = TokenCounts { input: input + 1, output, ..Default::default() };
            prop_assert!(cost(price, &b).total() >= cost(price, &a).total());
        }

        #[test]
        fn candidate_names_never_panic(name in ".{0,80}") {
            let _ = name_candidates(&name);
        }
    }
}
