//! `goodhart`: see, cap and judge AI spend honestly. This binary parses arguments and calls the
//! library crates; it holds no logic of its own.

mod args;
mod client;
mod commands;
mod database;
mod demo;
mod import;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo tells its own story; its server's logs would interleave with it.
    let default_filter = match cli.command {
        Command::Demo { .. } => "error",
        _ => "warn,goodhart=info,goodhart_server=info,goodhart_store=info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
