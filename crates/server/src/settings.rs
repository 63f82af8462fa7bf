//! The server's own settings sections, as validated by [`crate::config`] and read by the
//! application layer: how outcomes are received and valued, and how waste is detected and
//! announced.

use std::time::Duration;

use goodhart_core::outcomes::ValueRules;
use goodhart_core::waste::{FeedbackRules, WasteRules};

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

/// What the application layer is configured with.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub outcomes: OutcomeSettings,
    pub waste: WasteSettings,
    /// Keep prompt and completion text of ingested usage (off: fingerprints only).
    pub store_content: bool,
}
