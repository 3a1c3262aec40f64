//! The playbook's hooks as the engine runs them: plain shell commands (not
//! templates), run on the controller from the playbook's directory, told
//! what happens through `HERD_*` environment variables.

use std::path::PathBuf;
use std::time::Duration;

use crate::playbook::Playbook;

/// A hook's limit when the playbook sets none.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    BeforeBatch,
    AfterBatch,
    OnSuccess,
    OnFailure,
}

impl HookKind {
    /// The key in the playbook, as events and messages name it.
    pub fn key(self) -> &'static str {
        match self {
            HookKind::BeforeBatch => "before_batch",
            HookKind::AfterBatch => "after_batch",
            HookKind::OnSuccess => "on_success",
            HookKind::OnFailure => "on_failure",
        }
    }
}

#[derive(Debug, Clone)]
pub struct HookPlan {
    pub before_batch: Option<String>,
    pub after_batch: Option<String>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    pub timeout: Duration,
    /// Where hooks run: the playbook's directory.
    pub dir: PathBuf,
    /// `HERD_PLAYBOOK`: the playbook as given on the command line.
    pub playbook: String,
    /// `HERD_COMMAND`: `run`, or `rollback` for a plan that rolls back.
    pub command: String,
}

impl HookPlan {
    /// The playbook's hooks; `None` when it has no `hooks:` (or an empty one).
    pub fn from_playbook(playbook: &Playbook, dir: PathBuf) -> Option<HookPlan> {
        let hooks = playbook.spec.hooks.as_ref()?;
        hooks.commands().next()?;
        Some(HookPlan {
            before_batch: hooks.before_batch.clone(),
            after_batch: hooks.after_batch.clone(),
            on_success: hooks.on_success.clone(),
            on_failure: hooks.on_failure.clone(),
            timeout: hooks.timeout.map_or(DEFAULT_HOOK_TIMEOUT, |t| t.0),
            dir,
            playbook: playbook.file.display().to_string(),
            command: "run".to_string(),
        })
    }

    /// The command of hook `kind`, if the playbook sets it.
    pub fn command_of(&self, kind: HookKind) -> Option<&str> {
        match kind {
            HookKind::BeforeBatch => self.before_batch.as_deref(),
            HookKind::AfterBatch => self.after_batch.as_deref(),
            HookKind::OnSuccess => self.on_success.as_deref(),
            HookKind::OnFailure => self.on_failure.as_deref(),
        }
    }
}
