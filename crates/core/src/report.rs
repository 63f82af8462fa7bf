//! Report queries: what to group by, and how a time window splits across rollups.
//!
//! Usage is kept three ways: raw events, hourly rollups and daily rollups (UTC). A window is
//! answered from the coarsest data that covers it exactly — whole days from the daily rollup,
//! whole hours at its edges from the hourly rollup, and the sub-hour remainder from raw events —
//! so a report over a year reads a few thousand rollup rows instead of every event.

use serde::Serialize;

use crate::money::Nanos;
use crate::time::{MICROS_PER_DAY, MICROS_PER_HOUR, Micros};
use crate::usage::TokenCounts;

crate::named_enum! {
    /// A dimension a usage summary can be grouped by.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Dimension {
        User = "user",
        Team = "team",
        Project = "project",
        Agent = "agent",
        Model = "model",
        Provider = "provider",
        Day = "day",
    }
}

/// Reads a comma-separated `group_by` list such as `user,model,day` (order kept, repeats ignored).
pub fn parse_group_by(text: &str) -> Result<Vec<Dimension>, String> {
    let mut dims = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let dim = Dimension::parse(item).ok_or_else(|| {
            let names = Dimension::NAMES;
            format!("unknown dimension {item:?}; expected some of {}", names.join(","))
        })?;
        if !dims.contains(&dim) {
            dims.push(dim);
        }
    }
    Ok(dims)
}

/// Which stored form of usage answers a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Raw,
    Hour,
    Day,
}

/// A half-open time range `[from, to)` answered from one granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub granularity: Granularity,
    pub from: Micros,
    pub to: Micros,
}

/// Splits `[from, to)` into disjoint, ordered segments that cover it exactly, each aligned to
/// its granularity, using the coarsest granularity possible.
pub fn plan_segments(from: Micros, to: Micros) -> Vec<Segment> {
    let mut plan = Vec::with_capacity(5);
    let mut push = |granularity, from: Micros, to: Micros| {
        if from < to {
            plan.push(Segment { granularity, from, to });
        }
    };
    let (first_hour, last_hour) = (from.ceil_to(MICROS_PER_HOUR), to.floor_to(MICROS_PER_HOUR));
    if first_hour >= last_hour {
        push(Granularity::Raw, from, to);
        return plan;
    }
    let (first_day, last_day) = (first_hour.ceil_to(MICROS_PER_DAY), last_hour.floor_to(MICROS_PER_DAY));
    push(Granularity::Raw, from, first_hour);
    if first_day < last_day {
        push(Granularity::Hour, first_hour, first_day);
        push(Granularity::Day, first_day, last_day);
        push(Granularity::Hour, last_day, last_hour);
    } else {
        push(Granularity::Hour, first_hour, last_hour);
    }
    push(Granularity::Raw, last_hour, to);
    plan
}

/// Totals of one group of a usage summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct UsageTotals {
    pub requests: u64,
    pub tokens: TokenCounts,
    pub cost: Nanos,
    /// Requests whose model had no price: their cost is unknown, not zero.
    pub unpriced_requests: u64,
    /// Requests whose token counts are estimates.
    pub estimated_requests: u64,
}

impl UsageTotals {
    pub fn add(&mut self, other: &UsageTotals) {
        self.requests += other.requests;
        self.tokens.add(&other.tokens);
        self.cost = self.cost.saturating_add(other.cost);
        self.unpriced_requests += other.unpriced_requests;
        self.estimated_requests += other.estimated_requests;
    }
}

/// One row of a usage summary: the group's key (one value per requested dimension, in order;
/// `None` where the events carried no such attribute) and its totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryRow {
    pub key: Vec<Option<String>>,
    pub totals: UsageTotals,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn group_by_is_parsed_strictly() {
        assert_eq!(
            parse_group_by("user, model,day,user").unwrap(),
            vec![Dimension::User, Dimension::Model, Dimension::Day]
        );
        assert_eq!(parse_group_by("").unwrap(), vec![]);
        assert!(parse_group_by("user,colour").unwrap_err().contains("\"colour\""));
    }

    #[test]
    fn a_window_of_whole_days_reads_only_daily_rollups() {
        let plan = plan_segments(Micros(0), Micros(3 * MICROS_PER_DAY));
        assert_eq!(
            plan,
            vec![Segment {
                granularity: Granularity::Day,
                from: Micros(0),
                to: Micros(3 * MICROS_PER_DAY)
            }]
        );
    }

    #[test]
    fn ragged_edges_use_hours_then_raw() {
        let from = Micros(MICROS_PER_DAY - MICROS_PER_HOUR - 5);
        let to = Micros(2 * MICROS_PER_DAY + MICROS_PER_HOUR + 7);
        let kinds: Vec<_> = plan_segments(from, to).iter().map(|s| s.granularity).collect();
        assert_eq!(
            kinds,
            [
                Granularity::Raw,
                Granularity::Hour,
                Granularity::Day,
                Granularity::Hour,
                Granularity::Raw
            ]
        );
    }

    proptest! {
        #[test]
        fn segments_tile_the_window_exactly(from in -10_000_000_000_000i64..10_000_000_000_000, len in 0i64..100 * MICROS_PER_DAY) {
            let (from, to) = (Micros(from), Micros(from + len));
            let plan = plan_segments(from, to);
            let mut cursor = from;
            for segment in &plan {
                prop_assert_eq!(segment.from, cursor);
                prop_assert!(segment.from < segment.to);
                let unit = match segment.granularity { Granularity::Raw => 1, Granularity::Hour => MICROS_PER_HOUR, Granularity::Day => MICROS_PER_DAY };
                prop_assert_eq!(segment.from.0.rem_euclid(unit), 0);
                prop_assert_eq!(segment.to.0.rem_euclid(unit), 0);
                cursor = segment.to;
            }
            prop_assert_eq!(cursor, if plan.is_empty() { from } else { to });
            prop_assert!(plan.len() <= 5);
        }
    }
}
