//! Whether a master preloads the app, for the signals that do not do what
//! they say then (HUP to a preloading Unicorn reloads no code; USR1 to a
//! preloading Puma restarts every worker at once), and the default
//! preflight a server has (nginx's `nginx -t`). Both read the master's
//! command line; preloading may also need its config file, read on the host
//! relative to the master's working directory.

use super::discover::Master;
use super::server::{AppServer, Preflight, Preload};
use crate::shell::quote;

/// What herd found out about a master's preloading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preloads {
    /// Yes or no, and what says so (`preload_app true in /srv/app/unicorn.rb`).
    Known(bool, String),
    /// It cannot be told, and why.
    Unknown(String),
}

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
}

pub fn plan(server: &AppServer, preload: &Preload, master: &Master) -> Plan {
    let Some(words) = arguments(server, preload, &master.cmdline) else {
        if preload.default_configs.is_empty() {
            return Plan::Settled(Preloads::Unknown(
                "its title hides its command line, where its config file is named".to_string(),
            ));
        }
        return Plan::Read(defaults(preload));
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
            "f={path}; if [ -f \"$f\" ]; then echo \"== $f\"; cat -- \"$f\" || echo '!! cannot read it'; exit 0; fi; echo \"-- $f\"\n"
        ));
    }
    out
}

/// Reads the script's answer.
pub fn judge(server: &AppServer, preload: &Preload, answer: &str) -> Preloads {
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
    if text.last() == Some(&"!! cannot read it") {
        return Preloads::Unknown(format!("its config file {file} cannot be read"));
    }
    let said = text
        .iter()
        .filter_map(|line| (preload.in_config)(line))
        .next_back()
        .unwrap_or(false);
    let how = if said {
        "turns preloading on"
    } else {
        "does not preload"
    };
    Preloads::Known(said, format!("its config file {file} {how}"))
}

/// The default preflight for `master`, built from its command line; an
/// error says why it cannot be.
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
    let program = match words.first() {
        Some(first) if first.rsplit('/').next() == Some(preflight.program) => *first,
        _ => preflight.program,
    };
    let mut command = vec![quote(program)];
    command.extend(preflight.check.iter().map(|word| word.to_string()));
    let mut rest = words.iter().skip(1);
    while let Some(word) = rest.next() {
        if preflight.carry.contains(word) {
            let Some(value) = rest.next() else { break };
            command.push(word.to_string());
            command.push(quote(value));
        } else if !word.starts_with('-') {
            return Err(format!(
                "its command line has `{word}` where herd expects an option (a path with a space?), so herd cannot tell which configuration it runs: give `reload.preflight`"
            ));
        }
    }
    Ok(command.join(" "))
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
            Plan::Read(files) => Err(files),
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
        assert_eq!(
            read(&PUMA, "puma 5.6.5 (tcp://127.0.0.1:9292) [app]"),
            Err(vec![
                "config/puma/{env}.rb".to_string(),
                "config/puma.rb".to_string()
            ])
        );
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
    fn config_lines_that_turn_preloading_on_and_off() {
        let unicorn = UNICORN.preload.as_ref().unwrap().in_config;
        assert_eq!(unicorn("preload_app true"), Some(true));
        assert_eq!(unicorn("  preload_app(true) # copy on write"), Some(true));
        assert_eq!(unicorn("preload_app false"), Some(false));
        assert_eq!(unicorn("# preload_app true"), None);
        assert_eq!(unicorn("preload_apps true"), None);
        let puma = PUMA.preload.as_ref().unwrap().in_config;
        assert_eq!(puma("preload_app!"), Some(true));
        assert_eq!(puma("preload_app! # fast boot"), Some(true));
        assert_eq!(puma("preload_app!(false)"), Some(false));
        assert_eq!(puma("preload_app! false"), Some(false));
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
            judge(&PUMA, preload, &run(&files)),
            Preloads::Known(
                true,
                "its config file config/puma.rb turns preloading on".into()
            )
        );
        // The environment's file comes first: `development` without one set.
        std::fs::write(dir.path().join("config/puma/development.rb"), "workers 2\n").unwrap();
        assert!(matches!(
            judge(&PUMA, preload, &run(&files)),
            Preloads::Known(false, said) if said.contains("config/puma/development.rb")
        ));
        // A name with quotes and `$(...)` is a file name, never run.
        let hostile = vec!["x'$(touch pwned)'.rb".to_string()];
        assert!(matches!(
            judge(&PUMA, preload, &run(&hostile)),
            Preloads::Unknown(why) if why.contains("x'$(touch pwned)'.rb")
        ));
        assert!(!dir.path().join("pwned").exists());
        child.kill().unwrap();
        child.wait().unwrap();
        // Gone: its directory cannot be read.
        assert!(matches!(
            judge(&PUMA, preload, &run(&files)),
            Preloads::Unknown(why) if why.contains("working directory")
        ));
    }

    #[test]
    fn nginx_checks_the_config_its_master_was_started_with() {
        let preflight = NGINX.preflight.as_ref().unwrap();
        assert_eq!(
            default_preflight(
                preflight,
                &master(
                    "nginx: master process /usr/sbin/nginx -c /srv/app/nginx.conf -p /srv/app/"
                )
            ),
            Ok("/usr/sbin/nginx -t -q -c /srv/app/nginx.conf -p /srv/app/".to_string())
        );
        assert_eq!(
            default_preflight(preflight, &master("nginx: master process nginx")),
            Ok("nginx -t -q".to_string())
        );
        assert_eq!(
            default_preflight(
                preflight,
                &master("nginx: master process /usr/sbin/nginx -c /srv/x'y $(id).conf")
            ),
            Err("its command line has `$(id).conf` where herd expects an option (a path with a space?), so herd cannot tell which configuration it runs: give `reload.preflight`".to_string()),
        );
        assert_eq!(
            default_preflight(
                preflight,
                &master("nginx: master process /usr/sbin/nginx -c /srv/x'y$(id).conf")
            ),
            Ok("/usr/sbin/nginx -t -q -c '/srv/x'\\''y$(id).conf'".to_string())
        );
        let refused = default_preflight(
            preflight,
            &master("nginx: master process /usr/sbin/nginx -g daemon off;"),
        )
        .unwrap_err();
        assert!(refused.contains("`-g`"), "{refused}");
    }
}
