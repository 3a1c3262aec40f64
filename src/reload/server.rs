//! The app servers herd reloads, as data: how to recognise a server's
//! processes and tell its master from its workers, which signal reloads it,
//! and how a zero-downtime upgrade (re-exec) goes. Discovery, the snapshot
//! and validation read these entries and know no server by name; adding a
//! server is one entry in [`SERVERS`] (plus its lab processes and tests).

/// One app server.
#[derive(Debug, PartialEq, Eq)]
pub struct AppServer {
    /// The name a playbook gives in `reload.server`.
    pub name: &'static str,
    /// The name messages use.
    pub display: &'static str,
    /// The program's name, as its entry point (`/srv/venv/bin/gunicorn`) or
    /// as a module an interpreter runs (`python -m gunicorn`).
    pub program: &'static str,
    /// Interpreters that run the program as a script or module
    /// (`python3.11`: a name, then digits and dots).
    pub interpreters: &'static [&'static str],
    /// How the server titles its processes when it can (setproctitle):
    /// every process's title starts with `title`, the master's with `master_title`.
    pub title: &'static str,
    pub master_title: &'static str,
    /// The master's title holds its name between these: `gunicorn: master [NAME]`.
    pub name_in_title: (&'static str, &'static str),
    /// Options that name the master on its command line (`--name app`, `--name=app`).
    pub name_options: &'static [&'static str],
    /// Process names (`comm`, the kernel's 15-character name) the server's
    /// processes may have; the snapshot reads the command lines of these only.
    pub comms: &'static [&'static str],
    /// The signals herd sends this server, the default first.
    pub signals: &'static [SignalUse],
    /// Signals operators send that do not do what they expect: refused,
    /// naming the one to use.
    pub refused: &'static [Refused],
    /// How a new worker proves it booted (loaded the app and entered its
    /// loop). Without one, a reload waits for the worker set to stay
    /// unchanged for the settle period instead.
    pub boot_proof: Option<BootProof>,
}

/// A signal herd sends a server, and what proves it worked.
#[derive(Debug, PartialEq, Eq)]
pub struct SignalUse {
    pub name: &'static str,
    /// What it does, for the plan: `graceful reload`, `phased restart`.
    pub what: &'static str,
    pub effect: Effect,
    /// Refused when the master preloads the app: why, and the signal to use.
    pub unless_preloaded: Option<Refused>,
}

/// What a signal does to the master and its workers.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// The master stays (same pid and start time, also where it
    /// re-executes itself in place) and every worker is replaced.
    NewWorkers,
    /// The master starts a new master as its child; once that serves
    /// with a full set of workers, the old one is ended.
    NewMaster(Upgrade),
}

/// A signal refused, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub signal: &'static str,
    pub why: &'static str,
    /// The signal to send instead.
    pub instead: &'static str,
}

/// A sign, readable in `/proc`, that a worker has booted.
#[derive(Debug, PartialEq, Eq)]
pub enum BootProof {
    /// The worker holds an unlinked heartbeat file, open as
    /// `DIR/PREFIX… (deleted)`, that its master created before the fork
    /// and that the worker touches from its request loop only, that is once
    /// the app is loaded. Untouched, the file keeps the times and mode it
    /// was created with. Touched, Gunicorn 22 and later set its modification
    /// time to the monotonic clock (a time before the machine booted);
    /// earlier versions switch its mode between 0 and 1.
    HeartbeatFile { prefix: &'static str },
}

impl BootProof {
    /// For messages and the plan: what the proof watches.
    pub fn describe(&self) -> String {
        match self {
            BootProof::HeartbeatFile { prefix } => {
                format!("each new worker touched its heartbeat file ({prefix}*) from its loop")
            }
        }
    }
}

/// A re-exec upgrade: the signal makes the master start a new master as
/// its child; once that serves, `retire` ends the old one.
#[derive(Debug, PartialEq, Eq)]
pub struct Upgrade {
    pub retire: &'static str,
    /// Where the pids go meanwhile; once the old master is gone, the
    /// pidfile holds the new master's pid.
    pub pidfile: UpgradePidfile,
}

#[derive(Debug, PartialEq, Eq)]
pub enum UpgradePidfile {
    /// The new master writes `PIDFILE<suffix>`, and renames it to the
    /// pidfile once the old master is gone (Gunicorn's `.2`).
    NewMasterAside(&'static str),
    /// The old master renames its pidfile to `PIDFILE<suffix>` and the new
    /// master writes the pidfile (Unicorn's and nginx's `.oldbin`).
    OldMasterAside(&'static str),
}

pub static GUNICORN: AppServer = AppServer {
    name: "gunicorn",
    display: "Gunicorn",
    program: "gunicorn",
    interpreters: &["python", "pypy"],
    title: "gunicorn:",
    master_title: "gunicorn: master",
    name_in_title: ("gunicorn: master [", "]"),
    name_options: &["--name", "-n"],
    comms: &["gunicorn", "python", "pypy"],
    signals: &[
        SignalUse {
            name: "HUP",
            what: "graceful reload",
            effect: Effect::NewWorkers,
            unless_preloaded: None,
        },
        SignalUse {
            name: "USR2",
            what: "re-exec of a new master (for apps started with --preload)",
            effect: Effect::NewMaster(Upgrade {
                retire: "TERM",
                pidfile: UpgradePidfile::NewMasterAside(".2"),
            }),
            unless_preloaded: None,
        },
    ],
    refused: &[],
    boot_proof: Some(BootProof::HeartbeatFile {
        prefix: "wgunicorn-",
    }),
};

/// Every server herd knows.
pub static SERVERS: &[&AppServer] = &[&GUNICORN];

/// The server named `name` in a playbook or on the command line.
pub fn by_name(name: &str) -> Option<&'static AppServer> {
    SERVERS.iter().copied().find(|server| server.name == name)
}

impl AppServer {
    /// The signal named `name`; `None` for the default. A refused or
    /// unknown signal is an error that says what to send instead.
    pub fn signal(&self, name: Option<&str>) -> Result<&'static SignalUse, String> {
        let Some(name) = name else {
            return Ok(&self.signals[0]);
        };
        if let Some(found) = self.signals.iter().find(|s| s.name == name) {
            return Ok(found);
        }
        if let Some(refused) = self.refused.iter().find(|r| r.signal == name) {
            return Err(refused.message(self.display));
        }
        Err(format!(
            "{} takes {}, not `{name}`",
            self.display,
            self.signal_names()
        ))
    }

    /// `HUP or USR2`: the signals this server takes, for messages.
    pub fn signal_names(&self) -> String {
        let names: Vec<&str> = self.signals.iter().map(|s| s.name).collect();
        match names.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

impl Refused {
    pub fn message(&self, server: &str) -> String {
        format!(
            "{} to {server} is refused: {}; use {}",
            self.signal, self.why, self.instead
        )
    }
}

/// `gunicorn`, or `gunicorn, uwsgi`: for messages.
pub fn names() -> String {
    SERVERS
        .iter()
        .map(|server| format!("`{}`", server.name))
        .collect::<Vec<_>>()
        .join(", ")
}

impl AppServer {
    /// Whether a command line is one of this server's processes (master or
    /// worker, titled or not): a title of the server, its entry point run
    /// directly, or an interpreter running its script or `-m` module. The
    /// word anywhere else (`journalctl -u gunicorn`, `python3 x.py
    /// /var/log/gunicorn`) does not make a process the server.
    pub fn runs(&self, cmdline: &str) -> bool {
        if cmdline.starts_with(self.title) {
            return true;
        }
        let mut words = cmdline.split_whitespace();
        let Some(program) = words.next().map(basename) else {
            return false;
        };
        if program == self.program {
            return true;
        }
        if !self.is_interpreter(program) {
            return false;
        }
        // The interpreter's own options come first; the first other word is
        // the script it runs.
        while let Some(word) = words.next() {
            match word {
                "-m" => return words.next() == Some(self.program),
                "-c" | "-" => return false,
                // Options that take a value as the next word.
                "-W" | "-X" | "-Q" => {
                    words.next();
                }
                _ if word.starts_with("-m") => return &word[2..] == self.program,
                _ if word.starts_with("-c") => return false,
                _ if word.starts_with('-') => {}
                script => return basename(script) == self.program,
            }
        }
        false
    }

    /// An interpreter name and a version: `python`, `python3`, `python3.11`.
    fn is_interpreter(&self, program: &str) -> bool {
        self.interpreters.iter().any(|name| {
            program
                .strip_prefix(name)
                .is_some_and(|version| version.chars().all(|c| c.is_ascii_digit() || c == '.'))
        })
    }

    /// Whether the title says master; `None` when the process has no title
    /// of the server (its command line is all there is to go by).
    pub fn titled_master(&self, cmdline: &str) -> Option<bool> {
        cmdline
            .starts_with(self.title)
            .then(|| cmdline.starts_with(self.master_title))
    }

    /// The name the master runs under: from its title, or from its options.
    pub fn master_name(&self, cmdline: &str) -> Option<String> {
        let (open, close) = self.name_in_title;
        if let Some(rest) = cmdline.strip_prefix(open) {
            return rest.strip_suffix(close).map(str::to_string);
        }
        let words: Vec<&str> = cmdline.split_whitespace().collect();
        words.iter().enumerate().find_map(|(i, word)| {
            self.name_options.iter().find_map(|option| {
                if let Some(name) = word
                    .strip_prefix(option)
                    .and_then(|rest| rest.strip_prefix('='))
                {
                    return Some(name.to_string());
                }
                (word == option)
                    .then(|| words.get(i + 1).map(|s| s.to_string()))
                    .flatten()
            })
        })
    }

    /// A shell `case` pattern matching the stat line of a process whose
    /// name may be this server's: `*' (gunicorn'*|*' (python'*`.
    pub fn comm_pattern(&self) -> String {
        self.comms
            .iter()
            .map(|comm| format!("*' ({comm}'*"))
            .collect::<Vec<_>>()
            .join("|")
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gunicorn_is_recognised_titled_untitled_and_under_an_interpreter() {
        for cmdline in [
            "gunicorn: master [app]",
            "gunicorn: worker [app]",
            "/srv/venv/bin/python3 /srv/venv/bin/gunicorn app:app",
            "/srv/venv/bin/python3.11 -u /srv/venv/bin/gunicorn app:app",
            "/usr/bin/python3 -W ignore /srv/venv/bin/gunicorn app:app",
            "python -m gunicorn app:app",
            "python3 -mgunicorn app:app",
            "pypy3 -m gunicorn app:app",
            "/usr/local/bin/gunicorn -w 4 app:app",
            "gunicorn --name api app:app",
        ] {
            assert!(GUNICORN.runs(cmdline), "{cmdline}");
        }
        for cmdline in [
            "vim gunicorn.conf.py",
            "/usr/bin/python3 /opt/monitor.py",
            "python3 x.py /var/log/gunicorn",
            "/usr/bin/python3 -c import time; time.sleep(300) /var/log/gunicorn",
            "python3 -c gunicorn",
            "python3 -m http.server gunicorn",
            "python3 -m gunicornish app",
            "journalctl -u gunicorn",
            "tail -f /var/log/gunicorn",
            "/usr/bin/gunicorn-watch gunicorn",
            "pythonista /srv/venv/bin/gunicorn",
            "python3",
            "",
        ] {
            assert!(!GUNICORN.runs(cmdline), "{cmdline}");
        }
    }

    #[test]
    fn the_master_name_comes_from_the_title_or_the_options() {
        assert_eq!(
            GUNICORN.master_name("gunicorn: master [web-1]").as_deref(),
            Some("web-1")
        );
        assert_eq!(
            GUNICORN
                .master_name("gunicorn --name=web app:app")
                .as_deref(),
            Some("web")
        );
        assert_eq!(
            GUNICORN.master_name("gunicorn -n web app:app").as_deref(),
            Some("web")
        );
        assert_eq!(GUNICORN.master_name("gunicorn --names x app:app"), None);
        assert_eq!(GUNICORN.master_name("gunicorn app:app"), None);
    }

    #[test]
    fn servers_are_found_by_name_only() {
        assert_eq!(by_name("gunicorn"), Some(&GUNICORN));
        assert_eq!(by_name("Gunicorn"), None);
        assert_eq!(names(), "`gunicorn`");
        assert_eq!(GUNICORN.titled_master("gunicorn: worker [a]"), Some(false));
        assert_eq!(GUNICORN.titled_master("/bin/gunicorn a"), None);
        assert_eq!(
            GUNICORN.comm_pattern(),
            "*' (gunicorn'*|*' (python'*|*' (pypy'*"
        );
    }
}
