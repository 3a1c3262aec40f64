//! Building a lab on disk and starting its daemons: ports, keys, sshd_config,
//! the app layout, then every sshd and Gunicorn, then the wait until all of
//! them answer.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{chown, lchown, symlink, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::account::LoginUser;
use super::render::{self, InventoryVars, SshdSettings};
use super::{process, read_pidfile, LabError, LabHost, LabInfo, SSHD};

/// How long every host gets to come up, plus a little per host: starting
/// Gunicorn is CPU-bound, so a big lab on a small machine takes longer.
const READY_BASE: Duration = Duration::from_secs(15);
const READY_PER_HOST: Duration = Duration::from_millis(100);

/// Processes started at once; more only queue up for the same CPUs.
const START_WIDTH: usize = 8;
/// Gunicorn workers per host.
const WORKERS: usize = 2;

/// Hosts polled at once while waiting for them.
const WAIT_WIDTH: usize = 64;

/// The programs a lab runs, found before anything is touched.
pub struct Tools {
    pub ssh_keygen: PathBuf,
    /// None when the lab runs without apps.
    pub gunicorn: Option<PathBuf>,
    /// The interpreter behind the venv, which the lab user must be able to reach.
    pub python: Option<PathBuf>,
}

impl Tools {
    pub fn find(opts: &super::LabOptions) -> Result<Tools, LabError> {
        if !Path::new(SSHD).is_file() {
            return Err(LabError::SshdMissing(SSHD.into()));
        }
        let ssh_keygen = find_on_path("ssh-keygen").ok_or(LabError::SshKeygenMissing)?;
        let (gunicorn, python) = if opts.gunicorn {
            let gunicorn = opts.venv.join("bin").join("gunicorn");
            if !gunicorn.is_file() {
                return Err(LabError::GunicornMissing(gunicorn));
            }
            let venv = fs::canonicalize(&opts.venv)
                .map_err(LabError::io(&opts.venv, "cannot resolve the venv"))?;
            let python = fs::canonicalize(venv.join("bin").join("python")).ok();
            (Some(venv.join("bin").join("gunicorn")), python)
        } else {
            (None, None)
        };
        Ok(Tools {
            ssh_keygen,
            gunicorn,
            python,
        })
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The lab's hosts with their addresses and free ports, nothing started yet.
pub fn plan(dir: &Path, count: usize, user: &str) -> Result<LabInfo, LabError> {
    let addresses: Vec<String> = (1..=count).map(render::host_address).collect();
    let ports = allocate_ports(&addresses)?;
    let hosts = addresses
        .into_iter()
        .zip(ports)
        .enumerate()
        .map(|(i, (address, (ssh_port, http_port)))| {
            let name = render::host_name(i + 1);
            let host_dir = dir.join("hosts").join(&name);
            let app_dir = host_dir.join("app");
            LabHost {
                name,
                address,
                ssh_port,
                http_port,
                pidfile: app_dir.join("gunicorn.pid"),
                host_dir,
                app_dir,
                sshd_pid: None,
                gunicorn_pid: None,
                sshd_alive: false,
                gunicorn_alive: false,
            }
        })
        .collect();
    Ok(LabInfo {
        dir: dir.to_path_buf(),
        inventory: dir.join("inventory.yml"),
        known_hosts: dir.join("known_hosts"),
        private_key: dir.join("id_ed25519"),
        user: user.to_string(),
        hosts,
    })
}

/// Two ports (ssh, http) per address, asked of the kernel by binding port 0,
/// so labs running side by side do not collide. Every listener is held until
/// all ports are chosen, so no port is handed out twice here.
fn allocate_ports(addresses: &[String]) -> Result<Vec<(u16, u16)>, LabError> {
    let mut held = Vec::with_capacity(addresses.len() * 2);
    let mut ports = Vec::with_capacity(addresses.len());
    for address in addresses {
        let mut pair = [0u16; 2];
        for port in &mut pair {
            let listener =
                TcpListener::bind((address.as_str(), 0)).map_err(|source| LabError::NoPort {
                    address: address.clone(),
                    source,
                })?;
            *port = listener
                .local_addr()
                .map_err(|source| LabError::NoPort {
                    address: address.clone(),
                    source,
                })?
                .port();
            held.push(listener);
        }
        ports.push((pair[0], pair[1]));
    }
    Ok(ports)
}

/// Writes everything the daemons need: keys, known_hosts, authorized_keys,
/// sshd configs, the app layout and the inventory. Replaces the files of a
/// previous lab in the same directory.
pub fn prepare(info: &LabInfo, user: &LoginUser, tools: &Tools) -> Result<(), LabError> {
    let dir = &info.dir;
    for stale in [
        "id_ed25519",
        "id_ed25519.pub",
        "authorized_keys",
        "known_hosts",
        "inventory.yml",
    ] {
        remove(&dir.join(stale))?;
    }
    remove(&dir.join("hosts"))?;
    make_dir(&dir.join("hosts"))?;
    if user.switch_to {
        // Tempdirs are 0700; the lab user reads authorized_keys and runs its app below here.
        set_mode(dir, 0o755)?;
        let mut reachable = vec![dir.clone()];
        reachable.extend(
            tools
                .gunicorn
                .iter()
                .filter_map(|g| g.parent().map(Path::to_path_buf)),
        );
        reachable.extend(
            tools
                .python
                .iter()
                .filter_map(|p| p.parent().map(Path::to_path_buf)),
        );
        for path in &reachable {
            check_reachable(user, path)?;
        }
        fs::create_dir_all("/run/sshd").map_err(LabError::io(
            "/run/sshd",
            "cannot create sshd's privilege separation directory",
        ))?;
        set_mode(Path::new("/run/sshd"), 0o755)?;
    }

    let mut keys = parallel(info.hosts.len() + 1, START_WIDTH, |i| {
        match info.hosts.get(i) {
            Some(host) => {
                make_dir(&host.host_dir)?;
                keygen(tools, &host.host_key(), &format!("herd-lab {}", host.name))
            }
            None => keygen(tools, &info.private_key, "herd-lab client"),
        }
    })
    .into_iter()
    .collect::<Result<Vec<String>, LabError>>()?;
    let client_key = keys.pop().unwrap_or_default();

    let authorized_keys = dir.join("authorized_keys");
    write_file(&authorized_keys, &client_key, 0o644)?;
    let known_hosts: String = info
        .hosts
        .iter()
        .zip(&keys)
        .map(|(host, key)| render::known_hosts_line(host, key))
        .collect();
    write_file(&info.known_hosts, &known_hosts, 0o644)?;

    for host in &info.hosts {
        let settings = SshdSettings {
            host_key: &host.host_key(),
            pidfile: &host.sshd_pidfile(),
            authorized_keys: &authorized_keys,
            user: &user.name,
        };
        write_file(
            &host.sshd_config(),
            &render::sshd_config(host, &settings),
            0o644,
        )?;
        write_file(&host.sshd_log(), "", 0o644)?;
        lay_out_app(host, user)?;
    }

    let vars = InventoryVars {
        user: &user.name,
        private_key: &info.private_key,
        known_hosts: &info.known_hosts,
    };
    write_file(
        &info.inventory,
        &render::inventory(&info.hosts, &vars),
        0o644,
    )
}

/// `releases/v1/{app.py,RELEASE}`, `current -> releases/v1`, `shared/` and an
/// empty Gunicorn log, all owned by the login user (who deploys there).
fn lay_out_app(host: &LabHost, user: &LoginUser) -> Result<(), LabError> {
    let release = host.app_dir.join("releases").join(render::FIRST_RELEASE);
    for dir in [
        &host.app_dir,
        &host.app_dir.join("releases"),
        &release,
        &host.app_dir.join("shared"),
    ] {
        make_dir(dir)?;
    }
    write_file(&release.join("app.py"), render::APP_PY, 0o644)?;
    write_file(
        &release.join("RELEASE"),
        &format!("{}\n", render::FIRST_RELEASE),
        0o644,
    )?;
    let current = host.app_dir.join("current");
    symlink(format!("releases/{}", render::FIRST_RELEASE), &current)
        .map_err(LabError::io(&current, "cannot link the current release"))?;
    write_file(&host.gunicorn_log(), "", 0o644)?;
    write_file(
        &host.app_dir.join("gunicorn.conf.py"),
        &render::gunicorn_conf(host),
        0o644,
    )?;
    if user.switch_to {
        give_tree(&host.app_dir, user)?;
    }
    Ok(())
}

/// Generates an ed25519 key without passphrase at `path`; returns the public key.
fn keygen(tools: &Tools, path: &Path, comment: &str) -> Result<String, LabError> {
    let output = Command::new(&tools.ssh_keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| LabError::Command {
            command: "ssh-keygen".into(),
            detail: error.to_string(),
        })?;
    if !output.status.success() {
        return Err(LabError::Command {
            command: format!("ssh-keygen -f {}", path.display()),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    // ssh-keygen already writes 0600; sshd refuses a host key that is not.
    set_mode(path, 0o600)?;
    let public = path.with_extension("pub");
    fs::read_to_string(&public).map_err(LabError::io(
        &public,
        "cannot read the generated public key",
    ))
}

/// Starts every sshd and Gunicorn, then waits until each sshd greets and each
/// app answers `/healthz`. Records PIDs in `info` as they become known, so a
/// failure can be cleaned up by the caller.
pub fn launch(info: &mut LabInfo, user: &LoginUser, tools: &Tools) -> Result<(), LabError> {
    let started = parallel(info.hosts.len(), START_WIDTH, |i| {
        let host = &info.hosts[i];
        start_sshd(host)?;
        match &tools.gunicorn {
            Some(gunicorn) => start_gunicorn(host, user, gunicorn),
            None => Ok(()),
        }
    });
    started.into_iter().collect::<Result<Vec<()>, LabError>>()?;

    let deadline = Instant::now() + READY_BASE + READY_PER_HOST * info.hosts.len() as u32;
    let with_app = tools.gunicorn.is_some();
    let ready = parallel(info.hosts.len(), WAIT_WIDTH, |i| {
        wait_ready(&info.hosts[i], with_app, deadline)
    });
    let mut first_error = None;
    for (host, outcome) in info.hosts.iter_mut().zip(ready) {
        match outcome {
            Ok((sshd_pid, gunicorn_pid)) => {
                host.sshd_pid = Some(sshd_pid);
                host.gunicorn_pid = gunicorn_pid;
            }
            Err(error) => {
                host.sshd_pid = read_pidfile(&host.sshd_pidfile());
                host.gunicorn_pid = read_pidfile(&host.pidfile);
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn start_sshd(host: &LabHost) -> Result<(), LabError> {
    let log = host.sshd_log();
    // sshd daemonizes; its early complaints go to stderr, the rest to -E.
    let status = Command::new(SSHD)
        .arg("-f")
        .arg(host.sshd_config())
        .arg("-E")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(append(&log)?)
        .status();
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(start_failed(host, "sshd", &status.to_string(), &log)),
        Err(error) => Err(start_failed(host, "sshd", &error.to_string(), &log)),
    }
}

fn start_gunicorn(host: &LabHost, user: &LoginUser, gunicorn: &Path) -> Result<(), LabError> {
    let log = host.gunicorn_log();
    let mut command = Command::new(gunicorn);
    // The symlink path, not its target: workers started after a HUP import
    // whatever release `current` points to by then.
    command
        .arg("--chdir")
        .arg(host.app_dir.join("current"))
        .arg("--bind")
        .arg(format!("{}:{}", host.address, host.http_port))
        .arg("--workers")
        .arg(WORKERS.to_string())
        .args(["--name", &host.name, "--daemon"])
        .arg("--pid")
        .arg(&host.pidfile)
        .arg("--log-file")
        .arg(&log)
        .arg("--config")
        .arg(host.app_dir.join("gunicorn.conf.py"))
        .arg("app:application")
        .current_dir(&host.app_dir)
        .env("HERD_LAB_HOST", &host.name)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(append(&log)?);
    if user.switch_to {
        command
            .uid(user.uid)
            .gid(user.gid)
            .env("HOME", &user.home)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
    }
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(start_failed(host, "gunicorn", &status.to_string(), &log)),
        Err(error) => Err(start_failed(host, "gunicorn", &error.to_string(), &log)),
    }
}

/// Polls one host until its sshd greets and its app is healthy with all its
/// workers forked (Gunicorn spawns them a moment apart, and a test counting
/// the worker generation must see the full set); returns the
/// sshd and Gunicorn master PIDs. Gives up early when a daemon that wrote its
/// pidfile has died.
fn wait_ready(
    host: &LabHost,
    with_app: bool,
    deadline: Instant,
) -> Result<(u32, Option<u32>), LabError> {
    let mut sshd_pid = None;
    let mut app_ready = !with_app;
    let mut gunicorn_pid = None;
    loop {
        if sshd_pid.is_none() && ssh_greets(&host.address, host.ssh_port) {
            sshd_pid = read_pidfile(&host.sshd_pidfile());
        }
        if !app_ready {
            gunicorn_pid = read_pidfile(&host.pidfile).or(gunicorn_pid);
            app_ready = gunicorn_pid.is_some_and(|pid| process::children(pid).len() >= WORKERS)
                && http_healthy(&host.address, host.http_port);
        }
        if let (Some(sshd), true) = (sshd_pid, app_ready) {
            return Ok((sshd, gunicorn_pid.or_else(|| read_pidfile(&host.pidfile))));
        }
        if let Some(pid) = gunicorn_pid.filter(|pid| !process::is_alive(*pid)) {
            return Err(start_failed(
                host,
                "gunicorn",
                &format!("its master {pid} exited"),
                &host.gunicorn_log(),
            ));
        }
        if Instant::now() >= deadline {
            return Err(if sshd_pid.is_none() {
                start_failed(
                    host,
                    "sshd",
                    "it did not accept connections in time",
                    &host.sshd_log(),
                )
            } else {
                let reason = format!("{} did not answer in time", host.healthz_url());
                start_failed(host, "gunicorn", &reason, &host.gunicorn_log())
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

fn connect(address: &str, port: u16) -> Option<TcpStream> {
    let target = (address, port).to_socket_addrs().ok()?.next()?;
    let stream = TcpStream::connect_timeout(&target, PROBE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT)).ok()?;
    Some(stream)
}

/// True once sshd sends its version banner (accepting alone could be the
/// kernel's backlog).
fn ssh_greets(address: &str, port: u16) -> bool {
    let Some(mut stream) = connect(address, port) else {
        return false;
    };
    let mut banner = [0u8; 8];
    stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-2.0-"
}

/// True once `GET /healthz` answers 200 with `ok ...`.
fn http_healthy(address: &str, port: u16) -> bool {
    let Some(mut stream) = connect(address, port) else {
        return false;
    };
    let request = format!("GET /healthz HTTP/1.0\r\nHost: {address}:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = Vec::new();
    if stream.read_to_end(&mut response).is_err() {
        return false;
    }
    let response = String::from_utf8_lossy(&response);
    let status_ok = response
        .lines()
        .next()
        .is_some_and(|line| line.split_whitespace().nth(1) == Some("200"));
    status_ok
        && response
            .split("\r\n\r\n")
            .nth(1)
            .is_some_and(|body| body.starts_with("ok "))
}

fn start_failed(host: &LabHost, what: &'static str, reason: &str, log: &Path) -> LabError {
    LabError::StartFailed {
        host: host.name.clone(),
        what,
        reason: reason.to_string(),
        log: log.to_path_buf(),
        log_tail: tail(log, 20),
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `job(0..count)` on at most `width` threads; results in index order.
fn parallel<T: Send>(count: usize, width: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..width.min(count) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let result = job(i);
                results
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())[i] = Some(result);
            });
        }
    });
    let results = results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // A job that panicked has already propagated out of the scope above.
    results
        .into_iter()
        .map(|result| result.expect("every job ran"))
        .collect()
}

/// Fails with the first directory on the way to `path` the lab user cannot
/// search.
fn check_reachable(user: &LoginUser, path: &Path) -> Result<(), LabError> {
    for dir in path.ancestors() {
        let Ok(meta) = fs::metadata(dir) else {
            continue;
        };
        let mode = meta.mode();
        let searchable = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !searchable {
            return Err(LabError::Unreachable {
                user: user.name.clone(),
                dir: path.to_path_buf(),
                blocker: dir.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
    }
    Ok(())
}

fn give_tree(path: &Path, user: &LoginUser) -> Result<(), LabError> {
    let meta = fs::symlink_metadata(path).map_err(LabError::io(path, "cannot read"))?;
    if meta.file_type().is_symlink() {
        return lchown(path, Some(user.uid), Some(user.gid))
            .map_err(LabError::io(path, "cannot change owner"));
    }
    chown(path, Some(user.uid), Some(user.gid))
        .map_err(LabError::io(path, "cannot change owner"))?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(LabError::io(path, "cannot list"))? {
            let entry = entry.map_err(LabError::io(path, "cannot list"))?;
            give_tree(&entry.path(), user)?;
        }
    }
    Ok(())
}

fn make_dir(path: &Path) -> Result<(), LabError> {
    fs::create_dir_all(path).map_err(LabError::io(path, "cannot create directory"))?;
    set_mode(path, 0o755)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), LabError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(LabError::io(path, "cannot set permissions"))
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), LabError> {
    fs::write(path, text).map_err(LabError::io(path, "cannot write"))?;
    set_mode(path, mode)
}

fn append(path: &Path) -> Result<fs::File, LabError> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(LabError::io(path, "cannot open log"))
}

fn remove(path: &Path) -> Result<(), LabError> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    };
    result.map_err(LabError::io(path, "cannot remove the previous lab's file"))
}
