//! One plain line per event on stderr, no colour, no cursor tricks: what CI
//! logs and pipes want. For `herd exec`, each host's output goes to stdout,
//! every line prefixed with the host's name.

use std::fmt::Write as _;

use super::{paint, summary, write_out, Reporter};
use crate::event::{Event, HostState};

pub struct PlainReporter {
    /// `herd exec`: command output is the result and goes to stdout.
    pub exec: bool,
    /// Only with `--color always`: logs and pipes get plain text.
    pub colour: bool,
}

impl Reporter for PlainReporter {
    fn handle(&mut self, event: &Event) {
        // Without colour, none: a host's own colours go too.
        let plain = |line: &str| match self.colour {
            true => line.to_string(),
            false => crate::shell::without_colours(line),
        };
        if self.exec {
            let out: String = exec_output(event)
                .lines()
                .map(|line| plain(line) + "\n")
                .collect();
            write_out(&mut std::io::stdout().lock(), &out);
        }
        let text: String = describe(event, self.exec)
            .lines()
            .map(|line| paint(&plain(line), self.colour) + "\n")
            .collect();
        write_out(&mut std::io::stderr().lock(), &text);
    }
}

/// For `herd exec`: the command's stdout, each line prefixed with the host.
pub fn exec_output(event: &Event) -> String {
    let mut out = String::new();
    if let Event::StepFinished { host, result, .. } = event {
        for text in result.stdout.lines() {
            let _ = writeln!(out, "{host}: {}", crate::shell::printable(text));
        }
    }
    out
}

/// `text` (a message that may quote several lines a host printed) with
/// each line after the first indented under `host`'s name, so every line
/// says whose it is.
fn continued(host: &str, text: &str) -> String {
    text.replace('\n', &format!("\n{host}:     "))
}

/// The plain lines for one event (empty for events that get none).
pub fn describe(event: &Event, exec: bool) -> String {
    let mut line = String::new();
    match event {
        Event::RunStarted {
            title,
            hosts,
            batches,
        } => {
            let _ = writeln!(
                line,
                "herd: {title}: {} host(s) in {} batch(es)",
                hosts.len(),
                batches.len()
            );
        }
        Event::HostConnected { .. } | Event::StepStarted { .. } | Event::UploadProgress { .. } => {}
        Event::HostUnreachable { host, reason } => {
            let _ = writeln!(line, "{host}: UNREACHABLE: {}", continued(host, reason));
        }
        Event::BatchStarted { batch, of, hosts } => {
            if *of > 1 {
                let _ = writeln!(line, "batch {batch}/{of}: {}", hosts.join(" "));
            }
        }
        Event::StepFinished {
            host,
            step,
            of,
            name,
            rollback,
            result,
        } => {
            let phase = if *rollback { "rollback " } else { "" };
            let verdict = match (result.ok, result.ignored) {
                (true, _) => "ok".to_string(),
                (false, true) => "failed (ignored)".to_string(),
                (false, false) => "FAILED".to_string(),
            };
            let detail = match (&result.error, result.exit_code, &result.transfer) {
                (Some(error), _, _) => format!(": {}", continued(host, error)),
                (None, Some(code), _) if !result.ok => format!(": exit code {code}"),
                (None, _, Some(transfer)) => format!(": {}", transfer.describe(result.duration)),
                _ => String::new(),
            };
            let _ = writeln!(
                line,
                "{host}: {phase}[{step}/{of}] {name}: {verdict}{detail} ({:.2}s)",
                result.duration.as_secs_f64()
            );
            if !result.ok && (!exec || result.exit_code.is_none()) {
                for text in crate::shell::tail(&result.stderr, 5).lines() {
                    let _ = writeln!(line, "{host}:     {}", crate::shell::printable(text));
                }
            }
            if exec && !result.ok {
                for text in result.stderr.lines() {
                    let _ = writeln!(line, "{host}: stderr: {}", crate::shell::printable(text));
                }
            }
        }
        Event::ReloadStarted { .. } => {}
        Event::ReloadFinished {
            host,
            rollback,
            outcome,
        } => {
            let what = if *rollback {
                "restore after rollback"
            } else {
                "reload"
            };
            let r = &outcome.report;
            let master = match (r.master_pid, r.new_master_pid) {
                (_, Some(new)) => format!("new master {new}"),
                (Some(pid), None) => format!("master {pid}"),
                (None, None) => "no master".to_string(),
            };
            // Nothing signalled, nothing started: no new workers to speak of.
            let workers = if r.server_touched() || !r.new_workers.is_empty() {
                format!("workers {:?} -> {:?}", r.old_workers, r.new_workers)
            } else {
                format!("workers {:?}", r.old_workers)
            };
            // Every signal, in the order sent: with five servers and their
            // upgrades, which one a host got is worth a glance.
            let mut started = String::new();
            for signal in &r.signals {
                started.push_str(&format!(", {}", signal.describe()));
            }
            if r.started {
                started.push_str(", started with reload.start");
            }
            let message = outcome.message.as_deref().map(|m| continued(host, m));
            match (&outcome.proof, &message) {
                (None, None) => {
                    let _ = writeln!(line, "{host}: {what}: ok ({master}, {workers}{started})");
                }
                (None, Some(note)) => {
                    let _ = writeln!(
                        line,
                        "{host}: {what}: ok, {note} ({master}, {workers}{started})"
                    );
                }
                (Some(proof), message) => {
                    let _ = writeln!(
                        line,
                        "{host}: {what} FAILED: proof `{}`: {} ({master}, {workers}{started})",
                        proof.name(),
                        message.as_deref().unwrap_or("")
                    );
                }
            }
        }
        Event::StepSkipped {
            host,
            step,
            name,
            reason,
            rollback,
        } => {
            let phase = if *rollback { "rollback " } else { "" };
            let _ = writeln!(line, "{host}: {phase}[{step}] {name}: skipped ({reason})");
        }
        Event::HostFinished { report } => match report.state {
            HostState::RolledBack {
                rollback_ok: false, ..
            } => {
                let _ = writeln!(
                    line,
                    "{}: ROLLBACK FAILED: check this host by hand",
                    report.host
                );
            }
            HostState::Interrupted {
                rollback_ok: Some(true),
                ..
            } => {
                let _ = writeln!(line, "{}: interrupted, rolled back", report.host);
            }
            HostState::Interrupted {
                rollback_ok: Some(false),
                ..
            } => {
                let _ = writeln!(
                    line,
                    "{}: interrupted, ROLLBACK FAILED: check this host by hand",
                    report.host
                );
            }
            HostState::ContactLost { .. } => {
                let _ = writeln!(
                    line,
                    "{}: CONTACT LOST after the signal: what it serves is unknown, check this host by hand",
                    report.host
                );
            }
            _ => {}
        },
        Event::LockHeld {
            host,
            holder,
            waiting,
        } => {
            let what = if *waiting {
                "waiting: the deploy lock is held by"
            } else {
                "DEPLOY LOCK HELD by"
            };
            let _ = writeln!(line, "{host}: {what} {holder}");
        }
        Event::LockLeft { host, path, reason } => {
            let _ = writeln!(
                line,
                "{host}: the deploy lock {path} is still there ({reason}): `herd unlock -l {host}` removes it"
            );
        }
        Event::AuditFailed { host, path, reason } => {
            let _ = writeln!(
                line,
                "{host}: warning: cannot append to the audit log {path}: {reason}"
            );
        }
        Event::HookStarted { .. } => {}
        Event::HookFinished {
            hook,
            batch,
            result,
        } => {
            let which = match batch {
                Some(batch) => format!("hook {hook} (batch {batch})"),
                None => format!("hook {hook}"),
            };
            let detail = match (&result.error, result.exit_code) {
                (Some(error), _) => error.clone(),
                (None, Some(code)) => format!("exit code {code}"),
                (None, None) => "no exit code".to_string(),
            };
            let took = result.duration.as_secs_f64();
            if result.ok {
                let _ = writeln!(line, "herd: {which}: ok ({took:.2}s)");
            } else if result.ignored {
                let _ = writeln!(
                    line,
                    "herd: warning: {which} failed: {detail} ({took:.2}s); the run's outcome stands"
                );
            } else {
                let _ = writeln!(line, "herd: {which} FAILED: {detail} ({took:.2}s)");
            }
            if !result.ok {
                for text in crate::shell::tail(&result.stderr, 5).lines() {
                    let _ = writeln!(line, "herd:     {}", crate::shell::printable(text));
                }
            }
        }
        Event::RolloutAborted { reason } => {
            let _ = writeln!(line, "herd: ROLLOUT ABORTED: {reason}");
        }
        Event::RunFinished { report } => line.push_str(&summary::render(report)),
    }
    line
}
