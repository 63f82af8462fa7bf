//! The embedded backend: one SQLite file in WAL mode.
//!
//! One writer connection (SQLite allows one writer at a time anyway) behind a mutex, and a
//! small pool of reader connections that WAL lets run beside it. Every call runs on tokio's
//! blocking pool so the async runtime never waits on disk. `synchronous = NORMAL` in WAL mode
//! survives a crash of the process; a power loss may lose the last commits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::Nanos;
use goodhart_core::budgets::{Alert, Budget, BudgetScope};
use goodhart_core::keys::{KeyScope, RateLimits, VirtualKey};
use goodhart_core::limits::{self, Amount, TokenBucket};
use goodhart_core::outcomes::Fact;
use goodhart_core::pricing::PriceTable;
use goodhart_core::report::{Dimension, SummaryRow, plan_segments};
use goodhart_core::telemetry::{RecordedSession, TelemetryPoint};
use goodhart_core::usage::{self, Source, TokenCounts};
use goodhart_core::waste::{Call, Finding, FindingStatus};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::alerts::{self, AlertStore, StoredAlert};
use crate::budgets::{self, BudgetStore, Sources, Spend};
use crate::clock::now_micros;
use crate::error::StoreError;
use crate::findings::{self, FindingStore, PassOutcome, StoredFinding};
use crate::keys::{self, KeyStore};
use crate::leases::{self, LeaseRequest, LeaseStore, RateBucket};
use crate::migrations::{self, Migration};
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

const READERS: usize = 4;

pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
}

struct Writer {
    conn: Connection,
    names: NameCache,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll back
    // on drop), so a poisoned lock is still safe to use.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "busy_timeout", 10_000)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -65_536)?; // 64 MiB
    conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
    // Checkpoint every 64 MiB of WAL instead of 4 MiB: rollup and index pages rewritten by
    // consecutive batches are then copied back once, not once per batch (a few percent more
    // ingest, see BENCHMARKS.md). The WAL file is truncated back to that size after checkpoints.
    conn.pragma_update(None, "wal_autocheckpoint", 16_384)?;
    conn.pragma_update(None, "journal_size_limit", 64i64 << 20)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn apply_migrations(conn: &mut Connection, list: &[Migration]) -> Result<(), StoreError> {
    conn.execute(migrations::CREATE_LEDGER, [])?;
    for migration in list {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let applied: Option<String> = tx
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [migration.version],
                |r| r.get(0),
            )
            .optional()?;
        if applied.is_none() {
            tx.execute_batch(migration.sql).map_err(|e| StoreError::Migration {
                version: migration.version,
                reason: e.to_string(),
            })?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![migration.version, now_micros().0],
            )?;
            tracing::info!(version = migration.version, "applied SQLite migration");
        }
        tx.commit()?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens or creates the database file at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut conn = connect(&path)?;
            apply_migrations(&mut conn, migrations::SQLITE)?;
            Ok(SqliteStore {
                inner: Arc::new(Inner {
                    path,
                    writer: Mutex::new(Writer {
                        conn,
                        names: NameCache::default(),
                    }),
                    readers: Mutex::new(Vec::new()),
                }),
            })
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    async fn write<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = lock(&inner.writer);
            let result = job(&mut writer);
            if result.is_err() {
                writer.names.clear();
            }
            result
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = lock(&inner.readers).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => connect(&inner.path)?,
            };
            let result = job(&conn);
            let mut readers = lock(&inner.readers);
            if readers.len() < READERS {
                readers.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }
}

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

    fn insert_usage(&mut self, events: &[PricedEvent], price_version: &str) -> Result<InsertOutcome, StoreError> {
        let Writer { conn, names } = self;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version_id = Self::name_id(names, &tx, NameKind::PriceVersion, Some(price_version))?;
        let received_at = now_micros().0;
        let mut outcome = InsertOutcome::default();
        let mut superseded = Vec::new();
        let mut answered_messages = Vec::new();
        let mut rollups = Rollups::default();
        {
            let mut insert = tx.prepare_cached(INSERT_EVENT)?;
            // The gateway's events first: its record of a call replaces another source's record
            // of it and is never replaced by one, within a batch as across batches.
            for from_gateway in [true, false] {
                let part = events
                    .iter()
                    .filter(|p| (p.event.source == Source::Gateway) == from_gateway);
                for priced in part {
                    let e = &priced.event;
                    if let Some(response) = e.call.as_ref().and_then(|c| c.response_id.as_deref()) {
                        answered_messages.push(usage::message_call_id(response));
                    }
                    if e.source != Source::Gateway
                        && let Some(message) = usage::message_of_call_id(&e.id)
                        && gateway_answered(&tx, message)?
                    {
                        outcome.duplicates += 1;
                        continue;
                    }
                    let a = &e.attribution;
                    let dims = DimIds {
                        user: Self::name_id(names, &tx, NameKind::User, Some(&a.user))?,
                        team: Self::name_id(names, &tx, NameKind::Team, a.team.as_deref())?,
                        project: Self::name_id(names, &tx, NameKind::Project, a.project.as_deref())?,
                        agent: Self::name_id(names, &tx, NameKind::Agent, a.agent.as_deref())?,
                    };
                    let tokens = token_columns(&e.tokens);
                    let cost = priced.cost.map(|c| c.total().0);
                    let fp = &e.fingerprints;
                    let provider = e.provider.as_deref().unwrap_or("");
                    let values = params![
                        e.id,
                        e.timestamp.0,
                        dims.user,
                        dims.team,
                        dims.project,
                        dims.agent,
                        a.task,
                        a.session,
                        provider,
                        e.model,
                        tokens[0],
                        tokens[1],
                        tokens[2],
                        tokens[3],
                        tokens[4],
                        tokens[5],
                        cost,
                        priced.cost.is_some_and(|c| c.long_context),
                        version_id,
                        e.source.as_str(),
                        e.estimated,
                        e.finish_reason,
                        fp.prompt_simhash.map(|h| h as i64),
                        fp.completion_simhash.map(|h| h as i64),
                        fp.completion_compress_permille,
                        fp.prompt_chars.map(|n| n as i64),
                        fp.completion_chars.map(|n| n as i64),
                        received_at,
                    ];
                    let mut changed = insert.execute(values)?;
                    if changed == 0
                        && e.source == Source::Gateway
                        && let Some(earlier) = take_superseded(&tx, "= $1", &e.id)?.pop()
                    {
                        superseded.push(earlier);
                        changed = insert.execute(values)?;
                    }
                    if changed == 0 {
                        outcome.duplicates += 1;
                        continue;
                    }
                    outcome.inserted += 1;
                    outcome.unpriced += u64::from(cost.is_none());
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
                    rollups.add(
                        e.timestamp,
                        dims,
                        provider,
                        &e.model,
                        &RollupDelta::of_event(&e.tokens, cost, e.estimated),
                    );
                }
                // Telemetry or logs that knew these calls only by their message ids: one
                // statement for the batch (one per call cost a fifth of the gateway's write
                // rate), none when no event is keyed by a message id at all.
                if from_gateway
                    && !answered_messages.is_empty()
                    && tx.prepare_cached(ANY_MESSAGE_KEYED_SQL)?.exists([])?
                {
                    let ids = serde_json::Value::from(std::mem::take(&mut answered_messages)).to_string();
                    superseded.extend(take_superseded(&tx, "IN (SELECT value FROM json_each($1))", &ids)?);
                }
            }
        }
        outcome.superseded = superseded.len() as u64;
        for earlier in &superseded {
            earlier.remove_from(&mut rollups);
        }
        apply_rollups(&tx, &rollups)?;
        tx.commit()?;
        Ok(outcome)
    }

    fn reprice(&mut self, prices: &PriceTable, scope: RepriceScope) -> Result<RepriceOutcome, StoreError> {
        let Writer { conn, names } = self;
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

const INSERT_EVENT: &str = "INSERT INTO usage_events (event_id, ts, user_id, team_id, project_id, agent_id, task, session, \
    provider, model, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, \
    reasoning_tokens, cost_nanos, long_context, price_version_id, source, estimated, finish_reason, prompt_simhash, \
    completion_simhash, completion_compress_permille, prompt_chars, completion_chars, received_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, \
    ?24, ?25, ?26, ?27, ?28) ON CONFLICT (event_id) DO NOTHING";

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

fn apply_rollups(tx: &Transaction<'_>, rollups: &Rollups<'_>) -> Result<(), StoreError> {
    for (table, rows) in rollup_tables(rollups) {
        let mut upsert = tx.prepare_cached(&rollup::rollup_upsert_sql(table, rollup::RollupRows::Values))?;
        for (key, d) in rows {
            let (ids, values) = (key.ids(), d.values());
            let mut row: Vec<&dyn rusqlite::ToSql> = ids.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
            row.extend([&key.provider as &dyn rusqlite::ToSql, &key.model]);
            row.extend(values.iter().map(|v| v as &dyn rusqlite::ToSql));
            upsert.execute(row.as_slice())?;
            if d.requests < 0 {
                tx.prepare_cached(&rollup::prune_rollup_sql(table))?
                    .execute(&row[..7])?;
            }
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
        let version = price_version.to_owned();
        self.write(move |w| w.insert_usage(&events, &version)).await
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
        self.write(move |w| w.reprice(&prices, scope)).await
    }

    async fn event_count(&self) -> Result<u64, StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM usage_events", [], |r| r.get::<_, i64>(0))? as u64))
            .await
    }
}

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            Ok(conn
                .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn set_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |w| {
            let changed = w.conn.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, value],
            )?;
            Ok(changed == 1)
        })
        .await
    }
}

fn read_key(r: &rusqlite::Row<'_>) -> rusqlite::Result<VirtualKey> {
    Ok(VirtualKey {
        id: r.get(0)?,
        name: r.get(1)?,
        scope: KeyScope {
            user: r.get(2)?,
            team: r.get(3)?,
            project: r.get(4)?,
            agent: r.get(5)?,
        },
        created_at: Micros(r.get(6)?),
        expires_at: r.get::<_, Option<i64>>(7)?.map(Micros),
        revoked_at: r.get::<_, Option<i64>>(8)?.map(Micros),
        replaced_by: r.get(9)?,
        limits: RateLimits {
            requests_per_minute: r.get::<_, Option<i64>>(10)?.map(|n| n.max(0) as u64),
            tokens_per_minute: r.get::<_, Option<i64>>(11)?.map(|n| n.max(0) as u64),
        },
    })
}

fn insert_key(conn: &Connection, key: &VirtualKey, key_hash: &str) -> Result<(), StoreError> {
    let s = &key.scope;
    conn.prepare_cached(keys::INSERT)?.execute(params![
        key.id,
        key_hash,
        key.name,
        s.user,
        s.team,
        s.project,
        s.agent,
        key.created_at.0,
        key.expires_at.map(|m| m.0),
        key.limits.requests_per_minute.map(|n| n as i64),
        key.limits.tokens_per_minute.map(|n| n as i64),
    ])?;
    Ok(())
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn insert_alert(&self, alert: &Alert) -> Result<bool, StoreError> {
        let a = alert.clone();
        self.write(move |w| {
            let inserted = w.conn.prepare_cached(alerts::INSERT)?.execute(params![
                a.id,
                a.kind.as_str(),
                a.budget_id,
                a.scope,
                a.message,
                a.created_at.0,
            ])?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn alerts(&self, from: Micros, to: Micros) -> Result<Vec<StoredAlert>, StoreError> {
        self.read(move |conn| {
            let rows: Vec<alerts::Row> = conn
                .prepare_cached(alerts::SELECT)?
                .query_map(params![from.0, to.0], |r| {
                    Ok(alerts::Row {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        budget_id: r.get(2)?,
                        scope: r.get(3)?,
                        message: r.get(4)?,
                        created_at: r.get(5)?,
                        delivered_at: r.get(6)?,
                        attempts: r.get(7)?,
                        last_error: r.get(8)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter().map(alerts::Row::into_alert).collect()
        })
        .await
    }

    async fn alert_attempt(&self, id: &str, delivered: Option<Micros>, error: Option<&str>) -> Result<(), StoreError> {
        let (id, error) = (id.to_owned(), error.map(str::to_owned));
        self.write(move |w| {
            w.conn
                .execute(alerts::ATTEMPT, params![delivered.map(|d| d.0), error, id])?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl BudgetStore for SqliteStore {
    async fn create_budget(&self, budget: &Budget) -> Result<(), StoreError> {
        let b = budget.clone();
        self.write(move |w| {
            w.conn.prepare_cached(budgets::INSERT)?.execute(params![
                b.id,
                b.scope.kind(),
                b.scope.name(),
                b.period.as_str(),
                b.limit.0,
                b.token_limit.map(|t| t as i64),
                b.action.as_str(),
                budgets::thresholds(&b.thresholds),
                b.timezone,
                b.created_at.0,
            ])?;
            Ok(())
        })
        .await
    }

    async fn budgets(&self) -> Result<Vec<Budget>, StoreError> {
        self.read(|conn| {
            let sql = format!("SELECT {} FROM budgets {}", budgets::COLUMNS, budgets::LIVE);
            let rows: Vec<budgets::Row> = conn
                .prepare_cached(&sql)?
                .query_map([], |r| {
                    Ok(budgets::Row {
                        id: r.get(0)?,
                        scope_kind: r.get(1)?,
                        scope_name: r.get(2)?,
                        period: r.get(3)?,
                        limit_nanos: r.get(4)?,
                        limit_tokens: r.get(5)?,
                        action: r.get(6)?,
                        thresholds: r.get(7)?,
                        timezone: r.get(8)?,
                        created_at: r.get(9)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter().map(budgets::Row::into_budget).collect()
        })
        .await
    }

    async fn delete_budget(&self, id: &str, at: Micros) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |w| Ok(w.conn.execute(budgets::DELETE, params![at.0, id])? == 1))
            .await
    }

    async fn spend(&self, scope: &BudgetScope, from: Micros, to: Micros) -> Result<Spend, StoreError> {
        let scope = scope.clone();
        self.read(move |conn| spend_on(conn, &scope, from, to, Sources::All))
            .await
    }
}

/// What `scope` spent in `[from, to)` from `sources`.
fn spend_on(
    conn: &Connection,
    scope: &BudgetScope,
    from: Micros,
    to: Micros,
    sources: Sources,
) -> Result<Spend, StoreError> {
    let sql = budgets::spend(scope.kind(), sources);
    let mut statement = conn.prepare_cached(&sql)?;
    let read = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, i64, i64)> { Ok((r.get(0)?, r.get(1)?, r.get(2)?)) };
    let (cost, tokens, requests) = if sql.contains("$3") {
        statement.query_row(params![from.0, to.0, scope.name().unwrap_or_default()], read)?
    } else {
        statement.query_row(params![from.0, to.0], read)?
    };
    Ok(Spend {
        cost: Nanos(cost),
        tokens: tokens.max(0) as u64,
        requests: requests.max(0) as u64,
    })
}

fn read_amount(r: &rusqlite::Row<'_>) -> rusqlite::Result<Amount> {
    Ok(Amount {
        cost: Nanos(r.get(0)?),
        tokens: r.get::<_, i64>(1)?.max(0) as u64,
        requests: 0,
    })
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn lease_budget(&self, request: &LeaseRequest<'_>) -> Result<Option<Amount>, StoreError> {
        let (budget, window, instance) = (request.budget.clone(), request.window, request.instance.to_owned());
        let (want, need, now) = (request.want, request.need, request.now);
        self.write(move |w| {
            let tx = w
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let (id, start, end) = (&budget.id, window.start.0, leases::window_end(&window));
            let until = Micros(end.unwrap_or(i64::MAX));
            let pool = tx
                .query_row(leases::SELECT_POOL, params![id, start], read_amount)
                .optional()?;
            let base = match pool {
                Some(base) => base,
                None => {
                    let base = leases::amount(spend_on(&tx, &budget.scope, window.start, until, Sources::Gateway)?);
                    let old = now.0.saturating_sub(leases::POOL_RETENTION_MICROS);
                    tx.execute(leases::DELETE_OLD_LEASES, params![old])?;
                    tx.execute(leases::DELETE_OLD_POOLS, params![old])?;
                    tx.execute(
                        leases::OPEN_POOL,
                        params![id, start, end, base.cost.0, base.tokens as i64, now.0],
                    )?;
                    base
                }
            };
            let leased = tx.query_row(leases::LEASED, params![id, start], read_amount)?;
            let others = leases::amount(spend_on(&tx, &budget.scope, window.start, until, Sources::Others)?);
            let taken = base.saturating_add(leased).saturating_add(others);
            let granted = limits::grant_lease(&limits::budget_limits(&budget), taken, want, need);
            if let Some(g) = granted {
                tx.execute(
                    leases::GRANT,
                    params![id, start, instance, g.cost.0, g.tokens as i64, now.0],
                )?;
            }
            tx.commit()?;
            Ok(granted)
        })
        .await
    }

    async fn return_lease(
        &self,
        budget_id: &str,
        window_start: Micros,
        instance: &str,
        unused: Amount,
    ) -> Result<(), StoreError> {
        let (budget_id, instance) = (budget_id.to_owned(), instance.to_owned());
        self.write(move |w| {
            w.conn.execute(
                leases::GIVE_BACK,
                params![
                    unused.cost.0,
                    unused.tokens as i64,
                    now_micros().0,
                    budget_id,
                    window_start.0,
                    instance
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn take_rate(
        &self,
        bucket: &RateBucket<'_>,
        want: u64,
        need: u64,
        now: Micros,
    ) -> Result<Result<u64, Option<i64>>, StoreError> {
        self.update_bucket(bucket, now, move |b| b.take_up_to(want, need, now))
            .await
    }

    async fn return_rate(&self, bucket: &RateBucket<'_>, unused: u64, now: Micros) -> Result<(), StoreError> {
        self.update_bucket(bucket, now, move |b| {
            b.give_back(unused, now);
            Ok::<_, ()>(())
        })
        .await
        .map(|_| ())
    }
}

fn insert_facts_in(tx: &Transaction<'_>, facts: &[(String, Fact)]) -> Result<FactsOutcome, StoreError> {
    let mut statement = tx.prepare_cached(outcomes::INSERT_FACT)?;
    let mut outcome = FactsOutcome::default();
    let now = now_micros().0;
    for (id, fact) in facts {
        let inserted = statement.execute(params![id, fact.kind(), fact.at().0, outcomes::payload(fact), now])?;
        if inserted == 1 {
            outcome.inserted += 1;
        } else {
            outcome.duplicates += 1;
        }
    }
    Ok(outcome)
}

#[async_trait]
impl OutcomeStore for SqliteStore {
    async fn insert_facts(&self, facts: Vec<(String, Fact)>) -> Result<FactsOutcome, StoreError> {
        self.write(move |w| {
            let tx = w.conn.transaction()?;
            let outcome = insert_facts_in(&tx, &facts)?;
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn insert_delivery(
        &self,
        delivery: &str,
        event: &str,
        facts: Vec<(String, Fact)>,
    ) -> Result<Option<FactsOutcome>, StoreError> {
        let (delivery, event) = (delivery.to_owned(), event.to_owned());
        self.write(move |w| {
            let tx = w.conn.transaction()?;
            if tx.execute(outcomes::INSERT_DELIVERY, params![delivery, event, now_micros().0])? == 0 {
                return Ok(None);
            }
            let outcome = insert_facts_in(&tx, &facts)?;
            tx.commit()?;
            Ok(Some(outcome))
        })
        .await
    }

    async fn facts_before(&self, to: Micros) -> Result<Vec<(String, Fact)>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(outcomes::FACTS_BEFORE)?;
            let rows = statement.query_map(params![to.0], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            rows.map(|row| {
                let (id, payload) = row?;
                outcomes::parse(id, &payload)
            })
            .collect()
        })
        .await
    }

    async fn github_user(&self, login: &str) -> Result<Option<String>, StoreError> {
        let login = login.to_owned();
        self.read(move |conn| {
            Ok(conn
                .query_row(outcomes::GITHUB_USER, params![login], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn map_github_login(&self, login: &str, user: &str) -> Result<(), StoreError> {
        let (login, user) = (login.to_owned(), user.to_owned());
        self.write(move |w| {
            w.conn.execute(outcomes::MAP_LOGIN, params![login, user])?;
            Ok(())
        })
        .await
    }

    async fn github_logins(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(outcomes::LOGINS)?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

impl SqliteStore {
    /// Runs `change` on a key's shared bucket in one write transaction and saves the result.
    async fn update_bucket<T: Send + 'static, E: Send + 'static>(
        &self,
        bucket: &RateBucket<'_>,
        now: Micros,
        change: impl FnOnce(&mut TokenBucket) -> Result<T, E> + Send + 'static,
    ) -> Result<Result<T, E>, StoreError> {
        let (key, resource, capacity, per_minute) = (
            bucket.key_id.to_owned(),
            bucket.resource,
            bucket.capacity,
            bucket.per_minute,
        );
        let kind = resource.as_str();
        self.write(move |w| {
            let bucket = RateBucket {
                key_id: &key,
                resource,
                capacity,
                per_minute,
            };
            let tx = w
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let stored = tx
                .query_row(leases::SELECT_BUCKET, params![key, kind], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let mut state = leases::load_bucket(&bucket, stored, now);
            let outcome = change(&mut state);
            let (level, updated) = leases::stored_bucket(&state);
            tx.execute(leases::SAVE_BUCKET, params![key, kind, level, updated])?;
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn create_key(&self, key: &VirtualKey, key_hash: &str) -> Result<(), StoreError> {
        let (key, key_hash) = (key.clone(), key_hash.to_owned());
        self.write(move |w| insert_key(&w.conn, &key, &key_hash)).await
    }

    async fn keys(&self) -> Result<Vec<VirtualKey>, StoreError> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {} FROM virtual_keys ORDER BY created_at DESC, id",
                keys::COLUMNS
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let keys = stmt.query_map([], read_key)?.collect::<Result<_, _>>()?;
            Ok(keys)
        })
        .await
    }

    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<VirtualKey>, StoreError> {
        let key_hash = key_hash.to_owned();
        self.read(move |conn| {
            let sql = format!("SELECT {} FROM virtual_keys WHERE key_hash = $1", keys::COLUMNS);
            Ok(conn.prepare_cached(&sql)?.query_row([key_hash], read_key).optional()?)
        })
        .await
    }

    async fn revoke_key(&self, id: &str, at: Micros) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |w| Ok(w.conn.execute(keys::REVOKE, params![at.0, None::<String>, id])? == 1))
            .await
    }

    async fn replace_key(
        &self,
        old_id: &str,
        new: &VirtualKey,
        new_hash: &str,
        at: Micros,
    ) -> Result<bool, StoreError> {
        let (old_id, new, new_hash) = (old_id.to_owned(), new.clone(), new_hash.to_owned());
        self.write(move |w| {
            let tx = w
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if tx.execute(keys::REVOKE, params![at.0, new.id, old_id])? != 1 {
                return Ok(false);
            }
            insert_key(&tx, &new, &new_hash)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}

fn read_finding(r: &rusqlite::Row<'_>) -> rusqlite::Result<findings::Row> {
    Ok(findings::Row {
        id: r.get(0)?,
        subject_kind: r.get(1)?,
        subject: r.get(2)?,
        user: r.get(3)?,
        detector: r.get(4)?,
        signals: r.get(5)?,
        evidence: r.get(6)?,
        numbers: [
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
            r.get(12)?,
            r.get(13)?,
            r.get(14)?,
        ],
        status: r.get(15)?,
        decided_at: r.get(16)?,
        note: r.get(17)?,
    })
}

fn query_findings(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<findings::StoredFinding>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(params, read_finding)?;
    rows.map(|row| row?.into_finding()).collect()
}

#[async_trait]
impl FindingStore for SqliteStore {
    async fn waste_calls(&self, from: Micros, to: Micros) -> Result<Vec<Call>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&findings::calls_sql())?;
            let rows = statement.query_map(params![from.0, to.0], |r| {
                Ok(Call::from(findings::CallRow {
                    at: r.get(0)?,
                    user: r.get(1)?,
                    agent: r.get(2)?,
                    session: r.get(3)?,
                    cost: r.get(4)?,
                    tokens: r.get(5)?,
                    truncated: r.get(6)?,
                    prompt_simhash: r.get(7)?,
                    completion_simhash: r.get(8)?,
                    completion_compress_permille: r.get(9)?,
                }))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn record_findings(
        &self,
        from: Micros,
        to: Micros,
        mut found: Vec<Finding>,
        now: Micros,
    ) -> Result<PassOutcome, StoreError> {
        found.retain(|f| f.from >= from && f.from < to);
        self.write(move |w| {
            let tx = w
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let existing: Vec<(String, String)> = tx
                .prepare_cached(findings::IN_WINDOW)?
                .query_map(params![from.0, to.0], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let (new, updated, withdrawn) = findings::reconcile(&existing, &found);
            {
                let mut upsert = tx.prepare_cached(findings::UPSERT)?;
                for f in &found {
                    let p = findings::UpsertParams::of(f);
                    let [from_ts, to_ts, calls, tokens, wasted, confidence] = p.numbers;
                    upsert.execute(params![
                        f.id,
                        p.subject_kind,
                        f.subject,
                        f.user,
                        p.detector,
                        p.signals,
                        f.evidence,
                        from_ts,
                        to_ts,
                        calls,
                        tokens,
                        wasted,
                        confidence,
                        now.0
                    ])?;
                }
                let mut withdraw = tx.prepare_cached(findings::WITHDRAW)?;
                for id in &withdrawn {
                    withdraw.execute([id])?;
                }
            }
            tx.commit()?;
            Ok(PassOutcome {
                new,
                updated,
                withdrawn: withdrawn.len() as u64,
            })
        })
        .await
    }

    async fn findings(&self, from: Micros, to: Micros) -> Result<Vec<StoredFinding>, StoreError> {
        self.read(move |conn| query_findings(conn, &findings::select_window(), params![from.0, to.0]))
            .await
    }

    async fn decide_finding(
        &self,
        id: &str,
        status: FindingStatus,
        note: Option<&str>,
        at: Micros,
    ) -> Result<Option<StoredFinding>, StoreError> {
        let (id, note) = (id.to_owned(), note.map(str::to_owned));
        self.write(move |w| {
            if w.conn
                .execute(findings::DECIDE, params![status.as_str(), at.0, note, id])?
                == 0
            {
                return Ok(None);
            }
            Ok(query_findings(&w.conn, &findings::select_one(), params![id])?.pop())
        })
        .await
    }
}

#[async_trait]
impl ViewerStore for SqliteStore {
    async fn create_viewer(&self, token: &ViewerToken, token_hash: &str) -> Result<(), StoreError> {
        let (t, token_hash) = (token.clone(), token_hash.to_owned());
        self.write(move |w| {
            w.conn.execute(
                viewers::INSERT,
                params![t.id, token_hash, t.name, t.team, t.created_at.0, t.role.as_str()],
            )?;
            Ok(())
        })
        .await
    }

    async fn viewers(&self) -> Result<Vec<ViewerToken>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(viewers::SELECT_ALL)?;
            let rows = statement.query_map([], read_viewer)?;
            Ok(rows.map(|r| r.map(viewers::token)).collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn viewer_by_hash(&self, token_hash: &str) -> Result<Option<ViewerToken>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.read(move |conn| {
            let row = conn
                .prepare_cached(viewers::SELECT_BY_HASH)?
                .query_row([token_hash], read_viewer)
                .optional()?;
            Ok(row.map(viewers::token))
        })
        .await
    }

    async fn revoke_viewer(&self, id: &str, at: Micros) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |w| Ok(w.conn.execute(viewers::REVOKE, params![at.0, id])? == 1))
            .await
    }
}

fn read_viewer(r: &rusqlite::Row<'_>) -> rusqlite::Result<viewers::Row> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

#[async_trait]
impl TelemetryStore for SqliteStore {
    async fn insert_telemetry_points(&self, points: &[TelemetryPoint]) -> Result<u64, StoreError> {
        let points = points.to_vec();
        self.write(move |w| {
            let tx = w.conn.transaction()?;
            let mut inserted = 0;
            {
                let mut statement = tx.prepare_cached(telemetry::INSERT)?;
                for p in &points {
                    inserted += statement.execute(params![
                        p.id,
                        p.timestamp.0,
                        p.user,
                        p.session,
                        p.agent,
                        p.model,
                        p.kind.as_str(),
                        telemetry::stored_amount(p)
                    ])? as u64;
                }
            }
            tx.commit()?;
            Ok(inserted)
        })
        .await
    }

    async fn telemetry_points(&self, from: Micros, to: Micros) -> Result<Vec<TelemetryPoint>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(telemetry::SELECT)?;
            let rows = statement.query_map([from.0, to.0], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })?;
            let rows: Vec<telemetry::PointRow> = rows.collect::<Result<_, _>>()?;
            rows.into_iter().map(telemetry::point).collect()
        })
        .await
    }

    async fn recorded_sessions(&self, from: Micros, to: Micros) -> Result<Vec<RecordedSession>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(telemetry::RECORDED)?;
            let rows = statement.query_map([from.0, to.0], |r| {
                let mut n = [0i64; 8];
                for (i, slot) in n.iter_mut().enumerate() {
                    *slot = r.get(i + 1)?;
                }
                Ok(telemetry::session((r.get(0)?, n)))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}
