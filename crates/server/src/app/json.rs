//! How the documents of the API and the CLI write money and usage totals: dollars as exact JSON
//! numbers, never through a float.

use goodhart_core::Nanos;
use goodhart_core::report::UsageTotals;
use serde::Serialize;
use serde_json::value::RawValue;

/// A money amount as an exact JSON number.
#[expect(
    clippy::expect_used,
    reason = "usd_string writes a plain decimal, and a proptest in core checks it"
)]
pub fn usd_number(nanos: Nanos) -> Box<RawValue> {
    RawValue::from_string(nanos.usd_string()).expect("a plain decimal is a JSON number")
}

/// Totals with money as an exact JSON number (never through a float).
#[derive(Debug)]
pub struct TotalsJson(pub UsageTotals);

impl TotalsJson {
    pub(crate) fn serialize_fields<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        let (totals, t) = (&self.0, &self.0.tokens);
        map.serialize_entry("requests", &totals.requests)?;
        map.serialize_entry("input_tokens", &t.input)?;
        map.serialize_entry("output_tokens", &t.output)?;
        map.serialize_entry("cache_read_tokens", &t.cache_read)?;
        map.serialize_entry("cache_write_tokens", &t.cache_write_5m)?;
        map.serialize_entry("cache_write_1h_tokens", &t.cache_write_1h)?;
        map.serialize_entry("reasoning_tokens", &t.reasoning)?;
        map.serialize_entry("total_tokens", &t.total())?;
        map.serialize_entry("cost_usd", &usd_number(totals.cost))?;
        map.serialize_entry("unpriced_requests", &totals.unpriced_requests)?;
        map.serialize_entry("estimated_requests", &totals.estimated_requests)
    }
}

impl Serialize for TotalsJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        self.serialize_fields(&mut map)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_money_in_json() {
        let totals = TotalsJson(UsageTotals {
            cost: Nanos(97_387_250),
            ..Default::default()
        });
        let json = serde_json::to_string(&totals).unwrap();
        assert!(json.contains("\"cost_usd\":0.09738725,"), "{json}");
    }
}
