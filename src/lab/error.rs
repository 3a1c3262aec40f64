//! What can go wrong while bringing a lab up or down, each saying what to do.

use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
pub enum LabError {
    #[error("sshd not found at {0}: run scripts/setup.sh")]
    SshdMissing(PathBuf),

    #[error("ssh-keygen not found on PATH: run scripts/setup.sh")]
    SshKeygenMissing,

    #[error("gunicorn not found at {}: run scripts/setup.sh (or set HERD_LAB_VENV to a venv with gunicorn)", .0.display())]
    GunicornMissing(PathBuf),

    #[error("unknown app server `{0}` in --servers: choose from {names}", names = crate::lab::AppServer::names())]
    UnknownServer(String),

    #[error("--servers runs app servers and cannot go with --no-app")]
    ServersNeedApp,

    #[error("{server} not found at {}: run scripts/setup.sh", .path.display())]
    ServerMissing { server: &'static str, path: PathBuf },

    #[error("a lab needs at least one host")]
    NoHosts,

    #[error("--unit-hosts {units} asks for more unit hosts than the lab's {hosts} hosts")]
    TooManyUnitHosts { units: usize, hosts: usize },

    #[error("--unit-hosts needs root: the lab runs a systemd user manager for the account {0}; run `sudo herd lab up`, or leave out --unit-hosts")]
    UnitsNeedRoot(&'static str),

    #[error("--unit-hosts runs Gunicorn as a systemd unit and cannot go with --no-app")]
    UnitsNeedApp,

    #[error("--container-hosts {containers} and --unit-hosts {units} ask for more hosts than the lab's {hosts}")]
    TooManyContainerHosts {
        containers: usize,
        units: usize,
        hosts: usize,
    },

    #[error("--container-hosts needs root: the lab runs its containers on the machine's rootful Podman; run `sudo herd lab up`, or leave out --container-hosts")]
    ContainersNeedRoot,

    #[error("--container-hosts runs Gunicorn in containers and cannot go with --no-app")]
    ContainersNeedApp,

    #[error("podman not found at {}: run scripts/setup.sh", .0.display())]
    PodmanMissing(PathBuf),

    #[error("a lab is already running in {}: run `herd lab down` first", .0.display())]
    AlreadyRunning(PathBuf),

    #[error("{} has a hosts/ directory but no lab.json: not a lab; choose an empty directory", .0.display())]
    NotALab(PathBuf),

    #[error("no lab in {} (no lab.json): run `herd lab up` first", .0.display())]
    NoLab(PathBuf),

    #[error("{}: {message}", .path.display())]
    Io {
        path: PathBuf,
        message: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: not a lab state file: {source}", .path.display())]
    BadState {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{command} failed: {detail}")]
    Command { command: String, detail: String },

    #[error(
        "the lab user {user} cannot reach {}: {} is mode {mode:04o}; \
         use a directory whose parents others can search, or chmod o+x it",
        .dir.display(), .blocker.display()
    )]
    Unreachable {
        user: String,
        dir: PathBuf,
        blocker: PathBuf,
        mode: u32,
    },

    #[error("no free port on {address}: {source}")]
    NoPort {
        address: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{host}: {what} did not start: {reason}\n--- {} (last lines) ---\n{log_tail}", .log.display())]
    StartFailed {
        host: String,
        what: &'static str,
        reason: String,
        log: PathBuf,
        log_tail: String,
    },
}

impl LabError {
    /// An I/O error on `path`, with a few words on what was being done.
    pub fn io(
        path: impl Into<PathBuf>,
        message: impl Into<String>,
    ) -> impl FnOnce(std::io::Error) -> LabError {
        let path = path.into();
        let message = message.into();
        move |source| LabError::Io {
            path,
            message,
            source,
        }
    }
}
