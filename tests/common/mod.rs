//! What every integration test shares: the `Herd` builder that drives the real
//! binary, and the `Lab` guard that starts a throwaway fleet and always stops
//! it again, even when the test panics.
#![allow(dead_code)] // each test file uses a different part of this module

pub mod load;
pub mod master;

use std::fmt;
use std::fs;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Longest a single `herd` invocation may take before the test gives up on it.
const HERD_DEADLINE: Duration = Duration::from_secs(90);

pub fn herd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_herd")
}

/// The repository root (where `playbooks/` lives).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `herd` invocation: `Herd::new().args([...]).env(..).run()`.
///
/// The ssh-agent is never used (`SSH_AUTH_SOCK` cleared), and no `HERD_*`
/// variable of the caller's environment leaks into the test, nor the
/// variables by which a CI runner would add its markers to what herd prints.
pub struct Herd {
    command: Command,
    shown: Vec<String>,
}

impl Default for Herd {
    fn default() -> Self {
        Self::new()
    }
}

impl Herd {
    pub fn new() -> Self {
        let mut command = Command::new(herd_bin());
        command
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env_remove("GITLAB_CI")
            .stdin(Stdio::null());
        // Every option also reads a HERD_* variable (and credentials come
        // from HERD_SSH_KEY...): none of the caller's counts.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HERD_") {
                command.env_remove(key);
            }
        }
        Herd {
            command,
            shown: vec!["herd".into()],
        }
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.shown.push(arg.as_ref().to_string_lossy().into_owned());
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Runs herd to completion (killing it past a deadline, so a hang fails
    /// the test instead of stalling the suite).
    pub fn run(self) -> Run {
        self.spawn().wait()
    }

    /// Starts herd in the background, its output captured; `wait()` for its
    /// `Run`. The process is killed if the `Running` is dropped first.
    pub fn spawn(mut self) -> Running {
        let mut child = self
            .command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start the herd binary");
        let mut out_pipe = child.stdout.take().unwrap();
        let mut err_pipe = child.stderr.take().unwrap();
        let out_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out_pipe.read_to_end(&mut buf);
            buf
        });
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err_pipe.read_to_end(&mut buf);
            buf
        });
        Running {
            child,
            shown: self.shown.join(" "),
            started: Instant::now(),
            readers: Some((out_reader, err_reader)),
        }
    }
}

/// A thread collecting everything herd writes to one pipe.
type Reader = JoinHandle<Vec<u8>>;

/// A herd started with [`Herd::spawn`], still running (or not yet waited for).
pub struct Running {
    child: Child,
    shown: String,
    started: Instant,
    readers: Option<(Reader, Reader)>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True until the process has exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (e.g. `libc::SIGINT`) to herd alone, not to its group.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: a plain kill(2) of the child this test started and has not reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(
            rc,
            0,
            "cannot signal `{}`: {}",
            self.shown,
            std::io::Error::last_os_error()
        );
    }

    /// Waits for herd to exit (killing it past a deadline, so a hang fails
    /// the test instead of stalling the suite) and collects what it said.
    pub fn wait(mut self) -> Run {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for herd") {
                break status;
            }
            if self.started.elapsed() > HERD_DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "`{}` still running after {HERD_DEADLINE:?}; killed it",
                    self.shown
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let (out_reader, err_reader) = self.readers.take().expect("waited for twice");
        Run {
            command: self.shown.clone(),
            code: status.code(),
            stdout: String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned(),
            stderr: String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that panicked before `wait()` must not leave herd behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What one herd invocation did.
pub struct Run {
    pub command: String,
    /// `None` when herd died of a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.code
            .unwrap_or_else(|| panic!("herd died of a signal\n{self}"))
    }

    pub fn stdout(&self) -> &str {
        &self.stdout
    }

    pub fn stderr(&self) -> &str {
        &self.stderr
    }

    /// Asserts the exit code, showing everything herd said when it differs.
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(self.code, Some(expected), "unexpected exit code\n{self}");
        self
    }

    /// The summary row of `host` (`HOST  RESULT  STEPS  DURATION  NOTE`), on stderr.
    /// The `hostNN: UNREACHABLE: reason` lines of stderr.
    pub fn unreachable_lines(&self) -> Vec<&str> {
        self.stderr()
            .lines()
            .filter(|l| l.contains("UNREACHABLE"))
            .collect()
    }

    pub fn summary_row(&self, host: &str) -> String {
        let rows: Vec<&str> = self
            .stderr
            .lines()
            .filter(|line| line.split_whitespace().next() == Some(host))
            .filter(|line| !line.starts_with(&format!("{host}:")))
            .collect();
        assert_eq!(rows.len(), 1, "expected one summary row for {host}\n{self}");
        rows[0].to_string()
    }

    /// The RESULT column of `host`'s summary row ("done", "failed", "rolled back", "rollback failed", ...).
    pub fn summary_result(&self, host: &str) -> String {
        let row = self.summary_row(host);
        let rest = row[host.len()..].trim_start();
        // RESULT is padded to 15 columns and may contain a space ("rolled back").
        rest.get(..15).unwrap_or(rest).trim_end().to_string()
    }

    /// Every stdout line as JSON; panics naming the first line that is not.
    pub fn json_events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}\n{self}"))
            })
            .collect()
    }

    /// The first `step_finished` event of a `--output json` run.
    pub fn step_finished(&self) -> serde_json::Value {
        self.json_events()
            .into_iter()
            .find(|e| e["event"] == "step_finished")
            .expect("a step_finished event")
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$ {}\nexit: {:?}\n--- stdout ---\n{}--- stderr ---\n{}--------------",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&path, text).unwrap();
    path
}

/// A name no other test (or earlier run) uses, for files outside a temp dir.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}-{}-{nanos}", std::process::id())
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One host of a running lab, as `lab.json` records it.
#[derive(Debug, Clone, Deserialize)]
pub struct LabHost {
    pub name: String,
    pub address: String,
    pub ssh_port: u16,
    pub http_port: u16,
    pub app_dir: PathBuf,
    /// The app server: gunicorn, uwsgi, unicorn, puma or nginx.
    #[serde(default = "gunicorn")]
    pub server: String,
    /// The app server's pidfile (`app/<server>.pid`).
    pub pidfile: PathBuf,
    pub sshd_pid: Option<u32>,
    pub gunicorn_pid: Option<u32>,
    pub sshd_alive: bool,
    pub gunicorn_alive: bool,
    /// The systemd user unit running this host's Gunicorn (unit hosts only).
    #[serde(default)]
    pub unit: Option<String>,
    /// Whether that unit has `ExecReload`.
    #[serde(default)]
    pub unit_reload: bool,
    /// The account this host's Gunicorn runs as.
    #[serde(default)]
    pub app_user: String,
    /// The Podman container running this host's Gunicorn (container hosts only).
    #[serde(default)]
    pub container: Option<String>,
    /// That container's PID 1 case: "exec", "init" or "shell".
    #[serde(default)]
    pub pid1: Option<String>,
}

fn gunicorn() -> String {
    "gunicorn".into()
}

impl LabHost {
    pub fn ssh_addr(&self) -> SocketAddr {
        format!("{}:{}", self.address, self.ssh_port)
            .parse()
            .unwrap()
    }

    /// How this host is written in known_hosts: `[127.0.0.x]:PORT`.
    pub fn known_hosts_name(&self) -> String {
        format!("[{}]:{}", self.address, self.ssh_port)
    }

    /// True while something accepts connections on the host's ssh port.
    pub fn ssh_listening(&self) -> bool {
        TcpStream::connect_timeout(&self.ssh_addr(), Duration::from_millis(300)).is_ok()
    }

    /// Kills this host's sshd and waits until its port refuses connections.
    pub fn kill_sshd(&self) {
        let pid = self.sshd_pid.expect("lab.json has no sshd_pid");
        // SAFETY: a plain kill(2) of the sshd this test's lab started.
        let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        assert_eq!(
            rc,
            0,
            "cannot kill sshd {pid}: {}",
            std::io::Error::last_os_error()
        );
        assert!(
            wait_until(Duration::from_secs(5), || !self.ssh_listening()),
            "{}'s port {} still accepts after killing sshd",
            self.name,
            self.ssh_port
        );
    }
}

#[derive(Debug, Deserialize)]
struct LabState {
    inventory: PathBuf,
    known_hosts: PathBuf,
    private_key: PathBuf,
    user: String,
    #[serde(default)]
    deploy_user: Option<String>,
    hosts: Vec<LabHost>,
}

/// The account a lab's units run as, whose user manager they live in.
pub const LAB_APP_ACCOUNT: &str = "herd-lab-app";

/// Runs `herd lab down` when dropped: declared before any state is parsed, so
/// a failed or half-done `lab up` is stopped as well.
struct LabDir {
    dir: tempfile::TempDir,
}

impl Drop for LabDir {
    fn drop(&mut self) {
        let down = Herd::new()
            .args(["lab", "down", "--dir"])
            .arg(self.dir.path())
            .run();
        if down.code != Some(0) {
            // Never panic in drop (it would abort a panicking test); say it loudly.
            eprintln!("warning: herd lab down failed\n{down}");
        }
    }
}

/// A running lab of real sshd + app server (Gunicorn unless asked) hosts,
/// stopped when dropped.
pub struct Lab {
    state: LabState,
    // Last field: dropped after everything else, stops the processes, then
    // removes the directory.
    dir: LabDir,
}

impl Lab {
    pub fn up(hosts: usize) -> Lab {
        Lab::up_with_units(hosts, 0)
    }

    /// A lab whose last `units` hosts run Gunicorn as systemd user units of
    /// [`LAB_APP_ACCOUNT`] (root only); with 2 or more, the last unit has no
    /// `ExecReload`.
    pub fn up_with_units(hosts: usize, units: usize) -> Lab {
        Lab::up_with(hosts, units, 0)
    }

    /// A lab whose last `containers` hosts run Gunicorn in rootful Podman
    /// containers (root only), PID 1 cases in turn exec, init, shell.
    pub fn up_with_containers(hosts: usize, containers: usize) -> Lab {
        Lab::up_with(hosts, 0, containers)
    }

    /// A lab with `units` unit hosts last and `containers` container hosts
    /// just before them.
    pub fn up_with(hosts: usize, units: usize, containers: usize) -> Lab {
        Lab::up_full(hosts, units, containers, &["gunicorn"])
    }

    /// A lab whose hosts run `servers` in turn (host01 the first, ...):
    /// gunicorn, uwsgi, unicorn, puma, nginx.
    pub fn up_with_servers(hosts: usize, servers: &[&str]) -> Lab {
        Lab::up_full(hosts, 0, 0, servers)
    }

    fn up_full(hosts: usize, units: usize, containers: usize, servers: &[&str]) -> Lab {
        let dir = LabDir {
            dir: tempfile::Builder::new()
                .prefix("herd-test-lab")
                .tempdir()
                .unwrap(),
        };
        let venv = std::env::var_os("HERD_LAB_VENV")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".venv"));
        let up = Herd::new()
            .args(["lab", "up", "--hosts", &hosts.to_string(), "--dir"])
            .arg(dir.dir.path())
            .arg("--venv")
            .arg(&venv)
            .args(["--unit-hosts", &units.to_string()])
            .args(["--container-hosts", &containers.to_string()])
            .args(["--servers", &servers.join(",")])
            .run();
        assert_eq!(up.code, Some(0), "herd lab up failed\n{up}");
        let text = fs::read_to_string(dir.dir.path().join("lab.json")).expect("lab.json");
        let state: LabState = serde_json::from_str(&text).expect("lab.json parses");
        assert_eq!(
            state.hosts.len(),
            hosts,
            "lab.json lists {} hosts",
            state.hosts.len()
        );
        for host in &state.hosts {
            assert!(
                host.sshd_alive && host.gunicorn_alive,
                "lab host not alive: {host:?}"
            );
        }
        Lab { state, dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.dir.path()
    }

    pub fn inventory(&self) -> &Path {
        &self.state.inventory
    }

    pub fn known_hosts(&self) -> &Path {
        &self.state.known_hosts
    }

    pub fn private_key(&self) -> &Path {
        &self.state.private_key
    }

    pub fn user(&self) -> &str {
        &self.state.user
    }

    pub fn hosts(&self) -> &[LabHost] {
        &self.state.hosts
    }

    pub fn host(&self, name: &str) -> &LabHost {
        self.state
            .hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no lab host {name}"))
    }

    pub fn app_dir(&self, name: &str) -> &Path {
        &self.host(name).app_dir
    }

    /// Writes a file (a playbook, a key...) into the lab directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        write_file(self.dir(), name, text)
    }

    /// The `authorized_keys` every lab host's sshd reads (keys may be appended).
    pub fn authorized_keys(&self) -> PathBuf {
        self.dir().join("authorized_keys")
    }

    /// `name`'s sshd log (LogLevel DEBUG1: one `Accepted publickey` line per login,
    /// and `server_request_direct_tcpip` for each connection forwarded through it).
    pub fn sshd_log(&self, name: &str) -> PathBuf {
        self.dir().join("hosts").join(name).join("sshd.log")
    }

    /// `name`'s deploy lock file, as the lab inventory sets `herd_lock_file`.
    pub fn lock_file(&self, name: &str) -> PathBuf {
        self.app_dir(name).join(".herd-deploy.lock")
    }

    /// `name`'s audit log, as the lab inventory sets `herd_audit_log`.
    pub fn audit_log(&self, name: &str) -> PathBuf {
        self.app_dir(name).join(".herd-audit.log")
    }

    /// The hosts whose deploy lock file exists right now.
    pub fn hosts_with_lock_file(&self) -> Vec<String> {
        self.hosts()
            .iter()
            .filter(|h| self.lock_file(&h.name).exists())
            .map(|h| h.name.clone())
            .collect()
    }

    /// A copy of the lab inventory under `name`, passed through `edit`, which
    /// must change it (an edit that silently matches nothing would leave the
    /// test checking the plain lab).
    pub fn edited_inventory(&self, name: &str, edit: impl FnOnce(&str) -> String) -> PathBuf {
        let original = fs::read_to_string(self.inventory()).unwrap();
        let edited = edit(&original);
        assert_ne!(
            edited, original,
            "the edit of the inventory changed nothing"
        );
        self.write(name, &edited)
    }

    /// The lab inventory with `lines` added under `all: vars:`, as `secrets.yml`.
    pub fn inventory_with_vars(&self, lines: &str) -> PathBuf {
        self.edited_inventory("secrets.yml", |text| {
            text.replacen("all:\n  vars:\n", &format!("all:\n  vars:\n{lines}"), 1)
        })
    }

    /// The least-privilege deploy account of a lab with unit hosts.
    pub fn deploy_user(&self) -> Option<&str> {
        self.state.deploy_user.as_deref()
    }

    /// The unit hosts, in inventory order.
    pub fn unit_hosts(&self) -> Vec<&LabHost> {
        self.hosts().iter().filter(|h| h.unit.is_some()).collect()
    }

    /// `name`'s unit (panics on a plain host).
    pub fn unit(&self, name: &str) -> &str {
        self.host(name)
            .unit
            .as_deref()
            .unwrap_or_else(|| panic!("{name} is no unit host"))
    }

    /// `systemctl --user ARGS` as the app account, against the lab's user
    /// manager; its output whatever its exit status.
    pub fn user_systemctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("runuser")
            .args(["-u", LAB_APP_ACCOUNT, "--", "env"])
            .arg(format!("XDG_RUNTIME_DIR={}", app_runtime_dir().display()))
            .args(["systemctl", "--user"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("runuser systemctl runs")
    }

    /// One property of `name`'s unit (`systemctl --user show -p PROP --value`).
    pub fn unit_property(&self, name: &str, property: &str) -> String {
        let out = self.user_systemctl(&["show", "-p", property, "--value", self.unit(name)]);
        assert!(out.status.success(), "systemctl show failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The unit file of `name`'s unit, in the app account's unit directory.
    pub fn unit_file(&self, name: &str) -> PathBuf {
        app_home()
            .join(".config/systemd/user")
            .join(self.unit(name))
    }

    /// Replaces `name`'s unit file with `text`, reloads the manager and
    /// restarts the unit (which may then fail: its status is returned).
    /// `herd lab down` still stops and removes it by name.
    pub fn replace_unit(&self, name: &str, text: &str) -> std::process::Output {
        let path = self.unit_file(name);
        fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reload = self.user_systemctl(&["daemon-reload"]);
        assert!(reload.status.success(), "daemon-reload failed: {reload:?}");
        self.user_systemctl(&["restart", self.unit(name)])
    }

    /// `ssh USER@HOST COMMAND` with the real OpenSSH client, the lab's key
    /// and known_hosts (no agent, no prompt).
    pub fn ssh_as(&self, user: &str, name: &str, command: &str) -> std::process::Output {
        let host = self.host(name);
        Command::new("ssh")
            .arg("-i")
            .arg(self.private_key())
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=10",
                "-F",
                "/dev/null",
                "-p",
            ])
            .arg(host.ssh_port.to_string())
            .arg(format!("{user}@{}", host.address))
            .arg(command)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .output()
            .expect("ssh runs")
    }

    /// `herd ARGS... -i LAB/inventory.yml` is the common shape; this is the builder
    /// with the inventory already given.
    pub fn herd<I, S>(&self, args: I) -> Herd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Herd::new().args(args).arg("-i").arg(self.inventory())
    }
}

/// The app account's uid, from the passwd database.
pub fn app_uid() -> u32 {
    let out = Command::new("id")
        .args(["-u", LAB_APP_ACCOUNT])
        .output()
        .expect("id runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no account {LAB_APP_ACCOUNT}: {out:?}"))
}

/// `/run/user/UID` of the app account: where its user manager listens.
pub fn app_runtime_dir() -> PathBuf {
    PathBuf::from(format!("/run/user/{}", app_uid()))
}

/// The app account's home directory.
pub fn app_home() -> PathBuf {
    let passwd = fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&LAB_APP_ACCOUNT)).then(|| PathBuf::from(fields[5]))
        })
        .unwrap_or_else(|| panic!("no account {LAB_APP_ACCOUNT}"))
}

/// The PIDs of the app account's user managers (`systemd --user`).
pub fn user_manager_pids() -> Vec<u32> {
    let uid = app_uid();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let owner = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next()?.parse::<u32>().ok());
        if cmdline.starts_with(b"/lib/systemd/systemd\0--user") && owner == Some(uid) && alive(pid)
        {
            pids.push(pid);
        }
    }
    pids
}

/// A TCP listener standing in for an inventory's host, to prove bad input
/// contacts no host: counts who connects.
pub struct FakeHost {
    listener: TcpListener,
}

impl FakeHost {
    pub fn new() -> FakeHost {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        FakeHost { listener }
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    /// Connections accepted within a short poll (herd has exited by then, so
    /// any connection it made is already queued).
    pub fn connections(&self) -> usize {
        let mut count = 0;
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            match self.listener.accept() {
                Ok(_) => count += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return count;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
}

/// Bad input: exit 2 with exactly `stderr`, nothing on stdout, and no
/// connection to `host`.
pub fn assert_refused_exactly(run: &Run, host: &FakeHost, stderr: &str) {
    run.assert_code(2);
    assert_eq!(run.stderr(), stderr, "{run}");
    assert_eq!(run.stdout(), "", "{run}");
    assert_eq!(host.connections(), 0, "herd contacted the host\n{run}");
}

/// `herd plan` and then `herd run --output json`, both of `playbook` on `inventory`.
pub fn plan_and_json_run(inventory: &Path, playbook: &Path) -> (Run, Run) {
    let plan = Herd::new()
        .args(["plan", "-i"])
        .arg(inventory)
        .arg(playbook)
        .run();
    let run = Herd::new()
        .args(["run", "--output", "json", "-i"])
        .arg(inventory)
        .arg(playbook)
        .run();
    (plan, run)
}

/// `herd SUBCOMMAND -F CONFIG -i INVENTORY`: a run whose ssh_config is CONFIG
/// (add `--` and the command for `exec`).
pub fn herd_with_config(subcommand: &str, config: &Path, inventory: &Path) -> Herd {
    Herd::new()
        .args([subcommand, "-F"])
        .arg(config)
        .arg("-i")
        .arg(inventory)
}

/// What a directory holds, for "nothing changed on this host": every entry's
/// relative path with its kind, size, mtime, and a symlink's target.
/// `gunicorn.log` and `gunicorn.ctl` (its control socket) are left out: the
/// app server writes them on its own schedule, even after `lab up` returns.
/// So is `.herd-audit.log`, the lab's audit log, which every run (even one
/// that changes nothing) appends its record to.
pub fn dir_state(dir: &Path) -> std::collections::BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == "gunicorn.log" || rel == "gunicorn.ctl" || rel == ".herd-audit.log" {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let what = if meta.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                format!("dir mtime {modified}")
            } else {
                format!("file {} bytes mtime {modified}", meta.len())
            };
            out.insert(rel, what);
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

// ---- Reload tests: processes, HTTP and releases as the test itself sees them ----

/// One process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    pub ppid: u32,
    pub state: char,
    /// Clock ticks after boot: with the pid, it tells a process from a reused pid.
    pub start_time: u64,
}

/// `/proc/PID/stat` of `pid`, or `None` when there is no such process.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some(ProcStat {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// True while `pid` runs (a zombie has ended).
pub fn alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|p| p.state != 'Z')
}

/// The live children of `pid`, sorted.
pub fn children(pid: u32) -> Vec<u32> {
    let mut found: Vec<u32> = fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_stat)
        .filter(|p| p.ppid == pid && p.state != 'Z')
        .map(|p| p.pid)
        .collect();
    found.sort_unstable();
    found
}

/// The pid a pidfile names, if it exists and holds one.
pub fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `GET path` from this test to `address:port` (HTTP/1.0, a few seconds at
/// most): the status code and body, or why there was none.
pub fn http_get(address: &str, port: u16, path: &str) -> Result<(u16, String), String> {
    use std::io::Write;
    let addr: SocketAddr = format!("{address}:{port}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{addr}: no HTTP response: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{addr}: bad status line: {head:?}"))?;
    Ok((status, body.to_string()))
}

/// What `host` answers on `/healthz` right now ("ok v1"), or the error.
pub fn healthz(host: &LabHost) -> String {
    match http_get(&host.address, host.http_port, "/healthz") {
        Ok((200, body)) => body.trim().to_string(),
        Ok((status, body)) => format!("HTTP {status}: {}", body.trim()),
        Err(e) => format!("error: {e}"),
    }
}

/// Gives `path` (recursively, symlinks themselves) to the lab's login user,
/// which owns everything under an app dir.
pub fn chown_to(user: &str, path: &Path) {
    let status = Command::new("chown")
        .arg("-R")
        .arg("-h")
        .arg(format!("{user}:"))
        .arg(path)
        .status()
        .expect("chown runs");
    assert!(status.success(), "chown {user}: {} failed", path.display());
}

/// Builds `releases/RELEASE` on `host` as a copy of `releases/v1` that says
/// `release` (every server's app: app.py, config.ru, and RELEASE and
/// release.conf naming the release), and points `current` at it
/// (atomically, as a deploy would).
pub fn switch_release(lab: &Lab, host: &LabHost, release: &str) {
    build_release(host, release);
    point_current(lab, host, release);
}

/// Like [`switch_release`], but the release is broken for the host's
/// server: app.py raises at import (gunicorn, uwsgi), config.ru raises when
/// loaded (unicorn, puma), release.conf has a syntax error (nginx, whose
/// `nginx -t` then fails).
pub fn switch_to_broken_release(lab: &Lab, host: &LabHost, release: &str) {
    let dir = build_release(host, release);
    match host.server.as_str() {
        "gunicorn" | "uwsgi" => prepend(
            &dir.join("app.py"),
            "raise RuntimeError(\"broken release\")\n",
        ),
        "unicorn" | "puma" => prepend(&dir.join("config.ru"), "raise \"broken release\"\n"),
        "nginx" => fs::write(
            dir.join("release.conf"),
            format!("set $release {release}\n"),
        )
        .unwrap(),
        other => panic!("{}: no broken release for server {other:?}", host.name),
    }
    point_current(lab, host, release);
}

fn prepend(path: &Path, line: &str) {
    let text = fs::read_to_string(path).unwrap();
    fs::write(path, format!("{line}{text}")).unwrap();
}

/// `releases/RELEASE` as a copy of `releases/v1`'s apps naming `release`.
fn build_release(host: &LabHost, release: &str) -> PathBuf {
    let app = &host.app_dir;
    let dir = app.join("releases").join(release);
    fs::create_dir_all(&dir).unwrap();
    for file in ["app.py", "config.ru"] {
        fs::copy(app.join("releases/v1").join(file), dir.join(file)).unwrap();
    }
    fs::write(dir.join("RELEASE"), format!("{release}\n")).unwrap();
    fs::write(
        dir.join("release.conf"),
        format!("set $release {release};\n"),
    )
    .unwrap();
    dir
}

fn point_current(lab: &Lab, host: &LabHost, release: &str) {
    let app = &host.app_dir;
    let next = app.join("current.next");
    let _ = fs::remove_file(&next);
    std::os::unix::fs::symlink(format!("releases/{release}"), &next).unwrap();
    chown_to(lab.user(), &app.join("releases").join(release));
    chown_to(lab.user(), &next);
    fs::rename(&next, app.join("current")).unwrap();
}

/// Whether the tests run as root (only a lab started as root has accounts
/// to become, unit hosts and a deploy account).
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// One lab at a time in a test file: labs sharing the machine's one user
/// manager, a load generator and settle periods at once on a 2-core machine
/// make timing claims noise. Hold the guard for the test's whole life.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `pid`'s arguments joined by spaces, or "" when it is gone.
pub fn cmdline(pid: u32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Lab {
    /// systemd's MainPID of `name`'s unit.
    pub fn main_pid(&self, name: &str) -> u32 {
        self.unit_property(name, "MainPID")
            .parse()
            .unwrap_or_else(|e| panic!("{name}: MainPID: {e}"))
    }
}

// ---- Container hosts: the machine's rootful Podman, as the test sees it ----

/// The engine the lab's containers run on.
pub const PODMAN: &str = "/usr/bin/podman";

/// Why containers cannot run here, or `None` when they can: the tests of
/// container hosts print it and skip.
pub fn containers_unavailable() -> Option<String> {
    if !running_as_root() {
        return Some("container hosts need root (rootful Podman)".into());
    }
    if !Path::new(PODMAN).is_file() {
        return Some(format!("{PODMAN} not found: run scripts/setup.sh"));
    }
    match Command::new(PODMAN)
        .arg("info")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "podman info failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run {PODMAN}: {e}")),
    }
}

/// False (after saying why) when this machine cannot run the lab's containers.
pub fn can_run_containers(test: &str) -> bool {
    let Some(why) = containers_unavailable() else {
        return true;
    };
    if std::env::var("HERD_LAB_REQUIRE_CONTAINERS").as_deref() == Ok("1") {
        panic!("{test}: containers are required here, but {why}");
    }
    eprintln!("{test}: skipped: {why}");
    false
}

/// `podman ARGS` as root (the test's own user), output captured.
pub fn podman(args: &[&str]) -> std::process::Output {
    Command::new(PODMAN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run podman {args:?}: {e}"))
}

/// The host PID of container `name`'s PID 1, or `None` when it does not run.
pub fn container_pid1(name: &str) -> Option<u32> {
    let out = podman(&["inspect", "--format", "{{.State.Pid}}", name]);
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 0)
}

/// True if a container (running or not) named `name` exists.
pub fn container_exists(name: &str) -> bool {
    podman(&["container", "exists", name]).status.success()
}

impl Lab {
    /// The container hosts, in inventory order.
    pub fn container_hosts(&self) -> Vec<&LabHost> {
        self.hosts()
            .iter()
            .filter(|h| h.container.is_some())
            .collect()
    }

    /// `name`'s container (panics on a host without one).
    pub fn container(&self, name: &str) -> &str {
        self.host(name)
            .container
            .as_deref()
            .unwrap_or_else(|| panic!("{name} is not a container host"))
    }

    /// `podman ARGS` as root.
    pub fn podman(&self, args: &[&str]) -> std::process::Output {
        podman(args)
    }

    /// The host PID of `name`'s container's PID 1 (panics when it does not run).
    pub fn container_pid1(&self, name: &str) -> u32 {
        let container = self.container(name);
        container_pid1(container).unwrap_or_else(|| panic!("container {container} does not run"))
    }
}
