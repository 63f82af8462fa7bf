//! What each subcommand does, in terms of the library crates.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::Context;
use goodhart_core::Nanos;
use goodhart_core::agent_analytics::Tool;
use goodhart_core::value::{By, Metric};
use goodhart_server::app::AppError;
use goodhart_server::app::access::Access;
use goodhart_server::app::alerts::AlertJson;
use goodhart_server::app::audit::{AuditRequest, Event, Origin};
use goodhart_server::app::budgets::{BudgetView, NewBudget};
use goodhart_server::app::findings::FindingsQuery;
use goodhart_server::app::keys::{KeyView, NewKey};
use goodhart_server::app::query::{self, Window};
use goodhart_server::app::reports::{SummaryDocument, hours};
use goodhart_server::config::{Config, Overrides, RawConfig};
use goodhart_server::provider_import::ReportApi;
use goodhart_store::RepriceScope;

use crate::args::{
    BudgetsAction, Cli, Command, CreateBudget, FindingsAction, GithubAction, ImportSource, KeysAction, PeopleAction,
    PricesAction, ReportKind, SessionsAction, TokensAction, Unreachable,
};
use crate::database::{open_app, open_existing_app, open_existing_store};
use crate::output::{self, Format, Tabular, grouped};

/// A window's texts as the command line gives them.
struct WindowArgs {
    from: Option<String>,
    to: Option<String>,
}

impl WindowArgs {
    fn window(&self, app: &goodhart_server::app::App) -> anyhow::Result<Window> {
        Window::parse(self.from.as_deref(), self.to.as_deref(), app.now()).map_err(app_error)
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let file = match &cli.config {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    let listen = match &cli.command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let config = Config::resolve(
        file,
        Overrides {
            listen,
            database_url: cli.database_url.clone(),
        },
    )?;
    match cli.command {
        Command::Serve { .. } => serve(&config).await,
        // The demo brings its own configuration: its database, the mock provider, a secret.
        Command::Demo {
            seed,
            weeks,
            no_serve,
            live_secs,
            listen,
            database,
        } => {
            let options = crate::demo::DemoOptions {
                seed,
                weeks,
                serve: !no_serve,
                listen,
                database,
                live: std::time::Duration::from_secs(live_secs),
            };
            crate::demo::run(options).await
        }
        Command::Report {
            kind: Some(ReportKind::Roi { from, to, format }),
            ..
        } => roi(&config, &WindowArgs { from, to }, format).await,
        Command::Report {
            kind: Some(ReportKind::Reconcile { from, to, format }),
            ..
        } => reconcile(&config, &WindowArgs { from, to }, format).await,
        Command::Report {
            kind: None,
            group_by,
            from,
            to,
            since,
            format,
        } => {
            report(
                &config,
                &WindowArgs {
                    from: from.or(since),
                    to,
                },
                &group_by,
                format,
            )
            .await
        }
        Command::Keys { action } => keys(&config, action).await,
        Command::Tokens { action } => tokens(&config, action).await,
        Command::People { action } => people(&config, action).await,
        Command::Sessions { action } => sessions(&config, action).await,
        Command::Import { source } => {
            let (agent, args) = match source {
                ImportSource::ClaudeCode(args) => (crate::import::Agent::ClaudeCode, args),
                ImportSource::Codex(args) => (crate::import::Agent::Codex, args),
                ImportSource::AnthropicAdmin(args) => {
                    return crate::import::provider_reports(&config, ReportApi::AnthropicAdmin, args).await;
                }
                ImportSource::OpenaiAdmin(args) => {
                    return crate::import::provider_reports(&config, ReportApi::OpenAiAdmin, args).await;
                }
                ImportSource::ClaudeCodeAnalytics(args) => {
                    return crate::import::agent_analytics(&config, Tool::ClaudeCode, String::new(), args).await;
                }
                ImportSource::CopilotMetrics(args) => {
                    return crate::import::agent_analytics(&config, Tool::Copilot, args.org, args.window).await;
                }
            };
            #[expect(
                clippy::disallowed_methods,
                reason = "the importer's defaults are the user's own: HOME and USER"
            )]
            let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
            let dir = match (args.dir, home) {
                (Some(dir), _) => dir,
                (None, Some(home)) => home.join(agent.default_dir()),
                (None, None) => anyhow::bail!("no directory given and HOME is not set"),
            };
            #[expect(
                clippy::disallowed_methods,
                reason = "the importer's defaults are the user's own: HOME and USER"
            )]
            let user = args
                .user
                .or_else(|| std::env::var("USER").ok())
                .context("no --user given and USER is not set")?;
            let options = crate::import::ImportOptions {
                dir,
                user,
                team: args.team,
                project: args.project,
                server: args.server.zip(args.token),
            };
            crate::import::import(&config, agent, options).await
        }
        Command::Budgets { action } => budgets(&config, action).await,
        Command::Alerts { from, to, format } => alerts(&config, from, to, format).await,
        Command::Leaderboard {
            from,
            to,
            by,
            metric,
            format,
        } => leaderboard(&config, &WindowArgs { from, to }, (by.into(), metric.into()), format).await,
        Command::Findings {
            action: None,
            from,
            to,
            status,
            user,
            format,
        } => findings(&config, &WindowArgs { from, to }, (status, user), format).await,
        Command::Findings {
            action: Some(action), ..
        } => findings_action(&config, action).await,
        Command::Github { action } => github(&config, action).await,
        Command::Audit {
            actor,
            action,
            outcome,
            from,
            to,
            cursor,
            limit,
            format,
            json,
        } => {
            let request = AuditRequest {
                actor,
                action,
                outcome,
                from,
                to,
                cursor,
                limit,
            };
            audit(&config, request, if json { Format::Json } else { format }).await
        }
        Command::Prices { action: None, format } => list_prices(&config, format),
        Command::Prices {
            action: Some(PricesAction::Reprice { all }),
            ..
        } => reprice(&config, all).await,
        Command::Prices {
            action: Some(PricesAction::Unpriced { format }),
            ..
        } => unpriced(&config, format).await,
    }
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    // A secret: read from the environment, never taken as a flag (flags show in `ps`).
    #[expect(clippy::disallowed_methods, reason = "the admin token is a secret kept out of flags")]
    let admin_env = std::env::var("GOODHART_ADMIN_TOKEN").ok();
    let mock = match config.needs_mock_provider() {
        true => Some(goodhart_sim::mock_provider::MockProvider::start().await?),
        false => None,
    };
    let mock_base = mock.as_ref().map(goodhart_sim::mock_provider::MockProvider::base_url);
    let (server, generated) =
        goodhart_server::Server::start(config, admin_env.as_deref(), mock_base.as_deref()).await?;
    let listener = goodhart_server::serve::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    // One write for the whole banner: a reader that stops after the first lines must not
    // make later lines fail on a closed pipe.
    let mut out = String::new();
    if let Some(token) = generated {
        writeln!(
            out,
            "Generated an admin token. It is shown only this once and stored only as a hash:\n\n    {token}\n"
        )?;
        writeln!(
            out,
            "Use it as `Authorization: Bearer <token>`, or set GOODHART_ADMIN_TOKEN to choose your own."
        )?;
    }
    writeln!(
        out,
        "Goodhart listening on http://{addr} (database: {}, prices: {})",
        server.app().store().backend(),
        config.prices.version()
    )?;
    let gateway_config = server
        .app()
        .gateway()
        .context("the server runs a gateway")?
        .config()
        .clone();
    writeln!(
        out,
        "Gateway: OpenAI base URL http://{addr}/v1, Anthropic base URL http://{addr} (authenticate with a key from `goodhart keys create`)"
    )?;
    for provider in &gateway_config.providers {
        writeln!(
            out,
            "  {} protocol -> {} ({})",
            provider.protocol.as_str(),
            provider.name,
            provider.base_url
        )?;
    }
    if gateway_config.mock {
        writeln!(
            out,
            "No provider key set for some protocols: their calls go to the built-in mock provider (realistic usage, no cost).\n\
             Set OPENAI_API_KEY / ANTHROPIC_API_KEY, or configure [[providers]], to use real providers."
        )?;
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    drop(stdout);
    let served = server.serve(listener, goodhart_server::serve::shutdown_signal()).await;
    server.shutdown().await;
    if let Some(mock) = mock {
        mock.shutdown().await;
    }
    served?;
    Ok(())
}

async fn report(config: &Config, window: &WindowArgs, group_by: &str, format: Format) -> anyhow::Result<()> {
    let app = open_existing_app(config).await?;
    let query = query::summary_query(window.from.as_deref(), window.to.as_deref(), Some(group_by), app.now())
        .map_err(app_error)?;
    let document = app.summary(&query, None).await.map_err(app_error)?;
    let table = summary_table(&document, format == Format::Table);
    output::print(format, &document, &table, &mut std::io::stdout().lock())
}

async fn reconcile(config: &Config, window: &WindowArgs, format: Format) -> anyhow::Result<()> {
    let app = open_existing_app(config).await?;
    let document = app.bill_reconciliation(window.window(&app)?).await.map_err(app_error)?;
    let rows = document
        .rows
        .iter()
        .map(|r| {
            vec![
                r.day.clone(),
                r.provider.clone(),
                r.model.clone(),
                r.metered_tokens.to_string(),
                r.reported_tokens.to_string(),
                r.token_drift.to_string(),
                r.metered_usd.get().to_owned(),
                r.billed_usd.get().to_owned(),
                r.drift_usd.get().to_owned(),
                r.drift_percent.map_or_else(|| "-".to_owned(), |p| format!("{p:.1}%")),
                r.by_source.keys().copied().collect::<Vec<_>>().join("+"),
                match (r.covered, r.unmetered) {
                    (false, _) => "no bill",
                    (true, true) => "unmetered",
                    (true, false) => "",
                }
                .to_owned(),
            ]
        })
        .collect();
    let table = Tabular::new(
        &[
            "day",
            "provider",
            "model",
            "metered_tokens",
            "reported_tokens",
            "token_drift",
            "metered_usd",
            "billed_usd",
            "drift_usd",
            "drift",
            "metered_by",
            "note",
        ],
        rows,
    );
    let mut out = std::io::stdout().lock();
    if format == Format::Table {
        writeln!(
            out,
            "Metered {} against billed {} ({} drift; {} billed for models nothing metered; {} metered where no bill is imported, left out), {} to {}",
            document.metered_usd.get(),
            document.billed_usd.get(),
            document.drift_usd.get(),
            document.unmetered_usd.get(),
            document.not_covered_usd.get(),
            document.from,
            document.to
        )?;
        for day in document.days.iter().filter(|d| d.alert) {
            writeln!(
                out,
                "Past the threshold ({}% and ${}): {} {}, billed {} against {} metered",
                document.threshold.percent,
                document.threshold.min_usd.get(),
                day.provider,
                day.day,
                day.billed_usd.get(),
                day.metered_usd.get()
            )?;
        }
        for account in document.accounts.iter().filter(|a| a.route == "bypassing") {
            writeln!(
                out,
                "Bypassing the gateway: {} key {} ({}): {} tokens, ${} at list prices",
                account.provider,
                account.api_key_id.as_deref().unwrap_or("-"),
                account.team.as_deref().unwrap_or("no owner configured"),
                account.tokens,
                account.list_usd.get()
            )?;
        }
    }
    output::print(format, &document, &table, &mut out)
}

async fn roi(config: &Config, window: &WindowArgs, format: Format) -> anyhow::Result<()> {
    let app = open_existing_app(config).await?;
    let document = app.roi(window.window(&app)?, None).await.map_err(app_error)?;
    let money = |amount: Option<Nanos>| amount.map_or_else(|| "-".to_owned(), |a| a.usd_rounded(2));
    let rows = std::iter::once(&document.report.org)
        .chain(&document.report.teams)
        .enumerate()
        .map(|(i, row)| {
            let name = match (i, &row.team) {
                (0, _) => "ORGANISATION".to_owned(),
                (_, Some(team)) => team.clone(),
                (_, None) => "(no team)".to_owned(),
            };
            vec![
                name,
                row.people.to_string(),
                row.cost.usd_rounded(2),
                row.waste.usd_rounded(2),
                row.verified.values().sum::<u64>().to_string(),
                row.self_reported.values().sum::<u64>().to_string(),
                format!("{:.3}", row.value as f64 / 1_000.0),
                format!("{:.1}", hours(row.minutes_saved)),
                money(row.cost_per_outcome()),
                money(row.cost_per_normalised_deployment()),
                money(row.cost_per_hour_saved()),
            ]
        })
        .collect();
    let table = Tabular::new(
        &[
            "team",
            "people",
            "spend",
            "waste",
            "verified",
            "self_reported",
            "value",
            "hours_saved",
            "$/outcome",
            "$/norm_deploy",
            "$/hour_saved",
        ],
        rows,
    );
    let mut out = std::io::stdout().lock();
    if format == Format::Table {
        writeln!(
            out,
            "Return on AI spend — {} to {}",
            document.report.from.rfc3339(),
            document.report.to.rfc3339()
        )?;
        if let Some(forecast) = document.report.forecast {
            writeln!(
                out,
                "Spend forecast to the end of the window: {}",
                forecast.usd_rounded(2)
            )?;
        }
    }
    output::print(format, &document, &table, &mut out)
}

/// The summary as rows of cells: pretty for people, exact for CSV.
fn summary_table(document: &SummaryDocument, pretty: bool) -> Tabular {
    let mut header: Vec<String> = document.group_by.iter().map(|d| d.as_str().to_owned()).collect();
    let totals = if pretty {
        [
            "requests",
            "input",
            "output",
            "cache_read",
            "cache_write",
            "cache_write_1h",
            "reasoning",
            "cost",
            "unpriced",
            "estimated",
        ]
    } else {
        [
            "requests",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
            "reasoning_tokens",
            "cost_usd",
            "unpriced_requests",
            "estimated_requests",
        ]
    };
    header.extend(totals.iter().map(|s| s.to_string()));
    let count = |n: u64| if pretty { grouped(n) } else { n.to_string() };
    let mut rows: Vec<Vec<String>> = document
        .rows
        .iter()
        .map(|row| {
            let t = &row.totals.0;
            let mut cells: Vec<String> = row
                .key
                .iter()
                .map(|(_, v)| {
                    v.clone()
                        .unwrap_or_else(|| if pretty { "(none)".into() } else { String::new() })
                })
                .collect();
            cells.extend([
                count(t.requests),
                count(t.tokens.input),
                count(t.tokens.output),
                count(t.tokens.cache_read),
                count(t.tokens.cache_write_5m),
                count(t.tokens.cache_write_1h),
                count(t.tokens.reasoning),
                if pretty {
                    t.cost.usd_rounded(4)
                } else {
                    t.cost.usd_string()
                },
                count(t.unpriced_requests),
                count(t.estimated_requests),
            ]);
            cells
        })
        .collect();
    if pretty && !rows.is_empty() {
        let t = &document.totals.0;
        let mut cells = vec![String::new(); document.group_by.len()];
        if let Some(first) = cells.first_mut() {
            *first = "TOTAL".into();
        }
        cells.extend(
            [
                t.requests,
                t.tokens.input,
                t.tokens.output,
                t.tokens.cache_read,
                t.tokens.cache_write_5m,
                t.tokens.cache_write_1h,
                t.tokens.reasoning,
            ]
            .map(grouped),
        );
        cells.extend([
            t.cost.usd_rounded(4),
            grouped(t.unpriced_requests),
            grouped(t.estimated_requests),
        ]);
        rows.push(cells);
    }
    Tabular { header, rows }
}

fn list_prices(config: &Config, format: Format) -> anyhow::Result<()> {
    let prices = &config.prices;
    let header = [
        "provider",
        "model",
        "input",
        "output",
        "cache_read",
        "cache_write_5m",
        "cache_write_1h",
        "reasoning",
        "long_context_above",
        "aliases",
    ];
    let rows: Vec<Vec<String>> = prices
        .models()
        .iter()
        .map(|m| {
            let r = &m.rates;
            vec![
                m.provider.clone(),
                m.model.clone(),
                r.input.usd_per_mtok(),
                r.output.usd_per_mtok(),
                r.cache_read.usd_per_mtok(),
                r.cache_write_5m.usd_per_mtok(),
                r.cache_write_1h.usd_per_mtok(),
                r.reasoning.usd_per_mtok(),
                m.long_context
                    .map(|t| t.threshold_tokens.to_string())
                    .unwrap_or_default(),
                m.aliases.join(" "),
            ]
        })
        .collect();
    let json = serde_json::json!({
        "version": prices.version(),
        "unit": "USD per million tokens",
        "models": prices.models().iter().map(|m| serde_json::json!({
            "provider": m.provider, "model": m.model, "aliases": m.aliases,
            "input": m.rates.input.usd_per_mtok(), "output": m.rates.output.usd_per_mtok(),
            "cache_read": m.rates.cache_read.usd_per_mtok(), "cache_write_5m": m.rates.cache_write_5m.usd_per_mtok(),
            "cache_write_1h": m.rates.cache_write_1h.usd_per_mtok(), "reasoning": m.rates.reasoning.usd_per_mtok(),
            "long_context": m.long_context.map(|t| serde_json::json!({
                "threshold_tokens": t.threshold_tokens, "input": t.rates.input.usd_per_mtok(), "output": t.rates.output.usd_per_mtok(),
                "cache_read": t.rates.cache_read.usd_per_mtok(), "cache_write_5m": t.rates.cache_write_5m.usd_per_mtok(),
                "cache_write_1h": t.rates.cache_write_1h.usd_per_mtok(), "reasoning": t.rates.reasoning.usd_per_mtok(),
            })),
            "source": m.source,
        })).collect::<Vec<_>>(),
    });
    let mut out = std::io::stdout().lock();
    if format == Format::Table {
        writeln!(out, "Price table {} (USD per million tokens)\n", prices.version())?;
    }
    output::print(format, &json, &Tabular::new(&header, rows), &mut out)
}

async fn reprice(config: &Config, all: bool) -> anyhow::Result<()> {
    let app = open_existing_app(config).await?;
    let scope = if all { RepriceScope::All } else { RepriceScope::Unpriced };
    let outcome = app.store().reprice(&config.prices, scope).await?;
    let event = Event::new("prices.reprice").with(serde_json::json!({
        "scope": if all { "all" } else { "unpriced" },
        "price_version": config.prices.version(),
        "examined": outcome.examined,
        "repriced": outcome.repriced,
        "still_unpriced": outcome.still_unpriced,
    }));
    app.audit(&cli_origin(), event).await.map_err(app_error)?;
    println!(
        "Examined {} events with price table {}: {} repriced, {} still without a price.",
        outcome.examined,
        config.prices.version(),
        outcome.repriced,
        outcome.still_unpriced
    );
    if outcome.still_unpriced > 0 {
        println!("See them with `goodhart prices unpriced`; add prices under [[prices.model]] in the config file.");
    }
    Ok(())
}

async fn unpriced(config: &Config, format: Format) -> anyhow::Result<()> {
    let store = open_existing_store(config).await?;
    let models = store.unpriced_models().await?;
    let rows = models
        .iter()
        .map(|m| {
            vec![
                m.provider.clone().unwrap_or_default(),
                m.model.clone(),
                m.events.to_string(),
            ]
        })
        .collect();
    let json: Vec<_> = models
        .iter()
        .map(|m| serde_json::json!({ "provider": m.provider, "model": m.model, "events": m.events }))
        .collect();
    let table = Tabular {
        header: vec!["provider".into(), "model".into(), "events".into()],
        rows,
    };
    output::print(format, &json, &table, &mut std::io::stdout().lock())
}

async fn keys(config: &Config, action: KeysAction) -> anyhow::Result<()> {
    let app = open_app(config).await?;
    let now = app.now();
    let (views, format, secret_shown) = match action {
        KeysAction::Create {
            user,
            team,
            project,
            agent,
            name,
            expires,
            rpm,
            tpm,
            format,
        } => {
            let request = NewKey {
                user,
                team,
                project,
                agent,
                name,
                expires_in: expires,
                requests_per_minute: rpm,
                tokens_per_minute: tpm,
            };
            let (key, secret) = app.create_key(&cli_origin(), request).await.map_err(app_error)?;
            (vec![KeyView::of(&key, Some(secret), now)], format, true)
        }
        KeysAction::List { format } => {
            let keys = app.keys().await.map_err(app_error)?;
            (keys.iter().map(|k| KeyView::of(k, None, now)).collect(), format, false)
        }
        KeysAction::Revoke { id } => {
            let key = app.revoke_key(&cli_origin(), &id).await.map_err(app_error)?;
            println!("Revoked key {} ({}).", key.id, key.scope.user);
            return Ok(());
        }
        KeysAction::Rotate { id, format } => {
            let (key, secret) = app.rotate_key(&cli_origin(), &id).await.map_err(app_error)?;
            (vec![KeyView::of(&key, Some(secret), now)], format, true)
        }
    };
    if secret_shown && format == Format::Table {
        let view = &views[0];
        println!(
            "Created key {} for {}. Its secret is shown only now; store it:\n",
            view.id, view.user
        );
        println!("    {}\n", view.key.as_deref().unwrap_or_default());
        println!("Clients send it as `Authorization: Bearer <key>` or `x-api-key: <key>`.");
        return Ok(());
    }
    let header = [
        "id",
        "name",
        "user",
        "team",
        "project",
        "agent",
        "status",
        "created_at",
        "expires_at",
        "replaced_by",
    ];
    let rows = views
        .iter()
        .map(|v| {
            let cells = vec![
                v.id.clone(),
                cell(&v.name),
                v.user.clone(),
                cell(&v.team),
                cell(&v.project),
                cell(&v.agent),
                v.status.to_owned(),
                v.created_at.clone(),
                cell(&v.expires_at),
                cell(&v.replaced_by),
            ];
            (cells, v.key.clone())
        })
        .collect();
    let json = serde_json::json!({ "keys": views });
    print_with_secrets(format, &header, ("key", rows), &json)
}

/// A credential's cells, and its secret when it has just been created.
type CredentialRow = (Vec<String>, Option<String>);

/// Prints credentials as a table, CSV or JSON; when any row carries its secret (just created),
/// the secret is the second column, so CSV output does not lose the only copy of it.
fn print_with_secrets(
    format: Format,
    header: &[&str],
    (secret_title, rows): (&str, Vec<CredentialRow>),
    json: &serde_json::Value,
) -> anyhow::Result<()> {
    let shown = rows.iter().any(|(_, secret)| secret.is_some());
    let mut header = header.to_vec();
    if shown {
        header.insert(1, secret_title);
    }
    let rows = rows
        .into_iter()
        .map(|(mut cells, secret)| {
            if shown {
                cells.insert(1, secret.unwrap_or_default());
            }
            cells
        })
        .collect();
    output::print(
        format,
        json,
        &Tabular::new(&header, rows),
        &mut std::io::stdout().lock(),
    )
}

async fn tokens(config: &Config, action: TokensAction) -> anyhow::Result<()> {
    use goodhart_server::app::viewers::{NewViewer, ViewerView};
    let app = open_app(config).await?;
    let (views, format) = match action {
        TokensAction::Create {
            team,
            name,
            role,
            user,
            ingest,
            format,
        } => {
            let role = if ingest { Some("ingest".to_owned()) } else { role };
            let (token, secret) = app
                .create_token(&cli_origin(), NewViewer { name, team, role, user })
                .await
                .map_err(app_error)?;
            let view = ViewerView::of(&token, Some(secret));
            if format == Format::Table {
                let team = view.team.as_deref();
                let (what, next) = if ingest {
                    (
                        format!(
                            "ingest token {} (send-only{}{})",
                            view.id,
                            view.user
                                .as_ref()
                                .map_or(String::new(), |u| format!(", all of it {u}'s")),
                            team.map_or(String::new(), |t| format!(", team {t} by default"))
                        ),
                        "Exporters send it as `OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer <token>`.",
                    )
                } else if view.role == "scim" {
                    (
                        format!("scim token {} (provisions people and groups over SCIM)", view.id),
                        "Give it to your identity provider as the Bearer token of `<public_url>/scim/v2`.",
                    )
                } else {
                    let may = match view.role {
                        "manager" => "reads and decides findings",
                        "finops" => "reads, manages budgets and keys",
                        "engineer" => "reads their own",
                        _ => "read-only",
                    };
                    (
                        format!(
                            "{} token {} ({may}, {})",
                            view.role,
                            view.id,
                            match (&view.user, team) {
                                (Some(user), _) => format!("user {user}"),
                                (None, Some(team)) => format!("team {team}"),
                                (None, None) => "every team".to_owned(),
                            }
                        ),
                        "Sign in to the dashboard with it, or send it as `Authorization: Bearer <token>`.",
                    )
                };
                println!("Created {what}. Its secret is shown only now:\n");
                println!("    {}\n", view.token.as_deref().unwrap_or_default());
                println!("{next}");
                return Ok(());
            }
            (vec![view], format)
        }
        TokensAction::List { format } => {
            let tokens = app.tokens().await.map_err(app_error)?;
            (tokens.iter().map(|t| ViewerView::of(t, None)).collect(), format)
        }
        TokensAction::Revoke { id } => {
            let token = app.revoke_token(&cli_origin(), &id).await.map_err(app_error)?;
            println!("Revoked {} token {}.", token.role.as_str(), token.id);
            return Ok(());
        }
    };
    let header = ["id", "name", "team", "role", "status", "created_at", "revoked_at"];
    let rows = views
        .iter()
        .map(|v| {
            let cells = vec![
                v.id.clone(),
                cell(&v.name),
                cell(&v.team),
                v.role.to_owned(),
                v.status.to_owned(),
                v.created_at.clone(),
                cell(&v.revoked_at),
            ];
            (cells, v.token.clone())
        })
        .collect();
    let json = serde_json::json!({ "tokens": views });
    print_with_secrets(format, &header, ("token", rows), &json)
}

async fn people(config: &Config, action: PeopleAction) -> anyhow::Result<()> {
    use goodhart_server::app::directory::{GrantView, MemberView, NewGrant};
    let app = open_app(config).await?;
    match action {
        PeopleAction::List { format } => {
            let (people, grants) = (
                app.directory().await.map_err(app_error)?,
                app.role_grants().await.map_err(app_error)?,
            );
            let given: std::collections::HashMap<&str, &goodhart_store::directory::RoleGrant> =
                grants.iter().map(|g| (g.user.as_str(), g)).collect();
            let role_of = |user: &str| {
                given.get(user).map_or_else(
                    || "from groups".to_owned(),
                    |g| {
                        g.team
                            .as_ref()
                            .map_or(g.role.clone(), |team| format!("{} of {team}", g.role))
                    },
                )
            };
            let signed_in: std::collections::HashSet<&str> = people.iter().map(|p| p.user.as_str()).collect();
            let mut rows: Vec<Vec<String>> = people
                .iter()
                .map(|p| {
                    vec![
                        p.user.clone(),
                        cell(&p.team),
                        cell(&p.email),
                        role_of(&p.user),
                        p.updated_at.rfc3339(),
                    ]
                })
                .collect();
            rows.extend(
                grants
                    .iter()
                    .filter(|g| !signed_in.contains(&g.user.as_str()))
                    .map(|g| {
                        vec![
                            g.user.clone(),
                            String::new(),
                            String::new(),
                            role_of(&g.user),
                            "never".to_owned(),
                        ]
                    }),
            );
            let json = serde_json::json!({
                "people": people.iter().map(MemberView::of).collect::<Vec<_>>(),
                "grants": grants.iter().map(GrantView::of).collect::<Vec<_>>(),
            });
            let header = ["user", "home team", "email", "role", "last sign-in"];
            output::print(
                format,
                &json,
                &Tabular::new(&header, rows),
                &mut std::io::stdout().lock(),
            )
        }
        PeopleAction::Grant { user, role, team } => {
            let grant = app
                .grant_role(&cli_origin(), &user, NewGrant { role, team })
                .await
                .map_err(app_error)?;
            let team = grant.team.as_ref().map_or(String::new(), |t| format!(" of {t}"));
            println!(
                "{} is {}{team} from their next request on, whatever their groups say.",
                grant.user, grant.role
            );
            Ok(())
        }
        PeopleAction::Ungrant { user } => {
            let grant = app.revoke_role_grant(&cli_origin(), &user).await.map_err(app_error)?;
            println!(
                "{} no longer has the role {}: their groups decide again.",
                grant.user, grant.role
            );
            Ok(())
        }
    }
}

async fn sessions(config: &Config, action: SessionsAction) -> anyhow::Result<()> {
    use goodhart_server::app::sessions::SessionView;
    let app = open_existing_app(config).await?;
    match action {
        SessionsAction::List { format, json } => {
            let sessions = app.live_sessions().await.map_err(app_error)?;
            let views: Vec<SessionView> = sessions.iter().map(SessionView::of).collect();
            let rows = views
                .iter()
                .map(|v| {
                    vec![
                        v.id.clone(),
                        cell(&v.email),
                        cell(&v.name),
                        v.groups.join(","),
                        v.created_at.clone(),
                        v.expires_at.clone(),
                    ]
                })
                .collect();
            let table = Tabular::new(&["id", "email", "name", "groups", "created_at", "expires_at"], rows);
            let format = if json { Format::Json } else { format };
            let document = serde_json::json!({ "sessions": views });
            output::print(format, &document, &table, &mut std::io::stdout().lock())
        }
        SessionsAction::Revoke { id } => {
            app.revoke_session(&cli_origin(), &id).await.map_err(app_error)?;
            println!("Revoked session {id}: its cookie opens nothing from now on.");
            Ok(())
        }
    }
}

async fn budgets(config: &Config, action: BudgetsAction) -> anyhow::Result<()> {
    let app = open_app(config).await?;
    let (views, format): (Vec<BudgetView>, Format) = match action {
        BudgetsAction::Create(create) => {
            let CreateBudget {
                key,
                user,
                team,
                project,
                agent,
                org,
                daily,
                weekly,
                monthly,
                total,
                tokens,
                block,
                thresholds,
                timezone,
                when_store_unreachable,
                fail_open_percent,
                format,
            } = *create;
            let named = [
                ("key", key),
                ("user", user),
                ("team", team),
                ("project", project),
                ("agent", agent),
            ]
            .into_iter()
            .find_map(|(kind, name)| name.map(|n| (kind, Some(n))));
            // clap's group makes `--org` and a named scope exclusive, and one of them required.
            let (scope, name) = match named {
                Some(named) if !org => named,
                _ => ("org", None),
            };
            let (period, limit) = [("day", daily), ("week", weekly), ("month", monthly), ("total", total)]
                .into_iter()
                .find_map(|(period, limit)| limit.map(|l| (period, l)))
                .context("a limit is required (--daily, --weekly, --monthly or --total)")?;
            let request = NewBudget {
                scope: scope.into(),
                name,
                period: period.into(),
                limit_usd: serde_json::Value::String(limit),
                limit_tokens: tokens,
                action: Some(if block { "block" } else { "alert" }.into()),
                thresholds,
                timezone: Some(timezone),
                when_store_unreachable: when_store_unreachable.map(|policy| {
                    match policy {
                        Unreachable::FailClosed => "fail_closed",
                        Unreachable::FailOpen => "fail_open",
                    }
                    .to_owned()
                }),
                fail_open_percent,
            };
            (
                vec![app.create_budget(&cli_origin(), request).await.map_err(app_error)?],
                format,
            )
        }
        BudgetsAction::List { format } => (app.budgets(None).await.map_err(app_error)?, format),
        BudgetsAction::Show { id, format } => (vec![app.budget(&id, None).await.map_err(app_error)?], format),
        BudgetsAction::Delete { id } => {
            app.delete_budget(&cli_origin(), &id).await.map_err(app_error)?;
            println!("Deleted budget {id}.");
            return Ok(());
        }
    };
    let header = [
        "id",
        "scope",
        "name",
        "period",
        "action",
        "limit",
        "spent",
        "forecast",
        "requests",
        "resets_at",
        "timezone",
    ];
    let usd = |raw: &serde_json::value::RawValue| format!("${}", raw.get());
    let rows = views
        .iter()
        .map(|v| {
            vec![
                v.id.clone(),
                v.scope.to_owned(),
                v.name.clone().unwrap_or_default(),
                v.period.to_owned(),
                v.action.to_owned(),
                usd(&v.limit_usd),
                usd(&v.spent_usd),
                v.forecast_usd.as_deref().map(usd).unwrap_or_default(),
                v.requests.to_string(),
                v.resets_at.clone().unwrap_or_else(|| "never".into()),
                v.timezone.clone(),
            ]
        })
        .collect();
    let table = Tabular::new(&header, rows);
    let json = serde_json::json!({ "budgets": views });
    output::print(format, &json, &table, &mut std::io::stdout().lock())
}

/// A use case's error as the command line shows it: with the field or flag it is about, if any.
fn app_error(error: AppError) -> anyhow::Error {
    match error {
        AppError::InvalidField { field, message } => anyhow::anyhow!("{field}: {message}"),
        AppError::InvalidParameter { parameter, message } => anyhow::anyhow!("--{parameter}: {message}"),
        other => anyhow::anyhow!("{other}"),
    }
}

async fn alerts(config: &Config, from: Option<String>, to: Option<String>, format: Format) -> anyhow::Result<()> {
    let app = open_existing_app(config).await?;
    let window = WindowArgs { from, to }.window(&app)?;
    let alerts = app.alerts(window, None).await.map_err(app_error)?;
    let rows = alerts
        .iter()
        .map(|s| {
            vec![
                s.alert.created_at.rfc3339(),
                s.alert.kind.as_str().to_owned(),
                s.alert.scope.clone(),
                s.alert.message.clone(),
                s.delivered_at.map_or_else(|| "no".to_owned(), |_| "yes".to_owned()),
                s.attempts.to_string(),
            ]
        })
        .collect();
    let table = Tabular::new(
        &["created_at", "kind", "scope", "message", "delivered", "attempts"],
        rows,
    );
    let json: Vec<AlertJson> = alerts.iter().map(AlertJson::from).collect();
    output::print(
        format,
        &serde_json::json!({ "alerts": json }),
        &table,
        &mut std::io::stdout().lock(),
    )
}

async fn leaderboard(
    config: &Config,
    window: &WindowArgs,
    (by, metric): (By, Metric),
    format: Format,
) -> anyhow::Result<()> {
    let app = open_existing_app(config).await?;
    let Window { from, to } = window.window(&app)?;
    let query = app.board_query(from, to, by, metric);
    let document = app.leaderboard(&query, None).await.map_err(app_error)?;
    let rows = document
        .rows
        .iter()
        .map(|r| {
            vec![
                r.rank.to_string(),
                r.subject.clone(),
                format!("{:.3}", r.value),
                format!("{:.3}", r.efficiency),
                format!("{:.3}", r.value_total),
                r.person_weeks.to_string(),
                r.cost.usd_rounded(2),
                grouped(r.tokens),
                r.outcomes.to_string(),
                r.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(" "),
            ]
        })
        .collect();
    let table = Tabular::new(
        &[
            "rank",
            "subject",
            "value/pw",
            "value/$",
            "value",
            "person_wks",
            "cost",
            "tokens",
            "outcomes",
            "flags",
        ],
        rows,
    );
    let mut out = std::io::stdout().lock();
    if format == Format::Table {
        writeln!(out, "{} — {} to {}", document.label, document.from, document.to)?;
    }
    output::print(format, &document, &table, &mut out)
}

async fn github(config: &Config, action: GithubAction) -> anyhow::Result<()> {
    let app = open_app(config).await?;
    match action {
        GithubAction::Map { login, user } => {
            app.map_login(&cli_origin(), &login, &user).await.map_err(app_error)?;
            println!("GitHub login {login} is credited to {user} from now on.");
            Ok(())
        }
        GithubAction::Logins { format } => {
            let logins = app.logins().await.map_err(app_error)?;
            let table = Tabular {
                header: vec!["login".into(), "user".into()],
                rows: logins.iter().map(|l| vec![l.login.clone(), l.user.clone()]).collect(),
            };
            output::print(
                format,
                &serde_json::json!({ "logins": logins }),
                &table,
                &mut std::io::stdout().lock(),
            )
        }
    }
}

async fn findings(
    config: &Config,
    window: &WindowArgs,
    (status, user): (Option<String>, Option<String>),
    format: Format,
) -> anyhow::Result<()> {
    let app = open_existing_app(config).await?;
    let query = FindingsQuery {
        window: window.window(&app)?,
        status: status
            .as_deref()
            .map(query::finding_status)
            .transpose()
            .map_err(app_error)?,
        user,
    };
    let document = app.findings(&query, None).await.map_err(app_error)?;
    let rows = document
        .findings
        .iter()
        .map(|f| {
            vec![
                f.id.clone(),
                f.status.as_str().to_owned(),
                f.from[..10].to_owned(),
                match f.subject_kind {
                    "user" => f.subject.clone(),
                    _ => format!("{} {} ({})", f.subject_kind, f.subject, f.user),
                },
                f.detector.to_owned(),
                f.calls.to_string(),
                f.wasted.usd_rounded(2),
                format!("{:.2}", f.confidence),
                f.evidence.clone(),
            ]
        })
        .collect();
    let table = Tabular::new(
        &[
            "id",
            "status",
            "day",
            "subject",
            "detector",
            "calls",
            "wasted",
            "confidence",
            "evidence",
        ],
        rows,
    );
    output::print(format, &document, &table, &mut std::io::stdout().lock())
}

async fn findings_action(config: &Config, action: FindingsAction) -> anyhow::Result<()> {
    let app = open_existing_app(config).await?;
    let (id, status, note) = match action {
        FindingsAction::Detect { from, to, format } => {
            let window = WindowArgs { from, to }.window(&app)?;
            let report = app.detect(&cli_origin(), window).await.map_err(app_error)?;
            let table = Tabular::new(
                &[
                    "from",
                    "to",
                    "calls",
                    "findings",
                    "new",
                    "auto_dismissed",
                    "updated",
                    "withdrawn",
                    "ms",
                ],
                vec![vec![
                    report.from.clone(),
                    report.to.clone(),
                    grouped(report.calls),
                    report.findings.to_string(),
                    report.new.to_string(),
                    report.auto_dismissed.to_string(),
                    report.updated.to_string(),
                    report.withdrawn.to_string(),
                    report.elapsed_ms.to_string(),
                ]],
            );
            return output::print(format, &report, &table, &mut std::io::stdout().lock());
        }
        FindingsAction::Confirm { id, note } => (id, goodhart_core::waste::FindingStatus::Confirmed, note),
        FindingsAction::Dismiss { id, note } => (id, goodhart_core::waste::FindingStatus::Dismissed, note),
    };
    let finding = app
        .decide(&cli_origin(), &Access::Admin, &id, status, note.as_deref())
        .await
        .map_err(app_error)?;
    println!(
        "{} {}: {} wasted {} ({})",
        status.as_str(),
        finding.id,
        finding.subject,
        finding.wasted.usd_rounded(2),
        finding.detector
    );
    Ok(())
}

async fn audit(config: &Config, request: AuditRequest, format: Format) -> anyhow::Result<()> {
    let app = open_existing_app(config).await?;
    let document = app.audit_log(request).await.map_err(app_error)?;
    let rows = document
        .entries
        .iter()
        .map(|e| {
            let actor = match (&e.actor.id, &e.actor.name) {
                (Some(id), Some(name)) => format!("{} {id} ({name})", e.actor.kind),
                (Some(id), None) => format!("{} {id}", e.actor.kind),
                _ => e.actor.kind.clone(),
            };
            let target = e.target.as_ref().map_or_else(String::new, |t| {
                format!("{} {}", t.kind, t.id.as_deref().unwrap_or_default())
            });
            vec![
                e.at.clone(),
                actor,
                e.action.clone(),
                e.outcome.clone(),
                target,
                e.address.clone().unwrap_or_default(),
                e.count.to_string(),
                e.details.to_string(),
            ]
        })
        .collect();
    let table = Tabular::new(
        &[
            "at", "actor", "action", "outcome", "target", "address", "count", "details",
        ],
        rows,
    );
    let mut out = std::io::stdout().lock();
    output::print(format, &document, &table, &mut out)?;
    if format == Format::Table
        && let Some(cursor) = &document.next_cursor
    {
        writeln!(out, "More: --cursor {cursor}")?;
    }
    Ok(())
}

/// Who the audit log records for this command's admin actions: the command line, as `$USER`.
fn cli_origin() -> Origin {
    #[expect(
        clippy::disallowed_methods,
        reason = "the audit log's actor is the operating-system user running the command"
    )]
    let user = std::env::var("USER").ok();
    Origin::cli(user.as_deref())
}

/// A table cell of an optional value: empty when absent.
fn cell(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}
