//! The lab's containers: some hosts run their Gunicorn in a real rootful
//! Podman container instead of as a daemon, one of each way a container's
//! PID 1 can relate to the Gunicorn master.
//!
//! The engine is the machine's own rootful Podman with its default storage,
//! set up by a drop-in (`runc`, cgroupfs, modest ulimits, a file events log)
//! so that `podman` run by hand or by herd over ssh sees the same containers.
//! The image is built offline, once per machine: a Debian rootfs from
//! `mmdebstrap` (cached as a tarball) imported as [`IMAGE`]. The app code is
//! not in the image: each host's app directory is bind-mounted at the same
//! path, so a deploy that moves `current` on the host changes what workers
//! started after a HUP import. Containers use the host network, Gunicorn
//! bound to the host's 127.0.0.x address.

use std::fmt;
use std::fs;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::{Deserialize, Serialize};

use super::{process, LabError, LabHost};

/// The engine, by absolute path (as the sudoers rule names it).
pub const PODMAN: &str = "/usr/bin/podman";
/// The image every container host runs, built on this machine.
pub const IMAGE: &str = "localhost/herd-lab-gunicorn:v1";
/// Where the rootfs tarball is cached between labs.
pub const CACHE_DIR: &str = "/var/tmp/herd-lab";
/// The cached rootfs tarball, under [`CACHE_DIR`].
pub const ROOTFS: &str = "rootfs-v1.tar";
/// The engine settings the lab writes, read by every `podman` on the machine.
pub const ENGINE_CONF: &str = "/etc/containers/containers.conf.d/herd-lab.conf";
/// The Debian suite of the image.
const SUITE: &str = "bookworm";
/// What the image holds beyond minbase.
const PACKAGES: &str = "python3-gunicorn,python3-setproctitle,procps";
/// How long `podman rm` waits after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT_SECS: u32 = 3;

/// The engine settings: runc (crun refuses a hybrid cgroup layout), cgroupfs
/// (no systemd to manage cgroups), ulimits a VM without `CAP_SYS_RESOURCE`
/// can set, catatonit for `--init`, and events in a file (no journald).
pub const ENGINE_SETTINGS: &str =
    "# herd lab: the engine its containers run on (written by `herd lab up`)\n\
[containers]\n\
default_ulimits = [\"nofile=8192:8192\", \"nproc=8192:8192\"]\n\
init_path = \"/usr/bin/catatonit\"\n\
\n\
[engine]\n\
runtime = \"runc\"\n\
cgroup_manager = \"cgroupfs\"\n\
events_logger = \"file\"\n";

/// What a container host's PID 1 is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pid1 {
    /// The command in exec form: the Gunicorn master is PID 1.
    Exec,
    /// `podman run --init`: catatonit is PID 1, the master its only child.
    Init,
    /// A shell that stays PID 1 with the master as its child: signals sent
    /// to the container reach the shell, which ignores them.
    Shell,
}

impl Pid1 {
    /// The case of the `index`-th container host (0-based): exec, init,
    /// shell, then again.
    pub fn nth(index: usize) -> Pid1 {
        [Pid1::Exec, Pid1::Init, Pid1::Shell][index % 3]
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Pid1::Exec => "exec",
            Pid1::Init => "init",
            Pid1::Shell => "shell",
        }
    }

    pub fn parse(text: &str) -> Option<Pid1> {
        [Pid1::Exec, Pid1::Init, Pid1::Shell]
            .into_iter()
            .find(|case| case.as_str() == text)
    }
}

impl fmt::Display for Pid1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// True if `podman` is installed where the lab runs it.
pub fn engine_installed() -> bool {
    Path::new(PODMAN).is_file()
}

/// Writes [`ENGINE_CONF`] unless it already says [`ENGINE_SETTINGS`].
pub fn ensure_engine() -> Result<(), LabError> {
    let path = Path::new(ENGINE_CONF);
    if fs::read_to_string(path).ok().as_deref() == Some(ENGINE_SETTINGS) {
        return Ok(());
    }
    let folder = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(folder).map_err(LabError::io(folder, "cannot create the folder"))?;
    // podman reads only `*.conf`: the partial file is skipped until renamed.
    let partial = path.with_extension("conf.partial");
    fs::write(&partial, ENGINE_SETTINGS)
        .map_err(LabError::io(&partial, "cannot write the engine settings"))?;
    fs::rename(&partial, path).map_err(LabError::io(path, "cannot write the engine settings"))
}

/// What [`ensure_image`] had to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageWork {
    /// The rootfs tarball was built (mmdebstrap ran).
    pub built_rootfs: bool,
    /// The image was imported.
    pub imported: bool,
}

/// Makes sure [`IMAGE`] exists: imports the cached rootfs tarball, building
/// it first with mmdebstrap from the host's apt mirror when it is missing.
/// Labs side by side (threads or processes) wait for one another here.
pub fn ensure_image() -> Result<ImageWork, LabError> {
    let cache = Path::new(CACHE_DIR);
    fs::create_dir_all(cache).map_err(LabError::io(cache, "cannot create the image cache"))?;
    let _lock = FileLock::take(&cache.join("image.lock"))?;
    let mut work = ImageWork::default();
    if podman(&["image", "exists", IMAGE])?.status.success() {
        return Ok(work);
    }
    let rootfs = cache.join(ROOTFS);
    if !rootfs.is_file() {
        build_rootfs(&rootfs)?;
        work.built_rootfs = true;
    }
    let rootfs_text = rootfs.to_string_lossy().into_owned();
    podman_ok(&[
        "import",
        "--quiet",
        "--change",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change",
        "ENV PYTHONDONTWRITEBYTECODE=1",
        &rootfs_text,
        IMAGE,
    ])?;
    work.imported = true;
    Ok(work)
}

fn build_rootfs(rootfs: &Path) -> Result<(), LabError> {
    let mirror = apt_mirror().unwrap_or_else(|| "http://deb.debian.org/debian".to_string());
    // Built aside and renamed: a build cut short never passes for a cache.
    let partial = rootfs.with_extension("tar.partial");
    let _ = fs::remove_file(&partial);
    let output = Command::new("mmdebstrap")
        .args(["--quiet", "--variant=minbase"])
        .arg(format!("--include={PACKAGES}"))
        .arg("--aptopt=APT::Install-Recommends \"false\"")
        .arg("--dpkgopt=path-exclude=/usr/share/{doc,man,locale}/*")
        .args(["--format=tar", SUITE])
        .arg(&partial)
        .arg(&mirror)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| LabError::Command {
            command: "mmdebstrap".into(),
            detail: format!("{error} (run scripts/setup.sh)"),
        })?;
    if !output.status.success() {
        let _ = fs::remove_file(&partial);
        return Err(LabError::Command {
            command: format!("mmdebstrap {SUITE} {mirror}"),
            detail: last_lines(&output.stderr, 20),
        });
    }
    fs::rename(&partial, rootfs).map_err(LabError::io(rootfs, "cannot keep the rootfs"))
}

/// The Debian mirror this machine's apt uses (deb822 `.sources` or a
/// one-line `.list`).
fn apt_mirror() -> Option<String> {
    let mut sources: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    sources.sort();
    let deb822 = sources
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sources"))
        .filter_map(|p| fs::read_to_string(p).ok())
        .find_map(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("URIs:"))
                .and_then(|uris| uris.split_whitespace().next().map(str::to_string))
        });
    deb822.or_else(|| {
        std::iter::once(PathBuf::from("/etc/apt/sources.list"))
            .chain(
                sources
                    .into_iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "list")),
            )
            .filter_map(|p| fs::read_to_string(p).ok())
            .find_map(|text| {
                text.lines().find_map(|line| {
                    let mut words = line.split_whitespace();
                    (words.next() == Some("deb"))
                        .then(|| words.find(|w| !w.starts_with('[')))
                        .flatten()
                        .map(str::to_string)
                })
            })
    })
}

/// The words after `podman` that start `host`'s container: detached, host
/// network, the app directory mounted at its own path, never pulling.
pub fn run_args(host: &LabHost, pid1: Pid1, workers: usize) -> Vec<String> {
    let app = host.app_dir.to_string_lossy().into_owned();
    let name = host.proc_name();
    let mut args: Vec<String> = [
        "run",
        "--detach",
        "--pull=never",
        "--network=host",
        "--name",
        &name,
        "--label",
        &format!("{LAB_LABEL}={}", lab_dir(host).display()),
        "--volume",
        &format!("{app}:{app}"),
        "--env",
        &format!("HERD_LAB_HOST={}", host.name),
        "--workdir",
        &app,
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    // Compose's labels, as `docker compose` would set them: the lab's
    // containers that can be reloaded form the service `web` of a project
    // named after the lab; the shell case is a service of its own.
    let service = if pid1 == Pid1::Shell { "shell" } else { "web" };
    for label in [
        format!(
            "com.docker.compose.project={}",
            super::lab_tag(lab_dir(host))
        ),
        format!("com.docker.compose.service={service}"),
    ] {
        args.push("--label".into());
        args.push(label);
    }
    if pid1 == Pid1::Init {
        args.push("--init".into());
    }
    args.push(IMAGE.into());
    let gunicorn: Vec<String> = [
        "python3",
        "-m",
        "gunicorn",
        "--chdir",
        &format!("{app}/current"),
        "--bind",
        &format!("{}:{}", host.address, host.http_port),
        "--workers",
        &workers.to_string(),
        "--name",
        &name,
        "--log-file",
        &host.app_log().to_string_lossy(),
        "--config",
        &format!("{app}/gunicorn.conf.py"),
        "app:application",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    match pid1 {
        Pid1::Exec | Pid1::Init => args.extend(gunicorn),
        Pid1::Shell => {
            // Not a lone command: a shell may exec that in its own place. The
            // shell waits, then says how Gunicorn ended, so it stays PID 1.
            let line: Vec<String> = gunicorn.iter().map(|w| crate::shell::quote(w)).collect();
            let script = format!(
                "{}; status=$?; echo \"herd lab: gunicorn exited with $status\" >&2; exit $status",
                line.join(" ")
            );
            args.extend(["/bin/sh".to_string(), "-c".to_string(), script]);
        }
    }
    args
}

/// The label on every lab container: the directory of the lab it belongs to.
pub const LAB_LABEL: &str = "herd-lab.dir";

fn lab_dir(host: &LabHost) -> &Path {
    host.host_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(&host.host_dir)
}

/// Removes the containers of the lab `info`: those its hosts name, and any
/// other labelled with its directory. Other labs' containers are left alone.
pub fn remove_lab(info: &super::LabInfo) -> Result<usize, LabError> {
    if !engine_installed() {
        return Ok(0);
    }
    let mut names: Vec<String> = info
        .hosts
        .iter()
        .filter_map(|h| h.container.clone())
        .collect();
    let filter = format!("label={LAB_LABEL}={}", info.dir.display());
    if let Ok(output) = podman(&["ps", "--all", "--filter", &filter, "--format", "{{.Names}}"]) {
        if output.status.success() {
            names.extend(
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(str::to_string),
            );
        }
    }
    names.sort();
    names.dedup();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    remove(&names)
}

/// Starts `host`'s container afresh (a stopped one of the same name, left
/// by this lab, is removed first).
pub fn start(host: &LabHost) -> Result<(), LabError> {
    let (Some(name), Some(pid1)) = (&host.container, host.pid1.as_deref().and_then(Pid1::parse))
    else {
        return Ok(());
    };
    let app = host.app_dir.to_string_lossy();
    if app.contains([':', ',']) {
        return Err(LabError::Command {
            command: "podman run".into(),
            detail: format!("cannot mount {app}: a lab directory for containers may not have ':' or ',' in its path"),
        });
    }
    podman_ok(&["rm", "--force", "--ignore", "--time", "0", name])?;
    let args = run_args(host, pid1, super::start::WORKERS);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    podman_ok(&args).map(|_| ())
}

/// The host PID of `name`'s PID 1, if the container runs.
pub fn pid1_host_pid(name: &str) -> Option<u32> {
    let output = podman(&["inspect", "--format", "{{.State.Pid}}", name]).ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 0)
}

/// The host PID of `host`'s Gunicorn master: PID 1 itself (exec), or PID 1's
/// child (init, shell).
pub fn master_pid(host: &LabHost) -> Option<u32> {
    let pid1 = pid1_host_pid(host.container.as_deref()?)?;
    match host.pid1.as_deref().and_then(Pid1::parse)? {
        Pid1::Exec => Some(pid1),
        Pid1::Init | Pid1::Shell => process::children(pid1).into_iter().next(),
    }
}

/// Removes the containers named (`podman rm -f`: SIGTERM, SIGKILL after
/// [`STOP_TIMEOUT_SECS`]); missing ones are fine. Returns how many of their
/// processes were running and are gone.
pub fn remove(names: &[&str]) -> Result<usize, LabError> {
    if names.is_empty() || !engine_installed() {
        return Ok(0);
    }
    let running: Vec<u32> = names
        .iter()
        .filter_map(|name| pid1_host_pid(name))
        .flat_map(descendants_and_self)
        .collect();
    let timeout = STOP_TIMEOUT_SECS.to_string();
    let mut args = vec!["rm", "--force", "--ignore", "--time", &timeout];
    args.extend(names);
    podman_ok(&args)?;
    Ok(running
        .iter()
        .filter(|pid| !process::is_alive(**pid))
        .count())
}

fn descendants_and_self(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut next = 0;
    while next < all.len() {
        all.extend(process::children(all[next]));
        next += 1;
    }
    all
}

/// Runs `podman ARGS` as this process (root).
pub fn podman(args: &[&str]) -> Result<Output, LabError> {
    Command::new(PODMAN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| LabError::Command {
            command: format!("podman {}", args.join(" ")),
            detail: format!("{error} (run scripts/setup.sh)"),
        })
}

fn podman_ok(args: &[&str]) -> Result<Output, LabError> {
    let output = podman(args)?;
    if output.status.success() {
        return Ok(output);
    }
    Err(LabError::Command {
        command: format!("podman {}", args.join(" ")),
        detail: last_lines(&output.stderr, 10),
    })
}

fn last_lines(bytes: &[u8], count: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// An exclusive `flock` on a file, released when dropped (or when the
/// process dies).
struct FileLock(fs::File);

impl FileLock {
    fn take(path: &Path) -> Result<FileLock, LabError> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(LabError::io(path, "cannot open the lock"))?;
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(FileLock(file));
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(LabError::io(path, "cannot lock")(error));
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking a descriptor this value owns.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_go_exec_init_shell_and_again() {
        let cases: Vec<&str> = (0..4).map(|i| Pid1::nth(i).as_str()).collect();
        assert_eq!(cases, ["exec", "init", "shell", "exec"]);
        assert_eq!(Pid1::parse("init"), Some(Pid1::Init));
        assert_eq!(Pid1::parse("tini"), None);
    }

    fn host() -> LabHost {
        let host = super::super::start::plan(Path::new("/tmp/lab"), 1, 0, 1, &[], "herd-lab")
            .unwrap()
            .hosts
            .remove(0);
        assert!(host.container.is_some());
        host
    }

    #[test]
    fn exec_and_init_run_gunicorn_itself_and_never_pull() {
        let host = host();
        let exec = run_args(&host, Pid1::Exec, 2);
        let at = exec.iter().position(|w| w == IMAGE).unwrap();
        assert_eq!(exec[at + 1..at + 4], ["python3", "-m", "gunicorn"]);
        assert!(exec.contains(&"--pull=never".to_string()));
        assert!(exec.contains(&"/tmp/lab/hosts/host01/app:/tmp/lab/hosts/host01/app".to_string()));
        assert!(!exec.contains(&"--init".to_string()));
        let init = run_args(&host, Pid1::Init, 2);
        assert!(init[..init.iter().position(|w| w == IMAGE).unwrap()].contains(&"--init".into()));
    }

    #[test]
    fn the_shell_case_is_not_a_lone_command() {
        let args = run_args(&host(), Pid1::Shell, 2);
        let at = args.iter().position(|w| w == IMAGE).unwrap();
        assert_eq!(args[at + 1..at + 3], ["/bin/sh", "-c"]);
        let script = &args[at + 3];
        assert!(script.starts_with("python3 -m gunicorn --chdir /tmp/lab/hosts/host01/app/current"));
        assert!(script.ends_with("; exit $status"), "{script}");
    }
}
