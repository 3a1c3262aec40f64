//! The text files a lab is made of: sshd_config, known_hosts, the inventory
//! and the Gunicorn app. Pure functions of the lab's plan, so they are tested
//! without starting anything.

use std::fmt::Write as _;
use std::path::Path;

use super::{AppServer, LabHost};

/// Loopback addresses hosts are spread over; 127.0.0.1 stays free for
/// whatever else runs on the machine.
const FIRST_OCTET: usize = 2;
const LAST_OCTET: usize = 254;

/// The inventory name of the `index`-th host (1-based): host01, host02...
pub fn host_name(index: usize) -> String {
    format!("host{index:02}")
}

/// The address of the `index`-th host (1-based): host01 is 127.0.0.2, and past
/// 127.0.0.254 the addresses wrap (ports keep such hosts apart).
pub fn host_address(index: usize) -> String {
    let span = LAST_OCTET - FIRST_OCTET + 1;
    let octet = FIRST_OCTET + (index.max(1) - 1) % span;
    format!("127.0.0.{octet}")
}

/// What sshd_config needs beyond the host itself.
pub struct SshdSettings<'a> {
    pub host_key: &'a Path,
    pub pidfile: &'a Path,
    pub authorized_keys: &'a Path,
    pub user: &'a str,
    /// The deploy account, also let in when the lab has one.
    pub deploy_user: Option<&'a str>,
}

/// One host's sshd_config. `MaxStartups` is far above the 10:30:100 default,
/// which drops handshakes when herd connects to every host at once.
pub fn sshd_config(host: &LabHost, settings: &SshdSettings) -> String {
    format!(
        "# herd lab: {name}\n\
         ListenAddress {address}:{port}\n\
         HostKey {host_key}\n\
         PidFile {pidfile}\n\
         AuthorizedKeysFile {authorized_keys}\n\
         StrictModes no\n\
         UsePAM no\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin no\n\
         AllowUsers {users}\n\
         MaxStartups 1000:30:2000\n\
         MaxSessions 200\n\
         LogLevel DEBUG1\n\
         Subsystem sftp internal-sftp\n\
         AllowTcpForwarding yes\n\
         UseDNS no\n\
         PrintMotd no\n",
        name = host.name,
        address = host.address,
        port = host.ssh_port,
        host_key = settings.host_key.display(),
        pidfile = settings.pidfile.display(),
        authorized_keys = settings.authorized_keys.display(),
        users = match settings.deploy_user {
            Some(deploy) => format!("{} {deploy}", settings.user),
            None => settings.user.to_string(),
        },
    )
}

/// One known_hosts line for a host, from its public key file's contents
/// (`ssh-ed25519 AAAA... comment`); the comment is dropped.
pub fn known_hosts_line(host: &LabHost, public_key: &str) -> String {
    let key: Vec<&str> = public_key.split_whitespace().take(2).collect();
    format!("[{}]:{} {}\n", host.address, host.ssh_port, key.join(" "))
}

/// What the inventory says for every host.
pub struct InventoryVars<'a> {
    /// The venv's gunicorn, for preflights (`--check-config`).
    pub gunicorn: Option<&'a Path>,
    pub user: &'a str,
    pub private_key: &'a Path,
    pub known_hosts: &'a Path,
}

/// The lab's inventory, in Ansible's YAML format, every path absolute.
pub fn inventory(hosts: &[LabHost], vars: &InventoryVars) -> String {
    let mut out = String::new();
    out.push_str("# herd lab inventory (generated; `herd lab down` leaves it behind)\n");
    out.push_str("all:\n  vars:\n");
    let _ = writeln!(out, "    ansible_user: {}", scalar(vars.user));
    let _ = writeln!(
        out,
        "    ansible_ssh_private_key_file: {}",
        path(vars.private_key)
    );
    let _ = writeln!(out, "    herd_known_hosts: {}", path(vars.known_hosts));
    if let Some(gunicorn) = vars.gunicorn {
        let _ = writeln!(out, "    gunicorn_bin: {}", path(gunicorn));
    }
    out.push_str("  children:\n    web:\n      hosts:\n");
    for host in hosts {
        let _ = writeln!(
            out,
            "        {}: {{ ansible_host: {}, ansible_port: {}, app_dir: {}, http_port: {}, gunicorn_pidfile: {}, gunicorn_name: {}, app_start: {}, app_server: {}, app_pidfile: {}, app_conf: {}, app_preflight: {}, app_preload: {}, proc_titles: {}, app_unit: {}, app_container: {}, app_engine: podman, app_user: {}, herd_audit_log: {}, herd_lock_file: {} }}",
            scalar(&host.name),
            scalar(&host.address),
            host.ssh_port,
            path(&host.app_dir),
            host.http_port,
            path(&host.pidfile),
            scalar(&host.proc_name()),
            path(&host.start_script()),
            host.server.name(),
            path(&host.pidfile),
            path(&host.app_conf()),
            scalar_or_empty(&preflight(host, vars.gunicorn)),
            // Puma's title hides the config file it read, so herd cannot
            // tell whether it preloads: the lab, which wrote it, says.
            if host.server == AppServer::Puma { "\"false\"" } else { "\"\"" },
            host.proc_titles,
            // On a plain host, a unit that does not exist: one playbook
            // works on every host.
            scalar(host.unit.clone().unwrap_or_else(|| host.unit_name()).as_str()),
            // Likewise a container that does not exist on other hosts.
            scalar(host.container.clone().unwrap_or_else(|| host.proc_name()).as_str()),
            scalar(&host.app_user),
            // Every lab host logs in as the same user on the same machine, so
            // the default audit log and lock in the home directory would be
            // shared.
            path(&host.app_dir.join(".herd-audit.log")),
            path(&host.app_dir.join(".herd-deploy.lock")),
        );
    }
    out
}

/// The shell command that checks a host's new release before its server is
/// signalled: Gunicorn's `--check-config` of the app in `current`. Empty for
/// the other servers (herd knows nginx's `nginx -t`; the others have none
/// that loads the app without serving it).
fn preflight(host: &LabHost, gunicorn: Option<&Path>) -> String {
    match (host.server, gunicorn) {
        (AppServer::Gunicorn, Some(gunicorn)) => format!(
            "{} --check-config --chdir {} app:application",
            crate::shell::quote(&gunicorn.to_string_lossy()),
            crate::shell::quote(&host.app_dir.join("current").to_string_lossy()),
        ),
        _ => String::new(),
    }
}

fn scalar_or_empty(value: &str) -> String {
    if value.is_empty() {
        "\"\"".to_string()
    } else {
        scalar(value)
    }
}

fn path(path: &Path) -> String {
    scalar(&path.to_string_lossy())
}

/// A YAML scalar for `value`: bare when it is plainly a word or a path, double
/// quoted (JSON string syntax, which YAML reads the same) otherwise.
fn scalar(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
        && !value.starts_with(['-', '.'])
        && !matches!(
            value,
            "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "~"
        );
    if plain {
        value.to_string()
    } else {
        serde_json::Value::from(value).to_string()
    }
}

/// Gunicorn settings that must not go on the command line: a Gunicorn too
/// old to know one ignores it in a config file but refuses it as an option.
/// Each host gets its own control socket (Gunicorn 24+ puts one per user in
/// `~/.gunicorn`, which every lab host would share).
pub fn gunicorn_conf(host: &LabHost) -> String {
    if host.container.is_some() {
        // Debian's Gunicorn in the image has no control socket; and none
        // should be in the app directory that the container shares.
        return format!("# herd lab: {name} (in a container)\n", name = host.name);
    }
    let socket = match host.unit {
        Some(_) => host.run_dir().join("gunicorn.ctl"),
        None => host.app_dir.join("gunicorn.ctl"),
    };
    format!(
        "# herd lab: {name}\ncontrol_socket = {socket}\n",
        name = host.name,
        socket = serde_json::Value::from(socket.to_string_lossy()),
    )
}

/// The directory whose `setproctitle.py` hides the real module, for hosts
/// that run Gunicorn without process titles.
pub const NO_TITLES_DIR: &str = "no-setproctitle";
pub const NO_TITLES_MODULE: &str =
    "raise ImportError(\"setproctitle is turned off on this herd lab host\")\n";

/// The script that starts a host's Gunicorn as a daemon. The lab runs it,
/// and a playbook's `reload.start` can too. `--chdir` gets the symlink path,
/// not its target: workers started after a HUP import whatever release
/// `current` points to by then.
pub fn start_script(host: &LabHost, gunicorn: &Path, lab_dir: &Path) -> String {
    let quote = |p: &Path| crate::shell::quote(&p.to_string_lossy());
    let titles = if host.proc_titles {
        String::new()
    } else {
        format!(
            "export PYTHONPATH={}\n",
            quote(&lab_dir.join(NO_TITLES_DIR))
        )
    };
    format!(
        "#!/bin/sh\n# herd lab: starts {name}'s Gunicorn as a daemon\n\
         cd {app} || exit 1\n\
         export HERD_LAB_HOST={name} PYTHONDONTWRITEBYTECODE=1\n{titles}\
         exec {gunicorn} --chdir {current} --bind {address}:{port} --workers {workers} \\\n  \
         --name {proc_name} --daemon --pid {pidfile} --log-file {log} --config {conf} app:application\n",
        name = host.name,
        proc_name = host.proc_name(),
        app = quote(&host.app_dir),
        gunicorn = quote(gunicorn),
        current = quote(&host.app_dir.join("current")),
        address = host.address,
        port = host.http_port,
        workers = super::start::WORKERS,
        pidfile = quote(&host.pidfile),
        log = quote(&host.app_log()),
        conf = quote(&host.app_dir.join("gunicorn.conf.py")),
    )
}

/// A unit host's systemd user unit: the start script's Gunicorn in the
/// foreground (`Type=notify`: Gunicorn tells systemd when it serves), with
/// `ExecReload` when `host.unit_reload`. Its output goes to a file: the lab's
/// user manager has no journald.
pub fn unit_file(host: &LabHost, gunicorn: &Path, lab_dir: &Path) -> String {
    let arg = |p: &Path| unit_quote(&p.to_string_lossy());
    let titles = if host.proc_titles {
        String::new()
    } else {
        format!(
            "Environment={}\n",
            unit_quote(&format!(
                "PYTHONPATH={}",
                lab_dir.join(NO_TITLES_DIR).display()
            ))
        )
    };
    let reload = if host.unit_reload {
        "ExecReload=/bin/kill -HUP $MAINPID\n"
    } else {
        ""
    };
    let log = host.app_log();
    format!(
        "# herd lab: {name}'s Gunicorn\n\
         # herd lab dir: {lab}\n\
         [Unit]\n\
         Description=herd lab {name} ({proc_name})\n\
         \n\
         [Service]\n\
         Type=notify\n\
         WorkingDirectory={app}\n\
         Environment=HERD_LAB_HOST={name} PYTHONDONTWRITEBYTECODE=1\n\
         {titles}\
         ExecStart={gunicorn} --chdir {current} --bind {address}:{port} --workers {workers} \
         --name {proc_name} --pid {pidfile} --config {conf} app:application\n\
         {reload}\
         KillMode=mixed\n\
         StandardOutput=append:{log}\n\
         StandardError=append:{log}\n",
        name = host.name,
        lab = lab_dir.display(),
        proc_name = host.proc_name(),
        app = arg(&host.app_dir),
        gunicorn = arg(gunicorn),
        current = arg(&host.app_dir.join("current")),
        address = host.address,
        port = host.http_port,
        workers = super::start::WORKERS,
        pidfile = arg(&host.pidfile),
        conf = arg(&host.app_dir.join("gunicorn.conf.py")),
        log = log.display(),
    )
}

/// The line of a unit file that names the lab it belongs to, so units left
/// by a lab whose directory is gone can be told apart.
pub fn unit_lab_dir(unit_text: &str) -> Option<&Path> {
    unit_text
        .lines()
        .find_map(|line| line.strip_prefix("# herd lab dir: "))
        .map(Path::new)
}

/// A word of a unit file's command line or assignment: bare when plain,
/// double quoted otherwise; `$` and `%` doubled so systemd takes them as is.
fn unit_quote(text: &str) -> String {
    let escaped = text.replace('%', "%%").replace('$', "$$");
    if !escaped.is_empty()
        && escaped
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%$".contains(c))
    {
        return escaped;
    }
    let mut out = String::from("\"");
    for c in escaped.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A unit host's `reload.start`: starts the unit through the app account's
/// user manager, as the app account (under `become_user`) or, from the
/// login account, through sudo.
pub fn unit_start_script(host: &LabHost, unit: &str, runtime_dir: &Path) -> String {
    let quote = |t: &str| crate::shell::quote(t);
    format!(
        "#!/bin/sh\n# herd lab: starts {name}'s Gunicorn unit\n\
         export XDG_RUNTIME_DIR={runtime}\n\
         [ \"$(id -un)\" = {app_user} ] && exec systemctl --user start {unit}\n\
         exec sudo -n -u {app_user} -- systemctl --user start {unit}\n",
        name = host.name,
        runtime = quote(&runtime_dir.to_string_lossy()),
        app_user = quote(&host.app_user),
        unit = quote(unit),
    )
}

/// A container host's `reload.start`: starts its container again (the
/// container keeps its command and mounts), directly as root or through
/// `sudo -n` from the login account.
pub fn container_start_script(host: &LabHost, container: &str) -> String {
    let quote = |t: &str| crate::shell::quote(t);
    format!(
        "#!/bin/sh\n# herd lab: starts {name}'s Gunicorn container\n\
         [ \"$(id -u)\" = 0 ] && exec {podman} start {container}\n\
         exec sudo -n {podman} start {container}\n",
        name = host.name,
        podman = super::container::PODMAN,
        container = quote(container),
    )
}

/// The release marker a fresh host starts on.
pub const FIRST_RELEASE: &str = "v1";

/// The WSGI app every host serves (`app:application`). It reads `RELEASE` next
/// to itself when imported, so a worker started after the `current` symlink
/// moved serves the new release: that is what a reload must prove.
pub const APP_PY: &str = r#""""herd lab app: answers with the release its workers imported."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "RELEASE")) as release_file:
    RELEASE = release_file.read().strip()
HOST = os.environ.get("HERD_LAB_HOST", "unknown")


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/healthz":
        status, body = "200 OK", "ok %s\n" % RELEASE
    elif path == "/":
        status, body = "200 OK", "%s %s pid=%d\n" % (HOST, RELEASE, os.getpid())
    else:
        status, body = "404 Not Found", "not found\n"
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
"#;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn host(index: usize) -> LabHost {
        let app_dir = PathBuf::from(format!("/tmp/lab/hosts/{}/app", host_name(index)));
        LabHost {
            name: host_name(index),
            address: host_address(index),
            ssh_port: 40000 + index as u16,
            http_port: 41000 + index as u16,
            host_dir: app_dir.parent().unwrap().to_path_buf(),
            pidfile: app_dir.join("gunicorn.pid"),
            app_dir,
            server: AppServer::Gunicorn,
            sshd_pid: None,
            gunicorn_pid: None,
            sshd_alive: false,
            gunicorn_alive: false,
            proc_titles: index % 2 == 1,
            unit: None,
            unit_reload: false,
            app_user: "herd-lab".into(),
            container: None,
            pid1: None,
        }
    }

    #[test]
    fn hosts_are_numbered_from_01() {
        assert_eq!(host_name(1), "host01");
        assert_eq!(host_name(12), "host12");
        assert_eq!(host_name(100), "host100");
    }

    #[test]
    fn addresses_start_at_2_and_wrap_before_255() {
        assert_eq!(host_address(1), "127.0.0.2");
        assert_eq!(host_address(2), "127.0.0.3");
        assert_eq!(host_address(253), "127.0.0.254");
        assert_eq!(host_address(254), "127.0.0.2");
        assert_eq!(host_address(507), "127.0.0.2");
    }

    #[test]
    fn sshd_config_listens_on_the_host_and_admits_only_the_lab_user() {
        let text = sshd_config(
            &host(1),
            &SshdSettings {
                host_key: Path::new("/tmp/lab/hosts/host01/ssh_host_ed25519_key"),
                pidfile: Path::new("/tmp/lab/hosts/host01/sshd.pid"),
                authorized_keys: Path::new("/tmp/lab/authorized_keys"),
                user: "herd-lab",
                deploy_user: None,
            },
        );
        for line in [
            "ListenAddress 127.0.0.2:40001",
            "HostKey /tmp/lab/hosts/host01/ssh_host_ed25519_key",
            "PidFile /tmp/lab/hosts/host01/sshd.pid",
            "AuthorizedKeysFile /tmp/lab/authorized_keys",
            "StrictModes no",
            "UsePAM no",
            "PasswordAuthentication no",
            "PermitRootLogin no",
            "AllowUsers herd-lab",
            "MaxStartups 1000:30:2000",
            "Subsystem sftp internal-sftp",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }

    #[test]
    fn known_hosts_line_uses_bracketed_address_and_port_and_drops_the_comment() {
        let line = known_hosts_line(&host(2), "ssh-ed25519 AAAAC3Nza root@box\n");
        assert_eq!(line, "[127.0.0.3]:40002 ssh-ed25519 AAAAC3Nza\n");
    }

    #[test]
    fn gunicorn_conf_gives_each_host_its_own_control_socket() {
        assert_eq!(
            gunicorn_conf(&host(3)),
            "# herd lab: host03\ncontrol_socket = \"/tmp/lab/hosts/host03/app/gunicorn.ctl\"\n"
        );
    }

    #[test]
    fn a_container_hosts_start_script_starts_its_container_through_sudo() {
        let mut host = host(2);
        host.container = Some(host.proc_name());
        host.pid1 = Some("init".into());
        assert_eq!(
            host.start_script(),
            Path::new("/tmp/lab/hosts/host02/app/start-container.sh")
        );
        assert_eq!(
            container_start_script(&host, "lab-e29b93-host02"),
            "#!/bin/sh\n# herd lab: starts host02's Gunicorn container\n\
             [ \"$(id -u)\" = 0 ] && exec /usr/bin/podman start lab-e29b93-host02\n\
             exec sudo -n /usr/bin/podman start lab-e29b93-host02\n"
        );
        assert_eq!(
            gunicorn_conf(&host),
            "# herd lab: host02 (in a container)\n"
        );
    }

    #[test]
    fn inventory_renders_ansible_yaml_with_absolute_paths() {
        let mut nginx = host(2);
        nginx.server = AppServer::Nginx;
        nginx.pidfile = AppServer::Nginx.pidfile(&nginx.app_dir);
        let text = inventory(
            &[host(1), nginx],
            &InventoryVars {
                gunicorn: Some(Path::new("/venv/bin/gunicorn")),
                user: "herd-lab",
                private_key: Path::new("/tmp/lab/id_ed25519"),
                known_hosts: Path::new("/tmp/lab/known_hosts"),
            },
        );
        let expected = "\
# herd lab inventory (generated; `herd lab down` leaves it behind)
all:
  vars:
    ansible_user: herd-lab
    ansible_ssh_private_key_file: /tmp/lab/id_ed25519
    herd_known_hosts: /tmp/lab/known_hosts
    gunicorn_bin: /venv/bin/gunicorn
  children:
    web:
      hosts:
        host01: { ansible_host: 127.0.0.2, ansible_port: 40001, app_dir: /tmp/lab/hosts/host01/app, http_port: 41001, gunicorn_pidfile: /tmp/lab/hosts/host01/app/gunicorn.pid, gunicorn_name: lab-e29b93-host01, app_start: /tmp/lab/hosts/host01/app/start-gunicorn.sh, app_server: gunicorn, app_pidfile: /tmp/lab/hosts/host01/app/gunicorn.pid, app_conf: /tmp/lab/hosts/host01/app/gunicorn.conf.py, app_preflight: \"/venv/bin/gunicorn --check-config --chdir /tmp/lab/hosts/host01/app/current app:application\", app_preload: \"\", proc_titles: true, app_unit: lab-e29b93-host01.service, app_container: lab-e29b93-host01, app_engine: podman, app_user: herd-lab, herd_audit_log: /tmp/lab/hosts/host01/app/.herd-audit.log, herd_lock_file: /tmp/lab/hosts/host01/app/.herd-deploy.lock }
        host02: { ansible_host: 127.0.0.3, ansible_port: 40002, app_dir: /tmp/lab/hosts/host02/app, http_port: 41002, gunicorn_pidfile: /tmp/lab/hosts/host02/app/nginx.pid, gunicorn_name: lab-e29b93-host02, app_start: /tmp/lab/hosts/host02/app/start-nginx.sh, app_server: nginx, app_pidfile: /tmp/lab/hosts/host02/app/nginx.pid, app_conf: /tmp/lab/hosts/host02/app/nginx.conf, app_preflight: \"\", app_preload: \"\", proc_titles: false, app_unit: lab-e29b93-host02.service, app_container: lab-e29b93-host02, app_engine: podman, app_user: herd-lab, herd_audit_log: /tmp/lab/hosts/host02/app/.herd-audit.log, herd_lock_file: /tmp/lab/hosts/host02/app/.herd-deploy.lock }
";
        assert_eq!(text, expected);
        let parsed: serde_json::Value =
            crate::yaml::parse(Path::new("inventory.yml"), &text).unwrap();
        let host01 = &parsed["all"]["children"]["web"]["hosts"]["host01"];
        assert_eq!(host01["ansible_port"], 40001);
        assert_eq!(host01["ansible_host"], "127.0.0.2");
        let host02 = &parsed["all"]["children"]["web"]["hosts"]["host02"];
        assert_eq!(host02["app_preflight"], "");
        assert_eq!(host02["app_server"], "nginx");
    }

    fn unit_host(index: usize, reload: bool) -> LabHost {
        let mut host = host(index);
        host.unit = Some(host.unit_name());
        host.unit_reload = reload;
        host.app_user = "herd-lab-app".into();
        host.pidfile = host.run_dir().join("gunicorn.pid");
        host
    }

    #[test]
    fn a_unit_runs_the_start_scripts_gunicorn_in_the_foreground() {
        let text = unit_file(
            &unit_host(2, true),
            Path::new("/venv/bin/gunicorn"),
            Path::new("/tmp/lab"),
        );
        let expected = "\
# herd lab: host02's Gunicorn
# herd lab dir: /tmp/lab
[Unit]
Description=herd lab host02 (lab-e29b93-host02)

[Service]
Type=notify
WorkingDirectory=/tmp/lab/hosts/host02/app
Environment=HERD_LAB_HOST=host02 PYTHONDONTWRITEBYTECODE=1
Environment=PYTHONPATH=/tmp/lab/no-setproctitle
ExecStart=/venv/bin/gunicorn --chdir /tmp/lab/hosts/host02/app/current --bind 127.0.0.3:41002 --workers 2 --name lab-e29b93-host02 --pid /tmp/lab/hosts/host02/app/run/gunicorn.pid --config /tmp/lab/hosts/host02/app/gunicorn.conf.py app:application
ExecReload=/bin/kill -HUP $MAINPID
KillMode=mixed
StandardOutput=append:/tmp/lab/hosts/host02/app/run/gunicorn.log
StandardError=append:/tmp/lab/hosts/host02/app/run/gunicorn.log
";
        assert_eq!(text, expected);
        assert_eq!(unit_lab_dir(&text), Some(Path::new("/tmp/lab")));
    }

    #[test]
    fn a_unit_without_reload_has_no_exec_reload_and_titled_hosts_no_pythonpath() {
        let text = unit_file(
            &unit_host(3, false),
            Path::new("/venv/bin/gunicorn"),
            Path::new("/tmp/lab"),
        );
        assert!(!text.contains("ExecReload"), "{text}");
        assert!(!text.contains("PYTHONPATH"), "{text}");
        assert!(text.contains("--name lab-e29b93-host03 "), "{text}");
    }

    #[test]
    fn unit_words_are_quoted_the_way_systemd_reads_them() {
        assert_eq!(unit_quote("/tmp/lab/app"), "/tmp/lab/app");
        assert_eq!(unit_quote("/tmp/my lab"), "\"/tmp/my lab\"");
        assert_eq!(unit_quote("/tmp/a\"b\\c"), "\"/tmp/a\\\"b\\\\c\"");
        assert_eq!(unit_quote("/tmp/100%$x"), "/tmp/100%%$$x");
    }

    #[test]
    fn a_unit_hosts_start_script_starts_its_unit_through_sudo() {
        let host = unit_host(2, true);
        assert_eq!(
            unit_start_script(&host, "lab-e29b93-host02.service", Path::new("/run/user/1002")),
            "#!/bin/sh\n# herd lab: starts host02's Gunicorn unit\n\
             export XDG_RUNTIME_DIR=/run/user/1002\n\
             [ \"$(id -un)\" = herd-lab-app ] && exec systemctl --user start lab-e29b93-host02.service\n\
             exec sudo -n -u herd-lab-app -- systemctl --user start lab-e29b93-host02.service\n"
        );
    }

    #[test]
    fn the_deploy_account_may_log_in_beside_the_login_account() {
        let text = sshd_config(
            &host(1),
            &SshdSettings {
                host_key: Path::new("/k"),
                pidfile: Path::new("/p"),
                authorized_keys: Path::new("/a"),
                user: "herd-lab",
                deploy_user: Some("herd-lab-deploy"),
            },
        );
        assert!(
            text.lines()
                .any(|l| l == "AllowUsers herd-lab herd-lab-deploy"),
            "{text}"
        );
    }

    #[test]
    fn inventory_quotes_paths_yaml_would_misread() {
        let mut odd = host(1);
        odd.app_dir = PathBuf::from("/tmp/my lab: #1/app");
        let text = inventory(
            &[odd],
            &InventoryVars {
                gunicorn: None,
                user: "yes",
                private_key: Path::new("/tmp/my lab: #1/id_ed25519"),
                known_hosts: Path::new("/tmp/lab/known_hosts"),
            },
        );
        let parsed: serde_json::Value =
            crate::yaml::parse(Path::new("inventory.yml"), &text).unwrap();
        assert_eq!(parsed["all"]["vars"]["ansible_user"], "yes");
        assert_eq!(
            parsed["all"]["vars"]["ansible_ssh_private_key_file"],
            "/tmp/my lab: #1/id_ed25519"
        );
        assert_eq!(
            parsed["all"]["children"]["web"]["hosts"]["host01"]["app_dir"],
            "/tmp/my lab: #1/app"
        );
    }
}
