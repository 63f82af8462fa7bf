//! The server's integration tests, one binary so the suite builds and links once. Each module
//! starts real servers on random loopback ports ([`common`]) and talks to them over HTTP.

mod clients;
mod common;
mod dashboard;
mod findings;
mod gateway;
mod http;
mod otlp;
mod outcomes;
mod viewers;
