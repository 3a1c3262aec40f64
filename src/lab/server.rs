//! The app servers a lab host can run, and what each of them leaves on disk
//! and in /proc: the file names in the app directory, the program it is
//! started from and the words its master's title or command line carries.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One app server of the lab. Gunicorn and uWSGI serve the WSGI app
/// (`app.py`), Unicorn and Puma the Rack app (`config.ru`), nginx answers from
/// the release's `release.conf`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppServer {
    #[default]
    Gunicorn,
    Uwsgi,
    Unicorn,
    Puma,
    Nginx,
}

/// Debian's binaries, by absolute path: nginx's binary upgrade (USR2) execs
/// the path it was started from without a PATH lookup.
pub const UWSGI: &str = "/usr/bin/uwsgi";
pub const UWSGI_PYTHON3_PLUGIN: &str = "/usr/lib/uwsgi/plugins/python3_plugin.so";
pub const UNICORN: &str = "/usr/bin/unicorn";
pub const PUMA: &str = "/usr/bin/puma";
pub const NGINX: &str = "/usr/sbin/nginx";

impl AppServer {
    pub const ALL: [AppServer; 5] = [
        AppServer::Gunicorn,
        AppServer::Uwsgi,
        AppServer::Unicorn,
        AppServer::Puma,
        AppServer::Nginx,
    ];

    /// The name `--servers` takes and the inventory's `app_server` says.
    pub fn name(self) -> &'static str {
        match self {
            AppServer::Gunicorn => "gunicorn",
            AppServer::Uwsgi => "uwsgi",
            AppServer::Unicorn => "unicorn",
            AppServer::Puma => "puma",
            AppServer::Nginx => "nginx",
        }
    }

    pub fn parse(name: &str) -> Option<AppServer> {
        AppServer::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The names `--servers` takes, for messages: `gunicorn, uwsgi, ...`.
    pub fn names() -> String {
        AppServer::ALL.map(AppServer::name).join(", ")
    }

    /// The files this server needs from the machine (Gunicorn comes from the
    /// venv, checked apart).
    pub fn system_files(self) -> &'static [&'static str] {
        match self {
            AppServer::Gunicorn => &[],
            AppServer::Uwsgi => &[UWSGI, UWSGI_PYTHON3_PLUGIN],
            AppServer::Unicorn => &[UNICORN],
            AppServer::Puma => &[PUMA],
            AppServer::Nginx => &[NGINX],
        }
    }

    /// Words a master of this server shows in its command line, titled or
    /// not: uWSGI `uwsgi --ini ...` or `NAME uWSGI master`, Puma
    /// `puma 5.6.5 (tcp://...) [NAME]` (comm `ruby3.1` after a hot restart,
    /// so the command line is what is read), nginx `nginx: master process ...`.
    pub fn title_words(self) -> &'static [&'static str] {
        match self {
            AppServer::Gunicorn => &["gunicorn"],
            AppServer::Uwsgi => &["uwsgi", "uWSGI"],
            AppServer::Unicorn => &["unicorn"],
            AppServer::Puma => &["puma"],
            AppServer::Nginx => &["nginx"],
        }
    }

    /// The master's pidfile in the app directory.
    pub fn pidfile(self, app_dir: &Path) -> PathBuf {
        app_dir.join(format!("{}.pid", self.name()))
    }

    /// The server's log in the app directory (nginx: its error log).
    pub fn log(self, app_dir: &Path) -> PathBuf {
        match self {
            AppServer::Nginx => app_dir.join("nginx-error.log"),
            _ => app_dir.join(format!("{}.log", self.name())),
        }
    }

    /// The server's config file in the app directory. Puma's is where Puma
    /// looks when started without `-C` (as a Rails app has it), so herd
    /// can read whether it preloads: Puma's title hides `-C`.
    pub fn conf(self, app_dir: &Path) -> PathBuf {
        app_dir.join(match self {
            AppServer::Gunicorn => "gunicorn.conf.py",
            AppServer::Uwsgi => "uwsgi.ini",
            AppServer::Unicorn => "unicorn.rb",
            AppServer::Puma => "config/puma.rb",
            AppServer::Nginx => "nginx.conf",
        })
    }

    /// Whether the server titles its processes whatever the lab asks:
    /// only Gunicorn (setproctitle) and uWSGI (`auto-procname`) can go
    /// without.
    pub fn always_titled(self) -> bool {
        !matches!(self, AppServer::Gunicorn | AppServer::Uwsgi)
    }
}

impl std::fmt::Display for AppServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_files_are_named_after_the_server() {
        for server in AppServer::ALL {
            assert_eq!(AppServer::parse(server.name()), Some(server));
        }
        assert_eq!(AppServer::parse("apache"), None);
        assert_eq!(AppServer::names(), "gunicorn, uwsgi, unicorn, puma, nginx");
        let app = Path::new("/lab/app");
        assert_eq!(
            AppServer::Uwsgi.pidfile(app),
            Path::new("/lab/app/uwsgi.pid")
        );
        assert_eq!(
            AppServer::Nginx.log(app),
            Path::new("/lab/app/nginx-error.log")
        );
        assert_eq!(
            AppServer::Puma.conf(app),
            Path::new("/lab/app/config/puma.rb")
        );
        assert_eq!(
            serde_json::to_string(&AppServer::Unicorn).unwrap(),
            "\"unicorn\""
        );
    }
}
