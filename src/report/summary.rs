//! The end-of-run summary: one row per host, then each failure in detail.

use std::fmt::Write;

use crate::event::{Failure, HostReport, HostState, RunReport};

/// Each host whose step failed with something on stderr: the host, the
/// failure and its exit code as text (`none` without one).
pub fn failed_with_stderr(
    report: &RunReport,
) -> impl Iterator<Item = (&HostReport, &Failure, String)> {
    report.hosts.iter().filter_map(|host| {
        let failure = match &host.state {
            HostState::Failed { failure } | HostState::RolledBack { failure, .. } => failure,
            _ => return None,
        };
        let code = failure
            .exit_code
            .map_or("none".to_string(), |c| c.to_string());
        (!failure.stderr_tail.is_empty()).then_some((host, failure, code))
    })
}

pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    let width = report
        .hosts
        .iter()
        .map(|h| h.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "\n{:width$}  {:15}  {:>5}  {:>8}  {:>9}  {:>9}  NOTE",
        "HOST", "RESULT", "STEPS", "MASTER", "WORKERS", "DURATION"
    );
    for host in &report.hosts {
        let _ = writeln!(
            out,
            "{:width$}  {:15}  {:>5}  {:>8}  {:>9}  {:>8.2}s  {}",
            host.host,
            host.state.label(),
            format!("{}/{}", host.steps_ok, host.steps_total),
            master_column(host),
            workers_column(host),
            host.duration.as_secs_f64(),
            note(host)
        );
    }
    for (host, failure, code) in failed_with_stderr(report) {
        let _ = writeln!(
            out,
            "\n{}: step {} \"{}\" failed (exit code {code}), stderr ends with:",
            host.host, failure.step, failure.step_name
        );
        for line in failure.stderr_tail.lines() {
            let _ = writeln!(out, "    {}", crate::shell::printable(line));
        }
    }
    let _ = writeln!(
        out,
        "\n{} host(s) in {:.2}s: {}",
        report.hosts.len(),
        report.duration.as_secs_f64(),
        counts(report)
    );
    if let Some(reason) = &report.aborted {
        let _ = writeln!(out, "rollout aborted: {reason}");
    }
    for conflict in &report.lock_held {
        let _ = writeln!(
            out,
            "deploy lock on {} is held by {}",
            conflict.host, conflict.holder
        );
    }
    if report.interrupted {
        let _ = writeln!(
            out,
            "interrupted: no new step or batch was started after Ctrl-C"
        );
    }
    out
}

/// What the NOTE column says of a host: why it failed or did not run, and
/// the steps its `when:` skipped.
pub(crate) fn note(host: &HostReport) -> String {
    let note = match &host.state {
        HostState::Done => String::new(),
        HostState::Failed { failure } => format!(
            "step {} \"{}\": {}",
            failure.step, failure.step_name, failure.reason
        ),
        HostState::RolledBack {
            failure,
            rollback_ok,
        } => format!(
            "step {} \"{}\": {}; rollback {}",
            failure.step,
            failure.step_name,
            failure.reason,
            if *rollback_ok { "ok" } else { "FAILED" }
        ),
        HostState::ContactLost { failure } => format!(
            "step {} \"{}\": {}; host state UNKNOWN, no rollback ran",
            failure.step, failure.step_name, failure.reason
        ),
        HostState::Unreachable { reason } | HostState::Untouched { reason } => reason.clone(),
        HostState::Interrupted {
            next_step,
            next_step_name,
            rollback_ok,
        } => {
            let rolled = match rollback_ok {
                None => "",
                Some(true) => "; interrupted, rolled back",
                Some(false) => "; interrupted, ROLLBACK FAILED",
            };
            format!("stopped by Ctrl-C before step {next_step} \"{next_step_name}\"{rolled}")
        }
    };
    // A table cell: the lines of a message that quotes a host's output
    // run on, ` / ` between them.
    let note = note.trim_end().replace('\n', " / ");
    match (host.steps_skipped, note.is_empty()) {
        (0, _) => note,
        (n, true) => format!("{n} step(s) skipped (when: false)"),
        (n, false) => format!("{note}; {n} step(s) skipped (when: false)"),
    }
}

/// How many hosts ended each way: `1 done, 1 rolled back`.
pub(crate) fn counts(report: &RunReport) -> String {
    let counts: Vec<String> = [
        "done",
        "failed",
        "rolled back",
        "rollback failed",
        "contact lost",
        "unreachable",
        "untouched",
        "interrupted",
    ]
    .iter()
    .map(|label| (label, report.count(label)))
    .filter(|(_, n)| *n > 0)
    .map(|(label, n)| format!("{n} {label}"))
    .collect();
    counts.join(", ")
}

/// The master that serves at the end (the new one after USR2), or `-`.
pub(crate) fn master_column(host: &HostReport) -> String {
    host.reload
        .as_ref()
        .and_then(|r| r.report.new_master_pid.or(r.report.master_pid))
        .map_or("-".to_string(), |pid| pid.to_string())
}

/// Workers before and after the reload: `2 -> 2`; `2` when nothing was
/// signalled (the workers are as they were); `-` without a master.
pub(crate) fn workers_column(host: &HostReport) -> String {
    match &host.reload {
        Some(r)
            if r.report.master_pid.is_some()
                && !r.report.server_touched()
                && r.report.new_workers.is_empty() =>
        {
            r.report.old_workers.len().to_string()
        }
        Some(r) if r.report.master_pid.is_some() => {
            format!(
                "{} -> {}",
                r.report.old_workers.len(),
                r.report.new_workers.len()
            )
        }
        _ => "-".to_string(),
    }
}
