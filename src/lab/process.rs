//! Finding and stopping the lab's processes through /proc and signals.
//!
//! A lab process is one whose command line mentions the lab directory (sshd
//! listeners, Gunicorn masters and workers), one started by a session on a lab
//! host (its environment carries that host's `SSH_CONNECTION`), or a
//! descendant of either (sshd session processes, whose titles name neither).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// One line of a /proc snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcEntry {
    pub pid: u32,
    pub ppid: u32,
    pub state: char,
    /// Arguments joined by spaces (NULs replaced).
    pub cmdline: String,
}

/// True if `pid` exists and is not a zombie (a dead process nobody reaped:
/// the machine's init may not reap adopted daemons).
pub fn is_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let exists = unsafe { libc::kill(raw, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && read_entry(pid).is_some_and(|entry| entry.state != 'Z')
}

/// The /proc entry of `pid`, if it still exists.
pub fn read_entry(pid: u32) -> Option<ProcEntry> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (state, ppid) = parse_stat(&stat)?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    Some(ProcEntry {
        pid,
        ppid,
        state,
        cmdline: join_nul(&cmdline),
    })
}

/// State and parent PID from /proc/PID/stat. The command name sits in
/// parentheses and may itself contain spaces and parentheses, so fields are
/// read after the last `)`.
pub fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn join_nul(raw: &[u8]) -> String {
    raw.split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every process visible in /proc.
pub fn snapshot() -> Vec<ProcEntry> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_entry)
        .collect()
}

/// The live children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    // The kernel's list when it has one (CONFIG_PROC_CHILDREN), else a scan.
    let listed = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok();
    let candidates: Vec<u32> = match listed {
        Some(text) => text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
        None => snapshot()
            .into_iter()
            .filter(|e| e.ppid == pid)
            .map(|e| e.pid)
            .collect(),
    };
    candidates
        .into_iter()
        .filter(|child| is_alive(*child))
        .collect()
}

/// The values of `SSH_CONNECTION` in the environment of `pid` (unreadable
/// environments, other users' processes as a plain user, give None).
pub fn ssh_connection(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    raw.split(|b| *b == 0).find_map(|var| {
        let var = String::from_utf8_lossy(var);
        var.strip_prefix("SSH_CONNECTION=").map(str::to_string)
    })
}

/// Picks the lab's processes from a snapshot: those `is_lab` accepts, plus all
/// their descendants, minus `exclude` (this process and its ancestors, whose
/// command lines may well name the lab directory) and zombies.
pub fn select_lab_processes(
    procs: &[ProcEntry],
    is_lab: impl Fn(&ProcEntry) -> bool,
    exclude: &HashSet<u32>,
) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in procs {
        children.entry(entry.ppid).or_default().push(entry.pid);
    }
    let mut chosen: HashSet<u32> = HashSet::new();
    let mut queue: Vec<u32> = procs
        .iter()
        .filter(|entry| !exclude.contains(&entry.pid) && is_lab(entry))
        .map(|entry| entry.pid)
        .collect();
    while let Some(pid) = queue.pop() {
        if exclude.contains(&pid) || !chosen.insert(pid) {
            continue;
        }
        queue.extend(children.get(&pid).into_iter().flatten().copied());
    }
    let zombies: HashSet<u32> = procs
        .iter()
        .filter(|e| e.state == 'Z')
        .map(|e| e.pid)
        .collect();
    let mut pids: Vec<u32> = chosen
        .into_iter()
        .filter(|pid| !zombies.contains(pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// This process and every ancestor up to init.
pub fn self_and_ancestors(procs: &[ProcEntry]) -> HashSet<u32> {
    let parents: HashMap<u32, u32> = procs.iter().map(|e| (e.pid, e.ppid)).collect();
    let mut seen = HashSet::new();
    let mut pid = std::process::id();
    while pid > 1 && seen.insert(pid) {
        match parents.get(&pid) {
            Some(parent) => pid = *parent,
            None => break,
        }
    }
    seen
}

pub fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(raw) = i32::try_from(pid) {
        if raw > 0 {
            // SAFETY: kill with a positive PID signals that one process only.
            unsafe { libc::kill(raw, signal) };
        }
    }
}

/// What [`stop`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Processes that were alive and are gone.
    pub stopped: usize,
    /// Of those, how many needed SIGKILL.
    pub killed: usize,
}

/// TERM each live process in `pids`, wait up to `grace` for them to exit, then
/// KILL what is left.
pub fn stop(pids: &[u32], grace: Duration) -> Stopped {
    let alive: Vec<u32> = pids.iter().copied().filter(|pid| is_alive(*pid)).collect();
    for pid in &alive {
        signal(*pid, libc::SIGTERM);
    }
    let left = wait_gone(&alive, grace);
    for pid in &left {
        signal(*pid, libc::SIGKILL);
    }
    wait_gone(&left, Duration::from_secs(2));
    Stopped {
        stopped: alive.len(),
        killed: left.len(),
    }
}

/// Polls until none of `pids` is alive or `timeout` passes; returns the living.
fn wait_gone(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|pid| is_alive(*pid)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: u32, ppid: u32, cmdline: &str) -> ProcEntry {
        ProcEntry {
            pid,
            ppid,
            state: 'S',
            cmdline: cmdline.into(),
        }
    }

    #[test]
    fn stat_fields_are_read_after_the_last_parenthesis() {
        let stat = "4242 (gunicorn: (master)) S 1 4242 4242 0 -1 4194560";
        assert_eq!(parse_stat(stat), Some(('S', 1)));
        assert_eq!(parse_stat("12 (sleep) Z 7 12"), Some(('Z', 7)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn cmdline_nuls_become_spaces() {
        assert_eq!(
            join_nul(b"/usr/sbin/sshd\0-f\0/tmp/x\0"),
            "/usr/sbin/sshd -f /tmp/x"
        );
    }

    #[test]
    fn selection_takes_matches_and_their_descendants_but_not_excluded_or_zombies() {
        let procs = vec![
            entry(1, 0, "init"),
            entry(10, 1, "/usr/sbin/sshd -f /lab/hosts/host01/sshd_config"),
            entry(11, 10, "sshd: herd-lab [priv]"),
            entry(12, 11, "sshd: herd-lab@notty"),
            entry(13, 12, "sleep 100"),
            ProcEntry {
                state: 'Z',
                ..entry(14, 12, "true")
            },
            entry(
                20,
                1,
                "python gunicorn --chdir /lab/hosts/host01/app/current",
            ),
            entry(
                21,
                20,
                "python gunicorn --chdir /lab/hosts/host01/app/current",
            ),
            entry(30, 1, "/usr/sbin/sshd -f /lab2/hosts/host01/sshd_config"),
            entry(40, 1, "bash"),
            entry(41, 40, "herd lab down --dir /lab/"),
        ];
        let exclude: HashSet<u32> = [41, 40, 1].into();
        let chosen = select_lab_processes(&procs, |e| e.cmdline.contains("/lab/"), &exclude);
        assert_eq!(chosen, vec![10, 11, 12, 13, 20, 21]);
    }
}
