//! Turns a parsed command line into work, and the outcome into an exit code.

mod hosts;

use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::cli::{
    CiFormat, Cli, Color, Command, Connecting, LabCommand, MasterArgs, Output, Targeting,
};
use crate::describe;
use crate::engine::audit::AuditSettings;
use crate::engine::lock::LockOwner;
use crate::engine::{Engine, EngineSettings, LockSettings};
use crate::plan::reload::ReloadPlan;
use crate::plan::{Job, Plan, PlanError, PlanRequest};
use crate::reload::place::{Delivery, Keys, Place};
use crate::reload::server::{AppServer, SignalUse};
use crate::report::ci::Ci;
use crate::report::github::GithubReporter;
use crate::report::gitlab::GitlabReporter;
use crate::report::junit::JunitReporter;
use crate::report::ledger::Ledger;
use crate::report::progress::ProgressReporter;
use crate::report::{self, json::JsonReporter, plain::PlainReporter, Reporter};
use crate::transport::ssh::env_credentials::{CredentialError, EnvCredentials};
use crate::transport::ssh::{SshConnector, SshSettings};

/// The documented exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
    pub const LOCKED: u8 = 3;
    pub const INTERRUPTED: u8 = 130;
}

/// Errors that end herd before or outside a rollout.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Credentials(#[from] CredentialError),
    #[error("{0}")]
    Lab(#[from] crate::lab::LabError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl AppError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Plan(_) | AppError::Credentials(_) => exit::BAD_INPUT,
            AppError::Lab(_) | AppError::Runtime(_) => exit::FAILED,
        }
    }
}

pub fn run(cli: Cli) -> Result<ExitCode, AppError> {
    match cli.command {
        Command::Run(args) => {
            let lock = LockSettings {
                owner: LockOwner::current(&args.playbook.display().to_string()),
                wait: args.lock_wait,
                timeout: args.connecting.connect_timeout,
            };
            let request = PlanRequest {
                extra_vars: args.extra_vars,
                batch: args.batch,
                ..request(
                    Job::Playbook(args.playbook),
                    args.targeting,
                    Some(&args.connecting),
                )
            };
            let audit = AuditSettings::current(
                "run",
                &lock.owner.playbook,
                args.connecting.connect_timeout,
            );
            rollout(&request, &args.connecting, Some(lock), Some(audit))
        }
        Command::Rollback(args) => hosts::rollback(args),
        Command::Releases(args) => hosts::releases(args),
        Command::Reload(args) => {
            let lock = LockSettings {
                owner: LockOwner::current("herd reload"),
                wait: args.lock_wait,
                timeout: args.connecting.connect_timeout,
            };
            let server = server_of(&args.server)?;
            let signal = server
                .signal(args.signal.as_deref())
                .map_err(|message| PlanError::Usage(format!("--signal: {message}")))?;
            let (place, delivery) = place_of(&args.master, Some(signal))?;
            let reload = ReloadPlan {
                server: server.name.to_string(),
                place: Some(place),
                delivery,
                signal: args.signal,
                become_: args.become_,
                become_user: args.become_user,
                preflight: args.preflight,
                preload: match (args.preload, args.no_preload) {
                    (true, _) => Some("true".to_string()),
                    (_, true) => Some("false".to_string()),
                    _ => None,
                },
                start: None,
                timeout: args.validate_timeout,
                settle: args.settle,
                http: args.http.map(|url| (url, args.status, args.contains)),
                run: None,
                command_timeout: args.connecting.timeout,
            };
            let request = PlanRequest {
                batch: Some(args.batch),
                ..request(
                    Job::Reload(Box::new(reload)),
                    args.targeting,
                    Some(&args.connecting),
                )
            };
            let audit = AuditSettings::current("reload", "-", args.connecting.connect_timeout);
            rollout(&request, &args.connecting, Some(lock), Some(audit))
        }
        Command::Exec(args) => {
            let request = request(
                Job::Command(args.command.join(" ")),
                args.targeting,
                Some(&args.connecting),
            );
            rollout(&request, &args.connecting, None, None)
        }
        Command::Plan(args) => {
            let request = PlanRequest {
                extra_vars: args.extra_vars,
                batch: args.batch,
                ssh_config: args.ssh_config,
                ..request(Job::Playbook(args.playbook), args.targeting, None)
            };
            let plan = Plan::build(&request)?;
            stdout(&describe::plan(&plan));
            Ok(ExitCode::from(exit::OK))
        }
        Command::Hosts(args) => hosts::list(args),
        Command::Check(args) => hosts::check(args),
        Command::Unlock(args) => hosts::unlock(args),
        Command::Audit(args) => hosts::audit(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "herd", &mut script);
            stdout(&String::from_utf8_lossy(&script));
            Ok(ExitCode::from(exit::OK))
        }
        Command::Lab(command) => lab(command),
    }
}

/// `herd run` (which takes the deploy lock) and `herd exec` (which does not):
/// build the plan, run the engine, report.
fn rollout(
    request: &PlanRequest,
    connecting: &Connecting,
    lock: Option<LockSettings>,
    audit: Option<AuditSettings>,
) -> Result<ExitCode, AppError> {
    let exec = lock.is_none();
    let junit_error = Arc::new(std::sync::Mutex::new(None));
    let plan = Arc::new(Plan::build(request)?);
    if let Some(path) = &connecting.report {
        check_report_path(path)?;
    }
    let connector = Arc::new(ssh_connector(connecting, &plan)?);
    let runtime = runtime()?;
    let report = runtime.block_on(async {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let ci = ci_of(connecting.ci_format);
        // The CI's markers come first: a batch's group opens before its lines.
        let mut reporters: Vec<Box<dyn Reporter>> = match ci {
            Some(Ci::Github) => vec![Box::new(GithubReporter::new(
                std::env::var_os("GITHUB_STEP_SUMMARY")
                    .filter(|path| !path.is_empty())
                    .map(std::path::PathBuf::from),
            ))],
            Some(Ci::Gitlab) => vec![Box::new(GitlabReporter::default())],
            None => Vec::new(),
        };
        reporters.push(main_reporter(connecting, exec, ci.is_some()));
        if let Some(path) = &connecting.report {
            reporters.push(Box::new(JunitReporter {
                path: path.clone(),
                title: String::new(),
                error: junit_error.clone(),
            }));
        }
        let ledger = Ledger::default();
        reporters.push(ledger.keeper());
        let reporting = tokio::spawn(report::drain(events_rx, reporters));
        let (cancel_tx, cancel_rx) = watch::channel(false);
        tokio::spawn(cancel_on_signals(cancel_tx, ledger));
        let settings = EngineSettings {
            forks: connecting.forks,
            handshakes: HANDSHAKES,
            require_reachable: !exec,
            lock,
            audit,
        };
        let report = Engine::new(plan, connector, settings, events_tx, cancel_rx)
            .run()
            .await;
        let _ = reporting.await;
        report
    });
    if let Some(error) = junit_error.lock().ok().and_then(|mut e| e.take()) {
        eprintln!("error: {error}");
        if report.all_done() {
            return Ok(ExitCode::from(exit::FAILED));
        }
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// The JUnit report is written when the run ends; a path it cannot be
/// written to is found out now, before any host is touched. The file is
/// opened without truncating it, so an existing one is only replaced at the end.
fn check_report_path(path: &std::path::Path) -> Result<(), PlanError> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map(drop)
        .map_err(|e| {
            PlanError::Usage(format!(
                "--report {}: cannot write there: {e}",
                path.display()
            ))
        })
}

/// The server `--server` names.
fn server_of(name: &str) -> Result<&'static AppServer, PlanError> {
    crate::reload::server::by_name(name).ok_or_else(|| {
        PlanError::Usage(format!(
            "--server {name}: unknown server, herd reloads {}",
            crate::reload::server::names()
        ))
    })
}

/// Where the master lives and how it is signalled, from the flags; the
/// same rules as a playbook's `reload` keys, with the flag named.
fn place_of(
    master: &MasterArgs,
    signal: Option<&'static SignalUse>,
) -> Result<(Place<String>, Delivery), PlanError> {
    Keys {
        pidfile: master.pidfile.as_deref(),
        name: master.name.as_deref(),
        unit: master.unit.as_deref(),
        scope: master.scope.as_deref(),
        delivery: master.delivery.as_deref(),
        signal,
        container: master.container.as_deref(),
        engine: master.engine.as_deref(),
        compose: None,
    }
    .choose()
    .map_err(|e| {
        // Every key the message names is a flag here.
        let mut message = e.message.clone();
        for key in ["pidfile", "name", "unit", "scope", "delivery", "signal"] {
            message = message
                .replace(&format!("`{key}`"), &format!("`--{key}`"))
                .replace(&format!("`{key}:"), &format!("`--{key}"));
        }
        PlanError::Usage(format!("--{}: {message}", e.key))
    })
}

/// The parts of a plan request every command shares.
fn request(job: Job, targeting: Targeting, connecting: Option<&Connecting>) -> PlanRequest {
    PlanRequest {
        job,
        inventory: targeting.inventory,
        limit: targeting.limit,
        extra_vars: Vec::new(),
        batch: None,
        known_hosts: connecting.and_then(|c| c.known_hosts.clone()),
        ssh_config: connecting.and_then(|c| c.ssh_config.clone()),
        step_timeout: connecting.map_or(DEFAULT_STEP_TIMEOUT, |c| c.timeout),
    }
}

/// Step timeout for commands that run nothing (`plan`, `hosts`).
const DEFAULT_STEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Results go to stdout; a closed pipe (`herd hosts | head`) is not an error.
fn stdout(text: &str) {
    crate::report::write_out(&mut std::io::stdout().lock(), text);
}

/// The runtime every command that talks to hosts runs on.
fn runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(AppError::Runtime)
}

/// The SSH connector for `plan`'s hosts, with the credentials of the
/// environment (`HERD_SSH_KEY`, `HERD_KNOWN_HOSTS`): read before any host
/// is contacted (a key that cannot be used is bad input) and masked in
/// every output from now on. `--known-hosts` wins over `HERD_KNOWN_HOSTS`.
fn ssh_connector(connecting: &Connecting, plan: &Plan) -> Result<SshConnector, AppError> {
    let mut env = EnvCredentials::from_env()?;
    for secret in &env.secrets {
        plan.renderer.secrets().record(secret);
    }
    // Options whose variables may hold a token (their values are hidden in
    // `--help`): given that way, they are secrets in every output too.
    for variable in ["HERD_HTTP", "HERD_PREFLIGHT"] {
        if let Some(value) = std::env::var_os(variable) {
            plan.renderer.secrets().record(&value.to_string_lossy());
        }
    }
    if connecting.known_hosts.is_some() {
        env.known_hosts = None;
    }
    Ok(SshConnector::new(SshSettings {
        connect_timeout: connecting.connect_timeout,
        accept_new_host_keys: connecting.accept_new_host_keys,
        use_agent: !connecting.no_agent,
        env,
    }))
}

/// SSH handshakes in flight at once: far below a default sshd's MaxStartups
/// per target, and enough to connect hundreds of hosts in a few seconds.
const HANDSHAKES: usize = 64;

/// The CI whose markers to add: the one `--ci-format` names, or with
/// `auto` the one the environment says herd runs in.
fn ci_of(format: CiFormat) -> Option<Ci> {
    match format {
        CiFormat::Auto => Ci::detect(|name| std::env::var(name).ok()),
        CiFormat::Github => Some(Ci::Github),
        CiFormat::Gitlab => Some(Ci::Gitlab),
        CiFormat::None => None,
    }
}

/// Progress bars on a terminal, plain lines elsewhere (and always beside a
/// CI's markers, which bars would redraw over), or JSON.
fn main_reporter(connecting: &Connecting, exec: bool, ci: bool) -> Box<dyn Reporter> {
    use std::io::IsTerminal;
    let terminal =
        std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
    let colour = match connecting.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    match connecting.output {
        Output::Json => Box::new(JsonReporter),
        Output::Human if terminal && !ci => Box::new(ProgressReporter::new(exec, colour)),
        Output::Human => Box::new(PlainReporter { exec, colour }),
    }
}

/// The first SIGINT or SIGTERM asks the engine to stop starting work (and
/// to roll back hosts it stops half-done); a second one ends herd at once
/// (exit 130), skipping those rollbacks and leaving the lock to go stale,
/// after naming every host and what it was doing.
async fn cancel_on_signals(cancel: watch::Sender<bool>, ledger: Ledger) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    for round in 0..2 {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        if round == 0 {
            let _ = cancel.send(true);
        }
    }
    // Commands herd started on the controller go with it.
    crate::engine::local::kill_all();
    // The reporters will not get to run again: these are herd's last words.
    eprint!(
        "\nherd: interrupted again: exiting at once; rollbacks not yet done are skipped \
         (hosts may be half-done: check them), deploy locks are left to go stale\n{}",
        ledger.last_words()
    );
    // With `--ci-format github`, the job's later steps get their workflow
    // commands back (the reporter that would have said so is not dropped).
    eprint!("{}", crate::report::github::resume_line());
    std::process::exit(i32::from(exit::INTERRUPTED));
}

fn lab(command: LabCommand) -> Result<ExitCode, AppError> {
    use crate::lab;
    match command {
        LabCommand::Up {
            hosts,
            dir,
            venv,
            no_app,
            unit_hosts,
            container_hosts,
            servers,
        } => {
            let options = lab::LabOptions {
                dir,
                hosts,
                venv: venv.unwrap_or_else(lab::default_venv),
                gunicorn: !no_app,
                unit_hosts,
                container_hosts,
                servers,
            };
            let info = lab::up(&options)?;
            stdout(&describe::lab(&info));
            eprintln!(
                "lab is up: try `herd exec -i {} -- hostname`; stop it with `herd lab down --dir {}`",
                info.inventory.display(),
                info.dir.display()
            );
        }
        LabCommand::Down { dir } => {
            let down = lab::down(&dir)?;
            eprintln!(
                "lab down: {} process(es) stopped ({} needed SIGKILL)",
                down.stopped, down.killed
            );
        }
        LabCommand::Status { dir } => {
            let info = lab::status(&dir)?;
            stdout(&describe::lab(&info));
        }
    }
    Ok(ExitCode::from(exit::OK))
}
