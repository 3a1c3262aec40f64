//! herd: rolling, zero-downtime deploys to a fleet over SSH.

mod lab;
mod source;
mod yaml;

use std::path::PathBuf;
use std::process::ExitCode;

// TEMPORARY: a bare dispatch to try the lab end to end until the CLI lands.
// `herd lab up [--hosts N] [--dir D] [--no-gunicorn]`, `herd lab down|status [--dir D]`.
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let dir = value("--dir").map_or_else(lab::default_dir, PathBuf::from);
    let result = match args.get(..2).map(|a| (a[0].as_str(), a[1].as_str())) {
        Some(("lab", "up")) => {
            let mut options = lab::LabOptions::new(dir, value("--hosts").and_then(|n| n.parse().ok()).unwrap_or(3));
            options.gunicorn = !args.iter().any(|a| a == "--no-gunicorn");
            lab::up(&options).map(|info| serde_json::to_string_pretty(&info).unwrap_or_default())
        }
        Some(("lab", "down")) => lab::down(&dir).map(|down| serde_json::to_string_pretty(&down).unwrap_or_default()),
        Some(("lab", "status")) => lab::status(&dir).map(|info| serde_json::to_string_pretty(&info).unwrap_or_default()),
        _ => {
            eprintln!("usage: herd lab up|down|status [--hosts N] [--dir D]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("herd: {error}");
            ExitCode::FAILURE
        }
    }
}
