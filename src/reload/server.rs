//! The app servers herd reloads, as data: how to recognise a server's
//! processes and tell its master from its workers, which signal reloads it,
//! and how a zero-downtime upgrade (re-exec) goes. Discovery, the snapshot
//! and validation read these entries and know no server by name; adding a
//! server is one entry in [`SERVERS`] (plus its lab processes and tests).

/// One app server.
#[derive(Debug)]
pub struct AppServer {
    /// The name a playbook gives in `reload.server`.
    pub name: &'static str,
    /// The name messages use.
    pub display: &'static str,
    /// The program's names, as its entry point (`/srv/venv/bin/gunicorn`)
    /// or as a module an interpreter runs (`python -m gunicorn`).
    pub programs: &'static [&'static str],
    /// Interpreters that run the program as a script or module
    /// (`python3.11`: a name, then digits and dots).
    pub interpreters: &'static [&'static str],
    /// How the server titles its processes, where it does.
    pub titles: Titles,
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
    /// How to tell whether the master preloads the app, for servers where
    /// a signal does not do what it says then.
    pub preload: Option<Preload>,
    /// The preflight run when the playbook gives none: the master's own
    /// program checking its configuration.
    pub preflight: Option<Preflight>,
    /// What it means when, after the signal, the master keeps every old
    /// worker and starts none.
    pub kept_old_workers: Option<&'static str>,
}

/// Where a server's preloading is set: in a config file, named on the
/// command line or found where the server looks by default.
#[derive(Debug)]
pub struct Preload {
    /// Options that name the config file (`-c FILE`, `--config-file=FILE`).
    pub config_options: &'static [&'static str],
    /// Files read when none is named, relative to the master's working
    /// directory; `{env}` is the app's environment (`RACK_ENV`...).
    pub default_configs: &'static [&'static str],
    /// Options on the command line that turn preloading on.
    pub flags: &'static [&'static str],
    /// What a config file's line says about preloading, if anything.
    pub in_config: fn(&str) -> Option<Said>,
    /// Whether the master's title keeps its arguments (Unicorn's does,
    /// Puma's does not: then the config file named cannot be known).
    pub args_in_title: bool,
}

/// What a config line says about preloading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    On,
    Off,
    /// Something herd cannot read for sure (an expression, or code loaded
    /// from elsewhere that may set it).
    Unclear,
}

/// The default preflight: the master's program, run with `check` and the
/// options that locate its configuration, as they are on its command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Preflight {
    /// The program when the master's command line does not name it.
    pub program: &'static str,
    pub check: &'static [&'static str],
    /// Options (each taking a value) to carry over from the master's command line.
    pub carry: &'static [&'static str],
    /// Options whose value herd cannot carry over (it may hold spaces): the
    /// playbook must then give `reload.preflight`.
    pub opaque: &'static [&'static str],
}

/// The process titles of a server: each starts with one of these
/// prefixes, after the master's name where [`NameInTitle::Before`].
#[derive(Debug, PartialEq, Eq)]
pub struct Titles {
    /// Every title of the server, master, workers and helpers alike.
    pub any: &'static [&'static str],
    pub master: &'static [&'static str],
    /// A worker's; a titled child that is neither (a router, a cache
    /// manager) is no worker of the master.
    pub worker: &'static [&'static str],
    pub name: NameInTitle,
}

/// Where a master's title holds the name the operator gave it.
#[derive(Debug, PartialEq, Eq)]
pub enum NameInTitle {
    /// Nowhere.
    None,
    /// Between these, to the end of the title: `gunicorn: master [NAME]`.
    Between(&'static str, &'static str),
    /// In front, then a space: `NAME uWSGI master`.
    Before,
    /// In the brackets that end the title: `puma 6.4.2 (tcp://...) [NAME]`.
    Trailing,
}

/// Servers are one of [`SERVERS`]: the same when they have the same name.
impl PartialEq for AppServer {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for AppServer {}

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
    /// The worker holds an epoll instance (`anon_inode:[eventpoll]` among
    /// its fds), which it creates as it enters its event loop: after the
    /// app is loaded (uWSGI, whose workers load it themselves with
    /// `lazy-apps`) or the configuration is (nginx, whose master loads it
    /// before the fork). Readable by the worker's account and root.
    EventLoop,
    /// The worker runs a thread of this name (`/proc/W/task/*/comm`), which
    /// it starts once the app is loaded: Puma's `puma srv`. Readable by anyone.
    Thread { name: &'static str },
}

impl BootProof {
    /// For messages and the plan: what the proof watches.
    pub fn describe(&self) -> String {
        match self {
            BootProof::HeartbeatFile { prefix } => {
                format!("each new worker touched its heartbeat file ({prefix}*) from its loop")
            }
            BootProof::EventLoop => {
                "each new worker entered its event loop (holds an epoll instance)".to_string()
            }
            BootProof::Thread { name } => {
                format!("each new worker started its `{name}` thread (after loading the app)")
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
    programs: &["gunicorn"],
    interpreters: &["python", "pypy"],
    titles: Titles {
        any: &["gunicorn:"],
        master: &["gunicorn: master"],
        worker: &["gunicorn: worker"],
        name: NameInTitle::Between("gunicorn: master [", "]"),
    },
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
            what: "re-exec of a new master, for apps started with --preload",
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
    preload: None,
    preflight: None,
    kept_old_workers: None,
};

pub static UWSGI: AppServer = AppServer {
    name: "uwsgi",
    display: "uWSGI",
    programs: &["uwsgi", "uwsgi-core"],
    interpreters: &[],
    titles: Titles {
        any: &["uWSGI "],
        master: &["uWSGI master"],
        worker: &["uWSGI worker"],
        name: NameInTitle::Before,
    },
    name_options: &["--procname-prefix-spaced", "--procname-prefix"],
    comms: &["uwsgi"],
    signals: &[SignalUse {
        name: "HUP",
        what: "graceful reload; the master re-executes itself in place",
        effect: Effect::NewWorkers,
        unless_preloaded: None,
    }],
    refused: &[Refused {
        signal: "TERM",
        why: "uWSGI takes TERM as a brutal reload that kills workers mid-request, or with `die-on-term` as a stop",
        instead: "HUP",
    }],
    boot_proof: Some(BootProof::EventLoop),
    preload: None,
    preflight: None,
    kept_old_workers: None,
};

pub static UNICORN: AppServer = AppServer {
    name: "unicorn",
    display: "Unicorn",
    programs: &["unicorn", "unicorn_rails"],
    interpreters: &["ruby"],
    titles: Titles {
        any: &["unicorn master", "unicorn worker[", "unicorn_rails master", "unicorn_rails worker["],
        master: &["unicorn master", "unicorn_rails master"],
        worker: &["unicorn worker[", "unicorn_rails worker["],
        name: NameInTitle::None,
    },
    name_options: &[],
    comms: &["unicorn", "ruby"],
    signals: &[
        SignalUse {
            name: "HUP",
            what: "graceful reload of the config and config.ru, every worker replaced",
            effect: Effect::NewWorkers,
            unless_preloaded: Some(Refused {
                signal: "HUP",
                why: "with `preload_app true` the master keeps the code it loaded, so new workers run the old release",
                instead: "USR2 (a new master, then QUIT to the old one)",
            }),
        },
        SignalUse {
            name: "USR2",
            what: "re-exec of a new master, then QUIT to the old one",
            effect: Effect::NewMaster(Upgrade {
                retire: "QUIT",
                pidfile: UpgradePidfile::OldMasterAside(".oldbin"),
            }),
            unless_preloaded: None,
        },
    ],
    refused: &[],
    // The worker's heartbeat lives in memory shared with the master, which
    // only an account allowed to trace the master could read.
    boot_proof: None,
    preload: Some(Preload {
        config_options: &["-c", "--config-file"],
        default_configs: &[],
        flags: &[],
        in_config: unicorn_preloads,
        args_in_title: true,
    }),
    preflight: None,
    kept_old_workers: None,
};

pub static PUMA: AppServer = AppServer {
    name: "puma",
    display: "Puma",
    programs: &["puma"],
    interpreters: &["ruby"],
    titles: Titles {
        any: &["puma ", "puma: "],
        master: &["puma "],
        worker: &["puma: cluster worker"],
        name: NameInTitle::Trailing,
    },
    name_options: &["--tag"],
    comms: &["puma", "ruby"],
    signals: &[
        SignalUse {
            name: "USR1",
            what: "phased restart, one worker at a time",
            effect: Effect::NewWorkers,
            unless_preloaded: Some(Refused {
                signal: "USR1",
                why: "Puma turns a phased restart of a preloaded app into a hot restart of every worker at once",
                instead: "USR2 (hot restart)",
            }),
        },
        SignalUse {
            name: "USR2",
            what: "hot restart; the master re-executes itself in place",
            effect: Effect::NewWorkers,
            unless_preloaded: None,
        },
    ],
    refused: &[Refused {
        signal: "HUP",
        why: "Puma only reopens its log files on HUP, and without `stdout_redirect` it stops as on INT",
        instead: "USR1 (phased restart) or USR2 (hot restart)",
    }],
    boot_proof: Some(BootProof::Thread { name: "puma srv" }),
    preload: Some(Preload {
        config_options: &["-C", "--config"],
        default_configs: &["config/puma/{env}.rb", "config/puma.rb"],
        flags: &["--preload"],
        in_config: puma_preloads,
        args_in_title: false,
    }),
    preflight: None,
    kept_old_workers: None,
};

pub static NGINX: AppServer = AppServer {
    name: "nginx",
    display: "nginx",
    programs: &["nginx"],
    interpreters: &[],
    titles: Titles {
        any: &["nginx: "],
        master: &["nginx: master process"],
        worker: &["nginx: worker process"],
        name: NameInTitle::None,
    },
    name_options: &[],
    comms: &["nginx"],
    signals: &[SignalUse {
        name: "HUP",
        what: "configuration reload; new workers, the master stays",
        effect: Effect::NewWorkers,
        unless_preloaded: None,
    }],
    refused: &[],
    boot_proof: Some(BootProof::EventLoop),
    preload: None,
    preflight: Some(Preflight {
        program: "nginx",
        check: &["-t", "-q"],
        carry: &["-c", "-p", "-e"],
        opaque: &["-g"],
    }),
    kept_old_workers: Some(
        "nginx rejected the reload and kept its old configuration: see its error_log (`nginx -t` does not catch everything, e.g. a listen address it cannot bind)",
    ),
};

/// `preload_app true` in a Unicorn config file; an expression instead of
/// `true`/`false`, or code loaded from elsewhere, is unclear.
fn unicorn_preloads(line: &str) -> Option<Said> {
    if loads_code(line) {
        return Some(Said::Unclear);
    }
    match ruby_argument(line, "preload_app")? {
        Some("true") => Some(Said::On),
        Some("false" | "nil") => Some(Said::Off),
        _ => Some(Said::Unclear),
    }
}

/// `preload_app!` (or `preload_app! true`) in a Puma config file;
/// `preload_app! false` turns it off.
fn puma_preloads(line: &str) -> Option<Said> {
    if loads_code(line) {
        return Some(Said::Unclear);
    }
    match ruby_argument(line, "preload_app!")? {
        None | Some("true") => Some(Said::On),
        Some("false" | "nil") => Some(Said::Off),
        Some(_) => Some(Said::Unclear),
    }
}

/// A config line that runs code from elsewhere, which may set anything.
fn loads_code(line: &str) -> bool {
    let line = line.trim_start();
    [
        "instance_eval",
        "eval",
        "load ",
        "load(",
        "class_eval",
        "send ",
        "send(",
    ]
    .iter()
    .any(|call| line.starts_with(call))
}

/// The argument a config line gives `method`, not in a comment:
/// `preload_app true; x` and `preload_app(true)` give `true`, a bare call
/// `None`; `None` overall when the line does not call it.
fn ruby_argument<'l>(line: &'l str, method: &str) -> Option<Option<&'l str>> {
    let rest = line.trim_start().strip_prefix(method)?;
    if !rest
        .chars()
        .next()
        .is_none_or(|c| c.is_whitespace() || matches!(c, '(' | '#' | ';'))
    {
        return None;
    }
    let rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ')' | ';' | '#'))
        .unwrap_or(rest.len());
    let argument = &rest[..end];
    Some((!argument.is_empty()).then_some(argument))
}

/// Every server herd knows.
pub static SERVERS: &[&AppServer] = &[&GUNICORN, &UWSGI, &UNICORN, &PUMA, &NGINX];

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
        if self.title(cmdline).is_some() {
            return true;
        }
        let mut words = cmdline.split_whitespace();
        let Some(program) = words.next().map(basename) else {
            return false;
        };
        if self.programs.contains(&program) {
            return true;
        }
        if !self.is_interpreter(program) {
            return false;
        }
        let is_program = |word: &str| self.programs.contains(&word);
        // The interpreter's own options come first; the first other word is
        // the script it runs.
        while let Some(word) = words.next() {
            match word {
                "-m" => return words.next().is_some_and(is_program),
                "-c" | "-e" | "-" => return false,
                // Options that take a value as the next word.
                "-W" | "-X" | "-Q" | "-I" | "-r" => {
                    words.next();
                }
                _ if word.starts_with("-m") => return is_program(&word[2..]),
                _ if word.starts_with("-c") || word.starts_with("-e") => return false,
                _ if word.starts_with('-') => {}
                script => return is_program(basename(script)),
            }
        }
        false
    }

    /// The title in a command line, from the server's prefix on (past the
    /// name in front, where the title has it there); `None` when the
    /// process is untitled or not this server's.
    fn title<'c>(&self, cmdline: &'c str) -> Option<&'c str> {
        let starts = |text: &str| self.titles.any.iter().any(|p| text.starts_with(p));
        if starts(cmdline) {
            return Some(cmdline);
        }
        if self.titles.name != NameInTitle::Before {
            return None;
        }
        // `NAME uWSGI master`: the first title prefix after a space.
        cmdline
            .match_indices(' ')
            .map(|(at, _)| &cmdline[at + 1..])
            .find(|rest| starts(rest))
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
        self.title(cmdline)
            .map(|title| self.titles.master.iter().any(|p| title.starts_with(p)))
    }

    /// Whether the process may be one of a master's workers: untitled, or
    /// titled as a worker.
    pub fn may_be_worker(&self, cmdline: &str) -> bool {
        self.title(cmdline)
            .is_none_or(|title| self.titles.worker.iter().any(|p| title.starts_with(p)))
    }

    /// The name the master runs under: from its title, or from its options.
    pub fn master_name(&self, cmdline: &str) -> Option<String> {
        match (&self.titles.name, self.title(cmdline)) {
            (NameInTitle::Between(open, close), Some(_)) => {
                if let Some(rest) = cmdline.strip_prefix(open) {
                    return rest.strip_suffix(close).map(str::to_string);
                }
            }
            (NameInTitle::Before, Some(title)) if title.len() < cmdline.len() => {
                let name = &cmdline[..cmdline.len() - title.len()];
                return Some(name.trim_end().to_string());
            }
            (NameInTitle::Trailing, Some(title)) => {
                let inside = title.trim_end().strip_suffix(']')?;
                return inside.rsplit_once(" [").map(|(_, name)| name.to_string());
            }
            _ => {}
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
        assert_eq!(names(), "`gunicorn`, `uwsgi`, `unicorn`, `puma`, `nginx`");
        assert_eq!(GUNICORN.titled_master("gunicorn: worker [a]"), Some(false));
        assert_eq!(GUNICORN.titled_master("/bin/gunicorn a"), None);
        assert_eq!(
            GUNICORN.comm_pattern(),
            "*' (gunicorn'*|*' (python'*|*' (pypy'*"
        );
    }

    /// Titles and command lines as each server shows them (measured on
    /// uWSGI 2.0.21, Unicorn 6.0, Puma 5.6.5, nginx 1.22).
    #[test]
    fn every_server_tells_its_master_from_its_workers_titled_or_not() {
        let cases: &[(&AppServer, &str, Option<bool>)] = &[
            (&UWSGI, "uWSGI master", Some(true)),
            (&UWSGI, "uWSGI worker 2", Some(false)),
            (&UWSGI, "web-1 uWSGI master", Some(true)),
            (&UWSGI, "web-1 uWSGI worker 1", Some(false)),
            (&UWSGI, "uWSGI http 1", Some(false)),
            (&UWSGI, "uwsgi --ini /srv/app/uwsgi.ini", None),
            (
                &UWSGI,
                "/usr/bin/uwsgi-core --plugin python3 --master",
                None,
            ),
            (
                &UNICORN,
                "unicorn master -c /srv/app/unicorn.rb -D",
                Some(true),
            ),
            (
                &UNICORN,
                "unicorn master (old) -c /srv/app/unicorn.rb -D",
                Some(true),
            ),
            (
                &UNICORN,
                "unicorn worker[1] -c /srv/app/unicorn.rb -D",
                Some(false),
            ),
            (
                &UNICORN,
                "/usr/bin/ruby3.1 /usr/bin/unicorn -c /srv/u.rb",
                None,
            ),
            (
                &PUMA,
                "puma 5.6.5 (tcp://127.0.0.1:9292) [web-1]",
                Some(true),
            ),
            (&PUMA, "puma: cluster worker 0: 4242 [web-1]", Some(false)),
            (&PUMA, "ruby3.1 /usr/bin/puma -C /srv/puma.rb", None),
            (
                &NGINX,
                "nginx: master process /usr/sbin/nginx -c /srv/nginx.conf",
                Some(true),
            ),
            (&NGINX, "nginx: worker process", Some(false)),
            (&NGINX, "nginx: cache manager process", Some(false)),
        ];
        for (server, cmdline, master) in cases {
            assert!(server.runs(cmdline), "{}: {cmdline}", server.name);
            assert_eq!(server.titled_master(cmdline), *master, "{cmdline}");
        }
        assert!(!UWSGI.may_be_worker("uWSGI http 1"));
        assert!(!NGINX.may_be_worker("nginx: cache manager process"));
        assert!(NGINX.may_be_worker("nginx: worker process"));
        assert!(UWSGI.may_be_worker("uwsgi --ini app.ini"));
        for (server, cmdline) in [
            (&UWSGI, "vim uwsgi.ini"),
            (&UWSGI, "my uwsgi-exporter"),
            (&UNICORN, "tail -f /var/log/unicorn.log"),
            (&UNICORN, "ruby -e puts(1) unicorn"),
            (&PUMA, "pumactl restart"),
            (&PUMA, "ruby /srv/bin/pumactl stats"),
            (&NGINX, "nginx-exporter --nginx.scrape-uri x"),
            (&NGINX, "less nginx: master process"),
        ] {
            assert!(!server.runs(cmdline), "{}: {cmdline}", server.name);
        }
        assert_eq!(
            UWSGI.master_name("web-1 uWSGI master").as_deref(),
            Some("web-1")
        );
        assert_eq!(UWSGI.master_name("uWSGI master"), None);
        assert_eq!(
            PUMA.master_name("puma 5.6.5 (tcp://127.0.0.1:9292) [web-1]")
                .as_deref(),
            Some("web-1")
        );
        assert_eq!(NGINX.master_name("nginx: master process nginx"), None);
    }

    #[test]
    fn each_server_takes_its_own_signals_and_refuses_the_traps_naming_the_right_one() {
        assert_eq!(PUMA.signal(None).unwrap().name, "USR1");
        assert_eq!(UNICORN.signal(None).unwrap().name, "HUP");
        assert_eq!(
            PUMA.signal(Some("HUP")).unwrap_err(),
            "HUP to Puma is refused: Puma only reopens its log files on HUP, and without `stdout_redirect` it stops as on INT; use USR1 (phased restart) or USR2 (hot restart)"
        );
        assert_eq!(
            UWSGI.signal(Some("TERM")).unwrap_err(),
            "TERM to uWSGI is refused: uWSGI takes TERM as a brutal reload that kills workers mid-request, or with `die-on-term` as a stop; use HUP"
        );
        assert_eq!(
            NGINX.signal(Some("USR2")).unwrap_err(),
            "nginx takes HUP, not `USR2`"
        );
        assert_eq!(GUNICORN.signal_names(), "HUP or USR2");
        assert!(matches!(
            UNICORN.signal(Some("USR2")).unwrap().effect,
            Effect::NewMaster(Upgrade {
                retire: "QUIT",
                pidfile: UpgradePidfile::OldMasterAside(".oldbin")
            })
        ));
        // Puma's hot restart keeps the master (it re-executes in place).
        assert_eq!(
            PUMA.signal(Some("USR2")).unwrap().effect,
            Effect::NewWorkers
        );
    }
}
