//! What the engine tells the world, as it happens.
//!
//! The engine sends [`Event`]s down a channel; reporters (plain lines, JSON
//! lines, the final summary) turn them into output. Nothing else in herd
//! prints. Events serialize to the JSON-lines schema documented in the README.

use std::time::Duration;

use serde::Serialize;

use crate::reload::{Proof, ReloadReport};

/// The state a host ended the run in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HostState {
    /// Every step succeeded.
    Done,
    /// A step failed; later steps did not run.
    Failed { failure: Failure },
    /// A step failed and the rollback steps then ran.
    RolledBack { failure: Failure, rollback_ok: bool },
    /// The connection was lost once the reload signal had (or may have)
    /// gone out: what the host serves now is unknown, and nothing more ran
    /// there (no rollback).
    ContactLost { failure: Failure },
    /// No connection could be made or authenticated; nothing ran.
    Unreachable { reason: String },
    /// The run stopped before this host's turn; nothing ran.
    Untouched { reason: String },
    /// Ctrl-C stopped this host between steps: `steps_ok` of its steps ran
    /// and the next did not start. A host that had changed something then
    /// ran its rollback steps: `rollback_ok` says how they went (`None` when
    /// no rollback ran: nothing had changed, or the playbook has none).
    Interrupted {
        next_step: usize,
        next_step_name: String,
        rollback_ok: Option<bool>,
    },
}

impl HostState {
    pub fn label(&self) -> &'static str {
        match self {
            HostState::Done => "done",
            HostState::Failed { .. } => "failed",
            HostState::RolledBack {
                rollback_ok: false, ..
            } => "rollback failed",
            HostState::RolledBack { .. } => "rolled back",
            HostState::ContactLost { .. } => "contact lost",
            HostState::Unreachable { .. } => "unreachable",
            HostState::Untouched { .. } => "untouched",
            HostState::Interrupted { .. } => "interrupted",
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, HostState::Done)
    }
}

/// Why a host failed: which step, how, and the tail of what it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// 1-based step number, as shown to users.
    pub step: usize,
    pub step_name: String,
    pub exit_code: Option<u32>,
    pub reason: String,
    pub stderr_tail: String,
}

/// The outcome of one step on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepResult {
    pub ok: bool,
    /// The step failed but has `ignore_errors`.
    pub ignored: bool,
    pub exit_code: Option<u32>,
    pub stdout: String,
    pub stderr: String,
    /// Set when the step did not run to an exit code (timeout, lost connection, template).
    pub error: Option<String>,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// For `upload` and `archive` steps: what was sent, or that nothing
    /// needed to be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
}

/// What an `upload` or `archive` step sent to its host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// Bytes written to the host (0 when `unchanged`).
    pub bytes: u64,
    /// The host already had this content: nothing was sent.
    pub unchanged: bool,
    /// The artifact's SHA-256 (of a directory: of its canonical listing).
    pub sha256: String,
}

impl Transfer {
    /// `sent 1.5 MiB at 12.0 MiB/s` or `unchanged (sha256 0123abcd…)`.
    pub fn describe(&self, duration: Duration) -> String {
        let short: String = self.sha256.chars().take(12).collect();
        if self.unchanged {
            return format!("unchanged (sha256 {short}…)");
        }
        format!(
            "sent {} at {}/s (sha256 {short}…)",
            size(self.bytes),
            size(rate(self.bytes, duration))
        )
    }
}

/// Bytes per second over `duration`.
pub fn rate(bytes: u64, duration: Duration) -> u64 {
    let seconds = duration.as_secs_f64();
    if seconds <= 0.0 {
        return bytes;
    }
    (bytes as f64 / seconds) as u64
}

/// `512 B`, `1.5 KiB`, `200.0 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A host's report for tests of the reports: one of two steps done, 1.5s.
#[cfg(test)]
pub fn host_report(name: &str, state: HostState) -> HostReport {
    HostReport {
        host: name.into(),
        state,
        steps_ok: 1,
        steps_skipped: 0,
        steps_total: 2,
        duration: std::time::Duration::from_millis(1500),
        reload: None,
    }
}

/// One host's line in the final report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostReport {
    pub host: String,
    #[serde(flatten)]
    pub state: HostState,
    /// Steps that ran to success.
    pub steps_ok: usize,
    /// Steps skipped by their `when:` (not counted in `steps_ok`).
    pub steps_skipped: usize,
    pub steps_total: usize,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// The reload stage, when the plan has one and the host reached it.
    pub reload: Option<ReloadOutcome>,
}

/// How a host's reload (or restore after rollback) went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadOutcome {
    pub ok: bool,
    /// The proof that failed.
    pub proof: Option<Proof>,
    pub message: Option<String>,
    #[serde(flatten)]
    pub report: ReloadReport,
}

impl ReloadOutcome {
    pub fn ok(report: ReloadReport) -> Self {
        ReloadOutcome {
            ok: true,
            proof: None,
            message: None,
            report,
        }
    }

    pub fn failed(proof: Proof, message: String, report: ReloadReport) -> Self {
        ReloadOutcome {
            ok: false,
            proof: Some(proof),
            message: Some(message),
            report,
        }
    }
}

/// The whole run's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub hosts: Vec<HostReport>,
    /// Why the rollout stopped early, if it did.
    pub aborted: Option<String>,
    pub interrupted: bool,
    /// Hosts whose deploy lock another run holds (the run did not start).
    pub lock_held: Vec<LockConflict>,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
}

/// A host whose deploy lock is held, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockConflict {
    pub host: String,
    pub holder: String,
}

impl RunReport {
    pub fn all_done(&self) -> bool {
        self.aborted.is_none()
            && !self.interrupted
            && self.lock_held.is_empty()
            && self.hosts.iter().all(|h| h.state.is_done())
    }

    /// The documented exit code this run ends herd with.
    pub fn exit_code(&self) -> u8 {
        use crate::app::exit;
        if self.interrupted {
            exit::INTERRUPTED
        } else if !self.lock_held.is_empty() {
            exit::LOCKED
        } else if self.all_done() {
            exit::OK
        } else {
            exit::FAILED
        }
    }

    pub fn count(&self, label: &str) -> usize {
        self.hosts
            .iter()
            .filter(|h| h.state.label() == label)
            .count()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        title: String,
        hosts: Vec<String>,
        batches: Vec<Vec<String>>,
    },
    HostConnected {
        host: String,
        #[serde(serialize_with = "seconds")]
        elapsed: Duration,
    },
    HostUnreachable {
        host: String,
        reason: String,
    },
    BatchStarted {
        /// 1-based.
        batch: usize,
        of: usize,
        hosts: Vec<String>,
    },
    StepStarted {
        host: String,
        step: usize,
        of: usize,
        name: String,
        rollback: bool,
    },
    StepFinished {
        host: String,
        step: usize,
        of: usize,
        name: String,
        rollback: bool,
        #[serde(flatten)]
        result: StepResult,
    },
    /// An upload in flight: bytes sent so far, every half second or so.
    UploadProgress {
        host: String,
        step: usize,
        bytes: u64,
        /// The bytes to send in all, when known (not for a directory).
        total: Option<u64>,
        #[serde(serialize_with = "seconds")]
        elapsed: Duration,
    },
    ReloadStarted {
        host: String,
        /// A restore after rollback rather than the release's reload.
        rollback: bool,
    },
    ReloadFinished {
        host: String,
        rollback: bool,
        #[serde(flatten)]
        outcome: ReloadOutcome,
    },
    /// A step that did not run on this host: a `once` step that ran (or
    /// was skipped) on another host, or a step whose `when:` is false here.
    StepSkipped {
        host: String,
        step: usize,
        name: String,
        reason: String,
        /// A rollback step.
        rollback: bool,
    },
    HostFinished {
        #[serde(flatten)]
        report: HostReport,
    },
    /// Another run holds a targeted host's deploy lock; `waiting` while
    /// `--lock-wait` lasts, then once more per host when giving up.
    LockHeld {
        host: String,
        holder: String,
        waiting: bool,
    },
    /// This run's deploy lock could not be given back on a host (contact
    /// lost): `herd unlock` removes it once the host answers.
    LockLeft {
        host: String,
        path: String,
        reason: String,
    },
    /// The host's audit line could not be written: a warning, the run's
    /// result stands.
    AuditFailed {
        host: String,
        path: String,
        reason: String,
    },
    /// A playbook hook started on the controller; `batch` (1-based) for
    /// `before_batch` and `after_batch`.
    HookStarted {
        hook: String,
        batch: Option<usize>,
    },
    /// A playbook hook ended. `ignored` is set when its failure does not
    /// change the run's outcome (`on_success`, `on_failure`): a warning.
    HookFinished {
        hook: String,
        batch: Option<usize>,
        #[serde(flatten)]
        result: StepResult,
    },
    RolloutAborted {
        reason: String,
    },
    RunFinished {
        report: RunReport,
    },
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((duration.as_secs_f64() * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod transfer_tests {
    use super::*;

    #[test]
    fn a_transfer_says_its_size_and_rate_or_that_it_was_unchanged() {
        let sha256 = "0123456789abcdef".repeat(4);
        let sent = Transfer {
            bytes: 200 << 20,
            unchanged: false,
            sha256: sha256.clone(),
        };
        assert_eq!(
            sent.describe(Duration::from_secs(4)),
            "sent 200.0 MiB at 50.0 MiB/s (sha256 0123456789ab…)"
        );
        let unchanged = Transfer {
            bytes: 0,
            unchanged: true,
            sha256,
        };
        assert_eq!(
            unchanged.describe(Duration::from_millis(30)),
            "unchanged (sha256 0123456789ab…)"
        );
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }
}
