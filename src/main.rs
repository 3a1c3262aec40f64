//! herd: rolling, zero-downtime deploys to a fleet over SSH.

mod app;
mod artifact;
mod audit;
mod check;
mod cli;
mod cli_env;
mod describe;
mod engine;
mod event;
mod inventory;
mod lab;
mod plan;
mod playbook;
mod release;
mod releases;
mod reload;
mod report;
mod shell;
mod source;
mod ssh_config;
mod template;
mod transport;
mod unlock;
mod yaml;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    raise_open_file_limit();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => usage_error(error),
    };
    match app::run(cli) {
        Ok(code) => code,
        Err(error) => {
            let text = format!("error: {error}");
            eprintln!("{text}");
            if error.exit_code() == 2 {
                let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
                eprint!(
                    "{}",
                    cli_env::input_notes(&text, &cli::Cli::command(), &args)
                );
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// Help and version as clap prints them; a usage error (exit 2) also names
/// the `HERD_*` variable an option's bad value came from.
fn usage_error(error: clap::Error) -> ! {
    if !error.use_stderr() {
        error.exit();
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    eprint!("{}", cli_env::explain(&error, &cli::Cli::command(), &args));
    std::process::exit(error.exit_code());
}

/// One connection per host means one socket per host: lift the soft limit on
/// open files (often 1024) to the hard limit so a large fleet fits.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
