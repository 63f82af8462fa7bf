//! The `goodhart` binary's integration tests, one binary so the suite builds and links once:
//! the built binary run as a user would run it ([`common`]), against real servers it starts.

mod browser;
mod cli;
mod common;
mod import;
mod kill;
