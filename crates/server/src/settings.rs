//! The server's own settings sections, as validated by [`crate::config`] and read by the
//! application layer: how outcomes are received and valued, how waste is detected and
//! announced, and how the providers' bills are imported and reconciled.

use std::collections::BTreeMap;
use std::time::Duration;

use goodhart_core::outcomes::ValueRules;
use goodhart_core::reconcile::{AccountRules, DriftRule};
use goodhart_core::waste::{FeedbackRules, WasteRules};

use crate::agent_import::AnalyticsSource;
use crate::provider_import::ReportSource;

/// How outcomes are received and valued (the `[outcomes]` configuration section).
#[derive(Debug, Clone)]
pub struct OutcomeSettings {
    /// The GitHub webhook secret; without one, every delivery is refused.
    pub github_secret: Option<String>,
    /// Environment names whose successful deployments count as production.
    pub production_environments: Vec<String>,
    pub rules: ValueRules,
    pub min_team_members: usize,
}

impl Default for OutcomeSettings {
    fn default() -> OutcomeSettings {
        OutcomeSettings {
            github_secret: None,
            production_environments: vec!["production".into(), "prod".into()],
            rules: ValueRules::default(),
            min_team_members: 5,
        }
    }
}

/// How findings are produced and announced (the `[waste]` configuration section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasteSettings {
    /// Pause between scheduled passes; `None`: no scheduled detection.
    pub detect_every: Option<Duration>,
    /// Days the first pass after start covers.
    pub backfill_days: u32,
    /// Whether new findings raise alerts, and from which confidence (permille).
    pub alerts: bool,
    pub alert_min_confidence: u32,
    pub rules: WasteRules,
    /// How far admins' decisions on findings reach into later passes (not configurable yet).
    pub feedback: FeedbackRules,
}

impl Default for WasteSettings {
    fn default() -> WasteSettings {
        WasteSettings {
            detect_every: Some(Duration::from_secs(300)),
            backfill_days: 30,
            alerts: true,
            alert_min_confidence: 850,
            rules: WasteRules::default(),
            feedback: FeedbackRules::default(),
        }
    }
}

/// How the providers' bills are imported and held against the meter (the `[reconciliation]`
/// configuration section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconciliationSettings {
    /// Pause between scheduled imports; `None`: none.
    pub import_every: Option<Duration>,
    /// The providers whose admin key is set (`ANTHROPIC_ADMIN_KEY`, `OPENAI_ADMIN_KEY`): the
    /// schedule imports these.
    pub sources: Vec<ReportSource>,
    /// Claude Code's analytics, imported on the same schedule when `ANTHROPIC_ADMIN_KEY` is set.
    pub claude_code: Option<AnalyticsSource>,
    /// Copilot's usage metrics, when `GITHUB_TOKEN` and `copilot_org` are set.
    pub copilot: Option<AnalyticsSource>,
    /// When a day's drift raises a `reconciliation` alert.
    pub drift: DriftRule,
    pub alerts: bool,
    /// Which provider keys are the gateway's, and who owns the others.
    pub accounts: AccountRules,
    /// The provider that bills usage metered under another name (a gateway provider named
    /// `claude-prod` is billed by `anthropic`).
    pub billed_as: BTreeMap<String, String>,
}

impl Default for ReconciliationSettings {
    fn default() -> ReconciliationSettings {
        ReconciliationSettings {
            import_every: Some(Duration::from_secs(3_600)),
            sources: Vec::new(),
            claude_code: None,
            copilot: None,
            drift: DriftRule::default(),
            alerts: true,
            accounts: AccountRules::default(),
            billed_as: BTreeMap::new(),
        }
    }
}

/// What people may do for themselves (the `[self_service]` configuration section): an
/// engineer's own virtual keys, within the bounds the admin sets here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfServiceSettings {
    /// Engineers may create and revoke their own keys.
    pub keys: bool,
    /// Active keys a person may hold at once (those made for them by an admin count too).
    pub max_keys: u32,
    /// The longest a key a person makes may live, in days; also its life when they ask none.
    pub max_key_days: u32,
    /// The most calls per minute a person's own key may allow; the key's limit when they ask
    /// none (absent: no cap).
    pub max_requests_per_minute: Option<u64>,
    /// Likewise for tokens per minute.
    pub max_tokens_per_minute: Option<u64>,
    /// Engineers may create and revoke their own (personal) ingest tokens, to send their local
    /// agents' logs to the server attributed to themselves.
    pub ingest_tokens: bool,
    /// Active personal ingest tokens a person may hold at once.
    pub max_ingest_tokens: u32,
}

impl Default for SelfServiceSettings {
    fn default() -> Self {
        SelfServiceSettings {
            keys: true,
            max_keys: 5,
            max_key_days: 90,
            max_requests_per_minute: None,
            max_tokens_per_minute: None,
            ingest_tokens: true,
            max_ingest_tokens: 3,
        }
    }
}

/// What the application layer is configured with.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub outcomes: OutcomeSettings,
    pub waste: WasteSettings,
    pub reconciliation: ReconciliationSettings,
    pub self_service: SelfServiceSettings,
    /// Keep prompt and completion text of ingested usage (off: fingerprints only).
    pub store_content: bool,
}
