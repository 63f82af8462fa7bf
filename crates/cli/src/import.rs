//! `goodhart import claude-code|codex [DIR]`: usage that never passed the gateway, read from
//! coding agents' local logs (Claude Code's session and subagent logs, Codex's rollouts) into
//! the local database or a remote server; and the imports from providers' and coding agents'
//! organisation APIs (bills, and activity that is never value).
//!
//! Every file is read line by line; a line that cannot be read is reported with its file and
//! line and the import goes on. One call counts once however many lines and files repeat it,
//! and its event id is the call's own, so importing the same logs again adds nothing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bytes::Bytes;
use goodhart_core::Micros;
use goodhart_core::agent_analytics::Tool;
use goodhart_core::agent_logs::{Calls, ClaudeCodeLog, CodexLog, LogReader, LoggedCall};
use goodhart_core::time::parse_bound;
use goodhart_core::usage::{IngestPolicy, Source, UsageEventInput};
use goodhart_server::agent_import::{AnalyticsSource, GITHUB_API, import_claude_code, import_copilot};
use goodhart_server::config::Config;
use goodhart_server::provider_import::{ReportApi, ReportSource, import_reports};
use goodhart_store::{InsertOutcome, PricedEvent};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{AnalyticsArgs, ReportArgs};
use crate::client::Api;

/// Events per request to a server.
const BATCH: usize = 5_000;
/// Events per transaction when writing to a database directly. Event ids from the logs are
/// random, so every transaction rewrote most leaf pages of the unique index on them: fewer,
/// larger transactions made a first import 25 % faster (5,000 → 50,000; BENCHMARKS.md),
/// while a batch ahead still fits in the memory the calls already take.
const LOCAL_BATCH: usize = 50_000;
/// Bytes read from a log file at a time.
const READ_BUFFER: usize = 1 << 20;
/// Unreadable lines listed in the summary (all are counted).
const LISTED_PROBLEMS: usize = 20;

/// Whose logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    ClaudeCode,
    Codex,
}

impl Agent {
    fn name(self) -> &'static str {
        match self {
            Agent::ClaudeCode => "Claude Code",
            Agent::Codex => "Codex",
        }
    }

    /// Where the agent keeps its logs, under the home directory.
    pub fn default_dir(self) -> &'static str {
        match self {
            Agent::ClaudeCode => ".claude/projects",
            Agent::Codex => ".codex/sessions",
        }
    }

    fn reader(self) -> Box<dyn LogReader> {
        match self {
            Agent::ClaudeCode => Box::new(ClaudeCodeLog),
            Agent::Codex => Box::new(CodexLog::default()),
        }
    }
}

/// Who the imported usage is attributed to, and where it goes.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub dir: PathBuf,
    pub user: String,
    pub team: Option<String>,
    /// Every event's project; by default the last part of its session's working directory.
    pub project: Option<String>,
    /// A server to send the usage to (with `token`) instead of the local database.
    pub server: Option<(String, String)>,
}

/// A line that could not be read.
#[derive(Debug)]
struct Problem {
    file: PathBuf,
    line: usize,
    reason: String,
}

/// Every `.jsonl` file below `dir`, in a stable order.
fn log_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder).with_context(|| format!("reading {}", folder.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[expect(
    clippy::expect_used,
    reason = "the template is a constant, drawn by every import test"
)]
fn progress(bytes: u64) -> ProgressBar {
    let bar = ProgressBar::new(bytes);
    bar.set_style(
        ProgressStyle::with_template(
            "reading logs [{bar:40}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Reads every log file: the calls, and the lines that could not be read. Files are shared out
/// among the machine's cores; the calls they record are merged (the same call in two files, as
/// a resumed session's copy of its parent, is still one).
fn read_logs(agent: Agent, files: &[PathBuf]) -> anyhow::Result<(Calls, Vec<Problem>, u64)> {
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress(total);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<anyhow::Result<(Calls, Vec<Problem>, u64)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let (mut calls, mut problems, mut lines) = (Calls::default(), Vec::new(), 0u64);
                    // Files are taken one at a time, so a few large ones do not leave a core idle.
                    while let Some(file) = files.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                        lines += read_file(agent, file, &bar, &mut calls, &mut problems)?;
                    }
                    Ok((calls, problems, lines))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a log reader panicked")))
            })
            .collect()
    });
    bar.finish_and_clear();
    let (mut calls, mut problems, mut lines) = (Calls::default(), Vec::new(), 0u64);
    for result in results {
        let (their_calls, their_problems, their_lines) = result?;
        calls.merge(their_calls);
        problems.extend(their_problems);
        lines += their_lines;
    }
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok((calls, problems, lines))
}

/// Reads one file into `calls` and `problems`; returns its number of lines.
fn read_file(
    agent: Agent,
    file: &Path,
    bar: &ProgressBar,
    calls: &mut Calls,
    problems: &mut Vec<Problem>,
) -> anyhow::Result<u64> {
    let mut reader = agent.reader();
    let mut lines_of_file = BufReader::with_capacity(
        READ_BUFFER,
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
    );
    // One buffer for every line of the file, and the progress bar moved once per buffer's worth.
    let mut line = Vec::new();
    let (mut lines, mut unreported) = (0u64, 0u64);
    loop {
        line.clear();
        let read = lines_of_file
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", file.display()))?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        unreported += read as u64;
        if unreported >= READ_BUFFER as u64 {
            bar.inc(unreported);
            unreported = 0;
        }
        lines += 1;
        let parsed = std::str::from_utf8(&line)
            .map_err(|e| format!("not UTF-8: {e}"))
            .and_then(|line| reader.line(line));
        match parsed {
            Ok(Some(call)) => calls.add(call),
            Ok(None) => {}
            Err(reason) => problems.push(Problem {
                file: file.to_owned(),
                line: lines as usize,
                reason,
            }),
        }
    }
    bar.inc(unreported);
    Ok(lines)
}

/// The usage event of a call, as the ingest API would take it.
fn event_input(response: &LoggedCall, options: &ImportOptions) -> UsageEventInput {
    let project = options.project.clone().or_else(|| {
        response
            .cwd
            .as_deref()
            .and_then(|cwd| Path::new(cwd).file_name())
            .map(|name| name.to_string_lossy().into_owned())
    });
    let t = &response.tokens;
    UsageEventInput {
        id: Some(response.id.clone()),
        timestamp: response.timestamp.rfc3339(),
        user: options.user.clone(),
        team: options.team.clone(),
        project,
        agent: Some(response.agent.into()),
        task: None,
        session: response.session.clone(),
        provider: Some(response.provider.into()),
        model: response.model.clone(),
        input_tokens: t.input,
        output_tokens: t.output,
        cache_read_tokens: t.cache_read,
        cache_write_tokens: t.cache_write_5m,
        cache_write_1h_tokens: t.cache_write_1h,
        reasoning_tokens: t.reasoning,
        prompt: None,
        completion: None,
        finish_reason: response.stop_reason.clone(),
    }
}

/// Batches of events made on a thread of their own (see [`batches`]).
struct Batches<T> {
    receiver: tokio::sync::mpsc::Receiver<anyhow::Result<T>>,
    maker: tokio::task::JoinHandle<()>,
}

impl<T: Send + 'static> Batches<T> {
    /// The next batch; `None` once every call is in one. A maker that panicked is an error
    /// here, never an import that silently stopped short.
    async fn next(&mut self) -> anyhow::Result<Option<T>> {
        match self.receiver.recv().await {
            Some(batch) => batch.map(Some),
            None => {
                (&mut self.maker).await.context("building the events")?;
                Ok(None)
            }
        }
    }
}

/// Turns `calls` into batches with `make` on a thread of its own, a batch ahead of the caller
/// who writes them: the events of the next batch are built, checked and priced while the
/// last is written. Each batch's calls are dropped once made.
fn batches<T: Send + 'static>(
    calls: Vec<LoggedCall>,
    size: usize,
    make: impl Fn(Vec<LoggedCall>) -> anyhow::Result<T> + Send + 'static,
) -> Batches<T> {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    let maker = tokio::task::spawn_blocking(move || {
        let mut calls = calls.into_iter();
        loop {
            let batch: Vec<LoggedCall> = calls.by_ref().take(size).collect();
            if batch.is_empty() {
                return;
            }
            let made = make(batch);
            let failed = made.is_err();
            // The writer stopped (it failed): nothing more is wanted.
            if sender.blocking_send(made).is_err() || failed {
                return;
            }
        }
    });
    Batches { receiver, maker }
}

/// Writes the calls' events where the options say, a batch at a time; returns what was stored.
async fn write(config: &Config, options: &ImportOptions, calls: Vec<LoggedCall>) -> anyhow::Result<InsertOutcome> {
    let mut total = InsertOutcome::default();
    if let Some((server, token)) = &options.server {
        let api = Api {
            client: goodhart_gateway::upstream::client(),
            base: server.trim_end_matches('/').to_owned(),
            token: token.clone(),
        };
        let options = options.clone();
        let mut bodies = batches(calls, BATCH, move |batch| {
            let mut body = String::new();
            for call in &batch {
                body.push_str(&serde_json::to_string(&event_input(call, &options))?);
                body.push('\n');
            }
            Ok(body)
        });
        let mut attributed_to = None;
        while let Some(body) = bodies.next().await? {
            let reply = api
                .admin("POST", "/api/v1/usage", "application/x-ndjson", Bytes::from(body))
                .await?;
            let count = |field: &str| reply[field].as_u64().unwrap_or(0);
            if let Some(person) = reply["attributed_to"].as_str().filter(|_| attributed_to.is_none()) {
                println!("The server attributes all of it to {person} (the token is theirs).");
                attributed_to = Some(person.to_owned());
            }
            total.inserted += count("accepted");
            total.duplicates += count("duplicates");
            total.unpriced += count("unpriced");
        }
        return Ok(total);
    }
    let store = crate::database::open_store(config).await?;
    let mut options = options.clone();
    if options.team.is_none() {
        // Usage that names no team is its person's home team's, where the directory has one.
        options.team = store
            .teams_of(std::slice::from_ref(&options.user))
            .await?
            .remove(&options.user);
    }
    let policy = IngestPolicy {
        store_content: false,
        source: Source::Import,
    };
    let prices = std::sync::Arc::clone(&config.prices);
    let mut priced = batches(calls, LOCAL_BATCH, move |batch| {
        batch
            .iter()
            .map(|call| {
                let event = event_input(call, &options)
                    .validate(policy)
                    .with_context(|| format!("response {}", call.id))?;
                let cost = prices.cost_of(event.provider.as_deref(), &event.model, &event.tokens);
                Ok(PricedEvent { event, cost })
            })
            .collect::<anyhow::Result<Vec<_>>>()
    });
    while let Some(batch) = priced.next().await? {
        let outcome = store.insert_usage(batch, config.prices.version()).await?;
        total.inserted += outcome.inserted;
        total.duplicates += outcome.duplicates;
        total.unpriced += outcome.unpriced;
    }
    Ok(total)
}

/// `goodhart import claude-code|codex`.
pub async fn import(config: &Config, agent: Agent, options: ImportOptions) -> anyhow::Result<()> {
    if !options.dir.is_dir() {
        bail!(
            "no {} logs at {}: pass the directory (default ~/{})",
            agent.name(),
            options.dir.display(),
            agent.default_dir()
        );
    }
    let started = std::time::Instant::now();
    let files = log_files(&options.dir)?;
    let (responses, problems, lines) = tokio::task::block_in_place(|| read_logs(agent, &files))?;
    let repeated = responses.repeated;
    let responses = responses.into_sorted();
    let (count, tokens) = (responses.len(), responses.iter().map(|r| r.tokens.total()).sum::<u64>());
    let outcome = write(config, &options, responses).await?;

    let destination = options
        .server
        .as_ref()
        .map_or_else(|| config.database_url.clone(), |(server, _)| server.clone());
    println!(
        "Read {} files ({lines} lines) in {:.1} s: {} model calls ({repeated} repeated lines counted once), {tokens} tokens.",
        files.len(),
        started.elapsed().as_secs_f64(),
        count,
    );
    println!(
        "Imported into {destination}: {} new, {} already there{}.",
        outcome.inserted,
        outcome.duplicates,
        if outcome.unpriced > 0 {
            format!(", {} with a model that has no price yet", outcome.unpriced)
        } else {
            String::new()
        }
    );
    if !problems.is_empty() {
        println!("{} lines could not be read (the rest was imported):", problems.len());
        for problem in problems.iter().take(LISTED_PROBLEMS) {
            println!("  {}:{}: {}", problem.file.display(), problem.line, problem.reason);
        }
        if problems.len() > LISTED_PROBLEMS {
            println!("  … and {} more", problems.len() - LISTED_PROBLEMS);
        }
    }
    Ok(())
}

/// `goodhart import anthropic-admin|openai-admin`: the provider's usage and cost reports into
/// the local database.
pub async fn provider_reports(config: &Config, api: ReportApi, args: ReportArgs) -> anyhow::Result<()> {
    let env = api.key_var();
    let admin_key = secret(env, "an admin key of the organisation")?;
    let now = goodhart_store::now_micros();
    let (from, to) = window(args.from.as_deref(), args.to.as_deref(), now)?;
    let source = ReportSource {
        api,
        provider: args.provider.unwrap_or_else(|| api.provider().to_owned()),
        base_url: args.base_url.unwrap_or_else(|| api.base_url().to_owned()),
        admin_key,
    };
    let store = crate::database::open_store(config).await?;
    let client = goodhart_gateway::upstream::client();
    let imported = import_reports(store.as_ref(), &client, &source, from, to, now).await?;
    for (name, report) in [("usage", &imported.usage), ("cost", &imported.cost)] {
        match &report.from {
            Some(from) => println!(
                "{} {name} report from {from}: {} pages, {} daily buckets, {} lines{}.",
                source.provider,
                report.pages,
                report.buckets,
                report.lines,
                if report.rate_limited > 0 {
                    format!(" ({} rate-limited answers waited out)", report.rate_limited)
                } else {
                    String::new()
                }
            ),
            None => println!(
                "{} {name} report: already imported up to {}.",
                source.provider,
                to.rfc3339()
            ),
        }
    }
    Ok(())
}

/// A credential from the environment variable `env` (never a flag, so it stays out of shell
/// history and process lists).
fn secret(env: &str, what: &str) -> anyhow::Result<String> {
    #[expect(
        clippy::disallowed_methods,
        reason = "credentials come from the environment, never a flag"
    )]
    std::env::var(env).with_context(|| format!("set {env} to {what}"))
}

/// An import's `--from` (none: where the last one stopped) and `--to` (default: `now`).
fn window(from: Option<&str>, to: Option<&str>, now: Micros) -> anyhow::Result<(Option<Micros>, Micros)> {
    let bound = |text: &str| parse_bound(text, now).map_err(anyhow::Error::msg);
    Ok((from.map(bound).transpose()?, to.map(bound).transpose()?.unwrap_or(now)))
}

/// `goodhart import claude-code-analytics|copilot-metrics`: what a coding agent's vendor
/// reports each person did, into the local database, as activity (never value).
pub async fn agent_analytics(config: &Config, tool: Tool, org: String, args: AnalyticsArgs) -> anyhow::Result<()> {
    let (env, what, base_url) = match tool {
        Tool::ClaudeCode => (
            ReportApi::AnthropicAdmin.key_var(),
            "an admin key of the Anthropic organisation",
            ReportApi::AnthropicAdmin.base_url(),
        ),
        Tool::Copilot => (
            "GITHUB_TOKEN",
            "a GitHub token that may read the organisation's Copilot metrics",
            GITHUB_API,
        ),
    };
    let source = AnalyticsSource {
        org,
        base_url: args.base_url.unwrap_or_else(|| base_url.to_owned()),
        key: secret(env, what)?,
    };
    let now = goodhart_store::now_micros();
    let (from, to) = window(args.from.as_deref(), args.to.as_deref(), now)?;
    let store = crate::database::open_store(config).await?;
    let client = goodhart_gateway::upstream::client();
    let imported = match tool {
        Tool::ClaudeCode => import_claude_code(store.as_ref(), &client, &source, from, to, now).await?,
        Tool::Copilot => import_copilot(store.as_ref(), &client, &source, from, to, now).await?,
    };
    let name = match tool {
        Tool::ClaudeCode => "Claude Code".to_owned(),
        Tool::Copilot => format!("Copilot ({})", source.org),
    };
    let Some(first) = &imported.from else {
        println!("{name} activity: already imported up to {}.", to.rfc3339());
        return Ok(());
    };
    println!(
        "{name} activity from {first}: {} days, {} requests, {} lines{}.",
        imported.days,
        imported.requests,
        imported.lines,
        if imported.rate_limited > 0 {
            format!(" ({} rate-limited answers waited out)", imported.rate_limited)
        } else {
            String::new()
        }
    );
    if !imported.missing_days.is_empty() {
        println!(
            "No report yet for {} (asked again next time).",
            imported.missing_days.join(", ")
        );
    }
    if !imported.unmatched.is_empty() {
        println!(
            "Not matched to a Goodhart user (kept, shown under their own name): {}.",
            imported.unmatched.join(", ")
        );
    }
    println!("Shown on people's pages as vendor-reported activity, never counted as value.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use goodhart_core::usage::TokenCounts;

    fn calls(n: usize) -> Vec<LoggedCall> {
        (0..n)
            .map(|i| LoggedCall {
                id: format!("req:{i}"),
                timestamp: Micros(i as i64),
                provider: "anthropic",
                agent: "claude-code",
                model: "claude-sonnet-4-5".to_owned(),
                tokens: TokenCounts::default(),
                session: None,
                cwd: None,
                stop_reason: None,
            })
            .collect()
    }

    async fn drain<T: Send + 'static>(mut batches: Batches<T>) -> (Vec<T>, Option<anyhow::Error>) {
        let mut made = Vec::new();
        loop {
            match batches.next().await {
                Ok(Some(batch)) => made.push(batch),
                Ok(None) => return (made, None),
                Err(e) => return (made, Some(e)),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_call_is_in_one_batch_in_order() {
        let (made, error) = drain(batches(calls(2 * BATCH + 1), BATCH, |batch| {
            Ok(batch.iter().map(|c| c.id.clone()).collect::<Vec<_>>())
        }))
        .await;
        assert!(error.is_none());
        assert_eq!(made.iter().map(Vec::len).collect::<Vec<_>>(), [BATCH, BATCH, 1]);
        let ids: Vec<String> = made.into_iter().flatten().collect();
        assert_eq!(ids, calls(2 * BATCH + 1).into_iter().map(|c| c.id).collect::<Vec<_>>());
        let (made, error) = drain(batches(Vec::new(), BATCH, |batch| Ok(batch.len()))).await;
        assert!(made.is_empty() && error.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_cannot_be_made_stops_the_import_with_its_reason() {
        let (made, error) = drain(batches(calls(3 * BATCH), BATCH, |batch| {
            if batch[0].id == format!("req:{BATCH}") {
                anyhow::bail!("response req:{BATCH}: no model");
            }
            Ok(batch.len())
        }))
        .await;
        assert_eq!(made, [BATCH], "the batches before it are written, none after");
        assert!(error.unwrap().to_string().contains("no model"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_maker_that_panics_is_an_error_not_a_short_import() {
        let (made, error) = drain(batches(calls(2 * BATCH), BATCH, |batch| {
            assert!(batch[0].id != format!("req:{BATCH}"), "a bug");
            Ok(batch.len())
        }))
        .await;
        assert_eq!(made, [BATCH]);
        assert!(error.is_some());
    }
}
