//! Starting a lab's daemons: choosing ports, then every sshd and app
//! server, then the wait until all of them answer.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::account::LoginUser;
use super::account::{LAB_APP_ACCOUNT, LAB_DEPLOY_ACCOUNT};
use super::layout::append;
use super::ready::{start_failed, wait_ready};
use super::{
    container, read_pidfile, render, systemd, AppServer, LabError, LabHost, LabInfo, SSHD,
};

/// How long every host gets to come up, plus a little per host: starting
/// Gunicorn is CPU-bound, so a big lab on a small machine takes longer.
const READY_BASE: Duration = Duration::from_secs(15);
const READY_PER_HOST: Duration = Duration::from_millis(100);

/// Processes started at once; more only queue up for the same CPUs.
pub(super) const START_WIDTH: usize = 8;
/// Workers per host, whichever the app server.
pub(super) const WORKERS: usize = 2;

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
    pub fn find(opts: &super::LabOptions, servers: &[AppServer]) -> Result<Tools, LabError> {
        if !Path::new(SSHD).is_file() {
            return Err(LabError::SshdMissing(SSHD.into()));
        }
        if opts.gunicorn {
            for server in servers {
                if let Some(missing) = server
                    .system_files()
                    .iter()
                    .find(|file| !Path::new(file).is_file())
                {
                    return Err(LabError::ServerMissing {
                        server: server.name(),
                        path: PathBuf::from(missing),
                    });
                }
            }
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
/// The last `unit_hosts` hosts run their Gunicorn as a systemd user unit of
/// the app account; with two or more, the last unit has no `ExecReload`, so
/// both kinds of unit are there to deploy to. The `container_hosts` hosts
/// just before the unit hosts run their Gunicorn in a container, PID 1 cases
/// in turn exec, init, shell (see [`container::Pid1`]); their Gunicorn sets
/// process titles (the image has setproctitle) and writes no pidfile. The
/// hosts before them get `servers` in turn (Gunicorn when none).
pub fn plan(
    dir: &Path,
    count: usize,
    unit_hosts: usize,
    container_hosts: usize,
    servers: &[AppServer],
    user: &str,
) -> Result<LabInfo, LabError> {
    let first_unit = count - unit_hosts.min(count);
    let first_container = first_unit - container_hosts.min(first_unit);
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
            let server = match servers {
                _ if i >= first_container => AppServer::Gunicorn,
                [] => AppServer::Gunicorn,
                servers => servers[i % servers.len()],
            };
            let mut host = LabHost {
                name,
                address,
                ssh_port,
                http_port,
                pidfile: server.pidfile(&app_dir),
                host_dir,
                app_dir,
                server,
                sshd_pid: None,
                gunicorn_pid: None,
                sshd_alive: false,
                gunicorn_alive: false,
                proc_titles: i % 2 == 0 || server.always_titled(),
                unit: None,
                unit_reload: false,
                app_user: user.to_string(),
                container: None,
                pid1: None,
            };
            if (first_container..first_unit).contains(&i) {
                host.container = Some(host.proc_name());
                host.pid1 = Some(container::Pid1::nth(i - first_container).to_string());
                host.proc_titles = true;
                host.pidfile = app_dir_pidfile_never_written(&host);
            }
            if i >= first_unit {
                host.unit = Some(host.unit_name());
                host.unit_reload = unit_hosts < 2 || i + 1 < count;
                host.app_user = LAB_APP_ACCOUNT.to_string();
                host.pidfile = host.run_dir().join("gunicorn.pid");
            }
            host
        })
        .collect();
    Ok(LabInfo {
        dir: dir.to_path_buf(),
        inventory: dir.join("inventory.yml"),
        known_hosts: dir.join("known_hosts"),
        private_key: dir.join("id_ed25519"),
        user: user.to_string(),
        deploy_user: (unit_hosts > 0).then(|| LAB_DEPLOY_ACCOUNT.to_string()),
        hosts,
    })
}

/// A container host's Gunicorn writes no pidfile (a PID inside the
/// container means nothing on the host): its `pidfile` names a path that
/// stays missing.
fn app_dir_pidfile_never_written(host: &LabHost) -> PathBuf {
    host.app_dir.join("no-pidfile-in-container")
}

/// Two ports (ssh, http) per address, asked of the kernel by binding port 0,
/// so labs running side by side do not collide. Every listener is held until
/// all ports are chosen, so no port is handed out twice here.
fn allocate_ports(addresses: &[String]) -> Result<Vec<(u16, u16)>, LabError> {
    let mut held = Vec::with_capacity(addresses.len() * 2);
    let mut ports = Vec::with_capacity(addresses.len());
    let mut random = PortDraw::new();
    for address in addresses {
        let mut pair = [0u16; 2];
        for port in &mut pair {
            let listener = random.listener(address)?;
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

/// Ports drawn at random below the kernel's ephemeral range: between the
/// draw and sshd's own bind, no outgoing connection (whose local ports come
/// from that range, and there are many while tests run) can take the port.
struct PortDraw {
    below: u16,
    state: u64,
}

impl PortDraw {
    fn new() -> PortDraw {
        let low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
            .unwrap_or(32768);
        let mut seed = [0u8; 8];
        let _ = fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        PortDraw {
            below: low,
            state: u64::from_le_bytes(seed) ^ u64::from(nanos) ^ u64::from(std::process::id()),
        }
    }

    /// A listener on a free port of `address`: drawn below the ephemeral
    /// range when there is room there, else any the kernel gives.
    fn listener(&mut self, address: &str) -> Result<TcpListener, LabError> {
        let floor = 10_000u16;
        if self.below > floor + 1000 {
            let span = u64::from(self.below - floor);
            for _ in 0..64 {
                // xorshift: enough to spread the draws of concurrent labs.
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                let port = floor + (self.state % span) as u16;
                if let Ok(listener) = TcpListener::bind((address, port)) {
                    return Ok(listener);
                }
            }
        }
        TcpListener::bind((address, 0)).map_err(|source| LabError::NoPort {
            address: address.to_string(),
            source,
        })
    }
}

/// Starts every sshd and app server, then waits until each sshd greets and each
/// app answers `/healthz`. Records PIDs in `info` as they become known, so a
/// failure can be cleaned up by the caller.
pub fn launch(info: &mut LabInfo, user: &LoginUser, tools: &Tools) -> Result<(), LabError> {
    let started = parallel(info.hosts.len(), START_WIDTH, |i| {
        let host = &info.hosts[i];
        start_sshd(host)?;
        match &tools.gunicorn {
            Some(_) if host.container.is_some() => container::start(host),
            Some(_) if host.unit.is_none() => start_app(host, user),
            _ => Ok(()),
        }
    });
    started.into_iter().collect::<Result<Vec<()>, LabError>>()?;
    if let Some(gunicorn) = &tools.gunicorn {
        systemd::start_units(info, gunicorn)?;
    }

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
                if host.container.is_some() {
                    host.gunicorn_pid = container::master_pid(host);
                }
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

/// Runs the host's start script as the login user: the server daemonises
/// (Puma, which cannot, is put in the background by the script).
fn start_app(host: &LabHost, user: &LoginUser) -> Result<(), LabError> {
    let log = host.app_log();
    let what = host.server.name();
    let mut command = Command::new("/bin/sh");
    command
        .arg(host.start_script())
        .current_dir(&host.app_dir)
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
        Ok(status) => Err(start_failed(host, what, &status.to_string(), &log)),
        Err(error) => Err(start_failed(host, what, &error.to_string(), &log)),
    }
}

/// Runs `job(0..count)` on at most `width` threads; results in index order.
pub(super) fn parallel<T: Send>(
    count: usize,
    width: usize,
    job: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_hosts_are_unit_hosts_and_the_very_last_has_no_reload() {
        let info = plan(Path::new("/tmp/lab"), 4, 2, 0, &[], "herd-lab").unwrap();
        let kinds: Vec<(Option<&str>, bool, &str)> = info
            .hosts
            .iter()
            .map(|h| (h.unit.as_deref(), h.unit_reload, h.app_user.as_str()))
            .collect();
        let tag = lab_tag_of(&info);
        assert_eq!(
            kinds,
            vec![
                (None, false, "herd-lab"),
                (None, false, "herd-lab"),
                (
                    Some(format!("{tag}-host03.service").as_str()),
                    true,
                    "herd-lab-app"
                ),
                (
                    Some(format!("{tag}-host04.service").as_str()),
                    false,
                    "herd-lab-app"
                ),
            ]
        );
        assert_eq!(
            info.hosts[3].pidfile,
            info.hosts[3].app_dir.join("run/gunicorn.pid")
        );
        assert_eq!(info.deploy_user.as_deref(), Some("herd-lab-deploy"));
    }

    #[test]
    fn one_unit_host_can_reload_and_no_unit_host_means_no_deploy_account() {
        let one = plan(Path::new("/tmp/lab"), 2, 1, 0, &[], "herd-lab").unwrap();
        assert!(one.hosts[1].unit.is_some() && one.hosts[1].unit_reload);
        let none = plan(Path::new("/tmp/lab"), 2, 0, 0, &[], "herd-lab").unwrap();
        assert!(none
            .hosts
            .iter()
            .all(|h| h.unit.is_none() && h.app_user == "herd-lab"));
        assert_eq!(none.deploy_user, None);
    }

    #[test]
    fn container_hosts_come_just_before_the_unit_hosts() {
        let info = plan(
            Path::new("/tmp/lab"),
            6,
            1,
            4,
            &[AppServer::Nginx],
            "herd-lab",
        )
        .unwrap();
        let kinds: Vec<(Option<&str>, bool)> = info
            .hosts
            .iter()
            .map(|h| (h.pid1.as_deref(), h.unit.is_some()))
            .collect();
        assert_eq!(
            kinds,
            [
                (None, false),
                (Some("exec"), false),
                (Some("init"), false),
                (Some("shell"), false),
                (Some("exec"), false),
                (None, true),
            ]
        );
        let tag = lab_tag_of(&info);
        assert_eq!(
            info.hosts[1].container.as_deref(),
            Some(format!("{tag}-host02").as_str())
        );
        assert_eq!(
            info.hosts[1].pidfile,
            info.hosts[1].app_dir.join("no-pidfile-in-container")
        );
        let none = plan(Path::new("/tmp/lab"), 2, 0, 2, &[], "herd-lab").unwrap();
        assert_eq!(none.hosts[0].pid1.as_deref(), Some("exec"));
        assert_eq!(none.hosts[1].pid1.as_deref(), Some("init"));
    }

    #[test]
    fn plain_hosts_get_the_servers_in_turn_and_the_others_gunicorn() {
        let servers = [AppServer::Uwsgi, AppServer::Puma];
        let info = plan(Path::new("/tmp/lab"), 5, 1, 1, &servers, "herd-lab").unwrap();
        let kinds: Vec<(AppServer, bool, &Path)> = info
            .hosts
            .iter()
            .map(|h| (h.server, h.proc_titles, h.pidfile.as_path()))
            .collect();
        let app = |n: usize| info.hosts[n].app_dir.clone();
        let (a0, a1, a2) = (app(0), app(1), app(2));
        assert_eq!(
            kinds[..3],
            [
                (AppServer::Uwsgi, true, a0.join("uwsgi.pid").as_path()),
                (AppServer::Puma, true, a1.join("puma.pid").as_path()),
                (AppServer::Uwsgi, true, a2.join("uwsgi.pid").as_path()),
            ]
        );
        assert_eq!(kinds[3].0, AppServer::Gunicorn); // container host
        assert_eq!(kinds[4].0, AppServer::Gunicorn); // unit host
        assert_eq!(
            info.hosts[1].start_script(),
            info.hosts[1].app_dir.join("start-puma.sh")
        );
        let two = plan(
            Path::new("/tmp/lab"),
            2,
            0,
            0,
            &[AppServer::Uwsgi],
            "herd-lab",
        )
        .unwrap();
        assert!(two.hosts[0].proc_titles && !two.hosts[1].proc_titles);
    }

    fn lab_tag_of(info: &LabInfo) -> String {
        super::super::lab_tag(&info.dir)
    }
}
