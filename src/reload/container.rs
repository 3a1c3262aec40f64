//! Containers, seen from the host's shell: which engine CLI to run, what
//! `inspect` says about the container (its PID 1 as the host sees it, its
//! start time and restart count), what kind of process that PID 1 is, and
//! the commands that deliver a signal through the engine.
//!
//! The three kinds of PID 1 behave differently with a signal sent to the
//! container: the master itself gets it; an init (tini, dumb-init, podman's
//! catatonit, docker's docker-init) forwards it to its child, the master; a
//! shell (`sh -c "gunicorn ..."`, the shell form of `CMD`) keeps it, and the
//! reload silently does nothing. herd refuses the shell.

use serde::Serialize;

use super::place::Engine;
use crate::shell::quote;

/// Inits that forward the signals they get to their child.
pub const FORWARDING_INITS: &[&str] = &[
    "tini",
    "tini-static",
    "dumb-init",
    "catatonit",
    "podman-init",
    "docker-init",
];

/// Whether `cmdline` is an init that passes a signal to its child alone.
/// tini (docker-init) and catatonit (podman-init) do unless `-g` sends it
/// to the child's whole process group; dumb-init sends it to the group
/// unless `-c`/`--single-child`. To the group, Gunicorn's workers would get
/// the HUP too, and die on it.
pub fn forwards_to_its_child(cmdline: &str) -> bool {
    let mut words = cmdline.split_whitespace();
    let program = words.next().map(|w| w.rsplit('/').next().unwrap_or(w));
    let options: Vec<&str> = words
        .take_while(|w| *w != "--" && w.starts_with('-'))
        .collect();
    let has = |flag: &str| {
        options.iter().any(|o| {
            *o == flag || (o.len() > 2 && !o.starts_with("--") && o[1..].contains(&flag[1..]))
        })
    };
    match program {
        Some("tini" | "tini-static" | "docker-init" | "catatonit" | "podman-init") => !has("-g"),
        Some("dumb-init") => has("-c") || options.contains(&"--single-child"),
        _ => false,
    }
}

/// Shells, which do not pass a signal on to the command they run.
pub const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "busybox"];

/// What PID 1 of the container is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pid1 {
    /// The master itself.
    Master,
    /// An init that forwards signals; the master is its child.
    Init,
    /// Another process; the master is its child and is signalled from inside.
    Other,
}

/// The container as the engine describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub engine: Engine,
    /// PID 1 of the container, as the host numbers it (0 when not running).
    pub pid: u32,
    pub running: bool,
    pub restarts: u64,
    /// The container's own name: the engine also finds a container by a
    /// prefix of its ID, which must not pass for the name asked for.
    pub name: String,
    pub started_at: String,
}

/// What the snapshot learnt about the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    NoEngine,
    /// Both CLIs are installed and the playbook did not choose.
    BothEngines,
    /// `inspect` failed: no such container, no right to ask...
    Failed {
        engine: Engine,
        exit_code: Option<u32>,
        said: String,
    },
    /// The name matched several containers.
    Several {
        engine: Engine,
        count: usize,
    },
    Seen(Seen),
}

/// Marks the container's section of a snapshot.
pub const SECTION: &str = "--herd container";

/// Starts each line of data the engine prints for herd: anything else it
/// says (a warning on stderr) is not taken for data.
const DATA: &str = "herd-data";

/// The shell lines that print the container's section and set `want` to
/// its PID 1 when it runs. `name` is checked (a plain container name).
pub fn query(engine: Option<Engine>, name: &str, sudo: &str) -> String {
    format!(
        "echo '{SECTION}'; {choose}\
         if [ -n \"$e\" ]; then echo \"engine=$e\"; \
           ci=$({sudo}\"$e\" inspect --type container --format '{DATA} {{{{.State.Pid}}}} {{{{.State.Running}}}} {{{{.RestartCount}}}} {{{{.Name}}}} {{{{.State.StartedAt}}}}' {name} 2>&1); \
           echo \"rc=$?\"; printf '%s\\n' \"$ci\"; \
           while read -r tag cp cr rest; do [ \"$tag\" = {DATA} ] && [ \"$cr\" = true ] && want=$cp; done <<HERD_EOF\n$ci\nHERD_EOF\n\
           fi\n",
        name = quote(name),
        choose = choose_engine(engine),
    )
}

/// What runs the engine's CLI: `sudo -n -u USER -- ` under `become` (Docker
/// needs root or the `docker` group, rootful Podman root), else nothing.
/// Only the CLI goes through sudo; `/proc` is read as the login account, so
/// a sudo rule for the engine alone is enough.
pub fn sudo(become_: bool, become_user: Option<&str>) -> String {
    if become_ {
        format!("sudo -n -u {} -- ", quote(become_user.unwrap_or("root")))
    } else {
        String::new()
    }
}

/// Shell lines that set `e` to the engine's CLI: the one given, or the one
/// the host has; with none or both, `e` stays empty and a line says why.
fn choose_engine(engine: Option<Engine>) -> String {
    let chosen = engine.map_or("", Engine::name);
    format!(
        "e={chosen}\n\
         if [ -z \"$e\" ]; then d=; p=; \
           command -v docker >/dev/null 2>&1 && d=docker; command -v podman >/dev/null 2>&1 && p=podman; \
           if [ -n \"$d\" ] && [ -n \"$p\" ]; then echo engine=both; else e=$d$p; [ -n \"$e\" ] || echo engine=none; fi; fi\n"
    )
}

/// The labels Compose (Docker's, and podman-compose) puts on a service's containers.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// Set to `True` on a container of `compose run`.
const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";

/// The script that lists the containers of a Compose service, running or
/// not: `engine=...`, `rc=N`, then one name per line.
pub fn members_query(engine: Option<Engine>, project: &str, service: &str, sudo: &str) -> String {
    format!(
        "{choose}if [ -n \"$e\" ]; then echo \"engine=$e\"; \
           names=$({sudo}\"$e\" ps -a --filter {project} --filter {service} --format '{DATA} {{{{.Names}}}} {{{{.Labels}}}}' 2>&1); \
           echo \"rc=$?\"; printf '%s\\n' \"$names\"; fi\n",
        choose = choose_engine(engine),
        project = quote(&format!("label={PROJECT_LABEL}={project}")),
        service = quote(&format!("label={SERVICE_LABEL}={service}")),
    )
}

/// The containers of a Compose service, sorted, or why they are unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Members {
    Found {
        engine: Engine,
        names: Vec<String>,
    },
    NoEngine,
    BothEngines,
    Failed {
        engine: Engine,
        exit_code: Option<u32>,
        said: String,
    },
}

/// What the host said after choosing the engine: none, both, or the
/// engine, its command's exit code and the lines it printed.
enum Reply<'a> {
    NoEngine,
    BothEngines,
    Said {
        engine: Engine,
        exit_code: Option<u32>,
        lines: Vec<&'a str>,
    },
}

/// Reads `engine=...`, `rc=N` and the lines after them.
fn reply(text: &str) -> Reply<'_> {
    let mut lines = text.lines();
    let engine = match lines.next().and_then(|l| l.strip_prefix("engine=")) {
        Some("both") => return Reply::BothEngines,
        Some(name) => match Engine::parse(name.trim()) {
            Some(engine) => engine,
            None => return Reply::NoEngine,
        },
        None => return Reply::NoEngine,
    };
    let exit_code = lines
        .next()
        .and_then(|l| l.strip_prefix("rc="))
        .and_then(|rc| rc.trim().parse::<u32>().ok());
    Reply::Said {
        engine,
        exit_code,
        lines: lines.map(str::trim).filter(|l| !l.is_empty()).collect(),
    }
}

/// Parses the output of [`members_query`].
pub fn parse_members(text: &str) -> Members {
    let (engine, exit_code, rest) = match reply(text) {
        Reply::NoEngine => return Members::NoEngine,
        Reply::BothEngines => return Members::BothEngines,
        Reply::Said {
            engine,
            exit_code,
            lines,
        } => (engine, exit_code, lines),
    };
    if exit_code != Some(0) {
        return Members::Failed {
            engine,
            exit_code,
            said: rest.join("\n"),
        };
    }
    // A one-off container (`compose run`) carries the service's labels too,
    // but serves nothing: not a replica.
    let mut names: Vec<String> = rest
        .iter()
        .filter_map(|l| l.strip_prefix(DATA))
        .filter(|l| {
            !l.contains(&format!("{ONEOFF_LABEL}=True"))
                && !l.contains(&format!("{ONEOFF_LABEL}:True"))
        })
        .filter_map(|l| l.split_whitespace().next())
        .map(|name| name.trim_start_matches('/').to_string())
        .collect();
    names.sort();
    names.dedup();
    Members::Found { engine, names }
}

/// Parses the container's section of a snapshot.
pub fn parse(text: &str) -> Answer {
    let (engine, exit_code, rest) = match reply(text) {
        Reply::NoEngine => return Answer::NoEngine,
        Reply::BothEngines => return Answer::BothEngines,
        Reply::Said {
            engine,
            exit_code,
            lines,
        } => (engine, exit_code, lines),
    };
    let failed = || Answer::Failed {
        engine,
        exit_code,
        said: rest.join("\n"),
    };
    if exit_code != Some(0) {
        return failed();
    }
    let data: Vec<&str> = rest
        .iter()
        .filter_map(|l| l.strip_prefix(DATA))
        .map(str::trim)
        .collect();
    if data.len() > 1 {
        return Answer::Several {
            engine,
            count: data.len(),
        };
    }
    // The start time comes last: Podman writes it with spaces in it.
    let fields: Vec<&str> = data
        .first()
        .map_or(Vec::new(), |l| l.split_whitespace().collect());
    match fields.as_slice() {
        [pid, running, restarts, name, started_at @ ..] if !started_at.is_empty() => {
            match (pid.parse(), restarts.parse()) {
                (Ok(pid), Ok(restarts)) => Answer::Seen(Seen {
                    engine,
                    pid,
                    running: *running == "true",
                    restarts,
                    // Docker writes `/web`.
                    name: name.trim_start_matches('/').to_string(),
                    started_at: started_at.join(" "),
                }),
                _ => failed(),
            }
        }
        _ => failed(),
    }
}

/// The program a command line runs, without its directory.
pub fn program(cmdline: &str) -> &str {
    let first = cmdline.split_whitespace().next().unwrap_or("");
    first.rsplit('/').next().unwrap_or(first)
}

/// `ENGINE ARGS` as it runs on the host, after `sudo` (see [`sudo`]).
pub fn command(engine: Engine, sudo: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
    format!("{sudo}{} {}", engine.name(), args.join(" "))
}

/// The host-side script that signals the master inside the container: it
/// re-reads the master's start time (as `signal.sh` does), reads the pid
/// the container knows it by (`NSpid`), and runs `kill` there through the
/// engine, with the shell's own `kill` (an image need not have procps).
/// Prints `signalled`, `gone` or `changed NOW`.
pub fn exec_kill(
    engine: Engine,
    name: &str,
    signal: &str,
    pid: u32,
    start_time: u64,
    sudo: &str,
) -> String {
    format!(
        "pid={pid} want={start_time}\n\
         if ! IFS= read -r stat 2>/dev/null < /proc/$pid/stat; then echo gone; exit 0; fi\n\
         rest=${{stat##*) }}\n\
         set -f; set -- $rest; set +f\n\
         case $1 in Z|X|x) echo gone; exit 0 ;; esac\n\
         if [ \"${{20}}\" != \"$want\" ]; then echo \"changed ${{20}}\"; exit 0; fi\n\
         ns=; while read -r k v; do [ \"$k\" = NSpid: ] && for x in $v; do ns=$x; done; done < /proc/$pid/status\n\
         [ -n \"$ns\" ] || {{ echo 'no NSpid in /proc/'$pid'/status' >&2; exit 1; }}\n\
         {sudo}{engine} exec {name} sh -c 'kill -s \"$1\" \"$2\"' herd {signal} \"$ns\" || exit 1\n\
         echo signalled\n",
        engine = engine.name(),
        name = quote(name),
        signal = quote(signal),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_answers_are_read() {
        assert_eq!(
            parse(
                "engine=podman\nrc=0\nherd-data 4242 true 0 web 2026-11-29T23:40:01.123456789Z\n"
            ),
            Answer::Seen(Seen {
                engine: Engine::Podman,
                pid: 4242,
                running: true,
                restarts: 0,
                name: "web".into(),
                started_at: "2026-11-29T23:40:01.123456789Z".into(),
            })
        );
        let Answer::Seen(podman) =
            parse("engine=podman\nrc=0\nWARN[0000] cgroupv2 manager is set to systemd\nherd-data 7 true 0 /web 2026-11-29 23:50:01.123456789 +0000 UTC\n")
        else {
            panic!("parsed");
        };
        assert_eq!(podman.started_at, "2026-11-29 23:50:01.123456789 +0000 UTC");
        assert_eq!(podman.name, "web");
        assert_eq!(parse("engine=both\n"), Answer::BothEngines);
        assert_eq!(parse("engine=none\n"), Answer::NoEngine);
        assert_eq!(
            parse("engine=docker\nrc=1\nError: No such container: web\n"),
            Answer::Failed {
                engine: Engine::Docker,
                exit_code: Some(1),
                said: "Error: No such container: web".into()
            }
        );
        assert_eq!(
            parse("engine=docker\nrc=0\nherd-data 1 true 0 a t\nherd-data 2 true 0 b t\n"),
            Answer::Several {
                engine: Engine::Docker,
                count: 2
            }
        );
        let Answer::Seen(stopped) =
            parse("engine=docker\nrc=0\nherd-data 0 false 3 /web 2026-11-29T23:40:01Z\n")
        else {
            panic!("parsed");
        };
        assert!(!stopped.running && stopped.restarts == 3);
    }

    #[test]
    fn only_inits_that_signal_their_child_alone_forward_a_reload() {
        for init in [
            "/run/podman-init -- python3 -m gunicorn",
            "/sbin/docker-init -- gunicorn app:app",
            "tini -s -- gunicorn",
            "/usr/bin/dumb-init --single-child gunicorn",
            "dumb-init -c gunicorn",
        ] {
            assert!(forwards_to_its_child(init), "{init}");
        }
        for group in [
            "tini -g -- gunicorn",
            "catatonit -sg -- gunicorn",
            "/usr/bin/dumb-init gunicorn",
            "dumb-init -- gunicorn -c conf.py",
            "/bin/sh -c gunicorn",
            "gunicorn: master [app]",
        ] {
            assert!(!forwards_to_its_child(group), "{group}");
        }
    }

    #[test]
    fn commands_go_through_sudo_under_become() {
        assert_eq!(
            command(
                Engine::Podman,
                &sudo(true, None),
                &["kill", "--signal=HUP", "web"]
            ),
            "sudo -n -u root -- podman kill --signal=HUP web"
        );
        assert_eq!(
            command(Engine::Docker, &sudo(false, Some("app")), &["start", "web"]),
            "docker start web"
        );
        assert_eq!(program("/usr/bin/tini -- gunicorn"), "tini");
        assert_eq!(program(""), "");
    }

    #[test]
    fn exec_kill_names_the_master_by_its_pid_in_the_container_and_checks_its_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("argv");
        let fake = dir.path().join("podman");
        std::fs::write(
            &fake,
            format!("#!/bin/sh\necho \"$@\" > {}\n", log.display()),
        )
        .expect("fake engine");
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let start: u64 = stat
            .rsplit(") ")
            .next()
            .and_then(|r| r.split(' ').nth(19))
            .and_then(|t| t.parse().ok())
            .expect("start time");
        let run = |start: u64| {
            let output = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(exec_kill(Engine::Podman, "web", "HUP", pid, start, ""))
                .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
                .output()
                .expect("sh runs");
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        };
        assert_eq!(run(start + 1), format!("changed {start}"));
        assert!(!log.exists(), "the engine ran for a reused pid");
        assert_eq!(run(start), "signalled");
        // Outside a pid namespace, the pid inside is the pid itself.
        assert_eq!(
            std::fs::read_to_string(&log).expect("engine ran").trim(),
            format!("exec web sh -c kill -s \"$1\" \"$2\" herd HUP {pid}")
        );
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(run(start), "gone");
    }

    #[test]
    fn the_container_query_runs_here_against_a_fake_engine() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fake = dir.path().join("podman");
        std::fs::write(
            &fake,
            "#!/bin/sh\n[ \"$1\" = inspect ] || exit 3\nfor a; do last=$a; done\n[ \"$last\" = web ] || { echo \"Error: no such container $last\" >&2; exit 125; }\necho 'WARN a warning first' >&2\necho 'herd-data 77 true 1 web 2026-11-29T10:00:00Z'\n",
        )
        .expect("fake engine");
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let run = |name: &str| {
            let output = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!(
                    "want=\n{}\necho \"want=$want\"",
                    query(Some(Engine::Podman), name, "")
                ))
                .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
                .output()
                .expect("sh runs");
            String::from_utf8_lossy(&output.stdout).to_string()
        };
        let said = run("web");
        assert!(said.ends_with("want=77\n"), "{said}");
        let section = said
            .strip_prefix(&format!("{SECTION}\n"))
            .and_then(|s| s.strip_suffix("want=77\n"))
            .expect("the section");
        assert_eq!(
            parse(section),
            Answer::Seen(Seen {
                engine: Engine::Podman,
                pid: 77,
                running: true,
                restarts: 1,
                name: "web".into(),
                started_at: "2026-11-29T10:00:00Z".into()
            })
        );
        let said = run("other");
        assert!(said.ends_with("want=\n"), "{said}");
        assert!(
            said.contains("rc=125\nError: no such container other\n"),
            "{said}"
        );
    }
}
