//! herd: rolling, zero-downtime deploys to a fleet over SSH.

mod app;
mod check;
mod cli;
mod engine;
mod event;
mod inventory;
mod lab;
mod plan;
mod playbook;
mod reload;
mod report;
mod source;
mod template;
mod transport;
mod yaml;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match app::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
