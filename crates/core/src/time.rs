//! Instants as integer microseconds since the Unix epoch (UTC), and the calendar arithmetic
//! reports need. Nothing here reads the clock: callers pass `now`.

use serde::{Deserialize, Serialize};

/// Microseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Micros(pub i64);

pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
pub const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
pub const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

impl Micros {
    pub fn from_timestamp(ts: jiff::Timestamp) -> Micros {
        Micros(ts.as_microsecond())
    }

    pub fn to_timestamp(self) -> jiff::Timestamp {
        jiff::Timestamp::from_microsecond(self.0).unwrap_or(jiff::Timestamp::MAX)
    }

    /// RFC 3339 in UTC, e.g. `2026-11-02T09:14:03Z`.
    pub fn rfc3339(self) -> String {
        self.to_timestamp().to_string()
    }

    /// The UTC calendar day, e.g. `2026-11-02`.
    pub fn utc_day(self) -> String {
        self.to_timestamp().to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
    }

    /// The start of the `unit`-long interval `self` falls in (saturating at the far past rather
    /// than overflowing).
    pub fn floor_to(self, unit: i64) -> Micros {
        Micros(self.0.saturating_sub(self.0.rem_euclid(unit)))
    }

    pub fn ceil_to(self, unit: i64) -> Micros {
        let floor = self.floor_to(unit);
        if floor == self {
            floor
        } else {
            Micros(floor.0.saturating_add(unit))
        }
    }
}

/// Reads an RFC 3339 timestamp with an offset (`2026-11-02T09:14:03Z`, `…+01:00`, fractions allowed).
pub fn parse_rfc3339(text: &str) -> Result<Micros, String> {
    text.parse::<jiff::Timestamp>()
        .map(Micros::from_timestamp)
        .map_err(|e| format!("expected an RFC 3339 timestamp such as 2026-11-02T09:14:03Z, got {text:?} ({e})"))
}

/// Reads a UTC date (`2026-11-02`) as its midnight: how reports and summaries name a day.
pub fn parse_date(text: &str) -> Result<Micros, String> {
    let date: jiff::civil::Date = text
        .trim()
        .parse()
        .map_err(|e| format!("expected a date such as 2026-11-02, got {text:?} ({e})"))?;
    let midnight = date
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| format!("{text:?}: {e}"))?;
    Ok(Micros::from_timestamp(midnight.timestamp()))
}

/// Reads a report bound: an RFC 3339 timestamp, a UTC date (`2026-11-02`, meaning its midnight),
/// or a span back from `now` (`7d`, `12h`, `30m`).
pub fn parse_bound(text: &str, now: Micros) -> Result<Micros, String> {
    let text = text.trim();
    if let Some(span) = parse_span(text) {
        return Ok(Micros(now.0.saturating_sub(span)));
    }
    if text.len() == 10
        && let Ok(day) = parse_date(text)
    {
        return Ok(day);
    }
    parse_rfc3339(text).map_err(|_| {
        format!("expected an RFC 3339 timestamp, a date such as 2026-11-02, or a span such as 7d, got {text:?}")
    })
}

/// A span such as `7d`, `12h`, `30m` or `2w`, in microseconds.
pub fn parse_span(text: &str) -> Option<i64> {
    let unit = match text.chars().last()? {
        'm' => 60 * MICROS_PER_SECOND,
        'h' => MICROS_PER_HOUR,
        'd' => MICROS_PER_DAY,
        'w' => 7 * MICROS_PER_DAY,
        _ => return None,
    };
    let count: i64 = text[..text.len() - 1].parse().ok()?;
    (count >= 0).then_some(())?;
    count.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_fractions() {
        let z = parse_rfc3339("2026-11-02T09:14:03Z").unwrap();
        assert_eq!(parse_rfc3339("2026-11-02T10:14:03+01:00").unwrap(), z);
        assert_eq!(parse_rfc3339("2026-11-02T09:14:03.5Z").unwrap().0, z.0 + 500_000);
        assert_eq!(z.rfc3339(), "2026-11-02T09:14:03Z");
        assert_eq!(z.utc_day(), "2026-11-02");
        assert!(parse_rfc3339("2026-11-02 09:14").is_err());
    }

    #[test]
    fn bounds_accept_dates_and_spans() {
        let now = parse_rfc3339("2026-11-23T12:00:00Z").unwrap();
        assert_eq!(
            parse_bound("7d", now).unwrap(),
            parse_rfc3339("2026-11-16T12:00:00Z").unwrap()
        );
        assert_eq!(
            parse_bound("2026-11-02", now).unwrap(),
            parse_rfc3339("2026-11-02T00:00:00Z").unwrap()
        );
        assert!(parse_bound("last week", now).unwrap_err().contains("span such as 7d"));
    }

    #[test]
    fn rounding_to_units() {
        let t = Micros(MICROS_PER_DAY + 5);
        assert_eq!(t.floor_to(MICROS_PER_DAY), Micros(MICROS_PER_DAY));
        assert_eq!(t.ceil_to(MICROS_PER_DAY), Micros(2 * MICROS_PER_DAY));
        assert_eq!(Micros(-1).floor_to(MICROS_PER_HOUR), Micros(-MICROS_PER_HOUR));
        assert_eq!(
            Micros(MICROS_PER_HOUR).ceil_to(MICROS_PER_HOUR),
            Micros(MICROS_PER_HOUR)
        );
    }
}
