//! The command line: every subcommand, flag and argument `goodhart` takes (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(name = "goodhart", version, about = "See, cap and judge AI spend honestly.")]
pub(crate) struct Cli {
    /// TOML configuration file (unknown keys are errors).
    #[arg(long, global = true, env = "GOODHART_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// sqlite://PATH (default sqlite://goodhart.db) or postgres://…
    #[arg(long, global = true, env = "GOODHART_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server: ingestion API, reports and health on one port.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8787].
        #[arg(long, env = "GOODHART_LISTEN")]
        listen: Option<String>,
    },
    /// The whole story in one command: a simulated organisation's history loaded through the
    /// public API, a minute of live traffic through the gateway (a runaway agent trips a hard
    /// cap), then the volume and value rankings side by side, waste findings and alerts.
    Demo {
        /// Which organisation to simulate.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Weeks of history.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=52))]
        weeks: u32,
        /// Exit after the summary instead of serving until Ctrl-C.
        #[arg(long)]
        no_serve: bool,
        /// Seconds of live traffic.
        #[arg(long, default_value_t = 60)]
        live_secs: u64,
        /// Address to listen on (a free port if it is taken).
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: String,
        /// The demo's own database file, recreated on every run.
        #[arg(long, default_value = "goodhart-demo.db")]
        database: PathBuf,
    },
    /// Usage and cost grouped by user, team, project, agent, model, provider or day; or
    /// `report roi`: spend against outcomes and hours saved, per team.
    Report {
        #[command(subcommand)]
        kind: Option<ReportKind>,
        /// Comma-separated dimensions, e.g. `team,model` or `user,day`.
        #[arg(long, default_value = "user")]
        group_by: String,
        /// Start: RFC 3339 timestamp, date (2026-11-02) or span back from now (7d) [default: 30 days before --to].
        #[arg(long, conflicts_with = "since")]
        from: Option<String>,
        /// End, exclusive [default: now].
        #[arg(long)]
        to: Option<String>,
        /// Shorthand for --from with a span, e.g. `--since 7d`.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Usage that never passed the gateway, from coding agents' local logs (idempotent: run it
    /// again and only what is new is added).
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Virtual keys: create (the secret is shown once), list, revoke, rotate.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Viewer tokens: read-only sign-in for the dashboard and the read API, optionally limited
    /// to one team (the secret is shown once).
    Tokens {
        #[command(subcommand)]
        action: TokensAction,
    },
    /// People who sign in: the directory (each one's home team from their identity provider's
    /// groups) and the roles given to them in place of their groups'.
    People {
        #[command(subcommand)]
        action: PeopleAction,
    },
    /// Single sign-on sessions: list the live ones, revoke one (its cookie stops working at
    /// once, at every instance on the database).
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
    },
    /// Budgets: limits on spend per key, user, team, project, agent or the whole organisation.
    Budgets {
        #[command(subcommand)]
        action: BudgetsAction,
    },
    /// Alerts raised (budget thresholds, runaway spend, forecast breaches), newest first.
    Alerts {
        /// Start: RFC 3339, a date, or a span back such as 7d [default: 30 days before --to].
        #[arg(long)]
        from: Option<String>,
        /// End [default: now].
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Who delivers the most per person-week (or per dollar): verified outcomes, never volume.
    Leaderboard {
        /// Start: RFC 3339, a date, or a span back such as 7d [default: 30 days before --to].
        #[arg(long)]
        from: Option<String>,
        /// End [default: now].
        #[arg(long)]
        to: Option<String>,
        /// Whom to rank.
        #[arg(long, value_enum, default_value = "user")]
        by: BoardBy,
        /// value (outcomes per person-week), efficiency (per dollar) or volume (tokens: the
        /// consumption view, shown only for comparison).
        #[arg(long, value_enum, default_value = "value")]
        metric: BoardMetric,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Waste ("tokenmaxxing") findings with their evidence and dollars, most wasteful first;
    /// `findings detect` runs detection now, `confirm`/`dismiss` record an admin's decision.
    Findings {
        #[command(subcommand)]
        action: Option<FindingsAction>,
        /// Start: RFC 3339, a date, or a span back such as 7d [default: 30 days before --to].
        #[arg(long)]
        from: Option<String>,
        /// End [default: now].
        #[arg(long)]
        to: Option<String>,
        /// open, confirmed or dismissed.
        #[arg(long)]
        status: Option<String>,
        /// Only this person's findings.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// The audit log: admin actions, authentication failures and refusals, newest first.
    Audit {
        /// Only this actor (a token id or name, or a kind such as admin_token or cli).
        #[arg(long)]
        actor: Option<String>,
        /// Only actions starting with this, e.g. `key.` or `budget.create`.
        #[arg(long)]
        action: Option<String>,
        /// Only `success`, `denied` or `failure`.
        #[arg(long)]
        outcome: Option<String>,
        /// Start: RFC 3339, a date, or a span back such as 7d.
        #[arg(long)]
        from: Option<String>,
        /// End.
        #[arg(long)]
        to: Option<String>,
        /// Entries before this cursor (the `next_cursor` of an earlier page).
        #[arg(long)]
        cursor: Option<String>,
        /// At most this many entries (1 – 1000) [default: 100].
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Same as `--format json`.
        #[arg(long)]
        json: bool,
    },
    /// GitHub logins and the users they are credited to.
    Github {
        #[command(subcommand)]
        action: GithubAction,
    },
    /// The price table in use (shipped table plus configured overrides).
    Prices {
        #[command(subcommand)]
        action: Option<PricesAction>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReportKind {
    /// Return on AI spend per team and for the organisation: spend, verified and
    /// self-reported outcomes, value, estimated hours saved, cost per outcome and per hour saved.
    Roi {
        /// Start: RFC 3339, a date, or a span back such as 30d [default: 30 days before --to].
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive [default: now]; a future end adds a spend forecast.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// The providers' bills (imported with `goodhart import anthropic-admin|openai-admin`)
    /// beside what was metered, per day, provider and model: token and dollar drift, and spend
    /// that never passed Goodhart.
    Reconcile {
        /// Start: RFC 3339, a date, or a span back such as 30d [default: 30 days before --to].
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive [default: now].
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum FindingsAction {
    /// Run waste detection now over the whole days of a window and record its findings.
    Detect {
        /// Start [default: 30 days before --to].
        #[arg(long)]
        from: Option<String>,
        /// End [default: now].
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Confirm a finding: the spend was waste.
    Confirm {
        id: String,
        /// Why, for the record.
        #[arg(long)]
        note: Option<String>,
    },
    /// Dismiss a finding: it stops counting as waste (later detection passes keep the decision).
    Dismiss {
        id: String,
        /// Why, for the record.
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysAction {
    /// Create a key for a user (and optionally team, project, agent); prints the secret once.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        agent: Option<String>,
        /// A label for people, e.g. "ci runner".
        #[arg(long)]
        name: Option<String>,
        /// Lifetime such as 30d, 12h or 2w [default: no expiry].
        #[arg(long)]
        expires: Option<String>,
        /// Calls allowed per minute [default: unlimited].
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens allowed per minute [default: unlimited].
        #[arg(long)]
        tpm: Option<u64>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Every key with its status (never the secrets).
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Revoke a key by its id: clients using it are refused from now on.
    Revoke { id: String },
    /// Replace a key by a new one with the same scope and lifetime; the old one is revoked.
    Rotate {
        id: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImportSource {
    /// Claude Code's session and subagent logs [default: ~/.claude/projects]: one API response
    /// counts once, however many lines and files repeat it.
    ClaudeCode(ImportArgs),
    /// Codex's session rollouts [default: ~/.codex/sessions]: a call per `token_count` event;
    /// forked and resumed sessions' replays of their parent count once.
    Codex(ImportArgs),
    /// What Anthropic says it served and billed (the Admin API's usage and cost reports), with
    /// the admin key in ANTHROPIC_ADMIN_KEY: daily buckets from where the last import stopped.
    AnthropicAdmin(ReportArgs),
    /// What OpenAI says it served and billed (the organisation usage and costs), with the admin
    /// key in OPENAI_ADMIN_KEY: daily buckets from where the last import stopped.
    OpenaiAdmin(ReportArgs),
    /// What Claude Code reports each person did (Anthropic's Claude Code analytics: sessions,
    /// lines, commits, PRs, tool acceptance, estimated cost), with the admin key in
    /// ANTHROPIC_ADMIN_KEY: shown on people's pages as activity, never counted as value.
    ClaudeCodeAnalytics(AnalyticsArgs),
    /// What Copilot reports each person did (the organisation's users-1-day usage metrics
    /// reports), with a GitHub token in GITHUB_TOKEN: activity, never value.
    CopilotMetrics(CopilotArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AnalyticsArgs {
    /// The first day [default: two days before where the last import stopped, else 30d].
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// The end [default: now].
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// The API's base URL [default: `https://api.anthropic.com` / `https://api.github.com`].
    #[arg(long)]
    pub(crate) base_url: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CopilotArgs {
    /// The GitHub organisation.
    #[arg(long)]
    pub(crate) org: String,
    #[command(flatten)]
    pub(crate) window: AnalyticsArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The first day [default: two days before where the last import stopped, else 30d].
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// The end [default: now].
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// The provider's usage is recorded under this name [default: anthropic / openai].
    #[arg(long)]
    pub(crate) provider: Option<String>,
    /// The API's base URL [default: the provider's public API, api.anthropic.com / api.openai.com].
    #[arg(long)]
    pub(crate) base_url: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The logs' directory.
    pub(crate) dir: Option<PathBuf>,
    /// Whose usage it is [default: $USER].
    #[arg(long)]
    pub(crate) user: Option<String>,
    #[arg(long)]
    pub(crate) team: Option<String>,
    /// [default: the last part of each session's working directory]
    #[arg(long)]
    pub(crate) project: Option<String>,
    /// Send the usage to this Goodhart server (e.g. http://goodhart:8787) instead of the
    /// local database.
    #[arg(long, requires = "token")]
    pub(crate) server: Option<String>,
    /// The server's admin token, or an ingest token (a personal one attributes everything to
    /// its person, whatever --user says).
    #[arg(long, env = "GOODHART_TOKEN", requires = "server")]
    pub(crate) token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokensAction {
    /// Create a token for a person (a read-only viewer by default, or a manager or finops) or,
    /// with --ingest, a send-only token for OTLP exports and the ingest API; prints the secret
    /// once.
    Create {
        /// A viewer's or manager's one team it may see [default: every team; a manager needs
        /// one]; an ingest token's team for usage that names none.
        #[arg(long)]
        team: Option<String>,
        /// Who it is for, e.g. "payments leads" or "otel collector".
        #[arg(long)]
        name: Option<String>,
        /// What it may do: `viewer` reads; `manager` reads --team and confirms or dismisses
        /// its people's findings; `finops` reads everything and manages budgets and keys;
        /// `engineer` reads --user's own usage, findings and budgets; `scim` lets an identity
        /// provider provision people and groups at /scim/v2 (and nothing else).
        #[arg(long, value_parser = ["viewer", "manager", "finops", "engineer", "scim"], conflicts_with = "ingest")]
        role: Option<String>,
        /// The person an engineer's token is for; with --ingest, a personal ingest token: all
        /// the usage it sends is this person's.
        #[arg(long)]
        user: Option<String>,
        /// An ingest token: may only send usage (/otlp/v1/* and POST /api/v1/usage).
        #[arg(long)]
        ingest: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Every viewer and ingest token with its status (never the secrets).
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Revoke a token by its id: it opens nothing from now on.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PeopleAction {
    /// Everyone who signed in, with their home team, and every role given to someone.
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Give a person (the usage user a sign-in names, e.g. `ana`) a role in place of the one
    /// their groups give, from their next request on.
    Grant {
        user: String,
        /// `admin`, `finops`, `viewer`, `manager` or `engineer`.
        #[arg(long, value_parser = ["admin", "finops", "viewer", "manager", "engineer"])]
        role: String,
        /// A manager's team (required); a viewer's (optional: every team without).
        #[arg(long)]
        team: Option<String>,
    },
    /// Take a person's given role away: their groups decide again.
    Ungrant { user: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SessionsAction {
    /// The live sessions (neither expired nor revoked), newest first: who, their groups, when
    /// they signed in and when the session ends (never the secrets).
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Same as `--format json`.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a live session by its id (`ses_…`): its cookie opens nothing from now on.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BudgetsAction {
    /// Create a budget, e.g. `budgets create --team payments --monthly 500 --block`.
    Create(Box<CreateBudget>),
    /// Every budget with its current window: spent, forecast, limit, reset time.
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// One budget.
    Show {
        id: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Delete a budget: it stops applying (its history is kept).
    Delete { id: String },
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["key", "user", "team", "project", "agent", "org"])))]
#[command(group(clap::ArgGroup::new("limit").required(true).args(["daily", "weekly", "monthly", "total"])))]
pub(crate) struct CreateBudget {
    /// A virtual key's id.
    #[arg(long)]
    pub(crate) key: Option<String>,
    #[arg(long)]
    pub(crate) user: Option<String>,
    #[arg(long)]
    pub(crate) team: Option<String>,
    #[arg(long)]
    pub(crate) project: Option<String>,
    #[arg(long)]
    pub(crate) agent: Option<String>,
    /// The whole organisation.
    #[arg(long)]
    pub(crate) org: bool,
    /// USD per calendar day.
    #[arg(long)]
    pub(crate) daily: Option<String>,
    /// USD per ISO week (Monday to Monday).
    #[arg(long)]
    pub(crate) weekly: Option<String>,
    /// USD per calendar month.
    #[arg(long)]
    pub(crate) monthly: Option<String>,
    /// USD in all, never resetting.
    #[arg(long)]
    pub(crate) total: Option<String>,
    /// Also limit tokens (every kind counted) in the same period.
    #[arg(long)]
    pub(crate) tokens: Option<u64>,
    /// Refuse calls that could overrun it (a hard cap) instead of only alerting.
    #[arg(long)]
    pub(crate) block: bool,
    /// Alert thresholds in percent of the limit [default: 50,80,100].
    #[arg(long, value_delimiter = ',')]
    pub(crate) thresholds: Option<Vec<u32>>,
    /// IANA time zone whose calendar the period follows.
    #[arg(long, default_value = "UTC")]
    pub(crate) timezone: String,
    /// With --block: when the database cannot be reached, refuse the calls that need a new
    /// slice of the budget (`fail-closed`) or admit them up to --fail-open-percent of the limit
    /// per gateway instance (`fail-open`) [default: the gateway's `when_store_unreachable`].
    #[arg(long, value_enum, requires = "block")]
    pub(crate) when_store_unreachable: Option<Unreachable>,
    /// Failing open, how far past the limit each gateway instance may go per window, in
    /// percent of the limit [default: 5].
    #[arg(long, requires = "when_store_unreachable")]
    pub(crate) fail_open_percent: Option<u32>,
    #[arg(long, value_enum, default_value = "table")]
    pub(crate) format: Format,
}

/// What a blocking budget does when the database is unreachable.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Unreachable {
    FailClosed,
    FailOpen,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GithubAction {
    /// Credit a GitHub login's work to a user (by default a login is the user of that name).
    Map { login: String, user: String },
    /// Every mapped login.
    Logins {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PricesAction {
    /// Price stored events again: unpriced ones by default, every one with --all.
    Reprice {
        /// Also re-price events that already have a price (after a price correction).
        #[arg(long)]
        all: bool,
    },
    /// Models seen in usage that have no price.
    Unpriced {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

/// `--by` of the leaderboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BoardBy {
    User,
    Team,
    Agent,
}

impl From<BoardBy> for goodhart_core::value::By {
    fn from(by: BoardBy) -> goodhart_core::value::By {
        match by {
            BoardBy::User => goodhart_core::value::By::User,
            BoardBy::Team => goodhart_core::value::By::Team,
            BoardBy::Agent => goodhart_core::value::By::Agent,
        }
    }
}

/// `--metric` of the leaderboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BoardMetric {
    Value,
    Efficiency,
    Volume,
}

impl From<BoardMetric> for goodhart_core::value::Metric {
    fn from(metric: BoardMetric) -> goodhart_core::value::Metric {
        match metric {
            BoardMetric::Value => goodhart_core::value::Metric::Value,
            BoardMetric::Efficiency => goodhart_core::value::Metric::Efficiency,
            BoardMetric::Volume => goodhart_core::value::Metric::Volume,
        }
    }
}
