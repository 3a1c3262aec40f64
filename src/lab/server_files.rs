//! The files the lab's uWSGI, Unicorn, Puma and nginx hosts run from: each
//! server's config and start script, the Rack app and nginx's
//! `release.conf`. Pure functions of the host, tested without starting
//! anything. Every server reads its app through the `current` symlink's path,
//! never its target, so whatever a reload starts serves the release
//! `current` points to by then.

use std::path::Path;

use super::server::{AppServer, NGINX, PUMA, UNICORN, UWSGI};
use super::start::WORKERS;
use super::LabHost;

fn quote(path: &Path) -> String {
    crate::shell::quote(&path.to_string_lossy())
}

/// A double-quoted string for Ruby and nginx configs (JSON string syntax,
/// which both read the same for plain paths).
fn string(path: &Path) -> String {
    serde_json::Value::from(path.to_string_lossy()).to_string()
}

/// The server's config file (see [`AppServer::conf`]); None for Gunicorn,
/// whose `gunicorn.conf.py` is rendered apart.
pub fn config(host: &LabHost) -> Option<String> {
    match host.server {
        AppServer::Gunicorn => None,
        AppServer::Uwsgi => Some(uwsgi_ini(host)),
        AppServer::Unicorn => Some(unicorn_rb(host)),
        AppServer::Puma => Some(puma_rb(host)),
        AppServer::Nginx => Some(nginx_conf(host)),
    }
}

/// uWSGI in preforking mode on a plain HTTP socket (no router process), as
/// a daemon. `die-on-term`: TERM stops it (uWSGI 2.0 otherwise reloads on
/// TERM). `need-app`: a release that fails to import makes the master exit,
/// as Gunicorn's does, instead of serving 500s. Titled hosts get
/// `NAME uWSGI master` / `NAME uWSGI worker N`; the others keep the command
/// line `/usr/bin/uwsgi --ini APP/uwsgi.ini` in every process.
fn uwsgi_ini(host: &LabHost) -> String {
    let titles = if host.proc_titles {
        format!(
            "auto-procname = true\nprocname-prefix-spaced = {}\n",
            host.proc_name()
        )
    } else {
        String::new()
    };
    format!(
        "# herd lab: {name}'s uWSGI\n\
         [uwsgi]\n\
         plugin = python3\n\
         master = true\n\
         processes = {workers}\n\
         http-socket = {address}:{port}\n\
         chdir = {current}\n\
         wsgi-file = app.py\n\
         pidfile = {pidfile}\n\
         daemonize = {log}\n\
         die-on-term = true\n\
         need-app = true\n\
         {titles}",
        name = host.name,
        workers = WORKERS,
        address = host.address,
        port = host.http_port,
        current = host.app_dir.join("current").display(),
        pidfile = host.pidfile.display(),
        log = host.app_log().display(),
    )
}

/// Unicorn without `preload_app`: a HUP makes new workers load the release
/// `current` points to. The rackup file is given on the command line.
fn unicorn_rb(host: &LabHost) -> String {
    format!(
        "# herd lab: {name}'s Unicorn\n\
         worker_processes {workers}\n\
         listen \"{address}:{port}\"\n\
         pid {pidfile}\n\
         stderr_path {log}\n\
         stdout_path {log}\n\
         working_directory {current}\n\
         timeout 30\n",
        name = host.name,
        workers = WORKERS,
        address = host.address,
        port = host.http_port,
        pidfile = string(&host.pidfile),
        log = string(&host.app_log()),
        current = string(&host.app_dir.join("current")),
    )
}

/// Puma in cluster mode without `preload_app!`, run from the app directory
/// (no `directory`: the master stays there, where its config is, and each
/// worker loads the rackup file through `current`). `stdout_redirect` makes
/// a HUP reopen the log rather than stop Puma; `tag` the proc_name, which
/// otherwise is the launch directory's name. `worker_check_interval 1`:
/// Puma looks at its workers every second rather than every 5, and a phased
/// restart moves on to the next worker (or respawns a dead one) only then,
/// so a lab reload takes seconds, not tens of them.
fn puma_rb(host: &LabHost) -> String {
    format!(
        "# herd lab: {name}'s Puma\n\
         workers {workers}\n\
         worker_check_interval 1\n\
         threads 1, 2\n\
         bind \"tcp://{address}:{port}\"\n\
         pidfile {pidfile}\n\
         rackup {rackup}\n\
         stdout_redirect {log}, {log}, true\n\
         tag \"{tag}\"\n",
        name = host.name,
        workers = WORKERS,
        address = host.address,
        port = host.http_port,
        pidfile = string(&host.pidfile),
        rackup = string(&host.app_dir.join("current").join("config.ru")),
        log = string(&host.app_log()),
        tag = host.proc_name(),
    )
}

/// The directory of nginx's temp paths: the compiled-in ones are under
/// /var/lib/nginx, which the lab user cannot write.
pub const NGINX_TEMP_DIR: &str = "nginx-tmp";

/// nginx as the login user: every path in the app directory. The release
/// comes from `current/release.conf` (`set $release v1;`), read at start and
/// on every reload.
fn nginx_conf(host: &LabHost) -> String {
    let app = &host.app_dir;
    let temp = app.join(NGINX_TEMP_DIR);
    format!(
        "# herd lab: {name}'s nginx\n\
         daemon on;\n\
         worker_processes {workers};\n\
         pid {pidfile};\n\
         error_log {log} notice;\n\
         events {{}}\n\
         http {{\n    \
             access_log {access};\n    \
             client_body_temp_path {temp}/body;\n    \
             proxy_temp_path {temp}/proxy;\n    \
             fastcgi_temp_path {temp}/fastcgi;\n    \
             uwsgi_temp_path {temp}/uwsgi;\n    \
             scgi_temp_path {temp}/scgi;\n    \
             default_type text/plain;\n    \
             server {{\n        \
                 listen {address}:{port};\n        \
                 include {release_conf};\n        \
                 location = /healthz {{ return 200 \"ok $release\\n\"; }}\n        \
                 location = / {{ return 200 \"{name} $release pid=$pid\\n\"; }}\n        \
                 location / {{ return 404 \"not found\\n\"; }}\n    \
             }}\n\
         }}\n",
        name = host.name,
        workers = WORKERS,
        pidfile = string(&host.pidfile),
        log = string(&host.app_log()),
        access = string(&app.join("nginx-access.log")),
        temp = temp.display(),
        address = host.address,
        port = host.http_port,
        release_conf = string(&app.join("current").join("release.conf")),
    )
}

/// The script that starts a host's server (also `reload.start`), run as the
/// login user from the app directory. uWSGI, Unicorn (`-D`) and nginx
/// daemonise themselves; Puma 5 cannot, so the script puts it in a session
/// of its own (`setsid -f`, not `&`, which would leave it ignoring SIGINT and
/// SIGQUIT) and waits for its pidfile. None for Gunicorn.
pub fn start_script(host: &LabHost) -> Option<String> {
    let app = quote(&host.app_dir);
    let conf = quote(&host.app_conf());
    let command = match host.server {
        AppServer::Gunicorn => return None,
        AppServer::Uwsgi => format!("exec {UWSGI} --ini {conf}\n"),
        AppServer::Unicorn => format!(
            "exec {UNICORN} -D -c {conf} {rackup}\n",
            rackup = quote(&host.app_dir.join("current").join("config.ru"))
        ),
        AppServer::Puma => format!(
            "setsid -f {PUMA} </dev/null >>{log} 2>&1 || exit 1\n\
             # Up to 10 s for the master to write its pidfile.\n\
             i=0\n\
             while [ ! -s {pidfile} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done\n\
             [ -s {pidfile} ]\n",
            log = quote(&host.app_log()),
            pidfile = quote(&host.pidfile),
        ),
        AppServer::Nginx => format!("exec {NGINX} -c {conf} -p {app}/\n"),
    };
    Some(format!(
        "#!/bin/sh\n# herd lab: starts {name}'s {server} as a daemon\n\
         cd {app} || exit 1\n\
         export HERD_LAB_HOST={name} PYTHONDONTWRITEBYTECODE=1\n\
         {command}",
        name = host.name,
        server = host.server,
    ))
}

/// The Rack app Unicorn and Puma serve, the twin of `app.py`: it reads
/// `RELEASE` next to itself when loaded, into a constant, so only workers
/// that load it after `current` moved serve the new release.
pub const CONFIG_RU: &str = r##"# herd lab app: answers with the release its workers loaded.
HERD_LAB_RELEASE = File.read(File.join(__dir__, "RELEASE")).strip
HERD_LAB_HOST = ENV.fetch("HERD_LAB_HOST", "unknown")

run(lambda do |env|
  status, body =
    case env["PATH_INFO"]
    when "/healthz" then [200, "ok #{HERD_LAB_RELEASE}\n"]
    when "/", "" then [200, "#{HERD_LAB_HOST} #{HERD_LAB_RELEASE} pid=#{Process.pid}\n"]
    else [404, "not found\n"]
    end
  [status, { "content-type" => "text/plain", "content-length" => body.bytesize.to_s }, [body]]
end)
"##;

/// A release's `release.conf`, which nginx includes in its server block.
pub fn release_conf(release: &str) -> String {
    format!("set $release {release};\n")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn host(server: AppServer, titles: bool) -> LabHost {
        let app_dir = PathBuf::from("/tmp/lab/hosts/host02/app");
        LabHost {
            name: "host02".into(),
            address: "127.0.0.3".into(),
            ssh_port: 40002,
            http_port: 41002,
            host_dir: app_dir.parent().unwrap().to_path_buf(),
            pidfile: server.pidfile(&app_dir),
            app_dir,
            server,
            sshd_pid: None,
            gunicorn_pid: None,
            sshd_alive: false,
            gunicorn_alive: false,
            proc_titles: titles,
            unit: None,
            unit_reload: false,
            app_user: "herd-lab".into(),
            container: None,
            pid1: None,
        }
    }

    #[test]
    fn uwsgi_titles_only_titled_hosts() {
        let titled = uwsgi_ini(&host(AppServer::Uwsgi, true));
        assert!(titled.ends_with(
            "need-app = true\nauto-procname = true\nprocname-prefix-spaced = lab-e29b93-host02\n"
        ));
        let plain = uwsgi_ini(&host(AppServer::Uwsgi, false));
        assert!(
            plain.ends_with("die-on-term = true\nneed-app = true\n"),
            "{plain}"
        );
        assert!(plain.contains("chdir = /tmp/lab/hosts/host02/app/current\n"));
        assert!(plain.contains("http-socket = 127.0.0.3:41002\n"));
    }

    #[test]
    fn start_scripts_run_each_server_from_its_config() {
        let script = |server| start_script(&host(server, true)).unwrap();
        assert!(start_script(&host(AppServer::Gunicorn, true)).is_none());
        assert!(script(AppServer::Uwsgi)
            .ends_with("exec /usr/bin/uwsgi --ini /tmp/lab/hosts/host02/app/uwsgi.ini\n"));
        assert!(script(AppServer::Unicorn).ends_with(
            "exec /usr/bin/unicorn -D -c /tmp/lab/hosts/host02/app/unicorn.rb /tmp/lab/hosts/host02/app/current/config.ru\n"
        ));
        assert!(script(AppServer::Nginx).ends_with(
            "exec /usr/sbin/nginx -c /tmp/lab/hosts/host02/app/nginx.conf -p /tmp/lab/hosts/host02/app/\n"
        ));
        let puma = script(AppServer::Puma);
        assert!(puma.contains(
            "setsid -f /usr/bin/puma </dev/null >>/tmp/lab/hosts/host02/app/puma.log 2>&1 || exit 1\n"
        ));
        assert!(puma.starts_with(
            "#!/bin/sh\n# herd lab: starts host02's puma as a daemon\ncd /tmp/lab/hosts/host02/app || exit 1\nexport HERD_LAB_HOST=host02 PYTHONDONTWRITEBYTECODE=1\n"
        ));
    }

    #[test]
    fn nginx_takes_its_release_from_the_current_release() {
        let conf = nginx_conf(&host(AppServer::Nginx, true));
        for line in [
            "pid \"/tmp/lab/hosts/host02/app/nginx.pid\";",
            "error_log \"/tmp/lab/hosts/host02/app/nginx-error.log\" notice;",
            "        listen 127.0.0.3:41002;",
            "        include \"/tmp/lab/hosts/host02/app/current/release.conf\";",
            "        location = /healthz { return 200 \"ok $release\\n\"; }",
            "    client_body_temp_path /tmp/lab/hosts/host02/app/nginx-tmp/body;",
        ] {
            assert!(conf.lines().any(|l| l == line), "no {line:?} in\n{conf}");
        }
        assert_eq!(release_conf("v2"), "set $release v2;\n");
    }

    #[test]
    fn puma_and_unicorn_serve_the_current_release_without_preloading() {
        let puma = puma_rb(&host(AppServer::Puma, true));
        assert!(
            !puma.contains("directory"),
            "the master stays by its config"
        );
        assert!(puma.contains("tag \"lab-e29b93-host02\"\n"));
        assert!(!puma.contains("preload"));
        let unicorn = unicorn_rb(&host(AppServer::Unicorn, true));
        assert!(unicorn.contains("working_directory \"/tmp/lab/hosts/host02/app/current\"\n"));
        assert!(unicorn.contains("listen \"127.0.0.3:41002\"\n"));
        assert!(!unicorn.contains("preload"));
    }
}
