//! Goodhart's server: the application layer ([`app`]: every use case, no HTTP), the HTTP API
//! over it ([`api`]: ingestion, reports, admin, webhooks, OTLP, dashboard), the alert
//! dispatcher ([`alerts`]), configuration, and the lifecycle that wires store, gateway and
//! background work into one process ([`Server`]).

pub mod agent_import;
pub mod alerts;
pub mod api;
pub mod app;
pub mod background;
pub mod config;
pub mod oidc;
pub mod provider_import;
pub mod serve;
pub mod settings;

pub use serve::Server;
