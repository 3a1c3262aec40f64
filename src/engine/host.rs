//! One host's share of a rollout: its steps in order over its connection,
//! then its rollback if a step failed, or if Ctrl-C stopped it after it had
//! changed something.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

use super::once::{OnceGates, OnceState};
use super::{Cancel, Events};
use crate::event::{Event, Failure, HostReport, HostState, ReloadOutcome, StepResult};
use crate::inventory::Vars;
use crate::plan::reload::ReloadPlan;
use crate::plan::step::{Rendered, StepPlan};
use crate::plan::Plan;
use crate::reload::{self, Proof, ReloadReport};
use crate::shell::tail;
use crate::template::{OutputMask, MASK};
use crate::transport::{Connection, TransportError};

/// Lines of stderr kept in a failure report.
const TAIL_LINES: usize = 10;

/// How a host's steps ended.
enum StepsEnd {
    Done,
    Failed(Failure),
    /// Ctrl-C before step `next` (0-based) started.
    Interrupted {
        next: usize,
    },
}

/// What the steps left behind.
struct Steps {
    /// The host's variables, with captures.
    vars: Vars,
    /// Steps that succeeded (or were skipped as `once` steps done elsewhere).
    ok: usize,
    /// Steps skipped by their `when:`.
    skipped: usize,
    /// A step started on this host: it may have changed something.
    changed: bool,
    end: StepsEnd,
}

pub(super) struct HostRun {
    pub plan: Arc<Plan>,
    pub index: usize,
    pub events: Events,
    pub cancel: Cancel,
    pub once: Arc<OnceGates>,
    /// Each capture as herd showed it (the step's output, masked): what
    /// herd shows of the variable, so a command given it masks it by use.
    pub captured: Mutex<Vars>,
    /// The audit trail: the host's line is written as its run ends.
    pub audit: Option<super::audit::AuditSettings>,
}

impl HostRun {
    fn name(&self) -> &str {
        &self.plan.hosts[self.index].name
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// `reconnect` opens a new connection to the host, used at most once:
    /// when contact is lost after the reload signal, or when a failed step
    /// left the connection dead and its rollback is to run.
    pub async fn run<T, F>(&self, connection: &T, reconnect: impl FnOnce() -> F) -> HostReport
    where
        T: Connection,
        F: Future<Output = Result<T, TransportError>>,
    {
        let mut reconnect = Some(reconnect);
        let started = Instant::now();
        let plan = self.plan.clone();
        let Steps {
            vars,
            ok: steps_ok,
            skipped: steps_skipped,
            changed,
            end,
        } = self.run_steps(connection).await;
        let mut failure = match end {
            StepsEnd::Interrupted { next } => {
                let mut report = self
                    .interrupted(connection, &vars, changed, next, steps_ok, started)
                    .await;
                report.steps_skipped = steps_skipped;
                self.audit(connection, &report.state).await;
                return report;
            }
            StepsEnd::Failed(failure) => Some(failure),
            StepsEnd::Done => None,
        };
        let mut reload = None;
        let mut signalled = false;
        let mut contact_lost = false;
        let mut fresh = None;
        if let (None, Some(stage)) = (&failure, &plan.reload) {
            // Ctrl-C: no reload goes out that was not already sent.
            if *self.cancel.borrow() {
                let mut report = self
                    .interrupted(
                        connection,
                        &vars,
                        changed,
                        plan.steps.len(),
                        steps_ok,
                        started,
                    )
                    .await;
                report.steps_skipped = steps_skipped;
                self.audit(connection, &report.state).await;
                return report;
            }
            let (outcome, reconnected) = self
                .reload_stage(connection, &mut reconnect, stage, &vars)
                .await;
            fresh = reconnected;
            if let Some(proof) = outcome.proof {
                signalled = outcome.report.server_touched();
                contact_lost = proof == Proof::Contact;
                failure = Some(Failure {
                    step: plan.steps.len() + 1,
                    step_name: "reload".to_string(),
                    exit_code: None,
                    reason: format!(
                        "proof `{}` failed: {}",
                        proof.name(),
                        outcome.message.clone().unwrap_or_default()
                    ),
                    stderr_tail: String::new(),
                });
            }
            reload = Some(outcome);
        }
        // A step (or a reload before its signal) that failed because the
        // connection died (the session killed, the network gone) leaves
        // nothing to roll back over, nor to write the audit line: they get
        // a new connection.
        // (A step that exited with a code had a working connection.)
        if let (
            Some(Failure {
                exit_code: None, ..
            }),
            Some(reconnect),
        ) = (&failure, reconnect.take())
        {
            if !signalled && !answers(connection).await {
                fresh = reconnect().await.ok();
            }
        }
        // After a reconnection, the rest goes over the new connection.
        let connection = fresh.as_ref().unwrap_or(connection);

        let state = match failure {
            None => HostState::Done,
            // Nothing more can run over a lost connection, and nothing
            // herd saw tells what the host serves now.
            Some(failure) if contact_lost => HostState::ContactLost { failure },
            Some(failure) if plan.rollback.is_empty() => HostState::Failed { failure },
            Some(failure) => {
                let mut rollback_ok = self.roll_back(connection, &vars).await;
                // The signal went out and the new release did not take: bring
                // the old release back into the server (or start it).
                if let (true, Some(stage)) = (signalled, &plan.reload) {
                    let restored = self.reload(connection, stage, &vars, true).await;
                    rollback_ok &= restored.ok;
                    contact_lost = restored.proof == Some(Proof::Contact);
                    reload = Some(restored);
                }
                if contact_lost {
                    HostState::ContactLost { failure }
                } else {
                    HostState::RolledBack {
                        failure,
                        rollback_ok,
                    }
                }
            }
        };
        if state.is_done() {
            self.finish(connection, &vars).await;
        }
        // Over the connection that is alive: the new one after a reconnection.
        self.audit(connection, &state).await;
        if let Some(fresh) = &fresh {
            fresh.close().await;
        }
        HostReport {
            host: self.name().to_string(),
            state,
            steps_ok,
            steps_skipped,
            steps_total: plan.steps.len(),
            duration: started.elapsed(),
            reload,
        }
    }

    /// Appends the host's audit line, when the run keeps an audit trail.
    async fn audit<T: Connection>(&self, connection: &T, state: &HostState) {
        if let Some(settings) = &self.audit {
            super::write_audit(
                connection,
                &self.plan,
                self.index,
                state,
                settings,
                &self.events,
            )
            .await;
        }
    }

    /// The steps in order, until one fails or Ctrl-C.
    async fn run_steps<T: Connection>(&self, connection: &T) -> Steps {
        let plan = self.plan.clone();
        let mut vars = (*plan.hosts[self.index].vars).clone();
        let total = plan.steps.len();
        let mut steps_ok = 0;
        let mut skipped = 0;
        let mut changed = false;
        let runs_once = self.once.runner == Some(self.index);
        let mut end = StepsEnd::Done;
        for (index, step) in plan.steps.iter().enumerate() {
            if *self.cancel.borrow() {
                end = StepsEnd::Interrupted { next: index };
                break;
            }
            if step.once && !runs_once {
                match self.wait_for_once(index, step).await {
                    Ok(true) => {
                        steps_ok += 1;
                        continue;
                    }
                    Ok(false) => {
                        skipped += 1;
                        self.skip_capture(step, &mut vars);
                        continue;
                    }
                    Err(stop) => {
                        end = stop;
                        break;
                    }
                }
            }
            // `when:` is false here (for a once step: on the host that runs it).
            if step.when.skips(self.index) {
                self.emit_skipped(index, step, false);
                if step.once {
                    self.once.settle(index, OnceState::Skipped);
                }
                skipped += 1;
                self.skip_capture(step, &mut vars);
                continue;
            }
            changed = true;
            let (result, stdout) = self
                .run_step(connection, step, index, total, &vars, false)
                .await;
            let ok = result.ok || result.ignored;
            if step.once {
                self.once.settle(
                    index,
                    if ok {
                        OnceState::Succeeded
                    } else {
                        OnceState::NotDone
                    },
                );
            }
            if !ok && step.local.is_some() && *self.cancel.borrow() {
                // Ctrl-C stopped the local step: the host was interrupted there.
                end = StepsEnd::Interrupted { next: index };
                break;
            }
            if !ok {
                let mut failure = failure_of(index, step, &result);
                failure.step_name = self.shown_name(step);
                end = StepsEnd::Failed(failure);
                break;
            }
            steps_ok += 1;
            if let (Some(name), true) = (&step.capture, result.ok) {
                // What the host printed, not what herd shows of it: a
                // capture feeds later commands.
                vars.insert(name.clone(), Value::String(stdout.trim_end().to_string()));
                let shown = if self.captures_secret(step) {
                    MASK
                } else {
                    result.stdout.trim_end()
                };
                if let Ok(mut captured) = self.captured.lock() {
                    captured.insert(name.clone(), Value::String(shown.to_string()));
                }
            }
        }
        if runs_once {
            // Once steps this host never reached will not run.
            self.once.abandon_from(0);
        }
        Steps {
            vars,
            ok: steps_ok,
            skipped,
            changed,
            end,
        }
    }

    /// Tells that `step` is skipped on this host because its `when:` is false.
    fn emit_skipped(&self, index: usize, step: &StepPlan, rollback: bool) {
        self.emit(Event::StepSkipped {
            host: self.name().to_string(),
            step: index + 1,
            name: self.shown_name(step),
            reason: format!(
                "when: {}",
                self.plan.renderer.secrets().mask(&step.when.describe())
            ),
            rollback,
        });
    }

    /// A skipped step that captures leaves its variable empty, so later
    /// steps render as the plan checked them.
    fn skip_capture(&self, step: &StepPlan, vars: &mut Vars) {
        if let Some(name) = &step.capture {
            vars.insert(name.clone(), Value::String(String::new()));
            if let Ok(mut captured) = self.captured.lock() {
                captured.insert(name.clone(), Value::String(String::new()));
            }
        }
    }

    /// A once step on a host that does not run it: wait until it ran on the
    /// runner, then skip it; stop if it did not succeed there. True when it
    /// ran there, false when its `when:` skipped it there.
    async fn wait_for_once(&self, index: usize, step: &StepPlan) -> Result<bool, StepsEnd> {
        let runner = self
            .once
            .runner
            .map_or("?", |i| self.plan.hosts[i].name.as_str());
        match self.once.wait(index).await {
            OnceState::Succeeded => {
                self.emit(Event::StepSkipped {
                    host: self.name().to_string(),
                    step: index + 1,
                    name: self.shown_name(step),
                    reason: format!("once: ran on {runner}"),
                    rollback: false,
                });
                Ok(true)
            }
            OnceState::Skipped => {
                self.emit(Event::StepSkipped {
                    host: self.name().to_string(),
                    step: index + 1,
                    name: self.shown_name(step),
                    reason: format!(
                        "once: skipped on {runner}, when: {}",
                        self.plan.renderer.secrets().mask(&step.when.describe())
                    ),
                    rollback: false,
                });
                Ok(false)
            }
            _ if *self.cancel.borrow() => Err(StepsEnd::Interrupted { next: index }),
            _ => Err(StepsEnd::Failed(Failure {
                step: index + 1,
                step_name: self.shown_name(step),
                exit_code: None,
                reason: format!(
                    "once: this step did not succeed on {runner}, so this host stops before it"
                ),
                stderr_tail: String::new(),
            })),
        }
    }

    /// Ctrl-C stopped the host before step `next` (0-based; the reload when
    /// past the last step). A host that had changed something is not left
    /// half-done: its rollback steps run, each bounded by its timeout. No
    /// reload signal goes out after Ctrl-C, so there is no server to restore.
    async fn interrupted<T: Connection>(
        &self,
        connection: &T,
        vars: &Vars,
        changed: bool,
        next: usize,
        steps_ok: usize,
        started: Instant,
    ) -> HostReport {
        let rollback_ok = if changed && !self.plan.rollback.is_empty() {
            Some(self.roll_back(connection, vars).await)
        } else {
            None
        };
        HostReport {
            host: self.name().to_string(),
            state: HostState::Interrupted {
                next_step: next + 1,
                next_step_name: self
                    .plan
                    .steps
                    .get(next)
                    .map_or_else(|| "reload".to_string(), |s| self.shown_name(s)),
                rollback_ok,
            },
            steps_ok,
            steps_skipped: 0,
            steps_total: self.plan.steps.len(),
            duration: started.elapsed(),
            reload: None,
        }
    }

    /// The reload stage. When contact is lost after the signal, one new
    /// connection finds out what the host serves, so the report says it;
    /// returns the outcome and the new connection, if one was made.
    async fn reload_stage<T, F>(
        &self,
        connection: &T,
        reconnect: &mut Option<impl FnOnce() -> F>,
        stage: &ReloadPlan,
        vars: &Vars,
    ) -> (ReloadOutcome, Option<T>)
    where
        T: Connection,
        F: Future<Output = Result<T, TransportError>>,
    {
        let mut outcome = self.reload(connection, stage, vars, false).await;
        if outcome.proof != Some(Proof::Contact) {
            return (outcome, None);
        }
        let Some(reconnect) = reconnect.take() else {
            return (outcome, None);
        };
        let fresh = match reconnect().await {
            Ok(fresh) => fresh,
            Err(error) => {
                let said = outcome.message.unwrap_or_default();
                outcome.message = Some(format!("{said}; reconnecting failed: {error}"));
                return (outcome, None);
            }
        };
        let Ok(spec) = self.render_reload(stage, vars) else {
            return (outcome, Some(fresh));
        };
        let lost = "contact was lost after the signal; on a new connection";
        let found = match reload::find_out(&fresh, &spec, &outcome.report).await {
            Ok(report) => ReloadOutcome {
                message: Some(format!("{lost}, the new release serves")),
                ..ReloadOutcome::ok(report)
            },
            Err(failure) => ReloadOutcome::failed(
                failure.proof,
                self.mask_reload(stage, vars, &format!("{lost}: {}", failure.message)),
                failure.report,
            ),
        };
        self.emit(Event::ReloadFinished {
            host: self.name().to_string(),
            rollback: false,
            outcome: found.clone(),
        });
        (found, Some(fresh))
    }

    /// The reload stage (or, after a rollback, the restore), with its events.
    async fn reload<T: Connection>(
        &self,
        connection: &T,
        stage: &ReloadPlan,
        vars: &crate::inventory::Vars,
        rollback: bool,
    ) -> ReloadOutcome {
        let host = self.name().to_string();
        self.emit(Event::ReloadStarted {
            host: host.clone(),
            rollback,
        });
        let outcome = match self.render_reload(stage, vars) {
            Err(error) => {
                ReloadOutcome::failed(Proof::Master, error.to_string(), ReloadReport::default())
            }
            Ok(mut spec) => {
                // Ctrl-C ends the wait for the reload's proofs (the host then
                // rolls back); a restore after a rollback is waited for.
                if !rollback {
                    spec.validate.cancel = Some(self.cancel.clone());
                }
                let result = match (&stage.place, rollback) {
                    (None, _) => reload::check_serving(connection, &spec).await,
                    (Some(_), false) => reload::reload(connection, &spec).await,
                    (Some(_), true) => reload::restore(connection, &spec).await,
                };
                match result {
                    Ok(report) => ReloadOutcome::ok(report),
                    Err(failure) => ReloadOutcome::failed(
                        failure.proof,
                        self.mask_reload(stage, vars, &failure.message),
                        failure.report,
                    ),
                }
            }
        };
        self.emit(Event::ReloadFinished {
            host,
            rollback,
            outcome: outcome.clone(),
        });
        outcome
    }

    /// The steps after a proven reload (pruning old releases); a failure
    /// shows as that step's failure and leaves the host done.
    async fn finish<T: Connection>(&self, connection: &T, vars: &Vars) {
        let total = self.plan.finish.len();
        for (index, step) in self.plan.finish.iter().enumerate() {
            self.run_step(connection, step, index, total, vars, false)
                .await;
        }
    }

    /// Runs every rollback step, even after one fails; true if all succeeded.
    async fn roll_back<T: Connection>(
        &self,
        connection: &T,
        vars: &crate::inventory::Vars,
    ) -> bool {
        let total = self.plan.rollback.len();
        let mut all_ok = true;
        for (index, step) in self.plan.rollback.iter().enumerate() {
            if step.when.skips(self.index) {
                self.emit_skipped(index, step, true);
                continue;
            }
            let result = self
                .run_step(connection, step, index, total, vars, true)
                .await
                .0;
            all_ok &= result.ok || result.ignored;
        }
        all_ok
    }

    /// A step's name as herd prints it: a secret written in it is masked.
    fn shown_name(&self, step: &StepPlan) -> String {
        self.plan.renderer.secrets().mask_name(&step.name)
    }

    /// `vars` (the host's variables, captures included) as herd shows
    /// them: a value the plan masks is shown masked, and a captured output
    /// as herd printed it (secrets in it masked).
    fn shown(&self, vars: &Vars) -> Vars {
        let host = &self.plan.hosts[self.index];
        let captured = self.captured.lock().map(|c| c.clone()).unwrap_or_default();
        vars.iter()
            .map(|(name, value)| {
                let shown = match (captured.get(name), host.shown_vars.get(name)) {
                    (Some(shown), _) => shown.clone(),
                    (None, Some(shown)) if host.vars.get(name) == Some(value) => shown.clone(),
                    _ => value.clone(),
                };
                (name.clone(), shown)
            })
            .collect()
    }

    /// Whether `step` captures into a variable named in `herd_secret_vars`.
    fn captures_secret(&self, step: &StepPlan) -> bool {
        let names = &self.plan.hosts[self.index].secret_names;
        step.capture
            .as_ref()
            .is_some_and(|name| names.contains(name))
    }

    /// The reload stage for this host, masking in what it quotes of the
    /// host's output what its templates were given made from secrets.
    fn render_reload(
        &self,
        stage: &ReloadPlan,
        vars: &Vars,
    ) -> Result<reload::ReloadSpec, crate::plan::reload::RenderError> {
        let mut spec = stage.render(&self.plan.renderer, vars)?;
        spec.mask.uses = stage.secret_uses(&self.plan.renderer, vars, &self.shown(vars));
        Ok(spec)
    }

    /// A message of the reload stage, as herd may print it: the templates
    /// it quotes (the health check's URL) in their display form, and what
    /// the stage's commands were given made from secrets masked.
    fn mask_reload(&self, stage: &ReloadPlan, vars: &Vars, message: &str) -> String {
        stage.shown_message(&self.plan.renderer, vars, &self.shown(vars), message)
    }

    async fn run_step<T: Connection>(
        &self,
        connection: &T,
        step: &StepPlan,
        index: usize,
        total: usize,
        vars: &crate::inventory::Vars,
        rollback: bool,
    ) -> (StepResult, String) {
        let host = self.name().to_string();
        let secrets = self.plan.renderer.secrets();
        self.emit(Event::StepStarted {
            host: host.clone(),
            step: index + 1,
            of: total,
            name: self.shown_name(step),
            rollback,
        });
        let started = Instant::now();
        let mut result = StepResult {
            ok: false,
            ignored: false,
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            duration: Default::default(),
            transfer: None,
        };
        // The values the step was given made from secrets, masked in
        // whatever it prints, whatever their length.
        let mut uses = step.secret_uses(&self.plan.renderer, vars, &self.shown(vars));
        let rendered = step.render_to_run(&self.plan.renderer, vars, &uses);
        match rendered {
            Err(error) => result.error = Some(error.to_string()),
            Ok(Rendered::Run { command }) if step.local.is_some() => {
                let dir = step.local.as_deref().unwrap_or(std::path::Path::new("."));
                // Ctrl-C stops a local step, except a rollback step: that is
                // what runs after Ctrl-C.
                let cancel = (!rollback).then(|| self.cancel.clone());
                let output = super::local::run(&command, dir, &[], step.timeout, cancel).await;
                result.ok = output.success();
                result.exit_code = output.exit_code;
                result.stdout = String::from_utf8_lossy(&output.stdout).into_owned();
                result.stderr = String::from_utf8_lossy(&output.stderr).into_owned();
                result.error = output.error;
            }
            Ok(Rendered::Run { command }) => match connection.exec(&command, step.timeout).await {
                Ok(output) => {
                    result.ok = output.success();
                    result.exit_code = output.exit_code;
                    result.stdout = String::from_utf8_lossy(&output.stdout).into_owned();
                    result.stderr = String::from_utf8_lossy(&output.stderr).into_owned();
                    result.error = become_refused(output.exit_code, &result.stderr);
                }
                Err(error) => result.error = Some(error.to_string()),
            },
            Ok(Rendered::Upload {
                artifact,
                dest,
                mode,
                become_user,
            }) => {
                let who = super::artifact::As {
                    become_: step.become_,
                    user: become_user.as_deref(),
                };
                let sent = std::sync::atomic::AtomicU64::new(0);
                let shipping = super::artifact::ship(
                    connection,
                    &artifact,
                    &dest,
                    mode,
                    who,
                    step.timeout,
                    &sent,
                );
                let shipped = super::artifact::with_progress(shipping, &sent, |bytes, elapsed| {
                    self.emit(Event::UploadProgress {
                        host: host.clone(),
                        step: index + 1,
                        bytes,
                        total: artifact.size,
                        elapsed,
                    })
                })
                .await;
                match shipped {
                    Ok((transfer, notes)) => {
                        result.ok = true;
                        result.transfer = Some(transfer);
                        result.stderr = notes;
                    }
                    Err(error) => result.error = Some(error),
                }
            }
        }
        result.ignored = !result.ok && step.ignore_errors;
        result.duration = started.elapsed();
        let stdout = std::mem::take(&mut result.stdout);
        if result.ok && self.captures_secret(step) {
            // A capture into a secret name: its value is secret from now
            // on, starting with this step's output, which is that value.
            let value = stdout.trim_end();
            secrets.record(value);
            uses.push(value.to_string());
        }
        let mask = OutputMask {
            secrets: secrets.clone(),
            uses,
        };
        result.stdout = mask.output(&stdout);
        result.stderr = mask.output(&result.stderr);
        result.error = result.error.map(|e| mask.output(&e));
        self.emit(Event::StepFinished {
            host,
            step: index + 1,
            of: total,
            name: self.shown_name(step),
            rollback,
            result: result.clone(),
        });
        (result, stdout)
    }
}

/// Whether the connection still runs a command (a no-op, within 10 s).
async fn answers<T: Connection>(connection: &T) -> bool {
    connection
        .exec(":", std::time::Duration::from_secs(10))
        .await
        .is_ok_and(|output| output.success())
}

/// What to say when `sudo -n` refused to run a command without a password.
pub(super) fn become_refused(exit_code: Option<u32>, stderr: &str) -> Option<String> {
    (exit_code == Some(1) && stderr.contains("sudo: a password is required"))
        .then(|| "become: sudo needs a password on this host (herd uses sudo -n)".to_string())
}

fn failure_of(index: usize, step: &StepPlan, result: &StepResult) -> Failure {
    let reason = match (&result.error, result.exit_code) {
        (Some(error), _) => error.clone(),
        (None, Some(code)) => format!("exited with code {code}"),
        (None, None) => "ended without an exit code".to_string(),
    };
    Failure {
        step: index + 1,
        step_name: step.name.clone(),
        exit_code: result.exit_code,
        reason,
        stderr_tail: tail(&result.stderr, TAIL_LINES),
    }
}
