//! Goodhart's core: domain types and pure decisions.
//!
//! Usage events, the price table and exact cost arithmetic, fingerprints, and the planning of
//! reports over rollups. Nothing in this crate performs IO, reads the clock or needs an async
//! runtime (CI checks its dependency tree); callers gather inputs, call these functions and act
//! on the results.

pub mod agent_analytics;
pub mod agent_logs;
pub mod attribution;
pub mod budgets;
pub mod calls;
pub mod event_stream;
pub mod fingerprint;
pub mod github;
pub mod json_stream;
pub mod keys;
pub mod limits;
pub mod money;
pub mod names;
pub mod outcomes;
pub mod pricing;
pub mod provider_reports;
pub mod providers;
pub mod reconcile;
pub mod report;
pub mod requests;
pub mod roi;
pub mod sse;
pub mod telemetry;
pub mod time;
pub mod translate;
pub mod usage;
pub mod value;
pub mod waste;

pub use money::{Nanos, PicoPerToken};
pub use time::Micros;
