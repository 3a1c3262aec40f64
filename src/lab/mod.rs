//! The lab: a throwaway local fleet for trying playbooks, for the integration
//! tests and for the benchmark.
//!
//! `up` starts one real OpenSSH `sshd` per host on its own loopback address
//! (127.0.0.2, 127.0.0.3...) and free ports, each host with a real Gunicorn
//! app (or, as `servers` asks, uWSGI, Unicorn, Puma or nginx; see [`server`])
//! laid out the way deploys expect (`releases/v1`, a `current` symlink,
//! `shared/`), and writes the key, known_hosts and inventory that herd reads.
//! Its state goes to `<dir>/lab.json` so that `down`, `status` and tests find
//! the processes again. Nothing here writes to the terminal; callers get data.
//!
//! With `unit_hosts` (root only), the last hosts run Gunicorn as systemd user
//! units of `herd-lab-app` under a real user manager shared by all labs of
//! the machine (see [`systemd`]), and the `herd-lab-deploy` account may log
//! in and reload those units, nothing more.

mod account;
pub mod container;
mod error;
mod layout;
mod process;
mod ready;
mod render;
mod server;
mod server_files;
mod start;
mod systemd;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use account::LAB_APP_ACCOUNT;
pub use error::LabError;
pub use server::AppServer;

/// sshd refuses to run from a relative path, so the lab names it absolutely.
pub const SSHD: &str = "/usr/sbin/sshd";

/// The lab's state file, inside the lab directory.
pub const STATE_FILE: &str = "lab.json";

/// How long `down` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What `up` is asked for.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Where the lab lives; created if missing. Made absolute.
    pub dir: PathBuf,
    /// How many hosts (at least one).
    pub hosts: usize,
    /// A Python venv with Gunicorn in it (see [`default_venv`]).
    pub venv: PathBuf,
    /// Start an app server on every host (the default; false: sshd only).
    pub gunicorn: bool,
    /// How many hosts, the last ones, run their Gunicorn as a systemd user
    /// unit of [`LAB_APP_ACCOUNT`] instead of as a daemon (root only).
    pub unit_hosts: usize,
    /// How many hosts, just before the unit hosts, run their Gunicorn in a
    /// rootful Podman container (root only); see [`container`].
    pub container_hosts: usize,
    /// The app servers of the plain hosts (neither unit nor container
    /// hosts, which run Gunicorn), given in turn: host01 the first, host02
    /// the second, and round again. Names as [`AppServer::name`].
    pub servers: Vec<String>,
}

impl LabOptions {
    /// `hosts` hosts in `dir`, with Gunicorn from [`default_venv`].
    #[cfg(test)]
    pub fn new(dir: impl Into<PathBuf>, hosts: usize) -> Self {
        LabOptions {
            dir: dir.into(),
            hosts,
            venv: default_venv(),
            gunicorn: true,
            unit_hosts: 0,
            container_hosts: 0,
            servers: vec![AppServer::Gunicorn.name().to_string()],
        }
    }
}

/// A running (or stopped) lab, as recorded in `lab.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabInfo {
    pub dir: PathBuf,
    pub inventory: PathBuf,
    pub known_hosts: PathBuf,
    pub private_key: PathBuf,
    /// The account hosts log in as.
    pub user: String,
    /// The least-privilege deploy account that may also log in (with the
    /// same key) when the lab has unit hosts: its only sudo right is
    /// `systemctl --user reload` of those units that have `ExecReload`.
    #[serde(default)]
    pub deploy_user: Option<String>,
    pub hosts: Vec<LabHost>,
}

/// One host of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabHost {
    /// Inventory name: host01, host02...
    pub name: String,
    /// 127.0.0.x
    pub address: String,
    pub ssh_port: u16,
    pub http_port: u16,
    /// `<dir>/hosts/<name>`: the host's sshd files and its app directory.
    pub host_dir: PathBuf,
    /// `<host_dir>/app`: `releases/`, `current`, `shared/`, the app server's
    /// config, pidfile and log.
    pub app_dir: PathBuf,
    /// The app server this host runs (unit and container hosts: Gunicorn).
    #[serde(default)]
    pub server: AppServer,
    /// The app server's pidfile, named after it (`app/uwsgi.pid`; under
    /// `run/` on a unit host, where the app account may write).
    pub pidfile: PathBuf,
    pub sshd_pid: Option<u32>,
    /// The app server's master, whichever the server (the name is older
    /// than the other servers).
    pub gunicorn_pid: Option<u32>,
    pub sshd_alive: bool,
    pub gunicorn_alive: bool,
    /// Whether the app server sets process titles on this host. Gunicorn
    /// (setproctitle) and uWSGI (`auto-procname`): odd hosts do, even hosts
    /// do not, so both ways of finding a master run. Unicorn, Puma and nginx
    /// always do.
    #[serde(default = "titles_by_default")]
    pub proc_titles: bool,
    /// The systemd user unit that runs this host's Gunicorn, on a unit host.
    #[serde(default)]
    pub unit: Option<String>,
    /// Whether that unit has `ExecReload` (`systemctl reload` works).
    #[serde(default)]
    pub unit_reload: bool,
    /// The account this host's Gunicorn runs as.
    #[serde(default)]
    pub app_user: String,
    /// The Podman container that runs this host's Gunicorn, on a container
    /// host: the proc_name.
    #[serde(default)]
    pub container: Option<String>,
    /// What that container's PID 1 is: `exec` (the master), `init`
    /// (catatonit, the master its child) or `shell` (`/bin/sh`, the master
    /// its child).
    #[serde(default)]
    pub pid1: Option<String>,
}

fn titles_by_default() -> bool {
    true
}

/// A short tag of a lab directory (`lab-1a2b3c`) that names its processes,
/// units and sudoers rules apart from other labs' on the same machine.
pub fn lab_tag(lab_dir: &Path) -> String {
    // FNV-1a: stable across runs and Rust versions, unlike DefaultHasher.
    let hash = lab_dir
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("lab-{:06x}", hash & 0xff_ffff)
}

impl LabHost {
    /// Gunicorn's proc_name (`gunicorn: master [NAME]`): the host name with a
    /// tag of the lab directory, since every lab on a machine sees the others'
    /// processes and two labs both have a `host01`.
    pub fn proc_name(&self) -> String {
        let lab_dir = self
            .host_dir
            .parent()
            .and_then(Path::parent)
            .unwrap_or(&self.host_dir);
        format!("{}-{}", lab_tag(lab_dir), self.name)
    }

    /// The unit name this host's Gunicorn has (or would have) under
    /// systemd: the proc_name, so labs side by side never share a unit.
    pub fn unit_name(&self) -> String {
        format!("{}.service", self.proc_name())
    }

    /// The script that starts this host's Gunicorn (also `reload.start`):
    /// as a daemon, or on a unit host by starting the unit.
    pub fn start_script(&self) -> PathBuf {
        if self.container.is_some() {
            return self.app_dir.join("start-container.sh");
        }
        match self.unit {
            Some(_) => self.app_dir.join("start-unit.sh"),
            None => self
                .app_dir
                .join(format!("start-{}.sh", self.server.name())),
        }
    }
    /// Where a unit host's Gunicorn writes (pidfile, log, control socket):
    /// owned by the app account.
    pub fn run_dir(&self) -> PathBuf {
        self.app_dir.join("run")
    }
    pub fn sshd_config(&self) -> PathBuf {
        self.host_dir.join("sshd_config")
    }
    pub fn sshd_pidfile(&self) -> PathBuf {
        self.host_dir.join("sshd.pid")
    }
    pub fn sshd_log(&self) -> PathBuf {
        self.host_dir.join("sshd.log")
    }
    pub fn host_key(&self) -> PathBuf {
        self.host_dir.join("ssh_host_ed25519_key")
    }
    /// The app server's log (nginx: its error log).
    pub fn app_log(&self) -> PathBuf {
        match self.unit {
            Some(_) => self.run_dir().join("gunicorn.log"),
            None => self.server.log(&self.app_dir),
        }
    }
    /// The app server's config file (Gunicorn's `gunicorn.conf.py`).
    pub fn app_conf(&self) -> PathBuf {
        self.server.conf(&self.app_dir)
    }
    /// The URL of the app's health check, from the controller.
    pub fn healthz_url(&self) -> String {
        format!("http://{}:{}/healthz", self.address, self.http_port)
    }
}

/// What `down` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LabDown {
    /// Processes that were running and are gone (sshd listeners and sessions,
    /// Gunicorn masters and workers, commands left by sessions).
    pub stopped: usize,
    /// Of those, how many ignored SIGTERM and were killed.
    pub killed: usize,
}

/// The venv the lab takes Gunicorn from: `$HERD_LAB_VENV`, else `.venv` in
/// the current directory (where scripts/setup.sh creates it).
pub fn default_venv() -> PathBuf {
    match std::env::var_os("HERD_LAB_VENV") {
        Some(venv) if !venv.is_empty() => PathBuf::from(venv),
        _ => PathBuf::from(".venv"),
    }
}

/// Starts a lab of `opts.hosts` hosts in `opts.dir` and waits until every sshd
/// accepts connections and every app answers its health check. Fails if a lab
/// is already running there; on any failure, stops what it started.
pub fn up(opts: &LabOptions) -> Result<LabInfo, LabError> {
    if opts.hosts == 0 {
        return Err(LabError::NoHosts);
    }
    if opts.unit_hosts > opts.hosts {
        return Err(LabError::TooManyUnitHosts {
            units: opts.unit_hosts,
            hosts: opts.hosts,
        });
    }
    if opts.unit_hosts > 0 && !opts.gunicorn {
        return Err(LabError::UnitsNeedApp);
    }
    if opts.unit_hosts > 0 && !account::running_as_root() {
        return Err(LabError::UnitsNeedRoot(LAB_APP_ACCOUNT));
    }
    if opts.container_hosts > 0 {
        if opts.container_hosts + opts.unit_hosts > opts.hosts {
            return Err(LabError::TooManyContainerHosts {
                containers: opts.container_hosts,
                units: opts.unit_hosts,
                hosts: opts.hosts,
            });
        }
        if !opts.gunicorn {
            return Err(LabError::ContainersNeedApp);
        }
        if !account::running_as_root() {
            return Err(LabError::ContainersNeedRoot);
        }
        if !container::engine_installed() {
            return Err(LabError::PodmanMissing(container::PODMAN.into()));
        }
    }
    let servers = parse_servers(&opts.servers)?;
    if !opts.gunicorn && servers != [AppServer::Gunicorn] {
        return Err(LabError::ServersNeedApp);
    }
    let tools = start::Tools::find(opts, &servers)?;
    fs::create_dir_all(&opts.dir)
        .map_err(LabError::io(&opts.dir, "cannot create the lab directory"))?;
    let dir = fs::canonicalize(&opts.dir)
        .map_err(LabError::io(&opts.dir, "cannot resolve the lab directory"))?;
    if dir.join(STATE_FILE).exists() {
        if status(&dir)?
            .hosts
            .iter()
            .any(|h| h.sshd_alive || h.gunicorn_alive)
        {
            return Err(LabError::AlreadyRunning(dir));
        }
        // A stopped lab: sweep up anything its sessions left before reusing the place.
        down(&dir)?;
    } else if dir.join("hosts").exists() {
        return Err(LabError::NotALab(dir));
    }
    let user = account::login_user()?;
    let mut info = start::plan(
        &dir,
        opts.hosts,
        opts.unit_hosts,
        opts.container_hosts,
        &servers,
        &user.name,
    )?;
    if opts.container_hosts > 0 {
        let scripts: Vec<PathBuf> = info
            .hosts
            .iter()
            .filter(|h| h.container.is_some())
            .map(LabHost::start_script)
            .collect();
        account::with_account_lock(|| {
            container::ensure_engine()?;
            account::allow_podman()?;
            account::allow_container_starts(&lab_tag(&info.dir), &scripts)
        })?;
        container::ensure_image()?;
    }
    layout::prepare(&info, &user, &tools)?;
    save(&info)?;
    if let Err(error) = start::launch(&mut info, &user, &tools) {
        let _ = save(&info);
        let _ = down(&dir);
        return Err(error);
    }
    refresh(&mut info);
    save(&info)?;
    Ok(info)
}

/// The servers `--servers` names, in order; at least one.
fn parse_servers(names: &[String]) -> Result<Vec<AppServer>, LabError> {
    if names.is_empty() {
        return Ok(vec![AppServer::Gunicorn]);
    }
    names
        .iter()
        .map(|name| AppServer::parse(name).ok_or_else(|| LabError::UnknownServer(name.to_string())))
        .collect()
}

/// Stops every process of the lab in `dir`: the sshd listeners and Gunicorn
/// masters it recorded, then anything else that belongs to it (see
/// [`process`]). Idempotent: a lab already down gives `stopped: 0`. A
/// directory without `lab.json` is [`LabError::NoLab`]. Files stay, so logs
/// can be read after a failed test; `up` in the same directory reuses it.
pub fn down(dir: &Path) -> Result<LabDown, LabError> {
    let mut info = load(dir)?;
    let prefix = format!("{}/", info.dir.display());
    let mut result = LabDown::default();
    let has_units = info.hosts.iter().any(|h| h.unit.is_some());
    if has_units {
        result.stopped += systemd::stop_units(&info)?;
    }
    if info.hosts.iter().any(|h| h.container.is_some()) {
        result.stopped += container::remove_lab(&info)?;
        account::forbid_container_starts(&lab_tag(&info.dir))?;
    }
    // Rescanned: a master may fork a worker between the snapshot and its TERM.
    for _ in 0..3 {
        let named = named_pids(&info);
        let mut targets = named.clone();
        let procs = process::snapshot();
        let exclude = process::self_and_ancestors(&procs);
        // The named masters' workers too: titled ones (`NAME uWSGI worker 1`,
        // `puma: cluster worker 0: ...`) do not name the lab directory.
        targets.extend(process::select_lab_processes(
            &procs,
            |entry| {
                named.contains(&entry.pid)
                    || entry.cmdline.contains(&prefix)
                    || started_by_session(&info, entry.pid)
            },
            &exclude,
        ));
        targets.sort_unstable();
        targets.dedup();
        targets.retain(|pid| !exclude.contains(pid) && process::is_alive(*pid));
        if targets.is_empty() {
            break;
        }
        let stopped = process::stop(&targets, STOP_GRACE);
        result.stopped += stopped.stopped;
        result.killed += stopped.killed;
    }
    if has_units {
        systemd::remove_unused_cgroups()?;
    }
    refresh(&mut info);
    save(&info)?;
    Ok(result)
}

/// The lab in `dir` as recorded, with its alive flags (and Gunicorn master
/// PIDs, which change on a USR2 upgrade) read afresh.
pub fn status(dir: &Path) -> Result<LabInfo, LabError> {
    let mut info = load(dir)?;
    refresh(&mut info);
    Ok(info)
}

/// The sshd and app server master PIDs of the lab, from lab.json and the
/// pidfiles (with those of an upgrade under way: Gunicorn's `PIDFILE.2`,
/// Unicorn's and nginx's `PIDFILE.oldbin`), that still look like what they
/// were (a PID may have been reused).
fn named_pids(info: &LabInfo) -> Vec<u32> {
    let mut pids = Vec::new();
    for host in &info.hosts {
        let sshd = [host.sshd_pid, read_pidfile(&host.sshd_pidfile())];
        pids.extend(
            sshd.into_iter()
                .flatten()
                .filter(|pid| looks_like(*pid, "sshd", &info.dir)),
        );
        let upgraded = |suffix: &str| {
            read_pidfile(&PathBuf::from(format!(
                "{}{suffix}",
                host.pidfile.display()
            )))
        };
        let masters = [
            host.gunicorn_pid,
            read_pidfile(&host.pidfile),
            upgraded(".2"),
            upgraded(".oldbin"),
        ];
        pids.extend(
            masters
                .into_iter()
                .flatten()
                .filter(|pid| looks_like_app(*pid, host, &info.dir)),
        );
    }
    pids
}

/// A live process whose command line names the lab directory or, with
/// a process title rewriting it, at least the program.
fn looks_like(pid: u32, program: &str, dir: &Path) -> bool {
    looks_like_one_of(pid, &[program], dir)
}

/// A live process that looks like `host`'s app server (see
/// [`AppServer::title_words`]).
fn looks_like_app(pid: u32, host: &LabHost, dir: &Path) -> bool {
    looks_like_one_of(pid, host.server.title_words(), dir)
}

fn looks_like_one_of(pid: u32, programs: &[&str], dir: &Path) -> bool {
    let prefix = format!("{}/", dir.display());
    process::is_alive(pid)
        && process::read_entry(pid).is_some_and(|e| {
            e.cmdline.contains(&prefix) || programs.iter().any(|p| e.cmdline.contains(p))
        })
}

/// True if `pid` runs in (or was started by) an SSH session to a lab host.
fn started_by_session(info: &LabInfo, pid: u32) -> bool {
    let Some(connection) = process::ssh_connection(pid) else {
        return false;
    };
    let fields: Vec<&str> = connection.split_whitespace().collect();
    let [.., address, port] = fields.as_slice() else {
        return false;
    };
    info.hosts
        .iter()
        .any(|h| h.address == *address && h.ssh_port.to_string() == *port)
}

fn refresh(info: &mut LabInfo) {
    let dir = info.dir.clone();
    for host in &mut info.hosts {
        if host.container.is_some() {
            host.gunicorn_pid = container::master_pid(host);
        }
        if let Some(pid) =
            read_pidfile(&host.sshd_pidfile()).filter(|pid| looks_like(*pid, "sshd", &dir))
        {
            host.sshd_pid = Some(pid);
        }
        if let Some(pid) =
            read_pidfile(&host.pidfile).filter(|pid| looks_like_app(*pid, host, &dir))
        {
            host.gunicorn_pid = Some(pid);
        }
        host.sshd_alive = host
            .sshd_pid
            .is_some_and(|pid| looks_like(pid, "sshd", &dir));
        host.gunicorn_alive = host
            .gunicorn_pid
            .is_some_and(|pid| looks_like_app(pid, host, &dir));
    }
}

fn read_pidfile(path: &Path) -> Option<u32> {
    fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 0)
}

fn load(dir: &Path) -> Result<LabInfo, LabError> {
    let path = dir.join(STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(LabError::NoLab(dir.to_path_buf()));
        }
        Err(error) => return Err(LabError::io(&path, "cannot read the lab state")(error)),
    };
    serde_json::from_str(&text).map_err(|source| LabError::BadState { path, source })
}

fn save(info: &LabInfo) -> Result<(), LabError> {
    let path = info.dir.join(STATE_FILE);
    let text = serde_json::to_string_pretty(info).map_err(|source| LabError::BadState {
        path: path.clone(),
        source,
    })?;
    // Written aside and renamed, so a reader never sees half a file.
    let partial = info.dir.join(format!("{STATE_FILE}.partial"));
    fs::write(&partial, text + "\n")
        .map_err(LabError::io(&partial, "cannot write the lab state"))?;
    fs::rename(&partial, &path).map_err(LabError::io(&path, "cannot write the lab state"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole round trip on real sshd and Gunicorn. It
    /// needs OpenSSH and `.venv` (scripts/setup.sh, which scripts/test.sh runs first).
    /// Stops the lab in a directory when a test ends, also when it fails
    /// (before the directory goes).
    struct DownOnDrop<'a>(&'a Path);

    impl Drop for DownOnDrop<'_> {
        fn drop(&mut self) {
            let _ = down(self.0);
        }
    }

    #[test]
    fn up_status_down_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let _down = DownOnDrop(dir.path());
        let info = up(&LabOptions::new(dir.path(), 2)).unwrap();
        assert!(info.hosts.iter().all(|h| h.sshd_alive && h.gunicorn_alive));
        assert!(matches!(
            up(&LabOptions::new(dir.path(), 2)),
            Err(LabError::AlreadyRunning(_))
        ));

        let saved: LabInfo =
            serde_json::from_str(&fs::read_to_string(dir.path().join(STATE_FILE)).unwrap())
                .unwrap();
        process::signal(saved.hosts[0].sshd_pid.unwrap(), libc::SIGKILL);
        std::thread::sleep(Duration::from_millis(200));
        let now = status(dir.path()).unwrap();
        assert!(!now.hosts[0].sshd_alive && now.hosts[1].sshd_alive);

        // Two masters with two workers each, one titled by setproctitle and one not.
        let gunicorns: Vec<u32> = saved
            .hosts
            .iter()
            .filter_map(|h| h.gunicorn_pid)
            .flat_map(|master| std::iter::once(master).chain(process::children(master)))
            .collect();
        assert_eq!(gunicorns.len(), 6, "{gunicorns:?}");
        let stopped = down(dir.path()).unwrap();
        assert!(stopped.stopped >= 3, "{stopped:?}"); // the sshd left and both masters
        assert!(gunicorns.iter().all(|&pid| !process::is_alive(pid)));
        assert!(status(dir.path())
            .unwrap()
            .hosts
            .iter()
            .all(|h| !h.sshd_alive && !h.gunicorn_alive));
        assert_eq!(down(dir.path()).unwrap(), LabDown::default());
    }

    /// Every server of `--servers` on real sshd, with titled and untitled
    /// uWSGI: each answers its release with two workers, its master carries
    /// the title the lab promises, and `down` leaves no process behind.
    #[test]
    fn up_status_down_round_trip_with_every_server() {
        let dir = tempfile::tempdir().unwrap();
        let _down = DownOnDrop(dir.path());
        let mut opts = LabOptions::new(dir.path(), 7);
        opts.servers = "gunicorn,uwsgi,unicorn,puma,nginx"
            .split(',')
            .map(String::from)
            .collect();
        let info = up(&opts).unwrap();
        let servers: Vec<&str> = info.hosts.iter().map(|h| h.server.name()).collect();
        assert_eq!(
            servers,
            ["gunicorn", "uwsgi", "unicorn", "puma", "nginx", "gunicorn", "uwsgi"]
        );
        let mut all = Vec::new();
        for host in &info.hosts {
            assert!(host.sshd_alive && host.gunicorn_alive, "{host:?}");
            assert_eq!(ready::healthz(host).as_deref(), Some("ok v1"), "{host:?}");
            let master = host.gunicorn_pid.unwrap();
            assert_eq!(read_pidfile(&host.pidfile), Some(master));
            let workers = process::children(master);
            assert_eq!(workers.len(), 2, "{}: {workers:?}", host.name);
            let title = |pid: u32| process::read_entry(pid).unwrap().cmdline;
            let (app, name) = (host.app_dir.display(), host.proc_name());
            let (want_master, want_worker) = match host.name.as_str() {
                // Without setproctitle: the venv's python running gunicorn.
                "host06" => (
                    format!("{}/bin/gunicorn --chdir {app}/current", opts.venv.display()),
                    format!("{}/bin/gunicorn --chdir {app}/current", opts.venv.display()),
                ),
                "host01" => (
                    format!("gunicorn: master [{name}]"),
                    format!("gunicorn: worker [{name}]"),
                ),
                "host02" => (
                    format!("/usr/bin/uwsgi --ini {app}/uwsgi.ini"),
                    format!("/usr/bin/uwsgi --ini {app}/uwsgi.ini"),
                ),
                "host03" => (
                    format!("unicorn master -D -c {app}/unicorn.rb {app}/current/config.ru"),
                    format!("unicorn worker[0] -D -c {app}/unicorn.rb {app}/current/config.ru"),
                ),
                "host04" => (
                    format!(
                        "puma 5.6.5 (tcp://{}:{}) [{name}]",
                        host.address, host.http_port
                    ),
                    format!("puma: cluster worker 0: {master} [{name}]"),
                ),
                "host05" => (
                    format!("nginx: master process /usr/sbin/nginx -c {app}/nginx.conf -p {app}/"),
                    "nginx: worker process".to_string(),
                ),
                _ => (
                    format!("{name} uWSGI master"),
                    format!("{name} uWSGI worker 1"),
                ),
            };
            let mut worker_titles: Vec<String> = workers.iter().map(|w| title(*w)).collect();
            worker_titles.sort();
            if host.name == "host06" {
                assert!(title(master).contains(&want_master), "{}", title(master));
                assert!(worker_titles[0].contains(&want_worker), "{worker_titles:?}");
            } else {
                assert_eq!(title(master), want_master);
                assert_eq!(worker_titles[0], want_worker, "{}", host.name);
            }
            all.push(master);
            all.extend(workers);
        }
        assert!(status(dir.path())
            .unwrap()
            .hosts
            .iter()
            .all(|h| h.sshd_alive && h.gunicorn_alive));

        let stopped = down(dir.path()).unwrap();
        assert!(stopped.stopped >= 7 * 4, "{stopped:?}");
        let left: Vec<u32> = all.into_iter().filter(|p| process::is_alive(*p)).collect();
        assert_eq!(left, [] as [u32; 0]);
        assert!(status(dir.path())
            .unwrap()
            .hosts
            .iter()
            .all(|h| !h.sshd_alive && !h.gunicorn_alive));
    }

    #[test]
    fn an_unknown_server_is_refused_before_anything_starts() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = LabOptions::new(dir.path(), 1);
        opts.servers = vec!["apache".into()];
        let error = up(&opts).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown app server `apache` in --servers: choose from gunicorn, uwsgi, unicorn, puma, nginx"
        );
        assert!(!dir.path().join(STATE_FILE).exists());
    }
}
