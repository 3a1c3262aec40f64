//! The lab's real systemd: one user manager of the app account per machine,
//! shared by every lab that has unit hosts, and each lab's units in it.
//!
//! PID 1 here need not be systemd, and a system-mode systemd must never boot
//! on the host's root filesystem (its boot empties /tmp). A *user* manager
//! runs fine given three things, all made here: a private mount namespace
//! where a tmpfs on `/run/systemd` holds `/run/systemd/system` (so only that
//! namespace looks booted with systemd), a cgroup delegated to the account,
//! and `XDG_RUNTIME_DIR=/run/user/UID`, where `systemctl --user` finds it.
//! Everything that changes the manager or its units holds the account lock,
//! so labs in parallel (threads or processes) see a consistent manager.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::account::{self, LoginUser, SYSTEMCTL};
use super::layout::append;
use super::ready::start_failed;
use super::{lab_tag, process, read_pidfile, render, LabError, LabInfo};

/// The user manager's program.
const SYSTEMD: &str = "/lib/systemd/systemd";
/// Where the shared manager's own output goes (it is no lab's).
const MANAGER_LOG: &str = "/run/herd-lab-user-manager.log";
/// How long the manager gets to answer after it is started, or to exit.
const MANAGER_WAIT: Duration = Duration::from_secs(15);
/// How long one `systemctl --user` may take (a start waits for readiness).
const SYSTEMCTL_DEADLINE: Duration = Duration::from_secs(60);

/// The runtime directory of `uid`, where `systemctl --user` finds its manager.
pub fn runtime_dir(uid: u32) -> PathBuf {
    PathBuf::from(format!("/run/user/{uid}"))
}

/// Starts the units of `info`'s unit hosts, starting the manager first if it
/// is not running, and returns once systemd reports them started. Also
/// installs the deploy account's sudoers rule for the lab's reloadable units.
pub fn start_units(info: &LabInfo, gunicorn: &Path) -> Result<(), LabError> {
    let app = account::app_user()?;
    let hosts: Vec<_> = info.hosts.iter().filter(|h| h.unit.is_some()).collect();
    let Some(first) = hosts.first() else {
        return Ok(());
    };
    let reloadable: Vec<String> = hosts
        .iter()
        .filter(|h| h.unit_reload)
        .filter_map(|h| h.unit.clone())
        .collect();
    account::with_account_lock(|| {
        account::allow_unit_reloads(&lab_tag(&info.dir), &reloadable)?;
        let units_dir = unit_dir(&app);
        make_owned_dirs(&app.home, &units_dir, &app)?;
        remove_stale_units(&units_dir);
        let mut names = Vec::new();
        for host in &hosts {
            let Some(unit) = &host.unit else { continue };
            let path = units_dir.join(unit);
            fs::write(&path, render::unit_file(host, gunicorn, &info.dir))
                .map_err(LabError::io(&path, "cannot write the unit"))?;
            chown(&path, Some(app.uid), Some(app.gid))
                .map_err(LabError::io(&path, "cannot change owner"))?;
            names.push(unit.as_str());
        }
        ensure_manager(&app)?;
        systemctl_ok(&app, &["daemon-reload"])?;
        let mut start = vec!["start"];
        start.extend(&names);
        systemctl_ok(&app, &start).map_err(|error| {
            start_failed(first, "gunicorn unit", &error.to_string(), &first.app_log())
        })
    })
}

/// Stops and removes the units of `info` (and units left by labs whose
/// directory is gone), removes the lab's sudoers rule, and stops the manager
/// when no lab unit is left. Works with the manager gone or
/// the units already stopped. Returns how many processes it stopped.
pub fn stop_units(info: &LabInfo) -> Result<usize, LabError> {
    let app = account::app_user()?;
    let units: Vec<&str> = info
        .hosts
        .iter()
        .filter_map(|h| h.unit.as_deref())
        .collect();
    let running: Vec<u32> = info
        .hosts
        .iter()
        .filter(|h| h.unit.is_some())
        .filter_map(|h| read_pidfile(&h.pidfile))
        .filter(|pid| process::is_alive(*pid))
        .flat_map(|master| std::iter::once(master).chain(process::children(master)))
        .collect();
    account::with_account_lock(|| {
        account::forbid_unit_reloads(&lab_tag(&info.dir))?;
        let manager = manager_pid(&app);
        if manager.is_some() && !units.is_empty() {
            let mut stop = vec!["stop"];
            stop.extend(&units);
            // A unit already stopped or unknown is no error for `down`.
            let _ = systemctl(&app, &stop);
        }
        let units_dir = unit_dir(&app);
        for unit in &units {
            let _ = fs::remove_file(units_dir.join(unit));
        }
        remove_stale_units(&units_dir);
        if manager.is_some() {
            let _ = systemctl(&app, &["daemon-reload"]);
            let _ = systemctl(&app, &["reset-failed"]);
        }
        let mut stopped = running
            .iter()
            .filter(|pid| !process::is_alive(**pid))
            .count();
        if !any_unit_left(&units_dir) {
            if let Some(pid) = manager {
                stop_manager(pid);
                stopped += 1;
            }
        }
        Ok(stopped)
    })
}

/// Removes the delegated cgroups once no manager runs and no lab unit is
/// left: called after `down` has stopped the lab's processes, which stay in
/// their unit's cgroup when the manager died before them.
pub fn remove_unused_cgroups() -> Result<(), LabError> {
    let app = account::app_user()?;
    account::with_account_lock(|| {
        if manager_pid(&app).is_none() && !any_unit_left(&unit_dir(&app)) {
            remove_cgroups();
        }
    });
    Ok(())
}

/// The app account's user manager, if one runs.
pub fn manager_pid(app: &LoginUser) -> Option<u32> {
    let entries = fs::read_dir("/proc").ok()?;
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            process::read_entry(*pid).is_some_and(|e| {
                e.state != 'Z' && e.cmdline.starts_with(&format!("{SYSTEMD} --user"))
            }) && process_uid(*pid) == Some(app.uid)
        })
}

/// The real uid of `pid`, from /proc/PID/status.
fn process_uid(pid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn unit_dir(app: &LoginUser) -> PathBuf {
    app.home.join(".config/systemd/user")
}

/// Creates `dir` and its missing parents below `base`, owned by `owner`.
fn make_owned_dirs(base: &Path, dir: &Path, owner: &LoginUser) -> Result<(), LabError> {
    fs::create_dir_all(dir).map_err(LabError::io(dir, "cannot create directory"))?;
    for path in dir
        .ancestors()
        .take_while(|p| p.starts_with(base) && *p != base)
    {
        chown(path, Some(owner.uid), Some(owner.gid))
            .map_err(LabError::io(path, "cannot change owner"))?;
    }
    Ok(())
}

/// Removes the unit files of labs whose directory no longer exists.
fn remove_stale_units(units_dir: &Path) {
    let Ok(entries) = fs::read_dir(units_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        if render::unit_lab_dir(&text).is_some_and(|lab| !lab.join(super::STATE_FILE).exists()) {
            let _ = fs::remove_file(&path);
        }
    }
}

fn any_unit_left(units_dir: &Path) -> bool {
    fs::read_dir(units_dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "service"))
    })
}

/// The cgroup directories delegated to the manager: one per hierarchy
/// systemd uses (named `systemd` v1 and the v2 `unified` on a hybrid
/// layout, the root itself on a pure v2 one).
fn cgroup_dirs() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.join(account::LAB_APP_ACCOUNT)];
    }
    ["systemd", "unified"]
        .iter()
        .map(|h| root.join(h))
        .filter(|h| h.join("cgroup.procs").exists())
        .map(|h| h.join(account::LAB_APP_ACCOUNT))
        .collect()
}

/// Starts the manager unless one runs already; waits until it answers.
fn ensure_manager(app: &LoginUser) -> Result<(), LabError> {
    if manager_pid(app).is_none() {
        start_manager(app)?;
    }
    let deadline = Instant::now() + MANAGER_WAIT;
    loop {
        if manager_pid(app).is_some() && systemctl_ok(app, &["list-units", "--no-legend"]).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(manager_failed(
                "it did not answer `systemctl --user` in time",
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `systemd --user` for `app` in a private mount namespace, inside
/// the cgroups delegated to it, detached from this process.
fn start_manager(app: &LoginUser) -> Result<(), LabError> {
    let runtime = runtime_dir(app.uid);
    fs::create_dir_all(&runtime).map_err(LabError::io(&runtime, "cannot create directory"))?;
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700))
        .map_err(LabError::io(&runtime, "cannot set permissions"))?;
    chown(&runtime, Some(app.uid), Some(app.gid))
        .map_err(LabError::io(&runtime, "cannot change owner"))?;
    let cgroups = cgroup_dirs();
    for dir in &cgroups {
        delegate(dir, app)?;
    }
    let quote = |t: &str| crate::shell::quote(t);
    let join_procs = cgroups
        .iter()
        .map(|dir| {
            format!(
                "echo $$ > {} || exit 1\n",
                quote(&dir.join("cgroup.procs").to_string_lossy())
            )
        })
        .collect::<String>();
    // The mount happens in the new namespace only; systemd refuses to run as
    // a user instance unless /run/systemd/system exists.
    let script = format!(
        "mount -t tmpfs -o mode=755 tmpfs /run/systemd && mkdir -p /run/systemd/system || exit 1\n\
         {join_procs}\
         exec runuser -u {user} -- env -i HOME={home} USER={user} LOGNAME={user} PATH=/usr/bin:/bin \
         XDG_RUNTIME_DIR={runtime} {SYSTEMD} --user\n",
        user = quote(&app.name),
        home = quote(&app.home.to_string_lossy()),
        runtime = quote(&runtime.to_string_lossy()),
    );
    let log = Path::new(MANAGER_LOG);
    // setsid --fork: the manager is nobody's child here, so it outlives
    // `herd lab up` and is never left a zombie of it.
    let status = Command::new("setsid")
        .args(["--fork", "unshare", "--mount", "--propagation", "private"])
        .args(["/bin/sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(append(log)?)
        .stderr(append(log)?)
        .status()
        .map_err(|error| LabError::Command {
            command: "setsid unshare systemd --user".into(),
            detail: error.to_string(),
        })?;
    if !status.success() {
        return Err(manager_failed(&status.to_string()));
    }
    Ok(())
}

fn manager_failed(reason: &str) -> LabError {
    let text = fs::read_to_string(MANAGER_LOG).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    LabError::Command {
        command: format!("{SYSTEMD} --user"),
        detail: format!(
            "{reason}\n--- {MANAGER_LOG} (last lines) ---\n{}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        ),
    }
}

/// Creates cgroup `dir` and gives it, with its control files, to `app`.
fn delegate(dir: &Path, app: &LoginUser) -> Result<(), LabError> {
    fs::create_dir_all(dir).map_err(LabError::io(dir, "cannot create the cgroup"))?;
    chown(dir, Some(app.uid), Some(app.gid)).map_err(LabError::io(dir, "cannot change owner"))?;
    for entry in fs::read_dir(dir).map_err(LabError::io(dir, "cannot list the cgroup"))? {
        let path = entry
            .map_err(LabError::io(dir, "cannot list the cgroup"))?
            .path();
        if path.is_file() {
            chown(&path, Some(app.uid), Some(app.gid))
                .map_err(LabError::io(&path, "cannot change owner"))?;
        }
    }
    Ok(())
}

/// TERM the manager (it stops its units and exits), KILL it if it lingers,
/// and wait until it is gone.
fn stop_manager(pid: u32) {
    process::stop(&[pid], MANAGER_WAIT);
}

/// Removes the delegated cgroups, innermost first. Their processes are gone
/// with the manager, but the kernel may take a moment to empty them.
fn remove_cgroups() {
    for dir in cgroup_dirs() {
        let deadline = Instant::now() + Duration::from_secs(5);
        while dir.exists() && remove_cgroup_tree(&dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn remove_cgroup_tree(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            remove_cgroup_tree(&path)?;
        }
    }
    fs::remove_dir(dir)
}

/// `systemctl --user ARGS` as the app account; its output whatever the
/// exit status.
pub fn systemctl(app: &LoginUser, args: &[&str]) -> Result<Output, LabError> {
    use std::os::unix::process::CommandExt;
    let command = format!("systemctl --user {}", args.join(" "));
    let mut child = Command::new(SYSTEMCTL)
        .arg("--user")
        .args(args)
        .env_clear()
        .env("HOME", &app.home)
        .env("PATH", "/usr/bin:/bin")
        .env("XDG_RUNTIME_DIR", runtime_dir(app.uid))
        .uid(app.uid)
        .gid(app.gid)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| LabError::Command {
            command: command.clone(),
            detail: error.to_string(),
        })?;
    // Read on threads: a full pipe would stall the child before it exits.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || drain(stdout.as_mut()));
    let err = std::thread::spawn(move || drain(stderr.as_mut()));
    let deadline = Instant::now() + SYSTEMCTL_DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::Command {
                    command,
                    detail: format!("no answer in {}s", SYSTEMCTL_DEADLINE.as_secs()),
                });
            }
        }
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn drain(pipe: Option<&mut impl Read>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes);
    }
    bytes
}

/// [`systemctl`] that fails unless it exits 0, with its stderr.
fn systemctl_ok(app: &LoginUser, args: &[&str]) -> Result<(), LabError> {
    let output = systemctl(app, args)?;
    if output.status.success() {
        return Ok(());
    }
    Err(LabError::Command {
        command: format!("systemctl --user {}", args.join(" ")),
        detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}
