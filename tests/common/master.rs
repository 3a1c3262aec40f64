//! A host's Gunicorn as its pidfile and /proc show it, before and after a
//! reload: what "same master, every worker replaced" means, checked on the
//! processes themselves.

use std::time::Duration;

use super::{alive, children, proc_stat, read_pid, wait_until, LabHost, ProcStat, Run};

/// Every lab host runs this many workers.
pub const WORKERS: usize = 2;

/// A host's Gunicorn as its pidfile and /proc show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub master: ProcStat,
    pub workers: Vec<u32>,
}

/// The master the pidfile names, once it has its full set of workers.
pub fn generation(host: &LabHost) -> Generation {
    let mut seen = None;
    let settled = wait_until(Duration::from_secs(20), || {
        let Some(pid) = read_pid(&host.pidfile) else {
            return false;
        };
        let Some(master) = proc_stat(pid).filter(|p| p.state != 'Z') else {
            return false;
        };
        let workers = children(pid);
        let full = workers.len() == WORKERS;
        seen = Some(Generation { master, workers });
        full
    });
    assert!(
        settled,
        "{}: no master with {WORKERS} workers: {seen:?}",
        host.name
    );
    seen.unwrap()
}

/// Asserts `host` kept its master (pid and start time) while every worker
/// was replaced by a new one, `WORKERS` in all; returns the new workers.
pub fn assert_workers_replaced(host: &LabHost, before: &Generation, run: &Run) -> Vec<u32> {
    let pid = before.master.pid;
    let now = proc_stat(pid);
    assert!(
        now.is_some_and(|p| p.start_time == before.master.start_time && p.state != 'Z'),
        "{}: master {pid} is gone or was replaced: {now:?} (was {:?})\n{run}",
        host.name,
        before.master
    );
    assert_eq!(
        read_pid(&host.pidfile),
        Some(pid),
        "{}: pidfile\n{run}",
        host.name
    );
    let workers = children(pid);
    assert_eq!(
        workers.len(),
        WORKERS,
        "{}: master {pid} has workers {workers:?}\n{run}",
        host.name
    );
    for old in &before.workers {
        assert!(
            !alive(*old),
            "{}: old worker {old} is still alive\n{run}",
            host.name
        );
        assert!(
            !workers.contains(old),
            "{}: worker {old} kept\n{run}",
            host.name
        );
    }
    workers
}

/// Asserts `host` is exactly as it was: same master, same workers.
pub fn assert_untouched(host: &LabHost, before: &Generation, run: &Run) {
    let now = proc_stat(before.master.pid);
    assert!(
        now.is_some_and(|p| p.start_time == before.master.start_time && p.state != 'Z'),
        "{}: master {} is gone or was replaced: {now:?}\n{run}",
        host.name,
        before.master.pid
    );
    assert_eq!(
        children(before.master.pid),
        before.workers,
        "{}: the workers of master {} changed (it was signalled)\n{run}",
        host.name,
        before.master.pid
    );
}
