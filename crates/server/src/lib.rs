//! Goodhart's HTTP surface other than the proxy: usage ingestion, reports, health, and the
//! wiring of configuration, store and core into one server.

pub mod alerts;
pub mod auth;
pub mod budgets;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod ingest;
pub mod keys;
pub mod otlp;
pub mod outcomes;
pub mod reports;
pub mod router;
pub mod scope;
pub mod serve;
pub mod state;
pub mod subjects;
pub mod viewers;
pub mod waste;

pub use router::app;
