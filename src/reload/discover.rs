//! Finding the Gunicorn master on a host and proving it is the one to signal.
//!
//! Strategies, in the order a playbook may name them: `unit` (systemd's
//! MainPID), `pidfile`, `name` (the process title `gunicorn: master [NAME]`),
//! or, with nothing configured, the one Gunicorn master on the host. Without
//! setproctitle every Gunicorn process shows the same command line; the
//! master is then the Gunicorn process whose parent is not Gunicorn.
//! Everything here works on a [`Snapshot`], so it is tested on fixtures.

use super::snapshot::{Process, Snapshot};
use crate::template::{Cut, OutputMask};

/// How to find the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    Unit(String),
    Pidfile(String),
    Name(String),
    Auto,
}

impl Strategy {
    /// How the master was looked for, for reports.
    pub fn describe(&self) -> String {
        match self {
            Strategy::Unit(unit) => format!("MainPID of {unit}"),
            Strategy::Pidfile(path) => format!("pidfile {path}"),
            Strategy::Name(name) => format!("named {name}"),
            Strategy::Auto => "the only Gunicorn master".to_string(),
        }
    }
}

/// The master as found and proven, and its workers at that moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    pub pid: u32,
    pub start_time: u64,
    pub cmdline: String,
    /// Live Gunicorn children, sorted.
    pub workers: Vec<u32>,
}

/// Why no master can be signalled. Each names what was found, so the
/// operator can see which proof failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("no Gunicorn master is running ({0})")]
    NotRunning(String),
    #[error("the pidfile {path} names pid {pid}, which is not Gunicorn but `{cmdline}`: a stale pidfile; that process was not signalled")]
    Unrelated {
        path: String,
        pid: u32,
        cmdline: String,
    },
    #[error("pid {pid} is a Gunicorn worker, not the master (`{cmdline}`): refusing to signal it")]
    Worker { pid: u32, cmdline: String },
    #[error("pid {pid} is a zombie: the master is exiting")]
    Zombie { pid: u32 },
    #[error("the pidfile {path} does not hold a pid: `{content}`")]
    BadPidfile { path: String, content: String },
    #[error("{count} Gunicorn masters run on this host, name one with `pidfile`, `unit` or `name`: {list}")]
    Ambiguous { count: usize, list: String },
}

/// Whether a command line is a Gunicorn process (master or worker, with or
/// without setproctitle): its program is Gunicorn and nothing else is. That
/// is a setproctitle title (`gunicorn: master [app]`), the `gunicorn` entry
/// point run directly, or a Python interpreter running the `gunicorn` script
/// or `-m gunicorn`. A word `gunicorn` anywhere else (`journalctl -u
/// gunicorn`, `python3 x.py /var/log/gunicorn`) does not make a process Gunicorn.
pub fn is_gunicorn(cmdline: &str) -> bool {
    if cmdline.starts_with("gunicorn:") {
        return true;
    }
    let mut words = cmdline.split_whitespace();
    let Some(program) = words.next().map(basename) else {
        return false;
    };
    if program == "gunicorn" {
        return true;
    }
    if !is_python(program) {
        return false;
    }
    // The interpreter's own options come first; the first other word is the
    // script it runs.
    while let Some(word) = words.next() {
        match word {
            "-m" => return words.next() == Some("gunicorn"),
            "-c" | "-" => return false,
            // Options that take a value as the next word.
            "-W" | "-X" | "-Q" => {
                words.next();
            }
            _ if word.starts_with("-m") => return &word[2..] == "gunicorn",
            _ if word.starts_with("-c") => return false,
            _ if word.starts_with('-') => {}
            script => return basename(script) == "gunicorn",
        }
    }
    false
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `python`, `python3`, `python3.11`, `pypy3`...: a name and a version.
fn is_python(program: &str) -> bool {
    ["python", "pypy"].iter().any(|name| {
        program
            .strip_prefix(name)
            .is_some_and(|version| version.chars().all(|c| c.is_ascii_digit() || c == '.'))
    })
}

/// Whether `process` is a Gunicorn master: its title says so, or (without
/// setproctitle) it is Gunicorn and its parent is not.
fn is_master(snapshot: &Snapshot, process: &Process) -> bool {
    if process.cmdline.starts_with("gunicorn: master") {
        return true;
    }
    if process.cmdline.starts_with("gunicorn:") || !is_gunicorn(&process.cmdline) {
        return false;
    }
    !snapshot
        .processes
        .get(&process.ppid)
        .is_some_and(|parent| is_gunicorn(&parent.cmdline))
}

/// The proc_name a master runs under: from its title, or from `--name`/`-n`.
fn proc_name(process: &Process) -> Option<String> {
    if let Some(rest) = process.cmdline.strip_prefix("gunicorn: master [") {
        return rest.strip_suffix(']').map(str::to_string);
    }
    let words: Vec<&str> = process.cmdline.split_whitespace().collect();
    words.iter().enumerate().find_map(|(i, word)| {
        if let Some(name) = word.strip_prefix("--name=") {
            return Some(name.to_string());
        }
        match *word {
            "--name" | "-n" => words.get(i + 1).map(|s| s.to_string()),
            _ => None,
        }
    })
}

/// The live Gunicorn children of `pid`, sorted.
pub fn workers_of(snapshot: &Snapshot, pid: u32) -> Vec<u32> {
    snapshot
        .processes
        .values()
        .filter(|p| p.ppid == pid && !p.is_zombie() && is_gunicorn(&p.cmdline))
        // A USR2 child master is a child too, but not a worker.
        .filter(|p| !p.cmdline.starts_with("gunicorn: master"))
        .map(|p| p.pid)
        .collect()
}

/// Finds and proves the master according to `strategy`; `mask` masks the
/// command lines an error quotes cut.
pub fn discover(
    snapshot: &Snapshot,
    strategy: &Strategy,
    mask: &OutputMask,
) -> Result<Master, DiscoveryError> {
    match strategy {
        Strategy::Pidfile(path) => {
            let Some(content) = &snapshot.pidfile else {
                return Err(DiscoveryError::NotRunning(format!(
                    "the pidfile {path} does not exist"
                )));
            };
            let pid = content
                .trim()
                .parse::<u32>()
                .map_err(|_| DiscoveryError::BadPidfile {
                    path: path.clone(),
                    content: content.clone(),
                })?;
            prove(snapshot, pid, Some(path))
        }
        Strategy::Unit(unit) => match snapshot.main_pid.as_deref().map(str::parse::<u32>) {
            Some(Ok(0)) | None | Some(Err(_)) => Err(DiscoveryError::NotRunning(format!(
                "systemd reports no MainPID for {unit}"
            ))),
            Some(Ok(pid)) => prove(snapshot, pid, None),
        },
        Strategy::Name(name) => {
            let found: Vec<&Process> = masters(snapshot)
                .into_iter()
                .filter(|p| proc_name(p).as_deref() == Some(name.as_str()))
                .collect();
            one_of(snapshot, found, &format!("no master named `{name}`"), mask)
        }
        Strategy::Auto => {
            let found = masters(snapshot);
            one_of(snapshot, found, "no Gunicorn master on this host", mask)
        }
    }
}

/// Every live master on the host (a USR2 child master included).
fn masters(snapshot: &Snapshot) -> Vec<&Process> {
    snapshot
        .processes
        .values()
        .filter(|p| !p.is_zombie() && is_master(snapshot, p))
        .collect()
}

fn one_of(
    snapshot: &Snapshot,
    found: Vec<&Process>,
    none: &str,
    mask: &OutputMask,
) -> Result<Master, DiscoveryError> {
    match found.as_slice() {
        [] => Err(DiscoveryError::NotRunning(none.to_string())),
        [one] => prove(snapshot, one.pid, None),
        many => {
            let mut list: Vec<String> = many
                .iter()
                .take(LISTED)
                .map(|p| format!("pid {} `{}`", p.pid, short(&p.cmdline, mask)))
                .collect();
            if many.len() > LISTED {
                list.push(format!("and {} more", many.len() - LISTED));
            }
            Err(DiscoveryError::Ambiguous {
                count: many.len(),
                list: list.join(", "),
            })
        }
    }
}

/// Candidates named in an error; the rest are counted.
const LISTED: usize = 6;

/// A command line cut for a message: the start and the end tell most.
/// It is masked before it is cut, so no secret in it is split.
fn short(cmdline: &str, mask: &OutputMask) -> String {
    let masked = mask.cut(cmdline, Cut::Head(usize::MAX));
    if masked.chars().count() <= 90 {
        return masked;
    }
    let head = mask.cut(&masked, Cut::Head(50));
    let tail = mask.cut(&masked, Cut::Tail(35));
    format!("{head}…{tail}")
}

/// The identity proof: alive, not a zombie, Gunicorn, and a master.
fn prove(
    snapshot: &Snapshot,
    pid: u32,
    pidfile: Option<&String>,
) -> Result<Master, DiscoveryError> {
    let Some(process) = snapshot.processes.get(&pid) else {
        return Err(DiscoveryError::NotRunning(match pidfile {
            Some(path) => format!("the pidfile {path} names pid {pid}, which is not running"),
            None => format!("pid {pid} is not running"),
        }));
    };
    if process.is_zombie() {
        return Err(DiscoveryError::Zombie { pid });
    }
    if !is_gunicorn(&process.cmdline) {
        return Err(DiscoveryError::Unrelated {
            path: pidfile
                .cloned()
                .unwrap_or_else(|| "systemd MainPID".to_string()),
            pid,
            cmdline: process.cmdline.clone(),
        });
    }
    if !is_master(snapshot, process) {
        return Err(DiscoveryError::Worker {
            pid,
            cmdline: process.cmdline.clone(),
        });
    }
    Ok(Master {
        pid,
        start_time: process.start_time,
        cmdline: process.cmdline.clone(),
        workers: workers_of(snapshot, pid),
    })
}

#[cfg(test)]
mod tests;
