//! The rollout engine: connect every host up front, take the deploy lock,
//! run the plan's batches in order (each host's steps over its one
//! connection), and decide from per-host outcomes whether the rollout goes on.
//!
//! The engine only emits [`Event`]s; it never prints. Per-host failures are
//! values ([`HostState`]); nothing that happens on a host can stop the
//! engine from reporting every other host.

mod artifact;
pub mod audit;
mod connect;
mod hooks;
mod host;
pub mod local;
pub mod lock;
mod once;
mod upload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::event::{Event, HostReport, HostState, LockConflict, RunReport};
use crate::plan::hooks::HookKind;
use crate::plan::Plan;
use crate::transport::Connector;
use connect::{LockFailure, Slot};
use lock::LockOwner;

/// How hard the engine drives the fleet.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Hosts worked on at once.
    pub forks: usize,
    /// SSH handshakes in flight at once (sshd drops connections past MaxStartups).
    pub handshakes: usize,
    /// A rollout refuses to start when more hosts are unreachable than
    /// `max_fail` allows; `herd exec` runs on whatever it reached.
    pub require_reachable: bool,
    /// The deploy lock, for `herd run`; `herd exec` takes none.
    pub lock: Option<LockSettings>,
    /// The audit trail, for `herd run` and `herd reload`; `herd exec`
    /// writes none.
    pub audit: Option<audit::AuditSettings>,
}

#[derive(Debug, Clone)]
pub struct LockSettings {
    pub owner: LockOwner,
    /// How long to wait for a held lock before giving up (exit 3).
    pub wait: Duration,
    /// Limit on each lock command.
    pub timeout: Duration,
}

/// Where events go.
pub type Events = mpsc::UnboundedSender<Event>;

/// Cancellation: `true` once the run was asked to stop (Ctrl-C).
pub type Cancel = watch::Receiver<bool>;

pub struct Engine<C: Connector> {
    plan: Arc<Plan>,
    connector: Arc<C>,
    settings: EngineSettings,
    events: Events,
    cancel: Cancel,
}

impl<C: Connector> Engine<C> {
    pub fn new(
        plan: Arc<Plan>,
        connector: Arc<C>,
        settings: EngineSettings,
        events: Events,
        cancel: Cancel,
    ) -> Self {
        Engine {
            plan,
            connector,
            settings,
            events,
            cancel,
        }
    }

    fn emit(&self, event: Event) {
        // A reporter that went away must not stop the rollout.
        let _ = self.events.send(event);
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    pub async fn run(self) -> RunReport {
        let started = Instant::now();
        let plan = self.plan.clone();
        self.emit(Event::RunStarted {
            // `herd exec`'s title is its command, which may quote a secret.
            title: plan.renderer.secrets().mask(&plan.title),
            hosts: plan.hosts.iter().map(|h| h.name.clone()).collect(),
            batches: plan
                .batches
                .iter()
                .map(|b| b.iter().map(|&i| plan.hosts[i].name.clone()).collect())
                .collect(),
        });

        // `herd exec` (no lock, one batch, no fleet-wide condition to meet
        // first) starts each host as soon as it is up. A rollout does not:
        // no batch starts before every host is connected and locked.
        let streaming = self.settings.lock.is_none()
            && !self.settings.require_reachable
            && plan.batches.len() == 1;
        if streaming {
            self.emit(Event::BatchStarted {
                batch: 1,
                of: 1,
                hosts: plan.hosts.iter().map(|h| h.name.clone()).collect(),
            });
        }
        let mut slots = if streaming {
            self.connect_and_run().await
        } else {
            self.connect_all().await
        };
        let unreachable = slots
            .iter()
            .filter(|s| {
                s.report
                    .as_ref()
                    .is_some_and(|r| matches!(r.state, HostState::Unreachable { .. }))
            })
            .count();
        let mut aborted = None;
        if self.settings.require_reachable && unreachable > plan.max_fail {
            aborted = Some(format!(
                "{unreachable} host(s) unreachable, more than max_fail ({}) allows: the rollout did not start",
                plan.max_fail
            ));
        }

        let mut conflicts = Vec::new();
        let mut locked = Vec::new();
        match (&aborted, &self.settings.lock) {
            (None, Some(settings)) => match self.lock_all(&mut slots, settings).await {
                Ok(taken) => locked = taken,
                Err(LockFailure::Held(held)) => conflicts = held,
                Err(LockFailure::Broken(broken)) => {
                    aborted = Some(self.lock_broken(&mut slots, broken));
                }
            },
            (Some(_), Some(settings)) => self.release_first_locks(&mut slots, settings).await,
            _ => {}
        }

        if aborted.is_none() && conflicts.is_empty() && !streaming {
            aborted = self.run_batches(&mut slots, unreachable).await;
        }
        if let Some(reason) = &aborted {
            self.emit(Event::RolloutAborted {
                reason: reason.clone(),
            });
        }

        if let Some(audit) = &self.settings.audit {
            self.audit_untouched(&slots, audit, !conflicts.is_empty())
                .await;
        }
        if let Some(settings) = &self.settings.lock {
            self.unlock_all(&slots, &locked, settings).await;
        }
        connect::close_all(slots.iter().filter_map(|s| s.connection.clone())).await;
        let interrupted = self.cancelled();
        let hosts = slots
            .into_iter()
            .zip(plan.hosts.iter())
            .map(|(slot, host)| {
                slot.report.unwrap_or_else(|| {
                    untouched(
                        host.name.clone(),
                        plan.steps.len(),
                        interrupted,
                        !conflicts.is_empty(),
                    )
                })
            })
            .collect();
        let mut report = RunReport {
            hosts,
            aborted,
            interrupted,
            lock_held: conflicts,
            duration: started.elapsed(),
        };
        if plan.hooks.is_some() {
            hooks::run_final(&plan, &report, &self.events).await;
            report.duration = started.elapsed();
        }
        self.emit(Event::RunFinished {
            report: report.clone(),
        });
        report
    }

    /// Runs the batches in order; returns why the rollout stopped early, if it did.
    async fn run_batches(
        &self,
        slots: &mut [Slot<C::Connection>],
        unreachable: usize,
    ) -> Option<String> {
        let plan = &self.plan;
        let mut failed = unreachable;
        // Once steps run on the first reachable host of the first batch.
        let runner = plan
            .batches
            .iter()
            .flatten()
            .copied()
            .find(|&i| slots[i].connection.is_some());
        let once = Arc::new(once::OnceGates::new(plan.steps.len(), runner));
        let total_batches = plan.batches.len();
        for (number, batch) in plan.batches.iter().enumerate() {
            if self.cancelled() {
                return None;
            }
            if number > 0 && !plan.pause.is_zero() && self.pause(plan.pause).await {
                return None;
            }
            let members: Vec<(usize, Arc<C::Connection>)> = batch
                .iter()
                .filter_map(|&i| slots[i].connection.clone().map(|c| (i, c)))
                .collect();
            let names: Vec<String> = members
                .iter()
                .map(|(i, _)| plan.hosts[*i].name.clone())
                .collect();
            self.emit(Event::BatchStarted {
                batch: number + 1,
                of: total_batches,
                hosts: names.clone(),
            });
            if let Err(reason) = self
                .hook(HookKind::BeforeBatch, number, &names, slots)
                .await
            {
                let stopped = if self.cancelled() {
                    None
                } else {
                    Some(self.hook_failed_batch(slots, batch, number, &reason))
                };
                // It undoes what before_batch did (re-adds the hosts to the
                // load balancer), also when that failed part-way.
                let _ = self.hook(HookKind::AfterBatch, number, &names, slots).await;
                return stopped;
            }
            let forks = Arc::new(Semaphore::new(self.settings.forks.max(1)));
            let runs = members.iter().map(|(index, connection)| {
                let connection = connection.clone();
                let forks = forks.clone();
                let runner = self.host_run(*index, once.clone());
                let connector = self.connector.clone();
                let target = plan.hosts[*index].target.clone();
                // One new connection, for a host that dropped its own after its reload signal.
                let reconnect = move || async move { connector.connect(&target).await };
                async move {
                    let _permit = forks.acquire_owned().await.ok();
                    runner.run(connection.as_ref(), reconnect).await
                }
            });
            let reports = join_all(runs).await;
            for ((index, _), report) in members.iter().zip(reports) {
                if !report.state.is_done() && !matches!(report.state, HostState::Interrupted { .. })
                {
                    failed += 1;
                }
                self.emit(Event::HostFinished {
                    report: report.clone(),
                });
                slots[*index].report = Some(report);
            }
            let after = self.hook(HookKind::AfterBatch, number, &names, slots).await;
            if failed > plan.max_fail && self.settings.require_reachable {
                return Some(format!(
                    "{failed} host(s) failed, more than max_fail ({}) allows: batch {} of {total_batches} failed",
                    plan.max_fail,
                    number + 1
                ));
            }
            if let Err(reason) = after {
                return Some(format!(
                    "the after_batch hook of batch {} of {total_batches} failed: {reason}",
                    number + 1
                ));
            }
        }
        None
    }

    /// The run of one host's share of the plan.
    fn host_run(&self, index: usize, once: Arc<once::OnceGates>) -> host::HostRun {
        host::HostRun {
            plan: self.plan.clone(),
            index,
            events: self.events.clone(),
            cancel: self.cancel.clone(),
            once,
            captured: Default::default(),
            audit: self.settings.audit.clone(),
        }
    }

    /// Records on each host whose lock file could not be tried why, and
    /// returns why the rollout does not start.
    fn lock_broken(
        &self,
        slots: &mut [Slot<C::Connection>],
        broken: Vec<(usize, String)>,
    ) -> String {
        let names: Vec<&str> = broken
            .iter()
            .map(|(index, _)| self.plan.hosts[*index].name.as_str())
            .collect();
        let reason = match broken.as_slice() {
            [(_, error)] => format!("{}: {error}: the rollout did not start", names.join(", ")),
            _ => format!(
                "cannot take the deploy lock on {} hosts ({}): the rollout did not start",
                names.len(),
                names.join(", ")
            ),
        };
        let mut errors: Vec<Option<String>> = vec![None; slots.len()];
        for (index, error) in broken {
            errors[index] = Some(error);
        }
        for ((slot, host), error) in slots.iter_mut().zip(&self.plan.hosts).zip(errors) {
            if slot.report.is_some() {
                continue;
            }
            let reason = match error {
                Some(error) => format!("{error}: nothing ran"),
                None => "the deploy lock could not be taken on every host: nothing ran".to_string(),
            };
            slot.report = Some(HostReport {
                state: HostState::Untouched { reason },
                ..untouched(host.name.clone(), self.plan.steps.len(), false, false)
            });
        }
        reason
    }

    /// Writes the audit line of each host that was reached but whose
    /// batch never ran (hosts that ran wrote theirs as they ended).
    async fn audit_untouched(
        &self,
        slots: &[Slot<C::Connection>],
        audit: &audit::AuditSettings,
        lock_held: bool,
    ) {
        let interrupted = self.cancelled();
        let writes = slots.iter().enumerate().filter_map(|(index, slot)| {
            let connection = slot.connection.clone()?;
            let state = match &slot.report {
                Some(report) => report.state.clone(),
                None => {
                    untouched(
                        self.plan.hosts[index].name.clone(),
                        0,
                        interrupted,
                        lock_held,
                    )
                    .state
                }
            };
            // A host that ran has its line already.
            if slot.report.as_ref().is_some_and(|r| {
                !matches!(
                    r.state,
                    HostState::Untouched { .. } | HostState::Unreachable { .. }
                )
            }) {
                return None;
            }
            Some(async move {
                write_audit(
                    connection.as_ref(),
                    &self.plan,
                    index,
                    &state,
                    audit,
                    &self.events,
                )
                .await;
            })
        });
        join_all(writes).await;
    }

    /// Sleeps between batches; returns true if the run was cancelled meanwhile.
    async fn pause(&self, pause: Duration) -> bool {
        let mut cancel = self.cancel.clone();
        tokio::select! {
            _ = tokio::time::sleep(pause) => false,
            _ = cancel.wait_for(|c| *c) => true,
        }
    }
}

fn untouched(host: String, steps_total: usize, interrupted: bool, lock_held: bool) -> HostReport {
    let reason = if lock_held {
        "the deploy lock is held elsewhere: nothing ran"
    } else if interrupted {
        "the run was interrupted before this host's batch"
    } else {
        "the rollout stopped before this host's batch"
    };
    HostReport {
        host,
        state: HostState::Untouched {
            reason: reason.to_string(),
        },
        steps_ok: 0,
        steps_skipped: 0,
        steps_total,
        duration: Duration::ZERO,
        reload: None,
    }
}

/// Appends the host's audit line; a failure is a warning event, nothing more.
pub(super) async fn write_audit<T: crate::transport::Connection>(
    connection: &T,
    plan: &Plan,
    index: usize,
    state: &HostState,
    settings: &audit::AuditSettings,
    events: &Events,
) {
    let host = &plan.hosts[index];
    let path = audit::audit_path(&host.vars);
    let line = audit::line(settings, &host.vars, state, plan.renderer.secrets());
    if let Err(reason) = audit::append(connection, &path, &line, settings.timeout).await {
        let _ = events.send(Event::AuditFailed {
            host: host.name.clone(),
            path,
            reason: plan.renderer.secrets().mask(&reason.to_string()),
        });
    }
}

/// Records a lock conflict for the report.
fn conflict(host: &str, holder: String) -> LockConflict {
    LockConflict {
        host: host.to_string(),
        holder,
    }
}

#[cfg(test)]
mod tests;
