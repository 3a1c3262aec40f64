//! Finding the app server's master on a host and proving it is the one to
//! signal, and choosing how the signal gets there.
//!
//! The master is found through a systemd unit (its main process, from the
//! manager or from the unit's cgroup), from a pidfile, by its name (the
//! process title `gunicorn: master [NAME]`), or, with nothing configured,
//! as the one master on the host. Without process titles every process of
//! the server shows the same command line; the master is then the server
//! process whose parent is not the server. Everything here works on a
//! [`Snapshot`], so it is tested on fixtures.

use super::container::{self, Pid1};
use super::place::{Delivery, OnHost, Place, Scope};
use super::server::AppServer;
use super::snapshot::{Process, Snapshot};
use super::unit::{self, Answer};
use crate::template::{Cut, OutputMask};

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
    #[error("no {server} master is running ({detail})")]
    NotRunning {
        server: &'static str,
        detail: String,
    },
    #[error("{found_by} {pid}, which is not {server} but `{cmdline}`: {why}; that process was not signalled")]
    Unrelated {
        server: &'static str,
        /// `the pidfile P names pid`, `the main process of U is pid`.
        found_by: String,
        pid: u32,
        cmdline: String,
        why: &'static str,
    },
    #[error("pid {pid} is a {server} worker, not the master (`{cmdline}`): refusing to signal it")]
    Worker {
        server: &'static str,
        pid: u32,
        cmdline: String,
    },
    /// Two masters of one server, parent and child: an upgrade (USR2) that
    /// was not finished. A signal to either would leave the other serving.
    #[error("{server} master {pid} has a master of its own as {relation} {other}: an upgrade (USR2) was left half-done, and both serve; end the one that should not serve (QUIT to the old master, or TERM to the new one), then reload: nothing was signalled")]
    UpgradeUnfinished {
        server: &'static str,
        pid: u32,
        relation: &'static str,
        other: u32,
    },
    #[error("pid {pid} is a zombie: the master is exiting")]
    Zombie { pid: u32 },
    #[error("the pidfile {path} does not hold a pid: `{content}`")]
    BadPidfile { path: String, content: String },
    #[error("{count} {server} masters run on this host, name one with `pidfile`, `unit` or `name`: {list}")]
    Ambiguous {
        server: &'static str,
        count: usize,
        list: String,
    },
    /// The unit runs no process, and the delivery needs it to.
    #[error(
        "{unit} is not active ({state}): `delivery: {delivery}` reloads a running unit only{hint}"
    )]
    UnitInactive {
        unit: String,
        state: String,
        delivery: &'static str,
        hint: &'static str,
    },
    #[error("{unit} is active but systemd knows no main process (MainPID=0), so herd cannot tell which process is the master: give a Type=forking unit `PIDFile=`, or run {server} in the foreground (Type=notify)")]
    NoMainPid { unit: String, server: &'static str },
    #[error("{unit} has no ExecReload, so `delivery: systemctl` cannot reload it: use `delivery: systemctl-kill` or `delivery: kill`, or give the unit `ExecReload=/bin/kill -HUP $MAINPID`")]
    NoExecReload { unit: String },
    /// systemd could not be asked, and the delivery needs it.
    #[error("{0}")]
    Manager(String),
    /// The container engine could not tell which container.
    #[error("{0}")]
    Container(String),
    #[error("PID 1 of the container {container} {is} (`{cmdline}`), which does not pass HUP on to {server}: the reload would silently do nothing. Make {server} PID 1 (the exec form of CMD, `CMD [\"gunicorn\", ...]`, or `exec gunicorn ...` in the start script), or run the container with an init (`--init`)")]
    ShellPid1 {
        container: String,
        /// `is a shell`, `is an init whose child is a shell`.
        is: &'static str,
        cmdline: String,
        server: &'static str,
    },
}

/// Whether `process` is a master: its title says so, or (without titles)
/// it is the server and its parent is not.
fn is_master(server: &AppServer, snapshot: &Snapshot, process: &Process) -> bool {
    if let Some(master) = server.titled_master(&process.cmdline) {
        return master && !fresh_fork(server, snapshot, process);
    }
    if !server.runs(&process.cmdline) {
        return false;
    }
    !snapshot
        .processes
        .get(&process.ppid)
        .is_some_and(|parent| server.runs(&parent.cmdline))
}

/// Whether a process titled as a master is a worker its master forked a
/// moment ago, which still bears the master's title (Unicorn's for some
/// 15 ms, Puma's and nginx's for a few): a master's child with no child
/// of its own.
fn fresh_fork(server: &AppServer, snapshot: &Snapshot, process: &Process) -> bool {
    let parent_is_master = snapshot
        .processes
        .get(&process.ppid)
        .is_some_and(|parent| server.titled_master(&parent.cmdline) == Some(true));
    parent_is_master
        && !snapshot
            .processes
            .values()
            .any(|p| p.ppid == process.pid && !p.is_zombie())
}

/// The live children of `pid` that run the server, sorted.
pub fn workers_of(server: &AppServer, snapshot: &Snapshot, pid: u32) -> Vec<u32> {
    snapshot
        .processes
        .values()
        .filter(|p| p.ppid == pid && !p.is_zombie() && server.runs(&p.cmdline))
        // An upgrade's new master is a child too, but not a worker; nor is
        // a router or cache manager the server titles as such.
        .filter(|p| server.may_be_worker(&p.cmdline))
        .map(|p| p.pid)
        .collect()
}

/// The master, proven, and how its signal goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub master: Master,
    /// Never [`Delivery::Auto`]: what auto chose.
    pub delivery: Delivery,
    /// systemd could not be asked whether the unit has `ExecReload`: if
    /// `systemctl reload` says it has none, `kill` the master instead.
    pub kill_if_no_reload: bool,
    /// How the master was found, for reports.
    pub how: String,
    /// The container the master runs in, as discovery saw it.
    pub container: Option<InContainer>,
}

/// The container of a master, to tell after the reload that it was not
/// restarted meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InContainer {
    pub seen: container::Seen,
    pub pid1: Pid1,
}

/// Finds and proves the master at `place`, and settles `delivery`; `mask`
/// masks the command lines an error quotes.
pub fn discover(
    snapshot: &Snapshot,
    server: &AppServer,
    place: &Place<String>,
    delivery: Delivery,
    mask: &OutputMask,
) -> Result<Found, DiscoveryError> {
    let (unit, scope, fallback) = match place {
        Place::Host(on_host) => {
            return on_host_master(snapshot, server, on_host, mask).map(|master| Found {
                master,
                delivery: Delivery::Kill,
                kill_if_no_reload: false,
                how: on_host.describe(server.display),
                container: None,
            })
        }
        Place::Container { name, .. } => return in_container(snapshot, server, name, mask),
        Place::Compose { service, .. } => {
            return Err(DiscoveryError::Container(format!(
                "the Compose service {service} is reloaded one container at a time"
            )))
        }
        Place::Unit {
            unit,
            scope,
            fallback,
        } => (unit, scope, fallback),
    };
    let view = UnitView::of(snapshot);
    if !view.active() {
        // Only where the playbook says how to find the master without the
        // unit: "the one master on the host" could be another app's.
        if delivery == Delivery::Auto && *fallback != OnHost::Only {
            // Not a unit here (or not running as one): the master on the host, as before systemd.
            return on_host_master(snapshot, server, fallback, mask)
                .map(|master| Found {
                    master,
                    delivery: Delivery::Kill,
                    kill_if_no_reload: false,
                    how: format!(
                        "{} ({unit} is not active)",
                        fallback.describe(server.display)
                    ),
                    container: None,
                })
                .map_err(|error| match error {
                    // Say the unit was looked at first, not only the host.
                    DiscoveryError::NotRunning { server, detail } => DiscoveryError::NotRunning {
                        server,
                        detail: format!("{unit} is not active ({}), and {detail}", view.state()),
                    },
                    other => other,
                });
        }
        if delivery != Delivery::Auto {
            if let Some(problem) = view.manager_problem(unit, *scope) {
                return Err(DiscoveryError::Manager(problem));
            }
        }
        return Err(DiscoveryError::UnitInactive {
            unit: unit.clone(),
            state: view.state(),
            delivery: delivery.name(),
            hint: if delivery == Delivery::Auto {
                "; give `pidfile` or `name` beside `unit` for a master that runs without it"
            } else {
                ""
            },
        });
    }
    let main_pid = match &view {
        UnitView::Said(state) if state.main_pid == 0 => {
            return Err(DiscoveryError::NoMainPid {
                unit: unit.clone(),
                server: server.display,
            })
        }
        UnitView::Said(state) => state.main_pid,
        UnitView::Cgroup { .. } => cgroup_main(snapshot, server, mask)?,
    };
    let master = prove(snapshot, server, main_pid, &Source::Unit(unit))?;
    let (delivery, kill_if_no_reload) = match (delivery, &view) {
        (Delivery::Systemctl, UnitView::Said(state)) if !state.exec_reload => {
            return Err(DiscoveryError::NoExecReload { unit: unit.clone() })
        }
        (Delivery::Auto, UnitView::Said(state)) if !state.exec_reload => (Delivery::Kill, false),
        (Delivery::Auto, UnitView::Said(_)) => (Delivery::Systemctl, false),
        (Delivery::Auto, UnitView::Cgroup { .. }) => (Delivery::Systemctl, true),
        (other, _) => (other, false),
    };
    let how = match (&view, scope) {
        (UnitView::Said(_), Scope::System) => format!("MainPID of {unit}"),
        (UnitView::Said(_), Scope::User) => format!("MainPID of {unit} (user manager)"),
        (UnitView::Cgroup { .. }, _) => format!("main process of {unit} (its cgroup)"),
    };
    Ok(Found {
        master,
        delivery,
        kill_if_no_reload,
        how,
        container: None,
    })
}

/// The master in container `name`: its PID 1, or PID 1's child.
fn in_container(
    snapshot: &Snapshot,
    server: &AppServer,
    name: &str,
    mask: &OutputMask,
) -> Result<Found, DiscoveryError> {
    let answer = snapshot
        .container
        .as_deref()
        .map_or(container::Answer::NoEngine, container::parse);
    let seen = match answer {
        container::Answer::Seen(seen) => seen,
        container::Answer::NoEngine => {
            return Err(DiscoveryError::Container(
                "neither docker nor podman is installed on this host".to_string(),
            ))
        }
        container::Answer::BothEngines => {
            return Err(DiscoveryError::Container(
                "both docker and podman are installed on this host: choose one with `engine`"
                    .to_string(),
            ))
        }
        container::Answer::Several { engine, count } => {
            return Err(DiscoveryError::Container(format!(
                "`{name}` names {count} {} containers: name exactly one",
                engine.name()
            )))
        }
        container::Answer::Failed {
            engine,
            exit_code,
            said,
        } => {
            let said = crate::shell::text_tail(&mask.output(said.trim()), 3);
            return Err(if said.to_lowercase().contains("no such") {
                DiscoveryError::NotRunning {
                    server: server.display,
                    detail: format!("{} has no container `{name}`", engine.name()),
                }
            } else {
                DiscoveryError::Container(format!(
                    "`{} inspect {name}` failed (exit code {}): {said}",
                    engine.name(),
                    exit_code.map_or("none".to_string(), |c| c.to_string())
                ))
            });
        }
    };
    if seen.name != name {
        return Err(DiscoveryError::Container(format!(
            "no container is named `{name}`: the engine found `{}` by its ID instead, which is not signalled",
            seen.name
        )));
    }
    if !seen.running || seen.pid == 0 {
        return Err(DiscoveryError::NotRunning {
            server: server.display,
            detail: format!("the container {name} is not running"),
        });
    }
    let Some(pid1) = snapshot.processes.get(&seen.pid) else {
        return Err(DiscoveryError::Container(format!(
            "PID 1 of the container {name} (pid {}) is not in /proc as the login account reads it: it exited just now, or /proc hides other accounts' processes (mounted with hidepid)",
            seen.pid
        )));
    };
    let found = |master: Master, delivery: Delivery, case: Pid1, how: String| Found {
        master,
        delivery,
        kill_if_no_reload: false,
        how,
        container: Some(InContainer {
            seen: seen.clone(),
            pid1: case,
        }),
    };
    if server.runs(&pid1.cmdline) && is_master(server, snapshot, pid1) {
        let master = prove(snapshot, server, pid1.pid, &Source::Found)?;
        return Ok(found(
            master,
            Delivery::ContainerKill,
            Pid1::Master,
            format!("PID 1 of container {name}"),
        ));
    }
    let children: Vec<&Process> = snapshot
        .processes
        .values()
        .filter(|p| p.ppid == pid1.pid && !p.is_zombie() && is_master(server, snapshot, p))
        .collect();
    let program = container::program(&pid1.cmdline);
    if container::SHELLS.contains(&program) {
        return Err(DiscoveryError::ShellPid1 {
            container: name.to_string(),
            is: "is a shell",
            cmdline: short(&pid1.cmdline, mask),
            server: server.display,
        });
    }
    let master = match children.as_slice() {
        [] => {
            // `tini -- /bin/sh -c "gunicorn ..."`: the shell is the init's
            // child, and a HUP forwarded to it ends it, and the container.
            if let Some(shell) = snapshot.processes.values().find(|p| {
                p.ppid == pid1.pid
                    && container::SHELLS.contains(&container::program(&p.cmdline))
                    && snapshot
                        .processes
                        .values()
                        .any(|m| m.ppid == p.pid && is_master(server, snapshot, m))
            }) {
                return Err(DiscoveryError::ShellPid1 {
                    container: name.to_string(),
                    is: "is an init whose child is a shell",
                    cmdline: short(&shell.cmdline, mask),
                    server: server.display,
                });
            }
            return Err(DiscoveryError::NotRunning {
                server: server.display,
                detail: format!(
                    "PID 1 of the container {name} is `{}`, and no master runs under it",
                    short(&pid1.cmdline, mask)
                ),
            });
        }
        [one] => prove(snapshot, server, one.pid, &Source::Found)?,
        many => return Err(ambiguous(server, many, mask)),
    };
    Ok(if container::forwards_to_its_child(&pid1.cmdline) {
        found(
            master,
            Delivery::ContainerKill,
            Pid1::Init,
            format!("child of PID 1 ({program}) of container {name}"),
        )
    } else if container::FORWARDING_INITS.contains(&program) {
        // An init that signals the child's whole process group (`-g`,
        // dumb-init by default) would kill every worker at once.
        found(
            master,
            Delivery::ContainerExec,
            Pid1::Other,
            format!(
                "child of PID 1 ({program}, which signals the whole process group) of container {name}"
            ),
        )
    } else {
        found(
            master,
            Delivery::ContainerExec,
            Pid1::Other,
            format!("child of PID 1 ({program}) of container {name}"),
        )
    })
}

/// What is known of the unit: the manager's answer, or, where it could not
/// be asked, its processes as their cgroups tell.
enum UnitView {
    Said(unit::UnitState),
    Cgroup {
        /// Why the manager was not heard, if it was asked.
        unheard: Option<(Option<u32>, String)>,
        running: usize,
    },
}

impl UnitView {
    fn of(snapshot: &Snapshot) -> UnitView {
        let running = snapshot
            .processes
            .values()
            .filter(|p| p.in_unit && !p.is_zombie())
            .count();
        match snapshot.manager.as_deref().map(unit::parse) {
            Some(Answer::Said(state)) => UnitView::Said(state),
            Some(Answer::Failed { exit_code, said }) => UnitView::Cgroup {
                unheard: Some((exit_code, said)),
                running,
            },
            None => UnitView::Cgroup {
                unheard: None,
                running,
            },
        }
    }

    fn active(&self) -> bool {
        match self {
            UnitView::Said(state) => state.is_active(),
            UnitView::Cgroup { running, .. } => *running > 0,
        }
    }

    fn state(&self) -> String {
        match self {
            UnitView::Said(state) if state.load == "not-found" => {
                "systemd knows no such unit".to_string()
            }
            UnitView::Said(state) => format!("ActiveState={}", state.active),
            UnitView::Cgroup { .. } => "no process runs in its cgroup".to_string(),
        }
    }

    /// When systemd was asked and could not answer: what that means.
    fn manager_problem(&self, unit: &str, scope: Scope) -> Option<String> {
        let UnitView::Cgroup {
            unheard: Some((exit_code, said)),
            ..
        } = self
        else {
            return None;
        };
        let systemctl = unit::Systemctl {
            scope,
            become_: false,
            become_user: None,
        };
        Some(systemctl.explain(unit, "show", *exit_code, said))
    }
}

/// The unit's main process, from its cgroup: the process in it whose
/// parent is not (the manager started it). Of several, the master of the
/// server; two masters (units of the same name in two managers, say) are
/// refused rather than guessed between.
fn cgroup_main(
    snapshot: &Snapshot,
    server: &AppServer,
    mask: &OutputMask,
) -> Result<u32, DiscoveryError> {
    let in_unit = |pid: u32| snapshot.processes.get(&pid).is_some_and(|p| p.in_unit);
    let tops: Vec<&Process> = snapshot
        .processes
        .values()
        .filter(|p| p.in_unit && !p.is_zombie() && !in_unit(p.ppid))
        .collect();
    let masters: Vec<&Process> = tops
        .iter()
        .copied()
        .filter(|p| is_master(server, snapshot, p))
        .collect();
    match (masters.as_slice(), tops.first()) {
        ([one], _) => Ok(one.pid),
        ([], Some(top)) => Ok(top.pid),
        ([], None) => Ok(0),
        (many, _) => Err(ambiguous(server, many, mask)),
    }
}

/// Finds and proves the master on the host itself.
pub fn on_host_master(
    snapshot: &Snapshot,
    server: &AppServer,
    on_host: &OnHost<String>,
    mask: &OutputMask,
) -> Result<Master, DiscoveryError> {
    let not_running = |detail: String| DiscoveryError::NotRunning {
        server: server.display,
        detail,
    };
    match on_host {
        OnHost::Pidfile(path) => {
            let Some(content) = &snapshot.pidfile else {
                return Err(not_running(format!("the pidfile {path} does not exist")));
            };
            let pid = content
                .trim()
                .parse::<u32>()
                .map_err(|_| DiscoveryError::BadPidfile {
                    path: path.clone(),
                    // The host's text, quoted on one line and cut short.
                    content: crate::shell::one_line(&content.chars().take(80).collect::<String>()),
                })?;
            prove(snapshot, server, pid, &Source::Pidfile(path))
        }
        OnHost::Name(name) => {
            let found: Vec<&Process> = masters(server, snapshot)
                .into_iter()
                .filter(|p| server.master_name(&p.cmdline).as_deref() == Some(name.as_str()))
                .collect();
            one_of(
                snapshot,
                server,
                found,
                &format!("no master named `{name}`"),
                mask,
            )
        }
        OnHost::Only => {
            let found = masters(server, snapshot);
            let none = format!("no {} master on this host", server.display);
            one_of(snapshot, server, found, &none, mask)
        }
    }
}

/// Every live master on the host (an upgrade's new master included).
fn masters<'a>(server: &AppServer, snapshot: &'a Snapshot) -> Vec<&'a Process> {
    snapshot
        .processes
        .values()
        .filter(|p| !p.is_zombie() && is_master(server, snapshot, p))
        .collect()
}

fn one_of(
    snapshot: &Snapshot,
    server: &AppServer,
    found: Vec<&Process>,
    none: &str,
    mask: &OutputMask,
) -> Result<Master, DiscoveryError> {
    match found.as_slice() {
        [] => Err(DiscoveryError::NotRunning {
            server: server.display,
            detail: none.to_string(),
        }),
        [one] => prove(snapshot, server, one.pid, &Source::Found),
        many => Err(ambiguous(server, many, mask)),
    }
}

/// Several masters where one was wanted: each named.
fn ambiguous(server: &AppServer, many: &[&Process], mask: &OutputMask) -> DiscoveryError {
    let mut list: Vec<String> = many
        .iter()
        .take(LISTED)
        .map(|p| format!("pid {} `{}`", p.pid, short(&p.cmdline, mask)))
        .collect();
    if many.len() > LISTED {
        list.push(format!("and {} more", many.len() - LISTED));
    }
    DiscoveryError::Ambiguous {
        server: server.display,
        count: many.len(),
        list: list.join(", "),
    }
}

/// Candidates named in an error; the rest are counted.
const LISTED: usize = 6;

/// A command line cut for a message: the start and the end tell most.
/// It is masked before it is cut, so no secret in it is split.
fn short(cmdline: &str, mask: &OutputMask) -> String {
    // Any account on the host may set a process's title: one line, no escapes.
    let masked = crate::shell::one_line(&mask.cut(cmdline, Cut::Head(usize::MAX)));
    if masked.chars().count() <= 90 {
        return masked;
    }
    let head = mask.cut(&masked, Cut::Head(50));
    let tail = mask.cut(&masked, Cut::Tail(35));
    format!("{head}…{tail}")
}

/// Where the pid to prove came from.
enum Source<'a> {
    Pidfile(&'a str),
    Unit(&'a str),
    /// Found among the host's processes by what they are.
    Found,
}

/// The identity proof: alive, not a zombie, the server, and a master.
fn prove(
    snapshot: &Snapshot,
    server: &AppServer,
    pid: u32,
    source: &Source,
) -> Result<Master, DiscoveryError> {
    let Some(process) = snapshot.processes.get(&pid) else {
        return Err(DiscoveryError::NotRunning {
            server: server.display,
            detail: match source {
                Source::Pidfile(path) => {
                    format!("the pidfile {path} names pid {pid}, which is not running")
                }
                Source::Unit(unit) => format!("the main process {pid} of {unit} is not running"),
                Source::Found => format!("pid {pid} is not running"),
            },
        });
    };
    if process.is_zombie() {
        return Err(DiscoveryError::Zombie { pid });
    }
    if !server.runs(&process.cmdline) {
        let (found_by, why) = match source {
            Source::Pidfile(path) => (format!("the pidfile {path} names pid"), "a stale pidfile"),
            Source::Unit(unit) => (
                format!("the main process of {unit} is pid"),
                "ExecStart must run the server itself (a wrapper script must `exec` it), so that the unit's main process is the master",
            ),
            Source::Found => ("the search found pid".to_string(), "not the server"),
        };
        return Err(DiscoveryError::Unrelated {
            server: server.display,
            found_by,
            pid,
            cmdline: crate::shell::one_line(&process.cmdline),
            why,
        });
    }
    if !is_master(server, snapshot, process) {
        return Err(DiscoveryError::Worker {
            server: server.display,
            pid,
            cmdline: crate::shell::one_line(&process.cmdline),
        });
    }
    if let Some((relation, other)) = unfinished_upgrade(server, snapshot, process) {
        return Err(DiscoveryError::UpgradeUnfinished {
            server: server.display,
            pid,
            relation,
            other,
        });
    }
    Ok(Master {
        pid,
        start_time: process.start_time,
        cmdline: process.cmdline.clone(),
        workers: workers_of(server, snapshot, pid),
    })
}

/// Another master of the same server as the parent of `master` (titled a
/// master) or as its child (a server process with server children of its
/// own): what an upgrade leaves until the old master is gone.
fn unfinished_upgrade(
    server: &AppServer,
    snapshot: &Snapshot,
    master: &Process,
) -> Option<(&'static str, u32)> {
    let live = |p: &&Process| !p.is_zombie() && server.runs(&p.cmdline);
    if let Some(parent) = snapshot.processes.get(&master.ppid).filter(live) {
        if server.titled_master(&parent.cmdline) == Some(true) {
            return Some(("its parent", parent.pid));
        }
    }
    snapshot
        .processes
        .values()
        .filter(live)
        .filter(|child| child.ppid == master.pid)
        .find(|child| {
            server.titled_master(&child.cmdline) != Some(false)
                && snapshot
                    .processes
                    .values()
                    .filter(live)
                    .any(|grandchild| grandchild.ppid == child.pid)
        })
        .map(|child| ("its child", child.pid))
}

#[cfg(test)]
mod tests;
