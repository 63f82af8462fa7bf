//! Money as integers: costs in nano-dollars, prices in pico-dollars per token.
//!
//! Prices are quoted per million tokens with up to six decimals (e.g. $0.01875/Mtok), so one
//! pico-dollar per token (= one micro-dollar per million tokens) represents every real price
//! exactly. A single event's cost is computed exactly in pico-dollars and rounded once per
//! token kind to nano-dollars, the unit stored and summed: an `i64` of nano-dollars holds
//! $9.2 billion, enough for any aggregate, and the rounding error is below a nano-dollar per
//! token kind per event.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A price in pico-dollars (10⁻¹² USD) per token, i.e. micro-dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PicoPerToken(pub u64);

/// An amount of money in nano-dollars (10⁻⁹ USD). Signed so that corrections can be negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Nanos(pub i64);

/// Why a decimal amount could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("expected a non-negative decimal such as \"3.75\", got {0:?}")]
    Malformed(String),
    #[error("{0:?} has more than {1} decimal places")]
    TooPrecise(String, u32),
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Parses a non-negative decimal string into an integer scaled by 10^`scale`, exactly.
pub fn parse_scaled_decimal(text: &str, scale: u32) -> Result<u64, DecimalError> {
    let malformed = || DecimalError::Malformed(text.to_owned());
    let trimmed = text.trim();
    let (whole, fraction) = match trimmed.split_once('.') {
        Some((w, f)) => (w, f),
        None => (trimmed, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err(malformed());
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > scale as usize {
        return Err(DecimalError::TooPrecise(text.to_owned(), scale));
    }
    let too_large = || DecimalError::TooLarge(text.to_owned());
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut frac_value: u64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| malformed())?
    };
    for _ in fraction.len()..scale as usize {
        frac_value *= 10;
    }
    whole
        .checked_mul(10u64.pow(scale))
        .and_then(|w| w.checked_add(frac_value))
        .ok_or_else(too_large)
}

/// Parses a decimal string, optionally negative, into an integer scaled by 10^`scale`, rounding
/// any further decimals to the nearest unit (halves away from zero): for amounts others report
/// finer than we keep, such as a provider's bill in fractions of a cent.
pub fn parse_scaled_decimal_rounded(text: &str, scale: u32) -> Result<i64, DecimalError> {
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let (kept, round_up) = match digits.split_once('.') {
        Some((whole, fraction)) if fraction.len() > scale as usize => {
            let (kept, dropped) = fraction.split_at(scale as usize);
            if !dropped.bytes().all(|b| b.is_ascii_digit()) {
                return Err(DecimalError::Malformed(text.to_owned()));
            }
            (format!("{whole}.{kept}"), dropped.as_bytes()[0] >= b'5')
        }
        _ => (digits.to_owned(), false),
    };
    let magnitude = parse_scaled_decimal(&kept, scale)
        .map_err(|e| match e {
            DecimalError::Malformed(_) => DecimalError::Malformed(text.to_owned()),
            _ => DecimalError::TooLarge(text.to_owned()),
        })?
        .checked_add(u64::from(round_up))
        .and_then(|m| i64::try_from(m).ok())
        .ok_or_else(|| DecimalError::TooLarge(text.to_owned()))?;
    Ok(if negative { -magnitude } else { magnitude })
}

impl PicoPerToken {
    /// Reads a price in USD per million tokens ("3.75" → 3 750 000 pico-dollars per token).
    pub fn from_usd_per_mtok(text: &str) -> Result<Self, DecimalError> {
        parse_scaled_decimal(text, 6).map(PicoPerToken)
    }

    /// The price as USD per million tokens, without trailing zeros.
    pub fn usd_per_mtok(self) -> String {
        format_scaled(i128::from(self.0), 6)
    }
}

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);

    /// Rounds an exact amount in pico-dollars to the nearest nano-dollar (halves away from zero).
    pub fn from_picos_rounded(picos: u128) -> Nanos {
        let nanos = (picos + 500) / 1000;
        Nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
    }

    /// Reads a USD amount with at most nine decimals ("12.5" → 12 500 000 000 nano-dollars).
    pub fn from_usd(text: &str) -> Result<Nanos, DecimalError> {
        let value = parse_scaled_decimal(text, 9)?;
        i64::try_from(value)
            .map(Nanos)
            .map_err(|_| DecimalError::TooLarge(text.to_owned()))
    }

    pub fn saturating_add(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(other.0))
    }

    /// Dollars rounded to `decimals` places (at most 9), e.g. `$0.0113`.
    pub fn usd_rounded(self, decimals: u32) -> String {
        let decimals = decimals.min(9);
        let unit = 10i128.pow(9 - decimals);
        let value = i128::from(self.0);
        let rounded = (value + if value >= 0 { unit / 2 } else { -unit / 2 }) / unit;
        let sign = if rounded < 0 { "-" } else { "" };
        let scale = 10i128.pow(decimals);
        if decimals == 0 {
            return format!("{sign}${}", rounded.abs());
        }
        format!(
            "{sign}${}.{:0width$}",
            rounded.abs() / scale,
            rounded.abs() % scale,
            width = decimals as usize
        )
    }

    /// The exact decimal USD value, e.g. "0.097387250" → "0.09738725".
    pub fn usd_string(self) -> String {
        format_scaled(i128::from(self.0), 9)
    }
}

impl std::iter::Sum for Nanos {
    fn sum<I: Iterator<Item = Nanos>>(iter: I) -> Nanos {
        iter.fold(Nanos::ZERO, Nanos::saturating_add)
    }
}

impl fmt::Display for Nanos {
    /// Dollars with two decimals for people ("$1234.57"); use [`Nanos::usd_string`] for exact values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.usd_rounded(2))
    }
}

/// Formats `value / 10^scale` as a plain decimal without trailing zeros.
fn format_scaled(value: i128, scale: u32) -> String {
    let divisor = 10i128.pow(scale);
    let sign = if value < 0 { "-" } else { "" };
    let whole = value.abs() / divisor;
    let fraction = value.abs() % divisor;
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{fraction:0width$}", width = scale as usize);
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prices_parse_exactly() {
        assert_eq!(
            PicoPerToken::from_usd_per_mtok("3.75").unwrap(),
            PicoPerToken(3_750_000)
        );
        assert_eq!(
            PicoPerToken::from_usd_per_mtok("0.01875").unwrap(),
            PicoPerToken(18_750)
        );
        assert_eq!(PicoPerToken::from_usd_per_mtok("15").unwrap(), PicoPerToken(15_000_000));
        assert_eq!(PicoPerToken::from_usd_per_mtok(".5").unwrap(), PicoPerToken(500_000));
        assert_eq!(PicoPerToken::from_usd_per_mtok("0.30").unwrap().usd_per_mtok(), "0.3");
    }

    #[test]
    fn bad_decimals_are_named() {
        for bad in ["", ".", "-1", "1e3", "abc", "1.2.3", " "] {
            assert!(
                matches!(PicoPerToken::from_usd_per_mtok(bad), Err(DecimalError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            PicoPerToken::from_usd_per_mtok("0.0000001"),
            Err(DecimalError::TooPrecise(_, 6))
        ));
        assert!(matches!(
            PicoPerToken::from_usd_per_mtok("99999999999999999999"),
            Err(DecimalError::TooLarge(_))
        ));
    }

    #[test]
    fn nanos_display_and_exact_strings() {
        assert_eq!(Nanos(97_387_250).usd_string(), "0.09738725");
        assert_eq!(Nanos(1_234_567_000_000).to_string(), "$1234.57");
        assert_eq!(Nanos(-5_000_000).to_string(), "-$0.01");
        assert_eq!(Nanos(0).usd_string(), "0");
        assert_eq!(Nanos::from_usd("12.5").unwrap(), Nanos(12_500_000_000));
        assert_eq!(Nanos(11_250_000).usd_rounded(4), "$0.0113");
        assert_eq!(Nanos(-11_250_000).usd_rounded(2), "-$0.01");
        assert_eq!(Nanos(2_500_000_000).usd_rounded(0), "$3");
    }

    #[test]
    fn amounts_finer_than_kept_round_half_away_from_zero() {
        // Anthropic bills in cents with fractions: 7 decimals of a cent are nano-dollars.
        assert_eq!(parse_scaled_decimal_rounded("123.78912", 7), Ok(1_237_891_200));
        assert_eq!(parse_scaled_decimal_rounded("0.000000049", 7), Ok(0));
        assert_eq!(parse_scaled_decimal_rounded("0.00000005", 7), Ok(1));
        assert_eq!(parse_scaled_decimal_rounded("-0.00000005", 7), Ok(-1));
        assert_eq!(parse_scaled_decimal_rounded("0.99999999", 7), Ok(10_000_000));
        assert_eq!(parse_scaled_decimal_rounded("12", 9), Ok(12_000_000_000));
        for bad in ["", "-", "1.2.3", "1e-7", "0x10", "1.00000000x", "--1"] {
            assert!(parse_scaled_decimal_rounded(bad, 7).is_err(), "{bad:?}");
        }
        assert!(parse_scaled_decimal_rounded("92233720368547758080", 0).is_err());
    }

    proptest! {
        #[test]
        fn rounding_an_exact_decimal_changes_nothing_and_extra_digits_move_it_at_most_one(
            units in -1_000_000_000_000i64..1_000_000_000_000, extra in 0u32..1000,
        ) {
            let exact = format!("{}{}.{:07}", if units < 0 { "-" } else { "" }, units.abs() / 10_000_000, units.abs() % 10_000_000);
            prop_assert_eq!(parse_scaled_decimal_rounded(&exact, 7), Ok(units));
            let finer = format!("{exact}{extra:03}");
            let rounded = parse_scaled_decimal_rounded(&finer, 7).unwrap();
            let sign = if exact.starts_with('-') { -1 } else { 1 };
            let away = if extra >= 500 { sign } else { 0 };
            prop_assert_eq!(rounded, units + away);
        }

        #[test]
        fn usd_strings_round_trip(n in 0i64..i64::MAX) {
            prop_assert_eq!(Nanos::from_usd(&Nanos(n).usd_string()).unwrap(), Nanos(n));
        }

        #[test]
        fn price_strings_round_trip(p in 0u64..10_000_000_000_000) {
            let price = PicoPerToken(p);
            prop_assert_eq!(PicoPerToken::from_usd_per_mtok(&price.usd_per_mtok()).unwrap(), price);
        }
    }
}
