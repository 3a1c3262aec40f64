//! Signalling the master, and it alone: one host-side command re-reads the
//! pid's start time and signals only if it is still the process herd proved.
//! Between the proof and the signal the master may die and its pid be given
//! to another process; that process is never signalled. The shell lives in
//! `signal.sh`.

use serde::Serialize;

use super::container;
use super::discover::{Found, Master};
use super::place::{unit_name, Delivery, Place};
use super::unit::{self, Systemctl};
use super::{fail, Proof, ReloadFailure, ReloadReport, ReloadSpec};
use crate::shell::wrap;
use crate::transport::Connection;

const SCRIPT: &str = include_str!("signal.sh");

/// What became of one signal herd meant to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The proven process got the signal (or systemd took the job).
    Sent,
    /// Refused: the process had exited (or was a zombie).
    Gone,
    /// Refused: the pid belonged to another process by then.
    Changed,
    /// systemd ran the job and it failed: the signal may have gone out.
    Unknown,
}

/// One signal in a reload report: which, to whom, how, and whether it went out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignalRecord {
    pub signal: String,
    pub pid: u32,
    #[serde(rename = "delivery")]
    pub outcome: Outcome,
    /// `kill`, `systemctl` (reload) or `systemctl-kill`.
    pub via: Delivery,
}

impl SignalRecord {
    /// `HUP to 500`, `HUP to 500 (systemctl reload)`, `HUP to 500 refused (it had exited)`.
    pub fn describe(&self) -> String {
        let via = match self.via {
            Delivery::Systemctl => " (systemctl reload)",
            Delivery::SystemctlKill => " (systemctl kill)",
            Delivery::ContainerKill => " (engine kill)",
            Delivery::ContainerExec => " (engine exec)",
            Delivery::Kill | Delivery::Auto => "",
        };
        match self.outcome {
            Outcome::Sent => format!("{} to {}{via}", self.signal, self.pid),
            Outcome::Gone => format!("{} to {} refused (it had exited)", self.signal, self.pid),
            Outcome::Changed => format!(
                "{} to {} refused (the pid belonged to another process)",
                self.signal, self.pid
            ),
            Outcome::Unknown => format!("{} to {}{via} may have been sent", self.signal, self.pid),
        }
    }
}

/// The host command: `signal` to `pid` if it still started at `start_time`.
pub fn command(
    signal: &str,
    pid: u32,
    start_time: u64,
    become_: bool,
    become_user: Option<&str>,
) -> String {
    wrap(
        &format!("set -- {signal} {pid} {start_time}\n{SCRIPT}"),
        become_,
        become_user,
    )
}

/// A command that has no exit status was cut off (its shell or session
/// ended under it): whether it signalled is unknown, as when the connection
/// drops, and the host's state must be found out.
fn cut_off(
    output: &crate::transport::ExecOutput,
    signal: &str,
    pid: u32,
    report: &ReloadReport,
) -> Option<ReloadFailure> {
    if output.exit_code.is_some() {
        return None;
    }
    Some(fail(
        Proof::Contact,
        format!(
            "contact lost while sending {signal} to {pid} ({}): whether it was sent is unknown, and so is the host's state",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        report,
    ))
}

/// Delivers `signal` to the master `found`, the way discovery chose, and
/// records in `report` what happened.
pub(super) async fn deliver<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    signal: &str,
    found: &Found,
    report: &mut ReloadReport,
) -> Result<Outcome, ReloadFailure> {
    let (unit, scope) = match (&spec.place, found.delivery) {
        (Place::Unit { unit, scope, .. }, Delivery::Systemctl | Delivery::SystemctlKill) => {
            (unit_name(unit), *scope)
        }
        (Place::Container { name, .. }, Delivery::ContainerKill | Delivery::ContainerExec) => {
            return through_engine(connection, spec, signal, found, name, report).await
        }
        _ => return send(connection, spec, signal, &found.master, report).await,
    };
    let systemctl = Systemctl {
        scope,
        become_: spec.become_,
        become_user: spec.become_user.as_deref(),
    };
    let signal_option = format!("--signal={signal}");
    let (action, args): (&str, Vec<&str>) = match found.delivery {
        // A sudoers rule names the exact argv, so nothing is added to it.
        Delivery::Systemctl => ("reload", vec!["reload", &unit]),
        _ => (
            "kill",
            vec!["kill", "--kill-whom=main", &signal_option, &unit],
        ),
    };
    let pid = found.master.pid;
    let output = connection
        .exec(&systemctl.command(&args), spec.command_timeout)
        .await
        .map_err(|e| {
            fail(
                Proof::Contact,
                format!(
                    "contact lost during `systemctl {action} {unit}` ({e}): whether {pid} got {signal} is unknown, and so is the host's state"
                ),
                report,
            )
        })?;
    if let Some(lost) = cut_off(&output, signal, pid, report) {
        return Err(lost);
    }
    if !output.success() {
        let said = String::from_utf8_lossy(&output.stderr).to_string()
            + &String::from_utf8_lossy(&output.stdout);
        let refused = unit::refusal(output.exit_code, &said);
        if found.kill_if_no_reload && refused == Some(unit::Refusal::NoReload) {
            // `auto` could not ask systemd beforehand: no ExecReload, so the master itself.
            return send(connection, spec, signal, &found.master, report).await;
        }
        let explained =
            spec.mask
                .output(&systemctl.explain(&unit, action, output.exit_code, &said));
        if refused.is_some() {
            return Err(fail(
                Proof::Signal,
                format!(
                    "{signal} to {pid} through systemd failed, nothing was signalled: {explained}"
                ),
                report,
            ));
        }
        // The job ran: its command may have signalled before it failed, so
        // the server counts as touched and a rollback restores it.
        report.signals.push(SignalRecord {
            signal: signal.to_string(),
            pid,
            outcome: Outcome::Unknown,
            via: found.delivery,
        });
        return Err(fail(
            Proof::Signal,
            format!("`systemctl {action} {unit}` failed after systemd ran it, so {pid} may have got {signal}: {explained}"),
            report,
        ));
    }
    report.signals.push(SignalRecord {
        signal: signal.to_string(),
        pid,
        outcome: Outcome::Sent,
        via: found.delivery,
    });
    Ok(Outcome::Sent)
}

/// Delivers `signal` through the container engine: `kill` to the
/// container's PID 1 (the master, or an init that forwards it), or `exec`
/// of `kill` inside the container to the master, guarded against pid reuse.
async fn through_engine<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    signal: &str,
    found: &Found,
    name: &str,
    report: &mut ReloadReport,
) -> Result<Outcome, ReloadFailure> {
    let Some(inside) = &found.container else {
        return Err(fail(
            Proof::Signal,
            format!("the container {name} was not seen: nothing was signalled"),
            report,
        ));
    };
    let engine = inside.seen.engine;
    let pid = found.master.pid;
    let sudo = container::sudo(spec.become_, spec.become_user.as_deref());
    let command = match found.delivery {
        Delivery::ContainerExec => {
            container::exec_kill(engine, name, signal, pid, found.master.start_time, &sudo)
        }
        _ => container::command(
            engine,
            &sudo,
            &["kill", &format!("--signal={signal}"), name],
        ),
    };
    let output = connection
        .exec(&command, spec.command_timeout)
        .await
        .map_err(|e| {
            fail(
                Proof::Contact,
                format!(
                    "contact lost while sending {signal} through {} ({e}): whether {pid} got it is unknown, and so is the host's state",
                    engine.name()
                ),
                report,
            )
        })?;
    let said = String::from_utf8_lossy(&output.stdout);
    if let Some(lost) = cut_off(&output, signal, pid, report) {
        return Err(lost);
    }
    let outcome = match (found.delivery, said.trim()) {
        (_, _) if !output.success() => {
            return Err(fail(
                Proof::Signal,
                format!(
                    "{signal} through `{} {}` failed (exit code {}), nothing was signalled: {}",
                    engine.name(),
                    if found.delivery == Delivery::ContainerExec {
                        "exec"
                    } else {
                        "kill"
                    },
                    output
                        .exit_code
                        .map_or("none".to_string(), |c| c.to_string()),
                    crate::shell::text_tail(
                        &spec
                            .mask
                            .output(String::from_utf8_lossy(&output.stderr).trim()),
                        3
                    )
                ),
                report,
            ))
        }
        (Delivery::ContainerExec, "gone") => Outcome::Gone,
        (Delivery::ContainerExec, answer) if answer.starts_with("changed") => Outcome::Changed,
        _ => Outcome::Sent,
    };
    report.signals.push(SignalRecord {
        signal: signal.to_string(),
        pid,
        outcome,
        via: found.delivery,
    });
    Ok(outcome)
}

/// Sends `signal` to `target` with `kill` if it is still the proven
/// process, and records in `report` what happened. A lost connection is
/// [`Proof::Contact`]: whether the signal went out is unknown.
pub(super) async fn send<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    signal: &str,
    target: &Master,
    report: &mut ReloadReport,
) -> Result<Outcome, ReloadFailure> {
    let pid = target.pid;
    let command = command(
        signal,
        pid,
        target.start_time,
        spec.become_,
        spec.become_user.as_deref(),
    );
    let output = connection
        .exec(&command, spec.command_timeout)
        .await
        .map_err(|e| {
            fail(
                Proof::Contact,
                format!(
                    "contact lost while sending {signal} to {pid} ({e}): whether it was sent is unknown, and so is the host's state"
                ),
                report,
            )
        })?;
    let said = String::from_utf8_lossy(&output.stdout);
    if let Some(lost) = cut_off(&output, signal, pid, report) {
        return Err(lost);
    }
    if !output.success() {
        return Err(fail(
            Proof::Signal,
            format!(
                "sending {signal} to {pid} failed: {}",
                spec.mask
                    .output(String::from_utf8_lossy(&output.stderr).trim())
            ),
            report,
        ));
    }
    let outcome = match said.trim() {
        "signalled" => Outcome::Sent,
        "gone" => Outcome::Gone,
        answer if answer.starts_with("changed") => Outcome::Changed,
        answer => {
            return Err(fail(
                Proof::Signal,
                format!("sending {signal} to {pid}: unexpected answer `{answer}`"),
                report,
            ))
        }
    };
    report.signals.push(SignalRecord {
        signal: signal.to_string(),
        pid,
        outcome,
        via: Delivery::Kill,
    });
    Ok(outcome)
}

#[cfg(test)]
mod on_this_machine {
    //! The command run by the local /bin/sh against real processes.

    use super::*;

    fn start_time(pid: u32) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let rest = stat.rsplit(") ").next().expect("stat line");
        rest.split(' ')
            .nth(19)
            .expect("field 22")
            .parse()
            .expect("a number")
    }

    /// A `sleep 30` to signal, its pid and its start time.
    fn sleeper() -> (std::process::Child, u32, u64) {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep starts");
        let pid = child.id();
        (child, pid, start_time(pid))
    }

    fn run(signal: &str, pid: u32, start: u64) -> String {
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command(signal, pid, start, false, None))
            .output()
            .expect("sh runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    #[test]
    fn only_the_process_that_started_at_the_proven_time_is_signalled() {
        let (mut child, pid, start) = sleeper();
        // Another start time: the pid was reused; nothing is sent.
        assert_eq!(run("TERM", pid, start + 1), format!("changed {start}"));
        assert!(child.try_wait().expect("wait").is_none(), "signalled");
        assert_eq!(run("TERM", pid, start), "signalled");
        let status = child.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGTERM)
        );
        // Reaped: no such process any more.
        assert_eq!(run("TERM", pid, start), "gone");
    }

    #[test]
    fn under_become_the_same_script_runs_through_sudo() {
        let (mut child, pid, start) = sleeper();
        let wrapped = command("TERM", pid, start + 1, true, None);
        let inner = wrapped
            .strip_prefix("sudo -n -H -u root -- ")
            .expect("wrapped in sudo");
        // What sudo would run, run here as is: the quoting holds.
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(inner)
            .output()
            .expect("sh runs");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            format!("changed {start}")
        );
    }
}
