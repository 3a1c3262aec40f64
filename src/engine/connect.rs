//! Opening every host's connection up front, and taking and giving back the
//! deploy lock on all of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::sync::Semaphore;

use super::lock::{self, Attempt};
use super::{conflict, Engine, LockSettings};
use crate::event::{Event, HostReport, HostState, LockConflict};
use crate::transport::{Connection, Connector, TransportError};

/// What is known about each host while the run goes on.
pub(super) struct Slot<T> {
    pub connection: Option<Arc<T>>,
    pub report: Option<HostReport>,
    /// The first try at the deploy lock, made as soon as the host connected.
    pub first_lock: Option<LockAttempt>,
}

type LockAttempt = Result<Attempt, TransportError>;

/// How long to wait between two rounds of lock attempts.
const LOCK_RETRY: Duration = Duration::from_millis(500);

impl<C: Connector> Engine<C> {
    /// Opens and authenticates every host's connection, bounded by the
    /// handshakes in flight, and tries the deploy lock on each as soon as it
    /// is up; unreachable hosts get their report now.
    pub(super) async fn connect_all(&self) -> Vec<Slot<C::Connection>> {
        let handshakes = Arc::new(Semaphore::new(self.settings.handshakes.max(1)));
        let attempts = self.plan.hosts.iter().map(|host| {
            let handshakes = handshakes.clone();
            async move {
                let permit = handshakes.acquire_owned().await.ok();
                let started = Instant::now();
                let result = self.connector.connect(&host.target).await;
                drop(permit);
                let elapsed = started.elapsed();
                match result {
                    Ok(connection) => {
                        self.emit(Event::HostConnected {
                            host: host.name.clone(),
                            elapsed,
                        });
                        let first_lock = match &self.settings.lock {
                            Some(settings) => {
                                Some(self.try_lock(&connection, &host.vars, settings).await)
                            }
                            None => None,
                        };
                        Slot {
                            connection: Some(Arc::new(connection)),
                            report: None,
                            first_lock,
                        }
                    }
                    Err(error) => {
                        let reason = error.to_string();
                        self.emit(Event::HostUnreachable {
                            host: host.name.clone(),
                            reason: reason.clone(),
                        });
                        let report = HostReport {
                            host: host.name.clone(),
                            state: HostState::Unreachable { reason },
                            steps_ok: 0,
                            steps_total: self.plan.steps.len(),
                            duration: elapsed,
                            reload: None,
                        };
                        self.emit(Event::HostFinished {
                            report: report.clone(),
                        });
                        Slot {
                            connection: None,
                            report: Some(report),
                            first_lock: None,
                        }
                    }
                }
            }
        });
        join_all(attempts).await
    }

    async fn try_lock(
        &self,
        connection: &C::Connection,
        vars: &crate::inventory::Vars,
        settings: &LockSettings,
    ) -> LockAttempt {
        lock::try_lock(
            connection,
            &lock::lock_path(vars),
            &settings.owner,
            settings.timeout,
        )
        .await
    }

    /// Holds the lock on every connected host, or on none: when one is held,
    /// gives back what it took and tries again until `wait` is over. The
    /// first round is the one `connect_all` made.
    pub(super) async fn lock_all(
        &self,
        slots: &mut [Slot<C::Connection>],
        settings: &LockSettings,
    ) -> Result<Vec<usize>, Vec<LockConflict>> {
        let deadline = tokio::time::Instant::now() + settings.wait;
        let mut announced = false;
        let mut round: Vec<(usize, LockAttempt)> = slots
            .iter_mut()
            .enumerate()
            .filter_map(|(index, slot)| slot.first_lock.take().map(|attempt| (index, attempt)))
            .collect();
        loop {
            let mut taken = Vec::new();
            let mut held = Vec::new();
            for (index, attempt) in round {
                let host = &self.plan.hosts[index].name;
                match attempt {
                    Ok(Attempt::Taken) => taken.push(index),
                    Ok(Attempt::Held(holder)) => held.push(conflict(host, holder)),
                    Err(error) => {
                        held.push(conflict(host, format!("cannot take the lock: {error}")))
                    }
                }
            }
            if held.is_empty() {
                return Ok(taken);
            }
            self.unlock_all(slots, &taken, settings).await;
            let now = tokio::time::Instant::now();
            if now + LOCK_RETRY > deadline || self.cancelled() {
                for c in &held {
                    self.emit(Event::LockHeld {
                        host: c.host.clone(),
                        holder: c.holder.clone(),
                        waiting: false,
                    });
                }
                return Err(held);
            }
            if !announced {
                announced = true;
                if let Some(first) = held.first() {
                    self.emit(Event::LockHeld {
                        host: first.host.clone(),
                        holder: first.holder.clone(),
                        waiting: true,
                    });
                }
            }
            let mut cancel = self.cancel.clone();
            tokio::select! {
                _ = tokio::time::sleep(LOCK_RETRY) => {}
                _ = cancel.wait_for(|c| *c) => {}
            }
            let attempts = slots.iter().enumerate().filter_map(|(index, slot)| {
                let connection = slot.connection.clone()?;
                Some(async move {
                    let attempt = self
                        .try_lock(connection.as_ref(), &self.plan.hosts[index].vars, settings)
                        .await;
                    (index, attempt)
                })
            });
            round = join_all(attempts).await;
        }
    }

    /// Gives back the locks `connect_all` took, when the rollout will not start.
    pub(super) async fn release_first_locks(
        &self,
        slots: &mut [Slot<C::Connection>],
        settings: &LockSettings,
    ) {
        let taken: Vec<usize> = slots
            .iter_mut()
            .enumerate()
            .filter_map(|(index, slot)| match slot.first_lock.take() {
                Some(Ok(Attempt::Taken)) => Some(index),
                _ => None,
            })
            .collect();
        self.unlock_all(slots, &taken, settings).await;
    }

    /// Gives back the lock on the hosts in `taken`.
    pub(super) async fn unlock_all(
        &self,
        slots: &[Slot<C::Connection>],
        taken: &[usize],
        settings: &LockSettings,
    ) {
        let releases = taken.iter().filter_map(|&index| {
            let connection = slots[index].connection.clone()?;
            let path = lock::lock_path(&self.plan.hosts[index].vars);
            Some(async move {
                lock::unlock(
                    connection.as_ref(),
                    &path,
                    &settings.owner,
                    settings.timeout,
                )
                .await
            })
        });
        join_all(releases).await;
    }
}

/// Closes every connection of a finished run.
pub(super) async fn close_all<T: Connection>(connections: impl IntoIterator<Item = Arc<T>>) {
    join_all(
        connections
            .into_iter()
            .map(|c| async move { c.close().await }),
    )
    .await;
}
