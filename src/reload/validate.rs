//! Proving a reload worked, by looking at the host until the proofs hold or
//! the deadline passes: the same master (pid and start time), every old
//! worker gone, as many new workers as before, no churn for the settle
//! period; then the health check and `validate.run`.

use std::time::Duration;

use tokio::time::Instant;

use super::container;
use super::discover::{self, Master};
use super::server::Upgrade;
use super::signal;
use super::snapshot::{WaitFor, WAIT_INTERVAL};
use super::{
    boot, fail, http, snapshot, snapshot_after, Proof, ReloadFailure, ReloadReport, ReloadSpec,
    DEFAULT_SETTLE,
};
use crate::template::{Cut, OutputMask};
use crate::transport::Connection;

/// Watches the worker set of `pid` until it is complete and has not changed
/// for the settle period. `replaced` are workers that must all be gone.
struct Settling {
    since: Option<(Instant, Vec<u32>)>,
}

impl Settling {
    /// True once `workers` is complete and unchanged for `settle`.
    fn observe(&mut self, workers: &[u32], complete: bool, settle: Duration, now: Instant) -> bool {
        if !complete {
            self.since = None;
            return false;
        }
        match &self.since {
            Some((_, seen)) if seen.as_slice() == workers => {}
            _ => self.since = Some((now, workers.to_vec())),
        }
        self.since
            .as_ref()
            .is_some_and(|(at, _)| now.duration_since(*at) >= settle)
    }
}

/// How far a worker set got in proving it booted: the workers proven, and
/// whether the proof could not be read (the settle period then stands in
/// for it). Shared by every path that waits for new workers.
struct BootCheck {
    booted: Vec<u32>,
    unproven: bool,
}

impl BootCheck {
    fn new(spec: &ReloadSpec) -> Self {
        BootCheck {
            booted: Vec::new(),
            unproven: spec.server.boot_proof.is_none(),
        }
    }

    /// Whether `workers` of `master`, a complete set, proved they booted
    /// (waiting on the host for them); `Err(worker)` when one died first.
    async fn ready<T: Connection>(
        &mut self,
        connection: &T,
        spec: &ReloadSpec,
        master: u32,
        workers: &[u32],
        deadline: Instant,
    ) -> Result<bool, u32> {
        if !self.unproven && self.booted != workers {
            match wait_for_boot(connection, spec, master, workers, deadline).await {
                BootWait::Booted => self.booted = workers.to_vec(),
                BootWait::Unproven => self.unproven = true,
                BootWait::Waiting => {}
                BootWait::Dead(worker) => return Err(worker),
            }
        }
        Ok(self.unproven || self.booted == workers)
    }

    /// How long the proven set must then stay unchanged: `settle` when set,
    /// else nothing once proven, [`DEFAULT_SETTLE`] where it cannot be.
    fn settle(&self, spec: &ReloadSpec) -> Duration {
        match (self.unproven, spec.validate.settle) {
            (_, Some(settle)) => settle,
            (true, None) => DEFAULT_SETTLE,
            (false, None) => Duration::ZERO,
        }
    }
}

/// After HUP: same master, old workers gone, the same number of new ones,
/// each proven booted (where the server has a boot proof), then settled.
pub(super) async fn after_hup<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    master: &Master,
    report: &mut ReloadReport,
) -> Result<(), ReloadFailure> {
    let signalled = Instant::now();
    let deadline = signalled + spec.validate.timeout;
    let wanted = master.workers.len().max(1);
    let mut settling = Settling { since: None };
    let mut boot = BootCheck::new(spec);
    loop {
        let looked = Instant::now();
        // Until the new workers are all there, the host waits for them itself
        // and answers as soon as they are: no round trip per poll.
        let wait = settling.since.is_none().then(|| WaitFor {
            pid: master.pid,
            old: master.workers.clone(),
            wanted,
            looks: looks_until(deadline, spec),
        });
        let snapshot = snapshot_after(connection, spec, wait.as_ref())
            .await
            .map_err(|e| fail(Proof::SameMaster, e.to_string(), report))?;
        let current = snapshot.processes.get(&master.pid);
        let same = current.is_some_and(|p| p.start_time == master.start_time && !p.is_zombie());
        if !same {
            return Err(fail(
                Proof::SameMaster,
                format!(
                    "the master {} exited after {} (a release that fails to boot makes {} exit): the host is DOWN",
                    master.pid, spec.signal.name, spec.server.display
                ),
                report,
            ));
        }
        let workers = discover::workers_of(spec.server, &snapshot, master.pid);
        let old_left: Vec<u32> = workers
            .iter()
            .copied()
            .filter(|w| master.workers.contains(w))
            .collect();
        report.new_workers = workers
            .iter()
            .copied()
            .filter(|w| !master.workers.contains(w))
            .collect();
        // At least as many as before: a master whose workers crash-looped
        // (a restore after a broken release) may have shown fewer then.
        let complete = old_left.is_empty() && report.new_workers.len() >= wanted;
        let ready = if complete {
            match boot
                .ready(connection, spec, master.pid, &report.new_workers, deadline)
                .await
            {
                Ok(ready) => ready,
                // The next snapshot tells a master that exited with it
                // (the host waited for that) from one that did not.
                Err(worker) => {
                    let snapshot = snapshot_after(connection, spec, None).await.ok();
                    let master_left = snapshot.as_ref().is_some_and(|s| {
                        s.processes
                            .get(&master.pid)
                            .is_some_and(|p| p.start_time == master.start_time && !p.is_zombie())
                    });
                    let message = if master_left {
                        format!("the new worker {worker} exited before it booted (does the new release boot?)")
                    } else {
                        format!(
                            "the master {} exited after {} (its new worker {worker} exited before it booted: a release that fails to boot makes {} exit): the host is DOWN",
                            master.pid, spec.signal.name, spec.server.display
                        )
                    };
                    let proof = if master_left {
                        Proof::Workers
                    } else {
                        Proof::SameMaster
                    };
                    return Err(fail(proof, message, report));
                }
            }
        } else {
            false
        };
        let settle = boot.settle(spec);
        let now = Instant::now();
        if settling.observe(&report.new_workers, ready, settle, now) {
            return Ok(());
        }
        // A server that says what keeping every old worker means (nginx
        // rejecting the reload) has said it once it started none by now.
        let kept_all = report.new_workers.is_empty() && old_left.len() == master.workers.len();
        let rejected = spec.server.kept_old_workers.is_some()
            && kept_all
            && now.duration_since(signalled) >= KEPT_OLD_WORKERS
            && now < deadline;
        if rejected {
            return Err(fail(
                Proof::Workers,
                format!(
                    "no new worker within {}s: the master kept its old workers {old_left:?} and started none: {}",
                    KEPT_OLD_WORKERS.as_secs(),
                    spec.server.kept_old_workers.unwrap_or_default()
                ),
                report,
            ));
        }
        if now >= deadline {
            let why = if old_left.len() == master.workers.len() && report.new_workers.is_empty() {
                let meaning = spec
                    .server
                    .kept_old_workers
                    .map_or(String::new(), |m| format!(": {m}"));
                format!("the master kept its old workers {old_left:?} and started none{meaning}")
            } else if !old_left.is_empty() {
                format!("old workers {old_left:?} still alive")
            } else if report.new_workers.len() < wanted {
                format!("{} of {wanted} new workers", report.new_workers.len())
            } else if !ready {
                format!(
                    "new workers {:?} did not prove they booted (proof: {})",
                    report.new_workers,
                    spec.server
                        .boot_proof
                        .as_ref()
                        .map_or(String::new(), |proof| proof.describe())
                )
            } else {
                "workers kept changing (churn: new workers dying and being replaced)".to_string()
            };
            return Err(fail(
                Proof::Workers,
                format!(
                    "workers not replaced within {}s: {why}",
                    spec.validate.timeout.as_secs()
                ),
                report,
            ));
        }
        // While settling, look every poll; a wait that ended at once (no
        // children list on this kernel, a worker not yet named as one) must
        // not turn into a busy loop either.
        let pause = if settling.since.is_some() {
            spec.validate.poll
        } else {
            spec.validate.poll.min(2 * WAIT_INTERVAL)
        };
        let pause = pause.saturating_sub(now.duration_since(looked));
        if let Err(why) = spec.validate.pause(pause).await {
            return Err(fail(
                Proof::Workers,
                format!("workers not replaced: {why}"),
                report,
            ));
        }
    }
}

/// How long a server with [`super::server::AppServer::kept_old_workers`]
/// gets to start a first new worker (nginx starts them within milliseconds,
/// or retries a busy address for 2.5s before it gives up).
const KEPT_OLD_WORKERS: std::time::Duration = std::time::Duration::from_secs(5);

/// How a wait for new workers to boot ended.
enum BootWait {
    /// Every worker proved it booted.
    Booted,
    /// The proof cannot be read (on this host, for one of the workers).
    Unproven,
    /// Some had not booted yet when the wait ended.
    Waiting,
    /// This worker exited before it booted.
    Dead(u32),
}

/// Waits on the host until `workers` proved they booted, one of them died,
/// or the wait's looks ran out.
async fn wait_for_boot<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    master: u32,
    workers: &[u32],
    deadline: Instant,
) -> BootWait {
    let Some(proof) = &spec.server.boot_proof else {
        return BootWait::Unproven;
    };
    let script = proof.script(master, workers, looks_until(deadline, spec));
    let command = if spec.reads_as_become() {
        spec.wrap(&script)
    } else {
        script
    };
    let states = match connection.exec(&command, spec.command_timeout).await {
        Ok(output) if output.success() => boot::parse(&String::from_utf8_lossy(&output.stdout)),
        // A host that cannot run the wait falls back on the settle period.
        _ => return BootWait::Unproven,
    };
    if let Some(dead) = workers
        .iter()
        .find(|w| states.get(w) == Some(&boot::Boot::Dead))
    {
        return BootWait::Dead(*dead);
    }
    let all = |state| workers.iter().all(|w| states.get(w) == Some(&state));
    if all(boot::Boot::Booted) {
        BootWait::Booted
    } else if workers
        .iter()
        .any(|w| matches!(states.get(w), None | Some(boot::Boot::Unproven)))
    {
        BootWait::Unproven
    } else {
        BootWait::Waiting
    }
}

/// How many looks a wait on the host may take: up to the deadline, and
/// well within the limit on one command.
fn looks_until(deadline: Instant, spec: &ReloadSpec) -> u32 {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .min(spec.command_timeout / 2)
        .min(std::time::Duration::from_secs(5));
    (left.as_millis() / WAIT_INTERVAL.as_millis()).max(1) as u32
}

/// After an upgrade signal (USR2): a new master (a child of the old one)
/// with a full set of workers, then the upgrade's `retire` signal to the
/// old master, then the new master alone and promoted.
pub(super) async fn usr2<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    upgrade: &Upgrade,
    old: &Master,
    report: &mut ReloadReport,
) -> Result<(), ReloadFailure> {
    let deadline = Instant::now() + spec.validate.timeout;
    let wanted = old.workers.len().max(1);
    let mut settling = Settling { since: None };
    let mut boot = BootCheck::new(spec);
    // The last new master seen, ended if the wait for it fails.
    let mut seen: Option<Master> = None;
    // The new master: a Gunicorn child of the old one that is not one of its workers.
    let new_master = loop {
        let snapshot = snapshot(connection, spec)
            .await
            .map_err(|e| fail(Proof::SameMaster, e.to_string(), report))?;
        let child = snapshot.processes.values().find(|p| {
            p.ppid == old.pid
                && !old.workers.contains(&p.pid)
                && !p.is_zombie()
                && spec.server.runs(&p.cmdline)
                && !discover::workers_of(spec.server, &snapshot, p.pid).is_empty()
        });
        if let Some(child) = child {
            report.new_master_pid = Some(child.pid);
            report.new_workers = discover::workers_of(spec.server, &snapshot, child.pid);
            let new = Master {
                pid: child.pid,
                start_time: child.start_time,
                cmdline: child.cmdline.clone(),
                workers: report.new_workers.clone(),
            };
            seen = Some(new.clone());
            let ready = if report.new_workers.len() >= wanted {
                match boot
                    .ready(connection, spec, new.pid, &new.workers, deadline)
                    .await
                {
                    Ok(ready) => ready,
                    Err(worker) => {
                        let ended = end_new_master(connection, spec, &new, report).await;
                        return Err(fail(
                            Proof::Workers,
                            format!(
                                "the new master {}'s worker {worker} exited before it booted (does the new release boot?); the old master {} still serves{ended}",
                                new.pid, old.pid
                            ),
                            report,
                        ));
                    }
                }
            } else {
                false
            };
            // Read after the boot wait, which may have lasted: the settle
            // period starts once the workers proved they booted.
            if settling.observe(&new.workers, ready, boot.settle(spec), Instant::now()) {
                break new.pid;
            }
        } else if !is_alive(&snapshot, old) {
            return Err(fail(
                Proof::SameMaster,
                format!("the master {} exited after {}", old.pid, spec.signal.name),
                report,
            ));
        }
        // Past the deadline, or stopped by Ctrl-C: a new master seen is
        // ended, and the old one serves on.
        let given_up = if Instant::now() >= deadline {
            Some(format!(
                "no new master with {wanted} workers within {}s after {} (does the new release boot?)",
                spec.validate.timeout.as_secs(),
                spec.signal.name,
            ))
        } else {
            let paused = spec.validate.pause(spec.validate.poll).await;
            paused
                .err()
                .map(|why| format!("no new master yet after {}: {why}", spec.signal.name))
        };
        if let Some(why) = given_up {
            let ended = match &seen {
                Some(new) => end_new_master(connection, spec, new, report).await,
                None => String::new(),
            };
            return Err(fail(
                Proof::Workers,
                format!("{why}; the old master {} still serves{ended}", old.pid),
                report,
            ));
        }
    };
    // The old master may have exited meanwhile; TERM is then not sent, and
    // the new master takes over all the same.
    let retire = upgrade.retire;
    signal::send(connection, spec, retire, old, report).await?;
    loop {
        let snapshot = snapshot(connection, spec)
            .await
            .map_err(|e| fail(Proof::SameMaster, e.to_string(), report))?;
        let old_gone = !is_alive(&snapshot, old)
            && old
                .workers
                .iter()
                .all(|w| !snapshot.processes.contains_key(w));
        let Some(new) = snapshot
            .processes
            .get(&new_master)
            .filter(|p| !p.is_zombie())
        else {
            return Err(fail(
                Proof::SameMaster,
                format!("the new master {new_master} exited"),
                report,
            ));
        };
        // Promotion: the new master is no longer the old one's child and,
        // with a pidfile, the pidfile names it (Gunicorn renames PIDFILE.2
        // to PIDFILE once its parent is gone; Unicorn wrote it at once).
        let promoted = new.ppid != old.pid
            && match spec.place.pidfile() {
                Some(_) => {
                    snapshot.pidfile.as_deref().map(str::trim)
                        == Some(new_master.to_string().as_str())
                }
                None => true,
            };
        if old_gone && promoted {
            report.new_workers = discover::workers_of(spec.server, &snapshot, new_master);
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fail(
                Proof::Workers,
                if old_gone {
                    format!("the new master {new_master} was not promoted (pidfile not taken over)")
                } else {
                    format!("the old master {} did not exit after {retire}", old.pid)
                },
                report,
            ));
        }
        tokio::time::sleep(spec.validate.poll).await;
    }
}

/// How long a failed USR2's new master is given to exit after its TERM.
const NEW_MASTER_EXIT: std::time::Duration = std::time::Duration::from_secs(15);

/// After a failed USR2, while the old master still serves: TERM to the new
/// master (checked by its start time), then a wait for it to exit, so that
/// the failed release does not keep serving beside the old one, and a
/// rollback's USR2 (which Gunicorn ignores while a child master exists)
/// does not adopt it. Says what became of it, for the failure's message.
async fn end_new_master<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    new: &Master,
    report: &mut ReloadReport,
) -> String {
    match signal::send(connection, spec, "TERM", new, report).await {
        Ok(signal::Outcome::Sent) => {}
        Ok(signal::Outcome::Gone) => return format!("; the new master {} had exited", new.pid),
        _ => {
            return format!(
                "; the new master {} could not be sent TERM: end it by hand",
                new.pid
            )
        }
    }
    let until = Instant::now() + NEW_MASTER_EXIT;
    loop {
        if let Ok(snapshot) = snapshot(connection, spec).await {
            if !is_alive(&snapshot, new) {
                return format!("; the new master {} was sent TERM and exited", new.pid);
            }
        }
        if Instant::now() >= until {
            return format!(
                "; the new master {} was sent TERM and still runs after {}s",
                new.pid,
                NEW_MASTER_EXIT.as_secs()
            );
        }
        tokio::time::sleep(spec.validate.poll).await;
    }
}

/// After the signal: the container is the one discovery saw, not restarted
/// meanwhile (its start time and restart count are unchanged).
pub(super) async fn container_kept<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    name: &str,
    before: &container::Seen,
    report: &mut ReloadReport,
) -> Result<(), ReloadFailure> {
    let snapshot = snapshot(connection, spec)
        .await
        .map_err(|e| fail(Proof::SameMaster, e.to_string(), report))?;
    let answer = snapshot
        .container
        .as_deref()
        .map_or(container::Answer::NoEngine, container::parse);
    let now = match answer {
        container::Answer::Seen(seen) => Some(seen),
        container::Answer::Failed {
            exit_code, said, ..
        } if !said.to_lowercase().contains("no such") => {
            return Err(fail(
                Proof::SameMaster,
                format!(
                    "after the signal, the engine could not be asked about the container {name} (exit code {}): {}",
                    exit_code.map_or("none".to_string(), |c| c.to_string()),
                    crate::shell::text_tail(&spec.mask.output(&said), 3)
                ),
                report,
            ))
        }
        _ => None,
    };
    match now {
        Some(now)
            if now.running
                && now.started_at == before.started_at
                && now.restarts == before.restarts =>
        {
            Ok(())
        }
        Some(now) => Err(fail(
            Proof::SameMaster,
            format!(
                "the container {name} was restarted during the reload (started at {} then {}, restarts {} then {}, running: {})",
                before.started_at, now.started_at, before.restarts, now.restarts, now.running
            ),
            report,
        )),
        None => Err(fail(
            Proof::SameMaster,
            format!("the container {name} is gone after the signal"),
            report,
        )),
    }
}

/// Whether the proven master still runs: its pid, with its start time.
fn is_alive(snapshot: &super::Snapshot, master: &Master) -> bool {
    snapshot
        .processes
        .get(&master.pid)
        .is_some_and(|p| p.start_time == master.start_time && !p.is_zombie())
}

/// After `reload.start`: a master with workers, settled.
pub(super) async fn master_appears<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    report: &mut ReloadReport,
) -> Result<Master, ReloadFailure> {
    let deadline = Instant::now() + spec.validate.timeout;
    let mut settling = Settling { since: None };
    let mut boot = BootCheck::new(spec);
    let mut last;
    loop {
        let now = Instant::now();
        let found = snapshot(connection, spec)
            .await
            .map_err(|e| fail(Proof::Start, e.to_string(), report))
            .map(|s| {
                discover::discover(&s, spec.server, &spec.place, spec.delivery, &spec.mask)
                    .map(|found| found.master)
            });
        match found? {
            Ok(master) => {
                let ready = if master.workers.is_empty() {
                    false
                } else {
                    match boot
                        .ready(connection, spec, master.pid, &master.workers, deadline)
                        .await
                    {
                        Ok(ready) => ready,
                        // The host waited for the master to exit with its
                        // worker (what Gunicorn does when a worker cannot
                        // boot); one that did not replaces it: watch again.
                        Err(worker) => {
                            let alive = snapshot(connection, spec)
                                .await
                                .is_ok_and(|s| is_alive(&s, &master));
                            if !alive {
                                report.master_pid = Some(master.pid);
                                return Err(fail(
                                    Proof::Start,
                                    format!(
                                        "reload.start ran but the master {} exited after its worker {worker} exited before it booted (does the release boot?): the host is DOWN",
                                        master.pid
                                    ),
                                    report,
                                ));
                            }
                            boot = BootCheck::new(spec);
                            false
                        }
                    }
                };
                // Read after the boot wait, which may have lasted.
                if settling.observe(&master.workers, ready, boot.settle(spec), Instant::now()) {
                    return Ok(master);
                }
                last = format!(
                    "master {} has {} worker(s)",
                    master.pid,
                    master.workers.len()
                );
            }
            Err(error) => last = error.to_string(),
        }
        if now >= deadline {
            return Err(fail(
                Proof::Start,
                format!(
                    "reload.start ran but no master serves within {}s ({last}): the host is DOWN",
                    spec.validate.timeout.as_secs()
                ),
                report,
            ));
        }
        tokio::time::sleep(spec.validate.poll).await;
    }
}

/// The health check (retried until the deadline) and `validate.run`.
pub(super) async fn serving<T: Connection>(
    connection: &T,
    spec: &ReloadSpec,
    report: &ReloadReport,
) -> Result<(), ReloadFailure> {
    let deadline = Instant::now() + spec.validate.timeout;
    if let Some(check) = &spec.validate.http {
        let url =
            http::parse_url(&check.url).map_err(|e| fail(Proof::Http, e.to_string(), report))?;
        loop {
            // Each try within what is left of the timeout (a second at
            // least), and given up at once on Ctrl-C: its tunnel is a
            // channel of its own, which nothing else shares.
            let left = deadline.saturating_duration_since(Instant::now());
            let limit = spec
                .command_timeout
                .min(left.max(std::time::Duration::from_secs(1)));
            let attempt = async {
                match connection.tunnel(&url.host, url.port, limit).await {
                    Err(error) => Err(Unhealthy::Tunnel(error)),
                    Ok(stream) => http::get(stream, &url, limit, &spec.mask)
                        .await
                        .map_err(Unhealthy::from),
                }
                .and_then(|response| judge(check, &response, &spec.mask).map_err(Unhealthy::from))
            };
            let verdict = match spec.validate.unless_stopped(attempt).await {
                Ok(verdict) => verdict,
                Err(why) => {
                    return Err(fail(Proof::Http, format!("{}: {why}", check.url), report));
                }
            };
            match verdict {
                Ok(()) => break,
                Err(problem) if Instant::now() >= deadline => {
                    return Err(fail(
                        Proof::Http,
                        format!("{}: {problem}", check.url),
                        report,
                    ));
                }
                Err(_) => {
                    if let Err(why) = spec.validate.pause(spec.validate.poll).await {
                        return Err(fail(Proof::Http, format!("{}: {why}", check.url), report));
                    }
                }
            }
        }
    }
    if let Some(command) = &spec.validate.run {
        let output = connection
            .exec(&spec.wrap(command), spec.command_timeout)
            .await
            .map_err(|e| fail(Proof::Run, format!("validate.run: {e}"), report))?;
        if !output.success() {
            return Err(fail(
                Proof::Run,
                format!(
                    "validate.run failed (exit code {}): {}",
                    output
                        .exit_code
                        .map_or("none".to_string(), |c| c.to_string()),
                    crate::shell::text_tail(
                        &spec.mask.output(&String::from_utf8_lossy(&output.stderr)),
                        5
                    )
                ),
                report,
            ));
        }
    }
    Ok(())
}

/// Why the health check did not pass (this time).
#[derive(Debug, thiserror::Error)]
enum Unhealthy {
    #[error("{0}")]
    Tunnel(crate::transport::TransportError),
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error(transparent)]
    Verdict(#[from] Verdict),
}

/// Why a health check's response does not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Verdict {
    #[error("status {got} (expected {wanted})")]
    Status { got: u16, wanted: u16 },
    #[error("the response does not contain `{wanted}` (the new release is not served): `{seen}`")]
    Missing { wanted: String, seen: String },
}

fn judge(
    check: &super::HttpCheck,
    response: &http::Response,
    mask: &OutputMask,
) -> Result<(), Verdict> {
    if response.status != check.status {
        return Err(Verdict::Status {
            got: response.status,
            wanted: check.status,
        });
    }
    if let Some(wanted) = &check.contains {
        if !response.body.contains(wanted.as_str()) {
            return Err(Verdict::Missing {
                wanted: wanted.clone(),
                // On one line: the body is the app's, and may hold newlines
                // or escapes that would start a line of herd's log.
                seen: crate::shell::one_line(&mask.cut(response.body.trim(), Cut::Head(120))),
            });
        }
    }
    Ok(())
}
