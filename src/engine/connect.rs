//! Opening every host's connection up front, and taking and giving back the
//! deploy lock on all of them (once per lock file: hosts that are one
//! machine and account share theirs).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::sync::Semaphore;

use super::lock::{self, Attempt, LockError, LockKey};
use super::{conflict, Engine, LockSettings};
use crate::event::{Event, HostReport, HostState, LockConflict};
use crate::transport::{Connection, Connector};

/// What is known about each host while the run goes on.
pub(super) struct Slot<T> {
    pub connection: Option<Arc<T>>,
    pub report: Option<HostReport>,
    /// The first try at the deploy lock, made as soon as the host connected
    /// (by the first host of those sharing one lock file).
    pub first_lock: Option<LockAttempt>,
}

type LockAttempt = Result<Attempt, LockError>;

/// Why the run could not hold every lock it needs.
pub(super) enum LockFailure {
    /// Other runs hold these.
    Held(Vec<LockConflict>),
    /// These hosts' lock files could not be tried at all: (host index, why).
    Broken(Vec<(usize, String)>),
}

/// How long to wait between two rounds of lock attempts.
const LOCK_RETRY: Duration = Duration::from_millis(500);

impl<C: Connector> Engine<C> {
    /// Opens and authenticates every host's connection, bounded by the
    /// handshakes in flight, and tries the deploy lock on each as soon as it
    /// is up; unreachable hosts get their report now.
    pub(super) async fn connect_all(&self) -> Vec<Slot<C::Connection>> {
        let handshakes = Semaphore::new(self.settings.handshakes.max(1));
        let claimed: Mutex<HashSet<LockKey>> = Mutex::new(HashSet::new());
        let attempts = self.plan.hosts.iter().map(|host| {
            let (handshakes, claimed) = (&handshakes, &claimed);
            async move {
                let connection = match self.connect_one(host, handshakes).await {
                    Ok(connection) => connection,
                    Err(unreachable) => return unreachable,
                };
                let first = claimed
                    .lock()
                    .map(|mut keys| keys.insert(LockKey::new(&host.target, &host.vars)))
                    .unwrap_or(true);
                let first_lock = match &self.settings.lock {
                    Some(settings) if first => {
                        Some(self.try_lock(&connection, &host.vars, settings).await)
                    }
                    _ => None,
                };
                Slot {
                    connection: Some(Arc::new(connection)),
                    report: None,
                    first_lock,
                }
            }
        });
        join_all(attempts).await
    }

    /// `herd exec`: each host runs its command as soon as it is connected,
    /// instead of waiting for the whole fleet (there is no lock to take and
    /// no batch to hold back). Returns every host's slot, its report made.
    pub(super) async fn connect_and_run(&self) -> Vec<Slot<C::Connection>> {
        let handshakes = Semaphore::new(self.settings.handshakes.max(1));
        let forks = Arc::new(Semaphore::new(self.settings.forks.max(1)));
        let once = Arc::new(super::once::OnceGates::new(self.plan.steps.len(), None));
        let runs = self.plan.hosts.iter().enumerate().map(|(index, host)| {
            let handshakes = &handshakes;
            let (forks, once) = (forks.clone(), once.clone());
            async move {
                let connection = match self.connect_one(host, handshakes).await {
                    Ok(connection) => Arc::new(connection),
                    Err(unreachable) => return unreachable,
                };
                let fork = forks.acquire_owned().await.ok();
                // Boxed: a host waiting for its fork holds a small future,
                // not the state of a whole run.
                let report = Box::pin(
                    self.host_run(index, once)
                        .run(connection.as_ref(), || async {
                            self.connector.connect(&host.target).await
                        }),
                )
                .await;
                self.emit(Event::HostFinished {
                    report: report.clone(),
                });
                // Nothing else goes over this connection (no lock to give
                // back, the host's audit line written by its run): closing
                // it now bounds the sessions held at once by the handshakes
                // and runs in flight, not by the fleet.
                drop(fork);
                connection.close().await;
                Slot {
                    connection: None,
                    report: Some(report),
                    first_lock: None,
                }
            }
        });
        join_all(runs).await
    }

    /// Connects `host` once one of the `handshakes` is free, and says so;
    /// the slot of an unreachable host (its report sent) otherwise. Boxed:
    /// a host waiting for its turn holds a small future, not a handshake's.
    async fn connect_one(
        &self,
        host: &crate::plan::PlannedHost,
        handshakes: &Semaphore,
    ) -> Result<C::Connection, Slot<C::Connection>> {
        let permit = handshakes.acquire().await.ok();
        let started = Instant::now();
        let result = Box::pin(self.connector.connect(&host.target)).await;
        drop(permit);
        let elapsed = started.elapsed();
        match result {
            Ok(connection) => {
                self.emit(Event::HostConnected {
                    host: host.name.clone(),
                    elapsed,
                });
                Ok(connection)
            }
            Err(error) => Err(self.unreachable(&host.name, &error, elapsed)),
        }
    }

    /// The slot of a host that could not be reached, its report sent.
    fn unreachable(
        &self,
        host: &str,
        error: &crate::transport::TransportError,
        elapsed: Duration,
    ) -> Slot<C::Connection> {
        let reason = error.to_string();
        self.emit(Event::HostUnreachable {
            host: host.to_string(),
            reason: reason.clone(),
        });
        let report = HostReport {
            host: host.to_string(),
            state: HostState::Unreachable { reason },
            steps_ok: 0,
            steps_skipped: 0,
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
    /// gives back what it took and tries again until `wait` is over; when one
    /// cannot be tried, gives back what it took and stops. The first round is
    /// the one `connect_all` made. Returns the hosts whose lock this run took,
    /// one per lock file.
    pub(super) async fn lock_all(
        &self,
        slots: &mut [Slot<C::Connection>],
        settings: &LockSettings,
    ) -> Result<Vec<usize>, LockFailure> {
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
            let mut broken = Vec::new();
            for (index, attempt) in round {
                let host = &self.plan.hosts[index].name;
                match attempt {
                    Ok(Attempt::Taken) => taken.push(index),
                    Ok(Attempt::Held(holder)) => held.push(conflict(host, holder)),
                    Err(error) => broken.push((index, error.to_string())),
                }
            }
            if held.is_empty() && broken.is_empty() {
                return Ok(taken);
            }
            self.unlock_all(slots, &taken, settings).await;
            if !broken.is_empty() {
                // Waiting does not create a directory or grant a permission.
                return Err(LockFailure::Broken(broken));
            }
            let now = tokio::time::Instant::now();
            if now + LOCK_RETRY > deadline || self.cancelled() {
                for c in &held {
                    self.emit(Event::LockHeld {
                        host: c.host.clone(),
                        holder: c.holder.clone(),
                        waiting: false,
                    });
                }
                return Err(LockFailure::Held(held));
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
            let attempts = self.lock_takers(slots).into_iter().map(|index| {
                let connection = slots[index].connection.clone();
                async move {
                    let connection = connection?;
                    let attempt = self
                        .try_lock(connection.as_ref(), &self.plan.hosts[index].vars, settings)
                        .await;
                    Some((index, attempt))
                }
            });
            round = join_all(attempts).await.into_iter().flatten().collect();
        }
    }

    /// The connected hosts that take the lock for all: the first of each
    /// group sharing one lock file.
    fn lock_takers(&self, slots: &[Slot<C::Connection>]) -> Vec<usize> {
        let mut seen = HashSet::new();
        (0..slots.len())
            .filter(|&index| slots[index].connection.is_some())
            .filter(|&index| {
                let host = &self.plan.hosts[index];
                seen.insert(LockKey::new(&host.target, &host.vars))
            })
            .collect()
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
            let host = &self.plan.hosts[index];
            let path = lock::lock_path(&host.vars);
            Some(async move {
                let mut result = lock::unlock(
                    connection.as_ref(),
                    &path,
                    &settings.owner,
                    settings.timeout,
                )
                .await;
                if result.is_err() {
                    // The host's connection died during the run (contact
                    // lost after a reload signal): one new connection to
                    // give the lock back.
                    result = match self.connector.connect(&host.target).await {
                        Ok(fresh) => {
                            let released =
                                lock::unlock(&fresh, &path, &settings.owner, settings.timeout)
                                    .await;
                            fresh.close().await;
                            released
                        }
                        Err(error) => Err(error),
                    };
                }
                if let Err(error) = result {
                    self.emit(Event::LockLeft {
                        host: host.name.clone(),
                        path,
                        reason: error.to_string(),
                    });
                }
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
