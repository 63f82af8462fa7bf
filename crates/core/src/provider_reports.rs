//! What providers say they served and billed, read from their organisation reports page by
//! page: Anthropic's Admin API usage report (`/v1/organizations/usage_report/messages`) and
//! cost report (`/v1/organizations/cost_report`), OpenAI's organisation usage
//! (`/v1/organization/usage/completions`) and costs (`/v1/organization/costs`). These are what a
//! bill is made of; comparing them with what Goodhart metered shows drift and the spend that
//! never passed the gateway.
//!
//! A page is read whole or not at all: any field of the wrong type, a negative count, a bucket
//! that ends before it starts or an amount in another currency is a [`ReportError`] naming the
//! field by its path (`data[2].results[0].amount`), and nothing of the page is kept.
//!
//! Units differ by provider and are converted here, once:
//! - tokens: Anthropic reports uncached input, cache reads and 5-minute and 1-hour cache writes
//!   apart; OpenAI's `input_tokens` *include* the cached ones (`input_cached_tokens`), which are
//!   taken out so that [`TokenCounts::input`] means uncached input for both;
//! - money: Anthropic's `amount` is a decimal string of **cents** (fractions of a cent occur),
//!   OpenAI's `amount.value` a number of **dollars** (seen as a string too); both become
//!   [`Nanos`], finer digits rounded to the nearest nano-dollar.

use serde_json::{Map, Value};

use crate::Micros;
use crate::money::{Nanos, parse_scaled_decimal_rounded};
use crate::time::parse_rfc3339;
use crate::usage::TokenCounts;

/// One time bucket of a report: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket {
    pub start: Micros,
    pub end: Micros,
}

/// Tokens a provider reports serving in one bucket, for one group (the dimensions it was asked
/// to group by; the others are `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageLine {
    pub bucket: Bucket,
    pub model: Option<String>,
    pub api_key_id: Option<String>,
    /// Anthropic's workspace, OpenAI's project.
    pub workspace: Option<String>,
    pub service_tier: Option<String>,
    /// Requests served (OpenAI reports them; Anthropic does not).
    pub requests: Option<u64>,
    pub tokens: TokenCounts,
}

/// Money a provider reports billing in one bucket, for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostLine {
    pub bucket: Bucket,
    pub amount: Nanos,
    /// Anthropic's workspace, OpenAI's project.
    pub workspace: Option<String>,
    pub api_key_id: Option<String>,
    pub model: Option<String>,
    /// What was billed: Anthropic's `description` ("Claude Sonnet 4.5 Usage - Input Tokens"),
    /// OpenAI's `line_item`.
    pub item: Option<String>,
}

/// One page of a report: every bucket it covers (empty ones included: the provider saying
/// nothing was used is a fact to compare with), the lines in them, and the cursor of the next
/// page if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub buckets: Vec<Bucket>,
    pub lines: Vec<T>,
    pub next_page: Option<String>,
}

crate::named_enum! {
    /// Which of a provider's reports a page is from.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum ReportKind {
        /// Tokens served ([`UsageLine`]).
        Usage = "usage",
        /// Money billed ([`CostLine`]).
        Cost = "cost",
    }
}

/// A page of either report, as it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportPage {
    Usage(Page<UsageLine>),
    Cost(Page<CostLine>),
}

impl ReportPage {
    pub fn kind(&self) -> ReportKind {
        match self {
            ReportPage::Usage(_) => ReportKind::Usage,
            ReportPage::Cost(_) => ReportKind::Cost,
        }
    }

    pub fn buckets(&self) -> &[Bucket] {
        match self {
            ReportPage::Usage(page) => &page.buckets,
            ReportPage::Cost(page) => &page.buckets,
        }
    }

    /// The cursor of the page after this one, if there is one.
    pub fn next_page(&self) -> Option<&str> {
        match self {
            ReportPage::Usage(page) => page.next_page.as_deref(),
            ReportPage::Cost(page) => page.next_page.as_deref(),
        }
    }
}

/// A report page that cannot be read: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {why}")]
pub struct ReportError {
    /// The field's path in the page, e.g. `data[2].results[0].amount`.
    pub at: String,
    pub why: String,
}

/// Reads a page of Anthropic's messages usage report.
pub fn anthropic_usage_page(body: &[u8]) -> Result<Page<UsageLine>, ReportError> {
    page(body, rfc3339_bucket, |result, at, bucket| {
        let cache_creation = match result.get("cache_creation") {
            None | Some(Value::Null) => None,
            Some(value) => Some(object(value, &format!("{at}.cache_creation"))?),
        };
        let written = |name: &str| match cache_creation {
            Some(fields) => count(fields, &format!("{at}.cache_creation"), name, false),
            None => Ok(0),
        };
        Ok(UsageLine {
            bucket,
            model: text(result, at, "model")?,
            api_key_id: text(result, at, "api_key_id")?,
            workspace: text(result, at, "workspace_id")?,
            service_tier: text(result, at, "service_tier")?,
            requests: None,
            tokens: TokenCounts {
                input: count(result, at, "uncached_input_tokens", true)?,
                output: count(result, at, "output_tokens", true)?,
                cache_read: count(result, at, "cache_read_input_tokens", false)?,
                cache_write_5m: written("ephemeral_5m_input_tokens")?,
                cache_write_1h: written("ephemeral_1h_input_tokens")?,
                reasoning: 0,
            },
        })
    })
}

/// Reads a page of Anthropic's cost report (amounts in cents).
pub fn anthropic_cost_page(body: &[u8]) -> Result<Page<CostLine>, ReportError> {
    page(body, rfc3339_bucket, |result, at, bucket| {
        currency(result, at, "currency")?;
        let amount = required(result, at, "amount")?;
        let Value::String(cents) = amount else {
            return Err(wrong(at, "amount", "a decimal string of cents"));
        };
        // Cents with seven decimals are nano-dollars.
        let amount = parse_scaled_decimal_rounded(cents, 7).map_err(|e| fail(at, "amount", e.to_string()))?;
        Ok(CostLine {
            bucket,
            amount: Nanos(amount),
            workspace: text(result, at, "workspace_id")?,
            api_key_id: None,
            model: text(result, at, "model")?,
            item: text(result, at, "description")?,
        })
    })
}

/// Reads a page of OpenAI's completions usage (`input_tokens` include the cached ones).
pub fn openai_usage_page(body: &[u8]) -> Result<Page<UsageLine>, ReportError> {
    page(body, unix_bucket, |result, at, bucket| {
        let input = count(result, at, "input_tokens", true)?;
        let cached = count(result, at, "input_cached_tokens", false)?;
        let uncached = input.checked_sub(cached).ok_or_else(|| {
            fail(
                at,
                "input_cached_tokens",
                format!("{cached} is more than input_tokens ({input})"),
            )
        })?;
        Ok(UsageLine {
            bucket,
            model: text(result, at, "model")?,
            api_key_id: text(result, at, "api_key_id")?,
            workspace: text(result, at, "project_id")?,
            service_tier: text(result, at, "service_tier")?,
            requests: Some(count(result, at, "num_model_requests", true)?),
            tokens: TokenCounts {
                input: uncached,
                output: count(result, at, "output_tokens", true)?,
                cache_read: cached,
                ..TokenCounts::default()
            },
        })
    })
}

/// Reads a page of OpenAI's costs (amounts in dollars, a number or a numeric string).
pub fn openai_cost_page(body: &[u8]) -> Result<Page<CostLine>, ReportError> {
    page(body, unix_bucket, |result, at, bucket| {
        let amount_at = format!("{at}.amount");
        let amount = object(required(result, at, "amount")?, &amount_at)?;
        currency(amount, &amount_at, "currency")?;
        let dollars = match required(amount, &amount_at, "value")? {
            Value::String(s) => Some(s.clone()),
            other => decimal_text(other),
        }
        .ok_or_else(|| wrong(&amount_at, "value", "a number of dollars"))?;
        let amount = parse_scaled_decimal_rounded(&dollars, 9).map_err(|e| fail(&amount_at, "value", e.to_string()))?;
        Ok(CostLine {
            bucket,
            amount: Nanos(amount),
            workspace: text(result, at, "project_id")?,
            api_key_id: text(result, at, "api_key_id")?,
            model: None,
            item: text(result, at, "line_item")?,
        })
    })
}

pub(crate) type Fields = Map<String, Value>;

/// Reads a page's envelope, its buckets (with `bucket` reading each one's bounds) and each
/// result in them (with `line`).
fn page<T>(
    body: &[u8],
    bucket: fn(&Fields, &str) -> Result<Bucket, ReportError>,
    line: impl Fn(&Fields, &str, Bucket) -> Result<T, ReportError>,
) -> Result<Page<T>, ReportError> {
    let page = json(body, "(page)")?;
    let page = object(&page, "(page)")?;
    let mut buckets = Vec::new();
    let mut lines = Vec::new();
    for (i, data) in array(page, "", "data")?.iter().enumerate() {
        let at = format!("data[{i}]");
        let fields = object(data, &at)?;
        let bounds = bucket(fields, &at)?;
        if bounds.end <= bounds.start {
            return Err(fail(&at, "end", "the bucket ends before it starts".into()));
        }
        buckets.push(bounds);
        // OpenAI's published schema once named the list `result`; its API sends `results`.
        let results = if fields.contains_key("results") || !fields.contains_key("result") {
            array(fields, &at, "results")?
        } else {
            array(fields, &at, "result")?
        };
        for (j, result) in results.iter().enumerate() {
            let at = format!("{at}.results[{j}]");
            lines.push(line(object(result, &at)?, &at, bounds)?);
        }
    }
    Ok(Page {
        buckets,
        lines,
        next_page: next_page(page)?,
    })
}

/// `body` read as JSON; `at` names it in the error (`(page)`, `line 3`).
pub(crate) fn json(body: &[u8], at: &str) -> Result<Value, ReportError> {
    serde_json::from_slice(body).map_err(|e| ReportError {
        at: at.to_owned(),
        why: format!("not JSON: {e}"),
    })
}

/// The cursor of the page after `page` (its `next_page` while `has_more` is true).
pub(crate) fn next_page(page: &Fields) -> Result<Option<String>, ReportError> {
    let has_more = match page.get("has_more") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(more)) => *more,
        Some(_) => return Err(wrong("", "has_more", "true or false")),
    };
    let next_page = text(page, "", "next_page")?;
    if has_more && next_page.is_none() {
        return Err(fail(
            "",
            "next_page",
            "has_more is true but there is no next page".into(),
        ));
    }
    Ok(next_page.filter(|_| has_more))
}

/// A JSON number as the decimal text the provider sent (its shortest form), for exact money.
pub(crate) fn decimal_text(value: &Value) -> Option<String> {
    let Value::Number(n) = value else { return None };
    n.as_u64()
        .map_or_else(|| n.as_f64().map(|f| f.to_string()), |u| Some(u.to_string()))
}

fn rfc3339_bucket(fields: &Fields, at: &str) -> Result<Bucket, ReportError> {
    let instant = |name: &str| match required(fields, at, name)? {
        Value::String(s) => parse_rfc3339(s).map_err(|why| fail(at, name, why)),
        _ => Err(wrong(at, name, "an RFC 3339 timestamp")),
    };
    Ok(Bucket {
        start: instant("starting_at")?,
        end: instant("ending_at")?,
    })
}

fn unix_bucket(fields: &Fields, at: &str) -> Result<Bucket, ReportError> {
    let instant = |name: &str| {
        let seconds = count(fields, at, name, true)?;
        i64::try_from(seconds)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000))
            .map(Micros)
            .ok_or_else(|| fail(at, name, format!("{seconds} seconds is out of range")))
    };
    Ok(Bucket {
        start: instant("start_time")?,
        end: instant("end_time")?,
    })
}

pub(crate) fn path(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

pub(crate) fn fail(at: &str, name: &str, why: String) -> ReportError {
    ReportError {
        at: path(at, name),
        why,
    }
}

pub(crate) fn wrong(at: &str, name: &str, expected: &str) -> ReportError {
    fail(at, name, format!("expected {expected}"))
}

pub(crate) fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Fields, ReportError> {
    value.as_object().ok_or_else(|| ReportError {
        at: at.to_owned(),
        why: "expected an object".into(),
    })
}

pub(crate) fn required<'a>(fields: &'a Fields, at: &str, name: &str) -> Result<&'a Value, ReportError> {
    match fields.get(name) {
        None | Some(Value::Null) => Err(fail(at, name, "missing".into())),
        Some(value) => Ok(value),
    }
}

pub(crate) fn array<'a>(fields: &'a Fields, at: &str, name: &str) -> Result<&'a Vec<Value>, ReportError> {
    required(fields, at, name)?
        .as_array()
        .ok_or_else(|| wrong(at, name, "an array"))
}

/// An optional string (absent and `null` are `None`).
pub(crate) fn text(fields: &Fields, at: &str, name: &str) -> Result<Option<String>, ReportError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(wrong(at, name, "a string or null")),
    }
}

/// A non-negative integer; an optional one absent or `null` is 0.
pub(crate) fn count(fields: &Fields, at: &str, name: &str, needed: bool) -> Result<u64, ReportError> {
    match fields.get(name) {
        None | Some(Value::Null) if !needed => Ok(0),
        None | Some(Value::Null) => Err(fail(at, name, "missing".into())),
        Some(value) => value.as_u64().ok_or_else(|| wrong(at, name, "a non-negative integer")),
    }
}

/// Checks that an amount is in US dollars (the unit of every price and cost here).
pub(crate) fn currency(fields: &Fields, at: &str, name: &str) -> Result<(), ReportError> {
    match text(fields, at, name)? {
        Some(c) if c.eq_ignore_ascii_case("usd") => Ok(()),
        Some(c) => Err(fail(
            at,
            name,
            format!("{c:?}: only USD amounts can be compared with Goodhart's"),
        )),
        None => Err(fail(at, name, "missing".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/provider_reports/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn at(text: &str) -> Micros {
        parse_rfc3339(text).unwrap()
    }

    #[test]
    fn anthropic_usage_keeps_every_token_kind_and_the_empty_days() {
        let page = anthropic_usage_page(&fixture("anthropic_usage.json")).unwrap();
        assert_eq!(page.buckets.len(), 2, "an empty day is a bucket too");
        assert_eq!(page.buckets[1].start, at("2026-01-02T00:00:00Z"));
        assert_eq!(page.next_page.as_deref(), Some("page_MjAyNi0wMS0wM1QwMDowMDowMFo="));
        let [line] = &page.lines[..] else {
            panic!("{:?}", page.lines)
        };
        assert_eq!(line.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
        assert_eq!(line.service_tier.as_deref(), Some("standard"));
        assert_eq!((line.workspace.as_deref(), line.requests), (None, None));
        assert_eq!(
            line.tokens,
            TokenCounts {
                input: 152_340,
                output: 61_250,
                cache_read: 880_000,
                cache_write_5m: 42_000,
                cache_write_1h: 7_000,
                reasoning: 0,
            }
        );
    }

    #[test]
    fn anthropic_costs_are_cents_with_fractions() {
        let page = anthropic_cost_page(&fixture("anthropic_cost.json")).unwrap();
        let amounts: Vec<Nanos> = page.lines.iter().map(|l| l.amount).collect();
        // 45.702 and 91.875 cents.
        assert_eq!(amounts, [Nanos(457_020_000), Nanos(918_750_000)]);
        assert_eq!(
            page.lines[0].item.as_deref(),
            Some("Claude Sonnet 4.5 Usage - Input Tokens")
        );
        assert_eq!(page.lines[0].model.as_deref(), Some("claude-sonnet-4-5-20250929"));
        assert_eq!(page.next_page, None, "the last page");
    }

    #[test]
    fn openai_usage_takes_the_cached_tokens_out_of_the_input() {
        let page = openai_usage_page(&fixture("openai_usage.json")).unwrap();
        assert_eq!(
            page.buckets[0],
            Bucket {
                start: at("2026-01-01T00:00:00Z"),
                end: at("2026-01-02T00:00:00Z")
            }
        );
        let first = &page.lines[0];
        assert_eq!(
            (first.tokens.input, first.tokens.cache_read, first.tokens.output),
            (40_000, 80_000, 30_500)
        );
        assert_eq!(first.requests, Some(240));
        assert_eq!(first.model.as_deref(), Some("gpt-4o-2024-08-06"));
        assert_eq!(page.lines[1].workspace.as_deref(), Some("proj_batch"));
    }

    #[test]
    fn openai_costs_are_dollars_as_numbers_or_strings() {
        let page = openai_cost_page(&fixture("openai_cost.json")).unwrap();
        let amounts: Vec<Nanos> = page.lines.iter().map(|l| l.amount).collect();
        assert_eq!(amounts, [Nanos(1_284_000_000), Nanos(3_050_000_000), Nanos(7_500_000)]);
        assert_eq!(page.lines[2].item.as_deref(), Some("gpt-4o-mini-2024-07-18, input"));
        assert_eq!(page.buckets.len(), 2);
    }

    #[test]
    fn a_bad_field_names_itself_and_nothing_of_the_page_is_kept() {
        let usage = |result: &str| {
            format!(
                r#"{{"data": [{{"starting_at": "2026-01-01T00:00:00Z", "ending_at": "2026-01-02T00:00:00Z", "results": [
                    {{"uncached_input_tokens": 1, "output_tokens": 1}}, {result}]}}], "has_more": false, "next_page": null}}"#
            )
        };
        let error = |body: String| anthropic_usage_page(body.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            error(usage(r#"{"uncached_input_tokens": -3, "output_tokens": 1}"#)),
            "data[0].results[1].uncached_input_tokens: expected a non-negative integer"
        );
        assert_eq!(
            error(usage(r#"{"uncached_input_tokens": 3}"#)),
            "data[0].results[1].output_tokens: missing"
        );
        assert_eq!(
            error(usage(r#"{"uncached_input_tokens": 3, "output_tokens": 1, "model": 7}"#)),
            "data[0].results[1].model: expected a string or null"
        );
        assert_eq!(
            error(usage(
                r#"{"uncached_input_tokens": 3, "output_tokens": 1, "cache_creation": []}"#
            )),
            "data[0].results[1].cache_creation: expected an object"
        );
        let backwards = r#"{"data": [{"starting_at": "2026-01-02T00:00:00Z", "ending_at": "2026-01-01T00:00:00Z", "results": []}]}"#;
        assert_eq!(error(backwards.into()), "data[0].end: the bucket ends before it starts");
        let cut_short = r#"{"data": [], "has_more": true, "next_page": null}"#;
        assert_eq!(
            error(cut_short.into()),
            "next_page: has_more is true but there is no next page"
        );
        assert!(error("[]".into()).starts_with("(page): expected an object"));
        assert!(error("{\"data\": [".into()).starts_with("(page): not JSON"));

        let cost = |amount: &str, currency: &str| {
            format!(
                r#"{{"data": [{{"starting_at": "2026-01-01T00:00:00Z", "ending_at": "2026-01-02T00:00:00Z",
                    "results": [{{"amount": {amount}, "currency": "{currency}"}}]}}]}}"#
            )
        };
        let cost_error = |body: String| anthropic_cost_page(body.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            cost_error(cost("12.5", "USD")),
            "data[0].results[0].amount: expected a decimal string of cents"
        );
        assert!(
            cost_error(cost("\"12,5\"", "USD"))
                .starts_with("data[0].results[0].amount: expected a non-negative decimal")
        );
        assert_eq!(
            cost_error(cost("\"12.5\"", "EUR")),
            "data[0].results[0].currency: \"EUR\": only USD amounts can be compared with Goodhart's"
        );

        let cached = r#"{"data": [{"start_time": 1767225600, "end_time": 1767312000, "results": [
            {"input_tokens": 10, "input_cached_tokens": 11, "output_tokens": 1, "num_model_requests": 1}]}]}"#;
        assert_eq!(
            openai_usage_page(cached.as_bytes()).unwrap_err().to_string(),
            "data[0].results[0].input_cached_tokens: 11 is more than input_tokens (10)"
        );
        let value = r#"{"data": [{"start_time": 1767225600, "end_time": 1767312000, "results": [
            {"amount": {"value": true, "currency": "usd"}}]}]}"#;
        assert_eq!(
            openai_cost_page(value.as_bytes()).unwrap_err().to_string(),
            "data[0].results[0].amount.value: expected a number of dollars"
        );
    }

    #[test]
    fn the_old_schema_name_of_the_results_is_read_too() {
        let body = r#"{"data": [{"start_time": 1767225600, "end_time": 1767312000, "result": [
            {"input_tokens": 10, "output_tokens": 1, "num_model_requests": 1}]}], "has_more": false}"#;
        let page = openai_usage_page(body.as_bytes()).unwrap();
        assert_eq!(page.lines.len(), 1);
    }
}
