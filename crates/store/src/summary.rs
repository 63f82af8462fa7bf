//! The SQL of a usage summary, shared by both backends, and the merge of its segments.

use std::collections::HashMap;

use goodhart_core::Micros;
use goodhart_core::Nanos;
use goodhart_core::report::{Dimension, Granularity, SummaryRow, UsageTotals};
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_core::usage::TokenCounts;

/// One grouped row as read from SQL: key parts (the day as its bucket start) and sums.
#[derive(Debug, Clone)]
pub struct RawRow {
    pub key: Vec<KeyPart>,
    pub sums: [i64; 10],
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// A user, team, project or agent id (0 = none), named after grouping.
    Id(i64),
    Text(Option<String>),
    Day(i64),
}

/// How each dimension's key column is read.
pub fn key_kind(dim: Dimension) -> KeyKind {
    match dim {
        Dimension::User | Dimension::Team | Dimension::Project | Dimension::Agent => KeyKind::Id,
        Dimension::Model | Dimension::Provider => KeyKind::Text,
        Dimension::Day => KeyKind::Day,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Id,
    Text,
    Day,
}

/// The table naming a dimension's ids, for dimensions grouped by id.
pub fn name_table(dim: Dimension) -> Option<&'static str> {
    match dim {
        Dimension::User => Some("users"),
        Dimension::Team => Some("teams"),
        Dimension::Project => Some("projects"),
        Dimension::Agent => Some("agents"),
        _ => None,
    }
}

/// Names by id for each grouped dimension that is grouped by id (loaded by the backend).
pub type Names = HashMap<Dimension, HashMap<i64, String>>;

/// The SQL answering one segment; parameters are `$1` (from) and `$2` (to, exclusive).
/// Columns: one per dimension (day as BIGINT, the others as TEXT), then ten sums: requests,
/// six token kinds, cost, unpriced requests, estimated requests.
pub fn segment_sql(granularity: Granularity, group_by: &[Dimension]) -> String {
    // The hourly and lean daily rollups have no project or agent, the projects rollups no user
    // or team; only the full daily rollup and raw events have all four.
    let has = |dims: &[Dimension]| group_by.iter().any(|d| dims.contains(d));
    let (by_work, by_person) = (
        has(&[Dimension::Project, Dimension::Agent]),
        has(&[Dimension::User, Dimension::Team]),
    );
    let granularity = match granularity {
        Granularity::Hour if by_work && by_person => Granularity::Raw,
        other => other,
    };
    let (table, time_column) = match granularity {
        Granularity::Raw => ("usage_events", "ts"),
        Granularity::Hour if by_work => ("usage_hourly_projects", "bucket"),
        Granularity::Hour => ("usage_hourly", "bucket"),
        Granularity::Day if by_work && by_person => ("usage_daily", "bucket"),
        Granularity::Day if by_work => ("usage_daily_projects", "bucket"),
        Granularity::Day => ("usage_daily_lean", "bucket"),
    };
    // Grouping by integer ids and naming the groups afterwards is several times faster than
    // joining the name tables on every rollup row.
    let mut columns: Vec<String> = group_by
        .iter()
        .map(|dim| match dim {
            Dimension::User => "t.user_id".to_owned(),
            Dimension::Team => "t.team_id".to_owned(),
            Dimension::Project => "t.project_id".to_owned(),
            Dimension::Agent => "t.agent_id".to_owned(),
            Dimension::Model => "t.model".to_owned(),
            Dimension::Provider => "NULLIF(t.provider, '')".to_owned(),
            Dimension::Day => format!("CAST((t.{time_column} / {MICROS_PER_DAY}) * {MICROS_PER_DAY} AS BIGINT)"),
        })
        .collect();
    let sum = |expr: &str| format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT)");
    let tokens = crate::rollup::TOKEN_COLUMNS;
    let mut sums = vec![if granularity == Granularity::Raw {
        "CAST(COUNT(*) AS BIGINT)".to_owned()
    } else {
        sum("t.requests")
    }];
    sums.extend(tokens.iter().map(|c| sum(&format!("t.{c}"))));
    if granularity == Granularity::Raw {
        sums.push(sum("t.cost_nanos"));
        sums.push(sum("CASE WHEN t.cost_nanos IS NULL THEN 1 ELSE 0 END"));
        sums.push(sum("t.estimated"));
    } else {
        sums.extend(["t.cost_nanos", "t.unpriced_requests", "t.estimated_requests"].map(sum));
    }
    columns.extend(sums);
    let mut sql = format!(
        "SELECT {} FROM {table} t WHERE t.{time_column} >= $1 AND t.{time_column} < $2",
        columns.join(", ")
    );
    if !group_by.is_empty() {
        let positions: Vec<String> = (1..=group_by.len()).map(|i| i.to_string()).collect();
        sql.push_str(&format!(" GROUP BY {}", positions.join(", ")));
    }
    sql
}

/// Merges the rows of every segment into the summary, most expensive first.
pub fn merge(rows: impl IntoIterator<Item = RawRow>, group_by: &[Dimension], names: &Names) -> Vec<SummaryRow> {
    let mut groups: HashMap<Vec<KeyPart>, UsageTotals> = HashMap::new();
    for row in rows {
        let s = row.sums.map(|v| u64::try_from(v).unwrap_or(0));
        if s[0] == 0 {
            continue;
        }
        let totals = UsageTotals {
            requests: s[0],
            tokens: TokenCounts {
                input: s[1],
                output: s[2],
                cache_read: s[3],
                cache_write_5m: s[4],
                cache_write_1h: s[5],
                reasoning: s[6],
            },
            cost: Nanos(row.sums[7]),
            unpriced_requests: s[8],
            estimated_requests: s[9],
        };
        groups.entry(row.key).or_default().add(&totals);
    }
    let mut summary: Vec<SummaryRow> = groups
        .into_iter()
        .map(|(key, totals)| SummaryRow {
            key: key
                .into_iter()
                .zip(group_by)
                .map(|(part, dim)| match part {
                    KeyPart::Id(0) => None,
                    KeyPart::Id(id) => Some(
                        names
                            .get(dim)
                            .and_then(|n| n.get(&id))
                            .cloned()
                            .unwrap_or_else(|| format!("#{id}")),
                    ),
                    KeyPart::Text(text) => text,
                    KeyPart::Day(bucket) => Some(Micros(bucket).utc_day()),
                })
                .collect(),
            totals,
        })
        .collect();
    summary.sort_by(|a, b| {
        b.totals
            .cost
            .cmp(&a.totals.cost)
            .then(b.totals.requests.cmp(&a.totals.requests))
            .then(a.key.cmp(&b.key))
    });
    summary
}
