//! The deploy lock: one `herd run` at a time per host.
//!
//! The lock is a file on the host (`herd_lock_file`, default
//! `~/.herd-deploy.lock`) created with the shell's noclobber, so creating it
//! is atomic. It records who holds it (user, controller, pid, playbook, since)
//! and a run id; only the run whose id it holds removes it. A run takes every
//! targeted host's lock or none: when one is held it gives back what it took
//! and waits, so two runs locking in different orders cannot deadlock.
//!
//! Several inventory hosts can be one machine and account (two app servers
//! on one box): they share one lock file, which a run takes once ([`LockKey`])
//! and gives back once. A lock file that already holds this run's id is this
//! run's, whichever host name reached it.

use std::time::Duration;

use serde_json::Value;

use crate::inventory::Vars;
use crate::shell::quote as shell_quote;
use crate::transport::{Connection, Target, TransportError};

/// Exit code of the acquire script when someone else holds the lock.
const HELD: u32 = 75;
/// Exit code of the acquire script when the lock file cannot be created.
const CANNOT_CREATE: u32 = 74;

/// Why the lock could not be tried: not "held", but broken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The shell could not create the file (no such directory, permissions...).
    #[error("cannot create the deploy lock {path}: {reason}")]
    Create { path: String, reason: String },
    #[error("cannot take the deploy lock {path}: {source}")]
    Transport {
        path: String,
        source: TransportError,
    },
}

/// The lock file one host's lock lives in, as a machine sees it: hosts with
/// the same key are the same account on the same machine (reached the same
/// way) and the same file, so they share one lock.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LockKey {
    route: Vec<(String, u16, String)>,
    path: String,
}

impl LockKey {
    pub fn new(target: &Target, vars: &Vars) -> LockKey {
        let mut route = Vec::new();
        let mut hop = Some(target);
        while let Some(t) = hop {
            route.push((t.address.clone(), t.port, t.user.clone()));
            hop = t.jump.as_deref();
        }
        LockKey {
            route,
            path: lock_path(vars),
        }
    }
}

/// Who is taking the lock, written into it.
#[derive(Debug, Clone)]
pub struct LockOwner {
    pub run_id: String,
    pub user: String,
    pub controller: String,
    pub pid: u32,
    /// Which processes `pid` is one of: the boot and the pid namespace
    /// (`BOOT_ID:NAMESPACE`, `?` when unreadable). Two containers, or a
    /// container and its host, may share a hostname, not these.
    pub pids: String,
    pub playbook: String,
    pub since: String,
}

impl LockOwner {
    /// The owner for this process, running `playbook`.
    pub fn current(playbook: &str) -> LockOwner {
        let pid = std::process::id();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        LockOwner {
            run_id: format!("{pid:x}-{nanos:x}"),
            user: os_account(),
            controller: controller_name(),
            pid,
            pids: pid_space(),
            playbook: playbook.to_string(),
            since: now_utc(),
        }
    }

    fn line(&self) -> String {
        format!(
            "run={} user={} controller={} pid={} pids={} since={} playbook={}",
            self.run_id, self.user, self.controller, self.pid, self.pids, self.since, self.playbook
        )
    }
}

/// This process's boot and pid namespace, `BOOT_ID:INODE`: a pid names the
/// same process only under both; `one` on a system without namespaces, `?`
/// when either cannot be read.
fn pid_space() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_string())
        .ok()
        .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace));
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|link| {
            let link = link.to_string_lossy().into_owned();
            link.strip_prefix("pid:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(str::to_string)
        });
    match (boot, namespace) {
        (Some(boot), Some(namespace)) => format!("{boot}:{namespace}"),
        // A controller without pid namespaces (macOS): its pids are its own.
        _ if !std::path::Path::new("/proc/self/ns").exists() => "one".to_string(),
        _ => "?".to_string(),
    }
}

/// The lock file of a host: its `herd_lock_file` variable, or the default.
pub fn lock_path(vars: &Vars) -> String {
    match vars.get("herd_lock_file") {
        Some(Value::String(path)) if !path.is_empty() => path.clone(),
        _ => "~/.herd-deploy.lock".to_string(),
    }
}

/// A path for the shell, keeping a leading `~/` expandable.
pub(crate) fn shell_path(path: &str) -> String {
    match path.strip_prefix("~/") {
        Some(rest) => format!("\"$HOME\"/{}", shell_quote(rest)),
        None => shell_quote(path),
    }
}

/// What trying the lock on one host found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Taken,
    /// Held by someone else: the text they left in the lock file.
    Held(String),
}

/// Tries to take the lock on one host. A lock left by a herd process of this
/// same controller that no longer runs is stale: it is removed and taken.
pub async fn try_lock<T: Connection>(
    connection: &T,
    path: &str,
    owner: &LockOwner,
    timeout: Duration,
) -> Result<Attempt, LockError> {
    let first = create(connection, path, owner, timeout).await?;
    let Attempt::Held(text) = &first else {
        return Ok(first);
    };
    let holder = Holder::parse(text);
    if holder.run == owner.run_id {
        // Another name for a machine this run already locked.
        return Ok(Attempt::Taken);
    }
    if !holder.is_stale_for(owner) {
        let mut said = holder.describe();
        // Written before locks recorded their pid namespace: herd cannot
        // tell it is stale, but can say its pid runs nothing here.
        if holder.pids == "?"
            && holder.run != "?"
            && holder.controller == owner.controller
            && holder.pid.parse::<u32>().is_ok_and(process_is_gone)
        {
            said.push_str(
                "; no process here has that pid, but the lock does not say which pid namespace it is from: if no herd holds it, `herd unlock` removes it",
            );
        }
        return Ok(Attempt::Held(said));
    }
    // A failed removal shows in the create that follows.
    let _ = remove_if_held_by(connection, path, &holder.run, timeout).await;
    match create(connection, path, owner, timeout).await? {
        Attempt::Held(text) => Ok(Attempt::Held(Holder::parse(&text).describe())),
        taken => Ok(taken),
    }
}

/// One atomic attempt: create the file, or report what is in it.
async fn create<T: Connection>(
    connection: &T,
    path: &str,
    owner: &LockOwner,
    timeout: Duration,
) -> Result<Attempt, LockError> {
    // Shell builtins only, but for the first mkdir: a host pays no process
    // for its lock. A create that fails with no file there is not "held":
    // it is tried once more (still noclobber) to let the shell's own error
    // through on stderr.
    let line = shell_quote(&owner.line());
    let script = format!(
        "f={}; case \"$f\" in */*) d=${{f%/*}}; [ -d \"${{d:-/}}\" ] || mkdir -p \"$d\" || exit {CANNOT_CREATE};; esac\n\
         if {{ set -C; printf '%s\\n' {line} > \"$f\"; }} 2>/dev/null; then exit 0; fi\n\
         if [ ! -e \"$f\" ] && [ ! -L \"$f\" ]; then printf '%s\\n' {line} > \"$f\" && exit 0; exit {CANNOT_CREATE}; fi\n\
         [ -f \"$f\" ] || {{ printf '%s\\n' \"$f: not a regular file\" >&2; exit {CANNOT_CREATE}; }}\n\
         while IFS= read -r line || [ -n \"$line\" ]; do printf '%s\\n' \"$line\"; done 2>/dev/null < \"$f\"; exit {HELD}",
        shell_path(path),
    );
    let output = connection
        .exec(&crate::shell::wrap(&script, false, None), timeout)
        .await
        .map_err(|source| LockError::Transport {
            path: path.to_string(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    match output.exit_code {
        Some(0) => Ok(Attempt::Taken),
        Some(HELD) => Ok(Attempt::Held(
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )),
        Some(CANNOT_CREATE) => Err(LockError::Create {
            path: path.to_string(),
            reason: if stderr.is_empty() {
                "the shell gave no reason".to_string()
            } else {
                stderr
            },
        }),
        code => Err(LockError::Create {
            path: path.to_string(),
            reason: format!(
                "exit code {}: {stderr}",
                code.map_or("none".to_string(), |c| c.to_string())
            ),
        }),
    }
}

/// Removes the lock file if it still holds run `run`.
async fn remove_if_held_by<T: Connection>(
    connection: &T,
    path: &str,
    run: &str,
    timeout: Duration,
) -> Result<(), TransportError> {
    let script = format!(
        "f={}; read -r line 2>/dev/null < \"$f\"; case \"$line\" in *{}*) rm -f \"$f\";; esac; exit 0",
        shell_path(path),
        shell_quote(&format!("run={run} "))
    );
    let output = connection
        .exec(&crate::shell::wrap(&script, false, None), timeout)
        .await?;
    match output.exit_code {
        Some(0) => Ok(()),
        code => Err(TransportError::Protocol(format!(
            "removing it ended with exit code {}: {}",
            code.map_or("none".to_string(), |c| c.to_string()),
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

/// The fields of a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    run: String,
    user: String,
    controller: String,
    pid: String,
    pids: String,
    since: String,
    playbook: String,
}

impl Holder {
    fn parse(text: &str) -> Holder {
        let field = |name: &str| {
            text.split_whitespace()
                .find_map(|part| part.strip_prefix(&format!("{name}=")))
                .unwrap_or("?")
                .to_string()
        };
        Holder {
            run: field("run"),
            user: field("user"),
            controller: field("controller"),
            pid: field("pid"),
            pids: field("pids"),
            since: field("since"),
            playbook: text
                .split_once("playbook=")
                .map_or("?".to_string(), |(_, p)| p.trim().to_string()),
        }
    }

    /// Left by a herd of this controller whose process is gone: same host
    /// name, and the same boot and pid namespace, so its pid can be looked
    /// up here (a lock without them, or from a container sharing the host
    /// name, is never taken for stale).
    fn is_stale_for(&self, owner: &LockOwner) -> bool {
        self.controller == owner.controller
            && self.run != "?"
            && self.pids != "?"
            && self.pids == owner.pids
            && self.pid.parse::<u32>().is_ok_and(process_is_gone)
    }

    /// A herd of this controller (same host name, boot and pid namespace)
    /// whose process still runs.
    fn runs_here(&self, owner: &LockOwner) -> bool {
        self.controller == owner.controller
            && self.pids != "?"
            && self.pids == owner.pids
            && self
                .pid
                .parse::<u32>()
                .is_ok_and(|pid| pid > 0 && !process_is_gone(pid) && pid_is_a_process(pid))
    }

    /// `user alice on ci-3 (pid 42), playbook deploy.yml, since 2026-11-25T15:40:00Z`.
    fn describe(&self) -> String {
        if self.run == "?" {
            return "an unknown holder (the lock file is empty or not herd's)".to_string();
        }
        // The lock file is the host's text: one line, no escapes.
        crate::shell::one_line(&format!(
            "user {} on {} (pid {}), playbook {}, since {}",
            self.user, self.controller, self.pid, self.playbook, self.since
        ))
    }
}

/// Removes whatever lock the host has (`herd unlock`, for a lock left by a
/// controller that died); returns who held it, or `None` if nothing did.
pub async fn break_lock<T: Connection>(
    connection: &T,
    path: &str,
    timeout: Duration,
) -> Result<Option<String>, TransportError> {
    let script = format!(
        "f={}; [ -e \"$f\" ] || exit {HELD}; cat \"$f\" 2>/dev/null; rm -f \"$f\"",
        shell_path(path)
    );
    let output = connection
        .exec(&crate::shell::wrap(&script, false, None), timeout)
        .await?;
    match output.exit_code {
        Some(0) => {
            let holder = Holder::parse(&String::from_utf8_lossy(&output.stdout));
            let mut said = holder.describe();
            if holder.runs_here(&LockOwner::current("")) {
                said.push_str(
                    "; that herd still runs on this controller and may go on changing the host",
                );
            }
            Ok(Some(said))
        }
        Some(HELD) => Ok(None),
        _ => Err(TransportError::Protocol(format!(
            "cannot remove the deploy lock {path}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

/// Gives the lock back, only if this run holds it.
pub async fn unlock<T: Connection>(
    connection: &T,
    path: &str,
    owner: &LockOwner,
    timeout: Duration,
) -> Result<(), TransportError> {
    remove_if_held_by(connection, path, &owner.run_id, timeout).await
}

/// Whether `pid` is one process (not a process group `kill` would read it
/// as).
fn pid_is_a_process(pid: u32) -> bool {
    libc::pid_t::try_from(pid).is_ok_and(|pid| pid > 0)
}

/// True when no process has `pid` on this machine. `kill(pid, 0)` asks
/// without sending anything, and works where there is no `/proc` (macOS):
/// ESRCH means gone, EPERM means alive under another account. A pid that
/// `kill` would read as a process group (0, or past `i32::MAX`) is not a
/// process herd wrote, so it is never called gone.
fn process_is_gone(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 performs only the existence and permission checks.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return false;
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// The account this process runs as, from the password database (not
/// `$USER`, which may be unset, or stale after `su`); the numeric id when
/// the database has no name for it.
pub(crate) fn os_account() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let mut buffer = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: every pointer is valid for the call; `buffer.len()` is its size.
        let code = unsafe {
            libc::getpwuid_r(
                uid,
                &mut entry,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut result,
            )
        };
        if code == libc::ERANGE && buffer.len() < 1 << 20 {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if code != 0 || result.is_null() || entry.pw_name.is_null() {
            return uid.to_string();
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside `buffer`.
        let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
        return name.to_string_lossy().into_owned();
    }
}

pub(crate) fn controller_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The current time as RFC 3339 UTC, without a date crate.
pub(crate) fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn holders_are_described() {
        let text = "run=1-2 user=alice controller=ci-3 pid=42 since=2026-11-25T15:40:00Z playbook=play books/deploy.yml\n";
        assert_eq!(
            Holder::parse(text).describe(),
            "user alice on ci-3 (pid 42), playbook play books/deploy.yml, since 2026-11-25T15:40:00Z"
        );
    }

    #[test]
    fn only_dead_processes_of_this_controller_are_stale() {
        let mut owner = LockOwner::current("p.yml");
        owner.controller = "ci-3".to_string();
        owner.pids = "b00t:4026531836".to_string();
        let holder = |controller: &str, pid: u32, pids: &str| {
            Holder::parse(&format!(
                "run=1 user=a controller={controller} pid={pid} {pids}since=x playbook=p"
            ))
        };
        assert!(holder("ci-3", 4294967, "pids=b00t:4026531836 ").is_stale_for(&owner));
        let alive = std::process::id();
        assert!(!holder("ci-3", alive, "pids=b00t:4026531836 ").is_stale_for(&owner));
        assert!(!holder("ci-9", 4294967, "pids=b00t:4026531836 ").is_stale_for(&owner));
        // Another pid namespace or boot with the same host name (a
        // container), or no record of one: the pid cannot be looked up here.
        assert!(!holder("ci-3", 4294967, "pids=b00t:4026532000 ").is_stale_for(&owner));
        assert!(!holder("ci-3", 4294967, "pids=other:4026531836 ").is_stale_for(&owner));
        assert!(!holder("ci-3", 4294967, "").is_stale_for(&owner));
        assert!(pid_space().contains(':'), "{}", pid_space());
    }

    #[test]
    fn only_a_real_pid_that_no_process_has_is_gone() {
        // Alive: this process; pid 1, which may answer EPERM to an unprivileged account.
        assert!(!process_is_gone(std::process::id()));
        assert!(!process_is_gone(1));
        // `kill` would read these as process groups: never "gone".
        assert!(!process_is_gone(0));
        assert!(!process_is_gone(u32::MAX));
        assert!(!process_is_gone(1 << 31));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(process_is_gone(pid));
    }

    #[test]
    fn the_holder_is_the_os_account_not_user() {
        // SAFETY: getpwuid's static entry is read at once.
        let expected = unsafe {
            let entry = libc::getpwuid(libc::geteuid());
            std::ffi::CStr::from_ptr((*entry).pw_name)
                .to_string_lossy()
                .into_owned()
        };
        assert_eq!(os_account(), expected);
        assert_eq!(LockOwner::current("p.yml").user, expected);
    }

    #[test]
    fn home_relative_paths_stay_expandable() {
        assert_eq!(
            shell_path("~/.herd-deploy.lock"),
            "\"$HOME\"/.herd-deploy.lock"
        );
        assert_eq!(shell_path("/srv/a b/lock"), "'/srv/a b/lock'");
    }
}
