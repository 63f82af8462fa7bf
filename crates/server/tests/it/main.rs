//! The server's integration tests, one binary so the suite builds and links once. Each module
//! starts real servers on random loopback ports ([`common`]) and talks to them over HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a test stops at the first broken step, and spawns what it drives freely"
)]

mod agent_import;
mod audit;
mod azure;
mod bedrock;
mod clients;
mod common;
mod dashboard;
mod directory;
mod findings;
mod gateway;
mod gemini;
mod hostile;
mod http;
mod inputs;
mod oidc;
mod otlp;
mod outage;
mod outcomes;
mod provider_import;
mod reconciliation;
mod schemathesis;
mod scim;
mod sockets;
mod translation;
mod upstream_faults;
mod vertex;
mod viewers;
