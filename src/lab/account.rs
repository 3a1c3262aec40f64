//! Who logs in to the lab's hosts. A plain user logs in as themselves; root
//! logs in as the unprivileged `herd-lab` account, created on first use,
//! because root's shell start-up files can be slow or noisy. As root the lab
//! also creates `herd-lab-app`, the account an app runs as, and lets
//! `herd-lab` (only) become it with `sudo -n`, so `become_user` is seen
//! working; nobody becomes root. A lab with unit hosts also has
//! `herd-lab-deploy`, a least-privilege deploy account: it writes releases
//! through a shared group and may sudo nothing but `systemctl --user reload`
//! of the lab's units (see [`allow_unit_reloads`]).

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::LabError;

pub const LAB_ACCOUNT: &str = "herd-lab";
/// The account `herd-lab` may become (`become_user`) on a lab run as root.
pub const LAB_APP_ACCOUNT: &str = "herd-lab-app";
/// The least-privilege deploy account of a lab with unit hosts.
pub const LAB_DEPLOY_ACCOUNT: &str = "herd-lab-deploy";
/// The sudoers rule for it; written only where sudo reads a drop-in folder.
const SUDOERS: &str = "/etc/sudoers.d/herd-lab";
/// The login account's rule to become itself.
const SUDOERS_SELF: &str = "/etc/sudoers.d/herd-lab-self";
/// Where systemctl is, as the deploy account's sudoers rule names it.
pub const SYSTEMCTL: &str = "/usr/bin/systemctl";

/// Serialises account creation between labs started from one process (tests
/// run in parallel); `useradd` and `usermod` lock /etc/passwd and fail fast.
/// Also held while the shared user manager and its units change.
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
    with_account_lock(|| {
        create_account(LAB_ACCOUNT)?;
        create_account(LAB_APP_ACCOUNT)?;
        allow_becoming_the_app_account()?;
        let_log_in_by_key(LAB_ACCOUNT)?;
        let user = existing(LAB_ACCOUNT)?;
        Ok(LoginUser {
            switch_to: true,
            ..user
        })
    })
}

/// Runs `work` holding the account lock, within this process and between
/// processes.
pub fn with_account_lock<T>(work: impl FnOnce() -> T) -> T {
    let _guard = ACCOUNT_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let _held = lock_between_processes();
    work()
}

/// The app account (created by [`login_user`] as root).
pub fn app_user() -> Result<LoginUser, LabError> {
    existing(LAB_APP_ACCOUNT)
}

/// The deploy account, created if missing, in the login account's group
/// (which owns the app directories, group-writable) and able to log in by
/// key. Call it holding the account lock.
pub fn deploy_user(login: &LoginUser) -> Result<LoginUser, LabError> {
    create_account(LAB_DEPLOY_ACCOUNT)?;
    let group = group_name(login.gid).unwrap_or_else(|| login.name.clone());
    if !in_group(LAB_DEPLOY_ACCOUNT, login.gid) {
        run("usermod", &["-a", "-G", &group, LAB_DEPLOY_ACCOUNT])?;
    }
    let_log_in_by_key(LAB_DEPLOY_ACCOUNT)?;
    existing(LAB_DEPLOY_ACCOUNT)
}

fn existing(name: &str) -> Result<LoginUser, LabError> {
    lookup_name(name).ok_or_else(|| LabError::Command {
        command: format!("useradd {name}"),
        detail: "the account still does not exist".into(),
    })
}

/// A locked account (`!`) cannot log in with UsePAM no; `*` can, by key only.
fn let_log_in_by_key(name: &str) -> Result<(), LabError> {
    if shadow_password(name).as_deref() != Some("*") {
        run("usermod", &["-p", "*", name])?;
    }
    Ok(())
}

/// The per-lab sudoers drop-in of the deploy account, named after the lab's
/// tag (sudo skips drop-ins whose name has a dot).
pub fn deploy_sudoers(tag: &str) -> PathBuf {
    Path::new(SUDOERS).with_file_name(format!("{LAB_DEPLOY_ACCOUNT}-{tag}"))
}

/// The deploy account's only rights: keep `XDG_RUNTIME_DIR` (to reach the
/// app account's user manager) and `systemctl --user reload` of each unit
/// in `units`, as the app account. Checked with `visudo -c` first.
pub fn allow_unit_reloads(tag: &str, units: &[String]) -> Result<(), LabError> {
    let mut rules = format!(
        "# herd lab: the deploy account may reload these units, nothing more\n\
         Defaults:{LAB_DEPLOY_ACCOUNT} env_keep += \"XDG_RUNTIME_DIR\"\n"
    );
    for unit in units {
        rules.push_str(&format!(
            "{LAB_DEPLOY_ACCOUNT} ALL=({LAB_APP_ACCOUNT}) NOPASSWD: {SYSTEMCTL} --user reload {unit}\n"
        ));
    }
    install_sudoers(&deploy_sudoers(tag), &rules)
}

/// Removes the deploy account's drop-in of the lab tagged `tag`, if any.
pub fn forbid_unit_reloads(tag: &str) -> Result<(), LabError> {
    remove_sudoers(&deploy_sudoers(tag))
}

/// The per-lab sudoers drop-in that lets the login account run the lab's
/// container start scripts as root.
fn container_starts_sudoers(tag: &str) -> PathBuf {
    Path::new(SUDOERS).with_file_name(format!("{LAB_ACCOUNT}-starts-{tag}"))
}

/// `herd-lab ALL=(root) NOPASSWD: /bin/sh -c SCRIPT` for each container
/// host's start script: what herd runs for `reload.start` under `become`
/// (`sudo -n -u root -- /bin/sh -c SCRIPT`). No more than Podman as root,
/// which the login account has already.
pub fn allow_container_starts(tag: &str, scripts: &[PathBuf]) -> Result<(), LabError> {
    let mut rules = String::from(
        "# herd lab: the login account may start this lab's containers as root, through their start scripts\n",
    );
    for script in scripts {
        rules.push_str(&format!(
            "{LAB_ACCOUNT} ALL=(root) NOPASSWD: /bin/sh -c {}\n",
            script.display()
        ));
    }
    install_sudoers(&container_starts_sudoers(tag), &rules)
}

/// Removes the drop-in of [`allow_container_starts`], if any.
pub fn forbid_container_starts(tag: &str) -> Result<(), LabError> {
    remove_sudoers(&container_starts_sudoers(tag))
}

/// Removes a sudoers drop-in; one already gone is no error.
fn remove_sudoers(path: &Path) -> Result<(), LabError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(LabError::io(path, "cannot remove the sudoers rule")(error)),
    }
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

/// `herd-lab ALL=(herd-lab-app) NOPASSWD: ALL`, and in a second file the
/// same to become itself (a playbook's `become_user: "{{ app_user }}"` is the
/// login account on a plain host), keeping `XDG_RUNTIME_DIR` for
/// `systemctl --user`. Each file is written once; the first keeps the text
/// older labs write, so labs of either kind never rewrite each other's.
fn allow_becoming_the_app_account() -> Result<(), LabError> {
    let app = format!(
        "# herd lab: the login account may become the app account, nothing more\n\
         {LAB_ACCOUNT} ALL=({LAB_APP_ACCOUNT}) NOPASSWD: ALL\n"
    );
    let itself = format!(
        "# herd lab: the login account may become itself, and keeps the user manager's runtime dir\n\
         Defaults:{LAB_ACCOUNT} env_keep += \"XDG_RUNTIME_DIR\"\n\
         {LAB_ACCOUNT} ALL=({LAB_ACCOUNT}) NOPASSWD: ALL\n"
    );
    for (path, rules) in [(SUDOERS, app), (SUDOERS_SELF, itself)] {
        if std::fs::read_to_string(path).ok().as_deref() != Some(&rules) {
            install_sudoers(Path::new(path), &rules)?;
        }
    }
    Ok(())
}

/// Where the login account's right to run Podman as root is written.
const SUDOERS_PODMAN: &str = "/etc/sudoers.d/herd-lab-podman";

/// `herd-lab ALL=(root) NOPASSWD: /usr/bin/podman`: a lab with container
/// hosts lets its login account drive the machine's rootful Podman (which is
/// as good as root, like membership of the docker group). Written once, kept
/// for the labs that follow; call it holding the account lock.
pub fn allow_podman() -> Result<(), LabError> {
    let rules = format!(
        "# herd lab: the login account may run the rootful Podman of the lab's containers (root-equivalent)\n\
         {LAB_ACCOUNT} ALL=(root) NOPASSWD: {}\n",
        super::container::PODMAN
    );
    if std::fs::read_to_string(SUDOERS_PODMAN).ok().as_deref() != Some(&rules) {
        install_sudoers(Path::new(SUDOERS_PODMAN), &rules)?;
    }
    Ok(())
}

/// Installs `rules` at `path` (mode 0440, as sudo wants) once `visudo -c`
/// accepts them; nothing where sudo reads no drop-in folder.
fn install_sudoers(path: &Path, rules: &str) -> Result<(), LabError> {
    let folder = path.parent().unwrap_or(Path::new("/"));
    if !folder.is_dir() {
        return Ok(());
    }
    let failed = |error: std::io::Error| LabError::Command {
        command: format!("writing {}", path.display()),
        detail: error.to_string(),
    };
    // Written aside (a name with a dot, which sudo skips) and renamed: sudo
    // never reads half a rule.
    let partial = PathBuf::from(format!("{}.partial", path.display()));
    std::fs::write(&partial, rules).map_err(failed)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o440)).map_err(failed)?;
    let partial_text = partial.to_string_lossy().into_owned();
    if let Err(error) = run_once("visudo", &["-c", "-q", "-f", &partial_text]) {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, path).map_err(failed)
}

/// Runs a tool once; its failure carries its stderr.
fn run_once(program: &str, args: &[&str]) -> Result<(), LabError> {
    let command = format!("{program} {}", args.join(" "));
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
    let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_string();
    if detail.is_empty() {
        detail = String::from_utf8_lossy(&output.stdout).trim().to_string();
    }
    Err(LabError::Command { command, detail })
}

/// The name of group `gid`.
fn group_name(gid: u32) -> Option<String> {
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: group is plain old data; zeroed is a valid value to be overwritten.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; getgrgid_r is re-entrant.
    let status = unsafe {
        libc::getgrgid_r(
            gid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut result,
        )
    };
    if status != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success gr_name points into `buffer`, alive here, NUL-terminated.
    Some(
        unsafe { CStr::from_ptr(entry.gr_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// True if account `name` is a member of group `gid`, by /etc/group.
fn in_group(name: &str, gid: u32) -> bool {
    let Ok(groups) = std::fs::read_to_string("/etc/group") else {
        return false;
    };
    groups.lines().any(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        matches!(fields.as_slice(), [_, _, id, members]
            if id.parse() == Ok(gid) && members.split(',').any(|m| m == name))
    })
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
