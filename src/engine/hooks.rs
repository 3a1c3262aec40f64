//! The playbook's hooks, run on the controller around the rollout. Each
//! gets what is happening in `HERD_*` environment variables (documented in
//! the README); its output is masked like a step's and reported in events.
//!
//! A failing `before_batch` hook fails its batch before any of its hosts is
//! touched; a failing `after_batch` hook stops the rollout there; a failing
//! `on_success` or `on_failure` hook is a warning and the run's outcome
//! stands.

use std::time::Instant;

use super::connect::Slot;
use super::{local, untouched, Cancel, Engine, Events};
use crate::event::{Event, HostReport, HostState, RunReport, StepResult};
use crate::plan::hooks::HookKind;
use crate::plan::Plan;
use crate::template::OutputMask;
use crate::transport::Connector;

/// What a hook is told beyond the run's constants.
pub(super) struct HookContext<'a> {
    /// 1-based batch number, for the batch hooks.
    pub batch: Option<usize>,
    /// The hosts of the batch herd works on.
    pub batch_hosts: &'a [String],
    /// Hosts that failed so far.
    pub failed_hosts: &'a [String],
    /// `ok`, `failed`, `aborted` or `interrupted`; not for `before_batch`.
    pub outcome: Option<&'a str>,
}

impl<C: Connector> Engine<C> {
    /// Runs a batch hook for batch `number` (0-based) of hosts `names`.
    pub(super) async fn hook(
        &self,
        kind: HookKind,
        number: usize,
        names: &[String],
        slots: &[Slot<C::Connection>],
    ) -> Result<(), String> {
        if self.plan.hooks.is_none() {
            return Ok(());
        }
        let failed = failed_hosts(
            slots
                .iter()
                .zip(&self.plan.hosts)
                .filter_map(|(slot, host)| slot.report.as_ref().map(|r| (&host.name, &r.state))),
        );
        let outcome = (kind == HookKind::AfterBatch).then(|| {
            let reports = slots.iter().zip(&self.plan.hosts);
            let batch_failed = reports
                .filter(|(_, host)| names.contains(&host.name))
                .any(|(slot, _)| slot.report.as_ref().is_some_and(|r| !r.state.is_done()));
            if self.cancelled() {
                "interrupted"
            } else if batch_failed {
                "failed"
            } else {
                "ok"
            }
        });
        let context = HookContext {
            batch: Some(number + 1),
            batch_hosts: names,
            failed_hosts: &failed,
            outcome,
        };
        // `after_batch` runs also after Ctrl-C: it may put hosts back in service.
        let cancel = (kind == HookKind::BeforeBatch).then(|| self.cancel.clone());
        run_hook(&self.plan, kind, &context, &self.events, cancel).await
    }

    /// The `before_batch` hook of batch `number` failed: none of its hosts
    /// is touched; returns why the rollout stops.
    pub(super) fn hook_failed_batch(
        &self,
        slots: &mut [Slot<C::Connection>],
        batch: &[usize],
        number: usize,
        reason: &str,
    ) -> String {
        for &index in batch {
            if slots[index].report.is_none() {
                let host = self.plan.hosts[index].name.clone();
                slots[index].report = Some(HostReport {
                    state: HostState::Untouched {
                        reason: format!("the before_batch hook failed ({reason}): nothing ran"),
                    },
                    ..untouched(host, self.plan.steps.len(), false, false)
                });
            }
        }
        format!(
            "the before_batch hook of batch {} of {} failed: {reason}",
            number + 1,
            self.plan.batches.len()
        )
    }
}

/// Runs hook `kind` if the plan has it; `Err` is why it failed.
pub(super) async fn run_hook(
    plan: &Plan,
    kind: HookKind,
    context: &HookContext<'_>,
    events: &Events,
    cancel: Option<Cancel>,
) -> Result<(), String> {
    let Some(hooks) = &plan.hooks else {
        return Ok(());
    };
    let Some(command) = hooks.command_of(kind) else {
        return Ok(());
    };
    let hook = kind.key().to_string();
    let _ = events.send(Event::HookStarted {
        hook: hook.clone(),
        batch: context.batch,
    });
    let names = |hosts: &[String]| hosts.join(" ");
    let all: Vec<String> = plan.hosts.iter().map(|h| h.name.clone()).collect();
    let mut env = vec![
        ("HERD_HOOK".to_string(), hook.clone()),
        ("HERD_COMMAND".to_string(), hooks.command.clone()),
        ("HERD_PLAYBOOK".to_string(), hooks.playbook.clone()),
        ("HERD_HOSTS".to_string(), names(&all)),
        ("HERD_BATCHES".to_string(), plan.batches.len().to_string()),
        ("HERD_FAILED_HOSTS".to_string(), names(context.failed_hosts)),
    ];
    if let Some(batch) = context.batch {
        env.push(("HERD_BATCH".to_string(), batch.to_string()));
        env.push(("HERD_BATCH_HOSTS".to_string(), names(context.batch_hosts)));
    }
    if let Some(outcome) = context.outcome {
        env.push(("HERD_OUTCOME".to_string(), outcome.to_string()));
    }
    let started = Instant::now();
    let output = local::run(command, &hooks.dir, &env, hooks.timeout, cancel).await;
    let mask = OutputMask {
        secrets: plan.renderer.secrets().clone(),
        uses: Vec::new(),
    };
    let ok = output.success();
    let reason = output.reason();
    let warning_only = matches!(kind, HookKind::OnSuccess | HookKind::OnFailure);
    let result = StepResult {
        ok,
        ignored: !ok && warning_only,
        exit_code: output.exit_code,
        stdout: mask.output(&String::from_utf8_lossy(&output.stdout)),
        stderr: mask.output(&String::from_utf8_lossy(&output.stderr)),
        error: output.error.map(|e| mask.output(&e)),
        duration: started.elapsed(),
        transfer: None,
    };
    let _ = events.send(Event::HookFinished {
        hook,
        batch: context.batch,
        result,
    });
    if ok {
        Ok(())
    } else {
        Err(mask.output(&reason))
    }
}

/// Runs `on_success` or `on_failure` as the run ends; a failure of either
/// is a warning (its event), never a change to the report.
pub(super) async fn run_final(plan: &Plan, report: &RunReport, events: &Events) {
    let outcome = outcome_of(report);
    let kind = if outcome == "ok" {
        HookKind::OnSuccess
    } else {
        HookKind::OnFailure
    };
    let failed = failed_hosts(report.hosts.iter().map(|h| (&h.host, &h.state)));
    let context = HookContext {
        batch: None,
        batch_hosts: &[],
        failed_hosts: &failed,
        outcome: Some(outcome),
    };
    // Ctrl-C has already been pressed when the outcome is `interrupted`:
    // the hook still runs, bounded by its timeout.
    let _ = run_hook(plan, kind, &context, events, None).await;
}

/// `HERD_OUTCOME` at the end of a run.
pub(super) fn outcome_of(report: &RunReport) -> &'static str {
    if report.interrupted {
        "interrupted"
    } else if report.aborted.is_some() || !report.lock_held.is_empty() {
        "aborted"
    } else if report.all_done() {
        "ok"
    } else {
        "failed"
    }
}

/// The hosts that failed: neither done, nor left untouched, nor stopped by Ctrl-C.
pub(super) fn failed_hosts<'a>(
    states: impl Iterator<Item = (&'a String, &'a HostState)>,
) -> Vec<String> {
    states
        .filter(|(_, state)| {
            !matches!(
                state,
                HostState::Done | HostState::Untouched { .. } | HostState::Interrupted { .. }
            )
        })
        .map(|(name, _)| name.clone())
        .collect()
}
