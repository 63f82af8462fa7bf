//! Rollup deltas shared by both backends: how stored events change the hourly and daily
//! totals, and the SQL that applies them. Keys are kept sorted so that concurrent writers
//! upsert rows in the same order (no deadlocks on PostgreSQL).

use std::collections::HashMap;

use goodhart_core::Micros;
use goodhart_core::pricing::PriceTable;
use goodhart_core::time::{MICROS_PER_DAY, MICROS_PER_HOUR};
use goodhart_core::usage::TokenCounts;

use crate::usage::RepriceOutcome;

/// Stored ids of an event's attribution; 0 means "none".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DimIds {
    pub user: i64,
    pub team: i64,
    pub project: i64,
    pub agent: i64,
}

/// A rollup row's key. Names are borrowed from the events being stored, so building the
/// deltas of a batch allocates nothing per event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey<'a> {
    pub bucket: i64,
    pub dims: DimIds,
    pub provider: &'a str,
    pub model: &'a str,
}

impl RollupKey<'_> {
    /// The integer key columns, in table order: bucket, user, team, project, agent.
    pub fn ids(&self) -> [i64; 5] {
        [
            self.bucket,
            self.dims.user,
            self.dims.team,
            self.dims.project,
            self.dims.agent,
        ]
    }
}

/// Token columns, in the order of [`TokenCounts::as_array`], in every usage table.
pub const TOKEN_COLUMNS: [&str; 6] = [
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
];

/// A signed change to one rollup row (signed: repricing can lower a cost or an unpriced count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollupDelta {
    pub requests: i64,
    pub tokens: [i64; 6],
    pub cost_nanos: i64,
    pub unpriced_requests: i64,
    pub estimated_requests: i64,
}

impl RollupDelta {
    /// The contribution of one newly stored event.
    pub fn of_event(tokens: &TokenCounts, cost_nanos: Option<i64>, estimated: bool) -> RollupDelta {
        RollupDelta {
            requests: 1,
            tokens: token_columns(tokens),
            cost_nanos: cost_nanos.unwrap_or(0),
            unpriced_requests: i64::from(cost_nanos.is_none()),
            estimated_requests: i64::from(estimated),
        }
    }

    /// The change when an event's cost goes from `before` to `after`.
    pub fn of_reprice(before: Option<i64>, after: Option<i64>) -> RollupDelta {
        RollupDelta {
            cost_nanos: after.unwrap_or(0) - before.unwrap_or(0),
            unpriced_requests: i64::from(after.is_none()) - i64::from(before.is_none()),
            ..RollupDelta::default()
        }
    }

    /// The value columns, in table order: requests, the six token kinds, cost, unpriced and
    /// estimated requests.
    pub fn values(&self) -> [i64; 10] {
        let t = self.tokens;
        [
            self.requests,
            t[0],
            t[1],
            t[2],
            t[3],
            t[4],
            t[5],
            self.cost_nanos,
            self.unpriced_requests,
            self.estimated_requests,
        ]
    }

    /// The opposite change: what takes an event's contribution back out.
    pub fn negated(&self) -> RollupDelta {
        RollupDelta {
            requests: -self.requests,
            tokens: self.tokens.map(|t| -t),
            cost_nanos: -self.cost_nanos,
            unpriced_requests: -self.unpriced_requests,
            estimated_requests: -self.estimated_requests,
        }
    }

    fn add(&mut self, other: &RollupDelta) {
        self.requests += other.requests;
        for (mine, theirs) in self.tokens.iter_mut().zip(other.tokens) {
            *mine += theirs;
        }
        self.cost_nanos += other.cost_nanos;
        self.unpriced_requests += other.unpriced_requests;
        self.estimated_requests += other.estimated_requests;
    }
}

/// Token counts in the column order of the events and rollup tables.
pub fn token_columns(tokens: &TokenCounts) -> [i64; 6] {
    tokens.as_array().map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// How a backend feeds rows to the rollup upsert.
#[derive(Clone, Copy)]
pub enum RollupRows {
    /// This many rows of seventeen parameters each, `?1 … ?17`, `?18 … ?34`, … (SQLite).
    Values(usize),
    /// Seventeen arrays unnested into rows (PostgreSQL: one statement per batch).
    /// The arrays are unnested in the select list, where they advance in lockstep one row at
    /// a time; `FROM unnest(…)` first copies every array into a tuplestore, which took 14–20 %
    /// more instructions per upserted row (BENCHMARKS.md).
    Unnest,
}

/// Adds signed deltas to rollup rows: inserts missing rows, adds to existing ones.
pub fn rollup_upsert_sql(table: &str, rows: RollupRows) -> String {
    let columns: Vec<&str> = [
        "bucket",
        "user_id",
        "team_id",
        "project_id",
        "agent_id",
        "provider",
        "model",
        "requests",
    ]
    .into_iter()
    .chain(TOKEN_COLUMNS)
    .chain(["cost_nanos", "unpriced_requests", "estimated_requests"])
    .collect();
    let source = match rows {
        RollupRows::Values(rows) => {
            let rows: Vec<String> = (0..rows)
                .map(|row| {
                    let params: Vec<String> = (1..=columns.len())
                        .map(|i| format!("?{}", row * columns.len() + i))
                        .collect();
                    format!("({})", params.join(", "))
                })
                .collect();
            format!("VALUES {}", rows.join(", "))
        }
        RollupRows::Unnest => {
            let arrays: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    format!(
                        "unnest(${}::{}[])",
                        i + 1,
                        if matches!(*c, "provider" | "model") {
                            "text"
                        } else {
                            "bigint"
                        }
                    )
                })
                .collect();
            format!("SELECT {}", arrays.join(", "))
        }
    };
    let updates: Vec<String> = columns[7..]
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} ({}) {source} ON CONFLICT (bucket, user_id, team_id, project_id, agent_id, provider, model) \
         DO UPDATE SET {}",
        columns.join(", "),
        updates.join(", ")
    )
}

/// Deletes a rollup row that a removal left without requests (same SQL on both backends).
pub fn prune_rollup_sql(table: &str) -> String {
    format!(
        "DELETE FROM {table} WHERE bucket = $1 AND user_id = $2 AND team_id = $3 AND project_id = $4 \
         AND agent_id = $5 AND provider = $6 AND model = $7 AND requests = 0"
    )
}

/// The rollup tables, in the order of [`Rollups::tables`], with their bucket sizes.
/// `usage_hourly` and `usage_daily_lean` have no project and agent (their ids are 0): at hour resolution those two
/// multiply the rows almost up to the number of events. `usage_hourly_projects` and
/// `usage_daily_projects` have project and agent but no user and team: what reports by project
/// or agent read. Only `usage_daily` has all four; reports by both a person and a project or
/// agent read raw events for the (at most two) partial days at a window's edges.
pub const TABLES: [(&str, i64, Keep); 5] = [
    ("usage_hourly", MICROS_PER_HOUR, Keep::People),
    ("usage_daily", MICROS_PER_DAY, Keep::All),
    ("usage_daily_lean", MICROS_PER_DAY, Keep::People),
    ("usage_hourly_projects", MICROS_PER_HOUR, Keep::Work),
    ("usage_daily_projects", MICROS_PER_DAY, Keep::Work),
];

/// Which attribution ids a rollup table keeps (the others are stored as 0).
#[derive(Clone, Copy)]
pub enum Keep {
    All,
    /// User and team.
    People,
    /// Project and agent.
    Work,
}

impl Keep {
    fn dims(self, dims: DimIds) -> DimIds {
        match self {
            Keep::All => dims,
            Keep::People => DimIds {
                project: 0,
                agent: 0,
                ..dims
            },
            Keep::Work => DimIds {
                user: 0,
                team: 0,
                ..dims
            },
        }
    }
}

/// A rollup row's key inside [`Rollups`]: the provider and model by their index in
/// `Rollups::names`, so that accumulating a batch compares integers, not strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct CellKey {
    bucket: i64,
    dims: DimIds,
    name: u32,
}

/// Pending changes to the rollup tables: each event's change once, per hour with every id;
/// each table's rows are derived from these when applied, by sorting integer keys (an ordered
/// map per table keyed by provider and model strings took 9 % of ingest CPU with five tables).
#[derive(Debug, Default)]
pub struct Rollups<'a> {
    /// Each (provider, model) pair seen, in order of first sight.
    names: Vec<(&'a str, &'a str)>,
    index: HashMap<(&'a str, &'a str), u32>,
    /// The last pair looked up: a batch's events mostly name the same few models in runs.
    last: Option<u32>,
    cells: Vec<(CellKey, RollupDelta)>,
}

/// Sorts `rows` by key and adds up the deltas of equal keys.
fn merge_sorted(rows: &mut Vec<(CellKey, RollupDelta)>) {
    rows.sort_unstable_by_key(|(key, _)| *key);
    rows.dedup_by(|(key, delta), (kept_key, kept)| {
        let same = key == kept_key;
        if same {
            kept.add(delta);
        }
        same
    });
}

impl<'a> Rollups<'a> {
    pub fn add(&mut self, ts: Micros, dims: DimIds, provider: &'a str, model: &'a str, delta: &RollupDelta) {
        let key = CellKey {
            bucket: ts.floor_to(MICROS_PER_HOUR).0,
            dims,
            name: self.name_index(provider, model),
        };
        self.cells.push((key, *delta));
    }

    fn name_index(&mut self, provider: &'a str, model: &'a str) -> u32 {
        if let Some(last) = self.last
            && self.names[last as usize] == (provider, model)
        {
            return last;
        }
        let next = self.names.len() as u32;
        let index = *self.index.entry((provider, model)).or_insert(next);
        if index == next {
            self.names.push((provider, model));
        }
        self.last = Some(index);
        index
    }

    /// Each rollup table with its pending changes, sorted by key (bucket, ids, provider,
    /// model): concurrent writers then upsert rows in the same order.
    pub fn tables(&self) -> [(&'static str, Vec<(RollupKey<'a>, RollupDelta)>); 5] {
        // Provider and model indices renumbered in name order, so integer keys sort as names do.
        let mut by_name: Vec<u32> = (0..self.names.len() as u32).collect();
        by_name.sort_unstable_by_key(|&i| self.names[i as usize]);
        let mut rank = vec![0u32; self.names.len()];
        for (r, &i) in by_name.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        let mut cells: Vec<(CellKey, RollupDelta)> = self
            .cells
            .iter()
            .map(|(key, delta)| {
                let ranked = CellKey {
                    name: rank[key.name as usize],
                    ..*key
                };
                (ranked, *delta)
            })
            .collect();
        merge_sorted(&mut cells);
        TABLES.map(|(table, unit, keep)| {
            let mut rows: Vec<(CellKey, RollupDelta)> = cells
                .iter()
                .map(|(cell, delta)| {
                    let key = CellKey {
                        bucket: Micros(cell.bucket).floor_to(unit).0,
                        dims: keep.dims(cell.dims),
                        name: cell.name,
                    };
                    (key, *delta)
                })
                .collect();
            merge_sorted(&mut rows);
            let rows = rows
                .into_iter()
                .map(|(key, delta)| {
                    let (provider, model) = self.names[by_name[key.name as usize] as usize];
                    let key = RollupKey {
                        bucket: key.bucket,
                        dims: key.dims,
                        provider,
                        model,
                    };
                    (key, delta)
                })
                .collect();
            (table, rows)
        })
    }
}

/// The kinds of names events are attributed to, each with its own table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    User,
    Team,
    Project,
    Agent,
    PriceVersion,
}

impl NameKind {
    pub fn table(self) -> &'static str {
        match self {
            NameKind::User => "users",
            NameKind::Team => "teams",
            NameKind::Project => "projects",
            NameKind::Agent => "agents",
            NameKind::PriceVersion => "price_versions",
        }
    }

    pub fn column(self) -> &'static str {
        match self {
            NameKind::PriceVersion => "version",
            _ => "name",
        }
    }
}

/// Ids of names already stored, so a batch looks each name up at most once. One map per kind,
/// keyed with foldhash: four lookups per stored event with SipHash and a map of maps took 4 %
/// of the SQLite writer's instructions.
#[derive(Debug, Default)]
pub struct NameCache {
    ids: [HashMap<String, i64, foldhash::fast::RandomState>; 5],
}

impl NameCache {
    pub fn get(&self, kind: NameKind, name: &str) -> Option<i64> {
        self.ids[kind as usize].get(name).copied()
    }

    pub fn insert(&mut self, kind: NameKind, name: &str, id: i64) {
        self.ids[kind as usize].insert(name.to_owned(), id);
    }

    /// Forgets everything (after a rolled-back transaction whose new ids may not exist).
    pub fn clear(&mut self) {
        self.ids.iter_mut().for_each(HashMap::clear);
    }
}

/// A stored event's rollup key and values, as read back (columns [`crate::usage::EVENT_ROW_COLUMNS`]):
/// what repricing or removing it changes in the rollups.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub ts: Micros,
    pub dims: DimIds,
    pub provider: String,
    pub model: String,
    pub tokens: TokenCounts,
    pub cost: Option<i64>,
    pub estimated: bool,
}

impl EventRow {
    pub fn provider_opt(&self) -> Option<&str> {
        (!self.provider.is_empty()).then_some(self.provider.as_str())
    }

    /// Takes this event out of `rollups` (it is being deleted).
    pub fn remove_from<'a>(&'a self, rollups: &mut Rollups<'a>) {
        let added = RollupDelta::of_event(&self.tokens, self.cost, self.estimated);
        rollups.add(self.ts, self.dims, &self.provider, &self.model, &added.negated());
    }
}

/// A new price for one stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceChange {
    pub seq: i64,
    pub cost_nanos: Option<i64>,
    pub long_context: bool,
}

/// Prices `rows` with `prices`: the events whose cost changes, and the rollup deltas that keep
/// the rollups equal to the events. Counts go into `outcome`.
pub fn plan_reprice<'a>(
    rows: &'a [EventRow],
    prices: &PriceTable,
    outcome: &mut RepriceOutcome,
) -> (Vec<PriceChange>, Rollups<'a>) {
    let mut changes = Vec::new();
    let mut rollups = Rollups::default();
    for row in rows {
        outcome.examined += 1;
        let cost = prices.cost_of(row.provider_opt(), &row.model, &row.tokens);
        let after = cost.map(|c| c.total().0);
        outcome.still_unpriced += u64::from(after.is_none());
        if after == row.cost {
            continue;
        }
        outcome.repriced += 1;
        changes.push(PriceChange {
            seq: row.seq,
            cost_nanos: after,
            long_context: cost.is_some_and(|c| c.long_context),
        });
        rollups.add(
            row.ts,
            row.dims,
            &row.provider,
            &row.model,
            &RollupDelta::of_reprice(row.cost, after),
        );
    }
    (changes, rollups)
}
