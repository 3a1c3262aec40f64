//! Usage errors caused by a `HERD_*` variable say which one: clap reports
//! an option's value from the environment as if it were typed, and a CI
//! user who typed nothing needs the variable's name to find it.

use std::ffi::OsString;

use clap::{Arg, Command};

/// The text of a usage error, with a note for each option named in it that
/// took its value from the environment (and not from `args`).
pub fn explain(error: &clap::Error, command: &Command, args: &[OsString]) -> String {
    let text = error.render().to_string();
    let notes = notes(&text, command, args);
    if notes.is_empty() {
        return text;
    }
    match text.find("\n\n") {
        Some(end) => format!("{}\n{notes}{}", &text[..end], &text[end..]),
        None => format!("{}\n{notes}\n", text.trim_end()),
    }
}

/// For an error in the input found once the command line was read (`--limit`
/// matching no host, an inventory that is a directory): a note line for each
/// option that took its value from the environment and that `text` names
/// (`--limit`) or quotes (its value, three characters or more); empty when
/// there is none.
pub fn input_notes(text: &str, command: &Command, args: &[OsString]) -> String {
    let notes = notes(text, command, args);
    if notes.is_empty() {
        notes
    } else {
        notes + "\n"
    }
}

fn notes(text: &str, command: &Command, args: &[OsString]) -> String {
    let notes: Vec<String> = from_environment(command, args)
        .into_iter()
        .filter(|(long, _, value)| {
            mentions(text, long) || (value.chars().count() >= 3 && text.contains(value.as_str()))
        })
        .map(|(long, variable, _)| {
            format!("  note: --{long} comes from the environment variable {variable}")
        })
        .collect();
    notes.join("\n")
}

/// `(long name, variable, value)` of each option of the subcommand in `args`
/// whose variable is set while the option itself is not on the command line.
fn from_environment(command: &Command, args: &[OsString]) -> Vec<(String, String, String)> {
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .take_while(|word| word != "--")
        .collect();
    let mut command = command;
    for word in &words {
        if let Some(sub) = command.find_subcommand(word) {
            command = sub;
        }
    }
    command
        .get_arguments()
        .filter_map(|arg| {
            let variable = arg.get_env()?;
            let long = arg.get_long()?;
            let value = std::env::var_os(variable)?;
            (!given(arg, long, &words)).then(|| {
                (
                    long.to_string(),
                    variable.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                )
            })
        })
        .collect()
}

/// Whether the command line holds the option, long (`--batch 2`,
/// `--batch=2`) or short (`-l web`, `-lweb`, or within `-vl`).
fn given(arg: &Arg, long: &str, words: &[String]) -> bool {
    words.iter().any(|word| {
        if let Some(name) = word.strip_prefix("--") {
            return name == long || name.starts_with(&format!("{long}="));
        }
        match (arg.get_short(), word.strip_prefix('-')) {
            (Some(short), Some(shorts)) => shorts.contains(short),
            _ => false,
        }
    })
}

/// Whether `text` names `--long` itself (not `--long-er`).
fn mentions(text: &str, long: &str) -> bool {
    let needle = format!("--{long}");
    text.match_indices(&needle).any(|(at, _)| {
        !text[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|next| next.is_alphanumeric() || next == '-' || next == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Options whose variable is not `HERD_` + the long name, and why.
    const NAMED_OTHERWISE: [(&str, &str); 3] = [
        // HERD_KNOWN_HOSTS holds known_hosts text, not a path.
        ("known-hosts", "HERD_KNOWN_HOSTS_FILE"),
        // HERD_PLAYBOOK is what hooks get: a `herd check` in a hook must not read it.
        ("playbook", "HERD_CHECK_PLAYBOOK"),
        // HERD_HOSTS is what hooks get; the lab's options are HERD_LAB_*.
        ("hosts", "HERD_LAB_HOSTS"),
    ];

    /// Options with no variable: repeatable `-e` (no separator is safe in a
    /// value; playbooks read `{{ env.NAME }}`), and `lab up --venv`, whose
    /// HERD_LAB_VENV the lab reads itself (empty meaning unset).
    const WITHOUT_VARIABLE: [&str; 2] = ["extra-vars", "venv"];

    fn expected(command: &Command, long: &str) -> String {
        if let Some((_, variable)) = NAMED_OTHERWISE.iter().find(|(name, _)| *name == long) {
            return variable.to_string();
        }
        let lab = command.get_bin_name().unwrap_or("").contains(" lab ");
        let prefix = if lab { "HERD_LAB_" } else { "HERD_" };
        format!("{prefix}{}", long.to_uppercase().replace('-', "_"))
    }

    fn every_command(command: &Command, out: &mut Vec<Command>) {
        out.push(command.clone());
        for sub in command.get_subcommands() {
            every_command(sub, out);
        }
    }

    #[test]
    fn every_option_has_its_variable() {
        let mut root = crate::cli::Cli::command();
        root.build();
        root.clone().debug_assert();
        let mut commands = Vec::new();
        every_command(&root, &mut commands);
        for command in &commands {
            for arg in command.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if ["help", "version"].contains(&long) || WITHOUT_VARIABLE.contains(&long) {
                    continue;
                }
                let variable = arg.get_env().map(|v| v.to_string_lossy().into_owned());
                assert_eq!(
                    variable,
                    Some(expected(command, long)),
                    "`{}` --{long}: give it `env = ...` (and a row in the README's table)",
                    command.get_bin_name().unwrap_or(command.get_name())
                );
            }
        }
    }

    #[test]
    fn mentions_the_option_and_not_a_longer_one() {
        assert!(mentions("for '--batch <BATCH>'", "batch"));
        assert!(mentions("cannot be used with '--preload'", "preload"));
        assert!(!mentions("'--no-preload'", "preload"));
        assert!(!mentions("'--timeout-x'", "timeout"));
        assert!(!mentions("'--connect-timeout <T>'", "timeout"));
    }

    #[test]
    fn an_option_on_the_command_line_is_given() {
        let limit = Arg::new("limit").short('l').long("limit");
        let words = |line: &str| line.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(given(&limit, "limit", &words("plan p.yml --limit web")));
        assert!(given(&limit, "limit", &words("plan p.yml --limit=web")));
        assert!(given(&limit, "limit", &words("plan p.yml -lweb")));
        assert!(!given(&limit, "limit", &words("plan p.yml --limits web")));
        assert!(!given(&limit, "limit", &words("plan p.yml -i x")));
    }
}
