//! The PostgreSQL backend, for several Goodhart instances sharing one database.
//!
//! Batches are loaded with binary `COPY` into a per-connection staging table and moved into
//! `usage_events` with `ON CONFLICT DO NOTHING RETURNING`, which tells exactly which ids were
//! new even when two instances ingest the same events at once. Rollup deltas are upserted in
//! key order with `unnest`, so concurrent writers never deadlock on them.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Mutex;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::pin_mut;
use goodhart_core::Micros;
use goodhart_core::Nanos;
use goodhart_core::budgets::{Alert, Budget, BudgetScope};
use goodhart_core::keys::{KeyScope, RateLimits, VirtualKey};
use goodhart_core::limits::{self, Amount, TokenBucket};
use goodhart_core::outcomes::Fact;
use goodhart_core::pricing::PriceTable;
use goodhart_core::report::{SummaryRow, plan_segments};
use goodhart_core::telemetry::{RecordedSession, TelemetryPoint};
use goodhart_core::usage::{self, CallMeta, Source, TokenCounts};
use goodhart_core::waste::{Call, Finding, FindingStatus};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Transaction};

use crate::alerts::{self, AlertStore, StoredAlert};
use crate::budgets::{self, BudgetStore, Sources, Spend};
use crate::clock::now_micros;
use crate::error::StoreError;
use crate::findings::{self, FindingStore, PassOutcome, StoredFinding};
use crate::keys::{self, KeyStore};
use crate::leases::{self, LeaseRequest, LeaseStore, RateBucket};
use crate::migrations;
use crate::outcomes::{self, FactsOutcome, OutcomeStore};
use crate::rollup::{
    self, DimIds, EventRow, NameCache, NameKind, RollupDelta, Rollups, plan_reprice, rollup_tables, token_columns,
};
use crate::settings::SettingsStore;
use crate::summary::{self, KeyKind, KeyPart, Names, RawRow};
use crate::telemetry::{self, TelemetryStore};
use crate::usage::{
    ANY_MESSAGE_KEYED_SQL, InsertOutcome, PricedEvent, REPRICE_CHUNK, RepriceOutcome, RepriceScope, SummaryQuery,
    UNPRICED_MODELS_SQL, UnpricedModel, UsageStore, delete_superseded_sql, select_reprice,
};
use crate::viewers::{self, ViewerStore, ViewerToken};

const POOL_SIZE: usize = 16;
/// Serialises migrations between instances starting at once (an arbitrary constant key).
const MIGRATION_LOCK_KEY: i64 = 0x0600_d4a7;

pub struct PostgresStore {
    pool: Pool,
    names: Mutex<NameCache>,
    /// Ingest transactions of one instance that may run at once. Batches of recent events
    /// upsert the same rollup rows, so more concurrent writers only wait on each other's row
    /// locks (2 measured best on 2 cores: BENCHMARKS.md).
    ingest_slots: tokio::sync::Semaphore,
}

const CONCURRENT_INGESTS: usize = 2;

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Pool(e.to_string())
    }
}

impl PostgresStore {
    /// Connects to `url` and brings the schema up to date. Use the `options` URL parameter
    /// (e.g. `?options=-csearch_path%3Dgoodhart`) to place the tables in another schema.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let config = tokio_postgres::Config::from_str(url)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let store = PostgresStore {
            pool,
            names: Mutex::new(NameCache::default()),
            ingest_slots: tokio::sync::Semaphore::new(CONCURRENT_INGESTS),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await?;
        tx.batch_execute(migrations::CREATE_LEDGER).await?;
        for migration in migrations::POSTGRES {
            let applied = tx
                .query_opt(
                    "SELECT version FROM schema_migrations WHERE version = $1",
                    &[&migration.version],
                )
                .await?;
            if applied.is_some() {
                continue;
            }
            tx.batch_execute(migration.sql)
                .await
                .map_err(|e| StoreError::Migration {
                    version: migration.version,
                    reason: e.to_string(),
                })?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[&migration.version, &now_micros().0],
            )
            .await?;
            tracing::info!(version = migration.version, "applied PostgreSQL migration");
        }
        tx.commit().await?;
        Ok(())
    }

    fn cached_names(&self) -> std::sync::MutexGuard<'_, NameCache> {
        self.names.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ids for every name of `kind` in `names`, creating the missing ones inside `tx`.
    /// New ids go to `fresh` and reach the shared cache only after the commit.
    async fn name_ids(
        &self,
        tx: &Transaction<'_>,
        kind: NameKind,
        names: impl IntoIterator<Item = &str>,
        fresh: &mut Vec<(NameKind, String, i64)>,
    ) -> Result<HashMap<String, i64>, StoreError> {
        let mut ids = HashMap::new();
        let mut missing: Vec<String> = Vec::new();
        {
            let cache = self.cached_names();
            for name in names {
                match cache.get(kind, name) {
                    Some(id) => {
                        ids.insert(name.to_owned(), id);
                    }
                    None if !missing.iter().any(|m| m == name) => missing.push(name.to_owned()),
                    None => {}
                }
            }
        }
        if missing.is_empty() {
            return Ok(ids);
        }
        missing.sort();
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
            fresh.push((kind, name.clone(), id));
            ids.insert(name, id);
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
        let id_of = |map: &HashMap<String, i64>, name: Option<&String>| name.map_or(0, |n| map[n.as_str()]);
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

        tx.batch_execute(STAGE_TABLE).await?;
        tx.execute("DELETE FROM usage_stage", &[]).await?; // a first part of the same transaction
        let sink = tx
            .copy_in(&format!("COPY usage_stage (ord, {EVENT_COLUMNS}) FROM STDIN BINARY"))
            .await?;
        let writer = BinaryCopyInWriter::new(sink, &STAGE_TYPES);
        pin_mut!(writer);
        let received_at = now_micros().0;
        for (ord, (priced, dims)) in events.iter().zip(&dims).enumerate() {
            let e = &priced.event;
            let tokens = token_columns(&e.tokens);
            let fp = &e.fingerprints;
            let values: [&(dyn ToSql + Sync); 29] = [
                &(ord as i64),
                &e.id,
                &e.timestamp.0,
                &dims.user,
                &dims.team,
                &dims.project,
                &dims.agent,
                &e.attribution.task,
                &e.attribution.session,
                &e.provider.as_deref().unwrap_or(""),
                &e.model,
                &tokens[0],
                &tokens[1],
                &tokens[2],
                &tokens[3],
                &tokens[4],
                &tokens[5],
                &priced.cost.map(|c| c.total().0),
                &i64::from(priced.cost.is_some_and(|c| c.long_context)),
                &version_id,
                &e.source.as_str(),
                &i64::from(e.estimated),
                &e.finish_reason,
                &fp.prompt_simhash.map(|h| h as i64),
                &fp.completion_simhash.map(|h| h as i64),
                &fp.completion_compress_permille.map(i64::from),
                &fp.prompt_chars.map(|n| n as i64),
                &fp.completion_chars.map(|n| n as i64),
                &received_at,
            ];
            writer.as_mut().write(&values).await?;
        }
        writer.finish().await?;
        drop_answered_messages(tx, events).await?;

        let mut inserted = tx.query(&insert_staged(""), &[]).await?;
        let mut first_index: HashMap<&str, usize> = HashMap::with_capacity(events.len());
        for (i, p) in events.iter().enumerate() {
            first_index.entry(p.event.id.as_str()).or_insert(i);
        }
        let superseded = replace_earlier_records(tx, events, &first_index, &mut inserted).await?;

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
                tx.execute(
                    "INSERT INTO usage_content (seq, prompt, completion) VALUES ($1, $2, $3)",
                    &[&seq, &content.prompt, &content.completion],
                )
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

/// Moves the staged events (`filter` picks some) into `usage_events`, the first of each id
/// that is new: their `seq` and `event_id`.
fn insert_staged(filter: &str) -> String {
    format!(
        "INSERT INTO usage_events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM usage_stage {filter} \
         ORDER BY ord ON CONFLICT (event_id) DO NOTHING RETURNING seq, event_id"
    )
}

/// Takes out of the stage the events of other sources that name a call only by a message id the
/// gateway already stored a call's response under: duplicates of the gateway's record.
async fn drop_answered_messages(tx: &Transaction<'_>, events: &[PricedEvent]) -> Result<(), StoreError> {
    let messages: Vec<&str> = events
        .iter()
        .filter(|p| p.event.source != Source::Gateway)
        .filter_map(|p| usage::message_of_call_id(&p.event.id))
        .collect();
    if messages.is_empty() {
        return Ok(());
    }
    let answered: Vec<String> = tx
        .query(
            "SELECT DISTINCT response_id FROM gateway_calls WHERE response_id = ANY($1)",
            &[&messages],
        )
        .await?
        .iter()
        .map(|row| usage::message_call_id(row.get(0)))
        .collect();
    if !answered.is_empty() {
        tx.execute(
            "DELETE FROM usage_stage WHERE event_id = ANY($1) AND source <> 'gateway'",
            &[&answered],
        )
        .await?;
    }
    Ok(())
}

/// Lets the batch's gateway events replace other sources' records of the same calls — by
/// request id (`inserted` missed them: they conflicted) or by the response's message id — and
/// inserts those that conflicted again: the records replaced.
async fn replace_earlier_records(
    tx: &Transaction<'_>,
    events: &[PricedEvent],
    first_index: &HashMap<&str, usize>,
    inserted: &mut Vec<tokio_postgres::Row>,
) -> Result<Vec<EventRow>, StoreError> {
    let stored: HashSet<&str> = inserted.iter().map(|row| row.get(1)).collect();
    let conflicting: Vec<&str> = first_index
        .iter()
        .filter(|&(id, &i)| events[i].event.source == Source::Gateway && !stored.contains(id))
        .map(|(id, _)| *id)
        .collect();
    let mut replaceable: Vec<String> = conflicting.iter().map(|id| id.to_string()).collect();
    // Only when some event is keyed by a message id: looking costs a fifth of the write rate.
    if !tx.query(ANY_MESSAGE_KEYED_SQL, &[]).await?.is_empty() {
        replaceable.extend(
            events
                .iter()
                .filter(|p| p.event.source == Source::Gateway)
                .filter_map(|p| p.event.call.as_ref()?.response_id.as_deref())
                .map(usage::message_call_id),
        );
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
        if !conflicting.is_empty() {
            let again = tx
                .query(&insert_staged("WHERE event_id = ANY($1)"), &[&conflicting])
                .await?;
            inserted.extend(again);
        }
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
        tx.execute(
            "INSERT INTO gateway_calls (seq, key_id, endpoint, status, stream, latency_micros, ttft_micros, \
             max_tokens, upstream_request_id, response_id, client_disconnected) \
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], \
             $7::int8[], $8::int8[], $9::text[], $10::text[], $11::int8[])",
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

const STAGE_TABLE: &str = "CREATE TEMP TABLE IF NOT EXISTS usage_stage (ord BIGINT, event_id TEXT, ts BIGINT, \
    user_id BIGINT, team_id BIGINT, project_id BIGINT, agent_id BIGINT, task TEXT, session TEXT, provider TEXT, \
    model TEXT, input_tokens BIGINT, output_tokens BIGINT, cache_read_tokens BIGINT, cache_write_5m_tokens BIGINT, \
    cache_write_1h_tokens BIGINT, reasoning_tokens BIGINT, cost_nanos BIGINT, long_context BIGINT, \
    price_version_id BIGINT, source TEXT, estimated BIGINT, finish_reason TEXT, prompt_simhash BIGINT, \
    completion_simhash BIGINT, completion_compress_permille BIGINT, prompt_chars BIGINT, completion_chars BIGINT, \
    received_at BIGINT) ON COMMIT DELETE ROWS";

const STAGE_TYPES: [Type; 29] = [
    Type::INT8, // ord
    Type::TEXT, // event_id
    Type::INT8, // ts
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8, // attribution ids
    Type::TEXT, // task
    Type::TEXT, // session
    Type::TEXT, // provider
    Type::TEXT, // model
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8, // tokens
    Type::INT8, // cost_nanos
    Type::INT8, // long_context
    Type::INT8, // price_version_id
    Type::TEXT, // source
    Type::INT8, // estimated
    Type::TEXT, // finish_reason
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8, // fingerprints
    Type::INT8, // received_at
];

async fn apply_rollups(tx: &Transaction<'_>, rollups: &Rollups<'_>) -> Result<(), StoreError> {
    for (table, rows) in rollup_tables(rollups) {
        if rows.is_empty() {
            continue;
        }
        let mut ints: Vec<Vec<i64>> = (0..15).map(|_| Vec::with_capacity(rows.len())).collect();
        let mut providers = Vec::with_capacity(rows.len());
        let mut models = Vec::with_capacity(rows.len());
        for (key, d) in rows {
            let values = key.ids().into_iter().chain(d.values());
            for (column, value) in ints.iter_mut().zip(values) {
                column.push(value);
            }
            providers.push(key.provider);
            models.push(key.model);
        }
        let upsert = rollup::rollup_upsert_sql(table, rollup::RollupRows::Unnest);
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
        // it and is never replaced by one, within a batch as across batches.
        let (gateway, others): (Vec<_>, Vec<_>) = events.into_iter().partition(|p| p.event.source == Source::Gateway);
        let mut fresh = Vec::new();
        let mut outcome = InsertOutcome::default();
        for part in [gateway, others] {
            if !part.is_empty() {
                outcome += self.insert_batch(&tx, &part, price_version, &mut fresh).await?;
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

#[async_trait]
impl SettingsStore for PostgresStore {
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])
            .await?
            .map(|r| r.get(0)))
    }

    async fn set_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let changed = client
            .execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )
            .await?;
        Ok(changed == 1)
    }
}

fn read_key(r: &tokio_postgres::Row) -> VirtualKey {
    VirtualKey {
        id: r.get(0),
        name: r.get(1),
        scope: KeyScope {
            user: r.get(2),
            team: r.get(3),
            project: r.get(4),
            agent: r.get(5),
        },
        created_at: Micros(r.get(6)),
        expires_at: r.get::<_, Option<i64>>(7).map(Micros),
        revoked_at: r.get::<_, Option<i64>>(8).map(Micros),
        replaced_by: r.get(9),
        limits: RateLimits {
            requests_per_minute: r.get::<_, Option<i64>>(10).map(|n| n.max(0) as u64),
            tokens_per_minute: r.get::<_, Option<i64>>(11).map(|n| n.max(0) as u64),
        },
    }
}

async fn insert_key(
    client: &impl deadpool_postgres::GenericClient,
    key: &VirtualKey,
    key_hash: &str,
) -> Result<(), StoreError> {
    let s = &key.scope;
    client
        .execute(
            keys::INSERT,
            &[
                &key.id,
                &key_hash,
                &key.name,
                &s.user,
                &s.team,
                &s.project,
                &s.agent,
                &key.created_at.0,
                &key.expires_at.map(|m| m.0),
                &key.limits.requests_per_minute.map(|n| n as i64),
                &key.limits.tokens_per_minute.map(|n| n as i64),
            ],
        )
        .await?;
    Ok(())
}

#[async_trait]
impl AlertStore for PostgresStore {
    async fn insert_alert(&self, a: &Alert) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let inserted = client
            .execute(
                alerts::INSERT,
                &[
                    &a.id,
                    &a.kind.as_str(),
                    &a.budget_id,
                    &a.scope,
                    &a.message,
                    &a.created_at.0,
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    async fn alerts(&self, from: Micros, to: Micros) -> Result<Vec<StoredAlert>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query(alerts::SELECT, &[&from.0, &to.0])
            .await?
            .iter()
            .map(|r| {
                alerts::Row {
                    id: r.get(0),
                    kind: r.get(1),
                    budget_id: r.get(2),
                    scope: r.get(3),
                    message: r.get(4),
                    created_at: r.get(5),
                    delivered_at: r.get(6),
                    attempts: r.get(7),
                    last_error: r.get(8),
                }
                .into_alert()
            })
            .collect()
    }

    async fn alert_attempt(&self, id: &str, delivered: Option<Micros>, error: Option<&str>) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(alerts::ATTEMPT, &[&delivered.map(|d| d.0), &error, &id])
            .await?;
        Ok(())
    }
}

#[async_trait]
impl BudgetStore for PostgresStore {
    async fn create_budget(&self, b: &Budget) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                budgets::INSERT,
                &[
                    &b.id,
                    &b.scope.kind(),
                    &b.scope.name(),
                    &b.period.as_str(),
                    &b.limit.0,
                    &b.token_limit.map(|t| t as i64),
                    &b.action.as_str(),
                    &budgets::thresholds(&b.thresholds),
                    &b.timezone,
                    &b.created_at.0,
                ],
            )
            .await?;
        Ok(())
    }

    async fn budgets(&self) -> Result<Vec<Budget>, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!("SELECT {} FROM budgets {}", budgets::COLUMNS, budgets::LIVE);
        client
            .query(&sql, &[])
            .await?
            .iter()
            .map(|r| {
                budgets::Row {
                    id: r.get(0),
                    scope_kind: r.get(1),
                    scope_name: r.get(2),
                    period: r.get(3),
                    limit_nanos: r.get(4),
                    limit_tokens: r.get(5),
                    action: r.get(6),
                    thresholds: r.get(7),
                    timezone: r.get(8),
                    created_at: r.get(9),
                }
                .into_budget()
            })
            .collect()
    }

    async fn delete_budget(&self, id: &str, at: Micros) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute(budgets::DELETE, &[&at.0, &id]).await? == 1)
    }

    async fn spend(&self, scope: &BudgetScope, from: Micros, to: Micros) -> Result<Spend, StoreError> {
        let client = self.pool.get().await?;
        spend_on(&client, scope, from, to, Sources::All).await
    }
}

/// What `scope` spent in `[from, to)` from `sources`, on a connection or in a transaction.
async fn spend_on(
    client: &impl GenericClient,
    scope: &BudgetScope,
    from: Micros,
    to: Micros,
    sources: Sources,
) -> Result<Spend, StoreError> {
    let sql = budgets::spend(scope.kind(), sources);
    let name = scope.name().unwrap_or_default();
    let row = if sql.contains("$3") {
        client.query_one(&sql, &[&from.0, &to.0, &name]).await?
    } else {
        client.query_one(&sql, &[&from.0, &to.0]).await?
    };
    Ok(Spend {
        cost: goodhart_core::Nanos(row.get(0)),
        tokens: row.get::<_, i64>(1).max(0) as u64,
        requests: row.get::<_, i64>(2).max(0) as u64,
    })
}

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn lease_budget(&self, request: &LeaseRequest<'_>) -> Result<Option<Amount>, StoreError> {
        let (budget, window) = (request.budget, request.window);
        let (id, start, end) = (&budget.id, window.start.0, leases::window_end(&window));
        let until = end.unwrap_or(i64::MAX);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let lock = format!("{} FOR UPDATE", leases::SELECT_POOL);
        let row = match tx.query_opt(&lock, &[id, &start]).await? {
            Some(row) => row,
            None => {
                let base = spend_on(&tx, &budget.scope, window.start, Micros(until), Sources::Gateway).await?;
                let old = request.now.0.saturating_sub(leases::POOL_RETENTION_MICROS);
                tx.execute(leases::DELETE_OLD_LEASES, &[&old]).await?;
                tx.execute(leases::DELETE_OLD_POOLS, &[&old]).await?;
                let params: [&(dyn ToSql + Sync); 6] =
                    [id, &start, &end, &base.cost.0, &(base.tokens as i64), &request.now.0];
                tx.execute(leases::OPEN_POOL, &params).await?;
                // Another instance may have opened it first: its base stands.
                tx.query_one(&lock, &[id, &start]).await?
            }
        };
        let base = Amount {
            cost: Nanos(row.get(0)),
            tokens: row.get::<_, i64>(1).max(0) as u64,
            requests: 0,
        };
        let leased = tx.query_one(leases::LEASED, &[id, &start]).await?;
        let leased = Amount {
            cost: Nanos(leased.get(0)),
            tokens: leased.get::<_, i64>(1).max(0) as u64,
            requests: 0,
        };
        let others = spend_on(&tx, &budget.scope, window.start, Micros(until), Sources::Others).await?;
        let taken = base.saturating_add(leased).saturating_add(leases::amount(others));
        let granted = limits::grant_lease(&limits::budget_limits(budget), taken, request.want, request.need);
        if let Some(g) = granted {
            let params: [&(dyn ToSql + Sync); 6] = [
                id,
                &start,
                &request.instance,
                &g.cost.0,
                &(g.tokens as i64),
                &request.now.0,
            ];
            tx.execute(leases::GRANT, &params).await?;
        }
        tx.commit().await?;
        Ok(granted)
    }

    async fn return_lease(
        &self,
        budget_id: &str,
        window_start: Micros,
        instance: &str,
        unused: Amount,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let params: [&(dyn ToSql + Sync); 6] = [
            &unused.cost.0,
            &(unused.tokens as i64),
            &now_micros().0,
            &budget_id,
            &window_start.0,
            &instance,
        ];
        client.execute(leases::GIVE_BACK, &params).await?;
        Ok(())
    }

    async fn take_rate(
        &self,
        bucket: &RateBucket<'_>,
        want: u64,
        need: u64,
        now: Micros,
    ) -> Result<Result<u64, Option<i64>>, StoreError> {
        self.update_bucket(bucket, now, |b| b.take_up_to(want, need, now)).await
    }

    async fn return_rate(&self, bucket: &RateBucket<'_>, unused: u64, now: Micros) -> Result<(), StoreError> {
        self.update_bucket(bucket, now, |b| {
            b.give_back(unused, now);
            Ok::<_, ()>(())
        })
        .await
        .map(|_| ())
    }
}

async fn insert_facts_in(tx: &Transaction<'_>, facts: &[(String, Fact)]) -> Result<FactsOutcome, StoreError> {
    let statement = tx.prepare(outcomes::INSERT_FACT).await?;
    let mut outcome = FactsOutcome::default();
    let now = now_micros().0;
    for (id, fact) in facts {
        let params: [&(dyn ToSql + Sync); 5] = [id, &fact.kind(), &fact.at().0, &outcomes::payload(fact), &now];
        if tx.execute(&statement, &params).await? == 1 {
            outcome.inserted += 1;
        } else {
            outcome.duplicates += 1;
        }
    }
    Ok(outcome)
}

#[async_trait]
impl OutcomeStore for PostgresStore {
    async fn insert_facts(&self, facts: Vec<(String, Fact)>) -> Result<FactsOutcome, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let outcome = insert_facts_in(&tx, &facts).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn insert_delivery(
        &self,
        delivery: &str,
        event: &str,
        facts: Vec<(String, Fact)>,
    ) -> Result<Option<FactsOutcome>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if tx
            .execute(outcomes::INSERT_DELIVERY, &[&delivery, &event, &now_micros().0])
            .await?
            == 0
        {
            return Ok(None);
        }
        let outcome = insert_facts_in(&tx, &facts).await?;
        tx.commit().await?;
        Ok(Some(outcome))
    }

    async fn facts_before(&self, to: Micros) -> Result<Vec<(String, Fact)>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query(outcomes::FACTS_BEFORE, &[&to.0])
            .await?
            .iter()
            .map(|r| outcomes::parse(r.get(0), r.get::<_, &str>(1)))
            .collect()
    }

    async fn github_user(&self, login: &str) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_opt(outcomes::GITHUB_USER, &[&login])
            .await?
            .map(|r| r.get(0)))
    }

    async fn map_github_login(&self, login: &str, user: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.execute(outcomes::MAP_LOGIN, &[&login, &user]).await?;
        Ok(())
    }

    async fn github_logins(&self) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query(outcomes::LOGINS, &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }
}

impl PostgresStore {
    /// Runs `change` on a key's shared bucket under a row lock and saves the result.
    async fn update_bucket<T, E>(
        &self,
        bucket: &RateBucket<'_>,
        now: Micros,
        change: impl FnOnce(&mut TokenBucket) -> Result<T, E>,
    ) -> Result<Result<T, E>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (key, kind) = (&bucket.key_id, &bucket.resource.as_str());
        // A first row for a new bucket, so that the row lock below serialises every instance.
        let full = leases::stored_bucket(&leases::load_bucket(bucket, None, now));
        tx.execute(
            &format!("{} ON CONFLICT (key_id, kind) DO NOTHING", INSERT_BUCKET),
            &[key, kind, &full.0, &full.1],
        )
        .await?;
        let row = tx
            .query_one(&format!("{} FOR UPDATE", leases::SELECT_BUCKET), &[key, kind])
            .await?;
        let mut state = leases::load_bucket(bucket, Some((row.get(0), row.get(1))), now);
        let outcome = change(&mut state);
        let (level, updated) = leases::stored_bucket(&state);
        tx.execute(leases::SAVE_BUCKET, &[key, kind, &level, &updated]).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}

const INSERT_BUCKET: &str =
    "INSERT INTO rate_buckets (key_id, kind, level_millionths, updated_at) VALUES ($1, $2, $3, $4)";

#[async_trait]
impl KeyStore for PostgresStore {
    async fn create_key(&self, key: &VirtualKey, key_hash: &str) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        insert_key(&tx, key, key_hash).await?;
        Ok(tx.commit().await?)
    }

    async fn keys(&self) -> Result<Vec<VirtualKey>, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {} FROM virtual_keys ORDER BY created_at DESC, id",
            keys::COLUMNS
        );
        Ok(client.query(&sql, &[]).await?.iter().map(read_key).collect())
    }

    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<VirtualKey>, StoreError> {
        let client = self.pool.get().await?;
        let sql = format!("SELECT {} FROM virtual_keys WHERE key_hash = $1", keys::COLUMNS);
        Ok(client.query_opt(&sql, &[&key_hash]).await?.as_ref().map(read_key))
    }

    async fn revoke_key(&self, id: &str, at: Micros) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute(keys::REVOKE, &[&at.0, &None::<String>, &id]).await? == 1)
    }

    async fn replace_key(
        &self,
        old_id: &str,
        new: &VirtualKey,
        new_hash: &str,
        at: Micros,
    ) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if tx.execute(keys::REVOKE, &[&at.0, &new.id, &old_id]).await? != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_key(&tx, new, new_hash).await?;
        tx.commit().await?;
        Ok(true)
    }
}

fn read_finding(r: &tokio_postgres::Row) -> Result<StoredFinding, StoreError> {
    findings::Row {
        id: r.get(0),
        subject_kind: r.get(1),
        subject: r.get(2),
        user: r.get(3),
        detector: r.get(4),
        signals: r.get(5),
        evidence: r.get(6),
        numbers: std::array::from_fn(|i| r.get(7 + i)),
        status: r.get(15),
        decided_at: r.get(16),
        note: r.get(17),
    }
    .into_finding()
}

#[async_trait]
impl FindingStore for PostgresStore {
    async fn waste_calls(&self, from: Micros, to: Micros) -> Result<Vec<Call>, StoreError> {
        use futures_util::TryStreamExt;
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&findings::calls_sql()).await?;
        // Streamed: a month of a large organisation is millions of rows.
        let rows = client.query_raw(&statement, [&from.0, &to.0]).await?;
        pin_mut!(rows);
        let mut calls = Vec::new();
        while let Some(r) = rows.try_next().await? {
            calls.push(Call::from(findings::CallRow {
                at: r.get(0),
                user: r.get(1),
                agent: r.get(2),
                session: r.get(3),
                cost: r.get(4),
                tokens: r.get(5),
                truncated: r.get(6),
                prompt_simhash: r.get(7),
                completion_simhash: r.get(8),
                completion_compress_permille: r.get(9),
            }));
        }
        Ok(calls)
    }

    async fn record_findings(
        &self,
        from: Micros,
        to: Micros,
        mut found: Vec<Finding>,
        now: Micros,
    ) -> Result<PassOutcome, StoreError> {
        found.retain(|f| f.from >= from && f.from < to);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Passes over overlapping windows (two instances) take turns.
        tx.execute("LOCK TABLE waste_findings IN SHARE ROW EXCLUSIVE MODE", &[])
            .await?;
        let existing: Vec<(String, String)> = tx
            .query(findings::IN_WINDOW, &[&from.0, &to.0])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let (new, updated, withdrawn) = findings::reconcile(&existing, &found);
        let upsert = tx.prepare_cached(findings::UPSERT).await?;
        for f in &found {
            let p = findings::UpsertParams::of(f);
            let [from_ts, to_ts, calls, tokens, wasted, confidence] = p.numbers;
            tx.execute(
                &upsert,
                &[
                    &f.id,
                    &p.subject_kind,
                    &f.subject,
                    &f.user,
                    &p.detector,
                    &p.signals,
                    &f.evidence,
                    &from_ts,
                    &to_ts,
                    &calls,
                    &tokens,
                    &wasted,
                    &confidence,
                    &now.0,
                ],
            )
            .await?;
        }
        for id in &withdrawn {
            tx.execute(findings::WITHDRAW, &[id]).await?;
        }
        tx.commit().await?;
        Ok(PassOutcome {
            new,
            updated,
            withdrawn: withdrawn.len() as u64,
        })
    }

    async fn findings(&self, from: Micros, to: Micros) -> Result<Vec<StoredFinding>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query(&findings::select_window(), &[&from.0, &to.0])
            .await?
            .iter()
            .map(read_finding)
            .collect()
    }

    async fn decide_finding(
        &self,
        id: &str,
        status: FindingStatus,
        note: Option<&str>,
        at: Micros,
    ) -> Result<Option<StoredFinding>, StoreError> {
        let client = self.pool.get().await?;
        if client
            .execute(findings::DECIDE, &[&status.as_str(), &at.0, &note, &id])
            .await?
            == 0
        {
            return Ok(None);
        }
        client
            .query_opt(&findings::select_one(), &[&id])
            .await?
            .as_ref()
            .map(read_finding)
            .transpose()
    }
}

#[async_trait]
impl ViewerStore for PostgresStore {
    async fn create_viewer(&self, token: &ViewerToken, token_hash: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                viewers::INSERT,
                &[
                    &token.id,
                    &token_hash,
                    &token.name,
                    &token.team,
                    &token.created_at.0,
                    &token.role.as_str(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn viewers(&self) -> Result<Vec<ViewerToken>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(viewers::SELECT_ALL, &[]).await?;
        Ok(rows.iter().map(|r| viewers::token(read_viewer(r))).collect())
    }

    async fn viewer_by_hash(&self, token_hash: &str) -> Result<Option<ViewerToken>, StoreError> {
        let client = self.pool.get().await?;
        let row = client.query_opt(viewers::SELECT_BY_HASH, &[&token_hash]).await?;
        Ok(row.map(|r| viewers::token(read_viewer(&r))))
    }

    async fn revoke_viewer(&self, id: &str, at: Micros) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute(viewers::REVOKE, &[&at.0, &id]).await? == 1)
    }
}

fn read_viewer(r: &tokio_postgres::Row) -> viewers::Row {
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))
}

#[async_trait]
impl TelemetryStore for PostgresStore {
    async fn insert_telemetry_points(&self, points: &[TelemetryPoint]) -> Result<u64, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let statement = tx.prepare_cached(telemetry::INSERT).await?;
        let mut inserted = 0;
        for p in points {
            inserted += tx
                .execute(
                    &statement,
                    &[
                        &p.id,
                        &p.timestamp.0,
                        &p.user,
                        &p.session,
                        &p.agent,
                        &p.model,
                        &p.kind.as_str(),
                        &telemetry::stored_amount(p),
                    ],
                )
                .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn telemetry_points(&self, from: Micros, to: Micros) -> Result<Vec<TelemetryPoint>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(telemetry::SELECT, &[&from.0, &to.0]).await?;
        rows.iter()
            .map(|r| {
                telemetry::point((
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                    r.get(7),
                ))
            })
            .collect()
    }

    async fn recorded_sessions(&self, from: Micros, to: Micros) -> Result<Vec<RecordedSession>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(telemetry::RECORDED, &[&from.0, &to.0]).await?;
        Ok(rows
            .iter()
            .map(|r| telemetry::session((r.get(0), std::array::from_fn(|i| r.get(i + 1)))))
            .collect())
    }
}
