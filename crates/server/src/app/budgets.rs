//! Budgets: create, list with their current window's spend and forecast, show, delete. A
//! change is put in force on this process's gateway at once (other instances reload within
//! seconds); enforcement on the request path lives in the gateway.

use goodhart_core::Micros;
use goodhart_core::budgets::{self, Action, Budget, BudgetScope, DEFAULT_THRESHOLDS, Period, WhenUnreachable};
use goodhart_core::money::Nanos;
use goodhart_core::usage::optional_label;
use goodhart_store::Store;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::audit::{Event, Origin};
use super::json::usd_number;
use super::scope::View;
use super::{App, AppError};

/// `POST /api/v1/budgets`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBudget {
    /// `key`, `user`, `team`, `project`, `agent` or `org`.
    pub scope: String,
    /// The key id or name the scope is about (absent for `org`).
    pub name: Option<String>,
    /// `day`, `week`, `month` or `total`.
    pub period: String,
    /// The limit in USD, as a decimal string or number (`"500"`, `12.5`).
    pub limit_usd: serde_json::Value,
    pub limit_tokens: Option<u64>,
    /// `alert` (default) or `block`.
    pub action: Option<String>,
    /// Percent of the limit at which alerts fire (default 50, 80, 100).
    pub thresholds: Option<Vec<u32>>,
    /// IANA time zone of the period's calendar (default UTC).
    pub timezone: Option<String>,
    /// For a `block` budget: `fail_closed` or `fail_open` when the database cannot be reached
    /// to lend a slice of it (default: the gateway's `when_store_unreachable`).
    pub when_store_unreachable: Option<String>,
    /// Failing open, how far past the limit each gateway instance may admit calls per window,
    /// in percent of the limit (1 to 100, default 5).
    pub fail_open_percent: Option<u32>,
}

/// A budget with where its current window stands.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetView {
    pub id: String,
    pub scope: &'static str,
    pub name: Option<String>,
    pub period: &'static str,
    pub action: &'static str,
    pub limit_usd: Box<RawValue>,
    pub limit_tokens: Option<u64>,
    pub thresholds: Vec<u32>,
    pub timezone: String,
    /// The budget's own policy when the database is unreachable (absent: the gateway's default).
    pub when_store_unreachable: Option<&'static str>,
    pub fail_open_percent: Option<u32>,
    pub window_start: Option<String>,
    pub resets_at: Option<String>,
    pub spent_usd: Box<RawValue>,
    /// Worst cases of calls in flight through this server's gateway (absent outside a server).
    pub reserved_usd: Option<Box<RawValue>>,
    pub spent_tokens: u64,
    pub requests: u64,
    /// Projected spend at the end of the window (absent for `total` budgets).
    pub forecast_usd: Option<Box<RawValue>>,
    pub created_at: String,
}

/// Validates a request into a budget (not yet stored).
fn validate(request: NewBudget, now: Micros) -> Result<Budget, AppError> {
    // A name is a key id or a user/team/project/agent label: held to the labels' rules.
    let name = optional_label("name", request.name).map_err(|e| AppError::field("name", e.reason))?;
    let scope_kind = request.scope.trim().to_ascii_lowercase();
    let scope = match (scope_kind.as_str(), name) {
        ("org", Some(_)) => return Err(AppError::field("name", "an `org` budget takes no name")),
        (kind, name) => BudgetScope::from_parts(kind, name).ok_or_else(|| {
            if ["key", "user", "team", "project", "agent"].contains(&kind) {
                AppError::field("name", format!("a `{kind}` budget needs the {kind}'s name"))
            } else {
                AppError::field(
                    "scope",
                    format!("expected key, user, team, project, agent or org, got {kind:?}"),
                )
            }
        })?,
    };
    let period = Period::parse(request.period.trim()).ok_or_else(|| {
        AppError::field(
            "period",
            format!("expected day, week, month or total, got {:?}", request.period),
        )
    })?;
    let limit_text = match &request.limit_usd {
        serde_json::Value::String(s) => s.trim().to_owned(),
        serde_json::Value::Number(n) => n.to_string(),
        other => {
            return Err(AppError::field(
                "limit_usd",
                format!("expected a decimal amount, got {other}"),
            ));
        }
    };
    let limit =
        Nanos::from_usd(&limit_text).map_err(|e| AppError::field("limit_usd", format!("{limit_text:?}: {e}")))?;
    if limit.0 <= 0 {
        return Err(AppError::field("limit_usd", "must be more than zero"));
    }
    let action = match request.action.as_deref().map(str::trim) {
        None | Some("") => Action::Alert,
        Some(text) => Action::parse(text)
            .ok_or_else(|| AppError::field("action", format!("expected alert or block, got {text:?}")))?,
    };
    // Stored as a signed 64-bit integer, like every count.
    if request.limit_tokens.is_some_and(|n| i64::try_from(n).is_err()) {
        return Err(AppError::field("limit_tokens", format!("must be at most {}", i64::MAX)));
    }
    let mut thresholds = request.thresholds.unwrap_or_else(|| DEFAULT_THRESHOLDS.to_vec());
    if thresholds.iter().any(|&t| t == 0 || t > 1_000) {
        return Err(AppError::field(
            "thresholds",
            "each threshold is a percent between 1 and 1000",
        ));
    }
    thresholds.sort_unstable();
    thresholds.dedup();
    let timezone = request
        .timezone
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "UTC".into());
    jiff::tz::TimeZone::get(&timezone).map_err(|e| AppError::field("timezone", format!("{timezone:?}: {e}")))?;
    let when_unreachable = when_unreachable(
        request.when_store_unreachable.as_deref().map(str::trim),
        request.fail_open_percent,
        action,
    )?;
    Ok(Budget {
        id: hex::encode(rand::rng().random::<[u8; 6]>()),
        scope,
        period,
        limit,
        token_limit: request.limit_tokens,
        action,
        thresholds,
        timezone,
        created_at: now,
        when_unreachable,
    })
}

/// A budget's own policy for when the database is unreachable, from the request's two fields.
fn when_unreachable(
    name: Option<&str>,
    percent: Option<u32>,
    action: Action,
) -> Result<Option<WhenUnreachable>, AppError> {
    let field = "when_store_unreachable";
    let policy = match (name, percent) {
        (None | Some(""), None) => return Ok(None),
        (None | Some(""), Some(_)) => {
            return Err(AppError::field(
                "fail_open_percent",
                "applies only with `when_store_unreachable: fail_open`",
            ));
        }
        (Some("fail_closed"), Some(_)) => {
            return Err(AppError::field(
                "fail_open_percent",
                "a budget that fails closed has no allowance",
            ));
        }
        (Some("fail_closed"), None) => WhenUnreachable::FailClosed,
        (Some("fail_open"), percent) => {
            let percent = percent.unwrap_or(WhenUnreachable::DEFAULT_PERCENT);
            WhenUnreachable::from_parts("fail_open", Some(percent)).ok_or_else(|| {
                AppError::field(
                    "fail_open_percent",
                    format!(
                        "a percent of the limit from 1 to {}, got {percent}",
                        WhenUnreachable::MAX_PERCENT
                    ),
                )
            })?
        }
        (Some(other), _) => {
            return Err(AppError::field(
                field,
                format!("expected fail_closed or fail_open, got {other:?}"),
            ));
        }
    };
    if action != Action::Block {
        return Err(AppError::field(
            field,
            "only a `block` budget refuses calls, so only it can fail open or closed",
        ));
    }
    Ok(Some(policy))
}

/// The budget with its current window's spend and forecast (and what calls in flight have
/// reserved, when known).
async fn view(
    store: &dyn Store,
    budget: &Budget,
    reserved: Option<Nanos>,
    now: Micros,
) -> Result<BudgetView, AppError> {
    let zone = jiff::tz::TimeZone::get(&budget.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let window = budgets::window(budget.period, &zone, now);
    let spend = store
        .spend(&budget.scope, window.start, window.end.unwrap_or(Micros(i64::MAX)))
        .await?;
    let finite_start = (window.start != Micros(i64::MIN)).then_some(window.start);
    Ok(BudgetView {
        id: budget.id.clone(),
        scope: budget.scope.kind(),
        name: budget.scope.name().map(str::to_owned),
        period: budget.period.as_str(),
        action: budget.action.as_str(),
        limit_usd: usd_number(budget.limit),
        limit_tokens: budget.token_limit,
        thresholds: budget.thresholds.clone(),
        timezone: budget.timezone.clone(),
        when_store_unreachable: budget.when_unreachable.map(WhenUnreachable::as_str),
        fail_open_percent: budget.when_unreachable.and_then(WhenUnreachable::percent),
        window_start: finite_start.map(Micros::rfc3339),
        resets_at: window.end.map(Micros::rfc3339),
        spent_usd: usd_number(spend.cost),
        reserved_usd: reserved.map(usd_number),
        spent_tokens: spend.tokens,
        requests: spend.requests,
        forecast_usd: budgets::forecast(spend.cost, window, now).map(usd_number),
        created_at: budget.created_at.rfc3339(),
    })
}

impl App {
    /// Validates and stores a budget, in force on this process's gateway at once.
    pub async fn create_budget(&self, origin: &Origin, request: NewBudget) -> Result<BudgetView, AppError> {
        let now = self.now();
        let budget = validate(request, now)?;
        self.store().create_budget(&budget).await?;
        self.reload_budgets().await;
        let view = view(self.store(), &budget, self.reserved_on(&budget.id), now).await?;
        let event = Event::new("budget.create")
            .on("budget", view.id.clone())
            .with(serde_json::json!({
                "scope": view.scope,
                "name": view.name,
                "period": view.period,
                "action": view.action,
                "limit_usd": view.limit_usd,
                "limit_tokens": view.limit_tokens,
                "timezone": view.timezone,
            }));
        self.audit(origin, event).await?;
        Ok(view)
    }

    /// The live budgets a view may see (a team view: those about its team), with where they stand.
    pub async fn budgets(&self, team: Option<&View>) -> Result<Vec<BudgetView>, AppError> {
        let now = self.now();
        let mut views = Vec::new();
        for budget in self.visible_budgets(team).await? {
            views.push(view(self.store(), &budget, self.reserved_on(&budget.id), now).await?);
        }
        Ok(views)
    }

    pub async fn budget(&self, id: &str, team: Option<&View>) -> Result<BudgetView, AppError> {
        let budget = self
            .visible_budgets(team)
            .await?
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| AppError::not_found(format!("budget {id}")))?;
        view(self.store(), &budget, self.reserved_on(&budget.id), self.now()).await
    }

    /// Deletes a budget; the gateway here stops enforcing it at once.
    pub async fn delete_budget(&self, origin: &Origin, id: &str) -> Result<(), AppError> {
        if !self.store().delete_budget(id, self.now()).await? {
            return Err(AppError::not_found(format!("budget {id}")));
        }
        self.reload_budgets().await;
        self.audit(origin, Event::new("budget.delete").on("budget", id)).await
    }

    async fn visible_budgets(&self, team: Option<&View>) -> Result<Vec<Budget>, AppError> {
        let mut budgets = self.store().budgets().await?;
        if let Some(team) = team {
            budgets.retain(|b| team.sees_budget(&b.scope));
        }
        Ok(budgets)
    }

    /// What calls in flight hold on a budget in this process's gateway (unknown without one).
    fn reserved_on(&self, id: &str) -> Option<Nanos> {
        let gateway = self.gateway()?;
        Some(
            gateway
                .standing()
                .into_iter()
                .find(|standing| standing.budget_id == id)
                .map_or(Nanos::ZERO, |standing| standing.reserved),
        )
    }

    /// Puts a budget change in force on the gateway now (it would otherwise within seconds).
    async fn reload_budgets(&self) {
        if let Some(gateway) = self.gateway()
            && let Err(e) = gateway.reload_budgets().await
        {
            tracing::warn!("budgets changed but the gateway could not reload them yet: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> NewBudget {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn requests_validate_into_budgets_or_name_the_field() {
        let now = Micros(0);
        let ok = validate(
            request(serde_json::json!({"scope": "team", "name": "payments", "period": "month", "limit_usd": "500", "action": "block", "timezone": "Europe/Paris"})),
            now,
        )
        .unwrap();
        assert_eq!(ok.scope, BudgetScope::Team("payments".into()));
        assert_eq!(
            (ok.limit, ok.action, ok.thresholds.clone()),
            (Nanos(500_000_000_000), Action::Block, vec![50, 80, 100])
        );
        let number = validate(
            request(serde_json::json!({"scope": "org", "period": "day", "limit_usd": 12.5})),
            now,
        )
        .unwrap();
        assert_eq!((number.limit, number.action), (Nanos(12_500_000_000), Action::Alert));
        let field = |json: serde_json::Value| match validate(request(json), now) {
            Err(AppError::InvalidField { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        };
        assert_eq!(
            field(serde_json::json!({"scope": "team", "period": "month", "limit_usd": "5"})),
            "name"
        );
        assert_eq!(
            field(serde_json::json!({"scope": "galaxy", "name": "x", "period": "month", "limit_usd": "5"})),
            "scope"
        );
        assert_eq!(
            field(serde_json::json!({"scope": "org", "period": "year", "limit_usd": "5"})),
            "period"
        );
        assert_eq!(
            field(serde_json::json!({"scope": "org", "period": "day", "limit_usd": "-5"})),
            "limit_usd"
        );
        assert_eq!(
            field(serde_json::json!({"scope": "org", "period": "day", "limit_usd": "5", "timezone": "Mars/Olympus"})),
            "timezone"
        );
        assert_eq!(
            field(serde_json::json!({"scope": "org", "period": "day", "limit_usd": "5", "thresholds": [0]})),
            "thresholds"
        );
    }

    #[test]
    fn a_blocking_budget_may_say_what_it_does_when_the_database_is_unreachable() {
        let now = Micros(0);
        let policy = |extra: serde_json::Value| {
            let mut json = serde_json::json!({"scope": "org", "period": "day", "limit_usd": "5", "action": "block"});
            json.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            validate(request(json), now).map(|b| b.when_unreachable)
        };
        assert_eq!(policy(serde_json::json!({})).unwrap(), None, "the gateway's default");
        assert_eq!(
            policy(serde_json::json!({"when_store_unreachable": "fail_open"})).unwrap(),
            Some(WhenUnreachable::FailOpen { percent: 5 })
        );
        assert_eq!(
            policy(serde_json::json!({"when_store_unreachable": "fail_open", "fail_open_percent": 20})).unwrap(),
            Some(WhenUnreachable::FailOpen { percent: 20 })
        );
        assert_eq!(
            policy(serde_json::json!({"when_store_unreachable": "fail_closed"})).unwrap(),
            Some(WhenUnreachable::FailClosed)
        );
        let refused = |extra: serde_json::Value| match policy(extra) {
            Err(AppError::InvalidField { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        };
        for (extra, field) in [
            (
                serde_json::json!({"when_store_unreachable": "fail_open", "fail_open_percent": 0}),
                "fail_open_percent",
            ),
            (
                serde_json::json!({"when_store_unreachable": "fail_open", "fail_open_percent": 101}),
                "fail_open_percent",
            ),
            (
                serde_json::json!({"when_store_unreachable": "fail_closed", "fail_open_percent": 5}),
                "fail_open_percent",
            ),
            (serde_json::json!({"fail_open_percent": 5}), "fail_open_percent"),
            (
                serde_json::json!({"when_store_unreachable": "fail_sideways"}),
                "when_store_unreachable",
            ),
            (
                serde_json::json!({"when_store_unreachable": "fail_open", "action": "alert"}),
                "when_store_unreachable",
            ),
        ] {
            assert_eq!(refused(extra.clone()), field, "{extra}");
        }
    }
}
