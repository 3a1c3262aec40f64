//! Writing a lab to disk: keys, known_hosts, authorized_keys, sshd configs,
//! each host's app layout and the inventory, with the ownership and modes the
//! lab user and sshd need.

use std::fs;
use std::os::unix::fs::{chown, lchown, symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use super::account::{self, LoginUser};
use super::render::{self, InventoryVars, SshdSettings};
use super::server_files;
use super::start::{parallel, Tools, START_WIDTH};
use super::{systemd, AppServer, LabError, LabHost, LabInfo};

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
        if info.hosts.iter().any(|h| h.unit.is_some()) {
            let app = account::app_user()?;
            for path in &reachable {
                check_reachable(&app, path)?;
            }
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
    if info.deploy_user.is_some() {
        account::with_account_lock(|| account::deploy_user(user))?;
    }

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
            deploy_user: info.deploy_user.as_deref(),
        };
        write_file(
            &host.sshd_config(),
            &render::sshd_config(host, &settings),
            0o644,
        )?;
        write_file(&host.sshd_log(), "", 0o644)?;
        lay_out_app(host, user, info.deploy_user.is_some())?;
        if let Some(gunicorn) = &tools.gunicorn {
            let script = match (&host.container, &host.unit) {
                (Some(container), _) => render::container_start_script(host, container),
                (None, Some(unit)) => {
                    let app = account::app_user()?;
                    render::unit_start_script(host, unit, &systemd::runtime_dir(app.uid))
                }
                (None, None) => match server_files::start_script(host) {
                    Some(script) => script,
                    None => render::start_script(host, gunicorn, dir),
                },
            };
            write_file(&host.start_script(), &script, 0o755)?;
            if user.switch_to {
                give_tree(&host.start_script(), user)?;
            }
        }
    }
    let no_titles = dir.join(render::NO_TITLES_DIR);
    make_dir(&no_titles)?;
    write_file(
        &no_titles.join("setproctitle.py"),
        render::NO_TITLES_MODULE,
        0o644,
    )?;

    let vars = InventoryVars {
        gunicorn: tools.gunicorn.as_deref(),
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

/// `releases/v1/{app.py,config.ru,release.conf,RELEASE}` (every server's app,
/// so one deploy step that copies a release works on every host),
/// `current -> releases/v1`, `shared/`, the server's config and an empty
/// log, all owned by the login user (who deploys there). On a
/// unit host, `run/` (pidfile, log, control socket) belongs to the app
/// account. With a deploy account, the directories a deploy writes are
/// group-writable and setgid, so it deploys through the login user's group.
fn lay_out_app(host: &LabHost, user: &LoginUser, shared_group: bool) -> Result<(), LabError> {
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
    write_file(&release.join("config.ru"), server_files::CONFIG_RU, 0o644)?;
    write_file(
        &release.join("release.conf"),
        &server_files::release_conf(render::FIRST_RELEASE),
        0o644,
    )?;
    write_file(
        &release.join("RELEASE"),
        &format!("{}\n", render::FIRST_RELEASE),
        0o644,
    )?;
    let current = host.app_dir.join("current");
    symlink(format!("releases/{}", render::FIRST_RELEASE), &current)
        .map_err(LabError::io(&current, "cannot link the current release"))?;
    if host.unit.is_some() {
        make_dir(&host.run_dir())?;
    }
    write_file(&host.app_log(), "", 0o644)?;
    if let Some(dir) = host.app_conf().parent().filter(|d| *d != host.app_dir) {
        make_dir(dir)?;
    }
    match server_files::config(host) {
        Some(config) => write_file(&host.app_conf(), &config, 0o644)?,
        None => write_file(&host.app_conf(), &render::gunicorn_conf(host), 0o644)?,
    }
    if host.server == AppServer::Nginx {
        make_dir(&host.app_dir.join(server_files::NGINX_TEMP_DIR))?;
    }
    if user.switch_to {
        give_tree(&host.app_dir, user)?;
    }
    if host.unit.is_some() {
        give_tree(&host.run_dir(), &account::app_user()?)?;
    }
    if shared_group {
        for dir in [
            &host.app_dir,
            &host.app_dir.join("releases"),
            &host.app_dir.join("shared"),
        ] {
            set_mode(dir, 0o2775)?;
        }
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

pub(super) fn append(path: &Path) -> Result<fs::File, LabError> {
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
