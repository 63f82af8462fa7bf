//! SQLite: usage events (one writer transaction per batch, the gateway's record replacing
//! other sources' records of the same call), their rollups, summaries and repricing.

use std::collections::HashSet;
use std::sync::OnceLock;

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::pricing::PriceTable;
use goodhart_core::report::{Dimension, SummaryRow, plan_segments};
use goodhart_core::usage::{self, Source, TokenCounts, UsageEvent};
use rusqlite::{CachedStatement, Connection, OptionalExtension, Statement, Transaction, params};

use crate::clock::now_micros;
use crate::error::StoreError;
use crate::rollup::{self, DimIds, EventRow, NameCache, NameKind, RollupDelta, Rollups, plan_reprice, token_columns};
use crate::summary::{self, KeyKind, KeyPart, Names, RawRow};
use crate::usage::{
    InsertOutcome, PricedEvent, REPRICE_CHUNK, RepriceOutcome, RepriceScope, SummaryQuery, UNPRICED_MODELS_SQL,
    UnpricedModel, UsageStore, delete_superseded_sql, select_reprice,
};

use tokio::sync::oneshot;

use super::insert_queue::QueuedInsert;
use super::{SqliteStore, Writer};

impl Writer {
    fn name_id(
        names: &mut NameCache,
        tx: &Transaction<'_>,
        kind: NameKind,
        name: Option<&str>,
    ) -> Result<i64, StoreError> {
        let Some(name) = name else { return Ok(0) };
        if let Some(id) = names.get(kind, name) {
            return Ok(id);
        }
        let (table, column) = (kind.table(), kind.column());
        let existing: Option<i64> = tx
            .prepare_cached(&format!("SELECT id FROM {table} WHERE {column} = ?1"))?
            .query_row([name], |r| r.get(0))
            .optional()?;
        let id = match existing {
            Some(id) => id,
            None if kind == NameKind::PriceVersion => {
                tx.execute(&format!("INSERT INTO {table} ({column}) VALUES (?1)"), [name])?;
                tx.last_insert_rowid()
            }
            None => {
                tx.execute(
                    &format!("INSERT INTO {table} ({column}, created_at) VALUES (?1, ?2)"),
                    params![name, now_micros().0],
                )?;
                tx.last_insert_rowid()
            }
        };
        names.insert(kind, name, id);
        Ok(id)
    }

    /// Stores batches in one transaction, each as if alone after the ones before it; their
    /// outcomes in order. Any failure rolls back all of them.
    fn insert_usage(&mut self, batches: &[Batch<'_>]) -> Result<Vec<InsertOutcome>, StoreError> {
        let Writer { conn, names, .. } = self;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(batches.len());
        let mut superseded = Vec::new();
        let mut rollups = Rollups::default();
        {
            let [many_sql, one_sql] = event_inserts();
            let mut statements = EventInserts {
                many: tx.prepare_cached(many_sql)?,
                one: tx.prepare_cached(one_sql)?,
            };
            for batch in batches {
                let before = superseded.len();
                let mut outcome =
                    Self::insert_batch(names, &tx, &mut statements, batch, &mut rollups, &mut superseded)?;
                outcome.superseded = (superseded.len() - before) as u64;
                outcomes.push(outcome);
            }
        }
        for earlier in &superseded {
            earlier.remove_from(&mut rollups);
        }
        apply_rollups(&tx, &rollups)?;
        tx.commit()?;
        Ok(outcomes)
    }

    /// Inserts one batch's new events, adding them to `rollups` and the records they replace
    /// to `superseded`.
    fn insert_batch<'e>(
        names: &mut NameCache,
        tx: &Transaction<'_>,
        statements: &mut EventInserts<'_>,
        batch: &Batch<'e>,
        rollups: &mut Rollups<'e>,
        superseded: &mut Vec<EventRow>,
    ) -> Result<InsertOutcome, StoreError> {
        let shared = SharedColumns {
            received_at: now_micros().0,
            version_id: Self::name_id(names, tx, NameKind::PriceVersion, Some(batch.price_version))?,
        };
        let EventInserts { many, one } = statements;
        let mut outcome = InsertOutcome::default();
        let mut answered_messages = Vec::new();
        let mut pending: Vec<EventRowValues<'_>> = Vec::with_capacity(INSERT_ROWS);
        // The gateway's events first: its record of a call replaces another source's record
        // of it and is never replaced by one, within a batch as across batches.
        for from_gateway in [true, false] {
            let part = batch
                .events
                .iter()
                .filter(|p| (p.event.source == Source::Gateway) == from_gateway);
            for priced in part {
                let e = &priced.event;
                if let Some(response) = e.call.as_ref().and_then(|c| c.response_id.as_deref()) {
                    answered_messages.push(usage::message_call_id(response));
                }
                if e.source != Source::Gateway
                    && let Some(message) = usage::message_of_call_id(&e.id)
                    && gateway_answered(tx, message)?
                {
                    outcome.duplicates += 1;
                    continue;
                }
                let a = &e.attribution;
                let row = EventRowValues {
                    priced,
                    dims: DimIds {
                        user: Self::name_id(names, tx, NameKind::User, Some(&a.user))?,
                        team: Self::name_id(names, tx, NameKind::Team, a.team.as_deref())?,
                        project: Self::name_id(names, tx, NameKind::Project, a.project.as_deref())?,
                        agent: Self::name_id(names, tx, NameKind::Agent, a.agent.as_deref())?,
                    },
                };
                if e.source == Source::Gateway || e.content.is_some() || e.call.is_some() {
                    // One at a time: its seq keys its content and call rows, and the gateway's
                    // record may replace an earlier one. Events before it go first, so that of
                    // two with one id the first is kept.
                    insert_singly(one, shared, &pending, rollups, &mut outcome)?;
                    pending.clear();
                    insert_with_details(tx, one, shared, &row, rollups, &mut outcome, superseded)?;
                    continue;
                }
                pending.push(row);
                if pending.len() == INSERT_ROWS {
                    insert_many(tx, many, shared, &pending, rollups, &mut outcome)?;
                    pending.clear();
                }
            }
            insert_singly(one, shared, &pending, rollups, &mut outcome)?;
            pending.clear();
            // Telemetry or logs that knew these calls only by their message ids: one statement
            // for the batch (one per call cost a fifth of the gateway's write rate), none when
            // no event is keyed by a message id at all.
            if from_gateway && !answered_messages.is_empty() && tx.prepare_cached(ANY_MESSAGE_KEYED)?.exists([])? {
                let ids = serde_json::Value::from(std::mem::take(&mut answered_messages)).to_string();
                superseded.extend(take_superseded(tx, "IN (SELECT value FROM json_each($1))", &ids)?);
            }
        }
        Ok(outcome)
    }

    /// Stores a group of queued batches together and answers each caller; when that fails,
    /// each batch alone, so that one batch's failure is its own.
    fn store_queued(&mut self, group: Vec<QueuedInsert>) {
        let batches: Vec<Batch<'_>> = group
            .iter()
            .map(|q| Batch {
                events: &q.events,
                price_version: &q.price_version,
            })
            .collect();
        let results = match self.insert_usage(&batches) {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(error) if batches.len() == 1 => {
                self.names.clear();
                vec![Err(error)]
            }
            Err(_) => {
                self.names.clear();
                let alone = |writer: &mut Writer, batch: &Batch<'_>| {
                    let outcome = writer.insert_usage(std::slice::from_ref(batch));
                    if outcome.is_err() {
                        writer.names.clear();
                    }
                    outcome.map(|mut outcomes| outcomes.pop().unwrap_or_default())
                };
                batches.iter().map(|batch| alone(self, batch)).collect::<Vec<_>>()
            }
        };
        drop(batches);
        for (queued, result) in group.into_iter().zip(results) {
            // The caller may have stopped waiting (its events are stored all the same).
            let _ = queued.done.send(result.map(|outcome| (outcome, queued.events)));
        }
    }

    fn reprice(&mut self, prices: &PriceTable, scope: RepriceScope) -> Result<RepriceOutcome, StoreError> {
        let Writer { conn, names, .. } = self;
        let mut outcome = RepriceOutcome::default();
        let mut after_seq = 0i64;
        loop {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let version_id = Self::name_id(names, &tx, NameKind::PriceVersion, Some(prices.version()))?;
            let filter = match scope {
                RepriceScope::Unpriced => "AND cost_nanos IS NULL",
                RepriceScope::All => "",
            };
            let rows: Vec<EventRow> = tx
                .prepare_cached(&format!(
                    "{} WHERE seq > ?1 {filter} ORDER BY seq LIMIT ?2",
                    select_reprice()
                ))?
                .query_map(params![after_seq, REPRICE_CHUNK], read_event_row)?
                .collect::<Result<_, _>>()?;
            let Some(last) = rows.last() else { break };
            after_seq = last.seq;
            let (changes, rollups) = plan_reprice(&rows, prices, &mut outcome);
            {
                let mut update = tx.prepare_cached(
                    "UPDATE usage_events SET cost_nanos = ?1, long_context = ?2, price_version_id = ?3 WHERE seq = ?4",
                )?;
                for change in &changes {
                    update.execute(params![change.cost_nanos, change.long_context, version_id, change.seq])?;
                }
            }
            apply_rollups(&tx, &rollups)?;
            tx.commit()?;
        }
        Ok(outcome)
    }
}

/// Event rows per multi-row `INSERT`: a statement per event opened five cursors, started the VM
/// and reset it for each (64 rows a statement take the writer 7 % fewer instructions, see
/// BENCHMARKS.md).
const INSERT_ROWS: usize = 64;

/// The event columns, in the order [`bind_event`] binds them; `received_at` and
/// `price_version_id` are the same for a whole batch and bound once per statement.
const EVENT_COLUMNS: [&str; 28] = [
    "event_id",
    "ts",
    "user_id",
    "team_id",
    "project_id",
    "agent_id",
    "task",
    "session",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "long_context",
    "source",
    "estimated",
    "finish_reason",
    "prompt_simhash",
    "completion_simhash",
    "completion_compress_permille",
    "prompt_chars",
    "completion_chars",
    "received_at",
    "price_version_id",
];

/// Parameters bound once per statement: `?1` received at, `?2` price version.
const SHARED_PARAMS: usize = 2;

/// Parameters of one event row, after the shared ones.
const ROW_PARAMS: usize = EVENT_COLUMNS.len() - SHARED_PARAMS;

/// `INSERT`s of [`INSERT_ROWS`] events and of one, built once per process.
fn event_inserts() -> &'static [String; 2] {
    static INSERTS: OnceLock<[String; 2]> = OnceLock::new();
    INSERTS.get_or_init(|| {
        let sql = |rows: usize| {
            let values: Vec<String> = (0..rows)
                .map(|row| {
                    let own = (1..=ROW_PARAMS).map(|i| format!("?{}", SHARED_PARAMS + row * ROW_PARAMS + i));
                    let params: Vec<String> = own.chain(["?1".to_owned(), "?2".to_owned()]).collect();
                    format!("({})", params.join(", "))
                })
                .collect();
            format!(
                "INSERT INTO usage_events ({}) VALUES {} ON CONFLICT (event_id) DO NOTHING",
                EVENT_COLUMNS.join(", "),
                values.join(", ")
            )
        };
        [sql(INSERT_ROWS), sql(1)]
    })
}

/// One caller's events in a group stored together.
struct Batch<'e> {
    events: &'e [PricedEvent],
    price_version: &'e str,
}

/// The multi-row and one-row event inserts, prepared once per transaction.
struct EventInserts<'c> {
    many: CachedStatement<'c>,
    one: CachedStatement<'c>,
}

/// What every event of a batch stores alike.
#[derive(Clone, Copy)]
struct SharedColumns {
    received_at: i64,
    version_id: i64,
}

/// An event about to be inserted, with its attribution's ids.
struct EventRowValues<'e> {
    priced: &'e PricedEvent,
    dims: DimIds,
}

impl<'e> EventRowValues<'e> {
    fn cost(&self) -> Option<i64> {
        self.priced.cost.map(|c| c.total().0)
    }

    /// Counts it as stored and adds it to the batch's rollups.
    fn stored(&self, rollups: &mut Rollups<'e>, outcome: &mut InsertOutcome) {
        let e: &'e UsageEvent = &self.priced.event;
        let cost = self.cost();
        outcome.inserted += 1;
        outcome.unpriced += u64::from(cost.is_none());
        rollups.add(
            e.timestamp,
            self.dims,
            e.provider.as_deref().unwrap_or(""),
            &e.model,
            &RollupDelta::of_event(&e.tokens, cost, e.estimated),
        );
    }
}

/// Binds an event's own columns from parameter `first` on, in [`EVENT_COLUMNS`] order, with
/// typed binds one value at a time (binding through `&dyn ToSql` slices cost more). Absent
/// values are bound as NULL: a statement's earlier bindings stay until replaced.
fn bind_event(stmt: &mut Statement<'_>, first: usize, row: &EventRowValues<'_>) -> rusqlite::Result<()> {
    let e = &row.priced.event;
    let a = &e.attribution;
    let fp = &e.fingerprints;
    let texts = |stmt: &mut Statement<'_>, at: usize, values: &[Option<&str>]| {
        values
            .iter()
            .enumerate()
            .try_for_each(|(i, value)| stmt.raw_bind_parameter(at + i, value))
    };
    let numbers = |stmt: &mut Statement<'_>, at: usize, values: &[Option<i64>]| {
        values
            .iter()
            .enumerate()
            .try_for_each(|(i, value)| stmt.raw_bind_parameter(at + i, value))
    };
    let tokens = token_columns(&e.tokens);
    let long_context = row.priced.cost.is_some_and(|c| c.long_context);
    texts(stmt, first, &[Some(&e.id)])?;
    numbers(
        stmt,
        first + 1,
        &[
            Some(e.timestamp.0),
            Some(row.dims.user),
            Some(row.dims.team),
            Some(row.dims.project),
            Some(row.dims.agent),
        ],
    )?;
    texts(
        stmt,
        first + 6,
        &[
            a.task.as_deref(),
            a.session.as_deref(),
            Some(e.provider.as_deref().unwrap_or("")),
            Some(&e.model),
        ],
    )?;
    numbers(
        stmt,
        first + 10,
        &[
            Some(tokens[0]),
            Some(tokens[1]),
            Some(tokens[2]),
            Some(tokens[3]),
            Some(tokens[4]),
            Some(tokens[5]),
            row.cost(),
            Some(i64::from(long_context)),
        ],
    )?;
    texts(stmt, first + 18, &[Some(e.source.as_str())])?;
    numbers(stmt, first + 19, &[Some(i64::from(e.estimated))])?;
    texts(stmt, first + 20, &[e.finish_reason.as_deref()])?;
    numbers(
        stmt,
        first + 21,
        &[
            fp.prompt_simhash.map(|h| h as i64),
            fp.completion_simhash.map(|h| h as i64),
            fp.completion_compress_permille.map(i64::from),
            fp.prompt_chars.map(|n| n as i64),
            fp.completion_chars.map(|n| n as i64),
        ],
    )
}

fn bind_shared(stmt: &mut Statement<'_>, shared: SharedColumns) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(1, shared.received_at)?;
    stmt.raw_bind_parameter(2, shared.version_id)
}

/// Inserts [`INSERT_ROWS`] events without details in one statement. When some were already
/// stored (or repeated), the rows this statement added tell which were new.
fn insert_many<'e>(
    tx: &Transaction<'_>,
    many: &mut Statement<'_>,
    shared: SharedColumns,
    rows: &[EventRowValues<'e>],
    rollups: &mut Rollups<'e>,
    outcome: &mut InsertOutcome,
) -> Result<(), StoreError> {
    let last_before: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM usage_events")?
        .query_row([], |r| r.get(0))?;
    bind_shared(many, shared)?;
    for (n, row) in rows.iter().enumerate() {
        bind_event(many, SHARED_PARAMS + n * ROW_PARAMS + 1, row)?;
    }
    let inserted = many.raw_execute()?;
    if inserted == rows.len() {
        for row in rows {
            row.stored(rollups, outcome);
        }
        return Ok(());
    }
    let mut new: HashSet<String> = tx
        .prepare_cached("SELECT event_id FROM usage_events WHERE seq > ?1")?
        .query_map([last_before], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for row in rows {
        // Of two events with one id, the first was inserted.
        if new.remove(&row.priced.event.id) {
            row.stored(rollups, outcome);
        } else {
            outcome.duplicates += 1;
        }
    }
    Ok(())
}

/// Inserts events without details one statement each (the rest of a batch after its full
/// [`insert_many`] statements).
fn insert_singly<'e>(
    one: &mut Statement<'_>,
    shared: SharedColumns,
    rows: &[EventRowValues<'e>],
    rollups: &mut Rollups<'e>,
    outcome: &mut InsertOutcome,
) -> Result<(), StoreError> {
    for row in rows {
        bind_shared(one, shared)?;
        bind_event(one, SHARED_PARAMS + 1, row)?;
        if one.raw_execute()? == 0 {
            outcome.duplicates += 1;
        } else {
            row.stored(rollups, outcome);
        }
    }
    Ok(())
}

/// Inserts one event with its content and call rows; the gateway's record replaces another
/// source's record of the same call.
fn insert_with_details<'e>(
    tx: &Transaction<'_>,
    one: &mut Statement<'_>,
    shared: SharedColumns,
    row: &EventRowValues<'e>,
    rollups: &mut Rollups<'e>,
    outcome: &mut InsertOutcome,
    superseded: &mut Vec<EventRow>,
) -> Result<(), StoreError> {
    let e = &row.priced.event;
    bind_shared(one, shared)?;
    bind_event(one, SHARED_PARAMS + 1, row)?;
    let mut changed = one.raw_execute()?;
    if changed == 0
        && e.source == Source::Gateway
        && let Some(earlier) = take_superseded(tx, "= $1", &e.id)?.pop()
    {
        superseded.push(earlier);
        changed = one.raw_execute()?;
    }
    if changed == 0 {
        outcome.duplicates += 1;
        return Ok(());
    }
    row.stored(rollups, outcome);
    let seq = tx.last_insert_rowid();
    if let Some(content) = &e.content {
        tx.prepare_cached("INSERT INTO usage_content (seq, prompt, completion) VALUES (?1, ?2, ?3)")?
            .execute(params![seq, content.prompt, content.completion])?;
    }
    if let Some(call) = &e.call {
        tx.prepare_cached(INSERT_CALL)?.execute(params![
            seq,
            call.key_id,
            call.endpoint,
            call.status,
            call.stream,
            call.latency_micros as i64,
            call.ttft_micros.map(|t| t as i64),
            call.max_tokens.map(|t| t as i64),
            call.upstream_request_id,
            call.response_id,
            call.client_disconnected,
        ])?;
    }
    Ok(())
}

/// Whether any event is keyed by a message id (`msg:…`): a range of the unique index on
/// `event_id`, where a partial index cost every insert the evaluation of its `LIKE`.
const ANY_MESSAGE_KEYED: &str = "SELECT 1 FROM usage_events WHERE event_id >= 'msg:' AND event_id < 'msg;' LIMIT 1";

/// Whether the gateway stored a call whose response had this message id.
fn gateway_answered(tx: &Transaction<'_>, message_id: &str) -> Result<bool, StoreError> {
    let mut lookup = tx.prepare_cached("SELECT 1 FROM gateway_calls WHERE response_id = ?1 LIMIT 1")?;
    Ok(lookup.exists([message_id])?)
}

/// Deletes other sources' records of calls the gateway recorded: those whose event id matches
/// `filter` with `$1` bound to `ids`.
fn take_superseded(tx: &Transaction<'_>, filter: &str, ids: &str) -> Result<Vec<EventRow>, StoreError> {
    let earlier: Vec<EventRow> = tx
        .prepare_cached(&delete_superseded_sql(filter))?
        .query_map([ids], read_event_row)?
        .collect::<Result<_, _>>()?;
    for row in &earlier {
        tx.prepare_cached("DELETE FROM usage_content WHERE seq = ?1")?
            .execute([row.seq])?;
    }
    Ok(earlier)
}

const INSERT_CALL: &str = "INSERT INTO gateway_calls (seq, key_id, endpoint, status, stream, latency_micros, \
    ttft_micros, max_tokens, upstream_request_id, response_id, client_disconnected) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

fn read_event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    let count = |i: usize| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
    Ok(EventRow {
        seq: r.get(0)?,
        ts: Micros(r.get(1)?),
        dims: DimIds {
            user: r.get(2)?,
            team: r.get(3)?,
            project: r.get(4)?,
            agent: r.get(5)?,
        },
        provider: r.get(6)?,
        model: r.get(7)?,
        tokens: TokenCounts {
            input: count(8)?,
            output: count(9)?,
            cache_read: count(10)?,
            cache_write_5m: count(11)?,
            cache_write_1h: count(12)?,
            reasoning: count(13)?,
        },
        cost: r.get(14)?,
        estimated: r.get(15)?,
    })
}

/// Rollup rows per upsert statement: one statement per row spent as much in statement
/// overhead (binding, reset, VM start) as in the B-tree (see BENCHMARKS.md).
const UPSERT_ROWS: usize = 64;

/// Each rollup table's upserts of [`UPSERT_ROWS`] rows and of one row, in the order of
/// [`rollup::TABLES`] (formatting the long one for every batch took 2 % of ingest).
fn upserts() -> &'static [[String; 2]; 5] {
    static UPSERTS: OnceLock<[[String; 2]; 5]> = OnceLock::new();
    UPSERTS.get_or_init(|| {
        rollup::TABLES.map(|(table, ..)| {
            let sql = |n| rollup::rollup_upsert_sql(table, rollup::RollupRows::Values(n));
            [sql(UPSERT_ROWS), sql(1)]
        })
    })
}

fn apply_rollups(tx: &Transaction<'_>, rollups: &Rollups<'_>) -> Result<(), StoreError> {
    for ((table, rows), [many, one]) in rollups.tables().into_iter().zip(upserts()) {
        let chunks = rows.chunks_exact(UPSERT_ROWS);
        let rest = chunks.remainder();
        for (n, chunk) in chunks.map(|c| (UPSERT_ROWS, c)).chain(rest.chunks(1).map(|c| (1, c))) {
            let mut upsert = tx.prepare_cached(if n == 1 { one } else { many })?;
            // Typed binds, one value at a time: binding through `&dyn ToSql` slices took a tenth
            // of ingest CPU (events and rollups together).
            let mut column = 0;
            for (key, delta) in chunk {
                for id in key.ids() {
                    column += 1;
                    upsert.raw_bind_parameter(column, id)?;
                }
                for name in [key.provider, key.model] {
                    column += 1;
                    upsert.raw_bind_parameter(column, name)?;
                }
                for value in delta.values() {
                    column += 1;
                    upsert.raw_bind_parameter(column, value)?;
                }
            }
            upsert.raw_execute()?;
        }
        for (key, _) in rows.iter().filter(|(_, d)| d.requests < 0) {
            tx.prepare_cached(&rollup::prune_rollup_sql(table))?.execute(params![
                key.bucket,
                key.dims.user,
                key.dims.team,
                key.dims.project,
                key.dims.agent,
                key.provider,
                key.model
            ])?;
        }
    }
    Ok(())
}

fn read_summary_rows(
    conn: &Connection,
    sql: &str,
    from: i64,
    to: i64,
    group_by: &[Dimension],
) -> Result<Vec<RawRow>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![from, to], |r| {
        let mut key = Vec::with_capacity(group_by.len());
        for (i, dim) in group_by.iter().enumerate() {
            key.push(match summary::key_kind(*dim) {
                KeyKind::Id => KeyPart::Id(r.get(i)?),
                KeyKind::Text => KeyPart::Text(r.get(i)?),
                KeyKind::Day => KeyPart::Day(r.get(i)?),
            });
        }
        let mut sums = [0i64; 10];
        for (j, slot) in sums.iter_mut().enumerate() {
            *slot = r.get(group_by.len() + j)?;
        }
        Ok(RawRow { key, sums })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn read_names(conn: &Connection, group_by: &[Dimension]) -> Result<Names, StoreError> {
    let mut names = Names::new();
    for dim in group_by {
        if let Some(table) = summary::name_table(*dim) {
            let mut stmt = conn.prepare_cached(&format!("SELECT id, name FROM {table}"))?;
            let map = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            names.insert(*dim, map);
        }
    }
    Ok(names)
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn insert_usage(&self, events: Vec<PricedEvent>, price_version: &str) -> Result<InsertOutcome, StoreError> {
        let (done, stored) = oneshot::channel();
        let queue = self.inner.inserts.clone();
        queue.push(QueuedInsert {
            events,
            price_version: price_version.to_owned(),
            done,
        });
        self.write_bulk(move |writer| {
            let group = queue.take_group();
            if !group.is_empty() {
                writer.store_queued(group);
            }
            Ok(())
        })
        .await?;
        let (outcome, events) = stored
            .await
            .map_err(|_| StoreError::Worker("a SQLite write panicked".into()))??;
        // The events come back to be freed on this thread: freeing them took the writer 2 % of
        // its time, and memory is freed faster by the thread that allocated it.
        drop(events);
        Ok(outcome)
    }

    async fn usage_summary(&self, query: &SummaryQuery) -> Result<Vec<SummaryRow>, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            // One read transaction so every segment sees the same snapshot.
            conn.execute_batch("BEGIN DEFERRED")?;
            let mut rows = Vec::new();
            let mut result = Ok(());
            for segment in plan_segments(query.from, query.to) {
                let sql = summary::segment_sql(segment.granularity, &query.group_by);
                match read_summary_rows(conn, &sql, segment.from.0, segment.to.0, &query.group_by) {
                    Ok(mut part) => rows.append(&mut part),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            let names = result.and_then(|()| read_names(conn, &query.group_by));
            conn.execute_batch("COMMIT")?;
            names.map(|names| summary::merge(rows, &query.group_by, &names))
        })
        .await
    }

    async fn unpriced_models(&self) -> Result<Vec<UnpricedModel>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(UNPRICED_MODELS_SQL)?;
            let rows = stmt.query_map([], |r| {
                let provider: String = r.get(0)?;
                Ok(UnpricedModel {
                    provider: (!provider.is_empty()).then_some(provider),
                    model: r.get(1)?,
                    events: r.get::<_, i64>(2)? as u64,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn reprice(&self, prices: &PriceTable, scope: RepriceScope) -> Result<RepriceOutcome, StoreError> {
        let prices = prices.clone();
        self.write_bulk(move |w| w.reprice(&prices, scope)).await
    }

    async fn event_count(&self) -> Result<u64, StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM usage_events", [], |r| r.get::<_, i64>(0))? as u64))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use goodhart_core::usage::{Attribution, UsageEvent};

    use super::*;

    fn events(ids: impl IntoIterator<Item = u32>) -> Vec<PricedEvent> {
        ids.into_iter()
            .map(|i| PricedEvent {
                event: UsageEvent {
                    id: if i == 0 { "poison".into() } else { format!("e{i}") },
                    timestamp: Micros(1_793_491_200_000_000 + i64::from(i) * 1_000_000),
                    attribution: Attribution {
                        user: format!("user-{}", i % 3),
                        ..Attribution::default()
                    },
                    provider: None,
                    model: "m".into(),
                    tokens: TokenCounts {
                        input: u64::from(i),
                        ..TokenCounts::default()
                    },
                    finish_reason: None,
                    fingerprints: Default::default(),
                    content: None,
                    source: Source::Api,
                    estimated: false,
                    call: None,
                },
                cost: None,
            })
            .collect()
    }

    /// Holds the writer while `batches` are queued behind it (so that it finds them all waiting),
    /// then returns their outcomes.
    #[expect(clippy::disallowed_methods, reason = "the test awaits every task it spawns")]
    async fn stored_together(
        store: &Arc<SqliteStore>,
        batches: Vec<Vec<PricedEvent>>,
    ) -> Vec<Result<InsertOutcome, StoreError>> {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (holding, writer_held) = tokio::sync::oneshot::channel();
        let blocker = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .write(move |_| {
                        let _ = holding.send(());
                        let _ = held.recv();
                        Ok(())
                    })
                    .await
            }
        });
        // The batches are sent only once the writer is held: the bulk lane must not store the
        // first before the others are queued.
        writer_held.await.unwrap();
        let count = batches.len();
        let callers: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                let store = store.clone();
                tokio::spawn(async move { store.insert_usage(batch, "v1").await })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while store.inner.inserts.len() < count {
            assert!(std::time::Instant::now() < deadline, "the batches never all queued");
            tokio::task::yield_now().await;
        }
        drop(release);
        blocker.await.unwrap().unwrap();
        let mut outcomes = Vec::new();
        for caller in callers {
            outcomes.push(caller.await.unwrap());
        }
        outcomes
    }

    async fn requests_stored(store: &SqliteStore) -> i64 {
        store
            .read(|conn| Ok(conn.query_row("SELECT COALESCE(SUM(requests), 0) FROM usage_daily", [], |r| r.get(0))?))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn queued_batches_are_stored_together_each_with_its_own_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("g.db")).await.unwrap());
        let outcomes = stored_together(&store, vec![events(1..=100), events(51..=150), events([1, 2, 151])]).await;
        let counts: Vec<(u64, u64)> = outcomes
            .into_iter()
            .map(|o| o.map(|o| (o.inserted, o.duplicates)).unwrap())
            .collect();
        assert_eq!(counts, [(100, 0), (50, 50), (1, 2)]);
        assert_eq!(store.event_count().await.unwrap(), 151);
        assert_eq!(requests_stored(&store).await, 151);
    }

    #[tokio::test]
    async fn a_batch_that_fails_in_a_group_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("g.db")).await.unwrap());
        store
            .write(|w| {
                w.conn.execute_batch(
                    "CREATE TRIGGER poison BEFORE INSERT ON usage_events WHEN NEW.event_id = 'poison' \
                     BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
                )?;
                Ok(())
            })
            .await
            .unwrap();
        let outcomes = stored_together(
            &store,
            vec![
                events(1..=100),
                events(101..=200).into_iter().chain(events([0])).collect(),
                events(201..=300),
            ],
        )
        .await;
        let inserted: Vec<Option<u64>> = outcomes.iter().map(|o| o.as_ref().ok().map(|o| o.inserted)).collect();
        assert_eq!(inserted, [Some(100), None, Some(100)]);
        assert_eq!(store.event_count().await.unwrap(), 200);
        assert_eq!(requests_stored(&store).await, 200);
    }
}
