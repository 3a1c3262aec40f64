//! Reloading the app server on one host, over its SSH connection: find the
//! master, prove it is the right process, run the preflight, signal the
//! master alone, and prove the reload worked (same master, every worker
//! replaced, no churn, the health check serving the new release).
//! See DESIGN.md "Reloading the app server".

mod boot;
mod compose;
pub mod container;
pub mod discover;
pub mod http;
pub mod place;
pub mod preload;
pub mod server;
pub mod signal;
pub mod snapshot;
pub mod unit;
mod validate;

use std::time::Duration;

use serde::Serialize;

use crate::shell::{quote, text_tail, wrap};
use crate::template::OutputMask;
use crate::transport::{Connection, TransportError};
use discover::{DiscoveryError, Found, Master};
use place::{unit_name, Delivery, Place, Scope};
use server::{AppServer, Effect, SignalUse};
use signal::{Outcome, SignalRecord};
use snapshot::{Look, Snapshot};

/// Everything the reload of one host needs, rendered for that host.
#[derive(Debug, Clone)]
pub struct ReloadSpec {
    pub server: &'static AppServer,
    /// Where the master lives.
    pub place: Place<String>,
    /// How its signal gets there.
    pub delivery: Delivery,
    /// The signal and what proves it worked.
    pub signal: &'static SignalUse,
    /// Preflight, start, and the signal run through sudo, as `become_user`
    /// (root when not given).
    pub become_: bool,
    pub become_user: Option<String>,
    pub preflight: Option<String>,
    /// Whether the master preloads the app, as the playbook says; unset:
    /// herd reads it on the host where the signal depends on it.
    pub preload: Option<bool>,
    /// Starts the server when a rollback finds no master to signal.
    pub start: Option<String>,
    pub validate: ValidateSpec,
    /// Limit on each command the reload runs.
    pub command_timeout: Duration,
    /// Masks what the host says that herd quotes in a message.
    pub mask: OutputMask,
}

/// The limit on one look that waits on the host (its wait lasts 5 s at
/// most).
const WAITING_LOOK_LIMIT: Duration = Duration::from_secs(20);

/// How long a master found without workers is looked at again before the
/// reload is refused.
const NO_WORKERS_GRACE: Duration = Duration::from_secs(3);

/// The settle period where no proof of boot is available.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct ValidateSpec {
    pub timeout: Duration,
    /// How long the new worker set must stay unchanged, once its workers
    /// proved they booted; unset: not at all when the server has a boot
    /// proof, [`DEFAULT_SETTLE`] when not (or when it cannot be read).
    pub settle: Option<Duration>,
    /// Time between two looks at the host.
    pub poll: Duration,
    pub http: Option<HttpCheck>,
    /// A shell command that must exit 0.
    pub run: Option<String>,
    /// Set by Ctrl-C: the waits between looks end, and the proof still
    /// awaited fails (the host then rolls back). `None` where nothing
    /// stops the wait (the restore after a rollback).
    pub cancel: Option<tokio::sync::watch::Receiver<bool>>,
}

/// The proof awaited when Ctrl-C stopped the wait for it.
pub const INTERRUPTED: &str = "stopped by Ctrl-C before it was proven";

/// A reload stopped by Ctrl-C before its signal.
pub const STOPPED_BEFORE_SIGNAL: &str = "stopped by Ctrl-C before the signal";

impl ValidateSpec {
    /// Whether Ctrl-C stopped the run (see [`ValidateSpec::cancel`]).
    pub fn stopped(&self) -> bool {
        self.cancel.as_ref().is_some_and(|cancel| *cancel.borrow())
    }

    /// `work`'s result, or `Err` as soon as Ctrl-C stops the run (`work`
    /// is then dropped: only for work nothing else shares, such as a
    /// health check's own channel).
    pub async fn unless_stopped<F: std::future::Future>(
        &self,
        work: F,
    ) -> Result<F::Output, &'static str> {
        let Some(cancel) = &self.cancel else {
            return Ok(work.await);
        };
        let mut cancel = cancel.clone();
        tokio::select! {
            output = work => Ok(output),
            _ = cancel.wait_for(|stopped| *stopped) => Err(INTERRUPTED),
        }
    }

    /// Waits `pause` before the next look; `Err` at once when Ctrl-C
    /// stopped the run (see [`ValidateSpec::cancel`]).
    pub async fn pause(&self, pause: Duration) -> Result<(), &'static str> {
        let Some(cancel) = &self.cancel else {
            tokio::time::sleep(pause).await;
            return Ok(());
        };
        let mut cancel = cancel.clone();
        if *cancel.borrow() {
            return Err(INTERRUPTED);
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => Ok(()),
            _ = cancel.wait_for(|stopped| *stopped) => Err(INTERRUPTED),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpCheck {
    pub url: String,
    pub status: u16,
    pub contains: Option<String>,
}

/// Which proof failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Proof {
    /// No master could be found and proven.
    Master,
    Preflight,
    Signal,
    /// The master died or was replaced after the signal.
    SameMaster,
    /// Old workers still alive, too few new ones, or churn.
    Workers,
    Http,
    Run,
    /// `reload.start` did not bring a server back.
    Start,
    /// The connection was lost once the signal was (or may have been)
    /// sent: the host's state is unknown.
    Contact,
}

impl Proof {
    pub fn name(self) -> &'static str {
        match self {
            Proof::Master => "master",
            Proof::Preflight => "preflight",
            Proof::Signal => "signal",
            Proof::SameMaster => "same_master",
            Proof::Workers => "workers",
            Proof::Http => "http",
            Proof::Run => "run",
            Proof::Start => "start",
            Proof::Contact => "contact",
        }
    }

    /// Whether the signal had gone out when this proof failed.
    pub fn after_signal(self) -> bool {
        matches!(
            self,
            Proof::SameMaster | Proof::Workers | Proof::Http | Proof::Run
        )
    }
}

/// What a reload saw, whether it worked or not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    pub master_pid: Option<u32>,
    /// The master serving after a USR2 re-exec.
    pub new_master_pid: Option<u32>,
    pub old_workers: Vec<u32>,
    pub new_workers: Vec<u32>,
    /// Set when the server was started (no master was left to signal).
    pub started: bool,
    /// How the signal was to be delivered (what `auto` chose).
    pub delivery: Option<Delivery>,
    /// Every signal herd meant to send, in order, and whether it went out.
    pub signals: Vec<SignalRecord>,
    /// The containers of a Compose service reloaded, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
}

impl ReloadReport {
    /// Whether the server may differ from before the reload: a signal went
    /// out, the master was found gone when one was due, or the server was
    /// started. A rollback then restores the server too.
    pub fn server_touched(&self) -> bool {
        self.started || !self.signals.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadFailure {
    pub proof: Proof,
    pub message: String,
    pub report: ReloadReport,
}

fn fail(proof: Proof, message: impl Into<String>, report: &ReloadReport) -> ReloadFailure {
    ReloadFailure {
        proof,
        message: message.into(),
        report: report.clone(),
    }
}

impl ReloadSpec {
    /// How the reload tells the new workers booted, for the plan.
    pub fn boot_wait(&self) -> String {
        let settle = |default: Duration| {
            format!("{}s", self.validate.settle.unwrap_or(default).as_secs_f64())
        };
        match &self.server.boot_proof {
            Some(proof) => format!(
                "once {} (then settle {})",
                proof.describe(),
                settle(Duration::ZERO)
            ),
            None => format!(
                "once the new workers stayed unchanged for settle {}",
                settle(DEFAULT_SETTLE)
            ),
        }
    }

    /// The signal and what it does, for `herd plan`: `USR1 (phased restart)`.
    pub fn signal_line(&self) -> String {
        let mut line = format!("{} ({})", self.signal.name, self.signal.what);
        if let Some(trap) = &self.signal.unless_preloaded {
            let how = match self.preload {
                Some(true) => {
                    "and `reload.preload: true` says it does: this reload will be refused"
                        .to_string()
                }
                Some(false) => "and `reload.preload: false` says it does not".to_string(),
                None => match &self.server.preload {
                    Some(p) if !p.args_in_title => "read before the signal from the config file where it looks by default (its title hides its command line): refused unless that file turns preloading on, or `reload.preload` says".to_string(),
                    _ => "read from its command line and config file before the signal".to_string(),
                },
            };
            line.push_str(&format!(
                "; refused if the master preloads the app (use {} then), {how}",
                trap.instead
            ));
        }
        line
    }

    /// What must hold for the reload to pass, in order, for `herd plan`.
    pub fn proofs(&self) -> String {
        let mut proofs = vec!["master found and proven".to_string()];
        match (&self.preflight, &self.server.preflight) {
            (Some(_), _) => proofs.push("preflight passes".to_string()),
            (None, Some(default)) => proofs.push(format!(
                "`{} {}` passes (with the master's {})",
                default.program,
                default.check.join(" "),
                default.carry.join(", ")
            )),
            (None, None) => {}
        }
        match &self.signal.effect {
            Effect::NewWorkers => {
                proofs.push("same master (pid and start time)".to_string());
                proofs.push("every worker replaced".to_string());
            }
            Effect::NewMaster(upgrade) => {
                proofs.push("a new master with a full set of workers".to_string());
                proofs.push(format!(
                    "{} to the old master, which exits with its workers",
                    upgrade.retire
                ));
                proofs.push("the new master promoted".to_string());
            }
        }
        proofs.push(match &self.server.boot_proof {
            Some(_) => "new workers booted".to_string(),
            None => "new workers unchanged for the settle period (no boot proof)".to_string(),
        });
        if let Some(http) = &self.validate.http {
            let contains = http
                .contains
                .as_ref()
                .map_or(String::new(), |c| format!(" containing `{c}`"));
            proofs.push(format!("{} answers {}{contains}", http.url, http.status));
        }
        if self.validate.run.is_some() {
            proofs.push("validate.run passes".to_string());
        }
        proofs.join(", ")
    }

    /// What the reload will do, for `herd plan`: where the master is found
    /// and how the signal is delivered.
    pub fn describe(&self) -> String {
        let server = self.server.display;
        let signal = self.signal.name;
        let kill = match (self.become_, &self.become_user) {
            (false, _) => format!("kill -{signal}"),
            (true, user) => format!(
                "kill -{signal} as {} (sudo)",
                user.as_deref().unwrap_or("root")
            ),
        };
        let (unit, scope, fallback) = match &self.place {
            Place::Host(on_host) => {
                return format!(
                    "{kill} to the {server} master ({})",
                    on_host.describe(server)
                )
            }
            Place::Unit {
                unit,
                scope,
                fallback,
            } => (unit_name(unit), *scope, fallback),
            Place::Compose {
                project, service, ..
            } => {
                let one = ReloadSpec {
                    place: Place::Container {
                        engine: None,
                        name: "NAME".to_string(),
                    },
                    ..self.clone()
                };
                return format!(
                    "each container NAME of the Compose service {service} (project {project}) in turn: {}",
                    one.describe()
                );
            }
            Place::Container { engine, name } => {
                let engine = engine.map_or("docker|podman", |e| e.name());
                let sudo = if self.become_ { "sudo " } else { "" };
                return format!(
                    "`{sudo}{engine} kill --signal={signal} {name}` when PID 1 of the container is the {server} master or an init that forwards it; `{sudo}{engine} exec {name} sh -c 'kill -s {signal} PID'` when PID 1 is another process; refused when PID 1 is a shell"
                );
            }
        };
        let systemctl = unit::Systemctl {
            scope,
            become_: self.become_,
            become_user: self.become_user.as_deref(),
        };
        let reload = format!("`{}`", systemctl.command(&["reload", &unit]));
        let main = format!("the main process of {unit}");
        match self.delivery {
            Delivery::Kill => format!("{kill} to {main}"),
            Delivery::Systemctl => format!("{reload}, then proof on {main}"),
            Delivery::SystemctlKill => format!(
                "`{}`, then proof on {main}",
                systemctl.command(&[
                    "kill",
                    "--kill-whom=main",
                    &format!("--signal={signal}"),
                    &unit
                ])
            ),
            Delivery::ContainerKill | Delivery::ContainerExec => String::new(),
            Delivery::Auto => format!(
                "delivery auto: {reload} when {unit} is active with ExecReload, {kill} to {main} when it has none; when {unit} is not active, {kill} to the {server} master ({})",
                fallback.describe(server)
            ),
        }
    }

    /// `script` run as the reload's commands run: under `become`, through
    /// sudo, on sudo's stdin when it holds a secret (see
    /// [`crate::shell::wrap_hidden`]).
    fn wrap(&self, script: &str) -> String {
        if self.become_ && self.mask.holds_secret(script) {
            return crate::shell::wrap_hidden(script, self.become_user.as_deref());
        }
        wrap(script, self.become_, self.become_user.as_deref())
    }

    /// What a snapshot looks at: for discovery (no `wait`) the unit and what
    /// systemd says about it; while validating, the master's family.
    fn look<'a>(&'a self, wait: Option<&'a snapshot::WaitFor>) -> Look<'a> {
        let pidfile = self.place.pidfile().map(|path| quote(path));
        let container = match (&self.place, wait) {
            (Place::Container { engine, name }, None) => Some(container::query(
                *engine,
                name,
                &container::sudo(self.become_, self.become_user.as_deref()),
            )),
            _ => None,
        };
        let (unit, query) = match (&self.place, wait) {
            (Place::Unit { unit, scope, .. }, None) => {
                let name = unit_name(unit);
                let owner = match scope {
                    Scope::System => None,
                    Scope::User => Some(match (self.become_, &self.become_user) {
                        (true, Some(user)) => format!("$(id -u {} 2>/dev/null)", quote(user)),
                        (true, None) => "0".to_string(),
                        (false, _) => "$(id -u)".to_string(),
                    }),
                };
                let query = self.query(&name, *scope);
                (
                    Some(snapshot::UnitLook {
                        name: quote(&name),
                        owner,
                    }),
                    query,
                )
            }
            _ => (None, None),
        };
        Look {
            server: self.server,
            pidfile,
            unit,
            query,
            container,
            wait,
        }
    }

    /// The `systemctl show` herd may run: one that needs no sudo right
    /// beyond what the delivery needs (see [`unit`]). Under `auto` with
    /// `become`, the whole snapshot runs as `become_user` (see
    /// [`ReloadSpec::reads_as_become`]), so the query reaches that
    /// account's own manager.
    fn query(&self, unit: &str, scope: Scope) -> Option<String> {
        let own = unit::Systemctl {
            scope,
            become_: false,
            become_user: None,
        };
        match (scope, self.become_) {
            (Scope::System, _) | (Scope::User, false) => Some(unit::query(&own, unit)),
            (Scope::User, true) if self.reads_as_become() => Some(unit::query(&own, unit)),
            (Scope::User, true) => None,
        }
    }

    /// Whether the host is read through sudo: on the host itself under
    /// `become` (a pidfile only root may read), and through a unit under
    /// `auto` with `become`, which may fall back to a pidfile and asks the
    /// manager of `become_user`. The other deliveries read `/proc` as the
    /// login account: a least-privilege account has no other right.
    fn reads_as_become(&self) -> bool {
        self.become_
            && match self.place {
                Place::Host(_) => true,
                // Only the engine's CLI goes through sudo (see `container::sudo`).
                Place::Container { .. } | Place::Compose { .. } => false,
                Place::Unit { .. } => self.delivery == Delivery::Auto,
            }
    }
}

/// Why the host could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error("reading /proc: {0}")]
    Transport(#[from] TransportError),
    #[error("reading /proc failed: {0}")]
    Failed(String),
}

/// Takes one snapshot of the host.
pub async fn snapshot<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
) -> Result<Snapshot, ReadError> {
    snapshot_after(connection, spec, None).await
}

/// Takes one snapshot of the host, after waiting there for `wait` if given.
/// Reading `/proc` needs no right: through a unit, it runs as the login
/// account (a least-privilege account may run only `systemctl`).
async fn snapshot_after<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    wait: Option<&snapshot::WaitFor>,
) -> Result<Snapshot, ReadError> {
    let script = snapshot::script(&spec.look(wait));
    let command = if spec.reads_as_become() {
        spec.wrap(&script)
    } else {
        script
    };
    // A look that waits on the host ends within seconds (see
    // `validate::looks_until`): one that takes far longer is on a hung
    // connection, noticed here rather than by keepalive a minute later.
    let limit = match wait {
        Some(_) => spec.command_timeout.min(WAITING_LOOK_LIMIT),
        None => spec.command_timeout,
    };
    let output = connection.exec(&command, limit).await?;
    if !output.success() {
        let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let hint = match (&spec.place, unit::refusal(output.exit_code, &said)) {
            (Place::Unit { .. }, Some(unit::Refusal::Sudo(_))) => format!(
                "; `delivery: auto` reads the host as {} through sudo, which an account allowed only `systemctl reload` may not: give it `delivery: systemctl`",
                spec.become_user.as_deref().unwrap_or("root")
            ),
            _ => String::new(),
        };
        return Err(ReadError::Failed(format!("{said}{hint}")));
    }
    Ok(snapshot::parse(&String::from_utf8_lossy(&output.stdout)))
}

/// Why no master was found: the host could not be read, or discovery said no.
pub enum NotFound {
    Unreadable(ReadError),
    Discovery(DiscoveryError),
}

impl NotFound {
    fn into_failure(self) -> ReloadFailure {
        let message = match self {
            NotFound::Unreadable(error) => error.to_string(),
            NotFound::Discovery(error) => error.to_string(),
        };
        fail(Proof::Master, message, &ReloadReport::default())
    }
}

/// Finds and proves the master, and settles the delivery, without
/// changing anything.
pub async fn find_master<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
) -> Result<Found, NotFound> {
    let snapshot = snapshot(connection, spec)
        .await
        .map_err(NotFound::Unreadable)?;
    discover::discover(
        &snapshot,
        spec.server,
        &spec.place,
        spec.delivery,
        &spec.mask,
    )
    .map_err(NotFound::Discovery)
}

/// For a Compose service, each of its containers on the host with the spec
/// that reaches it alone; `None` for any other place.
pub async fn containers_of<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
) -> Result<Option<Vec<(String, ReloadSpec)>>, ReloadFailure> {
    compose::each(connection, spec).await
}

/// The whole reload of one host: of its one master, or of each container
/// of a Compose service in turn.
pub async fn reload<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
) -> Result<ReloadReport, ReloadFailure> {
    let Some(each) = compose::each(connection, spec).await? else {
        return reload_one(connection, spec, Restoring::No).await;
    };
    let mut turns = compose::Turns::new(each.len());
    for (name, one) in &each {
        let result = reload_one(connection, one, Restoring::No).await;
        if let Some(failure) = turns.take(name, result) {
            return Err(failure);
        }
    }
    Ok(turns.done())
}

/// Whether a reload brings the previous release back after a rollback: its
/// master may have lost every worker to the release that failed, and its
/// signal is what brings them back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Restoring {
    No,
    Yes,
}

/// The reload of one master.
async fn reload_one<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    restoring: Restoring,
) -> Result<ReloadReport, ReloadFailure> {
    let mut found = find_master(connection, spec)
        .await
        .map_err(NotFound::into_failure)?;
    // A master without workers serves nothing, and its signal could not be
    // proven (no worker to replace): give one being replaced a moment.
    let until = tokio::time::Instant::now() + NO_WORKERS_GRACE;
    let needs_workers = restoring == Restoring::No;
    while needs_workers && found.master.workers.is_empty() && tokio::time::Instant::now() < until {
        tokio::time::sleep(spec.validate.poll).await;
        found = find_master(connection, spec)
            .await
            .map_err(NotFound::into_failure)?;
    }
    if needs_workers && found.master.workers.is_empty() {
        let report = ReloadReport {
            master_pid: Some(found.master.pid),
            delivery: Some(found.delivery),
            ..Default::default()
        };
        return Err(fail(
            Proof::Master,
            format!(
                "master {} has no workers (they do not boot, or it runs none): it serves nothing and a reload could not be proven; nothing was signalled",
                found.master.pid
            ),
            &report,
        ));
    }
    let mut report = ReloadReport {
        master_pid: Some(found.master.pid),
        old_workers: found.master.workers.clone(),
        delivery: Some(found.delivery),
        ..Default::default()
    };
    // The old master's exit ends the container where it is PID 1, and
    // where an init runs it (the init exits with its only child).
    if let (Effect::NewMaster(_), Some(inside), Place::Container { name, .. }) =
        (&spec.signal.effect, &found.container, &spec.place)
    {
        let why = match inside.pid1 {
            container::Pid1::Master => "its PID 1 is the master",
            _ => "the master is PID 1's child, and the init ends with it",
        };
        return Err(fail(
            Proof::Master,
            format!("`signal: {}` is refused in the container {name}: {why}, and when the old master exits the container stops; nothing was signalled", spec.signal.name),
            &report,
        ));
    }
    refuse_if_preloaded(connection, spec, &found.master, &report).await?;
    let preflight = match (&spec.preflight, &spec.server.preflight) {
        (Some(given), _) => Some(given.clone()),
        // The check would run on the host, not in the container.
        (None, Some(default)) if matches!(spec.place, Place::Container { .. } | Place::Compose { .. }) => {
            return Err(fail(
                Proof::Preflight,
                format!(
                    "{}'s own configuration check (`{} {}`) would run on the host, not in the container: give `reload.preflight` (e.g. `docker exec NAME {} {}`); nothing was signalled",
                    spec.server.display,
                    default.program,
                    default.check.join(" "),
                    default.program,
                    default.check.join(" ")
                ),
                &report,
            ))
        }
        (None, Some(default)) => Some(
            preload::default_preflight(default, &found.master).map_err(|why| {
                fail(
                    Proof::Preflight,
                    format!(
                        "no {} configuration check can be made for master {}: {why}; nothing was signalled",
                        spec.server.display, found.master.pid
                    ),
                    &report,
                )
            })?,
        ),
        (None, None) => None,
    };
    if let Some(preflight) = &preflight {
        let output = connection
            .exec(&spec.wrap(preflight), spec.command_timeout)
            .await
            .map_err(|e| fail(Proof::Preflight, format!("preflight: {e}"), &report))?;
        if !output.success() {
            let stderr = spec.mask.output(&String::from_utf8_lossy(&output.stderr));
            let stdout = spec.mask.output(&String::from_utf8_lossy(&output.stdout));
            let said = text_tail(
                if stderr.trim().is_empty() {
                    &stdout
                } else {
                    &stderr
                },
                5,
            );
            return Err(fail(
                Proof::Preflight,
                format!(
                    "preflight failed (exit code {}), nothing was signalled: {said}",
                    output
                        .exit_code
                        .map_or("none".to_string(), |c| c.to_string())
                ),
                &report,
            ));
        }
    }
    // Ctrl-C during discovery or the preflight: no signal goes out.
    if spec.validate.stopped() {
        return Err(fail(
            Proof::Signal,
            format!("{STOPPED_BEFORE_SIGNAL}; nothing was signalled"),
            &report,
        ));
    }
    match signal_and_prove(connection, spec, &found, &mut report).await {
        Err(failure) if failure.proof.after_signal() => {
            Err(contact_check(connection, spec, failure).await)
        }
        other => other.map(|()| report),
    }
}

/// Refuses a signal that does not do what it says when the master preloads
/// the app (see [`server::SignalUse::unless_preloaded`]), before anything
/// is signalled: when the master preloads, or when that cannot be told.
async fn refuse_if_preloaded<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    master: &Master,
    report: &ReloadReport,
) -> Result<(), ReloadFailure> {
    let (Some(trap), Some(detect)) = (&spec.signal.unless_preloaded, &spec.server.preload) else {
        return Ok(());
    };
    let server = spec.server.display;
    let preloads = match spec.preload {
        Some(said) => preload::Preloads::Known(said, "`reload.preload` says so".to_string()),
        None => match preload::plan(spec.server, detect, master) {
            preload::Plan::Settled(preloads) => preloads,
            preload::Plan::Read(files) | preload::Plan::Guess(files) if files.is_empty() => {
                preload::Preloads::Unknown("no config file to read".to_string())
            }
            plan @ (preload::Plan::Read(_) | preload::Plan::Guess(_)) => {
                let guess = matches!(plan, preload::Plan::Guess(_));
                let (preload::Plan::Read(files) | preload::Plan::Guess(files)) = plan else {
                    return Ok(());
                };
                let script = preload::script(master.pid, &files);
                let command = if spec.reads_as_become() {
                    spec.wrap(&script)
                } else {
                    script
                };
                match connection.exec(&command, spec.command_timeout).await {
                    Ok(output) if output.success() => preload::judge(
                        spec.server,
                        detect,
                        &spec.mask.output(&String::from_utf8_lossy(&output.stdout)),
                        guess,
                    ),
                    Ok(output) => preload::Preloads::Unknown(format!(
                        "reading its config failed: {}",
                        text_tail(
                            &spec.mask.output(&String::from_utf8_lossy(&output.stderr)),
                            3
                        )
                    )),
                    Err(error) => {
                        preload::Preloads::Unknown(format!("reading its config: {error}"))
                    }
                }
            }
        },
    };
    let message = match preloads {
        preload::Preloads::Known(false, _) => return Ok(()),
        preload::Preloads::Known(true, why) => format!(
            "{} ({server} master {} preloads the app: {why}); nothing was signalled",
            trap.message(server),
            master.pid
        ),
        preload::Preloads::Unknown(why) => format!(
            "{} to {server} needs a master that does not preload the app, and herd cannot tell whether master {} does ({why}): say `preload: true` or `preload: false` under `reload` (`--preload`/`--no-preload`), or use {}; nothing was signalled",
            trap.signal, master.pid, trap.instead
        ),
    };
    Err(fail(Proof::Preflight, message, report))
}

/// The signal, guarded against pid reuse, and the proofs that it worked.
async fn signal_and_prove<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    found: &Found,
    report: &mut ReloadReport,
) -> Result<(), ReloadFailure> {
    let master = &found.master;
    let name = spec.signal.name;
    if signal::deliver(connection, spec, name, found, report).await? != Outcome::Sent {
        return master_gone(connection, spec, master, name, report).await;
    }
    match &spec.signal.effect {
        Effect::NewWorkers => validate::after_hup(connection, spec, master, report).await?,
        Effect::NewMaster(upgrade) => {
            validate::usr2(connection, spec, upgrade, master, report).await?
        }
    }
    if let (Some(inside), Place::Container { name, .. }) = (&found.container, &spec.place) {
        validate::container_kept(connection, spec, name, &inside.seen, report).await?;
    }
    validate::serving(connection, spec, report).await
}

/// The proven master was gone when its signal was due, so nothing was
/// signalled. With no master left, `reload.start` brings the server up
/// (serving whatever release is current); a master that took its place is
/// left alone.
async fn master_gone<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    master: &Master,
    signal: &str,
    report: &mut ReloadReport,
) -> Result<(), ReloadFailure> {
    let pid = master.pid;
    let before = format!("the master {pid} exited before {signal}, which was not sent");
    match settled_master(connection, spec).await {
        Err(NotFound::Discovery(error)) if error.is_not_running() => {
            let started = start(connection, spec)
                .await
                .map_err(|failure| ReloadFailure {
                    message: format!("{before}; {}", failure.message),
                    report: merged(report, &failure.report),
                    ..failure
                })?;
            *report = merged(report, &started);
            Ok(())
        }
        Ok(other) => Err(fail(
            Proof::Signal,
            format!(
                "{before}; master {} runs in its place and was not signalled either",
                other.master.pid
            ),
            report,
        )),
        Err(other) => Err(fail(
            Proof::Signal,
            format!(
                "{before}, and no master can be started: {}",
                other.into_failure().message
            ),
            report,
        )),
    }
}

/// The reload's report with what `reload.start` saw after it.
fn merged(reload: &ReloadReport, started: &ReloadReport) -> ReloadReport {
    ReloadReport {
        master_pid: reload.master_pid,
        new_master_pid: started.master_pid,
        old_workers: reload.old_workers.clone(),
        new_workers: started.new_workers.clone(),
        started: started.started,
        delivery: reload.delivery,
        signals: reload.signals.clone(),
        containers: reload.containers.clone(),
    }
}

/// After a proof failed that follows the signal: if the connection is gone,
/// say so: the host may well serve the new release, and nothing herd saw
/// last tells which.
async fn contact_check<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    failure: ReloadFailure,
) -> ReloadFailure {
    let probe = spec.command_timeout.min(CONTACT_PROBE);
    match connection.exec(CONTACT_PROBE_COMMAND, probe).await {
        Ok(_) => failure,
        Err(error) => ReloadFailure {
            proof: Proof::Contact,
            message: format!(
                "contact lost after the signal ({error}): the host's state is unknown (last seen: {})",
                failure.message
            ),
            report: failure.report,
        },
    }
}

/// The longest herd waits on a connection to tell whether it is still up.
const CONTACT_PROBE: Duration = Duration::from_secs(10);
/// A command that does nothing, named so that a log shows what it is for.
const CONTACT_PROBE_COMMAND: &str = "true # herd: is the connection still up";

/// After contact was lost once the signal had (or may have) gone out, on a
/// new connection: finds out whether the new release serves. The master
/// seen before (or, after `reload.start`, any master) must run with a full
/// set of workers, none of them old, and the health checks must pass, by
/// the validate timeout. `seen` is what the reload saw before contact was lost.
pub async fn find_out<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    seen: &ReloadReport,
) -> Result<ReloadReport, ReloadFailure> {
    if let Place::Compose { service, .. } = &spec.place {
        // What was seen is not kept per container: which of them serve the
        // new release cannot be told, and the ones not reached yet do not.
        // A failure: the rollback brings every container back to one release.
        let reached = seen.containers.join(", ");
        return Err(fail(
            Proof::Workers,
            format!(
                "the Compose service {service} was reloaded in part (containers reached: {}): which containers serve the new release cannot be told",
                if reached.is_empty() { "none" } else { reached.as_str() }
            ),
            seen,
        ));
    }
    find_out_one(connection, spec, seen).await
}

async fn find_out_one<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    seen: &ReloadReport,
) -> Result<ReloadReport, ReloadFailure> {
    let mut report = seen.clone();
    let expected = seen.new_master_pid.or(seen.master_pid);
    let wanted = seen.old_workers.len().max(1);
    let deadline = tokio::time::Instant::now() + spec.validate.timeout;
    loop {
        let problem = match find_master(connection, spec).await {
            Err(not_found) => (Proof::SameMaster, not_found.into_failure().message),
            Ok(Found { master, .. }) if !seen.started && Some(master.pid) != expected => (
                Proof::SameMaster,
                format!(
                    "master {} serves, not {}",
                    master.pid,
                    expected.map_or("?".to_string(), |p| p.to_string())
                ),
            ),
            Ok(Found { master, .. }) => {
                let old: Vec<u32> = master
                    .workers
                    .iter()
                    .copied()
                    .filter(|w| seen.old_workers.contains(w))
                    .collect();
                report.new_workers = master.workers.clone();
                if old.is_empty() && master.workers.len() >= wanted {
                    break;
                }
                (
                    Proof::Workers,
                    format!(
                        "master {} has workers {:?}, old ones among them: {old:?}",
                        master.pid, master.workers
                    ),
                )
            }
        };
        if tokio::time::Instant::now() >= deadline {
            let (proof, message) = problem;
            return Err(fail(proof, message, &report));
        }
        tokio::time::sleep(spec.validate.poll).await;
    }
    validate::serving(connection, spec, &report).await?;
    Ok(report)
}

/// Only the health checks, for a playbook that validates without reloading.
pub async fn check_serving<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
) -> Result<ReloadReport, ReloadFailure> {
    let report = ReloadReport::default();
    validate::serving(connection, spec, &report).await?;
    Ok(report)
}

/// After a rollback: signal the master if there is one, else start the
/// server with `reload.start`, then prove it serves; each container of a
/// Compose service in turn.
pub async fn restore<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
) -> Result<ReloadReport, ReloadFailure> {
    let Some(each) = compose::each(connection, spec).await? else {
        return restore_one(connection, spec).await;
    };
    let mut turns = compose::Turns::new(each.len());
    for (name, one) in &each {
        let result = restore_one(connection, one).await;
        if let Some(failure) = turns.take(name, result) {
            return Err(failure);
        }
    }
    Ok(turns.done())
}

async fn restore_one<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
) -> Result<ReloadReport, ReloadFailure> {
    // The previous release is back: the check proves it serves, not that it
    // serves the release that just failed.
    let mut spec = spec.clone();
    if let Some(http) = &mut spec.validate.http {
        http.contains = None;
    }
    let spec = &spec;
    match settled_master(connection, spec).await {
        Ok(_) => {
            let mut spec = spec.clone();
            // Rolling back is no time for a preflight that may judge the old release by new rules.
            spec.preflight = None;
            reload_one(connection, &spec, Restoring::Yes).await
        }
        Err(NotFound::Discovery(error)) if error.is_not_running() => start(connection, spec).await,
        Err(other) => Err(other.into_failure()),
    }
}

/// Finds the master, waiting out a master that exited but was not reaped
/// yet: while its zombie exists, its pidfile still looks taken and
/// `reload.start` would start nothing.
async fn settled_master<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
) -> Result<Found, NotFound> {
    let deadline = tokio::time::Instant::now() + spec.validate.timeout;
    loop {
        match find_master(connection, spec).await {
            Err(NotFound::Discovery(DiscoveryError::Zombie { .. }))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(spec.validate.poll).await;
            }
            other => return other,
        }
    }
}

async fn start<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
) -> Result<ReloadReport, ReloadFailure> {
    // `started` once `reload.start` ran and succeeded: a report never says
    // a master was started when none was.
    let mut report = ReloadReport::default();
    let Some(command) = &spec.start else {
        return Err(fail(
            Proof::Start,
            "no master is running and the playbook has no `reload.start`: the host is DOWN",
            &report,
        ));
    };
    let output = connection
        .exec(&spec.wrap(command), spec.command_timeout)
        .await
        .map_err(|e| {
            fail(
                Proof::Start,
                format!("reload.start: {e}; the host is DOWN"),
                &report,
            )
        })?;
    if !output.success() {
        return Err(fail(
            Proof::Start,
            format!(
                "reload.start failed (exit code {}): {}; the host is DOWN",
                output
                    .exit_code
                    .map_or("none".to_string(), |c| c.to_string()),
                text_tail(
                    &spec.mask.output(&String::from_utf8_lossy(&output.stderr)),
                    5
                )
            ),
            &report,
        ));
    }
    report.started = true;
    let master = validate::master_appears(connection, spec, &mut report).await?;
    report.master_pid = Some(master.pid);
    report.new_workers = master.workers;
    validate::serving(connection, spec, &report).await?;
    Ok(report)
}

impl DiscoveryError {
    /// Nothing runs to signal: `reload.start` may bring the server up.
    pub fn is_not_running(&self) -> bool {
        matches!(
            self,
            DiscoveryError::NotRunning { .. } | DiscoveryError::UnitInactive { .. }
        )
    }
}

#[cfg(test)]
mod tests;
