//! The audit trail: one line per host per `herd run` or `herd reload`, in a
//! file on the host (`herd_audit_log`, default `~/.herd/audit.log`), saying
//! who ran what from where and how it ended there.
//!
//! A line is one JSON object (see [`Entry`]), so a value holding tabs,
//! newlines or quotes never breaks it. It is appended with one `printf` of
//! the whole line to a file opened `O_APPEND` (`>>`), and kept well under
//! `PIPE_BUF`, so lines of runs writing the same file at once never
//! interleave. Secrets are masked before the line is made. A host herd never
//! reached gets no line; a line that cannot be written is a warning, never a
//! failure of the run.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lock::{controller_name, now_utc, os_account, shell_path};
use crate::event::HostState;
use crate::inventory::Vars;
use crate::template::{Cut, Secrets};
use crate::transport::{Connection, TransportError};

/// The longest line written, in bytes: well under `PIPE_BUF` (4096 on
/// Linux) and the shell's output buffer, so its `printf` writes the line
/// with one `write(2)`, which `O_APPEND` appends whole.
pub const MAX_LINE: usize = 3000;

/// Exit code of the read script when the host has no audit log.
const NO_LOG: u32 = 75;

/// Why a line could not be appended.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The shell could not create the directory or open the file.
    #[error("exit code {code}{}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Shell { code: String, stderr: String },
}

/// What every line of one herd invocation shares.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// `run`, `reload` or `rollback`.
    pub command: String,
    /// The playbook as given on the command line; `-` for `herd reload`.
    pub playbook: String,
    pub user: String,
    pub controller: String,
    /// Limit on the append command.
    pub timeout: Duration,
}

impl AuditSettings {
    pub fn current(command: &str, playbook: &str, timeout: Duration) -> AuditSettings {
        AuditSettings {
            command: command.to_string(),
            playbook: playbook.to_string(),
            user: os_account(),
            controller: controller_name(),
            timeout,
        }
    }
}

/// One line of the audit log, fields in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// UTC, RFC 3339.
    pub time: String,
    /// The controller's OS account.
    pub user: String,
    /// The controller's host name.
    pub controller: String,
    pub command: String,
    pub playbook: String,
    /// The `release` variable, or `-`.
    pub release: String,
    /// The host's result, as the summary names it (`done`, `failed`,
    /// `rolled back`, `rollback failed`, `contact lost`, `interrupted`,
    /// `untouched`).
    pub result: String,
    /// Why the host did not end `done`; absent when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The audit log of a host: its `herd_audit_log` variable, or the default.
pub fn audit_path(vars: &Vars) -> String {
    match vars.get("herd_audit_log") {
        Some(Value::String(path)) if !path.is_empty() => path.clone(),
        _ => "~/.herd/audit.log".to_string(),
    }
}

/// The line for a host that ended in `state`, secrets masked, at most
/// [`MAX_LINE`] bytes (the reason is cut to fit), without its newline.
pub fn line(settings: &AuditSettings, vars: &Vars, state: &HostState, secrets: &Secrets) -> String {
    let release = match vars.get("release") {
        Some(Value::String(text)) if !text.is_empty() => text.clone(),
        Some(Value::String(_) | Value::Null) | None => "-".to_string(),
        Some(other) => other.to_string(),
    };
    let mut entry = Entry {
        time: now_utc(),
        user: settings.user.clone(),
        controller: settings.controller.clone(),
        command: settings.command.clone(),
        playbook: secrets.mask(&settings.playbook),
        release: secrets.mask(&release),
        result: state.label().to_string(),
        reason: reason_of(state),
    };
    let Some(reason) = entry.reason.take() else {
        return serde_json::to_string(&entry).unwrap_or_default();
    };
    let mut keep = reason.chars().count();
    loop {
        entry.reason = Some(secrets.mask_cut(&reason, &[], Cut::Head(keep)));
        let text = serde_json::to_string(&entry).unwrap_or_default();
        if text.len() <= MAX_LINE || keep == 0 {
            return text;
        }
        // Escapes can make a character several bytes in the line.
        let over = text.len() - MAX_LINE;
        keep = keep.saturating_sub(over.max(16));
    }
}

/// Why a host did not end `done`, in one line of text.
fn reason_of(state: &HostState) -> Option<String> {
    let failure = match state {
        HostState::Done => return None,
        HostState::Failed { failure }
        | HostState::RolledBack { failure, .. }
        | HostState::ContactLost { failure } => failure,
        HostState::Unreachable { reason } | HostState::Untouched { reason } => {
            return Some(reason.clone())
        }
        HostState::Interrupted {
            next_step,
            next_step_name,
            ..
        } => {
            return Some(format!(
                "interrupted before step {next_step} `{next_step_name}`"
            ))
        }
    };
    let mut reason = format!(
        "step {} `{}`: {}",
        failure.step, failure.step_name, failure.reason
    );
    if let Some(last) = failure.stderr_tail.lines().last() {
        if !last.trim().is_empty() {
            reason.push_str(": ");
            reason.push_str(last.trim());
        }
    }
    Some(reason)
}

/// Appends `line` to the log at `path` on the host: one `printf` of the
/// whole line to the file opened for appending, the directory created
/// (0700) and the file created (0600) when missing.
pub async fn append<T: Connection>(
    connection: &T,
    path: &str,
    line: &str,
    timeout: Duration,
) -> Result<(), AuditError> {
    let script = format!(
        "umask 077; f={}; case \"$f\" in */*) d=${{f%/*}}; [ -d \"${{d:-/}}\" ] || mkdir -p \"$d\" || exit 1;; esac\n\
         printf '%s\\n' {} >> \"$f\"",
        shell_path(path),
        crate::shell::quote(line),
    );
    let output = connection.exec(&script, timeout).await?;
    match output.exit_code {
        Some(0) => Ok(()),
        code => Err(AuditError::Shell {
            code: code.map_or("none".to_string(), |c| c.to_string()),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        }),
    }
}

/// The last `last` lines of the log at `path` on the host (none when the
/// host has no log yet).
pub async fn read_last<T: Connection>(
    connection: &T,
    path: &str,
    last: usize,
    timeout: Duration,
) -> Result<Vec<String>, TransportError> {
    let script = format!(
        "f={}; [ -e \"$f\" ] || exit {NO_LOG}; tail -n {last} \"$f\"",
        shell_path(path)
    );
    let output = connection.exec(&script, timeout).await?;
    match output.exit_code {
        Some(0) => Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()),
        Some(NO_LOG) => Ok(Vec::new()),
        code => Err(TransportError::Protocol(format!(
            "cannot read the audit log {path}: exit code {}: {}",
            code.map_or("none".to_string(), |c| c.to_string()),
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

/// A line of the log as `herd audit` shows it: `time user@controller
/// command playbook release=R result[: reason]`; a line that is not herd's
/// JSON is shown as it is.
pub fn show(line: &str) -> String {
    match serde_json::from_str::<Entry>(line) {
        Ok(e) => {
            let mut text = format!(
                "{} {}@{} {} {} release={} {}",
                e.time, e.user, e.controller, e.command, e.playbook, e.release, e.result
            );
            if let Some(reason) = e.reason {
                text.push_str(": ");
                text.push_str(&reason);
            }
            text
        }
        Err(_) => line.to_string(),
    }
}

/// A line of the log for `herd audit --output json`: the host first, then
/// the line's fields (a line that is not herd's JSON as `raw`).
pub fn show_json(host: &str, line: &str) -> String {
    let mut object = serde_json::Map::new();
    object.insert("host".into(), Value::String(host.to_string()));
    match serde_json::from_str::<Entry>(line)
        .ok()
        .and_then(|e| serde_json::to_value(e).ok())
    {
        Some(Value::Object(fields)) => object.extend(fields),
        _ => {
            object.insert("raw".into(), Value::String(line.to_string()));
        }
    }
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Failure;

    fn settings() -> AuditSettings {
        AuditSettings {
            command: "run".into(),
            playbook: "deploy.yml".into(),
            user: "alice".into(),
            controller: "ci-3".into(),
            timeout: Duration::from_secs(5),
        }
    }

    fn failed(reason: &str, stderr: &str) -> HostState {
        HostState::RolledBack {
            failure: Failure {
                step: 2,
                step_name: "Migrate".into(),
                exit_code: Some(1),
                reason: reason.into(),
                stderr_tail: stderr.into(),
            },
            rollback_ok: false,
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_the_fields_in_order() {
        let mut vars = Vars::new();
        vars.insert("release".into(), Value::String("v2".into()));
        let text = line(
            &settings(),
            &vars,
            &failed("exited with code 1", "one\n\ttwo\tthree\n"),
            &Secrets::default(),
        );
        assert!(!text.contains('\n') && !text.contains('\t'), "{text}");
        let entry: Entry = serde_json::from_str(&text).unwrap();
        assert_eq!(entry.release, "v2");
        assert_eq!(entry.result, "rollback failed");
        assert_eq!(
            entry.reason.as_deref(),
            Some("step 2 `Migrate`: exited with code 1: two\tthree")
        );
        assert!(text.starts_with("{\"time\":\""), "{text}");
        let done = line(
            &settings(),
            &Vars::new(),
            &HostState::Done,
            &Secrets::default(),
        );
        assert!(
            done.ends_with(
                "\"user\":\"alice\",\"controller\":\"ci-3\",\"command\":\"run\",\"playbook\":\"deploy.yml\",\"release\":\"-\",\"result\":\"done\"}"
            ),
            "{done}"
        );
    }

    #[test]
    fn a_long_reason_is_cut_to_keep_the_line_short() {
        let long = "\u{1}x".repeat(5000);
        let text = line(
            &settings(),
            &Vars::new(),
            &failed(&long, ""),
            &Secrets::default(),
        );
        assert!(text.len() <= MAX_LINE, "{}", text.len());
        assert!(serde_json::from_str::<Entry>(&text).is_ok());
    }

    #[test]
    fn shown_lines_name_the_host_first_in_json() {
        let text = line(
            &settings(),
            &Vars::new(),
            &HostState::Done,
            &Secrets::default(),
        );
        let json: Value = serde_json::from_str(&show_json("web1", &text)).unwrap();
        assert_eq!(json["host"], "web1");
        assert_eq!(json["result"], "done");
        assert!(show_json("web1", "garbage").contains("\"raw\":\"garbage\""));
        assert!(show(&text).ends_with(" alice@ci-3 run deploy.yml release=- done"));
    }
}
