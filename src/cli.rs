//! The command line, as clap types. No I/O here: `app` turns these into work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "herd",
    version,
    about = "Rolling, zero-downtime deploys to a fleet over SSH",
    after_help = "Exit codes: 0 every host done; 1 the rollout failed or was aborted; 2 bad usage or input (no host contacted); 3 deploy lock held; 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a playbook's steps on every targeted host.
    ///
    /// Example: herd run playbooks/deploy.yml -i .herd-lab/inventory.yml -e release=v2
    Run(RunArgs),
    /// Switch every host back to the previous release (or --to ID), in the
    /// playbook's rolling batches, then reload and validate as `run` does.
    /// Every host is checked to have that release before any is touched.
    ///
    /// Example: herd rollback playbooks/deploy.yml -i .herd-lab/inventory.yml --to v1
    Rollback(RollbackArgs),
    /// Show each host's current and previous release, how many are kept,
    /// and when and by whom current was switched; flags a fleet on mixed releases.
    ///
    /// Example: herd releases playbooks/deploy.yml -i .herd-lab/inventory.yml --output json
    Releases(ReleasesArgs),
    /// Reload the app server (Gunicorn, uWSGI, Unicorn, Puma, nginx) across the fleet in rolling batches, proving each reload
    /// (same master, every worker replaced, health check), no playbook needed.
    ///
    /// Example: herd reload -i inventory.yml --pidfile '{{ app_dir }}/gunicorn.pid' --http 'http://127.0.0.1:8000/healthz' --batch 25%
    Reload(ReloadArgs),
    /// Run one shell command on many hosts at once.
    ///
    /// Example: herd exec -i inventory.yml -l web -- uptime
    Exec(ExecArgs),
    /// Show the batches and the exact commands each host would run; connects to nothing.
    ///
    /// Example: herd plan playbooks/deploy.yml -i inventory.yml -e release=v2
    Plan(PlanArgs),
    /// Check every targeted host without changing anything: reachable, host key,
    /// login, sudo, and the app server master a reload would signal.
    ///
    /// Example: herd check -i inventory.yml --pidfile '{{ app_dir }}/gunicorn.pid'
    Check(CheckArgs),
    /// Remove the deploy lock from the targeted hosts, whoever holds it: for a
    /// lock left by a controller that died. Prints each lock removed.
    ///
    /// Example: herd unlock -i inventory.yml -l web
    Unlock(UnlockArgs),
    /// Show the last lines of each targeted host's audit log (who ran what,
    /// from where, and how it ended there), host name first.
    ///
    /// Example: herd audit -i inventory.yml -l web --last 3
    Audit(AuditArgs),
    /// List the targeted hosts, their connection settings and variables.
    ///
    /// Example: herd hosts -i inventory.yml -l 'web:!canary' --vars
    Hosts(HostsArgs),
    /// Print a shell completion script.
    ///
    /// Example: herd completions bash > /etc/bash_completion.d/herd
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Start, stop or inspect a throwaway local fleet (sshd + an app server on 127.0.0.x).
    #[command(subcommand)]
    Lab(LabCommand),
}

#[derive(Debug, Clone, Args)]
pub struct Targeting {
    /// Inventory file in Ansible's YAML format.
    #[arg(
        short = 'i',
        long,
        env = "HERD_INVENTORY",
        default_value = "inventory.yml"
    )]
    pub inventory: PathBuf,
    /// Ansible host pattern: names, groups, globs, `~regex`, `web[0]`, `a,b` union, `a:&b` intersection, `a:!b` exclusion, `@file`.
    #[arg(short = 'l', long, env = "HERD_LIMIT", value_parser = parse_pattern)]
    pub limit: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct Connecting {
    /// known_hosts file to check host keys against (default: the inventory's
    /// `herd_known_hosts`, else ~/.ssh/known_hosts).
    #[arg(long, env = "HERD_KNOWN_HOSTS_FILE")]
    pub known_hosts: Option<PathBuf>,
    /// OpenSSH client config to read Host aliases, HostName, User, Port,
    /// IdentityFile and ProxyJump from (default: ~/.ssh/config). Inventory variables win.
    #[arg(
        short = 'F',
        long = "ssh-config",
        env = "HERD_SSH_CONFIG",
        value_name = "FILE"
    )]
    pub ssh_config: Option<PathBuf>,
    /// Trust and record the key of a host not yet in known_hosts (a changed key is always refused).
    #[arg(long, env = "HERD_ACCEPT_NEW_HOST_KEYS", value_parser = boolish())]
    pub accept_new_host_keys: bool,
    /// Limit on connecting and authenticating to one host, e.g. 10s.
    #[arg(long, env = "HERD_CONNECT_TIMEOUT", default_value = "10s", value_parser = parse_limit)]
    pub connect_timeout: std::time::Duration,
    /// Timeout of a step that sets no `timeout` of its own, e.g. 10m.
    #[arg(long, env = "HERD_TIMEOUT", default_value = "10m", value_parser = parse_limit)]
    pub timeout: std::time::Duration,
    /// Hosts worked on at once.
    #[arg(short = 'f', long, env = "HERD_FORKS", default_value_t = 50, value_parser = parse_forks)]
    pub forks: usize,
    /// Do not offer ssh-agent keys, only the inventory's key files.
    #[arg(long, env = "HERD_NO_AGENT", value_parser = boolish())]
    pub no_agent: bool,
    /// Output format of events: `human` (progress bars on a terminal, plain
    /// lines otherwise, on stderr) or `json` (one object per event on stdout).
    #[arg(long, env = "HERD_OUTPUT", value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// Colours on stderr: `auto` (a terminal, and NO_COLOR unset), `always` or `never`.
    #[arg(long, env = "HERD_COLOR", value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Also write the run as JUnit XML (one test case per host) to this file, for CI test views.
    #[arg(long, env = "HERD_REPORT", value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// A CI's own markers beside the log lines on stderr: `github` (an
    /// `::error` per failed host, a group per batch, the summary appended to
    /// $GITHUB_STEP_SUMMARY), `gitlab` (a collapsible section per batch),
    /// `none`, or `auto`: github when GITHUB_ACTIONS=true, gitlab when
    /// GITLAB_CI=true, else none.
    #[arg(long, value_enum, env = "HERD_CI_FORMAT", default_value_t = CiFormat::Auto)]
    pub ci_format: CiFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CiFormat {
    Auto,
    Github,
    Gitlab,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The playbook to run.
    pub playbook: PathBuf,
    #[command(flatten)]
    pub targeting: Targeting,
    #[command(flatten)]
    pub connecting: Connecting,
    /// Extra variable KEY=VALUE, highest precedence; repeatable. Example: -e release=v2
    #[arg(short = 'e', long = "extra-vars", value_name = "KEY=VALUE")]
    pub extra_vars: Vec<String>,
    /// Batch sizes, overriding the playbook's: a number, a percentage or a list. Example: --batch 1,25%,100%
    #[arg(long, env = "HERD_BATCH", value_parser = parse_batch)]
    pub batch: Option<String>,
    /// How long to wait for another run's deploy lock on a targeted host before
    /// giving up with exit code 3, e.g. 5m (default: do not wait).
    #[arg(long, env = "HERD_LOCK_WAIT", default_value = "0s", value_parser = parse_duration)]
    pub lock_wait: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The playbook whose `release`, `reload`, `validate`, `rolling` and
    /// `hooks` to use; `release` is the target whatever `-e` says.
    #[command(flatten)]
    pub run: RunArgs,
    /// The release to go back to (default: each host's previous release,
    /// which must be the same on every host).
    #[arg(long, env = "HERD_TO", value_name = "ID")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    /// The playbook whose `release.path` to read.
    pub playbook: PathBuf,
    #[command(flatten)]
    pub targeting: Targeting,
    #[command(flatten)]
    pub connecting: Connecting,
    #[arg(short = 'e', long = "extra-vars", value_name = "KEY=VALUE")]
    pub extra_vars: Vec<String>,
}

/// Where the master lives and how it is signalled; with none of these,
/// the one master on the host, signalled with `kill`.
#[derive(Debug, Clone, Args)]
pub struct MasterArgs {
    /// Find the master from this pidfile (a template: '{{ app_dir }}/gunicorn.pid').
    #[arg(long, env = "HERD_PIDFILE")]
    pub pidfile: Option<String>,
    /// Find the master as this systemd unit's main process.
    #[arg(long, env = "HERD_UNIT")]
    pub unit: Option<String>,
    /// The systemd manager that runs --unit: system or user.
    #[arg(long, env = "HERD_SCOPE", requires = "unit")]
    pub scope: Option<String>,
    /// Find the master by the name in its title (`gunicorn: master [NAME]`, `NAME uWSGI master`, `puma ... [NAME]`) or its `--name` option.
    #[arg(long, env = "HERD_NAME")]
    pub name: Option<String>,
    /// How the signal gets there: kill, systemctl, systemctl-kill or auto (the default with --unit).
    #[arg(long, env = "HERD_DELIVERY")]
    pub delivery: Option<String>,
    /// Find the master in this container: its PID 1, or PID 1's child under an init.
    #[arg(long, env = "HERD_CONTAINER")]
    pub container: Option<String>,
    /// The container engine: docker or podman (default: whichever the host has).
    #[arg(long, env = "HERD_ENGINE", requires = "container")]
    pub engine: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub targeting: Targeting,
    #[command(flatten)]
    pub connecting: Connecting,
    /// The app server: gunicorn, uwsgi, unicorn, puma or nginx.
    #[arg(
        long,
        env = "HERD_SERVER",
        default_value = "gunicorn",
        conflicts_with = "playbook"
    )]
    pub server: String,
    #[command(flatten)]
    pub master: MasterArgs,
    /// Take the master's whereabouts from this playbook's `reload` section.
    #[arg(long, env = "HERD_CHECK_PLAYBOOK", conflicts_with_all = ["pidfile", "unit", "scope", "name", "delivery", "container", "engine"])]
    pub playbook: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    #[command(flatten)]
    pub targeting: Targeting,
    #[command(flatten)]
    pub connecting: Connecting,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub targeting: Targeting,
    #[command(flatten)]
    pub connecting: Connecting,
    /// Lines shown per host, the latest last.
    #[arg(long, env = "HERD_LAST", value_name = "N", default_value_t = 10)]
    pub last: usize,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub targeting: Targeting,
    #[command(flatten)]
    pub connecting: Connecting,
    /// The app server: gunicorn, uwsgi, unicorn, puma or nginx.
    #[arg(long, env = "HERD_SERVER", default_value = "gunicorn")]
    pub server: String,
    #[command(flatten)]
    pub master: MasterArgs,
    /// The signal: the server's graceful reload when not given (HUP; USR1
    /// for Puma), or its upgrade (USR2). `herd plan` and the README list
    /// what each server takes.
    #[arg(long, env = "HERD_SIGNAL")]
    pub signal: Option<String>,
    /// A command that must pass before any signal, e.g. 'gunicorn --check-config app:app'.
    #[arg(long, env = "HERD_PREFLIGHT", hide_env_values = true)]
    pub preflight: Option<String>,
    /// The master preloads the app (Unicorn `preload_app true`, Puma
    /// `preload_app!`): herd then refuses the signals that would not reload
    /// it. Without this flag or --no-preload, herd reads the master's config.
    #[arg(long, env = "HERD_PRELOAD", value_parser = boolish(), conflicts_with = "no_preload")]
    pub preload: bool,
    /// The master does not preload the app.
    #[arg(long, env = "HERD_NO_PRELOAD", value_parser = boolish())]
    pub no_preload: bool,
    /// Health check URL as the host sees it, fetched through the SSH connection.
    #[arg(long, env = "HERD_HTTP", hide_env_values = true)]
    pub http: Option<String>,
    /// Text the health check response must contain (the release, to prove new code is served).
    #[arg(long, env = "HERD_CONTAINS", requires = "http")]
    pub contains: Option<String>,
    /// Expected HTTP status of the health check.
    #[arg(long, env = "HERD_STATUS", default_value_t = 200, requires = "http",
          value_parser = clap::value_parser!(u16).range(100..=599))]
    pub status: u16,
    /// Limit on proving each host's reload, e.g. 60s.
    #[arg(long, env = "HERD_VALIDATE_TIMEOUT", default_value = "60s", value_parser = parse_limit)]
    pub validate_timeout: std::time::Duration,
    /// How long the new workers must stay unchanged once they booted
    /// (default: 0s where the server proves each worker booted, else 2s).
    #[arg(long, env = "HERD_SETTLE", value_parser = parse_duration)]
    pub settle: Option<std::time::Duration>,
    /// Signal (and, without --unit, read /proc) through `sudo -n`.
    #[arg(long = "become", env = "HERD_BECOME", value_parser = boolish())]
    pub become_: bool,
    /// The account to become (default root), e.g. the one whose user manager runs --unit.
    #[arg(long, env = "HERD_BECOME_USER", requires = "become_")]
    pub become_user: Option<String>,
    /// Batch sizes: a number, a percentage or a list. Example: --batch 1,25%
    #[arg(long, env = "HERD_BATCH", default_value = "1", value_parser = parse_batch)]
    pub batch: String,
    #[arg(long, env = "HERD_LOCK_WAIT", default_value = "0s", value_parser = parse_duration)]
    pub lock_wait: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub targeting: Targeting,
    #[command(flatten)]
    pub connecting: Connecting,
    /// The command, after `--`; it runs under /bin/sh on each host.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    pub playbook: PathBuf,
    #[command(flatten)]
    pub targeting: Targeting,
    /// OpenSSH client config for host addresses (default: ~/.ssh/config).
    #[arg(
        short = 'F',
        long = "ssh-config",
        env = "HERD_SSH_CONFIG",
        value_name = "FILE"
    )]
    pub ssh_config: Option<PathBuf>,
    #[arg(short = 'e', long = "extra-vars", value_name = "KEY=VALUE")]
    pub extra_vars: Vec<String>,
    #[arg(long, env = "HERD_BATCH", value_parser = parse_batch)]
    pub batch: Option<String>,
}

#[derive(Debug, Args)]
pub struct HostsArgs {
    #[command(flatten)]
    pub targeting: Targeting,
    /// OpenSSH client config for host addresses (default: ~/.ssh/config).
    #[arg(
        short = 'F',
        long = "ssh-config",
        env = "HERD_SSH_CONFIG",
        value_name = "FILE"
    )]
    pub ssh_config: Option<PathBuf>,
    /// Also print each host's merged variables.
    #[arg(long, env = "HERD_VARS", value_parser = boolish())]
    pub vars: bool,
    /// `human` (a line per host) or `json` (one document on stdout: each
    /// host's name, groups, connection and merged variables, in selection order).
    #[arg(long, env = "HERD_OUTPUT", value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Start N hosts, each an sshd and an app server on its own 127.0.0.x address.
    Up {
        #[arg(long, env = "HERD_LAB_HOSTS", default_value_t = 6)]
        hosts: usize,
        /// Where the lab keeps its keys, configs, apps and inventory.
        #[arg(long, env = "HERD_LAB_DIR", default_value = ".herd-lab")]
        dir: PathBuf,
        /// Python virtualenv holding Gunicorn (default: ./.venv, or $HERD_LAB_VENV).
        // $HERD_LAB_VENV is read by the lab itself, where empty means unset.
        #[arg(long)]
        venv: Option<PathBuf>,
        /// Start only sshd, no app server.
        #[arg(long, env = "HERD_LAB_NO_APP", value_parser = boolish())]
        no_app: bool,
        /// Run the last N hosts' Gunicorn as a systemd user unit of the app
        /// account (root only; with 2 or more, the last unit has no ExecReload).
        #[arg(
            long,
            env = "HERD_LAB_UNIT_HOSTS",
            value_name = "N",
            default_value_t = 0
        )]
        unit_hosts: usize,
        /// Run N hosts' Gunicorn in rootful Podman containers, the N hosts
        /// just before the unit hosts (root only; PID 1 cases in turn: exec,
        /// init, shell).
        #[arg(
            long,
            env = "HERD_LAB_CONTAINER_HOSTS",
            value_name = "N",
            default_value_t = 0
        )]
        container_hosts: usize,
        /// The app servers of the other hosts, given in turn (host01 the
        /// first, host02 the second, ...): gunicorn, uwsgi, unicorn, puma, nginx.
        #[arg(long, env = "HERD_LAB_SERVERS", value_name = "NAMES", value_delimiter = ',', value_parser = parse_server, default_value = "gunicorn")]
        servers: Vec<String>,
    },
    /// Stop every process the lab started.
    Down {
        #[arg(long, env = "HERD_LAB_DIR", default_value = ".herd-lab")]
        dir: PathBuf,
    },
    /// Show each lab host and whether its processes are alive.
    Status {
        #[arg(long, env = "HERD_LAB_DIR", default_value = ".herd-lab")]
        dir: PathBuf,
    },
}

/// One name of `--servers`, refused (exit 2) unless the lab knows it.
fn parse_server(text: &str) -> Result<String, String> {
    match crate::lab::AppServer::parse(text) {
        Some(server) => Ok(server.name().to_string()),
        None => Err(format!(
            "unknown app server `{text}`: choose from {}",
            crate::lab::AppServer::names()
        )),
    }
}

/// A flag's value from the environment: true, false, yes, no, on, off, 1 or 0
/// (on the command line a flag still takes no value).
fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

/// `--limit`: an empty one (say `HERD_LIMIT=` from a CI input left blank)
/// is refused here, never taken as "every host".
fn parse_pattern(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("the host pattern is empty".to_string());
    }
    Ok(text.to_string())
}

/// `--forks`: how many hosts at once, one at least.
fn parse_forks(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("no host would ever be worked on: give 1 or more".to_string()),
        Ok(forks) => Ok(forks),
        Err(_) => Err(format!("`{text}` is not a number of hosts")),
    }
}

/// `--batch`, checked when the command line (or `HERD_BATCH`) is read.
fn parse_batch(text: &str) -> Result<String, String> {
    crate::playbook::batch::BatchSpec::parse(text).map(|_| text.to_string())
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::playbook::duration::parse_duration(text)
}

/// A time limit: zero would fail everything at once, so it is refused.
fn parse_limit(text: &str) -> Result<std::time::Duration, String> {
    let limit = parse_duration(text)?;
    if limit.is_zero() {
        return Err(format!(
            "a limit of `{text}` leaves no time at all: give more than 0"
        ));
    }
    Ok(limit)
}
