//! `goodhart demo`: the whole story on a simulated organisation, through the public API.
//!
//! Starts a server on its own database file with the built-in mock provider, loads weeks of
//! a simulated organisation's history through the ingest API and signed GitHub webhooks,
//! runs live traffic through the gateway (a runaway agent trips a hard cap), then prints the
//! volume ranking next to the value ranking, the top waste findings and the alerts.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_core::usage::TokenCounts;
use goodhart_core::{Micros, Nanos};
use goodhart_server::app::App;
use goodhart_server::app::query::Window;
use goodhart_server::config::{Config, Overrides, RawConfig};
use goodhart_server::provider_import::{ReportApi, ReportSource};
use goodhart_sim::mock_admin::{ADMIN_KEY, AdminData, DailyLine, faithful_lines};
use goodhart_sim::org::{Org, OrgSpec, Persona, simulate, usage_ndjson};
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::{Api, bar};
use serde_json::value::RawValue;
use serde_json::{Value, json};

pub struct DemoOptions {
    pub seed: u64,
    pub weeks: u32,
    /// Keep serving after the summary (until Ctrl-C).
    pub serve: bool,
    pub listen: String,
    pub database: PathBuf,
    /// How long the live traffic runs.
    pub live: Duration,
}

/// The daily hard cap of the runaway agent's budget, in USD.
const RUNAWAY_CAP_USD: &str = "1.00";
const RUNAWAY_AGENT: &str = "runaway-agent";
/// Usage events per ingest request.
const BATCH: usize = 5_000;

pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    say(&format!(
        "Goodhart demo: a simulated organisation (seed {}, {} weeks), the mock provider, database {}",
        options.seed,
        options.weeks,
        options.database.display()
    ));
    remove_database(&options.database)?;
    let mock = goodhart_sim::mock_provider::MockProvider::start().await?;
    let mock_base = mock.base_url();
    let secret = random_hex(16);
    let config = Config::resolve(
        RawConfig::from_toml(&format!(
            "[outcomes]\ngithub_webhook_secret = \"{secret}\"\nmin_team_members = 3\n\
             [reconciliation]\nimport_every_secs = 0\ngateway_keys = [\"{ANTHROPIC_GATEWAY_KEY}\", \"{OPENAI_GATEWAY_KEY}\"]\n\
             owners = {{ \"{NOTEBOOK_KEY}\" = \"research\" }}\n\
             [[providers]]\nname = \"mock\"\nprotocol = \"openai\"\nbase_url = \"{mock_base}/v1\"\n\
             [[providers]]\nname = \"mock\"\nprotocol = \"anthropic\"\nbase_url = \"{mock_base}\"\n"
        ))?,
        Overrides {
            listen: Some(options.listen.clone()),
            database_url: Some(format!("sqlite://{}", options.database.display())),
        },
    )?;
    let token = format!("demo-{}", random_hex(12));
    let (served, _) = goodhart_server::Server::start(&config, Some(&token), None).await?;
    let listener = match goodhart_server::serve::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            say(&format!("({e}; using a free port instead)"));
            goodhart_server::serve::bind("127.0.0.1:0".parse()?).await?
        }
    };
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    #[expect(clippy::disallowed_methods, reason = "the demo awaits its server before it returns")]
    let server = tokio::spawn(served.serve(listener, async move {
        tokio::select! {
            _ = stopped => {}
            () = goodhart_server::serve::shutdown_signal() => {}
        }
    }));
    let api = Api {
        client: goodhart_gateway::upstream::client(),
        base: format!("http://{addr}"),
        token: token.clone(),
    };

    let now = goodhart_store::now_micros();
    let today = now.floor_to(MICROS_PER_DAY);
    let spec = OrgSpec {
        seed: options.seed,
        weeks: options.weeks,
        start: Micros(today.0 - i64::from(options.weeks) * 7 * MICROS_PER_DAY),
        agent_farms: 1,
        ci_shippers: 1,
        ..OrgSpec::default()
    };
    let spinner = ProgressBar::new_spinner().with_message("simulating the organisation…");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let org = tokio::task::spawn_blocking(move || simulate(&spec)).await?;
    spinner.finish_and_clear();
    say(&format!(
        "Simulated {} people in {} teams: {} model calls, {} GitHub events, {} self-reported outcomes ({:.1} s)",
        org.people.len(),
        org.spec.teams,
        org.usage.len(),
        org.deliveries.len(),
        org.reported.len(),
        started.elapsed().as_secs_f64()
    ));
    load_history(&api, &org, &secret).await?;
    say(&format!("History loaded ({:.1} s)", started.elapsed().as_secs_f64()));
    let pass = api
        .post(
            &format!(
                "/api/v1/findings/detect?from={}&to={}",
                org.spec.start.rfc3339(),
                now.rfc3339()
            ),
            Bytes::new(),
        )
        .await?;
    say(&format!(
        "Waste detection: {} calls judged, {} findings",
        pass["calls"], pass["findings"]
    ));

    provider_bills(served.app(), &org, today).await?;

    let cap = live_traffic(&api, &org, options.live).await?;
    served
        .app()
        .gateway()
        .context("the server runs a gateway")?
        .flush()
        .await
        .context("flushing the gateway's spool")?;
    summary(&api, &org, now, &cap).await?;
    let team = org.people.first().map(|p| p.team.clone()).unwrap_or_default();
    let viewer = api
        .post(
            "/api/v1/tokens",
            json!({"team": team, "name": format!("{team} leads (demo)")}).to_string(),
        )
        .await?;
    say(&format!(
        "\nDashboard: http://{addr}/  (sign in with the admin token: {token})\n  \
         or read-only, limited to team {team}: {}\n  \
         OpenAI base URL http://{addr}/v1, Anthropic base URL http://{addr}; API http://{addr}/api/v1/…; \
         database {}",
        viewer["token"].as_str().unwrap_or_default(),
        options.database.display()
    ));
    if options.serve {
        say("Serving until Ctrl-C.");
    } else {
        let _ = stop.send(());
    }
    server.await??;
    served.shutdown().await;
    mock.shutdown().await;
    Ok(())
}

/// The provider key ids the demo's gateway sends upstream, and a notebook's key that bypasses it.
const ANTHROPIC_GATEWAY_KEY: &str = "apikey_01DemoGateway";
const OPENAI_GATEWAY_KEY: &str = "key_DemoGateway";
const NOTEBOOK_KEY: &str = "apikey_01ResearchNotebook";
const NOTEBOOK_MODEL: &str = "claude-3-5-haiku-20241022";

/// What the providers billed: mocks of their admin APIs report what Goodhart metered, made with
/// the gateway's keys, and Anthropic's also a research notebook's Claude 3.5 Haiku usage (a
/// model nobody else uses, so nothing of it is metered) of the day before yesterday (a day
/// always settled, whatever the hour, so it is judged) on a key used straight against the
/// provider; Goodhart imports both and reconciles.
async fn provider_bills(app: &App, org: &Org, today: Micros) -> anyhow::Result<()> {
    let first_day = org.spec.start.floor_to(MICROS_PER_DAY);
    let metered = app.store().metered_by_source(first_day, today).await?;
    let days = u32::try_from((today.0 - first_day.0) / MICROS_PER_DAY)?;
    let mut sources = Vec::new();
    for api in ReportApi::ALL {
        let key = match api {
            ReportApi::AnthropicAdmin => ANTHROPIC_GATEWAY_KEY,
            ReportApi::OpenAiAdmin => OPENAI_GATEWAY_KEY,
        };
        let mut lines = faithful_lines(&metered, api.provider(), first_day, key);
        if api == ReportApi::AnthropicAdmin {
            // $100 of batch jobs in a day.
            let tokens = TokenCounts {
                input: 50_000_000,
                cache_read: 150_000_000,
                output: 12_000_000,
                ..TokenCounts::default()
            };
            let cost = app
                .prices()
                .cost_of(Some("anthropic"), NOTEBOOK_MODEL, &tokens)
                .map_or(0, |c| c.total().0);
            lines.push(DailyLine {
                day: days - 2,
                model: NOTEBOOK_MODEL.into(),
                api_key_id: NOTEBOOK_KEY.into(),
                workspace: Some("wrkspc_01Research".into()),
                input: tokens.input,
                cache_read: tokens.cache_read,
                output: tokens.output,
                cost_nanos: cost,
            });
        }
        let data = AdminData {
            first_day,
            days,
            lines,
            ..AdminData::default()
        };
        let addr = goodhart_sim::mock_admin::spawn(Arc::new(data)).await?;
        sources.push(ReportSource {
            api,
            provider: api.provider().to_owned(),
            base_url: format!("http://{addr}"),
            admin_key: ADMIN_KEY.to_owned(),
        });
    }
    let alerts = app.import_bills(&goodhart_gateway::upstream::client(), &sources).await;
    let window = Window {
        from: first_day,
        to: today,
    };
    let bill = app.bill_reconciliation(window).await?;
    let dollars = |usd: &RawValue| Nanos::from_usd(usd.get()).map_or_else(|_| usd.get().to_owned(), |n| n.to_string());
    say(&format!(
        "Provider bills imported: billed {}, metered {}; {} by keys that bypass the gateway ({}); {} drift alert(s){}",
        dollars(&bill.billed_usd),
        dollars(&bill.metered_usd),
        bill.bypassing_usd.as_deref().map_or_else(|| "?".to_owned(), dollars),
        bill.bypassing_by_team
            .iter()
            .map(|t| t.team.as_deref().unwrap_or("no owner"))
            .collect::<Vec<_>>()
            .join(", "),
        alerts.len(),
        alerts.first().map_or_else(String::new, |a| format!(": {}", a.message))
    ));
    Ok(())
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

/// The demo starts from an empty database every time: its file, journal and spool go.
fn remove_database(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
        }
    }
    let spool = PathBuf::from(format!("{}-spool", path.display()));
    if spool.exists() {
        std::fs::remove_dir_all(&spool).with_context(|| format!("removing {}", spool.display()))?;
    }
    Ok(())
}

/// Usage through `POST /api/v1/usage`, GitHub events through signed `POST /hooks/github`,
/// self-reported outcomes through `POST /api/v1/outcomes`.
async fn load_history(api: &Api, org: &Org, secret: &str) -> anyhow::Result<()> {
    let usage = bar(org.usage.len() as u64, "usage events");
    for batch in org.usage.chunks(BATCH) {
        api.admin(
            "POST",
            "/api/v1/usage",
            "application/x-ndjson",
            usage_ndjson(batch).into(),
        )
        .await?;
        usage.inc(batch.len() as u64);
    }
    usage.finish_and_clear();
    let deliveries = bar(org.deliveries.len() as u64, "GitHub webhooks");
    for delivery in &org.deliveries {
        let body = delivery.payload.to_string();
        let signature = goodhart_server::api::hooks::sign(secret, body.as_bytes());
        let headers = [
            ("x-github-event", delivery.event),
            ("x-github-delivery", delivery.id.as_str()),
            ("x-hub-signature-256", signature.as_str()),
            ("content-type", "application/json"),
        ];
        let (status, reply) = api.send("POST", "/hooks/github", &headers, body.into()).await?;
        if status != 200 {
            bail!("GitHub delivery {} refused: HTTP {status}: {reply}", delivery.id);
        }
        deliveries.inc(1);
    }
    deliveries.finish_and_clear();
    #[expect(
        clippy::expect_used,
        reason = "plain structs of strings and numbers always serialise"
    )]
    let reported: Vec<String> = org
        .reported
        .iter()
        .map(|o| serde_json::to_string(o).expect("outcomes serialise"))
        .collect();
    if !reported.is_empty() {
        api.admin(
            "POST",
            "/api/v1/outcomes",
            "application/x-ndjson",
            reported.join("\n").into(),
        )
        .await?;
    }
    Ok(())
}

/// What the runaway agent did against its cap.
#[derive(Debug, Default)]
pub struct CapStory {
    pub calls_before_cap: u64,
    pub seconds_to_cap: Option<f64>,
    pub refused: u64,
}

/// A minute of live traffic through the gateway: a few engineers at a human pace, and a
/// runaway agent in a loop against a daily hard cap.
async fn live_traffic(api: &Api, org: &Org, duration: Duration) -> anyhow::Result<CapStory> {
    let person = |persona: Persona| org.people.iter().find(|p| p.persona == persona);
    let runaway_owner = person(Persona::Burner)
        .or_else(|| org.people.first())
        .context("an organisation without people")?;
    let runaway_key = api
        .post(
            "/api/v1/keys",
            json!({"user": runaway_owner.name, "team": runaway_owner.team, "agent": RUNAWAY_AGENT,
                   "name": "runaway agent (demo)"})
            .to_string(),
        )
        .await?["key"]
        .as_str()
        .context("a new key's secret")?
        .to_owned();
    api.post(
        "/api/v1/budgets",
        json!({"scope": "agent", "name": RUNAWAY_AGENT, "period": "day", "limit_usd": RUNAWAY_CAP_USD,
               "action": "block"})
        .to_string(),
    )
    .await?;
    let mut honest = Vec::new();
    for (i, p) in org
        .people
        .iter()
        .filter(|p| matches!(p.persona, Persona::HeavyShipper | Persona::Engineer))
        .take(3)
        .enumerate()
    {
        // The second engineer works with Gemini CLI, the others with Claude Code.
        let agent = if i == 1 { "gemini-cli" } else { "claude-code" };
        let key = api
            .post(
                "/api/v1/keys",
                json!({"user": p.name, "team": p.team, "agent": agent}).to_string(),
            )
            .await?["key"]
            .as_str()
            .context("a new key's secret")?
            .to_owned();
        honest.push(key);
    }
    say(&format!(
        "\nLive traffic for {} s through the gateway: {} engineers at a human pace, and {}'s {RUNAWAY_AGENT} \
         in a loop against a ${RUNAWAY_CAP_USD} daily hard cap",
        duration.as_secs(),
        honest.len(),
        runaway_owner.name
    ));
    let deadline = tokio::time::Instant::now() + duration;
    let calls = Arc::new(AtomicU64::new(0));
    let api = Arc::new(api.clone());
    let mut workers = Vec::new();
    for (i, key) in honest.into_iter().enumerate() {
        let (api, calls) = (Arc::clone(&api), Arc::clone(&calls));
        #[expect(
            clippy::disallowed_methods,
            reason = "the demo awaits every worker before it returns"
        )]
        workers.push(tokio::spawn(async move {
            let mut turn = 0u64;
            while tokio::time::Instant::now() < deadline {
                turn += 1;
                let ask = format!(
                    "Engineer {i}, step {turn}: review the retry logic in the payments client and suggest a fix \
                     for the timeout path, variant {}",
                    turn * 7919 % 104_729
                );
                // Claude Code speaks Anthropic's Messages API; Gemini CLI streams Gemini's.
                let (path, body, key_header) = if i == 1 {
                    let body = json!({"contents": [{"role": "user", "parts": [{"text": ask}]}],
                                      "generationConfig": {"maxOutputTokens": 512}});
                    (
                        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                        body,
                        "x-goog-api-key",
                    )
                } else {
                    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 512,
                                      "messages": [{"role": "user", "content": ask}]});
                    ("/v1/messages", body, "x-api-key")
                };
                let headers = [(key_header, key.as_str()), ("content-type", "application/json")];
                if api.send("POST", path, &headers, body.to_string().into()).await.is_ok() {
                    calls.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(1_000 + (turn * 613 % 2_000))).await;
            }
        }));
    }
    let progress = ProgressBar::new(duration.as_secs()).with_message("live traffic");
    #[expect(
        clippy::expect_used,
        reason = "the template is a constant, drawn by every test of the demo"
    )]
    progress.set_style(ProgressStyle::with_template("{msg:<24} [{bar:40}] {pos}/{len} s").expect("a valid template"));
    #[expect(clippy::disallowed_methods, reason = "the demo awaits this task before it returns")]
    let runaway = {
        let (api, calls, progress) = (Arc::clone(&api), Arc::clone(&calls), progress.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut story = CapStory::default();
            // One long context, asked again and again: what a stuck agent loop sends.
            let context = "Here is the whole repository again. ".repeat(1_200);
            let auth = format!("Bearer {runaway_key}");
            while tokio::time::Instant::now() < deadline {
                let body = json!({"model": "gpt-4o", "max_tokens": 4096, "messages": [
                    {"role": "user", "content": format!("{context}\nKeep trying until every test passes.")}]});
                let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
                let (status, reply) = match api
                    .send("POST", "/v1/chat/completions", &headers, body.to_string().into())
                    .await
                {
                    Ok(answer) => answer,
                    Err(_) => continue,
                };
                calls.fetch_add(1, Ordering::Relaxed);
                progress.set_position(started.elapsed().as_secs());
                if status == 429 {
                    story.refused += 1;
                    if story.seconds_to_cap.is_none() {
                        story.seconds_to_cap = Some(started.elapsed().as_secs_f64());
                        let message = reply["error"]["message"].as_str().unwrap_or("");
                        let line = format!(
                            "  {:>5.1} s  {RUNAWAY_AGENT} refused after {} calls: HTTP 429 — {message}",
                            started.elapsed().as_secs_f64(),
                            story.calls_before_cap
                        );
                        progress.suspend(|| say(&line));
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                } else {
                    story.calls_before_cap += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            story
        })
    };
    #[expect(clippy::disallowed_methods, reason = "the demo awaits this task before it returns")]
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            while tokio::time::Instant::now() < deadline {
                progress.set_position(started.elapsed().as_secs());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let story = runaway.await?;
    for worker in workers {
        worker.await?;
    }
    ticker.await?;
    progress.finish_and_clear();
    say(&format!(
        "{} calls through the gateway; {RUNAWAY_AGENT}: {} calls admitted, {}",
        calls.load(Ordering::Relaxed),
        story.calls_before_cap,
        match story.seconds_to_cap {
            Some(s) => format!("hard cap hit after {s:.1} s, {} calls refused with 429", story.refused),
            None => "cap not reached".to_owned(),
        }
    ));
    Ok(story)
}

fn persona_label(org: &Org, name: &str) -> &'static str {
    match org.person(name).map(|p| p.persona) {
        Some(Persona::Engineer) => "engineer",
        Some(Persona::HeavyShipper) => "heavy shipper",
        Some(Persona::Light) => "light user",
        Some(Persona::Burner) => "token burner",
        Some(Persona::OutcomeGamer) => "outcome gamer",
        Some(Persona::EvasiveBurner) => "evasive burner",
        Some(Persona::AgentFarm) => "agent farm",
        Some(Persona::CiShipper) => "CI shipper",
        None => "",
    }
}

/// The volume and value rankings side by side, the top findings and the alerts.
async fn summary(api: &Api, org: &Org, now: Micros, cap: &CapStory) -> anyhow::Result<()> {
    let window = format!(
        "from={}&to={}",
        org.spec.start.rfc3339(),
        Micros(now.0 + MICROS_PER_DAY).rfc3339()
    );
    let volume = api
        .get(&format!("/api/v1/leaderboard?{window}&by=user&metric=volume"))
        .await?;
    let value = api
        .get(&format!("/api/v1/leaderboard?{window}&by=user&metric=value"))
        .await?;
    let rows = |board: &Value| board["rows"].as_array().cloned().unwrap_or_default();
    let (volume, value) = (rows(&volume), rows(&value));
    say("\nThe old way: ranked by tokens (consumption)          Goodhart: ranked by value per person-week");
    for i in 0..10 {
        let left = volume.get(i).map_or_else(String::new, |r| {
            let name = r["subject"].as_str().unwrap_or("");
            let tokens = r["tokens"].as_u64().unwrap_or(0);
            format!(
                "{:>2}. {:<10} {:>7.1}M tok  {:<15}",
                i + 1,
                name,
                tokens as f64 / 1e6,
                persona_label(org, name)
            )
        });
        let right = value.get(i).map_or_else(String::new, |r| {
            let name = r["subject"].as_str().unwrap_or("");
            format!(
                "{:>2}. {:<10} {:>5.2}/wk  ${:<8.2} {}",
                i + 1,
                name,
                r["value"].as_f64().unwrap_or(0.0),
                r["cost_usd"].as_f64().unwrap_or(0.0),
                persona_label(org, name)
            )
        });
        say(&format!("{left:<52}  {right}"));
    }
    let last = |board: &[Value], persona: Persona| {
        board
            .iter()
            .position(|r| org.person(r["subject"].as_str().unwrap_or("")).map(|p| p.persona) == Some(persona))
            .map(|i| i + 1)
    };
    if let (Some(volume_rank), Some(value_rank)) = (last(&volume, Persona::Burner), last(&value, Persona::Burner)) {
        say(&format!(
            "The first token burner is #{volume_rank} by tokens and #{value_rank} of {} by value.",
            value.len()
        ));
    }

    let findings = api.get(&format!("/api/v1/findings?{window}")).await?;
    say(&format!(
        "\nWaste findings: {} (${:.2} of spend that bought nothing); the costliest:",
        findings["totals"]["findings"],
        findings["totals"]["wasted_usd"].as_f64().unwrap_or(0.0)
    ));
    for f in findings["findings"].as_array().into_iter().flatten().take(5) {
        let evidence = f["evidence"].as_str().unwrap_or("");
        let short: String = evidence.chars().take(150).collect();
        say(&format!(
            "  ${:<7.2} {} {} ({}), confidence {}: {short}{}",
            f["wasted_usd"].as_f64().unwrap_or(0.0),
            f["subject_kind"].as_str().unwrap_or(""),
            f["subject"].as_str().unwrap_or(""),
            f["user"].as_str().unwrap_or(""),
            f["confidence"],
            if short.len() < evidence.len() { "…" } else { "" }
        ));
    }

    let alerts = api
        .get(&format!("/api/v1/alerts?from={}", org.spec.start.rfc3339()))
        .await?;
    let alerts = alerts["alerts"].as_array().cloned().unwrap_or_default();
    say(&format!("\nAlerts: {}", alerts.len()));
    for a in alerts.iter().take(8) {
        let message = a["message"].as_str().unwrap_or("");
        let short: String = message.chars().take(150).collect();
        let more = if short.len() < message.len() { "…" } else { "" };
        say(&format!("  [{}] {short}{more}", a["kind"].as_str().unwrap_or("")));
    }
    if cap.seconds_to_cap.is_none() {
        say("(the runaway agent did not reach its cap in the time given: try a longer --live-secs)");
    }
    Ok(())
}
