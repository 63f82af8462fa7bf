//! The application layer: every use case of Goodhart's API and CLI as a method of [`App`],
//! taking typed queries and commands and returning typed documents or an [`AppError`]. No HTTP
//! here: the API ([`crate::api`]) parses requests into these types and encodes the results, the
//! CLI calls the same methods, so both behave alike — including the side effects on a running
//! gateway (a revoked key stops working at once, a new budget is enforced at once).

pub mod access;
pub mod activity;
pub mod alerts;
pub mod audit;
pub mod bills;
pub mod board;
pub mod budgets;
pub mod directory;
pub mod findings;
pub mod json;
pub mod keys;
pub mod outcomes;
pub mod own_keys;
pub mod query;
pub mod refusals;
pub mod reports;
pub mod scim;
pub mod scope;
pub mod sessions;
pub mod sign_in_limit;
pub mod subjects;
pub mod tokens;
pub mod usage;
pub mod viewers;

use std::sync::Arc;

use goodhart_core::Micros;
use goodhart_core::pricing::PriceTable;
use goodhart_gateway::Gateway;
use goodhart_gateway::alerts::AlertSink;
use goodhart_store::{Store, StoreError};

use crate::settings::Settings;
use tokens::TokenHash;

/// Why a use case did not happen. Each variant is a kind of answer a client can act on; the
/// API maps them to statuses and codes, the CLI to messages.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("missing or invalid token")]
    Unauthorized,
    /// `what` names the thing, e.g. `key gk_12ab`.
    #[error("no {what}")]
    NotFound { what: String },
    #[error("{0}")]
    Conflict(String),
    /// A field of a command is invalid.
    #[error("{message}")]
    InvalidField { field: &'static str, message: String },
    /// A parameter of a query is invalid.
    #[error("{message}")]
    InvalidParameter { parameter: &'static str, message: String },
    /// The input as a whole cannot be used (e.g. a webhook payload that is not what its event says).
    #[error("{0}")]
    Rejected(String),
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
}

impl AppError {
    pub(crate) fn not_found(what: impl Into<String>) -> AppError {
        AppError::NotFound { what: what.into() }
    }

    pub(crate) fn field(field: &'static str, message: impl Into<String>) -> AppError {
        AppError::InvalidField {
            field,
            message: message.into(),
        }
    }
}

/// Where "now" comes from: the system clock, or a fixed instant in tests.
#[derive(Debug, Clone, Copy, Default)]
pub enum Clock {
    #[default]
    System,
    Fixed(Micros),
}

impl Clock {
    pub fn now(self) -> Micros {
        match self {
            Clock::System => Micros::from_timestamp(jiff::Timestamp::now()),
            Clock::Fixed(at) => at,
        }
    }
}

/// Goodhart's use cases over one store, price table and settings; cheap to clone.
#[derive(Clone)]
pub struct App {
    store: Arc<dyn Store>,
    prices: Arc<PriceTable>,
    settings: Arc<Settings>,
    /// The gateway running in this process, if any: told at once of key and budget changes,
    /// and asked what calls in flight hold.
    gateway: Option<Gateway>,
    /// Where the alerts findings raise go, where this process dispatches alerts.
    alert_sink: Option<AlertSink>,
    /// The admin token's hash, where this process takes API requests.
    admin_token: Option<TokenHash>,
    clock: Clock,
    /// How many refused requests the audit log took this minute (see [`refusals`]).
    failure_bound: refusals::SharedBound,
    /// Taken by each SCIM write (see [`scim`]): a provider's concurrent changes to one group
    /// or person are applied one after the other, none lost.
    scim_writes: Arc<tokio::sync::Mutex<()>>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, prices: Arc<PriceTable>, settings: Settings) -> App {
        App {
            store,
            prices,
            settings: Arc::new(settings),
            gateway: None,
            alert_sink: None,
            admin_token: None,
            clock: Clock::System,
            failure_bound: refusals::SharedBound::default(),
            scim_writes: Arc::default(),
        }
    }

    pub fn with_gateway(mut self, gateway: Gateway) -> App {
        self.gateway = Some(gateway);
        self
    }

    pub fn with_alert_sink(mut self, sink: AlertSink) -> App {
        self.alert_sink = Some(sink);
        self
    }

    pub fn with_admin_token(mut self, hash: TokenHash) -> App {
        self.admin_token = Some(hash);
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> App {
        self.clock = clock;
        self
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn gateway(&self) -> Option<&Gateway> {
        self.gateway.as_ref()
    }

    /// Where this process's alerts are raised, if it dispatches them.
    pub fn alert_sink(&self) -> Option<&AlertSink> {
        self.alert_sink.as_ref()
    }

    pub fn now(&self) -> Micros {
        self.clock.now()
    }
}
