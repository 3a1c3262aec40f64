//! Whether a master preloads the app, for the signals that do not do what
//! they say then (HUP to a preloading Unicorn reloads no code; USR1 to a
//! preloading Puma restarts every worker at once), and the default
//! preflight a server has (nginx's `nginx -t`). Both read the master's
//! command line; preloading may also need its config file, read on the host
//! relative to the master's working directory.

use super::discover::Master;
use super::server::{AppServer, Preflight, Preload, Said};
use crate::shell::quote;

/// What herd found out about a master's preloading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preloads {
    /// Yes or no, and what says so (`preload_app true in /srv/app/unicorn.rb`).
    Known(bool, String),
    /// It cannot be told, and why.
    Unknown(String),
}

/// The largest config file herd reads.
const MAX_CONFIG: u64 = 1 << 20;

/// Marks the config read among the commands herd runs.
pub const MARKER: &str = "herd: read the master's config file";

/// The words of a master's command line that are its arguments, when they
/// can be read: all of them untitled, those after the title's head where
/// the title keeps them, none where it does not.
fn arguments<'c>(server: &AppServer, preload: &Preload, cmdline: &'c str) -> Option<Vec<&'c str>> {
    match server.titled_master(cmdline) {
        Some(_) if !preload.args_in_title => None,
        _ => Some(cmdline.split_whitespace().collect()),
    }
}

/// The value of `option` among `words`: `-c FILE`, `--config=FILE`, `-cFILE`.
fn option_value<'w>(words: &[&'w str], options: &[&str]) -> Option<&'w str> {
    words.iter().enumerate().find_map(|(i, word)| {
        options.iter().find_map(|option| {
            if *word == *option {
                return words.get(i + 1).copied();
            }
            let rest = word.strip_prefix(option)?;
            match rest.strip_prefix('=') {
                Some(value) => Some(value),
                // Glued short options only: `-cFILE`, not `--config-fileX`.
                None if !option.starts_with("--") && !rest.is_empty() => Some(rest),
                None => None,
            }
        })
    })
}

/// What the master's command line alone says, or the config files to read
/// (in order, the first that exists counts).
pub enum Plan {
    Settled(Preloads),
    Read(Vec<String>),
    /// The files the server reads by default, where the command line that
    /// could have named another one cannot be read: a file there that turns
    /// preloading on settles it, one that does not may not be the file read.
    Guess(Vec<String>),
}

pub fn plan(server: &AppServer, preload: &Preload, master: &Master) -> Plan {
    let Some(words) = arguments(server, preload, &master.cmdline) else {
        if preload.default_configs.is_empty() {
            return Plan::Settled(Preloads::Unknown(
                "its title hides its command line, where its config file is named".to_string(),
            ));
        }
        return Plan::Guess(defaults(preload));
    };
    if let Some(flag) = words.iter().find(|w| preload.flags.contains(w)) {
        return Plan::Settled(Preloads::Known(
            true,
            format!("`{flag}` on its command line"),
        ));
    }
    match option_value(&words, preload.config_options) {
        Some(file) => Plan::Read(vec![file.to_string()]),
        None if preload.default_configs.is_empty() => Plan::Settled(Preloads::Known(
            false,
            format!(
                "no config file on its command line, and {} preloads only when one says so",
                server.display
            ),
        )),
        None => Plan::Read(defaults(preload)),
    }
}

fn defaults(preload: &Preload) -> Vec<String> {
    preload
        .default_configs
        .iter()
        .map(|path| path.to_string())
        .collect()
}

/// The host command that prints the first of `files` that exists (as
/// `== FILE` and its text), relative to the master's working directory,
/// and `-- FILE` for each missing one before it. `{env}` in a name is the
/// app's environment as the master's environment gives it.
pub fn script(master: u32, files: &[String]) -> String {
    let mut out = format!(
        "# {MARKER}\n\
         cd /proc/{master}/cwd 2>/dev/null || {{ echo '!! the master'\"'\"'s working directory cannot be read'; exit 0; }}\n\
         env=; for v in APP_ENV RACK_ENV RAILS_ENV; do [ -n \"$env\" ] && break; \
         env=$(tr '\\0' '\\n' < /proc/{master}/environ 2>/dev/null | sed -n \"s/^$v=//p\" | head -n 1); done\n\
         [ -n \"$env\" ] || env=development\n"
    );
    for file in files {
        let path = file
            .split("{env}")
            .map(quote)
            .collect::<Vec<_>>()
            .join("\"$env\"");
        out.push_str(&format!(
            "f={path}; if [ -f \"$f\" ]; then echo \"== $f\"; \
             n=$(wc -c < \"$f\" 2>/dev/null) || n=0; [ \"$n\" -le {MAX_CONFIG} ] || {{ echo '!! its config file is larger than {MAX_CONFIG} bytes'; exit 0; }}; \
             cat -- \"$f\" || echo '!! cannot read it'; exit 0; fi; echo \"-- $f\"\n"
        ));
    }
    out
}

/// Reads the script's answer; `guess`: the files were the server's default
/// ones, read without knowing whether it was told another (see [`Plan::Guess`]).
pub fn judge(server: &AppServer, preload: &Preload, answer: &str, guess: bool) -> Preloads {
    let mut lines = answer.lines();
    let mut missing = Vec::new();
    let file = loop {
        match lines.next() {
            Some(line) if line.starts_with("!! ") => {
                return Preloads::Unknown(line[3..].to_string());
            }
            Some(line) if line.starts_with("-- ") => missing.push(line[3..].to_string()),
            Some(line) if line.starts_with("== ") => break line[3..].to_string(),
            Some(_) => {}
            None => {
                let hidden = if preload.args_in_title {
                    ""
                } else {
                    "its title hides the config file it was started with, and "
                };
                return Preloads::Unknown(format!(
                    "{hidden}no config file is where {} looks by default, in its working directory ({})",
                    server.display,
                    missing.join(", ")
                ));
            }
        }
    };
    let text: Vec<&str> = lines.collect();
    if let Some(why) = text.first().and_then(|line| line.strip_prefix("!! ")) {
        return Preloads::Unknown(why.to_string());
    }
    if text.last() == Some(&"!! cannot read it") {
        return Preloads::Unknown(format!("its config file {file} cannot be read"));
    }
    let mut said = Said::Off;
    for (number, line) in text.iter().enumerate() {
        match (preload.in_config)(line) {
            Some(Said::Unclear) => {
                return Preloads::Unknown(format!(
                "line {} of its config file {file} may set preloading in a way herd cannot read",
                number + 1
            ))
            }
            Some(now) => said = now,
            None => {}
        }
    }
    match (said, guess) {
        (Said::On, _) => Preloads::Known(
            true,
            format!("its config file {file} turns preloading on"),
        ),
        (_, false) => Preloads::Known(false, format!("its config file {file} does not preload")),
        (_, true) => Preloads::Unknown(format!(
            "its title hides whether it was started with another config file than {file}, which does not preload"
        )),
    }
}

/// Marks the default preflight among the commands herd runs.
pub const PREFLIGHT_MARKER: &str = "herd: check the configuration the master runs with";

/// The exit status of the default preflight when the master's program is
/// not the host's own server program.
pub const NOT_THE_PROGRAM: i32 = 97;

/// The default preflight for `master`: the program it runs, checking the
/// configuration its command line names. The program is never taken from
/// the command line, which any process can set: it is the master's
/// executable (`/proc/PID/exe`), and only when that is the host's own
/// `program` (found on the PATH), so a process merely titled like the
/// server gets nothing run. An error says why none can be built.
pub fn default_preflight(preflight: &Preflight, master: &Master) -> Result<String, String> {
    // `nginx: master process /usr/sbin/nginx -c /etc/nginx/nginx.conf`
    let args = master
        .cmdline
        .split_once(" process ")
        .map_or(master.cmdline.as_str(), |(_, rest)| rest);
    let words: Vec<&str> = args.split_whitespace().collect();
    if let Some(option) = words
        .iter()
        .find(|w| preflight.opaque.iter().any(|o| *w == o || w.starts_with(o)))
    {
        return Err(format!(
            "its command line has `{option}`, which herd cannot carry over to a check of its configuration: give `reload.preflight`"
        ));
    }
    let mut carried = Vec::new();
    let mut rest = words.iter().skip(1);
    while let Some(word) = rest.next() {
        if preflight.carry.contains(word) {
            let Some(value) = rest.next() else { break };
            if carried.iter().any(|(o, _)| o == word) {
                return Err(format!(
                    "its command line has `{word}` twice, so herd cannot tell which configuration it runs: give `reload.preflight`"
                ));
            }
            carried.push((*word, *value));
        } else if !word.starts_with('-') {
            return Err(format!(
                "its command line has `{word}` where herd expects an option (a path with a space?), so herd cannot tell which configuration it runs: give `reload.preflight`"
            ));
        }
    }
    let mut check: Vec<String> = preflight.check.iter().map(|w| w.to_string()).collect();
    for (option, value) in carried {
        check.push(option.to_string());
        check.push(quote(value));
    }
    let pid = master.pid;
    let program = quote(preflight.program);
    Ok(format!(
        "# {PREFLIGHT_MARKER}\n\
         e=$(readlink /proc/{pid}/exe 2>/dev/null); e=${{e% (deleted)}}\n\
         b=$(PATH=\"$PATH:/usr/local/sbin:/usr/sbin:/sbin\" command -v {program} 2>/dev/null) && b=$(readlink -f \"$b\")\n\
         if [ -z \"$e\" ]; then echo \"herd: which program master {pid} runs cannot be read (/proc/{pid}/exe): reload with become, or give reload.preflight\" >&2; exit {NOT_THE_PROGRAM}; fi\n\
         if [ \"$e\" != \"$b\" ]; then echo \"herd: master {pid} runs $e, not this host's {program} (${{b:-none on the PATH or in the sbin directories}}): give reload.preflight\" >&2; exit {NOT_THE_PROGRAM}; fi\n\
         exec \"$e\" {check}\n",
        check = check.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::server::{NGINX, PUMA, UNICORN};
    use std::process::Command;

    fn master(cmdline: &str) -> Master {
        Master {
            pid: 500,
            start_time: 1,
            cmdline: cmdline.to_string(),
            workers: vec![501],
        }
    }

    fn read(server: &AppServer, cmdline: &str) -> Result<Preloads, Vec<String>> {
        match plan(server, server.preload.as_ref().unwrap(), &master(cmdline)) {
            Plan::Settled(preloads) => Ok(preloads),
            Plan::Read(files) | Plan::Guess(files) => Err(files),
        }
    }

    #[test]
    fn unicorn_reads_the_config_its_title_names_and_puma_where_it_looks_by_default() {
        assert_eq!(
            read(
                &UNICORN,
                "unicorn master -c /srv/app/unicorn.rb -D -E production"
            ),
            Err(vec!["/srv/app/unicorn.rb".to_string()])
        );
        assert_eq!(
            read(&UNICORN, "unicorn master --config-file=/srv/u.rb"),
            Err(vec!["/srv/u.rb".to_string()])
        );
        assert!(matches!(
            read(&UNICORN, "unicorn master -D -l 0.0.0.0:8080"),
            Ok(Preloads::Known(false, _))
        ));
        // Puma's title hides its arguments: only the default places remain.
        assert!(matches!(
            plan(&PUMA, PUMA.preload.as_ref().unwrap(), &master("puma 5.6.5 (tcp://127.0.0.1:9292) [app]")),
            Plan::Guess(files) if files == ["config/puma/{env}.rb", "config/puma.rb"]
        ));
        // Before its title is set, its command line says it all.
        assert!(matches!(
            read(&PUMA, "ruby3.1 /usr/bin/puma --preload -w 2"),
            Ok(Preloads::Known(true, _))
        ));
        assert_eq!(
            read(&PUMA, "/usr/bin/puma -C /srv/puma.rb"),
            Err(vec!["/srv/puma.rb".to_string()])
        );
    }

    #[test]
    fn config_lines_that_turn_preloading_on_and_off_and_those_herd_cannot_read() {
        use Said::{Off, On, Unclear};
        let unicorn = UNICORN.preload.as_ref().unwrap().in_config;
        assert_eq!(unicorn("preload_app true"), Some(On));
        assert_eq!(unicorn("  preload_app(true) # copy on write"), Some(On));
        assert_eq!(unicorn("preload_app true;"), Some(On));
        assert_eq!(unicorn("preload_app\ttrue"), Some(On));
        assert_eq!(unicorn("preload_app false"), Some(Off));
        assert_eq!(unicorn("preload_app ENV['PRELOAD'] == '1'"), Some(Unclear));
        assert_eq!(
            unicorn("instance_eval(File.read('/srv/shared.rb'))"),
            Some(Unclear)
        );
        assert_eq!(unicorn("# preload_app true"), None);
        assert_eq!(unicorn("preload_apps true"), None);
        let puma = PUMA.preload.as_ref().unwrap().in_config;
        assert_eq!(puma("preload_app!"), Some(On));
        assert_eq!(puma("preload_app! # fast boot"), Some(On));
        assert_eq!(puma("preload_app!;"), Some(On));
        assert_eq!(puma("preload_app!(false)"), Some(Off));
        assert_eq!(puma("preload_app! false"), Some(Off));
        assert_eq!(puma("preload_app! ENV.key?('X')"), Some(Unclear));
        assert_eq!(puma("#preload_app!"), None);
    }

    /// The host side, on this machine: a process whose working directory
    /// holds the config files.
    #[test]
    fn the_host_reads_the_first_config_that_exists_from_the_masters_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config/puma")).unwrap();
        std::fs::write(
            dir.path().join("config/puma.rb"),
            "workers 2\npreload_app!\n",
        )
        .unwrap();
        let mut child = Command::new("sleep")
            .arg("30")
            .current_dir(dir.path())
            .spawn()
            .unwrap();
        let files = vec![
            "config/puma/{env}.rb".to_string(),
            "config/puma.rb".to_string(),
        ];
        let pid = child.id();
        let run = |files: &[String]| {
            let output = Command::new("sh")
                .arg("-c")
                .arg(script(pid, files))
                .output()
                .unwrap();
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        let preload = PUMA.preload.as_ref().unwrap();
        assert_eq!(
            judge(&PUMA, preload, &run(&files), true),
            Preloads::Known(
                true,
                "its config file config/puma.rb turns preloading on".into()
            )
        );
        // The environment's file comes first: `development` without one set.
        std::fs::write(dir.path().join("config/puma/development.rb"), "workers 2\n").unwrap();
        assert!(matches!(
            judge(&PUMA, preload, &run(&files), false),
            Preloads::Known(false, said) if said.contains("config/puma/development.rb")
        ));
        // Found where Puma looks by default, a file that does not preload
        // may not be the one a hidden `-C` named.
        assert!(matches!(
            judge(&PUMA, preload, &run(&files), true),
            Preloads::Unknown(why) if why.contains("hides whether it was started with another config file")
        ));
        // A name with quotes and `$(...)` is a file name, never run.
        let hostile = vec!["x'$(touch pwned)'.rb".to_string()];
        assert!(matches!(
            judge(&PUMA, preload, &run(&hostile), false),
            Preloads::Unknown(why) if why.contains("x'$(touch pwned)'.rb")
        ));
        assert!(!dir.path().join("pwned").exists());
        child.kill().unwrap();
        child.wait().unwrap();
        // Gone: its directory cannot be read.
        assert!(matches!(
            judge(&PUMA, preload, &run(&files), false),
            Preloads::Unknown(why) if why.contains("working directory")
        ));
    }

    #[test]
    fn nginx_checks_the_config_its_master_was_started_with() {
        let preflight = NGINX.preflight.as_ref().unwrap();
        let built = default_preflight(
            preflight,
            &master("nginx: master process /usr/sbin/nginx -c /srv/app/nginx.conf -p /srv/app/"),
        )
        .unwrap();
        assert!(
            built.ends_with("exec \"$e\" -t -q -c /srv/app/nginx.conf -p /srv/app/\n"),
            "{built}"
        );
        // The program named in the title is never what runs.
        let forged = default_preflight(
            preflight,
            &master("nginx: master process /tmp/evil/nginx -c /srv/app/nginx.conf"),
        )
        .unwrap();
        assert!(!forged.contains("/tmp/evil"), "{forged}");
        assert!(
            default_preflight(preflight, &master("nginx: master process nginx"))
                .unwrap()
                .ends_with("exec \"$e\" -t -q\n")
        );
        assert_eq!(
            default_preflight(
                preflight,
                &master("nginx: master process /usr/sbin/nginx -c /srv/x'y $(id).conf")
            ),
            Err("its command line has `$(id).conf` where herd expects an option (a path with a space?), so herd cannot tell which configuration it runs: give `reload.preflight`".to_string()),
        );
        assert!(default_preflight(
            preflight,
            &master("nginx: master process /usr/sbin/nginx -c /srv/x'y$(id).conf")
        )
        .unwrap()
        .contains("-c '/srv/x'\\''y$(id).conf'"));
        for title in [
            "nginx: master process /usr/sbin/nginx -g daemon off;",
            "nginx: master process /usr/sbin/nginx -c /etc/shadow -c /srv/nginx.conf",
        ] {
            assert!(
                default_preflight(preflight, &master(title)).is_err(),
                "{title}"
            );
        }
    }

    /// On this machine: the check runs only the master's own program, and
    /// only when that is the host's program of that name.
    #[test]
    fn the_check_runs_nothing_for_a_process_that_only_looks_like_the_server() {
        let preflight = Preflight {
            program: "sleep",
            check: &["0"],
            carry: &[],
            opaque: &[],
        };
        let run = |pid: u32| {
            let script = default_preflight(
                &preflight,
                &Master {
                    pid,
                    ..master("sleep: master process /tmp/evil/sleep")
                },
            )
            .unwrap();
            Command::new("sh").arg("-c").arg(script).output().unwrap()
        };
        let mut real = Command::new("sleep").arg("30").spawn().unwrap();
        let output = run(real.id());
        assert!(output.status.success(), "{output:?}");
        real.kill().unwrap();
        real.wait().unwrap();
        // A program of the same name elsewhere is not the host's.
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("sleep");
        std::fs::copy("/bin/sh", &fake).unwrap();
        let mut other = Command::new(&fake)
            .arg("-c")
            .arg("read x")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let output = run(other.id());
        assert_eq!(output.status.code(), Some(NOT_THE_PROGRAM), "{output:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("not this host's sleep"),
            "{output:?}"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
