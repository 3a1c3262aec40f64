//! Who logs in to the lab's hosts. A plain user logs in as themselves; root
//! logs in as the unprivileged `herd-lab` account, created on first use,
//! because root's shell start-up files can be slow or noisy. As root the lab
//! also creates `herd-lab-app`, the account an app runs as, and lets
//! `herd-lab` (only) become it with `sudo -n`, so `become_user` is seen
//! working; nobody becomes root.

use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use super::LabError;

pub const LAB_ACCOUNT: &str = "herd-lab";
/// The account `herd-lab` may become (`become_user`) on a lab run as root.
pub const LAB_APP_ACCOUNT: &str = "herd-lab-app";
/// The sudoers rule for it; written only where sudo reads a drop-in folder.
const SUDOERS: &str = "/etc/sudoers.d/herd-lab";

/// Serialises account creation between labs started from one process (tests
/// run in parallel); `useradd` and `usermod` lock /etc/passwd and fail fast.
static ACCOUNT_LOCK: Mutex<()> = Mutex::new(());
/// The same between processes (labs started by several herd processes at once).
const ACCOUNT_LOCK_FILE: &str = "/run/herd-lab-accounts.lock";

#[derive(Clone, Debug)]
pub struct LoginUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// Set when the lab runs as root and processes must drop to this user.
    pub switch_to: bool,
}

pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The account hosts log in as, created if the lab runs as root and it is missing.
pub fn login_user() -> Result<LoginUser, LabError> {
    if !running_as_root() {
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        return lookup_uid(uid).map(|user| LoginUser {
            switch_to: false,
            ..user
        });
    }
    let _guard = ACCOUNT_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let _held = lock_between_processes();
    create_account(LAB_ACCOUNT)?;
    create_account(LAB_APP_ACCOUNT)?;
    allow_becoming_the_app_account()?;
    // A locked account (`!`) cannot log in with UsePAM no; `*` can, by key only.
    if shadow_password(LAB_ACCOUNT).as_deref() != Some("*") {
        run("usermod", &["-p", "*", LAB_ACCOUNT])?;
    }
    let user = lookup_name(LAB_ACCOUNT).ok_or_else(|| LabError::Command {
        command: format!("useradd {LAB_ACCOUNT}"),
        detail: "the account still does not exist".into(),
    })?;
    Ok(LoginUser {
        switch_to: true,
        ..user
    })
}

/// An exclusive lock on [`ACCOUNT_LOCK_FILE`] until the file is dropped;
/// `None` (no lock, creation still retried) where it cannot be opened.
fn lock_between_processes() -> Option<std::fs::File> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(ACCOUNT_LOCK_FILE)
        .ok()?;
    // SAFETY: the descriptor is open for the call; flock has no other preconditions.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0;
    locked.then_some(file)
}

/// Creates `name` with a home of its own, and gives that home back to it
/// if an earlier account of the same name left it owned by another uid.
fn create_account(name: &str) -> Result<(), LabError> {
    if lookup_name(name).is_none() {
        let created = run("useradd", &["--create-home", "--shell", "/bin/sh", name]);
        // Another process may have created it meanwhile; only its absence is an error.
        if let (Err(error), None) = (created, lookup_name(name)) {
            return Err(error);
        }
    }
    let Some(user) = lookup_name(name) else {
        return Ok(());
    };
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(&user.home) {
        Ok(home) if home.uid() != user.uid => {
            std::os::unix::fs::chown(&user.home, Some(user.uid), Some(user.gid)).map_err(|e| {
                LabError::Command {
                    command: format!("chown {} {}", name, user.home.display()),
                    detail: e.to_string(),
                }
            })
        }
        _ => Ok(()),
    }
}

/// `herd-lab ALL=(herd-lab-app) NOPASSWD: ALL`, in a file of its own
/// (mode 0440, as sudo wants), written once.
fn allow_becoming_the_app_account() -> Result<(), LabError> {
    let rule = format!(
        "# herd lab: the login account may become the app account, nothing more\n\
         {LAB_ACCOUNT} ALL=({LAB_APP_ACCOUNT}) NOPASSWD: ALL\n"
    );
    let folder = std::path::Path::new(SUDOERS)
        .parent()
        .unwrap_or(std::path::Path::new("/"));
    if !folder.is_dir() || std::fs::read_to_string(SUDOERS).ok().as_deref() == Some(&rule) {
        return Ok(());
    }
    let failed = |error: std::io::Error| LabError::Command {
        command: format!("writing {SUDOERS}"),
        detail: error.to_string(),
    };
    // Written aside and renamed: sudo never reads half a rule.
    let partial = format!("{SUDOERS}.partial");
    std::fs::write(&partial, &rule).map_err(failed)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o440)).map_err(failed)?;
    std::fs::rename(&partial, SUDOERS).map_err(failed)
}

fn run(program: &str, args: &[&str]) -> Result<(), LabError> {
    let command = format!("{program} {}", args.join(" "));
    // Retried: these tools fail at once when another process holds the passwd lock.
    let mut last = String::new();
    for attempt in 0..5 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let output = Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|error| LabError::Command {
                command: command.clone(),
                detail: error.to_string(),
            })?;
        if output.status.success() {
            return Ok(());
        }
        last = format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Err(LabError::Command {
        command,
        detail: last,
    })
}

/// The password field of `name` in /etc/shadow (readable as root only).
fn shadow_password(name: &str) -> Option<String> {
    let shadow = std::fs::read_to_string("/etc/shadow").ok()?;
    shadow.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(name)).then(|| fields.next().unwrap_or("").to_string())
    })
}

fn lookup_name(name: &str) -> Option<LoginUser> {
    let name = CString::new(name).ok()?;
    lookup(&|entry, buf, len, result| {
        // SAFETY: every pointer is valid for the call; getpwnam_r is re-entrant.
        unsafe { libc::getpwnam_r(name.as_ptr(), entry, buf, len, result) }
    })
}

fn lookup_uid(uid: u32) -> Result<LoginUser, LabError> {
    lookup(&|entry, buf, len, result| {
        // SAFETY: as in lookup_name.
        unsafe { libc::getpwuid_r(uid, entry, buf, len, result) }
    })
    .ok_or_else(|| LabError::Command {
        command: format!("getpwuid({uid})"),
        detail: "the current user has no passwd entry".into(),
    })
}

type PasswdCall<'a> = dyn Fn(*mut libc::passwd, *mut libc::c_char, libc::size_t, *mut *mut libc::passwd) -> libc::c_int
    + 'a;

/// Runs a re-entrant passwd lookup with a buffer of its own and copies the
/// record out.
fn lookup(call: &PasswdCall) -> Option<LoginUser> {
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain old data; zeroed is a valid value to be overwritten.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let status = call(&mut entry, buffer.as_mut_ptr(), buffer.len(), &mut result);
    if status != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success the strings point into `buffer`, alive here, NUL-terminated.
    let text = |field: *const libc::c_char| {
        unsafe { CStr::from_ptr(field) }
            .to_string_lossy()
            .into_owned()
    };
    Some(LoginUser {
        name: text(entry.pw_name),
        uid: entry.pw_uid,
        gid: entry.pw_gid,
        home: PathBuf::from(text(entry.pw_dir)),
        switch_to: false,
    })
}
