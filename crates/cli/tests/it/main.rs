//! The `goodhart` binary's integration tests, one binary so the suite builds and links once:
//! the built binary run as a user would run it ([`common`]), against real servers it starts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a test stops at the first broken step, and spawns what it drives freely"
)]

mod browser;
mod cli;
mod common;
mod import;
mod kill;
mod lifecycle;
