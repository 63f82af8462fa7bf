//! PostgreSQL: usage events (one insert of the batch's columns as arrays that says which ids
//! were new; the gateway's record replacing other sources' records of the same call), their
//! rollups (upserted in key order with `unnest`), summaries and repricing.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use goodhart_core::Micros;
use goodhart_core::pricing::PriceTable;
use goodhart_core::report::{SummaryRow, plan_segments};
use goodhart_core::usage::{self, CallMeta, Source, TokenCounts};
use tokio_postgres::types::ToSql;

use crate::clock::now_micros;
use crate::error::StoreError;
use crate::rollup::{self, DimIds, EventRow, NameKind, RollupDelta, Rollups, plan_reprice, token_columns};
use crate::summary::{self, KeyKind, KeyPart, Names, RawRow};
use crate::usage::{
    ANY_MESSAGE_KEYED_SQL, InsertOutcome, PricedEvent, REPRICE_CHUNK, RepriceOutcome, RepriceScope, SummaryQuery,
    UNPRICED_MODELS_SQL, UnpricedModel, UsageStore, delete_superseded_sql, select_reprice,
};

use super::PostgresStore;

/// Hash maps looked up once or more per event of a batch, keyed with foldhash (SipHash in the
/// maps of names and first ids was 2.5 % of the ingest process's CPU samples).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// Ids of the names a batch attributes its events to, by name.
type NameIds<'n> = FastMap<&'n str, i64>;
/// The position of the first event of each id in a batch.
type FirstIndex<'a> = FastMap<&'a str, usize>;

impl PostgresStore {
    /// Ids for every name of `kind` in `names`, creating the missing ones inside `tx`.
    /// New ids go to `fresh` and reach the shared cache only after the commit.
    async fn name_ids<'n>(
        &self,
        tx: &Transaction<'_>,
        kind: NameKind,
        names: impl IntoIterator<Item = &'n str>,
        fresh: &mut Vec<(NameKind, String, i64)>,
    ) -> Result<NameIds<'n>, StoreError> {
        let mut ids = NameIds::default();
        let mut missing: Vec<&str> = Vec::new();
        {
            let cache = self.cached_names();
            for name in names {
                if ids.contains_key(name) {
                    continue;
                }
                match cache.get(kind, name) {
                    Some(id) => {
                        ids.insert(name, id);
                    }
                    None if !missing.contains(&name) => missing.push(name),
                    None => {}
                }
            }
        }
        if missing.is_empty() {
            return Ok(ids);
        }
        missing.sort_unstable();
        let (table, column) = (kind.table(), kind.column());
        if kind == NameKind::PriceVersion {
            tx.execute(
                &format!("INSERT INTO {table} ({column}) SELECT unnest($1::text[]) ON CONFLICT ({column}) DO NOTHING"),
                &[&missing],
            )
            .await?;
        } else {
            tx.execute(
                &format!(
                    "INSERT INTO {table} ({column}, created_at) SELECT unnest($1::text[]), $2 \
                     ON CONFLICT ({column}) DO NOTHING"
                ),
                &[&missing, &now_micros().0],
            )
            .await?;
        }
        for row in tx
            .query(
                &format!("SELECT id, {column} FROM {table} WHERE {column} = ANY($1)"),
                &[&missing],
            )
            .await?
        {
            let (id, name): (i64, String) = (row.get(0), row.get(1));
            if let Ok(at) = missing.binary_search(&name.as_str()) {
                ids.insert(missing[at], id);
            }
            fresh.push((kind, name, id));
        }
        Ok(ids)
    }

    async fn insert_batch(
        &self,
        tx: &Transaction<'_>,
        events: &[PricedEvent],
        version: &str,
        fresh: &mut Vec<(NameKind, String, i64)>,
    ) -> Result<InsertOutcome, StoreError> {
        let version_id = self.name_ids(tx, NameKind::PriceVersion, [version], fresh).await?[version];
        let attr = |f: fn(&PricedEvent) -> Option<&str>| events.iter().filter_map(f);
        let users = self
            .name_ids(
                tx,
                NameKind::User,
                attr(|e| Some(e.event.attribution.user.as_str())),
                fresh,
            )
            .await?;
        let teams = self
            .name_ids(tx, NameKind::Team, attr(|e| e.event.attribution.team.as_deref()), fresh)
            .await?;
        let projects = self
            .name_ids(
                tx,
                NameKind::Project,
                attr(|e| e.event.attribution.project.as_deref()),
                fresh,
            )
            .await?;
        let agents = self
            .name_ids(
                tx,
                NameKind::Agent,
                attr(|e| e.event.attribution.agent.as_deref()),
                fresh,
            )
            .await?;
        let id_of = |map: &NameIds, name: Option<&String>| name.map_or(0, |n| map[n.as_str()]);
        let dims: Vec<DimIds> = events
            .iter()
            .map(|p| {
                let a = &p.event.attribution;
                DimIds {
                    user: users[a.user.as_str()],
                    team: id_of(&teams, a.team.as_ref()),
                    project: id_of(&projects, a.project.as_ref()),
                    agent: id_of(&agents, a.agent.as_ref()),
                }
            })
            .collect();

        let answered = answered_messages(tx, events).await?;
        // The first event of each id (a later one would conflict with it), less other sources'
        // records of calls whose response the gateway already stored: duplicates of its record.
        let mut first_index = FirstIndex::with_capacity_and_hasher(events.len(), Default::default());
        let mut rows = Vec::with_capacity(events.len());
        for (i, p) in events.iter().enumerate() {
            if let Entry::Vacant(first) = first_index.entry(p.event.id.as_str()) {
                first.insert(i);
                if p.event.source == Source::Gateway || !answered.contains(p.event.id.as_str()) {
                    rows.push(i);
                }
            }
        }
        let batch = Batch {
            events,
            dims: &dims,
            version_id,
            received_at: now_micros().0,
        };
        let mut inserted = batch.insert(tx, &rows).await?;
        let superseded = replace_earlier_records(tx, &batch, &first_index, &mut inserted).await?;

        let mut rollups = Rollups::default();
        for earlier in &superseded {
            earlier.remove_from(&mut rollups);
        }
        let mut unpriced = 0;
        let mut calls = CallColumns::default();
        for row in &inserted {
            let (seq, event_id): (i64, &str) = (row.get(0), row.get(1));
            let i = first_index[event_id];
            let (priced, dims) = (&events[i], dims[i]);
            let e = &priced.event;
            if let Some(content) = &e.content {
                let insert = tx
                    .prepare_cached("INSERT INTO usage_content (seq, prompt, completion) VALUES ($1, $2, $3)")
                    .await?;
                tx.execute(&insert, &[&seq, &content.prompt, &content.completion])
                    .await?;
            }
            if let Some(call) = &e.call {
                calls.push(seq, call);
            }
            let cost = priced.cost.map(|c| c.total().0);
            unpriced += u64::from(cost.is_none());
            let delta = RollupDelta::of_event(&e.tokens, cost, e.estimated);
            rollups.add(e.timestamp, dims, e.provider.as_deref().unwrap_or(""), &e.model, &delta);
        }
        apply_rollups(tx, &rollups).await?;
        calls.insert(tx).await?;
        let inserted = inserted.len() as u64;
        Ok(InsertOutcome {
            inserted,
            duplicates: events.len() as u64 - inserted,
            unpriced,
            superseded: superseded.len() as u64,
        })
    }
}

/// The advisory lock that orders the batches matching calls by message id, which no unique key
/// does: without it a gateway batch and a batch of telemetry naming the same response could each
/// miss the other's uncommitted record and both be stored. Gateway batches share it; a batch
/// with events keyed by message id holds it alone (rare: GenAI spans, old log lines).
const MESSAGE_MATCHING_LOCK: i64 = 0x676f_6f64_6861_7274; // "goodhart"

async fn lock_message_matching(tx: &Transaction<'_>, events: &[PricedEvent]) -> Result<(), StoreError> {
    let by_message = events
        .iter()
        .any(|p| p.event.source != Source::Gateway && usage::message_of_call_id(&p.event.id).is_some());
    let lock = if by_message {
        "SELECT pg_advisory_xact_lock($1)"
    } else if events.iter().any(|p| p.event.source == Source::Gateway) {
        "SELECT pg_advisory_xact_lock_shared($1)"
    } else {
        return Ok(());
    };
    tx.execute(lock, &[&MESSAGE_MATCHING_LOCK]).await?;
    Ok(())
}

/// One part of a batch as `usage_events` stores it: the events with their attribution ids.
struct Batch<'a> {
    events: &'a [PricedEvent],
    dims: &'a [DimIds],
    version_id: i64,
    received_at: i64,
}

impl Batch<'_> {
    /// Inserts the events at `rows` (in that order) whose ids are new: their `seq` and `event_id`.
    /// One statement whatever the number of events: every column is an array unnested in the
    /// select list, row by row in array order. It replaced a `COPY` into a staging table and an
    /// insert from it sorted by position, which took a fifth more of PostgreSQL's instructions
    /// per event (BENCHMARKS.md).
    async fn insert(&self, tx: &Transaction<'_>, rows: &[usize]) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = EventColumns::with_capacity(rows.len());
        for &i in rows {
            c.push(&self.events[i], self.dims[i]);
        }
        let [input, output, cache_read, cache_5m, cache_1h, reasoning] = &c.tokens;
        let [
            prompt_simhash,
            completion_simhash,
            compress,
            prompt_chars,
            completion_chars,
        ] = &c.fingerprints;
        let params: [&(dyn ToSql + Sync); 28] = [
            &c.event_id,
            &c.ts,
            &c.user,
            &c.team,
            &c.project,
            &c.agent,
            &c.task,
            &c.session,
            &c.provider,
            &c.model,
            input,
            output,
            cache_read,
            cache_5m,
            cache_1h,
            reasoning,
            &c.cost_nanos,
            &c.long_context,
            &self.version_id,
            &c.source,
            &c.estimated,
            &c.finish_reason,
            prompt_simhash,
            completion_simhash,
            compress,
            prompt_chars,
            completion_chars,
            &self.received_at,
        ];
        let insert = tx.prepare_cached(&INSERT_EVENTS).await?;
        Ok(tx.query(&insert, &params).await?)
    }
}

/// The insert of [`Batch::insert`]: `EVENT_COLUMNS` in order, each from an array parameter
/// of this type, or a single value for the whole batch (no `[]`).
static INSERT_EVENTS: LazyLock<String> = LazyLock::new(|| {
    const TYPES: [&str; 28] = [
        "text[]", // event_id
        "int8[]", // ts
        "int8[]", "int8[]", "int8[]", "int8[]", // attribution ids
        "text[]", // task
        "text[]", // session
        "text[]", // provider
        "text[]", // model
        "int8[]", "int8[]", "int8[]", "int8[]", "int8[]", "int8[]", // tokens
        "int8[]", // cost_nanos
        "int8[]", // long_context
        "int8",   // price_version_id
        "text[]", // source
        "int8[]", // estimated
        "text[]", // finish_reason
        "int8[]", "int8[]", "int8[]", "int8[]", "int8[]", // fingerprints
        "int8",   // received_at
    ];
    let values: Vec<String> = TYPES
        .iter()
        .enumerate()
        .map(|(i, t)| match t.strip_suffix("[]") {
            Some(_) => format!("unnest(${}::{t})", i + 1),
            None => format!("${}::{t}", i + 1),
        })
        .collect();
    format!(
        "INSERT INTO usage_events ({EVENT_COLUMNS}) SELECT {} ON CONFLICT (event_id) DO NOTHING RETURNING seq, event_id",
        values.join(", ")
    )
});

/// Events of one batch, column by column (the columns of [`INSERT_EVENTS`] that vary by event).
struct EventColumns<'a> {
    event_id: Vec<&'a str>,
    ts: Vec<i64>,
    user: Vec<i64>,
    team: Vec<i64>,
    project: Vec<i64>,
    agent: Vec<i64>,
    task: Vec<Option<&'a str>>,
    session: Vec<Option<&'a str>>,
    provider: Vec<&'a str>,
    model: Vec<&'a str>,
    tokens: [Vec<i64>; 6],
    cost_nanos: Vec<Option<i64>>,
    long_context: Vec<i64>,
    source: Vec<&'a str>,
    estimated: Vec<i64>,
    finish_reason: Vec<Option<&'a str>>,
    fingerprints: [Vec<Option<i64>>; 5],
}

impl<'a> EventColumns<'a> {
    fn with_capacity(n: usize) -> Self {
        EventColumns {
            event_id: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            user: Vec::with_capacity(n),
            team: Vec::with_capacity(n),
            project: Vec::with_capacity(n),
            agent: Vec::with_capacity(n),
            task: Vec::with_capacity(n),
            session: Vec::with_capacity(n),
            provider: Vec::with_capacity(n),
            model: Vec::with_capacity(n),
            tokens: std::array::from_fn(|_| Vec::with_capacity(n)),
            cost_nanos: Vec::with_capacity(n),
            long_context: Vec::with_capacity(n),
            source: Vec::with_capacity(n),
            estimated: Vec::with_capacity(n),
            finish_reason: Vec::with_capacity(n),
            fingerprints: std::array::from_fn(|_| Vec::with_capacity(n)),
        }
    }

    fn push(&mut self, priced: &'a PricedEvent, dims: DimIds) {
        let e = &priced.event;
        self.event_id.push(&e.id);
        self.ts.push(e.timestamp.0);
        self.user.push(dims.user);
        self.team.push(dims.team);
        self.project.push(dims.project);
        self.agent.push(dims.agent);
        self.task.push(e.attribution.task.as_deref());
        self.session.push(e.attribution.session.as_deref());
        self.provider.push(e.provider.as_deref().unwrap_or(""));
        self.model.push(&e.model);
        for (column, value) in self.tokens.iter_mut().zip(token_columns(&e.tokens)) {
            column.push(value);
        }
        self.cost_nanos.push(priced.cost.map(|c| c.total().0));
        self.long_context
            .push(i64::from(priced.cost.is_some_and(|c| c.long_context)));
        self.source.push(e.source.as_str());
        self.estimated.push(i64::from(e.estimated));
        self.finish_reason.push(e.finish_reason.as_deref());
        let fp = &e.fingerprints;
        let fingerprints = [
            fp.prompt_simhash.map(|h| h as i64),
            fp.completion_simhash.map(|h| h as i64),
            fp.completion_compress_permille.map(i64::from),
            fp.prompt_chars.map(|n| n as i64),
            fp.completion_chars.map(|n| n as i64),
        ];
        for (column, value) in self.fingerprints.iter_mut().zip(fingerprints) {
            column.push(value);
        }
    }
}

/// The ids of the events of other sources in `events` that name a call only by a message id the
/// gateway already stored a call's response under: duplicates of the gateway's record.
async fn answered_messages(tx: &Transaction<'_>, events: &[PricedEvent]) -> Result<HashSet<String>, StoreError> {
    let messages: Vec<&str> = events
        .iter()
        .filter(|p| p.event.source != Source::Gateway)
        .filter_map(|p| usage::message_of_call_id(&p.event.id))
        .collect();
    if messages.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(tx
        .query(
            "SELECT DISTINCT response_id FROM gateway_calls WHERE response_id = ANY($1)",
            &[&messages],
        )
        .await?
        .iter()
        .map(|row| usage::message_call_id(row.get(0)))
        .collect())
}

/// Lets the batch's gateway events replace other sources' records of the same calls — by
/// request id (`inserted` missed them: they conflicted) or by the response's message id — and
/// inserts those that conflicted again: the records replaced.
async fn replace_earlier_records(
    tx: &Transaction<'_>,
    batch: &Batch<'_>,
    first_index: &FirstIndex<'_>,
    inserted: &mut Vec<tokio_postgres::Row>,
) -> Result<Vec<EventRow>, StoreError> {
    let events = batch.events;
    // Only the gateway's events replace records (and a batch's parts are of one kind or the other).
    if events.iter().all(|p| p.event.source != Source::Gateway) {
        return Ok(Vec::new());
    }
    let stored: HashSet<&str> = inserted.iter().map(|row| row.get(1)).collect();
    let mut conflicting: Vec<usize> = first_index
        .iter()
        .filter(|&(id, &i)| events[i].event.source == Source::Gateway && !stored.contains(id))
        .map(|(_, &i)| i)
        .collect();
    conflicting.sort_unstable();
    let mut replaceable: Vec<String> = conflicting.iter().map(|&i| events[i].event.id.clone()).collect();
    let responses: Vec<String> = events
        .iter()
        .filter(|p| p.event.source == Source::Gateway)
        .filter_map(|p| p.event.call.as_ref()?.response_id.as_deref())
        .map(usage::message_call_id)
        .collect();
    // Only when some event is keyed by a message id: looking costs a fifth of the write rate.
    if !responses.is_empty() && !tx.query(ANY_MESSAGE_KEYED_SQL, &[]).await?.is_empty() {
        replaceable.extend(responses);
    }
    if replaceable.is_empty() {
        return Ok(Vec::new());
    }
    let superseded: Vec<EventRow> = tx
        .query(&delete_superseded_sql("= ANY($1)"), &[&replaceable])
        .await?
        .iter()
        .map(event_row)
        .collect();
    if !superseded.is_empty() {
        let seqs: Vec<i64> = superseded.iter().map(|row| row.seq).collect();
        tx.execute("DELETE FROM usage_content WHERE seq = ANY($1)", &[&seqs])
            .await?;
        inserted.extend(batch.insert(tx, &conflicting).await?);
    }
    Ok(superseded)
}

/// Gateway call rows of one batch, column by column, for one `unnest` insert.
#[derive(Default)]
struct CallColumns<'a> {
    seq: Vec<i64>,
    key_id: Vec<&'a str>,
    endpoint: Vec<&'a str>,
    status: Vec<i64>,
    stream: Vec<i64>,
    latency_micros: Vec<i64>,
    ttft_micros: Vec<Option<i64>>,
    max_tokens: Vec<Option<i64>>,
    upstream_request_id: Vec<Option<&'a str>>,
    response_id: Vec<Option<&'a str>>,
    client_disconnected: Vec<i64>,
}

impl<'a> CallColumns<'a> {
    fn push(&mut self, seq: i64, call: &'a CallMeta) {
        self.seq.push(seq);
        self.key_id.push(&call.key_id);
        self.endpoint.push(&call.endpoint);
        self.status.push(i64::from(call.status));
        self.stream.push(i64::from(call.stream));
        self.latency_micros.push(call.latency_micros as i64);
        self.ttft_micros.push(call.ttft_micros.map(|t| t as i64));
        self.max_tokens.push(call.max_tokens.map(|t| t as i64));
        self.upstream_request_id.push(call.upstream_request_id.as_deref());
        self.response_id.push(call.response_id.as_deref());
        self.client_disconnected.push(i64::from(call.client_disconnected));
    }

    async fn insert(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        if self.seq.is_empty() {
            return Ok(());
        }
        let insert = tx
            .prepare_cached(
                "INSERT INTO gateway_calls (seq, key_id, endpoint, status, stream, latency_micros, ttft_micros, \
                 max_tokens, upstream_request_id, response_id, client_disconnected) \
                 SELECT unnest($1::int8[]), unnest($2::text[]), unnest($3::text[]), unnest($4::int8[]), \
                 unnest($5::int8[]), unnest($6::int8[]), unnest($7::int8[]), unnest($8::int8[]), \
                 unnest($9::text[]), unnest($10::text[]), unnest($11::int8[])",
            )
            .await?;
        tx.execute(
            &insert,
            &[
                &self.seq,
                &self.key_id,
                &self.endpoint,
                &self.status,
                &self.stream,
                &self.latency_micros,
                &self.ttft_micros,
                &self.max_tokens,
                &self.upstream_request_id,
                &self.response_id,
                &self.client_disconnected,
            ],
        )
        .await?;
        Ok(())
    }
}

const EVENT_COLUMNS: &str = "event_id, ts, user_id, team_id, project_id, agent_id, task, session, provider, model, \
    input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, \
    cost_nanos, long_context, price_version_id, source, estimated, finish_reason, prompt_simhash, completion_simhash, \
    completion_compress_permille, prompt_chars, completion_chars, received_at";

/// Each rollup table's upsert, built once (the statement itself is prepared once per connection).
static ROLLUP_UPSERTS: LazyLock<[String; 5]> =
    LazyLock::new(|| rollup::TABLES.map(|(table, _, _)| rollup::rollup_upsert_sql(table, rollup::RollupRows::Unnest)));

async fn apply_rollups(tx: &Transaction<'_>, rollups: &Rollups<'_>) -> Result<(), StoreError> {
    for ((table, rows), upsert) in rollups.tables().into_iter().zip(ROLLUP_UPSERTS.iter()) {
        if rows.is_empty() {
            continue;
        }
        let mut ints: Vec<Vec<i64>> = (0..15).map(|_| Vec::with_capacity(rows.len())).collect();
        let mut providers = Vec::with_capacity(rows.len());
        let mut models = Vec::with_capacity(rows.len());
        for (key, d) in &rows {
            let values = key.ids().into_iter().chain(d.values());
            for (column, value) in ints.iter_mut().zip(values) {
                column.push(value);
            }
            providers.push(key.provider);
            models.push(key.model);
        }
        let upsert = tx.prepare_cached(upsert).await?;
        let mut params: Vec<&(dyn ToSql + Sync)> = ints[..5].iter().map(|c| c as &(dyn ToSql + Sync)).collect();
        params.push(&providers);
        params.push(&models);
        params.extend(ints[5..].iter().map(|c| c as &(dyn ToSql + Sync)));
        tx.execute(&upsert, &params).await?;
        let prune = rollup::prune_rollup_sql(table);
        for (key, _) in rows.iter().filter(|(_, d)| d.requests < 0) {
            let ids = key.ids();
            let mut row: Vec<&(dyn ToSql + Sync)> = ids.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            row.extend([&key.provider as &(dyn ToSql + Sync), &key.model]);
            tx.execute(&prune, &row).await?;
        }
    }
    Ok(())
}

fn event_row(row: &tokio_postgres::Row) -> EventRow {
    let count = |i: usize| row.get::<_, i64>(i).max(0) as u64;
    EventRow {
        seq: row.get(0),
        ts: Micros(row.get(1)),
        dims: DimIds {
            user: row.get(2),
            team: row.get(3),
            project: row.get(4),
            agent: row.get(5),
        },
        provider: row.get(6),
        model: row.get(7),
        tokens: TokenCounts {
            input: count(8),
            output: count(9),
            cache_read: count(10),
            cache_write_5m: count(11),
            cache_write_1h: count(12),
            reasoning: count(13),
        },
        cost: row.get(14),
        estimated: row.get::<_, i64>(15) != 0,
    }
}

#[async_trait]
impl UsageStore for PostgresStore {
    async fn insert_usage(&self, events: Vec<PricedEvent>, price_version: &str) -> Result<InsertOutcome, StoreError> {
        if events.is_empty() {
            return Ok(InsertOutcome::default());
        }
        let _slot = self
            .ingest_slots
            .acquire()
            .await
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        lock_message_matching(&tx, &events).await?;
        // The gateway's events first: its record of a call replaces another source's record of
        // it and is never replaced by one, within a batch as across batches. A stable sort keeps
        // each part in order and moves nothing when the batch is of one kind (moving every event
        // into two new vectors was 5 % of the ingest process's CPU samples).
        let mut events = events;
        if !events.is_sorted_by_key(|p| p.event.source != Source::Gateway) {
            events.sort_by_key(|p| p.event.source != Source::Gateway);
        }
        let gateway = events.partition_point(|p| p.event.source == Source::Gateway);
        let (gateway, others) = events.split_at(gateway);
        let mut fresh = Vec::new();
        let mut outcome = InsertOutcome::default();
        for part in [gateway, others] {
            if !part.is_empty() {
                outcome += self.insert_batch(&tx, part, price_version, &mut fresh).await?;
            }
        }
        tx.commit().await?;
        let mut cache = self.cached_names();
        for (kind, name, id) in fresh {
            cache.insert(kind, &name, id);
        }
        Ok(outcome)
    }

    async fn usage_summary(&self, query: &SummaryQuery) -> Result<Vec<SummaryRow>, StoreError> {
        let mut client = self.pool.get().await?;
        // One repeatable-read snapshot so every segment sees the same data.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let mut rows = Vec::new();
        for segment in plan_segments(query.from, query.to) {
            let sql = summary::segment_sql(segment.granularity, &query.group_by);
            let stmt = tx.prepare_cached(&sql).await?;
            for row in tx.query(&stmt, &[&segment.from.0, &segment.to.0]).await? {
                let key = query
                    .group_by
                    .iter()
                    .enumerate()
                    .map(|(i, dim)| match summary::key_kind(*dim) {
                        KeyKind::Id => KeyPart::Id(row.get(i)),
                        KeyKind::Text => KeyPart::Text(row.get(i)),
                        KeyKind::Day => KeyPart::Day(row.get(i)),
                    })
                    .collect();
                let mut sums = [0i64; 10];
                for (j, slot) in sums.iter_mut().enumerate() {
                    *slot = row.get(query.group_by.len() + j);
                }
                rows.push(RawRow { key, sums });
            }
        }
        let mut names = Names::new();
        for dim in &query.group_by {
            if let Some(table) = summary::name_table(*dim) {
                let found = tx.query(&format!("SELECT id, name FROM {table}"), &[]).await?;
                names.insert(*dim, found.iter().map(|r| (r.get(0), r.get(1))).collect());
            }
        }
        tx.commit().await?;
        Ok(summary::merge(rows, &query.group_by, &names))
    }

    async fn unpriced_models(&self) -> Result<Vec<UnpricedModel>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(UNPRICED_MODELS_SQL, &[]).await?;
        Ok(rows
            .iter()
            .map(|r| {
                let provider: String = r.get(0);
                UnpricedModel {
                    provider: (!provider.is_empty()).then_some(provider),
                    model: r.get(1),
                    events: r.get::<_, i64>(2) as u64,
                }
            })
            .collect())
    }

    async fn reprice(&self, prices: &PriceTable, scope: RepriceScope) -> Result<RepriceOutcome, StoreError> {
        let mut outcome = RepriceOutcome::default();
        let mut after_seq = 0i64;
        let filter = match scope {
            RepriceScope::Unpriced => "AND cost_nanos IS NULL",
            RepriceScope::All => "",
        };
        let select = format!(
            "{} WHERE seq > $1 {filter} ORDER BY seq LIMIT $2 FOR UPDATE",
            select_reprice()
        );
        loop {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let mut fresh = Vec::new();
            let version = prices.version();
            let version_id = self
                .name_ids(&tx, NameKind::PriceVersion, [version], &mut fresh)
                .await?[version];
            let rows: Vec<EventRow> = tx
                .query(&select, &[&after_seq, &REPRICE_CHUNK])
                .await?
                .iter()
                .map(event_row)
                .collect();
            let Some(last) = rows.last() else {
                tx.commit().await?;
                break;
            };
            after_seq = last.seq;
            let (changes, rollups) = plan_reprice(&rows, prices, &mut outcome);
            let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
            let costs: Vec<Option<i64>> = changes.iter().map(|c| c.cost_nanos).collect();
            let long: Vec<i64> = changes.iter().map(|c| i64::from(c.long_context)).collect();
            if !seqs.is_empty() {
                tx.execute(
                    "UPDATE usage_events e SET cost_nanos = v.cost, long_context = v.long_context, price_version_id = $4 \
                     FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(seq, cost, long_context) WHERE e.seq = v.seq",
                    &[&seqs, &costs, &long, &version_id],
                )
                .await?;
            }
            apply_rollups(&tx, &rollups).await?;
            tx.commit().await?;
            let mut cache = self.cached_names();
            for (kind, name, id) in fresh {
                cache.insert(kind, &name, id);
            }
        }
        Ok(outcome)
    }

    async fn event_count(&self) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_one("SELECT COUNT(*) FROM usage_events", &[])
            .await?
            .get::<_, i64>(0) as u64)
    }
}
